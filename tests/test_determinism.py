"""Determinism of every environment: sha256 of long trajectories compared across processes, thread
counts (the shared pool sized by ``RAYON_NUM_THREADS``, and private pools via ``num_threads``)
and batch sizes (env ``i`` of any batch, and the single env seeded ``seed + i``).

Runs are compared with each other, not with stored hashes: the process models call the platform's
``exp``/``sin``/``pow``, whose last bit may differ between C libraries, so a golden hash would hold
for one platform only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _trajectory import batch_hash, per_env_hashes, single_env_hash
from conftest import ENV_IDS

import neorl_industrial as ni

SCRIPT = Path(__file__).parent / "_trajectory.py"
BATCH, STEPS = 256, 1000  # 256,000 env-steps per env and run: several episodes of every env


def hashes_in_subprocess(shared_threads: int, num_threads: str = "none", spin_us: int = 200) -> dict[str, str]:
    env = {**os.environ, "RAYON_NUM_THREADS": str(shared_threads), "NEORL_INDUSTRIAL_SPIN_US": str(spin_us)}
    p = subprocess.run(
        [sys.executable, str(SCRIPT), str(BATCH), str(STEPS), num_threads],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs() -> dict[str, dict[str, str]]:
    """Five fresh processes: shared pools of 1 and 2 threads (RAYON_NUM_THREADS), the same 2 with helpers
    that sleep at once between rounds, a private pool of 3, and a repeat."""
    return {
        "shared 1": hashes_in_subprocess(1),
        "shared 2": hashes_in_subprocess(2),
        "shared 2, again": hashes_in_subprocess(2),
        "shared 2, no spinning": hashes_in_subprocess(2, spin_us=0),
        "num_threads=3": hashes_in_subprocess(1, "3"),
    }


def test_every_env_is_covered(runs: dict[str, dict[str, str]]) -> None:
    for hashes in runs.values():
        assert sorted(hashes) == sorted(ni.env_ids()) == sorted(ENV_IDS)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_hash_across_processes_and_thread_counts(env_id: str, runs: dict[str, dict[str, str]]) -> None:
    seen = {name: hashes[env_id] for name, hashes in runs.items()}
    assert len(set(seen.values())) == 1, seen
    # The hash covers what it claims: another seed or one changed action gives another hash.
    assert batch_hash(env_id, 8, 50) != batch_hash(env_id, 9, 50)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_i_is_the_same_in_any_batch_and_as_a_single_env(env_id: str) -> None:
    steps = 400
    sizes = {n: per_env_hashes(env_id, n, steps) for n in (1, 5, 40)}
    sizes[40.3] = per_env_hashes(env_id, 40, steps, num_threads=3)  # a private pool, other lanes
    for n, hashes in sizes.items():
        assert hashes[: len(sizes[1])] == sizes[1], f"batch {n}"
        assert hashes[:5] == sizes[5][: len(hashes[:5])], f"batch {n}"
    assert len(set(sizes[40])) == 40  # every env follows its own stream
    for i in (0, 4):
        assert single_env_hash(env_id, i, steps) == sizes[5][i], f"single env {i}"
