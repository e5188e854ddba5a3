"""Hashes of long trajectories, for the determinism tests (also runnable as a script, so a test can
compute them in a fresh process under another ``RAYON_NUM_THREADS``).

``python tests/_trajectory.py [num_envs] [steps] [num_threads]`` prints ``{env_id: sha256}`` as JSON.

Env ``i`` always gets the same actions (drawn from its own stream ``default_rng([7, i])``), so the
trajectory of env ``i`` does not depend on the batch it is in.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

import numpy as np

import neorl_industrial as ni

SEED = 1234


def env_actions(env_id: str, i: int, steps: int) -> np.ndarray:
    return np.random.default_rng([7, i]).uniform(-1.05, 1.05, (steps, len(ni.spec(env_id)["actions"])))


def batch_actions(env_id: str, num_envs: int, steps: int) -> np.ndarray:
    """``(steps, num_envs, act_dim)``."""
    return np.stack([env_actions(env_id, i, steps) for i in range(num_envs)], axis=1)


def _row(h: Any, obs: np.ndarray, reward: Any, term: Any, trunc: Any, cost: Any) -> None:
    h.update(np.asarray(obs, np.float32).tobytes())
    h.update(np.asarray(reward, np.float64).tobytes())
    h.update(np.asarray(term, np.bool_).tobytes())
    h.update(np.asarray(trunc, np.bool_).tobytes())
    h.update(np.asarray(cost, np.float64).tobytes())


def step_cost(info: dict[str, Any], n: int) -> np.ndarray:
    """Each env's cost of this step: an env that ended reports it in ``final_info`` (same_step)."""
    cost = np.asarray(info.get("cost", np.zeros(n)), np.float64)
    if "final_info" in info:
        cost = np.where(info["_final_info"], info["final_info"]["cost"], cost)
    return cost


def batch_hash(env_id: str, num_envs: int, steps: int, num_threads: int | None = None) -> str:
    """One sha256 over the whole batch's observations, rewards, ends and costs, step by step."""
    envs = ni.make_vec(env_id, num_envs=num_envs, autoreset_mode="same_step", num_threads=num_threads,
                       metrics=False)  # fmt: skip
    acts = batch_actions(env_id, num_envs, steps)
    h = hashlib.sha256()
    obs, _ = envs.reset(seed=SEED)
    h.update(obs.tobytes())
    for t in range(steps):
        obs, r, term, trunc, info = envs.step(acts[t])
        _row(h, obs, r, term, trunc, step_cost(info, num_envs))
    return h.hexdigest()


def per_env_hashes(env_id: str, num_envs: int, steps: int, num_threads: int | None = None) -> list[str]:
    """One sha256 per env of the batch, over that env's own rows."""
    envs = ni.make_vec(env_id, num_envs=num_envs, autoreset_mode="same_step", num_threads=num_threads,
                       metrics=False)  # fmt: skip
    acts = batch_actions(env_id, num_envs, steps)
    hs = [hashlib.sha256() for _ in range(num_envs)]
    obs, _ = envs.reset(seed=SEED)
    for i, h in enumerate(hs):
        h.update(obs[i].tobytes())
    for t in range(steps):
        obs, r, term, trunc, info = envs.step(acts[t])
        cost = step_cost(info, num_envs)
        for i, h in enumerate(hs):
            _row(h, obs[i], r[i], term[i], trunc[i], cost[i])
    return [h.hexdigest() for h in hs]


def single_env_hash(env_id: str, i: int, steps: int) -> str:
    """Env ``i`` of a batch, as a single env seeded ``SEED + i`` and reset by hand when it ends."""
    env = ni.make(env_id, metrics=False)
    acts = env_actions(env_id, i, steps)
    h = hashlib.sha256()
    obs, _ = env.reset(seed=SEED + i)
    h.update(obs.tobytes())
    for t in range(steps):
        obs, r, term, trunc, info = env.step(acts[t])
        if term or trunc:
            obs, _ = env.reset()
        _row(h, obs, r, term, trunc, info["cost"])
    return h.hexdigest()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    threads = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] != "none" else None
    print(json.dumps({env_id: batch_hash(env_id, n, steps, threads) for env_id in ni.env_ids()}))
