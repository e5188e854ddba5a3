"""Offline RL on the generated datasets (docs/offline.md): d3rlpy, held-out validation, reference scores.

:func:`to_d3rlpy` keeps every trajectory; :func:`train_validation_split` holds out whole trajectories, as
NeoRL does; :func:`normalized_score` is D4RL's ``get_normalized_score`` against the returns of the random
policy and of the environment's baseline controller (:func:`reference_scores`); :func:`evaluate` runs a
policy in the env with its safety layer on; :func:`fqe_estimate` is d3rlpy's Fitted Q Evaluation; and
:func:`run_benchmark` writes docs/offline-benchmark.md (``neorl-industrial offline-bench``). d3rlpy is
imported on first use: ``pip install 'neorl-industrial[offline]'`` (d3rlpy >= 2.6 except 2.8.1).
"""

from __future__ import annotations

import copy
import dataclasses
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
from .exceptions import ConfigError, InvalidActionError
from .policies import default_policy, make_policy

__all__ = [
    "ALGORITHMS",
    "QUICK",
    "BenchmarkConfig",
    "CellResult",
    "add_benchmark_arguments",
    "benchmark_main",
    "config_from_args",
    "episode_lengths",
    "evaluate",
    "fqe_estimate",
    "make_agent",
    "normalized_score",
    "reference_returns",
    "reference_scores",
    "render_table",
    "reward_scale",
    "run_benchmark",
    "spearman",
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
    key = _env_key(env_id)  # UnknownEnvironmentError, a ConfigError, for an unknown id
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
        roll = Rollout(envs, act, obs)
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
            shield += int(np.count_nonzero(np.asarray(t.ended("shield"), dtype=bool) & m))
            alarm_free += int(np.count_nonzero(~active.any(axis=1) & m))
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
    learning_rate: float = 3e-4,
    target_update_interval: int = 1,
    batch_size: int = 256,
    mdp: Any = None,
) -> float:
    """d3rlpy's Fitted Q Evaluation of ``agent``: ``Q(s0, agent(s0))`` averaged over the first
    observations of the dataset's trajectories, after ``n_steps`` gradient steps on ``data`` (or on
    ``mdp``, its :func:`to_d3rlpy` form), in the units of the rewards, discounted by ``gamma``.

    The defaults suit a short fit (about 10^3 steps): a learning rate of 3e-4 and the target
    network synchronised every step. d3rlpy's own (1e-4, every 100 steps), made for 10^5 steps,
    reach a third of the value on IndustrialBenchmark-v0 in 10^3.
    """
    d3rlpy = _d3rlpy()
    config = d3rlpy.ope.FQEConfig(
        batch_size=batch_size,
        gamma=gamma,
        learning_rate=learning_rate,
        target_update_interval=target_update_interval,
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        reward_scaler=d3rlpy.preprocessing.MultiplyRewardScaler(float(reward_multiplier)),
    )
    fqe = d3rlpy.ope.FQE(algo=agent, config=config, device="cpu")
    _fit(fqe, to_d3rlpy(data) if mdp is None else mdp, n_steps)
    starts = np.concatenate([[0], np.cumsum(episode_lengths(data))[:-1]])
    s0 = np.asarray(data["observations"], dtype=np.float32)[starts]
    values = fqe.predict_value(s0, fqe.predict(s0))
    return float(np.mean(values)) / float(reward_multiplier)


# --------------------------------------------------------------------------- the benchmark
@dataclass(frozen=True)
class BenchmarkConfig:
    """What :func:`run_benchmark` trains and evaluates (the defaults are the published table's)."""

    envs: tuple[str, ...] = ("ChemicalReactor-v0", "IndustrialBenchmark-v0", "Pipeline-v0")
    qualities: tuple[str, ...] = ("random", "medium", "expert")
    algorithms: tuple[str, ...] = ALGORITHMS
    seeds: tuple[int, ...] = (0, 1)
    steps: int = 1500
    """Gradient steps of every agent (batch ``batch_size``)."""
    fqe_steps: int = 1000
    eval_episodes: int = 10
    transitions: int = 100_000
    """Size of each dataset (generated with seed ``dataset_seed`` over 100 envs)."""
    validation: float = 0.1
    gamma: float = 0.99
    batch_size: int = 256
    fqe_learning_rate: float = 3e-4
    fqe_target_update_interval: int = 1
    threads: int = 1
    """Torch threads (1 leaves the other cores to other work and times steadily)."""
    dataset_seed: int = 0
    eval_seed: int = 100_000


QUICK = BenchmarkConfig(
    envs=("ChemicalReactor-v0",),
    qualities=("random", "expert"),
    steps=10,
    fqe_steps=10,
    eval_episodes=2,
    transitions=2000,
)
"""A smoke configuration (``--quick``): seconds, numbers without meaning."""


@dataclass
class CellResult:
    """One agent on one dataset: :func:`evaluate`'s result per seed, with ``normalized_score``,
    ``fqe_estimate``, ``true_discounted_return`` and ``fit_seconds``."""

    env_id: str
    quality: str
    algorithm: str
    seeds: list[int] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def values(self, key: str) -> list[float]:
        """``key`` of every seed's run."""
        return [float(r[key]) for r in self.runs]


def _behaviour_score(ds: Mapping[str, Any]) -> float:
    """Normalised score of the dataset's own episodes (those the env ended, not the cut ones)."""
    _, cols = _columns(ds)
    ends = _ends(cols)
    lengths = np.diff(np.concatenate([[-1], np.flatnonzero(ends)]))
    horizon = int(ds["metadata"]["env_spec"]["horizon"])
    whole = cols["terminals"][ends].astype(bool) | (lengths == horizon)
    rets = _returns(cols["rewards"], ends)[whole]
    return float(np.mean(normalized_score(ds["metadata"]["env_id"], rets))) if len(rets) else math.nan


@dataclass
class _Prepared:
    """One dataset, split, and converted once for every agent trained on it."""

    ds: dict[str, Any]
    train: dict[str, Any]
    val: dict[str, Any]
    train_mdp: Any
    val_mdp: Any
    scale: float
    card: dict[str, Any]


def _prepare(env_id: str, quality: str, cfg: BenchmarkConfig) -> _Prepared:
    from . import datasets

    ds = datasets.generate(
        env_id, quality, n_transitions=cfg.transitions, seed=cfg.dataset_seed, num_envs=100, progress=False
    )
    train, val = train_validation_split(ds, cfg.validation, seed=cfg.dataset_seed)
    card = {
        "env_id": env_id,
        "quality": quality,
        "transitions": int(len(ds["rewards"])),
        "train_trajectories": train["metadata"]["split"]["trajectories"],
        "validation_trajectories": val["metadata"]["split"]["trajectories"],
        "behaviour_score": _behaviour_score(ds),
    }
    return _Prepared(ds, train, val, to_d3rlpy(train), to_d3rlpy(val), reward_scale(train), card)


def _train_one(
    algorithm: str, env_id: str, data: _Prepared, seed: int, cfg: BenchmarkConfig
) -> dict[str, Any]:
    d3rlpy = _d3rlpy()
    d3rlpy.seed(seed)
    agent = make_agent(algorithm, data.scale, cfg.batch_size)
    t0 = time.perf_counter()
    _fit(agent, data.train_mdp, cfg.steps)
    fit_seconds = time.perf_counter() - t0
    try:
        res = evaluate(agent, env_id, cfg.eval_episodes, seed=cfg.eval_seed, gamma=cfg.gamma, metrics=False)
    except InvalidActionError as e:  # a diverged agent (NaN actions) is a result, not the end of the run
        nan = math.nan
        res = {k: nan for k in ("mean_return", "std_return", "mean_length", "mean_cost", "shutdown_rate")}
        res.update(returns=[nan], discounted_returns=[nan], violations={}, critical_violations=0, shutdowns=0)
        res.update(
            violations_per_episode=nan, shield_interventions=0, constraint_satisfaction_rate=nan, error=str(e)
        )
        return {
            **res,
            "normalized_score": nan,
            "fqe_estimate": nan,
            "true_discounted_return": nan,
            "fit_seconds": fit_seconds,
        }
    d3rlpy.seed(seed)
    fqe_options: dict[str, Any] = {"learning_rate": cfg.fqe_learning_rate, "batch_size": cfg.batch_size}
    fqe_options["target_update_interval"] = cfg.fqe_target_update_interval
    fqe = fqe_estimate(agent, data.val, cfg.fqe_steps, cfg.gamma, data.scale, mdp=data.val_mdp, **fqe_options)
    res.update(
        normalized_score=normalized_score(env_id, res["mean_return"]),
        fqe_estimate=fqe,
        true_discounted_return=float(np.mean(res["discounted_returns"])),
        fit_seconds=fit_seconds,
    )
    return res


def run_benchmark(
    cfg: BenchmarkConfig = BenchmarkConfig(),  # noqa: B008  (frozen: one shared default is safe)
    mlflow_uri: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Trains and evaluates every agent of ``cfg`` (see docs/offline-benchmark.md).

    For each environment and quality: a dataset of ``cfg.transitions`` transitions, split 90/10 by
    trajectories; each algorithm is trained on the training part for ``cfg.steps`` gradient steps per
    seed, evaluated for ``cfg.eval_episodes`` episodes with the safety layer on, and judged by FQE
    (fitted on the validation part). With ``mlflow_uri``, one MLflow run per table cell (env,
    quality, algorithm): params, metrics per seed (``step`` = seed) and over seeds, and the
    dataset's metadata as ``dataset/metadata.json``.

    Returns:
        ``config``, ``cells`` (:class:`CellResult`), ``datasets`` (sizes and behaviour score),
        ``seconds``, ``versions``.
    """
    _check_config(cfg)
    d3rlpy = _d3rlpy()
    import torch

    torch.set_num_threads(cfg.threads)
    tracker = _Tracker(mlflow_uri) if mlflow_uri else None
    cells: list[CellResult] = []
    cards: list[dict[str, Any]] = []
    total = len(cfg.envs) * len(cfg.qualities) * len(cfg.algorithms) * len(cfg.seeds)
    t0, done = time.perf_counter(), 0
    try:
        for env_id in cfg.envs:
            for quality in cfg.qualities:
                data = _prepare(env_id, quality, cfg)
                cards.append(data.card)
                for algorithm in cfg.algorithms:
                    cell = CellResult(env_id, quality, algorithm)
                    for seed in cfg.seeds:
                        res = _train_one(algorithm, env_id, data, seed, cfg)
                        cell.seeds.append(seed)
                        cell.runs.append(res)
                        done += 1
                        elapsed = time.perf_counter() - t0
                        log(
                            f"[{done}/{total}] {env_id} {quality} {algorithm} seed {seed}: "
                            f"score {res['normalized_score']:.1f}, "
                            f"{res['violations_per_episode']:.2f} alarms/episode, "
                            f"shutdown rate {res['shutdown_rate']:.2f}, FQE {res['fqe_estimate']:.4g} "
                            f"(true {res['true_discounted_return']:.4g}), fit {res['fit_seconds']:.1f} s; "
                            f"{elapsed / 60:.1f} min elapsed, ~{elapsed / done * (total - done) / 60:.1f} min left"
                        )
                    cells.append(cell)
                    if tracker is not None:
                        tracker.cell(cell, data.ds, cfg)
    finally:
        if tracker is not None:
            tracker.close()
    return {
        "config": cfg,
        "cells": cells,
        "datasets": cards,
        "seconds": time.perf_counter() - t0,
        "versions": _versions(d3rlpy, torch),
    }


def _check_config(cfg: BenchmarkConfig) -> None:
    from . import datasets

    for env_id in cfg.envs:
        reference_scores(env_id)
    for q in cfg.qualities:
        if q not in datasets.QUALITIES:
            raise ConfigError(f"qualities: {q!r} is not one of {', '.join(datasets.QUALITIES)}")
    for a in cfg.algorithms:
        if a not in ALGORITHMS:
            raise ConfigError(f"algorithms: {a!r} is not one of {', '.join(ALGORITHMS)}")
    for name in ("steps", "fqe_steps", "eval_episodes", "transitions", "batch_size", "threads"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name}: must be a positive integer, got {value!r}")
    if not cfg.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in cfg.seeds):
        raise ConfigError(f"seeds: must be non-negative integers, got {cfg.seeds!r}")
    if not (cfg.envs and cfg.qualities and cfg.algorithms):
        raise ConfigError("envs, qualities and algorithms: each needs at least one entry")


def _versions(d3rlpy: Any, torch: Any) -> dict[str, str]:
    from . import __version__

    v = {"neorl_industrial": __version__, "d3rlpy": d3rlpy.__version__, "torch": torch.__version__}
    return {**v, "numpy": np.__version__, "python": platform.python_version()}


class _Tracker:
    """One MLflow run per table cell, in experiment ``neorl-industrial-offline-benchmark``."""

    EXPERIMENT = "neorl-industrial-offline-benchmark"

    def __init__(self, uri: str) -> None:
        try:
            import mlflow
        except ImportError:
            raise ConfigError(
                "mlflow_uri: MLflow is not installed (pip install 'neorl-industrial[mlflow]')"
            ) from None
        self.mlflow = mlflow
        self.previous = mlflow.get_tracking_uri()
        artifacts = None
        if uri.startswith("sqlite:///"):
            db = Path(uri.removeprefix("sqlite:///"))
            db.parent.mkdir(parents=True, exist_ok=True)
            artifacts = (db.parent / "artifacts").resolve().as_uri()
        mlflow.set_tracking_uri(uri)
        found = mlflow.get_experiment_by_name(self.EXPERIMENT)
        self.experiment = (
            found.experiment_id
            if found is not None
            else mlflow.create_experiment(self.EXPERIMENT, artifact_location=artifacts)
        )

    def cell(self, cell: CellResult, ds: Mapping[str, Any], cfg: Any) -> None:
        from .integrations.mlflow import log_dataset_metadata, log_evaluation

        mlflow = self.mlflow
        with mlflow.start_run(
            experiment_id=self.experiment, run_name=f"{cell.algorithm} {cell.env_id} {cell.quality}"
        ):
            params = {
                k: v
                for k, v in dataclasses.asdict(cfg).items()
                if k not in ("envs", "qualities", "algorithms")
            }
            mlflow.log_params(
                {**params, "algorithm": cell.algorithm, "env_id": cell.env_id, "quality": cell.quality}
            )
            for res, seed in zip(cell.runs, cell.seeds, strict=True):
                log_evaluation(res, step=seed, prefix="eval/", log_incidents=False)
                per_seed = ("normalized_score", "fqe_estimate", "true_discounted_return", "fit_seconds")
                mlflow.log_metrics({f"seed/{k}": res[k] for k in per_seed}, step=seed)
            keys = ("normalized_score", "violations_per_episode", "shutdown_rate", "fqe_estimate")
            means = {f"{k}_mean": float(np.mean(cell.values(k))) for k in (*keys, "true_discounted_return")}
            mlflow.log_metrics(
                {**means, "normalized_score_std": float(np.std(cell.values("normalized_score")))}
            )
            log_dataset_metadata(ds, "dataset/metadata.json")

    def close(self) -> None:
        while self.mlflow.active_run():
            self.mlflow.end_run()
        self.mlflow.set_tracking_uri(self.previous)


# --------------------------------------------------------------------------- the table
def _ranks(x: Sequence[float]) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(len(a), dtype=np.float64)
    for value in np.unique(a):  # ties share their mean rank
        tied = a == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (NaN when either side is constant or has fewer than 2 values)."""
    if len(x) < 2:
        return math.nan
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def _num(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.1f}"


def _pm(values: Sequence[float], digits: int = 1) -> str:
    """Mean ± std of the seeds that gave a number; the others (a diverged agent) are counted."""
    good = [v for v in values if math.isfinite(v)]
    if not good:
        return "diverged"
    lost = f" ({len(values) - len(good)} of {len(values)} diverged)" if len(good) < len(values) else ""
    return f"{np.mean(good):.{digits}f} ± {np.std(good):.{digits}f}{lost}"


def _mean(values: Sequence[float], spec: str) -> str:
    good = [v for v in values if math.isfinite(v)]
    return f"{np.mean(good):{spec}}" if good else "n/a"


def _ope_rows(cells: list[CellResult]) -> list[dict[str, Any]]:
    """Per dataset: how FQE ranks its agents (every algorithm and seed) against their true return."""
    rows = []
    for key in dict.fromkeys((c.env_id, c.quality) for c in cells):
        group = [c for c in cells if (c.env_id, c.quality) == key]
        agents = [
            (c.algorithm, seed, r)
            for c in group
            for seed, r in zip(c.seeds, c.runs, strict=True)
            if math.isfinite(r["fqe_estimate"]) and math.isfinite(r["true_discounted_return"])
        ]
        if not agents:
            continue
        fqe, true, score = (
            [float(r[k]) for _, _, r in agents]
            for k in ("fqe_estimate", "true_discounted_return", "normalized_score")
        )
        pick = int(np.argmax(fqe))
        rows.append(
            {
                "env_id": key[0],
                "quality": key[1],
                "agents": len(agents),
                "spearman": spearman(fqe, true),
                "pick": f"{agents[pick][0]} (seed {agents[pick][1]})",
                "pick_score": float(score[pick]),
                "best_score": float(np.max(score)),
            }
        )
    return rows


def render_table(result: Mapping[str, Any], command: str) -> str:
    """docs/offline-benchmark.md from :func:`run_benchmark`'s result."""
    cfg: BenchmarkConfig = result["config"]
    cells: list[CellResult] = result["cells"]
    v = result["versions"]
    smoke = cfg == QUICK
    fit = {
        a: np.mean([s for c in cells if c.algorithm == a for s in c.values("fit_seconds")])
        for a in cfg.algorithms
    }
    out = [
        "# Offline RL benchmark: what d3rlpy's agents achieve, and how safely",
        "",
        f"Written by `{command}` on {time.strftime('%Y-%m-%d')} ({platform.machine()}, "
        f"{cfg.threads} torch thread(s)) in {result['seconds'] / 60:.1f} min; neorl-industrial "
        f"{v['neorl_industrial']}, d3rlpy {v['d3rlpy']}, torch {v['torch']}, Python {v['python']}.",
        "",
    ]
    if smoke:
        out += [
            "**Smoke run (`--quick`): a few gradient steps; these numbers say nothing about the agents.**",
            "",
        ]
    out += [
        f"Every agent got **{cfg.steps} gradient steps** (batch {cfg.batch_size}, d3rlpy's default "
        "hyperparameters, observations standardised, rewards scaled to mean |r| = 1) on the training "
        f"part of a {cfg.transitions:,}-transition dataset, per seed ({', '.join(map(str, cfg.seeds))}). "
        "Mean fit time per agent: "
        + ", ".join(f"{a} {s:.0f} s" for a, s in fit.items())
        + ". Offline agents are usually trained for 10^5 to 10^6 steps: longer training may change "
        "the ranking.",
        "",
        f"Evaluation: {cfg.eval_episodes} episodes per seed (env `i` reset with seed {cfg.eval_seed} + i) "
        "with the safety layer on (constraints, ISA-18.2 alarms, emergency shutdown; no shield), "
        "the same episodes for every agent.",
        "",
        "## Results",
        "",
        "Normalized score: 0 = uniform random policy, 100 = the environment's baseline controller "
        "(`neorl_industrial.offline.normalized_score`), mean ± std over seeds. Alarms / episode: "
        "constraint alarms raised per episode. Shutdown rate: share of episodes ended by an emergency "
        "shutdown. FQE: d3rlpy's Fitted Q Evaluation estimate of the discounted return "
        f"(gamma {cfg.gamma}; {cfg.fqe_steps} steps, learning rate {cfg.fqe_learning_rate:g}, target "
        f"network synchronised every {cfg.fqe_target_update_interval} step(s), on the held-out validation "
        "trajectories) against the true discounted return measured in the env.",
        "",
        "| Env | Data | Agent | Normalized score | Alarms / episode | Shutdown rate | FQE estimate | True disc. return |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        out.append(
            f"| {c.env_id} | {c.quality} | {c.algorithm} | {_pm(c.values('normalized_score'))} | "
            f"{_pm(c.values('violations_per_episode'), 2)} | {_mean(c.values('shutdown_rate'), '.2f')} | "
            f"{_mean(c.values('fqe_estimate'), '.4g')} | {_mean(c.values('true_discounted_return'), '.4g')} |"
        )
    out += _datasets_section(result["datasets"]) + _ope_section(cells)
    return "\n".join(out) + "\n"


def _datasets_section(cards: list[dict[str, Any]]) -> list[str]:
    out = [
        "",
        "## Datasets",
        "",
        "`neorl_industrial.datasets.generate` (100 envs, seed 0), split by whole trajectories with "
        "`train_validation_split` (10% held out). Behaviour score: the normalized score of the "
        "dataset's own episodes (those the env ended).",
        "",
        "| Env | Data | Transitions | Trajectories (train / validation) | Behaviour score |",
        "|---|---|---:|---:|---:|",
    ]
    for d in cards:
        out.append(
            f"| {d['env_id']} | {d['quality']} | {d['transitions']:,} | "
            f"{d['train_trajectories']} / {d['validation_trajectories']} | {_num(d['behaviour_score'])} |"
        )
    return out


def _ope_section(cells: list[CellResult]) -> list[str]:
    rows = _ope_rows(cells)
    rhos = [r["spearman"] for r in rows if not math.isnan(r["spearman"])]
    hits = sum(r["pick_score"] == r["best_score"] for r in rows)
    regret = [r["best_score"] - r["pick_score"] for r in rows]
    out = [
        "",
        "## Off-policy evaluation: does FQE rank the agents?",
        "",
        "Per dataset, every trained agent (algorithm x seed) ranked by its FQE estimate against its "
        "true discounted return: Spearman's rank correlation, and the agent FQE would pick.",
        "",
        "| Env | Data | Agents | Spearman ρ | FQE's pick | Its score | Best score |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        rho = "n/a" if math.isnan(r["spearman"]) else f"{r['spearman']:.2f}"
        out.append(
            f"| {r['env_id']} | {r['quality']} | {r['agents']} | {rho} | {r['pick']} | "
            f"{r['pick_score']:.1f} | {r['best_score']:.1f} |"
        )
    median = f"{np.median(rhos):.2f}" if rhos else "n/a"
    out += [
        "",
        f"FQE ranks the agents with a median Spearman ρ of {median} over {len(rhos)} datasets "
        f"(range {min(rhos):.2f} to {max(rhos):.2f}); "
        if rhos
        else "FQE's ranking: no dataset had two agents with different values; ",
    ]
    out[-1] += (
        f"its pick was the best agent in {hits} of {len(rows)} datasets, "
        f"{np.mean(regret):.1f} normalized-score points below the best on average."
    )
    return out


# --------------------------------------------------------------------------- command line
# Options that change a field of the configuration: (flag, field, type, nargs, help).
_OPTIONS = (
    ("--seeds", "seeds", int, "+", "seeds of every agent"),
    ("--steps", "steps", int, None, "gradient steps per agent"),
    ("--fqe-steps", "fqe_steps", int, None, "FQE gradient steps per agent"),
    ("--eval-episodes", "eval_episodes", int, None, "evaluation episodes per agent and seed"),
    ("--transitions", "transitions", int, None, "transitions per dataset"),
    ("--envs", "envs", str, "+", "environments"),
    ("--qualities", "qualities", str, "+", "dataset qualities"),
    ("--algos", "algorithms", str, "+", "algorithms"),
    ("--threads", "threads", int, None, "torch threads"),
)


def add_benchmark_arguments(parser: Any, default_out: str) -> None:
    """The options of ``benches/offline_rl.py`` and ``neorl-industrial offline-bench``."""
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run of seconds (numbers without meaning)"
    )
    parser.add_argument("--out", default=default_out, help=f"the table (markdown; default {default_out})")
    parser.add_argument(
        "--mlflow-uri",
        default="sqlite:///mlruns/mlflow.db",
        help="MLflow tracking URI, one run per table cell (default sqlite:///mlruns/mlflow.db)",
    )
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    full = BenchmarkConfig()
    for flag, name, kind, nargs, text in _OPTIONS:
        default = getattr(full, name)
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        parser.add_argument(
            flag, dest=name, type=kind, nargs=nargs, default=None, help=f"{text} (default {shown})"
        )


def config_from_args(args: Any) -> BenchmarkConfig:
    """The configuration the command-line options ask for (``--quick`` starts from :data:`QUICK`)."""
    base = QUICK if args.quick else BenchmarkConfig()
    given = {name: getattr(args, name) for _, name, *_ in _OPTIONS}
    changes: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in given.items() if v is not None
    }
    return dataclasses.replace(base, **changes)


def _quiet() -> None:
    """Keeps a benchmark's console to its progress lines: the safety layer's alarm log lines (random
    play raises thousands) and d3rlpy's informational messages stay out."""
    import logging

    logging.getLogger("neorl_industrial.safety").setLevel(logging.ERROR)
    try:
        import structlog  # d3rlpy logs through structlog, configured on its import
    except ImportError:  # pragma: no cover - d3rlpy depends on structlog
        return
    _d3rlpy()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def benchmark_main(args: Any, command: str) -> int:
    """Runs the benchmark the options describe and writes the table; returns the exit status."""
    cfg = config_from_args(args)
    _check_config(cfg)
    out = Path(args.out)
    if not out.parent.is_dir():
        raise ConfigError(f"out: directory {out.parent} does not exist")
    uri = None if args.no_mlflow else args.mlflow_uri
    _quiet()
    result = run_benchmark(cfg, uri, log=lambda line: print(line, flush=True))
    out.write_text(render_table(result, command))
    print(f"wrote {out} ({result['seconds'] / 60:.1f} min)" + (f"; MLflow runs in {uri}" if uri else ""))
    sys.stdout.flush()
    return 0
