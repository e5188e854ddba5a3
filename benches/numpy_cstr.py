"""The NumPy rival of ChemicalReactor-v0: pc-gym's ``cstr`` model, vectorized, fixed-step RK4.

This is what a careful NumPy user would write to simulate a batch of reactors without a compiled
core: the state of all envs is one ``(2, N)`` float64 array, every operation is an in-place ufunc on
preallocated buffers, and each control step of ``dt = 26/60 min`` is split into ``substeps`` equal
RK4 steps. The number of substeps is the accuracy knob; :func:`find_min_substeps` finds the fewest
substeps meeting a relative error <= 1e-6 on every step of every reference case in
``tests/data/chemical_reactor_cstr.json`` (DOP853 at 1e-12), the accuracy our Rust env guarantees.
The runaway case sets that count (360); up to its T > 350 K shutdown 26 substeps would do. Harsher
runaways than the reference's (random actions reach Tc = 310 K and T ~ 480 K within one step) leave
the 360-substep rival up to ~2% off on Ca at the shutdown step, where the Rust env still matches
DOP853: the rival is calibrated on the reference cases, not on every trajectory.

Run as a script to print the substep count (and the error at a few counts)::

    python benches/numpy_cstr.py [--tol 1e-6] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CSTR_REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "data" / "chemical_reactor_cstr.json"

# pc-gym ``cstr`` constants (min, mol/L, K).
Q = 100.0
V = 100.0
RHO = 1000.0
C = 0.239
DELTA_HR = -5e4
EA_OVER_R = 8750.0
K0 = 7.2e10
UA = 5e4
TI = 350.0
CAF = 1.0
X0 = (0.8, 330.0)
DT = 26.0 / 60.0
TC_LOW, TC_HIGH = 290.0, 310.0

# Results of :func:`find_min_substeps` at tol=1e-6 on the reference data (verified, not trusted, when
# passed as ``hint``): every step of every case, and every case only up to the runaway's shutdown.
KNOWN_SUBSTEPS = 360
KNOWN_SUBSTEPS_UNTIL_SHUTDOWN = 26

_A = Q / V  # dilution rate
_B = -DELTA_HR / (RHO * C)  # heating per unit reaction rate
_C = UA / (RHO * C * V)  # cooling coefficient


def action_to_tc(actions: np.ndarray) -> np.ndarray:
    """Maps normalised actions in [-1, 1] to coolant temperature Tc in [290, 310] K (clipped)."""
    a = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
    return TC_LOW + (a + 1.0) * (0.5 * (TC_HIGH - TC_LOW))


class RK4Integrator:
    """Fixed-step RK4 of the CSTR ODE over a batch, allocation-free after construction."""

    def __init__(self, num_envs: int, substeps: int, dt: float = DT) -> None:
        if substeps < 1:
            raise ValueError(f"substeps must be >= 1, got {substeps}")
        self.num_envs = num_envs
        self.substeps = int(substeps)
        self.h = dt / self.substeps
        n = num_envs
        self._k = [np.empty((2, n)) for _ in range(4)]
        self._stage = np.empty((2, n))
        self._acc = np.empty((2, n))
        self._tmp = np.empty(n)
        self._forcing = np.empty(n)  # a*Ti + c*Tc, constant over one control step

    def _rhs(self, x: np.ndarray, out: np.ndarray) -> None:
        ca, temp = x[0], x[1]
        dca, dtemp = out[0], out[1]
        r = self._tmp
        # rA = k0 exp(-EA/R / T) Ca
        np.divide(-EA_OVER_R, temp, out=r)
        np.exp(r, out=r)
        r *= K0
        r *= ca
        # dCa/dt = a (Caf - Ca) - rA
        np.multiply(ca, -_A, out=dca)
        dca += _A * CAF
        dca -= r
        # dT/dt = a (Ti - T) + b rA + c (Tc - T) = (a Ti + c Tc) - (a + c) T + b rA
        np.multiply(temp, -(_A + _C), out=dtemp)
        dtemp += self._forcing
        r *= _B
        dtemp += r

    def step(self, x: np.ndarray, tc: np.ndarray) -> None:
        """Advances ``x`` (shape ``(2, N)``: Ca, T) in place by one control step with coolant ``tc`` (K)."""
        h = self.h
        k1, k2, k3, k4 = self._k
        s, acc = self._stage, self._acc
        np.multiply(tc, _C, out=self._forcing)
        self._forcing += _A * TI
        for _ in range(self.substeps):
            self._rhs(x, k1)
            np.multiply(k1, 0.5 * h, out=s)
            s += x
            self._rhs(s, k2)
            np.multiply(k2, 0.5 * h, out=s)
            s += x
            self._rhs(s, k3)
            np.multiply(k3, h, out=s)
            s += x
            self._rhs(s, k4)
            # x += h/6 (k1 + 2 k2 + 2 k3 + k4)
            np.add(k2, k3, out=acc)
            acc *= 2.0
            acc += k1
            acc += k4
            acc *= h / 6.0
            x += acc


@dataclass
class StepResult:
    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


class NumpyCSTRVecEnv:
    """A batch of CSTR envs as our ChemicalReactor-v0 defines them, in NumPy.

    Same dynamics, action mapping, set-point schedule, reward (``-1000 (Ca - Ca_sp)^2``), shutdown
    (``T > 350 K``), horizon (60) and next-step autoreset as ``neorl_industrial.make_vec``; no info
    dicts or safety bookkeeping (those would only add cost to the rival).
    """

    def __init__(
        self,
        num_envs: int,
        substeps: int,
        horizon: int = 60,
        setpoints: tuple[float, ...] = (0.85, 0.90, 0.87),
    ) -> None:
        self.num_envs = num_envs
        self.horizon = horizon
        self.integrator = RK4Integrator(num_envs, substeps)
        self.x = np.empty((2, num_envs))
        self.t = np.zeros(num_envs, dtype=np.int64)
        self.done = np.zeros(num_envs, dtype=bool)
        pieces = np.array_split(np.arange(horizon), len(setpoints))
        self.sp_schedule = np.empty(horizon + 1)
        for sp, idx in zip(setpoints, pieces, strict=True):
            self.sp_schedule[idx] = sp
        self.sp_schedule[horizon] = setpoints[-1]

    def _obs(self) -> np.ndarray:
        obs = np.empty((self.num_envs, 3), dtype=np.float32)
        obs[:, 0] = self.x[0]
        obs[:, 1] = self.x[1]
        obs[:, 2] = self.sp_schedule[np.minimum(self.t, self.horizon)]
        return obs

    def reset(self, seed: int | None = None) -> np.ndarray:
        self.x[0] = X0[0]
        self.x[1] = X0[1]
        self.t[:] = 0
        self.done[:] = False
        return self._obs()

    def step(self, actions: np.ndarray) -> StepResult:
        tc = action_to_tc(actions).reshape(self.num_envs)
        sp = self.sp_schedule[np.minimum(self.t, self.horizon)]
        self.integrator.step(self.x, tc)
        self.t += 1
        reward = -1000.0 * (self.x[0] - sp) ** 2
        terminated = self.x[1] > 350.0
        truncated = (self.t >= self.horizon) & ~terminated
        # Next-step autoreset: envs that ended last step restart now (their step is the reset).
        if self.done.any():
            d = self.done
            self.x[0, d] = X0[0]
            self.x[1, d] = X0[1]
            self.t[d] = 0
            reward[d] = 0.0
            terminated[d] = False
            truncated[d] = False
        self.done = terminated | truncated
        return StepResult(self._obs(), reward, terminated, truncated)


# ---------------------------------------------------------------- accuracy against the reference
def load_reference(path: Path = CSTR_REFERENCE) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def max_relative_errors(
    substeps: int,
    ref: dict[str, Any],
    stop_above: float | None = None,
    until_shutdown: bool = False,
) -> np.ndarray:
    """Per-case worst relative error over all steps (Ca and T), all cases integrated as one batch.

    ``stop_above`` aborts early (returning inf for the batch) once any error exceeds it.
    ``until_shutdown`` ignores a case's steps after the first one whose reference T exceeds 350 K
    (where ChemicalReactor-v0 terminates the episode).
    """
    cases = list(ref["cases"].values())
    tc = np.array([c["Tc"] for c in cases], dtype=np.float64)  # (cases, steps)
    want = np.array([c["states_after_each_step"] for c in cases], dtype=np.float64)  # (cases, steps, 2)
    n_cases, n_steps = tc.shape
    integ = RK4Integrator(n_cases, substeps, dt=float(ref["dt_min"]))
    x = np.empty((2, n_cases))
    x[0], x[1] = ref["x0"]
    counted = np.ones((n_cases, n_steps), dtype=bool)
    if until_shutdown:
        for i in range(n_cases):
            above = np.flatnonzero(want[i, :, 1] > 350.0)
            if above.size:
                counted[i, above[0] + 1 :] = False
    worst = np.zeros(n_cases)
    for k in range(n_steps):
        with np.errstate(over="ignore", invalid="ignore"):  # a too-coarse runaway may blow up
            integ.step(x, tc[:, k])
        err = np.max(np.abs(x.T - want[:, k]) / np.abs(want[:, k]), axis=1)
        err[~counted[:, k]] = 0.0
        err[np.isnan(err)] = np.inf
        np.maximum(worst, err, out=worst)
        if stop_above is not None and worst.max() > stop_above:
            return np.full(n_cases, np.inf)
    return worst


def find_min_substeps(
    tol: float = 1e-6,
    ref: dict[str, Any] | None = None,
    start: int = 16,
    max_substeps: int = 1 << 16,
    verbose: bool = False,
    until_shutdown: bool = False,
    hint: int | None = None,
) -> int:
    """Fewest RK4 substeps per control step with relative error <= ``tol`` on every reference step.

    Doubles from ``start`` until the tolerance is met, then bisects between the last failing and the
    first passing count. RK4's error falls monotonically (as h^4) in this range, so the boundary
    found is the minimum; the function checks that ``n - 1`` fails and ``n`` passes.

    With ``hint``, only checks that ``hint`` passes and ``hint - 1`` fails (two runs instead of
    about fifteen), falling back to the search when it does not hold.
    """
    ref = load_reference() if ref is None else ref

    def ok(n: int) -> bool:
        errs = max_relative_errors(n, ref, stop_above=tol, until_shutdown=until_shutdown)
        passed = bool(errs.max() <= tol)
        if verbose:
            print(f"  substeps={n:6d}: {'pass' if passed else 'fail'}", flush=True)
        return passed

    if hint is not None and ok(hint) and (hint == 1 or not ok(hint - 1)):
        return hint
    lo, hi = 0, start  # lo: largest known failing count (0 = none), hi: candidate
    while not ok(hi):
        lo = hi
        hi *= 2
        if hi > max_substeps:
            raise RuntimeError(f"no substep count up to {max_substeps} meets tol={tol}")
    if lo == 0:
        lo = 1
        if ok(1):
            return 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def print_simple_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tol", type=float, default=1e-6, help="relative error per step (default 1e-6)")
    p.add_argument("--verbose", action="store_true", help="print every substep count tried")
    p.add_argument(
        "--quick",
        action="store_true",
        help="verify the known count (n passes, n-1 fails) instead of searching; skip the variant",
    )
    p.add_argument(
        "--skip-shutdown-variant",
        action="store_true",
        help="do not also search the count that is enough up to the runaway case's shutdown",
    )
    args = p.parse_args(argv)
    args.skip_shutdown_variant = args.skip_shutdown_variant or args.quick

    ref = load_reference()
    t0 = time.perf_counter()
    hint = KNOWN_SUBSTEPS if args.quick and args.tol == 1e-6 else None
    n = find_min_substeps(args.tol, ref, verbose=args.verbose, hint=hint)
    elapsed = time.perf_counter() - t0

    names = list(ref["cases"])
    print(f"NumPy RK4 rival: fewest substeps per step with rel. error <= {args.tol:g} on every step")
    print(f"of all {len(names)} reference cases: {n}  (h = {DT / n * 60:.4f} s; search took {elapsed:.1f} s)")
    print()
    rows = []
    counts = {n - 1, n} if args.quick else {n // 4, n // 2, n - 1, n, 2 * n}
    for m in sorted(c for c in counts if c >= 1):
        errs = max_relative_errors(m, ref)
        rows.append([str(m)] + [f"{e:.2e}" for e in errs] + ["pass" if errs.max() <= args.tol else "fail"])
    print("worst relative error over the 60 steps (Ca and T), by case:")
    print_simple_table(["substeps", *names, "all <= tol"], rows)
    if not args.skip_shutdown_variant:
        n_sd = find_min_substeps(args.tol, ref, verbose=args.verbose, until_shutdown=True)
        print()
        print(
            f"(for information: counting the runaway case only up to its T > 350 K shutdown step, as the "
            f"env's episode does, {n_sd} substeps suffice)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
