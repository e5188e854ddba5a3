"""Built-in baseline policies, vectorized over a batch of observations.

A policy maps observations ``(num_envs, obs_dim)`` to normalised actions ``(num_envs, act_dim)``
and is told which envs ended an episode (to clear controller memory). They serve the CLI's main
job, dataset generation and as baselines to beat.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .exceptions import ConfigError

__all__ = [
    "Policy",
    "RandomPolicy",
    "ZeroPolicy",
    "ReactorPIController",
    "POLICIES",
    "default_policy",
    "make_policy",
]


class Policy(Protocol):
    def __call__(self, obs: np.ndarray) -> np.ndarray: ...

    def episode_end(self, done: np.ndarray) -> None: ...


class RandomPolicy:
    """Uniform random actions in [-1, 1], from its own seeded generator."""

    def __init__(self, num_envs: int, act_dim: int, seed: int | None = None) -> None:
        self.shape = (num_envs, act_dim)
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, self.shape).astype(np.float32)

    def episode_end(self, done: np.ndarray) -> None:
        return None


class ZeroPolicy:
    """The action 0 everywhere: mid-range actuators (reactor: Tc = 300 K; benchmark: no change)."""

    def __init__(self, num_envs: int, act_dim: int) -> None:
        self.action = np.zeros((num_envs, act_dim), dtype=np.float32)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.action.copy()

    def episode_end(self, done: np.ndarray) -> None:
        return None


# CSTR constants (see src/envs/chemical_reactor.rs) for the controller's steady-state feed-forward.
_Q_V, _K0, _EA_R, _TI, _CAF = 1.0, 7.2e10, 8750.0, 350.0, 1.0
_HEAT = 5e4 / (1000.0 * 0.239)  # (-dH) / (rho C)  [K L / mol]
_COOL = 5e4 / (1000.0 * 0.239 * 100.0)  # UA / (rho C V)  [1/min]


def reactor_steady_coolant(ca: np.ndarray) -> np.ndarray:
    """Coolant temperature [K] that holds the CSTR at concentration ``ca`` in steady state."""
    ca = np.clip(ca, 1e-3, 0.999)
    k = _Q_V * (_CAF - ca) / ca  # reaction rate constant at steady state [1/min]
    t = -_EA_R / np.log(k / _K0)
    return t - (_Q_V * (_TI - t) + _HEAT * k * ca) / _COOL


class ReactorPIController:
    """PI control of the reactor's concentration with steady-state feed-forward.

    ``Tc = Tc_ss(sp) - kp * e - ki * sum(e) * dt`` with ``e = sp - Ca``, anti-windup by clamping the
    integral, and a ramp limit on Tc so the coolant never moves faster than ``max_ramp`` K per step.
    """

    def __init__(
        self,
        num_envs: int,
        kp: float = 30.0,
        ki: float = 20.0,
        dt: float = 26.0 / 60.0,
        max_ramp: float = 4.5,
        noise: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.kp, self.ki, self.dt, self.max_ramp, self.noise = kp, ki, dt, max_ramp, noise
        self.integral = np.zeros(num_envs)
        self.last_tc = np.full(num_envs, 300.0)
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        ca, sp = obs[:, 0].astype(np.float64), obs[:, 2].astype(np.float64)
        err = sp - ca
        self.integral = np.clip(self.integral + err * self.dt, -0.2, 0.2)
        tc = reactor_steady_coolant(sp) - self.kp * err - self.ki * self.integral
        tc = np.clip(tc, self.last_tc - self.max_ramp, self.last_tc + self.max_ramp)
        tc = np.clip(tc, 290.0, 310.0)
        self.last_tc = tc
        action = (tc - 290.0) / 10.0 - 1.0
        if self.noise > 0:
            action = action + self.rng.normal(0.0, self.noise, action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)[:, None]

    def episode_end(self, done: np.ndarray) -> None:
        self.integral[done] = 0.0
        self.last_tc[done] = 300.0


class IndustrialBenchmarkRegulator:
    """Proportional regulation of velocity, gain and shift to a good stationary operating point.

    The targets (v, g, h) = (40, 45, 60) are the best constant operating point for set-point 70 on a
    grid search (mean reward about -186 per step against -209 for the zero policy and -319 for the
    random one); the goldstone landscape rewards moving the shift, which this baseline does not
    exploit, so it leaves room for learning.
    """

    # Per-step effect of a unit action on v, g, h (see the benchmark's addAction).
    _GAIN = np.array([1.0, 10.0, 100.0 * np.sin(15.0 / 180.0 * np.pi) / 0.9 / 5.0])

    def __init__(self, num_envs: int, target: tuple[float, float, float] = (40.0, 45.0, 60.0)) -> None:
        self.target = np.asarray(target, dtype=np.float64)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        a = (self.target - obs[:, 1:4].astype(np.float64)) / self._GAIN
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def episode_end(self, done: np.ndarray) -> None:
        return None


class FourTankPIController:
    """Decentralised PI control of the upper tank levels: pump 2 -> h3, pump 1 -> h4.

    With gamma1 = gamma2 = 0.2, h3 depends only on v2 and h4 only on v1 (both first order), so no
    decoupling is needed. IMC tuning ``Kc = 1 / ((1 - gamma) k lambda)`` with lambda = 50 s, Ti = 120 s,
    steady-state feed-forward, conditional anti-windup and a 1.99 V/step ramp limit (inside the
    2 V/step constraint). Mean return about -2.4 against -14 for zero and -16.7 for random.
    """

    _G, _K, _GAM, _A = 9.81, np.array([8.5e-4, 9.5e-4]), 0.2, np.array([2.5e-3, 2.0e-3])
    _V_LO, _V_HI, _DT = 0.1, 10.0, 1000.0 / 60.0

    def __init__(self, num_envs: int, lam: float = 50.0, ti: float = 120.0, ramp: float = 1.99) -> None:
        self.kc = 1.0 / ((1.0 - self._GAM) * self._K * lam)  # V/m for (v1, v2)
        self.ti, self.ramp = ti, ramp
        self.integral = np.zeros((num_envs, 2))
        self.last_v = np.full((num_envs, 2), 0.5 * (self._V_LO + self._V_HI))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        h = obs[:, [3, 2]].astype(np.float64)  # (h4, h3), driven by (v1, v2)
        sp = obs[:, [5, 4]].astype(np.float64)
        ff = np.sqrt(2.0 * self._G * sp) * self._A / ((1.0 - self._GAM) * self._K)
        e = sp - h
        v_free = ff + self.kc * (e + self.integral / self.ti)
        v = np.clip(np.clip(v_free, self._V_LO, self._V_HI), self.last_v - self.ramp, self.last_v + self.ramp)
        self.integral += np.where(np.isclose(v, v_free), e * self._DT, 0.0)
        self.last_v = v
        return (2.0 * (v - self._V_LO) / (self._V_HI - self._V_LO) - 1.0).astype(np.float32)

    def episode_end(self, done: np.ndarray) -> None:
        self.integral[done] = 0.0
        self.last_v[done] = 0.5 * (self._V_LO + self._V_HI)


class PipelineSmithController:
    """Smith-predictor rule for the 19-step transport delay: the gate flow now is what arrives
    downstream in 19 steps, i.e. the current flow plus the last 19 actions; move it onto the target
    (gain 1: deadbeat). Mean return about 796 (NeoRL-2 score 104) against -116 for zero."""

    def __init__(self, num_envs: int) -> None:
        return None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        in_transit = obs[:, 0].astype(np.float64) + obs[:, 27:46].astype(np.float64).sum(axis=1)
        return np.clip(obs[:, 1] - in_transit, -1.0, 1.0)[:, None].astype(np.float32)

    def episode_end(self, done: np.ndarray) -> None:
        return None


class PowerGridAGC:
    """Integral automatic generation control per area, ramp-limited, with back-calculation anti-windup:
    ``dPref = -ki * sum(ACE)``, at most 0.02 p.u. per step. Mean return about -9.8 against -148 for the
    zero policy (droop only) and -553 for random."""

    def __init__(self, num_envs: int, ki: float = 0.3, ramp: float = 0.02, u_max: float = 0.12) -> None:
        self.ki, self.ramp, self.u_max = ki, ramp, u_max
        self.integral = np.zeros((num_envs, 2))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        ace, last = obs[:, 3:5].astype(np.float64), obs[:, 7:9].astype(np.float64)
        self.integral += ace
        u = -self.ki * self.integral
        u = np.clip(np.clip(u, last - self.ramp, last + self.ramp), -self.u_max, self.u_max)
        self.integral = -u / self.ki  # back-calculation anti-windup
        return (u / self.u_max).astype(np.float32)

    def episode_end(self, done: np.ndarray) -> None:
        self.integral[done] = 0.0


class HVACZonePI:
    """A heating and a cooling PI loop per zone, as a building-management system runs them: set-points
    21 / 23.5 °C on workdays 06:00-18:00, else 16 / 28 °C; heating only below 15 °C outdoors and
    cooling only above 12 °C; total power scaled into the 6 kW site limit. Mean return about -16 per
    winter day against -888 for zero and -197 for random."""

    def __init__(
        self, num_envs: int, kp: float = 0.2, ki: float = 0.2, p_max: float = 2.5, site: float = 6.0
    ) -> None:
        self.kp, self.ki, self.p_max, self.site = kp, ki, p_max, site
        self.i_heat = np.zeros((num_envs, 3))
        self.i_cool = np.zeros((num_envs, 3))

    def _loop(
        self, e: np.ndarray, integral: np.ndarray, enabled: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        integral = np.where(enabled, np.clip(integral + e, 0.0, self.p_max / self.ki), 0.0)
        return np.clip(self.kp * e + self.ki * integral, 0.0, self.p_max) * enabled, integral

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        t, t_out = obs[:, 0:3].astype(np.float64), obs[:, 3:4].astype(np.float64)
        on = ((obs[:, 8] > 0.5) & (obs[:, 7] >= 6.0) & (obs[:, 7] < 18.0))[:, None]
        heat, self.i_heat = self._loop(np.where(on, 21.0, 16.0) - t, self.i_heat, t_out < 15.0)
        cool, self.i_cool = self._loop(t - np.where(on, 23.5, 28.0), self.i_cool, t_out > 12.0)
        p = heat - cool
        p *= np.minimum(1.0, self.site / np.maximum(np.abs(p).sum(axis=1, keepdims=True), 1e-9))
        return (p / self.p_max).astype(np.float32)

    def episode_end(self, done: np.ndarray) -> None:
        self.i_heat[done] = 0.0
        self.i_cool[done] = 0.0


POLICIES = ("random", "zero", "pid")
_BASELINES = {
    "ChemicalReactor-v0": lambda n, seed: ReactorPIController(n, seed=seed),
    "IndustrialBenchmark-v0": lambda n, seed: IndustrialBenchmarkRegulator(n),
    "FourTank-v0": lambda n, seed: FourTankPIController(n),
    "Pipeline-v0": lambda n, seed: PipelineSmithController(n),
    "PowerGrid-v0": lambda n, seed: PowerGridAGC(n),
    "HVAC-v0": lambda n, seed: HVACZonePI(n),
}


def default_policy(env_id: str) -> str:
    """The best built-in baseline for an environment: its PID controller if it has one, else zero."""
    return "pid" if env_id.removeprefix("neorl_industrial/") in _BASELINES else "zero"


def make_policy(name: str, env_id: str, num_envs: int, act_dim: int, seed: int | None = None) -> Policy:
    """Builds a baseline policy by name (``random``, ``zero`` or ``pid``) for an environment."""
    env_id = env_id.removeprefix("neorl_industrial/")
    if name == "random":
        return RandomPolicy(num_envs, act_dim, seed)
    if name == "zero":
        return ZeroPolicy(num_envs, act_dim)
    if name == "pid":
        if env_id in _BASELINES:
            return _BASELINES[env_id](num_envs, seed)
        raise ConfigError(f"policy: no PID baseline for {env_id}; use random or zero")
    raise ConfigError(f"policy: unknown policy {name!r}; choose from {', '.join(POLICIES)}")
