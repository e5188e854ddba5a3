"""The body of one distributed fleet: a Rust vector env, its policy, its own registry and exporter.

Plain Python without Ray, so it can be tested and reasoned about on its own;
:mod:`neorl_industrial.distributed` runs it as a Ray actor (one process each).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import make_vec
from ._rollout import Rollout
from .metrics import Registry
from .policies import Policy, default_policy, make_policy

__all__ = ["FleetWorker", "PolicyFactory"]

PolicyFactory = Callable[[int, int, int], Policy]
"""Builds a policy from ``(num_envs, act_dim, seed)``."""


class FleetWorker:
    """``num_envs`` envs with global indices ``env_offset ..``; env ``i`` is reset with ``seed + i``.

    The global index convention is the dataset generator's: fleet ``k`` of ``n`` envs each holds the
    envs ``k * n .. (k + 1) * n - 1`` of one big batch, so a split fleet follows the same trajectories.
    """

    def __init__(
        self,
        worker: int,
        env_id: str,
        num_envs: int,
        env_offset: int,
        seed: int,
        policy: str | PolicyFactory | None,
        env_kwargs: Mapping[str, Any],
        num_threads: int | None,
        serve_metrics: bool,
        metrics_addr: str | None,
        metrics_insecure: bool = False,
    ) -> None:
        self.worker = worker
        self.node = socket.gethostname()
        self.registry = Registry()
        self.envs = make_vec(
            env_id,
            num_envs=num_envs,
            autoreset_mode="same_step",  # every batch step is a real transition of every env
            num_threads=num_threads,
            registry=self.registry,
            **env_kwargs,
        )
        act_dim = len(self.envs.core_spec["actions"])
        if callable(policy):
            self.policy: Policy = policy(num_envs, act_dim, seed + env_offset)
        else:
            name = policy or default_policy(env_id)
            self.policy = make_policy(name, env_id, num_envs, act_dim, seed=seed + env_offset)
        obs, _ = self.envs.reset(seed=seed + env_offset)
        self.rollout = Rollout(self.envs, self.policy, obs)
        self.env_steps = 0
        self.lock = threading.Lock()  # run() calls never overlap; ping() never waits for them
        self.server: Any = None
        node_ip = _node_ip()
        # Advertise an address Prometheus can reach: the node's, unless bound to a specific one.
        self.host = node_ip if metrics_addr in (None, "0.0.0.0", "::") else str(metrics_addr)
        if serve_metrics:
            from .exporter import start_http_server

            self.server = start_http_server(
                0, addr=metrics_addr or node_ip, registry=self.registry, insecure=metrics_insecure
            )

    def info(self) -> dict[str, Any]:
        """Who and where this worker is, and where its exporter listens (``None`` without one)."""
        return {
            "worker": self.worker,
            "node": self.node,
            "host": self.host,
            "pid": os.getpid(),
            "port": None if self.server is None else self.server.port,
            "num_envs": self.envs.num_envs,
        }

    def ping(self) -> dict[str, Any]:
        """Answers while a run is in progress (the actor serves calls on two threads)."""
        return {"worker": self.worker, "node": self.node, "pid": os.getpid(), "env_steps": self.env_steps}

    def run(self, batch_steps: int) -> dict[str, Any]:
        """Steps every env ``batch_steps`` times; returns what happened in this call."""
        with self.lock:
            t0 = time.perf_counter()
            n = self.envs.num_envs
            # Safety tallies come from the batch's own running totals, before and after.
            safety = self.envs.safety
            cost0, shut0, viol0 = safety.cost, sum(safety.shutdowns.values()), safety.steps_in_violation
            episode_returns: list[float] = []
            for t in self.rollout.run(batch_steps):
                episode_returns.extend(t.episode_returns.tolist())
            viol1 = safety.steps_in_violation
            violations = {name: viol1[name] - viol0[name] for name in self.envs.constraint_names}
            cost = safety.cost - cost0
            shutdowns = sum(safety.shutdowns.values()) - shut0
            self.env_steps += batch_steps * n
            return {
                "worker": self.worker,
                "node": self.node,
                "env_steps": batch_steps * n,
                "episode_returns": episode_returns,
                "cost": cost,
                "violation_steps": violations,
                "shutdowns": shutdowns,
                "seconds": time.perf_counter() - t0,
            }

    def push(self, gateway: str, job: str, grouping_key: Mapping[str, str], timeout: float) -> None:
        """Pushes this worker's registry to a Pushgateway (replacing its group)."""
        from .exporter import push_to_gateway

        push_to_gateway(gateway, job, self.registry, grouping_key=grouping_key, timeout=timeout)

    def metrics_text(self) -> str:
        """This worker's metrics in the Prometheus text format."""
        return self.registry.generate_latest().decode()

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.envs.close()


def _node_ip() -> str:
    """The IP address of this Ray node (127.0.0.1 outside Ray)."""
    try:
        import ray

        return str(ray.util.get_node_ip_address())
    except Exception:  # not in a Ray worker, or ray not installed
        return "127.0.0.1"
