"""Two Python threads stepping two vector envs: does it scale? (a benchmark: it prints).

    python benches/bench_concurrency.py [--num-envs 1024] [--steps 300] [--repeats 5]

Each env has a private one-thread pool (``num_threads=1``), so the only parallelism is the two
Python threads: batch steps release the GIL. Prints env-steps/s of one thread stepping one env,
of one thread stepping both in turn, and of two threads each stepping its own (medians), and the
speed-up of the last over the second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import numpy as np

import neorl_industrial as ni


def run(envs: list[ni.VectorIndustrialEnv], steps: int, threaded: bool) -> float:
    actions = np.zeros((envs[0].num_envs, 1), np.float32)

    def work(e: ni.VectorIndustrialEnv) -> None:
        for _ in range(steps):
            e.step(actions)

    t0 = time.perf_counter()
    if threaded:
        ts = [threading.Thread(target=work, args=(e,)) for e in envs]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    else:
        for e in envs:
            work(e)
    return len(envs) * steps * envs[0].num_envs / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    envs = [ni.make_vec("ChemicalReactor-v0", num_envs=a.num_envs, num_threads=1, autoreset_mode="same_step")
            for _ in range(2)]  # fmt: skip
    for i, e in enumerate(envs):
        e.reset(seed=i)
    one, seq, par = [], [], []
    for _ in range(a.repeats):
        one.append(run(envs[:1], a.steps, False))
        seq.append(run(envs, a.steps, False))
        par.append(run(envs, a.steps, True))
    m = statistics.median
    print(
        f"{os.cpu_count()} cores; ChemicalReactor-v0 x{a.num_envs} per env, {a.steps} steps, median of {a.repeats}"
    )
    print(f"  one thread, one env:          {m(one):>12,.0f} env-steps/s")
    print(f"  one thread, two envs in turn: {m(seq):>12,.0f} env-steps/s")
    print(f"  two threads, one env each:    {m(par):>12,.0f} env-steps/s  (x{m(par) / m(seq):.2f})")


if __name__ == "__main__":
    main()
