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
        profile: A profile of ``env_spec``'s env (see :func:`neorl_industrial.datasets.profile`).
        env_spec: The env's spec (``envs.core_spec`` or :func:`neorl_industrial.spec`).
        window: Batch steps in the window.
        registry: Where the gauges go (default: the process-wide registry).

    Raises:
        ConfigError: a profile of another env or shape, a window below 1.
    """

    def __init__(
        self,
        profile: Mapping[str, Any],
        env_spec: Mapping[str, Any],
        window: int = 600,
        registry: Registry | None = None,
    ) -> None:
        check_profile(profile, env_spec)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"window: must be a positive number of batch steps, got {window!r}")
        self.env_id = str(env_spec["id"])
        self.features = [(f["source"], f["name"]) for f in profile["features"]]
        self._obs_dim = len(env_spec["observations"])
        self._act_dim = len(env_spec["actions"])
        self._core = _core.CoreDrift(
            [(f["source"], f["name"], f["edges"], f["shares"]) for f in profile["features"]], window
        )
        gauges = shared_families(_Gauges, registry if registry is not None else REGISTRY)
        self._psi = [gauges.psi.labels(self.env_id, s, n) for s, n in self.features]
        self._w1 = [gauges.w1.labels(self.env_id, s, n) for s, n in self.features]

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
        self._core.observe(np.concatenate([obs, act, rew], axis=1))
        for i in range(len(self.features)):
            psi, w1 = self._core.psi(i), self._core.w1(i)
            if psi is not None and w1 is not None:
                self._psi[i].set(psi)
                self._w1[i].set(w1)

    def report(self) -> list[dict[str, Any]]:
        """Per feature: ``source``, ``feature``, ``psi``, ``wasserstein``, ``level``, ``samples``."""
        out = []
        for i, (source, name) in enumerate(self.features):
            psi = self._core.psi(i)
            out.append(
                {
                    "source": source,
                    "feature": name,
                    "psi": psi,
                    "wasserstein": self._core.w1(i),
                    "level": level(psi),
                    "samples": self._core.samples(i),
                }
            )
        return out
