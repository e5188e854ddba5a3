#!/usr/bin/env python3
"""Regenerate or check the reference vectors in tests/data from the public reference implementations.

    python tests/data/make_reference.py --check     # recompute, compare with the committed files, exit 1 on a difference
    python tests/data/make_reference.py --write     # rewrite the files
    python tests/data/make_reference.py --check --only reactor
    python tests/data/make_reference.py --stats     # zero-policy reward statistics of the original IB (not stored)

chemical_reactor_cstr.json -- the exothermic CSTR of pc-gym (model ``cstr``,
https://github.com/MaximilianB2/pc-gym, src/pcgym/models/cstr.py, default parameters). Five coolant sequences of
60 steps of 26/60 min from x0 = [0.8, 330], each step solved with scipy's DOP853 at rtol = atol = 1e-12 (the
ground truth of the ODE), plus the right-hand side at x0 with Tc = 300 K. Needs numpy and scipy.

industrial_benchmark.json -- the Siemens Industrial Benchmark, industrial-benchmark-python 2.0 on PyPI
(https://github.com/siemens/industrialbenchmark), setpoint p = 70: constants, effective velocity/gain for seven
(v, g, p) triples, the goldstone penalty for every phi index -6..6 at nine radii, and a 1000-step trajectory
under fixed actions of the fields that do not depend on the random draws. Needs
``pip install industrial-benchmark-python==2.0`` (the ``bench`` and ``test`` extras).

--check compares inputs, constants and layout exactly, and computed numbers to a relative tolerance
(REACTOR_RTOL, IB_RTOL; see compare()); it prints every difference.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parent
REACTOR_FILE = DATA / "chemical_reactor_cstr.json"
IB_FILE = DATA / "industrial_benchmark.json"

# Tolerances of --check for computed numbers (inputs and constants must match exactly). The reactor states
# come from an adaptive integrator whose last bits depend on the scipy version and the platform's libm; the
# thermal-runaway case amplifies them most (pc-gym's own grouping of the right-hand side moves it by 5e-13).
REACTOR_RTOL, REACTOR_ATOL = 1e-9, 1e-12
# The IB numbers are closed-form arithmetic; only libm (exp, sin, cbrt) can move their last bit.
IB_RTOL, IB_ATOL = 1e-12, 1e-12

# ---------------------------------------------------------------------------------------------- reactor

# pc-gym's cstr defaults (ints and floats as pc-gym declares them).
CSTR_CONSTANTS: dict[str, float] = {
    "q": 100,  # feed flow, L/min
    "V": 100,  # volume, L
    "rho": 1000,  # density, g/L
    "C": 0.239,  # heat capacity, J/(g K)
    "deltaHr": -5e4,  # heat of reaction, J/mol
    "EA_over_R": 8750,  # activation temperature, K
    "k0": 7.2e10,  # pre-exponential factor, 1/min
    "UA": 5e4,  # heat transfer, J/(min K)
    "Ti": 350,  # feed temperature, K
    "Caf": 1,  # feed concentration, mol/L
}
CSTR_MODEL = (
    "pc-gym cstr: dCa/dt = q/V(Caf-Ca) - k0 exp(-EA/RT) Ca; "
    "dT/dt = q/V(Ti-T) + (-dH)/(rho C) rA + UA/(rho C V)(Tc-T)"
)
CSTR_DT_MIN = 26 / 60
CSTR_X0 = [0.8, 330.0]
CSTR_STEPS = 60
CSTR_RTOL = CSTR_ATOL = 1e-12


def cstr_rhs(x: np.ndarray, tc: float, k: dict[str, float] = CSTR_CONSTANTS) -> list[float]:
    """pc-gym's cstr right-hand side. The products are grouped as rA (-dH) / (rho C) and UA (Tc - T) / (rho C V),
    which reproduces the committed numbers bit for bit (pc-gym multiplies by the reciprocals instead, which
    differs in the last bit)."""
    ca, temp = x[0], x[1]
    r_a = k["k0"] * np.exp(-k["EA_over_R"] / temp) * ca
    return [
        k["q"] / k["V"] * (k["Caf"] - ca) - r_a,
        k["q"] / k["V"] * (k["Ti"] - temp)
        + (-k["deltaHr"]) * r_a / (k["rho"] * k["C"])
        + k["UA"] * (tc - temp) / (k["rho"] * k["C"] * k["V"]),
    ]


def cstr_coolant_sequences() -> dict[str, list[float]]:
    """The five coolant-temperature sequences (K), one value per step."""
    n = CSTR_STEPS
    # Drawn uniformly from [295, 302] K, rounded to mK.
    random_tc = np.round(np.random.default_rng(7).uniform(295.0, 302.0, n), 3)
    return {
        "constant_300": [300.0] * n,
        "staircase": [295.0] * 20 + [300.0] * 20 + [302.0] * 20,
        "random_295_302": [float(t) for t in random_tc],
        "runaway_306": [306.0] * n,
        "cold_290": [290.0] * n,
    }


def cstr_states(tc_sequence: list[float], k: dict[str, float] = CSTR_CONSTANTS) -> list[list[float]]:
    """[Ca, T] after each step, each step integrated from t = 0 to dt with DOP853."""
    from scipy.integrate import solve_ivp

    x = np.array(CSTR_X0, dtype=float)
    out = []
    for tc in tc_sequence:
        sol = solve_ivp(
            lambda _t, y, tc=tc: cstr_rhs(y, tc, k),
            (0.0, CSTR_DT_MIN),
            x,
            method="DOP853",
            rtol=CSTR_RTOL,
            atol=CSTR_ATOL,
        )
        if not sol.success:
            raise RuntimeError(f"DOP853 failed: {sol.message}")
        x = sol.y[:, -1]
        out.append([float(v) for v in x])
    return out


def build_reactor(k: dict[str, float] = CSTR_CONSTANTS) -> dict[str, Any]:
    cases = {
        name: {"Tc": tc, "states_after_each_step": cstr_states(tc, k)}
        for name, tc in cstr_coolant_sequences().items()
    }
    return {
        "model": CSTR_MODEL,
        "constants": dict(k),
        "units": {"Ca": "mol/L", "T": "K", "Tc": "K", "time": "min"},
        "dt_min": CSTR_DT_MIN,
        "x0": list(CSTR_X0),
        "integrator": "scipy DOP853 rtol=atol=1e-12 per step (ground truth of the ODE)",
        "rhs_at_x0_Tc300": [float(v) for v in cstr_rhs(np.array(CSTR_X0), 300.0, k)],
        "cases": cases,
    }


REACTOR_COMPUTED = ["rhs_at_x0_Tc300/*", "cases/*/states_after_each_step/*"]

# -------------------------------------------------------------------------------- industrial benchmark

IB_SETPOINT = 70
IB_TRIPLES = [
    (50, 50, 50),
    (50, 50, 70),
    (0, 100, 70),
    (100, 0, 70),
    (30, 80, 20),
    (0, 0, 0),
    (100, 100, 100),
]
IB_PHI_INDICES = range(-6, 7)
IB_RADII = [-1.5, -1.0, -0.5, -0.2, 0.0, 0.2, 0.5, 1.0, 1.5]
IB_STEPS = 1000
IB_FIELDS = ["v", "g", "h", "he", "gs_domain", "gs_sys_response", "gs_phi_idx", "MC", "coc", "oc", "ve", "ge"]


def ib_actions() -> list[list[float]]:
    """The fixed actions of the trajectory: uniform on [-1, 1]^3, rounded to 1e-4."""
    return np.round(np.random.default_rng(11).uniform(-1.0, 1.0, (IB_STEPS, 3)), 4).tolist()


@contextlib.contextmanager
def original_ib() -> Iterator[Any]:
    """The original package's module. industrial-benchmark-python 2.0 calls ``np.float``, removed in NumPy 1.24,
    and seeds NumPy's global random state in its constructor: lend it the alias and restore both afterwards."""
    try:
        from industrial_benchmark_python import IDS
    except ImportError as e:
        raise SystemExit(
            "needs industrial-benchmark-python==2.0: pip install industrial-benchmark-python==2.0"
        ) from e
    lend = "float" not in vars(np)
    state = np.random.get_state()
    if lend:
        np.float = float  # type: ignore[attr-defined]
    try:
        yield IDS
    finally:
        if lend:
            del np.float  # type: ignore[attr-defined]
        np.random.set_state(state)


def build_ib() -> dict[str, Any]:
    with original_ib() as ids_module:
        from industrial_benchmark_python.EffectiveAction import EffectiveAction

        ids = ids_module.IDS(IB_SETPOINT, inital_seed=0)
        gs = ids.gsEnvironment
        constants: dict[str, Any] = {
            name: float(getattr(ids, name))
            for name in (
                "maxRequiredStep",
                "gsBound",
                "gsSetPointDependency",
                "gsScale",
                "CRF",
                "CRC",
                "CRGS",
            )
        }
        constants["goldstone_angles"] = 4 * gs._dynamics._strongest_penality_abs_idx
        effective = []
        for v, g, p in IB_TRIPLES:
            ea = EffectiveAction(v, g, p)
            effective.append(
                {
                    "v": v,
                    "g": g,
                    "p": p,
                    "ve": float(ea.getEffectiveVelocity()),
                    "ge": float(ea.getEffectiveGain()),
                }
            )
        goldstone = [
            {"phi_idx": phi, "r": r, "reward": float(gs.reward(phi, r))}
            for phi in IB_PHI_INDICES
            for r in IB_RADII
        ]
        actions = ib_actions()
        states = []
        for a in actions:  # ids already applied its constructor's zero step
            ids.step(np.array(a))
            states.append({f: float(ids.state[f]) for f in IB_FIELDS})
    return {
        "source": f"industrial-benchmark-python 2.0 (siemens/industrialbenchmark), setpoint p={IB_SETPOINT}",
        "constants": constants,
        "effective_action": effective,
        "goldstone_reward": goldstone,
        "deterministic_trajectory": {
            "note": "IDS(70) after its constructor's own zero step, then these actions; "
            "v,g,h,he,goldstone state,MC,coc,oc,ve,ge do not depend on the random draws",
            "actions": actions,
            "states_after_each_step": states,
        },
    }


IB_COMPUTED = [
    "effective_action/*/ve",
    "effective_action/*/ge",
    "goldstone_reward/*/reward",
    "deterministic_trajectory/states_after_each_step/*",
]


def ib_zero_policy_statistics(seeds: range = range(10), steps: int = 1000) -> list[float]:
    """Mean reward per step of the original under zero actions, one value per seed (stochastic, not stored)."""
    means = []
    with original_ib() as ids_module:
        for seed in seeds:
            ids = ids_module.IDS(IB_SETPOINT, inital_seed=seed)
            total = 0.0
            for _ in range(steps):
                ids.step(np.zeros(3))
                total += float(ids.state["reward"])
            means.append(total / steps)
    return means


# ------------------------------------------------------------------------------------------ comparison


def compare(want: Any, got: Any, computed: list[str], rtol: float, atol: float, path: str = "") -> list[str]:
    """Differences between a committed document and a recomputed one, one line each (empty: they agree).

    Keys, list lengths, strings, types and numbers match exactly, except numbers under a path matching one of
    the ``computed`` patterns (``fnmatch`` over "/"-joined keys and indices), which must satisfy
    ``math.isclose(want, got, rel_tol=rtol, abs_tol=atol)``."""
    where = path or "/"
    if isinstance(want, dict) and isinstance(got, dict):
        if list(want) != list(got):
            return [f"{where}: keys {list(want)} != {list(got)}"]
        out: list[str] = []
        for key in want:
            out += compare(want[key], got[key], computed, rtol, atol, f"{path}/{key}".lstrip("/"))
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return [f"{where}: length {len(want)} != {len(got)}"]
        out = []
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            out += compare(w, g, computed, rtol, atol, f"{path}/{i}".lstrip("/"))
        return out
    number = (int, float)
    if (
        isinstance(want, number)
        and isinstance(got, number)
        and not isinstance(want, bool)
        and not isinstance(got, bool)
        and any(fnmatch.fnmatchcase(path, pattern) for pattern in computed)
    ):
        if math.isclose(want, got, rel_tol=rtol, abs_tol=atol):
            return []
        rel = abs(want - got) / max(abs(want), abs(got))
        return [f"{where}: committed {want!r}, recomputed {got!r} (relative {rel:.3g} > {rtol:g})"]
    if type(want) is not type(got) or want != got:
        return [f"{where}: committed {want!r}, recomputed {got!r} (must match exactly)"]
    return []


def max_relative_difference(want: Any, got: Any) -> float:
    """Largest |want - got| / max(|want|, |got|) over the numbers the two documents have in common."""
    if isinstance(want, dict) and isinstance(got, dict):
        return max((max_relative_difference(want[k], got[k]) for k in want if k in got), default=0.0)
    if isinstance(want, list) and isinstance(got, list):
        return max((max_relative_difference(w, g) for w, g in zip(want, got, strict=False)), default=0.0)
    number = (int, float)
    if isinstance(want, number) and isinstance(got, number) and want != got:
        return abs(want - got) / max(abs(want), abs(got))
    return 0.0


# ------------------------------------------------------------------------------------------- datasets


class Dataset:
    def __init__(
        self,
        name: str,
        path: Path,
        build: Callable[[], dict[str, Any]],
        computed: list[str],
        rtol: float,
        atol: float,
        indent: int | None,
    ) -> None:
        self.name, self.path, self.build, self.computed = name, path, build, computed
        self.rtol, self.atol, self.indent = rtol, atol, indent

    def committed(self) -> dict[str, Any]:
        return json.loads(self.path.read_text())

    def check(self, got: dict[str, Any] | None = None) -> list[str]:
        """Differences between the committed file and ``got`` (recomputed when None)."""
        return compare(
            self.committed(), self.build() if got is None else got, self.computed, self.rtol, self.atol
        )

    def write(self) -> None:
        self.path.write_text(json.dumps(self.build(), indent=self.indent))


DATASETS = {
    "reactor": Dataset(
        "reactor", REACTOR_FILE, build_reactor, REACTOR_COMPUTED, REACTOR_RTOL, REACTOR_ATOL, 1
    ),
    "ib": Dataset("ib", IB_FILE, build_ib, IB_COMPUTED, IB_RTOL, IB_ATOL, None),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="recompute and compare with the committed files")
    mode.add_argument("--write", action="store_true", help="recompute and rewrite the files")
    mode.add_argument("--stats", action="store_true", help="print the original IB's zero-policy statistics")
    parser.add_argument("--only", choices=sorted(DATASETS), action="append", help="one data set (repeatable)")
    args = parser.parse_args(argv)
    if args.stats:
        means = ib_zero_policy_statistics()
        print(
            f"IB p={IB_SETPOINT}, zero actions, seeds 0-9, 1000 steps: mean reward per step "
            f"{np.mean(means):.2f} (std across seeds {np.std(means):.2f})"
        )
        return 0
    failed = False
    for name in args.only or list(DATASETS):
        ds = DATASETS[name]
        if args.write:
            ds.write()
            print(f"{name}: wrote {ds.path.name}")
            continue
        got = ds.build()
        diffs = ds.check(got)
        worst = max_relative_difference(ds.committed(), got)
        for line in diffs:
            print(f"{name}: {line}")
        status = "DIFFERS" if diffs else "ok"
        print(
            f"{name}: {ds.path.name} {status} ({len(diffs)} differences; largest relative difference {worst:.3g})"
        )
        failed |= bool(diffs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
