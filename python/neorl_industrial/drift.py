"""Model drift: a fleet's recent observations, actions and rewards against a reference profile.

A profile (``datasets.profile(data)``, kept with ``datasets.save_profile``) gives each feature fixed
quantile bins. :class:`DriftMonitor` counts, in the Rust core, the values of the last ``window``
batch steps in those bins (fed by the fleet itself once attached to it) and exports per feature:

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
from ._profile import FORMAT, VERSION, check_profile
from .exceptions import ConfigError
from .metrics import REGISTRY, Registry

__all__ = ["DriftMonitor", "PSI_MODERATE", "PSI_SIGNIFICANT", "level"]

PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25


def level(psi: float | None) -> str:
    """``stable``, ``moderate``, ``significant``, or ``no data``."""
    if psi is None:
        return "no data"
    return "significant" if psi > PSI_SIGNIFICANT else "moderate" if psi >= PSI_MODERATE else "stable"


class DriftMonitor:
    """Drift of one env's features against ``profile`` over the last ``window`` batch steps.

    Attach it to a vector env (:meth:`attach`) and the fleet feeds it itself, in the Rust core,
    after every batch step: a sample of at most ``sample`` envs per step (envs spaced evenly, the
    first one moving each step so every env is visited), each giving its observation, the action
    it was sent and its reward. Or feed it rows with :meth:`observe`.

    Args:
        profile: A profile of ``env_spec``'s env (see :func:`neorl_industrial.datasets.profile`),
            or None with ``warmup``.
        env_spec: The env's spec (``envs.core_spec`` or :func:`neorl_industrial.spec`).
        window: Batch steps in the window.
        registry: Where the gauges go (default: the process-wide registry).
        warmup: Instead of a profile: build the reference from the first ``warmup`` batch steps
            observed (kept as :attr:`profile`, to save with ``datasets.save_profile``), then track.
        sample: Envs an attached fleet gives per batch step (0: every env).
        bins: Bins per feature of a reference built from a warmup.

    Raises:
        ConfigError: a profile of another env or shape, both or neither of ``profile`` and
            ``warmup``, a window or warmup below 1, a negative sample.
    """

    def __init__(
        self,
        profile: Mapping[str, Any] | None,
        env_spec: Mapping[str, Any],
        window: int = 600,
        registry: Registry | None = None,
        warmup: int | None = None,
        sample: int = 64,
        bins: int = 10,
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"window: must be a positive number of batch steps, got {window!r}")
        if (profile is None) == (warmup is None):
            raise ConfigError("drift: give a reference profile or a warmup, not both and not neither")
        if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1):
            raise ConfigError(f"warmup: must be a positive number of batch steps, got {warmup!r}")
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
            raise ConfigError(f"sample: must be a number of envs (0: all), got {sample!r}")
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
        features = None
        if profile is not None:
            check_profile(profile, env_spec)
            features = [(f["source"], f["name"], f["edges"], f["shares"]) for f in profile["features"]]
        reg = registry if registry is not None else REGISTRY
        self._core = _core.CoreDrift(
            self.features, window, features, warmup, bins, sample, reg.core, self.env_id
        )
        self._given = dict(profile) if profile is not None else None

    @property
    def profile(self) -> dict[str, Any] | None:
        """The reference in use (given, or built from the warmup once it is over; None before)."""
        if self._given is not None:
            return self._given
        built = self._core.profile()
        if built is None:
            return None
        return {
            "format": FORMAT,
            "version": VERSION,
            "env_id": self.env_id,
            "bins": len(built[0][3]),
            "features": [
                {"source": s, "name": n, "edges": list(e), "shares": list(sh)} for s, n, e, sh in built
            ],
        }

    def attach(self, envs: Any) -> DriftMonitor:
        """Lets the vector env ``envs`` (of this monitor's env) feed the monitor after every batch
        step, in the core; returns the monitor. ``envs.set_drift(None)`` detaches it."""
        core = getattr(envs, "_core", None)
        spec_id = getattr(envs, "core_spec", {}).get("id") if core is not None else None
        if core is None or spec_id != self.env_id:
            raise ConfigError(f"drift: attach to a vector env of {self.env_id}, got {type(envs).__name__}")
        core.set_drift(self._core)
        return self

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

    def report(self) -> list[dict[str, Any]]:
        """Per feature: ``source``, ``feature``, ``psi``, ``wasserstein``, ``level``, ``samples``."""
        warming = self._core.warmup_left > 0
        return [
            {
                "source": source,
                "feature": name,
                "psi": psi,
                "wasserstein": w1,
                "level": "warming up" if warming else level(psi),
                "samples": samples,
            }
            for (source, name), (psi, w1, samples) in zip(self.features, self._core.report(), strict=True)
        ]
