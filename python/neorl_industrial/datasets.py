"""Offline RL datasets generated through the Rust vector env.

``generate(env_id, quality, n_transitions=... | n_episodes=..., seed, num_envs)`` steps a batch of envs
under one of the environment's baseline policies and returns a dict with D4RL's keys
(``observations``, ``actions``, ``rewards``, ``next_observations``, ``terminals``, ``timeouts``)
plus ``costs``, ``violations`` (per-step active alarms, one column per constraint) and ``metadata``.

Qualities (the environment's baseline controller is the ``pid`` policy of ``neorl-industrial run``):

* ``expert``: the baseline controller with small exploration noise (Gaussian, sd 0.05 in action units);
* ``medium``: a degraded controller: the baseline with sd 0.3 noise, and on 25% of steps a uniform random
  action instead;
* ``random``: uniform random actions;
* ``mixed``: a blend by env: envs ``i % 3 == 0`` act as ``random``, ``1`` as ``medium``, ``2`` as ``expert``.

Every random draw depends only on (seed, env index, step): the same seed gives the same dataset
whether the envs run in one batch or in several (``env_offset`` places a batch in the global order).
Transitions are ordered env by env, each env's episodes contiguous.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import _noise, make_vec
from ._dataset_layout import cut_as_timeouts, keep_mask, metadata
from ._profile import load_profile, profile, save_profile
from ._progress import Progress
from ._rollout import Rollout
from .exceptions import ConfigError
from .policies import default_policy, make_policy

__all__ = [
    "QUALITIES",
    "generate",
    "save",
    "load",
    "to_neorl",
    "describe",
    "summary",
    "data_card",
    "to_minari",
    "profile",
    "save_profile",
    "load_profile",
]

QUALITIES = ("random", "medium", "expert", "mixed")


class _QualityPolicy:
    """The baseline controller degraded to a quality, with counter-based noise."""

    def __init__(
        self, env_id: str, quality: str, num_envs: int, act_dim: int, seed: int, env_offset: int
    ) -> None:
        self.base = make_policy(default_policy(env_id), env_id, num_envs, act_dim, seed=seed)
        self.seed, self.act_dim = seed, act_dim
        self.index = np.arange(env_offset, env_offset + num_envs)
        self.t = 0
        role = {"random": 0, "medium": 1, "expert": 2}
        if quality == "mixed":
            self.role = self.index % 3
        else:
            self.role = np.full(num_envs, role[quality])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        base = np.asarray(self.base(obs), dtype=np.float64)
        u = _noise.uniform(self.seed, self.index, self.t, self.act_dim, stream=0) * 2.0 - 1.0
        z = _noise.normal(self.seed, self.index, self.t, self.act_dim, stream=1)
        coin = _noise.uniform(self.seed, self.index, self.t, 1, stream=2)[:, 0]
        self.t += 1
        sd = np.where(self.role == 2, 0.05, 0.3)[:, None]
        action = np.clip(base + sd * z, -1.0, 1.0)
        take_random = (self.role == 0) | ((self.role == 1) & (coin < 0.25))
        action[take_random] = u[take_random]
        return action.astype(np.float32)

    def episode_end(self, done: np.ndarray) -> None:
        self.base.episode_end(done)


def generate(
    env_id: str,
    quality: str = "expert",
    n_transitions: int | None = None,
    n_episodes: int | None = None,
    seed: int = 0,
    num_envs: int = 64,
    progress: bool = True,
    env_offset: int = 0,
    **env_kwargs: Any,
) -> dict[str, Any]:
    """Generates an offline dataset (see the module docstring)."""
    if quality not in QUALITIES:
        raise ConfigError(f"quality: must be one of {', '.join(QUALITIES)}, got {quality!r}")
    if (n_transitions is None) == (n_episodes is None):
        raise ConfigError("give exactly one of n_transitions and n_episodes")
    for name, value in (("n_transitions", n_transitions), ("n_episodes", n_episodes), ("num_envs", num_envs)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name}: must be a positive integer, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed: must be a non-negative integer, got {seed!r}")
    # A dataset is not a live fleet: no metrics and no log line per safety event unless asked for
    # (the events are in the dataset's costs and violation flags, and in the summary).
    envs = make_vec(env_id, num_envs=num_envs, autoreset_mode="same_step", **{"metrics": False, **env_kwargs})
    if n_transitions is not None:
        steps = math.ceil(n_transitions / num_envs)
    else:
        # Enough steps for every env to finish its share of episodes (shutdowns only shorten them).
        steps = math.ceil(n_episodes / num_envs) * envs.horizon
    data = timelines(envs, quality, steps, seed, env_offset, progress)
    keep = keep_mask(data["terminals"] | data["timeouts"], n_transitions, n_episodes)
    cut_as_timeouts(keep, data["terminals"], data["timeouts"])
    ds: dict[str, Any] = {k: v[keep] for k, v in data.items()}
    ds["metadata"] = metadata(envs, quality, seed, num_envs, env_offset, env_kwargs, ds)
    envs.close()
    if progress:
        print(summary(ds), file=sys.stderr)
    return ds



def timelines(envs: Any, quality: str, steps: int, seed: int, env_offset: int, progress: bool) -> dict[str, np.ndarray]:
    """Steps ``envs`` (same-step autoreset) ``steps`` times under the quality's policy: every column
    as ``(num_envs, steps, ...)``, each env's timeline whole (no end flag added where it stops)."""
    num_envs = envs.num_envs
    act_dim = envs.single_action_space.shape[0]
    policy = _QualityPolicy(envs.env_id, quality, num_envs, act_dim, seed, env_offset)
    obs, _ = envs.reset(seed=[seed + env_offset + i for i in range(num_envs)])
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("obs", "act", "rew", "next", "term", "trunc", "cost", "viol")
    }
    bar = Progress(steps * num_envs, f"{envs.env_id} {quality}", progress)
    try:
        for t in Rollout(envs, policy, obs).run(steps, bar):
            # Envs that ended and reset within the step: their transition as they ended it.
            viol = t.readings("violations", envs.constraint_names)
            row = (t.obs, t.action, t.reward, t.next_obs, t.terminated, t.truncated, t.ended("cost"), viol)
            for k, v in zip(cols, row, strict=True):
                cols[k].append(np.asarray(v))
    finally:
        bar.close()
    # (steps, envs, ...) -> env-major order: each env's timeline contiguous; D4RL's keys and dtypes.
    d = {k: np.swapaxes(np.stack(v), 0, 1) for k, v in cols.items()}
    return {
        "observations": d["obs"].astype(np.float32),
        "actions": d["act"].astype(np.float32),
        "rewards": d["rew"].astype(np.float32),
        "next_observations": d["next"].astype(np.float32),
        "terminals": d["term"].astype(bool),
        "timeouts": d["trunc"].astype(bool),
        "costs": d["cost"].astype(np.float32),
        "violations": d["viol"].astype(bool),
    }

def save(dataset: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Saves a dataset as a compressed ``.npz`` with its metadata (JSON) inside."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    arrays = {k: np.asarray(v) for k, v in dataset.items() if k != "metadata"}
    meta = json.dumps(dataset.get("metadata", {}), default=str)
    try:
        np.savez_compressed(path, **arrays, metadata=np.array(meta))
    except OSError as e:
        raise ConfigError(f"out: cannot write {path}: {e.strerror or e}") from None
    return path


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Loads a dataset written by :func:`save`."""
    try:
        with np.load(Path(path), allow_pickle=False) as f:
            data: dict[str, Any] = {k: f[k] for k in f.files if k != "metadata"}
            data["metadata"] = json.loads(str(f["metadata"])) if "metadata" in f.files else {}
    except (OSError, ValueError) as e:
        raise ConfigError(f"dataset: cannot read {path}: {e}") from None
    return data


def to_neorl(dataset: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """NeoRL's keys: ``obs``, ``next_obs``, ``action``, ``reward`` (column), ``done`` (column) and
    ``index`` (start of each trajectory)."""
    done = np.asarray(dataset["terminals"]) | np.asarray(dataset["timeouts"])
    starts = np.concatenate([[0], np.flatnonzero(done[:-1]) + 1]) if len(done) else np.zeros(0, int)
    return {
        "obs": np.asarray(dataset["observations"]),
        "next_obs": np.asarray(dataset["next_observations"]),
        "action": np.asarray(dataset["actions"]),
        "reward": np.asarray(dataset["rewards"])[:, None],
        "done": np.asarray(dataset["terminals"])[:, None].astype(np.float32),
        "index": starts.astype(np.int64),
    }


def summary(dataset: Mapping[str, Any]) -> str:
    """One line on a generated dataset: env, quality, transitions, episodes, shutdowns, violations and
    the mean episode return (what generation prints when it ends)."""
    meta = dataset.get("metadata", {})
    c = meta.get("counts", {})
    viol = c.get("violations", {})
    worst = ", ".join(f"{n} {k}" for n, k in sorted(viol.items(), key=lambda x: -x[1]) if k)
    mean = meta.get("mean_return")
    return (
        f"{meta.get('env_id')} {meta.get('quality')}: {meta.get('n_transitions')} transitions, "
        f"{meta.get('n_episodes')} trajectories, {c.get('shutdowns', 0)} shutdowns, "
        f"{sum(viol.values())} violations{f' ({worst})' if worst else ''}, "
        f"mean return {'n/a' if mean is None else f'{mean:.4g}'}"
    )


def data_card(dataset: Mapping[str, Any]) -> str:
    """The dataset's data card as text: who made it and how (behaviour policy and blend, seed, env
    spec and its hash, package version) and what it holds (counts of trajectories, violations and
    shutdowns)."""
    meta = dataset.get("metadata", {})
    bp = meta.get("behaviour_policy", {})
    c = meta.get("counts", {})
    lines = [
        f"dataset of {meta.get('env_id')} (spec sha256 {str(meta.get('env_spec_sha256', '?'))[:16]}...)",
        f"  behaviour policy: {bp.get('controller')} controller, quality {bp.get('quality')}: {bp.get('blend')}",
        f"  seed {meta.get('seed')}, {meta.get('num_envs')} envs from env {meta.get('env_offset', 0)}, "
        f"options {meta.get('env_kwargs', {})}",
        f"  neorl-industrial {meta.get('package_version', meta.get('versions', {}).get('neorl_industrial'))}",
        f"  {meta.get('n_transitions')} transitions, {meta.get('n_episodes')} trajectories "
        f"({c.get('timeouts', 0)} timeouts, {c.get('shutdowns', 0)} shutdowns)",
    ]
    for name, k in c.get("violations", {}).items():
        active = c.get("transitions_in_violation", {}).get(name, 0)
        lines.append(f"  {name}: {k} violations, active in {active} transitions")
    return "\n".join(lines)


def describe(dataset: Mapping[str, Any], show: bool = False) -> dict[str, Any]:
    """Statistics per column, data-quality anomalies (NaN/inf, constant columns, out-of-bounds) and
    the data card (``card``, see :func:`data_card`); ``show`` also prints the card and the anomalies."""
    meta = dataset.get("metadata", {})
    spec = meta.get("env_spec") or {}
    bounds = {
        "observations": [(v["low"], v["high"]) for v in spec.get("observations", [])],
        "next_observations": [(v["low"], v["high"]) for v in spec.get("observations", [])],
        "actions": [(-1.0, 1.0)] * len(spec.get("actions", [])),
    }
    names = {
        "observations": [v["name"] for v in spec.get("observations", [])],
        "actions": [v["name"] for v in spec.get("actions", [])],
    }
    columns: dict[str, Any] = {}
    anomalies: list[str] = []
    for key in ("observations", "actions", "rewards", "next_observations", "costs"):
        if key not in dataset:
            continue
        a = np.asarray(dataset[key], dtype=np.float64)
        a2 = a.reshape(len(a), -1)
        stats = []
        for j in range(a2.shape[1]):
            col = a2[:, j]
            label = names.get(key.replace("next_", ""), [])
            label = label[j] if j < len(label) else str(j)
            finite = np.isfinite(col)
            if not finite.all():
                anomalies.append(f"{key}[{label}]: {int((~finite).sum())} non-finite values")
            good = col[finite]
            s = {
                "name": label,
                "mean": float(good.mean()) if good.size else math.nan,
                "std": float(good.std()) if good.size else math.nan,
                "min": float(good.min()) if good.size else math.nan,
                "max": float(good.max()) if good.size else math.nan,
            }
            if good.size > 1 and s["std"] == 0.0 and key != "costs":
                anomalies.append(f"{key}[{label}]: constant column ({s['min']:g})")
            b = bounds.get(key)
            if b and j < len(b):
                out = int(((good < b[j][0]) | (good > b[j][1])).sum())
                if out:
                    anomalies.append(f"{key}[{label}]: {out} values outside [{b[j][0]:g}, {b[j][1]:g}]")
            stats.append(s)
        columns[key] = stats
    done = np.asarray(dataset.get("terminals", [])) | np.asarray(dataset.get("timeouts", []))
    out = {
        "n_transitions": int(len(dataset.get("rewards", []))),
        "n_episodes_ended": int(done.sum()),
        "terminal_rate": float(np.mean(dataset["terminals"])) if len(done) else 0.0,
        "violation_rate": (
            dict(
                zip(
                    meta.get("constraint_names", []),
                    np.asarray(dataset["violations"]).mean(axis=0).tolist(),
                    strict=False,
                )
            )
            if "violations" in dataset and len(done)
            else {}
        ),
        "columns": columns,
        "anomalies": anomalies,
        "card": data_card(dataset),
    }
    if show:
        print(out["card"])
        for a in anomalies:
            print(f"  anomaly: {a}")
    return out


def to_minari(dataset: Mapping[str, Any], dataset_id: str) -> Any:
    """Exports to a Minari dataset (needs ``minari``); returns the ``MinariDataset``."""
    try:
        import minari
        from minari.data_collector import EpisodeBuffer
    except ImportError:
        raise ConfigError("to_minari needs the minari package (pip install minari)") from None
    from ._spaces import action_space, observation_space

    spec = dataset["metadata"]["env_spec"]
    done = np.asarray(dataset["terminals"]) | np.asarray(dataset["timeouts"])
    ends = np.flatnonzero(done)
    buffers, start = [], 0
    for k, end in enumerate(ends):
        sl = slice(start, end + 1)
        obs = np.concatenate([dataset["observations"][sl], dataset["next_observations"][end : end + 1]])
        buffers.append(
            EpisodeBuffer(
                id=k,
                observations=obs,
                actions=dataset["actions"][sl],
                rewards=dataset["rewards"][sl],
                terminations=dataset["terminals"][sl],
                truncations=dataset["timeouts"][sl],
                infos={},
            )
        )
        start = end + 1
    return minari.create_dataset_from_buffers(
        dataset_id=dataset_id,
        buffer=buffers,
        observation_space=observation_space(spec),
        action_space=action_space(spec),
        algorithm_name=dataset["metadata"].get("policy", "baseline"),
    )
