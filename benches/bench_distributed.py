"""Dataset generation throughput on a local Ray instance: 1 worker against 2 workers.

``generate_dataset(..., num_workers=K)`` on ChemicalReactor-v0 (expert quality), transitions per second
of wall time from the call to the merged dataset (tasks, transfer through the object store, merge and
cut included; Ray's start and the workers' first import are not: one untimed warm-up call each). The
in-process generator is the reference. Runs are interleaved round-robin; medians are reported.

    python benches/bench_distributed.py [--transitions 1000000] [--num-envs 2048] [--rounds 3]

Workers are processes of one machine here: with 2 cores, 2 workers can at best double the rate.

Also timed: how long ``generate_dataset(..., timeout=0.5)`` takes to raise ``WorkerTimeoutError`` for
a dataset that cannot finish in time (``tests/test_distributed.py`` checks that it raises, not how
soon), and how long a small dataset then takes on the freed workers.
"""

from __future__ import annotations

import argparse
import os
import time

# The local instance stays on the loopback interface.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray  # noqa: E402
from _common import fmt_num, interleaved_medians, print_machine, print_table  # noqa: E402

from neorl_industrial import datasets  # noqa: E402
from neorl_industrial.distributed import WorkerTimeoutError, generate_dataset  # noqa: E402

ENV = "ChemicalReactor-v0"


def rate_fn(workers: int | None, n: int, num_envs: int):  # type: ignore[no-untyped-def]
    """A measurement: one dataset of ``n`` transitions; returns transitions per second."""

    def measure() -> float:
        t0 = time.perf_counter()
        if workers is None:
            ds = datasets.generate(ENV, "expert", n_transitions=n, num_envs=num_envs, progress=False)
        else:
            ds = generate_dataset(
                ENV, "expert", n_transitions=n, num_envs=num_envs, progress=False, num_workers=workers
            )
        dt = time.perf_counter() - t0
        assert len(ds["rewards"]) == n
        return n / dt

    return measure


def timeout_seconds(timeout: float = 0.5) -> tuple[float, float]:
    """Seconds from the call to ``WorkerTimeoutError`` (``timeout`` s asked), then seconds for a
    small dataset on the workers the cancelled tasks gave back."""
    t0 = time.perf_counter()
    try:
        generate_dataset(ENV, n_transitions=50_000_000, num_envs=64, num_workers=2, timeout=timeout, progress=False)
    except WorkerTimeoutError:
        raised = time.perf_counter() - t0
    else:
        raise AssertionError("the timeout did not fire")
    t0 = time.perf_counter()
    generate_dataset(ENV, n_transitions=200, num_envs=4, num_workers=2, timeout=60, progress=False)
    return raised, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transitions", type=int, default=1_000_000)
    p.add_argument("--num-envs", type=int, default=2048)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    print_machine()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        fns = {
            "in-process generate (no Ray)": rate_fn(None, a.transitions, a.num_envs),
            "generate_dataset, 1 worker": rate_fn(1, a.transitions, a.num_envs),
            "generate_dataset, 2 workers": rate_fn(2, a.transitions, a.num_envs),
        }
        medians = interleaved_medians(fns, repeats=a.rounds)
        raised, small = timeout_seconds()
    finally:
        ray.shutdown()
    one = medians["generate_dataset, 1 worker"]
    rows = [[name, f"{fmt_num(v)} transitions/s", f"{v / one:.2f}x"] for name, v in medians.items()]
    print()
    print(f"{ENV} expert, {a.transitions} transitions, {a.num_envs} envs, median of {a.rounds} rounds")
    print_table(["configuration", "throughput", "vs 1 worker"], rows, markdown=True)
    print(f"\n2 workers / 1 worker: {medians['generate_dataset, 2 workers'] / one:.2f}x")
    print(f"timeout=0.5 s: WorkerTimeoutError after {raised:.2f} s; then 200 transitions in {small:.2f} s")
    print(f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
