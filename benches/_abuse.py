"""Hostile clients for the exporter, a health prober, wrk, and /proc readings of the server process.

Used by ``benches/bench_exporter_abuse.py`` and ``tests/test_reliability_exporter.py``. Every
attacker runs until its ``stop`` event is set and returns counts of what it tried and what it got.
The prober runs in a process of its own (``python benches/_abuse.py probe ...``), so the attackers'
threads never delay its clock.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

WRK = "/usr/bin/wrk"
HEALTH_PATHS = ("/health/live", "/health/ready")


# --------------------------------------------------------------------------- server process readings
@dataclass
class ProcSample:
    rss_bytes: int
    threads: int
    fds: int


def proc_sample(pid: int) -> ProcSample:
    """Resident memory, threads and open file descriptors of ``pid`` (Linux /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return ProcSample(rss, threads, len(os.listdir(f"/proc/{pid}/fd")))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --------------------------------------------------------------------------- one request
def http_get(port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> int:
    """One GET on a fresh connection (as a kubelet probe does); the status code, 0 on a network error."""
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            head = b""
            while b"\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk
            m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
            return int(m.group(1)) if m else 0
    except OSError:
        return 0


# --------------------------------------------------------------------------- the prober
def probe(
    port: int, seconds: float, interval: float, headers: dict[str, str], timeout: float = 5.0
) -> dict[str, object]:
    """Alternates /health/live and /health/ready every ``interval`` s for ``seconds`` s (and at least
    once each); latencies in ms and statuses (0: no answer within ``timeout`` s)."""
    lat: list[float] = []
    statuses: Counter[int] = Counter()
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end or i < len(HEALTH_PATHS):
        t0 = time.perf_counter()
        code = http_get(port, HEALTH_PATHS[i % 2], headers, timeout=timeout)
        lat.append((time.perf_counter() - t0) * 1000)
        statuses[code] += 1
        i += 1
        time.sleep(max(0.0, interval - (time.perf_counter() - t0)))
    return {"latencies_ms": lat, "statuses": dict(statuses)}


class Prober:
    """The prober in a process of its own; :meth:`result` waits for it."""

    def __init__(
        self,
        port: int,
        seconds: float,
        interval: float = 0.02,
        auth: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        cmd = [sys.executable, __file__, "probe", str(port), str(seconds), str(interval), "--timeout", str(timeout)]
        if auth:
            cmd += ["--auth", auth]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)

    def result(self) -> ProbeResult:
        out, _ = self.proc.communicate(timeout=600)
        d = json.loads(out)
        return ProbeResult(d["latencies_ms"], {int(k): v for k, v in d["statuses"].items()})


@dataclass
class ProbeResult:
    latencies_ms: list[float]
    statuses: dict[int, int]

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    def pct(self, q: float) -> float:
        s = sorted(self.latencies_ms)
        return s[min(len(s) - 1, int(q / 100 * len(s)))] if s else float("nan")

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def summary(self) -> str:
        return (
            f"{self.count} probes, {self.ok} answered 200, statuses {self.statuses}; latency ms "
            f"p50 {self.pct(50):.1f} p99 {self.pct(99):.1f} max {max(self.latencies_ms, default=0):.1f}"
        )


# --------------------------------------------------------------------------- attackers
@dataclass
class Tally:
    """What one attacker did."""

    name: str
    attempts: int = 0
    replies: Counter[str] = field(default_factory=Counter)

    def got(self, what: str) -> None:
        self.attempts += 1
        self.replies[what] += 1

    def __str__(self) -> str:
        return f"{self.name}: {self.attempts} attempts, {dict(self.replies)}"


def _status_of(sock: socket.socket) -> str:
    try:
        data = sock.recv(4096)
    except OSError as e:
        return type(e).__name__
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return m.group(1).decode() if m else ("closed" if not data else "garbage")


def slowloris(
    port: int, stop: threading.Event, tally: Tally, sockets: int = 200, trickle: float = 1.0
) -> None:
    """Holds ``sockets`` connections, each sending one header line every ``trickle`` seconds, never
    finishing its request; reopens any the server closes (each (re)open is one attempt)."""
    held: list[socket.socket] = []

    def opened() -> socket.socket | None:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            s.setblocking(False)
            tally.got("opened")
            return s
        except OSError as e:
            tally.got(type(e).__name__)
            return None

    while not stop.is_set():
        while len(held) < sockets and not stop.is_set():
            s = opened()
            if s is None:
                break
            held.append(s)
        alive = []
        for s in held:
            try:
                s.send(b"X-Slow: a\r\n")
                alive.append(s)
            except OSError:
                tally.replies["cut_off_by_server"] += 1
                s.close()
        held = alive
        stop.wait(trickle)
    for s in held:
        s.close()


def huge_headers(port: int, stop: threading.Event, tally: Tally, size: int = 1 << 20) -> None:
    """Sends requests whose headers total ``size`` bytes (1 MiB), again and again."""
    header = b"X-Big: " + b"a" * 8000 + b"\r\n"
    request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header * (size // len(header)) + b"\r\n"
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                try:
                    s.sendall(request)
                except OSError:
                    pass  # the server answers 431 and closes before reading it all
                tally.got(_status_of(s))
        except OSError as e:
            tally.got(type(e).__name__)


MALFORMED = (
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /metrics\r\n\r\n",
    b"GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /me\x00trics HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(200),
    b"GET /metrics HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"GET " + b"/a" * 20_000 + b" HTTP/1.1\r\n\r\n",
    b"\r\n" * 5000,
    bytes(range(256)) * 4,
)


def malformed(port: int, stop: threading.Event, tally: Tally) -> None:
    """Sends each malformed request of :data:`MALFORMED` in turn on a fresh connection, every one
    at least once even if ``stop`` is set sooner."""
    i = 0
    while not stop.is_set() or i < len(MALFORMED):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                try:
                    s.sendall(MALFORMED[i % len(MALFORMED)])
                except OSError:
                    pass
                tally.got(_status_of(s))
        except OSError as e:
            tally.got(type(e).__name__)
        i += 1


METHODS = ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "BREW", "GET", "HEAD")
PATHS = ("/nope", "/metrics/../../etc/passwd", "/%00", "/health/../metrics", "/" + "x" * 2000, "/metrics?x=1")


def unknown_paths(port: int, stop: threading.Event, tally: Tally) -> None:
    """Unknown paths and methods, on one kept-alive connection at a time."""
    i = 0
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                for _ in range(50):
                    if stop.is_set():
                        break
                    method, path = METHODS[i % len(METHODS)], PATHS[(i // len(METHODS)) % len(PATHS)]
                    i += 1
                    body = b"x" * 10 if method in ("POST", "PUT", "PATCH") else b""
                    s.sendall(
                        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                    reply = _read_reply(s, method == "HEAD")
                    tally.got(reply)
                    if not reply.isdigit():
                        break
        except OSError as e:
            tally.got(type(e).__name__)


def _read_reply(s: socket.socket, head_only: bool) -> str:
    """Reads one response with a content-length body; its status, or why there was none."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                return "closed"
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        m = re.search(rb"(?i)content-length: (\d+)", head)
        need = 0 if head_only or not m else int(m.group(1))
        while len(rest) < need:
            chunk = s.recv(65536)
            if not chunk:
                return "closed"
            rest += chunk
        status = re.match(rb"HTTP/1\.[01] (\d{3})", head)
        return status.group(1).decode() if status else "garbage"
    except OSError as e:
        return type(e).__name__


def wrong_passwords(port: int, attempts: int, concurrency: int, tally: Tally) -> None:
    """``attempts`` requests, each with a different wrong password (and some unknown users)."""
    counter = iter(range(attempts))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            user = "prometheus" if i % 4 else f"intruder{i}"
            code = http_get(port, "/metrics", {"Authorization": basic(user, f"guess-{i}")}, timeout=30)
            with lock:
                tally.got(str(code))

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# --------------------------------------------------------------------------- wrk
@dataclass
class WrkResult:
    requests: int
    seconds: float
    requests_per_second: float
    latency_ms: dict[str, float]
    non_2xx: int
    socket_errors: dict[str, int]
    output: str


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[m.group(2)]
    return float(m.group(1)) * scale


def wrk_available() -> bool:
    return shutil.which(WRK) is not None


def run_wrk(
    url: str, connections: int, seconds: float, threads: int = 2, headers: dict[str, str] | None = None
) -> WrkResult:
    """Runs the real ``wrk`` binary with ``--latency`` and parses its report."""
    cmd = [WRK, f"-t{threads}", f"-c{connections}", f"-d{round(seconds)}s", "--latency", "--timeout", "10s"]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 60).stdout
    lat = {q: _ms(v) for q, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    requests = int(m.group(1)) if m else 0
    secs = _ms(m.group(2) + m.group(3)) / 1000 if m else seconds
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        requests,
        secs,
        float(rps.group(1)) if rps else 0.0,
        lat,
        int(non2xx.group(1)) if non2xx else 0,
        dict(zip(("connect", "read", "write", "timeout"), map(int, errs.groups()), strict=True))
        if errs
        else {},
        out,
    )


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("probe")
    pr.add_argument("port", type=int)
    pr.add_argument("seconds", type=float)
    pr.add_argument("interval", type=float)
    pr.add_argument("--auth", default=None)
    pr.add_argument("--timeout", type=float, default=5.0)
    a = p.parse_args()
    hdrs = {"Authorization": a.auth} if a.auth else {}
    print(json.dumps(probe(a.port, a.seconds, a.interval, hdrs, a.timeout)))
