"""The safety layer from Python: constraint configuration, the audit trail, a standalone checker,
safety-gymnasium's 6-tuple, and safety-aware evaluation.

Constraints are checked in Rust on every step of every env. Their configuration:

* ``None``: the environment's declared defaults.
* a mapping merged over the defaults: ``{"temperature_high": {"limit": 325.0}}`` overrides fields,
  ``{"coolant_ramp": None}`` drops a constraint, a new name with a full entry adds one, and
  ``{"defaults": False, ...}`` starts from an empty set;
* a list of full entries (each with a ``name``) replacing the defaults;
* a path to a YAML or TOML file holding either form (under a top-level ``constraints`` key or not).

An entry's fields: ``signal``, ``kind`` (``upper``, ``lower``, ``band``, ``abs``, ``rate``,
``linear``), ``limit`` (``low``/``high`` for a band; ``terms`` {signal: coefficient} and ``b`` for
``linear``: sum(a_i x_i) <= b), ``type`` (the ``constraint_type`` metric label), ``severity``
(``info``, ``warning``, ``critical``: an active critical constraint shuts the env down), ``weight``,
``scale``, ``penalty``, ``deadband`` and ``on_delay`` (ISA-18.2: the value must stay beyond the limit
for more than ``on_delay`` steps to activate the alarm, and come back inside by ``deadband`` to clear).

Cost: ``info["cost"] = sum over active alarms of weight * max(0, -margin) / scale``, where the margin
is the distance to the limit (negative beyond it) and ``scale`` defaults to ``|limit|`` (the band's
width for a band; 1 for a zero limit): the weighted relative exceedance. ``penalty`` is subtracted
from the reward on every step a constraint's alarm is active.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from . import _core
from ._config_file import read_config_file
from .exceptions import ConfigError
from .logging import canonical_fields
from .metrics import _core_of

__all__ = [
    "AuditTrail",
    "SafetyChecker",
    "SafetyCostWrapper",
    "SafetyStats",
    "Violation",
    "evaluate_with_safety",
    "load_constraints",
    "open_audit_trail",
]


# --------------------------------------------------------------------------- configuration
def load_constraints(source: Any) -> Any:
    """Returns a constraint configuration from a dict, a list, ``None`` or a YAML/TOML file path."""
    if source is None or isinstance(source, (Mapping, list, tuple)):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(
            f"constraints: must be a mapping, a list or a file path, got {type(source).__name__}"
        )
    path = Path(source)
    data = read_config_file(path, "constraints", (".toml", ".yaml", ".yml"))
    if not isinstance(data, (Mapping, list)):
        raise ConfigError(f"constraints: {path} must hold a mapping or a list, got {type(data).__name__}")
    return data


# --------------------------------------------------------------------------- audit trail
class AuditTrail:
    """A JSON Lines audit trail: one safety event per line, written by a background thread.

    Lines carry structlog's field names (``event``, ``level``, ``timestamp`` in ISO 8601, ``logger``),
    the ``run_id`` of the log lines, then the incident's fields, named as in the log lines
    (docs/telemetry.md). Stepping never waits on disk; if the bounded queue ever overflows
    or the disk fails, the loss is counted in :attr:`dropped` (and reported), never silent.

    Args:
        path: File appended to (created if missing).
        capacity: Queue length in batches of events.
    """

    def __init__(self, path: str | os.PathLike[str], capacity: int = 4096) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ConfigError(f"audit_capacity: must be a positive integer, got {capacity!r}")
        self._inner = _core.AuditTrail(os.fspath(path), capacity)

    @property
    def path(self) -> Path:
        return Path(self._inner.path)

    @property
    def dropped(self) -> int:
        """Events lost so far (full queue, write errors, or events after :meth:`close`)."""
        return int(self._inner.dropped)

    @property
    def written(self) -> int:
        return int(self._inner.written)

    @property
    def last_error(self) -> str | None:
        return self._inner.last_error

    def record(self, event: str, level: str = "info", **fields: Any) -> None:
        """Queues a free-form event (e.g. ``run_start``) with JSON-serialisable fields.

        The line starts with ``event``, ``level``, ``timestamp``, ``logger`` and ``run_id``, which
        are not fields to give; aliases of schema fields are renamed (``max_allowed`` to ``limit``,
        see :data:`neorl_industrial.logging.FIELD_ALIASES`).

        Raises:
            ConfigError: A field is named ``timestamp``, ``logger`` or ``run_id``.
        """
        reserved = sorted(set(fields) & _HEAD_FIELDS)
        if reserved:
            raise ConfigError(f"record: {reserved} are written by the trail itself, not given as fields")
        members = json.dumps(canonical_fields(fields), default=str)[1:-1]
        self._inner.record(event, level, members)

    def flush(self) -> None:
        """Blocks until every queued event is written."""
        self._inner.flush()

    def close(self) -> None:
        """Flushes and stops the writer; later events count as dropped."""
        self._inner.close()

    def __enter__(self) -> AuditTrail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_HEAD_FIELDS = frozenset({"timestamp", "logger", "run_id"})


def open_audit_trail(audit_log: Any) -> Any:
    """The native trail for ``audit_log`` (a path, an :class:`AuditTrail`, or ``None``)."""
    if audit_log is None:
        return None
    if isinstance(audit_log, AuditTrail):
        return audit_log._inner
    if isinstance(audit_log, (str, os.PathLike)):
        return AuditTrail(audit_log)._inner
    raise ConfigError(f"audit_log: must be a path or an AuditTrail, got {type(audit_log).__name__}")


# --------------------------------------------------------------------------- statistics
@dataclass
class Incident:
    """A closed incident, as the audit trail records it."""

    incident_id: str
    env_index: int
    episode: int
    constraint: str
    severity: str
    first_value: float
    peak_value: float
    start_step: int
    end_step: int
    response: str
    response_time_seconds: float | None


EVENT_KINDS: tuple[str, ...] = tuple(_core.EVENT_KINDS)
_RESPONSES = ("none", "shield", "shutdown")


class SafetyStats:
    """Running safety counts of a vector env (``env.safety``), kept by the core as it steps (no
    per-step work in Python) and readable from any thread, also while the env steps.

    Attributes:
        steps: Transitions taken (autoreset steps not counted).
        cost: Sum of the cost signal.
        events: Safety events seen (what the audit trail receives).
        violations: Alarms raised (incidents opened), by constraint name.
        shutdowns: Emergency shutdowns, by constraint name.
        shield_interventions: Actions the shield changed.
        steps_in_violation: Steps ending with the alarm active, by constraint name.
        alarm_free_steps: Steps ending with no alarm active.
        incidents: The most recent closed incidents (up to ``keep_incidents``), oldest first.
    """

    def __init__(self, constraints: list[dict[str, Any]], totals: Any, keep_incidents: int = 1000) -> None:
        self.constraints = constraints
        self.names = [c["name"] for c in constraints]
        self.severity = {c["name"]: c["severity"] for c in constraints}
        self._totals = totals
        self.keep_incidents = keep_incidents

    @property
    def steps(self) -> int:
        return int(self._totals.steps)

    @property
    def cost(self) -> float:
        return float(self._totals.cost)

    @property
    def events(self) -> int:
        return int(self._totals.events)

    @property
    def shield_interventions(self) -> int:
        return int(self._totals.shield_interventions)

    @property
    def violations(self) -> dict[str, int]:
        return dict(zip(self.names, self._totals.opened, strict=True))

    @property
    def shutdowns(self) -> dict[str, int]:
        return dict(zip(self.names, self._totals.shutdowns, strict=True))

    @property
    def steps_in_violation(self) -> dict[str, int]:
        return dict(zip(self.names, self._totals.in_violation, strict=True))

    @property
    def alarm_free_steps(self) -> int:
        return int(self._totals.alarm_free)

    @property
    def keep_incidents(self) -> int:
        """How many closed incidents are kept (settable)."""
        return int(self._totals.keep)

    @keep_incidents.setter
    def keep_incidents(self, keep: int) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise ConfigError(f"keep_incidents: must be a non-negative integer, got {keep!r}")
        self._totals.keep = keep

    @property
    def critical_violations(self) -> int:
        return int(sum(v for n, v in self.violations.items() if self.severity[n] == "critical"))

    @property
    def incidents(self) -> list[Incident]:
        """The most recent closed incidents (up to ``keep_incidents``), oldest first."""
        ev = self._totals.closed()
        out: list[Incident] = []
        for i in range(len(ev["kind"])):
            name = self.names[int(ev["constraint"][i])]
            rsec = float(ev["response_seconds"][i])
            out.append(
                Incident(
                    f"safety_{int(ev['incident'][i]):06d}",
                    int(ev["env"][i]),
                    int(ev["episode"][i]),
                    name,
                    self.severity[name],
                    float(ev["first_value"][i]),
                    float(ev["peak_value"][i]),
                    int(ev["start_step"][i]),
                    int(ev["step"][i]),
                    _RESPONSES[int(ev["response"][i])],
                    None if np.isnan(rsec) else rsec,
                )
            )
        return out


# --------------------------------------------------------------------------- standalone checker
@dataclass(frozen=True)
class Violation:
    """A constraint beyond its limit (or whose alarm is still active) at one check."""

    name: str
    constraint_type: str
    severity: str
    value: float
    limit: float
    margin: float
    active: bool
    system: int = 0


class SafetyChecker:
    """Checks constraints on state vectors that do not come from our environments.

    Args:
        constraints: A list of full constraint entries or a mapping ``name -> entry`` (or a
            YAML/TOML path); see the module docstring for the fields.
        signals: Signal names in column order. Default: the signals the constraints name, in order
            of appearance.
        num_systems: Independent systems checked together by :meth:`check_batch`.
        dt: Seconds between checks (response times in incidents).
        env_id: The name its violations are counted and logged under (``env_id`` in the log lines).

    ``check`` keeps alarm state between calls (on-delay, deadband, rates), as a control loop does.
    With ``record=True`` each alarm raised (a new violation, as an env counts it: not every check
    that finds the value still beyond its limit) is counted in ``safety_violations_total`` and logged
    on ``neorl_industrial.safety`` (rate-limited) like an env's violations, with ``env_index`` the
    system's index.
    """

    def __init__(
        self,
        constraints: Any,
        signals: list[str] | None = None,
        num_systems: int = 1,
        dt: float = 1.0,
        env_id: str = "safety_checker",
    ) -> None:
        if (
            isinstance(num_systems, bool)
            or not isinstance(num_systems, (int, np.integer))
            or not 1 <= num_systems <= _core.MAX_ENVS
        ):
            raise ConfigError(
                f"num_systems: must be an integer from 1 to {_core.MAX_ENVS}, got {num_systems!r}"
            )
        cfg = load_constraints(constraints)
        if signals is None:
            signals = _signals_named(cfg)
        self.signals = list(signals)
        self._core = _core.CoreMonitor(cfg, self.signals, num_systems, float(dt))
        self._meta = self._core.constraints
        self.num_systems = num_systems
        self.env_id = str(env_id)

    def _vector(self, state: Any, action: Any = None) -> np.ndarray:
        if isinstance(state, Mapping):
            merged = dict(state)
            if isinstance(action, Mapping):
                merged.update(action)
            missing = [s for s in self.signals if s not in merged]
            if missing:
                raise ConfigError(f"state: missing signals {missing}; expected {self.signals}")
            unknown = [k for k in merged if k not in self.signals]
            if unknown:
                raise ConfigError(f"state: unknown signals {unknown}; expected {self.signals}")
            values = [merged[s] for s in self.signals]
        else:
            values = np.concatenate([np.ravel(state), np.ravel(action)]) if action is not None else state
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"state: values must be numbers ({e})") from None
        return arr

    def check(
        self, state: Any, action: Any = None, *, record: bool = False, registry: Any = None
    ) -> list[Violation]:
        """Checks one system's signals (a mapping by name, or an array in ``signals`` order).

        Args:
            state: The signals (with ``action``'s, if given).
            action: More signals, appended (or merged, for mappings).
            record: Count and log each alarm raised into ``registry`` (see the class docstring).
            registry: A :class:`neorl_industrial.metrics.Registry` (default: the process-wide one).
        """
        if self.num_systems != 1:
            raise ConfigError("check: this checker watches several systems; use check_batch")
        arr = self._vector(state, action)
        if arr.shape != (len(self.signals),):
            raise ConfigError(
                f"state: expected {len(self.signals)} values {self.signals}, got shape {arr.shape}"
            )
        return self._violations(arr[None, :], record, registry)[0]

    def check_batch(
        self, states: Any, *, record: bool = False, registry: Any = None
    ) -> list[list[Violation]]:
        """Checks ``states[num_systems, n_signals]``; returns each system's violations (``record``
        and ``registry`` as in :meth:`check`)."""
        arr = np.asarray(states, dtype=np.float64)
        if arr.shape != (self.num_systems, len(self.signals)):
            raise ConfigError(
                f"states: expected shape ({self.num_systems}, {len(self.signals)}), got {arr.shape}"
            )
        return self._violations(arr, record, registry)

    def _violations(self, arr: np.ndarray, record: bool, registry: Any) -> list[list[Violation]]:
        reg = _core_of(registry) if record else None
        values, margins, active, _events = self._core.check(
            np.ascontiguousarray(arr), time.time(), reg, self.env_id
        )
        out: list[list[Violation]] = []
        for i in range(arr.shape[0]):
            row = []
            for j, (name, ctype, severity, _kind, limit) in enumerate(self._meta):
                if margins[i, j] < 0 or active[i, j]:
                    row.append(
                        Violation(
                            name,
                            ctype,
                            severity,
                            float(values[i, j]),
                            limit,
                            float(margins[i, j]),
                            bool(active[i, j]),
                            i,
                        )
                    )
            out.append(row)
        return out

    def reset(self) -> None:
        """Forgets alarm states and previous values."""
        self._core.reset()


def _signals_named(cfg: Any) -> list[str]:
    entries = cfg if isinstance(cfg, list) else list((cfg or {}).values())
    names: list[str] = []
    for e in entries:
        if not isinstance(e, Mapping):
            continue
        for s in [e.get("signal"), *((e.get("terms") or {}).keys())]:
            if isinstance(s, str) and s not in names:
                names.append(s)
    if not names:
        raise ConfigError("signals: name the signals, or give constraints that name theirs")
    return names


# --------------------------------------------------------------------------- gymnasium glue
class SafetyCostWrapper(gym.Wrapper):
    """safety-gymnasium's API: ``step`` returns ``(obs, reward, cost, terminated, truncated, info)``."""

    def step(self, action: Any) -> tuple[Any, float, float, bool, bool, dict[str, Any]]:  # type: ignore[override]
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, float(reward), float(info["cost"]), terminated, truncated, info


def evaluate_with_safety(
    policy: Callable[[np.ndarray], Any],
    env: gym.Env,
    n_episodes: int = 10,
    seed: int | None = 0,
) -> dict[str, Any]:
    """Runs ``policy`` for ``n_episodes`` on a single env and returns return and safety statistics.

    The env is stepped as given (wrappers included); the safety figures are the core's own counts
    (``env.unwrapped.safety``) over the evaluation, not recounted from the infos.

    Returns:
        ``mean_return``, ``std_return``, ``returns``, ``mean_length``, ``mean_cost``,
        ``violations_per_episode``, ``violations`` (by constraint), ``critical_violations``,
        ``shutdowns``, ``shield_interventions``, ``constraint_satisfaction_rate`` (fraction of steps
        with no active alarm) and ``incidents`` (closed incidents as dicts: ``episode``, here the
        index of the evaluated episode from 0, ``constraint``, ``start_step``, ``end_step``).
    """
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, int) or n_episodes < 1:
        raise ConfigError(f"n_episodes: must be a positive integer, got {n_episodes!r}")
    stats = getattr(env.unwrapped, "safety", None)
    if not isinstance(stats, SafetyStats):
        raise ConfigError(f"env: must be a neorl_industrial environment, got {type(env.unwrapped).__name__}")
    returns, lengths, costs = [], [], []
    incidents: list[dict[str, Any]] = []
    keep = stats.keep_incidents
    stats.keep_incidents = 2**63  # none of the evaluation's incidents drops out before it is read
    try:
        start = _Counts(stats)
        for ep in range(n_episodes):
            obs, info = env.reset(seed=None if seed is None else seed + ep)
            before = _Counts(stats)
            ret, length, done = 0.0, 0, False
            while not done:
                obs, r, term, trunc, info = env.step(policy(obs))
                ret += float(r)
                length += 1
                done = bool(term or trunc)
            returns.append(ret)
            lengths.append(length)
            costs.append(stats.cost - before.cost)
            incidents += [
                {
                    "episode": ep,
                    "constraint": i.constraint,
                    "start_step": i.start_step,
                    "end_step": i.end_step,
                }
                for i in stats.incidents[before.closed :]
            ]
        end = _Counts(stats)
    finally:
        stats.keep_incidents = keep
    violations = {n: end.violations[n] - start.violations[n] for n in stats.names}
    steps = end.steps - start.steps
    return {
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "returns": returns,
        "mean_length": float(np.mean(lengths)),
        "mean_cost": float(np.mean(costs)),
        "violations_per_episode": sum(violations.values()) / n_episodes,
        "violations": violations,
        "critical_violations": sum(v for n, v in violations.items() if stats.severity[n] == "critical"),
        "shutdowns": end.shutdowns - start.shutdowns,
        "shield_interventions": end.shields - start.shields,
        "constraint_satisfaction_rate": (end.alarm_free - start.alarm_free) / max(steps, 1),
        "incidents": incidents,
    }


class _Counts:
    """A :class:`SafetyStats` reading at one moment."""

    def __init__(self, stats: SafetyStats) -> None:
        self.steps, self.cost = stats.steps, stats.cost
        self.violations = stats.violations
        self.shutdowns = sum(stats.shutdowns.values())
        self.shields = stats.shield_interventions
        self.alarm_free = stats.alarm_free_steps
        self.closed = len(stats.incidents)
