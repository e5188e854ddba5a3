"""Offline RL on neorl-industrial's datasets: d3rlpy's BC, CQL, IQL and TD3+BC, scored and checked for safety.

For ChemicalReactor-v0, IndustrialBenchmark-v0 and Pipeline-v0 at qualities random, medium and expert:
a dataset, split by trajectories; each agent trained for a fixed number of gradient steps per seed,
evaluated in the env with the safety layer on (normalized score, alarms per episode, shutdown rate)
and estimated by FQE on the held-out trajectories. Writes docs/offline-benchmark.md and one MLflow
run per table cell (see neorl_industrial.offline.run_benchmark).

    python benches/offline_rl.py                 # the published table (about 75 min on 1 core)
    python benches/offline_rl.py --quick         # a smoke run of seconds
    python benches/offline_rl.py --probe         # times a gradient step of each agent, projects the run

The same as ``neorl-industrial offline-bench``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from neorl_industrial import ConfigError, datasets, offline

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "offline-benchmark.md"


def probe(cfg: offline.BenchmarkConfig, steps: int = 100) -> float:
    """Times a gradient step of every agent and of FQE on every env (batch 256, ``cfg.threads``
    torch threads) and prints the projected duration of ``cfg``; returns it in seconds."""
    import torch

    torch.set_num_threads(cfg.threads)
    total = 0.0
    for env_id in cfg.envs:
        ds = datasets.generate(env_id, "medium", n_transitions=20_000, num_envs=20, progress=False)
        mdp, scale = offline.to_d3rlpy(ds), offline.reward_scale(ds)
        row = []
        for algorithm in cfg.algorithms:
            agent = offline.make_agent(algorithm, scale, cfg.batch_size)
            offline._fit(agent, mdp, 10)  # builds the networks
            t0 = time.perf_counter()
            offline._fit(agent, mdp, steps)
            per = (time.perf_counter() - t0) / steps
            total += per * cfg.steps * len(cfg.qualities) * len(cfg.seeds)
            row.append(f"{algorithm} {per * 1e3:.1f} ms")
        t0 = time.perf_counter()
        offline.fqe_estimate(agent, ds, steps, reward_multiplier=scale)
        per = (time.perf_counter() - t0) / steps
        total += per * cfg.fqe_steps * len(cfg.algorithms) * len(cfg.qualities) * len(cfg.seeds)
        row.append(f"FQE {per * 1e3:.1f} ms")
        t0 = time.perf_counter()
        offline.evaluate(agent, env_id, cfg.eval_episodes, metrics=False)
        evaluation = time.perf_counter() - t0
        total += evaluation * len(cfg.algorithms) * len(cfg.qualities) * len(cfg.seeds)
        row.append(f"evaluation {evaluation:.1f} s")
        print(f"{env_id}: per gradient step " + ", ".join(row), flush=True)
    print(
        f"projected: {total / 60:.0f} min for {cfg.steps} steps per agent, {cfg.fqe_steps} FQE steps, "
        f"{len(cfg.seeds)} seeds (dataset generation not included: seconds)"
    )
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    offline.add_benchmark_arguments(p, str(OUT))
    p.add_argument(
        "--probe", action="store_true", help="time a gradient step of each agent and project the run"
    )
    args = p.parse_args(argv)
    command = "python benches/offline_rl.py " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        if args.probe:
            offline._quiet()
            import structlog  # the probe refits built agents, which d3rlpy warns about

            structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
            probe(offline.config_from_args(args))
            return 0
        return offline.benchmark_main(args, command.strip())
    except ConfigError as e:
        print(f"offline_rl.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
