"""Serving a trained agent under monitoring (``neorl-industrial serve``, or a notebook).

:class:`PolicyService` steps a fleet of simulated plants with a policy loaded from where it is kept
(see :func:`~neorl_industrial._policy_files.load_policy`: a built-in, a Stable-Baselines3 ``.zip``,
a d3rlpy ``.d3``, TorchScript, ONNX or ``module:attribute``), one policy call per batch step, and
watches it the way a plant watches a controller:

- ``model_info{name,version,framework,sha256}`` is 1 for the model serving; the ``model_loaded``
  health check shows the same fields and fails (``/health/ready`` 503) until the model has
  answered a probe batch of the env's observations.
- Every inference is timed in ``inference_latency_seconds`` and counted in
  ``actions_computed_total``, by the loop itself; the latency's exemplar carries the ``run_id`` and
  the service's ``batch`` number, as its audit lines do.
- A policy that raises, or answers NaN, inf or another shape, is counted in
  ``policy_errors_total{kind}`` (``exception``, ``non_finite``, ``shape``) and written to the audit
  trail; the batch then takes the env's safe action (``on_policy_error="fallback"``) or the
  service stops cleanly (``"shutdown"``). Nothing the policy got wrong reaches an env.
- :meth:`PolicyService.reload` (SIGHUP, ``POST /admin/reload``) loads a model in the background,
  checks it as at start, and swaps it in between two batch steps; a model that fails is refused
  and the old one keeps serving (``model_reloads_total{result}``, one audit line per attempt).
- A shadow policy computes actions on the same observations without ever acting: a twin of the
  fleet, restored to the fleet's state before each step, takes the shadow's actions instead, so
  its alarms are what the shadow *would* have raised (``shadow_would_violate_total``); the gap to
  the acting policy goes to ``shadow_action_divergence`` (root mean square over the action's
  normalised components, per env).
- Operators pause, resume, shut down or override named envs (:meth:`PolicyService.intervene`),
  each intervention counted in ``human_interventions_total{reason}`` and audited.

Example::

    from neorl_industrial.serving import PolicyService

    with PolicyService("ChemicalReactor-v0", "ppo.zip", num_envs=64) as service:
        service.run(duration=60.0)
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np

from . import make_vec
from ._policy_files import LoadedPolicy, PolicyOutputError, as_numpy, check_actions, load_policy
from ._profile import load_profile
from .drift import DriftMonitor
from .envs import restore_snapshot
from .exceptions import ConfigError, InvalidActionError
from .logging import run_id
from .metrics import REGISTRY, Counter, Gauge, Histogram, Registry, _core_of, shared_families
from .safety import AuditTrail

__all__ = ["PolicyService", "INTERVENTIONS", "ON_POLICY_ERROR"]

ON_POLICY_ERROR = ("fallback", "shutdown")
INTERVENTIONS = ("pause", "resume", "shutdown", "override", "release")
"""``override`` holds named envs at given actions until ``release`` (of those envs, or all)."""
_log = logging.getLogger("neorl_industrial.serving")
CONTROL_TIMEOUT = 120.0
"""Seconds an HTTP control request waits for the loop to apply it (a reload loads a model first)."""


class _Metrics:
    """The serving families of one registry (made once per registry, shared by its services)."""

    def __init__(self, registry: Registry) -> None:
        r = registry
        self.model_info = Gauge(
            "model_info", "The model serving (1).", ["name", "version", "framework", "sha256"], registry=r
        )
        self.errors = Counter(
            "policy_errors_total",
            "Policy answers refused (the batch fell back or stopped).",
            ["kind"],
            registry=r,
        )
        self.reloads = Counter(
            "model_reloads_total", "Model reload attempts by result.", ["result"], registry=r
        )
        self.divergence = Histogram(
            "shadow_action_divergence",
            "RMS gap between shadow and acting actions (normalised), per env and step.",
            registry=r,
            buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0),
        )
        self.would_violate = Counter(
            "shadow_would_violate_total",
            "Alarms the shadow policy's actions would have raised.",
            ["constraint_type", "severity"],
            registry=r,
        )
        self.shadow_latency = Histogram(
            "shadow_inference_latency_seconds",
            "Shadow policy inference time per batch.",
            registry=r,
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0),
        )
        self.shadow_errors = Counter(
            "shadow_errors_total", "Shadow policy answers refused.", ["kind"], registry=r
        )

    def zero(self, constraints: list[dict[str, Any]], shadow: bool) -> None:
        """Creates the known label sets at 0, so a first event shows in ``increase()``."""
        for kind in ("exception", "non_finite", "shape"):
            self.errors.labels(kind)
            if shadow:
                self.shadow_errors.labels(kind)
        for result in ("success", "failure"):
            self.reloads.labels(result)
        if shadow:
            for c in constraints:
                self.would_violate.labels(c["constraint_type"], c["severity"])
            self.would_violate.labels("action_range", "warning")


class PolicyService:
    """A policy serving a fleet of ``num_envs`` envs of ``env_id`` under monitoring.

    Args:
        env_id: The environment.
        policy: What :func:`~neorl_industrial._policy_files.load_policy` accepts.
        num_envs: Envs stepped together (one policy call per batch step).
        shadow_policy: A candidate that computes actions but never acts (see the module).
        model_version: The acting model's version (default: the file's metadata or digest).
        on_policy_error: ``fallback`` (the env's safe action for that batch) or ``shutdown``.
        seed: Seeds the fleet (and the built-in random policy).
        audit_log: A path or :class:`~neorl_industrial.safety.AuditTrail` for every event.
        registry: Where metrics and health go (default: the process-wide registry).
        drift_profile: A reference profile (a dict, or a file from
            :func:`~neorl_industrial.datasets.save_profile`): the fleet's observations, actions
            and rewards are watched against it over ``drift_window`` batch steps
            (:class:`~neorl_industrial.drift.DriftMonitor`).
        drift_warmup: Instead of a profile: the reference is the fleet's first ``drift_warmup``
            batch steps (``service.drift.profile`` once built).
        shield, constraints, env_options: As for :func:`~neorl_industrial.make_vec`.

    Raises:
        ConfigError: The policy (or shadow) cannot be loaded or answered the probe batch wrongly;
            nothing is left running.
    """

    def __init__(
        self,
        env_id: str,
        policy: str,
        *,
        num_envs: int = 64,
        shadow_policy: str | None = None,
        model_version: str | None = None,
        on_policy_error: str = "fallback",
        seed: int = 0,
        audit_log: str | AuditTrail | None = None,
        registry: Registry | None = None,
        shield: str | None = None,
        constraints: Any = None,
        drift_profile: str | os.PathLike[str] | dict[str, Any] | None = None,
        drift_window: int = 600,
        drift_warmup: int | None = None,
        **env_options: Any,
    ) -> None:
        if on_policy_error not in ON_POLICY_ERROR:
            raise ConfigError(
                f"on_policy_error: must be one of {', '.join(ON_POLICY_ERROR)}, got {on_policy_error!r}"
            )
        self.registry = registry if registry is not None else REGISTRY
        self._core = _core_of(self.registry)
        self._metrics = shared_families(_Metrics, self.registry)
        self.on_policy_error = on_policy_error
        self._seed = seed
        self._own_trail = isinstance(audit_log, (str, os.PathLike))
        if audit_log is not None and not self._own_trail and not isinstance(audit_log, AuditTrail):
            raise ConfigError(f"audit_log: must be a path or an AuditTrail, got {type(audit_log).__name__}")
        self.trail: AuditTrail | None = AuditTrail(audit_log) if self._own_trail else audit_log  # type: ignore[arg-type]
        self.registry.set_model_loading(policy)
        make = dict(shield=shield, constraints=constraints, **env_options)
        self.envs = make_vec(
            env_id,
            num_envs=num_envs,
            autoreset_mode="same_step",
            audit_log=self.trail,
            registry=self.registry,
            **make,
        )
        self.env_id, self.num_envs = self.envs.env_id, num_envs
        self.obs_dim = int(self.envs.single_observation_space.shape[0])
        self.act_dim = int(self.envs.single_action_space.shape[0])
        self.safe_action = np.tile(np.asarray(self.envs.core_spec["safe_action"], np.float32), (num_envs, 1))
        self.obs, _ = self.envs.reset(seed=seed)
        try:
            self.policy = self._load(policy, model_version)
            self.shadow = self._load(shadow_policy, None) if shadow_policy else None
        except BaseException:
            self.registry.set_model_loaded(False)
            self.envs.close()
            if self._own_trail and self.trail is not None:
                self.trail.close()
            raise
        self._twin = None
        if self.shadow is not None:
            self._twin = make_vec(
                env_id,
                num_envs=num_envs,
                autoreset_mode="same_step",
                metrics=False,
                constraints=constraints,
                **env_options,
            )
            self._twin.reset(seed=seed)
        self.drift: DriftMonitor | None = None
        if drift_profile is not None or drift_warmup is not None:
            prof = (
                drift_profile
                if isinstance(drift_profile, dict) or drift_profile is None
                else load_profile(drift_profile)
            )
            self.drift = DriftMonitor(
                prof, self.envs.core_spec, drift_window, self.registry, warmup=drift_warmup
            ).attach(self.envs)
        self._constraint_of = {c["name"]: c for c in self.envs.core_spec["constraints"]}
        self._metrics.zero(self.envs.core_spec["constraints"], self.shadow is not None)
        self.batches = 0
        self.last_actions = self.safe_action
        """The actions the last batch step sent (after fallback and overrides)."""
        self.paused: dict[str, str] | None = None
        self.overrides: dict[int, np.ndarray] = {}
        self.stopped: str | None = None
        self.interventions: deque[dict[str, Any]] = deque(maxlen=100)
        self._failing: str | None = None
        self._failed_batches = 0
        self._lock = threading.Lock()
        self._pending: list[tuple[Callable[[], dict[str, Any]], Future[dict[str, Any]]]] = []
        self._reloading = False
        self._wake = threading.Event()
        """Set when a request is queued: a paused loop waits on it instead of spinning."""
        self._announce(self.policy)

    # ------------------------------------------------------------------ loading
    def _load(self, spec: str, version: str | None, obs: np.ndarray | None = None) -> LoadedPolicy:
        """Loads ``spec`` and asks it for actions on a probe batch (``obs``, default the fleet's
        current observations; the answer is not acted on)."""
        loaded = load_policy(
            spec,
            env_id=self.env_id,
            num_envs=self.num_envs,
            obs_dim=self.obs_dim,
            act_dim=self.act_dim,
            seed=self._seed,
            version=version,
        )
        try:
            check_actions(loaded.act(self.obs.copy() if obs is None else obs), self.num_envs, self.act_dim)
        except PolicyOutputError as e:
            raise ConfigError(f"policy: {spec} answered the probe batch wrongly: {e}") from None
        except Exception as e:
            raise ConfigError(f"policy: {spec} failed on the probe batch: {type(e).__name__}: {e}") from None
        return loaded

    def _announce(self, loaded: LoadedPolicy, previous: LoadedPolicy | None = None) -> None:
        if previous is not None:
            self._metrics.model_info.remove(*previous.identity().values())
        self._metrics.model_info.labels(**loaded.identity()).set(1)
        self.registry.set_model(**loaded.identity())
        self._audit("model_loaded", spec=loaded.spec, **loaded.identity())
        _log.info(
            "agent started agent_type=%s model=%s version=%s", loaded.framework, loaded.name, loaded.version
        )

    def _audit(self, event: str, level: str = "info", **fields: Any) -> None:
        if self.trail is not None:
            self.trail.record(event, level, env_id=self.env_id, batch=self.batches, **fields)

    # ------------------------------------------------------------------ reload
    def reload(self, spec: str | None = None, version: str | None = None) -> Future[dict[str, Any]]:
        """Loads ``spec`` (default: the serving model's own, re-read) in the background and swaps
        it in between two batch steps if it passes the checks made at start. The future resolves
        to ``{"result": "success" | "failure" | "busy", ...}`` once the swap is done or refused."""
        done: Future[dict[str, Any]] = Future()
        with self._lock:
            if self._reloading:
                done.set_result({"result": "busy", "reason": "a reload is already under way"})
                return done
            self._reloading = True
        spec = spec or self.policy.spec
        obs = self.obs.copy()
        threading.Thread(
            target=self._reload_in_background,
            args=(spec, version, obs, done),
            name="model-reload",
            daemon=True,
        ).start()
        return done

    def _reload_in_background(
        self, spec: str, version: str | None, obs: np.ndarray, done: Future[dict[str, Any]]
    ) -> None:
        try:
            loaded = self._load(spec, version, obs)
        except Exception as e:  # any failure refuses the model; the old one keeps serving
            reason = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"
            self._metrics.reloads.labels("failure").inc()
            self._core.count_error("serving", "reload")
            _log.warning("model reload refused, %s keeps serving: %s", self.policy.name, reason)
            self._audit(
                "model_reload",
                "warning",
                result="failure",
                spec=spec,
                reason=reason,
                serving=self.policy.identity(),
            )
            with self._lock:
                self._reloading = False
            done.set_result(
                {"result": "failure", "spec": spec, "reason": reason, "serving": self.policy.identity()}
            )
            return

        def swap() -> dict[str, Any]:
            previous, self.policy = self.policy, loaded
            self._metrics.reloads.labels("success").inc()
            _log.info(
                "model reloaded: %s %s replaces %s %s",
                loaded.name,
                loaded.version,
                previous.name,
                previous.version,
            )
            self._audit(
                "model_reload",
                result="success",
                spec=spec,
                previous=previous.identity(),
                serving=loaded.identity(),
            )
            self._announce(loaded, previous)
            with self._lock:
                self._reloading = False
            return {
                "result": "success",
                "spec": spec,
                "batch": self.batches,
                "previous": previous.identity(),
                "serving": loaded.identity(),
            }

        with self._lock:
            self._pending.append((swap, done))
        self._wake.set()

    # ------------------------------------------------------------------ interventions
    def intervene(self, request: dict[str, Any]) -> Future[dict[str, Any]]:
        """Queues an operator intervention, applied between two batch steps (see
        :func:`check_intervention` for the request); the future resolves to what was applied."""
        req = check_intervention(request, self.num_envs, self.act_dim)
        done: Future[dict[str, Any]] = Future()
        with self._lock:
            self._pending.append((lambda: self._apply(req), done))
        self._wake.set()
        return done

    def _apply(self, req: dict[str, Any]) -> dict[str, Any]:
        action, envs = req["action"], req.get("envs")
        if action == "pause":
            self.paused = {"reason": req["reason"], "operator": req["operator"]}
        elif action == "resume":
            self.paused = None
        elif action == "shutdown":
            self.stopped = "operator shutdown"
        elif action == "override":
            for i in envs:
                self.overrides[i] = req["value"]
        elif action == "release":
            for i in envs if envs is not None else list(self.overrides):
                self.overrides.pop(i, None)
        applied = {
            "action": action,
            "reason": req["reason"],
            "operator": req["operator"],
            "envs": envs if envs is not None else list(range(self.num_envs)),
            "batch": self.batches,
            "time": time.time(),
        }
        if action == "override":
            applied["value"] = req["value"].tolist()
        self._core.record_human_intervention(req["reason"])
        self._audit("human_intervention", "warning", **{k: v for k, v in applied.items() if k != "batch"})
        with self._lock:
            self.interventions.append(applied)
        return applied

    # ------------------------------------------------------------------ stepping
    def _between_steps(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for fn, done in pending:
            try:
                done.set_result(fn())
            except Exception as e:  # never lost: the caller hears of it
                done.set_exception(e)

    def _act(self) -> tuple[Any, float] | None:
        """The policy's answer on the fleet's observations and its inference time; None when it
        raised (counted and audited by :meth:`_refused`)."""
        start = time.perf_counter()
        try:
            answer = self.policy.act(self.obs)
        except Exception as e:
            self._refused("exception", f"{type(e).__name__}: {e}", time.perf_counter() - start)
            return None
        return answer, time.perf_counter() - start

    def _inference(self, seconds: float, actions: int) -> None:
        """Records an inference, its exemplar naming the run and the batch step (the ``run_id`` and
        ``batch`` of this step's audit lines)."""
        exemplar = {"run_id": run_id(), "batch": str(self.batches)}
        self._core.record_inference(seconds, actions, exemplar)

    def _served(self, seconds: float) -> None:
        """The answer was sent to the fleet: an inference of ``num_envs`` actions."""
        self._inference(seconds, self.num_envs)
        if self._failing is not None:
            self._audit("policy_recovered", failed_batches=self._failed_batches, **self.policy.identity())
            self._failing, self._failed_batches = None, 0

    def _refused(self, kind: str, message: str, seconds: float) -> None:
        """The answer was not sent: counted, audited once per run of failures, and the batch falls
        back to the safe action or the service stops."""
        self._inference(seconds, 0)
        self._metrics.errors.labels(kind).inc()
        self._core.count_error("policy", "exception" if kind == "exception" else "invalid_action")
        self._failed_batches += 1
        if self._failing != kind:  # the first of a run of failures of this kind
            self._failing = kind
            fallback = "shutdown" if self.on_policy_error == "shutdown" else "safe_action"
            self._audit(
                "policy_error", "error", kind=kind, error=message, response=fallback, **self.policy.identity()
            )
            _log.error("policy error kind=%s response=%s: %s", kind, fallback, message)
        if self.on_policy_error == "shutdown":
            self.stopped = f"policy error ({kind}): {message}"

    def _shadow(self, actions: np.ndarray, snapshot: Any) -> None:
        assert self.shadow is not None and self._twin is not None
        start = time.perf_counter()
        try:
            shadow = check_actions(self.shadow.act(self.obs), self.num_envs, self.act_dim)
        except PolicyOutputError as e:
            self._metrics.shadow_errors.labels(e.kind).inc()
            return
        except Exception:
            self._metrics.shadow_errors.labels("exception").inc()
            return
        finally:
            self._metrics.shadow_latency.observe(time.perf_counter() - start)
        self._metrics.divergence.observe_many(np.sqrt(np.mean((shadow - actions) ** 2, axis=1)))
        outside = int((np.abs(shadow) > 1.0).any(axis=1).sum())
        if outside:
            self._metrics.would_violate.labels("action_range", "warning").inc(outside)
        twin = self._twin
        restore_snapshot(twin._core, snapshot)
        before = twin.safety.violations
        twin.step(shadow)
        for name, count in twin.safety.violations.items():
            if count > before[name]:
                c = self._constraint_of[name]
                self._metrics.would_violate.labels(c["constraint_type"], c["severity"]).inc(
                    count - before[name]
                )

    def step(self) -> bool:
        """One batch step (interventions and a reloaded model are applied first); False once the
        service has stopped (an operator's shutdown, or a policy error under ``shutdown``).

        The policy's answer goes to the fleet as it is: the fleet refuses another shape or a
        non-finite value without stepping any env (the check a plain loop pays too), and the step
        is then taken with the safe action. Overrides and shadow mode check the answer first.
        """
        if self._pending:
            self._between_steps()
        if self.stopped is not None:
            return False
        if self.paused is not None:
            return True
        answer = self._act()
        seconds: float | None = None
        actions: Any = self.safe_action
        if answer is not None:
            actions, seconds = as_numpy(answer[0]), answer[1]
            if self.overrides or self.shadow is not None:
                try:
                    actions = check_actions(actions, self.num_envs, self.act_dim)
                except PolicyOutputError as e:
                    self._refused(e.kind, str(e), seconds)
                    actions, seconds = self.safe_action, None
        if self.stopped is not None:
            return False
        if self.overrides:
            actions = actions.copy()
            for i, value in self.overrides.items():
                actions[i] = value
        if self.shadow is not None:
            self._shadow(actions, self.envs._core.snapshot())
        try:
            obs, reward, term, trunc, _ = self.envs.step(actions)
        except InvalidActionError as e:
            if seconds is None:
                raise
            self._refused("non_finite" if "must be finite" in str(e) else "shape", str(e), seconds)
            if self.stopped is not None:
                return False
            actions, seconds = self.safe_action, None
            obs, reward, term, trunc, _ = self.envs.step(actions)
        if seconds is not None:
            self._served(seconds)
        self.last_actions = actions
        if self.policy.episode_end is not None and (done := term | trunc).any():
            self.policy.episode_end(done)
        self.obs = obs
        self.batches += 1
        return True

    def run(
        self,
        rate: float = 0.0,
        duration: float | None = None,
        should_stop: Callable[[], str | None] | None = None,
    ) -> str | None:
        """Steps at ``rate`` batches per second (0: as fast as possible) until ``duration`` seconds
        pass, ``should_stop()`` names a reason, or the service stops; returns why it stopped."""
        period = 1.0 / rate if rate > 0 else 0.0
        t0 = next_at = time.monotonic()
        while duration is None or time.monotonic() - t0 < duration:
            if should_stop is not None and (why := should_stop()):
                return why
            if not self.step():
                return self.stopped
            if self.paused is not None:  # nothing to step: sleep until a request or the next check
                self._wake.wait(0.1)
                self._wake.clear()
                continue
            if period:
                next_at += period
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_at = time.monotonic()
        return None

    # ------------------------------------------------------------------ HTTP
    def handle_control(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        """Answers the exporter's control endpoints (``POST /admin/reload``, ``GET`` and ``POST
        /interventions``) as ``(status, JSON text)``. Called on an exporter thread; requests that
        change the service wait until the loop has applied them between two batch steps."""
        try:
            if path == "/interventions" and method == "GET":
                with self._lock:
                    recent = list(self.interventions)
                return 200, json.dumps({"interventions": recent})
            if self.stopped is not None:
                return 503, json.dumps({"error": f"the service has stopped ({self.stopped})"})
            request = json.loads(body or b"{}")
            if path == "/interventions":
                answer = self.intervene(request).result(timeout=CONTROL_TIMEOUT)
                return 200, json.dumps({"applied": answer})
            if path == "/admin/reload":
                if not isinstance(request, dict) or set(request) - {"path", "version"}:
                    raise ConfigError('reload: the body may hold only "path" and "version"')
                spec, version = request.get("path"), request.get("version")
                for key, v in (("path", spec), ("version", version)):
                    if v is not None and (not isinstance(v, str) or not v):
                        raise ConfigError(f"{key}: must be a non-empty string, got {v!r}")
                result = self.reload(spec, version).result(timeout=CONTROL_TIMEOUT)
                return {"success": 200, "failure": 422, "busy": 409}[result["result"]], json.dumps(result)
        except json.JSONDecodeError as e:
            return 400, json.dumps({"error": f"invalid JSON: {e}"})
        except ConfigError as e:
            return 400, json.dumps({"error": str(e)})
        except TimeoutError:
            return 503, json.dumps({"error": f"the serving loop did not answer within {CONTROL_TIMEOUT:g} s"})
        return 404, json.dumps({"error": f"no such control endpoint: {method} {path}"})

    def close(self) -> None:
        """Stops the service: pending requests are answered, the model is marked unloaded."""
        self._between_steps()
        self._metrics.model_info.remove(*self.policy.identity().values())
        self.registry.set_model_loaded(False)
        self.envs.close()
        if self._twin is not None:
            self._twin.close()
        if self._own_trail and self.trail is not None:
            self.trail.close()

    def __enter__(self) -> PolicyService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_intervention(request: Any, num_envs: int, act_dim: int) -> dict[str, Any]:
    """An operator's request, checked: ``action`` (one of :data:`INTERVENTIONS`), ``reason`` and
    ``operator`` (non-empty strings up to 200 characters), ``envs`` (env indices; ``override``
    needs them, ``release`` may omit them) and, for ``override``, ``value`` (one normalised action
    in [-1, 1] for every env named). Anything else is a :class:`ConfigError` naming it."""
    if not isinstance(request, dict):
        raise ConfigError(f"intervention: must be a JSON object, got {type(request).__name__}")
    unknown = set(request) - {"action", "reason", "operator", "envs", "value"}
    if unknown:
        raise ConfigError(f"intervention: unknown field {sorted(unknown)[0]!r}")
    action = request.get("action")
    if action not in INTERVENTIONS:
        raise ConfigError(f"action: must be one of {', '.join(INTERVENTIONS)}, got {action!r}")
    out: dict[str, Any] = {"action": action}
    for key in ("reason", "operator"):
        v = request.get(key)
        if not isinstance(v, str) or not v.strip() or len(v) > 200:
            raise ConfigError(f"{key}: must be a non-empty string of at most 200 characters, got {v!r}")
        out[key] = v.strip()
    envs = request.get("envs")
    if envs is not None:
        if not isinstance(envs, list) or not envs or not all(type(i) is int for i in envs):
            raise ConfigError(f"envs: must be a non-empty list of env indices, got {envs!r}")
        bad = [i for i in envs if not 0 <= i < num_envs]
        if bad:
            raise ConfigError(f"envs: index {bad[0]} out of range 0..{num_envs - 1}")
        out["envs"] = sorted(set(envs))
    elif action == "override":
        raise ConfigError("envs: override needs the env indices it applies to")
    if action == "override":
        value = request.get("value")
        try:
            v = np.asarray(value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ConfigError(f"value: must be {act_dim} number(s), got {value!r}") from None
        if v.shape != (act_dim,) or not np.isfinite(v).all() or (np.abs(v) > 1.0).any():
            raise ConfigError(f"value: must be {act_dim} finite number(s) in [-1, 1], got {value!r}")
        out["value"] = v.astype(np.float32)
    elif "value" in request:
        raise ConfigError(f"value: only override takes a value, not {action}")
    return out
