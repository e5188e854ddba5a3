"""Gymnasium registration of the catalogue under the ``neorl_industrial/`` namespace."""

from __future__ import annotations

import gymnasium as gym

from .envs import ENV_CLASSES


def register_envs() -> None:
    for env_id, cls in ENV_CLASSES.items():
        full = f"neorl_industrial/{env_id}"
        if full in gym.registry:
            continue
        gym.register(
            id=full,
            entry_point=f"{cls.__module__}:{cls.__name__}",
            vector_entry_point=_vector_entry(env_id),
            # The env truncates at its own horizon (an option), so no TimeLimit wrapper is added.
            max_episode_steps=None,
        )


def _vector_entry(env_id: str):  # type: ignore[no-untyped-def]
    def make_vector(num_envs: int = 1, **kwargs):  # type: ignore[no-untyped-def]
        from .vector import VectorIndustrialEnv

        return VectorIndustrialEnv(env_id, num_envs, **kwargs)

    make_vector.__name__ = f"make_vector_{env_id.replace('-', '_')}"
    return make_vector
