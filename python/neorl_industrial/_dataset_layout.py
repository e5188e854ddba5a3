"""What every way of generating a dataset shares: which transitions to keep, and the metadata.

Used by :mod:`neorl_industrial.datasets` (in process) and :mod:`neorl_industrial.distributed` (Ray
workers), so both lay datasets out the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .exceptions import ConfigError
from .policies import default_policy

# The layout of a saved dataset; load() refuses other versions.
FORMAT_VERSION = 1

def keep_mask(done: np.ndarray, n_transitions: int | None, n_episodes: int | None) -> np.ndarray:
    n_envs, steps = done.shape
    if n_transitions is not None:
        keep = np.zeros(n_envs * steps, dtype=bool)
        keep[:n_transitions] = True
        return keep.reshape(n_envs, steps)
    # Whole episodes only, the first n_episodes in env-major order.
    keep = np.zeros_like(done)
    count = 0
    for i in range(n_envs):
        ends = np.flatnonzero(done[i])
        take = min(len(ends), n_episodes - count)
        if take > 0:
            keep[i, : ends[take - 1] + 1] = True
            count += take
        if count >= n_episodes:
            break
    if count < n_episodes:
        raise ConfigError(
            f"n_episodes: only {count} episodes completed; use more num_envs"
        )  # pragma: no cover
    return keep


def cut_as_timeouts(keep: np.ndarray, terminals: np.ndarray, timeouts: np.ndarray) -> None:
    """Flags the last kept transition of each env's run as a timeout where the cut left it without
    an end (``keep``, ``terminals`` and ``timeouts`` are ``(envs, steps)``; ``timeouts`` is changed in
    place). A cut is a timeout, as in D4RL: a consumer that splits episodes on the flags then never
    joins the end of one env's run to the start of the next env's."""
    kept = keep.any(axis=1)
    last = keep.shape[1] - 1 - np.argmax(keep[:, ::-1], axis=1)
    rows = np.flatnonzero(kept)
    cols = last[rows]
    open_end = ~(terminals[rows, cols] | timeouts[rows, cols])
    timeouts[rows[open_end], cols[open_end]] = True


# How each quality's behaviour policy acts (the data card's ``behaviour_policy.blend``).
BLENDS = {
    "expert": "the baseline controller plus Gaussian noise (sd 0.05, normalised action units)",
    "medium": "the baseline controller plus Gaussian noise (sd 0.3); a uniform random action on 25% of steps",
    "random": "uniform random actions in [-1, 1]",
    "mixed": "envs i % 3 == 0 random, 1 medium, 2 expert",
}


def spec_sha256(spec: Any) -> str:
    """The SHA-256 of an env spec's canonical JSON (sorted keys): two datasets of the same env
    configuration carry the same hash."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def counts(ds: dict, constraint_names: list[str]) -> dict[str, Any]:
    """Shutdowns (terminals), episodes cut short (timeouts), and per constraint the violations
    (onsets of its flag within a trajectory) and the transitions it was active in."""
    viol = np.asarray(ds["violations"], bool).reshape(len(ds["rewards"]), -1)
    ends = np.asarray(ds["terminals"]) | np.asarray(ds["timeouts"])
    start = np.ones(len(ends), bool)
    start[1:] = ends[:-1]  # a trajectory's first transition
    before = np.zeros_like(viol)
    before[1:] = viol[:-1]
    before[start] = False
    onsets = viol & ~before
    return {
        "shutdowns": int(np.sum(ds["terminals"])),
        "timeouts": int(np.sum(ds["timeouts"])),
        "violations": {n: int(onsets[:, j].sum()) for j, n in enumerate(constraint_names)},
        "transitions_in_violation": {n: int(viol[:, j].sum()) for j, n in enumerate(constraint_names)},
    }


def metadata(envs: Any, quality: str, seed: int, num_envs: int, offset: int, kwargs: dict, ds: dict) -> dict:
    from . import __version__

    ends = ds["terminals"] | ds["timeouts"]
    returns, acc = [], 0.0
    for r, e in zip(ds["rewards"], ends, strict=True):
        acc += float(r)
        if e:
            returns.append(acc)
            acc = 0.0
    return {
        "format_version": FORMAT_VERSION,
        "env_id": envs.env_id,
        "env_spec": envs.core_spec,
        "env_kwargs": {
            k: v for k, v in kwargs.items() if isinstance(v, (int, float, str, bool, list, type(None)))
        },
        "env_spec_sha256": spec_sha256(envs.core_spec),
        "quality": quality,
        "policy": f"{default_policy(envs.env_id)} baseline, quality {quality}",
        "behaviour_policy": {
            "controller": default_policy(envs.env_id),
            "quality": quality,
            "blend": BLENDS[quality],
        },
        "seed": seed,
        "num_envs": num_envs,
        "env_offset": offset,
        "constraint_names": list(envs.constraint_names),
        "n_transitions": int(len(ds["rewards"])),
        "n_episodes": len(returns),
        "mean_return": float(np.mean(returns)) if returns else None,
        "std_return": float(np.std(returns)) if returns else None,
        "counts": counts(ds, list(envs.constraint_names)),
        "package_version": __version__,
        "versions": {"neorl_industrial": __version__, "numpy": np.__version__},
    }
