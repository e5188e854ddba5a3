"""The rollout loop the runners share (``neorl-industrial run``, Ray fleets, dataset generation).

A policy drives a vector env with same-step autoreset, one batch step at a time. Each step comes
back as a :class:`Transition`: every env's step as the env lived it (for the envs that ended and
reset within the step, the observation, cost and readings they ended with, from ``final_obs`` and
``final_info``), and the returns of the episodes that ended. Safety tallies are not recounted here:
the batch keeps them (``envs.safety``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from ._progress import Progress
from .exceptions import ConfigError


@dataclass
class Transition:
    """One batch step of every env."""

    obs: np.ndarray
    """Observations the actions were computed from, ``(num_envs, obs_dim)``."""
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    next_obs: np.ndarray
    """The observation each env reached: the final one for envs that ended and reset."""
    info: dict[str, Any]
    """The step's info (envs that ended report their reset readings here)."""
    episode_returns: np.ndarray
    """Returns of the episodes that ended in this step, in env order."""

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated

    def ended(self, key: str) -> np.ndarray:
        """A per-env step entry (``cost``, ``clipped``, ...) as each env ended its step."""
        done = self.done
        final = np.asarray(self.info["final_info"][key]) if done.any() else None
        if key in self.info:
            value = np.asarray(self.info[key]).copy()
        else:  # every env ended and reset within the step: the step's entries are all final
            value = np.zeros_like(final if final is not None else self.reward)
        if final is not None:
            value[done] = final[done]
        return value

    def readings(self, key: str, names: list[str]) -> np.ndarray:
        """Readings (``constraints``, ``margins`` or ``violations``) as each env ended its step,
        ``(num_envs, k)`` in the order of ``names``."""
        if not names:
            return np.zeros((len(self.reward), 0), dtype=bool if key == "violations" else float)
        table = np.stack([self.info[key][n] for n in names], axis=1)
        done = self.done
        if done.any():
            fin = self.info["final_info"][key]
            table[done] = np.stack([fin[n] for n in names], axis=1)[done]
        return table


class Rollout:
    """Steps ``envs`` (same-step autoreset) with ``policy`` from observations ``obs``.

    ``policy(obs) -> actions``; an ``episode_end(done)`` method, if the policy has one, is called
    with the envs that ended after each step (controllers reset their integrators there).
    """

    def __init__(self, envs: Any, policy: Callable[[np.ndarray], Any], obs: np.ndarray) -> None:
        if envs.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ConfigError(f"autoreset_mode: a rollout needs 'same_step', got {envs.autoreset_mode.value!r}")
        self.envs = envs
        self.policy = policy
        self.obs = obs
        self.returns = np.zeros(envs.num_envs)
        self._episode_end = getattr(policy, "episode_end", None)
        self.stopped: str | None = None
        """Why the last :meth:`run` stopped early (the reason `should_stop` gave), or None."""

    def step(self) -> Transition:
        """One batch step."""
        obs = self.obs
        action = self.policy(obs)
        nobs, reward, term, trunc, info = self.envs.step(action)
        done = term | trunc
        self.returns += reward
        nxt = nobs.copy()
        ended = np.zeros(0)
        if done.any():
            for i in np.flatnonzero(done):
                nxt[i] = info["final_obs"][i]
            ended = self.returns[done].copy()
            self.returns[done] = 0.0
            if self._episode_end is not None:
                self._episode_end(done)
        self.obs = nobs
        return Transition(obs, np.asarray(action), reward, term, trunc, nxt, info, ended)

    def run(
        self,
        batches: int,
        bar: Progress | None = None,
        should_stop: Callable[[], str | None] | None = None,
    ) -> Iterator[Transition]:
        """Up to ``batches`` steps; stops early when ``should_stop()`` names a reason (kept in
        :attr:`stopped`)."""
        self.stopped = None
        for _ in range(batches):
            if should_stop is not None and (reason := should_stop()):
                self.stopped = reason
                return
            yield self.step()
            if bar is not None:
                bar.update(self.envs.num_envs)
