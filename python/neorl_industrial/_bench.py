"""``neorl-industrial bench``: a quick throughput table for this machine.

For each environment: env-steps per second of a vector env of ``num_envs`` (metrics off, same-step
autoreset, random actions drawn up front) and microseconds per ``env.step`` of one env.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import numpy as np

from . import env_ids, make, make_vec

__all__ = ["bench", "bench_env", "format_table"]

_ACTION_BATCHES = 16  # random action batches cycled through (drawing them is not timed)


def _random_actions(space: Any, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    low = np.broadcast_to(np.asarray(space.low, dtype=np.float64), space.shape)
    high = np.broadcast_to(np.asarray(space.high, dtype=np.float64), space.shape)
    return rng.uniform(low, high, size=(*shape, *space.shape)).astype(space.dtype)


def bench_env(env_id: str, num_envs: int = 1024, seconds: float = 1.0, seed: int = 0) -> dict[str, Any]:
    """Measures one env id: ``seconds / 2`` for the vector env, ``seconds / 2`` for the single env."""
    budget = max(float(seconds), 1e-3) / 2
    rng = np.random.default_rng(seed)

    envs = make_vec(env_id, num_envs=num_envs, metrics=False, autoreset_mode="same_step")
    try:
        actions = _random_actions(envs.single_action_space, (_ACTION_BATCHES, num_envs), rng)
        envs.reset(seed=seed)
        envs.step(actions[0])  # warm-up
        batches = 0
        t0 = time.perf_counter()
        while True:
            envs.step(actions[batches % _ACTION_BATCHES])
            batches += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= budget:
                break
    finally:
        envs.close()
    vec_rate = batches * num_envs / elapsed

    env = make(env_id, metrics=False)
    try:
        single = _random_actions(env.action_space, (256,), rng)
        env.reset(seed=seed)
        steps = 0
        stepping = 0.0
        t_end = time.perf_counter() + budget
        while time.perf_counter() < t_end:
            # Time batches of steps; resets happen outside the timed part.
            t0 = time.perf_counter()
            done = False
            n = 0
            for _ in range(64):
                _, _, term, trunc, _ = env.step(single[(steps + n) % len(single)])
                n += 1
                if term or trunc:
                    done = True
                    break
            stepping += time.perf_counter() - t0
            steps += n
            if done:
                env.reset()
    finally:
        env.close()
    return {
        "env": env_id,
        "num_envs": num_envs,
        "vec_env_steps": batches * num_envs,
        "vec_steps_per_second": vec_rate,
        "single_steps": steps,
        "single_step_us": 1e6 * stepping / max(steps, 1),
    }


def bench(
    num_envs: int = 1024, seconds: float = 1.0, ids: list[str] | None = None, seed: int = 0
) -> dict[str, Any]:
    """Benchmarks every environment (or ``ids``); returns the machine and one row per env."""
    rows = [bench_env(env_id, num_envs, seconds, seed) for env_id in (ids or env_ids())]
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "num_envs": num_envs,
        "seconds": seconds,
        "results": rows,
    }


def format_table(report: dict[str, Any]) -> str:
    """The report as an aligned text table."""
    header = ["env", f"vec steps/s (x{report['num_envs']})", "single env us/step"]
    rows = [
        [r["env"], f"{r['vec_steps_per_second']:,.0f}", f"{r['single_step_us']:.2f}"]
        for r in report["results"]
    ]
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=False)]
    align = [str.ljust, str.rjust, str.rjust]
    lines = [
        "  ".join(f(h, w) for f, h, w in zip(align, header, widths, strict=True)),
        "  ".join("-" * w for w in widths),
        *("  ".join(f(c, w) for f, c, w in zip(align, r, widths, strict=True)) for r in rows),
    ]
    m = report["machine"]
    return f"{m['cpus']} CPUs, Python {m['python']}, {m['platform']}\n" + "\n".join(lines)
