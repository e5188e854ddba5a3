"""Soak: a 1024-env fleet stepping with its exporter scraped every second; is anything growing?

    python benches/soak.py --minutes 10            # the figure in RELIABILITY.md
    python benches/soak.py --seconds 25 --min-scrapes 15 --scrape-timeout 60 --json
                                                   # what tests/test_soak.py runs

A child process steps ``--num-envs`` ChemicalReactor envs as fast as it can (the PID baseline
on noisy starts, an audit trail, the exporter up); this process scrapes /metrics and /health/ready every second and
reads the child's resident memory, open descriptors and threads from /proc. After ``--seconds`` (and
at least ``--min-scrapes`` scrapes, however long they take) it tells the child to stop stepping; the
child reports what it did, and one last scrape must show exactly the steps it took.

Prints: the RSS slope after warm-up (least squares, MiB per minute), first/last/max RSS, the range
of open descriptors and threads, scrapes made and failed, and the counters compared.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHILD = r"""
import json, sys, threading
import numpy as np
import neorl_industrial as ni
from neorl_industrial.exporter import start_http_server
from neorl_industrial.policies import make_policy
from neorl_industrial.safety import AuditTrail

n, audit = int(sys.argv[1]), sys.argv[2]
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
trail = AuditTrail(audit)
envs = ni.make_vec("ChemicalReactor-v0", num_envs=n, autoreset_mode="same_step", audit_log=trail,
                   x0_spread=0.1, noise=0.01)
policy = make_policy("pid", "ChemicalReactor-v0", n, 1, seed=0)
server = start_http_server(0)
print(server.port, flush=True)
obs, _ = envs.reset(seed=0)
calls = 0
while not stop.is_set():  # until the parent's "stop" line
    obs, _, term, trunc, _ = envs.step(policy(obs))
    if (term | trunc).any():
        policy.episode_end(term | trunc)
    calls += 1
trail.flush()
print(json.dumps({"batch_steps": calls, "env_steps_taken": calls * n, "env_steps_counted": envs.safety.steps,
                  "safety_events": envs.safety.events, "audit_written": trail.written,
                  "audit_dropped": trail.dropped}), flush=True)
sys.stdin.read()  # serve until the parent has made its last scrape
server.stop()
"""


def proc(pid: int) -> tuple[int, int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return rss, len(list(Path(f"/proc/{pid}/fd").iterdir())), threads


def scrape(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def env_steps_total(text: str) -> float:
    m = re.search(r'^env_steps_total\{env="ChemicalReactor-v0"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else float("nan")


def slope_per_minute(ts: list[float], ys: list[float]) -> float:
    if len(ts) < 2:
        return float("nan")
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    var = sum((t - mt) ** 2 for t in ts)
    return 60 * sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var if var else float("nan")


def soak(
    seconds: float, num_envs: int, warmup: float, min_scrapes: int = 0, scrape_timeout: float = 5.0
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        audit = Path(tmp) / "audit.jsonl"
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(num_envs), str(audit)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert child.stdout is not None and child.stdin is not None
        port = int(child.stdout.readline())
        base = f"http://127.0.0.1:{port}"
        t0 = time.monotonic()
        samples: list[tuple[float, int, int, int]] = []
        scrapes = failed = 0
        last_counter = 0.0
        while child.poll() is None and (time.monotonic() - t0 < seconds or scrapes + failed < min_scrapes):
            tick = time.monotonic()
            try:
                text = scrape(base + "/metrics", scrape_timeout)
                scrape(base + "/health/ready", scrape_timeout)
                scrapes += 1
                value = env_steps_total(text)
                if value < last_counter:
                    raise AssertionError(f"env_steps_total went down: {last_counter} -> {value}")
                last_counter = value
            except OSError:
                failed += 1
            samples.append((tick - t0, *proc(child.pid)))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        child.stdin.write("stop\n")
        child.stdin.flush()
        report = json.loads(child.stdout.readline())
        final = env_steps_total(scrape(base + "/metrics", scrape_timeout))
        audit_lines = sum(1 for _ in audit.open())
        child.stdin.close()
        child.wait(timeout=60)
    steady = [s for s in samples if s[0] >= warmup] or samples
    mib = 1 << 20
    return {
        "seconds": seconds,
        "num_envs": num_envs,
        **report,
        "env_steps_total_scraped": final,
        "counters_exact": final == report["env_steps_taken"] == report["env_steps_counted"]
        and report["audit_written"] == report["safety_events"] == audit_lines
        and report["audit_dropped"] == 0,
        "audit_lines": audit_lines,
        "scrapes": scrapes,
        "scrapes_failed": failed,
        "rss_mib_first": steady[0][1] / mib,
        "rss_mib_last": steady[-1][1] / mib,
        "rss_mib_max": max(s[1] for s in steady) / mib,
        "rss_slope_mib_per_minute": slope_per_minute([s[0] for s in steady], [s[1] / mib for s in steady]),
        "fds_min": min(s[2] for s in steady),
        "fds_max": max(s[2] for s in steady),
        "threads_min": min(s[3] for s in steady),
        "threads_max": max(s[3] for s in steady),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=None)
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--warmup", type=float, default=None, help="seconds left out of the slope (default 10%%)")
    p.add_argument("--min-scrapes", type=int, default=0, help="scrape at least this often, however long it takes")
    p.add_argument("--scrape-timeout", type=float, default=5.0, help="seconds before a scrape counts as failed")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    seconds = a.minutes * 60 if a.minutes is not None else a.seconds
    warmup = a.warmup if a.warmup is not None else seconds / 10
    r = soak(seconds, a.num_envs, warmup, a.min_scrapes, a.scrape_timeout)
    if a.json:
        print(json.dumps(r, indent=2))
        return
    print(f"soak: {r['num_envs']} envs for {seconds:.0f} s, scraped every second")
    print(
        f"  batch steps {r['batch_steps']:,}, env steps taken {r['env_steps_taken']:,}, counted in Python "
        f"{r['env_steps_counted']:,}, env_steps_total scraped {r['env_steps_total_scraped']:,.0f}"
    )
    print(
        f"  safety events {r['safety_events']:,}, audit written {r['audit_written']:,}, lines "
        f"{r['audit_lines']:,}, dropped {r['audit_dropped']}; counters exact: {r['counters_exact']}"
    )
    print(f"  scrapes {r['scrapes']} ({r['scrapes_failed']} failed)")
    print(
        f"  RSS after warm-up: first {r['rss_mib_first']:.1f} MiB, last {r['rss_mib_last']:.1f} MiB, max "
        f"{r['rss_mib_max']:.1f} MiB, slope {r['rss_slope_mib_per_minute']:+.3f} MiB/min"
    )
    print(f"  open fds {r['fds_min']}..{r['fds_max']}, threads {r['threads_min']}..{r['threads_max']}")


if __name__ == "__main__":
    main()
