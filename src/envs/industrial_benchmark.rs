//! IndustrialBenchmark-v0: the Siemens Industrial Benchmark (IB).
//!
//! A port of `industrial-benchmark-python` 2.0 (`IDS.py`, `EffectiveAction.py` and
//! `goldstone/{dynamics,reward_function,nlgp,environment}.py`), the reference implementation of
//! Hein et al., "A benchmark environment motivated by industrial control problems", IEEE SSCI 2017.
//!
//! Three steerings, velocity `v`, gain `g` and shift `h`, each move by a bounded delta per step.
//! A setpoint `p` (load) sets the operating regime. Two coupled sub-systems produce the cost:
//!
//! * fatigue `f`: a stochastic function of the effective velocity and gain with hidden states
//!   `hv`, `hg` that can lock into an amplification regime (`IDS.updateFatigue`);
//! * consumption `c`: delayed operational cost (a 10-step buffer convolved with a fixed kernel)
//!   plus a miscalibration penalty from the Goldstone potential, whose angle `phi_idx` drifts with
//!   the effective shift `he` (`goldstone/dynamics.py`), plus heteroscedastic noise.
//!
//! The reward is `-(3 f + c)`. Each step runs the original's sequence: `updateSetPoint`,
//! `addAction`, `updateFatigue`, `updateCurrentOperationalCost`,
//! `updateOperationalCostConvolution`, `updateGS`, `updateOperationalCosts`, `updateCost`, drawing
//! random numbers in the same order (numpy's generator replaced by [`Rng`], with the same
//! distributions).

use std::f64::consts::PI;

use super::success::{window_start, Criterion};
use super::{reject_unknown, take_bool, take_number, Config, ProcessModel};
use crate::errors::CoreError;
use crate::rng::Rng;
use crate::spec::{ConstraintKind, ConstraintSpec, EnvSpec, Severity, Variable};

/// Largest shift step the optimal policy needs: `sin(15°)` (`IDS.maxRequiredStep`).
pub const MAX_REQUIRED_STEP: f64 = 0.258_819_045_102_520_74;
/// Bound of the effective shift `he` (`IDS.gsBound`).
pub const GS_BOUND: f64 = 1.5;
/// Dependency of the effective shift on the setpoint (`IDS.gsSetPointDependency`).
pub const GS_SETPOINT_DEPENDENCY: f64 = 0.02;
/// Scaling factor from shift `h` to effective shift (`IDS.gsScale`, = 5).
pub const GS_SCALE: f64 = 2.0 * GS_BOUND + 100.0 * GS_SETPOINT_DEPENDENCY;
/// Reward weight of fatigue (`IDS.CRF`).
pub const CRF: f64 = 3.0;
/// Reward weight of consumption (`IDS.CRC`).
pub const CRC: f64 = 1.0;
/// Weight of the Goldstone miscalibration in the consumption (`IDS.CRGS`).
pub const CRGS: f64 = 25.0;

/// Number of discrete Goldstone angles in a full turn (`GoldstoneEnvironment(24, ...)`).
const GS_STEPS: i64 = 24;
/// `|phi_idx|` of the strongest penalty: a quarter turn (`compute_strongest_penalty_absIdx`).
const GS_K: i64 = GS_STEPS / 4;
/// Half-width of the effective-shift band in which the miscalibration cools down.
const SAFE_ZONE: f64 = MAX_REQUIRED_STEP / 2.0;

/// 1/3. The step's constant divisions (by 3 and by 100) are multiplications by the reciprocal:
/// the same equations within an ulp, without a division's latency on the step's dependency
/// chain.
const THIRD: f64 = 1.0 / 3.0;

/// Scale of the exponential fatigue noise (`updateFatigue.expLambda`).
const EXP_LAMBDA: f64 = 0.1;
/// Effective action below which the hidden fatigue state follows it directly.
const ACTION_TOLERANCE: f64 = 0.05;
/// Growth factor of a hidden fatigue state in the amplification regime.
const FATIGUE_AMPLIFICATION: f64 = 1.1;
/// Cap of a hidden fatigue state; reaching it switches the fatigue noise to the bad regime.
const FATIGUE_AMPLIFICATION_MAX: f64 = 5.0;
/// Hidden fatigue level from which amplification starts.
const FATIGUE_AMPLIFICATION_START: f64 = 1.2;
/// Mean of the logit of the fatigue factor in the amplified regime (`normal(2.4, 0.4)`).
const AMPLIFIED_LOGIT_MEAN: f64 = 2.4;
/// Standard deviation of that logit.
const AMPLIFIED_LOGIT_STD: f64 = 0.4;

/// Operational cost weight of the setpoint (`updateCurrentOperationalCost.CostSetPoint`).
const COST_SETPOINT: f64 = 2.0;
/// Operational cost weight of the velocity.
const COST_VELOCITY: f64 = 4.0;
/// Operational cost weight of the gain.
const COST_GAIN: f64 = 2.5;
/// Delay kernel over the operational cost buffer (`updateOperationalCostConvolution.ConvArray`).
const CONV: [f64; O_LEN] = [
    0.11111, 0.22222, 0.33333, 0.22222, 0.11111, 0.0, 0.0, 0.0, 0.0, 0.0,
];
/// Relative standard deviation of the consumption noise (`updateOperationalCosts`).
const CONSUMPTION_NOISE_REL: f64 = 0.005;

/// Initial velocity, gain and shift (`IDS.__init__`).
const INITIAL_STEERING: f64 = 50.0;
/// Length of a setpoint segment is drawn from `[1, P_STEPS_MAX)` (`randint(1, 100)`).
const P_STEPS_MAX: i64 = 100;
/// Probability that a setpoint segment is flat (`defineNewSequence`).
const P_FLAT_PROB: f64 = 0.1;

/// Upper limit on fatigue `f`. At `v = g = 50` (zero policy) the base fatigue is 60.7 and `f`
/// stays below about 50; letting velocity and gain drift low raises the base fatigue towards 300.
/// Violation rates at `p = 70`, 1000-step episodes, counted after each step (Rust port; the
/// `constraint_limits_separate_random_from_zero_policy` test re-measures the 20-seed figures):
/// uniform-random policy: 3.8% of steps over 1000 seeds (3.0% over 20, 2.6% over 100); zero
/// policy: 0.0% (largest `f` seen: 46). The original Python gives 3.3% and 0.0% over 100 seeds.
pub const FATIGUE_LIMIT: f64 = 100.0;
/// Upper limit on consumption `c`. Under the zero policy at `p = 70` it stays below about 142
/// (largest seen: 142); high gain and velocity raise the operational cost exponentially.
/// Same measurement: uniform-random policy: 3.6% of steps over 1000 seeds (2.4% over 20, 3.9%
/// over 100); zero policy: 0.0%. The original Python gives 3.0% and 0.0% over 100 seeds.
pub const CONSUMPTION_LIMIT: f64 = 550.0;

// State layout: the original's `state` dict in order, then `init` and the setpoint sequence.
const O: usize = 0; // operational cost buffer o[0..10], newest last
const O_LEN: usize = 10;
const COC: usize = 10; // current operational cost
const FB: usize = 11; // basic fatigue (without bifurcation)
const OC: usize = 12; // convolved operational cost
const HG: usize = 13; // hidden gain
const HV: usize = 14; // hidden velocity
const HE: usize = 15; // effective shift
const GS_DOMAIN: usize = 16; // miscalibration domain (+1 / -1)
const GS_SYS_RESPONSE: usize = 17; // miscalibration system response (+1 advantageous / -1)
const GS_PHI_IDX: usize = 18; // miscalibration angle index in [-6, 6]
const GE: usize = 19; // effective gain
const VE: usize = 20; // effective velocity
const MC: usize = 21; // miscalibration penalty
const P: usize = 22; // setpoint
const V: usize = 23; // velocity
const G: usize = 24; // gain
const H: usize = 25; // shift
const F: usize = 26; // fatigue
const C: usize = 27; // consumption
const COST: usize = 28; // 3 f + c
const REWARD: usize = 29; // -cost
const INIT: usize = 30; // 1 until the operational cost buffer is first filled
const P_STEPS: usize = 31; // length of the current setpoint segment
const P_STEP: usize = 32; // steps taken in the current setpoint segment
const P_CH: usize = 33; // setpoint change per step in the current segment
const WINDOW_COST: usize = 34; // sum of the cost over the success window so far (success memory)
const STATE_LEN: usize = 35;

/// Success: the mean cost `3 f + c` over the episode's last `SUCCESS_WINDOW` steps at most this.
/// At set-point 70 the regulator baseline ends its 1000-step episodes at 182-190, the zero policy
/// at 207-212, the random one at 194-890.
pub const SUCCESS_MEAN_COST: f64 = 200.0;
/// Success window: the episode's last steps [steps].
pub const SUCCESS_WINDOW: u32 = 100;
/// The success criterion as the spec shows it.
const SUCCESS: Criterion = Criterion {
    description: "mean cost 3 f + c over the last `window` steps at most `mean_cost`",
    parameters: &[
        ("mean_cost", SUCCESS_MEAN_COST, "1"),
        ("window", SUCCESS_WINDOW as f64, "steps"),
    ],
};

/// The registry id.
pub const ID: &str = "IndustrialBenchmark-v0";
const OPTIONS: &[&str] = &["setpoint", "stationary_setpoint", "horizon"];

/// Effective velocity and gain `(ve, ge)` in `[0, 1]` (`EffectiveAction.py`).
pub fn effective_action(v: f64, g: f64, p: f64) -> (f64, f64) {
    EffectiveRange::new(p).apply(v, g)
}

/// `EffectiveAction.py` at one setpoint `p`: the ranges that normalise the effective velocity
/// and gain depend on `p` alone, so a stationary setpoint computes them (and their reciprocals)
/// once.
#[derive(Debug, Clone, Copy)]
struct EffectiveRange {
    p: f64,
    alpha_min: f64,
    /// `1 / (alpha_max - alpha_min)`.
    alpha_scale: f64,
    beta_min: f64,
    /// `1 / (beta_max - beta_min)`.
    beta_scale: f64,
}

impl EffectiveRange {
    fn eff_a(a: f64, p: f64) -> f64 {
        a + 101.0 - p
    }

    fn eff_b(b: f64, p: f64) -> f64 {
        b + 1.0 + p
    }

    fn alpha(a: f64, b: f64, p: f64) -> f64 {
        (Self::eff_b(b, p) + 1.0) / Self::eff_a(a, p)
    }

    fn beta(b: f64, p: f64) -> f64 {
        1.0 / Self::eff_b(b, p)
    }

    fn new(p: f64) -> Self {
        let (alpha_min, alpha_max) = (Self::alpha(100.0, 0.0, p), Self::alpha(0.0, 100.0, p));
        let (beta_min, beta_max) = (Self::beta(100.0, p), Self::beta(0.0, p));
        Self {
            p,
            alpha_min,
            alpha_scale: 1.0 / (alpha_max - alpha_min),
            beta_min,
            beta_scale: 1.0 / (beta_max - beta_min),
        }
    }

    /// `(ve, ge)` for velocity `v` and gain `g`.
    fn apply(&self, v: f64, g: f64) -> (f64, f64) {
        (
            (Self::alpha(v, g, self.p) - self.alpha_min) * self.alpha_scale,
            (Self::beta(g, self.p) - self.beta_min) * self.beta_scale,
        )
    }
}

/// numpy's `np.mod` for floats: the remainder takes the sign of the divisor.
fn py_mod(a: f64, b: f64) -> f64 {
    let m = a % b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        m + b
    } else if m == 0.0 {
        0.0_f64.copysign(b)
    } else {
        m
    }
}

/// numpy's `np.sign`: -1, 0 or 1.
fn np_sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Coefficients of the normalised, linearly biased Goldstone potential (`nlgp.py`).
#[derive(Debug, Clone, Copy)]
struct Nlgp {
    alpha: f64,
    beta: f64,
    kappa: f64,
}

impl Nlgp {
    fn new() -> Self {
        let u0 = (1.0 + 2.0_f64.sqrt()).cbrt() / 3.0_f64.sqrt();
        let r0 = u0 + 1.0 / (3.0 * u0);
        let bias = 8.0 * (2.0_f64 / 27.0).sqrt();
        let lmbd = 2.0 * r0.powf(2.0) - r0.powf(4.0) + bias * r0;
        Self {
            alpha: 2.0 / lmbd,
            beta: 1.0 / lmbd,
            kappa: -bias / lmbd,
        }
    }

    /// Potential at radius `r` along the angle whose sine is `sin_phi` (`nlgp.polar_nlgp`).
    fn polar_sin(&self, r: f64, sin_phi: f64) -> f64 {
        let rsq = r * r;
        -self.alpha * rsq + self.beta * (rsq * rsq) + self.kappa * sin_phi * r
    }

    /// Radius of the potential's minimum along `phi` (`nlgp.__global_minimum_radius`).
    fn global_minimum_radius(&self, phi: f64) -> f64 {
        let qh = self.kappa * phi.sin().abs() / (8.0 * self.beta);
        let sign = np_sign(phi.sin());
        let signum = if sign == 0.0 { 1.0 } else { sign };
        if qh <= -(1.0_f64 / 27.0).sqrt() {
            let u = (-signum * qh + (qh * qh - 1.0 / 27.0).sqrt()).cbrt();
            u + 1.0 / (3.0 * u)
        } else {
            signum * (4.0_f64 / 3.0).sqrt() * (1.0 / 3.0 * (-qh * 27.0_f64.sqrt()).acos()).cos()
        }
    }
}

/// The Goldstone penalty landscape for one angle index (`reward_function.py`): the potential
/// with its radius warped so that the minimum sits at the desired optimal radius.
#[derive(Debug, Clone, Copy)]
struct PenaltyShape {
    nlgp: Nlgp,
    /// Desired radius of the minimum (`__compute_optimal_radius`).
    opt_rad: f64,
    /// Radius of the untransformed potential's minimum.
    min_rad: f64,
    /// `sin(phi)` of the angle `phi` in `[0, 2 pi)`, and the `exponent` and `scaling` of the radius
    /// transformation: constants of the shape.
    sin_phi: f64,
    exponent: f64,
    scaling: f64,
}

impl PenaltyShape {
    /// Shape for `phi_idx`, wrapped into the 13 angles as `dynamics.get_penalty_function` does.
    fn for_index(phi_idx: i64) -> Self {
        let n = 2 * GS_K + 1;
        let idx = (GS_K + phi_idx).rem_euclid(n) - GS_K;
        // np.arange(-k, k + 1) * 2 * pi / number_steps
        Self::new((idx * 2) as f64 * PI / GS_STEPS as f64)
    }

    fn new(angle: f64) -> Self {
        let nlgp = Nlgp::new();
        let phi = py_mod(angle, 2.0 * PI);
        let opt_rad = optimal_radius(phi);
        let min_rad = nlgp.global_minimum_radius(phi);
        let (opt, min) = (opt_rad.abs(), min_rad.abs());
        let exponent = (2.0 - opt) / (2.0 - min);
        Self {
            nlgp,
            opt_rad,
            min_rad,
            sin_phi: phi.sin(),
            exponent,
            scaling: (2.0 - min) / (2.0 - opt).powf(exponent),
        }
    }

    /// Radius transformation (`__rad_transformation_factory.tsf`).
    fn transform(&self, x: f64) -> f64 {
        let (opt, min) = (self.opt_rad.abs(), self.min_rad.abs());
        if x.abs() <= opt {
            x * min / opt
        } else {
            // (|x| - opt)^exponent of a positive base, as exp(exponent ln(.)): a sixth less time
            // than `powf` here, within 1e-14 relative for every base the shift can produce
            // (`radius_transformation_agrees_with_powf`).
            let pow = (self.exponent * (x.abs() - opt).ln()).exp();
            np_sign(x) * (min + self.scaling * pow)
        }
    }

    /// The original's reward (negative penalty) at effective shift `r`.
    fn reward(&self, r: f64) -> f64 {
        self.nlgp.polar_sin(self.transform(r), self.sin_phi)
    }
}

/// Desired radius of the penalty minimum along `phi` (`__compute_optimal_radius`).
fn optimal_radius(phi: f64) -> f64 {
    let phi = py_mod(phi, 2.0 * PI);
    let opt = phi.sin().abs().max(MAX_REQUIRED_STEP);
    if phi >= PI {
        -opt
    } else {
        opt
    }
}

/// The Goldstone reward of angle index `phi_idx` at effective shift `r`: the original's
/// `dynamics.reward(phi_idx, r)`; the miscalibration `MC` is its negative.
pub fn goldstone_reward(phi_idx: i64, r: f64) -> f64 {
    PenaltyShape::for_index(phi_idx).reward(r)
}

/// One Goldstone state transition (`dynamics.state_transition`): returns the new
/// `(domain, phi_idx, system_response)` after effective shift `position`.
fn goldstone_transition(
    domain: i64,
    phi_idx: i64,
    response: i64,
    position: f64,
) -> (i64, i64, i64) {
    let cool_down = position.abs() <= SAFE_ZONE;
    // (0) new domain; (1) a domain change resets the response to advantageous.
    let new_domain = if cool_down {
        domain
    } else {
        np_sign(position) as i64
    };
    let mut response = if new_domain != domain { 1 } else { response };
    // (2) angular step.
    let step = if cool_down {
        -phi_idx.signum()
    } else if phi_idx == -new_domain * GS_K {
        0
    } else {
        response * np_sign(position) as i64
    };
    let mut phi_idx = phi_idx + step;
    // (3) response turns disadvantageous at the strongest penalty.
    if phi_idx.abs() >= GS_K {
        response = -1;
    }
    // (4) symmetry.
    if phi_idx.abs() >= GS_K {
        phi_idx = 2 * GS_K - (phi_idx + 4 * GS_K).rem_euclid(4 * GS_K);
    }
    // (5) reset once calibrated and calm.
    if phi_idx == 0 && cool_down {
        return (1, 0, 1);
    }
    (new_domain, phi_idx, response)
}

/// Logistic function.
fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Next hidden fatigue state from the effective action and the step's noise (`updateFatigue`).
fn hidden_fatigue(hidden: f64, effective: f64, noise: f64) -> f64 {
    if effective <= ACTION_TOLERANCE {
        effective
    } else if hidden >= FATIGUE_AMPLIFICATION_START {
        FATIGUE_AMPLIFICATION_MAX.min(FATIGUE_AMPLIFICATION * hidden)
    } else {
        0.9 * hidden + noise * THIRD
    }
}

/// Fatigue noise for one effective action (`noise_gain` / `noise_velocity` of `updateFatigue`).
fn fatigue_noise(exp_draw: f64, uniform: f64, burst: bool, effective: f64) -> f64 {
    let noise = 2.0 * (sigmoid(exp_draw) - 0.5);
    let burst = if burst { 1.0 } else { 0.0 };
    noise + (1.0 - noise) * uniform * burst * effective
}

/// The Industrial Benchmark.
#[derive(Debug, Clone)]
pub struct IndustrialBenchmark {
    spec: EnvSpec,
    setpoint: f64,
    stationary_setpoint: bool,
    shapes: [PenaltyShape; (2 * GS_K + 1) as usize],
    /// [`EffectiveRange`] at the configured setpoint.
    effective: EffectiveRange,
}

impl IndustrialBenchmark {
    /// Builds the benchmark from constructor options: `setpoint` (in `[0, 100]`, default 70),
    /// `stationary_setpoint` (default true; false lets the setpoint random-walk as the original's
    /// `stationary_p=False`) and `horizon` (steps per episode, default 1000).
    pub fn new(config: &mut Config) -> Result<Self, CoreError> {
        let setpoint = take_number(config, "setpoint", 70.0, 0.0, 100.0)?;
        let stationary_setpoint = take_bool(config, "stationary_setpoint", true)?;
        let horizon = take_number(config, "horizon", 1000.0, 1.0, f64::from(u32::MAX))?;
        if horizon.fract() != 0.0 {
            return Err(CoreError::config(
                "horizon",
                format!("must be a whole number, got {horizon}"),
            ));
        }
        reject_unknown(config, ID, OPTIONS)?;
        Ok(Self {
            spec: spec(horizon as u32),
            setpoint,
            stationary_setpoint,
            shapes: std::array::from_fn(|i| PenaltyShape::for_index(i as i64 - GS_K)),
            effective: EffectiveRange::new(setpoint),
        })
    }

    /// `defineNewSequence`: a new setpoint segment (drawn even when the setpoint is stationary).
    fn define_new_sequence(state: &mut [f64], rng: &mut Rng) {
        state[P_STEPS] = rng.int_in(1, P_STEPS_MAX) as f64;
        state[P_STEP] = 0.0;
        let mut p_ch = 2.0 * rng.uniform() - 1.0;
        if rng.uniform() < P_FLAT_PROB {
            p_ch *= 0.0;
        }
        state[P_CH] = p_ch;
    }

    /// `updateSetPoint`: the setpoint random walk, bouncing off 0 and 100 with probability 1/2.
    fn update_setpoint(&self, state: &mut [f64], rng: &mut Rng) {
        if self.stationary_setpoint {
            return;
        }
        if state[P_STEP] == state[P_STEPS] {
            Self::define_new_sequence(state, rng);
        }
        let new_p = state[P] + state[P_CH];
        if !(0.0..=100.0).contains(&new_p) && rng.uniform() > 0.5 {
            state[P_CH] *= -1.0;
        }
        state[P] = new_p.clamp(0.0, 100.0);
        state[P_STEP] += 1.0;
    }

    /// `addAction`: applies the clipped deltas and recomputes the effective shift.
    fn add_action(state: &mut [f64], delta: &[f64]) {
        let d = |i: usize| delta[i].clamp(-1.0, 1.0);
        state[V] = (state[V] + d(0)).clamp(0.0, 100.0);
        state[G] = (state[G] + 10.0 * d(1)).clamp(0.0, 100.0);
        let h_step = (MAX_REQUIRED_STEP / 0.9) * 100.0 / GS_SCALE;
        state[H] = (state[H] + h_step * d(2)).clamp(0.0, 100.0);
        let he = GS_SCALE * state[H] * 0.01 - GS_SETPOINT_DEPENDENCY * state[P] - GS_BOUND;
        state[HE] = he.clamp(-GS_BOUND, GS_BOUND);
    }

    /// `updateFatigue`: effective action, hidden fatigue states and fatigue.
    fn update_fatigue(&self, state: &mut [f64], rng: &mut Rng) {
        let (v, g) = (state[V], state[G]);
        let (ve, ge) = if state[P] == self.effective.p {
            self.effective.apply(v, g)
        } else {
            effective_action(v, g, state[P])
        };
        state[GE] = ge;
        state[VE] = ve;
        let e_g = rng.exponential(EXP_LAMBDA);
        let e_v = rng.exponential(EXP_LAMBDA);
        let u_g = rng.uniform();
        let u_v = rng.uniform();
        let b_g = rng.bernoulli(ge.clamp(0.001, 0.999));
        let b_v = rng.bernoulli(ve.clamp(0.001, 0.999));
        let noise_g = fatigue_noise(e_g, u_g, b_g, ge);
        let noise_v = fatigue_noise(e_v, u_v, b_v, ve);
        let hg = hidden_fatigue(state[HG], ge, noise_g);
        let hv = hidden_fatigue(state[HV], ve, noise_v);
        let alpha = if hv.max(hg) == FATIGUE_AMPLIFICATION_MAX {
            sigmoid(AMPLIFIED_LOGIT_MEAN + AMPLIFIED_LOGIT_STD * rng.normal())
        } else {
            noise_v.max(noise_g)
        };
        let fb = (30000.0 / (5.0 * v + 100.0) - 0.01 * g.powi(2)).max(0.0);
        state[HV] = hv;
        state[HG] = hg;
        state[F] = fb * (1.0 + 2.0 * alpha) * THIRD;
        state[FB] = fb;
    }

    /// `updateCurrentOperationalCost` and `updateOperationalCostConvolution`.
    fn update_operational_cost(state: &mut [f64]) {
        let costs = COST_SETPOINT * state[P] + COST_GAIN * state[G] + COST_VELOCITY * state[V];
        let coc = (costs * 0.01).exp();
        state[COC] = coc;
        let init = state[INIT] != 0.0;
        let buffer = &mut state[O..O + O_LEN];
        // The buffer after this step, element by element: the first step fills the whole (zero)
        // buffer (`self.state['o'] += o`), later ones shift it by one and append. Read from the
        // old buffer and written back one element at a time (a block move followed by wide
        // reads of what it just wrote stalls store forwarding), summed in the original's order.
        let mut oc = 0.0;
        for i in 0..O_LEN {
            let o = if init {
                buffer[i] + coc
            } else if i + 1 < O_LEN {
                buffer[i + 1]
            } else {
                coc
            };
            buffer[i] = o;
            oc += o * CONV[i];
        }
        state[INIT] = 0.0;
        state[OC] = oc;
    }

    /// `updateGS`: the Goldstone miscalibration dynamics and penalty.
    fn update_goldstone(&self, state: &mut [f64]) {
        let (domain, phi_idx, response) = goldstone_transition(
            state[GS_DOMAIN] as i64,
            state[GS_PHI_IDX] as i64,
            state[GS_SYS_RESPONSE] as i64,
            state[HE],
        );
        let shape = &self.shapes[(phi_idx + GS_K).rem_euclid(2 * GS_K + 1) as usize];
        state[MC] = -shape.reward(state[HE]);
        state[GS_DOMAIN] = domain as f64;
        state[GS_SYS_RESPONSE] = response as f64;
        state[GS_PHI_IDX] = phi_idx as f64;
    }

    /// `updateOperationalCosts` and `updateCost`: noisy consumption, cost and reward.
    fn update_cost(state: &mut [f64], rng: &mut Rng) {
        let e_new_hidden = state[OC] - CRGS * (state[MC] - 1.0);
        state[C] = e_new_hidden - rng.normal() * (1.0 + CONSUMPTION_NOISE_REL * e_new_hidden);
        let cost = CRF * state[F] + CRC * state[C];
        state[COST] = cost;
        state[REWARD] = -cost;
    }
}

fn spec(horizon: u32) -> EnvSpec {
    let steering = |name, description| Variable::new(name, description, "1", 0.0, 100.0);
    let observations = vec![
        steering("p", "setpoint (load)"),
        steering("v", "velocity"),
        steering("g", "gain"),
        steering("h", "shift"),
        Variable::new("f", "fatigue", "1", 0.0, 1000.0),
        Variable::new("c", "consumption", "1", 0.0, 1000.0),
    ];
    EnvSpec {
        id: ID,
        description: concat!(
            "Siemens Industrial Benchmark: steer velocity, gain and shift to keep fatigue and ",
            "consumption low"
        ),
        signals: observations.clone(),
        observations,
        actions: vec![
            Variable::new("delta_v", "velocity change", "1", -1.0, 1.0),
            Variable::new("delta_g", "gain change (x10)", "1", -1.0, 1.0),
            Variable::new("delta_h", "shift change (x5.75)", "1", -1.0, 1.0),
        ],
        dt: 1.0,
        dt_unit: "step",
        horizon,
        constraints: vec![
            ConstraintSpec {
                name: "fatigue_high",
                constraint_type: "fatigue",
                signal: "f",
                kind: ConstraintKind::Upper,
                limit: FATIGUE_LIMIT,
                severity: Severity::Warning,
                on_delay: 0,
                penalty: 0.0,
            },
            ConstraintSpec {
                name: "consumption_high",
                constraint_type: "consumption",
                signal: "c",
                kind: ConstraintKind::Upper,
                limit: CONSUMPTION_LIMIT,
                severity: Severity::Warning,
                on_delay: 0,
                penalty: 0.0,
            },
        ],
        // Hold the steerings where they are.
        safe_action: vec![0.0, 0.0, 0.0],
        parameters: vec![],
        source: concat!(
            "Hein et al. 2017, \"A benchmark environment motivated by industrial control ",
            "problems\"; industrial-benchmark-python 2.0"
        ),
    }
}

impl ProcessModel for IndustrialBenchmark {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn state_len(&self) -> usize {
        STATE_LEN
    }

    fn reset(&self, state: &mut [f64], rng: &mut Rng) {
        state[..STATE_LEN].fill(0.0);
        state[GS_DOMAIN] = 1.0;
        state[GS_SYS_RESPONSE] = 1.0;
        state[P] = self.setpoint;
        state[V] = INITIAL_STEERING;
        state[G] = INITIAL_STEERING;
        state[H] = INITIAL_STEERING;
        state[INIT] = 1.0;
        Self::define_new_sequence(state, rng);
        // The original's constructor ends with `self.step(np.zeros(3))`.
        self.step(state, &[0.0; 3], 0, rng);
        state[WINDOW_COST] = 0.0;
    }

    fn step(&self, state: &mut [f64], action: &[f64], t: u32, rng: &mut Rng) -> f64 {
        self.update_setpoint(state, rng);
        Self::add_action(state, action);
        self.update_fatigue(state, rng);
        Self::update_operational_cost(state);
        self.update_goldstone(state);
        Self::update_cost(state, rng);
        if t >= window_start(self.spec.horizon, SUCCESS_WINDOW) {
            state[WINDOW_COST] += state[COST];
        }
        state[REWARD]
    }

    fn observe(&self, state: &[f64], _t: u32, obs: &mut [f32]) {
        for (o, i) in obs.iter_mut().zip([P, V, G, H, F, C]) {
            *o = state[i] as f32;
        }
    }

    fn signals(&self, state: &[f64], out: &mut [f64]) {
        for (o, i) in out.iter_mut().zip([P, V, G, H, F, C]) {
            *o = state[i];
        }
    }

    fn success(&self) -> Option<&Criterion> {
        Some(&SUCCESS)
    }

    fn succeeded(&self, state: &[f64], _t: u32) -> bool {
        let window = SUCCESS_WINDOW.min(self.spec.horizon).max(1);
        state[WINDOW_COST] / f64::from(window) <= SUCCESS_MEAN_COST
    }
}

#[cfg(test)]
#[path = "industrial_benchmark_success_tests.rs"]
mod success_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs::ConfigValue;
    use serde_json::Value;

    fn reference() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/industrial_benchmark.json"
        );
        let text = std::fs::read_to_string(path).expect("reference data present");
        serde_json::from_str(&text).expect("reference data is JSON")
    }

    fn num(v: &Value, key: &str) -> f64 {
        v[key].as_f64().unwrap_or_else(|| panic!("{key} missing"))
    }

    fn bench(config: Vec<(&str, ConfigValue)>) -> IndustrialBenchmark {
        let mut c = config
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        IndustrialBenchmark::new(&mut c).expect("valid config")
    }

    fn close(got: f64, want: f64, tol: f64) -> bool {
        (got - want).abs() <= tol * want.abs().max(1.0)
    }

    #[test]
    fn constants_match_reference() {
        let c = &reference()["constants"];
        assert_eq!(MAX_REQUIRED_STEP, num(c, "maxRequiredStep"));
        assert!((MAX_REQUIRED_STEP - (15.0_f64 / 180.0 * PI).sin()).abs() < 1e-16);
        assert_eq!(GS_BOUND, num(c, "gsBound"));
        assert_eq!(GS_SETPOINT_DEPENDENCY, num(c, "gsSetPointDependency"));
        assert_eq!(GS_SCALE, num(c, "gsScale"));
        assert_eq!(
            (CRF, CRC, CRGS),
            (num(c, "CRF"), num(c, "CRC"), num(c, "CRGS"))
        );
        assert_eq!(GS_STEPS as f64, num(c, "goldstone_angles"));
    }

    #[test]
    fn effective_action_matches_reference() {
        let r = reference();
        let cases = r["effective_action"].as_array().expect("list");
        assert_eq!(cases.len(), 7);
        for e in cases {
            let (ve, ge) = effective_action(num(e, "v"), num(e, "g"), num(e, "p"));
            assert!((ve - num(e, "ve")).abs() < 1e-9, "{e}: ve {ve}");
            assert!((ge - num(e, "ge")).abs() < 1e-9, "{e}: ge {ge}");
        }
    }

    #[test]
    fn goldstone_reward_matches_reference() {
        let r = reference();
        let cases = r["goldstone_reward"].as_array().expect("list");
        assert_eq!(cases.len(), 13 * 9);
        for e in cases {
            let phi_idx = e["phi_idx"].as_i64().expect("integer phi_idx");
            let got = goldstone_reward(phi_idx, num(e, "r"));
            assert!((got - num(e, "reward")).abs() < 1e-9, "{e}: got {got}");
        }
    }

    #[test]
    fn radius_transformation_agrees_with_powf() {
        // `transform` raises through exp and ln; against `powf` on every shape, over the whole
        // range of the effective shift (|he| <= 1.5) and down to bases of 1e-12.
        let mut worst = 0.0f64;
        for phi_idx in -GS_K..=GS_K {
            let shape = PenaltyShape::for_index(phi_idx);
            let (opt, min) = (shape.opt_rad.abs(), shape.min_rad.abs());
            let mut xs: Vec<f64> = (0..=3000).map(|i| -1.5 + 1e-3 * f64::from(i)).collect();
            xs.extend((1..=12).map(|e| opt + 10f64.powi(-e)));
            for x in xs {
                if x.abs() <= opt {
                    continue;
                }
                let want =
                    np_sign(x) * (min + shape.scaling * (x.abs() - opt).powf(shape.exponent));
                let got = shape.transform(x);
                worst = worst.max(((got - want) / want).abs());
            }
        }
        assert!(worst < 1e-14, "worst relative difference {worst:e}");
    }

    #[test]
    fn deterministic_trajectory_matches_reference() {
        let r = reference();
        let traj = &r["deterministic_trajectory"];
        let actions = traj["actions"].as_array().expect("actions");
        let states = traj["states_after_each_step"].as_array().expect("states");
        assert_eq!((actions.len(), states.len()), (1000, 1000));
        let fields = [
            ("v", V),
            ("g", G),
            ("h", H),
            ("he", HE),
            ("gs_domain", GS_DOMAIN),
            ("gs_sys_response", GS_SYS_RESPONSE),
            ("gs_phi_idx", GS_PHI_IDX),
            ("MC", MC),
            ("coc", COC),
            ("oc", OC),
            ("ve", VE),
            ("ge", GE),
        ];
        let ib = bench(vec![]);
        let mut rng = Rng::from_seed(3);
        let mut s = vec![0.0; ib.state_len()];
        ib.reset(&mut s, &mut rng);
        for (t, (a, want)) in actions.iter().zip(states).enumerate() {
            let a: Vec<f64> = a
                .as_array()
                .expect("action")
                .iter()
                .filter_map(Value::as_f64)
                .collect();
            ib.step(&mut s, &a, t as u32, &mut rng);
            for (name, i) in fields {
                let w = num(want, name);
                assert!(
                    close(s[i], w, 1e-9),
                    "step {t} {name}: got {} want {w}",
                    s[i]
                );
            }
        }
    }

    #[test]
    fn zero_policy_mean_reward_matches_original() {
        let ib = bench(vec![]);
        let mut s = vec![0.0; ib.state_len()];
        let seeds = 10;
        let mut total = 0.0;
        for seed in 0..seeds {
            let mut rng = Rng::from_seed(seed);
            ib.reset(&mut s, &mut rng);
            total += (0..1000)
                .map(|t| ib.step(&mut s, &[0.0; 3], t, &mut rng))
                .sum::<f64>()
                / 1000.0;
        }
        let mean = total / seeds as f64;
        // industrial-benchmark-python 2.0: -209.4 +- 0.35 across seeds.
        assert!((mean + 209.4).abs() < 2.0, "mean reward {mean}");
    }

    /// Fractions of steps violating the fatigue and consumption limits over `seeds` episodes of
    /// 1000 steps at `p = 70`, under the uniform-random policy or the zero policy.
    fn violation_rates(random: bool, seeds: u64) -> (f64, f64) {
        let ib = bench(vec![]);
        let mut s = vec![0.0; ib.state_len()];
        let (mut nf, mut nc) = (0usize, 0usize);
        for seed in 0..seeds {
            let mut rng = Rng::from_seed(seed);
            let mut policy = Rng::from_seed(1000 + seed);
            ib.reset(&mut s, &mut rng);
            for t in 0..1000 {
                let a: [f64; 3] = if random {
                    std::array::from_fn(|_| policy.uniform_in(-1.0, 1.0))
                } else {
                    [0.0; 3]
                };
                ib.step(&mut s, &a, t, &mut rng);
                nf += usize::from(s[F] > FATIGUE_LIMIT);
                nc += usize::from(s[C] > CONSUMPTION_LIMIT);
            }
        }
        let n = (seeds * 1000) as f64;
        (nf as f64 / n, nc as f64 / n)
    }

    #[test]
    fn constraint_limits_separate_random_from_zero_policy() {
        let (rf, rc) = violation_rates(true, 20);
        let (zf, zc) = violation_rates(false, 20);
        eprintln!("random: f {rf:.4} c {rc:.4}; zero: f {zf:.4} c {zc:.4}");
        assert!(
            (0.01..=0.10).contains(&rf) && (0.01..=0.10).contains(&rc),
            "random {rf} {rc}"
        );
        assert!(zf < 0.005 && zc < 0.005, "zero {zf} {zc}");
    }

    #[test]
    fn reset_is_the_constructor_state_after_one_zero_step() {
        let ib = bench(vec![("setpoint", ConfigValue::Number(70.0))]);
        let mut s = vec![f64::NAN; ib.state_len()];
        ib.reset(&mut s, &mut Rng::from_seed(0));
        assert!(s.iter().all(|x| x.is_finite()));
        assert_eq!(
            (s[V], s[G], s[H], s[P], s[INIT]),
            (50.0, 50.0, 50.0, 70.0, 0.0)
        );
        // The first step fills the whole buffer with the current operational cost.
        assert!(s[O..O + O_LEN].iter().all(|&o| o == s[COC]));
        assert!((s[OC] - 0.99999 * s[COC]).abs() < 1e-9);
        let mut obs = [0.0_f32; 6];
        ib.observe(&s, 0, &mut obs);
        assert_eq!(obs[..4], [70.0, 50.0, 50.0, 50.0]);
        assert_eq!(f64::from(obs[5]), s[C] as f32 as f64);
    }

    #[test]
    fn nonstationary_setpoint_walks_within_bounds() {
        let ib = bench(vec![("stationary_setpoint", ConfigValue::Bool(false))]);
        let mut rng = Rng::from_seed(5);
        let mut s = vec![0.0; ib.state_len()];
        ib.reset(&mut s, &mut rng);
        let mut moved = false;
        for t in 0..2000 {
            let r = ib.step(&mut s, &[0.3, -0.2, 0.5], t, &mut rng);
            assert!(r.is_finite() && (0.0..=100.0).contains(&s[P]));
            assert!(s[P_STEP] <= s[P_STEPS] && (1.0..100.0).contains(&s[P_STEPS]));
            moved |= s[P] != 70.0;
        }
        assert!(moved);
    }

    #[test]
    fn actions_are_clipped_and_steerings_bounded() {
        let ib = bench(vec![]);
        let mut rng = Rng::from_seed(1);
        let mut s = vec![0.0; ib.state_len()];
        ib.reset(&mut s, &mut rng);
        ib.step(&mut s, &[5.0, -5.0, 0.0], 0, &mut rng);
        assert_eq!((s[V], s[G]), (51.0, 40.0));
        for t in 0..300 {
            ib.step(&mut s, &[1.0, 1.0, 1.0], t, &mut rng);
        }
        assert_eq!((s[V], s[G], s[H], s[HE]), (100.0, 100.0, 100.0, GS_BOUND));
    }

    #[test]
    fn spec_and_options() {
        let ib = bench(vec![("horizon", ConfigValue::Number(250.0))]);
        let spec = ib.spec();
        assert_eq!(
            (spec.id, spec.horizon, spec.obs_dim(), spec.act_dim()),
            (ID, 250, 6, 3)
        );
        for c in &spec.constraints {
            assert!(spec.signal_index(c.signal).is_some(), "{}", c.name);
        }
        let bad = |k: &str, v| IndustrialBenchmark::new(&mut vec![(k.to_string(), v)]).unwrap_err();
        assert!(bad("setpoint", ConfigValue::Number(101.0))
            .to_string()
            .contains("setpoint"));
        assert!(bad("horizon", ConfigValue::Number(1.5))
            .to_string()
            .contains("horizon"));
        assert!(bad("stationary_p", ConfigValue::Bool(true))
            .to_string()
            .contains("stationary_p"));
    }
}
