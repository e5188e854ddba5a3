"""Fault injection (``faults=``, ``--fault``): off by default, each kind's effect, determinism by seed,
the audit trail's ``fault_started`` lines, the ``faults_active`` gauge, bad configurations, the CLI."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from _drift_data import zero_policy_profile

import neorl_industrial as ni
from neorl_industrial import ConfigError
from neorl_industrial.metrics import Registry
from neorl_industrial.serving import PolicyService

REACTOR = "ChemicalReactor-v0"
CLI = [sys.executable, "-m", "neorl_industrial.cli"]


def rollout(
    faults: Any = "absent", n: int = 4, steps: int = 40, seed: int = 3, actions: str = "wave", **kw: Any
) -> dict[str, np.ndarray]:
    """Observations, rewards, true T and applied coolant of a reactor batch under fixed actions."""
    extra = {} if isinstance(faults, str) else {"faults": faults}
    envs = ni.make_vec(REACTOR, n, autoreset_mode="disabled", metrics=False, **extra, **kw)
    obs, _ = envs.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {"obs": [obs], "reward": [], "T": [], "Tc": []}
    for t in range(steps):
        if actions == "random":
            a = rng.uniform(-1, -0.2, (n, 1))
        else:
            a = np.full((n, 1), -0.7 + 0.2 * np.sin(0.3 * t) + 0.003 * np.arange(n)[:, None])
        obs, reward, _, _, info = envs.step(a)
        out["obs"].append(obs)
        out["reward"].append(reward)
        out["T"].append(info["constraints"]["temperature_high"])
        out["Tc"].append(info["action"][:, 0])
    envs.close()
    return {k: np.array(v) for k, v in out.items()}


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- off by default
def test_without_faults_nothing_changes_and_a_fault_changes_nothing_before_it_starts() -> None:
    ref = rollout()
    assert same(ref, rollout(None)) and same(ref, rollout([]))
    # Drift steps env by env through step_with (the nominal parameters until the fault starts),
    # the plain batch all at once: bit for bit the same up to the start.
    late = rollout([{"kind": "parameter_drift", "parameter": "UA", "factor": 0.8, "start": 25}])
    for k in ("obs", "reward", "T", "Tc"):
        cut = 26 if k == "obs" else 25
        assert np.array_equal(late[k][:cut], ref[k][:cut]), k
    assert not np.array_equal(late["T"], ref["T"])
    spec = ni.spec(REACTOR)
    assert spec["faults"] == [] and [p["name"] for p in spec["parameters"]] == ["UA", "k0"]


# --------------------------------------------------------------------------- each kind
def test_a_sensor_bias_shifts_what_the_policy_sees_and_not_what_safety_checks() -> None:
    ref = rollout()
    got = rollout([{"kind": "sensor_bias", "variable": "T", "value": 5.0, "start": 10, "ramp": 4}])
    shift = got["obs"][:, :, 1] - ref["obs"][:, :, 1]
    np.testing.assert_allclose(shift[:10], 0.0)
    np.testing.assert_allclose(shift[10:15, 0], [0.0, 1.25, 2.5, 3.75, 5.0], atol=1e-4)
    np.testing.assert_allclose(shift[14:], 5.0, atol=1e-4)
    assert np.array_equal(got["obs"][:, :, [0, 2]], ref["obs"][:, :, [0, 2]])
    # The process and the safety layer's own measurement are untouched.
    assert np.array_equal(got["T"], ref["T"]) and np.array_equal(got["reward"], ref["reward"])


def test_noise_freeze_and_dropout() -> None:
    ref = rollout(n=64)
    noisy = rollout([{"kind": "sensor_noise", "variable": "Ca", "std": 0.01}], n=64)
    err = (noisy["obs"][:, :, 0] - ref["obs"][:, :, 0]).ravel()
    assert abs(err.mean()) < 1e-3 and err.std() == pytest.approx(0.01, rel=0.05)
    frozen, free = rollout([{"kind": "sensor_freeze", "variable": "Ca", "start": 5}]), rollout()
    ca = frozen["obs"][:, :, 0]
    assert np.array_equal(ca[:6], free["obs"][:6, :, 0]) and (ca[5:] == ca[5]).all()
    assert not (free["obs"][5:, :, 0] == free["obs"][5, :, 0]).all()
    dropped = rollout([{"kind": "sensor_dropout", "variable": "T", "p": 0.3}], n=64)
    t, t_ref = dropped["obs"][:, :, 1], ref["obs"][:, :, 1]
    low = t == 200.0  # the bottom of T's range: a broken 4-20 mA loop
    assert np.array_equal(t[~low], t_ref[~low])
    assert low.mean() == pytest.approx(0.3, abs=0.03)


def test_parameter_drift_fouls_the_jacket_and_decays_the_catalyst() -> None:
    ref = rollout()
    fouled = rollout([{"kind": "parameter_drift", "parameter": "UA", "factor": 0.8, "ramp": 10}])
    assert (fouled["T"][-1] > ref["T"][-1] + 1.0).all()
    decayed = rollout([{"kind": "parameter_drift", "parameter": "k0", "factor": 0.5}])
    assert (decayed["obs"][-1, :, 0] > ref["obs"][-1, :, 0] + 0.01).all()


def test_a_stuck_and_a_rate_limited_actuator() -> None:
    stuck = rollout([{"kind": "actuator_stuck", "action": "Tc", "start": 5}], actions="random")
    ref = rollout(actions="random")
    assert np.array_equal(stuck["Tc"][:5], ref["Tc"][:5])
    assert (stuck["Tc"][5:] == ref["Tc"][4]).all()  # where it was when it stuck
    held = rollout([{"kind": "actuator_stuck", "action": "Tc", "value": 296.5}], actions="random")
    assert (held["Tc"] == 296.5).all()
    slow = rollout([{"kind": "actuator_rate_limit", "action": "Tc", "rate": 0.5}], actions="random")
    steps = np.abs(np.diff(np.vstack([np.full((1, 4), 300.0), slow["Tc"]]), axis=0))
    assert steps.max() <= 0.5 + 1e-9 and steps.max() > 0.49
    assert np.abs(np.diff(ref["Tc"], axis=0)).max() > 5.0


# --------------------------------------------------------------------------- determinism
MIXED = [
    {"kind": "sensor_noise", "variable": "T", "std": 0.5, "ramp": 5},
    {"kind": "sensor_dropout", "variable": "Ca", "p": 0.2, "start": 3},
    {"kind": "parameter_drift", "parameter": "k0", "factor": 0.7, "start": 10, "ramp": 10},
    {"kind": "actuator_rate_limit", "action": "Tc", "rate": 2.0, "end": 30},
]


def test_env_i_of_a_batch_is_the_single_env_with_the_same_seed_whatever_the_threads() -> None:
    one = rollout(MIXED, n=6, num_threads=1)
    assert same(one, rollout(MIXED, n=6, num_threads=3))
    part = rollout(MIXED, n=3)
    assert all(np.array_equal(part[k], one[k][:, :3]) for k in part)
    for i in (0, 4):
        env = ni.make(REACTOR, faults=MIXED, metrics=False)
        obs, _ = env.reset(seed=3 + i)
        seen = [obs]
        for t in range(40):
            a = np.array([-0.7 + 0.2 * np.sin(0.3 * t) + 0.003 * i])
            obs, *_ = env.step(a)
            seen.append(obs)
        assert np.array_equal(np.array(seen), one["obs"][:, i])
    # Another seed, other draws; faults on or off, the process's own noise stream is the same.
    assert not np.array_equal(rollout(MIXED, n=6, seed=4)["obs"], one["obs"])
    noisy = {"noise": 0.01}
    a, b = rollout(n=2, **noisy), rollout([{"kind": "sensor_bias", "variable": "Ca", "value": 0.0}], n=2, **noisy)
    assert same(a, b)


def test_a_pickled_faulted_batch_steps_on_exactly_as_the_original() -> None:
    envs = ni.make_vec(REACTOR, 3, metrics=False, faults=MIXED)
    envs.reset(seed=1)
    for _ in range(12):
        envs.step(np.full((3, 1), 0.3))
    twin = pickle.loads(pickle.dumps(envs))
    assert twin.core_spec["faults"] == envs.core_spec["faults"]
    for _ in range(20):
        a = envs.step(np.full((3, 1), -0.2))
        b = twin.step(np.full((3, 1), -0.2))
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_gymnasium_make_and_make_vec_take_faults() -> None:
    faults = [{"kind": "sensor_bias", "variable": "T", "value": 2.0}]
    env = gym.make(f"neorl_industrial/{REACTOR}", faults=faults)
    obs, _ = env.reset(seed=0)
    assert obs[1] == pytest.approx(332.0)
    envs = gym.make_vec(f"neorl_industrial/{REACTOR}", num_envs=2, vectorization_mode="vector_entry_point", faults=faults)
    obs, _ = envs.reset(seed=0)
    np.testing.assert_allclose(obs[:, 1], 332.0)
    assert envs.unwrapped.faults_active() == {"sensor_bias:T": 2}


# --------------------------------------------------------------------------- spec
def test_the_spec_lists_fault_kinds_targets_and_the_faults_in_force() -> None:
    spec = ni.spec(REACTOR)
    kinds = spec["fault_kinds"]
    assert set(kinds) == {
        "sensor_bias", "sensor_noise", "sensor_freeze", "sensor_dropout",
        "parameter_drift", "actuator_stuck", "actuator_rate_limit"}  # fmt: skip
    assert kinds["sensor_bias"]["targets"] == ["Ca", "T", "Ca_setpoint"]
    assert kinds["parameter_drift"]["targets"] == ["UA", "k0"] and kinds["actuator_stuck"]["targets"] == ["Tc"]
    ua = spec["parameters"][0]
    assert (ua["unit"], ua["nominal"], ua["low"], ua["high"]) == ("J/(min K)", 5e4, 5e3, 1e5)
    env = ni.make(REACTOR, faults=[{"kind": "actuator_stuck", "action": "Tc", "start": 3, "name": "valve"}])
    assert env.core_spec["faults"] == [
        {"name": "valve", "kind": "actuator_stuck", "action": "Tc", "value": None, "start": 3, "end": None,
         "clock": "episode"}]  # fmt: skip
    # The reported faults are a valid configuration again.
    ni.make(REACTOR, faults=env.core_spec["faults"])
    for env_id in ni.env_ids():
        s = ni.spec(env_id)
        assert set(s["fault_kinds"]) == set(kinds) and isinstance(s["parameters"], list)


# --------------------------------------------------------------------------- audit trail
def test_each_fault_start_is_written_to_the_audit_trail(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    faults = [
        {"kind": "sensor_freeze", "variable": "T", "start": 4, "end": 8},
        {"kind": "parameter_drift", "parameter": "UA", "factor": 0.9, "start": 6, "clock": "lifetime"},
    ]
    envs = ni.make_vec(REACTOR, 2, metrics=False, audit_log=str(path), faults=faults, horizon=10)
    envs.reset(seed=0)
    for _ in range(27):  # episodes of 10 steps and a resetting step each (next-step autoreset)
        envs.step(np.zeros((2, 1)))
    envs.audit_trail.flush()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    starts = [e for e in lines if e["event"] == "fault_started"]
    freeze = [(e["env_index"], e["episode"], e["step"]) for e in starts if e["fault"] == "sensor_freeze:T"]
    assert sorted(freeze) == [(0, 1, 4), (0, 2, 4), (0, 3, 4), (1, 1, 4), (1, 2, 4), (1, 3, 4)]
    drift = [e for e in starts if e["fault"] == "parameter_drift:UA"]
    assert [(e["env_index"], e["episode"], e["step"]) for e in drift] == [(0, 1, 6), (1, 1, 6)]
    e = drift[0]
    assert (e["level"], e["fault_kind"], e["target"], e["target_type"], e["clock"]) == (
        "warning", "parameter_drift", "UA", "parameter", "lifetime")  # fmt: skip
    assert e["env_id"] == REACTOR and e["episode_id"] == "0-1" and e["run_id"]


# --------------------------------------------------------------------------- metrics
def gauge(reg: Registry, fault: str) -> float | None:
    prefix = f'faults_active{{env="{REACTOR}",fault="{fault}"}} '
    for line in reg.generate_latest().decode().splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return None


def test_faults_active_counts_the_envs_with_the_fault_active() -> None:
    reg = Registry()
    plain = ni.make_vec(REACTOR, 2, registry=reg)
    plain.reset(seed=0)
    assert "faults_active{" not in reg.generate_latest().decode()
    faults = [
        {"kind": "sensor_bias", "variable": "T", "value": 1.0, "start": 5, "end": 10, "name": "window"},
        {"kind": "sensor_noise", "variable": "Ca", "std": 0.001, "name": "always"},
    ]
    envs = ni.make_vec(REACTOR, 4, registry=reg, faults=faults, autoreset_mode="disabled")
    assert gauge(reg, "window") == 0.0 and gauge(reg, "always") == 0.0  # exported from creation
    envs.reset(seed=0)
    seen = []
    for t in range(12):
        if t == 7:  # two envs start a new episode: their clocks restart
            envs.reset(options={"reset_mask": np.array([True, True, False, False])})
        envs.step(np.zeros((4, 1)))
        seen.append((gauge(reg, "window"), gauge(reg, "always")))
    assert [w for w, _ in seen] == [0, 0, 0, 0, 4, 4, 4, 2, 2, 0, 0, 2]
    assert all(a == 4 for _, a in seen)
    assert envs.faults_active() == {"window": 2, "always": 4}
    # A second batch adds to the same series; a closed one withdraws its share.
    more = ni.make_vec(REACTOR, 3, registry=reg, faults=faults)
    more.reset(seed=1)
    assert gauge(reg, "always") == 7.0
    del more
    import gc

    gc.collect()
    assert gauge(reg, "always") == 4.0


# --------------------------------------------------------------------------- drift detection
def test_a_drift_monitor_finds_an_injected_sensor_bias() -> None:
    reference = zero_policy_profile(REACTOR, steps=200)
    bias = [{"kind": "sensor_bias", "variable": "T", "value": 3.0}]
    with PolicyService(REACTOR, "zero", num_envs=16, seed=1, registry=Registry(), drift_profile=reference,
                       drift_window=50, faults=bias) as s:  # fmt: skip
        for _ in range(100):
            s.step()
        report = {(f["source"], f["feature"]): f for f in s.drift.report()}  # type: ignore[union-attr]
    assert report[("observation", "T")]["level"] == "significant"
    assert report[("observation", "Ca")]["level"] == "stable"


# --------------------------------------------------------------------------- bad configurations
BIAS = {"kind": "sensor_bias", "variable": "T", "value": 1.0}


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        ([{"kind": "sensor_melt"}], r"faults\[0\]\.kind: must be one of sensor_bias, sensor_noise"),
        ([{"variable": "T"}], r"faults\[0\]\.kind: is missing"),
        ([{**BIAS, "variable": "Tr"}], r'faults\[0\]\.variable: unknown observation variable "Tr"; known: Ca, T, Ca_setpoint'),
        ([{"kind": "parameter_drift", "parameter": "U", "factor": 0.5}], r'unknown parameter "U"; known: UA, k0'),
        ([{"kind": "actuator_rate_limit", "action": "Q", "rate": 1}], r'faults\[0\]\.action: unknown action "Q"; known: Tc'),
        ([{**BIAS, "start": -5}], r"faults\[0\]\.start: must be a whole number of steps >= 0, got -5"),
        ([{**BIAS, "ramp": 1.5}], r"faults\[0\]\.ramp: must be a whole number of steps >= 0, got 1.5"),
        ([{**BIAS, "start": 20, "end": 10}], r"faults\[0\]\.end: must be after start \(20\), got 10"),
        ([{**BIAS, "start": 500}], r"faults\[0\]\.start: is never reached: episodes end after 60 steps"),
        ([{"kind": "sensor_dropout", "variable": "T", "p": -0.1}], r"faults\[0\]\.p: must be a probability in \[0, 1\]"),
        ([{**BIAS, "value": float("inf")}], r"faults\[0\]\.value: must be a finite number, got inf"),
        ([{"kind": "parameter_drift", "parameter": "UA", "factor": -1}], r"faults\[0\]\.factor: must be > 0"),
        ([{"kind": "actuator_stuck", "action": "Tc", "value": 280}], r"value: must be within the range of Tc \[290, 310\] K"),
        ([{"kind": "sensor_noise", "variable": "T"}], r"faults\[0\]\.std: is missing"),
        ([BIAS, BIAS], r'faults\[1\]\.name: "sensor_bias:T" names two faults'),
        ([{**BIAS, "slope": 2}], r"faults\[0\]\.slope: is not a field of a sensor_bias fault"),
        ([{**BIAS, "clock": "wall"}], r'faults\[0\]\.clock: must be "episode" or "lifetime"'),
        ([{**BIAS, "value": "5"}], r'faults\[0\]\.value: must be a finite number, got "5"'),
        ({"kind": "sensor_bias"}, r"faults: must be a list of mappings or a file path, got dict"),
        ([3], r"faults\[0\]: must be a mapping, got 3"),
        (42, r"faults: must be a list of mappings or a file path, got int"),
    ],
)
def test_bad_faults_are_config_errors_naming_fault_and_field(faults: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ni.make_vec(REACTOR, 2, faults=faults)
    with pytest.raises(ConfigError, match=message):
        ni.make(REACTOR, faults=faults)


def test_faults_from_files(tmp_path: Path) -> None:
    want = [{"kind": "sensor_bias", "variable": "T", "value": 2.0, "start": 3}]
    (tmp_path / "f.json").write_text(json.dumps({"faults": want}))
    (tmp_path / "f.toml").write_text('[[faults]]\nkind = "sensor_bias"\nvariable = "T"\nvalue = 2.0\nstart = 3\n')
    (tmp_path / "f.yaml").write_text("- kind: sensor_bias\n  variable: T\n  value: 2.0\n  start: 3\n")
    for name in ("f.json", "f.toml", "f.yaml"):
        env = ni.make_vec(REACTOR, 1, metrics=False, faults=tmp_path / name)
        assert env.core_spec["faults"][0]["value"] == 2.0 and env.core_spec["faults"][0]["start"] == 3
    (tmp_path / "bad.json").write_text("{")
    for path, message in [
        (tmp_path / "bad.json", "is not valid JSON"),
        (tmp_path / "none.json", "cannot read"),
        (tmp_path / "f.txt", "must end in .json, .yaml, .yml or .toml"),
    ]:
        with pytest.raises(ConfigError, match=f"faults: .*{message}"):
            ni.make_vec(REACTOR, 1, faults=path)


# --------------------------------------------------------------------------- CLI
def test_cli_run_injects_faults_and_refuses_bad_ones(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    out = subprocess.run(
        [*CLI, "run", "--num-envs", "2", "--steps", "60", "--json", "--audit-log", str(audit),
         "--fault", "kind=sensor_bias,variable=T,value=5,start=10",
         "--fault", "kind=actuator_stuck,action=Tc,start=20,name=valve"],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert set(summary["faults"]) == {"sensor_bias:T", "valve"}
    assert summary["faults"]["sensor_bias:T"]["value"] == 5.0
    assert summary["faults_active_at_end"] == {"sensor_bias:T": 2, "valve": 2}
    starts = [json.loads(x) for x in audit.read_text().splitlines() if '"fault_started"' in x]
    assert sorted((e["fault"], e["env_index"], e["step"]) for e in starts) == [
        ("sensor_bias:T", 0, 10), ("sensor_bias:T", 1, 10), ("valve", 0, 20), ("valve", 1, 20)]  # fmt: skip
    for bad, message in [
        ("kind=sensor_bias,variable=Q,value=1", 'unknown observation variable "Q"'),
        ("kind", "--fault: 'kind' in 'kind' is not field=value"),
        ("kind=sensor_bias,kind=sensor_noise", "field 'kind' given twice"),
    ]:
        out = subprocess.run([*CLI, "run", "--steps", "4", "--fault", bad], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and message in out.stderr, out.stderr


def test_cli_serve_and_dataset_take_faults(tmp_path: Path) -> None:
    import time
    import urllib.request

    audit = tmp_path / "serve.jsonl"
    cmd = [*CLI, "serve", "--port", "0", "--num-envs", "4", "--rate", "100", "--duration", "60", "--policy", "zero",
           "--audit-log", str(audit), "--fault", "kind=parameter_drift,parameter=UA,factor=0.9,ramp=50,clock=lifetime",
           "--fault", "kind=sensor_bias,variable=T,value=2,start=5"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving ChemicalReactor-v0 x4" in line, line + (proc.stderr.read() if proc.poll() else "")
        url = line.rsplit(" on ", 1)[1].strip()
        want = 'faults_active{env="ChemicalReactor-v0",fault="parameter_drift:UA"} 4'
        deadline, text = time.monotonic() + 60, ""
        while time.monotonic() < deadline and want not in text:
            time.sleep(0.2)
            text = urllib.request.urlopen(url + "metrics", timeout=5).read().decode()
        assert want in text
        proc.terminate()
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    starts = {(e["fault"], e["env_index"]) for e in map(json.loads, audit.read_text().splitlines())
              if e["event"] == "fault_started"}  # fmt: skip
    assert {("parameter_drift:UA", i) for i in range(4)} <= starts
    outs = {}
    for name, extra in [("plain", []), ("biased", ["--fault", "kind=sensor_bias,variable=T,value=3"])]:
        path = tmp_path / f"{name}.npz"
        args = [*CLI, "dataset", REACTOR, "--quality", "random", "--transitions", "120", "--num-envs", "2",
                "--out", str(path), "--no-progress", *extra]  # fmt: skip
        out = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        outs[name] = np.load(path)["observations"]
    np.testing.assert_allclose(outs["biased"][:, 1] - outs["plain"][:, 1], 3.0, atol=1e-3)
    np.testing.assert_array_equal(outs["biased"][:, 0], outs["plain"][:, 0])


@pytest.mark.parametrize(("env_id", "parameter", "column"), [("FourTank-v0", "k1", 3), ("PowerGrid-v0", "H", 0)])
def test_other_environments_drift_their_own_parameters(env_id: str, parameter: str, column: int) -> None:
    def run(faults: Any) -> np.ndarray:
        envs = ni.make_vec(env_id, 3, metrics=False, faults=faults, initial_load=[0.1, 0.0]) if env_id == "PowerGrid-v0" \
            else ni.make_vec(env_id, 3, metrics=False, faults=faults)  # fmt: skip
        envs.reset(seed=0)
        seen = [envs.step(np.zeros((3, envs.single_action_space.shape[0])))[0] for _ in range(30)]
        return np.array(seen)[:, :, column]

    plain = run(None)
    drifted = run([{"kind": "parameter_drift", "parameter": parameter, "factor": 0.5, "start": 10}])
    assert np.array_equal(drifted[:10], plain[:10])
    assert np.abs(drifted[10:] - plain[10:]).max() > 1e-3
