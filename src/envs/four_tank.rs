//! FourTank-v0: the quadruple-tank process, two pumps filling four interconnected tanks.
//!
//! Johansson, "The quadruple-tank process: a multivariable laboratory process with an adjustable
//! zero", IEEE Trans. Control Systems Technology 8(3), 2000, eqs. (1), with the parameters of
//! pc-gym's `four_tank` (Bloor et al., "PC-Gym: Benchmark environments for process control
//! problems", 2024):
//!
//! ```text
//! dh1/dt = -a1/A1 sqrt(2 g h1) + a3/A1 sqrt(2 g h3) + gamma1 k1 v1 / A1
//! dh2/dt = -a2/A2 sqrt(2 g h2) + a4/A2 sqrt(2 g h4) + gamma2 k2 v2 / A2
//! dh3/dt = -a3/A3 sqrt(2 g h3) + (1 - gamma2) k2 v2 / A3
//! dh4/dt = -a4/A4 sqrt(2 g h4) + (1 - gamma1) k1 v1 / A4
//! ```
//!
//! Tanks 3 and 4 sit above tanks 1 and 2 and drain into them. Pump 1 sends the fraction gamma1 of
//! its flow to tank 1 and the rest to tank 4; pump 2 sends gamma2 to tank 2 and the rest to tank 3.
//! With gamma1 + gamma2 < 1 (here 0.4) the transfer from pumps to the lower levels has a
//! right-half-plane zero. The task (pc-gym's) is to track set-points on the upper levels h3 and h4,
//! each of which is driven by one pump only. Time in seconds, levels in metres.

use super::success::Criterion;
use super::{reject_unknown, take_number, Config, ProcessModel};
use crate::errors::CoreError;
use crate::integrate::{dopri5, Tolerance};
use crate::rng::Rng;
use crate::spec::{ConstraintKind, ConstraintSpec, EnvSpec, Parameter, Severity, Variable};

/// Gravitational acceleration [m/s^2] (pc-gym `four_tank.g`).
pub const G: f64 = 9.81;
/// Fraction of pump 1's flow sent to tank 1 [-] (pc-gym `gamma_1`).
pub const GAMMA1: f64 = 0.2;
/// Fraction of pump 2's flow sent to tank 2 [-] (pc-gym `gamma_2`).
pub const GAMMA2: f64 = 0.2;
/// Pump 1 gain [m^3/(s V)] (pc-gym `k1`).
pub const K1: f64 = 8.5e-4;
/// Pump 2 gain [m^3/(s V)] (pc-gym `k2`).
pub const K2: f64 = 9.5e-4;
/// Outlet cross-sections a1..a4 [m^2] (pc-gym `a1`..`a4`).
pub const OUTLET: [f64; 4] = [3.5e-3, 3.0e-3, 2.0e-3, 2.5e-3];
/// Tank cross-sections A1..A4 [m^2] (pc-gym `A1`..`A4`).
pub const AREA: [f64; 4] = [1.0; 4];

/// Step length [s]: pc-gym runs the four-tank over `tsim = 1000` s; 60 steps give 16.7 s, a tenth
/// of the slowest tank's time constant (about 160 s for tank 3 at 0.5 m).
pub const DT_S: f64 = 1000.0 / 60.0;
/// Default steps per episode.
pub const HORIZON: u32 = 60;
/// Default initial levels [m] (pc-gym's `four_tank` default `x0`).
pub const X0: [f64; 4] = [0.141, 0.112, 0.072, 0.42];
/// Pump voltage range the normalised actions map to [V] (pc-gym's default `a_space`).
pub const V_RANGE: (f64, f64) = (0.1, 10.0);
/// Pump voltages before the first action [V]: mid-range (normalised action 0).
pub const V_NOMINAL: f64 = 0.5 * (V_RANGE.0 + V_RANGE.1);
/// Set-points on (h3, h4) [m] for the first and second half of the episode (pc-gym's benchmark:
/// its default `x0` starts the set-point at (0.5, 0.2); its default task regulates to (0.1, 0.3)).
pub const SETPOINTS: [[f64; 2]; 2] = [[0.5, 0.2], [0.1, 0.3]];
/// Level range that normalises tracking errors in the reward [m] (pc-gym's `o_space` width).
pub const LEVEL_SCALE: f64 = 0.6;
/// Weight of the squared, range-normalised voltage change in the reward.
pub const MOVE_WEIGHT: f64 = 0.1;
/// Tank height [m]: above it a tank overflows (pc-gym's `o_space` bound).
pub const OVERFLOW_M: f64 = 0.6;
/// Lowest safe level of a lower tank [m]: below it the outlet vortexes and draws air into the
/// line to the basin the pumps draw from.
pub const LOW_LEVEL_M: f64 = 0.05;
/// Largest safe pump voltage change per step [V].
pub const PUMP_RAMP_V: f64 = 2.0;
/// Highest level the observation space admits [m]: covers every reachable level (tank 3 tends to
/// 0.74 m at full pump 2; a spread start stays below 0.6 m).
pub const LEVEL_OBS_MAX: f64 = 1.0;

/// Integration tolerances. The square-root outflows are smooth while the levels stay positive (they
/// do: the pumps never stop), so the error-controlled DP5(4) crosses a 16.7 s step in a few
/// substeps, short ones only where a level is small and falls fast. Relative 1e-9 with absolute
/// 1e-12 keeps every step within 3e-8 relative of a converged solution, near-empty tanks included
/// (a 30x margin on the 1e-6 promise), for 35-65 right-hand-side evaluations per step; an
/// absolute tolerance of 1e-9 instead would cost fewer evaluations but lose 1e-5 relative on the
/// millimetre-deep levels the pumps leave at minimum voltage.
const TOL: Tolerance = Tolerance {
    rtol: 1e-9,
    atol: 1e-12,
    max_steps: 20_000,
};

// State layout.
const H: usize = 0; // levels h1..h4 [m], slots 0..4
const V1: usize = 4; // pump 1 voltage last applied [V]
const V2: usize = 5; // pump 2 voltage last applied [V]
const STEP: usize = 6; // integrator step-size memory [s]
const MEAS: usize = 7; // measured (possibly noisy) levels, slots 7..11
const STATE_LEN: usize = 11;

/// Success: h3 and h4 each within this distance of their set-points at the episode's end [m].
/// The PI baseline ends 0.003 m away, the zero policy 0.2 m.
pub const SUCCESS_BAND_M: f64 = 0.02;
/// The success criterion as the spec shows it.
const SUCCESS: Criterion = Criterion {
    description: "h3 and h4 each within `band` of their set-points at the end of the episode, no emergency shutdown",
    parameters: &[("band", SUCCESS_BAND_M, "m")],
};

const OPTIONS: &[&str] = &["horizon", "x0_spread", "noise"];

/// Outflow speed sqrt(2 g h) [m/s]; a tiny negative trial level counts as empty (never NaN).
#[inline]
fn torricelli(h: f64) -> f64 {
    (2.0 * G * h.max(0.0)).sqrt()
}

/// Right-hand side of the four-tank ODE at pump voltages `v = [v1, v2]`.
#[inline]
pub fn rhs(h: &[f64; 4], v: [f64; 2]) -> [f64; 4] {
    rhs_with(h, v, [K1, K2])
}

/// [`rhs`] with the env's own pump gains `k = [k1, k2]` [m^3/(s V)] (worn pumps deliver less per
/// volt): the same arithmetic, so the nominal gains give the same bits.
#[inline(always)]
pub fn rhs_with(h: &[f64; 4], v: [f64; 2], k: [f64; 2]) -> [f64; 4] {
    let q = [
        OUTLET[0] * torricelli(h[0]),
        OUTLET[1] * torricelli(h[1]),
        OUTLET[2] * torricelli(h[2]),
        OUTLET[3] * torricelli(h[3]),
    ];
    [
        (-q[0] + q[2] + GAMMA1 * k[0] * v[0]) / AREA[0],
        (-q[1] + q[3] + GAMMA2 * k[1] * v[1]) / AREA[1],
        (-q[2] + (1.0 - GAMMA2) * k[1] * v[1]) / AREA[2],
        (-q[3] + (1.0 - GAMMA1) * k[0] * v[0]) / AREA[3],
    ]
}

/// The tanks' physical parameters, in the order `step_with` takes them: the pump gains, which
/// fall as the pumps wear.
pub const PARAMETERS: [Parameter; 2] = [
    Parameter::new("k1", "pump 1 gain", "m^3/(s V)", K1, (0.1 * K1, 2.0 * K1)),
    Parameter::new("k2", "pump 2 gain", "m^3/(s V)", K2, (0.1 * K2, 2.0 * K2)),
];

/// Integrates the tanks over one step of `DT_S` at constant voltages `v`; levels stay `>= 0`.
pub fn advance(h: [f64; 4], v: [f64; 2], step: &mut f64) -> [f64; 4] {
    advance_with(h, v, step, [K1, K2])
}

/// [`advance`] with the env's own pump gains `k` (see [`rhs_with`]).
#[inline(always)]
pub fn advance_with(h: [f64; 4], v: [f64; 2], step: &mut f64, k: [f64; 2]) -> [f64; 4] {
    dopri5(|x| rhs_with(x, v, k), h, DT_S, step, TOL).map(|x| x.max(0.0))
}

/// Levels at which constant voltages `v` hold the process still [m] (all outflows = inflows).
pub fn steady_state(v: [f64; 2]) -> [f64; 4] {
    let level = |q: f64, a: f64| (q / a).powi(2) / (2.0 * G);
    let q3 = (1.0 - GAMMA2) * K2 * v[1];
    let q4 = (1.0 - GAMMA1) * K1 * v[0];
    [
        level(q3 + GAMMA1 * K1 * v[0], OUTLET[0]),
        level(q4 + GAMMA2 * K2 * v[1], OUTLET[1]),
        level(q3, OUTLET[2]),
        level(q4, OUTLET[3]),
    ]
}

/// The registry id.
pub const ID: &str = "FourTank-v0";

/// The quadruple-tank process.
#[derive(Debug, Clone)]
pub struct FourTank {
    spec: EnvSpec,
    x0_spread: f64,
    noise: f64,
}

impl FourTank {
    /// One step with pump gains `k` (see [`ProcessModel::step_with`]).
    #[inline(always)]
    fn step_k(&self, state: &mut [f64], action: &[f64], t: u32, rng: &mut Rng, k: [f64; 2]) -> f64 {
        let v = [
            action[0].clamp(V_RANGE.0, V_RANGE.1),
            action[1].clamp(V_RANGE.0, V_RANGE.1),
        ];
        let dv = [v[0] - state[V1], v[1] - state[V2]];
        let mut step = state[STEP];
        let h0 = [state[H], state[H + 1], state[H + 2], state[H + 3]];
        let h = advance_with(h0, v, &mut step, k);
        state[H..H + 4].copy_from_slice(&h);
        state[V1] = v[0];
        state[V2] = v[1];
        state[STEP] = step;
        self.measure(state, rng);
        reward(&h, self.setpoint(t), dv)
    }

    /// Builds the process from constructor options (see the Python docstring).
    pub fn new(config: &mut Config) -> Result<Self, CoreError> {
        let horizon = take_number(config, "horizon", f64::from(HORIZON), 1.0, 1e9)?;
        if horizon.fract() != 0.0 {
            return Err(CoreError::config(
                "horizon",
                format!("must be a whole number, got {horizon}"),
            ));
        }
        let x0_spread = take_number(config, "x0_spread", 0.0, 0.0, 0.3)?;
        let noise = take_number(config, "noise", 0.0, 0.0, 0.2)?;
        reject_unknown(config, ID, OPTIONS)?;
        Ok(Self {
            spec: spec(horizon as u32),
            x0_spread,
            noise,
        })
    }

    /// (h3, h4) set-points in force at episode step `t`: the first pair for the first half of the
    /// horizon, the second pair from then on.
    pub fn setpoint(&self, t: u32) -> [f64; 2] {
        SETPOINTS[usize::from(t >= self.spec.horizon / 2)]
    }

    fn measure(&self, state: &mut [f64], rng: &mut Rng) {
        for i in 0..4 {
            let h = state[H + i];
            let m = if self.noise > 0.0 {
                h * (1.0 + self.noise * rng.normal())
            } else {
                h
            };
            state[MEAS + i] = m.clamp(0.0, LEVEL_OBS_MAX);
        }
    }
}

/// The step's reward: squared tracking errors of h3 and h4 over the level range, plus
/// `MOVE_WEIGHT` times the squared voltage changes over the voltage range, negated.
pub fn reward(h: &[f64; 4], sp: [f64; 2], dv: [f64; 2]) -> f64 {
    let span = V_RANGE.1 - V_RANGE.0;
    let e3 = (h[2] - sp[0]) / LEVEL_SCALE;
    let e4 = (h[3] - sp[1]) / LEVEL_SCALE;
    let m1 = dv[0] / span;
    let m2 = dv[1] / span;
    -(e3 * e3 + e4 * e4 + MOVE_WEIGHT * (m1 * m1 + m2 * m2))
}

fn level_var(name: &'static str, description: &'static str) -> Variable {
    Variable::new(name, description, "m", 0.0, LEVEL_OBS_MAX)
}

fn pump(name: &'static str, description: &'static str) -> Variable {
    Variable::new(name, description, "V", V_RANGE.0, V_RANGE.1)
}

fn levels() -> Vec<Variable> {
    vec![
        level_var("h1", "level of lower tank 1"),
        level_var("h2", "level of lower tank 2"),
        level_var("h3", "level of upper tank 3"),
        level_var("h4", "level of upper tank 4"),
    ]
}

fn constraint(
    name: &'static str,
    signal: &'static str,
    kind: ConstraintKind,
    limit: f64,
    severity: Severity,
) -> ConstraintSpec {
    let constraint_type = if kind == ConstraintKind::Rate {
        "actuator_rate"
    } else {
        "level"
    };
    ConstraintSpec {
        name,
        constraint_type,
        signal,
        kind,
        limit,
        severity,
        on_delay: 0,
        penalty: 0.0,
    }
}

fn constraints() -> Vec<ConstraintSpec> {
    use ConstraintKind::{Lower, Rate, Upper};
    use Severity::{Critical, Warning};
    vec![
        constraint("tank1_overflow", "h1", Upper, OVERFLOW_M, Critical),
        constraint("tank2_overflow", "h2", Upper, OVERFLOW_M, Critical),
        constraint("tank3_overflow", "h3", Upper, OVERFLOW_M, Critical),
        constraint("tank4_overflow", "h4", Upper, OVERFLOW_M, Critical),
        constraint("tank1_low", "h1", Lower, LOW_LEVEL_M, Warning),
        constraint("tank2_low", "h2", Lower, LOW_LEVEL_M, Warning),
        constraint("pump1_ramp", "v1", Rate, PUMP_RAMP_V, Warning),
        constraint("pump2_ramp", "v2", Rate, PUMP_RAMP_V, Warning),
    ]
}

fn spec(horizon: u32) -> EnvSpec {
    let mut observations = levels();
    observations.push(Variable::new(
        "h3_setpoint",
        "tank 3 level set-point",
        "m",
        0.0,
        OVERFLOW_M,
    ));
    observations.push(Variable::new(
        "h4_setpoint",
        "tank 4 level set-point",
        "m",
        0.0,
        OVERFLOW_M,
    ));
    let actions = vec![pump("v1", "pump 1 voltage"), pump("v2", "pump 2 voltage")];
    let mut signals = levels();
    signals.extend(actions.iter().cloned());
    EnvSpec {
        id: ID,
        description:
            "Quadruple-tank process: track set-points on two upper tank levels with two pumps",
        observations,
        actions,
        signals,
        dt: DT_S,
        dt_unit: "s",
        horizon,
        constraints: constraints(),
        // Both pumps at minimum: the levels can only fall, so no tank can overflow.
        safe_action: vec![-1.0, -1.0],
        parameters: PARAMETERS.to_vec(),
        source:
            "Johansson 2000, IEEE TCST 8(3); parameters of pc-gym four_tank (Bloor et al. 2024)",
    }
}

impl ProcessModel for FourTank {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn state_len(&self) -> usize {
        STATE_LEN
    }

    fn reset(&self, state: &mut [f64], rng: &mut Rng) {
        for (i, x) in X0.iter().enumerate() {
            let f = if self.x0_spread > 0.0 {
                1.0 + rng.uniform_in(-self.x0_spread, self.x0_spread)
            } else {
                1.0
            };
            state[H + i] = x * f;
        }
        state[V1] = V_NOMINAL;
        state[V2] = V_NOMINAL;
        state[STEP] = DT_S;
        self.measure(state, rng);
    }

    fn step(&self, state: &mut [f64], action: &[f64], t: u32, rng: &mut Rng) -> f64 {
        self.step_k(state, action, t, rng, [K1, K2])
    }

    fn step_with(
        &self,
        state: &mut [f64],
        action: &[f64],
        t: u32,
        rng: &mut Rng,
        params: &[f64],
    ) -> f64 {
        let k = [
            params.first().copied().unwrap_or(K1),
            params.get(1).copied().unwrap_or(K2),
        ];
        self.step_k(state, action, t, rng, k)
    }

    fn observe(&self, state: &[f64], t: u32, obs: &mut [f32]) {
        for i in 0..4 {
            obs[i] = state[MEAS + i] as f32;
        }
        let sp = self.setpoint(t);
        obs[4] = sp[0] as f32;
        obs[5] = sp[1] as f32;
    }

    fn signals(&self, state: &[f64], out: &mut [f64]) {
        out[..4].copy_from_slice(&state[H..H + 4]);
        out[4] = state[V1];
        out[5] = state[V2];
    }

    fn success(&self) -> Option<&Criterion> {
        Some(&SUCCESS)
    }

    fn succeeded(&self, state: &[f64], t: u32) -> bool {
        // The set-points the last step was scored against.
        let sp = self.setpoint(t.saturating_sub(1));
        (state[H + 2] - sp[0]).abs() <= SUCCESS_BAND_M
            && (state[H + 3] - sp[1]).abs() <= SUCCESS_BAND_M
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs::ConfigValue;
    use crate::integrate::rk4_fixed;

    #[test]
    fn success_is_both_upper_levels_near_their_set_points_at_the_end() {
        let m = FourTank::new(&mut Vec::new()).expect("default config is valid");
        let h = m.spec.horizon;
        let mut s = vec![0.0; STATE_LEN];
        m.reset(&mut s, &mut Rng::from_seed(0));
        let sp = m.setpoint(h - 1);
        s[H + 2] = sp[0] + 0.9 * SUCCESS_BAND_M;
        s[H + 3] = sp[1] - 0.9 * SUCCESS_BAND_M;
        assert!(m.succeeded(&s, h));
        s[H + 3] = sp[1] - 1.5 * SUCCESS_BAND_M;
        assert!(!m.succeeded(&s, h));
        // The first half's set-points are not the end's.
        let first = m.setpoint(0);
        s[H + 2] = first[0];
        s[H + 3] = first[1];
        assert!(!m.succeeded(&s, h));
    }

    fn tanks() -> FourTank {
        FourTank::new(&mut Vec::new()).expect("default config is valid")
    }

    /// A varied voltage sequence over the whole range, the extremes included.
    fn voltages(k: usize) -> [f64; 2] {
        let s = (k as f64 * 0.7).sin();
        let c = (k as f64 * 0.31).cos();
        match k % 15 {
            0 => [V_RANGE.0, V_RANGE.1],
            7 => [V_RANGE.1, V_RANGE.0],
            _ => [5.05 + 4.95 * s, 5.05 + 4.95 * c],
        }
    }

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs().max(1e-3)
    }

    #[test]
    fn rhs_matches_hand_computation_at_x0() {
        let d = rhs(&X0, [5.0, 6.0]);
        let s = |h: f64| (2.0 * 9.81 * h).sqrt();
        let want = [
            -3.5e-3 * s(0.141) + 2.0e-3 * s(0.072) + 0.2 * 8.5e-4 * 5.0,
            -3.0e-3 * s(0.112) + 2.5e-3 * s(0.42) + 0.2 * 9.5e-4 * 6.0,
            -2.0e-3 * s(0.072) + 0.8 * 9.5e-4 * 6.0,
            -2.5e-3 * s(0.42) + 0.8 * 8.5e-4 * 5.0,
        ];
        for i in 0..4 {
            assert!(
                (d[i] - want[i]).abs() < 1e-15,
                "{i}: {} vs {}",
                d[i],
                want[i]
            );
        }
    }

    #[test]
    fn steady_state_is_a_fixed_point_and_the_attractor() {
        for v in [
            [3.0, 7.0],
            [7.28, 8.24],
            [8.92, 3.69],
            [10.0, 10.0],
            [0.1, 0.1],
        ] {
            let ss = steady_state(v);
            let d = rhs(&ss, v);
            assert!(d.iter().all(|x| x.abs() < 1e-15), "{v:?}: {d:?}");
            // From the default start, 3 hours at constant voltages settle on it.
            let mut h = X0;
            let mut step = DT_S;
            for _ in 0..650 {
                h = advance(h, v, &mut step);
            }
            for i in 0..4 {
                assert!(
                    rel(h[i], ss[i]) < 1e-6,
                    "{v:?} tank {}: {} vs {}",
                    i + 1,
                    h[i],
                    ss[i]
                );
            }
        }
        // The benchmark set-points are reachable inside the voltage range.
        let v3 = OUTLET[2] * (2.0 * G * 0.5f64).sqrt() / ((1.0 - GAMMA2) * K2);
        let v4 = OUTLET[3] * (2.0 * G * 0.2f64).sqrt() / ((1.0 - GAMMA1) * K1);
        let ss = steady_state([v4, v3]);
        assert!((ss[2] - 0.5).abs() < 1e-12 && (ss[3] - 0.2).abs() < 1e-12);
    }

    #[test]
    fn integration_matches_a_converged_fixed_step_solution() {
        // RK4 with 4000 substeps of 4 ms per step is converged to ~1e-14 (fourth order); the
        // adaptive solver must agree within 1e-6 relative (it does within 3e-8) over two varied
        // episodes and a long drain to the millimetre levels of the minimum voltage.
        let mut h = X0;
        let mut reference = X0;
        let mut step = DT_S;
        let mut worst = 0.0f64;
        for k in 0..240 {
            let v = if k < 120 { voltages(k) } else { [V_RANGE.0; 2] };
            h = advance(h, v, &mut step);
            reference = rk4_fixed(&|x: &[f64; 4]| rhs(x, v), reference, DT_S, 4000);
            for i in 0..4 {
                worst = worst.max(rel(h[i], reference[i]));
            }
        }
        assert!(worst < 1e-7, "worst relative error {worst:e}");
    }

    #[test]
    fn pumps_at_minimum_drain_without_going_negative_or_nan() {
        let model = tanks();
        let mut rng = Rng::from_seed(1);
        let mut s = vec![0.0; STATE_LEN];
        model.reset(&mut s, &mut rng);
        let floor = steady_state([V_RANGE.0, V_RANGE.0]);
        for t in 0..2000 {
            let r = model.step(&mut s, &[V_RANGE.0, V_RANGE.0], t, &mut rng);
            assert!(r.is_finite() && s.iter().all(|x| x.is_finite()), "t={t}");
            assert!(s[H..H + 4].iter().all(|&x| x >= 0.0), "t={t}: {s:?}");
        }
        for i in 0..4 {
            assert!(
                rel(s[H + i], floor[i]) < 1e-6,
                "tank {}: {}",
                i + 1,
                s[H + i]
            );
        }
        let mut s2 = s.clone();
        for t in 0..2000 {
            let r = model.step(&mut s2, &[V_RANGE.1, V_RANGE.1], t, &mut rng);
            assert!(r.is_finite() && s2[H..H + 4].iter().all(|&x| x <= LEVEL_OBS_MAX));
        }
    }

    #[test]
    fn reward_is_the_documented_formula() {
        let model = tanks();
        let mut rng = Rng::from_seed(0);
        let mut s = vec![0.0; STATE_LEN];
        model.reset(&mut s, &mut rng);
        let r = model.step(&mut s, &[7.0, 4.0], 0, &mut rng);
        let want = -(((s[H + 2] - 0.5) / 0.6).powi(2)
            + ((s[H + 3] - 0.2) / 0.6).powi(2)
            + 0.1 * ((7.0 - 5.05) / 9.9f64).powi(2)
            + 0.1 * ((4.0 - 5.05) / 9.9f64).powi(2));
        assert!((r - want).abs() < 1e-15);
        assert_eq!(reward(&[0.0, 0.0, 0.5, 0.2], [0.5, 0.2], [0.0, 0.0]), 0.0);
    }

    #[test]
    fn setpoints_switch_at_mid_episode_and_are_observed() {
        let model = tanks();
        assert_eq!(model.setpoint(0), [0.5, 0.2]);
        assert_eq!(model.setpoint(29), [0.5, 0.2]);
        assert_eq!(model.setpoint(30), [0.1, 0.3]);
        assert_eq!(model.setpoint(10_000), [0.1, 0.3]);
        let mut s = vec![0.0; STATE_LEN];
        model.reset(&mut s, &mut Rng::from_seed(0));
        let mut obs = [0.0f32; 6];
        model.observe(&s, 0, &mut obs);
        assert_eq!(obs, [0.141, 0.112, 0.072, 0.42, 0.5, 0.2]);
    }

    #[test]
    fn spec_is_consistent() {
        let model = tanks();
        let spec = model.spec();
        assert_eq!((spec.obs_dim(), spec.act_dim(), spec.horizon), (6, 2, 60));
        assert_eq!(spec.safe_action.len(), spec.act_dim());
        for c in &spec.constraints {
            assert!(spec.signal_index(c.signal).is_some(), "{}", c.name);
        }
        // Rate constraints watch signals named exactly like the actions (for the clip shield).
        for c in spec
            .constraints
            .iter()
            .filter(|c| c.kind == ConstraintKind::Rate)
        {
            assert!(spec.actions.iter().any(|a| a.name == c.signal));
        }
        let mut out = vec![0.0; spec.signals.len()];
        let mut s = vec![0.0; STATE_LEN];
        model.reset(&mut s, &mut Rng::from_seed(0));
        model.signals(&s, &mut out);
        assert_eq!(out, vec![0.141, 0.112, 0.072, 0.42, V_NOMINAL, V_NOMINAL]);
    }

    #[test]
    fn spread_and_noise_stay_in_bounds_and_are_seeded() {
        let mut c = vec![
            ("x0_spread".to_string(), ConfigValue::Number(0.3)),
            ("noise".to_string(), ConfigValue::Number(0.2)),
        ];
        let model = FourTank::new(&mut c).expect("valid");
        let run = |seed| {
            let mut rng = Rng::from_seed(seed);
            let mut s = vec![0.0; STATE_LEN];
            model.reset(&mut s, &mut rng);
            assert!(s[H..H + 4].iter().all(|&h| h < OVERFLOW_M));
            let mut obs = [0.0f32; 6];
            for t in 0..60 {
                model.step(&mut s, &voltages(t as usize), t, &mut rng);
                model.observe(&s, t + 1, &mut obs);
                assert!(obs.iter().all(|&o| (0.0..=1.0).contains(&o)));
            }
            s
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn unknown_and_bad_options_are_named() {
        let mut c = vec![("noice".to_string(), ConfigValue::Number(0.1))];
        assert!(FourTank::new(&mut c)
            .unwrap_err()
            .to_string()
            .contains("noice"));
        for (k, v) in [("horizon", 2.5), ("x0_spread", 0.5), ("noise", -0.1)] {
            let mut c = vec![(k.to_string(), ConfigValue::Number(v))];
            assert!(FourTank::new(&mut c).unwrap_err().to_string().contains(k));
        }
    }
}
