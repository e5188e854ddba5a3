"""MLflow tracking of training and evaluation: returns, safety and throughput, env spec, audit trail.

* :class:`MlflowCallback` follows training episode by episode: return, length, cost, alarms raised by
  constraint, emergency shutdowns and throughput, buffered and written with one
  ``mlflow.log_metrics(..., step=global_step)`` call every ``log_every`` steps. It is a
  Stable-Baselines3 callback (``model.learn(..., callback=MlflowCallback())``) when SB3 is installed,
  and a plain callable ``callback(step, obs, reward, terminated, truncated, info)`` for custom loops
  on a neorl_industrial vector env (or a single env).
* :func:`log_env_spec` logs the env spec and the constraint set as params (and the full spec as a
  JSON artifact); :func:`log_evaluation` logs the results of
  :func:`neorl_industrial.safety.evaluate_with_safety`; :func:`log_audit_trail` and
  :func:`log_dataset_metadata` log the audit trail and a dataset's metadata as artifacts.

Everything logs to the active run (``mlflow.start_run()``), or to ``run_id`` when given. mlflow
(and SB3) are imported on first use: ``pip install 'neorl-industrial[mlflow]'``.

Correlation: :func:`log_env_spec`, :func:`log_evaluation` and :func:`log_audit_trail` tag the MLflow
run with ``neorl_industrial.run_id``, the ``run_id`` of the package's log lines and audit events
(:func:`neorl_industrial.logging.run_id`; not MLflow's own run id). The incidents artifact's
``constraint``, ``start_step`` and ``end_step`` are the audit trail's; its ``episode`` is the index
of the evaluated episode (from 0), not the env's episode number.

Metric names (``prefix`` defaults to ``train/``; evaluation uses ``eval/``):

* ``{prefix}episode_return``, ``episode_length``, ``episode_cost``: means over the episodes that
  ended since the previous flush;
* ``{prefix}violations/<constraint>``: alarms raised per episode (an alarm active on an episode's
  first step counts once), same window; ``{prefix}violations_per_episode``: their sum;
* ``{prefix}shutdown_rate``: fraction of those episodes ended by an emergency shutdown;
* ``{prefix}episodes_total``, ``{prefix}shutdowns_total`` and ``{prefix}shutdowns_total/<constraint>``:
  running totals;
* ``{prefix}throughput_steps_per_second``: env transitions per second of wall time since the
  previous flush.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neorl_industrial.exceptions import ConfigError

__all__ = [
    "MlflowCallback",
    "log_audit_trail",
    "log_dataset_metadata",
    "log_env_spec",
    "log_evaluation",
    "spec_params",
]

_MAX_PARAM_LENGTH = 6000  # mlflow's limit on a param value
_EVALUATION_KEYS = (
    "returns",
    "mean_return",
    "std_return",
    "mean_length",
    "mean_cost",
    "violations_per_episode",
    "violations",
    "critical_violations",
    "shutdowns",
    "shield_interventions",
    "constraint_satisfaction_rate",
)


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError as e:
        raise ImportError(
            "neorl_industrial.integrations.mlflow needs mlflow: pip install 'neorl-industrial[mlflow]'"
        ) from e
    return mlflow


def _key(name: str) -> str:
    """A metric or param name mlflow accepts (letters, digits, ``_ - . / space``)."""
    return re.sub(r"[^0-9A-Za-z_\-./ ]", "_", str(name))


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into JSON types."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    return str(o)


# --------------------------------------------------------------------------- env spec
def _spec_of(env: Any) -> dict[str, Any]:
    """The core spec of an env, a vector env, an SB3 ``VecEnv`` over one, or a spec itself."""
    if isinstance(env, Mapping):
        spec: Any = env
    elif hasattr(env, "core_spec"):
        spec = env.core_spec
    elif hasattr(getattr(env, "unwrapped", None), "core_spec"):
        spec = env.unwrapped.core_spec
    else:
        spec = None
        if hasattr(env, "get_attr"):  # an SB3 VecEnv (or its wrappers) over neorl_industrial envs
            try:
                spec = env.get_attr("core_spec")[0]
            except AttributeError:
                spec = None
    if not isinstance(spec, Mapping) or "id" not in spec or "constraints" not in spec:
        raise ConfigError(
            "env: needs a neorl_industrial env, vector env, SB3 VecEnv over one, or its core_spec; "
            f"got {type(env).__name__}"
        )
    return dict(spec)


def spec_params(spec: Mapping[str, Any], num_envs: int | None = None) -> dict[str, str]:
    """The params :func:`log_env_spec` logs for a core spec.

    Args:
        spec: A core spec (``env.core_spec``).
        num_envs: Batch size, logged as ``env.num_envs`` when given.

    Returns:
        ``env.id``, ``env.dt``, ``env.horizon``, ``env.observations``, ``env.actions`` (names with
        units), ``constraints`` (the names) and ``constraint.<name>`` (each entry as compact JSON).
    """

    def var(v: Mapping[str, Any]) -> str:
        return f"{v['name']} [{v['unit']}]" if v.get("unit") else str(v["name"])

    params: dict[str, Any] = {
        "env.id": spec["id"],
        "env.dt": f"{spec.get('dt')} {spec.get('dt_unit', '')}".strip(),
        "env.horizon": spec.get("horizon"),
        "env.observations": ", ".join(var(v) for v in spec.get("observations", [])),
        "env.actions": ", ".join(var(v) for v in spec.get("actions", [])),
        "constraints": ", ".join(c["name"] for c in spec["constraints"]) or "(none)",
    }
    if num_envs is not None:
        params["env.num_envs"] = int(num_envs)
    for c in spec["constraints"]:
        entry = {k: v for k, v in c.items() if k != "name"}
        params[f"constraint.{_key(c['name'])}"] = json.dumps(
            _jsonable(entry), sort_keys=True, separators=(",", ":")
        )
    return {_key(k): str(v)[:_MAX_PARAM_LENGTH] for k, v in params.items()}


def log_env_spec(env: Any, run_id: str | None = None) -> dict[str, str]:
    """Logs an environment's spec and constraint set as params, and the full spec as ``env/spec.json``.

    Args:
        env: A neorl_industrial env or vector env, an SB3 ``VecEnv`` over one
            (:class:`~neorl_industrial.integrations.sb3.SB3VecEnv`, possibly wrapped), or a core spec.
        run_id: Run to log to (default: the active run).

    Returns:
        The params logged.

    Raises:
        ConfigError: ``env`` has no neorl_industrial spec.
    """
    spec = _spec_of(env)
    num_envs = None if isinstance(env, Mapping) else getattr(env, "num_envs", None)
    params = spec_params(spec, num_envs)
    mlflow = _mlflow()
    mlflow.log_params(params, run_id=run_id)
    mlflow.log_dict(_jsonable(spec), "env/spec.json", run_id=run_id)
    _tag_run_id(mlflow, run_id)
    return params


RUN_ID_TAG = "neorl_industrial.run_id"
"""The MLflow tag holding the ``run_id`` of the package's log lines and audit events."""


def _tag_run_id(mlflow: Any, run_id: str | None) -> None:
    from .. import logging as nlog

    if run_id is None:
        mlflow.set_tag(RUN_ID_TAG, nlog.run_id())
    else:
        mlflow.MlflowClient().set_tag(run_id, RUN_ID_TAG, nlog.run_id())


# --------------------------------------------------------------------------- evaluation
def log_evaluation(
    results: Mapping[str, Any],
    step: int | None = None,
    prefix: str = "eval/",
    run_id: str | None = None,
    log_incidents: bool = True,
) -> dict[str, float]:
    """Logs the results of :func:`~neorl_industrial.safety.evaluate_with_safety` in one call.

    Args:
        results: The dict ``evaluate_with_safety`` returns.
        step: Global step the evaluation belongs to (e.g. training timesteps so far).
        prefix: Metric name prefix.
        run_id: Run to log to (default: the active run).
        log_incidents: Also log the closed incidents as ``evaluation/incidents_step_<step>.json``
            (when there are any).

    Returns:
        The metrics logged, prefixed: ``mean_return``, ``std_return``, ``min_return``,
        ``max_return``, ``episodes``, ``mean_length``, ``mean_cost``; per episode, as the training
        metrics: ``violations/<constraint>`` (alarms raised), ``violations_per_episode`` and
        ``shutdown_rate``; totals over the evaluation: ``violations_total/<constraint>``,
        ``critical_violations``, ``shutdowns`` and ``shield_interventions``; and
        ``constraint_satisfaction_rate`` (share of steps without an active alarm).

    Raises:
        ConfigError: ``results`` is not such a dict.
    """
    if not isinstance(results, Mapping):
        raise ConfigError(
            f"results: must be the dict evaluate_with_safety returns, got {type(results).__name__}"
        )
    missing = [k for k in _EVALUATION_KEYS if k not in results]
    if missing:
        raise ConfigError(f"results: missing {', '.join(missing)} (expected evaluate_with_safety's dict)")
    if not isinstance(results["violations"], Mapping):
        raise ConfigError("results: 'violations' must map constraint names to counts")
    episodes = len(results["returns"])
    if episodes < 1:
        raise ConfigError("results: 'returns' is empty; evaluate at least one episode")
    metrics: dict[str, float] = {
        k: float(results[k]) for k in _EVALUATION_KEYS if k not in ("returns", "violations")
    }
    metrics["min_return"] = float(np.min(results["returns"]))
    metrics["max_return"] = float(np.max(results["returns"]))
    metrics["episodes"] = float(episodes)
    metrics["shutdown_rate"] = float(results["shutdowns"]) / episodes
    for name, count in results["violations"].items():
        metrics[f"violations/{name}"] = float(count) / episodes
        metrics[f"violations_total/{name}"] = float(count)
    metrics = {_key(prefix + k): v for k, v in metrics.items()}
    mlflow = _mlflow()
    mlflow.log_metrics(metrics, step=step, run_id=run_id)
    _tag_run_id(mlflow, run_id)
    incidents = results.get("incidents")
    if log_incidents and incidents:
        name = f"evaluation/incidents_step_{step if step is not None else 0}.json"
        mlflow.log_dict({"step": step, "incidents": _jsonable(list(incidents))}, name, run_id=run_id)
    return metrics


# --------------------------------------------------------------------------- artifacts
def _trail_path(source: Any) -> Path:
    if isinstance(source, (str, os.PathLike)):
        return Path(source)
    trail = source
    for owner in (source, getattr(source, "vector_env", None), getattr(source, "unwrapped", None)):
        if owner is not None and hasattr(owner, "audit_trail"):
            trail = owner.audit_trail
            if trail is None:
                raise ConfigError("audit trail: the env has none (build it with audit_log=<path>)")
            break
    if not (hasattr(trail, "flush") and hasattr(trail, "path")):
        raise ConfigError(
            "audit trail: needs a path, an AuditTrail or an env built with audit_log=, "
            f"got {type(source).__name__}"
        )
    trail.flush()  # every queued event on disk before the copy
    return Path(trail.path)


def log_audit_trail(source: Any, artifact_path: str = "safety", run_id: str | None = None) -> str:
    """Logs a safety audit trail (JSON Lines) as an artifact.

    Args:
        source: The trail's path, an :class:`~neorl_industrial.safety.AuditTrail`, or an env
            (single, vector, or :class:`~neorl_industrial.integrations.sb3.SB3VecEnv`) built with
            ``audit_log=``. Trails are flushed first.
        artifact_path: Artifact directory.
        run_id: Run to log to (default: the active run).

    Returns:
        The artifact's path within the run.

    Raises:
        ConfigError: no trail to log, or its file does not exist.
    """
    path = _trail_path(source)
    if not path.is_file():
        raise ConfigError(f"audit trail: {path} does not exist")
    mlflow = _mlflow()
    mlflow.log_artifact(os.fspath(path), artifact_path, run_id=run_id)
    _tag_run_id(mlflow, run_id)
    return f"{artifact_path}/{path.name}"


def _read_metadata(path: Path) -> Any:
    # The format of neorl_industrial.datasets.save: metadata is a JSON string under "metadata".
    try:
        with np.load(path, allow_pickle=False) as f:
            if "metadata" not in f.files:
                raise ConfigError(f"dataset: {path} holds no metadata")
            return json.loads(str(f["metadata"]))
    except (OSError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"dataset: cannot read {path}: {e}") from None


def log_dataset_metadata(
    dataset: Any, artifact_file: str = "dataset/metadata.json", run_id: str | None = None
) -> dict[str, Any]:
    """Logs an offline dataset's metadata (env, spec, quality, seed, size, returns) as a JSON artifact.

    Args:
        dataset: A dataset from :func:`neorl_industrial.datasets.generate`/``load``, or the path of
            an ``.npz`` written by :func:`neorl_industrial.datasets.save` (only the metadata is read).
        artifact_file: Artifact path of the JSON file.
        run_id: Run to log to (default: the active run).

    Returns:
        The metadata logged.

    Raises:
        ConfigError: not a dataset, no metadata, or the file cannot be read.
    """
    if isinstance(dataset, (str, os.PathLike)):
        meta = _read_metadata(Path(dataset))
    elif isinstance(dataset, Mapping):
        meta = dataset.get("metadata")
    else:
        raise ConfigError(f"dataset: needs a dataset dict or a .npz path, got {type(dataset).__name__}")
    if not isinstance(meta, Mapping) or not meta:
        raise ConfigError("dataset: has no metadata (datasets.generate adds it)")
    meta = _jsonable(dict(meta))
    _mlflow().log_dict(meta, artifact_file, run_id=run_id)
    return meta


# --------------------------------------------------------------------------- training callback
class _EpisodeAccounting:
    """Per-env running episodes and the window of episodes ended since the last flush."""

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        self.n = 0
        self.total_episodes = 0
        self.total_shutdowns: dict[str, int] = {}
        self.transitions = 0
        self.seen_safety = False
        self._clear_window()

    def _clear_window(self) -> None:
        self.w_return: list[float] = []
        self.w_length: list[float] = []
        self.w_cost: list[float] = []
        self.w_raised: list[np.ndarray] = []
        self.w_shutdowns = 0

    def _ensure(self, n: int) -> None:
        if n == self.n:
            return
        if self.n:
            raise ConfigError(f"callback: the batch size changed from {self.n} to {n}")
        k = len(self.names)
        self.n = n
        self.ret = np.zeros(n)
        self.length = np.zeros(n, dtype=np.int64)
        self.cost = np.zeros(n)
        self.raised = np.zeros((n, k), dtype=np.int64)
        self.was = np.zeros((n, k), dtype=np.bool_)

    def update(
        self,
        reward: np.ndarray,
        done: np.ndarray,
        stepped: np.ndarray,
        cost: np.ndarray,
        active: np.ndarray,
        reasons: list[str | None],
        episode: dict[int, tuple[float, int]] | None = None,
    ) -> None:
        self._ensure(len(reward))
        self.transitions += int(stepped.sum())
        self.ret += np.where(stepped, reward, 0.0)
        self.length += stepped
        self.cost += np.where(stepped, cost, 0.0)
        live = stepped[:, None]
        self.raised += active & ~self.was & live
        self.was = np.where(live, active, self.was)
        for i in np.flatnonzero(done & stepped).tolist():
            r, n = (episode or {}).get(i, (self.ret[i], self.length[i]))
            self.w_return.append(float(r))
            self.w_length.append(float(n))
            self.w_cost.append(float(self.cost[i]))
            self.w_raised.append(self.raised[i].copy())
            self.total_episodes += 1
            reason = reasons[i]
            if reason is not None:
                self.w_shutdowns += 1
                self.total_shutdowns[reason] = self.total_shutdowns.get(reason, 0) + 1
            self.ret[i] = self.cost[i] = 0.0
            self.length[i] = 0
            self.raised[i] = 0
            self.was[i] = False

    @property
    def pending(self) -> bool:
        """Transitions recorded since the last flush."""
        return self.transitions > 0

    def metrics(self, prefix: str, seconds: float) -> dict[str, float]:
        m: dict[str, float] = {"episodes_total": float(self.total_episodes)}
        if seconds > 0 and self.transitions:
            m["throughput_steps_per_second"] = self.transitions / seconds
        if self.w_return:
            m["episode_return"] = float(np.mean(self.w_return))
            m["episode_length"] = float(np.mean(self.w_length))
            if self.seen_safety:
                m["episode_cost"] = float(np.mean(self.w_cost))
                per = np.mean(self.w_raised, axis=0) if self.names else np.zeros(0)
                m["violations_per_episode"] = float(per.sum())
                for name, v in zip(self.names, per.tolist(), strict=True):
                    m[f"violations/{name}"] = v
                m["shutdown_rate"] = self.w_shutdowns / len(self.w_return)
        if self.seen_safety:
            m["shutdowns_total"] = float(sum(self.total_shutdowns.values()))
            for name, count in self.total_shutdowns.items():
                m[f"shutdowns_total/{name}"] = float(count)
        self.transitions = 0
        self._clear_window()
        return {_key(prefix + k): v for k, v in m.items()}


def _names_in(info: Mapping[str, Any]) -> list[str]:
    return [k for k in info.get("violations", {}) if not k.startswith("_")]


class MlflowCallback:
    """Logs training episodes (return, length, cost, alarms by constraint, shutdowns) and throughput.

    With Stable-Baselines3 installed, ``MlflowCallback(...)`` is also an SB3 ``BaseCallback``
    (a subclass made on first use, so importing this module needs neither SB3 nor mlflow)::

        with mlflow.start_run():
            model.learn(50_000, callback=MlflowCallback(log_every=4096))

    It reads the infos of each step: an ``episode`` entry (from ``VecMonitor``) gives the return and
    length, otherwise the raw rewards are summed (through ``VecNormalize`` if present, so returns
    are never normalised ones); cost, alarms and shutdown reasons come from the neorl_industrial
    infos. At training start it logs the env spec as params (:func:`log_env_spec`) when the env is
    a neorl_industrial one.

    For a custom loop over a vector env, call it after every step with the global step (env
    transitions so far) and the step's return values, then :meth:`flush` at the end::

        cb = MlflowCallback(env=envs)
        obs, _ = envs.reset(seed=0)
        for t in range(1, 1001):
            obs, reward, terminated, truncated, info = envs.step(policy(obs))
            cb(t * envs.num_envs, obs, reward, terminated, truncated, info)
        cb.flush()

    Any autoreset mode works (in ``next_step`` mode the reset steps are not counted); a single env's
    step (scalar reward, its info) and an SB3 ``VecEnv``'s step (its list of infos) work too.

    Args:
        log_every: Steps (in the units of the global step: env transitions for SB3) between two
            flushes; each flush is one ``mlflow.log_metrics`` call.
        prefix: Metric name prefix.
        env: For the plain form: the env whose spec to log as params (at the first call) and whose
            constraint names to track. SB3 finds its training env itself.
        log_spec: Log the env spec as params.
        run_id: Run to log to (default: the active run, which mlflow starts if there is none).
        verbose: SB3's verbosity level (SB3 form only).

    Raises:
        ConfigError: ``log_every`` is not a positive integer.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> MlflowCallback:
        if cls is MlflowCallback:
            sb3_class = _sb3_callback_class()
            if sb3_class is not None:
                cls = sb3_class
        return object.__new__(cls)

    def __init__(
        self,
        log_every: int = 2048,
        prefix: str = "train/",
        env: Any = None,
        log_spec: bool = True,
        run_id: str | None = None,
        verbose: int = 0,
    ) -> None:
        if isinstance(log_every, bool) or not isinstance(log_every, (int, np.integer)) or log_every < 1:
            raise ConfigError(f"log_every: must be a positive integer, got {log_every!r}")
        self._log_every = int(log_every)
        self._prefix = prefix
        self._env = env
        self._log_spec = log_spec
        self._run_id = run_id
        self._names: list[str] | None = None
        self._acc: _EpisodeAccounting | None = None
        self._last_flush_step: int | None = None
        self._last_flush_time = time.perf_counter()
        self._global_step = 0
        self._spec_logged = False
        self.flushes = 0  # log_metrics calls so far

    # ------------------------------------------------------------------ plain form
    def __call__(
        self,
        step: int,
        obs: Any,
        reward: Any,
        terminated: Any,
        truncated: Any,
        info: Mapping[str, Any] | list[Mapping[str, Any]],
    ) -> None:
        """Records one step of a vector env (batched values, Gymnasium info), a single env or an SB3 VecEnv.

        Args:
            step: Global step after this one (e.g. env transitions so far).
            obs: The observations (unused; part of the step's signature).
            reward: The step's rewards.
            terminated: Termination flags.
            truncated: Truncation flags.
            info: The step's info: a vector env's batched dict, a single env's dict, or the list of
                per-env dicts of an SB3 ``VecEnv`` step (pass its ``dones`` as ``terminated`` and
                ``False`` as ``truncated``).

        Raises:
            ConfigError: ``info`` is none of these.
        """
        if not isinstance(info, (list, tuple, Mapping)):
            raise ConfigError(
                f"info: must be the step's info dict (or list of them), got {type(info).__name__}"
            )
        if self._env is not None and self._log_spec and not self._spec_logged:
            self._log_env(self._env)
        if self._acc is None:  # throughput is timed from the first step on
            self._last_flush_time = time.perf_counter()
        reward_arr = np.asarray(reward, dtype=np.float64)
        done = np.asarray(terminated, dtype=np.bool_) | np.asarray(truncated, dtype=np.bool_)
        if isinstance(info, (list, tuple)):  # an SB3 VecEnv's step
            if len(info) != reward_arr.size:
                raise ConfigError(f"info: {len(info)} dicts for {reward_arr.size} rewards")
            stepped = np.ones(len(info), dtype=np.bool_)
            self._update_from_infos(reward_arr.reshape(-1), done.reshape(-1), stepped, list(info))
        elif reward_arr.ndim == 0:  # a single env
            self._update_from_infos(
                reward_arr.reshape(1), done.reshape(1), np.ones(1, dtype=np.bool_), [info]
            )
        else:
            self._update_from_batched(reward_arr, done, info)
        self._advance(int(step))

    def flush(self, step: int | None = None) -> dict[str, float]:
        """Writes the buffered metrics with one ``mlflow.log_metrics`` call.

        Args:
            step: Global step to log at (default: the last step seen).

        Returns:
            The metrics logged (empty if nothing was recorded since the last flush).
        """
        step = self._global_step if step is None else int(step)
        now = time.perf_counter()
        if self._acc is None or not self._acc.pending:
            return {}
        metrics = self._acc.metrics(self._prefix, now - self._last_flush_time)
        self._last_flush_time = now
        self._last_flush_step = step
        _mlflow().log_metrics(metrics, step=step, run_id=self._run_id)
        self.flushes += 1
        return metrics

    # ------------------------------------------------------------------ accounting
    def _log_env(self, env: Any) -> None:
        log_env_spec(env, run_id=self._run_id)
        self._spec_logged = True

    def _accounting(self, names: list[str]) -> _EpisodeAccounting:
        if self._acc is None:
            self._names = self._names if self._names is not None else names
            self._acc = _EpisodeAccounting(self._names)
        return self._acc

    def _advance(self, step: int) -> None:
        self._global_step = step
        if self._last_flush_step is None:
            self._last_flush_step = 0
        if step - self._last_flush_step >= self._log_every:
            self.flush(step)

    def _env_names(self, env: Any) -> list[str] | None:
        try:
            return [c["name"] for c in _spec_of(env)["constraints"]]
        except ConfigError:
            return None

    def _update_from_batched(self, reward: np.ndarray, done: np.ndarray, info: Mapping[str, Any]) -> None:
        if "constraints" not in info and "final_info" not in info:
            raise ConfigError(
                "info: not a neorl_industrial vector env step info (no 'constraints' entry); "
                "for other envs use SB3's VecMonitor or log returns yourself"
            )
        n = len(reward)
        if self._names is None and self._env is not None:
            self._names = self._env_names(self._env)
        acc = self._accounting(_names_in(info) or _names_in(info.get("final_info", {})))
        acc.seen_safety = True
        fin_mask = np.asarray(info.get("_final_info", np.zeros(n, dtype=np.bool_)))
        fin = info.get("final_info", {})
        top_mask = np.asarray(info.get("_cost", np.zeros(n, dtype=np.bool_)))
        # Envs that reset within the step report their last step in final_info; in next_step mode
        # the reset step itself has no cost entry and is not a transition.
        stepped = top_mask | fin_mask
        cost = np.where(top_mask, info.get("cost", 0.0), 0.0)
        if fin_mask.any():
            cost = np.where(fin_mask, fin.get("cost", 0.0), cost)
        active = np.zeros((n, len(acc.names)), dtype=np.bool_)
        for j, name in enumerate(acc.names):
            col = np.asarray(info.get("violations", {}).get(name, np.zeros(n, dtype=np.bool_)))
            if fin_mask.any():
                col = np.where(fin_mask, fin.get("violations", {}).get(name, False), col)
            active[:, j] = col
        reasons: list[str | None] = [None] * n
        for src, mask in ((info, top_mask), (fin, fin_mask)):
            if "shutdown_reason" in src:
                down = np.asarray(src["_shutdown_reason"]) & mask
                for i in np.flatnonzero(down).tolist():
                    reasons[i] = str(src["shutdown_reason"][i])
        acc.update(reward, np.asarray(done, dtype=np.bool_), stepped, cost, active, reasons)

    def _update_from_infos(
        self,
        reward: np.ndarray,
        done: np.ndarray,
        stepped: np.ndarray,
        infos: list[Mapping[str, Any]],
    ) -> None:
        acc = self._accounting(_names_in(infos[0]) if infos else [])
        if any("cost" in inf for inf in infos):
            acc.seen_safety = True
        n = len(infos)
        cost = np.array([float(inf.get("cost", 0.0)) for inf in infos])
        active = np.array(
            [[bool(inf.get("violations", {}).get(name, False)) for name in acc.names] for inf in infos],
            dtype=np.bool_,
        ).reshape(n, len(acc.names))
        reasons = [inf.get("shutdown_reason") for inf in infos]
        episode = {
            i: (float(inf["episode"]["r"]), int(inf["episode"]["l"]))
            for i, inf in enumerate(infos)
            if done[i] and isinstance(inf.get("episode"), Mapping)
        }
        acc.update(reward, done, stepped, cost, active, reasons, episode)


_SB3_CLASS: Any = None


def _sb3_callback_class() -> type | None:
    """``MlflowCallback`` made an SB3 ``BaseCallback`` (``None`` without SB3); built once."""
    global _SB3_CLASS
    if _SB3_CLASS is not None:
        return _SB3_CLASS
    try:
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.vec_env import unwrap_vec_normalize
    except ImportError:
        return None

    class SB3MlflowCallback(MlflowCallback, BaseCallback):
        """:class:`MlflowCallback` as a Stable-Baselines3 callback."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            BaseCallback.__init__(self, kwargs.get("verbose", 0))
            MlflowCallback.__init__(self, *args, **kwargs)
            self._normalize: Any = None

        def _on_training_start(self) -> None:
            env = self.training_env
            if self._names is None:
                self._names = self._env_names(env)
            if self._log_spec and not self._spec_logged:
                try:
                    self._log_env(env)
                except ConfigError:
                    self._spec_logged = True  # not a neorl_industrial env: no spec to log
            # Returns are summed from raw rewards: VecNormalize keeps them for us.
            self._normalize = unwrap_vec_normalize(env)
            self._last_flush_step = self.num_timesteps
            self._last_flush_time = time.perf_counter()

        def _on_step(self) -> bool:
            infos = self.locals["infos"]
            normalize = self._normalize
            rewards = normalize.get_original_reward() if normalize is not None else self.locals["rewards"]
            done = np.asarray(self.locals["dones"], dtype=np.bool_)
            self._update_from_infos(
                np.asarray(rewards, dtype=np.float64), done, np.ones(len(done), dtype=np.bool_), infos
            )
            self._advance(self.num_timesteps)
            return True

        def _on_training_end(self) -> None:
            self.flush(self.num_timesteps)

    SB3MlflowCallback.__module__ = __name__
    _SB3_CLASS = SB3MlflowCallback
    return _SB3_CLASS
