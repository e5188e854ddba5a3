"""The ``neorl-industrial`` command.

``neorl-industrial run``      steps a vectorized fleet with a baseline policy and prints a summary.
``neorl-industrial serve``    runs a monitored simulation with the metrics and health exporter until stopped.
``neorl-industrial envs``     prints the catalogue.
``neorl-industrial dataset``  writes an offline dataset.
``neorl-industrial bench``    prints a throughput table for this machine.
``neorl-industrial intervene`` pauses, resumes, shuts down, overrides or reloads a serving process.

``run`` and ``serve`` stop cleanly on SIGINT (Ctrl-C) and SIGTERM: the steps taken so far are
summarised, the audit trail gets its ``run_end`` line and is flushed, and the exit status is 130
(SIGINT) or 143 (SIGTERM) for an interrupted ``run``, 0 for ``serve``. An audit trail that cannot
be written at start is an error (status 2); events lost mid-run are counted, reported on stderr and
in the summary, and make the status 1.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from . import _intervene, env_ids, make_vec, offline, spec
from ._faults import is_fault_file, load_faults, parse_fault_arg
from ._progress import Progress
from ._rollout import Rollout
from .exceptions import ConfigError, NeorlError
from .policies import POLICIES, default_policy, make_policy
from .safety import AuditTrail

__all__ = ["main", "run_fleet"]


@contextmanager
def _stop_on_signals() -> Iterator[Callable[[], str | None]]:
    """Turns SIGINT and SIGTERM into a flag for the stepping loop (restored on exit); yields a
    function returning the name of the signal received, if any. Off the main thread: no handlers."""
    got: dict[str, str] = {}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return

    def on_signal(signum: int, _frame: Any) -> None:
        got.setdefault("name", signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: got.get("name")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _open_trail(path: str | None, **start: Any) -> AuditTrail | None:
    """Opens the audit trail and writes its ``run_start`` line at once, so that a full disk or an
    unwritable file is a clear error before the run rather than a silent loss during it."""
    if not path:
        return None
    trail = AuditTrail(path)
    trail.record("run_start", **start)
    trail.flush()
    if trail.dropped:
        error = trail.last_error
        trail.close()
        raise ConfigError(f"audit_log: cannot write to {path}: {error}")
    return trail


def _audit_report(trail: AuditTrail) -> dict[str, Any]:
    report: dict[str, Any] = {"path": str(trail.path), "written": trail.written, "dropped": trail.dropped}
    if trail.dropped:
        report["last_error"] = trail.last_error
    return report


def run_fleet(
    env_id: str = "ChemicalReactor-v0",
    num_envs: int = 64,
    steps: int = 20_000,
    policy: str = "pid",
    seed: int = 0,
    progress: bool = True,
    audit_log: str | None = None,
    shield: str | None = None,
    constraints: Any = None,
    metrics_port: int | None = None,
    should_stop: Callable[[], str | None] | None = None,
    **env_options: Any,
) -> dict[str, Any]:
    """Steps ``num_envs`` envs for at least ``steps`` env-steps in total and returns a summary.

    With ``audit_log`` the run's start and end and every safety event go to that JSON Lines file.
    ``should_stop`` is asked before every batch step: a non-empty answer (why) ends the run early,
    and the summary says so under ``interrupted``.
    """
    if steps < 1:
        raise ConfigError(f"steps: must be at least 1, got {steps}")
    server = None
    trail = None
    try:
        if metrics_port is not None:
            from .exporter import start_http_server

            server = start_http_server(metrics_port)
        trail = _open_trail(
            audit_log,
            env_id=env_id,
            num_envs=num_envs,
            steps=steps,
            policy=policy,
            seed=seed,
            shield=shield or "off",
        )
        return _run(env_id, num_envs, steps, policy, seed, progress, trail, shield, constraints,
                    should_stop, env_options)  # fmt: skip
    finally:
        if server is not None:
            server.stop()
        if trail is not None:
            trail.close()


def _run(
    env_id: str,
    num_envs: int,
    steps: int,
    policy: str,
    seed: int,
    progress: bool,
    trail: AuditTrail | None,
    shield: str | None,
    constraints: Any,
    should_stop: Callable[[], str | None] | None,
    env_options: dict[str, Any],
) -> dict[str, Any]:
    # Same-step autoreset: every batch step is a real transition for every env.
    envs = make_vec(
        env_id,
        num_envs=num_envs,
        autoreset_mode="same_step",
        shield=shield,
        constraints=constraints,
        audit_log=trail,
        **env_options,
    )
    act_dim = envs.single_action_space.shape[0]
    pol = make_policy(policy, env_id, num_envs, act_dim, seed=seed)
    obs, info = envs.reset(seed=seed)
    names = envs.constraint_names
    lo = {n: float(np.min(info["constraints"][n])) for n in names}
    hi = {n: float(np.max(info["constraints"][n])) for n in names}
    returns: list[float] = []
    batches = -(-steps // num_envs)
    done_batches = 0
    bar = Progress(batches * num_envs, f"{envs.env_id} x{num_envs}", progress)
    rollout = Rollout(envs, pol, obs)
    t0 = time.perf_counter()
    try:
        for t in rollout.run(batches, bar, should_stop):
            done_batches += 1
            seen = [t.info["constraints"]]
            if "final_info" in t.info:  # the values envs ended with, before their reset
                fin = t.info["final_info"]["constraints"]
                seen.append({n: fin[n][fin[f"_{n}"]] for n in names})
            for cons in seen:
                for n in names:
                    lo[n] = min(lo[n], float(cons[n].min()))
                    hi[n] = max(hi[n], float(cons[n].max()))
            returns.extend(t.episode_returns.tolist())
    finally:
        bar.close()
    interrupted = rollout.stopped
    # Every termination is an emergency shutdown: the batch counts them.
    shutdowns = sum(envs.safety.shutdowns.values())
    elapsed = time.perf_counter() - t0
    total = done_batches * num_envs
    summary = {
        "env": envs.env_id,
        "num_envs": num_envs,
        "policy": policy,
        "env_steps": total,
        "episodes": len(returns),
        "mean_return": float(np.mean(returns)) if returns else float("nan"),
        "std_return": float(np.std(returns)) if returns else float("nan"),
        "emergency_shutdowns": shutdowns,
        "constraints": {
            c["name"]: {
                "limit": c["limit"],
                "kind": c["kind"],
                "severity": c["severity"],
                "min": lo[c["name"]],
                "max": hi[c["name"]],
            }
            for c in envs.core_spec["constraints"]
        },
        "violations": dict(envs.safety.violations),
        "shield_interventions": envs.safety.shield_interventions,
        "seconds": elapsed,
        "steps_per_second": total / elapsed if elapsed > 0 else float("inf"),
    }
    if envs.core_spec["faults"]:
        summary["faults"] = {f["name"]: dict(f) for f in envs.core_spec["faults"]}
        summary["faults_active_at_end"] = envs.faults_active()
    if interrupted:
        summary["interrupted"] = interrupted
    if trail is not None:
        end = {"env_id": envs.env_id, "env_steps": total, "episodes": len(returns), "shutdowns": shutdowns}
        if interrupted:
            end["interrupted"] = interrupted
        trail.record("run_end", **end)
        trail.close()
        summary["audit_log"] = _audit_report(trail)
    return summary


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([line.rstrip(), sep, *body])


def _print_summary(s: dict[str, Any]) -> None:
    if "interrupted" in s:
        print(f"\ninterrupted by {s['interrupted']} after {s['env_steps']:,} env steps")
    print(f"\n{s['env']}: {s['num_envs']} envs, policy {s['policy']}")
    print(
        _table(
            [
                ["env steps", f"{s['env_steps']:,}"],
                ["episodes", f"{s['episodes']:,}"],
                ["mean return", f"{s['mean_return']:.3f} (std {s['std_return']:.3f})"],
                ["emergency shutdowns", str(s["emergency_shutdowns"])],
                ["alarms raised", ", ".join(f"{k} {v}" for k, v in s["violations"].items())],
                ["shield interventions", str(s["shield_interventions"])],
                ["steps/s", f"{s['steps_per_second']:,.0f}"],
            ],
            ["metric", "value"],
        )
    )
    print()
    rows = [
        [n, c["kind"], f"{c['limit']:g}", c["severity"], f"{c['min']:.4g}", f"{c['max']:.4g}"]
        for n, c in s["constraints"].items()
    ]
    print(_table(rows, ["constraint", "kind", "limit", "severity", "min seen", "max seen"]))
    if "faults" in s:
        active = s["faults_active_at_end"]
        rows = [[n, f["kind"], str(f["start"]), f["clock"], str(active[n])] for n, f in s["faults"].items()]
        print()
        print(_table(rows, ["fault", "kind", "start", "clock", "envs with it active at the end"]))
    if "audit_log" in s:
        a = s["audit_log"]
        print(f"\naudit trail: {a['path']} ({a['written']} events written, {a['dropped']} dropped)")


def _warn_losses(audit: dict[str, Any] | None) -> int:
    """Reports lost audit events on stderr; the exit status they call for."""
    if not audit or not audit["dropped"]:
        return 0
    print(
        f"neorl-industrial: warning: the audit trail {audit['path']} lost {audit['dropped']} event(s) "
        f"(last error: {audit.get('last_error')})",
        file=sys.stderr,
    )
    return 1


def _print_envs() -> None:
    """One line per declared constraint; an env's id and sizes on its first line."""
    rows = []
    for env_id in env_ids():
        sp = spec(env_id)
        sizes = [env_id, str(len(sp["observations"])), str(len(sp["actions"])), str(sp["horizon"])]
        for i, c in enumerate(sp["constraints"] or [None]):
            if c is None:
                cell = ["(none)", ""]
            else:
                unit = "" if c["unit"] in ("", "1") else f" {c['unit']}"  # "1": dimensionless
                delay = f", on-delay {c['on_delay']}" if c["on_delay"] else ""
                cell = [c["name"], f"{c['kind']} {c['limit']:g}{unit}, {c['severity']}{delay}"]
            rows.append((sizes if i == 0 else [""] * 4) + cell)
    print(_table(rows, ["id", "obs", "act", "horizon", "constraint", "limit"]))


def _dataset(args: argparse.Namespace) -> int:
    from . import datasets

    kwargs = {
        "n_transitions": args.transitions,
        "seed": args.seed,
        "num_envs": args.num_envs,
        "progress": not args.no_progress,
        **_faults(args),
    }
    if args.num_workers is None:
        ds = datasets.generate(args.env, args.quality, **kwargs)
    else:
        try:
            from .distributed import generate_dataset
        except ImportError as e:
            raise ConfigError(f"--num-workers: {e}") from None
        # Ray joins the cluster in RAY_ADDRESS, or starts a local instance.
        ds = generate_dataset(args.env, args.quality, num_workers=args.num_workers, **kwargs)
    path = datasets.save(ds, args.out)
    m = ds["metadata"]
    print(f"wrote {path}: {m['n_transitions']:,} transitions, {m['n_episodes']} trajectories, mean return {m['mean_return']}")
    datasets.describe(ds, show=True)
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Serves ``--policy`` on a fleet at ``--rate`` batches per second with the exporter up, until
    SIGTERM or SIGINT; SIGHUP reloads the model."""
    with _stop_on_signals() as stopped, _reload_on_sighup() as hup:
        return _serve_until(args, stopped, hup)


@contextmanager
def _reload_on_sighup() -> Iterator[Callable[[], bool]]:
    """Turns SIGHUP into a flag (read and cleared by the serving loop); main thread only."""
    got = threading.Event()
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        yield lambda: False
        return
    previous = signal.signal(signal.SIGHUP, lambda *_: got.set())

    def take() -> bool:
        if got.is_set():
            got.clear()
            return True
        return False

    try:
        yield take
    finally:
        signal.signal(signal.SIGHUP, previous)


def _serve_until(args: argparse.Namespace, stopped: Callable[[], str | None], hup: Callable[[], bool]) -> int:
    from .exporter import start_http_server
    from .serving import PolicyService

    # The port first: a port in use is an error before anything is written.
    server = start_http_server(
        args.port,
        args.host,
        safety_port=args.safety_port,
        web_config_file=args.web_config,
        control=args.admin,
        insecure=args.insecure,
        open_probes=args.open_probes,
    )
    trail = None
    service = None
    why: str | None = None
    try:
        policy_name = args.policy or default_policy(args.env)
        trail = _open_trail(
            args.audit_log, env_id=args.env, num_envs=args.num_envs, policy=policy_name, mode="serve"
        )
        service = PolicyService(
            args.env,
            policy_name,
            num_envs=args.num_envs,
            shadow_policy=args.shadow_policy,
            model_version=args.model_version,
            on_policy_error=args.on_policy_error,
            seed=args.seed,
            audit_log=trail,
            shield=args.shield,
            constraints=args.constraints,
            drift_profile=args.drift_profile,
            drift_window=args.drift_window,
            drift_warmup=args.drift_warmup,
            **_faults(args),
        )
        if args.admin:
            server.attach_control(service.handle_control)
        p = service.policy
        shadow = f", shadow {service.shadow.name} {service.shadow.version}" if service.shadow else ""
        print(
            f"serving {service.env_id} x{args.num_envs} with {p.name} {p.version} ({p.framework}){shadow} "
            f"on {server.url}",
            flush=True,
        )

        def should_stop() -> str | None:
            if hup():
                service.reload()
            return stopped()

        why = service.run(args.rate, args.duration, should_stop)
    finally:
        server.stop()  # no control request reaches a closing service
        if service is not None:
            service.close()
        if trail is not None:
            batches = service.batches if service is not None else 0
            trail.record("run_end", env_id=args.env, env_steps=batches * args.num_envs, mode="serve")
            trail.close()
    s = service.envs.safety
    print(
        f"stopped after {service.batches * args.num_envs:,} env steps{f' on {why}' if why else ''}; "
        f"violations {s.violations}, shutdowns {s.shutdowns}",
        flush=True,
    )
    status = 0
    if service.stopped and service.stopped.startswith("policy error"):
        print(f"neorl-industrial: error: stopped on a {service.stopped}", file=sys.stderr)
        status = 1
    if trail is not None:
        audit = _audit_report(trail)
        print(f"audit trail: {audit['path']} ({audit['written']} events written, {audit['dropped']} dropped)")
        return max(status, _warn_losses(audit))
    return status


def _bench_cmd(args: argparse.Namespace) -> int:
    from ._bench import bench, format_table

    if not args.seconds > 0:
        raise ConfigError(f"--seconds: must be positive, got {args.seconds}")
    report = bench(num_envs=args.num_envs, seconds=args.seconds)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number (0-65535), got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number (0-65535), got {value}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite, non-negative number, got {text!r}")
    return value


FAULT_HELP = (
    "inject a fault (repeatable): comma-separated field=value pairs, e.g. "
    "kind=sensor_bias,variable=T,value=5,start=100, or a JSON/YAML/TOML file of faults "
    "(see docs/faults.md)"
)


def _add_fault_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fault", metavar="SPEC", action="append", default=None, help=FAULT_HELP)


def _faults(args: argparse.Namespace) -> dict[str, Any]:
    """``faults=`` for the envs from the ``--fault`` arguments (nothing without any)."""
    specs = getattr(args, "fault", None)
    if not specs:
        return {}
    faults: list[Any] = []
    for spec_text in specs:
        if "=" not in spec_text and is_fault_file(spec_text):
            faults.extend(load_faults(spec_text))
        else:
            faults.append(parse_fault_arg(spec_text))
    return {"faults": faults}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neorl-industrial", description=__doc__)
    sub = p.add_subparsers(dest="command")
    r = sub.add_parser("run", help="step a vectorized fleet with a baseline policy")
    r.add_argument("--env", default="ChemicalReactor-v0", help="environment id (see `envs`)")
    r.add_argument("--num-envs", type=_positive, default=64)
    r.add_argument("--steps", type=_positive, default=20_000, help="env steps in total over the fleet")
    r.add_argument(
        "--policy",
        choices=POLICIES,
        default=None,
        help="baseline policy (default: pid where the env has one, else zero)",
    )
    r.add_argument("--seed", type=_seed, default=0)
    r.add_argument("--shield", choices=("clip", "predictive"), default=None, help="safety shield")
    r.add_argument("--constraints", metavar="FILE", default=None, help="constraint overrides (YAML or TOML)")
    r.add_argument(
        "--audit-log", metavar="FILE", default=None, help="append safety events to this JSON Lines file"
    )
    r.add_argument(
        "--metrics-port", type=_port, default=None, help="serve /metrics and /health/* on this port"
    )
    _add_fault_arg(r)
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    v = sub.add_parser("serve", help="run a monitored simulation with the exporter until SIGTERM")
    v.add_argument("--env", default="ChemicalReactor-v0", help="environment id (see `envs`)")
    v.add_argument("--num-envs", type=_positive, default=64)
    v.add_argument(
        "--policy",
        metavar="SPEC",
        default=None,
        help=f"{', '.join(POLICIES)}, a model file (.zip SB3, .d3 d3rlpy, .pt TorchScript, .onnx) or "
        "module:attribute (default: pid where the env has one, else zero)",
    )
    v.add_argument(
        "--shadow-policy", metavar="SPEC", default=None, help="a candidate that computes but never acts"
    )
    v.add_argument(
        "--model-version", default=None, help="the model's version (default: file metadata or digest)"
    )
    v.add_argument(
        "--on-policy-error",
        choices=("fallback", "shutdown"),
        default="fallback",
        help="a policy that raises or answers NaN/inf/another shape: the env's safe action, or stop",
    )
    v.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    v.add_argument("--port", type=_port, default=8000, help="/metrics and /health/* (0: any free port)")
    v.add_argument("--safety-port", type=_port, default=None, help="also serve /safety/metrics on this port")
    v.add_argument(
        "--rate", type=_non_negative, default=10.0, help="batch steps per second (0: as fast as possible)"
    )
    v.add_argument("--duration", type=_non_negative, default=None, help="stop after this many seconds")
    v.add_argument("--shield", choices=("clip", "predictive"), default=None)
    v.add_argument("--constraints", metavar="FILE", default=None)
    v.add_argument("--audit-log", metavar="FILE", default=None)
    v.add_argument(
        "--web-config", metavar="FILE", default=None, help="exporter-toolkit web config (TLS, basic auth)"
    )
    v.add_argument("--seed", type=_seed, default=0)
    v.add_argument(
        "--drift-profile",
        metavar="FILE",
        default=None,
        help="watch drift against this reference profile (JSON)",
    )
    v.add_argument("--drift-window", type=_positive, default=600, help="batch steps in the drift window")
    v.add_argument(
        "--drift-warmup",
        type=_positive,
        default=None,
        help="instead of --drift-profile: the reference is the fleet's first N batch steps",
    )
    _add_fault_arg(v)
    v.add_argument(
        "--insecure",
        action="store_true",
        help="serve beyond loopback (--host 0.0.0.0) without authentication; otherwise that needs "
        "basic_auth_users in --web-config",
    )
    v.add_argument(
        "--open-probes",
        action="store_true",
        help="with basic auth on, answer /health/live and /health/ready without credentials (for "
        "platform probes); everything else keeps asking",
    )
    v.add_argument(
        "--admin",
        action="store_true",
        help="enable POST /admin/reload and GET/POST /interventions (beyond loopback only with "
        "basic auth in --web-config)",
    )
    _intervene.add_parser(sub)
    sub.add_parser("envs", help="print the catalogue")
    d = sub.add_parser("dataset", help="generate an offline dataset (.npz)")
    d.add_argument("env", help="environment id")
    d.add_argument("--quality", choices=("random", "medium", "expert", "mixed"), default="expert")
    d.add_argument("--transitions", type=_positive, default=100_000)
    d.add_argument("--num-envs", type=_positive, default=64)
    d.add_argument("--seed", type=_seed, default=0)
    d.add_argument("--out", required=True, help="output file (.npz)")
    d.add_argument(
        "--num-workers",
        type=_positive,
        default=None,
        help="split over this many Ray tasks (needs the ray extra; the same dataset as without)",
    )
    _add_fault_arg(d)
    d.add_argument("--no-progress", action="store_true")
    b = sub.add_parser("bench", help="print env-steps/s of every environment on this machine")
    b.add_argument("--num-envs", type=_positive, default=1024, help="batch size of the vector envs")
    b.add_argument("--seconds", type=_non_negative, default=1.0, help="time per environment")
    b.add_argument("--json", action="store_true", help="print the results as JSON")
    o = sub.add_parser("offline-bench", help="train d3rlpy agents on datasets; score them and their safety")
    offline.add_benchmark_arguments(o, "offline-benchmark.md")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "run"
    if args.command is None:
        args = _parser().parse_args(["run", *(argv or [])])
    try:
        if command == "envs":
            _print_envs()
            return 0
        if command == "dataset":
            return _dataset(args)
        if command == "serve":
            return _serve(args)
        if command == "bench":
            return _bench_cmd(args)
        if command == "offline-bench":
            return offline.benchmark_main(args, "neorl-industrial " + " ".join(argv or sys.argv[1:]))
        if command == "intervene":
            return _intervene.intervene(args)
        policy = args.policy or default_policy(args.env)
        with _stop_on_signals() as stopped:
            summary = run_fleet(
                args.env,
                args.num_envs,
                args.steps,
                policy,
                args.seed,
                progress=not args.no_progress and not args.json,
                audit_log=args.audit_log,
                shield=args.shield,
                constraints=args.constraints,
                metrics_port=args.metrics_port,
                should_stop=stopped,
                **_faults(args),
            )
    except NeorlError as e:
        print(f"neorl-industrial: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neorl-industrial: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(summary, indent=2), flush=True)
    else:
        _print_summary(summary)
        sys.stdout.flush()
    status = _warn_losses(summary.get("audit_log"))
    if "interrupted" in summary:
        return 128 + int(signal.Signals[summary["interrupted"]])
    return status


if __name__ == "__main__":
    raise SystemExit(main())
