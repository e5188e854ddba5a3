"""IndustrialBenchmark-v0 throughput against ``industrial-benchmark-python`` 2.0, side by side.

- vector env, N=1024, all cores: env-steps/s of ``neorl_industrial.make_vec`` against the original
  Python implementation (``IDS(p=70)``) stepping one env;
- single env ``env.step`` in microseconds, next to ``IDS.step``.

Run: ``python benches/bench_industrial_benchmark.py [--quick] [--num-envs 1024]``.
Ratios are "how many times faster ours is". The peer is timed on ``IDS.step`` alone (it returns
nothing; reading its observation would only add to its cost).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from _common import (
    Row,
    import_ours,
    interleaved_medians,
    print_machine,
    print_rows,
    single_us_fn,
    vector_rate_fn,
)

ENV_ID = "IndustrialBenchmark-v0"
SETPOINT = 70


@dataclass
class Settings:
    num_envs: int = 1024
    ours_batch_steps: int = 1_000  # one episode per repeat
    repeats: int = 5
    peer_steps: int = 5_000
    single_steps: int = 50_000
    quick: bool = False

    @classmethod
    def make(cls, quick: bool, num_envs: int = 1024) -> Settings:
        if quick:
            return cls(num_envs, 250, 3, 2_000, 20_000, True)
        return cls(num_envs=num_envs)


def load_ids() -> tuple[Any, str]:
    """Returns (the IDS class or None, a note)."""
    # industrial-benchmark-python 2.0 calls ``np.float``, which NumPy >= 1.24 removed.
    if not hasattr(np, "float"):
        np.float = float  # type: ignore[attr-defined]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from industrial_benchmark_python.IDS import IDS
    except Exception as exc:
        return None, (
            f"industrial-benchmark-python unavailable ({type(exc).__name__}: {exc}); "
            "try `pip install industrial-benchmark-python==2.0`"
        )
    try:
        from importlib.metadata import version

        v = version("industrial-benchmark-python")
    except Exception:
        v = "?"
    return IDS, f"industrial-benchmark-python {v}, IDS(p={SETPOINT}), np.float patched to float"


def ib_unavailable(ni: Any) -> str | None:
    """None if our IB env can be built, else why not (the env may not exist yet)."""
    try:
        ni.make(ENV_ID)
    except (ni.UnknownEnvironmentError, ni.ConfigError) as exc:
        return f"{ENV_ID} not available in neorl_industrial ({type(exc).__name__}: {exc}); skipped"
    return None


def run(quick: bool = False, num_envs: int = 1024) -> list[Row]:
    """Runs the IndustrialBenchmark benchmarks and returns the rows (printing progress)."""
    s = Settings.make(quick, num_envs)
    ni = import_ours()
    n = s.num_envs
    ids_cls, peer_note = load_ids()
    missing = ib_unavailable(ni)
    vec_name = f"IB vector env N={n} vs industrial-benchmark-python IDS, 1 env"
    single_name = "IB single env.step (ni.make) vs IDS.step"
    if missing:
        print(f"[IndustrialBenchmark] {missing}")
        return [
            Row(vec_name, None, None, "steps/s", "IDS", ">= 500x", target_ratio=500.0, note=missing),
            Row(
                single_name,
                None,
                None,
                "us/step",
                "IDS",
                "ours <= 5 us",
                higher_is_better=False,
                target_max_ours=5.0,
            ),
        ]

    rng = np.random.default_rng(0)
    vec_actions = [rng.uniform(-1.0, 1.0, (n, 3)).astype(np.float32) for _ in range(16)]
    single_actions = [rng.uniform(-1.0, 1.0, 3).astype(np.float32) for _ in range(64)]
    peer_actions = [a.astype(np.float64) for a in single_actions]

    venv = ni.make_vec(ENV_ID, num_envs=n, setpoint=SETPOINT)
    venv.reset(seed=0)
    env = ni.make(ENV_ID, setpoint=SETPOINT)
    fns: dict[str, Callable[[], float]] = {
        "ours_vec": vector_rate_fn(venv.step, vec_actions, n, s.ours_batch_steps),
        "ours_single": single_us_fn(env.step, lambda: env.reset(seed=0), single_actions, s.single_steps),
    }
    if ids_cls is not None:
        ids = ids_cls(p=SETPOINT)
        not_done = (None, None, False, False)

        def ids_step(a: np.ndarray) -> tuple[Any, ...]:
            ids.step(a)
            return not_done

        fns["ids"] = single_us_fn(ids_step, lambda: None, peer_actions, s.peer_steps)

    print(f"[IndustrialBenchmark] vector N={n}, single env and IDS, interleaved x{s.repeats} ...", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = interleaved_medians(fns, s.repeats)
    ids_us = m.get("ids")
    ids_rate = 1e6 / ids_us if ids_us else None
    return [
        Row(
            vec_name,
            m["ours_vec"],
            ids_rate,
            "steps/s",
            "IDS",
            ">= 500x",
            target_ratio=500.0,
            note=peer_note
            + "; random actions in [-1, 1]^3; ours: 1000-step episodes with next-step autoreset",
        ),
        Row(
            single_name,
            m["ours_single"],
            ids_us,
            "us/step",
            "IDS",
            "ours <= 5 us",
            higher_is_better=False,
            target_max_ours=5.0,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a short run (~10 s)")
    p.add_argument("--num-envs", type=int, default=1024, help="vector env batch size (default 1024)")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = p.parse_args(argv)
    print_machine()
    t0 = time.perf_counter()
    rows = run(args.quick, args.num_envs)
    print_rows(rows, "IndustrialBenchmark-v0 benchmarks", markdown=args.markdown)
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
