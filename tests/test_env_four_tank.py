"""FourTank-v0 against the published quadruple-tank model, solved with SciPy in the test itself.

The reference is pc-gym's ``four_tank`` right-hand side (Johansson 2000 with pc-gym's parameters),
integrated with DOP853 at rtol = atol = 1e-12 over each step under the env's own physical action.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp  # type: ignore[import-untyped]

import neorl_industrial as ni

ENV_ID = "FourTank-v0"
G = 9.81
GAMMA1 = GAMMA2 = 0.2
K1, K2 = 8.5e-4, 9.5e-4
OUTLET = (3.5e-3, 3.0e-3, 2.0e-3, 2.5e-3)
AREA = (1.0, 1.0, 1.0, 1.0)
X0 = (0.141, 0.112, 0.072, 0.42)
DT = 1000.0 / 60.0
V_LO, V_HI = 0.1, 10.0
LEVELS = ("tank1_overflow", "tank2_overflow", "tank3_overflow", "tank4_overflow")


def pcgym_four_tank(_t: float, h: np.ndarray, v1: float, v2: float) -> list[float]:
    # pc-gym's model_classes.four_tank.__call__; levels are positive on every path tested here,
    # the clamp only keeps a trial point of the solver from taking the root of a tiny negative.
    s = np.sqrt(2 * G * np.maximum(h, 0.0))
    a1, a2, a3, a4 = OUTLET
    A1, A2, A3, A4 = AREA
    return [
        -a1 / A1 * s[0] + a3 / A1 * s[2] + GAMMA1 * K1 / A1 * v1,
        -a2 / A2 * s[1] + a4 / A2 * s[3] + GAMMA2 * K2 / A2 * v2,
        -a3 / A3 * s[2] + (1 - GAMMA2) * K2 / A3 * v2,
        -a4 / A4 * s[3] + (1 - GAMMA1) * K1 / A4 * v1,
    ]


def reference_step(h: np.ndarray, v: np.ndarray) -> np.ndarray:
    sol = solve_ivp(pcgym_four_tank, (0.0, DT), h, method="DOP853", rtol=1e-12, atol=1e-12, args=tuple(v))
    assert sol.success
    return sol.y[:, -1]


def to_action(v: np.ndarray | list[float]) -> np.ndarray:
    return (2.0 * (np.asarray(v) - V_LO) / (V_HI - V_LO) - 1.0).astype(np.float32)


def action_sequence(n: int) -> np.ndarray:
    """A fixed, varied sequence of normalised actions, the extremes included."""
    k = np.arange(n)
    a = np.stack([np.sin(0.7 * k), np.cos(0.31 * k)], axis=1)
    a[::15] = [-1.0, 1.0]
    a[7::15] = [1.0, -1.0]
    return a.astype(np.float32)


def levels(info: dict) -> np.ndarray:
    return np.array([info["constraints"][name] for name in LEVELS])


def test_levels_follow_the_scipy_reference_solution() -> None:
    env = ni.make(ENV_ID)
    obs, info = env.reset(seed=0)
    np.testing.assert_allclose(obs[:4], X0, rtol=1e-7)
    h = np.array(X0)
    v_prev = np.array([5.05, 5.05])
    worst = 0.0
    for k, a in enumerate(action_sequence(60)):
        obs, r, term, trunc, info = env.step(a)
        v = info["action"]
        np.testing.assert_allclose(v, V_LO + (a.astype(np.float64) + 1) / 2 * (V_HI - V_LO), rtol=1e-12)
        h = reference_step(h, v)
        got = levels(info)
        worst = max(worst, float(np.max(np.abs(got - h) / h)))
        np.testing.assert_allclose(got, h, rtol=1e-6, err_msg=f"step {k}")
        np.testing.assert_allclose(obs[:4], h, rtol=1e-6, err_msg=f"step {k}")
        # Reward: normalised squared tracking error of h3, h4 plus 0.1 x normalised squared moves.
        sp = (0.5, 0.2) if k < 30 else (0.1, 0.3)
        want = -(
            ((h[2] - sp[0]) / 0.6) ** 2
            + ((h[3] - sp[1]) / 0.6) ** 2
            + 0.1 * np.sum(((v - v_prev) / (V_HI - V_LO)) ** 2)
        )
        assert r == pytest.approx(want, rel=1e-6, abs=1e-9), f"step {k}"
        v_prev = v
        assert not term
        assert trunc == (k == 59)
    assert worst < 1e-6


def test_constant_pumps_settle_on_the_analytic_steady_state() -> None:
    v1, v2 = 6.0, 4.0
    q3, q4 = (1 - GAMMA2) * K2 * v2, (1 - GAMMA1) * K1 * v1

    def level(q: float, a: float) -> float:
        return (q / a) ** 2 / (2 * G)

    steady = [
        level(q3 + GAMMA1 * K1 * v1, OUTLET[0]),
        level(q4 + GAMMA2 * K2 * v2, OUTLET[1]),
        level(q3, OUTLET[2]),
        level(q4, OUTLET[3]),
    ]
    env = ni.make(ENV_ID, horizon=700)
    env.reset(seed=0)
    a = to_action([v1, v2])
    for _ in range(700):
        _, _, term, _, info = env.step(a)
        assert not term
    np.testing.assert_allclose(levels(info), steady, rtol=1e-6)


def test_overflow_is_an_emergency_shutdown_when_the_reference_overflows() -> None:
    # Pump 2 flat out fills tank 3 past its 0.6 m rim; pump 1 at minimum.
    env = ni.make(ENV_ID)
    env.reset(seed=0)
    h = np.array(X0)
    for k in range(60):
        _, _, term, trunc, info = env.step(np.array([-1.0, 1.0], dtype=np.float32))
        h = reference_step(h, np.array([V_LO, V_HI]))
        assert term == (h[2] > 0.6), f"step {k}"
        if term:
            assert info["shutdown_reason"] == "tank3_overflow"
            assert k == 15
            break
        assert not trunc
    else:
        pytest.fail("tank 3 never overflowed")


def test_predictive_shield_prevents_the_overflow() -> None:
    env = ni.make(ENV_ID, shield="predictive")
    env.reset(seed=0)
    for _ in range(60):
        _, _, term, _, info = env.step(np.array([-1.0, 1.0], dtype=np.float32))
        assert not term
        assert info["constraints"]["tank3_overflow"] <= 0.6


def test_spec_declares_units_bounds_and_constraints() -> None:
    sp = ni.spec(ENV_ID)
    assert [v["name"] for v in sp["observations"]] == ["h1", "h2", "h3", "h4", "h3_setpoint", "h4_setpoint"]
    assert [(v["name"], v["unit"], v["low"], v["high"]) for v in sp["actions"]] == [
        ("v1", "V", V_LO, V_HI),
        ("v2", "V", V_LO, V_HI),
    ]
    assert sp["dt"] == pytest.approx(DT, rel=1e-15) and sp["dt_unit"] == "s"
    assert sp["horizon"] == 60
    assert sp["safe_action"] == [-1.0, -1.0]
    cons = {c["name"]: c for c in sp["constraints"]}
    for name in LEVELS:
        assert (cons[name]["kind"], cons[name]["limit"], cons[name]["severity"]) == ("upper", 0.6, "critical")
        assert cons[name]["constraint_type"] == "level"
    for name in ("tank1_low", "tank2_low"):
        assert (cons[name]["kind"], cons[name]["limit"], cons[name]["severity"]) == ("lower", 0.05, "warning")
    for name, signal in (("pump1_ramp", "v1"), ("pump2_ramp", "v2")):
        assert (cons[name]["kind"], cons[name]["limit"], cons[name]["signal"]) == ("rate", 2.0, signal)


def test_setpoints_switch_at_mid_episode() -> None:
    env = ni.make(ENV_ID, horizon=10)
    obs, _ = env.reset(seed=0)
    seen = [tuple(obs[4:])]
    for _ in range(9):
        obs, *_ = env.step(np.zeros(2, dtype=np.float32))
        seen.append(tuple(obs[4:]))
    assert seen == [pytest.approx((0.5, 0.2))] * 5 + [pytest.approx((0.1, 0.3))] * 5


def test_bad_options_are_rejected() -> None:
    for kwargs, message in (
        ({"x0_spread": 0.5}, r"x0_spread: must be a finite number in \[0, 0.3\], got 0.5"),
        ({"noise": -1.0}, r"noise: must be a finite number in \[0, 0.2\], got -1"),
        ({"horizon": 0}, r"horizon: must be a finite number in \[1, .*\], got 0"),
        # The set-point schedule is fixed: FourTank-v0 takes no setpoints option at all.
        ({"setpoints": [0.1]}, "setpoints: is not an option of FourTank-v0"),
    ):
        with pytest.raises(ni.ConfigError, match=message):
            ni.make(ENV_ID, **kwargs)


class FourTankPI:
    """The documented baseline: decentralised PI (pump 2 -> h3, pump 1 -> h4) with feed-forward."""

    def __init__(self, num_envs: int, lam: float = 50.0, ti: float = 120.0, ramp: float = 1.99) -> None:
        self.kc = np.array([1 / ((1 - GAMMA1) * K1 * lam), 1 / ((1 - GAMMA2) * K2 * lam)])
        self.ti, self.ramp = ti, ramp
        self.integral = np.zeros((num_envs, 2))
        self.last_v = np.full((num_envs, 2), 0.5 * (V_LO + V_HI))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        h = obs[:, [3, 2]].astype(np.float64)
        sp = obs[:, [5, 4]].astype(np.float64)
        ff = np.sqrt(2 * G * sp) * np.array(
            [OUTLET[3] / ((1 - GAMMA1) * K1), OUTLET[2] / ((1 - GAMMA2) * K2)]
        )
        e = sp - h
        v_free = ff + self.kc * (e + self.integral / self.ti)
        v = np.clip(np.clip(v_free, V_LO, V_HI), self.last_v - self.ramp, self.last_v + self.ramp)
        self.integral += np.where(np.isclose(v, v_free), e * DT, 0.0)
        self.last_v = v
        return to_action(v).reshape(len(obs), 2)


def test_pi_baseline_tracks_both_setpoints_without_alarms() -> None:
    env = ni.make(ENV_ID)
    obs, _ = env.reset(seed=0)
    pi = FourTankPI(1)
    ret = 0.0
    for k in range(60):
        obs, r, term, _, info = env.step(pi(obs[None])[0])
        ret += r
        assert not term and not any(info["violations"].values()), f"step {k}"
        if k in (29, 59):
            sp = (0.5, 0.2) if k == 29 else (0.1, 0.3)
            assert abs(obs[2] - sp[0]) < 0.005 and abs(obs[3] - sp[1]) < 0.005
    assert ret > -3.0  # measured -2.41; zero action -14.0; uniform random -16.7
