//! HVAC-v0: heating and cooling of a three-zone office floor, an RC thermal network.
//!
//! Each zone is the two-state grey-box model "indoor air + thermal mass" of Bacher & Madsen
//! ("Identifying suitable models for the heat dynamics of buildings", Energy and Buildings 43(7),
//! 2011, their "TiTe" model), with its capacitances and conductances taken from the ISO 13790
//! simple hourly method instead of identified; the zones sit side by side and exchange heat
//! through their partitions. For zone i (neighbours j), time in hours:
//!
//! ```text
//! Ca dTa_i/dt = (Tm_i - Ta_i)/Ram + (To - Ta_i)/Rao + sum_j (Ta_j - Ta_i)/Rzz + P_i + Qint_i occ(t)
//! Cm dTm_i/dt = (Ta_i - Tm_i)/Ram + (To - Tm_i)/Rmo + Asol_i I(t)
//! ```
//!
//! Ta: zone air temperature, Tm: temperature of the zone's thermal mass (floor, ceiling, walls),
//! To: outdoor temperature, P: heating (> 0) or cooling (< 0) power delivered to the air [kW],
//! Qint: internal gains of people and equipment while occupied, I: solar irradiance on the facade
//! [kW/m^2] absorbed by the mass through an effective aperture Asol. The plant heats only while
//! the outdoor air is below 15 degC and cools only while it is above 12 degC (heating limit and
//! chiller lockout): a locked-out command delivers (and costs) nothing. The weather, occupancy and
//! tariff are sampled at the start of each 15-min step and held over it (zero-order hold, as hourly
//! weather files are), so each step is the exact solution `x' = Phi x + Gamma b` of a linear ODE
//! with constant forcing: `Phi = exp(A dt)`, `Gamma = int_0^dt exp(A s) ds`, both computed once.
//!
//! Zone geometry: 40 m^2 floor, 3 m high, 8 m x 3 m facade with 40 % glazing. Sources of the
//! values: ISO 13790:2008 simple hourly method (§7.2, Table 12, class "medium") for the mass and
//! the air-to-mass coupling;
//! ASHRAE Handbook Fundamentals (2017) ch. 1 (air properties), ch. 15-16 (glazing, ventilation)
//! and ch. 18 (internal gains, Tables 1 and 11).

use super::success::Criterion;
use super::{reject_unknown, take_bool, take_number, Config, ProcessModel};
use crate::errors::CoreError;
use crate::rng::Rng;
use crate::spec::ConstraintKind::{Lower, Upper};
use crate::spec::Severity::{Critical, Warning};
use crate::spec::{ConstraintSpec, EnvSpec, Variable};

/// Zones.
pub const ZONES: usize = 3;
const N: usize = 2 * ZONES;

/// Heat capacity of a zone's air [kWh/K]: rho c_p V = 1.204 kg/m^3 x 1.006 kJ/(kg K) x 120 m^3.
pub const C_AIR: f64 = 1.204 * 1.006 * 120.0 / 3600.0;
/// Effective heat capacity of a zone's mass [kWh/K]: 165 kJ/(m^2 K) x 40 m^2 (ISO 13790 Table 12,
/// "medium").
pub const C_MASS: f64 = 165.0 * 40.0 / 3600.0;
/// Air-to-mass resistance [K/kW]: internal surfaces 1/(h_is A_t) with h_is = 3.45 W/(m^2 K),
/// A_t = 4.5 A_f, in series with 1/(h_ms A_m), h_ms = 9.1 W/(m^2 K), A_m = 2.5 A_f (ISO 13790 §7.2
/// and Table 12).
pub const R_AIR_MASS: f64 = 1000.0 / (3.45 * 4.5 * 40.0) + 1000.0 / (9.1 * 2.5 * 40.0);
/// Air-to-outdoor resistance [K/kW]: windows 9.6 m^2 x U 1.8 W/(m^2 K) (double low-e glazing,
/// ASHRAE Fundamentals ch. 15) in parallel with one air change per hour of 120 m^3 (ch. 16).
pub const R_AIR_OUT: f64 = 1000.0 / (9.6 * 1.8 + 1.204 * 1006.0 * 120.0 / 3600.0);
/// Mass-to-outdoor resistance [K/kW]: 14.4 m^2 of opaque facade at U = 0.35 W/(m^2 K).
pub const R_MASS_OUT: f64 = 1000.0 / (14.4 * 0.35);
/// Zone-to-zone resistance [K/kW]: a 15 m^2 partition at U = 2 W/(m^2 K) plus about 20 W/K of air
/// exchange through the doorway.
pub const R_ZONE: f64 = 1000.0 / 50.0;
/// Effective solar apertures [m^2]: 9.6 m^2 glazing x g 0.6 x frame 0.7 x shading 0.8 = 3.2 m^2 for
/// the south zone; the middle (east-west) and north zones get half and a quarter of it.
pub const SOLAR_APERTURE: [f64; ZONES] = [3.2, 1.6, 0.8];
/// Internal gains while occupied [kW]: 4 people x 75 W sensible (ASHRAE Fundamentals ch. 18
/// Table 1, office work) + 0.3 kW of equipment and LED lighting (7.5 W/m^2, between the light and
/// medium office densities of Table 11); the middle zone is a denser open-plan area.
pub const INTERNAL_GAINS: [f64; ZONES] = [0.6, 0.9, 0.6];

/// Step length [h] (15 min).
pub const DT_H: f64 = 0.25;
/// Steps per day.
pub const STEPS_PER_DAY: u32 = 96;
/// Heating/cooling power range per zone [kW] (a fan-coil or split unit).
pub const P_MAX: f64 = 2.5;
/// Outdoor temperature from which heating is locked out [degC]: the heating limit temperature of
/// continental European practice (the German "Heizgrenztemperatur", 15 degC for ordinary buildings).
pub const HEATING_LIMIT: f64 = 15.0;
/// Outdoor temperature up to which mechanical cooling is locked out [degC] (chiller low-ambient
/// lockout; below it offices cool with outdoor air, which this model leaves out).
pub const COOLING_LOCKOUT: f64 = 12.0;
/// Site (electrical connection) limit on the summed heating and cooling power [kW].
pub const SITE_LIMIT: f64 = 6.0;
/// Coefficient of performance of heating (air-source heat pump) [-].
pub const COP_HEAT: f64 = 3.5;
/// Coefficient of performance of cooling [-].
pub const COP_COOL: f64 = 3.0;
/// Time-of-use tariff [EUR/kWh]: peak on workdays 08:00-20:00, off-peak otherwise (illustrative).
pub const PRICE_PEAK: f64 = 0.30;
/// Off-peak price [EUR/kWh].
pub const PRICE_OFF_PEAK: f64 = 0.12;
/// Comfort band while occupied [degC] (ASHRAE Standard 55 winter/summer envelope, simplified).
pub const COMFORT: (f64, f64) = (20.0, 24.0);
/// Tolerance of the comfort warnings [K].
pub const COMFORT_TOLERANCE: f64 = 0.5;
/// Zone temperatures that shut the site down [degC]: frost/condensation risk and overheating.
pub const CRITICAL: (f64, f64) = (12.0, 30.0);
/// Office hours on workdays (Monday to Friday; the episode starts on a Monday at 00:00) [h].
pub const OFFICE_HOURS: (f64, f64) = (8.0, 18.0);
/// Reward weight of the energy bill [1/EUR]: 0.1 EUR costs 1.
pub const ENERGY_WEIGHT: f64 = 10.0;
/// Reward weight of the squared comfort deviation, per zone [1/K^2].
pub const COMFORT_WEIGHT: f64 = 1.0;
/// Zone temperature at the start of an episode, before `x0_spread` [degC].
pub const T_INIT: f64 = 20.0;

/// Outdoor climate: a daily sinusoid (minimum at 03:00, maximum at 15:00) and a half-sine of solar
/// irradiance between sunrise and sunset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Climate {
    /// Daily mean outdoor temperature [degC].
    pub mean: f64,
    /// Daily amplitude [K].
    pub amplitude: f64,
    /// Peak irradiance on the facade [kW/m^2].
    pub solar_peak: f64,
    /// Sunrise and sunset [h].
    pub daylight: (f64, f64),
}

/// Winter defaults (a cold continental-European day).
pub const WINTER: Climate = Climate {
    mean: 5.0,
    amplitude: 6.0,
    solar_peak: 0.4,
    daylight: (8.0, 16.0),
};
/// Summer defaults.
pub const SUMMER: Climate = Climate {
    mean: 22.0,
    amplitude: 6.0,
    solar_peak: 0.5,
    daylight: (5.0, 21.0),
};

/// Exogenous inputs held over one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exogenous {
    /// Outdoor temperature [degC].
    pub t_out: f64,
    /// Solar irradiance [kW/m^2].
    pub solar: f64,
    /// Office occupied.
    pub occupied: bool,
    /// Internal gains present, as a fraction of [`INTERNAL_GAINS`] (0 while unoccupied).
    pub gains: f64,
    /// Workday (Monday to Friday).
    pub workday: bool,
    /// Electricity price [EUR/kWh].
    pub price: f64,
    /// Hour of day [h].
    pub hour: f64,
}

// State layout.
const TA: usize = 0; // zone air temperatures [degC] (0..3)
const TM: usize = 3; // zone mass temperatures [degC] (3..6)
const P: usize = 6; // power last applied per zone [kW] (6..9)
const K: usize = 9; // steps since the episode started (the building's clock)
const MEAS: usize = 10; // measured zone air temperatures (10..13)
const OCCUPIED_STEPS: usize = 13; // steps ending in occupied time (success memory)
const COMFORT_STEPS: usize = 14; // of those, steps with every zone comfortable (success memory)
const STATE_LEN: usize = 15;

/// Success: the share of the episode's occupied steps that end with every zone inside the comfort
/// band widened by the warnings' tolerance. The PI baseline keeps all of them, the zero policy
/// none, the random one a third.
pub const SUCCESS_COMFORT_SHARE: f64 = 0.9;
/// The success criterion as the spec shows it.
const SUCCESS: Criterion = Criterion {
    description: "every zone within `comfort_low`-`comfort_high` widened by `tolerance` on at least `share` of the occupied steps (none occupied: kept), no emergency shutdown",
    parameters: &[
        ("share", SUCCESS_COMFORT_SHARE, "1"),
        ("comfort_low", COMFORT.0, "degC"),
        ("comfort_high", COMFORT.1, "degC"),
        ("tolerance", COMFORT_TOLERANCE, "K"),
    ],
};

const OPTIONS: &[&str] = &[
    "horizon",
    "days",
    "summer",
    "outdoor_mean",
    "outdoor_amplitude",
    "solar_peak",
    "internal_gains",
    "x0_spread",
    "noise",
];

type Mat<const M: usize> = [[f64; M]; M];

fn identity<const M: usize>() -> Mat<M> {
    let mut m = [[0.0; M]; M];
    for (i, row) in m.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    m
}

fn mat_mul<const M: usize>(a: &Mat<M>, b: &Mat<M>) -> Mat<M> {
    let mut c = [[0.0; M]; M];
    for i in 0..M {
        for k in 0..M {
            for j in 0..M {
                c[i][j] += a[i][k] * b[k][j];
            }
        }
    }
    c
}

/// Matrix exponential by scaling and squaring of a degree-18 Taylor polynomial (Moler & Van Loan,
/// "Nineteen dubious ways to compute the exponential of a matrix", SIAM Review 2003, method 3):
/// after scaling to norm <= 1/2 the truncation error is below 1e-22.
fn expm<const M: usize>(a: &Mat<M>) -> Mat<M> {
    let norm = a
        .iter()
        .map(|r| r.iter().map(|v| v.abs()).sum::<f64>())
        .fold(0.0, f64::max);
    let mut squarings = 0;
    let mut scale = 1.0;
    while norm * scale > 0.5 && squarings < 64 {
        scale *= 0.5;
        squarings += 1;
    }
    let mut scaled = *a;
    scaled.iter_mut().flatten().for_each(|v| *v *= scale);
    let (mut term, mut sum) = (identity::<M>(), identity::<M>());
    for k in 1..=18 {
        term = mat_mul(&term, &scaled);
        term.iter_mut().flatten().for_each(|v| *v /= f64::from(k));
        sum.iter_mut()
            .flatten()
            .zip(term.iter().flatten())
            .for_each(|(s, t)| *s += t);
    }
    for _ in 0..squarings {
        sum = mat_mul(&sum, &sum);
    }
    sum
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting (`a` must be nonsingular).
fn solve<const M: usize>(mut a: Mat<M>, mut b: [f64; M]) -> [f64; M] {
    for col in 0..M {
        let pivot = (col..M)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..M {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (x, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; M];
    for row in (0..M).rev() {
        let s: f64 = (row + 1..M).map(|j| a[row][j] * x[j]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    x
}

/// Are zones `i` and `j` neighbours (side by side: 1-2 and 2-3)?
fn adjacent(i: usize, j: usize) -> bool {
    i.abs_diff(j) == 1
}

/// The system matrix A [1/h] of the state `[Ta_1..3, Tm_1..3]`.
pub fn system_matrix() -> Mat<N> {
    let mut a = [[0.0; N]; N];
    for i in 0..ZONES {
        a[i][i] = -(1.0 / R_AIR_MASS + 1.0 / R_AIR_OUT) / C_AIR;
        a[i][ZONES + i] = 1.0 / (R_AIR_MASS * C_AIR);
        for j in (0..ZONES).filter(|&j| adjacent(i, j)) {
            a[i][j] = 1.0 / (R_ZONE * C_AIR);
            a[i][i] -= 1.0 / (R_ZONE * C_AIR);
        }
        a[ZONES + i][i] = 1.0 / (R_AIR_MASS * C_MASS);
        a[ZONES + i][ZONES + i] = -(1.0 / R_AIR_MASS + 1.0 / R_MASS_OUT) / C_MASS;
    }
    a
}

/// The forcing b [K/h] (so that `dx/dt = A x + b`) of powers `p` [kW] under `exo`.
pub fn forcing(p: &[f64], exo: &Exogenous) -> [f64; N] {
    let mut b = [0.0; N];
    for i in 0..ZONES {
        b[i] = (p[i] + INTERNAL_GAINS[i] * exo.gains + exo.t_out / R_AIR_OUT) / C_AIR;
        b[ZONES + i] = (SOLAR_APERTURE[i] * exo.solar + exo.t_out / R_MASS_OUT) / C_MASS;
    }
    b
}

/// Exact zero-order-hold discretisation over `dt`: `(Phi, Gamma)` from the exponential of the
/// augmented matrix `[[A dt, I dt], [0, 0]]`, whose top-right block is `int_0^dt exp(A s) ds`.
pub fn discretise(a: &Mat<N>, dt: f64) -> (Mat<N>, Mat<N>) {
    let mut m = [[0.0; 2 * N]; 2 * N];
    for i in 0..N {
        for j in 0..N {
            m[i][j] = a[i][j] * dt;
        }
        m[i][N + i] = dt;
    }
    let e = expm(&m);
    let (mut phi, mut gamma) = ([[0.0; N]; N], [[0.0; N]; N]);
    for i in 0..N {
        phi[i].copy_from_slice(&e[i][..N]);
        gamma[i].copy_from_slice(&e[i][N..]);
    }
    (phi, gamma)
}

/// Steady state of `dx/dt = A x + b`.
pub fn steady_state(b: [f64; N]) -> [f64; N] {
    let mut neg = system_matrix();
    neg.iter_mut().flatten().for_each(|v| *v = -*v);
    solve(neg, b)
}

/// Distance of `t` outside the comfort band while occupied, else 0 [K].
pub fn comfort_deviation(t: f64, occupied: bool) -> f64 {
    if occupied {
        (COMFORT.0 - t).max(t - COMFORT.1).max(0.0)
    } else {
        0.0
    }
}

/// The power the plant delivers for a commanded `p` [kW] at outdoor temperature `t_out`: heating
/// only below [`HEATING_LIMIT`], cooling only above [`COOLING_LOCKOUT`] (both between them).
pub fn available(p: f64, t_out: f64) -> f64 {
    let locked = (p > 0.0 && t_out >= HEATING_LIMIT) || (p < 0.0 && t_out <= COOLING_LOCKOUT);
    if locked {
        0.0
    } else {
        p
    }
}

/// Electricity bill of one step [EUR] for powers `p` [kW] at `price`.
pub fn energy_cost(p: &[f64], price: f64) -> f64 {
    let electric: f64 = p
        .iter()
        .map(|&q| if q > 0.0 { q / COP_HEAT } else { -q / COP_COOL })
        .sum();
    electric * DT_H * price
}

/// The registry id.
pub const ID: &str = "HVAC-v0";

/// The three-zone building.
#[derive(Debug, Clone)]
pub struct Hvac {
    spec: EnvSpec,
    climate: Climate,
    gains: f64,
    x0_spread: f64,
    noise: f64,
    phi: Mat<N>,
    gamma: Mat<N>,
}

impl Hvac {
    /// Builds the building from constructor options (see the Python docstring).
    pub fn new(config: &mut Config) -> Result<Self, CoreError> {
        let days = take_number(config, "days", 1.0, 1.0, 366.0)?;
        whole("days", days)?;
        let horizon = take_number(config, "horizon", days * f64::from(STEPS_PER_DAY), 1.0, 1e9)?;
        whole("horizon", horizon)?;
        let summer = take_bool(config, "summer", false)?;
        let season = if summer { SUMMER } else { WINTER };
        let climate = Climate {
            mean: take_number(config, "outdoor_mean", season.mean, -30.0, 40.0)?,
            amplitude: take_number(config, "outdoor_amplitude", season.amplitude, 0.0, 15.0)?,
            solar_peak: take_number(config, "solar_peak", season.solar_peak, 0.0, 1.2)?,
            ..season
        };
        let gains = take_number(config, "internal_gains", 1.0, 0.0, 3.0)?;
        let x0_spread = take_number(config, "x0_spread", 1.0, 0.0, 5.0)?;
        let noise = take_number(config, "noise", 0.0, 0.0, 1.0)?;
        reject_unknown(config, ID, OPTIONS)?;
        let (phi, gamma) = discretise(&system_matrix(), DT_H);
        let bounds = temperature_bounds(&climate, gains, x0_spread, noise);
        Ok(Self {
            spec: spec(horizon as u32, &climate, bounds, summer),
            climate,
            gains,
            x0_spread,
            noise,
            phi,
            gamma,
        })
    }

    /// Weather, occupancy and tariff at step `k` of the episode (held over the step that follows).
    pub fn exogenous(&self, k: u64) -> Exogenous {
        let steps = u64::from(STEPS_PER_DAY);
        let hour = (k % steps) as f64 * DT_H;
        let workday = (k / steps) % 7 < 5;
        let c = &self.climate;
        let t_out = c.mean + c.amplitude * (std::f64::consts::TAU * (hour - 9.0) / 24.0).sin();
        let (rise, set) = c.daylight;
        let solar = if (rise..set).contains(&hour) {
            c.solar_peak * (std::f64::consts::PI * (hour - rise) / (set - rise)).sin()
        } else {
            0.0
        };
        let peak = workday && (8.0..20.0).contains(&hour);
        let occupied = workday && (OFFICE_HOURS.0..OFFICE_HOURS.1).contains(&hour);
        Exogenous {
            t_out,
            solar,
            occupied,
            gains: if occupied { self.gains } else { 0.0 },
            workday,
            price: if peak { PRICE_PEAK } else { PRICE_OFF_PEAK },
            hour,
        }
    }

    fn clock(state: &[f64]) -> u64 {
        state[K].max(0.0) as u64
    }

    fn measure(&self, state: &mut [f64], rng: &mut Rng) {
        for i in 0..ZONES {
            let e = if self.noise > 0.0 {
                self.noise * rng.normal().clamp(-4.0, 4.0)
            } else {
                0.0
            };
            state[MEAS + i] = state[TA + i] + e;
        }
    }
}

fn whole(key: &str, x: f64) -> Result<(), CoreError> {
    if x.fract() == 0.0 {
        Ok(())
    } else {
        Err(CoreError::config(
            key,
            format!("must be a whole number, got {x}"),
        ))
    }
}

/// Bounds every zone temperature (air or mass) can reach. A is Metzler and the forcing enters
/// with nonnegative weights, so the system is monotone: a state starting below the steady state of
/// a constant forcing that bounds every possible forcing from above stays below it, and likewise
/// from below. The bounding forcings take the outdoor range, the lockouts (heating only below
/// [`HEATING_LIMIT`], cooling only above [`COOLING_LOCKOUT`]), full sun and gains into account.
/// The measurement noise is clipped at 4 sigma.
fn temperature_bounds(c: &Climate, gains: f64, x0_spread: f64, noise: f64) -> (f64, f64) {
    let (cold, warm) = (c.mean - c.amplitude, c.mean + c.amplitude);
    // Largest heat input to the air: full heating (while outdoors is below the heating limit) or
    // none on the warmest day, whichever is larger; smallest: full cooling or none.
    let mut air_hi = warm / R_AIR_OUT;
    if cold < HEATING_LIMIT {
        air_hi = air_hi.max(P_MAX + warm.min(HEATING_LIMIT) / R_AIR_OUT);
    }
    let mut air_lo = cold / R_AIR_OUT;
    if warm > COOLING_LOCKOUT {
        air_lo = air_lo.min(-P_MAX + cold.max(COOLING_LOCKOUT) / R_AIR_OUT);
    }
    let (mut b_hi, mut b_lo) = ([0.0; N], [0.0; N]);
    for i in 0..ZONES {
        b_hi[i] = (air_hi + INTERNAL_GAINS[i] * gains) / C_AIR;
        b_lo[i] = air_lo / C_AIR;
        b_hi[ZONES + i] = (SOLAR_APERTURE[i] * c.solar_peak + warm / R_MASS_OUT) / C_MASS;
        b_lo[ZONES + i] = cold / R_MASS_OUT / C_MASS;
    }
    let hi = steady_state(b_hi)
        .iter()
        .fold(T_INIT + x0_spread, |m, &v| m.max(v));
    let lo = steady_state(b_lo)
        .iter()
        .fold(T_INIT - x0_spread, |m, &v| m.min(v));
    (
        (lo - 4.0 * noise - 1.0).floor(),
        (hi + 4.0 * noise + 1.0).ceil(),
    )
}

fn observations(c: &Climate, (lo, hi): (f64, f64)) -> Vec<Variable> {
    let temp = |name, description| Variable::new(name, description, "degC", lo, hi);
    let flag = |name, description| Variable::new(name, description, "-", 0.0, 1.0);
    let (to_lo, to_hi) = (c.mean - c.amplitude, c.mean + c.amplitude);
    vec![
        temp("T_zone_1", "air temperature, zone 1 (south)"),
        temp("T_zone_2", "air temperature, zone 2 (middle)"),
        temp("T_zone_3", "air temperature, zone 3 (north)"),
        Variable::new("T_out", "outdoor temperature", "degC", to_lo, to_hi),
        Variable::new(
            "solar",
            "solar irradiance on the facade",
            "kW/m^2",
            0.0,
            c.solar_peak,
        ),
        flag("occupied", "office occupied now (0/1)"),
        Variable::new(
            "price",
            "electricity price of the next step",
            "EUR/kWh",
            PRICE_OFF_PEAK,
            PRICE_PEAK,
        ),
        Variable::new("hour", "hour of day", "h", 0.0, 24.0),
        flag("workday", "Monday to Friday (0/1)"),
    ]
}

fn signals(c: &Climate, (lo, hi): (f64, f64)) -> Vec<Variable> {
    let temp = |name, description| Variable::new(name, description, "degC", lo, hi);
    let worst = (COMFORT.0 - lo).max(hi - COMFORT.1);
    let dev = |name| {
        Variable::new(
            name,
            "distance outside 20-24 degC while occupied",
            "K",
            0.0,
            worst,
        )
    };
    let p = |name| {
        Variable::new(
            name,
            "heating (+) / cooling (-) power delivered",
            "kW",
            -P_MAX,
            P_MAX,
        )
    };
    let total = ZONES as f64 * P_MAX;
    vec![
        temp("T_zone_1", "air temperature, zone 1"),
        temp("T_zone_2", "air temperature, zone 2"),
        temp("T_zone_3", "air temperature, zone 3"),
        temp("T_mass_1", "thermal mass temperature, zone 1"),
        temp("T_mass_2", "thermal mass temperature, zone 2"),
        temp("T_mass_3", "thermal mass temperature, zone 3"),
        dev("comfort_deviation_zone_1"),
        dev("comfort_deviation_zone_2"),
        dev("comfort_deviation_zone_3"),
        Variable::new("total_power", "sum of |power delivered|", "kW", 0.0, total),
        p("P_zone_1"),
        p("P_zone_2"),
        p("P_zone_3"),
        Variable::new(
            "T_out",
            "outdoor temperature",
            "degC",
            c.mean - c.amplitude,
            c.mean + c.amplitude,
        ),
    ]
}

type Row = crate::spec::ConstraintRow;

fn constraint(row: Row) -> ConstraintSpec {
    ConstraintSpec::from_row(row, SHUTDOWN_PENALTY)
}

/// Reward penalty of an emergency shutdown (a critical alarm is active on that one step only):
/// without it, ending the episode early would raise the return, since every step costs. Here a
/// zone leaving 12-30 °C ends the episode early; 2000 exceeds what the worst policy accumulates
/// over a week, so tripping never pays.
pub const SHUTDOWN_PENALTY: f64 = 2000.0;

/// The declared constraints: (name, type label, signal, kind, limit, severity).
#[rustfmt::skip]
const CONSTRAINTS: [Row; 10] = [
    ("comfort_zone_1",     "comfort",     "comfort_deviation_zone_1", Upper, COMFORT_TOLERANCE, Warning),
    ("comfort_zone_2",     "comfort",     "comfort_deviation_zone_2", Upper, COMFORT_TOLERANCE, Warning),
    ("comfort_zone_3",     "comfort",     "comfort_deviation_zone_3", Upper, COMFORT_TOLERANCE, Warning),
    ("overheating_zone_1", "temperature", "T_zone_1",                 Upper, CRITICAL.1,        Critical),
    ("overheating_zone_2", "temperature", "T_zone_2",                 Upper, CRITICAL.1,        Critical),
    ("overheating_zone_3", "temperature", "T_zone_3",                 Upper, CRITICAL.1,        Critical),
    ("too_cold_zone_1",    "temperature", "T_zone_1",                 Lower, CRITICAL.0,        Critical),
    ("too_cold_zone_2",    "temperature", "T_zone_2",                 Lower, CRITICAL.0,        Critical),
    ("too_cold_zone_3",    "temperature", "T_zone_3",                 Lower, CRITICAL.0,        Critical),
    ("site_power",         "power",       "total_power",              Upper, SITE_LIMIT,        Warning),
];

fn constraints() -> Vec<ConstraintSpec> {
    CONSTRAINTS.into_iter().map(constraint).collect()
}

/// Normalised safe fallback: 0.75 kW of heating per zone in winter (cooling in summer), about the
/// mean load of a zone, so the building drifts neither towards 12 nor towards 30 degC.
const SAFE_LEVEL: f64 = 0.3;

fn spec(horizon: u32, c: &Climate, bounds: (f64, f64), summer: bool) -> EnvSpec {
    let p = |name, description| Variable::new(name, description, "kW", -P_MAX, P_MAX);
    let safe = if summer { -SAFE_LEVEL } else { SAFE_LEVEL };
    EnvSpec {
        id: ID,
        description: "Three-zone office floor: heat or cool each zone to keep occupants comfortable at the least energy cost",
        observations: observations(c, bounds),
        actions: vec![
            p("P_zone_1", "heating (+) / cooling (-) power, zone 1"),
            p("P_zone_2", "heating (+) / cooling (-) power, zone 2"),
            p("P_zone_3", "heating (+) / cooling (-) power, zone 3"),
        ],
        signals: signals(c, bounds),
        dt: DT_H * 60.0,
        dt_unit: "min",
        horizon,
        constraints: constraints(),
        safe_action: vec![safe; ZONES],
        parameters: vec![],
        source: "Two-state zone model (Bacher & Madsen 2011) with ISO 13790:2008 and ASHRAE Fundamentals (2017) parameters",
    }
}

impl ProcessModel for Hvac {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn state_len(&self) -> usize {
        STATE_LEN
    }

    fn reset(&self, state: &mut [f64], rng: &mut Rng) {
        state.fill(0.0);
        for i in 0..ZONES {
            let spread = if self.x0_spread > 0.0 {
                rng.uniform_in(-self.x0_spread, self.x0_spread)
            } else {
                0.0
            };
            state[TA + i] = T_INIT + spread;
            state[TM + i] = T_INIT + spread;
        }
        self.measure(state, rng);
    }

    fn step(&self, state: &mut [f64], action: &[f64], _t: u32, rng: &mut Rng) -> f64 {
        let k = Self::clock(state);
        let exo = self.exogenous(k);
        let mut p = [0.0; ZONES];
        for (q, &a) in p.iter_mut().zip(action) {
            *q = available(a, exo.t_out);
        }
        let b = forcing(&p, &exo);
        let mut x = [0.0; N];
        for (i, xi) in x.iter_mut().enumerate() {
            *xi = (0..N)
                .map(|j| self.phi[i][j] * state[j] + self.gamma[i][j] * b[j])
                .sum();
        }
        state[..N].copy_from_slice(&x);
        state[P..P + ZONES].copy_from_slice(&p);
        state[K] = (k + 1) as f64;
        self.measure(state, rng);
        let occupied = self.exogenous(k + 1).occupied;
        let discomfort: f64 = x[..ZONES]
            .iter()
            .map(|&t| comfort_deviation(t, occupied).powi(2))
            .sum();
        if occupied {
            state[OCCUPIED_STEPS] += 1.0;
            let comfortable = x[..ZONES]
                .iter()
                .all(|&t| comfort_deviation(t, true) <= COMFORT_TOLERANCE);
            state[COMFORT_STEPS] += f64::from(u8::from(comfortable));
        }
        -(ENERGY_WEIGHT * energy_cost(&p, exo.price) + COMFORT_WEIGHT * discomfort)
    }

    fn observe(&self, state: &[f64], _t: u32, obs: &mut [f32]) {
        let exo = self.exogenous(Self::clock(state));
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let values = [
            state[MEAS],
            state[MEAS + 1],
            state[MEAS + 2],
            exo.t_out,
            exo.solar,
            flag(exo.occupied),
            exo.price,
            exo.hour,
            flag(exo.workday),
        ];
        for (o, v) in obs.iter_mut().zip(values) {
            *o = v as f32;
        }
    }

    fn signals(&self, state: &[f64], out: &mut [f64]) {
        let exo = self.exogenous(Self::clock(state));
        out[..N].copy_from_slice(&state[..N]);
        for i in 0..ZONES {
            out[N + i] = comfort_deviation(state[TA + i], exo.occupied);
        }
        let p = &state[P..P + ZONES];
        out[N + ZONES] = p.iter().map(|q| q.abs()).sum();
        out[N + ZONES + 1..N + 2 * ZONES + 1].copy_from_slice(p);
        out[N + 2 * ZONES + 1] = exo.t_out;
    }

    fn success(&self) -> Option<&Criterion> {
        Some(&SUCCESS)
    }

    fn succeeded(&self, state: &[f64], _t: u32) -> bool {
        state[COMFORT_STEPS] >= SUCCESS_COMFORT_SHARE * state[OCCUPIED_STEPS]
    }
}

#[cfg(test)]
#[path = "hvac_success_tests.rs"]
mod success_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs::ConfigValue;

    fn building(options: &[(&str, ConfigValue)]) -> Hvac {
        let mut c: Config = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Hvac::new(&mut c).expect("valid config")
    }

    /// A constant-weather building at 0 degC outdoors: no swing, no sun, no internal gains.
    fn still() -> Hvac {
        building(&[
            ("outdoor_mean", ConfigValue::Number(0.0)),
            ("outdoor_amplitude", ConfigValue::Number(0.0)),
            ("solar_peak", ConfigValue::Number(0.0)),
            ("internal_gains", ConfigValue::Number(0.0)),
        ])
    }

    fn settle(hvac: &Hvac, p: [f64; ZONES], steps: u32) -> Vec<f64> {
        let mut rng = Rng::from_seed(1);
        let mut s = vec![0.0; STATE_LEN];
        hvac.reset(&mut s, &mut rng);
        for t in 0..steps {
            hvac.step(&mut s, &p, t, &mut rng);
        }
        s
    }

    #[test]
    fn steady_state_of_uniform_heating_is_the_hand_formula() {
        // Every zone heated alike: no heat crosses the partitions, and each zone's mass sits
        // between air and outdoors, so Ta - To = P (Rao || (Ram + Rmo)) and
        // Tm = To + (Ta - To) Rmo / (Ram + Rmo).
        let s = settle(&still(), [1.0; ZONES], 96 * 30);
        let r = 1.0 / (1.0 / R_AIR_OUT + 1.0 / (R_AIR_MASS + R_MASS_OUT));
        for i in 0..ZONES {
            assert!(
                (s[TA + i] - r).abs() < 1e-6,
                "zone {i}: {} vs {r}",
                s[TA + i]
            );
            let tm = r * R_MASS_OUT / (R_AIR_MASS + R_MASS_OUT);
            assert!(
                (s[TM + i] - tm).abs() < 1e-6,
                "mass {i}: {} vs {tm}",
                s[TM + i]
            );
        }
        assert!((r - 15.97).abs() < 0.01, "{r}");
    }

    #[test]
    fn steady_state_of_one_heated_zone_solves_the_three_zone_balance() {
        // Zone 1 alone heated with P, To = 0. With G = 1/Rao + 1/(Ram + Rmo) per zone and
        // g = 1/Rzz between neighbours, the air temperatures solve
        //   (G + g) T1 - g T2 = P,  -g T1 + (G + 2g) T2 - g T3 = 0,  -g T2 + (G + g) T3 = 0,
        // so T3 = g T2 / (G + g), T1 = ((G + 2g) T2 - g T3) / g, and T2 follows from the first.
        let p = 2.0;
        let s = settle(&still(), [p, 0.0, 0.0], 96 * 30);
        let big = 1.0 / R_AIR_OUT + 1.0 / (R_AIR_MASS + R_MASS_OUT);
        let g = 1.0 / R_ZONE;
        let t3_per_t2 = g / (big + g);
        let t1_per_t2 = ((big + 2.0 * g) - g * t3_per_t2) / g;
        let t2 = p / ((big + g) * t1_per_t2 - g);
        let want = [t1_per_t2 * t2, t2, t3_per_t2 * t2];
        for i in 0..ZONES {
            assert!(
                (s[TA + i] - want[i]).abs() < 1e-6,
                "zone {i}: {} vs {}",
                s[TA + i],
                want[i]
            );
        }
        assert!(want[0] > want[1] && want[1] > want[2] && want[2] > 0.0);
    }

    #[test]
    fn exact_discretisation_matches_a_fine_rk4() {
        let a = system_matrix();
        let (phi, gamma) = discretise(&a, DT_H);
        let h = building(&[]);
        let f = |x: &[f64; N], b: &[f64; N]| {
            let mut d = *b;
            for i in 0..N {
                d[i] += (0..N).map(|j| a[i][j] * x[j]).sum::<f64>();
            }
            d
        };
        let (mut x, mut y) = ([20.0; N], [20.0; N]);
        let mut worst = 0.0f64;
        for k in 0..96u64 {
            let p = [2.5 * ((k % 5) as f64 - 2.0) / 2.0, 1.0, -0.5];
            let b = forcing(&p, &h.exogenous(k));
            let mut nx = [0.0; N];
            for i in 0..N {
                nx[i] = (0..N).map(|j| phi[i][j] * x[j] + gamma[i][j] * b[j]).sum();
            }
            x = nx;
            y = crate::integrate::rk4_fixed(&|x: &[f64; N]| f(x, &b), y, DT_H, 2000);
            for i in 0..N {
                worst = worst.max((x[i] - y[i]).abs());
            }
        }
        assert!(worst < 1e-10, "worst {worst:e}");
    }

    #[test]
    fn matrix_exponential_of_a_diagonal_and_a_rotation() {
        let d = [[-1.0, 0.0], [0.0, 2.0]];
        let e = expm(&d);
        assert!((e[0][0] - (-1f64).exp()).abs() < 1e-15);
        assert!((e[1][1] - 2f64.exp()).abs() < 1e-14);
        let r = expm(&[[0.0, 3.0], [-3.0, 0.0]]);
        assert!((r[0][0] - 3f64.cos()).abs() < 1e-14 && (r[0][1] - 3f64.sin()).abs() < 1e-14);
    }

    #[test]
    fn weather_occupancy_and_tariff_follow_the_calendar() {
        let h = building(&[]);
        let at = |day: u64, hour: f64| h.exogenous(day * 96 + (hour / DT_H) as u64);
        assert!((at(0, 3.0).t_out - (WINTER.mean - WINTER.amplitude)).abs() < 1e-12);
        assert!((at(0, 15.0).t_out - (WINTER.mean + WINTER.amplitude)).abs() < 1e-12);
        assert!((at(0, 12.0).solar - WINTER.solar_peak).abs() < 1e-12);
        assert_eq!(at(0, 7.0).solar, 0.0);
        assert!(at(0, 8.0).occupied && at(4, 17.75).occupied);
        assert!(!at(0, 18.0).occupied && !at(5, 12.0).occupied && !at(6, 12.0).occupied);
        assert!(at(7, 12.0).occupied, "day 7 is Monday again");
        assert_eq!(at(0, 19.0).price, PRICE_PEAK);
        assert_eq!(at(0, 20.0).price, PRICE_OFF_PEAK);
        assert_eq!(at(6, 12.0).price, PRICE_OFF_PEAK);
    }

    #[test]
    fn extreme_actions_stay_inside_the_declared_bounds() {
        for (summer, gains, sun, mean) in [
            (false, 1.0, 0.4, 5.0),
            (true, 1.0, 0.5, 22.0),
            (true, 3.0, 1.2, 22.0),
            (false, 1.0, 0.4, 13.5),
            (false, 2.0, 1.0, -20.0),
        ] {
            let h = building(&[
                ("summer", ConfigValue::Bool(summer)),
                ("outdoor_mean", ConfigValue::Number(mean)),
                ("internal_gains", ConfigValue::Number(gains)),
                ("solar_peak", ConfigValue::Number(sun)),
                ("noise", ConfigValue::Number(1.0)),
                ("x0_spread", ConfigValue::Number(5.0)),
                ("days", ConfigValue::Number(28.0)),
            ]);
            let sp = h.spec();
            let mut rng = Rng::from_seed(5);
            let mut s = vec![0.0; STATE_LEN];
            let mut obs = vec![0.0f32; sp.obs_dim()];
            let mut sig = vec![0.0; sp.signals.len()];
            h.reset(&mut s, &mut rng);
            for t in 0..sp.horizon {
                let p = if (t / 700) % 2 == 0 { P_MAX } else { -P_MAX };
                let r = h.step(&mut s, &[p; ZONES], t, &mut rng);
                assert!(r.is_finite() && r <= 0.0);
                h.observe(&s, t + 1, &mut obs);
                h.signals(&s, &mut sig);
                for (o, v) in obs.iter().zip(&sp.observations) {
                    let o = f64::from(*o);
                    assert!(o >= v.low - 1e-6 && o <= v.high + 1e-6, "{} = {o}", v.name);
                }
                for (x, v) in sig.iter().zip(&sp.signals) {
                    assert!(
                        *x >= v.low - 1e-9 && *x <= v.high + 1e-9,
                        "{} = {x}",
                        v.name
                    );
                }
            }
        }
    }

    #[test]
    fn reward_prices_energy_and_discomfort() {
        // 3 kW of heating for 15 min at the peak price: 3/3.5 kWh_e x 0.25 h x 0.30 EUR.
        let cost = energy_cost(&[1.0, 1.0, 1.0], PRICE_PEAK);
        assert!((cost - 3.0 / COP_HEAT * 0.25 * 0.30).abs() < 1e-15);
        assert!((energy_cost(&[-3.0, 0.0, 0.0], 1.0) - 0.25).abs() < 1e-15);
        assert_eq!(comfort_deviation(19.0, true), 1.0);
        assert_eq!(comfort_deviation(25.5, true), 1.5);
        assert_eq!(comfort_deviation(22.0, true), 0.0);
        assert_eq!(comfort_deviation(5.0, false), 0.0);
    }

    #[test]
    fn plant_heats_below_15_and_cools_above_12_degc() {
        assert_eq!(available(2.0, 14.9), 2.0);
        assert_eq!(available(2.0, 15.0), 0.0);
        assert_eq!(available(-2.0, 12.0), 0.0);
        assert_eq!(available(-2.0, 12.1), -2.0);
        assert_eq!(available(-1.0, 13.0), -1.0);
        assert_eq!(available(1.0, 13.0), 1.0);
        // Winter: full cooling is refused, so it neither cools nor costs anything.
        let h = building(&[("x0_spread", ConfigValue::Number(0.0))]);
        let mut rng = Rng::from_seed(0);
        let (mut a, mut b) = (vec![0.0; STATE_LEN], vec![0.0; STATE_LEN]);
        h.reset(&mut a, &mut rng);
        h.reset(&mut b, &mut rng);
        let ra = h.step(&mut a, &[-P_MAX; ZONES], 0, &mut rng);
        let rb = h.step(&mut b, &[0.0; ZONES], 0, &mut rng);
        assert_eq!(a, b);
        assert_eq!(ra, rb);
    }

    #[test]
    fn spec_is_consistent() {
        for summer in [false, true] {
            let h = building(&[("summer", ConfigValue::Bool(summer))]);
            let sp = h.spec();
            for c in &sp.constraints {
                assert!(sp.signal_index(c.signal).is_some(), "{}", c.name);
            }
            assert_eq!(sp.safe_action.len(), sp.act_dim());
            assert_eq!(sp.horizon, 96);
            let total: f64 = sp.safe_action.iter().map(|a| a.abs() * P_MAX).sum();
            assert!(total <= SITE_LIMIT);
        }
        let week = building(&[("days", ConfigValue::Number(7.0))]);
        assert_eq!(week.spec().horizon, 672);
    }

    #[test]
    fn unknown_and_bad_options_are_named() {
        let mut c = vec![("sumer".to_string(), ConfigValue::Bool(true))];
        assert!(Hvac::new(&mut c).unwrap_err().to_string().contains("sumer"));
        for (k, v) in [
            ("days", ConfigValue::Number(1.5)),
            ("summer", ConfigValue::Number(1.0)),
            ("outdoor_mean", ConfigValue::Number(80.0)),
            ("noise", ConfigValue::Number(-1.0)),
            ("internal_gains", ConfigValue::Bool(true)),
        ] {
            let mut c = vec![(k.to_string(), v)];
            assert!(Hvac::new(&mut c).unwrap_err().to_string().contains(k));
        }
    }
}
