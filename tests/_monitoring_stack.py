"""Real Prometheus and Alertmanager servers for the monitoring tests (Debian packages ``prometheus``
and ``prometheus-alertmanager``), configured from the shipped files in ``monitoring/``.

Everything listens on 127.0.0.1 with ephemeral ports; configs are the shipped ones with targets,
intervals and rule windows rewritten for a test that must finish within seconds.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import yaml

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "monitoring"
RULES = MONITORING / "rules" / "neorl_industrial_rules.yml"
PROMETHEUS_YML = MONITORING / "prometheus.yml"
ALERTMANAGER_YML = MONITORING / "alertmanager.yml"

APP_JOB = "neorl-industrial"
SAFETY_JOB = "safety-monitor"

T = TypeVar("T")


def binary(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


PROMETHEUS = binary("prometheus")
ALERTMANAGER = binary("prometheus-alertmanager", "alertmanager")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_json(url: str, data: Any = None, timeout: float = 2.0) -> Any:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        text = r.read()
    return json.loads(text) if text else None


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25) -> T:
    """Polls ``check`` until it returns something truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError, KeyError) as e:  # server not up yet, partial answers
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error!r})")


# --------------------------------------------------------------------------- config rewriting
_WINDOW = re.compile(r"\[\s*\d+(?:ms|s|m|h|d|w|y)\s*\]")


def fast_rules(window: str = "5s", pending: str = "2s") -> dict[str, Any]:
    """The shipped rules with range windows set to ``window`` and every non-zero ``for`` to ``pending``."""
    rules = load_yaml(RULES)
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["expr"] = _WINDOW.sub(f"[{window}]", rule["expr"])
            if "for" in rule and rule["for"] not in ("0s", "0m", "0"):
                rule["for"] = pending
    return rules


def prometheus_config(
    targets: dict[str, str], rules_path: Path, alertmanager_port: int | None
) -> dict[str, Any]:
    """The shipped prometheus.yml with only the jobs of ``targets`` (job -> host:port), every 1 s."""
    cfg = load_yaml(PROMETHEUS_YML)
    cfg["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"})
    cfg["rule_files"] = [str(rules_path)]
    jobs = []
    for job in cfg["scrape_configs"]:
        if job["job_name"] not in targets:
            continue
        job = copy.deepcopy(job)
        job["scrape_interval"] = "1s"
        job["scrape_timeout"] = "1s"
        (static,) = job["static_configs"]
        static["targets"] = [targets[job["job_name"]]]
        jobs.append(job)
    assert {j["job_name"] for j in jobs} == set(targets), "a job of the test is missing in prometheus.yml"
    cfg["scrape_configs"] = jobs
    if alertmanager_port is None:
        cfg.pop("alerting", None)
    else:
        cfg["alerting"]["alertmanagers"] = [
            {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}
        ]
    return cfg


def alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """The shipped alertmanager.yml with its routes and inhibition unchanged, timers shortened, the
    webhook pointed at ``webhook_url`` and the PagerDuty, Slack and e-mail integrations removed
    (their receivers stay, as empty ones, so routing is what ships)."""
    cfg = load_yaml(ALERTMANAGER_YML)
    cfg["global"] = {"resolve_timeout": "5m"}

    def shorten(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        if "repeat_interval" in route:
            route["repeat_interval"] = "1h"
        for child in route.get("routes", []):
            shorten(child)

    cfg["route"].update({"group_wait": "1s", "group_interval": "1s"})
    shorten(cfg["route"])
    receivers = []
    for r in cfg["receivers"]:
        kept = {"name": r["name"]}
        if "webhook_configs" in r:
            kept["webhook_configs"] = [dict(c, url=webhook_url) for c in r["webhook_configs"]]
        receivers.append(kept)
    cfg["receivers"] = receivers
    return cfg


# --------------------------------------------------------------------------- processes
@contextlib.contextmanager
def server(argv: list[str], port: int, log: Path, timeout: float = 20.0) -> Iterator[str]:
    """Runs ``argv`` until the block ends; yields its base URL once ``/-/ready`` answers 200."""
    base = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"{argv[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            return http_get(base + "/-/ready", timeout=1.0)[0] == 200

        wait_until(ready, timeout, f"{Path(argv[0]).name} to be ready")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def prometheus(
    config: dict[str, Any], rules: dict[str, Any] | None, workdir: Path, flags: tuple[str, ...] = ()
) -> Iterator[str]:
    """A Prometheus with ``config`` (and ``rules``) and any extra command-line ``flags``."""
    assert PROMETHEUS, "prometheus is not installed (apt-get install prometheus)"
    workdir.mkdir(parents=True, exist_ok=True)
    if rules is not None:
        Path(config["rule_files"][0]).write_text(yaml.safe_dump(rules, sort_keys=False))
    cfg = workdir / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    argv = [
        PROMETHEUS,
        f"--config.file={cfg}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--rules.alert.resend-delay=1s",
        "--log.level=warn",
        *flags,
    ]
    with server(argv, port, workdir / "prometheus.log") as url:
        yield url


@contextlib.contextmanager
def alertmanager(config: dict[str, Any], workdir: Path) -> Iterator[str]:
    assert ALERTMANAGER, "alertmanager is not installed (apt-get install prometheus-alertmanager)"
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "alertmanager.yml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    argv = [
        ALERTMANAGER,
        f"--config.file={cfg}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip port
        "--log.level=warn",
    ]
    with server(argv, port, workdir / "alertmanager.log") as url:
        yield url


def alertmanager_port(url: str) -> int:
    return int(urllib.parse.urlsplit(url).port or 0)


# --------------------------------------------------------------------------- small HTTP servers
class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


@contextlib.contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP server that stores every JSON body POSTed to it; yields (url, payloads)."""
    payloads: list[dict[str, Any]] = []

    class Handler(_Handler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            payloads.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

    with _serving(Handler) as url:
        yield url + "/alerts", payloads


@contextlib.contextmanager
def metrics_server(pages: Callable[[str], str | None]) -> Iterator[str]:
    """Serves ``pages(path)`` as Prometheus text (404 when it returns None); yields the base URL."""

    class Handler(_Handler):
        def do_GET(self) -> None:
            text = pages(self.path)
            if text is None:
                self.send_response(404)
                self.end_headers()
                return
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with _serving(Handler) as url:
        yield url


@contextlib.contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- queries
def query(prom: str, expr: str) -> list[dict[str, Any]]:
    data = http_json(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert data["status"] == "success", data
    return list(data["data"]["result"])


def query_exemplars(prom: str, expr: str, since: float) -> list[dict[str, Any]]:
    """The exemplars Prometheus stored for the series of ``expr`` since unix time ``since``: one
    entry per series, ``seriesLabels`` and ``exemplars`` (``labels``, ``value``, ``timestamp``)."""
    params = {"query": expr, "start": f"{since:.3f}", "end": f"{time.time() + 60:.3f}"}
    data = http_json(f"{prom}/api/v1/query_exemplars?" + urllib.parse.urlencode(params))
    assert data["status"] == "success", data
    return list(data["data"] or [])


def alert_states(prom: str, name: str) -> set[str]:
    """States (pending, firing) of the active alerts called ``name`` in Prometheus."""
    data = http_json(f"{prom}/api/v1/alerts")
    return {a["state"] for a in data["data"]["alerts"] if a["labels"].get("alertname") == name}


def delivered(payloads: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The firing alerts called ``name`` in the webhook payloads received so far."""
    return [
        a
        for p in list(payloads)
        for a in p.get("alerts", [])
        if a["labels"].get("alertname") == name and a.get("status") == "firing"
    ]


# --------------------------------------------------------------------------- the whole pipeline
def safety_alert_pipeline(target: str, workdir: Path, timeout: float = 40.0) -> dict[str, Any]:
    """Scrapes ``target`` (host:port serving /metrics and /safety/metrics) with the shipped
    prometheus.yml jobs and the shipped rules (shortened), routes alerts through the shipped
    alertmanager.yml to a webhook, and waits until SafetyViolationRate has been delivered.

    Returns what was observed on the way: the query results for the counters, the states
    Prometheus reported, and the delivered webhook payloads.
    """
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    with webhook_receiver() as (hook_url, payloads):
        with alertmanager(alertmanager_config(hook_url), workdir / "alertmanager") as am:
            rules_path = workdir / "rules.yml"
            cfg = prometheus_config({APP_JOB: target, SAFETY_JOB: target}, rules_path, alertmanager_port(am))
            with prometheus(cfg, fast_rules(), workdir / "prometheus") as prom:
                up = wait_until(
                    lambda: (r := query(prom, "up == 1")) and len(r) == 2 and r,
                    left(),
                    "both scrape jobs to be up",
                )
                violations = wait_until(
                    lambda: query(
                        prom,
                        "sum by (job, instance, service, constraint_type, severity) (safety_violations_total) > 0",
                    ),
                    left(),
                    "safety_violations_total in Prometheus",
                )
                wait_until(
                    lambda: "firing" in alert_states(prom, "SafetyViolationRate"),
                    left(),
                    "SafetyViolationRate to fire",
                )
                alerts = wait_until(
                    lambda: delivered(payloads, "SafetyViolationRate"), left(), "the webhook delivery"
                )
                shutdowns = query(prom, "sum by (job, reason) (emergency_shutdowns_total)")
                # The rule's own expression without its threshold, and a naive sum over both jobs.
                (rule,) = [
                    r
                    for g in fast_rules()["groups"]
                    for r in g["rules"]
                    if r.get("alert") == "SafetyViolationRate"
                ]
                counted = query(prom, re.sub(r">\s*[0-9.]+\s*$", "", rule["expr"].strip()))
                naive = query(prom, "sum by (constraint_type) (rate(safety_violations_total[5s]))")
                return {
                    "counted": {s["metric"]["constraint_type"]: float(s["value"][1]) for s in counted},
                    "naive": {s["metric"]["constraint_type"]: float(s["value"][1]) for s in naive},
                    "up": up,
                    "violations": violations,
                    "shutdowns": shutdowns,
                    "alerts": alerts,
                    "payloads": list(payloads),
                    "alertmanager": am,
                }
