"""Logging: Rust events in Python's logging (caplog) with their fields, rate limiting with
summaries, JSON lines, and no deadlock when Rust threads log."""

from __future__ import annotations

import io
import json
import logging
import math
from datetime import datetime

import pytest

from neorl_industrial import _core
from neorl_industrial import logging as nlog
from neorl_industrial.exporter import start_http_server
from neorl_industrial.metrics import Registry


@pytest.fixture(autouse=True)
def fresh_limits():
    nlog.flush_suppressed()
    nlog.set_rate_limit(60.0, 3)
    yield
    nlog.set_rate_limit(10.0, 5)


def safety_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "neorl_industrial.safety"]


def test_a_safety_violation_reaches_python_logging_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    reg = Registry()
    handle = reg.core.env_metrics("ChemicalReactor-v0", ["temperature"], ["critical"], ["temperature_high"])
    vid = handle.log_violation(0, 7, 325.5, 320.0)
    (rec,) = safety_records(caplog)
    assert rec.levelno == logging.ERROR  # critical constraint
    assert rec.event == "safety violation"  # type: ignore[attr-defined]
    assert rec.constraint == "temperature_high"  # type: ignore[attr-defined]
    assert rec.constraint_type == "temperature"  # type: ignore[attr-defined]
    assert rec.current_value == 325.5 and rec.limit == 320.0  # type: ignore[attr-defined]
    assert rec.violation_id == vid  # type: ignore[attr-defined]
    assert rec.env_id == "ChemicalReactor-v0" and rec.env_index == 7  # type: ignore[attr-defined]
    assert rec.run_id == nlog.run_id()  # type: ignore[attr-defined]
    # A plain formatter still shows the fields in the message.
    assert 'constraint="temperature_high"' in rec.getMessage()


def test_warning_severity_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    from neorl_industrial.metrics import record_safety_violation

    record_safety_violation(
        "pressure",
        "warning",
        constraint="p high",
        current_value=2.0,
        limit=1.5,
        env='plant "A"',
        registry=Registry(),
    )
    (rec,) = safety_records(caplog)
    assert rec.levelno == logging.WARNING
    assert rec.constraint == "p high" and rec.env_id == 'plant "A"'  # type: ignore[attr-defined]


def test_repeated_events_are_rate_limited_with_a_summary(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    handle = Registry().core.env_metrics("Flood-v0", ["t"], ["warning"], ["t_high"])
    for i in range(50):
        handle.log_violation(0, i, 1.0, 0.0)
    other = Registry().core.env_metrics("Flood-v0", ["p"], ["warning"], ["p_high"])
    other.log_violation(0, 0, 1.0, 0.0)
    recs = safety_records(caplog)
    assert [r.constraint for r in recs] == ["t_high"] * 3 + ["p_high"]  # type: ignore[attr-defined]
    caplog.clear()
    nlog.flush_suppressed()
    (summary,) = safety_records(caplog)
    assert summary.event.startswith("suppressed 47 similar events")  # type: ignore[attr-defined]
    assert summary.suppressed == 47  # type: ignore[attr-defined]
    assert "t_high" in summary.getMessage()


def test_the_window_ends_and_reports_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    """The same event again and again until a window has ended with something suppressed in it.
    How many calls fall into a window depends on the machine's speed; the accounting does not:
    every call is either logged or counted in exactly one summary, and a window that suppressed
    something reports it before the next event passes."""
    import time

    caplog.set_level(logging.INFO)
    nlog.set_rate_limit(0.2, 1)
    handle = Registry().core.env_metrics("Window-v0", ["t"], ["warning"], ["t_high"])
    calls = 0
    deadline = time.monotonic() + 60  # a hang, not a slow machine
    while not any(r.event.startswith("suppressed") for r in safety_records(caplog)):  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "no window ended with a summary within 60 s"
        handle.log_violation(0, 0, 1.0, 0.0)
        calls += 1
        time.sleep(0.01)
    events = [r.event for r in safety_records(caplog)]  # type: ignore[attr-defined]
    *passed, summary, last = events
    assert passed and set(passed) == {"safety violation"} and last == "safety violation", events
    suppressed = int(summary.split()[1])
    assert summary == (
        f'suppressed {suppressed} similar events: safety violation (env "Window-v0", constraint "t_high")'
    )
    assert suppressed >= 1 and len(passed) + suppressed + 1 == calls, (calls, events)


def test_json_lines_with_structlog_field_names() -> None:
    stream = io.StringIO()
    handler = nlog.configure(json=True, stream=stream)
    try:
        Registry().core.env_metrics("Json-v0", ["temperature"], ["warning"], ["t_high"]).log_violation(
            0, 1, math.inf, 320.0
        )
        logging.getLogger("neorl_industrial.custom").info("plain %s", "python")
    finally:
        logging.getLogger("neorl_industrial").removeHandler(handler)
        logging.getLogger("neorl_industrial").propagate = True
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["event"] == "safety violation" and first["level"] == "warning"
    assert first["logger"] == "neorl_industrial.safety"
    assert first["constraint"] == "t_high" and first["current_value"] == "inf" and first["limit"] == 320.0
    assert first["timestamp"].endswith("Z")
    datetime.fromisoformat(first["timestamp"].replace("Z", "+00:00"))
    assert second == {**second, "event": "plain python", "level": "info", "logger": "neorl_industrial.custom"}


def test_rust_threads_logging_do_not_deadlock(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert _core._log_from_rust_threads(4, 10) == 40
    envs = {r.env_id for r in safety_records(caplog)}  # type: ignore[attr-defined]
    assert envs == {f"thread-{t}" for t in range(4)}
    # The burst passes per env; the rest waits for a summary.
    assert len(safety_records(caplog)) == 4 * 3


def test_exporter_lifecycle_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="neorl_industrial")
    with start_http_server(0, registry=Registry()) as s:
        pass
    msgs = [(r.name, r.event) for r in caplog.records if r.name == "neorl_industrial.exporter"]  # type: ignore[attr-defined]
    assert msgs == [
        ("neorl_industrial.exporter", "metrics exporter started"),
        ("neorl_industrial.exporter", "metrics exporter stopped"),
    ]
    started = next(r for r in caplog.records if getattr(r, "event", "") == "metrics exporter started")
    assert started.listeners == f"http://127.0.0.1:{s.port}"  # type: ignore[attr-defined]


def test_levels_set_in_python_apply_to_rust_events(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="neorl_industrial.safety")
    Registry().core.env_metrics("Quiet-v0", ["t"], ["warning"], ["t_high"]).log_violation(0, 0, 1.0, 0.0)
    assert safety_records(caplog) == []


@pytest.mark.parametrize(
    ("message", "event", "fields"),
    [
        (
            'safety violation a="x y" b=1 c=2.5 d=true',
            "safety violation",
            {"a": "x y", "b": 1, "c": 2.5, "d": True},
        ),
        ('ev s="q\\"uote\\\\ \\n"', "ev", {"s": 'q"uote\\ \n'}),
        ("no fields here", "no fields here", {}),
        (
            'suppressed 2 similar events: x (env "a=b") suppressed=2',
            'suppressed 2 similar events: x (env "a=b")',
            {"suppressed": 2},
        ),
    ],
)
def test_field_parsing(message: str, event: str, fields: dict) -> None:
    assert nlog.parse_fields(message) == (event, fields)


def test_refusals_at_the_exporter_are_logged_by_a_python_thread(
    caplog: pytest.LogCaptureFixture, tmp_path
) -> None:
    import time

    import bcrypt
    from telemetry_http import request

    caplog.set_level(logging.INFO, logger="neorl_industrial")
    cfg = tmp_path / "web.yml"
    cfg.write_text(f"basic_auth_users:\n  u: '{bcrypt.hashpw(b'pw', bcrypt.gensalt(rounds=4)).decode()}'\n")
    with start_http_server(0, registry=Registry(), web_config_file=cfg) as s:
        for _ in range(10):
            assert request(s.url + "metrics", auth=("u", "bad")).status == 401
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            refused = [r for r in caplog.records if getattr(r, "event", "") == "request refused"]
            if refused:
                break
            time.sleep(0.05)
    assert 1 <= len(refused) <= 3  # rate-limited to the burst
    assert refused[0].kind == "unauthorized" and refused[0].peer.startswith("127.0.0.1:")  # type: ignore[attr-defined]
    assert refused[0].threadName == "neorl-exporter-logs"
