"""One schema for log lines, audit events and MLflow: the field names they share, the run id, episode
and incident ids that join them, structlog, and the standalone checker's counted and logged alarms."""

from __future__ import annotations

import importlib
import io
import json
import logging
import logging.config
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import structlog

import neorl_industrial as ni
from neorl_industrial import ConfigError, _core
from neorl_industrial import logging as nlog
from neorl_industrial.metrics import MonitoredPolicy, Registry
from neorl_industrial.safety import AuditTrail, SafetyChecker

RUN = "schema-run-1"


@pytest.fixture(autouse=True)
def run_and_limits() -> Iterator[None]:
    nlog.flush_suppressed()
    nlog.set_rate_limit(60.0, 10_000)
    previous = nlog.run_id()
    nlog.set_run_id(RUN)
    yield
    nlog.set_run_id(previous)
    nlog.set_rate_limit(10.0, 5)


def safety_records(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "neorl_industrial.safety" and getattr(r, "event", "") == event
    ]


def samples(reg: Registry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for fam in text_string_to_metric_families(reg.generate_latest().decode()):
        for s in fam.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


# --------------------------------------------------------------------------- run id
def test_the_run_id_is_generated_once_set_by_api_or_taken_from_the_environment() -> None:
    assert nlog.run_id() == RUN
    generated = nlog.set_run_id(None)
    assert re.fullmatch(r"[0-9a-f]{32}", generated) and nlog.run_id() == generated
    assert nlog.set_run_id("mlflow:0123abcd/7") == "mlflow:0123abcd/7"
    for bad in ["", "two words", 'quo"te', "back\\slash", "x" * 129, "é"]:
        with pytest.raises(ConfigError, match="run_id: must be 1 to 128 printable ASCII"):
            nlog.set_run_id(bad)
    assert nlog.run_id() == "mlflow:0123abcd/7", "a refused id changes nothing"
    code = "import neorl_industrial.logging as l; print(l.run_id())"
    env = {**os.environ, nlog.RUN_ID_ENV: "job-42"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "job-42"
    env.pop(nlog.RUN_ID_ENV)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert re.fullmatch(r"[0-9a-f]{32}", out.stdout.strip()) and out.stdout.strip() != generated


def test_episode_and_incident_ids_have_one_form() -> None:
    assert nlog.episode_id(3, 2) == "3-2"
    assert nlog.incident_id(42) == "safety_000042"
    assert nlog.canonical_fields({"max_allowed": 320.0, "environment": "X"}) == {
        "limit": 320.0,
        "env_id": "X",
    }
    # Both names given: nothing is overwritten.
    assert nlog.canonical_fields({"max_allowed": 1.0, "limit": 2.0}) == {"max_allowed": 1.0, "limit": 2.0}


# --------------------------------------------------------------------------- log lines and audit events
def test_log_lines_and_audit_events_of_an_env_join_on_their_shared_fields(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="neorl_industrial")
    path = tmp_path / "audit.jsonl"
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=3, audit_log=path, registry=Registry())
    envs.reset(seed=0)
    for _ in range(12):
        envs.step(np.ones((3, 1), np.float32))
    envs.audit_trail.flush()
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert events and {e["run_id"] for e in events} == {RUN}
    for e in events:
        assert e["episode_id"] == f"{e['env_index']}-{e['episode']}"
        assert "value" not in e and "env" not in e
    opened = [e for e in events if e["event"] == "incident_opened"]
    logged = safety_records(caplog, "safety violation")
    assert len(logged) == len(opened) > 0
    shared = (
        "run_id",
        "env_id",
        "env_index",
        "constraint",
        "constraint_type",
        "severity",
        "current_value",
        "limit",
        "episode_id",
        "incident_id",
    )
    audit_keys = sorted(tuple(e[k] for k in shared) for e in opened)
    log_keys = sorted(tuple(getattr(r, k) for k in shared) for r in logged)
    assert log_keys == audit_keys
    shutdowns = safety_records(caplog, "emergency shutdown")
    down = [e for e in events if e["event"] == "emergency_shutdown"]
    assert len(shutdowns) == len(down) > 0
    assert sorted((r.env_id, r.env_index, r.reason, r.run_id, r.episode_id, r.incident_id) for r in shutdowns) == sorted(  # type: ignore[attr-defined]
        (e["env_id"], e["env_index"], e["constraint"], e["run_id"], e["episode_id"], e["incident_id"]) for e in down
    )


def test_safety_log_lines_carry_episode_and_incident_ids_in_the_audit_trails_form(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="neorl_industrial")
    _core._log_correlated("Join-v0", 2, "t_high", episode=3, incident=42)
    _core._log_correlated("Join-v0", 1, "t_runaway", episode=7, incident=43, shutdown=True)
    _core._log_correlated("Join-v0", 0, "t_low")
    (v, plain) = safety_records(caplog, "safety violation")
    (s,) = safety_records(caplog, "emergency shutdown")
    assert (v.episode, v.episode_id, v.incident_id, v.run_id) == (
        3,
        nlog.episode_id(2, 3),
        "safety_000042",
        RUN,
    )  # type: ignore[attr-defined]
    assert (s.episode, s.episode_id, s.incident_id, s.reason) == (7, "1-7", nlog.incident_id(43), "t_runaway")  # type: ignore[attr-defined]
    assert plain.constraint == "t_low" and plain.run_id == RUN  # type: ignore[attr-defined]
    for missing in ("episode", "episode_id", "incident_id"):
        assert not hasattr(plain, missing)


def test_audit_records_take_the_run_id_rename_aliases_and_refuse_head_fields(tmp_path: Path) -> None:
    with AuditTrail(tmp_path / "a.jsonl") as trail:
        trail.record("check", "warning", constraint="temperature", current_value=325.5, max_allowed=320.0)
        for name in ("run_id", "timestamp", "logger"):
            with pytest.raises(ConfigError, match=rf"record: \['{name}'\] are written by the trail itself"):
                trail.record("x", **{name: "y"})
    (line,) = (tmp_path / "a.jsonl").read_text().splitlines()
    rec = json.loads(line)
    assert rec.pop("timestamp").endswith("Z")
    assert rec == {
        "event": "check",
        "level": "warning",
        "logger": "neorl_industrial.safety",
        "run_id": RUN,
        "constraint": "temperature",
        "current_value": 325.5,
        "limit": 320.0,
    }
    assert trail.written == 1 and trail.dropped == 0


# --------------------------------------------------------------------------- JSON lines and structlog
def test_the_json_formatter_keeps_extra_fields_of_any_logger() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(nlog.JsonFormatter())
    logger = logging.getLogger("myapp.agent")
    logger.addHandler(handler)
    try:
        logger.warning(
            "Safety violation detected",
            extra={
                "constraint": "temperature",
                "current_value": 325.5,
                "max_allowed": 320.0,
                "violation_id": "v1",
            },
        )
        logger.warning("no extras %d", 5)
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first.pop("timestamp").endswith("Z") and second.pop("timestamp").endswith("Z")
    assert first == {
        "event": "Safety violation detected",
        "level": "warning",
        "logger": "myapp.agent",
        "constraint": "temperature",
        "current_value": 325.5,
        "limit": 320.0,
        "violation_id": "v1",
        "run_id": RUN,
    }
    assert second == {"event": "no extras 5", "level": "warning", "logger": "myapp.agent", "run_id": RUN}


@pytest.fixture
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def structlog_recipe(stream: io.StringIO) -> None:
    """The recipe of docs/telemetry.md, writing to ``stream``."""
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "json": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "processor": structlog.processors.JSONRenderer(),
                    "foreign_pre_chain": [
                        structlog.stdlib.add_logger_name,
                        structlog.stdlib.add_log_level,
                        nlog.structlog_processor,
                        timestamper,
                    ],
                }
            },
            "handlers": {
                "default": {
                    "level": "INFO",
                    "class": "logging.StreamHandler",
                    "formatter": "json",
                    "stream": stream,
                }
            },
            "loggers": {"": {"handlers": ["default"], "level": "INFO", "propagate": True}},
        }
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            nlog.structlog_processor,
            timestamper,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        context_class=dict,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def test_structlog_recipe_gives_one_schema_for_structlog_rust_and_stdlib_records(clean_logging: None) -> None:
    stream = io.StringIO()
    structlog_recipe(stream)
    log = structlog.get_logger("neorl.agent")
    log.info("Agent started", agent_type="CQL", environment="ChemicalReactor-v0", safety_enabled=True)
    log.warning(
        "Safety violation detected",
        constraint="temperature",
        current_value=325.5,
        max_allowed=320.0,
        violation_id="safety_001",
    )
    handle = Registry().core.env_metrics("Structlog-v0", ["temperature"], ["critical"], ["temperature_high"])
    vid = handle.log_violation(0, 4, 325.5, 320.0)
    logging.getLogger("myapp").info("plain", extra={"episode_id": "0-1"})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 4
    for line in lines:
        assert line.pop("timestamp").endswith("Z")
    started, violation, rust, plain = lines
    assert started == {
        "event": "Agent started",
        "logger": "neorl.agent",
        "level": "info",
        "agent_type": "CQL",
        "env_id": "ChemicalReactor-v0",
        "safety_enabled": True,
        "run_id": RUN,
    }
    assert violation == {
        "event": "Safety violation detected",
        "logger": "neorl.agent",
        "level": "warning",
        "constraint": "temperature",
        "current_value": 325.5,
        "limit": 320.0,
        "violation_id": "safety_001",
        "run_id": RUN,
    }
    assert rust == {
        "event": "safety violation",
        "logger": "neorl_industrial.safety",
        "level": "error",
        "constraint": "temperature_high",
        "constraint_type": "temperature",
        "severity": "critical",
        "current_value": 325.5,
        "limit": 320.0,
        "violation_id": vid,
        "env_id": "Structlog-v0",
        "env_index": 4,
        "run_id": RUN,
    }
    assert plain == {"event": "plain", "logger": "myapp", "level": "info", "episode_id": "0-1", "run_id": RUN}


def test_the_monitoring_guides_structlog_configuration_shows_rust_fields(clean_logging: None) -> None:
    """The guide's configuration as written (console lines, no processor of ours): Rust events
    still arrive with their fields and run id in the text."""
    stream = io.StringIO()
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "json": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "processor": structlog.dev.ConsoleRenderer(colors=False),
                }
            },
            "handlers": {
                "default": {
                    "level": "INFO",
                    "class": "logging.StreamHandler",
                    "formatter": "json",
                    "stream": stream,
                }
            },
            "loggers": {"": {"handlers": ["default"], "level": "INFO", "propagate": True}},
        }
    )
    # The guide's first processor, deprecated by structlog (it warns when it runs).
    merge_threadlocal = importlib.import_module("structlog.threadlocal").merge_threadlocal
    structlog.configure(
        processors=[
            merge_threadlocal,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.TimeStamper(fmt="ISO"),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        context_class=dict,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    with pytest.warns(DeprecationWarning, match="structlog.threadlocal"):
        structlog.get_logger("neorl.agent").warning(
            "Safety violation detected", constraint="temperature", current_value=325.5, max_allowed=320.0
        )
    Registry().core.env_metrics("Guide-v0", ["temperature"], ["warning"], ["t_high"]).log_violation(
        0, 1, 2.0, 1.0
    )
    guide, rust = stream.getvalue().splitlines()
    for part in (
        "Safety violation detected",
        "constraint=temperature",
        "current_value=325.5",
        "max_allowed=320.0",
    ):
        assert part in guide, guide
    for part in (
        'constraint="t_high"',
        "current_value=2.0",
        "limit=1.0",
        'env_id="Guide-v0"',
        f'run_id="{RUN}"',
    ):
        assert part in rust, rust


# --------------------------------------------------------------------------- the standalone checker
HOT = {"hot": {"signal": "T", "kind": "upper", "limit": 100.0, "severity": "warning", "type": "heat"}}


def test_check_with_record_counts_and_logs_each_alarm_raised_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="neorl_industrial")
    reg = Registry()
    checker = SafetyChecker(HOT, env_id="plant-7")
    seen = [
        len(checker.check({"T": t}, record=True, registry=reg)) for t in (101.0, 102.0, 99.0, 101.5, 50.0)
    ]
    assert seen == [1, 1, 0, 1, 0]
    assert samples(reg, "safety_violations_total") == {
        (("constraint_type", "heat"), ("severity", "warning")): 2.0
    }
    recs = safety_records(caplog, "safety violation")
    fields = [
        (r.env_id, r.env_index, r.constraint, r.constraint_type, r.current_value, r.limit, r.run_id)
        for r in recs
    ]  # type: ignore[attr-defined]
    assert fields == [
        ("plant-7", 0, "hot", "heat", 101.0, 100.0, RUN),
        ("plant-7", 0, "hot", "heat", 101.5, 100.0, RUN),
    ]
    assert len({r.violation_id for r in recs}) == 2  # type: ignore[attr-defined]
    # Without record: checked, not counted, not logged.
    caplog.clear()
    checker.check({"T": 150.0})
    assert samples(reg, "safety_violations_total") == {
        (("constraint_type", "heat"), ("severity", "warning")): 2.0
    }
    assert safety_records(caplog, "safety violation") == []


def test_check_batch_with_record_logs_each_systems_index(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="neorl_industrial")
    reg = Registry()
    checker = SafetyChecker(HOT, num_systems=3)
    checker.check_batch([[101.0], [50.0], [120.0]], record=True, registry=reg)
    checker.check_batch([[101.0], [130.0], [120.0]], record=True, registry=reg)
    assert samples(reg, "safety_violations_total") == {
        (("constraint_type", "heat"), ("severity", "warning")): 3.0
    }
    recs = safety_records(caplog, "safety violation")
    assert [(r.env_id, r.env_index, r.current_value) for r in recs] == [  # type: ignore[attr-defined]
        ("safety_checker", 0, 101.0),
        ("safety_checker", 2, 120.0),
        ("safety_checker", 1, 130.0),
    ]


def test_monitored_policy_check_safety_counts_into_its_registry(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="neorl_industrial")
    reg = Registry()
    crit = {
        "p_high": {"signal": "P", "kind": "upper", "limit": 2.0, "severity": "critical", "type": "pressure"}
    }
    policy = MonitoredPolicy(
        lambda obs: obs * 0, registry=reg, safety_checker=SafetyChecker(crit, env_id="rig")
    )
    assert [policy.check_safety({"P": p}) for p in (1.0, 2.5, 2.6, 1.0, 3.0)] == [
        True,
        False,
        False,
        True,
        False,
    ]
    assert samples(reg, "safety_violations_total") == {
        (("constraint_type", "pressure"), ("severity", "critical")): 2.0
    }
    recs = safety_records(caplog, "safety violation")
    assert [(r.levelno, r.env_id, r.current_value, r.limit) for r in recs] == [  # type: ignore[attr-defined]
        (logging.ERROR, "rig", 2.5, 2.0),
        (logging.ERROR, "rig", 3.0, 2.0),
    ]
    with pytest.raises(ConfigError, match="check_safety: wrap the policy with safety_checker="):
        MonitoredPolicy(lambda obs: obs, registry=reg).check_safety({"P": 1.0})


# --------------------------------------------------------------------------- MLflow
def test_mlflow_runs_are_tagged_with_the_run_id(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    from neorl_industrial.integrations.mlflow import RUN_ID_TAG, log_audit_trail, log_env_spec

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        exp = mlflow.create_experiment("schema", artifact_location=(tmp_path / "artifacts").as_uri())
        path = tmp_path / "audit.jsonl"
        env = ni.make_vec("ChemicalReactor-v0", num_envs=2, audit_log=path, registry=Registry())
        env.reset(seed=0)
        env.step(np.ones((2, 1), np.float32))
        with mlflow.start_run(experiment_id=exp) as run:
            log_env_spec(env)
        nlog.set_run_id("second-run")
        other = mlflow.MlflowClient().create_run(exp).info.run_id
        log_audit_trail(env, run_id=other)
        client = mlflow.MlflowClient()
        assert client.get_run(run.info.run_id).data.tags[RUN_ID_TAG] == RUN
        assert client.get_run(other).data.tags[RUN_ID_TAG] == "second-run"
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)
