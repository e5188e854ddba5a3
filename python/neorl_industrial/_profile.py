"""Reference profiles for drift monitoring: fixed quantile bins per feature (each observation
variable, each action, the reward) and the reference's share in each bin.

``datasets.profile(data)`` builds one from a dataset; ``save_profile`` / ``load_profile`` keep it
as JSON beside the dataset. The Rust core's drift tracker compares a window of live steps with it
(population stability index, Wasserstein-1).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from .exceptions import ConfigError

FORMAT = "neorl-industrial drift profile"
VERSION = 1


def profile(dataset: Mapping[str, Any], bins: int = 10) -> dict[str, Any]:
    """The reference profile of a dataset (one from :func:`neorl_industrial.datasets.generate` or
    :func:`~neorl_industrial.datasets.load`): for each feature, ``bins`` bins between the
    data's minimum and maximum with quantile inner edges, and the data's share in each.

    Raises:
        ConfigError: ``bins`` not an integer from 2 to 1000; a dataset without the env's
            metadata, without rows, or with NaN/inf in a column (named).
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 1000:
        raise ConfigError(f"bins: must be an integer from 2 to 1000, got {bins!r}")
    meta = dataset.get("metadata") if isinstance(dataset, Mapping) else None
    if not isinstance(meta, Mapping) or "env_spec" not in meta:
        raise ConfigError("dataset: needs its metadata (env_spec), as datasets.generate writes it")
    spec = meta["env_spec"]
    columns = [
        (
            "observation",
            [o["name"] for o in spec["observations"]],
            np.asarray(dataset["observations"], np.float64),
        ),
        ("action", [a["name"] for a in spec["actions"]], np.asarray(dataset["actions"], np.float64)),
        ("reward", ["reward"], np.asarray(dataset["rewards"], np.float64).reshape(-1, 1)),
    ]
    features = []
    for source, names, data in columns:
        if data.ndim != 2 or data.shape[1] != len(names) or len(data) == 0:
            raise ConfigError(
                f"dataset: {source}s of shape {data.shape} do not match the spec's {len(names)}"
            )
        for j, name in enumerate(names):
            features.append(_feature(source, name, data[:, j], bins))
    return {
        "format": FORMAT,
        "version": VERSION,
        "env_id": meta["env_id"],
        "bins": bins,
        "features": features,
    }


def _feature(source: str, name: str, x: np.ndarray, bins: int) -> dict[str, Any]:
    if not np.isfinite(x).all():
        raise ConfigError(f"dataset: {source} {name!r} holds NaN or inf")
    # The core's cut, the same a fleet's drift watch makes of its warmup.
    edges, shares = _core.CoreDrift.quantile_bins(np.ascontiguousarray(x, np.float64), bins, name)
    return {"source": source, "name": name, "edges": list(edges), "shares": list(shares)}


def save_profile(prof: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Writes a profile as JSON (checked first: see :func:`check_profile`)."""
    check_profile(prof)
    p = Path(path)
    p.write_text(json.dumps(prof, indent=1) + "\n")
    return p


def load_profile(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads a profile written by :func:`save_profile`; a missing, unreadable or malformed file is a
    :class:`ConfigError` naming what is wrong."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"profile: cannot read {path}: {e.strerror}") from None
    try:
        prof = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"profile: {path} is not JSON: {e}") from None
    check_profile(prof)
    return dict(prof)


def check_profile(prof: Any, env_spec: Mapping[str, Any] | None = None) -> None:
    """Checks a profile's layout and, with ``env_spec``, that it describes that env's features in
    order (a profile of another env, or of another shape, is refused)."""
    if not isinstance(prof, Mapping) or prof.get("format") != FORMAT:
        raise ConfigError(f"profile: not a {FORMAT}")
    if prof.get("version") != VERSION:
        raise ConfigError(f"profile: version {prof.get('version')!r}, this package reads {VERSION}")
    features = prof.get("features")
    if not isinstance(features, list) or not features:
        raise ConfigError("profile: has no features")
    for f in features:
        edges, shares = f.get("edges"), f.get("shares")
        ok = isinstance(edges, list) and isinstance(shares, list) and len(edges) == len(shares) + 1 >= 2
        ok = ok and all(isinstance(v, (int, float)) and math.isfinite(v) for v in edges + shares)
        if not ok or any(b < a for a, b in zip(edges, edges[1:], strict=False)):
            raise ConfigError(f"profile: feature {f.get('name')!r} has malformed edges or shares")
    if env_spec is not None:
        want = (
            [("observation", o["name"]) for o in env_spec["observations"]]
            + [("action", a["name"]) for a in env_spec["actions"]]
            + [("reward", "reward")]
        )
        got = [(f.get("source"), f.get("name")) for f in features]
        if prof.get("env_id") != env_spec["id"] or got != want:
            raise ConfigError(
                f"profile: describes {prof.get('env_id')} features {got}, not {env_spec['id']}'s {want}"
            )
