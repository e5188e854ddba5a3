"""Stable-Baselines3: check_env on every env, SB3VecEnv over the Rust batch (DummyVecEnv's semantics,
VecMonitor, VecNormalize, seeding, attributes, rendering, errors) and PPO learning on the batch."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import STOCHASTIC_OPTIONS, assert_tree_equal
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import TransformReward
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

import neorl_industrial as ni
from neorl_industrial import ConfigError, InvalidActionError, ResetNeededError
from neorl_industrial.integrations.sb3 import SB3VecEnv, split_info

REACTOR = "ChemicalReactor-v0"


def short_options(env_id: str) -> dict[str, Any]:
    return {**STOCHASTIC_OPTIONS.get(env_id, {}), "horizon": 7}


# --------------------------------------------------------------------------- check_env
@pytest.mark.parametrize("env_id", ni.env_ids())
def test_check_env_passes_without_warnings(env_id: str) -> None:
    for env in (ni.make(env_id), gym.make(f"neorl_industrial/{env_id}")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env, warn=True)
        assert [str(w.message) for w in caught] == []


# --------------------------------------------------------------------------- semantics
@pytest.mark.parametrize("env_id", ni.env_ids())
def test_identical_to_dummy_vec_env(env_id: str) -> None:
    n, opts = 4, short_options(env_id)
    ours = SB3VecEnv.from_id(env_id, n, **opts)
    ref = DummyVecEnv([lambda: ni.make(env_id, **opts) for _ in range(n)])
    assert ours.observation_space == ref.observation_space
    assert ours.action_space == ref.action_space
    assert ours.seed(11) == ref.seed(11)
    np.testing.assert_array_equal(ours.reset(), ref.reset())
    assert_tree_equal(ours.reset_infos, ref.reset_infos, "reset_infos")
    rng = np.random.default_rng(0)
    ends = {"terminated": 0, "truncated": 0}
    for t in range(30):
        actions = rng.uniform(-1, 1, (n, *ours.action_space.shape)).astype(np.float32)
        if env_id == REACTOR and t % 9 < 5:
            actions[:2] = 1.0  # full heating: thermal runaway, an emergency shutdown
        obs_a, rew_a, done_a, infos_a = ours.step(actions)
        obs_b, rew_b, done_b, infos_b = ref.step(actions)
        np.testing.assert_array_equal(obs_a, obs_b)
        assert obs_a.dtype == np.float32 and rew_a.dtype == rew_b.dtype
        np.testing.assert_array_equal(rew_a, rew_b)
        np.testing.assert_array_equal(done_a, done_b)
        assert_tree_equal(infos_a, infos_b, f"step {t} infos")
        assert_tree_equal(ours.reset_infos, ref.reset_infos, f"step {t} reset_infos")
        for inf in infos_a:
            if "terminal_observation" in inf:
                ends["truncated" if inf["TimeLimit.truncated"] else "terminated"] += 1
    assert ends["truncated"] > 0
    if env_id == REACTOR:
        assert ends["terminated"] > 0


def test_infos_carry_terminal_observation_truncation_cost_and_shutdown() -> None:
    n = 3
    env = SB3VecEnv.from_id(REACTOR, n, horizon=5)
    names = env.constraint_names
    assert env.observation_space.dtype == np.float32
    env.seed(0)
    obs = env.reset()
    assert obs.dtype == np.float32 and obs.shape == (n, 3)
    actions = np.zeros((n, 1), dtype=np.float32)
    actions[0] = 1.0  # env 0 runs away within the horizon; the others reach it
    shutdown_seen = False
    for t in range(1, 6):
        obs, rewards, dones, infos = env.step(actions)
        assert rewards.dtype == np.float32 and dones.dtype == np.bool_ and len(infos) == n
        for i, inf in enumerate(infos):
            assert set(inf["constraints"]) == set(names) == set(inf["violations"])
            assert isinstance(inf["cost"], float)
            assert ("terminal_observation" in inf) == bool(dones[i])
            if "shutdown_reason" in inf:
                assert i == 0 and dones[i] and inf["shutdown_reason"] == "thermal_runaway"
                assert inf["TimeLimit.truncated"] is False and inf["cost"] > 0
                assert inf["violations"]["thermal_runaway"] is True
                term = inf["terminal_observation"]
                assert term.dtype == np.float32 and term.shape == (3,) and term[1] > 350.0
                assert obs[0, 1] < 335.0  # the row is already the next episode's start
                shutdown_seen = True
        if t < 5:
            assert not dones[1:].any()
    assert shutdown_seen
    # Step 5 is the horizon: the others are truncated, not terminated.
    assert dones[1:].all()
    for inf in infos[1:]:
        assert inf["TimeLimit.truncated"] is True and "shutdown_reason" not in inf
        assert inf["terminal_observation"].dtype == np.float32
    assert env.safety.shutdowns["thermal_runaway"] >= 1
    assert env.safety.steps == 5 * n


def test_split_info_follows_the_masks() -> None:
    info = {
        "cost": np.array([1.0, 2.0, 3.0]),
        "_cost": np.array([True, False, True]),
        "action": np.array([[1.0], [2.0], [3.0]]),
        "_action": np.array([True, True, False]),
        "nested": {"x": np.array([False, True, True]), "_x": np.array([False, True, True])},
        "_nested": np.array([False, True, True]),
    }
    parts = split_info(info, 3)
    assert parts[0] == {"cost": 1.0, "action": pytest.approx(np.array([1.0]))}
    assert set(parts[1]) == {"action", "nested"} and parts[1]["nested"] == {"x": True}
    assert set(parts[2]) == {"cost", "nested"} and type(parts[2]["cost"]) is float


def test_seed_then_reset_reproduces_single_envs_and_seeds_are_used_once() -> None:
    n, opts = 4, STOCHASTIC_OPTIONS[REACTOR]
    env = SB3VecEnv.from_id(REACTOR, n, **opts)
    assert env.seed(100) == [100, 101, 102, 103]
    first = env.reset()
    for i in range(n):
        single, _ = ni.make(REACTOR, **opts).reset(seed=100 + i)
        np.testing.assert_array_equal(first[i], single)
    again = env.reset()  # no new seed: the streams go on
    assert not np.array_equal(first, again)
    env.seed(100)
    np.testing.assert_array_equal(env.reset(), first)


def test_works_inside_gymnasium_vector_wrappers() -> None:
    plain = SB3VecEnv.from_id(REACTOR, 3)
    doubled = SB3VecEnv(TransformReward(ni.make_vec(REACTOR, 3, autoreset_mode="same_step"), lambda r: 2 * r))
    for env in (plain, doubled):
        env.seed(0)
        env.reset()
    actions = np.full((3, 1), 0.3, dtype=np.float32)
    np.testing.assert_allclose(doubled.step(actions)[1], 2 * plain.step(actions)[1], rtol=1e-6)
    assert doubled.env_is_wrapped(TransformReward) == [True] * 3
    assert plain.env_is_wrapped(TransformReward) == [False] * 3


def test_vec_monitor_and_vec_normalize_over_the_batch() -> None:
    n, opts = 6, {**STOCHASTIC_OPTIONS[REACTOR], "horizon": 8}
    raw = SB3VecEnv.from_id(REACTOR, n, **opts)
    norm = VecNormalize(VecMonitor(SB3VecEnv.from_id(REACTOR, n, **opts)), gamma=0.99)
    raw.seed(5)
    norm.seed(5)
    raw.reset()
    norm.reset()
    rng = np.random.default_rng(1)
    returns, lengths, episodes = np.zeros(n), np.zeros(n, dtype=int), 0
    for _ in range(20):
        actions = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
        actions[0] = 1.0
        obs_r, rew_r, done_r, infos_r = raw.step(actions)
        obs_n, rew_n, done_n, infos_n = norm.step(actions)
        np.testing.assert_array_equal(done_r, done_n)
        np.testing.assert_allclose(norm.get_original_obs(), obs_r)
        np.testing.assert_allclose(norm.get_original_reward(), rew_r)
        np.testing.assert_allclose(obs_n, norm.normalize_obs(obs_r), rtol=1e-5, atol=1e-6)
        returns += rew_r
        lengths += 1
        for i in np.flatnonzero(done_r):
            # VecMonitor's episode record is the raw return; VecNormalize normalised the last obs.
            assert infos_n[i]["episode"]["r"] == pytest.approx(returns[i], rel=1e-5)
            assert infos_n[i]["episode"]["l"] == lengths[i]
            np.testing.assert_allclose(
                infos_n[i]["terminal_observation"],
                norm.normalize_obs(infos_r[i]["terminal_observation"]),
                rtol=1e-5,
                atol=1e-6,
            )
            assert infos_n[i]["cost"] == infos_r[i]["cost"]
            returns[i], lengths[i] = 0.0, 0
            episodes += 1
    assert episodes > n  # shutdowns of env 0 and horizon ends of all
    assert not np.allclose(norm.obs_rms.mean, 0.0)


# --------------------------------------------------------------------------- VecEnv API
def test_attribute_access_is_the_vector_envs() -> None:
    n = 3
    env = SB3VecEnv.from_id(REACTOR, n)
    names = ni.make_vec(REACTOR).constraint_names
    assert env.get_attr("constraint_names") == [names] * n
    assert env.get_attr("num_envs", indices=[0, 2]) == [n, n]
    assert env.get_attr("render_mode") == [None] * n
    assert env.has_attr("safety") and not env.has_attr("no_such_attribute")
    with pytest.raises(AttributeError, match="no_such_attribute"):
        env.get_attr("no_such_attribute")
    env.set_attr("tag", "batch-a")
    assert env.get_attr("tag", indices=1) == ["batch-a"] and env.vector_env.tag == "batch-a"
    results = env.env_method("reset", seed=3)
    assert len(results) == n and all(r is results[0] for r in results)
    np.testing.assert_array_equal(results[0][0], ni.make_vec(REACTOR, n).reset(seed=3)[0])
    assert env.env_is_wrapped(Monitor) == [False] * n
    assert env.core_spec["id"] == REACTOR and env.constraint_names == names


def test_rgb_array_images_are_trend_plots_of_each_env() -> None:
    env = SB3VecEnv.from_id(REACTOR, 2, render_mode="rgb_array")
    assert env.render_mode == "rgb_array" and "rgb_array" in env.metadata["render_modes"]
    env.seed(0)
    env.reset()
    for _ in range(3):
        env.step(np.array([[1.0], [-1.0]], dtype=np.float32))
    images = env.get_images()
    assert len(images) == 2
    for img in images:
        assert img is not None and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert not np.array_equal(images[0], images[1])  # different trajectories, different plots
    tiled = env.render()
    assert tiled is not None and tiled.shape[2] == 3 and tiled.size >= images[0].size
    plain = SB3VecEnv.from_id(REACTOR, 2)
    with pytest.warns(UserWarning, match="rgb_array"):
        assert plain.get_images() == [None, None]


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED])
def test_rejects_other_autoreset_modes(mode: AutoresetMode) -> None:
    with pytest.raises(ConfigError, match=f"same_step.*{mode.value}"):
        SB3VecEnv(ni.make_vec(REACTOR, 2, autoreset_mode=mode))
    with pytest.raises(ConfigError, match="autoreset_mode"):
        SB3VecEnv.from_id(REACTOR, 2, autoreset_mode=mode)


def test_rejects_what_is_not_a_neorl_vector_env() -> None:
    with pytest.raises(ConfigError, match="neorl_industrial vector env.*ChemicalReactorEnv"):
        SB3VecEnv(ni.make(REACTOR))  # type: ignore[arg-type]
    sync = SyncVectorEnv([lambda: ni.make(REACTOR)] * 2, autoreset_mode=AutoresetMode.SAME_STEP)
    with pytest.raises(ConfigError, match="SyncVectorEnv"):
        SB3VecEnv(sync)
    closed = ni.make_vec(REACTOR, 2, autoreset_mode="same_step")
    closed.close()
    with pytest.raises(ConfigError, match="closed"):
        SB3VecEnv(closed)
    with pytest.raises(ConfigError, match="render_mode"):
        SB3VecEnv.from_id(REACTOR, 2, render_mode="human")


def test_bad_calls_raise_clear_errors() -> None:
    env = SB3VecEnv.from_id(REACTOR, 3)
    env.reset()
    with pytest.raises(ResetNeededError, match="step_async"):
        env.step_wait()
    with pytest.raises(InvalidActionError):
        env.step(np.zeros((2, 1), dtype=np.float32))
    with pytest.raises(ConfigError, match="no sub-envs"):
        env.set_attr("x", 1, indices=[0])
    with pytest.raises(ConfigError, match="no sub-envs"):
        env.env_method("reset", indices=[1, 2])
    env.set_options([{"a": 1}, {}, {}])
    with pytest.raises(ConfigError, match="same options"):
        env.reset()


def test_import_without_sb3_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['stable_baselines3'] = None\n"
        "try:\n    import neorl_industrial.integrations.sb3\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "pip install 'neorl-industrial[sb3]'" in out.stdout, out.stderr


# --------------------------------------------------------------------------- learning
TRAIN_OPTIONS = {"x0_spread": 0.1}


def episode_returns(act: Any, n: int = 32, seed: int = 10_000) -> np.ndarray:
    """Returns of the first episode of each of ``n`` envs seeded ``seed + i`` under ``act``."""
    env = SB3VecEnv.from_id(REACTOR, n, **TRAIN_OPTIONS)
    env.seed(seed)
    obs = env.reset()
    total, done = np.zeros(n), np.zeros(n, dtype=bool)
    while not done.all():
        obs, reward, dones, _ = env.step(act(obs))
        total += np.where(done, 0.0, reward)
        done |= dones
    return total


def test_ppo_on_the_batch_beats_random_and_zero_policies() -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    venv = VecNormalize(VecMonitor(SB3VecEnv.from_id(REACTOR, 64, **TRAIN_OPTIONS)), gamma=0.95)
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=16,
        batch_size=256,
        n_epochs=5,
        gamma=0.95,
        learning_rate=3e-4,
        policy_kwargs={"net_arch": [64, 64]},
        seed=0,
        device="cpu",
    )

    def ppo(obs: np.ndarray) -> np.ndarray:
        return model.predict(venv.normalize_obs(obs), deterministic=True)[0]

    rng = np.random.default_rng(0)
    random = episode_returns(lambda o: rng.uniform(-1, 1, (len(o), 1)).astype(np.float32)).mean()
    zero = episode_returns(lambda o: np.zeros((len(o), 1), dtype=np.float32)).mean()
    untrained = episode_returns(ppo).mean()
    model.learn(30_000)
    trained = episode_returns(ppo).mean()
    elapsed = time.perf_counter() - start
    # SB3's own evaluation tooling over the batch agrees (same seeds, first episode of each env).
    eval_env = VecNormalize(VecMonitor(SB3VecEnv.from_id(REACTOR, 32, **TRAIN_OPTIONS)), training=False)
    eval_env.norm_reward, eval_env.obs_rms = False, venv.obs_rms
    eval_env.seed(10_000)
    sb3_mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=32, deterministic=True)
    assert sb3_mean == pytest.approx(trained, rel=1e-5)
    print(
        f"PPO {trained:.2f} (untrained {untrained:.2f}), random {random:.2f}, zero {zero:.2f}; {elapsed:.1f}s"
    )
    assert random < zero - 100  # the baselines are what they are (about -370 and -25)
    # The bar: 10 better per episode than holding the coolant mid-range; untrained PPO does not pass it.
    assert untrained < zero + 10
    assert trained > zero + 10
    assert trained > random + 300
