"""The HTTP exporter, over real HTTP against the real server: endpoints, content negotiation,
health probes, promtool, limits, malformed requests, basic auth, TLS, port in use."""

from __future__ import annotations

import datetime
import errno
import json
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
from pathlib import Path

import bcrypt
import pytest
from telemetry_http import free_port, promtool_check, raw, raw_until_closed, request

from neorl_industrial.exceptions import ConfigError, ExporterError
from neorl_industrial.exporter import register_health_check, start_http_server, unregister_health_check
from neorl_industrial.metrics import Counter, Registry

OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TEXT = "text/plain; version=0.0.4; charset=utf-8"
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    handle = reg.core.env_metrics("ChemicalReactor-v0", ["temperature"], ["critical"], ["temperature_high"])
    handle.set_active(4)
    handle.record_batch(4, [12.0], 0.001, [1], [1], 0, [0.01])
    reg._handle = handle  # type: ignore[attr-defined]  # keeps the batch alive for the test
    return reg


@pytest.fixture
def server(registry: Registry):
    with start_http_server(0, registry=registry, memory_limit_bytes=1 << 50) as s:
        yield s


def test_metrics_default_to_text_and_negotiate_openmetrics(server) -> None:
    r = request(server.url + "metrics")
    assert r.status == 200 and r.headers["content-type"] == TEXT
    assert 'env_steps_total{env="ChemicalReactor-v0"} 4.0' in r.text and "# EOF" not in r.text
    for accept in (PROMETHEUS_ACCEPT, "application/openmetrics-text"):
        r = request(server.url + "metrics", headers={"Accept": accept})
        assert r.headers["content-type"] == OM and r.text.endswith("# EOF\n")
    r = request(server.url + "metrics", headers={"Accept": "*/*"})
    assert r.headers["content-type"] == TEXT
    head = request(server.url + "metrics", method="HEAD")
    assert head.status == 200 and head.body == b""


def test_live_output_passes_promtool(server) -> None:
    for path in ("metrics", "safety/metrics"):
        r = promtool_check(request(server.url + path).text)
        assert r.returncode == 0, path + ": " + r.stdout + r.stderr


def test_safety_metrics_hold_the_safety_families_only(server) -> None:
    text = request(server.url + "safety/metrics").text
    assert 'safety_violations_total{constraint_type="temperature",severity="critical"} 1.0' in text
    assert 'emergency_shutdowns_total{reason="temperature_high"} 1.0' in text
    assert "env_steps_total" not in text and "process_" not in text


def test_a_safety_port_serves_safety_families(registry: Registry) -> None:
    with start_http_server(0, registry=registry, safety_port=0) as s:
        assert s.safety_port and s.safety_port != s.port
        text = request(f"http://127.0.0.1:{s.safety_port}/safety/metrics").text
        also = request(f"http://127.0.0.1:{s.safety_port}/metrics").text
        assert "safety_violations_total" in text and "env_steps_total" not in text
        assert "env_steps_total" not in also
        assert request(f"http://127.0.0.1:{s.safety_port}/health/live").status == 200


def test_health_endpoints_and_aliases(server, registry: Registry) -> None:
    for path in ("health", "healthz"):
        r = request(server.url + path)
        assert r.status == 200 and json.loads(r.body) == {
            "status": "healthy",
            "service": "neorl-industrial",
            "version": "0.1.0",
        }
    for path in ("health/live", "livez"):
        r = request(server.url + path)
        assert r.status == 200 and json.loads(r.body)["status"] == "alive"
    for path in ("health/ready", "readyz"):
        assert request(server.url + path).status == 200
    d = json.loads(request(server.url + "health/detailed").body)
    assert d["status"] == "pass" and isinstance(d["uptime"], float)
    assert 0 <= d["uptime"] <= json.loads(request(server.url + "health/detailed").body)["uptime"]
    assert set(d["checks"]) == {"safety_system", "model_loaded", "memory_usage", "exporter"}
    assert all(c["status"] == "pass" for c in d["checks"].values())
    datetime.datetime.fromisoformat(d["timestamp"].replace("Z", "+00:00"))
    # An emergency shutdown fails readiness; liveness never looks at checks.
    registry._handle.set_safety_state("shutdown")  # type: ignore[attr-defined]
    r = request(server.url + "health/ready")
    assert r.status == 503 and json.loads(r.body)["checks"]["safety_system"]["status"] == "fail"
    assert request(server.url + "readyz").status == 503
    assert request(server.url + "health/live").status == 200
    assert json.loads(request(server.url + "health/detailed").body)["status"] == "fail"
    registry._handle.set_safety_state("active")  # type: ignore[attr-defined]
    assert request(server.url + "health/ready").status == 200


def test_not_ready_without_a_model_and_memory_over_limit_fails() -> None:
    reg = Registry()
    with start_http_server(0, registry=reg) as s:
        r = request(s.url + "health/ready")
        assert r.status == 503
        assert json.loads(r.body)["checks"]["model_loaded"]["status"] == "fail"
        reg.set_model_loaded()
        assert request(s.url + "health/ready").status == 200
    reg.set_model_loaded()
    with start_http_server(0, registry=reg, memory_limit_bytes=1024) as s:
        d = json.loads(request(s.url + "health/ready").body)
        assert (
            d["checks"]["memory_usage"]["status"] == "fail"
            and d["checks"]["memory_usage"]["observedValue"] > 1024
        )


def test_user_health_checks_pass_fail_raise_and_time_out(server, registry: Registry) -> None:
    # Timeouts that only a hang reaches, except for "slow", which blocks until the test ends: its
    # 0.2 s timeout expires however fast the machine is.
    state = {"ok": True}
    release = threading.Event()
    register_health_check("database", lambda: state["ok"], registry=registry, interval=0.2, timeout=30)
    register_health_check("broken", lambda: 1 / 0, registry=registry, interval=60)
    register_health_check("slow", lambda: release.wait(120), registry=registry, interval=60, timeout=0.2)
    register_health_check("degraded", lambda: ("warn", "cache cold"), registry=registry, interval=60)
    try:
        checks = json.loads(request(server.url + "health/detailed").body)["checks"]
        assert checks["database"]["status"] == "pass"
        assert checks["broken"]["status"] == "fail" and "ZeroDivisionError" in checks["broken"]["output"]
        assert checks["slow"]["status"] == "fail" and "timed out" in checks["slow"]["output"]
        assert checks["degraded"] == {"status": "warn", "output": "cache cold"}
        assert request(server.url + "health/ready").status == 503
        state["ok"] = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            checks = json.loads(request(server.url + "health/detailed").body)["checks"]
            if checks["database"]["status"] == "fail":
                break
            time.sleep(0.05)
        assert checks["database"]["status"] == "fail"
    finally:
        release.set()
        for name in ("database", "broken", "slow", "degraded"):
            assert unregister_health_check(name, registry=registry)
    assert request(server.url + "health/ready").status == 200
    with pytest.raises(ConfigError, match="check: must be callable, got int"):
        register_health_check("x", 42, registry=registry)  # type: ignore[arg-type]


def test_methods_and_unknown_paths(server) -> None:
    r = request(server.url + "metrics", method="POST")
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD"
    assert request(server.url + "nope").status == 404
    assert request(server.url).status == 200


def test_malformed_and_oversized_requests_are_refused(server) -> None:
    assert raw(server.port, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n").startswith(
        b"HTTP/1.1 400"
    )
    big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    reply = raw(server.port, big)
    assert reply.startswith(b"HTTP/1.1 431") or reply == b""
    assert raw(server.port, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(200)).startswith(
        b"HTTP/1.1 400"
    )
    # Still serving.
    assert request(server.url + "metrics").status == 200


def test_slow_clients_are_cut_off_and_connections_are_bounded(registry: Registry) -> None:
    with start_http_server(0, registry=registry, header_timeout=0.5) as s:
        # A client that never sends its headers is dropped: the server closes the connection (the
        # client would give up only after 60 s, a hang).
        assert b"200 OK" not in raw_until_closed(s.port, b"GET /metrics HTTP/1.1\r\n", timeout=60)
    # A header timeout no slow machine reaches: the two idle clients hold both slots. The server
    # accepts in order, so the third is the newcomer: it evicts the idlest and is served in triage,
    # where /metrics gets 503.
    with start_http_server(0, registry=registry, max_connections=2, header_timeout=60) as s:
        idle = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(2)]
        try:
            assert raw(s.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 503")
        finally:
            for c in idle:
                c.close()
        # The slots come back once the idle clients are gone (bounded only against a hang).
        deadline = time.monotonic() + 60
        while request(s.url + "metrics").status != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert request(s.url + "metrics").status == 200


def test_port_in_use_is_a_clear_error(server, registry: Registry) -> None:
    with pytest.raises(ExporterError, match=f"port {server.port} on 127.0.0.1 is already in use") as e:
        start_http_server(server.port, registry=registry)
    assert e.value.errno == errno.EADDRINUSE
    assert isinstance(e.value, OSError)


def test_bad_options_are_config_errors(registry: Registry, tmp_path: Path) -> None:
    for kwargs, message in (
        ({"port": 70000}, "port: must be 0..=65535, got 70000"),
        ({"port": -1}, "port: must be 0..=65535, got -1"),
        ({"max_connections": 0}, "max_connections: must be a positive integer, got 0"),
        ({"header_timeout": 0}, "header_timeout: must be a positive number of seconds, got 0"),
        ({"addr": "no such host.invalid"}, 'addr: cannot resolve "no such host.invalid"'),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            start_http_server(**{"port": 0, "registry": registry, **kwargs})  # type: ignore[arg-type]
    for text, message in (
        ("basic_auth_users: [", "web_config_file: invalid YAML: basic_auth_users"),
        ("unknown: 1", "web_config_file: invalid YAML: unknown field `unknown`"),
        ("basic_auth_users:\n  u: plain\n", 'web_config_file: basic_auth_users: the hash of user "u" is not a bcrypt hash'),
        ("tls_server_config:\n  cert_file: x.pem\n  key_file: y.pem\n", "web_config_file: cannot read certificates from"),
    ):
        cfg = tmp_path / "web.yml"
        cfg.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(message)):
            start_http_server(0, registry=registry, web_config_file=cfg)
    with pytest.raises(ConfigError, match=re.escape(f"web_config_file: cannot read {tmp_path / 'missing.yml'}")):
        start_http_server(0, registry=registry, web_config_file=tmp_path / "missing.yml")


def assert_refused(url: str) -> None:
    """Nothing listens at ``url``: the connection is refused (not reset, not timed out)."""
    with pytest.raises(urllib.error.URLError) as e:
        request(url, timeout=10)
    assert isinstance(e.value.reason, ConnectionRefusedError), e.value


def test_stop_frees_the_port_and_is_idempotent(registry: Registry) -> None:
    s = start_http_server(0, registry=registry)
    port = s.port
    assert s.running and s.url == f"http://127.0.0.1:{port}/"
    s.stop()
    s.stop()
    assert not s.running
    assert_refused(f"http://127.0.0.1:{port}/metrics")
    with start_http_server(port, registry=registry) as again:
        assert request(again.url + "metrics").status == 200


def web_config(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "web-config.yml"
    p.write_text(body)
    return p


def test_basic_auth_with_bcrypt_hashes(registry: Registry, tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    cfg = web_config(
        tmp_path,
        f"basic_auth_users:\n  prometheus: '{hashed}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n",
    )
    with start_http_server(0, registry=registry, web_config_file=cfg) as s:
        refusals = [
            request(s.url + "metrics"),
            request(s.url + "metrics", auth=("prometheus", "wrong")),
            request(s.url + "metrics", auth=("nobody", "s3cret")),
            request(s.url + "health/live", auth=("prometheus", "")),
            request(s.url + "metrics", headers={"Authorization": "Basic !!!"}),
        ]
        for r in refusals:
            assert r.status == 401 and r.headers["www-authenticate"].startswith("Basic realm=")
        # Every refusal looks the same: no hint of which users exist.
        assert (
            len(
                {
                    (r.body, tuple(sorted(r.headers.items() - {("date", r.headers.get("date"))})))
                    for r in refusals
                }
            )
            == 1
        )
        ok = request(s.url + "metrics", auth=("prometheus", "s3cret"))
        assert ok.status == 200 and "env_steps_total" in ok.text
        assert ok.headers["x-frame-options"] == "deny"
        assert request(s.url + "health/ready", auth=("prometheus", "s3cret")).status == 200


def test_basic_auth_guards_the_safety_port_too(registry: Registry, tmp_path: Path) -> None:
    # The safety port is a second listener of the same server: the web config's users guard it
    # exactly as they guard the main port, on every path it serves.
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    cfg = web_config(tmp_path, f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    with start_http_server(0, registry=registry, safety_port=0, web_config_file=cfg) as s:
        assert s.safety_port and s.safety_port != s.port
        base = f"http://127.0.0.1:{s.safety_port}/"
        for path in ("safety/metrics", "metrics", "health/live", "health/ready", "health/detailed"):
            for auth in (None, ("prometheus", "wrong"), ("nobody", "s3cret")):
                r = request(base + path, auth=auth)
                assert r.status == 401, (path, auth, r.status)
                assert r.headers["www-authenticate"].startswith("Basic realm=")
                assert b"safety_violations_total" not in r.body
        ok = request(base + "safety/metrics", auth=("prometheus", "s3cret"))
        assert ok.status == 200 and "safety_violations_total" in ok.text
        assert request(base + "health/live", auth=("prometheus", "s3cret")).status == 200


def test_serve_guards_its_safety_port_with_the_web_config(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    cfg = web_config(tmp_path, f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    safety = free_port()
    cmd = [sys.executable, "-m", "neorl_industrial.cli", "serve", "--port", "0", "--num-envs", "8",
           "--rate", "20", "--safety-port", str(safety), "--web-config", str(cfg)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "127.0.0.1" in line, line + (proc.stderr.read() if proc.stderr else "")
        url = f"http://127.0.0.1:{safety}/safety/metrics"
        assert request(url).status == 401
        assert request(url, auth=("prometheus", "wrong")).status == 401
        ok = request(url, auth=("prometheus", "s3cret"))
        assert ok.status == 200 and "safety_violations_total" in ok.text
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert proc.returncode == 0


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    crt, k = tmp_path / "server.crt", tmp_path / "server.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return crt, k


def test_tls_with_a_self_signed_certificate(registry: Registry, tmp_path: Path) -> None:
    crt, key = self_signed(tmp_path)
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    cfg = web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {crt.name}\n  key_file: {key.name}\nbasic_auth_users:\n  u: '{hashed}'\n",
    )
    with start_http_server(0, registry=registry, web_config_file=cfg) as s:
        assert s.url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(crt))
        url = f"https://localhost:{s.port}/metrics"
        r = request(url, context=ctx, auth=("u", "pw"))
        assert r.status == 200 and "safety_violations_total" in r.text
        assert request(url, context=ctx).status == 401
        # Untrusted certificate: the client refuses; plain HTTP to the TLS port gets no answer.
        with pytest.raises(urllib.error.URLError) as refused:
            request(url, context=ssl.create_default_context(), auth=("u", "pw"))
        assert isinstance(refused.value.reason, ssl.SSLCertVerificationError), refused.value
        assert b"200 OK" not in raw(s.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
        assert request(url, context=ctx, auth=("u", "pw")).status == 200


def test_scrapes_are_answered_while_python_holds_the_gil(server) -> None:
    """A scrape from another process completes while this interpreter holds the GIL, so the
    exporter never waits for Python. This thread waits for the scrape's answer inside one C call
    made through ``ctypes.PyDLL``, which keeps the GIL: ``poll(2)`` on the child's output, bounded
    by 60 s that only a hang reaches. An exporter that needed the GIL could not answer before the
    wait ended, and the wait would end with nothing to read."""
    import ctypes

    class PollFd(ctypes.Structure):
        _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]

    pollin = 0x001
    libc = ctypes.PyDLL(None, use_errno=True)  # functions called through a PyDLL keep the GIL
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, urllib.request\n"
            "sys.stdin.buffer.read(1)\n"
            f"r = urllib.request.urlopen('{server.url}metrics', timeout=120)\n"
            "print(r.status, len(r.read()), flush=True)\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
    )
    assert child.stdin is not None and child.stdout is not None
    fd = PollFd(child.stdout.fileno(), pollin, 0)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)  # no thread takes the GIL between the two calls below
    try:
        assert libc.write(child.stdin.fileno(), b"g", 1) == 1  # the child starts its scrape
        ready = libc.poll(ctypes.byref(fd), 1, 60_000)  # GIL held until the answer is there
        while ready == -1 and ctypes.get_errno() == errno.EINTR:
            ready = libc.poll(ctypes.byref(fd), 1, 60_000)
    finally:
        sys.setswitchinterval(interval)
        out, _ = child.communicate(timeout=180)
    assert ready == 1 and fd.revents & pollin, f"no answer while the GIL was held ({ready}, {out!r})"
    status, size = out.split()
    assert status == b"200" and int(size) > 0, out


def test_exporter_serves_metrics_registered_later(server, registry: Registry) -> None:
    Counter("late_total", "Registered after start", registry=registry).inc(7)
    assert "late_total 7.0" in request(server.url + "metrics").text


def test_concurrent_scrapes(server) -> None:
    errors: list[BaseException] = []

    def scrape() -> None:
        try:
            for _ in range(20):
                assert request(server.url + "metrics").status == 200
        except BaseException as e:  # collected for the assertion below
            errors.append(e)

    threads = [threading.Thread(target=scrape) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a scrape hung"
    assert not errors


def test_a_server_whose_handle_is_dropped_keeps_serving_until_stopped(registry: Registry) -> None:
    import gc

    from neorl_industrial import exporter

    port = start_http_server(0, registry=registry).port
    gc.collect()
    assert request(f"http://127.0.0.1:{port}/metrics").status == 200
    (server,) = [s for s in exporter._SERVERS if s.port == port]
    server.stop()
    assert server not in exporter._SERVERS
    assert_refused(f"http://127.0.0.1:{port}/metrics")


def test_beyond_loopback_needs_authentication_or_an_explicit_insecure(registry: Registry, tmp_path: Path, caplog) -> None:
    import logging

    with pytest.raises(ConfigError, match="beyond loopback, without authentication"):
        start_http_server(0, "0.0.0.0", registry=registry)
    with caplog.at_level(logging.WARNING, logger="neorl_industrial.exporter"):
        with start_http_server(0, "0.0.0.0", registry=registry, insecure=True) as s:
            assert request(f"http://127.0.0.1:{s.port}/metrics").status == 200
            text = request(f"http://127.0.0.1:{s.port}/metrics").text
            assert "exporter_insecure_listeners 1" in text
    assert any("WITHOUT authentication" in r.getMessage() for r in caplog.records)
    assert "exporter_insecure_listeners 0" in registry.generate_latest().decode()
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    cfg = web_config(tmp_path, f"basic_auth_users:\n  prom: '{hashed}'\n")
    with start_http_server(0, "0.0.0.0", registry=registry, web_config_file=cfg) as s:
        assert request(f"http://127.0.0.1:{s.port}/metrics", auth=("prom", "pw")).status == 200
    p = subprocess.run(
        [sys.executable, "-m", "neorl_industrial.cli", "serve", "--port", "0", "--host", "0.0.0.0", "--duration", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2 and "--insecure" in p.stderr, p.stderr


def test_open_probes_answer_the_platform_without_credentials(registry: Registry, tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    cfg = web_config(tmp_path, f"basic_auth_users:\n  prom: '{hashed}'\n")
    with start_http_server(0, registry=registry, web_config_file=cfg, open_probes=True) as s:
        assert request(s.url + "health/live").status == 200
        assert request(s.url + "health/ready").status in (200, 503)  # answered, not 401
        for path in ("health/detailed", "metrics", "safety/metrics", "health"):
            assert request(s.url + path).status == 401, path
        assert request(s.url + "metrics", auth=("prom", "pw")).status == 200
    with start_http_server(0, registry=registry, web_config_file=cfg) as s:
        assert request(s.url + "health/live").status == 401  # not without open_probes
