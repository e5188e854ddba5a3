"""Throughput of every environment of the catalogue at N = 1024, side by side.

For each env: env-steps per second of the vector env (Gymnasium step, infos included) and of the Rust
batch alone, with random actions and metrics off, plus the single env's ``env.step`` time. Runs are
interleaved round-robin over the envs and the median of the rounds is reported.

    python benches/bench_catalogue.py [--num-envs 1024] [--steps 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import neorl_industrial as ni


def vector_rate(env_id: str, n: int, steps: int, core: bool) -> float:
    envs = ni.make_vec(env_id, num_envs=n, metrics=False)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps + 5, *envs.action_space.shape)).astype(np.float32)
    step = envs._core.step if core else envs.step
    for i in range(5):
        step(actions[i])
    t0 = time.perf_counter()
    for i in range(steps):
        step(actions[5 + i])
    return n * steps / (time.perf_counter() - t0)


def single_us(env_id: str, steps: int) -> float:
    env = ni.make(env_id, metrics=False)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps)]
    total = 0.0
    for a in actions:
        t0 = time.perf_counter()
        _, _, term, trunc, _ = env.step(a)
        total += time.perf_counter() - t0
        if term or trunc:
            env.reset()
    return total / steps * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    ids = ni.env_ids()
    rows: dict[str, dict[str, list[float]]] = {i: {"gym": [], "core": [], "single": []} for i in ids}
    for _ in range(a.rounds):
        for env_id in ids:
            rows[env_id]["gym"].append(vector_rate(env_id, a.num_envs, a.steps, core=False))
            rows[env_id]["core"].append(vector_rate(env_id, a.num_envs, a.steps, core=True))
            rows[env_id]["single"].append(single_us(env_id, 2000))
    print(f"N = {a.num_envs}, random actions, metrics off, median of {a.rounds} rounds")
    print(f"{'environment':24s} {'vector env':>14s} {'Rust batch':>14s} {'single step':>12s}")
    for env_id in ids:
        r = {k: statistics.median(v) for k, v in rows[env_id].items()}
        print(f"{env_id:24s} {r['gym']:11,.0f}/s {r['core']:11,.0f}/s {r['single']:9.2f} us")


if __name__ == "__main__":
    main()
