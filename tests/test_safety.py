"""The safety layer: constraint config, cost, shutdown, shield, incidents, audit trail, checker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import neorl_industrial as ni
from neorl_industrial.exceptions import ConfigError
from neorl_industrial.safety import (
    AuditTrail,
    SafetyChecker,
    SafetyCostWrapper,
    SafetyStats,
    evaluate_with_safety,
)

HEAT = np.array([1.0], np.float32)


def run_single(env: gym.Env, action: np.ndarray, steps: int = 60) -> list[tuple]:
    env.reset(seed=0)
    out = []
    for _ in range(steps):
        o, r, term, trunc, info = env.step(action)
        out.append((o, r, term, trunc, info))
        if term or trunc:
            break
    return out


def test_info_carries_cost_margins_and_violations() -> None:
    env = ni.make("ChemicalReactor-v0")
    _, info = env.reset(seed=0)
    assert set(info) == {"constraints", "margins", "violations"}
    steps = run_single(env, HEAT)
    for _, _, _, _, info in steps:
        t = info["constraints"]["temperature_high"]
        assert info["margins"]["temperature_high"] == pytest.approx(331.0 - t)
        assert info["violations"]["temperature_high"] == (t > 331.0)
        # Documented cost: sum over active alarms of weight * exceedance / |limit|.
        want = sum(
            max(0.0, -info["margins"][n]) / lim
            for n, lim in (("temperature_high", 331.0), ("thermal_runaway", 350.0), ("coolant_ramp", 5.0))
            if info["violations"][n]
        )
        assert info["cost"] == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert steps[-1][2] and steps[-1][4]["shutdown_reason"] == "thermal_runaway"


def test_overrides_drops_additions_and_replacement() -> None:
    env = ni.make(
        "ChemicalReactor-v0",
        constraints={
            "temperature_high": {"limit": 325.0, "penalty": 1.0},
            "coolant_ramp": None,
            "cold": {
                "signal": "T",
                "kind": "lower",
                "limit": 300.0,
                "type": "temperature",
                "severity": "info",
            },
        },
    )
    assert env.constraint_names == ["temperature_high", "thermal_runaway", "cold"]
    spec = {c["name"]: c for c in env.core_spec["constraints"]}
    assert spec["temperature_high"]["limit"] == 325.0 and spec["cold"]["kind"] == "lower"
    only = ni.make(
        "ChemicalReactor-v0",
        constraints=[
            {"name": "band", "signal": "T", "kind": "band", "low": 300, "high": 340, "severity": "critical"}
        ],
    )
    assert only.constraint_names == ["band"]
    # A penalty lowers the reward exactly while the alarm is active.
    plain = ni.make("ChemicalReactor-v0")
    for (_, r1, *_, i1), (_, r2, *_, _i2) in zip(
        run_single(env, HEAT), run_single(plain, HEAT), strict=False
    ):
        assert r1 == pytest.approx(r2 - (1.0 if i1["violations"]["temperature_high"] else 0.0))


def test_on_delay_and_deadband_from_config() -> None:
    warm = np.array([0.3])  # Tc = 303 K: T creeps above 331 K and settles near 332.7 K
    base = [step[4] for step in run_single(ni.make("ChemicalReactor-v0"), warm)]
    delayed = [
        step[4]
        for step in run_single(
            ni.make("ChemicalReactor-v0", constraints={"temperature_high": {"on_delay": 3}}), warm
        )
    ]
    first = next(i for i, x in enumerate(base) if x["violations"]["temperature_high"])
    first_delayed = next(i for i, x in enumerate(delayed) if x["violations"]["temperature_high"])
    assert first_delayed == first + 3
    # Cool down after heating: with a deadband the alarm stays active longer.
    seq = [0.3] * 12 + [-0.1] * 30

    def active_steps(deadband: float) -> int:
        env = ni.make("ChemicalReactor-v0", constraints={"temperature_high": {"deadband": deadband}})
        env.reset(seed=0)
        return sum(env.step(np.array([a]))[4]["violations"]["temperature_high"] for a in seq)

    assert active_steps(3.0) > active_steps(0.0) > 0


def test_constraints_from_yaml_and_toml_files(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("constraints:\n  temperature_high:\n    limit: 320.0\n  coolant_ramp: null\n")
    t = tmp_path / "c.toml"
    t.write_text('[temperature_high]\nlimit = 321.5\nseverity = "critical"\n')
    a = ni.make("ChemicalReactor-v0", constraints=str(y))
    b = ni.make("ChemicalReactor-v0", constraints=t)
    assert a.constraint_names == ["temperature_high", "thermal_runaway"]
    spec = {c["name"]: c for c in b.core_spec["constraints"]}
    assert spec["temperature_high"]["limit"] == 321.5 and spec["temperature_high"]["severity"] == "critical"
    bad = tmp_path / "bad.yaml"
    bad.write_text("temperature_high: {limit: [}\n")
    with pytest.raises(ni.ConfigError, match="bad.yaml is not valid YAML"):
        ni.make("ChemicalReactor-v0", constraints=bad)
    with pytest.raises(ni.ConfigError, match="cannot read"):
        ni.make("ChemicalReactor-v0", constraints=tmp_path / "missing.toml")
    with pytest.raises(ni.ConfigError, match="must end in"):
        ni.make("ChemicalReactor-v0", constraints=tmp_path / "x.json")


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (
            {"temperature_high": {"limit": "hot"}},
            r"constraints\.temperature_high\.limit: must be a finite number",
        ),
        (
            {"temperature_high": {"limt": 1}},
            r"constraints\.temperature_high\.limt: is not a constraint field",
        ),
        ({"nope": None}, r"constraints\.nope: no such constraint to drop"),
        (
            {"x": {"kind": "upper", "signal": "Q", "limit": 1}},
            r"constraints\.x\.signal: unknown signal \"Q\"",
        ),
        ({"x": {"kind": "upper", "limit": 1}}, r"constraints\.x\.signal: is required"),
        ({"temperature_high": {"severity": "fatal"}}, r"severity: must be info, warning or critical"),
        ({"temperature_high": {"on_delay": 1.5}}, r"on_delay: must be a whole number"),
        ({"temperature_high": {"weight": float("nan")}}, r"weight: must be a finite number"),
        ([{"kind": "upper"}], r"constraints\[0\]\.name: must be a string"),
        (42, r"must be a mapping, a list or a file path"),
        ({"x": {"kind": "band", "signal": "T", "low": 5, "high": 1}}, r"low: must not exceed high"),
    ],
)
def test_bad_constraint_configs_name_the_field(cfg: object, match: str) -> None:
    with pytest.raises(ni.ConfigError, match=match):
        ni.make("ChemicalReactor-v0", constraints=cfg)


@pytest.mark.parametrize("mode", ["next_step", "same_step", "disabled"])
def test_shutdown_semantics_in_each_autoreset_mode(mode: str) -> None:
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=2, autoreset_mode=mode)
    envs.reset(seed=0)
    heat = np.array([[1.0], [-0.2]], np.float32)
    for _ in range(60):
        obs, _, term, trunc, info = envs.step(heat)
        if term[0]:
            break
    assert term[0] and not trunc[0] and not term[1]
    src = info["final_info"] if mode == "same_step" else info
    assert src["shutdown_reason"][0] == "thermal_runaway" and src["_shutdown_reason"].tolist() == [
        True,
        False,
    ]
    if mode == "same_step":
        assert obs[0, 1] == np.float32(330.0)  # already reset
        assert info["final_obs"][0][1] > 350.0
    elif mode == "next_step":
        obs, r, term, _, info = envs.step(heat)
        assert obs[0, 1] == np.float32(330.0) and r[0] == 0.0 and not term[0]
        assert not info["_action"][0]
    else:
        with pytest.raises(ni.ResetNeededError):
            envs.step(heat)
        envs.reset(options={"reset_mask": np.array([True, False])})
        envs.step(heat)
    assert envs.safety.shutdowns["thermal_runaway"] == 1


def test_clip_shield_enforces_the_ramp_and_reports_it() -> None:
    env = ni.make("ChemicalReactor-v0", shield="clip")
    env.reset(seed=0)
    last = 300.0
    rng = np.random.default_rng(0)
    acted = 0
    for _ in range(60):
        _, _, term, trunc, info = env.step(rng.uniform(-1, 1, 1))
        assert abs(info["action"][0] - last) <= 5.0 + 1e-12
        assert not info["violations"]["coolant_ramp"]
        last = info["action"][0]
        acted += info["shield"]
        if term or trunc:
            break
    assert acted >= 5
    with pytest.raises(ni.ConfigError, match="shield: must be None, 'clip' or 'predictive'"):
        ni.make("ChemicalReactor-v0", shield="maybe")


def test_predictive_shield_keeps_the_reactor_out_of_runaway() -> None:
    unshielded = run_single(ni.make("ChemicalReactor-v0"), HEAT)
    assert unshielded[-1][2], "full heating runs the reactor away without the shield"
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=4, shield="predictive")
    envs.reset(seed=0)
    peak = 0.0
    for _ in range(60):
        obs, _, term, trunc, info = envs.step(np.ones((4, 1), np.float32))
        assert not term.any()
        peak = max(peak, float(info["constraints"]["thermal_runaway"].max()))
    assert peak < 350.0
    assert envs.safety.shield_interventions > 0 and envs.safety.shutdowns["thermal_runaway"] == 0


def test_safety_gymnasium_six_tuple_and_evaluation() -> None:
    env = SafetyCostWrapper(ni.make("ChemicalReactor-v0"))
    env.reset(seed=0)
    obs, reward, cost, term, trunc, info = env.step(HEAT)
    assert cost == info["cost"] and isinstance(reward, float)
    heat = evaluate_with_safety(lambda o: HEAT, ni.make("ChemicalReactor-v0"), n_episodes=3)
    calm = evaluate_with_safety(lambda o: np.array([-0.2]), ni.make("ChemicalReactor-v0"), n_episodes=3)
    assert heat["shutdowns"] == 3 and heat["critical_violations"] == 3
    assert heat["constraint_satisfaction_rate"] < calm["constraint_satisfaction_rate"] == 1.0
    assert calm["violations_per_episode"] == 0 and heat["violations_per_episode"] >= 2
    assert heat["incidents"] and {"constraint", "start_step", "end_step"} <= set(heat["incidents"][0])
    assert heat["mean_length"] < calm["mean_length"] == 60
    # A shutdown ends the episode early; a penalty on the critical constraint makes it cost reward.
    punished = evaluate_with_safety(
        lambda o: HEAT, ni.make("ChemicalReactor-v0", constraints={"thermal_runaway": {"penalty": 1000.0}}), 3
    )
    assert punished["mean_return"] == pytest.approx(heat["mean_return"] - 1000.0)


def read_trail(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_audit_trail_records_incidents_with_their_fields(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=3, audit_log=path)
    envs.reset(seed=0)
    for _ in range(40):
        envs.step(np.ones((3, 1), np.float32))
    envs.audit_trail.flush()
    events = read_trail(path)
    assert len(events) == envs.safety.events > 0
    kinds = {e["event"] for e in events}
    assert {"incident_opened", "incident_closed", "emergency_shutdown"} <= kinds
    for e in events:
        assert {"event", "level", "timestamp", "logger"} <= set(e)
        assert e["timestamp"].endswith("Z") and e["logger"] == "neorl_industrial.safety"
    opened = [e for e in events if e["event"] == "incident_opened"]
    assert len({e["incident_id"] for e in opened}) == len(opened)
    o = opened[0]
    for k in (
        "env_id",
        "env_index",
        "episode",
        "constraint",
        "severity",
        "limit",
        "first_value",
        "start_step",
        "start_time",
    ):
        assert k in o
    closed = [e for e in events if e["event"] == "incident_closed"]
    assert {"end_step", "duration_steps", "duration_seconds", "peak_value", "response"} <= set(closed[0])
    down = [e for e in events if e["event"] == "emergency_shutdown"]
    assert all(e["level"] == "critical" and e["response"] == "shutdown" for e in down)
    ids = {e["incident_id"] for e in opened}
    closed_ids = {e["incident_id"] for e in closed}
    assert closed_ids <= ids
    # Whatever is still open is an alarm active right now (at most one per env and constraint).
    assert len(ids - closed_ids) <= 3 * len(envs.constraint_names)


def test_audit_overflow_is_counted_never_silent(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path / "a.jsonl", capacity=1)
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=256, audit_log=trail, horizon=3)
    envs.reset(seed=0)
    for _ in range(300):
        envs.step(np.ones((256, 1), np.float32))
    trail.flush()
    assert trail.written + trail.dropped == envs.safety.events
    lines = read_trail(trail.path)
    gaps = [e for e in lines if e["event"] == "audit_events_lost"]
    assert len(lines) - len(gaps) == trail.written
    trail.close()
    # The trail notes its own gaps: every drop, by the time it closes.
    gaps = [e for e in read_trail(trail.path) if e["event"] == "audit_events_lost"]
    assert sum(e["count"] for e in gaps) == trail.dropped > 0
    assert {e["reason"] for e in gaps} <= {"audit queue full"}
    trail.record("late")
    assert trail.dropped >= 1 and "closed" in (trail.last_error or "")


def test_unwritable_audit_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ni.ConfigError, match="audit_log: cannot open"):
        ni.make("ChemicalReactor-v0", audit_log=tmp_path / "no" / "such" / "dir.jsonl")


CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import neorl_industrial as ni
    from neorl_industrial.safety import AuditTrail
    trail = AuditTrail(sys.argv[1])
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=64, audit_log=trail, horizon=6)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    step = 0
    while True:
        envs.step(rng.uniform(0.5, 1.0, (64, 1)))
        step += 1
        if step % 5 == 0:
            trail.flush()
            print(envs.safety.events, flush=True)  # all of these are written
    """
)


def test_audit_trail_survives_kill_9(tmp_path: Path) -> None:
    """Killed after its fourth flush (a count of steps, not a time), the child's trail holds every
    event it had flushed, as whole JSON lines."""
    path = tmp_path / "trail.jsonl"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True)
    flushed: list[int] = []
    assert child.stdout is not None
    try:
        while len(flushed) < 4:
            line = child.stdout.readline()
            if not line:
                break
            flushed.append(int(line))
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
    assert len(flushed) == 4, f"the child died after {len(flushed)} flushes"
    events = read_trail(path)  # every line must be complete JSON
    assert flushed[-1] > 0
    assert len(events) >= flushed[-1]


def test_safety_checker_on_hand_built_vectors() -> None:
    checker = SafetyChecker(
        [
            {
                "name": "p_high",
                "signal": "P",
                "kind": "upper",
                "limit": 10.0,
                "severity": "critical",
                "type": "pressure",
            },
            {"name": "t_band", "signal": "T", "kind": "band", "low": 20.0, "high": 24.0},
            {"name": "valve_rate", "signal": "valve", "kind": "rate", "limit": 2.0, "type": "actuator_rate"},
            {"name": "mix", "kind": "linear", "terms": {"P": 1.0, "T": 0.5}, "b": 20.0},
        ]
    )
    assert checker.signals == ["P", "T", "valve"]
    assert checker.check({"P": 5.0, "T": 22.0}, {"valve": 50.0}) == []
    v = checker.check({"P": 11.0, "T": 19.0, "valve": 53.0})
    by = {x.name: x for x in v}
    assert set(by) == {"p_high", "t_band", "valve_rate", "mix"}  # mix: 11 + 0.5 * 19 = 20.5 > 20
    assert by["p_high"].margin == -1.0 and by["p_high"].severity == "critical" and by["p_high"].active
    assert by["t_band"].value == 19.0 and by["t_band"].margin == -1.0
    assert by["valve_rate"].value == 3.0
    # Arrays in signal order work the same; the linear constraint fires at 12 + 0.5 * 22 = 23 > 20.
    v = checker.check(np.array([12.0, 22.0, 53.0]))
    assert {x.name for x in v} == {"p_high", "mix"}
    with pytest.raises(ni.ConfigError, match="missing signals"):
        checker.check({"P": 1.0})
    with pytest.raises(ni.ConfigError, match="expected 3 values"):
        checker.check(np.zeros(2))


def test_safety_checker_on_delay_deadband_and_batches() -> None:
    checker = SafetyChecker(
        {"hot": {"signal": "T", "kind": "upper", "limit": 100.0, "on_delay": 1, "deadband": 5.0}},
        num_systems=2,
    )
    seq = [[101, 90], [102, 90], [98, 90], [94, 90]]
    flags = []
    for values in seq:
        per_system = checker.check_batch(np.array([[v] for v in values], dtype=float))
        flags.append([any(x.active for x in row) for row in per_system])
    # System 0: beyond, beyond (activates after the on-delay), inside but within the deadband (still active),
    # well inside (cleared). System 1 never violates.
    assert flags == [[False, False], [True, False], [True, False], [False, False]]
    with pytest.raises(ni.ConfigError, match="use check_batch"):
        checker.check({"T": 1.0})
    with pytest.raises(ni.ConfigError, match="expected shape"):
        checker.check_batch(np.zeros((3, 1)))
    with pytest.raises(ni.ConfigError, match="at least one constraint"):
        SafetyChecker({"defaults": False}, signals=["T"])


@pytest.mark.parametrize("n", [0, -1, True, 2.0, "2", 2**24 + 1, 10**12, 10**30])
def test_safety_checker_refuses_a_bad_number_of_systems(n: object) -> None:
    hot = {"hot": {"signal": "T", "kind": "upper", "limit": 100.0}}
    with pytest.raises(ni.ConfigError, match=r"num_systems: must be an integer from 1 to 16777216, got "):
        SafetyChecker(hot, num_systems=n)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_safety_stats_add_up_the_steps_and_the_audit_trail(tmp_path: Path, mode: str) -> None:
    n, steps = 16, 200
    path = tmp_path / "audit.jsonl"
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=n, autoreset_mode=mode, audit_log=path, horizon=25)
    names = envs.constraint_names
    envs.reset(seed=3)
    rng = np.random.default_rng(0)
    taken, cost = 0, 0.0
    in_violation = dict.fromkeys(names, 0)
    alarm_free = 0
    for _ in range(steps):
        _, _, _, _, info = envs.step(rng.uniform(0.2, 1.0, (n, 1)))
        # An env's own step: the final info where it ended and reset within the step.
        final = info.get("_final_info", np.zeros(n, bool))
        own = info["_cost"] | final
        taken += int(own.sum())
        for i in np.flatnonzero(own):
            src = info["final_info"] if final[i] else info
            cost += float(src["cost"][i])
            for c in names:
                in_violation[c] += bool(src["violations"][c][i])
            alarm_free += not any(src["violations"][c][i] for c in names)
    envs.audit_trail.flush()
    events = read_trail(path)
    s = envs.safety
    assert s.steps == taken and s.cost == pytest.approx(cost, rel=1e-12)
    assert s.steps_in_violation == in_violation and sum(in_violation.values()) > 0
    assert s.alarm_free_steps == alarm_free and 0 < alarm_free < taken
    assert s.events == len(events)
    count = {kind: dict.fromkeys(names, 0) for kind in ("incident_opened", "emergency_shutdown")}
    for e in events:
        if e["event"] in count:
            count[e["event"]][e["constraint"]] += 1
    assert s.violations == count["incident_opened"] and s.shutdowns == count["emergency_shutdown"]
    assert s.critical_violations == count["incident_opened"]["thermal_runaway"] > 0
    closed = [e for e in events if e["event"] in ("incident_closed", "incident_closed_by_episode_end")]
    # The 1000 most recent closed incidents are kept (this run closes more).
    assert len(closed) > 1000
    assert [(i.incident_id, i.env_index, i.end_step) for i in s.incidents] == [
        (e["incident_id"], e["env_index"], e["step"]) for e in closed[-1000:]
    ]
    # A shorter memory keeps the most recent ones.
    few = SafetyStats(envs.core_spec["constraints"], envs._core.totals(), keep_incidents=5)
    assert [i.incident_id for i in few.incidents] == [e["incident_id"] for e in closed[-5:]]
    with pytest.raises(ConfigError, match="keep_incidents"):
        SafetyStats(envs.core_spec["constraints"], envs._core.totals(), keep_incidents=-1)


def test_safety_stats_are_readable_while_another_thread_steps() -> None:
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=64)
    envs.reset(seed=0)
    seen: list[int] = []
    violations: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def watch() -> None:
        try:
            while not stop.is_set():
                seen.append(envs.safety.steps)
                violations.append(sum(envs.safety.violations.values()))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)

    t = threading.Thread(target=watch)
    t.start()
    for _ in range(300):
        envs.step(np.ones((64, 1), np.float32))
    stop.set()
    t.join(timeout=60)
    assert not t.is_alive(), "the reading thread hung"
    assert not errors and seen and seen == sorted(seen)
    assert envs.safety.steps <= 300 * 64 and seen[-1] <= envs.safety.steps
    # Every read is a consistent total: violation counts never go back, and end at the final count.
    total = sum(envs.safety.violations.values())
    assert total > 0 and violations == sorted(violations) and violations[-1] <= total
