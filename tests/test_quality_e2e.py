"""Quality monitoring end to end, with a real Prometheus and Alertmanager running the shipped rules
(windows shortened) and the shipped routing to a webhook:

* a served fleet watched against the drift profile of a dataset of its own behaviour: a sensor-bias
  fault starts on T, ``feature_drift`` for T crosses 0.25, ``ModelDrift`` fires and the webhook
  names the env and the feature (and no other feature);
* a scripted fleet: episode outcomes in Prometheus match what the envs reported in
  ``info["is_success"]``, and refused calls show in ``errors_total`` and fire ``HighErrorRate``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _drift_data import zero_policy_profile
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
    prometheus,
    prometheus_config,
    query,
    wait_until,
    webhook_receiver,
)

import neorl_industrial as ni
from neorl_industrial import exporter
from neorl_industrial.metrics import Registry
from neorl_industrial.policies import make_policy
from neorl_industrial.serving import PolicyService

pytestmark = pytest.mark.timeout(240)

REACTOR = "ChemicalReactor-v0"


@pytest.fixture(autouse=True)
def stack_installed() -> None:
    if not (PROMETHEUS and ALERTMANAGER):
        pytest.fail("prometheus / prometheus-alertmanager are not installed: scripts/test.sh installs them")


@pytest.fixture(autouse=True)
def quiet_safety_logs() -> Iterator[None]:
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def test_a_sensor_bias_fault_drifts_its_feature_and_model_drift_names_it(tmp_path: Path) -> None:
    # 50 batch steps a second; a window of two episodes (120 steps, 2.4 s: a shorter one would see
    # only part of an episode and differ from the profile of whole ones); the fault starts at the
    # fleet's 400th step (8 s).
    rate, window, start = 50.0, 120, 400
    bias = {"kind": "sensor_bias", "variable": "T", "value": 6.0, "start": start, "clock": "lifetime"}
    registry = Registry()
    h = exporter.start_http_server(port=0, registry=registry)
    svc = PolicyService(
        REACTOR,
        "zero",
        num_envs=16,
        seed=1,
        registry=registry,
        audit_log=str(tmp_path / "audit.jsonl"),
        drift_profile=zero_policy_profile(REACTOR),
        drift_window=window,
        faults=[bias],
    )
    stop = threading.Event()
    runner = threading.Thread(target=svc.run, args=(rate, 60.0, lambda: "stop" if stop.is_set() else None))
    try:
        with webhook_receiver() as (hook_url, payloads):
            with alertmanager(alertmanager_config(hook_url), tmp_path / "alertmanager") as am:
                cfg = prometheus_config({APP_JOB: f"127.0.0.1:{h.port}"}, tmp_path / "rules.yml", alertmanager_port(am))
                with prometheus(cfg, fast_rules(), tmp_path / "prometheus") as prom:
                    runner.start()
                    t_drift = f'feature_drift{{env="{REACTOR}",source="observation",feature="T"}}'
                    # The baseline: once the window is full, T as the profile has it, no fault active.
                    # (Its series is 0 until the first steps: wait until the window has been full for
                    # more than a scrape interval, 1.2 s.)
                    wait_until(
                        lambda: svc.batches >= window + 60 and query(prom, f"{t_drift} < 0.1"),
                        20,
                        "a stable feature_drift for T",
                    )
                    assert svc.batches < start, "the baseline was not seen before the fault started"
                    assert "firing" not in alert_states(prom, "ModelDrift")
                    (active,) = query(prom, 'faults_active{fault="sensor_bias:T"}')
                    assert float(active["value"][1]) == 0.0
                    # The fault starts: every env's T reads 6 K high, and its drift crosses 0.25.
                    wait_until(lambda: query(prom, f"{t_drift} > 0.25"), 30, "feature_drift for T above 0.25")
                    (active,) = query(prom, 'faults_active{fault="sensor_bias:T"}')
                    assert float(active["value"][1]) == 16.0
                    alerts = wait_until(lambda: delivered(payloads, "ModelDrift"), 30, "ModelDrift at the webhook")
                    named = {(a["labels"]["env"], a["labels"]["source"], a["labels"]["feature"]) for a in alerts}
                    assert named == {(REACTOR, "observation", "T")}, "only the biased sensor drifts"
                    assert alerts[0]["labels"]["severity"] == "warning"
                    assert "T has drifted" in alerts[0]["annotations"]["summary"]
    finally:
        stop.set()
        if runner.is_alive():
            runner.join(timeout=30)
        svc.close()
        h.stop()
    started = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    started = [e for e in started if e["event"] == "fault_started"]
    assert sorted(e["env_index"] for e in started) == list(range(16)), "one fault_started line per env"
    assert {e["fault"] for e in started} == {"sensor_bias:T"}


def test_a_scripted_fleet_shows_its_success_rate_and_its_errors(tmp_path: Path) -> None:
    registry = Registry()
    h = exporter.start_http_server(port=0, registry=registry)
    envs = ni.make_vec(REACTOR, num_envs=16, registry=registry)
    pid = make_policy("pid", REACTOR, 16, 1, 0)
    outcomes = {"success": 0, "failure": 0}
    try:
        with webhook_receiver() as (hook_url, payloads):
            with alertmanager(alertmanager_config(hook_url), tmp_path / "alertmanager") as am:
                cfg = prometheus_config({APP_JOB: f"127.0.0.1:{h.port}"}, tmp_path / "rules.yml", alertmanager_port(am))
                with prometheus(cfg, fast_rules(), tmp_path / "prometheus") as prom:
                    wait_until(lambda: query(prom, "up == 1"), 20, "the exporter scraped")
                    # Two episodes per env: the PI controller on envs 0-7, nothing on envs 8-15.
                    obs, _ = envs.reset(seed=0)
                    for _ in range(2 * 61):
                        actions = pid(obs)
                        actions[8:] = 0.0
                        obs, _, _, _, info = envs.step(actions)
                        if "_is_success" in info:
                            ended = info["_is_success"]
                            outcomes["success"] += int(info["is_success"][ended].sum())
                            outcomes["failure"] += int((~info["is_success"][ended]).sum())
                    assert outcomes["success"] > 0 and outcomes["failure"] > 0
                    # Calls refused while Prometheus watches: 10 a second for 4 seconds.
                    for _ in range(40):
                        with pytest.raises(ni.InvalidActionError):
                            envs.step(np.full((16, 1), np.nan))
                        time.sleep(0.1)

                    def counts() -> dict[str, float] | None:
                        got = query(prom, "sum by (outcome) (episode_outcomes_total)")
                        c = {r["metric"]["outcome"]: float(r["value"][1]) for r in got}
                        return c if c.get("success", 0) + c.get("failure", 0) == sum(outcomes.values()) else None

                    c = wait_until(counts, 20, "the episode outcomes in Prometheus")
                    assert c == {
                        "success": outcomes["success"], "failure": outcomes["failure"], "shutdown": 0.0, "truncated": 0.0,
                    }  # fmt: skip
                    (ratio,) = query(
                        prom,
                        'sum(episode_outcomes_total{outcome="success"}) / sum(episode_outcomes_total{outcome!="truncated"})',
                    )
                    assert float(ratio["value"][1]) == pytest.approx(outcomes["success"] / sum(outcomes.values()))
                    wait_until(
                        lambda: query(prom, 'errors_total{component="env",kind="refused_input"} == 40'),
                        20,
                        "the 40 refused calls in errors_total",
                    )
                    (by_reason,) = query(prom, f'input_refused_total{{env="{REACTOR}",reason="non_finite"}}')
                    assert float(by_reason["value"][1]) == 40.0
                    alerts = wait_until(lambda: delivered(payloads, "HighErrorRate"), 30, "HighErrorRate at the webhook")
                    assert {(a["labels"]["component"], a["labels"]["kind"]) for a in alerts} == {("env", "refused_input")}
    finally:
        envs.close()
        h.stop()
