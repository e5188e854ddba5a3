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
    assert "thermal_runaway (upper 350 K, critical)" in p.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--env", "Nope-v0"], "unknown environment 'Nope-v0'"),
        (["run", "--num-envs", "0"], "expected a positive integer"),
        (["run", "--env", "IndustrialBenchmark-v0", "--policy", "pid"], "no PID baseline"),
    ],
)
def test_errors_are_clear_and_exit_nonzero(args: list[str], message: str) -> None:
    p = cli(*args)
    assert p.returncode == 2
    assert message in p.stderr
    assert "Traceback" not in p.stderr
