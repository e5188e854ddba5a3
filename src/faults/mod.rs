//! Fault injection: sensor, process and actuator faults on a schedule, for drift detection and
//! fault-tolerant control to have something to find.
//!
//! A [`FaultSet`] is built once per batch from configuration ([`config`]) and applied by the
//! batch's step kernel on plain slices:
//!
//! * sensor faults ([`FaultSet::sensors`]) corrupt the observation the policy sees, after the model
//!   writes it and before it is clamped to the observation space; the safety layer keeps checking
//!   the process's true signals (an independent safety system with its own sensors);
//! * actuator faults ([`FaultSet::actuators`]) change the physical action after the shield, so
//!   `info["action"]` shows what the actuator really did;
//! * parameter drift ([`FaultSet::params`]) writes the env's parameter values for
//!   [`ProcessModel::step_with`](crate::envs::ProcessModel::step_with).
//!
//! Every env keeps its fault memory in a block after its signals in the batch's state buffer
//! ([`FaultSet::block_len`] values): steps taken since the env was made (the `lifetime` clock), the
//! key of its fault random stream, the actuator positions last applied, which faults have started
//! (for the audit trail) and what frozen sensors and stuck actuators hold. So snapshots, pickles and
//! copies carry it, and a batch without faults has no block at all.
//!
//! Randomness (sensor noise, dropout) comes from a counter-based stream: each draw is seeded from
//! the env's episode key, the fault and the clock. The key is derived at reset from the env's
//! random stream without drawing from it, so faults on or off never change the process's own
//! random stream, and draws never depend on threads, lanes or the batch size.

pub mod config;
#[cfg(test)]
mod tests;

use crate::rng::Rng;
use crate::spec::EnvSpec;

/// What a fault does, with its target's index in the spec's list for its kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// Adds `value` (the variable's unit) to observation `obs`, ramped in.
    SensorBias { obs: usize, value: f64 },
    /// Adds Gaussian noise of standard deviation `std` (ramped in) to observation `obs`.
    SensorNoise { obs: usize, std: f64 },
    /// Holds observation `obs` at its reading when the fault started.
    SensorFreeze { obs: usize },
    /// With probability `p` per step, observation `obs` reads the bottom of its range.
    SensorDropout { obs: usize, p: f64 },
    /// Multiplies parameter `param` by a factor ramping from 1 to `factor`.
    ParameterDrift { param: usize, factor: f64 },
    /// Holds action component `action` at `value` (physical), or where it was when the fault
    /// started.
    ActuatorStuck { action: usize, value: Option<f64> },
    /// Limits the change of action component `action` to `rate` (physical units) per step.
    ActuatorRateLimit { action: usize, rate: f64 },
}

/// The fault kinds, as configuration names them.
pub const KINDS: [&str; 7] = [
    "sensor_bias",
    "sensor_noise",
    "sensor_freeze",
    "sensor_dropout",
    "parameter_drift",
    "actuator_stuck",
    "actuator_rate_limit",
];

impl Effect {
    /// The kind's name (one of [`KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Effect::SensorBias { .. } => KINDS[0],
            Effect::SensorNoise { .. } => KINDS[1],
            Effect::SensorFreeze { .. } => KINDS[2],
            Effect::SensorDropout { .. } => KINDS[3],
            Effect::ParameterDrift { .. } => KINDS[4],
            Effect::ActuatorStuck { .. } => KINDS[5],
            Effect::ActuatorRateLimit { .. } => KINDS[6],
        }
    }

    /// What the target is: `observation`, `parameter` or `action`.
    pub fn target_type(&self) -> &'static str {
        match self {
            Effect::SensorBias { .. }
            | Effect::SensorNoise { .. }
            | Effect::SensorFreeze { .. }
            | Effect::SensorDropout { .. } => "observation",
            Effect::ParameterDrift { .. } => "parameter",
            Effect::ActuatorStuck { .. } | Effect::ActuatorRateLimit { .. } => "action",
        }
    }
}

/// Which steps a fault's schedule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Steps since the episode's reset: the fault comes back every episode, and an env's
    /// trajectory depends only on its seed and its actions.
    Episode,
    /// Steps the env has taken since it was made, across episodes (a long-running fleet).
    Lifetime,
}

impl Clock {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Clock::Episode => "episode",
            Clock::Lifetime => "lifetime",
        }
    }
}

/// When a fault is active and how it ramps in, on its clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// The first clock value at which the fault is active.
    pub start: u64,
    /// The first clock value at which it is over (`None`: never).
    pub end: Option<u64>,
    /// Steps over which the magnitude rises linearly from 0 (at `start`) to full (at
    /// `start + ramp`); 0: full at once.
    pub ramp: u64,
    /// The clock counted.
    pub clock: Clock,
}

impl Schedule {
    /// Whether the fault is active at clock value `c`.
    #[inline]
    pub fn active(&self, c: u64) -> bool {
        c >= self.start && self.end.is_none_or(|e| c < e)
    }

    /// The share of the full magnitude at clock value `c`: 0 when inactive, rising linearly over
    /// the ramp, 1 after it.
    #[inline]
    pub fn level(&self, c: u64) -> f64 {
        if !self.active(c) {
            0.0
        } else if self.ramp == 0 || c - self.start >= self.ramp {
            1.0
        } else {
            (c - self.start) as f64 / self.ramp as f64
        }
    }
}

/// One configured fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Its name (the `fault` label of `faults_active`, and the audit trail's).
    pub name: String,
    /// The target's name in the spec.
    pub target: &'static str,
    /// What it does.
    pub effect: Effect,
    /// When.
    pub schedule: Schedule,
}

// The fault block of an env, after its signals: offsets of its parts.
const LIFETIME: usize = 0; // steps taken since the env was made
const KEY: usize = 1; // the episode key of the fault stream, two 32-bit halves (1, 2)
const PREV: usize = 3; // the physical action last applied, act_dim values

/// A batch's faults and the layout of their memory.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSet {
    faults: Vec<Fault>,
    /// Mid-range physical action per component (an episode's actuators start there).
    act_mid: Vec<f64>,
    /// Observation range bottoms (what a dropped reading reads).
    obs_low: Vec<f64>,
    /// Nominal parameter values, when some fault drifts a parameter (else empty).
    nominal: Vec<f64>,
    flags: usize,
    held: usize,
    params: usize,
    len: usize,
    any_sensor: bool,
    any_actuator: bool,
}

/// A fault that started in one env (for the audit trail).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Started {
    /// Env index within the batch.
    pub env: usize,
    /// Its episode number.
    pub episode: u64,
    /// Its episode step (steps taken in the episode).
    pub step: u32,
    /// The fault's index in the set.
    pub fault: usize,
}

impl FaultSet {
    /// A set of `faults` for an env of `spec` (checked by [`config::build`]).
    pub fn new(faults: Vec<Fault>, spec: &EnvSpec) -> Self {
        let ad = spec.act_dim();
        let n = faults.len();
        let drift = faults
            .iter()
            .any(|f| matches!(f.effect, Effect::ParameterDrift { .. }));
        let nominal: Vec<f64> = if drift {
            spec.parameters.iter().map(|p| p.nominal).collect()
        } else {
            Vec::new()
        };
        let flags = PREV + ad;
        let held = flags + n;
        let params = held + n;
        let len = if n == 0 { 0 } else { params + nominal.len() };
        let is = |t: &str| faults.iter().any(|f| f.effect.target_type() == t);
        Self {
            act_mid: spec
                .actions
                .iter()
                .map(|v| 0.5 * (v.low + v.high))
                .collect(),
            obs_low: spec.observations.iter().map(|v| v.low).collect(),
            any_sensor: is("observation"),
            any_actuator: is("action"),
            faults,
            nominal,
            flags,
            held,
            params,
            len,
        }
    }

    /// No faults.
    pub fn none() -> Self {
        Self {
            faults: Vec::new(),
            act_mid: Vec::new(),
            obs_low: Vec::new(),
            nominal: Vec::new(),
            flags: 0,
            held: 0,
            params: 0,
            len: 0,
            any_sensor: false,
            any_actuator: false,
        }
    }

    /// The faults, in configuration order (the order they are applied in).
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// Whether there are none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// Values of fault memory per env (0 without faults).
    pub fn block_len(&self) -> usize {
        self.len
    }

    /// Whether some fault drifts a parameter (the batch then steps with
    /// [`ProcessModel::step_with`](crate::envs::ProcessModel::step_with)).
    #[inline]
    pub fn drifts(&self) -> bool {
        !self.nominal.is_empty()
    }

    /// The clock value of `fault` for an env at episode step `elapsed` with memory `mem`.
    #[inline]
    fn clock(fault: &Fault, mem: &[f64], elapsed: u32) -> u64 {
        match fault.schedule.clock {
            Clock::Episode => u64::from(elapsed),
            Clock::Lifetime => mem[LIFETIME] as u64,
        }
    }

    /// A new episode: the fault stream's key from the env's random stream `rng` (read, not drawn
    /// from) and the actuators at mid-range. The lifetime clock and what lifetime faults hold go on.
    #[inline]
    pub fn reset(&self, mem: &mut [f64], rng: &Rng) {
        if !self.is_empty() {
            self.reset_faulted(mem, rng);
        }
    }

    fn reset_faulted(&self, mem: &mut [f64], rng: &Rng) {
        let key = rng
            .state()
            .iter()
            .fold(0x6661_756c_7473_u64, |k, &w| mix(k ^ w));
        mem[KEY] = (key >> 32) as f64;
        mem[KEY + 1] = (key & 0xffff_ffff) as f64;
        mem[PREV..PREV + self.act_mid.len()].copy_from_slice(&self.act_mid);
    }

    /// Counts one step taken by the env (the lifetime clock).
    #[inline]
    pub fn count_step(&self, mem: &mut [f64]) {
        if !self.is_empty() {
            mem[LIFETIME] += 1.0;
        }
    }

    /// The random stream of fault `i`'s draw at clock value `c`.
    fn stream(mem: &[f64], i: usize, c: u64) -> Rng {
        let key = ((mem[KEY] as u64) << 32) | (mem[KEY + 1] as u64 & 0xffff_ffff);
        Rng::from_seed(mix(key ^ mix(((i as u64) << 48) ^ c)))
    }

    /// Applies the sensor faults to `obs`, the observation of an env at episode step `elapsed`.
    #[inline]
    pub fn sensors(&self, mem: &mut [f64], obs: &mut [f32], elapsed: u32) {
        if self.any_sensor {
            self.sensors_faulted(mem, obs, elapsed);
        }
    }

    fn sensors_faulted(&self, mem: &mut [f64], obs: &mut [f32], elapsed: u32) {
        for (i, f) in self.faults.iter().enumerate() {
            let c = Self::clock(f, mem, elapsed);
            if !f.schedule.active(c) {
                continue;
            }
            match f.effect {
                Effect::SensorBias { obs: j, value } => {
                    obs[j] = (f64::from(obs[j]) + value * f.schedule.level(c)) as f32;
                }
                Effect::SensorNoise { obs: j, std } => {
                    let z = Self::stream(mem, i, c).normal();
                    obs[j] = (f64::from(obs[j]) + std * f.schedule.level(c) * z) as f32;
                }
                Effect::SensorFreeze { obs: j } => {
                    if c == f.schedule.start {
                        mem[self.held + i] = f64::from(obs[j]);
                    }
                    obs[j] = mem[self.held + i] as f32;
                }
                Effect::SensorDropout { obs: j, p } if Self::stream(mem, i, c).uniform() < p => {
                    obs[j] = self.obs_low[j] as f32;
                }
                _ => {}
            }
        }
    }

    /// Applies the actuator faults to `phys`, the physical action of an env about to take the step
    /// from episode step `elapsed`, and remembers it as the last applied.
    #[inline]
    pub fn actuators(&self, mem: &mut [f64], phys: &mut [f64], elapsed: u32) {
        if self.any_actuator {
            self.actuators_faulted(mem, phys, elapsed);
        }
    }

    fn actuators_faulted(&self, mem: &mut [f64], phys: &mut [f64], elapsed: u32) {
        for (i, f) in self.faults.iter().enumerate() {
            let c = Self::clock(f, mem, elapsed);
            match f.effect {
                Effect::ActuatorStuck { action: j, value } if f.schedule.active(c) => {
                    if c == f.schedule.start {
                        mem[self.held + i] = value.unwrap_or(mem[PREV + j]);
                    }
                    phys[j] = mem[self.held + i];
                }
                Effect::ActuatorRateLimit { action: j, rate } if f.schedule.active(c) => {
                    let prev = mem[PREV + j];
                    phys[j] = phys[j].clamp(prev - rate, prev + rate);
                }
                _ => {}
            }
        }
        mem[PREV..PREV + phys.len()].copy_from_slice(phys);
    }

    /// The env's parameter values for the step from episode step `elapsed` (nominal values times
    /// the drift factors in force), written into its memory.
    pub fn params<'m>(&self, mem: &'m mut [f64], elapsed: u32) -> &'m [f64] {
        let p = self.params;
        mem[p..p + self.nominal.len()].copy_from_slice(&self.nominal);
        for f in &self.faults {
            if let Effect::ParameterDrift { param, factor } = f.effect {
                let level = f.schedule.level(Self::clock(f, mem, elapsed));
                if level > 0.0 {
                    mem[p + param] *= 1.0 + (factor - 1.0) * level;
                }
            }
        }
        &mem[p..p + self.nominal.len()]
    }

    /// After a step or reset: notes in `mem` the faults that became active in env `env` (episode
    /// `episode`, at episode step `elapsed`), pushing each start to `started`, and adds the faults
    /// active now to `active` (one count per fault).
    pub fn track(
        &self,
        mem: &mut [f64],
        (env, episode, elapsed): (usize, u64, u32),
        started: &mut Vec<Started>,
        active: &mut [u64],
    ) {
        for (i, f) in self.faults.iter().enumerate() {
            let on = f.schedule.active(Self::clock(f, mem, elapsed));
            // An episode fault starts once per episode, a lifetime fault once.
            let mark = match f.schedule.clock {
                Clock::Episode => episode as f64,
                Clock::Lifetime => 1.0,
            };
            let flag = &mut mem[self.flags + i];
            if on && *flag != mark {
                *flag = mark;
                started.push(Started {
                    env,
                    episode,
                    step: elapsed,
                    fault: i,
                });
            }
            active[i] += u64::from(on);
        }
    }
}

/// SplitMix64's finaliser: a bijective 64-bit mix.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
