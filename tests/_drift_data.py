"""The drift profile of the zero policy on an env: a dataset built by hand from a same-step batch
(what a served ``zero`` policy then does), for the drift tests."""

from __future__ import annotations

from typing import Any

import numpy as np

import neorl_industrial as ni
from neorl_industrial import datasets


def zero_policy_profile(env_id: str, steps: int = 300, num_envs: int = 16, seed: int = 0) -> dict[str, Any]:
    """``datasets.profile`` of ``steps`` batch steps of ``num_envs`` envs acting 0."""
    envs = ni.make_vec(env_id, num_envs=num_envs, autoreset_mode="same_step", metrics=False)
    obs, _ = envs.reset(seed=seed)
    rows: dict[str, list[np.ndarray]] = {"observations": [], "actions": [], "rewards": []}
    zero = np.zeros((num_envs, envs.single_action_space.shape[0]), np.float32)
    for _ in range(steps):
        rows["observations"].append(obs)
        rows["actions"].append(zero)
        obs, reward, *_ = envs.step(zero)
        rows["rewards"].append(reward)
    data: dict[str, Any] = {k: np.concatenate(v) for k, v in rows.items()}
    data["metadata"] = {"env_id": env_id, "env_spec": envs.core_spec}
    envs.close()
    return datasets.profile(data)
