"""The exporter under abuse: scrapes/s and latency percentiles under wrk, health-probe latency during
each attack, and the server's memory, threads and descriptors (a benchmark: it prints, it asserts
nothing; ``tests/test_reliability_exporter.py`` holds the pass/fail version, which asserts no
latency: the probe latencies under attack are measured here only).

    python benches/bench_exporter_abuse.py [--seconds 15]

Phases, each against a fresh ``neorl-industrial serve`` (256 envs at 10 batch steps/s) on
127.0.0.1, with a prober in its own process opening a fresh connection for /health/live or
/health/ready every 20 ms:

1. wrk -c64 on /metrics (the load a scraper fleet could make)
2. wrk -c1000 on /metrics
3. slowloris: 1,000 connections trickling a header line every 0.5 s
4. 1 MiB request headers, back to back
5. malformed request lines and heads
6. unknown paths and methods
7. all of 3-6 at once, with wrk -c1000
8. 10,000 wrong passwords (50 at a time) against a server with basic auth (bcrypt cost 10)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import _abuse as abuse


def serve(*extra: str) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, "-m", "neorl_industrial.cli", "serve", "--port", "0", "--num-envs", "256",
           "--rate", "10", *extra]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    m = re.search(r":(\d+)/", proc.stdout.readline())
    assert m, "serve did not start"
    time.sleep(0.5)
    return proc, int(m.group(1))


def phase(
    name: str,
    seconds: float,
    attackers: list[Callable[..., None]],
    wrk_connections: int | None = None,
    auth: str | None = None,
    extra: tuple[str, ...] = (),
    sequential: Callable[[int, abuse.Tally], None] | None = None,
) -> None:
    proc, port = serve(*extra)
    before = abuse.proc_sample(proc.pid)
    prober = abuse.Prober(port, seconds + 2, auth=auth)
    time.sleep(1)
    stop = threading.Event()
    tallies = [abuse.Tally(a.__name__) for a in attackers]
    threads = [
        threading.Thread(target=a, args=(port, stop, t)) for a, t in zip(attackers, tallies, strict=True)
    ]
    for t in threads:
        t.start()
    peak = [before]

    def watch() -> None:
        while not stop.is_set():
            peak.append(abuse.proc_sample(proc.pid))
            stop.wait(0.5)

    watcher = threading.Thread(target=watch)
    watcher.start()
    wrk = None
    t0 = time.monotonic()
    if sequential is not None:
        tally = abuse.Tally(name)
        sequential(port, tally)
        tallies.append(tally)
    elif wrk_connections:
        wrk = abuse.run_wrk(f"http://127.0.0.1:{port}/metrics", wrk_connections, seconds)
    else:
        time.sleep(seconds)
    elapsed = time.monotonic() - t0
    stop.set()
    for t in [*threads, watcher]:
        t.join()
    probes = prober.result()
    time.sleep(12)  # idle blocking-pool threads retire after 10 s
    after = abuse.proc_sample(proc.pid)
    proc.terminate()
    proc.wait(timeout=60)
    mib = 1 << 20
    print(f"\n## {name} ({elapsed:.1f} s)")
    if wrk is not None:
        lat = " ".join(f"p{q} {v:.1f} ms" for q, v in wrk.latency_ms.items())
        print(
            f"  wrk: {wrk.requests:,} requests, {wrk.requests_per_second:,.0f}/s; latency {lat}; "
            f"non-2xx {wrk.non_2xx:,}; socket errors {wrk.socket_errors}"
        )
    for t in tallies:
        print(f"  {t}")
    print(f"  probes: {probes.summary()}")
    print(
        f"  server: RSS {before.rss_bytes / mib:.1f} -> peak {max(p.rss_bytes for p in peak) / mib:.1f} -> "
        f"{after.rss_bytes / mib:.1f} MiB; threads {before.threads} -> peak {max(p.threads for p in peak)} "
        f"-> {after.threads}; fds {before.fds} -> peak {max(p.fds for p in peak)} -> {after.fds}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=15.0)
    a = p.parse_args()
    s = a.seconds
    if not abuse.wrk_available():
        sys.exit("wrk is not installed (apt-get install wrk)")

    def slow(port: int, stop: threading.Event, t: abuse.Tally) -> None:
        abuse.slowloris(port, stop, t, sockets=1000, trickle=0.5)

    slow.__name__ = "slowloris"
    phase("wrk -c64 /metrics", s, [], wrk_connections=64)
    phase("wrk -c1000 /metrics", s, [], wrk_connections=1000)
    phase("slowloris x1000", s, [slow])
    phase("1 MiB headers", s, [abuse.huge_headers])
    phase("malformed requests", s, [abuse.malformed])
    phase("unknown paths and methods", s, [abuse.unknown_paths])
    phase("everything at once + wrk -c1000", s, [slow, abuse.huge_headers, abuse.malformed, abuse.unknown_paths],
          wrk_connections=1000)  # fmt: skip
    import bcrypt

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "web.yml"
        hashed = bcrypt.hashpw(b"right-password", bcrypt.gensalt(rounds=10)).decode()
        cfg.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
        good = abuse.basic("prometheus", "right-password")
        phase(
            "10,000 wrong passwords",
            s,
            [],
            auth=good,
            extra=("--web-config", str(cfg)),
            sequential=lambda port, t: abuse.wrong_passwords(port, 10_000, 50, t),
        )


if __name__ == "__main__":
    main()
