"""Cost of the safety layer on the ChemicalReactor batch step (N = 1024).

Compares, side by side in one process, the same vector env with
  * safety off: no constraints (``constraints={"defaults": False}``), no shield;
  * the default constraints (evaluation, alarms, incidents, cost, shutdown);
  * the default constraints plus ``shield="clip"``;
  * the default constraints plus ``shield="predictive"`` (for reference; it simulates ahead).
Runs are interleaved round-robin and the median per configuration is reported, so drifting machine load
hits every configuration alike; metrics are off in every configuration (their cost is benches/bench_telemetry.py's).
Printed twice: the Rust batch step alone, and the Gymnasium step whose infos carry per-constraint arrays.
Target: constraints + incidents + clip <= 5% over safety off.

    python benches/bench_safety.py [--num-envs 1024] [--steps 200] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import neorl_industrial as ni

CONFIGS = {
    "safety off": {"constraints": {"defaults": False}},
    "constraints": {},
    "constraints + clip shield": {"shield": "clip"},
    "constraints + predictive shield": {"shield": "predictive"},
}
COMPARED = ("safety off", "constraints", "constraints + clip shield")
TARGET = 0.05  # constraints + incidents + clip shield over safety off


def time_config(kwargs: dict, num_envs: int, steps: int, actions: np.ndarray, core: bool) -> float:
    """Seconds per batch step through the Gymnasium API, or through the Rust batch alone (``core``)."""
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=num_envs, metrics=False, **kwargs)
    envs.reset(seed=0)
    step = envs._core.step if core else envs.step
    for i in range(5):
        step(actions[i])
    t0 = time.perf_counter()
    for i in range(steps):
        step(actions[i])
    return (time.perf_counter() - t0) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="a ~5 s run")
    a = p.parse_args()
    if a.quick:
        a.steps, a.rounds = 50, 3
    # Random coolant in [298, 304] K: warnings open and close (temperature, ramp: thousands of incidents)
    # but nothing runs away, so every configuration integrates like trajectories and only the safety
    # work differs.
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.2, 0.4, (a.steps + 5, a.num_envs, 1)).astype(np.float32)
    for core in (True, False):
        times: dict[str, list[float]] = {name: [] for name in CONFIGS}
        for _ in range(a.rounds):
            for name, kwargs in CONFIGS.items():
                times[name].append(time_config(kwargs, a.num_envs, a.steps, actions, core))
        base = statistics.median(times["safety off"])
        where = "the Rust batch step alone" if core else "the Gymnasium step (infos per constraint included)"
        print(f"ChemicalReactor-v0, N = {a.num_envs}, {where}: {a.steps} steps x {a.rounds} rounds (median)")
        print(f"{'configuration':34s} {'ms/batch':>9s} {'env-steps/s':>12s} {'overhead':>9s}")
        for name in CONFIGS:
            t = statistics.median(times[name])
            if name not in COMPARED:
                print(f"{name:34s} {t * 1e3:9.3f} {a.num_envs / t:12,.0f} {'(ref.)':>9s}")
                continue
            print(f"{name:34s} {t * 1e3:9.3f} {a.num_envs / t:12,.0f} {100 * (t / base - 1):+8.1f}%")
        clip = statistics.median(times["constraints + clip shield"]) / base - 1
        verdict = "met" if clip <= TARGET else "NOT met"
        print(f"target: constraints + clip shield <= +{TARGET:.0%} over safety off: {verdict} ({clip:+.1%})")
        print()


if __name__ == "__main__":
    main()
