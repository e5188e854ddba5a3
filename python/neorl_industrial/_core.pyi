"""Typed stubs of the native module ``neorl_industrial._core``."""

from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = ["__version__", "CoreVecEnv", "env_ids"]

__version__: str

def env_ids() -> list[str]: ...

@final
class CoreVecEnv:
    def __new__(
        cls,
        env_id: str,
        num_envs: int = 1,
        autoreset_mode: str = "next_step",
        num_threads: int | None = None,
        config: dict[str, Any] | None = None,
    ) -> CoreVecEnv: ...
    @property
    def num_envs(self) -> int: ...
    @property
    def obs_dim(self) -> int: ...
    @property
    def act_dim(self) -> int: ...
    @property
    def autoreset_mode(self) -> str: ...
    @property
    def constraint_names(self) -> list[str]: ...
    def spec(self) -> dict[str, Any]: ...
    def reset(
        self,
        seeds: list[int | None] | None = None,
        mask: npt.NDArray[np.bool_] | None = None,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]: ...
    def step(
        self, actions: Any
    ) -> tuple[
        npt.NDArray[np.float32],
        npt.NDArray[np.float64],
        npt.NDArray[np.bool_],
        npt.NDArray[np.bool_],
        npt.NDArray[np.bool_],
        npt.NDArray[np.int64],
        npt.NDArray[np.float64],
        npt.NDArray[np.float64],
        npt.NDArray[np.int64],
        npt.NDArray[np.bool_] | None,
        npt.NDArray[np.float32] | None,
        npt.NDArray[np.float64] | None,
    ]: ...
    def reset_single(self, seed: int | None = None) -> tuple[npt.NDArray[np.float32], dict[str, Any]]: ...
    def step_single(
        self, action: Any
    ) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]: ...
    def snapshot(
        self,
    ) -> tuple[
        npt.NDArray[np.float64],
        npt.NDArray[np.uint64],
        npt.NDArray[np.uint32],
        npt.NDArray[np.bool_],
        npt.NDArray[np.bool_],
    ]: ...
    def restore(
        self,
        rows: npt.NDArray[np.float64],
        rngs: npt.NDArray[np.uint64],
        elapsed: npt.NDArray[np.uint32],
        done: npt.NDArray[np.bool_],
        started: npt.NDArray[np.bool_],
    ) -> None: ...
