"""What quality monitoring costs (a benchmark, not a test: it prints, it asserts nothing).

    python benches/bench_quality.py [--quick]

1. A ChemicalReactor batch step at N = 1024 with metrics on, four ways, interleaved:
   quality counters off, on (the default), on + a drift watch sampling 64 envs per step (the
   default), on + a drift watch over every env. Reported as the added share of the step's time
   (the budget: at most 3 %).
2. Memory of a drift watch per feature: the count (window x bins x 4 bytes of ring) and the
   resident memory measured over 300 watches of the reactor's 5 features with full windows.

Random actions (the workload where the batch does the most: clipping, safety events). The machine
is shared: read the ratios, not the digits.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import numpy as np

import neorl_industrial as ni
from neorl_industrial.drift import DriftMonitor
from neorl_industrial.metrics import Registry

ENV = "ChemicalReactor-v0"
N = 1024


def make(mode: str) -> tuple[object, np.ndarray]:
    r = Registry()
    envs = ni.make_vec(ENV, num_envs=N, registry=r)
    if mode == "quality off":
        envs._core.set_quality(False)
    elif mode.startswith("drift"):
        sample = 0 if mode.endswith("all envs") else 64
        DriftMonitor(None, envs.core_spec, window=600, registry=r, warmup=50, sample=sample).attach(envs)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1.2, 1.2, (64, N, 1))
    return envs, actions


def time_steps(envs: object, actions: np.ndarray, steps: int) -> float:
    step = envs.step  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    for t in range(steps):
        step(actions[t % len(actions)])
    return (time.perf_counter() - t0) / steps


MODES = ("quality off", "quality on", "drift, 64 envs per step", "drift, all envs")


def overhead(steps: int, rounds: int) -> None:
    made = {m: make(m) for m in MODES}
    for envs, actions in made.values():
        time_steps(envs, actions, 100)  # past the warmups, windows filling
    samples: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(rounds):
        for m in MODES:
            samples[m].append(time_steps(*made[m], steps))
    base = statistics.median(samples["quality off"])
    print(f"1. {ENV} batch step, N = {N}, metrics on, random actions ({rounds} interleaved rounds of {steps} steps)")
    for m in MODES:
        med = statistics.median(samples[m])
        print(f"   {m:<26} {med * 1e6:8.1f} us/step   {100 * (med / base - 1):+6.2f} %")


def statm_resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def memory(watches: int, window: int) -> None:
    spec = ni.spec(ENV)
    rows = np.random.default_rng(1).normal(size=(64, 5))
    made = []
    before = statm_resident_bytes()
    for _ in range(watches):
        m = DriftMonitor(None, spec, window=window, registry=Registry(), warmup=1)
        for _ in range(window + 1):
            m.observe(rows[:, :3], rows[:, 3:4], rows[:, 4])
        made.append(m)
    after = statm_resident_bytes()
    features = watches * 5
    bins = 10
    print(f"2. drift watch memory: window {window} batch steps, {bins} bins per feature")
    print(f"   ring per feature: window x bins x 4 B = {window * bins * 4 / 1024:.1f} KiB (fixed, whatever the batch size)")
    print(f"   measured: {(after - before) / features / 1024:.1f} KiB resident per feature ({watches} watches x 5 features)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short run (checks the script works)")
    a = p.parse_args()
    logging.disable(logging.CRITICAL)  # random actions violate constraints: keep the output to figures
    if a.quick:
        overhead(steps=20, rounds=2)
        memory(watches=5, window=20)
    else:
        overhead(steps=300, rounds=15)
        memory(watches=300, window=600)


if __name__ == "__main__":
    main()
