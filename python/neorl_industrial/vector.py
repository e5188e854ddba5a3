"""Vectorized environments: one :class:`gymnasium.vector.VectorEnv` over one Rust batch.

The whole batch steps in Rust (lanes of envs across threads, the GIL released); this class turns the core's
arrays into Gymnasium's return values, infos batched with ``_key`` masks exactly as Gymnasium's own
vector envs batch them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from . import _core
from ._exclusive import Exclusive
from ._faults import load_faults
from ._spaces import action_space, observation_space
from .envs import (
    _metrics_registry,
    check_reset_options,
    check_shield,
    picklable_safety_args,
    restore_snapshot,
)
from .exceptions import ConfigError, EnvClosedError
from .safety import SafetyStats, load_constraints, open_audit_trail

__all__ = ["VectorIndustrialEnv"]

# The core's mode names, as Gymnasium's enum.
_MODE_OF_CORE = {
    "next_step": AutoresetMode.NEXT_STEP,
    "same_step": AutoresetMode.SAME_STEP,
    "disabled": AutoresetMode.DISABLED,
}


class VectorIndustrialEnv(VectorEnv):
    """A batch of ``num_envs`` environments of one id, stepped together in Rust.

    Args:
        env_id: Catalogue id, e.g. ``"ChemicalReactor-v0"`` (a ``neorl_industrial/`` prefix is accepted).
        num_envs: Batch size.
        autoreset_mode: Gymnasium's ``AutoresetMode`` (or its name): ``NEXT_STEP`` (default),
            ``SAME_STEP`` (ended envs reset within the step; ``info["final_obs"]`` and
            ``info["final_info"]`` hold what they ended with) or ``DISABLED`` (reset ended envs with
            ``reset(options={"reset_mask": mask})``).
        num_threads: Threads stepping this batch, the calling thread included (default: one per
            core, or ``RAYON_NUM_THREADS``, with helpers shared by every batch). Results are
            identical for any value. Idle helpers spin 200 µs before sleeping
            (``NEORL_INDUSTRIAL_SPIN_US``; 0 sleeps at once).
        constraints: Constraint configuration (see :mod:`neorl_industrial.safety`): ``None`` keeps
            the env's defaults; a mapping overrides, drops (``None``) or adds constraints by name; a
            list replaces them; a path loads a YAML or TOML file.
        shield: ``None``, ``"clip"`` (actuator ramp limits) or ``"predictive"`` (also replaces
            actions that lead to a critical breach with the env's safe fallback).
        audit_log: A path or :class:`~neorl_industrial.safety.AuditTrail` receiving safety events.
        registry: The :class:`~neorl_industrial.metrics.Registry` recording this batch (default: the
            process-wide ``REGISTRY``), once per batch step, labelled by env id.
        metrics: ``False`` records nothing (for benchmarking).
        faults: Faults to inject into every env (a list of mappings, or a JSON/YAML/TOML file;
            default none): see :class:`~neorl_industrial.envs.IndustrialEnv` and ``docs/faults.md``.
            ``faults_active()`` counts the envs with each fault active.
        **options: The environment's options (see its class).

    Env ``i`` reset with ``reset(seed=s)`` follows the same trajectory as a single env reset with
    ``seed=s + i``, whatever the batch size or thread count.
    """

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        num_threads: int | None = None,
        render_mode: str | None = None,
        constraints: Any = None,
        shield: str | None = None,
        audit_log: Any = None,
        registry: Any = None,
        metrics: bool = True,
        faults: Any = None,
        **options: Any,
    ) -> None:
        if render_mode is not None:
            raise ConfigError(f"render_mode: vector envs do not render, got {render_mode!r}")
        self.env_id = env_id.removeprefix("neorl_industrial/")
        self._options = dict(options)
        self._safety_args = {
            "constraints": constraints,
            "shield": shield,
            "audit_log": audit_log,
            "metrics": metrics,
            "faults": load_faults(faults),
        }
        trail = open_audit_trail(audit_log)
        # The core checks num_envs, num_threads and the mode (an AutoresetMode goes by its value).
        self._core = _core.CoreVecEnv(
            self.env_id,
            num_envs,
            autoreset_mode.value if isinstance(autoreset_mode, AutoresetMode) else autoreset_mode,
            num_threads,
            self._options,
            load_constraints(constraints),
            check_shield(shield),
            trail,
            _metrics_registry(registry, metrics),
            self._safety_args["faults"],
        )
        self.audit_trail = trail
        self.core_spec: dict[str, Any] = self._core.spec()
        self.num_envs: int = self._core.num_envs
        self._num_threads = None if num_threads is None else int(num_threads)
        mode = _MODE_OF_CORE[self._core.autoreset_mode]
        self.autoreset_mode = mode
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self.render_mode = None
        self.single_observation_space = observation_space(self.core_spec)
        self.single_action_space = action_space(self.core_spec)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.constraint_names: list[str] = list(self._core.constraint_names)
        self.horizon: int = int(self.core_spec["horizon"])
        self.safety = SafetyStats(self.core_spec["constraints"], self._core.totals())
        self._exclusive = Exclusive(f"{self.env_id} x{self.num_envs}")

    # ------------------------------------------------------------------ API
    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Resets every env, or those in ``options["reset_mask"]`` (a bool array of shape ``(num_envs,)``).

        ``reset_mask`` is the only option; any other key raises :class:`~neorl_industrial.ConfigError`.
        """
        opts = check_reset_options(options, ("reset_mask",))
        with self._exclusive:
            # The core checks the seed (an integer, one per env, or None) and the mask.
            return self._core.reset_info(seed, opts)  # type: ignore[no-any-return]

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Steps every env with normalised actions of shape ``(num_envs, act_dim)`` (``(num_envs,)`` too
        for one-dimensional actions), under the same rules as a single env's ``step``: any real dtype and
        layout; bool/complex/object/string dtypes, another shape, NaN or inf raise
        :class:`~neorl_industrial.InvalidActionError` naming the env and element, and no env steps."""
        with self._exclusive:
            return self._core.step_info(actions)  # type: ignore[no-any-return]

    def faults_active(self) -> dict[str, int]:
        """How many envs have each injected fault active now, by fault name (the ``faults_active`` metric)."""
        return self._core.faults_active()  # type: ignore[no-any-return]

    def close_extras(self, **kwargs: Any) -> None:
        # The batch's memory goes now; any later use raises EnvClosedError naming the env.
        self._core = _ClosedCore(f"{self.env_id} x{self.num_envs}")  # type: ignore[assignment]

    # ------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "num_envs": self.num_envs,
            "autoreset_mode": self.autoreset_mode,
            "num_threads": self._num_threads,
            "options": self._options,
            "safety": picklable_safety_args(self._safety_args),
            "snapshot": self._core.snapshot(),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["env_id"],
            state["num_envs"],
            state["autoreset_mode"],
            state["num_threads"],
            **state["safety"],
            **state["options"],
        )
        restore_snapshot(self._core, state["snapshot"])


class _ClosedCore:
    """Stands in for the core of a closed vector env: every use raises :class:`EnvClosedError`."""

    def __init__(self, label: str) -> None:
        self._label = label

    def __getattr__(self, name: str) -> Any:
        raise EnvClosedError(f"vector env {self._label} is closed: make a new one")
