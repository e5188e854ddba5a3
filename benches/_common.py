"""Shared helpers of the benchmark scripts: timing, tables, machine description."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CSTR_REFERENCE = REPO / "tests" / "data" / "chemical_reactor_cstr.json"


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Calls ``fn`` ``warmup`` times untimed, then ``repeats`` times; returns (median seconds, all)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


@dataclass
class Row:
    """One line of a results table: ours against a peer, higher-is-better or lower-is-better."""

    benchmark: str
    ours: float | None
    peer: float | None
    unit: str
    peer_name: str
    target: str = ""
    higher_is_better: bool = True
    target_ratio: float | None = None
    note: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.peer is None or self.ours <= 0 or self.peer <= 0:
            return None
        return self.ours / self.peer if self.higher_is_better else self.peer / self.ours

    @property
    def verdict(self) -> str:
        if self.target_ratio is None or self.ratio is None:
            return ""
        return "met" if self.ratio >= self.target_ratio else "MISSED"


def fmt_num(x: float | None) -> str:
    if x is None:
        return "n/a"
    ax = abs(x)
    if ax >= 1e6:
        return f"{x / 1e6:.2f} M"
    if ax >= 1e4:
        return f"{x / 1e3:.1f} k"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "n/a"
    if r >= 100:
        return f"{r:,.0f}x"
    return f"{r:.1f}x"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool = False) -> None:
    """Prints an aligned text table (or a markdown one)."""
    widths = [
        max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    if markdown:
        print("| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for r in rows:
            print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        return
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


def print_rows(rows: Sequence[Row], title: str = "", markdown: bool = False) -> None:
    """Prints benchmark rows with ours, the peer, the ratio (ours over peer, better-is-bigger) and the target."""
    if title:
        print()
        print(title)
        print("=" * len(title))
    table = []
    for r in rows:
        ours = f"{fmt_num(r.ours)} {r.unit}" if r.ours is not None else "n/a"
        peer = f"{fmt_num(r.peer)} {r.unit} ({r.peer_name})" if r.peer is not None else f"n/a ({r.peer_name})"
        target = f"{r.target} {r.verdict}".strip()
        table.append([r.benchmark, ours, peer, fmt_ratio(r.ratio), target])
    print_table(["benchmark", "ours", "peer", "ratio", "target"], table, markdown=markdown)
    notes = [f"- {r.benchmark}: {r.note}" for r in rows if r.note]
    if notes:
        print()
        print("\n".join(notes))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, str]:
    import numpy as np

    info = {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    try:
        import neorl_industrial as ni

        info["neorl_industrial"] = ni.__version__
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        info["neorl_industrial"] = f"import failed: {exc}"
    try:
        import gymnasium

        info["gymnasium"] = gymnasium.__version__
    except Exception:  # noqa: BLE001
        pass
    return info


def print_machine() -> None:
    info = machine_info()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))


def import_ours(retries: int = 3, wait_s: float = 20.0):  # noqa: ANN201 - returns the module
    """Imports neorl_industrial, retrying a few times (the package may be mid-rebuild)."""
    last: Exception | None = None
    for attempt in range(retries):
        try:
            import neorl_industrial as ni

            return ni
        except Exception as exc:  # noqa: BLE001
            last = exc
            if attempt + 1 < retries:
                print(f"[import neorl_industrial failed ({exc}); retrying in {wait_s:.0f} s]", flush=True)
                time.sleep(wait_s)
    raise RuntimeError(f"cannot import neorl_industrial: {last}")
