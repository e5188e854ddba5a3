"""Offline RL on the generated datasets: d3rlpy, held-out validation, reference scores, evaluation.

* :func:`to_d3rlpy` turns a dataset (:func:`neorl_industrial.datasets.generate` or ``load``) into a
  ``d3rlpy.dataset.MDPDataset`` with the same trajectories: as many episodes, of the lengths the
  ``terminals``/``timeouts`` flags give.
* :func:`train_validation_split` holds out whole trajectories for validation, as NeoRL does; both
  halves are datasets again (metadata kept, with a ``split`` entry).
* :func:`normalized_score` is D4RL's ``get_normalized_score`` for these environments:
  ``100 * (return - random) / (expert - random)``, with the returns of the uniform random policy and
  of the environment's baseline controller (:func:`reference_scores`; the table is written by
  ``benches/reference_scores.py`` with :func:`reference_returns`).
* :func:`evaluate` runs a policy (a d3rlpy algorithm or any batch callable) for whole episodes in
  the environment with its safety layer on: returns, discounted returns, alarms raised per episode,
  emergency shutdowns; the same keys as :func:`neorl_industrial.safety.evaluate_with_safety`, so
  :func:`neorl_industrial.integrations.mlflow.log_evaluation` logs it.
* :func:`fqe_estimate` is d3rlpy's Fitted Q Evaluation of a trained agent on a dataset.
* :func:`run_benchmark` trains d3rlpy's BC, CQL, IQL and TD3+BC on datasets of every quality and
  writes the table of docs/offline-benchmark.md (``neorl-industrial offline-bench``).

d3rlpy is imported on first use: ``pip install 'neorl-industrial[offline]'`` (d3rlpy >= 2.6 except
2.8.1, which pins an older Gymnasium).
"""

from __future__ import annotations

import copy
import json
import math
import platform
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import make_vec
from ._rollout import Rollout
from .exceptions import ConfigError, UnknownEnvironmentError
from .policies import default_policy, make_policy

__all__ = [
    "ALGORITHMS",
    "BenchmarkConfig",
    "episode_lengths",
    "evaluate",
    "fqe_estimate",
    "make_agent",
    "normalized_score",
    "reference_returns",
    "reference_scores",
    "run_benchmark",
    "to_d3rlpy",
    "train_validation_split",
]

_COLUMNS = ("observations", "actions", "rewards", "terminals", "timeouts")


# --------------------------------------------------------------------------- trajectories
def _columns(data: Mapping[str, Any]) -> tuple[int, dict[str, np.ndarray]]:
    """The dataset's D4RL columns, checked: present, of one length, at least one transition."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"data: must be a dataset dict (datasets.generate/load), got {type(data).__name__}")
    missing = [k for k in _COLUMNS if k not in data]
    if missing:
        raise ConfigError(f"data: missing {', '.join(missing)} (a dataset has D4RL's keys)")
    cols = {k: np.asarray(data[k]) for k in (*_COLUMNS, "next_observations") if k in data}
    n = len(cols["rewards"])
    wrong = [f"{k} has {len(v)}" for k, v in cols.items() if len(v) != n]
    if wrong:
        raise ConfigError(f"data: every column needs {n} rows (as rewards); {', '.join(wrong)}")
    if n == 0:
        raise ConfigError("data: has no transitions")
    return n, cols


def _ends(cols: dict[str, np.ndarray]) -> np.ndarray:
    """Where each trajectory ends: the flags, plus a timeout wherever a run was cut without one (the
    next observation is not the following row's observation, or the data stop)."""
    ends = cols["terminals"].astype(bool) | cols["timeouts"].astype(bool)
    if "next_observations" in cols and len(ends) > 1:
        nxt, obs = cols["next_observations"][:-1], cols["observations"][1:]
        jump = np.any(nxt.reshape(len(nxt), -1) != obs.reshape(len(obs), -1), axis=1)
        ends[:-1] |= jump
    ends[-1] = True
    return ends


def episode_lengths(data: Mapping[str, Any]) -> np.ndarray:
    """Lengths of the dataset's trajectories, in order (see :func:`to_d3rlpy` for where one ends)."""
    _, cols = _columns(data)
    ends = np.flatnonzero(_ends(cols))
    return np.diff(np.concatenate([[-1], ends])).astype(np.int64)


def _d3rlpy() -> Any:
    try:
        with warnings.catch_warnings():  # d3rlpy imports the unmaintained gym, which warns on import
            warnings.simplefilter("ignore")
            import d3rlpy
    except ImportError:
        raise ConfigError("d3rlpy is needed here: pip install 'neorl-industrial[offline]'") from None
    return d3rlpy


def to_d3rlpy(data: Mapping[str, Any], **mdp_kwargs: Any) -> Any:
    """A ``d3rlpy.dataset.MDPDataset`` of the dataset, trajectory for trajectory.

    A trajectory ends where ``terminals`` or ``timeouts`` says so (a step flagged both is a
    terminal: d3rlpy takes one flag per step). Data without a flag where a run was cut (older
    files: the next observation is not the following row's, or the last row has no flag) gets a
    timeout there, as :func:`neorl_industrial.datasets.generate` now flags a cut; d3rlpy would
    otherwise join two runs or drop the last. d3rlpy samples every step of a terminated episode and
    all but the last step of a timed-out one (it has no next observation for it); the episodes keep
    every step.

    Args:
        data: A dataset (D4RL's keys).
        **mdp_kwargs: Passed to ``MDPDataset`` (``transition_picker``, ``trajectory_slicer``).

    Raises:
        ConfigError: ``data`` is not a dataset, or d3rlpy is not installed.
    """
    _, cols = _columns(data)
    d3rlpy = _d3rlpy()
    terminals = cols["terminals"].astype(bool)
    timeouts = _ends(cols) & ~terminals
    actions = cols["actions"].astype(np.float32)
    if actions.ndim == 1:
        actions = actions[:, None]
    mdp_kwargs.setdefault("action_space", d3rlpy.ActionSpace.CONTINUOUS)
    mdp_kwargs.setdefault("action_size", int(actions.shape[1]))
    return d3rlpy.dataset.MDPDataset(
        observations=cols["observations"].astype(np.float32),
        actions=actions,
        rewards=cols["rewards"].astype(np.float32).reshape(-1, 1),
        terminals=terminals.astype(np.float32),
        timeouts=timeouts.astype(np.float32),
        **mdp_kwargs,
    )


def _returns(rewards: np.ndarray, ends: np.ndarray) -> np.ndarray:
    sums = np.cumsum(rewards, dtype=np.float64)[ends]
    return np.diff(np.concatenate([[0.0], sums]))


def train_validation_split(
    data: Mapping[str, Any], validation: float = 0.1, seed: int = 0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Splits a dataset into training and validation sets by whole trajectories.

    ``round(validation * trajectories)`` trajectories (at least one, and at least one left for
    training), drawn with ``seed``, form the validation set; each half keeps the dataset's order.
    Every per-transition column is split; ``metadata`` is copied into both with the counts and
    returns of the half and a ``split`` entry (``part``, ``validation``, ``seed``, ``trajectories``,
    ``of_trajectories``, ``of_transitions``).

    Returns:
        ``(train, validation)``.

    Raises:
        ConfigError: ``validation`` is not a number strictly between 0 and 1, ``seed`` is not a
            non-negative integer, or the dataset has fewer than two trajectories.
    """
    n, cols = _columns(data)
    if isinstance(validation, bool) or not isinstance(validation, (int, float)) or not 0 < validation < 1:
        raise ConfigError(f"validation: must be a fraction strictly between 0 and 1, got {validation!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed: must be a non-negative integer, got {seed!r}")
    ends = _ends(cols)
    traj = np.concatenate([[0], np.cumsum(ends)[:-1]])  # trajectory index of every row
    count = int(ends.sum())
    if count < 2:
        raise ConfigError(f"data: has {count} trajectory; a split needs at least 2")
    k = min(max(1, round(validation * count)), count - 1)
    held = np.zeros(count, dtype=bool)
    held[np.random.default_rng(int(seed)).choice(count, size=k, replace=False)] = True
    halves = []
    for part, rows in (("train", ~held[traj]), ("validation", held[traj])):
        half: dict[str, Any] = {}
        for key, value in data.items():
            if key == "metadata":
                continue
            arr = np.asarray(value)
            half[key] = arr[rows] if arr.ndim >= 1 and len(arr) == n else value
        # A cut the flags did not mark becomes a timeout, so the half stands on its own.
        half["timeouts"] = np.asarray(half["timeouts"]) | (ends[rows] & ~np.asarray(half["terminals"]))
        rets = _returns(np.asarray(half["rewards"]), ends[rows])
        meta = copy.deepcopy(dict(data.get("metadata") or {}))
        meta.update(
            n_transitions=int(rows.sum()),
            n_episodes=len(rets),
            mean_return=float(rets.mean()),
            std_return=float(rets.std()),
            split={
                "part": part,
                "validation": float(validation),
                "seed": int(seed),
                "trajectories": len(rets),
                "of_trajectories": count,
                "of_transitions": n,
            },
        )
        half["metadata"] = meta
        halves.append(half)
    return halves[0], halves[1]


# --------------------------------------------------------------------------- reference scores
def _env_key(env_id: str) -> str:
    from . import _env_class

    return _env_class(env_id).env_id


def reference_scores(env_id: str | None = None) -> dict[str, Any]:
    """The reference returns: ``{"random": ..., "expert": ...}`` of one environment, or of every
    environment (by id) when ``env_id`` is ``None``.

    ``random`` is the mean return of the uniform random policy, ``expert`` that of the environment's
    baseline controller without noise (:func:`neorl_industrial.policies.default_policy`), over the
    episodes and seeds in ``neorl_industrial._reference_scores.HOW``.

    Raises:
        ConfigError: unknown environment, or one without reference returns.
    """
    from ._reference_scores import REFERENCE_SCORES

    if env_id is None:
        return copy.deepcopy(REFERENCE_SCORES)
    try:
        key = _env_key(env_id)
    except UnknownEnvironmentError as e:
        raise ConfigError(f"env_id: {e}") from None
    if key not in REFERENCE_SCORES:
        raise ConfigError(f"env_id: no reference scores for {key}; run benches/reference_scores.py")
    return dict(REFERENCE_SCORES[key])


def normalized_score(env_id: str, episode_return: Any) -> Any:
    """D4RL's normalised score: ``100 * (return - random) / (expert - random)``.

    0 is the uniform random policy, 100 the environment's baseline controller (see
    :func:`reference_scores`). ``episode_return`` may be a number (a float comes back) or an array.

    Raises:
        ConfigError: unknown environment, or a return that is not a finite number.
    """
    ref = reference_scores(env_id)
    try:
        ret = np.asarray(episode_return, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"episode_return: must be a number, got {episode_return!r}") from None
    if not np.all(np.isfinite(ret)):
        raise ConfigError(f"episode_return: must be finite, got {episode_return!r}")
    score = 100.0 * (ret - ref["random"]) / (ref["expert"] - ref["random"])
    return float(score) if score.ndim == 0 else score


def reference_returns(env_id: str, policy: str, n_episodes: int, seed: int) -> np.ndarray:
    """Returns of ``n_episodes`` episodes of a baseline (``"random"``: uniform random actions,
    ``"expert"``: the environment's baseline controller), env ``i`` reset with ``seed + i``; what
    ``benches/reference_scores.py`` averages into the table."""
    if policy not in ("random", "expert"):
        raise ConfigError(f"policy: must be 'random' or 'expert', got {policy!r}")
    key = _env_key(env_id)
    name = "random" if policy == "random" else default_policy(key)
    act_dim = len(_spec(key)["actions"])
    pi = make_policy(name, key, n_episodes, act_dim, seed=seed)
    return np.asarray(evaluate(pi, key, n_episodes=n_episodes, seed=seed, metrics=False)["returns"])


def _spec(env_id: str) -> dict[str, Any]:
    from . import spec

    return spec(env_id)


# --------------------------------------------------------------------------- evaluation
def _as_policy(policy: Any) -> Callable[[np.ndarray], Any]:
    predict = getattr(policy, "predict", None)
    if callable(predict):  # a d3rlpy algorithm (or anything with predict)
        return lambda obs: predict(np.asarray(obs, dtype=np.float32))
    if callable(policy):
        return policy  # type: ignore[no-any-return]
    raise ConfigError(f"policy: needs a callable or an object with predict(), got {type(policy).__name__}")


def evaluate(
    policy: Any, env_id: str, n_episodes: int = 10, seed: int = 0, gamma: float = 0.99, **env_kwargs: Any
) -> dict[str, Any]:
    """Runs ``policy`` for ``n_episodes`` whole episodes, one per env of a batch (env ``i`` reset with
    ``seed + i``), with the environment's safety layer on (constraints, alarms, emergency shutdown).

    Args:
        policy: A d3rlpy algorithm (its ``predict``), or a callable from observations
            ``(n, obs_dim)`` to actions ``(n, act_dim)``; an ``episode_end(done)`` method is called
            as the envs end.
        env_id: Environment id.
        n_episodes: Episodes (the batch size).
        seed: Seed of the first env.
        gamma: Discount of ``discounted_returns``.
        **env_kwargs: Passed to :func:`neorl_industrial.make_vec` (``shield``, ``constraints``, options).

    Returns:
        The keys of :func:`~neorl_industrial.safety.evaluate_with_safety` (``returns``,
        ``mean_return``, ``std_return``, ``mean_length``, ``mean_cost``, ``violations_per_episode``:
        alarms raised per episode, ``violations`` by constraint, ``critical_violations``,
        ``shutdowns``, ``shield_interventions``, ``constraint_satisfaction_rate``), and
        ``discounted_returns``, ``lengths``, ``shutdown_rate``.
    """
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, int) or n_episodes < 1:
        raise ConfigError(f"n_episodes: must be a positive integer, got {n_episodes!r}")
    if not 0.0 <= gamma <= 1.0:
        raise ConfigError(f"gamma: must be in [0, 1], got {gamma!r}")
    act = _as_policy(policy)
    envs = make_vec(env_id, num_envs=n_episodes, autoreset_mode="same_step", **env_kwargs)
    try:
        names = list(envs.constraint_names)
        critical = np.array([c["severity"] == "critical" for c in envs.core_spec["constraints"]], dtype=bool)
        obs, _ = envs.reset(seed=seed)
        episode_end = getattr(policy, "episode_end", None)
        pi: Any = act
        if episode_end is not None and act is not policy:
            pi = _WithEpisodeEnd(act, episode_end)
        roll = Rollout(envs, pi, obs)
        n, k = n_episodes, len(names)
        live = np.ones(n, dtype=bool)
        ret, disc, cost = np.zeros(n), np.zeros(n), np.zeros(n)
        length = np.zeros(n, dtype=np.int64)
        raised = np.zeros((n, k), dtype=np.int64)
        was = np.zeros((n, k), dtype=bool)
        shut = np.zeros(n, dtype=bool)
        shield = alarm_free = 0
        for _ in range(envs.horizon):
            t = roll.step()
            active = t.readings("violations", names)
            m = live
            ret[m] += t.reward[m]
            disc[m] += gamma ** length[m] * t.reward[m]
            length[m] += 1
            cost[m] += t.ended("cost")[m]
            raised[m] += active[m] & ~was[m]
            was = active
            shield += int(np.asarray(t.ended("shield"), dtype=bool)[m].sum())
            alarm_free += int((~active.any(axis=1))[m].sum())
            shut |= t.terminated & m
            live &= ~t.done
            if not live.any():
                break
    finally:
        envs.close()
    per = raised.sum(axis=0)
    return {
        "returns": ret.tolist(),
        "discounted_returns": disc.tolist(),
        "lengths": length.tolist(),
        "mean_return": float(ret.mean()),
        "std_return": float(ret.std()),
        "mean_length": float(length.mean()),
        "mean_cost": float(cost.mean()),
        "violations_per_episode": float(per.sum()) / n,
        "violations": {name: int(v) for name, v in zip(names, per, strict=True)},
        "critical_violations": int(per[critical].sum()),
        "shutdowns": int(shut.sum()),
        "shutdown_rate": float(shut.mean()),
        "shield_interventions": shield,
        "constraint_satisfaction_rate": alarm_free / max(int(length.sum()), 1),
    }


class _WithEpisodeEnd:
    def __init__(self, act: Callable[[np.ndarray], Any], episode_end: Callable[[np.ndarray], None]) -> None:
        self.act, self.episode_end = act, episode_end

    def __call__(self, obs: np.ndarray) -> Any:
        return self.act(obs)


# --------------------------------------------------------------------------- d3rlpy agents
ALGORITHMS = ("BC", "CQL", "IQL", "TD3+BC")
_CONFIGS = {"BC": "BCConfig", "CQL": "CQLConfig", "IQL": "IQLConfig", "TD3+BC": "TD3PlusBCConfig"}


def reward_scale(data: Mapping[str, Any]) -> float:
    """``1 / mean |reward|``: the multiplier that brings a dataset's rewards to unit size."""
    mean_abs = float(np.mean(np.abs(np.asarray(data["rewards"], dtype=np.float64))))
    return 1.0 / mean_abs if mean_abs > 0 else 1.0


def make_agent(name: str, reward_multiplier: float = 1.0, batch_size: int = 256, device: str = "cpu") -> Any:
    """A d3rlpy agent with its default hyperparameters: ``name`` in :data:`ALGORITHMS`,
    observations standardised and rewards multiplied by ``reward_multiplier`` (see
    :func:`reward_scale`)."""
    if name not in _CONFIGS:
        raise ConfigError(f"algorithm: must be one of {', '.join(ALGORITHMS)}, got {name!r}")
    d3rlpy = _d3rlpy()
    config = getattr(d3rlpy.algos, _CONFIGS[name])(
        batch_size=batch_size,
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        reward_scaler=d3rlpy.preprocessing.MultiplyRewardScaler(float(reward_multiplier)),
    )
    return config.create(device=device)


def _fit(learner: Any, mdp: Any, n_steps: int) -> None:
    d3rlpy = _d3rlpy()
    learner.fit(
        mdp,
        n_steps=n_steps,
        n_steps_per_epoch=n_steps,
        show_progress=False,
        save_interval=n_steps + 1,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
    )


def fqe_estimate(
    agent: Any,
    data: Mapping[str, Any],
    n_steps: int,
    gamma: float = 0.99,
    reward_multiplier: float = 1.0,
    target_update_interval: int = 100,
    batch_size: int = 256,
) -> float:
    """d3rlpy's Fitted Q Evaluation of ``agent``: ``Q(s0, agent(s0))`` averaged over the first
    observations of the dataset's trajectories, after ``n_steps`` gradient steps on ``data``, in
    the units of the rewards (discounted by ``gamma``)."""
    d3rlpy = _d3rlpy()
    config = d3rlpy.ope.FQEConfig(
        batch_size=batch_size,
        gamma=gamma,
        target_update_interval=target_update_interval,
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        reward_scaler=d3rlpy.preprocessing.MultiplyRewardScaler(float(reward_multiplier)),
    )
    fqe = d3rlpy.ope.FQE(algo=agent, config=config, device="cpu")
    _fit(fqe, to_d3rlpy(data), n_steps)
    starts = np.concatenate([[0], np.cumsum(episode_lengths(data))[:-1]])
    s0 = np.asarray(data["observations"], dtype=np.float32)[starts]
    values = fqe.predict_value(s0, fqe.predict(s0))
    return float(np.mean(values)) / float(reward_multiplier)
