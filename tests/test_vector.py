"""Vector envs: Gymnasium's vector semantics exactly, per-env seeding, determinism, bad input."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from conftest import STOCHASTIC_OPTIONS, assert_tree_equal
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import neorl_industrial as ni


def options_for(env_id: str) -> dict:
    # Short episodes so every autoreset path is exercised many times.
    return {**STOCHASTIC_OPTIONS[env_id], "horizon": 7}


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_identical_to_gymnasium_sync_vector_env(env_id: str, mode: AutoresetMode) -> None:
    n, opts = 5, options_for(env_id)
    ours = ni.make_vec(env_id, num_envs=n, autoreset_mode=mode, **opts)
    ref = SyncVectorEnv([lambda: ni.make(env_id, **opts) for _ in range(n)], autoreset_mode=mode)
    assert ours.single_observation_space == ref.single_observation_space
    assert ours.single_action_space == ref.single_action_space
    assert ours.observation_space == ref.observation_space
    assert ours.action_space == ref.action_space
    assert ours.metadata["autoreset_mode"] == mode
    assert_tree_equal(ours.reset(seed=42), ref.reset(seed=42))
    rng = np.random.default_rng(0)
    for t in range(40):
        # Full heating now and then drives reactors into emergency shutdown (termination).
        actions = rng.uniform(-1, 1, ours.action_space.shape).astype(np.float32)
        if env_id == "ChemicalReactor-v0" and t % 9 < 5:
            actions[: n // 2] = 1.0
        a, b = ours.step(actions), ref.step(actions)
        assert_tree_equal(a, b, f"step {t}")
        if mode == AutoresetMode.DISABLED:
            done = a[2] | a[3]
            if done.any():
                assert_tree_equal(
                    ours.reset(options={"reset_mask": done}), ref.reset(options={"reset_mask": done})
                )


def test_gymnasium_make_vec_uses_the_rust_batch(env_id: str) -> None:
    envs = gym.make_vec(f"neorl_industrial/{env_id}", num_envs=8, vectorization_mode="vector_entry_point")
    assert isinstance(envs, ni.VectorIndustrialEnv) and envs.num_envs == 8
    default = gym.make_vec(f"neorl_industrial/{env_id}", num_envs=3)
    assert isinstance(default, ni.VectorIndustrialEnv)
    obs, _ = envs.reset(seed=0)
    assert envs.observation_space.contains(obs)
    obs, r, term, trunc, info = envs.step(envs.action_space.sample())
    assert obs.shape == (8, envs.single_observation_space.shape[0]) and r.dtype == np.float64


def trajectory(env_id: str, n: int, threads: int | None, steps: int = 60) -> np.ndarray:
    envs = ni.make_vec(env_id, num_envs=n, num_threads=threads, **options_for(env_id))
    obs, _ = envs.reset(seed=7)
    rng = np.random.default_rng(3)
    trace = [obs]
    for _ in range(steps):
        obs, r, term, trunc, _ = envs.step(rng.uniform(-1, 1, envs.action_space.shape))
        trace += [obs, r[:, None], term[:, None], trunc[:, None]]
    return np.concatenate([x.astype(np.float64) for x in trace], axis=1)


def test_bit_identical_for_any_thread_count(env_id: str) -> None:
    ref = trajectory(env_id, 64, 1)
    for threads in (2, 3, None):
        np.testing.assert_array_equal(ref, trajectory(env_id, 64, threads))


def test_env_i_equals_single_env_seeded_seed_plus_i_for_any_batch_size(env_id: str) -> None:
    opts = options_for(env_id)
    actions = np.random.default_rng(9).uniform(-1, 1, (30, 48, len(ni.spec(env_id)["actions"])))
    for n in (1, 17, 48):
        envs = ni.make_vec(env_id, num_envs=n, autoreset_mode="same_step", **opts)
        obs, _ = envs.reset(seed=100)
        singles = [ni.make(env_id, **opts) for _ in range(n)]
        for i, e in enumerate(singles):
            np.testing.assert_array_equal(e.reset(seed=100 + i)[0], obs[i])
        for t in range(30):
            obs, r, term, trunc, _ = envs.step(actions[t, :n])
            for i, e in enumerate(singles):
                o, ri, te, tr, _ = e.step(actions[t, i])
                if te or tr:
                    o, _ = e.reset()
                np.testing.assert_array_equal(o, obs[i])
                assert (ri, te, tr) == (r[i], term[i], trunc[i])


def test_seed_lists_and_none_entries() -> None:
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=3, x0_spread=0.1)
    a, _ = envs.reset(seed=[5, None, 7])
    b, _ = envs.reset(seed=[5, 6, 7])
    np.testing.assert_array_equal(a[[0, 2]], b[[0, 2]])
    with pytest.raises(ni.ConfigError, match="one per env"):
        envs.reset(seed=[1, 2])
    with pytest.raises(ni.ConfigError, match="non-negative"):
        envs.reset(seed=[1, -2, 3])


def test_reset_mask_resets_only_selected_envs() -> None:
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=3, autoreset_mode="disabled")
    envs.reset(seed=0)
    obs, *_ = envs.step(np.full((3, 1), 0.3, np.float32))
    mask = np.array([False, True, False])
    new, info = envs.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(new[[0, 2]], obs[[0, 2]])
    np.testing.assert_array_equal(new[1], np.array([0.8, 330.0, 0.85], np.float32))
    np.testing.assert_array_equal(info["_constraints"], mask)
    for bad, match in [
        ([True, False, True], "numpy array"),
        (np.ones(2, bool), r"shape \(3,\)"),
        (np.ones(3, int), "dtype bool"),
        (np.zeros(3, bool), "at least one"),
    ]:
        with pytest.raises(ni.ConfigError, match=match):
            envs.reset(options={"reset_mask": bad})


def test_disabled_mode_refuses_to_step_an_ended_env() -> None:
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=2, autoreset_mode="disabled", horizon=2)
    envs.reset(seed=0)
    envs.step(np.zeros((2, 1)))
    _, _, _, trunc, _ = envs.step(np.zeros((2, 1)))
    assert trunc.all()
    with pytest.raises(ni.ResetNeededError, match="env 0 has ended"):
        envs.step(np.zeros((2, 1)))


def test_bad_batch_actions_name_env_and_element() -> None:
    envs = ni.make_vec("IndustrialBenchmark-v0", num_envs=4)
    envs.reset(seed=0)
    a = np.zeros((4, 3), np.float32)
    a[2, 1] = np.nan
    with pytest.raises(ni.InvalidActionError, match="env 2, element 1: must be finite"):
        envs.step(a)
    with pytest.raises(ni.InvalidActionError, match=r"expected shape \(4, 3\), got \(3, 4\)"):
        envs.step(np.zeros((3, 4)))
    with pytest.raises(ni.InvalidActionError, match="dtype bool"):
        envs.step(np.zeros((4, 3), bool))
    # Non-contiguous views and nested lists are read correctly.
    big = np.random.default_rng(0).uniform(-1, 1, (8, 6))
    view = big[::2, ::2]
    envs.reset(seed=0)
    x = envs.step(view)[0]
    envs.reset(seed=0)
    y = envs.step(view.tolist())[0]
    np.testing.assert_array_equal(x, y)


def test_one_dimensional_actions_accept_flat_batches() -> None:
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=4)
    envs.reset(seed=0)
    a = envs.step(np.zeros(4))[0]
    envs.reset(seed=0)
    b = envs.step(np.zeros((4, 1)))[0]
    np.testing.assert_array_equal(a, b)


def test_returned_arrays_are_fresh() -> None:
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=2)
    obs0, _ = envs.reset(seed=0)
    obs1, r1, *_ = envs.step(np.zeros((2, 1)))
    keep = obs1.copy()
    envs.step(np.ones((2, 1)))
    np.testing.assert_array_equal(obs1, keep)
    assert not np.shares_memory(obs0, obs1)


def test_a_closed_vector_env_says_so() -> None:
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=2)
    envs.reset(seed=0)
    envs.close()
    envs.close()  # closing twice is harmless, as in Gymnasium
    for use in (lambda: envs.step(np.zeros((2, 1))), envs.reset, lambda: pickle.dumps(envs)):
        with pytest.raises(ni.EnvClosedError, match=r"ChemicalReactor-v0 x2 is closed") as e:
            use()
        assert isinstance(e.value, gym.error.ClosedEnvironmentError)


def test_vector_env_pickles_with_its_state() -> None:
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=3, noise=0.02, autoreset_mode="same_step")
    envs.reset(seed=1)
    for _ in range(5):
        envs.step(np.full((3, 1), 0.2))
    twin = pickle.loads(pickle.dumps(envs))
    assert twin.autoreset_mode == AutoresetMode.SAME_STEP
    for _ in range(5):
        a, b = envs.step(np.full((3, 1), -0.1)), twin.step(np.full((3, 1), -0.1))
        assert_tree_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_envs": 0}, ni.ConfigError, "num_envs: must be a positive integer"),
        ({"num_envs": 2, "autoreset_mode": "sometimes"}, ni.ConfigError, "autoreset_mode"),
        ({"num_envs": 2, "num_threads": 0}, ni.ConfigError, "num_threads: must be a positive integer"),
        ({"num_envs": 2, "horizon": -1}, ni.ConfigError, "horizon"),
    ],
)
def test_bad_vector_config(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ni.make_vec("ChemicalReactor-v0", **kwargs)


def test_constructor_defaults_and_refusals() -> None:
    from neorl_industrial.metrics import Registry

    # One env, next-step autoreset, and metrics recorded into the registry given (by default).
    reg = Registry()
    envs = ni.VectorIndustrialEnv("ChemicalReactor-v0", registry=reg)
    assert (envs.num_envs, envs.autoreset_mode) == (1, AutoresetMode.NEXT_STEP)
    envs.reset(seed=0)
    for _ in range(3):
        envs.step(np.zeros((1, 1), np.float32))
    text = reg.generate_latest().decode()
    assert 'env_steps_total{env="ChemicalReactor-v0"} 3.0' in text
    quiet = Registry()
    silent = ni.VectorIndustrialEnv("ChemicalReactor-v0", registry=quiet, metrics=False)
    silent.reset(seed=0)
    silent.step(np.zeros((1, 1), np.float32))
    assert "env_steps_total{" not in quiet.generate_latest().decode()
    with pytest.raises(ni.ConfigError, match="render_mode: vector envs do not render, got 'rgb_array'"):
        ni.VectorIndustrialEnv("ChemicalReactor-v0", render_mode="rgb_array")
