"""Prometheus metrics in the spirit of ``prometheus_client``, backed by the Rust registry.

Environments record their built-in metrics (``env_steps_total``, ``safety_violations_total``,
``episode_reward`` ...) into :data:`REGISTRY` unless given another :class:`Registry`. Your own
metrics use the familiar API::

    from neorl_industrial.metrics import Counter, Histogram

    requests = Counter("requests_total", "Requests served", ["route"])
    requests.labels("predict").inc()
    with Histogram("load_seconds", "Model load time").time():
        ...

Each family holds at most ``max_label_sets`` label sets (default 1000); further label values fold
into ``other`` and ``metric_label_overflow_total{metric}`` counts them.

A histogram observation may carry an OpenMetrics exemplar, a dict of label name to str value that
ties it to what caused it (the latest exemplar of each bucket is exposed, in OpenMetrics only)::

    from neorl_industrial.logging import run_id

    load.observe(0.42, exemplar={"run_id": run_id(), "episode_id": "3-7"})
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ContextDecorator
from typing import Any, TypeVar

import numpy as np

from . import _core

__all__ = [
    "CONTENT_TYPE_LATEST",
    "CONTENT_TYPE_OPENMETRICS",
    "REGISTRY",
    "Counter",
    "Gauge",
    "Histogram",
    "MonitoredPolicy",
    "PrometheusClientCollector",
    "Registry",
    "generate_latest",
    "record_emergency_shutdown",
    "record_human_intervention",
    "record_safety_violation",
    "time_inference",
]

CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

F = TypeVar("F", bound=Callable[..., Any])
Exemplar = dict[str, str]
"""An exemplar's labels: names as for metric labels, str values, at most 128 characters in all."""
_Families = TypeVar("_Families")


class Registry:
    """A metrics registry: the built-in families, your metrics, process metrics and health state.

    Args:
        max_label_sets: Most label sets per metric family; further ones fold into ``other``.

    Use :data:`REGISTRY` (the process-wide one) unless you need isolation, e.g. in tests or to
    serve two unrelated sets of metrics from one process.
    """

    def __init__(
        self, max_label_sets: int = 1000, *, _core_registry: _core.MetricsRegistry | None = None
    ) -> None:
        self._core = _core_registry if _core_registry is not None else _core.MetricsRegistry(max_label_sets)

    @property
    def core(self) -> _core.MetricsRegistry:
        """The native registry (what ``VectorIndustrialEnv`` and the exporter take)."""
        return self._core

    @property
    def max_label_sets(self) -> int:
        """Most label sets per family."""
        return self._core.max_label_sets

    def generate_latest(self, openmetrics: bool = False) -> bytes:
        """The exposition text: Prometheus text 0.0.4, or OpenMetrics 1.0 if ``openmetrics``."""
        return self._core.encode(openmetrics)

    def names(self) -> list[str]:
        """Names of the registered families (counters without ``_total``)."""
        return list(self._core.names())

    def unregister(self, metric: MetricWrapper | str) -> bool:
        """Removes a family you registered; returns True if it was there (built-ins stay)."""
        name = metric if isinstance(metric, str) else metric._name
        return self._core.unregister(name)

    def set_model_loaded(self, loaded: bool = True) -> None:
        """Marks a policy as loaded for the ``model_loaded`` health check (env batches count too)."""
        self._core.set_model_loaded(loaded)

    def set_model_loading(self, what: str) -> None:
        """A service is loading ``what``: the ``model_loaded`` check fails (``/health/ready`` answers
        503) until :meth:`set_model`."""
        self._core.set_model_loading(what)

    def set_model(self, name: str, version: str, framework: str, sha256: str = "") -> None:
        """The served model is loaded and answered a probe: the ``model_loaded`` check passes and
        shows these fields."""
        self._core.set_model(name, version, framework, sha256)

    def set_safety_status(self, active: bool = True, shutdown: bool = False) -> None:
        """Process-wide safety state for the ``safety_system`` health check."""
        self._core.set_safety_status(active, shutdown)

    def count_error(self, component: str, kind: str, n: int = 1) -> None:
        """Counts ``n`` errors in ``errors_total{component, kind}`` (the built-in kinds are listed
        in docs/metrics.md; others are new series, bounded like every family's)."""
        self._core.count_error(component, kind, n)

    def set_queue_depth(self, queue: str, depth: int, capacity: int = 0) -> None:
        """Sets ``queue_depth{queue}`` and ``queue_capacity{queue}`` (0: unbounded) for one of
        ``audit``, ``log``, ``exporter_connections``, ``fleet_tasks``."""
        self._core.set_queue_depth(queue, depth, capacity)

    def health(self, memory_limit_bytes: int | None = None) -> dict[str, Any]:
        """The ``/health/detailed`` report as a dict (``status`` is ``pass``, ``warn`` or ``fail``)."""
        import json

        return dict(json.loads(self._core.health_report(memory_limit_bytes)))

    def __repr__(self) -> str:
        return f"Registry(max_label_sets={self.max_label_sets})"


REGISTRY = Registry(_core_registry=_core.MetricsRegistry.default_registry())

_SHARED: weakref.WeakKeyDictionary[Registry, dict[type, Any]] = weakref.WeakKeyDictionary()


def shared_families(kind: type[_Families], registry: Registry) -> _Families:
    """One ``kind(registry)`` per registry: the families a module registers once and every user of
    that registry shares (registering a name twice is an error)."""
    made = _SHARED.setdefault(registry, {})
    if kind not in made:
        made[kind] = kind(registry)  # type: ignore[call-arg]
    return made[kind]  # type: ignore[no-any-return]


"""The process-wide registry: environments record here unless given another."""


def _core_of(registry: Registry | None) -> _core.MetricsRegistry:
    return (registry or REGISTRY)._core


def generate_latest(registry: Registry | None = None, openmetrics: bool = False) -> bytes:
    """The exposition text of ``registry`` (default :data:`REGISTRY`)."""
    return _core_of(registry).encode(openmetrics)


def _full_name(name: str, namespace: str, subsystem: str, unit: str) -> str:
    full = "_".join(p for p in (namespace, subsystem, name) if p)
    if unit and not full.endswith("_" + unit):
        full += "_" + unit
    return full


class _Timer(ContextDecorator):
    """Times a block or function into ``observe`` (new state per use, so it nests and threads)."""

    def __init__(self, observe: Callable[[float], None]) -> None:
        self._observe = observe
        self._starts: list[float] = []

    def _recreate_cm(self) -> _Timer:
        return _Timer(self._observe)

    def __enter__(self) -> _Timer:
        self._starts.append(time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        self._observe(time.perf_counter() - self._starts.pop())


class _CounterChild:
    __slots__ = ("inc", "_core")

    def __init__(self, core: _core.CounterChild) -> None:
        self._core = core
        self.inc = core.inc

    def get(self) -> float:
        return self._core.get()


class _GaugeChild:
    __slots__ = ("inc", "dec", "set", "_core")

    def __init__(self, core: _core.GaugeChild) -> None:
        self._core = core
        self.inc = core.inc
        self.dec = core.dec
        self.set = core.set

    def get(self) -> float:
        return self._core.get()

    def set_to_current_time(self) -> None:
        self._core.set(time.time())

    def time(self) -> _Timer:
        """Sets the gauge to the duration of the block or call."""
        return _Timer(self._core.set)

    def track_inprogress(self) -> _InProgress:
        """Counts blocks or calls in progress."""
        return _InProgress(self._core)


class _InProgress(ContextDecorator):
    def __init__(self, gauge: _core.GaugeChild) -> None:
        self._gauge = gauge

    def __enter__(self) -> _InProgress:
        self._gauge.inc()
        return self

    def __exit__(self, *exc: object) -> None:
        self._gauge.dec()


class _HistogramChild:
    __slots__ = ("observe", "_core")

    def __init__(self, core: _core.HistogramChild) -> None:
        self._core = core
        self.observe = core.observe

    def observe_many(self, values: Any) -> None:
        """Records every value of a 1-D array in one call."""
        self._core.observe_many(np.ascontiguousarray(values, dtype=np.float64).reshape(-1))

    def time(self) -> _Timer:
        """Observes the duration of the block or call, in seconds."""
        return _Timer(self._core.observe)


class MetricWrapper:
    """Common part of :class:`Counter`, :class:`Gauge` and :class:`Histogram`."""

    _kind = ""
    _child_type: type = object

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
        *,
        buckets: Sequence[float] = (),
    ) -> None:
        self._labelnames = tuple(labelnames)
        target = registry if registry is not None else Registry()
        self._registry = target
        self._family = target._core.register(
            self._kind,
            _full_name(name, namespace, subsystem, unit),
            documentation,
            list(self._labelnames),
            list(buckets),
        )
        self._name = self._family.name
        self._children: dict[tuple[str, ...], Any] = {}
        if not self._labelnames:
            self._bind(self._child(()))

    def _bind(self, child: Any) -> None:
        """Unlabelled metrics forward their methods to their one series."""

    def _child(self, values: tuple[str, ...]) -> Any:
        child = self._children.get(values)
        if child is None:
            core, folded = self._family.labels(list(values))
            child = self._child_type(core)
            # Folded label sets share the 'other' series; caching them would grow without bound.
            if not folded:
                self._children[values] = child
        return child

    def labels(self, *labelvalues: Any, **labelkwargs: Any) -> Any:
        """The series for these label values (positional, or by name)."""
        if not self._labelnames:
            raise _core_error(f"{self._name}: metric has no labels")
        if labelvalues and labelkwargs:
            raise _core_error(f"{self._name}: pass label values by position or by name, not both")
        if labelkwargs:
            if set(labelkwargs) != set(self._labelnames):
                raise _core_error(
                    f"{self._name}: expected labels {self._labelnames}, got {tuple(labelkwargs)}"
                )
            labelvalues = tuple(labelkwargs[n] for n in self._labelnames)
        if len(labelvalues) != len(self._labelnames):
            raise _core_error(
                f"{self._name}: expected {len(self._labelnames)} label values {self._labelnames}, got {len(labelvalues)}"
            )
        return self._child(tuple(str(v) for v in labelvalues))

    def remove(self, *labelvalues: Any) -> None:
        """Drops the series for these label values (as ``prometheus_client``'s ``remove``); no error
        if there is none."""
        if len(labelvalues) != len(self._labelnames) or not self._labelnames:
            raise _core_error(
                f"{self._name}: expected {len(self._labelnames)} label values {self._labelnames}, got {len(labelvalues)}"
            )
        values = tuple(str(v) for v in labelvalues)
        self._family.remove(list(values))
        self._children.pop(values, None)

    def _missing(self, *args: Any, **kwargs: Any) -> Any:
        raise _core_error(f"{self._name}: metric has labels {self._labelnames}: call .labels(...) first")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, labels={self._labelnames})"


def _core_error(message: str) -> Exception:
    from .exceptions import MetricError

    return MetricError(message)


class Counter(MetricWrapper):
    """A monotonic counter (exposed with a ``_total`` suffix, which the name may include)."""

    _kind = "counter"
    _child_type = _CounterChild

    def _bind(self, child: _CounterChild) -> None:
        self.inc = child.inc  # type: ignore[method-assign]
        self._one = child

    def inc(self, amount: float = 1.0) -> None:
        """Adds ``amount`` (non-negative)."""
        self._missing()

    def get(self) -> float:
        """The current value (unlabelled counters)."""
        if self._labelnames:
            self._missing()
        return float(self._one.get())


class Gauge(MetricWrapper):
    """A value that goes up and down."""

    _kind = "gauge"
    _child_type = _GaugeChild

    def _bind(self, child: _GaugeChild) -> None:
        self.inc = child.inc  # type: ignore[method-assign]
        self.dec = child.dec  # type: ignore[method-assign]
        self.set = child.set  # type: ignore[method-assign]
        self._one = child

    def inc(self, amount: float = 1.0) -> None:
        """Adds ``amount``."""
        self._missing()

    def dec(self, amount: float = 1.0) -> None:
        """Subtracts ``amount``."""
        self._missing()

    def set(self, value: float) -> None:
        """Sets the value."""
        self._missing()

    def get(self) -> float:
        """The current value (unlabelled gauges)."""
        if self._labelnames:
            self._missing()
        return float(self._one.get())

    def set_to_current_time(self) -> None:
        """Sets the gauge to the current unix time."""
        self.set(time.time())

    def time(self) -> _Timer:
        """Sets the gauge to the duration of the block or call."""
        if self._labelnames:
            self._missing()
        return self._one.time()

    def track_inprogress(self) -> _InProgress:
        """Counts blocks or calls in progress."""
        if self._labelnames:
            self._missing()
        return self._one.track_inprogress()


class Histogram(MetricWrapper):
    """Observations counted in cumulative buckets (default: prometheus_client's default buckets)."""

    _kind = "histogram"
    _child_type = _HistogramChild
    DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        super().__init__(
            name, documentation, labelnames, namespace, subsystem, unit, registry, buckets=buckets
        )

    def _bind(self, child: _HistogramChild) -> None:
        self.observe = child.observe  # type: ignore[method-assign,assignment]
        self._one = child

    def observe(self, amount: float, exemplar: Exemplar | None = None) -> None:
        """Records one observation; with ``exemplar`` (e.g. ``{"run_id": run_id()}``) it becomes
        its bucket's exemplar in OpenMetrics output.

        Raises:
            MetricError: The exemplar is not a dict of str to str, a label name is invalid, or
                names and values come to more than 128 characters.
        """
        self._missing()

    def observe_many(self, values: Any) -> None:
        """Records every value of a 1-D array in one call."""
        if self._labelnames:
            self._missing()
        self._one.observe_many(values)

    def time(self) -> _Timer:
        """Observes the duration of the block or call, in seconds."""
        if self._labelnames:
            self._missing()
        return self._one.time()


class time_inference(ContextDecorator):  # noqa: N801 - reads like prometheus_client's helpers
    """Records ``inference_latency_seconds`` and ``actions_computed_total`` around a block or call.

    Args:
        actions: Actions computed per block or call (e.g. the batch size).
        registry: Where to record (default :data:`REGISTRY`).
        exemplar: The latency's exemplar: a dict of labels, or a function called after each block
            or call that returns one (or None).

    Example::

        with time_inference():
            action = policy(obs)

        @time_inference(actions=1024, exemplar=lambda: {"run_id": run_id()})
        def act(batch): ...
    """

    def __init__(
        self,
        actions: int = 1,
        registry: Registry | None = None,
        exemplar: Exemplar | Callable[[], Exemplar | None] | None = None,
    ) -> None:
        if int(actions) < 0:
            raise _core_error(f"actions: must be non-negative, got {actions}")
        self._actions = int(actions)
        self._registry = registry
        self._core = _core_of(registry)
        self._exemplar = exemplar
        self._start = 0.0

    def _recreate_cm(self) -> time_inference:
        return time_inference(self._actions, self._registry, self._exemplar)

    def __enter__(self) -> time_inference:
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # A failed inference computed no action; its latency still counts.
        self._core.record_inference(
            time.perf_counter() - self._start, 0 if exc_type else self._actions, _exemplar_of(self._exemplar)
        )


def _exemplar_of(exemplar: Exemplar | Callable[[], Exemplar | None] | None) -> Exemplar | None:
    """The labels of an exemplar given as labels or as a function returning them."""
    return exemplar() if callable(exemplar) else exemplar


class MonitoredPolicy:
    """Wraps any callable policy to record ``inference_latency_seconds`` and ``actions_computed_total``.

    Args:
        policy: ``policy(obs, *args, **kwargs) -> action``.
        registry: Where to record (default :data:`REGISTRY`).
        actions_per_call: Actions counted per call; by default the leading dimension of a 2-D (or
            higher) result (a batch of actions), else 1.
        safety_checker: A :class:`neorl_industrial.safety.SafetyChecker` for :meth:`check_safety`.
        exemplar: Each call's latency exemplar: a dict of labels, or a function called after each
            call that returns one (or None), e.g. ``lambda: {"run_id": run_id()}``.

    Wrapping marks the registry's model as loaded (the ``model_loaded`` health check).
    """

    def __init__(
        self,
        policy: Callable[..., Any],
        registry: Registry | None = None,
        actions_per_call: int | None = None,
        safety_checker: Any = None,
        exemplar: Exemplar | Callable[[], Exemplar | None] | None = None,
    ) -> None:
        if not callable(policy):
            raise TypeError(f"policy must be callable, got {type(policy).__name__}")
        self.policy = policy
        self.safety_checker = safety_checker
        self.exemplar = exemplar
        self._registry = registry
        self._core = _core_of(registry)
        self._per_call = actions_per_call
        self._core.set_model_loaded(True)
        functools.update_wrapper(self, policy, updated=())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = self.policy(*args, **kwargs)
        elapsed = time.perf_counter() - start
        self._core.record_inference(elapsed, self._count(result), _exemplar_of(self.exemplar))
        return result

    def check_safety(self, state: Any, action: Any = None) -> bool:
        """Checks ``state`` (and ``action``) with the policy's ``safety_checker``, counting each alarm
        raised in ``safety_violations_total{constraint_type,severity}`` of the policy's registry and
        logging it on ``neorl_industrial.safety`` as the envs do.

        Returns:
            True if no constraint is violated (nothing beyond its limit, no alarm active).

        Raises:
            ConfigError: The policy was wrapped without a ``safety_checker``.
        """
        if self.safety_checker is None:
            from .exceptions import ConfigError

            raise ConfigError("check_safety: wrap the policy with safety_checker=SafetyChecker(...)")
        violations = self.safety_checker.check(state, action, record=True, registry=self._registry)
        return len(violations) == 0

    def _count(self, result: Any) -> int:
        if self._per_call is not None:
            return self._per_call
        shape = getattr(result, "shape", None)
        if shape is not None and len(shape) >= 2:
            return int(shape[0])
        return 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)


def record_safety_violation(
    constraint_type: str,
    severity: str,
    *,
    constraint: str = "",
    current_value: float = float("nan"),
    limit: float = float("nan"),
    env: str = "",
    violation_id: str = "",
    registry: Registry | None = None,
) -> str:
    """Counts a violation in ``safety_violations_total{constraint_type,severity}``, stamps
    ``last_safety_violation_timestamp_seconds`` and logs it (rate-limited) on
    ``neorl_industrial.safety``. Returns the violation id (generated unless given)."""
    return _core_of(registry).record_safety_violation(
        constraint_type, severity, constraint, float(current_value), float(limit), env, violation_id
    )


def record_emergency_shutdown(reason: str, *, env: str = "", registry: Registry | None = None) -> None:
    """Counts ``emergency_shutdowns_total{reason}`` and logs the shutdown."""
    _core_of(registry).record_emergency_shutdown(reason, env)


def record_human_intervention(reason: str, *, registry: Registry | None = None) -> None:
    """Counts ``human_interventions_total{reason}`` and logs the intervention."""
    _core_of(registry).record_human_intervention(reason)


class PrometheusClientCollector:
    """Exposes one of our registries inside a ``prometheus_client`` registry (a custom collector).

    For programs that already serve ``prometheus_client``'s registry::

        import prometheus_client
        prometheus_client.REGISTRY.register(PrometheusClientCollector())

    The ``process_*`` families are left out by default: ``prometheus_client`` has its own.
    """

    def __init__(self, registry: Registry | None = None, include_process: bool = False) -> None:
        self._core = _core_of(registry)
        self._scope = "all" if include_process else "no_process"

    def describe(self) -> list[Any]:
        # Nothing to check at registration: our names are checked by our own registry.
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.parser import text_string_to_metric_families

        yield from text_string_to_metric_families(self._core.encode(False, self._scope).decode())
