"""The exporter under abuse, all on 127.0.0.1, against a real ``neorl-industrial serve`` process.

While wrk holds 1,000 connections scraping /metrics and other clients trickle headers (slowloris),
send 1 MiB headers, malformed requests and unknown paths and methods, a prober in a process of its
own opens a fresh connection for /health/live or /health/ready every 20 ms: every probe must be
answered 200. A second server with basic auth takes 10,000 wrong-password attempts under the same
watch. Memory, threads and file descriptors of the server are read from /proc before, during and
after. Nothing here depends on the machine's speed: waits are bounded only against a hang, and the
probe latencies are measured by ``python benches/bench_exporter_abuse.py``, which runs the same
attacks (from ``benches/_abuse.py``) for longer and prints the figures.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

BENCHES = Path(__file__).resolve().parent.parent / "benches"
PROBE_INTERVAL = 0.02
# A probe, a wrong password or a settling server taking this long is hung, not slow.
HANG_SECONDS = 60.0


@pytest.fixture
def abuse(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCHES))
    import _abuse

    if not _abuse.wrk_available():
        pytest.fail(f"wrk is not installed at {_abuse.WRK}: scripts/test.sh installs it (Debian package wrk)")
    return _abuse


def wait_for(what: str, done: Callable[[], bool], state: Callable[[], object] = lambda: "") -> None:
    """Polls ``done`` until it holds; fails only after :data:`HANG_SECONDS`, showing ``state()``."""
    deadline = time.monotonic() + HANG_SECONDS
    while not done():
        assert time.monotonic() < deadline, f"hung: no {what} after {HANG_SECONDS:.0f} s: {state()}"
        time.sleep(0.1)


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


def test_health_probes_hold_while_every_attack_runs_at_once(server: Server, abuse: Any) -> None:
    port = server.port
    assert abuse.http_get(port, "/health/live") == 200
    before = abuse.proc_sample(server.pid)
    stop = threading.Event()
    tallies = [abuse.Tally(n) for n in ("slowloris", "huge_headers", "malformed", "unknown_paths")]
    attackers = [
        threading.Thread(target=abuse.slowloris, args=(port, stop, tallies[0], 300, 0.5)),
        threading.Thread(target=abuse.huge_headers, args=(port, stop, tallies[1])),
        threading.Thread(target=abuse.malformed, args=(port, stop, tallies[2])),
        threading.Thread(target=abuse.unknown_paths, args=(port, stop, tallies[3])),
    ]
    for t in attackers:
        t.start()
    peak = []
    try:
        # Every attack under way (slowloris holding its 300 connections) before wrk joins in.
        wait_for("start of every attack", lambda: tallies[0].replies["opened"] >= 300
                 and all(t.attempts for t in tallies), lambda: "; ".join(map(str, tallies)))  # fmt: skip
        prober = abuse.Prober(port, seconds=14, interval=PROBE_INTERVAL, timeout=HANG_SECONDS)
        wrk = abuse.run_wrk(f"http://127.0.0.1:{port}/metrics", connections=1000, seconds=10)
        peak.append(abuse.proc_sample(server.pid))
    finally:
        stop.set()
        for t in attackers:
            t.join(timeout=HANG_SECONDS)
    assert not any(t.is_alive() for t in attackers), "an attacker hung"
    probes = prober.result()
    detail = (
        f"{probes.summary()}; wrk {wrk.requests} requests, {wrk.requests_per_second:.0f}/s; "
        + "; ".join(map(str, tallies))
    )
    # Every probe answered 200, both endpoints probed (a probe unanswered for a minute counts as 0).
    assert probes.count >= 2 and probes.ok == probes.count, detail
    # The attacks really ran and were refused as they should be.
    assert wrk.requests > 0, wrk.output
    assert tallies[1].attempts > 0 and set(tallies[1].replies) <= {
        "431",
        "503",
        "closed",
        "ConnectionResetError",
    }, tallies[1]
    # Every kind of malformed request was sent, and none was served.
    assert tallies[2].attempts >= len(abuse.MALFORMED) and "200" not in tallies[2].replies, tallies[2]
    # At the connection cap the server evicts its longest-idle connection: a client between two
    # requests sees it closed, or reset when its next request was already on the way.
    assert tallies[3].attempts > 0 and set(tallies[3].replies) - {"closed", "ConnectionResetError"} <= {
        "200",
        "404",
        "405",
        "400",
        "503",
    }, tallies[3]
    # Bounded: memory, threads, descriptors (idle blocking-pool threads retire after 10 s).
    assert peak[0].rss_bytes - before.rss_bytes < 64 << 20, (before, peak)
    now = lambda: (before, abuse.proc_sample(server.pid))  # noqa: E731
    wait_for("return of the threads", lambda: abuse.proc_sample(server.pid).threads <= before.threads, now)
    wait_for("return of the descriptors", lambda: abuse.proc_sample(server.pid).fds <= before.fds + 2, now)
    assert abuse.http_get(port, "/metrics") == 200
    code, out = server.stop()
    assert code == 0 and "env steps on SIGTERM;" in out


def test_ten_thousand_wrong_passwords_let_no_one_in_and_probes_hold(tmp_path: Path, abuse: Any) -> None:
    hashed = bcrypt.hashpw(b"right-password", bcrypt.gensalt(rounds=10)).decode()
    cfg = tmp_path / "web.yml"
    cfg.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    server = Server("--web-config", str(cfg))
    try:
        good = abuse.basic("prometheus", "right-password")
        assert abuse.http_get(server.port, "/health/live", {"Authorization": good}) == 200
        before = abuse.proc_sample(server.pid)
        prober = abuse.Prober(server.port, seconds=10, interval=PROBE_INTERVAL, auth=good, timeout=HANG_SECONDS)
        tally = abuse.Tally("wrong_passwords")
        abuse.wrong_passwords(server.port, attempts=10_000, concurrency=50, tally=tally)
        during = abuse.proc_sample(server.pid)
        probes = prober.result()
        detail = f"{probes.summary()}; {tally}"
        # Every attempt answered (a status 0 is a request that got no answer in 30 s), none let in.
        assert tally.attempts == 10_000 and set(tally.replies) <= {"401", "429"}, detail
        assert probes.count >= 2 and probes.ok == probes.count, detail
        # bcrypt runs on a bounded pool: a few threads at most, and they go away.
        assert during.threads <= before.threads + 2, (before, during)
        assert during.rss_bytes - before.rss_bytes < 64 << 20, (before, during)
        assert abuse.http_get(server.port, "/metrics", {"Authorization": good}) == 200
        assert (
            abuse.http_get(server.port, "/metrics", {"Authorization": abuse.basic("prometheus", "guess-1")})
            == 401
        )
    finally:
        server.stop()
