"""HVAC-v0: the three-zone RC network against its exact matrix-exponential solution, hand-solved
steady states, the calendar (weather, occupancy, tariff), reward and constraints."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, linalg  # type: ignore[import-untyped]

import neorl_industrial as ni

ENV = "HVAC-v0"

# The model's constants, restated from their sources (ISO 13790:2008, ASHRAE Fundamentals 2017).
C_AIR = 1.204 * 1.006 * 120.0 / 3600.0  # kWh/K
C_MASS = 165.0 * 40.0 / 3600.0  # kWh/K
R_AM = 1000.0 / (3.45 * 4.5 * 40.0) + 1000.0 / (9.1 * 2.5 * 40.0)  # K/kW
R_AO = 1000.0 / (9.6 * 1.8 + 1.204 * 1006.0 * 120.0 / 3600.0)
R_MO = 1000.0 / (14.4 * 0.35)
R_ZZ = 20.0
APERTURE = np.array([3.2, 1.6, 0.8])  # m^2
GAINS = np.array([0.6, 0.9, 0.6])  # kW
P_MAX, DT = 2.5, 0.25  # kW, h
COP_HEAT, COP_COOL = 3.5, 3.0
ZONES = [f"T_zone_{i}" for i in (1, 2, 3)]
MASSES = [f"T_mass_{i}" for i in (1, 2, 3)]
POWERS = [f"P_zone_{i}" for i in (1, 2, 3)]
PROBES = {
    f"probe_{s}": {"signal": s, "kind": "upper", "limit": 1e9, "severity": "info"}
    for s in ZONES + MASSES + POWERS
}


def system_matrix() -> np.ndarray:
    a = np.zeros((6, 6))
    for i in range(3):
        a[i, i] = -(1 / R_AM + 1 / R_AO) / C_AIR
        a[i, 3 + i] = 1 / (R_AM * C_AIR)
        a[3 + i, i] = 1 / (R_AM * C_MASS)
        a[3 + i, 3 + i] = -(1 / R_AM + 1 / R_MO) / C_MASS
    for i, j in [(0, 1), (1, 2)]:
        for p, q in [(i, j), (j, i)]:
            a[p, q] += 1 / (R_ZZ * C_AIR)
            a[p, p] -= 1 / (R_ZZ * C_AIR)
    return a


def calendar(k: int, mean: float = 5.0, amp: float = 6.0, peak: float = 0.4, day=(8.0, 16.0)) -> dict:
    """Weather, occupancy and tariff at step k (winter defaults), held over the following step."""
    hour, weekday = (k % 96) * DT, (k // 96) % 7
    workday = weekday < 5
    sun = peak * np.sin(np.pi * (hour - day[0]) / (day[1] - day[0])) if day[0] <= hour < day[1] else 0.0
    return {
        "t_out": mean + amp * np.sin(2 * np.pi * (hour - 9.0) / 24.0),
        "solar": sun,
        "occupied": workday and 8.0 <= hour < 18.0,
        "price": 0.30 if workday and 8.0 <= hour < 20.0 else 0.12,
        "hour": hour,
        "workday": workday,
    }


def delivered(p: np.ndarray, t_out: float) -> np.ndarray:
    """Heating only below 15 degC outdoors, cooling only above 12 degC."""
    return np.where(p > 0, p * (t_out < 15.0), p * (t_out > 12.0))


def forcing(p: np.ndarray, c: dict, gains: float = 1.0) -> np.ndarray:
    occ = gains if c["occupied"] else 0.0
    return np.concatenate(
        [
            (p + GAINS * occ + c["t_out"] / R_AO) / C_AIR,
            (APERTURE * c["solar"] + c["t_out"] / R_MO) / C_MASS,
        ]
    )


def probes(info: dict, names: list[str] = ZONES + MASSES) -> np.ndarray:
    return np.array([info["constraints"][f"probe_{s}"] for s in names])


def reward_of(p: np.ndarray, temps: np.ndarray, price: float, occupied_after: bool) -> float:
    electric = np.where(p > 0, p / COP_HEAT, -p / COP_COOL).sum()
    dev = np.maximum(np.maximum(20.0 - temps, temps - 24.0), 0.0) if occupied_after else np.zeros(3)
    return -(10.0 * electric * DT * price + np.sum(dev**2))


@pytest.mark.parametrize("mean", [5.0, 13.5])  # winter: heating only; 13.5 +- 6 degC: all three regimes
def test_matches_the_exact_matrix_exponential_solution(mean: float) -> None:
    a = system_matrix()
    phi = linalg.expm(a * DT)
    gamma = np.linalg.solve(a, phi - np.eye(6))  # int_0^dt exp(A s) ds = A^-1 (exp(A dt) - I)
    env = ni.make(ENV, x0_spread=0.0, outdoor_mean=mean, constraints={"defaults": False, **PROBES})
    _, info = env.reset(seed=0)
    x = np.full(6, 20.0)
    np.testing.assert_array_equal(probes(info), x)
    rng = np.random.default_rng(3)
    worst = 0.0
    for k in range(96):
        act = rng.uniform(-1, 1, 3).astype(np.float32)
        obs_c = calendar(k, mean=mean)
        obs, reward, term, trunc, info = env.step(act)
        command = np.asarray(info["action"], dtype=float)
        np.testing.assert_allclose(command, P_MAX * act, rtol=0, atol=1e-6)
        p = delivered(command, obs_c["t_out"])
        np.testing.assert_array_equal(probes(info, POWERS), p)
        x = phi @ x + gamma @ forcing(p, obs_c)
        got = probes(info)
        worst = max(worst, float(np.max(np.abs(got - x))))
        np.testing.assert_allclose(got, x, rtol=0, atol=1e-9, err_msg=f"step {k}")
        want = reward_of(p, x[:3], obs_c["price"], calendar(k + 1)["occupied"])
        assert reward == pytest.approx(want, rel=1e-9, abs=1e-12), f"step {k}"
        c = calendar(k + 1, mean=mean)
        want_obs = [
            *x[:3],
            c["t_out"],
            c["solar"],
            float(c["occupied"]),
            c["price"],
            c["hour"],
            float(c["workday"]),
        ]
        np.testing.assert_allclose(obs, want_obs, rtol=1e-6, atol=1e-5, err_msg=f"step {k}")
        assert not term and trunc == (k == 95)
    assert worst < 1e-9


def test_matches_a_1e12_ode_solution_in_summer() -> None:
    a = system_matrix()
    env = ni.make(ENV, summer=True, x0_spread=0.0, constraints={"defaults": False, **PROBES})
    env.reset(seed=0)
    x = np.full(6, 20.0)
    for k in range(96):
        act = np.full(3, -0.4 if 9 <= k // 4 < 19 else 0.1, np.float32)
        c = calendar(k, mean=22.0, peak=0.5, day=(5.0, 21.0))
        b = forcing(delivered(P_MAX * act.astype(float), c["t_out"]), c)
        _, _, _, _, info = env.step(act)
        sol = integrate.solve_ivp(
            lambda _t, y, b=b: a @ y + b, (0, DT), x, method="DOP853", rtol=1e-12, atol=1e-12
        )
        x = sol.y[:, -1]
        np.testing.assert_allclose(probes(info), x, rtol=0, atol=1e-8, err_msg=f"step {k}")


def still(**kwargs) -> ni.IndustrialEnv:
    """Constant 0 degC outdoors, no sun, no internal gains, 40 days; only the probe constraints (the
    unheated zones would otherwise trip the 12 degC limit)."""
    return ni.make(
        ENV,
        days=40,
        outdoor_mean=0.0,
        outdoor_amplitude=0.0,
        solar_peak=0.0,
        internal_gains=0.0,
        constraints={"defaults": False, **PROBES},
        **kwargs,
    )


def settle(env: ni.IndustrialEnv, p: list[float]) -> tuple[dict, np.ndarray]:
    """Constant powers until the end of the episode: the last readings and the applied powers."""
    env.reset(seed=0)
    for _ in range(env.horizon):
        _, _, term, _, info = env.step(np.asarray(p, np.float32) / P_MAX)
        assert not term
    return info["constraints"], np.asarray(info["action"], dtype=float)


def test_uniform_heating_settles_at_the_hand_formula() -> None:
    # All zones at 1 kW: nothing crosses the partitions; the air loses heat to outdoors directly
    # (R_ao) and through the mass (R_am + R_mo), so T_zone = P / (1/R_ao + 1/(R_am + R_mo)) and the
    # mass sits on the divider between air and outdoors.
    c, p = settle(still(), [1.0, 1.0, 1.0])
    assert p == pytest.approx(1.0, abs=1e-7)  # float32 actions: 1 kW to within 6e-9
    t_zone = p[0] / (1 / R_AO + 1 / (R_AM + R_MO))
    assert t_zone == pytest.approx(15.9677, abs=1e-4)
    for z, m in zip(ZONES, MASSES, strict=True):
        assert c[f"probe_{z}"] == pytest.approx(t_zone, abs=1e-7)
        assert c[f"probe_{m}"] == pytest.approx(t_zone * R_MO / (R_AM + R_MO), abs=1e-7)


def test_one_heated_zone_settles_at_the_three_zone_balance() -> None:
    # With G = 1/R_ao + 1/(R_am + R_mo) and g = 1/R_zz:
    #   (G + g) T1 - g T2 = P,  -g T1 + (G + 2g) T2 - g T3 = 0,  -g T2 + (G + g) T3 = 0.
    c, applied = settle(still(), [2.0, 0.0, 0.0])
    p = applied[0]
    assert applied[1:] == pytest.approx(0.0, abs=1e-12)
    big, g = 1 / R_AO + 1 / (R_AM + R_MO), 1 / R_ZZ
    t3_per_t2 = g / (big + g)
    t1_per_t2 = (big + 2 * g - g * t3_per_t2) / g
    t2 = p / ((big + g) * t1_per_t2 - g)
    want = [t1_per_t2 * t2, t2, t3_per_t2 * t2]
    for z, w in zip(ZONES, want, strict=True):
        assert c[f"probe_{z}"] == pytest.approx(w, abs=1e-7)


def test_a_week_has_office_hours_weekends_and_truncates_at_672_steps() -> None:
    env = ni.make(ENV, days=7)
    assert env.horizon == 672
    obs, _ = env.reset(seed=0)
    occupied, workday = [obs[5]], [obs[8]]
    for k in range(672):
        obs, _, term, trunc, _ = env.step(np.full(3, 0.3, np.float32))
        occupied.append(obs[5])
        workday.append(obs[8])
        assert not term and trunc == (k == 671)
    occupied, workday = np.array(occupied[:672]), np.array(workday[:672])
    assert occupied.sum() == 5 * 40  # 10 office hours x 4 steps x 5 days
    assert workday.sum() == 5 * 96
    assert occupied[:32].sum() == 0 and occupied[32] == 1 and occupied[72] == 0


def test_comfort_signal_and_constraints() -> None:
    sp = ni.spec(ENV)
    assert sp["dt"] == 15.0 and sp["dt_unit"] == "min" and sp["horizon"] == 96
    kinds = {c["name"]: (c["signal"], c["kind"], c["limit"], c["severity"]) for c in sp["constraints"]}
    assert kinds["comfort_zone_1"] == ("comfort_deviation_zone_1", "upper", 0.5, "warning")
    assert kinds["overheating_zone_2"] == ("T_zone_2", "upper", 30.0, "critical")
    assert kinds["too_cold_zone_3"] == ("T_zone_3", "lower", 12.0, "critical")
    assert kinds["site_power"] == ("total_power", "upper", 6.0, "warning")
    assert list(sp["safe_action"]) == [0.3, 0.3, 0.3]
    assert list(ni.make(ENV, summer=True).core_spec["safe_action"]) == [-0.3, -0.3, -0.3]
    # Full heating everywhere breaks the site limit: sum |P| = 7.5 kW > 6 kW.
    env = ni.make(ENV, x0_spread=0.0)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.ones(3, np.float32))
    assert info["constraints"]["site_power"] == pytest.approx(7.5)
    assert info["violations"]["site_power"]
    # Unoccupied at night: no comfort deviation whatever the temperature.
    assert info["constraints"]["comfort_zone_2"] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "action", "reason"),
    [
        ({"outdoor_mean": -25.0}, 0.0, "too_cold_zone"),  # heating off in a deep frost
        ({"outdoor_mean": 10.0, "outdoor_amplitude": 4.0}, 1.0, "overheating_zone"),  # full heating
        ({"summer": True}, 0.0, "overheating_zone_1"),  # no cooling: the sunny south zone first
    ],
)
def test_neglect_shuts_the_site_down(kwargs: dict, action: float, reason: str) -> None:
    env = ni.make(ENV, x0_spread=0.0, **kwargs)
    env.reset(seed=0)
    for _ in range(96):
        _, _, term, _, info = env.step(np.full(3, action, np.float32))
        if term:
            break
    assert term and info["shutdown_reason"].startswith(reason)


def test_locked_out_commands_deliver_and_cost_nothing() -> None:
    def day(action: float) -> tuple[list[float], np.ndarray]:
        env = ni.make(ENV, x0_spread=0.0, constraints=PROBES)
        env.reset(seed=0)
        rewards = []
        for _ in range(96):
            _, r, _, _, info = env.step(np.full(3, action, np.float32))
            rewards.append(r)
            assert probes(info, POWERS) == pytest.approx(0.0, abs=0.0)
        return rewards, probes(info)

    # Winter (at most 11 degC outdoors): cooling is never available.
    (cooled, x_cooled), (idle, x_idle) = day(-1.0), day(0.0)
    assert cooled == idle
    np.testing.assert_array_equal(x_cooled, x_idle)


def test_zone_pi_beats_doing_nothing() -> None:
    # Per zone a heating and a cooling PI (21 / 23.5 degC from 06:00 on workdays, 16 / 28 degC
    # otherwise), each clamped to [0, P_max] and off while the plant locks it out.
    env = ni.make_vec(ENV, num_envs=4)
    obs, _ = env.reset(seed=0)
    i_heat, i_cool, total = np.zeros((4, 3)), np.zeros((4, 3)), np.zeros(4)

    def loop(e: np.ndarray, integral: np.ndarray, enabled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        integral = np.where(enabled, np.clip(integral + e, 0.0, P_MAX / 0.2), 0.0)
        return np.clip(0.2 * e + 0.2 * integral, 0.0, P_MAX) * enabled, integral

    for _ in range(96):
        t, t_out = obs[:, :3].astype(float), obs[:, 3:4].astype(float)
        on = ((obs[:, 8] > 0.5) & (obs[:, 7] >= 6) & (obs[:, 7] < 18))[:, None]
        heat, i_heat = loop(np.where(on, 21.0, 16.0) - t, i_heat, t_out < 15.0)
        cool, i_cool = loop(t - np.where(on, 23.5, 28.0), i_cool, t_out > 12.0)
        p = heat - cool
        p *= np.minimum(1.0, 6.0 / np.maximum(np.abs(p).sum(1, keepdims=True), 1e-9))
        obs, r, term, _, _ = env.step((p / P_MAX).astype(np.float32))
        total += r
        assert not term.any()
    assert total.mean() > -25.0  # about -16; doing nothing costs about -870 (comfort) over the same day


def test_bad_options_are_named() -> None:
    for kwargs, name in [
        ({"days": 1.5}, "days"),
        ({"summer": 1}, "summer"),
        ({"outdoor_mean": 99.0}, "outdoor_mean"),
        ({"internal_gains": -1.0}, "internal_gains"),
        ({"noise": 5.0}, "noise"),
        ({"sumer": True}, "sumer"),
    ]:
        with pytest.raises(ni.ConfigError, match=name):
            ni.make(ENV, **kwargs)
