"""ChemicalReactor-v0 throughput against its peers, measured side by side in one process.

(a) vector env, N=1024, all cores: env-steps/s of ``neorl_industrial.make_vec`` against the NumPy
    RK4 rival (``benches/numpy_cstr.py``) at the fewest substeps meeting the env's 1e-6 accuracy;
(b) the same vector env against pc-gym's ``cstr`` environment stepping one env (both of its
    integration methods are timed; the ratio uses the faster one);
(c) single-env ``env.step`` in microseconds against Gymnasium's CartPole-v1, bare and wrapped.

Run: ``python benches/bench_chemical_reactor.py [--quick] [--num-envs 1024] [--skip-pcgym]``.
Ratios are "how many times faster ours is" (steps/s over steps/s, or microseconds over microseconds).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy_cstr
from _common import (
    Row,
    import_ours,
    interleaved_medians,
    median_seconds_per_step,
    print_machine,
    print_rows,
    single_us_fn,
    vector_rate_fn,
)

ENV_ID = "ChemicalReactor-v0"


@dataclass
class Settings:
    num_envs: int = 1024
    ours_batch_steps: int = 120  # 2 episodes per repeat
    rival_batch_steps: int = 15
    repeats: int = 5
    pcgym_episodes: int = 5  # casadi, per repeat
    pcgym_jax_episodes: int = 2  # jax re-compiles for ~1 s at every episode start
    single_steps: int = 20_000
    quick: bool = False

    @classmethod
    def make(cls, quick: bool, num_envs: int = 1024) -> Settings:
        if quick:
            return cls(num_envs, 60, 4, 3, 1, 1, 5_000, True)
        return cls(num_envs=num_envs)


def random_actions(num_envs: int, act_dim: int, count: int = 16, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1.0, 1.0, (num_envs, act_dim)).astype(np.float32) for _ in range(count)]


# ------------------------------------------------------------------------------------- (a)
def vector_measurements(ni: Any, s: Settings, full: int, short: int) -> dict[str, Callable[[], float]]:
    """Env-steps/s measurements of ours and the NumPy rival, to be run interleaved."""
    n = s.num_envs
    acts = random_actions(n, 1)
    fns: dict[str, Callable[[], float]] = {}
    venv = ni.make_vec(ENV_ID, num_envs=n)
    venv.reset(seed=0)
    fns["ours"] = vector_rate_fn(venv.step, acts, n, s.ours_batch_steps)
    try:
        core_env = ni.make_vec(ENV_ID, num_envs=n)
        core_env.reset(seed=0)
        fns["core"] = vector_rate_fn(core_env._core.step, acts, n, s.ours_batch_steps)
    except Exception as exc:
        print(f"[core-only timing unavailable: {exc}]")
    for key, substeps, batch in (
        ("numpy", full, s.rival_batch_steps),
        ("numpy_short", short, s.ours_batch_steps),
    ):
        rival = numpy_cstr.NumpyCSTRVecEnv(n, substeps)
        rival.reset(seed=0)
        fns[key] = _quiet(vector_rate_fn(rival.step, acts, n, batch))
    return fns


def _quiet(fn: Callable[[], float]) -> Callable[[], float]:
    def run() -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            return fn()

    return run


def numpy_substeps(quick: bool) -> tuple[int, int]:
    """(substeps for every step of every case, substeps enough up to the runaway's shutdown)."""
    ref = numpy_cstr.load_reference()
    full = numpy_cstr.find_min_substeps(ref=ref, hint=numpy_cstr.KNOWN_SUBSTEPS if quick else None)
    short = numpy_cstr.find_min_substeps(
        ref=ref, until_shutdown=True, hint=numpy_cstr.KNOWN_SUBSTEPS_UNTIL_SHUTDOWN if quick else None
    )
    return full, short


# ------------------------------------------------------------------------------------- (b)
def pcgym_env_params(method: str) -> dict[str, Any]:
    """pc-gym's documented CSTR set-up (README quick start), on our horizon, dt and Tc range."""
    nsteps, tsim = 60, 26.0
    sp = {"Ca": [0.85] * 20 + [0.90] * 20 + [0.87] * 20}
    return {
        "N": nsteps,
        "tsim": tsim,
        "SP": sp,
        "o_space": {"low": np.array([0.7, 300.0, 0.8]), "high": np.array([1.0, 350.0, 0.9])},
        "a_space": {"low": np.array([290.0]), "high": np.array([310.0])},
        "x0": np.array([0.8, 330.0, 0.85]),
        "model": "cstr",
        "integration_method": method,
    }


def bench_pcgym(s: Settings) -> tuple[dict[str, float], str]:
    """pc-gym cstr single-env steps/s by integration method; returns ({method: steps/s}, note)."""
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            import pcgym
    except Exception as exc:
        return {}, f"pcgym unavailable ({type(exc).__name__}: {exc}); try `pip install pcgym==0.1.8`"
    import_s = time.perf_counter() - t0
    version = _version("pcgym")
    rates: dict[str, float] = {}
    problems = []
    rng = np.random.default_rng(0)
    acts = [rng.uniform(-1.0, 1.0, 1) for _ in range(64)]
    a0 = acts[0]
    for method in ("casadi", "jax"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                env = pcgym.make_env(pcgym_env_params(method))
                env.reset()
                # pc-gym's episode ends (done) at step N-1: whole episodes of 59 steps, resets untimed.
                # Warm-up: the first jax step compiles (~1 s); casadi builds its integrator every step.
                steps = 59 * (s.pcgym_episodes if method == "casadi" else s.pcgym_jax_episodes)
                reps = 1 if s.quick else 3
                per_step = median_seconds_per_step(env.step, env.reset, acts, steps, reps, warmup_steps=10)
                rates[method] = 1.0 / per_step
                if method == "jax":
                    # pc-gym rebuilds its integrator at every reset, so jax re-compiles on the first
                    # step of every episode; also time the steps after that one.
                    def reset_and_compile(env: Any = env) -> None:
                        env.reset()
                        env.step(a0)

                    per_step = median_seconds_per_step(
                        env.step, reset_and_compile, acts, 58 * s.pcgym_jax_episodes, reps, warmup_steps=0
                    )
                    rates["jax (no per-episode re-JIT)"] = 1.0 / per_step
        except Exception as exc:
            problems.append(f"{method} failed ({type(exc).__name__}: {exc})")
    note = (
        f"pcgym {version} (import {import_s:.1f} s); default integration_method 'casadi' (CVODES, "
        "integrator rebuilt each step); 'jax' (diffrax Tsit5) re-JITs ~1 s on every episode's first step"
    )
    if problems:
        note += "; " + "; ".join(problems)
    return rates, note


def best_pcgym(rates: dict[str, float]) -> str | None:
    """The faster of pc-gym's two methods over whole episodes (what a user of either pays)."""
    whole = {k: v for k, v in rates.items() if k in ("casadi", "jax")}
    return max(whole, key=lambda k: whole[k]) if whole else None


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return "?"


# ------------------------------------------------------------------------------------- (c)
def single_measurements(ni: Any, s: Settings) -> dict[str, Callable[[], float]]:
    """Microseconds-per-step measurements of our single env and CartPole-v1, to be run interleaved."""
    import gymnasium as gym

    env = ni.make(ENV_ID)
    acts = [a[0] for a in random_actions(1, 1, count=64, seed=1)]
    bare = gym.make("CartPole-v1").unwrapped
    wrapped = gym.make("CartPole-v1")
    pushes = [0, 1] * 32  # alternating pushes keep the pole up for a while
    return {
        "ours": single_us_fn(env.step, lambda: env.reset(seed=0), acts, s.single_steps),
        "cartpole": single_us_fn(bare.step, lambda: bare.reset(seed=0), pushes, s.single_steps),
        "cartpole_wrapped": single_us_fn(wrapped.step, lambda: wrapped.reset(seed=0), pushes, s.single_steps),
    }


# ------------------------------------------------------------------------------------- all
def run(quick: bool = False, num_envs: int = 1024, skip_pcgym: bool = False) -> list[Row]:
    """Runs every ChemicalReactor benchmark and returns the rows (printing progress)."""
    s = Settings.make(quick, num_envs)
    ni = import_ours()
    rows: list[Row] = []
    n = s.num_envs

    what = "verifying the known count" if quick else "searching"
    print(f"[ChemicalReactor] NumPy rival's RK4 substeps for 1e-6 ({what}) ...", flush=True)
    full, short = numpy_substeps(quick)
    print(f"[ChemicalReactor] NumPy RK4 substeps: {full} (every step of all cases), {short} (up to shutdown)")

    print(f"[ChemicalReactor] (a) vector env N={n} vs NumPy RK4, interleaved x{s.repeats} ...", flush=True)
    vec = interleaved_medians(vector_measurements(ni, s, full, short), s.repeats)
    ours_vec = vec["ours"]
    rows.append(
        Row(
            f"CSTR vector env N={n} vs NumPy RK4 N={n} ({full} substeps: 1e-6 on every step)",
            ours_vec,
            vec["numpy"],
            "steps/s",
            "NumPy",
            ">= 30x",
            target_ratio=30.0,
            note=(
                "env-steps/s = N x batch steps/s; random actions; the rival has the same dynamics, reward, "
                "shutdown and next-step autoreset, without info dicts"
            ),
        )
    )
    rows.append(
        Row(
            f"  (info) same vs NumPy RK4 at {short} substeps (1e-6 only up to the runaway's shutdown)",
            ours_vec,
            vec["numpy_short"],
            "steps/s",
            "NumPy",
        )
    )
    if "core" in vec:
        rows.append(
            Row(
                f"  (info) Rust core step alone N={n} (no Gymnasium infos) vs NumPy RK4 ({full})",
                vec["core"],
                vec["numpy"],
                "steps/s",
                "NumPy",
            )
        )

    print("[ChemicalReactor] (c) single env step vs CartPole-v1, interleaved ...", flush=True)
    single = interleaved_medians(single_measurements(ni, s), s.repeats)
    rows.append(
        Row(
            "CSTR single env.step (ni.make) vs CartPole-v1 .unwrapped",
            single["ours"],
            single["cartpole"],
            "us/step",
            "CartPole",
            "ours <= 5 us",
            higher_is_better=False,
            target_max_ours=5.0,
            note="random actions in [-1, 1]; CartPole alternates pushes; resets not timed",
        )
    )
    rows.append(
        Row(
            "CSTR single env.step (ni.make) vs gymnasium.make('CartPole-v1') (wrappers)",
            single["ours"],
            single["cartpole_wrapped"],
            "us/step",
            "CartPole+wrappers",
            "ours <= 5 us",
            higher_is_better=False,
            target_max_ours=5.0,
        )
    )

    print("[ChemicalReactor] (b) pc-gym cstr single env ...", flush=True)
    if skip_pcgym:
        rates, note = {}, "skipped (--skip-pcgym)"
    else:
        rates, note = bench_pcgym(s)
    best = best_pcgym(rates)
    rows.append(
        Row(
            f"CSTR vector env N={n} vs pc-gym cstr 1 env ({best or 'n/a'}: default, faster per episode)",
            ours_vec,
            rates.get(best) if best else None,
            "steps/s",
            f"pc-gym {best}" if best else "pc-gym",
            ">= 1000x",
            target_ratio=1000.0,
            note=note,
        )
    )
    for method, rate in rates.items():
        if method != best:
            rows.append(Row(f"  (info) same vs pc-gym {method}", ours_vec, rate, "steps/s", "pc-gym"))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a short run (~10 s plus pc-gym's import)")
    p.add_argument("--num-envs", type=int, default=1024, help="vector env batch size (default 1024)")
    p.add_argument("--skip-pcgym", action="store_true", help="do not import or time pc-gym")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = p.parse_args(argv)
    print_machine()
    t0 = time.perf_counter()
    rows = run(args.quick, args.num_envs, args.skip_pcgym)
    print_rows(rows, "ChemicalReactor-v0 benchmarks", markdown=args.markdown)
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
