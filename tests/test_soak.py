"""A short soak (``benches/soak.py --seconds 25``): a 1024-env fleet stepping at full speed with
its exporter scraped every second. Counters must be exact, every scrape answered, descriptors and
threads flat, memory not growing. Nothing here depends on the machine's speed: the fleet steps until
it has been scraped 15 times, and a scrape fails only after 60 s without an answer (a hang). The
scrape rate and the 10-minute run's figures are in RELIABILITY.md (``python benches/soak.py
--minutes 10``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parent.parent / "benches" / "soak.py"


def test_a_short_soak_keeps_counters_exact_and_resources_flat() -> None:
    p = subprocess.run(
        [sys.executable, str(SOAK), "--seconds", "25", "--warmup", "5", "--min-scrapes", "15",
         "--scrape-timeout", "60", "--json"],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["counters_exact"], r
    assert r["env_steps_total_scraped"] == r["env_steps_taken"] > 0, r
    assert r["audit_written"] == r["safety_events"] == r["audit_lines"] and r["audit_dropped"] == 0, r
    # Scraped at least 15 times while the fleet stepped, and every scrape answered.
    assert r["scrapes"] >= 15 and r["scrapes_failed"] == 0, r
    assert r["fds_max"] - r["fds_min"] <= 2, r
    assert r["threads_max"] - r["threads_min"] <= 1, r
    # Twenty seconds are too short for a slope worth the name; growth must stay small.
    assert r["rss_mib_max"] - r["rss_mib_first"] < 16, r
