"""End to end against the real exporter: a ChemicalReactor fleet driven into violations, exported by
``neorl_industrial.exporter``, scraped by a real Prometheus with the shipped jobs and rules, routed by
a real Alertmanager with the shipped config to a webhook inside the test
(tests/test_monitoring_stack.py runs the same pipeline against a synthetic target). A model served by
``neorl_industrial.serving.PolicyService`` (what ``neorl-industrial serve`` runs) goes through the
same pipeline when it fails.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _assets import all_expressions
from _monitoring_stack import (
    ALERTMANAGER,
    APP_JOB,
    PROMETHEUS,
    alert_states,
    alertmanager,
    alertmanager_config,
    alertmanager_port,
    delivered,
    fast_rules,
    http_get,
    prometheus,
    prometheus_config,
    query,
    safety_alert_pipeline,
    wait_until,
    webhook_receiver,
)
from _promql import SYNTHETIC, exposition_names, metric_names, samples, series_catalogue
from telemetry_http import promtool_check

import neorl_industrial as ni
from neorl_industrial import exporter
from neorl_industrial.metrics import REGISTRY, Registry
from neorl_industrial.serving import PolicyService

pytestmark = pytest.mark.timeout(90)

NUM_ENVS = 16
# Families exported only once something happened (the overflow series appears with the first fold).
ON_FIRST_EVENT = {"metric_label_overflow_total"}
NOT_SAFETY = {"env_steps_total", "episodes_total", "step_latency_seconds_bucket", "inference_latency_seconds_bucket",
              "actions_computed_total", "episode_reward_bucket", "active_environments", "process_resident_memory_bytes",
              "model_info", "policy_errors_total", "model_reloads_total", "shadow_action_divergence_bucket",
              "shadow_would_violate_total", "shadow_inference_latency_seconds_bucket", "shadow_errors_total",
              "feature_drift", "feature_drift_wasserstein"}  # fmt: skip


@pytest.fixture(scope="module")
def handle() -> Iterator[Any]:
    h = exporter.start_http_server(port=0)
    try:
        assert h.port > 0 and str(h.port) in h.url
        yield h
    finally:
        h.stop()


def base(h: Any) -> str:
    return f"http://127.0.0.1:{h.port}"


@pytest.fixture(scope="module")
def hot_fleet(handle: Any) -> Iterator[dict[str, int]]:
    """Steps a reactor fleet at full coolant temperature in the background until the module ends:
    warnings (T > 331 K) within a few steps, thermal runaway (T > 350 K) and shutdowns after."""
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=NUM_ENVS)
    envs.reset(seed=0)
    actions = np.ones((NUM_ENVS, 1), np.float32)
    stop = threading.Event()
    stats: dict[str, Any] = {"steps": 0, "error": None}

    def drive() -> None:
        try:
            while not stop.is_set():
                envs.step(actions)
                stats["steps"] += 1
                stop.wait(0.01)
        except Exception as e:  # reported by the tests, not lost in the thread
            stats["error"] = e

    thread = threading.Thread(target=drive, name="hot-fleet", daemon=True)
    thread.start()
    try:
        wait_until(lambda: stats["steps"] >= 20 or stats["error"], 10, "the fleet to step")
        assert stats["error"] is None, stats["error"]
        yield stats
    finally:
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the fleet's stepping thread hung"
        envs.close()


@pytest.fixture(scope="module")
def service(handle: Any) -> Iterator[PolicyService]:
    """A policy served on the process-wide registry (the exporter's), with a shadow and a drift
    profile, as `serve` runs it: the serving families exist on a registry once a service has started
    on it."""
    from neorl_industrial import datasets

    data = datasets.generate("ChemicalReactor-v0", "expert", n_transitions=400, seed=0, num_envs=4, progress=False)
    with PolicyService(
        "ChemicalReactor-v0", "pid", num_envs=4, shadow_policy="zero", drift_profile=datasets.profile(data)
    ) as s:
        for _ in range(3):
            assert s.step()
        yield s


def test_declared_label_sets_are_exported_before_any_event(handle: Any) -> None:
    # The alerts use rate()/increase(), which only see an increment from a series that already
    # existed: a fleet's constraint label sets must be exported (at 0) as soon as it is made.
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=2)
    try:
        exported = {
            (name, tuple(sorted(labels.items())))
            for name, labels, _ in samples(http_get(base(handle) + "/metrics")[1].decode())
        }
        for c in ni.spec("ChemicalReactor-v0")["constraints"]:
            for series in [
                (
                    "safety_violations_total",
                    (("constraint_type", c["constraint_type"]), ("severity", c["severity"])),
                ),
                ("emergency_shutdowns_total", (("reason", c["name"]),)),
            ]:
                assert series in exported, series
        assert ("env_steps_total", (("env", "ChemicalReactor-v0"),)) in exported
    finally:
        envs.close()


# What Prometheus 2.x sends: OpenMetrics preferred, the 0.0.4 text format as the fallback.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize(
    "accept", ["text/plain;version=0.0.4", PROMETHEUS_ACCEPT], ids=["text", "openmetrics"]
)
def test_exporter_serves_every_metric_the_monitoring_uses(
    handle: Any, hot_fleet: dict[str, Any], service: PolicyService, accept: str
) -> None:
    status, body = http_get(base(handle) + "/metrics", headers={"Accept": accept})
    assert status == 200
    text = body.decode()
    served = exposition_names(text)
    used = set().union(*(metric_names(e) for _, e in all_expressions())) - SYNTHETIC.keys() - ON_FIRST_EVENT
    assert used <= served, f"used by rules/dashboards/runbooks but not exported: {sorted(used - served)}"
    undocumented = served - series_catalogue(extra=True).keys()
    assert not undocumented, f"exported but not in docs/metrics.md: {sorted(undocumented)}"
    if accept.startswith("text/plain"):
        lint = promtool_check(text)
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_safety_endpoint_serves_the_safety_families_only(
    handle: Any, hot_fleet: dict[str, Any], service: PolicyService
) -> None:
    status, body = http_get(base(handle) + "/safety/metrics")
    assert status == 200
    names = exposition_names(body.decode())
    assert {"safety_violations_total", "emergency_shutdowns_total"} <= names
    assert not names & NOT_SAFETY, sorted(names & NOT_SAFETY)


def test_health_endpoints_answer_the_probes(handle: Any, hot_fleet: dict[str, Any]) -> None:
    for path in ("/health", "/health/live", "/livez", "/healthz", "/health/detailed"):
        assert http_get(base(handle) + path)[0] == 200, path
    # A live fleet with its safety monitoring on is ready: violations and runaways that end in an
    # autoreset are no emergency shutdown of the batch (only a batch without autoreset stays shut down).
    detailed = http_get(base(handle) + "/health/detailed")[1].decode()
    for path in ("/health/ready", "/readyz"):
        assert http_get(base(handle) + path)[0] == 200, (path, detailed)


def test_fleet_violations_fire_and_reach_the_webhook(
    handle: Any, hot_fleet: dict[str, Any], tmp_path: Path
) -> None:
    if not (PROMETHEUS and ALERTMANAGER):
        pytest.fail("prometheus / prometheus-alertmanager are not installed: scripts/test.sh installs them")
    seen = safety_alert_pipeline(f"127.0.0.1:{handle.port}", tmp_path, timeout=60)
    assert hot_fleet["error"] is None, hot_fleet["error"]
    assert "temperature" in {s["metric"]["constraint_type"] for s in seen["violations"]}
    assert any(
        s["metric"].get("reason") == "thermal_runaway" and float(s["value"][1]) > 0 for s in seen["shutdowns"]
    ), seen["shutdowns"]
    types = {a["labels"]["constraint_type"] for a in seen["alerts"]}
    assert "temperature" in types
    assert all(
        a["labels"]["severity"] == "critical" and a["labels"]["service"] == "neorl-industrial"
        for a in seen["alerts"]
    )
    assert 1.6 <= seen["naive"]["temperature"] / seen["counted"]["temperature"] <= 2.4, (
        "scraped twice, counted once"
    )


def test_serve_command_accepts_the_deploy_arguments() -> None:
    res = subprocess.run([sys.executable, "-m", "neorl_industrial.cli", "serve", "--help"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr
    for option in ("--env", "--num-envs", "--policy", "--host", "--port", "--safety-port"):
        assert option in res.stdout, f"deploy/ passes {option} to `neorl-industrial serve`"


def test_the_serving_model_is_exported_with_its_identity(handle: Any, service: PolicyService) -> None:
    text = http_get(base(handle) + "/metrics")[1].decode()
    found = {
        name: (labels, value)
        for name, labels, value in samples(text)
        if name.startswith(("model_", "shadow_"))
    }
    labels, value = found["model_info"]
    assert value == 1 and labels == service.policy.identity(), labels
    assert labels["name"] == "pid" and labels["framework"] == "builtin"
    assert found["shadow_action_divergence_count"][1] == 3 * 4  # one per env per batch step
    assert found["shadow_inference_latency_seconds_count"][1] == 3
    check = REGISTRY.health()["checks"]["model_loaded"]
    assert {k: check[k] for k in labels} == labels, check


# A policy that answers NaN while FAIL is set, and a shadow that asks for twice the full action.
SERVED_POLICIES = textwrap.dedent(
    """
    import threading

    import numpy as np

    FAIL = threading.Event()


    def steady(obs):
        out = np.zeros((obs.shape[0], 1), np.float32)
        if FAIL.is_set():
            out[:] = np.nan
        return out


    def wild(obs):
        return np.full((obs.shape[0], 1), 2.0, np.float32)
    """
)


def test_policy_errors_and_a_refused_reload_fire_and_reach_the_webhook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (PROMETHEUS and ALERTMANAGER):
        pytest.fail("prometheus / prometheus-alertmanager are not installed: scripts/test.sh installs them")
    (tmp_path / "e2e_served_policies.py").write_text(SERVED_POLICIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    import e2e_served_policies  # type: ignore[import-not-found]

    registry = Registry()
    h = exporter.start_http_server(port=0, registry=registry)
    svc = PolicyService(
        "ChemicalReactor-v0",
        "e2e_served_policies:steady",
        num_envs=8,
        shadow_policy="e2e_served_policies:wild",
        registry=registry,
        audit_log=str(tmp_path / "audit.jsonl"),
    )
    stop = threading.Event()
    runner = threading.Thread(target=svc.run, args=(20.0, None, lambda: "stop" if stop.is_set() else None))
    runner.start()
    try:
        with webhook_receiver() as (hook_url, payloads):
            with alertmanager(alertmanager_config(hook_url), tmp_path / "alertmanager") as am:
                cfg = prometheus_config(
                    {APP_JOB: f"127.0.0.1:{h.port}"}, tmp_path / "rules.yml", alertmanager_port(am)
                )
                with prometheus(cfg, fast_rules(), tmp_path / "prometheus") as prom:
                    (info,) = wait_until(lambda: query(prom, "model_info"), 30, "model_info in Prometheus")
                    assert {k: info["metric"][k] for k in ("name", "framework", "job", "service")} == {
                        "name": "steady", "framework": "python", "job": APP_JOB, "service": "neorl-industrial",
                    }  # fmt: skip
                    # The shadow acts 2.0 (outside [-1, 1]): counted, and 2 apart from the acting policy.
                    wait_until(
                        lambda: query(prom, 'shadow_would_violate_total{constraint_type="action_range"} > 0'),
                        30,
                        "the shadow's out-of-range actions in Prometheus",
                    )
                    (p95,) = wait_until(
                        lambda: query(
                            prom,
                            "histogram_quantile(0.95, sum by (le) (rate(shadow_action_divergence_bucket[30s])))",
                        ),
                        30,
                        "the divergence quantile",
                    )
                    assert 1.0 < float(p95["value"][1]) <= 2.0, p95

                    e2e_served_policies.FAIL.set()
                    alerts = wait_until(
                        lambda: delivered(payloads, "PolicyErrors"), 40, "PolicyErrors at the webhook"
                    )
                    assert {(a["labels"]["kind"], a["labels"]["severity"], a["labels"]["service"]) for a in alerts} == {
                        ("non_finite", "critical", "neorl-industrial")
                    }  # fmt: skip
                    assert np.all(svc.last_actions == -1.0), "the failing batches take the safe action"

                    refused = svc.reload(str(tmp_path / "missing.onnx")).result(timeout=30)
                    assert refused["result"] == "failure" and refused["serving"]["name"] == "steady"
                    wait_until(
                        lambda: "firing" in alert_states(prom, "ModelReloadFailed"),
                        30,
                        "ModelReloadFailed to fire",
                    )
                    (info,) = query(prom, "model_info")
                    assert info["metric"]["name"] == "steady", "the old model keeps serving"
    finally:
        stop.set()
        runner.join(timeout=30)
        svc.close()
        h.stop()
    assert not runner.is_alive()
