"""neorl-industrial: fast, vectorized industrial process environments for reinforcement learning.

Quick start::

    import gymnasium as gym
    import neorl_industrial  # registers the ``neorl_industrial/...`` ids

    env = gym.make("neorl_industrial/ChemicalReactor-v0")
    envs = gym.make_vec("neorl_industrial/ChemicalReactor-v0", num_envs=1024)
"""

from __future__ import annotations

from typing import Any

from . import _core
from . import envs as _envs
from . import logging as logging  # installs the field filters on the Rust loggers
from ._registration import register_envs
from .envs import *  # noqa: F403  (IndustrialEnv, one class per environment, pipeline_normalized_score)
from .envs import IndustrialEnv
from .exceptions import (
    ConcurrentUseError,
    ConfigError,
    EnvClosedError,
    ExporterError,
    InvalidActionError,
    MetricError,
    NeorlError,
    ResetNeededError,
    StateError,
    UnknownEnvironmentError,
)
from .vector import VectorIndustrialEnv

__version__: str = _core.__version__

__all__ = [
    "ConcurrentUseError",
    "ConfigError",
    "EnvClosedError",
    "ExporterError",
    "InvalidActionError",
    "MetricError",
    "NeorlError",
    "ResetNeededError",
    "StateError",
    "UnknownEnvironmentError",
    "VectorIndustrialEnv",
    "env_ids",
    "make",
    "make_vec",
    "spec",
]
__all__ += _envs.__all__


def env_ids() -> list[str]:
    """Ids of every environment in the catalogue (without the ``neorl_industrial/`` namespace)."""
    return list(_core.env_ids())


def _env_class(env_id: str) -> type[IndustrialEnv]:
    from .envs import ENV_CLASSES

    if not isinstance(env_id, str):
        raise UnknownEnvironmentError(f"env_id: must be a string, got {type(env_id).__name__}")
    key = env_id.removeprefix("neorl_industrial/")
    try:
        return ENV_CLASSES[key]
    except KeyError:
        raise UnknownEnvironmentError(
            f"unknown environment {env_id!r}; known: {', '.join(env_ids())}"
        ) from None


def make(env_id: str, **kwargs: Any) -> IndustrialEnv:
    """Builds one environment without Gymnasium's wrappers (the fastest path to ``step``)."""
    return _env_class(env_id)(**kwargs)


def make_vec(env_id: str, num_envs: int = 1, **kwargs: Any) -> VectorIndustrialEnv:
    """Builds a batch of ``num_envs`` environments stepped together in Rust."""
    _env_class(env_id)
    return VectorIndustrialEnv(env_id, num_envs, **kwargs)


def spec(env_id: str) -> dict[str, Any]:
    """The spec of an environment: variables with units and bounds, dt, horizon, constraints, the
    episode's success criterion, physical ``parameters`` and the ``fault_kinds`` it can be given
    (see ``docs/faults.md``)."""
    return _core.CoreVecEnv(_env_class(env_id).env_id, 1, "disabled").spec()


register_envs()
