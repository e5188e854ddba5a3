"""Data quality, errors and queues as the exporter shows them: pegged sensors and clipped actions
counted by the batch, refused calls by reason, errors_total from the exporter (real HTTP), the audit
writer (a real full disk and a stalled reader) and the Pushgateway client (a real refused connection
and a real error answer), and the depth of the audit, log and connection queues."""

from __future__ import annotations

import contextlib
import http.server
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from telemetry_http import raw, request

import neorl_industrial as ni
from neorl_industrial.exceptions import NeorlError
from neorl_industrial.exporter import push_to_gateway, start_http_server
from neorl_industrial.metrics import Registry
from neorl_industrial.safety import AuditTrail

IB = "IndustrialBenchmark-v0"
REACTOR = "ChemicalReactor-v0"


def value(r: Registry, family: str, **labels: str) -> float:
    for line in r.generate_latest().decode().splitlines():
        head, _, v = line.rpartition(" ")
        name, _, rest = head.partition("{")
        if name == family and all(f'{k}="{x}"' in rest for k, x in labels.items()):
            return float(v)
    raise AssertionError(f"no sample {family}{labels}")


@pytest.fixture(autouse=True)
def quiet_safety_logs() -> Iterator[None]:
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


# --------------------------------------------------------------------------- the batch
def test_a_pegged_sensor_counts_but_a_value_merely_at_its_bound_does_not() -> None:
    r = Registry()
    envs = ni.make_vec(IB, num_envs=8, registry=r)
    obs, _ = envs.reset(seed=0)
    names = [o["name"] for o in envs.core_spec["observations"]]
    high = envs.single_observation_space.high
    at_high = np.zeros(len(names))
    for _ in range(300):
        obs, *_ = envs.step(np.ones((8, 3)))
        at_high += (obs >= high).sum(0)
    sat = {n: value(r, "observation_saturation_total", env=IB, feature=n) for n in names}
    # Consumption runs beyond its range and is clamped there: every such reading counts.
    assert sat["c"] == at_high[names.index("c")] > 0
    # Velocity, gain and shift sit at 100 because the process keeps its settings there (nothing
    # was clamped): not a sensor fault.
    assert at_high[names.index("v")] > 0 and sat["v"] == 0
    assert value(r, "action_clipped_total", env=IB, feature=envs.core_spec["actions"][0]["name"]) == 0


def test_clipped_actions_count_by_component_and_refused_calls_by_reason() -> None:
    r = Registry()
    envs = ni.make_vec(IB, num_envs=4, registry=r)
    envs.reset(seed=1)
    actions = np.zeros((4, 3))
    actions[0] = [1.5, -1.0, 0.0]  # exactly -1 is in range
    actions[1] = [-3.0, 0.0, 1.0000001]
    envs.step(actions)
    names = [a["name"] for a in envs.core_spec["actions"]]
    assert [value(r, "action_clipped_total", env=IB, feature=n) for n in names] == [2.0, 0.0, 1.0]
    bad = {
        "non_finite": np.full((4, 3), np.nan),
        "shape": np.zeros((3, 3)),
        "dtype": np.array([["a"] * 3] * 4),
    }
    for reason, a in bad.items():
        with pytest.raises(ni.InvalidActionError):
            envs.step(a)
        assert value(r, "input_refused_total", env=IB, reason=reason) == 1.0
    with pytest.raises(ni.InvalidActionError):
        envs.step([[0.0, 0.0]] * 4)  # a list of the wrong shape
    assert value(r, "input_refused_total", env=IB, reason="shape") == 2.0
    assert value(r, "errors_total", component="env", kind="refused_input") == 4.0
    fresh = ni.make_vec(IB, num_envs=2, registry=r)
    with pytest.raises(NeorlError, match="call reset"):
        fresh.step(np.zeros((2, 3)))
    assert value(r, "errors_total", component="env", kind="refused_call") == 1.0
    # A single env counts into the same series.
    env = ni.make(REACTOR, registry=r)
    env.reset(seed=0)
    with pytest.raises(ni.InvalidActionError):
        env.step(np.array([np.inf]))
    assert value(r, "input_refused_total", env=REACTOR, reason="non_finite") == 1.0


# --------------------------------------------------------------------------- exporter
def test_exporter_connections_in_flight_and_exporter_errors() -> None:
    r = Registry()
    with start_http_server(0, registry=r, max_connections=4) as s:
        assert value(r, "queue_capacity", queue="exporter_connections") == 4.0
        held = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(2)]
        try:
            # The two idle connections and the scrape itself.
            def depth() -> float:
                text = request(s.url + "metrics").text
                line = next(x for x in text.splitlines() if x.startswith('queue_depth{queue="exporter_connections"}'))
                return float(line.split()[-1])

            deadline = time.monotonic() + 10
            while depth() != 3.0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert depth() == 3.0
        finally:
            for c in held:
                c.close()
        deadline = time.monotonic() + 10
        while value(r, "queue_depth", queue="exporter_connections") != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert value(r, "queue_depth", queue="exporter_connections") == 0.0
        assert b"400" in raw(s.port, b"NOT HTTP AT ALL\r\n\r\n")
        deadline = time.monotonic() + 10
        while value(r, "errors_total", component="exporter", kind="bad_request") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert value(r, "errors_total", component="exporter", kind="bad_request") == 1.0
        # Beyond max_connections a newcomer is triaged: counted as overload.
        held = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(5)]
        try:
            deadline = time.monotonic() + 10
            while value(r, "errors_total", component="exporter", kind="overload") < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert value(r, "errors_total", component="exporter", kind="overload") >= 1.0
        finally:
            for c in held:
                c.close()


def test_refused_credentials_count_as_exporter_auth_errors(tmp_path: Path) -> None:
    bcrypt = pytest.importorskip("bcrypt")  # in the test extra: never skips under scripts/test.sh
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    cfg = tmp_path / "web.yml"
    cfg.write_text(f"basic_auth_users:\n  prom: '{hashed}'\n")
    r = Registry()
    with start_http_server(0, registry=r, web_config_file=cfg) as s:
        assert request(s.url + "metrics", auth=("prom", "nope")).status == 401
        assert request(s.url + "metrics").status == 401
        assert request(s.url + "metrics", auth=("prom", "pw")).status == 200
    assert value(r, "errors_total", component="exporter", kind="auth") == 2.0


# --------------------------------------------------------------------------- audit trail
def test_a_failing_disk_counts_audit_write_errors(tmp_path: Path) -> None:
    r = Registry()
    trail = AuditTrail("/dev/full")  # every write fails with ENOSPC
    envs = ni.make_vec(REACTOR, num_envs=4, registry=r, audit_log=trail)
    envs.reset(seed=0)
    for _ in range(20):
        envs.step(np.ones((4, 1)))  # full heating: violations, so audit events
    trail.flush()
    assert value(r, "errors_total", component="audit", kind="write") >= 1.0
    assert value(r, "audit_events_dropped_total") >= 1.0
    assert value(r, "queue_capacity", queue="audit") == 4096.0  # the default capacity
    assert value(r, "queue_depth", queue="audit") == 0.0  # flushed: written off, nothing waits


def test_a_stalled_audit_reader_shows_in_the_audit_queue_depth(tmp_path: Path) -> None:
    fifo = tmp_path / "audit.pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader that does not read (yet)
    try:
        r = Registry()
        trail = AuditTrail(fifo, capacity=64)
        envs = ni.make_vec(REACTOR, num_envs=256, registry=r, audit_log=trail)
        envs.reset(seed=0)
        depth = 0.0
        for _ in range(200):  # the pipe's buffer fills, the writer blocks, batches queue up
            envs.step(np.ones((256, 1)))
            depth = max(depth, value(r, "queue_depth", queue="audit"))
            if depth >= 2:
                break
        assert depth >= 2, "the audit queue never grew behind a stalled reader"
        assert value(r, "queue_capacity", queue="audit") == 64.0
        drained = threading.Event()

        def drain() -> None:
            while not drained.is_set():
                with contextlib.suppress(BlockingIOError):
                    os.read(reader, 1 << 16)
                time.sleep(0.001)

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        trail.flush()
        assert value(r, "queue_depth", queue="audit") == 0.0
        drained.set()
        t.join(5)
        trail.close()
    finally:
        os.close(reader)


def test_the_log_queue_is_exported_with_its_capacity() -> None:
    r = Registry()
    assert value(r, "queue_depth", queue="log") == 0.0
    assert value(r, "queue_capacity", queue="log") == 256.0
    assert value(r, "queue_capacity", queue="fleet_tasks") == 0.0  # unbounded
    r.set_queue_depth("fleet_tasks", 3)
    assert value(r, "queue_depth", queue="fleet_tasks") == 3.0
    with pytest.raises(ni.ConfigError, match="queue: must be one of audit, log, exporter_connections, fleet_tasks"):
        r.set_queue_depth("jobs", 1)
    r.count_error("policy", "exception", 2)
    assert value(r, "errors_total", component="policy", kind="exception") == 2.0
    with pytest.raises(ni.ConfigError, match="kind: must not be empty"):
        r.count_error("policy", "")


# --------------------------------------------------------------------------- pushgateway
class _Answers500(http.server.BaseHTTPRequestHandler):
    def do_PUT(self) -> None:  # noqa: N802 (the standard library's name)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(500)
        self.end_headers()
        self.wfile.write(b"gateway broken")

    def log_message(self, *args: object) -> None:
        pass


def test_failed_pushes_count_by_kind() -> None:
    r = Registry()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(NeorlError, match="push to"):
        push_to_gateway(f"http://127.0.0.1:{closed}", job="j", registry=r, timeout=2)
    assert value(r, "errors_total", component="push", kind="connect") == 1.0
    server = http.server.HTTPServer(("127.0.0.1", 0), _Answers500)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        with pytest.raises(NeorlError, match="gateway answered 500"):
            push_to_gateway(f"http://127.0.0.1:{server.server_port}", job="j", registry=r, timeout=5)
    finally:
        server.shutdown()
    assert value(r, "errors_total", component="push", kind="http") == 1.0
    assert value(r, "errors_total", component="push", kind="connect") == 1.0
