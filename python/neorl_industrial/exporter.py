"""The built-in HTTP exporter: Prometheus metrics and Kubernetes health probes, no code needed.

::

    from neorl_industrial.exporter import start_http_server

    server = start_http_server(8000)          # http://127.0.0.1:8000/metrics
    ...
    server.stop()

    with start_http_server(0) as server:      # any free port
        print(server.url)

Endpoints: ``/metrics`` (Prometheus text 0.0.4, or OpenMetrics 1.0 when the ``Accept`` header asks
for it), ``/safety/metrics`` (the safety families), ``/health``, ``/health/live``,
``/health/ready`` (503 while a check fails), ``/health/detailed`` and the aliases ``/livez``,
``/readyz``, ``/healthz``. The server runs on a Rust thread and never takes the GIL for a scrape.

Security: it binds 127.0.0.1 unless told otherwise; basic auth (bcrypt) and TLS come from a
web-config file in the format of Prometheus' exporter-toolkit::

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
    basic_auth_users:
      prometheus: $2b$12$...   # python -c "import bcrypt; print(bcrypt.hashpw(b'pw', bcrypt.gensalt()).decode())"
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import _core
from .exceptions import ConfigError
from .metrics import REGISTRY, Registry

__all__ = [
    "MetricsServer",
    "delete_from_gateway",
    "push_to_gateway",
    "pushadd_to_gateway",
    "register_health_check",
    "start_http_server",
    "unregister_health_check",
]

_log = logging.getLogger("neorl_industrial.exporter")
# Running servers stay referenced until stopped, so `start_http_server(8000)` with its handle
# ignored keeps serving until exit, as prometheus_client's does.
_SERVERS: set[MetricsServer] = set()
_SERVERS_LOCK = threading.Lock()


class _LogPump:
    """A daemon thread logging what the exporter thread queued (it never waits for the GIL itself)."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def ensure_running(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="neorl-exporter-logs", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            _core.pump_exporter_logs(0.5)

    def shutdown(self) -> None:
        self._stop.set()
        _core.wake_exporter_log_pump()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)


_PUMP = _LogPump()


class MetricsServer:
    """A running exporter. Stop it with :meth:`stop` or use it as a context manager."""

    def __init__(self, core: _core.CoreExporter) -> None:
        self._core = core
        with _SERVERS_LOCK:
            _SERVERS.add(self)
        _PUMP.ensure_running()

    @property
    def port(self) -> int:
        """Port of the main listener (the one chosen when started with port 0)."""
        return self._core.port

    @property
    def safety_port(self) -> int | None:
        """Port of the safety listener, if one was asked for."""
        return self._core.safety_port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8000/``."""
        return self._core.url

    @property
    def running(self) -> bool:
        """True until stopped."""
        return self._core.running

    def attach_control(self, handler: Callable[[str, str, bytes], tuple[int, str]] | None) -> None:
        """Answers the control endpoints with ``handler(method, path, body) -> (status, JSON
        text)`` from now on (``None``: 503 again); see :class:`~neorl_industrial.serving.PolicyService`.

        Raises:
            ConfigError: the server was started without ``control=True``, or is stopped.
        """
        self._core.attach_control(handler)

    def stop(self) -> None:
        """Stops serving and frees the ports (idempotent)."""
        self._core.stop()
        with _SERVERS_LOCK:
            _SERVERS.discard(self)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<MetricsServer {self.url} {state}>"


def start_http_server(
    port: int = 8000,
    addr: str = "127.0.0.1",
    registry: Registry | None = None,
    *,
    safety_port: int | None = None,
    web_config_file: str | os.PathLike[str] | None = None,
    max_connections: int | None = None,
    header_timeout: float = 10.0,
    connection_timeout: float = 60.0,
    memory_limit_bytes: int | None = None,
    control: bool = False,
    insecure: bool = False,
    open_probes: bool = False,
) -> MetricsServer:
    """Starts the exporter on its own thread and returns its handle.

    Args:
        port: Port of the main listener; 0 picks a free one (read it from ``.port``).
        addr: Address to bind; ``"0.0.0.0"`` exposes it beyond this machine.
        registry: Registry to serve (default :data:`neorl_industrial.metrics.REGISTRY`).
        safety_port: Also serve the safety families (and health) on this port, as the monitoring
            guide's second scrape job does on 8001.
        web_config_file: exporter-toolkit web config (TLS, basic auth, response headers).
        max_connections: Connections served at once (default 1024, or half the open-files limit if
            lower). When all are taken, a newcomer closes the connection idle longest to make room
            and is itself answered in triage: health probes as usual, anything else 503 with
            ``Retry-After``. Slow or idle clients cannot lock the probes out.
        header_timeout: Seconds allowed to receive a request's headers (and the TLS handshake).
        connection_timeout: Longest a connection may stay open, seconds.
        memory_limit_bytes: Limit for the ``memory_usage`` health check (default: the cgroup
            limit, else the machine's memory).
        control: Serve ``POST /admin/reload`` and ``GET``/``POST /interventions`` (answered by
            the handler given to :meth:`MetricsServer.attach_control`, 503 until then). Beyond
            loopback only with authentication in ``web_config_file`` (basic auth users, or
            required client certificates): otherwise a :class:`ConfigError`.
        insecure: Serve beyond loopback without authentication. Without it, an ``addr`` beyond
            loopback needs basic auth users (or required client certificates) in
            ``web_config_file``, else :class:`ConfigError`. With it, a warning is logged and
            ``exporter_insecure_listeners`` counts the listeners.
        open_probes: With basic auth on, answer the liveness and readiness probes
            (``/health/live``, ``/livez``, ``/health/ready``, ``/readyz``) without credentials, so
            platform probes need no secret; ``/health/detailed``, ``/metrics`` and the rest keep
            asking.

    Raises:
        ExporterError: the port is taken (``errno.EADDRINUSE``) or cannot be bound.
        ConfigError: a bad address, option or web-config file.
    """
    if max_connections is not None and (
        isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1
    ):
        raise ConfigError(f"max_connections: must be a positive integer, got {max_connections!r}")
    core = _core.CoreExporter(
        (registry or REGISTRY).core,
        port,
        addr,
        safety_port,
        None if web_config_file is None else os.fspath(web_config_file),
        max_connections,
        float(header_timeout),
        float(connection_timeout),
        memory_limit_bytes,
        control,
        bool(insecure),
        bool(open_probes),
    )
    if core.insecure_listeners:
        _log.warning(
            "exporter listening on %s beyond loopback WITHOUT authentication (insecure=True): "
            "anyone who reaches it reads the metrics and health",
            core.url,
        )
    return MetricsServer(core)


@atexit.register
def _stop_all() -> None:
    # Exporter threads may log through Python: stop them while the interpreter is whole.
    with _SERVERS_LOCK:
        servers = list(_SERVERS)
    for server in servers:
        server.stop()
    _RUNNER.shutdown()
    _PUMP.shutdown()


def _grouping(grouping_key: Mapping[str, str] | None) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in (grouping_key or {}).items()]


def push_to_gateway(
    gateway: str,
    job: str,
    registry: Registry | None = None,
    grouping_key: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Replaces the job's group on a Pushgateway with this registry's metrics (HTTP PUT).

    For batch jobs (training runs) that end before Prometheus would scrape them.

    Raises:
        ExporterError: the gateway cannot be reached or refuses the push.
    """
    _core.push_to_gateway(gateway, job, (registry or REGISTRY).core, _grouping(grouping_key), "PUT", timeout)


def pushadd_to_gateway(
    gateway: str,
    job: str,
    registry: Registry | None = None,
    grouping_key: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Replaces only the pushed metrics in the job's group (HTTP POST)."""
    _core.push_to_gateway(gateway, job, (registry or REGISTRY).core, _grouping(grouping_key), "POST", timeout)


def delete_from_gateway(
    gateway: str, job: str, grouping_key: Mapping[str, str] | None = None, timeout: float = 30.0
) -> None:
    """Deletes the job's group from a Pushgateway."""
    _core.push_to_gateway(gateway, job, REGISTRY.core, _grouping(grouping_key), "DELETE", timeout)


# ---------------------------------------------------------------- health checks
CheckResult = bool | str | tuple[str, str] | None


def _interpret(result: CheckResult) -> tuple[str, str]:
    if result is None or result is True:
        return "pass", "ok"
    if result is False:
        return "fail", "check returned False"
    if isinstance(result, str):
        return (result, "") if result in ("pass", "warn", "fail") else ("fail", f"unknown status {result!r}")
    if isinstance(result, tuple) and len(result) == 2 and result[0] in ("pass", "warn", "fail"):
        return str(result[0]), str(result[1])
    return "fail", f"unexpected check result {result!r}"


class _Check:
    def __init__(
        self, name: str, fn: Callable[[], CheckResult], timeout: float, interval: float, core: Any
    ) -> None:
        self.name, self.fn, self.timeout, self.interval, self.core = name, fn, timeout, interval, core
        self.due = 0.0
        self.worker: threading.Thread | None = None

    def run(self) -> None:
        """Runs the check in a worker thread, waits at most ``timeout``, stores the result."""
        if self.worker is not None and self.worker.is_alive():
            self._store("fail", f"still running after timing out ({self.timeout}s)")
            return
        box: list[tuple[str, str]] = []

        def target() -> None:
            try:
                box.append(_interpret(self.fn()))
            except Exception as e:  # a failing check is a result, not a crash
                box.append(("fail", f"{type(e).__name__}: {e}"))

        self.worker = threading.Thread(target=target, name=f"health-check-{self.name}", daemon=True)
        self.worker.start()
        self.worker.join(self.timeout)
        self._store(*(box[0] if box else ("fail", f"timed out after {self.timeout}s")))
        self.due = time.monotonic() + self.interval

    def _store(self, status: str, output: str) -> None:
        # A result outlives one interval plus the timeout; a dead runner then shows as stale.
        self.core.set_check(self.name, status, output, self.interval + self.timeout + 1.0)


class _Runner:
    """One daemon thread re-running every registered check when it falls due."""

    def __init__(self) -> None:
        self._checks: dict[tuple[int, str], _Check] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def add(self, check: _Check) -> None:
        check.run()
        with self._lock:
            self._checks[(id(check.core), check.name)] = check
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._loop, name="neorl-health-checks", daemon=True)
                self._thread.start()
        self._wake.set()

    def remove(self, core: Any, name: str) -> bool:
        with self._lock:
            gone = self._checks.pop((id(core), name), None) is not None
        return bool(core.remove_check(name)) or gone

    def shutdown(self) -> None:
        self._stopped = True
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopped:
            with self._lock:
                checks = list(self._checks.values())
            now = time.monotonic()
            for c in checks:
                if c.due <= now and not self._stopped:
                    c.run()
            with self._lock:
                nxt = min((c.due for c in self._checks.values()), default=now + 60.0)
            self._wake.wait(max(0.0, nxt - time.monotonic()))
            self._wake.clear()


_RUNNER = _Runner()


def register_health_check(
    name: str,
    check: Callable[[], CheckResult],
    *,
    timeout: float = 1.0,
    interval: float = 10.0,
    registry: Registry | None = None,
) -> None:
    """Adds a check to ``/health/detailed`` and readiness.

    The check runs on a Python thread every ``interval`` seconds (first before this returns), at
    most ``timeout`` seconds each; the exporter serves the latest result without calling Python.
    It returns True/None (pass), False (fail), ``"pass"``/``"warn"``/``"fail"``, or a
    ``(status, message)`` tuple; an exception or a timeout fails it. A result older than
    ``interval + timeout + 1`` seconds counts as failed.
    """
    if not callable(check):
        raise ConfigError(f"check: must be callable, got {type(check).__name__}")
    if not (timeout > 0 and interval > 0):
        raise ConfigError(f"timeout and interval must be positive, got {timeout}, {interval}")
    _RUNNER.add(_Check(str(name), check, float(timeout), float(interval), (registry or REGISTRY).core))


def unregister_health_check(name: str, registry: Registry | None = None) -> bool:
    """Removes a check; True if it existed."""
    return _RUNNER.remove((registry or REGISTRY).core, name)
