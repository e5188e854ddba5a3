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
from typing import Any

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
    target_max_ours: float | None = None
    note: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.peer is None or self.ours <= 0 or self.peer <= 0:
            return None
        return self.ours / self.peer if self.higher_is_better else self.peer / self.ours

    @property
    def verdict(self) -> str:
        if self.target_max_ours is not None and self.ours is not None:
            return "met" if self.ours <= self.target_max_ours else "MISSED"
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
    print_table(["benchmark", "ours", "peer", "ratio (ours vs peer)", "target"], table, markdown=markdown)
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
    except Exception as exc:
        info["neorl_industrial"] = f"import failed: {exc}"
    try:
        import gymnasium

        info["gymnasium"] = gymnasium.__version__
    except Exception:
        pass
    return info


def print_machine() -> None:
    info = machine_info()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))


def import_ours(retries: int = 4, wait_s: float = 30.0) -> Any:
    """Imports neorl_industrial, retrying a few times (the package may be mid-rebuild)."""
    last: Exception | None = None
    for attempt in range(retries):
        try:
            import neorl_industrial as ni

            return ni
        except Exception as exc:
            last = exc
            if attempt + 1 < retries:
                print(f"[import neorl_industrial failed ({exc}); retrying in {wait_s:.0f} s]", flush=True)
                time.sleep(wait_s)
    raise RuntimeError(f"cannot import neorl_industrial: {last}")


def time_env_steps(
    step: Callable[[Any], tuple[Any, ...]],
    reset: Callable[[], object],
    actions: Sequence[Any],
    n_steps: int,
) -> float:
    """Seconds per ``step`` call over ``n_steps`` steps, cycling ``actions``; resets are not timed.

    The env is reset first and whenever a step reports ``terminated`` or ``truncated``.
    """
    reset()
    total = 0.0
    done = 0
    i = 0
    na = len(actions)
    while done < n_steps:
        ended = False
        k = 0
        budget = n_steps - done
        t0 = time.perf_counter()
        while k < budget:
            out = step(actions[i])
            i += 1
            if i == na:
                i = 0
            k += 1
            if out[2] or out[3]:
                ended = True
                break
        total += time.perf_counter() - t0
        done += k
        if ended:
            reset()
    return total / n_steps


def median_seconds_per_step(
    step: Callable[[Any], tuple[Any, ...]],
    reset: Callable[[], object],
    actions: Sequence[Any],
    n_steps: int,
    repeats: int,
    warmup_steps: int = 200,
) -> float:
    """Median over ``repeats`` runs of :func:`time_env_steps`, after ``warmup_steps`` untimed steps."""
    if warmup_steps:
        time_env_steps(step, reset, actions, warmup_steps)
    return statistics.median(time_env_steps(step, reset, actions, n_steps) for _ in range(repeats))


def vector_steps_per_second(
    step: Callable[[Any], object],
    actions: Sequence[Any],
    num_envs: int,
    batch_steps: int,
    repeats: int,
    warmup_steps: int = 2,
) -> float:
    """Env-steps per second (``num_envs`` x batch steps/s), median over ``repeats`` runs."""
    na = len(actions)

    def run(n: int) -> None:
        for k in range(n):
            step(actions[k % na])

    run(warmup_steps)
    med, _ = median_time(lambda: run(batch_steps), repeats, warmup=0)
    return num_envs * batch_steps / med


def interleaved_medians(
    fns: dict[str, Callable[[], float]], repeats: int, warmup_rounds: int = 1
) -> dict[str, float]:
    """Runs the measurements round-robin (A B C A B C ...) and returns each one's median.

    Interleaving puts ours and the peers under the same background load (this machine is shared).
    """
    for _ in range(warmup_rounds):
        for f in fns.values():
            f()
    values: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            values[k].append(f())
    return {k: statistics.median(v) for k, v in values.items()}


def vector_rate_fn(
    step: Callable[[Any], object], actions: Sequence[Any], num_envs: int, batch_steps: int
) -> Callable[[], float]:
    """A measurement: one call steps ``batch_steps`` times and returns env-steps per second."""
    na = len(actions)
    state = {"k": 0}

    def measure() -> float:
        k0 = state["k"]
        t0 = time.perf_counter()
        for k in range(k0, k0 + batch_steps):
            step(actions[k % na])
        dt = time.perf_counter() - t0
        state["k"] = k0 + batch_steps
        return num_envs * batch_steps / dt

    return measure


def single_us_fn(
    step: Callable[[Any], tuple[Any, ...]], reset: Callable[[], object], actions: Sequence[Any], n_steps: int
) -> Callable[[], float]:
    """A measurement: one call times ``n_steps`` single-env steps (resets untimed), returns us/step."""

    def measure() -> float:
        return 1e6 * time_env_steps(step, reset, actions, n_steps)

    return measure
