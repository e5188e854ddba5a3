"""Stable-Baselines3 on the Rust batch: :class:`SB3VecEnv`, a ``VecEnv`` over one vector env.

SB3's own ``DummyVecEnv``/``SubprocVecEnv`` step one Python env at a time. :class:`SB3VecEnv` instead
hands SB3 the whole Rust batch, stepped in one call with the GIL released::

    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize
    from neorl_industrial.integrations.sb3 import SB3VecEnv

    venv = VecNormalize(VecMonitor(SB3VecEnv.from_id("ChemicalReactor-v0", num_envs=64)))
    model = PPO("MlpPolicy", venv, n_steps=32).learn(50_000)

SB3's ``VecEnv`` contract is met the way ``DummyVecEnv`` meets it: ended envs reset within the step
(Gymnasium's ``SAME_STEP`` autoreset), the ended episode's last observation is in
``infos[i]["terminal_observation"]``, a time-limit end sets ``infos[i]["TimeLimit.truncated"]``, and
each env's info is the dict a single env returns for that step (``cost``, ``constraints``,
``margins``, ``violations``, ``action``, ``clipped``, ``shield`` and, on an emergency shutdown,
``shutdown_reason``). The info of the reset that follows an episode end is in ``reset_infos[i]``.

There are no sub-envs: ``get_attr``, ``set_attr``, ``env_method`` and ``env_is_wrapped`` act on the
one vector env (and the Gymnasium vector wrappers around it, if any) and repeat its answer for every
index requested.

Needs the ``sb3`` extra: ``pip install 'neorl-industrial[sb3]'``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from neorl_industrial.exceptions import ConfigError, ResetNeededError
from neorl_industrial.vector import VectorIndustrialEnv

try:
    from stable_baselines3.common.vec_env import VecEnv
    from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError(
        "neorl_industrial.integrations.sb3 needs stable-baselines3: pip install 'neorl-industrial[sb3]'"
    ) from e

__all__ = ["SB3VecEnv", "split_info"]

_FINAL_KEYS = frozenset({"final_obs", "_final_obs", "final_info", "_final_info"})

# No actions waiting for step_wait (None is an action like any other, refused by the env itself).
_NOTHING = object()


def split_info(info: Mapping[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Splits a batched Gymnasium info (arrays with ``_key`` masks) into one dict per env.

    An entry whose mask is false for an env is left out of that env's dict; numeric columns become
    Python scalars and 2-D columns one row array per env, as a single env reports them.

    Args:
        info: A vector env's info dict.
        num_envs: Batch size.

    Returns:
        ``num_envs`` dicts.
    """
    out: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in info.items():
        if key.startswith("_") and key[1:] in info:
            continue  # a mask
        mask = info.get(f"_{key}")
        envs = range(num_envs) if mask is None else np.flatnonzero(mask).tolist()
        if isinstance(value, Mapping):
            parts = split_info(value, num_envs)
            for i in envs:
                out[i][key] = parts[i]
        elif isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == num_envs:
            rows: Any = value.tolist() if value.ndim == 1 else value.copy()
            for i in envs:
                out[i][key] = rows[i]
        else:
            for i in envs:
                out[i][key] = value
    return out


def _float32_box(space: Any, what: str) -> spaces.Box:
    if not isinstance(space, spaces.Box):
        raise ConfigError(f"SB3VecEnv: the {what} space must be a Box, got {type(space).__name__}")
    if space.dtype == np.float32:
        return space
    return spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32)


class SB3VecEnv(VecEnv):
    """A Stable-Baselines3 ``VecEnv`` over one neorl_industrial vector env (one Rust batch).

    Works under SB3's ``VecMonitor``, ``VecNormalize`` and its other ``VecEnvWrapper`` classes.

    Args:
        vector_env: A vector env from :func:`neorl_industrial.make_vec` (or ``gymnasium.make_vec``)
            built with ``autoreset_mode="same_step"``, possibly inside Gymnasium vector wrappers.
            Use :meth:`from_id` to build one.
        render_mode: ``None`` or ``"rgb_array"``: :meth:`get_images` then returns each env's trend
            plot of its current episode (the single envs' ``rgb_array`` rendering; needs matplotlib).

    Raises:
        ConfigError: ``vector_env`` is not a neorl_industrial vector env, does not autoreset within
            the step, is closed, or has non-Box spaces; or ``render_mode`` is unsupported.

    Seeding follows SB3: ``seed(s)`` then ``reset()`` seeds env ``i`` with ``s + i``, the same
    stream as a single env reset with ``seed=s + i`` (so the batch reproduces ``DummyVecEnv``).
    """

    def __init__(self, vector_env: VectorEnv, render_mode: str | None = None) -> None:
        if not isinstance(vector_env, VectorEnv):
            raise ConfigError(
                "SB3VecEnv: needs a neorl_industrial vector env (neorl_industrial.make_vec(..., "
                f"autoreset_mode='same_step')), got {type(vector_env).__name__}; wrap single envs "
                "with stable_baselines3's DummyVecEnv instead"
            )
        core = vector_env.unwrapped
        if not isinstance(core, VectorIndustrialEnv):
            raise ConfigError(
                "SB3VecEnv: needs a neorl_industrial vector env (neorl_industrial.make_vec), got a "
                f"{type(core).__name__}; other vector envs go through stable_baselines3's DummyVecEnv"
            )
        if core.closed:
            raise ConfigError("SB3VecEnv: the vector env is closed")
        mode = vector_env.metadata.get("autoreset_mode", core.autoreset_mode)
        if mode != AutoresetMode.SAME_STEP:
            name = mode.value if isinstance(mode, AutoresetMode) else mode
            raise ConfigError(
                f"SB3VecEnv: needs autoreset_mode='same_step' (SB3 resets ended envs within the step), "
                f"but the vector env uses {name!r}; build it with neorl_industrial.make_vec(..., "
                "autoreset_mode='same_step') or SB3VecEnv.from_id(...)"
            )
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode: must be None or 'rgb_array', got {render_mode!r}")
        #: The Gymnasium vector env as given (wrappers included); it is what steps.
        self.gym_env = vector_env
        self._render_mode = render_mode
        self._actions: Any = _NOTHING
        self._recorders: list[Any] = []
        if render_mode == "rgb_array":
            from neorl_industrial._render import TrendRecorder

            self._recorders = [TrendRecorder(core.core_spec) for _ in range(vector_env.num_envs)]
        super().__init__(
            vector_env.num_envs,
            _float32_box(vector_env.single_observation_space, "observation"),
            _float32_box(vector_env.single_action_space, "action"),
        )

    @classmethod
    def from_id(
        cls, env_id: str, num_envs: int = 1, *, render_mode: str | None = None, **kwargs: Any
    ) -> SB3VecEnv:
        """Builds the vector env (``same_step`` autoreset) and wraps it.

        Args:
            env_id: Catalogue id, e.g. ``"ChemicalReactor-v0"``.
            num_envs: Batch size.
            render_mode: See the class.
            **kwargs: :class:`~neorl_industrial.VectorIndustrialEnv` arguments (``constraints``,
                ``shield``, ``audit_log``, ``num_threads``, env options).
        """
        from neorl_industrial import make_vec

        mode = kwargs.pop("autoreset_mode", AutoresetMode.SAME_STEP)
        # The vector env checks the mode (and every other argument); SB3 needs one of them.
        venv = make_vec(env_id, num_envs=num_envs, autoreset_mode=mode, **kwargs)
        if venv.autoreset_mode != AutoresetMode.SAME_STEP:
            venv.close()
            raise ConfigError(
                f"autoreset_mode: SB3VecEnv needs 'same_step', got {venv.autoreset_mode.value!r}"
            )
        return cls(venv, render_mode=render_mode)

    # ------------------------------------------------------------------ the vector env
    @property
    def vector_env(self) -> VectorIndustrialEnv:
        """The neorl_industrial vector env under any Gymnasium wrappers."""
        return self.gym_env.unwrapped  # type: ignore[return-value]

    @property
    def safety(self) -> Any:
        """The batch's running safety counts (:class:`~neorl_industrial.safety.SafetyStats`)."""
        return self.vector_env.safety

    @property
    def audit_trail(self) -> Any:
        """The batch's audit trail (``None`` unless built with ``audit_log=``)."""
        return self.vector_env.audit_trail

    @property
    def constraint_names(self) -> list[str]:
        return self.vector_env.constraint_names

    @property
    def core_spec(self) -> dict[str, Any]:
        return self.vector_env.core_spec

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> np.ndarray:
        """Resets every env with the seeds from :meth:`seed` (used once) and the options set."""
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        # A list of seeds, one per env (VectorEnv's annotation only names an int).
        obs, info = self.gym_env.reset(seed=seeds, options=self._common_options())  # type: ignore[arg-type]
        self._reset_seeds()
        self._reset_options()
        self._actions = _NOTHING
        obs = np.asarray(obs, dtype=np.float32)
        self.reset_infos = split_info(info, self.num_envs)
        for i, rec in enumerate(self._recorders):
            rec.reset(obs[i], self.reset_infos[i])
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is _NOTHING:
            raise ResetNeededError("SB3VecEnv: step_wait without step_async (or after reset)")
        actions, self._actions = self._actions, _NOTHING
        obs, reward, terminated, truncated, info = self.gym_env.step(actions)
        obs = np.asarray(obs, dtype=np.float32)
        terminated = np.asarray(terminated, dtype=np.bool_)
        truncated = np.asarray(truncated, dtype=np.bool_)
        dones = terminated | truncated
        infos = split_info({k: v for k, v in info.items() if k not in _FINAL_KEYS}, self.num_envs)
        ended = info.get("_final_obs")
        if ended is not None:
            finals = split_info(info["final_info"], self.num_envs)
            for i in np.flatnonzero(ended).tolist():
                # The step's info is the ended episode's; the reset that followed reports on its own.
                self.reset_infos[i] = infos[i]
                infos[i] = finals[i]
                infos[i]["terminal_observation"] = np.asarray(info["final_obs"][i], dtype=np.float32)
        elif dones.any():  # pragma: no cover - guarded by the constructor
            raise ResetNeededError("SB3VecEnv: an env ended without resetting; autoreset must be same_step")
        trunc_only = (truncated & ~terminated).tolist()
        for i, inf in enumerate(infos):
            inf["TimeLimit.truncated"] = trunc_only[i]
        for i, rec in enumerate(self._recorders):
            if dones[i]:
                rec.reset(obs[i], self.reset_infos[i])
            else:
                rec.step(obs[i], infos[i])
        return obs, np.asarray(reward, dtype=np.float32), dones, infos

    def close(self) -> None:
        self.gym_env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        """Each env's trend plot of its current episode (``render_mode="rgb_array"``), else ``None`` each."""
        if self.render_mode != "rgb_array":
            warnings.warn(
                f"SB3VecEnv: the render mode is {self.render_mode!r}; get_images needs 'rgb_array' "
                "(SB3VecEnv(..., render_mode='rgb_array'))",
                stacklevel=2,
            )
            return [None] * self.num_envs
        return [rec.render() for rec in self._recorders]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The vector env's attribute (searched through its Gymnasium wrappers), once per index."""
        if attr_name == "render_mode":
            value = self._render_mode
        else:
            value = getattr(self._owner(attr_name), attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Sets an attribute of the vector env (or of the wrapper that has it; a new one goes on the
        outermost); ``indices`` must select every env, as there is one object."""
        self._whole_batch(indices, "set_attr")
        owner = next((layer for layer in self._layers() if hasattr(layer, attr_name)), self.gym_env)
        setattr(owner, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Calls a method of the vector env once; its result is repeated for each env.

        ``indices`` must select every env: a method of the batch cannot run for some envs only.
        """
        n = self._whole_batch(indices, "env_method")
        result = getattr(self._owner(method_name), method_name)(*method_args, **method_kwargs)
        return [result] * n

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """Whether the vector env sits inside a Gymnasium vector wrapper of ``wrapper_class``.

        Single-env wrappers such as SB3's ``Monitor`` never apply (use ``VecMonitor``).
        """
        wrapped = any(isinstance(layer, wrapper_class) for layer in self._layers())
        return [wrapped for _ in self._get_indices(indices)]

    # ------------------------------------------------------------------ helpers
    def _layers(self) -> Iterator[Any]:
        layer: Any = self.gym_env
        while True:
            yield layer
            inner = getattr(layer, "env", None)
            if inner is None or inner is layer:
                return
            layer = inner

    def _owner(self, name: str) -> Any:
        for layer in self._layers():
            if hasattr(layer, name):
                return layer
        raise AttributeError(f"the {type(self.vector_env).__name__} has no attribute {name!r}")

    def _whole_batch(self, indices: VecEnvIndices, what: str) -> int:
        chosen = list(self._get_indices(indices))
        if sorted(int(i) for i in chosen) != list(range(self.num_envs)):
            raise ConfigError(
                f"{what}: SB3VecEnv has no sub-envs (one Rust batch): indices must select all "
                f"{self.num_envs} envs, got {chosen}"
            )
        return len(chosen)

    def _common_options(self) -> dict[str, Any] | None:
        first = self._options[0]
        if any(o != first for o in self._options[1:]):
            raise ConfigError("set_options: the batch resets together; give every env the same options")
        return dict(first) if first else None
