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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::constraints::{Constraint, ConstraintSet, Kind};
    use crate::spec::{EnvSpec, Severity, Variable};

    /// A tank whose inflow `valve` accelerates the level: `rate += valve; level += rate`.
    /// State `[level, rate, valve]`; signals `[level, valve]`; the fallback drains (valve -1).
    struct Tank {
        spec: EnvSpec,
    }

    const HORIZON: u32 = 4;

    fn tank(horizon: u32) -> Tank {
        let valve = Variable::new("valve", "inflow", "1", -1.0, 1.0);
        Tank {
            spec: EnvSpec {
                id: "Tank-v0",
                description: "test tank",
                observations: vec![Variable::new("level", "level", "m", -100.0, 100.0)],
                actions: vec![valve.clone()],
                signals: vec![Variable::new("level", "level", "m", -100.0, 100.0), valve],
                dt: 1.0,
                dt_unit: "s",
                horizon,
                constraints: Vec::new(),
                safe_action: vec![-1.0],
                parameters: vec![],
                source: "test",
            },
        }
    }

    impl ProcessModel for Tank {
        fn spec(&self) -> &EnvSpec {
            &self.spec
        }
        fn state_len(&self) -> usize {
            3
        }
        fn reset(&self, state: &mut [f64], _rng: &mut Rng) {
            state.fill(0.0);
        }
        fn step(&self, state: &mut [f64], action: &[f64], _t: u32, _rng: &mut Rng) -> f64 {
            state[1] += action[0];
            state[0] += state[1];
            state[2] = action[0];
            0.0
        }
        fn observe(&self, state: &[f64], _t: u32, obs: &mut [f32]) {
            obs[0] = state[0] as f32;
        }
        fn signals(&self, state: &[f64], out: &mut [f64]) {
            out[0] = state[0];
            out[1] = state[2];
        }
    }

    /// A checker with a critical upper limit on the level and, optionally, a ramp on the valve.
    fn checker(model: &Tank, level_limit: f64, ramp: Option<f64>) -> Checker {
        let mut constraints = vec![Constraint::new(
            "level_high",
            "level",
            Kind::Upper {
                signal: 0,
                limit: level_limit,
            },
            Severity::Critical,
        )];
        if let Some(limit) = ramp {
            constraints.push(Constraint::new(
                "valve_ramp",
                "actuator_rate",
                Kind::Rate { signal: 1, limit },
                Severity::Warning,
            ));
        }
        Checker::new(ConstraintSet { constraints }, &model.spec)
    }

    /// Runs the shield on `action` from `state` at step `t`; returns (changed, corrected action).
    fn shield(
        mode: Shield,
        c: &Checker,
        m: &Tank,
        state: [f64; 3],
        t: u32,
        action: f64,
    ) -> (bool, f64) {
        let mut signals = [0.0; 2];
        m.signals(&state, &mut signals);
        let rng = Rng::from_seed(7);
        let view = View {
            model: m,
            state: &state,
            signals: &signals,
            t,
            rng: &rng,
        };
        let mut phys = [action];
        let changed = apply(mode, c, &view, &mut phys);
        (changed, phys[0])
    }

    #[test]
    fn modes_parse_and_name_themselves() {
        for (text, mode) in [
            (None, Shield::Off),
            (Some("off"), Shield::Off),
            (Some("none"), Shield::Off),
            (Some("clip"), Shield::Clip),
            (Some("predictive"), Shield::Predictive),
        ] {
            assert_eq!(Shield::parse(text).unwrap(), mode, "{text:?}");
        }
        assert!(Shield::parse(Some("Clip")).is_err());
        assert_eq!(
            [Shield::Off, Shield::Clip, Shield::Predictive].map(Shield::as_str),
            ["off", "clip", "predictive"]
        );
    }

    #[test]
    fn clip_enforces_the_ramp_both_ways_and_leaves_small_moves_alone() {
        let m = tank(100);
        let c = checker(&m, 1e9, Some(0.5));
        assert_eq!(c.ramps.len(), 1);
        // Last valve 0.25, ramp 0.5: the valve may go anywhere in [-0.25, 0.75].
        let at = [0.0, 0.0, 0.25];
        assert_eq!(shield(Shield::Clip, &c, &m, at, 0, 1.0), (true, 0.75));
        assert_eq!(shield(Shield::Clip, &c, &m, at, 0, -1.0), (true, -0.25));
        assert_eq!(shield(Shield::Clip, &c, &m, at, 0, 0.5), (false, 0.5));
        assert_eq!(shield(Shield::Clip, &c, &m, at, 0, -0.25), (false, -0.25));
        assert_eq!(shield(Shield::Off, &c, &m, at, 0, 1.0), (false, 1.0));
    }

    #[test]
    fn predictive_replaces_an_action_that_leads_beyond_a_critical_limit() {
        let m = tank(100);
        let c = checker(&m, 1.0, None);
        // rate 0.5 + valve 1 takes the level to 1.5 at once: the fallback (-1) replaces it.
        assert_eq!(
            shield(Shield::Predictive, &c, &m, [0.0, 0.5, 0.0], 0, 1.0),
            (true, -1.0)
        );
        // The clip shield does not look ahead.
        assert_eq!(
            shield(Shield::Clip, &c, &m, [0.0, 0.5, 0.0], 0, 1.0),
            (false, 1.0)
        );
        // Reaching the limit exactly is not beyond it: level 1, then 1, 0, ... under the fallback.
        assert_eq!(
            shield(Shield::Predictive, &c, &m, [0.0, 0.0, 0.0], 0, 1.0),
            (false, 1.0)
        );
        // The fallback itself is never "corrected".
        assert_eq!(
            shield(Shield::Predictive, &c, &m, [0.0, 0.5, 0.0], 0, -1.0),
            (false, -1.0)
        );
    }

    #[test]
    fn the_look_ahead_follows_the_fallback_after_the_first_step() {
        let m = tank(100);
        let c = checker(&m, 2.5, None);
        // One step of valve 1 from rest, then draining: the level peaks at 1. Had the agent's action
        // been repeated, the level would pass 2.5 within the look-ahead.
        assert_eq!(
            shield(Shield::Predictive, &c, &m, [0.0, 0.0, 0.0], 0, 1.0),
            (false, 1.0)
        );
        // With momentum (rate 1) the level is 2 after the step and 3 a step later despite the fallback:
        // beyond the limit one step after the action, so the action is replaced now...
        assert_eq!(
            shield(Shield::Predictive, &c, &m, [0.0, 1.0, 0.0], 0, 1.0),
            (true, -1.0)
        );
    }

    #[test]
    fn the_look_ahead_stops_at_the_end_of_the_episode() {
        let m = tank(HORIZON);
        let c = checker(&m, 2.5, None);
        // ...but not on the episode's last step, when there is no step after it.
        let last = HORIZON - 1;
        assert_eq!(
            shield(Shield::Predictive, &c, &m, [0.0, 1.0, 0.0], last, 1.0),
            (false, 1.0)
        );
        assert_eq!(
            shield(Shield::Predictive, &c, &m, [0.0, 1.0, 0.0], last - 1, 1.0),
            (true, -1.0)
        );
    }
}
