"""Metrics: the prometheus_client-style API, built-in contract names, the cardinality guard,
both exposition formats, the prometheus_client adapter."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text
from telemetry_http import promtool_check

from neorl_industrial import metrics
from neorl_industrial.exceptions import MetricError
from neorl_industrial.metrics import Counter, Gauge, Histogram, MonitoredPolicy, Registry, time_inference

CONTRACT = {
    "safety_violations_total": ("counter", {"constraint_type", "severity"}),
    "emergency_shutdowns_total": ("counter", {"reason"}),
    "inference_latency_seconds": ("histogram", set()),
    "active_environments": ("gauge", set()),
    "episode_reward": ("histogram", set()),
    "actions_computed_total": ("counter", set()),
    "episodes_total": ("counter", {"env"}),
    "env_steps_total": ("counter", {"env"}),
    "step_latency_seconds": ("histogram", {"env"}),
    "safety_response_time_seconds": ("histogram", set()),
    "human_interventions_total": ("counter", {"reason"}),
    "shield_interventions_total": ("counter", {"env"}),
    "last_safety_violation_timestamp_seconds": ("gauge", set()),
    "audit_events_dropped_total": ("counter", set()),
    "neorl_industrial_build_info": ("gauge", {"version", "target", "profile"}),
}


def samples(reg: Registry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in parse_text(reg.generate_latest().decode()):
        for s in fam.samples:
            labels = dict(s.labels)
            if "le" in labels:  # the text format writes 1 where OpenMetrics writes 1.0
                labels["le"] = str(float(labels["le"]))
            out[(s.name, tuple(sorted(labels.items())))] = s.value
    return out


def value(reg: Registry, name: str, **labels: str) -> float:
    return samples(reg)[(name, tuple(sorted(labels.items())))]


def batch(reg: Registry, env: str = "ChemicalReactor-v0"):
    return reg.core.env_metrics(
        env, ["temperature", "temperature"], ["warning", "critical"], ["t_high", "t_runaway"]
    )


def test_every_contract_family_has_its_name_type_and_labels() -> None:
    reg = Registry()
    m = batch(reg)
    m.record_batch(4, [1.0], 0.001, [1, 0], [0, 1], 1, [0.01])
    metrics.record_human_intervention("manual override", registry=reg)
    families = {f.name: f for f in parse_text(reg.generate_latest().decode())}
    for name, (kind, labels) in CONTRACT.items():
        base = name.removesuffix("_total") if kind == "counter" else name
        assert base in families, name
        fam = families[base]
        assert fam.type == kind, name
        sample_labels = {k for s in fam.samples for k in s.labels} - {"le"}
        assert sample_labels == labels, name

    def bounds(fam: str) -> list[float]:
        return [float(s.labels["le"]) for s in families[fam].samples if s.name.endswith("_bucket")]

    assert bounds("inference_latency_seconds") == [0.001, 0.01, 0.05, 0.1, 0.5, 1.0, math.inf]
    assert bounds("episode_reward") == [-100, -10, -1, 0, 1, 10, 100, math.inf]
    for p in [
        "process_resident_memory_bytes",
        "process_cpu_seconds",
        "process_open_fds",
        "process_start_time_seconds",
        "process_virtual_memory_bytes",
    ]:
        assert p in families, p
    assert families["process_resident_memory_bytes"].samples[0].value > 1e6


def test_a_batch_records_once_per_batch_with_env_labels() -> None:
    reg = Registry()
    m = batch(reg)
    m.set_active(16)
    before = time.time()
    m.record_batch(16, [-5.0, 50.0, 200.0], 0.003, [2, 1], [0, 1], 3, [0.02, 0.2])
    m.record_batch(16, [], 0.002, [0, 0], [0, 0], 0, [])
    env = "ChemicalReactor-v0"
    assert value(reg, "env_steps_total", env=env) == 32
    assert value(reg, "episodes_total", env=env) == 3
    assert value(reg, "step_latency_seconds_count", env=env) == 2
    assert value(reg, "shield_interventions_total", env=env) == 3
    assert value(reg, "safety_violations_total", constraint_type="temperature", severity="warning") == 2
    assert value(reg, "safety_violations_total", constraint_type="temperature", severity="critical") == 1
    assert value(reg, "emergency_shutdowns_total", reason="t_runaway") == 1
    assert value(reg, "episode_reward_bucket", le="10.0") == 1
    assert value(reg, "episode_reward_count") == 3
    assert value(reg, "safety_response_time_seconds_count") == 2
    assert value(reg, "active_environments") == 16
    assert before - 1 <= value(reg, "last_safety_violation_timestamp_seconds") <= time.time() + 1
    m2 = batch(reg, "Other-v0")
    m2.set_active(4)
    assert value(reg, "active_environments") == 20
    del m2
    assert value(reg, "active_environments") == 16


def test_counter_gauge_histogram_api() -> None:
    reg = Registry()
    c = Counter("jobs_total", "Jobs done", ["kind"], registry=reg)
    c.labels("a").inc()
    c.labels(kind="a").inc(2.5)
    c.labels("b").inc()
    plain = Counter("plain", "No labels", registry=reg)
    plain.inc()
    g = Gauge("level", "Level", namespace="tank", unit="meters", registry=reg)
    g.set(4)
    g.inc(2)
    g.dec()
    h = Histogram("wait_seconds", "Wait", buckets=[0.1, 1.0], registry=reg)
    h.observe(0.05)
    h.observe(5)
    assert value(reg, "jobs_total", kind="a") == 3.5
    assert value(reg, "plain_total") == 1 and plain.get() == 1
    assert value(reg, "tank_level_meters") == 5 and g.get() == 5
    assert value(reg, "wait_seconds_bucket", le="0.1") == 1
    assert value(reg, "wait_seconds_bucket", le="inf") == 2
    assert value(reg, "wait_seconds_sum") == pytest.approx(5.05)


def test_timers_work_as_context_managers_and_decorators() -> None:
    reg = Registry()
    h = Histogram("op_seconds", "Op", registry=reg)
    with h.time():
        time.sleep(0.01)

    @h.time()
    def f() -> int:
        return 7

    assert f() == 7 and f() == 7
    assert value(reg, "op_seconds_count") == 3
    assert value(reg, "op_seconds_sum") >= 0.01
    g = Gauge("inprogress", "In progress", registry=reg)
    with g.track_inprogress():
        assert g.get() == 1
    assert g.get() == 0
    lh = Histogram("lab_seconds", "Labelled", ["op"], registry=reg)
    with lh.labels("x").time():
        pass
    assert value(reg, "lab_seconds_count", op="x") == 1


def test_misuse_raises_metric_errors() -> None:
    reg = Registry()
    c = Counter("c_total", "c", ["a"], registry=reg)
    with pytest.raises(MetricError, match="non-negative"):
        c.labels("x").inc(-1)
    with pytest.raises(MetricError, match="labels"):
        c.inc()
    with pytest.raises(MetricError, match=r"c: expected 1 label values \('a',\), got 2"):
        c.labels("x", "y")
    with pytest.raises(MetricError, match=r"c: expected labels \('a',\), got \('b',\)"):
        c.labels(b="x")
    with pytest.raises(MetricError, match="no labels"):
        Counter("d", "d", registry=reg).labels("x")
    with pytest.raises(MetricError, match="duplicated"):
        Gauge("c_total", "again", registry=reg)
    with pytest.raises(MetricError, match="duplicated"):
        Gauge("env_steps_total", "built-in", registry=reg)
    with pytest.raises(MetricError, match="invalid metric name"):
        Gauge("bad-name", "x", registry=reg)
    with pytest.raises(MetricError, match="invalid label name"):
        Histogram("h", "x", ["le"], registry=reg)
    with pytest.raises(MetricError, match="buckets"):
        Histogram("h2", "x", buckets=[1.0, 0.5], registry=reg)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_label_sets"):
            Registry(max_label_sets=bad)
    with pytest.raises(MetricError, match="actions: must be non-negative, got -1"):
        time_inference(actions=-1)
    with pytest.raises(MetricError, match="severity"):
        reg.core.env_metrics("x", ["t"], ["severe"], ["n"])
    assert reg.unregister("c_total")
    Gauge("c_total", "now free", registry=reg)
    assert not reg.unregister("episodes_total")


def test_time_inference_and_monitored_policy_record_inference_metrics() -> None:
    reg = Registry()
    assert reg.health()["checks"]["model_loaded"]["status"] == "fail"
    with time_inference(registry=reg):
        time.sleep(0.002)

    @time_inference(actions=8, registry=reg)
    def act(obs: np.ndarray) -> np.ndarray:
        return np.zeros((8, 2))

    act(np.zeros(3))
    with pytest.raises(RuntimeError), time_inference(registry=reg):
        raise RuntimeError("boom")
    policy = MonitoredPolicy(lambda obs: np.zeros((len(obs), 2)), registry=reg)
    policy(np.zeros((32, 3)))
    single = MonitoredPolicy(lambda obs: np.zeros(2), registry=reg)
    single(np.zeros(3))
    assert value(reg, "inference_latency_seconds_count") == 5
    assert value(reg, "actions_computed_total") == 1 + 8 + 0 + 32 + 1
    assert value(reg, "inference_latency_seconds_sum") >= 0.002
    assert reg.health()["checks"]["model_loaded"]["status"] == "pass"
    with pytest.raises(TypeError, match="policy must be callable, got int"):
        MonitoredPolicy(42, registry=reg)  # type: ignore[arg-type]


def test_cardinality_guard_bounds_100k_label_values() -> None:
    limit = 1000
    reg = Registry(max_label_sets=limit)
    c = Counter("requests_total", "Requests", ["user"], registry=reg)
    for i in range(100_000):
        c.labels(f"user-{i}").inc()
    text = reg.generate_latest().decode()
    series = [line for line in text.splitlines() if line.startswith("requests_total{")]
    assert len(series) == limit + 1
    assert value(reg, "requests_total", user="other") == 100_000 - limit
    assert value(reg, "metric_label_overflow_total", metric="requests") == 100_000 - limit
    # Neither the Rust family nor the Python child cache grows past the limit.
    assert len(c._children) == limit
    assert len(text) < 200_000
    # Env batches with unbounded ids fold the same way.
    handles = [reg.core.env_metrics(f"env-{i}", [], [], []) for i in range(limit + 10)]
    assert value(reg, "env_steps_total", env="other") == 0
    assert value(reg, "metric_label_overflow_total", metric="env_steps") == 10
    del handles


def test_openmetrics_output_is_valid_openmetrics() -> None:
    reg = Registry()
    batch(reg).record_batch(2, [3.0], 0.001, [1, 0], [0, 0], 0, [])
    Counter("odd_help_total", 'Help with "quotes", a \\ backslash\nand a newline', registry=reg).inc()
    om = reg.generate_latest(openmetrics=True).decode()
    assert om.endswith("# EOF\n")
    names = {f.name for f in parse_om(om)}
    assert {"safety_violations", "episode_reward", "odd_help", "process_cpu_seconds"} <= names
    # OpenMetrics forbids _sum/_count on histograms with negative buckets; the text format keeps them.
    assert "episode_reward_sum" not in om and "episode_reward_count" not in om
    assert 'episode_reward_bucket{le="+Inf"} 1' in om
    assert "episode_reward_sum 3.0" in reg.generate_latest().decode()


def test_text_output_passes_promtool() -> None:
    reg = Registry()
    batch(reg).record_batch(2, [3.0], 0.001, [1, 0], [0, 0], 0, [])
    Histogram("work_seconds", "Work", ["kind"], registry=reg).labels('a"b\\c\nd').observe(1)
    r = promtool_check(reg.generate_latest().decode())
    assert r.returncode == 0, r.stdout + r.stderr


def test_record_safety_violation_counts_and_stamps() -> None:
    reg = Registry()
    vid = metrics.record_safety_violation(
        "pressure", "critical", constraint="p_high", current_value=2.5, limit=2.0, env="plant-1", registry=reg
    )
    assert vid.startswith("sv-")
    assert (
        metrics.record_safety_violation("pressure", "critical", violation_id="mine", registry=reg) == "mine"
    )
    metrics.record_emergency_shutdown("p_high", env="plant-1", registry=reg)
    assert value(reg, "safety_violations_total", constraint_type="pressure", severity="critical") == 2
    assert value(reg, "emergency_shutdowns_total", reason="p_high") == 1
    assert value(reg, "last_safety_violation_timestamp_seconds") > 1e9
    reg.core.record_audit_dropped(3)
    assert value(reg, "audit_events_dropped_total") == 3


def test_default_registry_is_shared_with_the_core() -> None:
    from neorl_industrial import _core

    assert metrics.REGISTRY.core.same_as(_core.MetricsRegistry.default_registry())
    assert not metrics.REGISTRY.core.same_as(Registry().core)
    assert b"env_steps_total" in metrics.generate_latest()


def test_prometheus_client_adapter_exposes_our_registry() -> None:
    import prometheus_client

    reg = Registry()
    batch(reg).record_batch(5, [], 0.001, [0, 0], [0, 0], 0, [])
    target = prometheus_client.CollectorRegistry()
    prometheus_client.ProcessCollector(registry=target)
    Counter("ours_total", "Ours", registry=reg).inc(3)
    target.register(metrics.PrometheusClientCollector(reg))
    out = prometheus_client.generate_latest(target).decode()
    assert 'env_steps_total{env="ChemicalReactor-v0"} 5.0' in out
    assert "ours_total 3.0" in out
    # Their process collector, not a second copy of ours.
    assert out.count("# TYPE process_cpu_seconds_total counter") == 1
    assert not math.isnan(value(reg, "ours_total"))
