"""Faults: kill -9, a full disk, an unwritable audit path, a taken port, SIGINT/SIGTERM, fork.

Disk-full cases mount a 64 KiB tmpfs or write to /dev/full. Mounting needs root: without it those
tests are skipped with a reason starting "needs privilege", which the run's summary counts and
names (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from telemetry_http import request

import neorl_industrial as ni
from neorl_industrial.exporter import start_http_server
from neorl_industrial.metrics import Registry
from neorl_industrial.safety import AuditTrail

CLI = [sys.executable, "-m", "neorl_industrial.cli"]
BENCHES = Path(__file__).resolve().parent.parent / "benches"


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def read_lines(path: Path) -> list[dict]:
    """Every line of a trail (each must be whole JSON), without the trail's own loss records."""
    return [e for e in read_all(path) if e["event"] != "audit_events_lost"]


def read_all(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"partial last line: {data[-200:]!r}"
    return [json.loads(x) for x in data.splitlines()]


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "64k", options: str = "") -> Iterator[Path]:
    """A small tmpfs mounted at ``path`` (root only)."""
    if os.geteuid() != 0:
        pytest.skip("needs privilege: mounting a tmpfs needs root")
    path.mkdir(exist_ok=True)
    opts = f"size={size}" + (f",{options}" if options else "")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"needs privilege: cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


# --------------------------------------------------------------------------- kill -9
@pytest.fixture
def crash(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCHES))
    import _crash

    return _crash


def test_kill_9_keeps_every_flushed_event_and_only_whole_lines(tmp_path: Path, crash: Any) -> None:
    # Killed at a counted tick between the child's second and sixth flush, never after a time: the
    # one-second promise is timed by `python benches/bench_faults.py`.
    outcomes = crash.kill_many(tmp_path, kills=4, num_envs=1024, flush_every=5)
    for o in outcomes:
        # Every line is whole JSON, the last included (lines never cross a page of the file, the
        # unit a kill can cut a write at), and nothing was dropped.
        assert not o.torn and o.broken_inside == 0 and o.lost_in_file == 0, o
        # Everything handed over before the last flush() that returned is in the file.
        assert o.env_events_flushed > 0 and o.ticks_flushed >= 10, o
        assert o.env_events_in_file >= o.env_events_flushed, o
        assert o.ticks_in_file >= o.ticks_flushed, o


# --------------------------------------------------------------------------- disk full, unwritable
def test_a_full_disk_mid_run_is_counted_reported_and_leaves_whole_lines(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small") as mnt:
        log = mnt / "audit.jsonl"
        p = cli("run", "--num-envs", "256", "--steps", "60000", "--policy", "random", "--audit-log", str(log),
                "--json")  # fmt: skip
        assert p.returncode == 1, p.stderr
        s = json.loads(p.stdout)
        a = s["audit_log"]
        assert a["dropped"] > 0 and "No space left on device" in a["last_error"]
        assert f"lost {a['dropped']} event(s)" in p.stderr and "No space left" in p.stderr
        lines = read_lines(log)  # whole lines only, though the disk filled mid-write
        assert len(lines) == a["written"] and lines[0]["event"] == "run_start"
        # The trail records its own gaps where it could (never more than was lost).
        noted = sum(e["count"] for e in read_all(log) if e["event"] == "audit_events_lost")
        assert noted <= a["dropped"]


def test_a_full_disk_counts_in_the_metric_and_health(tmp_path: Path) -> None:
    reg = Registry()
    with tmpfs(tmp_path / "small") as mnt:
        trail = AuditTrail(mnt / "audit.jsonl")
        envs = ni.make_vec("ChemicalReactor-v0", num_envs=256, audit_log=trail, registry=reg, horizon=5)
        envs.reset(seed=0)
        rng = np.random.default_rng(0)
        for _ in range(200):
            envs.step(rng.uniform(-1, 1, (256, 1)))
        trail.flush()
        assert trail.dropped > 0
        assert trail.written + trail.dropped == envs.safety.events
        assert len(read_lines(trail.path)) == trail.written
        text = reg.generate_latest().decode()
        assert f"audit_events_dropped_total {float(trail.dropped)}" in text
        with start_http_server(0, registry=reg) as s:
            report = json.loads(request(s.url + "health/detailed").body)
        check = report["checks"]["audit_trail"]
        assert check["status"] == "warn" and check["observedValue"] == trail.dropped
        assert "No space left on device" in check["output"]
        trail.close()
        envs.close()


def test_a_full_disk_at_start_is_a_clear_error(tmp_path: Path) -> None:
    p = cli("run", "--steps", "64", "--audit-log", "/dev/full")
    assert p.returncode == 2
    assert "audit_log: cannot write to /dev/full: write failed: No space left on device" in p.stderr
    assert "Traceback" not in p.stderr


def test_unwritable_audit_paths_are_clear_errors_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    p = cli("run", "--steps", "64", "--audit-log", str(blocker / "audit.jsonl"))
    assert p.returncode == 2 and "audit_log: cannot open" in p.stderr and "Not a directory" in p.stderr
    with tmpfs(tmp_path / "ro", options="ro") as mnt:
        for cmd in (["run", "--steps", "64"], ["serve", "--port", "0", "--duration", "1"]):
            p = cli(*cmd, "--audit-log", str(mnt / "audit.jsonl"))
            assert p.returncode == 2, p.stderr
            assert "audit_log: cannot open" in p.stderr and "Read-only file system" in p.stderr
            assert "Traceback" not in p.stderr


# --------------------------------------------------------------------------- a port taken
def test_a_taken_port_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        log = tmp_path / "audit.jsonl"
        p = cli("serve", "--port", port, "--audit-log", str(log))
        assert p.returncode == 2 and f"port {port} on 127.0.0.1 is already in use" in p.stderr
        assert not log.exists()
        p = cli("run", "--steps", "64", "--metrics-port", port)
        assert p.returncode == 2 and "already in use" in p.stderr and "Traceback" not in p.stderr


# --------------------------------------------------------------------------- SIGINT, SIGTERM
def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {n} lines")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_stops_on_a_signal_with_a_summary_and_a_flushed_trail(
    tmp_path: Path, sig: signal.Signals
) -> None:
    log = tmp_path / "audit.jsonl"
    proc = subprocess.Popen(
        [*CLI, "run", "--num-envs", "256", "--steps", str(10**9), "--policy", "random", "--audit-log", str(log),
         "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_for_lines(log, 50, proc)  # run_start and safety events: the fleet is stepping
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, err
    s = json.loads(out)
    assert s["interrupted"] == sig.name and s["env_steps"] > 0 and s["env_steps"] % 256 == 0
    lines = read_lines(log)
    assert lines[-1]["event"] == "run_end" and lines[-1]["interrupted"] == sig.name
    assert lines[-1]["env_steps"] == s["env_steps"]
    assert len(lines) == s["audit_log"]["written"] and s["audit_log"]["dropped"] == 0


def test_serve_stops_on_sigint_with_a_summary_and_a_flushed_trail(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", "0", "--num-envs", "64", "--rate", "0", "--policy", "random", "--audit-log",
         str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_for_lines(log, 50, proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "env steps on SIGINT;" in out and "0 dropped" in out
    lines = read_lines(log)
    assert lines[0]["event"] == "run_start" and lines[-1]["event"] == "run_end"


# --------------------------------------------------------------------------- fork
def _step_a_fleet(queue: Any, parents_trail: AuditTrail) -> None:
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=1024)
    envs.reset(seed=0)
    for _ in range(20):
        envs.step(np.zeros((1024, 1), np.float32))
    # The parent's trail has no writer here: events are counted as lost, flush and close return.
    parents_trail.record("from_the_child")
    parents_trail.flush()
    lost = parents_trail.dropped
    parents_trail.close()
    queue.put((envs.safety.steps, lost, parents_trail.last_error))


FORK_AND_DROP = """
import gc, os, sys
import numpy as np
import neorl_industrial as ni
envs = ni.make_vec("IndustrialBenchmark-v0", num_envs=64, num_threads=2)
envs.reset(seed=0)
envs.step(np.zeros((64, 3)))  # the private pool's helpers now run in this process
pid = os.fork()
if pid == 0:
    if sys.argv[1] == "step":  # helpers of its own in the child, then dropped with the batch
        out = envs.step(np.zeros((64, 3)))
        assert np.isfinite(out[1]).all()
    del envs
    gc.collect()
    os._exit(0)
_, status = os.waitpid(pid, 0)
envs.step(np.zeros((64, 3)))  # the parent's helpers are untouched
print("child status", status)
"""


@pytest.mark.parametrize("child", ["drop", "step"])
def test_a_batch_inherited_by_a_forked_child_can_be_dropped_there(child: str) -> None:
    """The parent's helper threads do not exist in the child: dropping the batch there must neither join
    them (a panic or a hang) nor touch their locks."""
    p = subprocess.run(
        [sys.executable, "-c", FORK_AND_DROP, child], capture_output=True, text=True, timeout=60, check=False
    )
    assert p.returncode == 0, p.stderr
    assert "child status 0" in p.stdout, p.stdout + p.stderr
    assert "panicked" not in p.stderr and "Exception" not in p.stderr, p.stderr


def test_async_vector_env_with_fork_after_the_core_is_busy(tmp_path: Path) -> None:
    """Workers forked from a parent whose stepping threads, audit writer and exporter threads run."""
    import gymnasium as gym

    trail = AuditTrail(tmp_path / "parent.jsonl")
    parent = ni.make_vec("ChemicalReactor-v0", num_envs=512, audit_log=trail)
    parent.reset(seed=0)
    parent.step(np.zeros((512, 1), np.float32))
    with start_http_server(0) as server:
        envs = gym.vector.AsyncVectorEnv(
            [lambda i=i: ni.make("ChemicalReactor-v0", audit_log=tmp_path / f"w{i}.jsonl") for i in range(2)],
            context="fork",
        )
        try:
            obs, _ = envs.reset(seed=1)
            for _ in range(50):
                obs, reward, term, trunc, info = envs.step(np.ones((2, 1), np.float32))
            assert obs.shape == (2, parent.single_observation_space.shape[0]) and np.isfinite(obs).all()
        finally:
            envs.close()
        assert request(server.url + "health/live").status == 200
        # A forked child steps a batch big enough to use the (re-created) thread pool.
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_step_a_fleet, args=(queue, trail))
        child.start()
        child.join(timeout=120)
        if child.exitcode is None:
            child.kill()
        assert child.exitcode == 0
        steps, lost, why = queue.get(timeout=5)
        assert steps == 1024 * 20 and lost == 1 and "after a fork" in why
    # The parent keeps working after forking.
    parent.step(np.zeros((512, 1), np.float32))
    trail.flush()
    assert trail.dropped == 0 and "from_the_child" not in trail.path.read_text()
    parent.close()
