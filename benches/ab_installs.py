"""Two installs of the package side by side: batch steps/s of each, interleaved (a benchmark, not a test).

    python benches/ab_installs.py /path/to/before/python /path/to/after/python [--rounds 6] [--envs ...]

Each round runs one fresh process per install and environment, in turn, and each process reports
the best of 5 timings of 200 batch steps at N = 1024 (random actions, metrics on). The table gives
the median over rounds and after/before: for checking a change against the build before it (for
example two virtual environments made with ``--system-site-packages`` holding each build).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess

PROBE = """
import sys, time
import numpy as np
import neorl_industrial as ni
e = ni.make_vec(sys.argv[1], num_envs=1024)
e.reset(seed=0)
a = np.random.default_rng(0).uniform(-1, 1, (1024,) + e.single_action_space.shape).astype(np.float32)
for _ in range(50):
    e.step(a)
best = 0.0
for _ in range(5):
    t0 = time.perf_counter()
    for _ in range(200):
        e.step(a)
    best = max(best, 200 * 1024 / (time.perf_counter() - t0))
print(best)
"""


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("before", help="python interpreter of the first install")
    p.add_argument("after", help="python interpreter of the second install")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--envs", nargs="+", default=["ChemicalReactor-v0", "IndustrialBenchmark-v0"])
    a = p.parse_args()
    print(f"{'env':<24} {'before':>12} {'after':>12} {'after/before':>13}")
    for env in a.envs:
        runs: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(a.rounds):
            for name in ("before", "after"):
                out = subprocess.run([getattr(a, name), "-c", PROBE, env], capture_output=True, text=True, check=True)
                runs[name].append(float(out.stdout.split()[-1]))
        b, f = statistics.median(runs["before"]), statistics.median(runs["after"])
        print(f"{env:<24} {b / 1e6:>10.3f} M {f / 1e6:>10.3f} M {f / b:>13.3f}")


if __name__ == "__main__":
    main()
