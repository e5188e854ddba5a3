"""The exporter under abuse, all on 127.0.0.1, against a real ``neorl-industrial serve`` process.

While wrk holds 1,000 connections scraping /metrics and other clients trickle headers (slowloris),
send 1 MiB headers, malformed requests and unknown paths and methods, a prober in a process of its
own opens a fresh connection for /health/live or /health/ready every 20 ms: every probe must be
answered 200, with a p99 latency under 100 ms. A second server with basic auth takes 10,000
wrong-password attempts under the same watch. Memory, threads and file descriptors of the server
are read from /proc before, during and after. ``benches/bench_exporter_abuse.py`` runs the same
attacks for longer and prints the figures.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from abuse import (
    Prober,
    Tally,
    basic,
    http_get,
    huge_headers,
    malformed,
    proc_sample,
    run_wrk,
    slowloris,
    unknown_paths,
    wrk_available,
    wrong_passwords,
)

P99_LIMIT_MS = 100.0
PROBE_INTERVAL = 0.02

pytestmark = pytest.mark.skipif(
    not wrk_available(), reason="wrk not installed (scripts/test.sh installs Debian's wrk package)"
)


class Server:
    """``neorl-industrial serve`` on a free port, stepping a fleet at 10 batches per second."""

    def __init__(self, *extra: str) -> None:
        cmd = [sys.executable, "-m", "neorl_industrial.cli", "serve", "--port", "0", "--num-envs", "256",
               "--rate", "10", *extra]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"on https?://127\.0\.0\.1:(\d+)/", line)
        assert m, line + self.proc.stderr.read()  # type: ignore[union-attr]
        self.port = int(m.group(1))
        self.pid = self.proc.pid

    def stop(self) -> tuple[int, str]:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=60)
        return self.proc.returncode, out


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    if s.proc.poll() is None:
        s.proc.kill()
        s.proc.wait()


def settle(pid: int, baseline_threads: int, seconds: float = 20) -> int:
    """Threads of ``pid`` once they are back to ``baseline_threads`` (or after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        n = proc_sample(pid).threads
        if n <= baseline_threads:
            return n
        time.sleep(0.2)
    return proc_sample(pid).threads


def test_health_probes_hold_while_every_attack_runs_at_once(server: Server) -> None:
    port = server.port
    assert http_get(port, "/health/live") == 200
    before = proc_sample(server.pid)
    prober = Prober(port, seconds=14, interval=PROBE_INTERVAL)
    stop = threading.Event()
    tallies = [Tally(n) for n in ("slowloris", "huge_headers", "malformed", "unknown_paths")]
    attackers = [
        threading.Thread(target=slowloris, args=(port, stop, tallies[0], 300, 0.5)),
        threading.Thread(target=huge_headers, args=(port, stop, tallies[1])),
        threading.Thread(target=malformed, args=(port, stop, tallies[2])),
        threading.Thread(target=unknown_paths, args=(port, stop, tallies[3])),
    ]
    for t in attackers:
        t.start()
    peak = []
    try:
        wrk = run_wrk(f"http://127.0.0.1:{port}/metrics", connections=1000, seconds=10)
        peak.append(proc_sample(server.pid))
    finally:
        stop.set()
        for t in attackers:
            t.join(timeout=30)
    probes = prober.result()
    detail = (
        f"{probes.summary()}; wrk {wrk.requests} requests, {wrk.requests_per_second:.0f}/s; "
        + "; ".join(map(str, tallies))
    )
    # Every probe answered, and fast.
    assert probes.count >= 300, detail
    assert probes.ok == probes.count, detail
    assert probes.pct(99) < P99_LIMIT_MS, detail
    # The attacks really ran and were refused as they should be.
    assert wrk.requests > 1000, wrk.output
    assert tallies[0].replies["opened"] >= 300, tallies[0]
    assert tallies[1].attempts > 5 and set(tallies[1].replies) <= {
        "431",
        "503",
        "closed",
        "ConnectionResetError",
    }
    assert tallies[2].attempts > 50 and "200" not in tallies[2].replies, tallies[2]
    # At the connection cap the server evicts its longest-idle connection: a client between two
    # requests sees it closed, or reset when its next request was already on the way.
    assert tallies[3].attempts > 50 and set(tallies[3].replies) - {"closed", "ConnectionResetError"} <= {
        "200",
        "404",
        "405",
        "400",
        "503",
    }
    # Bounded: memory, threads, descriptors.
    assert peak[0].rss_bytes - before.rss_bytes < 64 << 20, (before, peak)
    assert settle(server.pid, before.threads) <= before.threads, (before, proc_sample(server.pid))
    deadline = time.monotonic() + 20
    while proc_sample(server.pid).fds > before.fds + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc_sample(server.pid).fds <= before.fds + 2, (before, proc_sample(server.pid))
    assert http_get(port, "/metrics") == 200
    code, out = server.stop()
    assert code == 0 and "env steps on SIGTERM;" in out


def test_ten_thousand_wrong_passwords_let_no_one_in_and_probes_hold(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"right-password", bcrypt.gensalt(rounds=10)).decode()
    cfg = tmp_path / "web.yml"
    cfg.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    server = Server("--web-config", str(cfg))
    try:
        good = basic("prometheus", "right-password")
        assert http_get(server.port, "/health/live", {"Authorization": good}) == 200
        before = proc_sample(server.pid)
        prober = Prober(server.port, seconds=10, interval=PROBE_INTERVAL, auth=good)
        tally = Tally("wrong_passwords")
        t0 = time.monotonic()
        wrong_passwords(server.port, attempts=10_000, concurrency=50, tally=tally)
        elapsed = time.monotonic() - t0
        during = proc_sample(server.pid)
        probes = prober.result()
        detail = f"{probes.summary()}; {tally} in {elapsed:.1f}s"
        assert tally.attempts == 10_000 and set(tally.replies) <= {"401", "429"}, detail
        assert probes.ok == probes.count and probes.count >= 200, detail
        assert probes.pct(99) < P99_LIMIT_MS, detail
        # bcrypt runs on a bounded pool: a few threads at most, and they go away.
        assert during.threads <= before.threads + 2, (before, during)
        assert during.rss_bytes - before.rss_bytes < 64 << 20, (before, during)
        assert http_get(server.port, "/metrics", {"Authorization": good}) == 200
        assert http_get(server.port, "/metrics", {"Authorization": basic("prometheus", "guess-1")}) == 401
    finally:
        server.stop()
