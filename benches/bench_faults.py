"""kill -9 against a process writing an audit trail, many times (a benchmark: it prints figures;
``tests/test_faults.py`` runs a few kills at counted ticks after ``flush()``, timing nothing: the
one-second promise is measured here only).

    python benches/bench_faults.py [--kills 100] [--num-envs 1024]

Each run steps a fleet with random actions (many safety events, written in large batches) and
records a numbered ``tick`` between steps; it is killed with SIGKILL after 1.1 to 3 s. Counted over
all kills: torn (partial) lines, and events handed to the trail more than one second before the
kill that are missing from the file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _crash import kill_many


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=100)
    p.add_argument("--num-envs", type=int, default=1024)
    a = p.parse_args()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        out = kill_many(Path(tmp), a.kills, a.num_envs)
    held = sum(o.held for o in out)
    print(f"kill -9: {len(out)} runs of {a.num_envs} envs in {time.monotonic() - t0:.0f} s")
    print(f"  runs where everything held: {held}/{len(out)}")
    print(
        f"  torn last lines: {sum(o.torn for o in out)}; broken lines before the last: "
        f"{sum(o.broken_inside for o in out)}; loss lines: {sum(o.lost_in_file for o in out)}"
    )
    print(
        f"  lines in the files: {sum(o.lines for o in out):,} ({sum(o.file_bytes for o in out) / 1e6:,.0f} MB)"
    )
    print(
        f"  safety events older than 1 s at the kill: {sum(o.env_events_promised for o in out):,}, in the files "
        f"{sum(o.env_events_in_file for o in out):,}; missing "
        f"{sum(max(0, o.env_events_promised - o.env_events_in_file) for o in out)}"
    )
    print(
        f"  ticks older than 1 s at the kill: {sum(o.ticks_promised for o in out):,}, missing "
        f"{sum(max(0, o.ticks_promised - o.ticks_in_file) for o in out)}"
    )


if __name__ == "__main__":
    main()
