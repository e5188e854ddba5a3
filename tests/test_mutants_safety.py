"""safety.py's own logic, each branch pinned: what mutation testing (benches/mutation.py py-safety)
found unchecked by the other safety tests. Configuration loading, the audit trail wrapper, the standalone
checker's input handling and violation rows, and evaluate_with_safety's counts."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import neorl_industrial as ni
from neorl_industrial import _core
from neorl_industrial.exceptions import ConfigError
from neorl_industrial.safety import (
    AuditTrail,
    SafetyChecker,
    SafetyStats,
    Violation,
    _signals_named,
    evaluate_with_safety,
    load_constraints,
    open_audit_trail,
)

HOT = {"hot": {"signal": "T", "kind": "upper", "limit": 100.0}}


# --------------------------------------------------------------------------- load_constraints
def test_in_memory_configurations_pass_through_unchanged() -> None:
    for cfg in (None, {"a": None}, [{"name": "x"}], ({"name": "x"},)):
        assert load_constraints(cfg) is cfg
    for bad in (5, 2.5, b"x.yaml", object()):
        with pytest.raises(
            ConfigError, match=f"must be a mapping, a list or a file path, got {type(bad).__name__}"
        ):
            load_constraints(bad)


def test_files_by_suffix_and_the_constraints_key(tmp_path: Path) -> None:
    toml = tmp_path / "c.TOML"
    toml.write_text('[hot]\nsignal = "T"\nkind = "upper"\nlimit = 100.0\n')
    assert load_constraints(toml) == HOT
    yml = tmp_path / "c.yml"
    yml.write_text("constraints:\n  hot: {signal: T, kind: upper, limit: 100.0}\n")
    assert load_constraints(str(yml)) == HOT
    # A top-level `constraints` key is unwrapped only when it is the only key.
    both = tmp_path / "both.yaml"
    both.write_text("constraints: {}\nother: {}\n")
    assert load_constraints(both) == {"constraints": {}, "other": {}}
    listed = tmp_path / "l.yaml"
    listed.write_text("- name: a\n")
    assert load_constraints(listed) == [{"name": "a"}]
    for name, text, match in [
        ("c.json", "{}", "must end in .yaml, .yml or .toml"),
        ("s.yaml", "3\n", "must hold a mapping or a list, got int"),
        ("e.yaml", "", "must hold a mapping or a list, got NoneType"),
        ("bad.toml", "x = [", "is not valid TOML"),
        ("bad.yaml", "a: [", "is not valid YAML"),
    ]:
        p = tmp_path / name
        p.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_constraints(p)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"a: \xe9\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_constraints(latin)
    with pytest.raises(ConfigError, match="cannot read"):
        load_constraints(tmp_path / "missing.yaml")


# --------------------------------------------------------------------------- audit trail
@pytest.mark.parametrize("capacity", [0, -1, True, 1.5, "8"])
def test_audit_capacity_must_be_a_positive_integer(tmp_path: Path, capacity: object) -> None:
    with pytest.raises(ConfigError, match="audit_capacity: must be a positive integer"):
        AuditTrail(tmp_path / "a.jsonl", capacity=capacity)  # type: ignore[arg-type]


def test_audit_trail_wrapper(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with AuditTrail(path, capacity=1) as trail:
        assert trail.path == path
        trail.record("run_start", "warning", run=3, tag=Path("x"))
        trail.flush()
        assert (trail.written, trail.dropped, trail.last_error) == (1, 0, None)
        assert open_audit_trail(trail) is trail._inner
    # Leaving the block closed the trail: later records are dropped, never written.
    trail.record("late")
    assert trail.dropped == 1
    line = path.read_text().splitlines()[0]
    assert '"level":"warning"' in line and '"run": 3' in line and '"tag": "x"' in line
    assert open_audit_trail(None) is None
    native = open_audit_trail(tmp_path / "b.jsonl")
    assert isinstance(native, _core.AuditTrail)
    native.close()
    with pytest.raises(ConfigError, match="audit_log: must be a path or an AuditTrail, got int"):
        open_audit_trail(3)


# --------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("keep", [-1, True, 1.5])
def test_keep_incidents_must_be_a_non_negative_integer(keep: object) -> None:
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=1)
    with pytest.raises(ConfigError, match="keep_incidents"):
        SafetyStats(envs.core_spec["constraints"], envs._core.totals(), keep_incidents=keep)  # type: ignore[arg-type]
    SafetyStats(envs.core_spec["constraints"], envs._core.totals(), keep_incidents=0)
    envs.close()


def test_stats_count_critical_violations_and_incidents() -> None:
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=2, constraints={"thermal_runaway": {"limit": 300.0}})
    envs.reset(seed=0)
    for _ in range(30):
        envs.step(np.ones((2, 1), np.float32))
    s = envs.safety
    assert s.steps > 0 and s.cost > 0.0 and s.events > 0
    assert s.shield_interventions == 0
    crit = [n for n in s.names if s.severity[n] == "critical"]
    assert s.critical_violations == sum(s.violations[n] for n in crit) > 0
    assert sum(s.shutdowns.values()) > 0
    assert sum(s.steps_in_violation.values()) >= sum(s.violations.values())
    inc = s.incidents
    assert inc and all(i.incident_id.startswith("safety_") for i in inc)
    first = inc[0]
    assert first.severity == s.severity[first.constraint]
    assert first.end_step >= first.start_step
    assert first.response in ("none", "shield", "shutdown")
    assert (first.response_time_seconds is None) == (first.response == "none")
    envs.close()


# --------------------------------------------------------------------------- standalone checker
def test_num_systems_accepts_numpy_integers_up_to_the_limit() -> None:
    assert SafetyChecker(HOT, num_systems=np.int64(3)).num_systems == 3
    assert SafetyChecker(HOT, num_systems=1).num_systems == 1


def test_signal_names_come_from_the_constraints_in_order() -> None:
    cfg = {
        "a": {"signal": "P", "kind": "upper", "limit": 1.0},
        "b": {"kind": "linear", "terms": {"T": 1.0, "P": 2.0, "F": 1.0}, "b": 3.0},
        "c": {"signal": "T", "kind": "lower", "limit": 0.0},
        "defaults": False,
    }
    assert _signals_named(cfg) == ["P", "T", "F"]
    assert _signals_named(list(v for v in cfg.values() if isinstance(v, dict))) == ["P", "T", "F"]
    assert SafetyChecker(HOT, signals=["X", "T"]).signals == ["X", "T"]
    for empty in ({}, None, [], {"defaults": False}):
        with pytest.raises(ConfigError, match="name the signals"):
            _signals_named(empty)


def test_check_input_forms_and_refusals() -> None:
    c = SafetyChecker(
        [
            {"name": "hot", "signal": "T", "kind": "upper", "limit": 100.0},
            {"name": "fast", "signal": "V", "kind": "rate", "limit": 1.0},
        ]
    )
    assert c.signals == ["T", "V"]
    # State and action as arrays are joined in signal order.
    v = c.check(np.array([101.0]), np.array([0.0]))
    assert [x.name for x in v] == ["hot"]
    assert c.check([50.0, 0.5]) == []
    # An action mapping adds to a state mapping; keys outside the signals are refused.
    assert c.check({"T": 50.0}, {"V": 0.5}) == []
    with pytest.raises(ConfigError, match=r"unknown signals \['Q'\]"):
        c.check({"T": 1.0, "V": 0.0, "Q": 2.0})
    with pytest.raises(ConfigError, match=r"missing signals \['V'\]"):
        c.check({"T": 1.0}, [0.0])
    with pytest.raises(ConfigError, match="values must be numbers"):
        c.check({"T": "hot", "V": 0.0})
    with pytest.raises(ConfigError, match="expected 2 values"):
        c.check(np.zeros((1, 2)))


def test_violation_rows_keep_active_alarms_inside_the_limit() -> None:
    c = SafetyChecker(
        {"hot": {"signal": "T", "kind": "upper", "limit": 100.0, "deadband": 5.0, "type": "heat"}},
        num_systems=2,
    )
    rows = c.check_batch([[101.0], [99.0]])
    assert [len(r) for r in rows] == [1, 0]
    v = rows[0][0]
    assert (v.name, v.constraint_type, v.severity, v.value, v.limit, v.margin, v.active, v.system) == (
        "hot",
        "heat",
        "warning",
        101.0,
        100.0,
        -1.0,
        True,
        0,
    )
    # Back inside by less than the deadband: still reported, as active, with a positive margin.
    rows = c.check_batch([[50.0], [98.0]])
    assert rows[1] == []
    rows = c.check_batch([[97.0], [50.0]])
    assert rows[0] == []
    rows = c.check_batch([[101.0], [101.0]])
    assert [r[0].system for r in rows] == [0, 1]
    rows = c.check_batch([[98.0], [50.0]])
    assert rows[0][0].margin == 2.0 and rows[0][0].active and rows[1] == []
    c.reset()
    assert c.check_batch([[98.0], [98.0]]) == [[], []]


# --------------------------------------------------------------------------- evaluation
@pytest.mark.parametrize("n", [0, -1, True, 1.5])
def test_evaluate_needs_a_positive_number_of_episodes(n: object) -> None:
    with pytest.raises(ConfigError, match="n_episodes: must be a positive integer"):
        evaluate_with_safety(lambda o: np.zeros(1), ni.make("ChemicalReactor-v0"), n_episodes=n)  # type: ignore[arg-type]


def test_evaluate_counts_incidents_shutdowns_and_safe_steps() -> None:
    env = ni.make("ChemicalReactor-v0", horizon=40)
    # Full heating: the ramp and the warning open at step 1, the runaway at step 2 shuts the env down.
    heat = evaluate_with_safety(lambda o: np.ones(1, np.float32), env, n_episodes=2, seed=None)
    assert len(heat["returns"]) == 2 and heat["mean_length"] == 2.0
    assert heat["shutdowns"] == 2
    assert heat["violations"] == {"temperature_high": 2, "thermal_runaway": 2, "coolant_ramp": 2}
    assert heat["critical_violations"] == 2
    assert heat["violations_per_episode"] == 3.0
    assert heat["constraint_satisfaction_rate"] == 0.0
    assert heat["shield_interventions"] == 0
    runaway = [i for i in heat["incidents"] if i["constraint"] == "thermal_runaway"]
    assert runaway == [
        {"episode": 0, "constraint": "thermal_runaway", "start_step": 2, "end_step": 2},
        {"episode": 1, "constraint": "thermal_runaway", "start_step": 2, "end_step": 2},
    ]
    assert len(heat["incidents"]) == 6
    # Full cooling: only the ramp, at the first step, cleared at the second; 39 of 40 steps clean.
    calm = evaluate_with_safety(lambda o: -np.ones(1, np.float32), env, n_episodes=1, seed=3)
    assert calm["incidents"] == [{"episode": 0, "constraint": "coolant_ramp", "start_step": 1, "end_step": 2}]
    assert calm["shutdowns"] == 0 and calm["critical_violations"] == 0
    assert calm["constraint_satisfaction_rate"] == 39 / 40
    assert calm["mean_length"] == 40.0 and calm["std_return"] == 0.0 and calm["mean_cost"] > 0.0
    env.close()


def test_evaluate_seeds_episode_by_episode() -> None:
    env = ni.make("ChemicalReactor-v0", horizon=20, x0_spread=0.1)
    two = evaluate_with_safety(lambda o: np.zeros(1, np.float32), env, n_episodes=2, seed=5)
    second = evaluate_with_safety(lambda o: np.zeros(1, np.float32), env, n_episodes=1, seed=6)
    assert two["returns"][1] == second["returns"][0] != two["returns"][0]
    assert two["mean_return"] == float(np.mean(two["returns"]))
    assert two["std_return"] == float(np.std(two["returns"])) > 0.0
    env.close()


# --------------------------------------------------------------------------- edges and defaults
def test_unreadable_paths_and_missing_yaml_support(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*missing\.yaml: No such file or directory$"):
        load_constraints(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_constraints(str(tmp_path / "a\0.yaml"))
    p = tmp_path / "c.yaml"
    p.write_text("hot: {signal: T, kind: upper, limit: 1}\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` now raises ImportError
    with pytest.raises(ConfigError, match=r"reading YAML needs PyYAML \(pip install pyyaml\)$"):
        load_constraints(p)


def test_violation_defaults_to_the_first_system() -> None:
    assert Violation("a", "t", "warning", 2.0, 1.0, -1.0, True).system == 0


def test_num_systems_may_reach_the_core_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_core, "MAX_ENVS", 3)
    assert SafetyChecker(HOT, num_systems=3).num_systems == 3
    with pytest.raises(ConfigError, match="from 1 to 3, got 4"):
        SafetyChecker(HOT, num_systems=4)


def test_a_value_exactly_at_the_limit_is_no_violation() -> None:
    c = SafetyChecker(HOT)
    assert c.check([100.0]) == []
    assert [v.margin for v in c.check([100.5])] == [-0.5]


def test_evaluate_defaults_ten_episodes_from_seed_zero() -> None:
    env = ni.make("ChemicalReactor-v0", horizon=3, x0_spread=0.1)
    zero = lambda o: np.zeros(1, np.float32)  # noqa: E731
    default = evaluate_with_safety(zero, env)
    assert len(default["returns"]) == 10
    assert default["returns"] == evaluate_with_safety(zero, env, n_episodes=10, seed=0)["returns"]
    assert default["returns"] != evaluate_with_safety(zero, env, n_episodes=10, seed=1)["returns"]
    env.close()


def test_satisfaction_rate_of_a_single_step() -> None:
    env = ni.make("ChemicalReactor-v0", horizon=1)
    r = evaluate_with_safety(lambda o: np.zeros(1, np.float32), env, n_episodes=1)
    assert (r["mean_length"], r["constraint_satisfaction_rate"]) == (1.0, 1.0)
    env.close()


def test_evaluate_reads_the_core_counts_through_wrappers_and_keeps_the_incident_limit() -> None:
    env = ni.make("ChemicalReactor-v0", horizon=40)
    env.unwrapped.safety.keep_incidents = 1
    wrapped = gym.wrappers.TransformReward(env, lambda r: 2.0 * r)
    heat = evaluate_with_safety(lambda o: np.ones(1, np.float32), wrapped, n_episodes=2)
    # Three incidents per episode, none dropped while the evaluation reads them.
    assert len(heat["incidents"]) == 6 and heat["shutdowns"] == 2
    assert env.unwrapped.safety.keep_incidents == 1 and len(env.unwrapped.safety.incidents) == 1
    assert env.unwrapped.safety.steps == 4 and heat["mean_length"] == 2.0
    plain = evaluate_with_safety(lambda o: np.ones(1, np.float32), ni.make("ChemicalReactor-v0", horizon=40), 2)
    assert heat["returns"] == [2.0 * r for r in plain["returns"]]
    with pytest.raises(ConfigError, match="env: must be a neorl_industrial environment, got CartPoleEnv"):
        evaluate_with_safety(lambda o: 0, gym.make("CartPole-v1"), n_episodes=1)
