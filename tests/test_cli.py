"""The ``neorl-industrial`` command, run as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

import neorl_industrial as ni


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("neorl-industrial")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "neorl_industrial.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_run_prints_a_summary_with_a_progress_bar() -> None:
    p = cli("run", "--num-envs", "16", "--steps", "3000")
    assert p.returncode == 0, p.stderr
    for word in ("episodes", "mean return", "steps/s", "temperature_high", "thermal_runaway", "max seen"):
        assert word in p.stdout
    assert "100%" in p.stderr  # the progress bar finished


def test_run_json_summary_is_consistent() -> None:
    p = cli("run", "--num-envs", "8", "--steps", "960", "--policy", "pid", "--json")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["env_steps"] == 960 and s["episodes"] == 16  # 120 steps per env, horizon 60
    assert s["emergency_shutdowns"] == 0
    assert s["constraints"]["thermal_runaway"]["max"] < 350
    assert s["mean_return"] > -20  # the PI controller tracks the set-point


def test_pid_beats_random_on_the_reactor() -> None:
    from neorl_industrial.cli import run_fleet

    pid = run_fleet("ChemicalReactor-v0", 32, 32 * 60, "pid", progress=False)
    rnd = run_fleet("ChemicalReactor-v0", 32, 32 * 60, "random", progress=False)
    assert pid["mean_return"] > rnd["mean_return"] + 100


def test_envs_lists_the_catalogue() -> None:
    p = cli("envs")
    assert p.returncode == 0, p.stderr
    for env_id in ni.env_ids():
        assert env_id in p.stdout
    lines = p.stdout.splitlines()
    words = [" ".join(line.split()) for line in lines]
    assert "thermal_runaway upper 350 K, critical" in words
    # A dimensionless limit has no unit; the on-delay shows; one line per constraint.
    assert "IndustrialBenchmark-v0 6 3 1000 fatigue_high upper 100, warning" in words
    assert "flow_deviation abs 60, warning, on-delay 9" in words
    n_constraints = sum(len(ni.spec(i)["constraints"]) for i in ni.env_ids())
    assert len(lines) == 2 + n_constraints
    assert max(len(line.rstrip()) for line in lines) < 120


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--env", "Nope-v0"], "unknown environment 'Nope-v0'"),
        (["run", "--num-envs", "0"], "expected a positive integer"),
        (["run", "--num-envs", "1000000000000"], "num_envs: must be at most 16777216"),
        (["run", "--policy", "ppo"], "invalid choice"),
    ],
)
def test_errors_are_clear_and_exit_nonzero(args: list[str], message: str) -> None:
    p = cli(*args)
    assert p.returncode == 2
    assert message in p.stderr
    assert "Traceback" not in p.stderr


def test_run_with_shield_constraints_and_audit_log(tmp_path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[temperature_high]\nlimit = 326.0\n")
    log = tmp_path / "audit.jsonl"
    p = cli(
        "run",
        "--num-envs",
        "8",
        "--steps",
        "800",
        "--policy",
        "random",
        "--shield",
        "clip",
        "--constraints",
        str(cfg),
        "--audit-log",
        str(log),
        "--json",
    )
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["constraints"]["temperature_high"]["limit"] == 326.0
    assert s["constraints"]["coolant_ramp"]["max"] <= 5.0 + 1e-9  # the clip shield holds the ramp
    assert s["shield_interventions"] > 0
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert lines[0]["event"] == "run_start" and lines[-1]["event"] == "run_end"
    assert len(lines) == s["audit_log"]["written"] and s["audit_log"]["dropped"] == 0
    assert lines[-1]["episodes"] == s["episodes"]


def test_bad_files_are_clear_errors(tmp_path) -> None:
    p = cli("run", "--constraints", str(tmp_path / "nope.yaml"))
    assert p.returncode == 2 and "cannot read" in p.stderr
    p = cli("run", "--audit-log", str(tmp_path / "no" / "dir" / "a.jsonl"))
    assert p.returncode == 2 and "audit_log: cannot open" in p.stderr


def test_serve_exports_metrics_and_stops_cleanly_on_sigterm(tmp_path) -> None:
    import signal
    import time
    import urllib.request

    log = tmp_path / "audit.jsonl"
    cmd = [sys.executable, "-m", "neorl_industrial.cli", "serve", "--port", "0", "--num-envs", "8", "--rate", "50",
           "--policy", "random", "--audit-log", str(log)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving ChemicalReactor-v0 x8" in line, line + (proc.stderr.read() if proc.poll() else "")
        url = line.rsplit(" on ", 1)[1].strip()
        deadline = time.monotonic() + 120  # 400 env steps take 1 s at --rate 50: only a hang runs out
        steps = 0.0
        while time.monotonic() < deadline and steps < 400:
            time.sleep(0.3)
            text = urllib.request.urlopen(url + "metrics", timeout=5).read().decode()
            for row in text.splitlines():
                if row.startswith('env_steps_total{env="ChemicalReactor-v0"}'):
                    steps = float(row.split()[-1])
        assert steps >= 400
        assert urllib.request.urlopen(url + "health/live", timeout=5).status == 200
        assert "actions_computed_total" in text and "inference_latency_seconds_bucket" in text
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped after" in out
    events = [json.loads(x) for x in log.read_text().splitlines()]
    assert events[0]["event"] == "run_start" and events[-1]["event"] == "run_end"
