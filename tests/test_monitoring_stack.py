"""The shipped monitoring configuration in real servers (Debian's prometheus and
prometheus-alertmanager), against a synthetic target: Prometheus scrapes with the shipped jobs and
evaluates the shipped rules, Alertmanager routes and inhibits with the shipped config, and a webhook
inside the test receives the result. tests/test_monitoring_e2e.py runs the same pipeline against the
real exporter.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _monitoring_stack import (
    ALERTMANAGER,
    PROMETHEUS,
    alertmanager,
    alertmanager_config,
    delivered,
    fast_rules,
    http_json,
    metrics_server,
    safety_alert_pipeline,
    wait_until,
    webhook_receiver,
)
from _promql import metric_names

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
def _servers_installed() -> None:
    if not (PROMETHEUS and ALERTMANAGER):
        pytest.fail("prometheus / prometheus-alertmanager are not installed: scripts/test.sh installs them")


def synthetic_exposition(start: float, path: str) -> str | None:
    """What a process with 16 reactors running hot would expose: five temperature violations per second."""
    if path not in ("/metrics", "/safety/metrics"):
        return None
    n = int((time.monotonic() - start) * 5)
    text = (
        "# HELP safety_violations_total Safety constraint violations.\n"
        "# TYPE safety_violations_total counter\n"
        f'safety_violations_total{{constraint_type="temperature",severity="warning"}} {n}\n'
        'safety_violations_total{constraint_type="actuator_rate",severity="warning"} 0\n'
        "# HELP emergency_shutdowns_total Emergency shutdowns.\n"
        "# TYPE emergency_shutdowns_total counter\n"
        'emergency_shutdowns_total{reason="thermal_runaway"} 0\n'
    )
    if path == "/metrics":
        text += "# HELP env_steps_total Environment steps.\n# TYPE env_steps_total counter\n"
        text += f'env_steps_total{{env="ChemicalReactor-v0"}} {n * 16}\n'
    return text


def test_rules_are_shortened_for_the_live_test_but_otherwise_shipped() -> None:
    rules = fast_rules(window="5s", pending="2s")
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert "[1m]" not in rule["expr"] and "[5m]" not in rule["expr"]
            assert rule.get("for", "0s") in ("0s", "2s")
            # still selects what it did (the Watchdog selects nothing: it always fires)
            assert metric_names(rule["expr"]) or rule.get("alert") == "Watchdog"


def test_violations_scraped_by_prometheus_fire_and_reach_the_webhook(tmp_path: Path) -> None:
    start = time.monotonic()
    with metrics_server(lambda path: synthetic_exposition(start, path)) as url:
        seen = safety_alert_pipeline(url.removeprefix("http://"), tmp_path)
    # Both endpoints of one process end up with the same instance (the host), and service label.
    assert {(s["metric"]["job"], s["metric"]["instance"], s["metric"]["service"]) for s in seen["up"]} == {
        ("neorl-industrial", "127.0.0.1", "neorl-industrial"),
        ("safety-monitor", "127.0.0.1", "neorl-industrial"),
    }
    assert {s["metric"]["constraint_type"] for s in seen["violations"]} == {"temperature"}
    (alert,) = {a["fingerprint"]: a for a in seen["alerts"]}.values()
    assert alert["labels"] == {
        "alertname": "SafetyViolationRate",
        "constraint_type": "temperature",
        "service": "neorl-industrial",
        "severity": "critical",
        "monitor": "neorl-industrial",  # prometheus.yml's external label
    }
    assert (
        alert["annotations"]["runbook_url"]
        == "docs/runbooks/safety-violation-response.md#safetyviolationrate"
    )
    assert " violations/s " in alert["annotations"]["description"]
    # Scraped by both jobs, counted once by the rule: half of the naive sum over the jobs.
    assert seen["counted"]["temperature"] > 0
    assert 1.6 <= seen["naive"]["temperature"] / seen["counted"]["temperature"] <= 2.4, seen
    # The group SafetyViolationRate went out in (the Watchdog goes to the dead man's switch on its own;
    # with the rules' windows shortened, a meta alert may fire while the first scrape is pending).
    firing = [
        p
        for p in seen["payloads"]
        if p["status"] == "firing" and any(a["labels"]["alertname"] == "SafetyViolationRate" for a in p["alerts"])
    ]
    (payload,) = {p["groupKey"]: p for p in firing}.values()
    assert payload["receiver"] == "incident-webhook"


def test_alertmanager_inhibits_a_services_warnings_while_it_has_a_critical_alert(tmp_path: Path) -> None:
    with webhook_receiver() as (hook, payloads), alertmanager(alertmanager_config(hook), tmp_path) as am:
        sent = [
            {
                "alertname": "ServiceDown",
                "severity": "critical",
                "service": "neorl-industrial",
                "job": "neorl-industrial",
            },
            {"alertname": "HighMemoryUsage", "severity": "warning", "service": "neorl-industrial"},
            {"alertname": "HighMemoryUsage", "severity": "warning", "service": "node-exporter"},
        ]
        http_json(f"{am}/api/v2/alerts", [{"labels": labels, "annotations": {}} for labels in sent])

        def states() -> dict[tuple[str, str], str] | None:
            got = {
                (a["labels"]["alertname"], a["labels"]["service"]): a["status"]["state"]
                for a in http_json(f"{am}/api/v2/alerts")
            }
            return got if len(got) == 3 else None

        assert wait_until(states, 15, "three alerts in Alertmanager") == {
            ("ServiceDown", "neorl-industrial"): "active",
            ("HighMemoryUsage", "neorl-industrial"): "suppressed",
            ("HighMemoryUsage", "node-exporter"): "active",
        }
        wait_until(
            lambda: delivered(payloads, "ServiceDown") and delivered(payloads, "HighMemoryUsage"),
            15,
            "deliveries",
        )
        time.sleep(1.5)  # one more group interval: the inhibited warning must stay undelivered
        services = {a["labels"]["service"] for a in delivered(payloads, "HighMemoryUsage")}
        assert services == {"node-exporter"}
