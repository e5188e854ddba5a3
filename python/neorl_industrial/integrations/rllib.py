"""RLlib: the catalogue's ids as RLlib environments, one env or a whole Rust batch per env runner.

::

    from ray.rllib.algorithms.ppo import PPOConfig
    from neorl_industrial.integrations.rllib import register_envs

    register_envs()  # "neorl_industrial/ChemicalReactor-v0", ... in Tune's registry
    config = (
        PPOConfig()
        .environment("neorl_industrial/ChemicalReactor-v0", env_config={"noise": 0.01})
        .env_runners(num_env_runners=4, num_envs_per_env_runner=64, gym_env_vectorize_mode="vector_entry_point")
        .debugging(seed=0)
    )
    algo = config.build_algo()

``env_config`` holds the environment's options (as for :func:`neorl_industrial.make`). With
``gym_env_vectorize_mode="vector_entry_point"`` each env runner steps its ``num_envs_per_env_runner``
envs as one Rust batch (:class:`~neorl_industrial.VectorIndustrialEnv`) instead of one Python env each.

Seeding per worker: RLlib seeds env runner ``w`` with ``seed + w`` (``.debugging(seed=...)``), and a
sync vector env adds the sub-env index, so neighbouring runners would share streams. The envs made
here spread that seed out: sub-env ``i`` of runner ``w`` starts from ``seed + w + i + w * 2**16``
(one env per runner) or ``(seed + w) * 2**16 + i`` (Rust batch), distinct for up to 65,536 envs per
runner. Envs are picklable with their full state, as RLlib's checkpoints and remote runners need.

Needs the ``ray`` extra: ``pip install 'neorl-industrial[ray]'``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import gymnasium as gym
from gymnasium.vector import VectorEnv, VectorWrapper

import neorl_industrial as ni

try:
    from ray.tune.registry import register_env
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError(
        "neorl_industrial.integrations.rllib needs ray[rllib]: pip install 'neorl-industrial[ray]'"
    ) from e

__all__ = ["SEED_STRIDE", "make_env", "register_envs"]

SEED_STRIDE = 1 << 16
"""Seeds set aside per env runner: envs of different runners never share a random stream."""


class _RunnerSeeded(gym.Wrapper):
    """Moves a seed to env runner ``worker_index``'s own range."""

    def __init__(self, env: gym.Env, worker_index: int) -> None:
        super().__init__(env)
        self.worker_index = worker_index

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if seed is not None:
            seed = seed + self.worker_index * SEED_STRIDE
        return self.env.reset(seed=seed, options=options)


class _BatchSeeded(VectorWrapper):
    """Gives each env of the batch seed ``seed * SEED_STRIDE + i``."""

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None) -> Any:
        if isinstance(seed, int):
            seed = [seed * SEED_STRIDE + i for i in range(self.num_envs)]
        return self.env.reset(seed=seed, options=options)  # type: ignore[arg-type]  # ours takes a list


def make_env(env_id: str, env_config: Mapping[str, Any] | None = None) -> gym.Env | VectorEnv:
    """RLlib's env creator for ``env_id``: ``env_config`` holds the env's options.

    With ``num_envs`` in ``env_config`` (RLlib's ``vector_entry_point`` mode passes it) the result is
    one Rust batch of that many envs; otherwise a single env.
    """
    config = dict(env_config or {})
    worker_index = int(getattr(env_config, "worker_index", 0) or 0)
    num_envs = config.pop("num_envs", None)
    if num_envs is not None:
        return _BatchSeeded(ni.make_vec(env_id, num_envs=int(num_envs), **config))
    return _RunnerSeeded(ni.make(env_id, **config), worker_index)


def register_envs(env_ids: Iterable[str] | None = None, prefix: str = "neorl_industrial/") -> list[str]:
    """Registers ``prefix + id`` for every id (default: the whole catalogue) in Tune's registry.

    Call it in the driver before building the algorithm; RLlib ships the creators to its workers.
    Returns the registered names.
    """
    names = []
    for env_id in env_ids if env_ids is not None else ni.env_ids():
        env_id = env_id.removeprefix("neorl_industrial/")
        ni.spec(env_id)  # unknown ids fail here, not on a remote worker
        register_env(prefix + env_id, functools.partial(make_env, env_id))
        names.append(prefix + env_id)
    return names
