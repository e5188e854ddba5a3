//! PowerGrid-v0: two-area load-frequency control (automatic generation control, AGC).
//!
//! Two control areas of equal size, each a non-reheat steam unit with a speed governor, joined by
//! one tie line; linearised deviations from the scheduled operating point (Kundur, *Power System
//! Stability and Control*, 1994, §11.1 "Active power and frequency control"; Bevrani, *Robust
//! Power System Frequency Control*, 2nd ed. 2014, ch. 2-3). Per area i (i = 1, 2; a12 = 1 for equal ratings):
//!
//! ```text
//! d(df_i)/dt  = f0/(2H) (dPm_i - dPL_i - D df_i - dPtie_i)     swing, Kundur's form (H, D)
//! d(dPv_i)/dt = (dPref_i - dPv_i - df_i/R) / Tg                 governor with droop R
//! d(dPm_i)/dt = (dPv_i - dPm_i) / Tt                            non-reheat turbine
//! d(dPtie)/dt = 2 pi T12 (df_1 - df_2)                           tie line, dPtie_1 = -dPtie_2 = dPtie
//! ACE_i       = dPtie_i + B_i df_i,  B_i = D + 1/R               area control error (tie-line bias)
//! ```
//!
//! Units: frequency deviations df in Hz, powers in p.u. of the area rating, time in seconds; D in
//! p.u./Hz and R in Hz/p.u., so `df/R` and `D df` are p.u. powers. Parameters: the classic
//! two-area non-reheat data set of Fosha & Elgerd ("The megawatt-frequency control problem: a new
//! approach via optimal control theory", IEEE Trans. PAS-89(4), 1970) and Elgerd (*Electric Energy
//! Systems Theory*, 2nd ed. 1982, ch. 9), reused as the standard example of the LFC literature
//! (Bevrani 2014 ch. 2-3): f0 = 60 Hz, Tg = 0.08 s, Tt = 0.3 s, R = 2.4 Hz/p.u., power-system gain
//! Kp = 1/D = 120 Hz/p.u. and time constant Tp = 2H/(f0 D) = 20 s (so D = 1/120 p.u./Hz, H = 5 s),
//! 2 pi T12 = 0.545 p.u./Hz (T12 = 0.0867 p.u./rad), hence B = 0.425 p.u./Hz.
//!
//! The agent is the AGC: every second it sets both areas' governor reference (load reference)
//! set-points dPref. Step loads arrive at random steps in random areas. Primary (droop) control
//! alone leaves a steady frequency error `df = -dPL / (B1 + B2)`; AGC must bring both ACEs to zero.

use super::success::Criterion;
use super::{reject_unknown, take, take_number, Config, ConfigValue, ProcessModel};
use crate::errors::CoreError;
use crate::integrate::{dopri5, Tolerance};
use crate::rng::Rng;
use crate::spec::ConstraintKind::{Abs, Rate};
use crate::spec::Severity::{Critical, Warning};
use crate::spec::{ConstraintSpec, EnvSpec, Parameter, Variable};

/// Nominal frequency [Hz] (Elgerd's example is a 60 Hz system).
pub const F0: f64 = 60.0;
/// Inertia constant [s]: H = Tp f0 D / 2 with Tp = 20 s (Fosha & Elgerd 1970).
pub const H: f64 = 5.0;
/// Load damping [p.u./Hz]: D = 1/Kp with Kp = 120 Hz/p.u. (Fosha & Elgerd 1970).
pub const D: f64 = 1.0 / 120.0;
/// Governor speed regulation (droop) [Hz/p.u.] (Fosha & Elgerd 1970).
pub const R: f64 = 2.4;
/// Governor time constant [s] (Fosha & Elgerd 1970).
pub const TG: f64 = 0.08;
/// Non-reheat turbine time constant [s] (Fosha & Elgerd 1970).
pub const TT: f64 = 0.3;
/// Tie-line synchronising coefficient times 2 pi [p.u./Hz per s]: 2 pi T12 = 0.545 (Elgerd 1982).
pub const TWO_PI_T12: f64 = 0.545;
/// Frequency bias factor [p.u./Hz]: B = D + 1/R, the area frequency response characteristic
/// (Kundur §11.1), the usual tie-line bias setting of AGC.
pub const B: f64 = D + 1.0 / R;

/// Step length [s]: one AGC update per second (AGC systems issue set-points every 2-4 s; one
/// second keeps the agent's control close to continuous).
pub const DT_S: f64 = 1.0;
/// Default steps per episode (5 minutes).
pub const HORIZON: u32 = 300;
/// Set-point range the normalised actions map to [p.u.]: each area's regulating reserve. It covers
/// the largest load level the options allow, so AGC can always restore the schedule, and it keeps
/// the critical limit a matter of control: with +-0.3 p.u. a uniformly random agent sheds load
/// within 5 s in 88 % of episodes, with +-0.12 it survives 300 s in about half of them.
pub const U_MAX: f64 = 0.12;
/// Default magnitude of the random step loads [p.u.]: each new load level is uniform in +-this.
pub const LOAD_STEP: f64 = 0.1;
/// Default probability per step that one (random) area's load changes.
pub const DISTURBANCE_RATE: f64 = 0.02;
/// Largest load level any option may set [p.u.] (the regulating reserve).
pub const LOAD_MAX: f64 = U_MAX;
/// Reward weight on the squared ACEs [1/p.u.^2]: a 0.1 p.u. uncorrected load step costs 1 per step.
pub const ACE_WEIGHT: f64 = 100.0;
/// Reward weight on the squared set-point moves [1/p.u.^2].
pub const MOVE_WEIGHT: f64 = 10.0;
/// Frequency deviation that raises a warning [Hz].
pub const FREQ_WARNING: f64 = 0.2;
/// Frequency deviation at which under-frequency load shedding (or over-frequency generator
/// tripping) acts: the process shuts down [Hz].
pub const FREQ_TRIP: f64 = 0.5;
/// Tie-line deviation limit [p.u.] (scheduled interchange plus this is the line's secure rating).
pub const TIE_LIMIT: f64 = 0.1;
/// Success: both areas' frequency deviations within this band at the episode's end [Hz]: the
/// nominal frequency restored, which is AGC's job (the governors' droop alone leaves an offset of
/// the load step over the area's frequency response; the AGC baseline ends within 1e-5 Hz).
pub const SUCCESS_BAND_HZ: f64 = 0.02;
/// The success criterion as the spec shows it.
const SUCCESS: Criterion = Criterion {
    description: "both areas' frequency deviations within `band` at the end of the episode (nominal frequency restored), no emergency shutdown",
    parameters: &[("band", SUCCESS_BAND_HZ, "Hz")],
};
/// Largest AGC set-point change per step before a ramp warning [p.u. per s].
pub const RAMP_LIMIT: f64 = 0.02;

/// Integration tolerances. The model is linear and smooth within a step (loads and set-points
/// change only at step boundaries). At 1e-10 every state stays within 3e-10 absolute of a
/// DOP853 1e-12 solution over a 300-step episode of random set-points, for about 300 right-hand
/// side evaluations per 1-s step (the 13/s governor and turbine modes set the step size);
/// 1e-9 gives 3e-9 for 240, 1e-8 gives 3e-8 for 150.
const TOL: Tolerance = Tolerance {
    rtol: 1e-10,
    atol: 1e-10,
    max_steps: 20_000,
};

// State layout: the seven ODE states first, in the order of `rhs`.
const DF1: usize = 0;
const DF2: usize = 1;
const PV1: usize = 2;
const PV2: usize = 3;
const PM1: usize = 4;
const PM2: usize = 5;
const PTIE: usize = 6;
const PL: usize = 7; // load deviations of areas 1, 2 [p.u.] (7, 8)
const U: usize = 9; // set-points last applied [p.u.] (9, 10)
const STEP_H: usize = 11; // integrator step-size memory [s]
const MEAS: usize = 12; // measured df1, df2, dPtie, dPm1, dPm2 (12..17)
const STATE_LEN: usize = 17;

const OPTIONS: &[&str] = &[
    "horizon",
    "load_step",
    "disturbance_rate",
    "noise",
    "initial_load",
];

/// ODE state `[df1, df2, dPv1, dPv2, dPm1, dPm2, dPtie]`.
pub type Grid = [f64; 7];

/// Right-hand side of the two-area model for set-points `u` and loads `pl` [p.u.].
#[inline]
pub fn rhs(x: &Grid, u: [f64; 2], pl: [f64; 2]) -> Grid {
    rhs_with(x, u, pl, H)
}

/// [`rhs`] with the env's own inertia constant `inertia` [s] (both areas; less synchronous
/// generation online, less inertia): the same arithmetic, so the nominal value gives the same bits.
#[inline(always)]
pub fn rhs_with(x: &Grid, u: [f64; 2], pl: [f64; 2], inertia: f64) -> Grid {
    let swing = F0 / (2.0 * inertia);
    [
        swing * (x[PM1] - pl[0] - D * x[DF1] - x[PTIE]),
        swing * (x[PM2] - pl[1] - D * x[DF2] + x[PTIE]),
        (u[0] - x[PV1] - x[DF1] / R) / TG,
        (u[1] - x[PV2] - x[DF2] / R) / TG,
        (x[PV1] - x[PM1]) / TT,
        (x[PV2] - x[PM2]) / TT,
        TWO_PI_T12 * (x[DF1] - x[DF2]),
    ]
}

/// Integrates one step of `DT_S` at constant set-points and loads.
pub fn advance(x: Grid, u: [f64; 2], pl: [f64; 2], h: &mut f64) -> Grid {
    advance_with(x, u, pl, h, H)
}

/// [`advance`] with the env's own inertia constant (see [`rhs_with`]).
#[inline(always)]
pub fn advance_with(x: Grid, u: [f64; 2], pl: [f64; 2], h: &mut f64, inertia: f64) -> Grid {
    dopri5(|x| rhs_with(x, u, pl, inertia), x, DT_S, h, TOL)
}

/// The grid's physical parameters, in the order `step_with` takes them.
pub const PARAMETERS: [Parameter; 1] = [Parameter::new(
    "H",
    "inertia constant of each area's generation",
    "s",
    H,
    (0.1 * H, 2.0 * H),
)];

/// Area control errors `[ACE1, ACE2]` of frequency deviations and tie flow.
#[inline]
pub fn ace(df1: f64, df2: f64, ptie: f64) -> [f64; 2] {
    [ptie + B * df1, -ptie + B * df2]
}

/// Steady state under primary (droop) control only: `(df, dPtie)` after step loads `pl`.
pub fn primary_steady_state(pl: [f64; 2]) -> (f64, f64) {
    let df = -(pl[0] + pl[1]) / (2.0 * B);
    // Area 2's balance: dPm2 - dPL2 - D df + dPtie = 0 with dPm2 = -df/R.
    (df, pl[1] + B * df)
}

/// The registry id.
pub const ID: &str = "PowerGrid-v0";

/// The two-area load-frequency control process.
#[derive(Debug, Clone)]
pub struct PowerGrid {
    spec: EnvSpec,
    load_step: f64,
    disturbance_rate: f64,
    noise: f64,
    initial_load: [f64; 2],
}

impl PowerGrid {
    /// One step with inertia constant `inertia` (see [`ProcessModel::step_with`]).
    #[inline(always)]
    fn step_h(&self, state: &mut [f64], action: &[f64], rng: &mut Rng, inertia: f64) -> f64 {
        self.disturb(state, rng);
        let u = [action[0], action[1]];
        let pl = [state[PL], state[PL + 1]];
        let mut x = [0.0; 7];
        x.copy_from_slice(&state[..7]);
        let mut h = state[STEP_H];
        let x = advance_with(x, u, pl, &mut h, inertia);
        state[..7].copy_from_slice(&x);
        state[STEP_H] = h;
        let moves = (u[0] - state[U]).powi(2) + (u[1] - state[U + 1]).powi(2);
        state[U] = u[0];
        state[U + 1] = u[1];
        self.measure(state, rng);
        let [a1, a2] = ace(x[DF1], x[DF2], x[PTIE]);
        -(ACE_WEIGHT * (a1 * a1 + a2 * a2) + MOVE_WEIGHT * moves)
    }

    /// Builds the grid from constructor options (see the Python docstring).
    pub fn new(config: &mut Config) -> Result<Self, CoreError> {
        let horizon = take_number(config, "horizon", f64::from(HORIZON), 1.0, 1e9)?;
        if horizon.fract() != 0.0 {
            return Err(CoreError::config(
                "horizon",
                format!("must be a whole number, got {horizon}"),
            ));
        }
        let load_step = take_number(config, "load_step", LOAD_STEP, 0.0, LOAD_MAX)?;
        let disturbance_rate = take_number(config, "disturbance_rate", DISTURBANCE_RATE, 0.0, 1.0)?;
        let noise = take_number(config, "noise", 0.0, 0.0, 0.05)?;
        let initial_load = take_initial_load(config)?;
        reject_unknown(config, ID, OPTIONS)?;
        Ok(Self {
            spec: spec(horizon as u32),
            load_step,
            disturbance_rate,
            noise,
            initial_load,
        })
    }

    /// With probability `disturbance_rate`, one area (uniformly chosen) takes a new load level.
    fn disturb(&self, state: &mut [f64], rng: &mut Rng) {
        if self.load_step > 0.0
            && self.disturbance_rate > 0.0
            && rng.bernoulli(self.disturbance_rate)
        {
            let area = rng.int_in(0, 2) as usize;
            state[PL + area] = rng.uniform_in(-self.load_step, self.load_step);
        }
    }

    /// Writes the measured df1, df2, dPtie, dPm1, dPm2 (Gaussian noise clipped at 4 sigma).
    fn measure(&self, state: &mut [f64], rng: &mut Rng) {
        for (k, i) in [DF1, DF2, PTIE, PM1, PM2].into_iter().enumerate() {
            let e = if self.noise > 0.0 {
                self.noise * rng.normal().clamp(-4.0, 4.0)
            } else {
                0.0
            };
            state[MEAS + k] = state[i] + e;
        }
    }
}

fn take_initial_load(config: &mut Config) -> Result<[f64; 2], CoreError> {
    let bad = |what: String| {
        CoreError::config(
            "initial_load",
            format!("must be a list of two loads in [-{LOAD_MAX}, {LOAD_MAX}] p.u., got {what}"),
        )
    };
    match take(config, "initial_load") {
        None => Ok([0.0; 2]),
        Some(ConfigValue::List(v)) => match v.as_slice() {
            [a, b] if [a, b].iter().all(|x| x.is_finite() && x.abs() <= LOAD_MAX) => Ok([*a, *b]),
            _ => Err(bad(format!("{v:?}"))),
        },
        Some(other) => Err(bad(other.to_string())),
    }
}

fn var(name: &'static str, description: &'static str, unit: &'static str, bound: f64) -> Variable {
    Variable::new(name, description, unit, -bound, bound)
}

/// Observation bounds. The model is linear and stable, so |y| <= sum over inputs of
/// (L1 norm of the impulse response to y) x (input bound); with set-points and loads all within
/// 0.12 p.u. that gives |df| <= 2.03 Hz, |dPtie| <= 0.60, |dPm| <= 0.65, |dPv| <= 0.92,
/// |ACE| <= 0.97 p.u. The bounds below add the 4-sigma measurement noise and round up.
const DF_BOUND: f64 = 3.0;
const TIE_BOUND: f64 = 1.0;
const PM_BOUND: f64 = 1.0;
const PV_BOUND: f64 = 1.0;
const ACE_BOUND: f64 = 1.5;

fn observations() -> Vec<Variable> {
    vec![
        var("df1", "frequency deviation, area 1", "Hz", DF_BOUND),
        var("df2", "frequency deviation, area 2", "Hz", DF_BOUND),
        var(
            "dPtie",
            "tie-line flow deviation, 1 to 2",
            "p.u.",
            TIE_BOUND,
        ),
        var("ACE1", "area control error, area 1", "p.u.", ACE_BOUND),
        var("ACE2", "area control error, area 2", "p.u.", ACE_BOUND),
        var("dPm1", "turbine power deviation, area 1", "p.u.", PM_BOUND),
        var("dPm2", "turbine power deviation, area 2", "p.u.", PM_BOUND),
        var("dPref1", "AGC set-point in force, area 1", "p.u.", U_MAX),
        var("dPref2", "AGC set-point in force, area 2", "p.u.", U_MAX),
    ]
}

fn signals() -> Vec<Variable> {
    vec![
        var("df1", "frequency deviation, area 1", "Hz", DF_BOUND),
        var("df2", "frequency deviation, area 2", "Hz", DF_BOUND),
        var(
            "dPtie",
            "tie-line flow deviation, 1 to 2",
            "p.u.",
            TIE_BOUND,
        ),
        var("dPm1", "turbine power deviation, area 1", "p.u.", PM_BOUND),
        var("dPm2", "turbine power deviation, area 2", "p.u.", PM_BOUND),
        var("dPv1", "governor valve deviation, area 1", "p.u.", PV_BOUND),
        var("dPv2", "governor valve deviation, area 2", "p.u.", PV_BOUND),
        var("ACE1", "area control error, area 1", "p.u.", ACE_BOUND),
        var("ACE2", "area control error, area 2", "p.u.", ACE_BOUND),
        var("dPref1", "AGC set-point, area 1", "p.u.", U_MAX),
        var("dPref2", "AGC set-point, area 2", "p.u.", U_MAX),
        var("dPL1", "load deviation, area 1", "p.u.", LOAD_MAX),
        var("dPL2", "load deviation, area 2", "p.u.", LOAD_MAX),
    ]
}

type Row = crate::spec::ConstraintRow;

fn constraint(row: Row) -> ConstraintSpec {
    ConstraintSpec::from_row(row, SHUTDOWN_PENALTY)
}

/// Reward penalty of an emergency shutdown (a critical alarm is active on that one step only):
/// without it, ending the episode early would raise the return, since every step costs. Here an
/// under-frequency load shedding ends the episode early; 300 is about two uncorrected 0.1 p.u.
/// load steps held for a whole episode.
pub const SHUTDOWN_PENALTY: f64 = 300.0;

/// The declared constraints: (name, type label, signal, kind, limit, severity).
#[rustfmt::skip]
const CONSTRAINTS: [Row; 7] = [
    ("frequency_1",     "frequency",     "df1",    Abs,  FREQ_WARNING, Warning),
    ("frequency_2",     "frequency",     "df2",    Abs,  FREQ_WARNING, Warning),
    ("load_shedding_1", "frequency",     "df1",    Abs,  FREQ_TRIP,    Critical),
    ("load_shedding_2", "frequency",     "df2",    Abs,  FREQ_TRIP,    Critical),
    ("tie_line",        "tie_line",      "dPtie",  Abs,  TIE_LIMIT,    Warning),
    ("agc_ramp_1",      "actuator_rate", "dPref1", Rate, RAMP_LIMIT,   Warning),
    ("agc_ramp_2",      "actuator_rate", "dPref2", Rate, RAMP_LIMIT,   Warning),
];

fn constraints() -> Vec<ConstraintSpec> {
    CONSTRAINTS.into_iter().map(constraint).collect()
}

fn spec(horizon: u32) -> EnvSpec {
    EnvSpec {
        id: ID,
        description: "Two-area load-frequency control: set both areas' AGC set-points to bring frequency and tie-line flow back after step loads",
        observations: observations(),
        actions: vec![
            var("dPref1", "AGC set-point (governor load reference), area 1", "p.u.", U_MAX),
            var("dPref2", "AGC set-point (governor load reference), area 2", "p.u.", U_MAX),
        ],
        signals: signals(),
        dt: DT_S,
        dt_unit: "s",
        horizon,
        constraints: constraints(),
        // AGC suspended: set-points back to schedule, frequency held by the governors' droop alone.
        safe_action: vec![0.0, 0.0],
        parameters: PARAMETERS.to_vec(),
        source: "Two-area LFC after Kundur (1994) ch. 11 and Bevrani (2014) ch. 2-3; parameters of Fosha & Elgerd (1970)",
    }
}

impl ProcessModel for PowerGrid {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn state_len(&self) -> usize {
        STATE_LEN
    }

    fn reset(&self, state: &mut [f64], rng: &mut Rng) {
        state.fill(0.0);
        state[PL] = self.initial_load[0];
        state[PL + 1] = self.initial_load[1];
        state[STEP_H] = DT_S;
        self.measure(state, rng);
    }

    fn step(&self, state: &mut [f64], action: &[f64], _t: u32, rng: &mut Rng) -> f64 {
        self.step_h(state, action, rng, H)
    }

    fn step_with(
        &self,
        state: &mut [f64],
        action: &[f64],
        _t: u32,
        rng: &mut Rng,
        params: &[f64],
    ) -> f64 {
        self.step_h(state, action, rng, params.first().copied().unwrap_or(H))
    }

    fn observe(&self, state: &[f64], _t: u32, obs: &mut [f32]) {
        let m = &state[MEAS..MEAS + 5];
        let [a1, a2] = ace(m[0], m[1], m[2]);
        let values = [m[0], m[1], m[2], a1, a2, m[3], m[4], state[U], state[U + 1]];
        for (o, v) in obs.iter_mut().zip(values) {
            *o = v as f32;
        }
    }

    fn signals(&self, state: &[f64], out: &mut [f64]) {
        let [a1, a2] = ace(state[DF1], state[DF2], state[PTIE]);
        let values = [
            state[DF1],
            state[DF2],
            state[PTIE],
            state[PM1],
            state[PM2],
            state[PV1],
            state[PV2],
            a1,
            a2,
            state[U],
            state[U + 1],
            state[PL],
            state[PL + 1],
        ];
        out.copy_from_slice(&values);
    }

    fn success(&self) -> Option<&Criterion> {
        Some(&SUCCESS)
    }

    fn succeeded(&self, state: &[f64], _t: u32) -> bool {
        state[DF1].abs() <= SUCCESS_BAND_HZ && state[DF2].abs() <= SUCCESS_BAND_HZ
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_both_frequencies_restored_at_the_end() {
        let g = PowerGrid::new(&mut Vec::new()).expect("default config is valid");
        let mut s = vec![0.0; STATE_LEN];
        g.reset(&mut s, &mut Rng::from_seed(0));
        s[DF1] = -0.9 * SUCCESS_BAND_HZ;
        s[DF2] = 0.5 * SUCCESS_BAND_HZ;
        assert!(g.succeeded(&s, HORIZON));
        s[DF2] = -1.5 * SUCCESS_BAND_HZ;
        assert!(!g.succeeded(&s, HORIZON));
    }

    fn grid(options: &[(&str, ConfigValue)]) -> PowerGrid {
        let mut c: Config = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        PowerGrid::new(&mut c).expect("valid config")
    }

    fn quiet(load: [f64; 2]) -> PowerGrid {
        grid(&[
            ("load_step", ConfigValue::Number(0.0)),
            ("initial_load", ConfigValue::List(load.to_vec())),
        ])
    }

    fn run(g: &PowerGrid, steps: u32, u: [f64; 2]) -> Vec<f64> {
        let mut rng = Rng::from_seed(0);
        let mut s = vec![0.0; STATE_LEN];
        g.reset(&mut s, &mut rng);
        for t in 0..steps {
            g.step(&mut s, &u, t, &mut rng);
        }
        s
    }

    #[test]
    fn primary_control_settles_at_the_hand_derived_steady_state() {
        // Load step of 0.1 p.u. in area 1, AGC off: df = -dPL / (D1 + 1/R1 + D2 + 1/R2),
        // area 2 exports through the tie its own frequency response: dPtie = B2 df.
        let s = run(&quiet([0.1, 0.0]), 300, [0.0, 0.0]);
        let df = -0.1 / (2.0 * (D + 1.0 / R));
        assert!((df - -0.117_647_058_823_529_4).abs() < 1e-15);
        for (i, want) in [(DF1, df), (DF2, df), (PTIE, (D + 1.0 / R) * df)] {
            assert!((s[i] - want).abs() < 1e-9, "state {i}: {} vs {want}", s[i]);
        }
        // Each governor picks up -df/R: 0.049 p.u. each, 0.098 in all; load damping the rest.
        assert!((s[PM1] - -df / R).abs() < 1e-9 && (s[PM2] - -df / R).abs() < 1e-9);
        let (df_ss, tie_ss) = primary_steady_state([0.1, 0.0]);
        assert!((df_ss - df).abs() < 1e-15 && (tie_ss - s[PTIE]).abs() < 1e-9);
    }

    #[test]
    fn set_points_matching_the_load_restore_schedule() {
        // Secondary control's steady state: dPref1 = dPL1 gives df = 0, dPtie = 0, ACE = 0.
        let s = run(&quiet([0.1, 0.0]), 300, [0.1, 0.0]);
        for i in [DF1, DF2, PTIE] {
            assert!(s[i].abs() < 1e-9, "state {i}: {}", s[i]);
        }
        assert!((s[PM1] - 0.1).abs() < 1e-9 && s[PM2].abs() < 1e-9);
    }

    #[test]
    fn dopri5_matches_a_fine_rk4_over_an_episode() {
        // Alternating set-points excite every mode; RK4 with 4000 substeps per second is exact
        // to ~1e-13 here (h * |lambda| = 3e-3).
        let (pl, mut x, mut y, mut h) = ([0.1, -0.05], [0.0; 7], [0.0; 7], DT_S);
        let mut worst = 0.0f64;
        for k in 0..100 {
            let u = if k % 7 < 3 { [0.2, -0.1] } else { [-0.1, 0.05] };
            x = advance(x, u, pl, &mut h);
            y = crate::integrate::rk4_fixed(&|x: &Grid| rhs(x, u, pl), y, DT_S, 4000);
            for i in 0..7 {
                worst = worst.max((x[i] - y[i]).abs());
            }
        }
        assert!(worst < 1e-9, "worst {worst:e}");
    }

    #[test]
    fn bang_bang_and_extreme_loads_stay_inside_the_observation_bounds() {
        let g = grid(&[
            ("load_step", ConfigValue::Number(LOAD_MAX)),
            ("disturbance_rate", ConfigValue::Number(0.5)),
            ("noise", ConfigValue::Number(0.05)),
        ]);
        let mut rng = Rng::from_seed(3);
        let mut s = vec![0.0; STATE_LEN];
        let mut obs = vec![0.0f32; g.spec().obs_dim()];
        let mut sig = vec![0.0; g.spec().signals.len()];
        g.reset(&mut s, &mut rng);
        for t in 0..3000 {
            // Switching near the slow inter-area mode (period ~2.5 s) excites it hardest.
            let a = if (t / 2) % 2 == 0 { U_MAX } else { -U_MAX };
            let r = g.step(&mut s, &[a, -a], t, &mut rng);
            assert!(r.is_finite());
            g.observe(&s, t + 1, &mut obs);
            g.signals(&s, &mut sig);
            for (o, v) in obs.iter().zip(&g.spec().observations) {
                assert!(
                    *o >= v.low as f32 && *o <= v.high as f32,
                    "{} = {o}",
                    v.name
                );
            }
            for (x, v) in sig.iter().zip(&g.spec().signals) {
                assert!(*x >= v.low && *x <= v.high, "{} = {x}", v.name);
            }
        }
    }

    #[test]
    fn reward_is_order_one_for_an_uncorrected_load_step() {
        let g = quiet([0.1, 0.0]);
        let mut rng = Rng::from_seed(0);
        let mut s = vec![0.0; STATE_LEN];
        g.reset(&mut s, &mut rng);
        let mut r = 0.0;
        for t in 0..300 {
            r = g.step(&mut s, &[0.0, 0.0], t, &mut rng);
        }
        // ACE1 = -0.1 (area 1's whole deficit), ACE2 = 0 at the primary steady state.
        assert!((r - -1.0).abs() < 1e-6, "{r}");
    }

    #[test]
    fn disturbances_come_from_the_stream_and_respect_the_magnitude() {
        let g = grid(&[("disturbance_rate", ConfigValue::Number(0.3))]);
        let mut rng = Rng::from_seed(9);
        let mut s = vec![0.0; STATE_LEN];
        g.reset(&mut s, &mut rng);
        let mut changes = 0;
        let mut last = [0.0, 0.0];
        for t in 0..200 {
            g.step(&mut s, &[0.0, 0.0], t, &mut rng);
            let now = [s[PL], s[PL + 1]];
            assert!(now.iter().all(|p| p.abs() <= LOAD_STEP));
            // At most one area changes per step.
            assert!(now[0] == last[0] || now[1] == last[1]);
            changes += usize::from(now != last);
            last = now;
        }
        assert!((40..80).contains(&changes), "{changes}");
    }

    #[test]
    fn rate_constraints_watch_the_action_signals() {
        let g = grid(&[]);
        let sp = g.spec();
        for c in sp
            .constraints
            .iter()
            .filter(|c| c.kind == crate::spec::ConstraintKind::Rate)
        {
            assert!(sp.actions.iter().any(|a| a.name == c.signal), "{}", c.name);
        }
        for c in &sp.constraints {
            assert!(sp.signal_index(c.signal).is_some(), "{}", c.name);
        }
        assert_eq!(sp.safe_action.len(), sp.act_dim());
    }

    #[test]
    fn unknown_and_bad_options_are_named() {
        let mut c = vec![("load_stp".to_string(), ConfigValue::Number(0.1))];
        assert!(PowerGrid::new(&mut c)
            .unwrap_err()
            .to_string()
            .contains("load_stp"));
        for (k, v) in [
            ("initial_load", ConfigValue::List(vec![0.1])),
            ("initial_load", ConfigValue::List(vec![0.5, 0.0])),
            ("load_step", ConfigValue::Number(1.0)),
            ("horizon", ConfigValue::Number(2.5)),
        ] {
            let mut c = vec![(k.to_string(), v)];
            assert!(PowerGrid::new(&mut c).unwrap_err().to_string().contains(k));
        }
    }
}
