"""Runs every benchmark and prints one combined markdown table for the README.

Run: ``python benches/run_all.py [--quick] [--skip-pcgym] [--runs N] [--json results.json]``.
The ratio column is how many times faster ours is than the peer (steps/s over steps/s, or
microseconds over microseconds); "(info)" rows are context, without a target.

``--runs N`` runs the whole suite N times in a row and ends with a summary over the runs: each
benchmark's range of figures, its median ratio and in how many runs it met its target (on a
machine whose speed drifts by the minute one run is one sample).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
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


def _span(values: list[float], fmt: Callable[[float], str]) -> str:
    """``a-b`` over the values in the given format (``1.67-2.10 M``: a shared unit prefix once; one
    value or equal ends: the value)."""
    lo, hi = fmt(min(values)), fmt(max(values))
    if lo == hi:
        return lo
    lo_num, _, lo_suffix = lo.partition(" ")
    hi_num, _, hi_suffix = hi.partition(" ")
    if lo_suffix and lo_suffix == hi_suffix:
        return f"{lo_num}-{hi_num} {lo_suffix}"
    return f"{lo}-{hi}"


def _ratio_span(ratios: list[float]) -> str:
    """The range of ratios as printed bounds: the low end rounded down and the high end up, so that
    a 499.5x run never shows as 500x next to a ">= 500x" target it missed."""

    def bound(x: float, up: bool) -> float:
        scale = 1 if x >= 100 else 10  # the digits fmt_ratio prints
        v = round(x * scale, 9)  # 37.6 stays 37.6, not 37.5 or 37.7 from binary fuzz
        return (math.ceil(v) if up else math.floor(v)) / scale

    return _span([bound(min(ratios), False), bound(max(ratios), True)], fmt_ratio)


def summarize(runs: list[list[Row]]) -> list[list[str]]:
    """One line per benchmark over several runs of the suite: ours, the peer and the ratio as ranges,
    the median ratio, and in how many runs the target was met (benchmarks matched by name)."""
    by_name: dict[str, list[Row]] = {}
    for rows in runs:
        for r in rows:
            by_name.setdefault(r.benchmark.strip(), []).append(r)
    lines = []
    for name, rs in by_name.items():
        ours = [r.ours for r in rs if r.ours is not None]
        peer = [r.peer for r in rs if r.peer is not None]
        ratios = [r.ratio for r in rs if r.ratio is not None]
        unit = rs[0].unit
        target = rs[0].target
        judged = [r.verdict for r in rs if r.verdict]
        if target and judged:
            target = f"{target}: met in {judged.count('met')} of {len(judged)} runs"
        elif target:
            target = f"{target}: not measured"
        lines.append(
            [
                name,
                f"{_span(ours, fmt_num)} {unit}" if ours else "n/a",
                f"{_span(peer, fmt_num)} {unit}" if peer else "n/a",
                fmt_ratio(statistics.median(ratios)) if ratios else "n/a",
                _ratio_span(ratios) if ratios else "n/a",
                target,
            ]
        )
    return lines


def run_suite(args: argparse.Namespace) -> list[Row]:
    """Every benchmark once; a failing script becomes a row."""
    rows: list[Row] = []
    rows += _guarded(
        "ChemicalReactor-v0 benchmarks",
        lambda: bench_chemical_reactor.run(args.quick, args.num_envs, args.skip_pcgym),
    )
    rows += _guarded(
        "IndustrialBenchmark-v0 benchmarks",
        lambda: bench_industrial_benchmark.run(args.quick, args.num_envs),
    )
    return rows


def _row_json(r: Row) -> dict[str, object]:
    return {
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a short run of everything")
    p.add_argument("--num-envs", type=int, default=1024, help="vector env batch size (default 1024)")
    p.add_argument("--skip-pcgym", action="store_true", help="do not import or time pc-gym (slow import)")
    p.add_argument(
        "--runs", type=int, default=1, help="run the suite this many times and summarize (default 1)"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error(f"--runs must be at least 1, got {args.runs}")

    t0 = time.perf_counter()
    runs: list[list[Row]] = []
    for i in range(args.runs):
        if args.runs > 1:
            print(f"\n=== run {i + 1} of {args.runs} ===", flush=True)
        runs.append(run_suite(args))
        if args.runs > 1:
            print()
            markdown_table(runs[-1])
    rows = runs[-1]
    elapsed = time.perf_counter() - t0

    print_rows(rows, "All benchmarks" if args.runs == 1 else "All benchmarks (last run)")
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
        f"Run: `python benches/run_all.py{' --quick' if args.quick else ''}"
        f"{f' --runs {args.runs}' if args.runs > 1 else ''}` ({elapsed:.0f} s). "
        "Ratio = how many times faster ours is; medians of interleaved repeats."
    )
    notes = [f"- {r.benchmark.strip()}: {r.note}" for r in rows if r.note]
    if notes:
        print()
        print("\n".join(notes))
    if args.runs > 1:
        print()
        print(f"Summary over {args.runs} runs")
        print("=" * len(f"Summary over {args.runs} runs"))
        print()
        print_table(
            ["benchmark", "ours", "peer", "median ratio", "ratio range", "target"],
            summarize(runs),
            markdown=True,
        )

    if args.json:
        payload = {
            "machine": info,
            "quick": args.quick,
            "seconds": elapsed,
            "rows": [_row_json(r) for r in rows],
            "runs": [[_row_json(r) for r in run] for run in runs],
        }
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"\n(results written to {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
