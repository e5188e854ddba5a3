"""Helpers for the telemetry tests: real HTTP requests, promtool, free ports."""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

PROMTOOL = "/usr/bin/promtool"
PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


def request(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> Reply:
    """One real HTTP request; HTTP errors are returned, not raised."""
    h = dict(headers or {})
    if auth is not None:
        h["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    req = urllib.request.Request(url, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
            return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Sends raw bytes to 127.0.0.1:port and reads until the server closes or the timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def raw_until_closed(port: int, data: bytes, timeout: float = 60.0) -> bytes:
    """Sends raw bytes and reads until the server closes the connection; the client giving up
    after ``timeout`` seconds fails the test (the server never closed: a hang)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pytest.fail(f"the server kept the connection open for {timeout:.0f} s: {b''.join(chunks)!r}")
        return b"".join(chunks)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require(path: str, package: str) -> str:
    """``path`` if that binary is installed; otherwise the test fails (scripts/test.sh installs it)."""
    if shutil.which(path) is None:
        pytest.fail(f"{path} is not installed: scripts/test.sh installs it (Debian package {package})")
    return path


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    """Runs ``promtool check metrics`` on exposition text (fails where promtool is missing)."""
    require(PROMTOOL, "prometheus")
    return subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )


@contextlib.contextmanager
def pushgateway_server() -> Iterator[str]:
    """A real Pushgateway on a free loopback port, ready; yields its URL and stops it after."""
    require(PUSHGATEWAY, "prometheus-pushgateway")
    port = free_port()
    proc = subprocess.Popen(
        [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if request(url + "/-/ready", timeout=1).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("the pushgateway did not start")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
