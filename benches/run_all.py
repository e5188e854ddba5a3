"""Runs every benchmark and prints one combined markdown table for the README.

Run: ``python benches/run_all.py [--quick] [--skip-pcgym] [--json results.json]``.
The ratio column is how many times faster ours is than the peer (steps/s over steps/s, or
microseconds over microseconds); "(info)" rows are context, without a target.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import bench_chemical_reactor
import bench_industrial_benchmark
from _common import Row, fmt_num, fmt_ratio, machine_info, print_rows, print_table


def _guarded(name: str, fn: Callable[[], list[Row]]) -> list[Row]:
    """Runs one benchmark script; a failure becomes a row instead of a crash."""
    try:
        return fn()
    except Exception as exc:
        traceback.print_exc()
        return [Row(name, None, None, "", "", note=f"failed: {type(exc).__name__}: {exc}")]


def markdown_table(rows: list[Row]) -> None:
    table = []
    for r in rows:
        ours = f"{fmt_num(r.ours)} {r.unit}" if r.ours is not None else "n/a"
        peer = f"{fmt_num(r.peer)} {r.unit} ({r.peer_name})" if r.peer is not None else f"n/a ({r.peer_name})"
        target = f"{r.target} ({r.verdict})" if r.target and r.verdict else r.target
        table.append([r.benchmark.strip(), ours, peer, fmt_ratio(r.ratio), target])
    print_table(["benchmark", "ours", "peer", "ratio", "target"], table, markdown=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a short run of everything")
    p.add_argument("--num-envs", type=int, default=1024, help="vector env batch size (default 1024)")
    p.add_argument("--skip-pcgym", action="store_true", help="do not import or time pc-gym (slow import)")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    rows: list[Row] = []
    rows += _guarded(
        "ChemicalReactor-v0 benchmarks",
        lambda: bench_chemical_reactor.run(args.quick, args.num_envs, args.skip_pcgym),
    )
    rows += _guarded(
        "IndustrialBenchmark-v0 benchmarks",
        lambda: bench_industrial_benchmark.run(args.quick, args.num_envs),
    )
    elapsed = time.perf_counter() - t0

    print_rows(rows, "All benchmarks")
    info = machine_info()
    print()
    print("Markdown for the README")
    print("=======================")
    print()
    markdown_table(rows)
    print()
    print(
        f"Machine: {info['nproc']} cores, {info['cpu']}; Python {info['python']}, NumPy {info['numpy']}, "
        f"Gymnasium {info.get('gymnasium', '?')}, neorl-industrial {info['neorl_industrial']}. "
        f"Run: `python benches/run_all.py{' --quick' if args.quick else ''}` ({elapsed:.0f} s). "
        "Ratio = how many times faster ours is; medians of interleaved repeats."
    )
    notes = [f"- {r.benchmark.strip()}: {r.note}" for r in rows if r.note]
    if notes:
        print()
        print("\n".join(notes))

    if args.json:
        payload = {
            "machine": info,
            "quick": args.quick,
            "seconds": elapsed,
            "rows": [
                {
                    "benchmark": r.benchmark.strip(),
                    "ours": r.ours,
                    "peer": r.peer,
                    "unit": r.unit,
                    "peer_name": r.peer_name,
                    "ratio": r.ratio,
                    "target": r.target,
                    "verdict": r.verdict,
                    "note": r.note,
                }
                for r in rows
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"\n(results written to {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
