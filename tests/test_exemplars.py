"""OpenMetrics exemplars over real HTTP from the real exporter, and stored by a real Prometheus.

Histogram observations carry exemplars (``run_id``, ``episode_id``, ``incident_id``, or labels the
application gives); the exporter writes them after their bucket lines in OpenMetrics only. The ids
are those of the log lines and the audit trail of the same run, so the tests join all three.
"""

from __future__ import annotations

import functools
import json
import logging
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _monitoring_stack import (
    APP_JOB,
    PROMETHEUS,
    fast_rules,
    prometheus,
    prometheus_config,
    query_exemplars,
    wait_until,
)
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from telemetry_http import request

import neorl_industrial as ni
from neorl_industrial import logging as nlog
from neorl_industrial.exceptions import MetricError
from neorl_industrial.exporter import start_http_server
from neorl_industrial.metrics import Histogram, MonitoredPolicy, Registry, time_inference
from neorl_industrial.serving import PolicyService

pytestmark = pytest.mark.timeout(120)

RUN = "exemplar-run-1"
OPENMETRICS = {"Accept": "application/openmetrics-text; version=1.0.0"}


@pytest.fixture(autouse=True)
def run_and_limits() -> Iterator[None]:
    """One run id, and every safety event logged (so each incident has its log line)."""
    nlog.flush_suppressed()
    nlog.set_rate_limit(60.0, 100_000)
    previous = nlog.run_id()
    nlog.set_run_id(RUN)
    yield
    nlog.set_run_id(previous)
    nlog.set_rate_limit(10.0, 5)


Found = dict[str, list[tuple[dict[str, str], Any]]]


def exemplars(text: str) -> Found:
    """Bucket samples with an exemplar, by sample name: (the sample's labels, the exemplar), read
    by prometheus_client's OpenMetrics parser (which also checks the 128-character limit)."""
    out: Found = {}
    for fam in parse_openmetrics(text):
        for s in fam.samples:
            if s.exemplar is not None:
                out.setdefault(s.name, []).append((dict(s.labels), s.exemplar))
    return out


def scrape(reg: Registry) -> tuple[str, str]:
    """``/metrics`` of ``reg`` over HTTP: (OpenMetrics, text format)."""
    with start_http_server(0, registry=reg) as s:
        om = request(s.url + "metrics", headers=OPENMETRICS)
        text = request(s.url + "metrics")
    assert om.status == text.status == 200
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert text.headers["content-type"].startswith("text/plain")
    return om.text, text.text


def audit(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --------------------------------------------------------------------------- the Python API
def test_histogram_exemplars_are_served_in_openmetrics_only() -> None:
    reg = Registry()
    load = Histogram("load_seconds", "Load time.", registry=reg, buckets=(0.1, 1.0))
    req = Histogram("request_seconds", "Requests.", ["route"], registry=reg, buckets=(0.1,))
    load.observe(0.05)
    before = time.time()
    load.observe(0.3, exemplar={"run_id": "older"})
    load.observe(0.5, exemplar={"run_id": nlog.run_id(), "episode_id": "3-7"})
    req.labels("predict").observe(0.01, exemplar={"trace_id": "a\\b\nc", "city": "Zürich"})
    after = time.time()
    om, text = scrape(reg)
    found = exemplars(om)
    ((labels, ex),) = found["load_seconds_bucket"]
    assert labels == {"le": "1.0"}
    assert ex.labels == {"run_id": RUN, "episode_id": "3-7"} and ex.value == 0.5
    assert before - 1 <= ex.timestamp.sec + ex.timestamp.nsec / 1e9 <= after + 1
    ((labels, ex),) = found["request_seconds_bucket"]
    assert labels == {"le": "0.1", "route": "predict"}
    assert ex.labels == {"trace_id": "a\\b\nc", "city": "Zürich"} and ex.value == 0.01
    assert '# {trace_id="a\\\\b\\nc",city="Zürich"} 0.01 ' in om
    assert " # {" not in text and RUN not in text
    counts = {s.name: s.value for f in parse_text(text) for s in f.samples if s.name.endswith("_count")}
    assert counts["load_seconds_count"] == 3 and counts["request_seconds_count"] == 1


@pytest.mark.parametrize(
    ("exemplar", "message"),
    [
        ({"run_id": 5}, 'the value of label "run_id" must be a str, got int'),
        ([("run_id", "x")], "must be a dict of label name to str value, got list"),
        ({1: "x"}, "label names must be str, got int"),
        ({"1a": "x"}, 'invalid label name "1a"'),
        ({"__name__": "x"}, 'invalid label name "__name__"'),
        ({"run_id": "x" * 123}, "come to 129 characters; OpenMetrics allows at most 128"),
    ],
    ids=["int-value", "not-a-dict", "int-name", "bad-name", "reserved-name", "too-long"],
)
def test_bad_exemplars_are_metric_errors_and_record_nothing(exemplar: Any, message: str) -> None:
    reg = Registry()
    h = Histogram("load_seconds", "Load time.", registry=reg, buckets=(0.1,))
    with pytest.raises(MetricError, match="exemplar: .*" + message.replace("(", r"\(")):
        h.observe(0.05, exemplar=exemplar)
    with pytest.raises(MetricError, match=message.replace("(", r"\(")):
        with time_inference(registry=reg, exemplar=exemplar):
            pass
    with pytest.raises(MetricError, match=message.replace("(", r"\(")):
        MonitoredPolicy(lambda obs: obs, registry=reg, exemplar=exemplar)(np.zeros((2, 1)))
    om = reg.generate_latest(openmetrics=True).decode()
    assert "load_seconds_count 0" in om and "inference_latency_seconds_count 0" in om, om
    assert " # {" not in om


def test_exactly_128_characters_is_accepted() -> None:
    reg = Registry()
    h = Histogram("load_seconds", "Load time.", registry=reg, buckets=(0.1,))
    h.observe(0.05, exemplar={"run_id": "x" * 122})
    h.observe(0.5, exemplar={"a": "é" * 127})  # characters, not bytes
    found = exemplars(scrape(reg)[0])["load_seconds_bucket"]
    assert sorted(len("".join(k + v for k, v in ex.labels.items())) for _, ex in found) == [128, 128]


def test_inference_helpers_carry_their_exemplars() -> None:
    reg = Registry()
    with time_inference(actions=4, registry=reg, exemplar={"run_id": nlog.run_id(), "step": "1"}):
        pass
    calls = iter(range(2, 100))
    policy = MonitoredPolicy(
        lambda obs: obs, registry=reg, exemplar=lambda: {"run_id": nlog.run_id(), "step": str(next(calls))}
    )
    policy(np.zeros((3, 1)))
    policy(np.zeros((3, 1)))
    found = [ex for _, ex in exemplars(scrape(reg)[0])["inference_latency_seconds_bucket"]]
    assert {ex.labels["run_id"] for ex in found} == {RUN}
    assert {ex.labels["step"] for ex in found} <= {"1", "2", "3"}
    latest = max(found, key=lambda ex: (ex.timestamp.sec, ex.timestamp.nsec))
    assert latest.labels == {"run_id": RUN, "step": "3"}, "the latest call's"
    without = MonitoredPolicy(lambda obs: obs, registry=reg)
    before = exemplars(scrape(reg)[0])["inference_latency_seconds_bucket"]
    without(np.zeros((3, 1)))
    assert exemplars(scrape(reg)[0])["inference_latency_seconds_bucket"] == before


# --------------------------------------------------------------------------- a fleet's ids
def hot_fleet(mode: str, registry: Registry, trail: Path, steps: int) -> dict[tuple[int, int], float]:
    """Steps 4 reactors at full coolant temperature (a runaway and its shutdown every few dozen steps)
    and returns each finished episode's return by (env index, episode number)."""
    envs = ni.make_vec(
        "ChemicalReactor-v0", num_envs=4, autoreset_mode=mode, registry=registry, audit_log=trail
    )
    envs.reset(seed=0)
    returns: dict[tuple[int, int], float] = {}
    running, episode = np.zeros(4), np.ones(4, int)
    try:
        for _ in range(steps):
            _, reward, term, trunc, _ = envs.step(np.ones((4, 1), np.float32))
            running += reward
            for i in np.flatnonzero(term | trunc):
                returns[(int(i), int(episode[i]))] = float(running[i])
                running[i], episode[i] = 0.0, episode[i] + 1
        envs.audit_trail.flush()
    finally:
        envs.close()
    return returns


@pytest.mark.parametrize("mode", ["same_step", "next_step"])
def test_a_fleets_exemplars_join_its_audit_trail_and_log_lines(
    mode: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="neorl_industrial")
    reg, path = Registry(), tmp_path / "audit.jsonl"
    returns = hot_fleet(mode, reg, path, steps=150)
    assert len(returns) >= 8, returns
    om, text = scrape(reg)
    found = exemplars(om)
    events = audit(path)
    assert {e["run_id"] for e in events} == {RUN}
    shutdown_episodes = {e["episode_id"] for e in events if e["event"] == "emergency_shutdown"}

    for name in ("episode_reward_bucket", "episode_reward_by_env_bucket"):
        assert found.get(name), f"no exemplar on {name}"
        for _, ex in found[name]:
            assert set(ex.labels) == {"run_id", "episode_id"} and ex.labels["run_id"] == RUN
            env_index, episode = map(int, ex.labels["episode_id"].split("-"))
            # The episode that ended, with the return the fleet saw, and its shutdown in the trail.
            assert ex.value == pytest.approx(returns[(env_index, episode)]), ex
            assert ex.labels["episode_id"] in shutdown_episodes

    closed = {e["incident_id"]: e for e in events if e["event"] == "incident_closed"}
    logged = {
        r.incident_id: r  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "neorl_industrial.safety" and getattr(r, "event", "") == "safety violation"
    }
    assert found.get("safety_response_time_seconds_bucket"), "no exemplar on safety_response_time_seconds"
    for _, ex in found["safety_response_time_seconds_bucket"]:
        assert set(ex.labels) == {"run_id", "episode_id", "incident_id"} and ex.labels["run_id"] == RUN
        incident = closed[ex.labels["incident_id"]]
        assert (incident["episode_id"], incident["response_time_seconds"]) == (
            ex.labels["episode_id"],
            ex.value,
        )
        line = logged[ex.labels["incident_id"]]
        assert (line.run_id, line.episode_id) == (RUN, ex.labels["episode_id"])  # type: ignore[attr-defined]
    assert " # {" not in text


# --------------------------------------------------------------------------- a real Prometheus
# A policy that heats the reactors and raises on every other call (the service then takes the safe
# action for that batch, and audits the error and the recovery with the batch's number).
FLAKY = textwrap.dedent(
    """
    import numpy as np

    CALLS = [0]


    def hot(obs):
        CALLS[0] += 1
        if CALLS[0] % 2 == 0:
            raise RuntimeError("every other call fails")
        return np.ones((obs.shape[0], 1), np.float32)
    """
)


def test_prometheus_stores_exemplars_that_join_the_audit_trail_and_the_log_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if not PROMETHEUS:
        pytest.fail("prometheus is not installed: scripts/test.sh installs it")
    caplog.set_level(logging.INFO, logger="neorl_industrial")
    (tmp_path / "exemplar_policies.py").write_text(FLAKY)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg, path = Registry(), tmp_path / "audit.jsonl"
    handle = start_http_server(0, registry=reg)
    svc = PolicyService(
        "ChemicalReactor-v0", "exemplar_policies:hot", num_envs=4, registry=reg, audit_log=str(path)
    )
    # Overridden at full heat whatever the policy answers: every batch heats, failed ones too.
    svc.intervene(
        {"action": "override", "envs": [0, 1, 2, 3], "value": [1.0], "reason": "test", "operator": "t"}
    )
    stop = threading.Event()
    runner = threading.Thread(target=svc.run, args=(50.0, None, lambda: "stop" if stop.is_set() else None))
    started = time.time()
    runner.start()
    stored: dict[str, list[dict[str, Any]]] = {}
    try:
        cfg = prometheus_config({APP_JOB: f"127.0.0.1:{handle.port}"}, tmp_path / "rules.yml", None)
        flags = ("--enable-feature=exemplar-storage",)
        with prometheus(cfg, fast_rules(), tmp_path / "prometheus", flags) as prom:

            def two_at_least(family: str) -> list[dict[str, Any]] | None:
                """The family's stored exemplars once there are two (of successive scrapes)."""
                series = query_exemplars(prom, f"{family}_bucket", started - 60)
                return series if sum(len(s["exemplars"]) for s in series) >= 2 else None

            for family in ("safety_response_time_seconds", "episode_reward", "inference_latency_seconds"):
                series = wait_until(
                    functools.partial(two_at_least, family), 60, f"exemplars of {family} in Prometheus"
                )
                stored[family] = [
                    {**ex["labels"], "_value": float(ex["value"]), "_job": s["seriesLabels"]["job"]}
                    for s in series
                    for ex in s["exemplars"]
                ]
    finally:
        stop.set()
        runner.join(timeout=30)
        svc.close()
        handle.stop()
    assert not runner.is_alive()
    events = audit(path)
    logged = [
        r
        for r in caplog.records
        if r.name == "neorl_industrial.safety" and getattr(r, "event", "") == "safety violation"
    ]
    assert {e["run_id"] for e in events} == {r.run_id for r in logged} == {RUN}  # type: ignore[attr-defined]
    for family, found in stored.items():
        assert found and {ex["run_id"] for ex in found} == {RUN}, (family, found)
        assert {ex["_job"] for ex in found} == {APP_JOB}

    # Incidents: the audit trail closed each with that response time; its opening was logged.
    closed = {e["incident_id"]: e for e in events if e["event"] == "incident_closed"}
    opened_lines = {r.incident_id: r for r in logged}  # type: ignore[attr-defined]
    for ex in stored["safety_response_time_seconds"]:
        incident = closed[ex["incident_id"]]
        assert (incident["episode_id"], incident["response_time_seconds"]) == (ex["episode_id"], ex["_value"])
        assert opened_lines[ex["incident_id"]].episode_id == ex["episode_id"]  # type: ignore[attr-defined]
    # Episodes: each ended with an emergency shutdown in the trail and in the logs.
    shutdowns = {e["episode_id"] for e in events if e["event"] == "emergency_shutdown"}
    shutdown_lines = {
        r.episode_id  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "neorl_industrial.safety" and getattr(r, "event", "") == "emergency shutdown"
    }
    for ex in stored["episode_reward"]:
        assert set(ex) == {"run_id", "episode_id", "_value", "_job"}
        assert ex["episode_id"] in shutdowns and ex["episode_id"] in shutdown_lines
    # Inferences: each batch number is that of a service audit line (the policy's error or recovery).
    audited_batches = {str(e["batch"]) for e in events if e["event"].startswith(("policy_", "model_"))}
    for ex in stored["inference_latency_seconds"]:
        assert set(ex) == {"run_id", "batch", "_value", "_job"}
        assert ex["batch"] in audited_batches, (ex, sorted(audited_batches, key=int)[:20])
