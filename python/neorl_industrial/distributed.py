"""Scale out on Ray: fleets of Rust vector envs as Ray actors, datasets split over Ray tasks.

::

    import ray
    from neorl_industrial.distributed import FleetPool, generate_dataset

    ray.init()  # or ray.init(address="auto") on a cluster
    with FleetPool("ChemicalReactor-v0", num_fleets=4, num_envs=256, file_sd="targets.json") as pool:
        results = pool.run(batch_steps=1_000, timeout=600)
        print(sum(r.env_steps for r in results))

    data = generate_dataset("ChemicalReactor-v0", "expert", n_transitions=10_000_000, num_workers=8)

Determinism: every random draw of a dataset depends only on (seed, global env index, step), so
``generate_dataset(..., num_workers=K)`` returns the same arrays, byte for byte, as
:func:`neorl_industrial.datasets.generate` with the same arguments, whatever ``K``. Fleet ``k`` of a pool
holds the envs ``k * num_envs ..`` of one big batch, seeded the same way.

Metrics: every fleet records into its own registry. With ``file_sd=path`` each fleet serves an exporter
on an ephemeral port of its node and the driver writes a Prometheus ``file_sd`` target file (one group
per fleet, labelled ``worker`` and ``node``); with ``pushgateway=url`` each fleet pushes its metrics at
the end of every :meth:`FleetPool.run`. :meth:`FleetPool.register_health_checks` adds each fleet's
liveness to the driver's ``/health/detailed``.

Needs the ``ray`` extra: ``pip install 'neorl-industrial[ray]'``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import make_vec
from ._dataset_layout import cut_as_timeouts, keep_mask, metadata
from ._fleet_worker import FleetWorker, PolicyFactory
from ._progress import Progress
from .datasets import QUALITIES, summary, timelines
from .exceptions import ConfigError, NeorlError
from .metrics import REGISTRY, Registry
from .policies import default_policy, make_policy

try:
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("neorl_industrial.distributed needs ray: pip install 'neorl-industrial[ray]'") from e

__all__ = [
    "FleetPool",
    "FleetResult",
    "WorkerError",
    "WorkerTimeoutError",
    "generate_dataset",
    "write_file_sd",
]


class WorkerError(NeorlError, RuntimeError):
    """A Ray worker died or could not be started."""


class WorkerTimeoutError(WorkerError, TimeoutError):
    """Workers did not finish within the timeout; ``pending`` lists them."""

    def __init__(self, message: str, pending: Sequence[int]) -> None:
        super().__init__(message)
        self.pending = list(pending)


@dataclass(frozen=True)
class FleetResult:
    """What one fleet did in one :meth:`FleetPool.run`."""

    worker: int
    node: str
    env_steps: int
    episode_returns: list[float] = field(repr=False)
    cost: float
    violation_steps: dict[str, int]
    shutdowns: int
    seconds: float

    @property
    def episodes(self) -> int:
        """Episodes that ended during the run."""
        return len(self.episode_returns)

    @property
    def mean_return(self) -> float | None:
        """Mean return of the episodes that ended during the run (``None`` if none did)."""
        return float(np.mean(self.episode_returns)) if self.episode_returns else None


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name}: must be a positive integer, got {value!r}")
    return int(value)


def _timeout(value: float | None) -> float | None:
    if value is not None and not (isinstance(value, (int, float)) and value > 0):
        raise ConfigError(f"timeout: must be a positive number of seconds or None, got {value!r}")
    return None if value is None else float(value)


def _threads(options: Mapping[str, Any]) -> int:
    """Rayon threads for a worker: the CPUs Ray reserved for it (at least one)."""
    return max(1, int(options.get("num_cpus", 1) or 1))


_pending_lock = threading.Lock()
_pending_tasks = 0


def _tasks_pending(delta: int) -> None:
    """Moves ``queue_depth{queue="fleet_tasks"}`` of the process-wide registry by ``delta``."""
    global _pending_tasks
    with _pending_lock:
        _pending_tasks += delta
        REGISTRY.set_queue_depth("fleet_tasks", _pending_tasks)


def _gather(
    refs: list[Any], names: list[int], timeout: float | None, bar: Any, sizes: list[int] | None = None
) -> list[Any]:
    """Every ref's value, in order, under one overall timeout; fails as soon as one worker died.
    The refs still pending count in ``queue_depth{queue="fleet_tasks"}``."""
    pending = list(refs)
    _tasks_pending(len(pending))
    try:
        return _wait_all(refs, pending, names, timeout, bar, sizes)
    finally:
        _tasks_pending(-len(pending))


def _wait_all(
    refs: list[Any],
    pending: list[Any],
    names: list[int],
    timeout: float | None,
    bar: Any,
    sizes: list[int] | None,
) -> list[Any]:
    """The loop of :func:`_gather`: takes finished refs out of ``pending`` (in place)."""
    index = {ref: i for i, ref in enumerate(refs)}
    out: list[Any] = [None] * len(refs)
    deadline = None if timeout is None else time.monotonic() + timeout
    while pending:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, still = ray.wait(pending, num_returns=1, timeout=left)
        if not ready:
            late = sorted(names[index[r]] for r in pending)
            raise WorkerTimeoutError(f"workers {late} did not finish within {timeout:g} s", late)
        pending[:] = still
        _tasks_pending(-1)
        i = index[ready[0]]
        try:
            out[i] = ray.get(ready[0])
        except RayActorError as e:
            raise WorkerError(f"worker {names[i]} died: {_reason(e)}") from e
        if bar is not None and sizes is not None:
            bar.update(sizes[i])
    return out


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


# --------------------------------------------------------------------------- datasets
def _dataset_chunk(
    env_id: str,
    quality: str,
    steps: int,
    seed: int,
    num_envs: int,
    env_offset: int,
    env_kwargs: dict[str, Any],
) -> dict[str, np.ndarray]:
    """The full timelines ``(num_envs, steps, ...)`` of the envs ``env_offset ..`` (a Ray task)."""
    envs = make_vec(env_id, num_envs=num_envs, autoreset_mode="same_step", **{"metrics": False, **env_kwargs})
    try:
        return timelines(envs, quality, steps, seed, env_offset, progress=False)
    finally:
        envs.close()


def _split(total: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous (offset, size) ranges covering ``range(total)``, sizes differing by one at most."""
    base, extra = divmod(total, parts)
    out, offset = [], 0
    for k in range(parts):
        size = base + (k < extra)
        out.append((offset, size))
        offset += size
    return out


def generate_dataset(
    env_id: str,
    quality: str = "expert",
    n_transitions: int | None = None,
    n_episodes: int | None = None,
    seed: int = 0,
    num_envs: int = 64,
    progress: bool = True,
    *,
    num_workers: int = 1,
    timeout: float | None = None,
    worker_options: Mapping[str, Any] | None = None,
    **env_kwargs: Any,
) -> dict[str, Any]:
    """:func:`neorl_industrial.datasets.generate` split over ``num_workers`` Ray tasks.

    The ``num_envs`` envs are split into ``num_workers`` contiguous ranges; each task steps its range
    for the whole run and the driver joins them in env order and cuts the result exactly as the
    single-process generator does, so the dataset (arrays and metadata) is the same for any
    ``num_workers``. Ray must be initialised (``ray.init``) or it starts a local instance.

    Args:
        num_workers: Ray tasks (at most ``num_envs``).
        timeout: Seconds to wait for all tasks; :class:`WorkerTimeoutError` after that.
        worker_options: Ray task options (default ``{"num_cpus": 1}``); the Rust batch of a task uses
            as many threads as its ``num_cpus``.
        progress: A progress bar on stderr, advanced as tasks finish.
    """
    if quality not in QUALITIES:
        raise ConfigError(f"quality: must be one of {', '.join(QUALITIES)}, got {quality!r}")
    if (n_transitions is None) == (n_episodes is None):
        raise ConfigError("give exactly one of n_transitions and n_episodes")
    for name, value in (("n_transitions", n_transitions), ("n_episodes", n_episodes)):
        if value is not None:
            _positive_int(name, value)
    num_envs = _positive_int("num_envs", num_envs)
    num_workers = _positive_int("num_workers", num_workers)
    if num_workers > num_envs:
        raise ConfigError(f"num_workers: at most num_envs ({num_envs}) workers, got {num_workers}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed: must be a non-negative integer, got {seed!r}")
    timeout = _timeout(timeout)
    options = {"num_cpus": 1, **(worker_options or {})}
    probe = make_vec(env_id, num_envs=1, metrics=False, **env_kwargs)  # bad ids and options fail here
    if n_transitions is not None:
        steps = math.ceil(n_transitions / num_envs)
    else:
        steps = math.ceil(n_episodes / num_envs) * probe.horizon  # type: ignore[operator]
    task_kwargs = {"num_threads": _threads(options), **env_kwargs}
    task = ray.remote(_dataset_chunk).options(**options)
    ranges = _split(num_envs, num_workers)
    refs = [task.remote(env_id, quality, steps, seed, n, off, task_kwargs) for off, n in ranges]
    bar = Progress(steps * num_envs, f"{probe.env_id} {quality} x{num_workers} workers", progress)
    try:
        chunks = _gather(refs, list(range(num_workers)), timeout, bar, [n * steps for _, n in ranges])
    except BaseException:
        for ref in refs:  # the dataset is lost: free the CPUs the other tasks hold
            ray.cancel(ref, force=True)
        raise
    finally:
        bar.close()
    data = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    keep = keep_mask(data["terminals"] | data["timeouts"], n_transitions, n_episodes)
    cut_as_timeouts(keep, data["terminals"], data["timeouts"])
    ds: dict[str, Any] = {k: v[keep] for k, v in data.items()}
    ds["metadata"] = metadata(probe, quality, seed, num_envs, 0, env_kwargs, ds)
    probe.close()
    if progress:
        print(summary(ds), file=sys.stderr)
    return ds


# --------------------------------------------------------------------------- fleets
def write_file_sd(path: str | os.PathLike[str], groups: Sequence[Mapping[str, Any]]) -> Path:
    """Writes a Prometheus ``file_sd`` target file atomically (Prometheus never reads half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(list(groups), f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


_ACTOR: Any = None


def _actor_class() -> Any:
    global _ACTOR
    if _ACTOR is None:
        _ACTOR = ray.remote(FleetWorker)
    return _ACTOR


class FleetPool:
    """``num_fleets`` Ray actors, each stepping a Rust vector env of ``num_envs`` envs with a policy.

    Args:
        env_id: Catalogue id.
        num_fleets: Actors (one process each).
        num_envs: Envs per actor; fleet ``k`` holds the global envs ``k * num_envs ..``, env ``i``
            reset with ``seed + i``.
        seed: Base seed.
        policy: A baseline name (``random``, ``zero``, ``pid``; default: the env's baseline) or a
            picklable factory ``(num_envs, act_dim, seed) -> Policy`` run inside each actor.
        file_sd: Path of a Prometheus ``file_sd`` target file to write; each actor then serves an
            exporter on an ephemeral port, listed with ``worker`` and ``node`` labels.
        file_sd_labels: More labels for every target group.
        serve_metrics: Serve exporters without a target file (default: only with ``file_sd``).
        metrics_addr: Address the exporters bind and advertise (default: the Ray node's IP).
        metrics_insecure: Let the exporters serve beyond loopback without authentication (a
            node's IP on a cluster is beyond loopback: refused without this).
        pushgateway: Pushgateway URL; each actor pushes its metrics at the end of every run, grouped
            by ``worker`` and ``node``, as job ``push_job``.
        actor_options: Ray actor options (default ``{"num_cpus": 1}``); the Rust batch uses as
            many threads as ``num_cpus``.
        start_timeout: Seconds to wait for the actors to start.
        **env_kwargs: Environment options, as for :func:`neorl_industrial.make_vec`.
    """

    def __init__(
        self,
        env_id: str,
        num_fleets: int,
        num_envs: int = 64,
        *,
        seed: int = 0,
        policy: str | PolicyFactory | None = None,
        file_sd: str | os.PathLike[str] | None = None,
        file_sd_labels: Mapping[str, str] | None = None,
        serve_metrics: bool | None = None,
        metrics_addr: str | None = None,
        metrics_insecure: bool = False,
        pushgateway: str | None = None,
        push_job: str = "neorl-industrial",
        actor_options: Mapping[str, Any] | None = None,
        start_timeout: float = 120.0,
        **env_kwargs: Any,
    ) -> None:
        num_fleets = _positive_int("num_fleets", num_fleets)
        num_envs = _positive_int("num_envs", num_envs)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed: must be a non-negative integer, got {seed!r}")
        if policy is not None and not callable(policy) and not isinstance(policy, str):
            raise ConfigError(f"policy: must be a baseline name or a factory, got {type(policy).__name__}")
        probe = make_vec(env_id, num_envs=1, metrics=False, **env_kwargs)
        self.env_id = probe.env_id
        if not callable(policy):
            make_policy(policy or default_policy(self.env_id), self.env_id, 1, 1)  # unknown names fail here
        probe.close()
        self.num_envs = num_envs
        self.file_sd = None if file_sd is None else Path(file_sd)
        self.file_sd_labels = dict(file_sd_labels or {})
        self.pushgateway, self.push_job = pushgateway, push_job
        self._checks: list[tuple[str, Registry | None]] = []
        options = {"num_cpus": 1, **(actor_options or {})}
        # Two concurrent calls per actor: run() on one thread, ping() answers on the other.
        cls = _actor_class().options(max_concurrency=2, **options)
        serve = self.file_sd is not None if serve_metrics is None else bool(serve_metrics)
        threads = env_kwargs.pop("num_threads", _threads(options))
        self.actors = [
            cls.remote(
                k, self.env_id, num_envs, k * num_envs, seed, policy, env_kwargs, threads, serve, metrics_addr,
                metrics_insecure,
            )
            for k in range(num_fleets)
        ]
        self.workers: list[dict[str, Any]] = []
        try:
            self.workers = _gather(
                [a.info.remote() for a in self.actors], list(range(num_fleets)), _timeout(start_timeout), None
            )
        except WorkerTimeoutError as e:
            self._kill()
            raise WorkerTimeoutError(
                f"workers {e.pending} did not start within {start_timeout:g} s: the cluster may lack the "
                f"resources they ask for ({options})",
                e.pending,
            ) from None
        except BaseException:
            self._kill()
            raise
        if self.file_sd is not None:
            write_file_sd(self.file_sd, self.target_groups())

    # ------------------------------------------------------------------ metrics
    @property
    def targets(self) -> list[str]:
        """``host:port`` of every actor's exporter (empty without exporters)."""
        return [f"{w['host']}:{w['port']}" for w in self.workers if w["port"] is not None]

    def target_groups(self) -> list[dict[str, Any]]:
        """The ``file_sd`` groups: one per actor, labelled ``worker`` and ``node``."""
        return [
            {
                "targets": [f"{w['host']}:{w['port']}"],
                "labels": {**self.file_sd_labels, "worker": str(w["worker"]), "node": w["node"]},
            }
            for w in self.workers
            if w["port"] is not None
        ]

    def push(self, gateway: str | None = None, job: str | None = None, timeout: float = 30.0) -> None:
        """Each actor pushes its metrics to the Pushgateway, grouped by ``worker`` and ``node``."""
        gateway = gateway or self.pushgateway
        if not gateway:
            raise ConfigError("pushgateway: no gateway URL given")
        refs = [
            a.push.remote(gateway, job or self.push_job, {"worker": str(w["worker"]), "node": w["node"]}, timeout)
            for a, w in zip(self.actors, self.workers, strict=True)
        ]
        _gather(refs, self._names(), timeout + 5.0, None)

    def metrics_text(self, worker: int, timeout: float = 30.0) -> str:
        """One actor's metrics in the Prometheus text format."""
        return str(_gather([self.actors[worker].metrics_text.remote()], [worker], timeout, None)[0])

    # ------------------------------------------------------------------ work
    def run(
        self, batch_steps: int, *, timeout: float | None = None, progress: bool | None = None
    ) -> list[FleetResult]:
        """Steps every fleet ``batch_steps`` times in parallel; one result per fleet, in order.

        ``progress``: a bar on stderr advanced as fleets finish (default: when stderr is a terminal).

        Raises:
            WorkerTimeoutError: not every fleet finished within ``timeout`` seconds (the late ones
                go on with their call; :meth:`close` stops them).
            WorkerError: an actor died.
        """
        batch_steps = _positive_int("batch_steps", batch_steps)
        timeout = _timeout(timeout)
        refs = [a.run.remote(batch_steps) for a in self.actors]
        sizes = [batch_steps * self.num_envs] * len(self.actors)
        show = sys.stderr.isatty() if progress is None else progress
        bar = Progress(sum(sizes), f"{self.env_id} x{len(self.actors)} fleets", show)
        try:
            out = _gather(refs, self._names(), timeout, bar, sizes)
        finally:
            bar.close()
        if self.pushgateway:
            self.push()
        return [FleetResult(**r) for r in out]

    # ------------------------------------------------------------------ health
    def liveness(self, timeout: float = 2.0) -> dict[int, tuple[bool, str]]:
        """Pings every actor at once: ``{worker: (live, message)}``; dead or silent ones are not live."""
        refs = [a.ping.remote() for a in self.actors]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        done = set(ready)
        return {
            k: _ping_result(ref, timeout) if ref in done else (False, _silent(timeout))
            for k, ref in zip(self._names(), refs, strict=True)
        }

    def register_health_checks(
        self, registry: Registry | None = None, *, timeout: float = 2.0, interval: float = 5.0
    ) -> list[str]:
        """Adds one check per actor, ``ray_worker_<k>``, to the driver's ``/health/detailed``.

        A check passes while its actor answers a ping within ``timeout`` seconds and fails once it
        died or stopped answering. Returns the check names; :meth:`close` removes them.
        """
        from .exporter import register_health_check

        names = []
        for k, actor in zip(self._names(), self.actors, strict=True):
            name = f"ray_worker_{k}"
            register_health_check(
                name, _Ping(actor, timeout), timeout=timeout + 1.0, interval=interval, registry=registry
            )
            self._checks.append((name, registry))
            names.append(name)
        return names

    # ------------------------------------------------------------------ lifetime
    def close(self, timeout: float = 10.0) -> None:
        """Removes the health checks, empties the target file, stops the exporters and the actors."""
        from .exporter import unregister_health_check

        for name, registry in self._checks:
            unregister_health_check(name, registry)
        self._checks = []
        if self.file_sd is not None:
            write_file_sd(self.file_sd, [])
        refs = [a.close.remote() for a in self.actors]
        ray.wait(refs, num_returns=len(refs), timeout=timeout)
        self._kill()

    def _kill(self) -> None:
        for a in self.actors:
            ray.kill(a)
        self.actors = []

    def _names(self) -> list[int]:
        return [w["worker"] for w in self.workers] if self.workers else list(range(len(self.actors)))

    def __enter__(self) -> FleetPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FleetPool {self.env_id} {len(self.actors)} fleets x {self.num_envs} envs>"


class _Ping:
    """A health check: the actor answers a ping within the timeout."""

    def __init__(self, actor: Any, timeout: float) -> None:
        self.actor, self.timeout = actor, timeout

    def __call__(self) -> tuple[str, str]:
        live, message = _ping_result(self.actor.ping.remote(), self.timeout)
        return ("pass" if live else "fail", message)


def _silent(timeout: float) -> str:
    return f"not live: no answer within {timeout:g} s"


def _ping_result(ref: Any, timeout: float) -> tuple[bool, str]:
    try:
        p = ray.get(ref, timeout=timeout)
    except GetTimeoutError:
        return False, _silent(timeout)
    except RayActorError as e:
        return False, f"not live: actor died ({_reason(e)})"
    return True, f"live: pid {p['pid']} on {p['node']}, {p['env_steps']} env steps"
