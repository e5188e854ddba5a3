"""A pytest plugin: fixtures and assertions for testing controllers on neorl-industrial environments.

Installed as the ``pytest11`` entry point ``neorl_industrial``, so the fixtures are available in any
test once the package is installed (without installing, load it with
``-p neorl_industrial.integrations.pytest_plugin``).

Fixtures:

- ``industrial_env``: a factory, ``industrial_env("ChemicalReactor-v0", **options)`` returns one env
  (recording into ``isolated_registry`` unless ``registry=`` or ``metrics=False`` is given), closed
  at teardown.
- ``industrial_vec_env``: a factory, ``industrial_vec_env(env_id, num_envs=8, **options)`` returns a
  vector env recording into ``isolated_registry``, closed at teardown.
- ``isolated_registry``: a fresh :class:`~neorl_industrial.metrics.Registry`.
- ``metrics_server``: the exporter on an ephemeral port of 127.0.0.1 serving ``isolated_registry``
  (``.port``, ``.url``), stopped at teardown.

Assertions (import them from this module)::

    from neorl_industrial.integrations.pytest_plugin import (
        assert_metric, assert_no_critical_violations, rollout,
    )

    def test_controller_is_safe(industrial_env, isolated_registry):
        env = industrial_env("ChemicalReactor-v0")
        steps = rollout(env, my_policy, steps=200, seed=0)
        assert_no_critical_violations(steps)
        assert_metric(isolated_registry, "env_steps_total", {"env": "ChemicalReactor-v0"}, 200)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
import pytest

from neorl_industrial import make, make_vec
from neorl_industrial.metrics import Registry, generate_latest

__all__ = [
    "Rollout",
    "Sample",
    "StepRecord",
    "assert_metric",
    "assert_no_critical_violations",
    "parse_samples",
    "rollout",
]


# --------------------------------------------------------------------------- rollouts
class StepRecord(NamedTuple):
    """One transition of a rollout, as ``env.step`` returned it."""

    obs: Any
    reward: Any
    terminated: Any
    truncated: Any
    info: dict[str, Any]


class Rollout(list[StepRecord]):
    """The step records of :func:`rollout` (a list), with the env's constraint table attached.

    Attributes:
        env_id: Id of the env rolled out.
        constraints: The env's constraint entries (``name``, ``severity``, ``limit``, ...).
    """

    def __init__(self, records: Any = (), env_id: str = "", constraints: list[dict[str, Any]] | None = None):
        super().__init__(records)
        self.env_id = env_id
        self.constraints = list(constraints or [])

    @property
    def critical(self) -> list[str]:
        """Names of the critical constraints."""
        return [c["name"] for c in self.constraints if c.get("severity") == "critical"]


def _as_policy(policy: Any, env: Any) -> Callable[[Any], Any]:
    if policy is None:
        return lambda _obs: env.action_space.sample()
    if callable(policy):
        return policy
    const = np.asarray(policy, dtype=np.float64)
    shape = env.action_space.shape
    action = np.broadcast_to(const, shape).astype(env.action_space.dtype)
    return lambda _obs: action


def rollout(env: Any, policy: Any, steps: int, seed: int | None = 0) -> Rollout:
    """Resets ``env`` with ``seed`` and steps it ``steps`` times; returns the step records.

    Args:
        env: A single env (``ni.make`` or ``gym.make``) or a vector env (``ni.make_vec``).
        policy: A callable ``obs -> action``, a constant action (a number broadcast over the action
            space, or an array), or ``None`` for random actions (seeded from the action space).
        steps: Number of ``env.step`` calls.
        seed: Seed of the first reset.

    A single env whose episode ends (terminated or truncated) is reset (unseeded) and the rollout
    goes on; vector envs reset themselves. Each record is ``(obs, reward, terminated, truncated,
    info)`` of one ``env.step``.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps: must be a non-negative integer, got {steps!r}")
    vector = hasattr(env, "num_envs") and hasattr(env, "single_action_space")
    act = _as_policy(policy, env)
    if policy is None and seed is not None:
        env.action_space.seed(seed)
    obs, _info = env.reset(seed=seed)
    core_spec = getattr(getattr(env, "unwrapped", env), "core_spec", None) or getattr(env, "core_spec", {})
    env_id = getattr(getattr(env, "unwrapped", env), "env_id", None) or getattr(
        getattr(env, "spec", None), "id", ""
    )
    out = Rollout(env_id=str(env_id or ""), constraints=core_spec.get("constraints", []))
    for _ in range(int(steps)):
        obs, reward, terminated, truncated, info = env.step(act(obs))
        out.append(StepRecord(obs, reward, terminated, truncated, info))
        if not vector and (terminated or truncated):
            obs, _info = env.reset()
    return out


def assert_no_critical_violations(records: Any, critical: list[str] | None = None) -> None:
    """Fails if any step had an active critical constraint or ended in an emergency shutdown.

    Args:
        records: What :func:`rollout` returned (or any list of ``(obs, reward, terminated,
            truncated, info)``).
        critical: Names of the critical constraints (default: the rollout's, from the env's spec).

    The failure message names each offending constraint with the first step (index into the
    rollout), the value and the limit, and how many steps it was active.
    """
    if critical is None:
        critical = list(getattr(records, "critical", []))
    limits = {c["name"]: c.get("limit") for c in getattr(records, "constraints", [])}
    first: dict[str, tuple[int, str, float]] = {}
    counts: dict[str, int] = {}
    shutdowns: list[tuple[int, str, str]] = []
    for step, rec in enumerate(records):
        info = rec[4]
        violations = info.get("violations", {})
        values = info.get("constraints", {})
        for name in critical:
            active = np.asarray(violations.get(name, False))
            if not active.any():
                continue
            counts[name] = counts.get(name, 0) + 1
            if name not in first:
                vals = np.asarray(values.get(name, np.nan), dtype=np.float64)
                where, val = _first_active(active, vals)
                first[name] = (step, where, val)
        for where, reason in _shutdowns(info):
            shutdowns.append((step, where, reason))
    if not first and not shutdowns:
        return
    lines = []
    for name, (step, where, val) in first.items():
        limit = limits.get(name)
        lim = f" (limit {limit:g})" if isinstance(limit, (int, float)) else ""
        lines.append(
            f"critical constraint {name!r} active at step {step}{where}: value {val:.6g}{lim}; "
            f"active in {counts[name]} of {len(records)} steps"
        )
    for step, where, reason in shutdowns[:10]:
        lines.append(f"emergency shutdown at step {step}{where}: shutdown_reason={reason!r}")
    if len(shutdowns) > 10:
        lines.append(f"... and {len(shutdowns) - 10} more shutdowns")
    pytest.fail("critical safety violations in the rollout:\n  " + "\n  ".join(lines), pytrace=False)


def _first_active(active: np.ndarray, vals: np.ndarray) -> tuple[str, float]:
    if active.ndim == 0:
        return "", float(vals) if vals.ndim == 0 else float("nan")
    i = int(np.flatnonzero(active)[0])
    return f" (env {i})", float(vals[i]) if vals.ndim else float(vals)


def _shutdowns(info: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    reason = info.get("shutdown_reason")
    if reason is None:
        return
    if isinstance(reason, str):
        yield "", reason
        return
    arr = np.asarray(reason, dtype=object)
    mask = np.asarray(info.get("_shutdown_reason", np.ones(arr.shape, dtype=bool)), dtype=bool)
    for i in np.flatnonzero(mask):
        yield f" (env {int(i)})", str(arr[i])


# --------------------------------------------------------------------------- metrics
class Sample(NamedTuple):
    """One sample line of the Prometheus text format."""

    name: str
    labels: dict[str, str]
    value: float

    def __str__(self) -> str:
        labels = ",".join(f'{k}="{v}"' for k, v in self.labels.items())
        return f"{self.name}{{{labels}}} {self.value:g}" if labels else f"{self.name} {self.value:g}"


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _parse_labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if m is None:
            if text[pos:].strip():
                raise ValueError(f"cannot parse labels {{{text}}}")
            break
        labels[m.group(1)] = re.sub(r"\\[\\\"n]", lambda e: _UNESCAPE[e.group(0)], m.group(2))
        pos = m.end()
    return labels


def _parse_value(text: str) -> float:
    return {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}.get(text) or float(text)


def parse_samples(source: Any = None) -> list[Sample]:
    """The samples of an exposition: a :class:`Registry`, ``None`` (the process-wide registry), or
    the text itself (``str`` or ``bytes``)."""
    if source is None or isinstance(source, Registry):
        text = generate_latest(source).decode()
    elif isinstance(source, bytes):
        text = source.decode()
    elif isinstance(source, str):
        text = source
    else:
        raise TypeError(f"expected a Registry, str or bytes, got {type(source).__name__}")
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        name, labels, value = m.group(1), m.group(2), m.group(3)
        try:
            out.append(Sample(name, _parse_labels(labels or ""), _parse_value(value)))
        except ValueError:
            continue
    return out


def assert_metric(
    registry: Any,
    name: str,
    labels: Mapping[str, str] | None = None,
    value: float | None = None,
    *,
    rel: float | None = None,
    abs: float | None = None,  # pytest.approx's name
) -> Sample:
    """Asserts that ``registry`` exposes the sample ``name{labels}`` (with exactly these labels),
    equal to ``value`` within ``pytest.approx(value, rel=rel, abs=abs)``; returns the sample.

    ``registry``: a :class:`Registry`, ``None`` (the process-wide one) or exposition text.
    ``value=None`` only checks that the sample exists. On failure the message lists every sample
    of that name.
    """
    want = {str(k): str(v) for k, v in (labels or {}).items()}
    samples = parse_samples(registry)
    same_name = [s for s in samples if s.name == name]
    found = [s for s in same_name if s.labels == want]
    shown = _selector(name, want)

    def listing() -> str:
        if not same_name:
            names = sorted({s.name for s in samples})
            return f"no samples named {name!r}; names exposed: {', '.join(names)}"
        return f"samples of {name!r}:\n    " + "\n    ".join(str(s) for s in same_name)

    if not found:
        pytest.fail(f"metric sample {shown} not found; {listing()}", pytrace=False)
    sample = found[0]
    if value is not None and sample.value != pytest.approx(value, rel=rel, abs=abs):
        pytest.fail(f"metric {shown} is {sample.value:g}, expected {value:g}; {listing()}", pytrace=False)
    return sample


def _selector(name: str, labels: Mapping[str, str]) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


# --------------------------------------------------------------------------- fixtures
@pytest.fixture
def isolated_registry() -> Registry:
    """A fresh metrics registry, shared by the other fixtures of the test."""
    return Registry()


@pytest.fixture
def industrial_env(isolated_registry: Registry) -> Iterator[Callable[..., Any]]:
    """Factory ``industrial_env(env_id="ChemicalReactor-v0", **options)``: one env, closed at teardown."""
    made: list[Any] = []

    def factory(env_id: str = "ChemicalReactor-v0", **options: Any) -> Any:
        if options.get("metrics", True):
            options.setdefault("registry", isolated_registry)
        env = make(env_id, **options)
        made.append(env)
        return env

    yield factory
    for env in reversed(made):
        env.close()


@pytest.fixture
def industrial_vec_env(isolated_registry: Registry) -> Iterator[Callable[..., Any]]:
    """Factory ``industrial_vec_env(env_id, num_envs=8, **options)``: a vector env recording into
    ``isolated_registry``, closed at teardown."""
    made: list[Any] = []

    def factory(env_id: str = "ChemicalReactor-v0", num_envs: int = 8, **options: Any) -> Any:
        if options.get("metrics", True):
            options.setdefault("registry", isolated_registry)
        envs = make_vec(env_id, num_envs=num_envs, **options)
        made.append(envs)
        return envs

    yield factory
    for envs in reversed(made):
        envs.close()


@pytest.fixture
def metrics_server(isolated_registry: Registry) -> Iterator[Any]:
    """The exporter on a free port of 127.0.0.1 serving ``isolated_registry``; stopped at teardown."""
    from neorl_industrial.exporter import start_http_server

    server = start_http_server(0, "127.0.0.1", registry=isolated_registry)
    try:
        yield server
    finally:
        server.stop()
