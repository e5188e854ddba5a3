"""Single environments: spaces, Gymnasium conformance, determinism, pickling, bad input."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from conftest import STOCHASTIC_OPTIONS, assert_tree_equal
from gymnasium.utils.env_checker import check_env

import neorl_industrial as ni


def rollout(env: gym.Env, seed: int, steps: int, action_seed: int = 0) -> list[tuple]:
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    out = [(obs.copy(),)]
    for _ in range(steps):
        a = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, r, term, trunc, info = env.step(a)
        out.append((obs.copy(), r, term, trunc))
        if term or trunc:
            obs, _ = env.reset()
            out.append((obs.copy(),))
    return out


def same(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(
        len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y, strict=True))
        for x, y in zip(a, b, strict=True)
    )


def test_spaces_and_spec(env_id: str) -> None:
    env = ni.make(env_id)
    sp = ni.spec(env_id)
    assert env.observation_space.shape == (len(sp["observations"]),)
    assert env.observation_space.dtype == np.float32
    assert env.action_space == gym.spaces.Box(-1, 1, (len(sp["actions"]),), np.float32)
    assert all(v["unit"] for v in sp["actions"])
    assert sp["horizon"] == env.horizon > 0
    assert [c["name"] for c in sp["constraints"]] == env.constraint_names
    assert (sp["id"], sp["name"], sp["version"]) == (env_id, env_id.rsplit("-v", 1)[0], 0)
    registered = gym.spec(f"neorl_industrial/{env_id}")
    assert (registered.name, registered.version) == (sp["name"], sp["version"])
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert set(info["constraints"]) == set(env.constraint_names)
    for _ in range(50):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert isinstance(r, float) and np.isfinite(r)
        assert isinstance(term, bool) and isinstance(trunc, bool)
        assert info["action"].shape == env.action_space.shape
        lo = np.array([v["low"] for v in sp["actions"]])
        hi = np.array([v["high"] for v in sp["actions"]])
        assert np.all(info["action"] >= lo) and np.all(info["action"] <= hi)
        if term or trunc:
            env.reset()


def test_gymnasium_make_and_check_env_without_warnings(env_id: str) -> None:
    env = gym.make(f"neorl_industrial/{env_id}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=True)
        # Through Gymnasium's own wrappers (order enforcing, passive checker) too.
        env.reset(seed=0)
        for _ in range(5):
            env.step(env.action_space.sample())
    assert isinstance(env.unwrapped, ni.IndustrialEnv)


def test_same_seed_same_trajectory_and_seeds_matter(env_id: str) -> None:
    opts = STOCHASTIC_OPTIONS[env_id]
    a = rollout(ni.make(env_id, **opts), seed=3, steps=200)
    b = rollout(ni.make(env_id, **opts), seed=3, steps=200)
    c = rollout(ni.make(env_id, **opts), seed=4, steps=200)
    assert same(a, b)
    assert not same(a, c)


def test_truncates_at_horizon_and_then_needs_reset(env_id: str) -> None:
    env = ni.make(env_id, horizon=5)
    env.reset(seed=0)
    for t in range(5):
        _, _, term, trunc, _ = env.step(np.asarray(ni.spec(env_id)["safe_action"], dtype=np.float32))
        assert not term
        assert trunc == (t == 4)
    with pytest.raises(ni.ResetNeededError, match="reset"):
        env.step(env.action_space.sample())


def test_step_before_reset_is_a_clear_error(env_id: str) -> None:
    env = ni.make(env_id)
    with pytest.raises(ni.ResetNeededError, match="reset"):
        env.step(env.action_space.sample())


def test_pickle_keeps_the_full_state(env_id: str) -> None:
    env = ni.make(env_id, **STOCHASTIC_OPTIONS[env_id])
    env.reset(seed=11)
    gentle = np.random.default_rng(0)
    for _ in range(7):  # mid-range actions: no env ends its episode here
        env.step(gentle.uniform(-0.3, 0.3, env.action_space.shape).astype(np.float32))
    twin = pickle.loads(pickle.dumps(env))
    rng = np.random.default_rng(1)
    for _ in range(30):
        a = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        x, y = env.step(a), twin.step(a)
        assert_tree_equal(x, y)  # infos included: constraint values, alarms, cost
        if x[2] or x[3]:
            break


# Slow alarms: an on-delay of 3 steps and a deadband, so that at the moment of pickling one
# alarm is counting towards its delay or is open and held by its deadband.
SLOW_ALARMS = {
    "ChemicalReactor-v0": {"temperature_high": {"limit": 327.0, "on_delay": 3, "deadband": 2.0}},
    "Pipeline-v0": {},  # its default flow_deviation alarm has an on-delay of 9 steps
}


def alarm_words(env: gym.Env) -> np.ndarray:
    """The alarms' integer words per constraint (active, beyond, incident id, start step,
    response), as the core's snapshot holds them."""
    return env.unwrapped._core.snapshot()[7].reshape(-1, 5)


@pytest.mark.parametrize("env_id", sorted(SLOW_ALARMS))
def test_pickle_keeps_pending_and_open_alarms_and_the_episode_return(env_id: str) -> None:
    rng = np.random.default_rng(5)
    actions = [rng.uniform(-1, 1, len(ni.spec(env_id)["actions"])).astype(np.float32) for _ in range(400)]
    seen = set()
    for cut in range(1, 60):
        env = ni.make(env_id, constraints=SLOW_ALARMS[env_id])
        env.reset(seed=34)
        for a in actions[:cut]:
            _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            break
        words = alarm_words(env)
        state = "open" if words[:, 0].any() else "pending" if words[:, 1].any() else None
        if state is None or state in seen:
            continue
        seen.add(state)
        twin = pickle.loads(pickle.dumps(env))
        got = alarm_words(twin)
        # Everything but the incident id: an open incident goes on in the copy under a new one.
        np.testing.assert_array_equal(np.delete(got, 2, axis=1), np.delete(words, 2, axis=1))
        open_ids = got[words[:, 0] == 1, 2]
        assert np.all(open_ids != 0) and not np.isin(open_ids, words[:, 2]).any()
        for a in actions[cut:]:
            x, y = env.step(a), twin.step(a)
            assert_tree_equal(x, y)
            if x[2] or x[3]:
                break
        # The episode return so far travels too (the core reports it when an episode ends).
        np.testing.assert_array_equal(env.unwrapped._core.snapshot()[5], twin.unwrapped._core.snapshot()[5])
    assert seen == {"open", "pending"}, f"the actions never left an alarm {({'open', 'pending'} - seen)}"


def test_a_pickle_from_another_version_is_a_state_error() -> None:
    env = ni.make("ChemicalReactor-v0")
    env.reset(seed=0)
    state = env.__getstate__()
    state["snapshot"] = state["snapshot"][:5]  # the layout before alarms and returns were kept
    twin = ni.ChemicalReactorEnv.__new__(ni.ChemicalReactorEnv)
    with pytest.raises(ni.StateError, match="saved state has 5 parts, expected 9"):
        twin.__setstate__(state)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.array([np.nan]), "element 0: must be finite, got NaN"),
        (np.array([np.inf]), "must be finite, got inf"),
        (np.zeros((2,)), r"expected shape \(1,\), got \(2,\)"),
        (np.zeros((1, 1)), r"expected shape \(1,\), got \(1, 1\)"),
        (np.zeros(1, dtype=bool), "dtype bool is not supported"),
        (np.zeros(1, dtype=np.complex128), "dtype complex128 is not supported"),
        (np.zeros(1, dtype=object), "dtype object is not supported"),
        ("hot", "must be an array or a \\(nested\\) list of real numbers, got str"),
        ([[0.0, 1.0]], r"expected shape \(1,\)"),
        (None, "got NoneType"),
    ],
)
def test_bad_actions_raise_and_leave_the_env_intact(bad: object, match: str) -> None:
    env, twin = ni.make("ChemicalReactor-v0", noise=0.01), ni.make("ChemicalReactor-v0", noise=0.01)
    env.reset(seed=5)
    twin.reset(seed=5)
    with pytest.raises(ni.InvalidActionError, match=match) as e:
        env.step(bad)
    assert isinstance(e.value, ValueError) and isinstance(e.value, ni.NeorlError)
    a = np.array([0.1], dtype=np.float32)
    x, y = env.step(a), twin.step(a)
    assert np.array_equal(x[0], y[0]) and x[1] == y[1]


def test_actions_of_any_layout_and_type_agree() -> None:
    env = ni.make("IndustrialBenchmark-v0")
    base = np.array([0.5, -0.25, 0.75])
    results = []
    for action in (
        base.astype(np.float32),
        base.astype(np.float64),
        np.asfortranarray(np.stack([base, base]))[0],
        np.stack([base, np.zeros(3)], axis=1)[:, 0],  # strided view
        base.tolist(),
        tuple(base.tolist()),
    ):
        env.reset(seed=1)
        results.append(env.step(action)[0])
    assert all(np.array_equal(results[0], r) for r in results)


def test_out_of_range_actions_are_clipped_and_counted() -> None:
    env = ni.make("ChemicalReactor-v0")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([3.0], dtype=np.float32))
    assert info["clipped"] == 1
    assert info["action"][0] == 310.0
    _, _, _, _, info = env.step(np.array([-1.0], dtype=np.float32))
    assert info["clipped"] == 0 and info["action"][0] == 290.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"horizn": 3}, "horizn: is not an option of ChemicalReactor-v0"),
        ({"horizon": 0}, "horizon: must be a finite number in"),
        ({"horizon": 2.5}, "horizon: must be a whole number"),
        ({"setpoints": [1.5]}, "setpoints: must be a non-empty list"),
        ({"noise": float("nan")}, "noise: must be a finite number"),
        ({"noise": "loud"}, "noise: must be a bool, a number or a list of numbers, got str"),
        # Bytes and bools are not numbers here (b"ab" is not [97.0, 98.0], True not 1.0).
        ({"setpoints": b"ab"}, "setpoints: must be a bool, a number or a list of numbers, got bytes"),
        ({"setpoints": [0.8, True]}, "setpoints: element 1 must be a number, got bool"),
        ({"setpoints": (0.8, "0.9")}, "setpoints: element 1 must be a number, got str"),
        ({"setpoints": np.array([[0.8]])}, "setpoints: must be a bool, a number or a list of numbers, got ndarray"),
    ],
)
def test_bad_options_raise_config_error_naming_the_field(kwargs: dict, match: str) -> None:
    with pytest.raises(ni.ConfigError, match=match):
        ni.make("ChemicalReactor-v0", **kwargs)


def test_setpoints_as_any_sequence_of_numbers_are_the_list() -> None:
    import array
    import collections
    import fractions

    want = ni.make("ChemicalReactor-v0", setpoints=[0.8, 0.9])
    for same in (
        (0.8, 0.9),
        np.array([0.8, 0.9]),
        [np.float32(0.8), np.float64(0.9)],
        collections.deque([0.8, 0.9]),
        array.array("d", [0.8, 0.9]),
        [np.array(0.8), fractions.Fraction(9, 10)],  # elements that convert to float
    ):
        env = ni.make("ChemicalReactor-v0", setpoints=same)
        obs, _ = env.reset(seed=0)
        np.testing.assert_array_equal(obs, want.reset(seed=0)[0])
        assert obs[2] == np.float32(0.8)


def test_unknown_env_and_bad_seed() -> None:
    with pytest.raises(ni.UnknownEnvironmentError, match="known: ChemicalReactor-v0"):
        ni.make("Reactor-v9")
    env = ni.make("ChemicalReactor-v0")
    with pytest.raises(ni.ConfigError, match="seed"):
        env.reset(seed=-1)


def test_emergency_shutdown_names_the_constraint() -> None:
    env = ni.make("ChemicalReactor-v0")
    env.reset(seed=0)
    for _ in range(60):
        obs, _, term, trunc, info = env.step(np.array([1.0], dtype=np.float32))
        if term:
            break
    assert term and not trunc
    assert info["shutdown_reason"] == "thermal_runaway"
    assert info["constraints"]["thermal_runaway"] > 350.0


def test_rgb_array_trend_plot(env_id: str) -> None:
    import matplotlib  # noqa: F401  (the test extra installs it: a broken install fails here)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(
            gym.make(f"neorl_industrial/{env_id}", render_mode="rgb_array").unwrapped
        )  # incl. render checks
    env = ni.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(20):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            break
    img = env.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.shape[1] == 640
    assert img.std() > 5  # something was drawn
    assert ni.make(env_id).render() is None
    with pytest.raises(ni.ConfigError, match="render_mode: 'human' is not supported"):
        ni.make(env_id, render_mode="human")


def test_single_env_records_into_its_registry() -> None:
    from neorl_industrial import metrics

    reg = metrics.Registry()
    env = ni.make("ChemicalReactor-v0", registry=reg)
    env.reset(seed=0)
    for _ in range(5):
        env.step(np.zeros(1, np.float32))
    text = metrics.generate_latest(reg).decode()
    assert 'env_steps_total{env="ChemicalReactor-v0"} 5' in text
    quiet = metrics.Registry()
    env = ni.make("ChemicalReactor-v0", registry=quiet, metrics=False)
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    assert "env_steps_total{" not in metrics.generate_latest(quiet).decode()


@pytest.mark.parametrize("env_id", ni.env_ids())
def test_single_env_outputs_are_fresh_arrays_every_step(env_id: str) -> None:
    env = ni.make(env_id)
    env.reset(seed=0)
    obs, _, _, _, info = env.step(env.action_space.sample())
    kept = (obs.copy(), info["action"].copy(), dict(info["constraints"]))
    obs2, _, _, _, info2 = env.step(-env.action_space.high)
    assert obs2 is not obs and info2["action"] is not info["action"]
    assert np.array_equal(obs, kept[0]) and np.array_equal(info["action"], kept[1])
    assert info["constraints"] == kept[2]
