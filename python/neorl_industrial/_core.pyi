"""Typed stubs of the native module ``neorl_industrial._core``."""

from collections.abc import Sequence
from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "__version__",
    "AuditTrail",
    "CoreMonitor",
    "EVENT_KINDS",
    "MAX_ENVS",
    "MAX_THREADS",
    "CoreExporter",
    "CoreFamily",
    "CoreVecEnv",
    "CounterChild",
    "EnvMetricsHandle",
    "GaugeChild",
    "HistogramChild",
    "MetricsRegistry",
    "SafetyTotals",
    "SingleEnv",
    "env_ids",
    "flush_suppressed_logs",
    "pump_exporter_logs",
    "push_to_gateway",
    "set_log_rate_limit",
    "wake_exporter_log_pump",
]

__version__: str
EVENT_KINDS: list[str]
MAX_ENVS: int
MAX_THREADS: int

def env_ids() -> list[str]: ...

_Events = dict[str, npt.NDArray[Any]]

@final
class AuditTrail:
    def __new__(cls, path: str, capacity: int = 4096) -> AuditTrail: ...
    @property
    def path(self) -> str: ...
    @property
    def dropped(self) -> int: ...
    @property
    def written(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...
    def record(self, event: str, level: str = "info", fields_json: str = "") -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...

@final
class CoreMonitor:
    def __new__(
        cls, constraints: Any, signals: list[str], num_systems: int = 1, dt: float = 1.0
    ) -> CoreMonitor: ...
    @property
    def signals(self) -> list[str]: ...
    @property
    def constraints(self) -> list[tuple[str, str, str, str, float]]: ...
    def check(
        self, values: npt.NDArray[np.float64], wall: float
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_], _Events]: ...
    def reset(self) -> None: ...

@final
class CoreVecEnv:
    def __new__(
        cls,
        env_id: str,
        num_envs: int,
        autoreset_mode: str,
        num_threads: int | None = None,
        config: dict[str, Any] | None = None,
        constraints: Any = None,
        shield: str | None = None,
        audit: AuditTrail | None = None,
        registry: MetricsRegistry | None = None,
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
    @property
    def shield(self) -> str: ...
    def reset(
        self,
        seeds: list[int | None] | None = None,
        mask: npt.NDArray[np.bool_] | None = None,
    ) -> tuple[
        npt.NDArray[np.float32],
        npt.NDArray[np.float64],
        npt.NDArray[np.float64],
        npt.NDArray[np.bool_],
        _Events,
    ]: ...
    def reset_info(
        self,
        seeds: int | Sequence[int | None] | npt.NDArray[np.integer[Any]] | None = None,
        mask: npt.NDArray[np.bool_] | None = None,
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]: ...
    def step(self, actions: Any) -> dict[str, Any]: ...
    def step_info(
        self, actions: Any
    ) -> tuple[
        npt.NDArray[np.float32],
        npt.NDArray[np.float64],
        npt.NDArray[np.bool_],
        npt.NDArray[np.bool_],
        dict[str, Any],
    ]: ...
    def totals(self) -> SafetyTotals: ...
    def single(self) -> SingleEnv: ...
    def snapshot(
        self,
    ) -> tuple[
        npt.NDArray[np.float64],
        npt.NDArray[np.uint64],
        npt.NDArray[np.uint32],
        npt.NDArray[np.bool_],
        npt.NDArray[np.bool_],
        npt.NDArray[np.float64],
        npt.NDArray[np.uint64],
        npt.NDArray[np.uint64],
        npt.NDArray[np.float64],
    ]: ...
    def restore(
        self,
        rows: npt.NDArray[np.float64],
        rngs: npt.NDArray[np.uint64],
        elapsed: npt.NDArray[np.uint32],
        done: npt.NDArray[np.bool_],
        started: npt.NDArray[np.bool_],
        returns: npt.NDArray[np.float64],
        episodes: npt.NDArray[np.uint64],
        alarm_ints: npt.NDArray[np.uint64],
        alarm_reals: npt.NDArray[np.float64],
    ) -> None: ...

@final
class SafetyTotals:
    @property
    def steps(self) -> int: ...
    @property
    def cost(self) -> float: ...
    @property
    def events(self) -> int: ...
    @property
    def shield_interventions(self) -> int: ...
    @property
    def opened(self) -> list[int]: ...
    @property
    def shutdowns(self) -> list[int]: ...
    @property
    def in_violation(self) -> list[int]: ...
    @property
    def keep(self) -> int: ...
    @keep.setter
    def keep(self, keep: int) -> None: ...
    def closed(self) -> _Events: ...

@final
class SingleEnv:
    def reset(self, seed: int | None = None) -> tuple[npt.NDArray[np.float32], dict[str, Any]]: ...
    def step(self, action: Any) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]: ...

@final
class MetricsRegistry:
    def __new__(cls, max_label_sets: int = 1000) -> MetricsRegistry: ...
    @staticmethod
    def default_registry() -> MetricsRegistry: ...
    @property
    def max_label_sets(self) -> int: ...
    def same_as(self, other: MetricsRegistry) -> bool: ...
    def encode(self, openmetrics: bool = False, scope: str = "all") -> bytes: ...
    def register(
        self, kind: str, name: str, documentation: str, labelnames: list[str], buckets: list[float] = ...
    ) -> CoreFamily: ...
    def unregister(self, name: str) -> bool: ...
    def names(self) -> list[str]: ...
    def set_model_loaded(self, loaded: bool) -> None: ...
    def set_safety_status(self, active: bool = True, shutdown: bool = False) -> None: ...
    def set_check(self, name: str, status: str, output: str, ttl_seconds: float) -> None: ...
    def remove_check(self, name: str) -> bool: ...
    def health_report(self, memory_limit_bytes: int | None = None) -> str: ...
    def record_inference(self, seconds: float, actions: int = 1) -> None: ...
    def record_safety_violation(
        self,
        constraint_type: str,
        severity: str,
        constraint: str = "",
        current_value: float = ...,
        limit: float = ...,
        env: str = "",
        violation_id: str = "",
    ) -> str: ...
    def record_emergency_shutdown(self, reason: str, env: str = "") -> None: ...
    def record_human_intervention(self, reason: str) -> None: ...
    def record_audit_dropped(self, n: int) -> None: ...
    def env_metrics(
        self, env_id: str, constraint_types: list[str], severities: list[str], constraint_names: list[str]
    ) -> EnvMetricsHandle: ...

@final
class CoreFamily:
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def labelnames(self) -> list[str]: ...
    def labels(self, values: list[str]) -> tuple[Any, bool]: ...

@final
class CounterChild:
    def inc(self, amount: float = 1.0) -> None: ...
    def get(self) -> float: ...

@final
class GaugeChild:
    def inc(self, amount: float = 1.0) -> None: ...
    def dec(self, amount: float = 1.0) -> None: ...
    def set(self, value: float) -> None: ...
    def get(self) -> float: ...

@final
class HistogramChild:
    def observe(self, value: float) -> None: ...

@final
class EnvMetricsHandle:
    def record_batch(
        self,
        env_steps: int,
        episode_returns: list[float],
        step_seconds: float,
        violations: list[int],
        shutdowns: list[int],
        shield_interventions: int = 0,
        response_seconds: list[float] = ...,
    ) -> None: ...
    def set_active(self, n: int) -> None: ...
    def set_safety_state(self, state: str) -> None: ...
    def log_violation(self, k: int, env_index: int, current_value: float, limit: float) -> str: ...

@final
class CoreExporter:
    def __new__(
        cls,
        registry: MetricsRegistry,
        port: int = 8000,
        addr: str = "127.0.0.1",
        safety_port: int | None = None,
        web_config_file: str | None = None,
        max_connections: int | None = None,
        header_timeout: float = 10.0,
        connection_timeout: float = 60.0,
        memory_limit_bytes: int | None = None,
    ) -> CoreExporter: ...
    @property
    def port(self) -> int: ...
    @property
    def safety_port(self) -> int | None: ...
    @property
    def url(self) -> str: ...
    @property
    def running(self) -> bool: ...
    def stop(self) -> None: ...

def push_to_gateway(
    url: str,
    job: str,
    registry: MetricsRegistry,
    grouping_key: list[tuple[str, str]] = ...,
    method: str = "PUT",
    timeout: float = 10.0,
) -> None: ...
def flush_suppressed_logs() -> None: ...
def set_log_rate_limit(window_seconds: float, burst: int) -> None: ...
def pump_exporter_logs(timeout: float) -> int: ...
def wake_exporter_log_pump() -> None: ...
