"""PowerGrid-v0: the two-area LFC model against a 1e-12 scipy solution, hand-derived steady states,
constraints, shield and disturbances."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate  # type: ignore[import-untyped]

import neorl_industrial as ni

ENV = "PowerGrid-v0"

# The model's constants, restated from their sources (Fosha & Elgerd 1970; Kundur 1994 ch. 11).
F0, H, D, R, TG, TT, TWO_PI_T12 = 60.0, 5.0, 1.0 / 120.0, 2.4, 0.08, 0.3, 0.545
B = D + 1.0 / R  # frequency bias [p.u./Hz]
U_MAX = 0.12  # regulating reserve per area [p.u.]
STATES = ["df1", "df2", "dPv1", "dPv2", "dPm1", "dPm2", "dPtie"]

# Extra "info" constraints that never fire: their values are the signals, in float64.
PROBES = {
    f"probe_{s}": {"signal": s, "kind": "upper", "limit": 1e9, "severity": "info"}
    for s in [*STATES, "dPL1", "dPL2", "ACE1", "ACE2"]
}


def rhs(_t: float, x: np.ndarray, u: np.ndarray, pl: np.ndarray) -> list[float]:
    df1, df2, pv1, pv2, pm1, pm2, pt = x
    k = F0 / (2.0 * H)
    return [
        k * (pm1 - pl[0] - D * df1 - pt),
        k * (pm2 - pl[1] - D * df2 + pt),
        (u[0] - pv1 - df1 / R) / TG,
        (u[1] - pv2 - df2 / R) / TG,
        (pv1 - pm1) / TT,
        (pv2 - pm2) / TT,
        TWO_PI_T12 * (df1 - df2),
    ]


def probes(info: dict) -> np.ndarray:
    return np.array([info["constraints"][f"probe_{s}"] for s in STATES])


def quiet(load: list[float], **kwargs) -> ni.IndustrialEnv:
    return ni.make(ENV, load_step=0.0, initial_load=load, **kwargs)


def test_follows_a_high_accuracy_solution_of_the_same_odes() -> None:
    load = np.array([0.1, -0.05])
    env = quiet(list(load), constraints={"defaults": False, **PROBES})
    env.reset(seed=0)
    rng = np.random.default_rng(7)
    x, u_prev, worst = np.zeros(7), np.zeros(2), 0.0
    for k in range(120):
        a = rng.uniform(-1, 1, 2)
        u = U_MAX * a
        obs, reward, term, trunc, info = env.step(a.astype(np.float32))
        np.testing.assert_allclose(info["action"], u, rtol=0, atol=1e-7)  # float32 action in
        u = np.asarray(info["action"], dtype=float)
        sol = integrate.solve_ivp(rhs, (0.0, 1.0), x, method="DOP853", rtol=1e-12, atol=1e-12, args=(u, load))
        x = sol.y[:, -1]
        got = probes(info)
        worst = max(worst, float(np.max(np.abs(got - x))))
        np.testing.assert_allclose(got, x, rtol=0, atol=1e-8, err_msg=f"step {k}")
        ace = np.array([x[6] + B * x[0], -x[6] + B * x[1]])
        want_r = -(100.0 * ace @ ace + 10.0 * np.sum((u - u_prev) ** 2))
        assert reward == pytest.approx(want_r, rel=1e-7, abs=1e-9), f"step {k}"
        np.testing.assert_allclose(obs, [x[0], x[1], x[6], *ace, x[4], x[5], *u], rtol=1e-5, atol=1e-6)
        assert not term and not trunc
        u_prev = u
    assert worst > 0.0


@pytest.mark.parametrize("load", [[0.1, 0.0], [0.0, 0.08], [0.05, -0.1]])
def test_primary_control_settles_where_the_hand_calculation_says(load: list[float]) -> None:
    # AGC off: every governor answers with -df/R and every load with D df, so
    # df_ss = -(dPL1 + dPL2) / (D1 + 1/R1 + D2 + 1/R2), and area 2's balance gives the tie flow
    # dPtie_ss = dPL2 + B2 df_ss (area 1 to area 2).
    env = quiet(load, constraints=PROBES)
    env.reset(seed=0)
    for _ in range(300):
        obs, _, term, trunc, info = env.step(np.zeros(2, np.float32))
    df = -(load[0] + load[1]) / (2 * B)
    tie = load[1] + B * df
    c = info["constraints"]
    assert c["probe_df1"] == pytest.approx(df, abs=1e-9)
    assert c["probe_df2"] == pytest.approx(df, abs=1e-9)
    assert c["probe_dPtie"] == pytest.approx(tie, abs=1e-9)
    assert c["probe_dPm1"] == pytest.approx(-df / R, abs=1e-9)
    # Each ACE is its own area's uncovered load: ACE_i = -dPL_i.
    assert c["probe_ACE1"] == pytest.approx(-load[0], abs=1e-9)
    assert c["probe_ACE2"] == pytest.approx(-load[1], abs=1e-9)
    assert c["frequency_1"] == pytest.approx(abs(df), abs=1e-9)
    assert obs[3] == pytest.approx(-load[0], abs=1e-6)
    assert trunc and not term
    if load == [0.1, 0.0]:
        assert df == pytest.approx(-0.1176470588, rel=1e-9) and tie == pytest.approx(-0.05, rel=1e-9)


def test_set_points_covering_the_load_restore_frequency_and_schedule() -> None:
    env = quiet([0.1, -0.06], constraints=PROBES)
    env.reset(seed=0)
    a = np.array([0.1, -0.06], np.float32) / U_MAX
    for _ in range(300):
        _, reward, _, _, info = env.step(a)
    for s in ["df1", "df2", "dPtie", "ACE1", "ACE2"]:
        assert info["constraints"][f"probe_{s}"] == pytest.approx(0.0, abs=1e-7), s
    assert reward == pytest.approx(0.0, abs=1e-9)


def test_over_generation_trips_and_shuts_down() -> None:
    # Loads 0.12 p.u. below schedule and full raise in both areas: df would settle at
    # 0.48 / (2 B) = 0.56 Hz > 0.5 Hz.
    env = quiet([-0.12, -0.12])
    env.reset(seed=0)
    for _ in range(60):
        _, _, term, _, info = env.step(np.ones(2, np.float32))
        if term:
            break
    assert term
    assert info["shutdown_reason"].startswith("load_shedding")
    assert info["constraints"]["frequency_1"] > 0.5 or info["constraints"]["frequency_2"] > 0.5


def test_clip_shield_enforces_the_agc_ramp() -> None:
    env = quiet([0.0, 0.0], shield="clip")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([1.0, -1.0], np.float32))
    np.testing.assert_allclose(info["action"], [0.02, -0.02], atol=1e-12)
    assert info["shield"]
    _, _, _, _, info = env.step(np.array([1.0, -1.0], np.float32))
    np.testing.assert_allclose(info["action"], [0.04, -0.04], atol=1e-12)


def test_disturbances_are_seeded_one_area_at_a_time_and_bounded() -> None:
    def loads(seed: int) -> np.ndarray:
        env = ni.make(ENV, load_step=0.12, disturbance_rate=0.2, constraints=PROBES)
        env.reset(seed=seed)
        out = []
        for _ in range(200):
            _, _, term, _, info = env.step(np.zeros(2, np.float32))
            out.append([info["constraints"]["probe_dPL1"], info["constraints"]["probe_dPL2"]])
            assert not term
        return np.array(out)

    a, b, c = loads(1), loads(1), loads(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(np.abs(a) <= 0.12)
    changed = np.any(np.diff(a, axis=0) != 0, axis=1)
    assert 20 < changed.sum() < 60
    assert not np.any(np.all(np.diff(a, axis=0) != 0, axis=1)), "two areas changed in one step"


def test_spec_units_limits_and_fallback() -> None:
    sp = ni.spec(ENV)
    assert sp["dt"] == 1.0 and sp["dt_unit"] == "s" and sp["horizon"] == 300
    assert [a["name"] for a in sp["actions"]] == ["dPref1", "dPref2"]
    assert all(a["low"] == -U_MAX and a["high"] == U_MAX for a in sp["actions"])
    limits = {c["name"]: c["limit"] for c in sp["constraints"]}
    assert limits == {
        "frequency_1": 0.2,
        "frequency_2": 0.2,
        "load_shedding_1": 0.5,
        "load_shedding_2": 0.5,
        "tie_line": 0.1,
        "agc_ramp_1": 0.02,
        "agc_ramp_2": 0.02,
    }
    assert list(sp["safe_action"]) == [0.0, 0.0]


def test_integral_agc_beats_no_agc() -> None:
    def run(policy) -> float:
        env = ni.make_vec(ENV, num_envs=8)
        obs, _ = env.reset(seed=0)
        total = np.zeros(8)
        for _ in range(300):
            obs, r, term, trunc, _ = env.step(policy(obs))
            total += r
            assert not term.any()
        return float(total.mean())

    integral = np.zeros((8, 2))

    def agc(obs: np.ndarray) -> np.ndarray:
        # dPref_i = -0.3 sum(ACE_i) dt, at most 0.02 p.u. per step.
        nonlocal integral
        integral += obs[:, 3:5]
        last = obs[:, 7:9].astype(float)
        u = np.clip(np.clip(-0.3 * integral, last - 0.02, last + 0.02), -U_MAX, U_MAX)
        integral = -u / 0.3
        return (u / U_MAX).astype(np.float32)

    assert run(agc) > run(lambda obs: np.zeros((8, 2), np.float32)) / 5


def test_bad_options_are_named() -> None:
    for kwargs, name in [
        ({"initial_load": [0.1]}, "initial_load"),
        ({"initial_load": [0.13, 0.0]}, "initial_load"),
        ({"load_step": 0.2}, "load_step"),
        ({"disturbance_rate": 2.0}, "disturbance_rate"),
        ({"noise": -0.1}, "noise"),
        ({"load_stp": 0.1}, "load_stp"),
    ]:
        with pytest.raises(ni.ConfigError, match=name):
            ni.make(ENV, **kwargs)
