"""Episode success: ``info["is_success"]`` on the step that ends an episode (single env, vector env in
every autoreset mode, with Gymnasium's ``_is_success`` mask), Stable-Baselines3's success rate read
from it, ``episode_outcomes_total`` and ``episode_reward_by_env`` for scripted runs, the baselines
against the criteria, and determinism."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families as parse_text

import neorl_industrial as ni
from neorl_industrial.metrics import Registry
from neorl_industrial.policies import ReactorPIController, make_policy

REACTOR = "ChemicalReactor-v0"
MODES = ("next_step", "same_step", "disabled")
HEAT = 1.0  # normalised coolant at its warmest: thermal runaway within a few steps


def value(reg: Registry, name: str, **labels: str) -> float:
    """A sample of ``reg`` (KeyError when the series does not exist)."""
    for fam in parse_text(reg.generate_latest().decode()):
        for s in fam.samples:
            if s.name == name and dict(s.labels) == labels:
                return float(s.value)
    raise KeyError((name, labels))


def buckets(reg: Registry, name: str, **labels: str) -> dict[float, float]:
    """A histogram's cumulative buckets, by upper bound."""
    out = {}
    for fam in parse_text(reg.generate_latest().decode()):
        for s in fam.samples:
            if s.name == name and {k: v for k, v in s.labels.items() if k != "le"} == labels:
                out[float(s.labels["le"])] = float(s.value)
    return dict(sorted(out.items()))


def outcomes(reg: Registry, env: str = REACTOR) -> dict[str, float]:
    return {
        o: value(reg, "episode_outcomes_total", env=env, outcome=o)
        for o in ("success", "failure", "shutdown", "truncated")
    }


def pi_or_heat(heated: np.ndarray) -> Any:
    """Per env: the reactor PI baseline, or full heating where ``heated``."""
    pi = ReactorPIController(len(heated))

    def policy(obs: np.ndarray) -> np.ndarray:
        a = pi(obs)
        a[heated] = HEAT
        return a

    policy.episode_end = pi.episode_end  # type: ignore[attr-defined]
    return policy


# -- the single env ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("heat", "success", "terminated"), [(False, True, False), (True, False, True)])
def test_the_single_env_reports_is_success_on_its_ending_step_only(
    heat: bool, success: bool, terminated: bool
) -> None:
    env = ni.make(REACTOR, metrics=False)
    pi = ReactorPIController(1)
    obs, info = env.reset(seed=3)
    assert "is_success" not in info
    steps = 0
    while True:
        action = np.array([HEAT], np.float32) if heat else pi(obs[None])[0]
        obs, _, term, trunc, info = env.step(action)
        steps += 1
        if term or trunc:
            break
        assert "is_success" not in info, steps
    assert (term, trunc) == (terminated, not terminated)
    assert info["is_success"] is success
    assert ("shutdown_reason" in info) is terminated


def test_every_env_reports_a_bool_when_its_episode_ends() -> None:
    for env_id in ni.env_ids():
        env = ni.make(env_id, horizon=5, metrics=False)
        env.reset(seed=0)
        for t in range(5):
            *_, term, trunc, info = env.step(env.action_space.sample() * 0)
            assert ("is_success" in info) == (term or trunc) == (t == 4), (env_id, t)
        assert isinstance(info["is_success"], bool)


# -- the vector env ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_vector_env_masks_is_success_by_the_envs_that_ended(mode: str) -> None:
    n = 6
    heated = np.arange(n) % 2 == 1  # odd envs shut down early, even ones run the PI to the horizon
    env = ni.make_vec(REACTOR, num_envs=n, autoreset_mode=mode, metrics=False)
    policy = pi_or_heat(heated)
    obs, info = env.reset(seed=11)
    assert "is_success" not in info
    ended = np.zeros(n, bool)
    seen = {"success": np.zeros(n, int), "failure": np.zeros(n, int)}
    for _ in range(env.horizon):
        obs, _, term, trunc, info = env.step(policy(obs))
        done = term | trunc
        policy.episode_end(done)  # type: ignore[attr-defined]
        where = info.get("final_info", {}) if mode == "same_step" else info
        if mode == "same_step":
            assert "is_success" not in info and "_is_success" not in info
        if not done.any():
            assert "is_success" not in where
        else:
            np.testing.assert_array_equal(where["_is_success"], done)
            assert where["is_success"].dtype == np.bool_
            assert not where["is_success"][~done].any()
            np.testing.assert_array_equal(where["is_success"][done], ~heated[done])
            seen["success"] += where["is_success"]
            seen["failure"] += done & ~where["is_success"]
            if mode == "same_step":
                np.testing.assert_array_equal(info["_final_info"], done)
        if mode == "disabled" and done.any():
            obs, _ = env.reset(options={"reset_mask": done})
        ended |= done
    assert ended.all()
    np.testing.assert_array_equal(seen["success"], ~heated)  # one PI episode each, met
    assert (seen["failure"][heated] >= 1).all() and not seen["failure"][~heated].any()


# -- Stable-Baselines3 ---------------------------------------------------------------------------------


class ReactorPredictor:
    """The reactor PI baseline (or full heating) as an SB3 predictor."""

    def __init__(self, num_envs: int, heat: bool = False) -> None:
        self.pi, self.heat = ReactorPIController(num_envs), heat

    def predict(
        self, obs: np.ndarray, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ):
        if episode_start is not None:
            self.pi.episode_end(np.asarray(episode_start, bool))
        a = np.full((len(obs), 1), HEAT, np.float32) if self.heat else self.pi(obs)
        return a, state


@pytest.mark.parametrize(("heat", "rate"), [(False, 1.0), (True, 0.0)])
def test_sb3_success_rate_reads_is_success_from_monitor_and_the_vector_env(heat: bool, rate: float) -> None:
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    from neorl_industrial.integrations.sb3 import SB3VecEnv

    for eval_env in (
        DummyVecEnv([lambda: Monitor(ni.make(REACTOR, metrics=False))]),
        VecMonitor(SB3VecEnv.from_id(REACTOR, 2, metrics=False)),
    ):
        # EvalCallback's own success bookkeeping, fed by evaluate_policy as EvalCallback feeds it.
        cb = EvalCallback(eval_env, n_eval_episodes=4, verbose=0)
        cb._is_success_buffer = []
        evaluate_policy(
            ReactorPredictor(eval_env.num_envs, heat),  # type: ignore[arg-type]
            eval_env,
            n_eval_episodes=4,
            callback=cb._log_success_callback,
        )
        assert len(cb._is_success_buffer) == 4, type(eval_env).__name__
        assert np.mean(cb._is_success_buffer) == rate


def test_sb3_eval_callback_records_success_rates_during_learning(tmp_path: Path) -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.monitor import Monitor

    env = Monitor(ni.make(REACTOR, horizon=20, metrics=False))
    eval_env = Monitor(ni.make(REACTOR, horizon=20, metrics=False))
    # With a log path, EvalCallback keeps each evaluation's successes (and saves them).
    cb = EvalCallback(eval_env, n_eval_episodes=2, eval_freq=64, log_path=str(tmp_path), verbose=0)
    PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu").learn(128, callback=cb)
    assert len(cb.evaluations_successes) == 2
    assert all(len(s) == 2 and set(s) <= {True, False} for s in cb.evaluations_successes)
    assert np.load(tmp_path / "evaluations.npz")["successes"].shape == (2, 2)


# -- metrics -------------------------------------------------------------------------------------------


def test_outcomes_are_counted_for_a_scripted_run() -> None:
    reg = Registry()
    n = 8
    heated = np.arange(n) < 3
    env = ni.make_vec(REACTOR, num_envs=n, autoreset_mode="next_step", registry=reg)
    # Every outcome's series exists, at 0, as soon as the batch does.
    assert outcomes(reg) == {"success": 0, "failure": 0, "shutdown": 0, "truncated": 0}
    policy = pi_or_heat(heated)
    obs, _ = env.reset(seed=5)
    terminations = truncations = 0
    for _ in range(env.horizon + 1):
        obs, _, term, trunc, _ = env.step(policy(obs))
        policy.episode_end(term | trunc)  # type: ignore[attr-defined]
        terminations += int(term.sum())
        truncations += int(trunc.sum())
    # Full heating shuts its envs down every few steps (and never succeeds); each PI env meets the
    # criterion at its horizon.
    assert truncations == n - 3 and terminations >= 3 * 5
    assert outcomes(reg) == {"success": n - 3, "failure": 0, "shutdown": terminations, "truncated": 0}
    episodes = value(reg, "episodes_total", env=REACTOR)
    assert episodes == terminations + truncations == sum(outcomes(reg).values())
    assert value(reg, "episode_reward_by_env_count", env=REACTOR) == episodes
    assert value(reg, "episode_reward_count") == episodes
    # The buckets of episode_reward, which (one env here) holds the same returns.
    by_env = buckets(reg, "episode_reward_by_env_bucket", env=REACTOR)
    assert by_env == buckets(reg, "episode_reward_bucket")
    assert list(by_env) == [-100, -10, -1, 0, 1, 10, 100, float("inf")]
    assert by_env[0] == episodes  # every return of this run is at most 0


def test_a_missed_criterion_is_a_failure() -> None:
    reg = Registry()
    env = ni.make_vec(REACTOR, num_envs=4, autoreset_mode="disabled", registry=reg)
    env.reset(seed=0)
    for _ in range(env.horizon):  # the nominal coolant: Ca settles at 0.877, off the 0.87 set-point
        *_, info = env.step(np.zeros((4, 1), np.float32))
    assert info["_is_success"].all() and not info["is_success"].any()
    assert outcomes(reg) == {"success": 0, "failure": 4, "shutdown": 0, "truncated": 0}


def test_an_episode_cut_by_a_reset_is_truncated() -> None:
    reg = Registry()
    env = ni.make_vec(REACTOR, num_envs=4, autoreset_mode="disabled", registry=reg)
    env.reset(seed=0)  # the first reset cuts nothing
    assert outcomes(reg)["truncated"] == 0
    env.step(np.zeros((4, 1), np.float32))
    env.reset(options={"reset_mask": np.array([True, False, True, False])})
    assert outcomes(reg)["truncated"] == 2
    env.reset(options={"reset_mask": np.array([True, False, False, False])})  # env 0 has not stepped since
    assert outcomes(reg)["truncated"] == 2
    for _ in range(env.horizon - 1):
        env.step(np.zeros((4, 1), np.float32))
    # Envs 1 and 3 (a step ahead) reached their horizon first; resetting the ended ones cuts nothing more, and
    # a full reset cuts the two still running.
    ended = outcomes(reg)["failure"]
    assert ended == 2
    env.reset(options={"reset_mask": np.array([False, True, False, True])})
    assert outcomes(reg)["truncated"] == 2
    env.reset()
    assert outcomes(reg) == {"success": 0, "failure": 2, "shutdown": 0, "truncated": 4}
    assert value(reg, "episodes_total", env=REACTOR) == 2  # truncated episodes did not end


# -- the criteria against the baselines, determinism ---------------------------------------------------


def success_rate(env_id: str, policy: str, n: int = 8, seed: int = 0) -> float:
    env = ni.make_vec(env_id, num_envs=n, autoreset_mode="disabled", metrics=False)
    pol = make_policy(policy, env_id, n, env.single_action_space.shape[0], seed=seed)
    obs, _ = env.reset(seed=seed)
    wins, done = np.zeros(n, bool), np.zeros(n, bool)
    while not done.all():
        obs, _, term, trunc, info = env.step(pol(obs))
        ended = term | trunc
        if ended.any():
            wins |= info["is_success"] & ended
            done |= ended
            break  # disabled autoreset: every env of these runs ends on the same step
    assert done.all(), env_id
    return float(wins.mean())


@pytest.mark.parametrize("env_id", ni.env_ids())
def test_each_baseline_mostly_succeeds_and_doing_nothing_mostly_fails(env_id: str) -> None:
    assert success_rate(env_id, "pid") >= 0.75
    assert success_rate(env_id, "zero") <= 0.25


@pytest.mark.parametrize("mode", MODES)
def test_same_seed_same_infos(mode: str) -> None:
    def run() -> list[Any]:
        env = ni.make_vec("PowerGrid-v0", num_envs=4, autoreset_mode=mode, horizon=30, metrics=False)
        rng = np.random.default_rng(0)
        env.reset(seed=9)
        out = []
        for _ in range(70):
            *_, term, trunc, info = env.step(rng.uniform(-0.2, 0.2, (4, 2)).astype(np.float32))
            where = info.get("final_info", {}) if mode == "same_step" else info
            out.append((term.tolist(), trunc.tolist(), where.get("is_success", np.zeros(0)).tolist()))
            if mode == "disabled" and (term | trunc).any():
                env.reset(options={"reset_mask": term | trunc})
        return out

    first = run()
    assert first == run()
    assert any(s for *_, s in first)


def test_the_success_memory_survives_pickling() -> None:
    # HVAC counts comfortable occupied steps over the whole episode: a cold morning (no heating)
    # taken through a pickle still counts against the day when the copy heats all afternoon.
    import pickle

    env = ni.make("HVAC-v0", metrics=False)
    obs, _ = env.reset(seed=1)
    for _ in range(48):  # midnight to noon, no heating
        obs, *_ = env.step(np.zeros(3, np.float32))
    copy = pickle.loads(pickle.dumps(env))
    fresh = ni.make("HVAC-v0", metrics=False)
    start, _ = fresh.reset(seed=1)
    ends = []
    for e, o in ((env, obs), (copy, obs), (fresh, start)):
        while True:
            heat = np.clip(0.5 * (21.0 - o[:3]) / 2.5, -1.0, 1.0).astype(np.float32)
            o, _, term, trunc, info = e.step(heat)
            if term or trunc:
                ends.append(info["is_success"])
                break
    # The original and its copy remember the morning; the env heated from the start has none.
    assert ends == [False, False, True]
