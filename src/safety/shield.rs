//! The safety shield: corrects an action before it reaches the process.
//!
//! `clip` enforces actuator ramp limits (the rate constraints on action signals). `predictive`
//! also simulates ahead with the env's own model: one step under the agent's action, then
//! [`LOOKAHEAD`]` - 1` steps under the env's declared safe fallback action. If a critical limit is
//! breached anywhere on that path, the state the agent's action leads to cannot be recovered by the
//! fallback, so the fallback is applied now instead. (A single step of look-ahead is not enough for
//! processes with momentum: the reactor's runaway is decided several steps before T crosses 350 K.)

use super::checker::Checker;
use crate::envs::ProcessModel;
use crate::errors::CoreError;
use crate::rng::Rng;

/// Steps simulated by the predictive shield: the agent's action, then the fallback.
pub const LOOKAHEAD: u32 = 8;

/// Which shield runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shield {
    /// No correction.
    #[default]
    Off,
    /// Ramp limits.
    Clip,
    /// Ramp limits plus a one-step look-ahead against critical limits.
    Predictive,
}

impl Shield {
    /// Parses `None`/`"off"`, `"clip"` or `"predictive"`.
    pub fn parse(s: Option<&str>) -> Result<Self, CoreError> {
        match s {
            None | Some("off") | Some("none") => Ok(Shield::Off),
            Some("clip") => Ok(Shield::Clip),
            Some("predictive") => Ok(Shield::Predictive),
            Some(other) => Err(CoreError::config(
                "shield",
                format!("must be None, 'clip' or 'predictive', got {other:?}"),
            )),
        }
    }

    /// Label.
    pub fn as_str(self) -> &'static str {
        match self {
            Shield::Off => "off",
            Shield::Clip => "clip",
            Shield::Predictive => "predictive",
        }
    }
}

/// Everything the shield reads about one env.
pub struct View<'a> {
    /// The model.
    pub model: &'a dyn ProcessModel,
    /// The env's state before the step.
    pub state: &'a [f64],
    /// The env's current signals.
    pub signals: &'a [f64],
    /// Episode step about to be taken.
    pub t: u32,
    /// The env's random stream (read only: the look-ahead draws from a stream derived from it).
    pub rng: &'a Rng,
}

/// Corrects the physical action `phys` in place; returns whether it changed.
pub fn apply(mode: Shield, checker: &Checker, view: &View<'_>, phys: &mut [f64]) -> bool {
    if mode == Shield::Off {
        return false;
    }
    let mut changed = false;
    for r in &checker.ramps {
        let last = view.signals[r.signal];
        let v = phys[r.action].clamp(last - r.limit, last + r.limit);
        if v != phys[r.action] {
            phys[r.action] = v;
            changed = true;
        }
    }
    if mode == Shield::Predictive && !checker.critical.is_empty() && breaches(checker, view, phys) {
        let spec = view.model.spec();
        let mut safe = vec![0.0; phys.len()];
        spec.to_physical(&spec.safe_action, &mut safe);
        if safe != phys {
            phys.copy_from_slice(&safe);
            changed = true;
        }
    }
    changed
}

/// Does the path (one step under `phys`, then the fallback) breach a critical limit?
fn breaches(checker: &Checker, view: &View<'_>, phys: &[f64]) -> bool {
    let spec = view.model.spec();
    let mut state = view.state.to_vec();
    let mut prev = view.signals.to_vec();
    let mut signals = vec![0.0; prev.len()];
    let mut safe = vec![0.0; phys.len()];
    spec.to_physical(&spec.safe_action, &mut safe);
    // A stream of its own: the look-ahead must neither advance the env's stream nor know its future noise.
    let mut rng = Rng::from_seed(view.rng.state()[0] ^ 0x5AFE_5EED_0000_0001);
    for h in 0..LOOKAHEAD {
        let t = view.t + h;
        if t >= spec.horizon {
            break;
        }
        view.model
            .step(&mut state, if h == 0 { phys } else { &safe }, t, &mut rng);
        view.model.signals(&state, &mut signals);
        let breach = checker.critical.iter().any(|&k| {
            let c = &checker.set.constraints[k];
            let m = c.margin(c.value(&signals, &prev));
            m.is_nan() || m < 0.0
        });
        if breach {
            return true;
        }
        std::mem::swap(&mut prev, &mut signals);
    }
    false
}
