"""Model drift: a fleet's recent observations, actions and rewards against a reference profile.

A profile (``datasets.profile(data)``, kept with ``datasets.save_profile``) gives each feature fixed
quantile bins. :class:`DriftMonitor` counts, in the Rust core, the values of the last ``window``
batch steps in those bins and exports per feature:

- ``feature_drift{env, source, feature}``: the population stability index (below 0.1 stable,
  0.1 to 0.25 moderate, above 0.25 significant);
- ``feature_drift_wasserstein{env, source, feature}``: the Wasserstein-1 distance, in the
  feature's unit.

``source`` is ``observation``, ``action`` or ``reward``; feature names come from the env's spec, so
the label sets are bounded by it. ``neorl-industrial serve --drift-profile FILE`` watches its fleet
this way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _core
from ._profile import check_profile
from ._profile import profile as build_profile
from .exceptions import ConfigError
from .metrics import REGISTRY, Gauge, Registry, shared_families

__all__ = ["DriftMonitor", "PSI_MODERATE", "PSI_SIGNIFICANT", "level"]

PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25


def level(psi: float | None) -> str:
    """``stable``, ``moderate``, ``significant``, or ``no data``."""
    if psi is None:
        return "no data"
    return "significant" if psi > PSI_SIGNIFICANT else "moderate" if psi >= PSI_MODERATE else "stable"


class _Gauges:
    def __init__(self, registry: Registry) -> None:
        labels = ["env", "source", "feature"]
        self.psi = Gauge(
            "feature_drift",
            "Population stability index of a feature's recent window.",
            labels,
            registry=registry,
        )
        self.w1 = Gauge(
            "feature_drift_wasserstein",
            "Wasserstein-1 distance of a feature's recent window (its unit).",
            labels,
            registry=registry,
        )


class DriftMonitor:
    """Drift of one env's features against ``profile`` over the last ``window`` batch steps.

    Args:
        profile: A profile of ``env_spec``'s env (see :func:`neorl_industrial.datasets.profile`),
            or None with ``warmup``.
        env_spec: The env's spec (``envs.core_spec`` or :func:`neorl_industrial.spec`).
        window: Batch steps in the window.
        registry: Where the gauges go (default: the process-wide registry).
        warmup: Instead of a profile: build the reference from the first ``warmup`` batch steps
            observed (kept as :attr:`profile`, to save with ``datasets.save_profile``), then track.

    Raises:
        ConfigError: a profile of another env or shape, both or neither of ``profile`` and
            ``warmup``, a window or warmup below 1.
    """

    def __init__(
        self,
        profile: Mapping[str, Any] | None,
        env_spec: Mapping[str, Any],
        window: int = 600,
        registry: Registry | None = None,
        warmup: int | None = None,
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"window: must be a positive number of batch steps, got {window!r}")
        if (profile is None) == (warmup is None):
            raise ConfigError("drift: give a reference profile or a warmup, not both and not neither")
        if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1):
            raise ConfigError(f"warmup: must be a positive number of batch steps, got {warmup!r}")
        self.env_spec = env_spec
        self.env_id = str(env_spec["id"])
        self.window = window
        self.warmup = warmup
        self._obs_dim = len(env_spec["observations"])
        self._act_dim = len(env_spec["actions"])
        self.features = (
            [("observation", o["name"]) for o in env_spec["observations"]]
            + [("action", a["name"]) for a in env_spec["actions"]]
            + [("reward", "reward")]
        )
        gauges = shared_families(_Gauges, registry if registry is not None else REGISTRY)
        self._psi = [gauges.psi.labels(self.env_id, s, n) for s, n in self.features]
        self._w1 = [gauges.w1.labels(self.env_id, s, n) for s, n in self.features]
        self._seen: list[np.ndarray] = []
        self._core: Any = None
        self.profile: dict[str, Any] | None = None
        """The reference in use (given, or built from the warmup once it is over)."""
        if profile is not None:
            self._start(dict(profile))

    def _start(self, profile: dict[str, Any]) -> None:
        check_profile(profile, self.env_spec)
        self.profile = profile
        features = [(f["source"], f["name"], f["edges"], f["shares"]) for f in profile["features"]]
        self._core = _core.CoreDrift(features, self.window)

    def _warm(self, rows: np.ndarray) -> None:
        """Keeps a warmup step; the last one builds the reference from all of them."""
        self._seen.append(rows)
        if len(self._seen) < (self.warmup or 0):
            return
        seen = np.concatenate(self._seen)
        self._seen = []
        o, a = self._obs_dim, self._act_dim
        data = {
            "observations": seen[:, :o],
            "actions": seen[:, o : o + a],
            "rewards": seen[:, -1],
            "metadata": {"env_id": self.env_id, "env_spec": self.env_spec},
        }
        self._start(build_profile(data))

    def observe(self, observations: Any, actions: Any, rewards: Any) -> None:
        """Adds one batch step (``(n, obs_dim)``, ``(n, act_dim)``, ``(n,)``) and updates the gauges."""
        obs = np.asarray(observations, np.float64)
        n = obs.shape[0] if obs.ndim == 2 else -1
        act = np.asarray(actions, np.float64).reshape(n, -1) if n > 0 else np.empty((0, 0))
        rew = np.asarray(rewards, np.float64).reshape(-1, 1)
        if obs.shape != (n, self._obs_dim) or act.shape != (n, self._act_dim) or rew.shape != (n, 1):
            raise ConfigError(
                f"drift: expected ({n}, {self._obs_dim}) observations, ({n}, {self._act_dim}) actions and ({n},) "
                f"rewards, got {obs.shape}, {np.shape(actions)} and {np.shape(rewards)}"
            )
        rows = np.concatenate([obs, act, rew], axis=1)
        if self._core is None:
            self._warm(rows)
            return
        self._core.observe(rows)
        for i in range(len(self.features)):
            psi, w1 = self._core.psi(i), self._core.w1(i)
            if psi is not None and w1 is not None:
                self._psi[i].set(psi)
                self._w1[i].set(w1)

    def report(self) -> list[dict[str, Any]]:
        """Per feature: ``source``, ``feature``, ``psi``, ``wasserstein``, ``level``, ``samples``."""
        out = []
        for i, (source, name) in enumerate(self.features):
            core = self._core
            psi = core.psi(i) if core is not None else None
            out.append(
                {
                    "source": source,
                    "feature": name,
                    "psi": psi,
                    "wasserstein": core.w1(i) if core is not None else None,
                    "level": level(psi) if core is not None else "warming up",
                    "samples": core.samples(i) if core is not None else 0,
                }
            )
        return out
