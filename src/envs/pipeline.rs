//! Pipeline-v0: flow control through a pipe with a transport delay (NeoRL-2's `Pipeline`).
//!
//! A port of `neorl2/envs/pipline.py` (Gao et al., "NeoRL-2: Near real-world benchmarks for offline
//! reinforcement learning with extended realistic scenarios", 2025; github.com/polixir/NeoRL2). Water
//! enters a 100 m channel through a gate and travels at a fixed 5 m/s, so the channel holds
//! 100 // 5 = 20 slugs of water, one per step. Each step, in the original's order:
//!
//! ```text
//! a      = clip(action, -1, 1)
//! target = choice({50, 80, 110, 140})  with probability 0.003, else unchanged
//! gate   = clip(gate + a, 0, 200)
//! pipe   = [gate] + pipe[:-1]              (20 slots; pipe[0] just entered)
//! flow   = pipe[19]                        (the downstream flow: the gate flow of 19 steps ago)
//! reward = ((200 - |flow - target|) * 0.01)^2 - 3
//! ```
//!
//! The episode starts with the whole channel at one flow drawn uniformly from [80, 120), zero past
//! actions, and a target drawn from the four values. The observation is the original's:
//! `[flow, target, 25 past downstream flows, 25 past actions]`, newest first. The state is kept in
//! `f64` (the original accumulates the gate flow in `float32`).

use super::success::Criterion;
use super::{reject_unknown, take_number, Config, ProcessModel};
use crate::errors::CoreError;
use crate::rng::Rng;
use crate::spec::{ConstraintKind, ConstraintSpec, EnvSpec, Severity, Variable};

/// Channel length [m] (NeoRL-2 `channel_length`).
pub const CHANNEL_LENGTH_M: f64 = 100.0;
/// Water velocity [m/s] (NeoRL-2 `pipe_velocity`).
pub const VELOCITY_M_S: f64 = 5.0;
/// Slots in the channel: `ceil(100 // 5)` in the original.
pub const DELAY: usize = (CHANNEL_LENGTH_M / VELOCITY_M_S) as usize;
/// Gate flow limit (NeoRL-2 `max_flow_rate`); the gate flow is clipped into `[0, MAX_FLOW]`.
pub const MAX_FLOW: f64 = 200.0;
/// Largest gate flow change per step (NeoRL-2's action box).
pub const MAX_ACTION: f64 = 1.0;
/// Targets the downstream flow switches among.
pub const TARGETS: [f64; 4] = [50.0, 80.0, 110.0, 140.0];
/// Probability per step that a new target is drawn (it may equal the old one, so the target
/// changes with probability 0.003 * 3/4 per step).
pub const SWITCH_PROB: f64 = 0.003;
/// Range of the initial channel flow (NeoRL-2 `uniform(80, 120)`).
pub const INIT_FLOW: (f64, f64) = (80.0, 120.0);
/// Past downstream flows and past actions in the observation (NeoRL-2 `history_*_fps`).
pub const HISTORY: usize = 25;
/// Default steps per episode (NeoRL-2 `max_episode_steps`).
pub const HORIZON: u32 = 1000;
/// Episode returns NeoRL-2 maps to normalised scores 0 and 100 (`neorl2/envs/info.py`).
pub const SCORE_RANGE: (f64, f64) = (-296.0, 751.0);
/// Margin inside the gate's limits below which the gate counts as saturated.
pub const SATURATION_MARGIN: f64 = 0.1;
/// Largest acceptable downstream deviation from the target (held for 10 steps: see the spec).
pub const DEVIATION_LIMIT: f64 = 60.0;
/// Success: the downstream flow within this distance of its target at the episode's end. The
/// Smith-predictor baseline ends on target (unless the target switched in the last 20 steps), the
/// zero policy typically 30 away.
pub const SUCCESS_TOLERANCE: f64 = 5.0;
/// The success criterion as the spec shows it.
const SUCCESS: Criterion = Criterion {
    description: "downstream flow within `tolerance` of its target at the end of the episode",
    parameters: &[("tolerance", SUCCESS_TOLERANCE, "1")],
};

// State layout.
const GATE: usize = 0; // gate flow, the newest slug in the channel
const TARGET: usize = 1; // downstream target
const ACTION: usize = 2; // last applied action (gate flow change)
const PIPE: usize = 3; // channel slots, DELAY of them, PIPE + DELAY - 1 is downstream
const PAST_FLOWS: usize = PIPE + DELAY; // previous downstream flows, HISTORY of them, newest first
const PAST_ACTIONS: usize = PAST_FLOWS + HISTORY; // actions, HISTORY of them, newest first
const STATE_LEN: usize = PAST_ACTIONS + HISTORY;

const OPTIONS: &[&str] = &["horizon"];

/// NeoRL-2's normalised score of an episode return: 0 at the return of its worst reference
/// policy, 100 at its best (`get_normalized_score`).
pub fn normalized_score(episode_return: f64) -> f64 {
    (episode_return - SCORE_RANGE.0) / (SCORE_RANGE.1 - SCORE_RANGE.0) * 100.0
}

/// NeoRL-2's reward for a downstream `flow` against its `target`: 1 on target, -3 at 200 off.
pub fn reward(flow: f64, target: f64) -> f64 {
    let closeness = (MAX_FLOW - (flow - target).abs()) * 0.01;
    closeness * closeness - 3.0
}

/// A target drawn uniformly from [`TARGETS`].
fn draw_target(rng: &mut Rng) -> f64 {
    TARGETS[rng.int_in(0, TARGETS.len() as i64) as usize % TARGETS.len()]
}

/// The target after one step: redrawn with probability [`SWITCH_PROB`] (the original draws the
/// uniform number first, then the choice only when it switches).
pub fn next_target(target: f64, rng: &mut Rng) -> f64 {
    if rng.bernoulli(SWITCH_PROB) {
        draw_target(rng)
    } else {
        target
    }
}

/// Moves every value of `slots` one place towards the end and puts `newest` first.
fn push_front(slots: &mut [f64], newest: f64) {
    slots.copy_within(..slots.len() - 1, 1);
    slots[0] = newest;
}

/// The registry id.
pub const ID: &str = "Pipeline-v0";

/// The pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    spec: EnvSpec,
}

impl Pipeline {
    /// Builds the pipeline from constructor options (see the Python docstring).
    pub fn new(config: &mut Config) -> Result<Self, CoreError> {
        let horizon = take_number(config, "horizon", f64::from(HORIZON), 1.0, 1e9)?;
        if horizon.fract() != 0.0 {
            return Err(CoreError::config(
                "horizon",
                format!("must be a whole number, got {horizon}"),
            ));
        }
        reject_unknown(config, ID, OPTIONS)?;
        Ok(Self {
            spec: spec(horizon as u32),
        })
    }
}

/// The downstream flow of a state.
fn downstream(state: &[f64]) -> f64 {
    state[PIPE + DELAY - 1]
}

fn flow_var(name: &'static str, description: &'static str) -> Variable {
    Variable::new(name, description, "1", 0.0, MAX_FLOW)
}

/// Names of the past downstream flows in the observation, newest first (as NeoRL-2 orders them).
#[rustfmt::skip]
const FLOWS: [&str; HISTORY] = [
    "flow_lag1", "flow_lag2", "flow_lag3", "flow_lag4", "flow_lag5", "flow_lag6", "flow_lag7",
    "flow_lag8", "flow_lag9", "flow_lag10", "flow_lag11", "flow_lag12", "flow_lag13",
    "flow_lag14", "flow_lag15", "flow_lag16", "flow_lag17", "flow_lag18", "flow_lag19",
    "flow_lag20", "flow_lag21", "flow_lag22", "flow_lag23", "flow_lag24", "flow_lag25",
];
/// Names of the past actions in the observation, newest (this step's) first.
#[rustfmt::skip]
const ACTIONS: [&str; HISTORY] = [
    "dq_lag0", "dq_lag1", "dq_lag2", "dq_lag3", "dq_lag4", "dq_lag5", "dq_lag6", "dq_lag7",
    "dq_lag8", "dq_lag9", "dq_lag10", "dq_lag11", "dq_lag12", "dq_lag13", "dq_lag14",
    "dq_lag15", "dq_lag16", "dq_lag17", "dq_lag18", "dq_lag19", "dq_lag20", "dq_lag21",
    "dq_lag22", "dq_lag23", "dq_lag24",
];

fn observations() -> Vec<Variable> {
    let mut v = vec![
        flow_var("flow", "downstream flow"),
        flow_var("target", "downstream flow target"),
    ];
    v.extend(FLOWS.iter().map(|n| flow_var(n, "past downstream flow")));
    v.extend(
        ACTIONS
            .iter()
            .map(|n| Variable::new(n, "past gate flow change", "1", -MAX_ACTION, MAX_ACTION)),
    );
    v
}

fn constraint(
    name: &'static str,
    signal: &'static str,
    kind: ConstraintKind,
    limit: f64,
) -> ConstraintSpec {
    ConstraintSpec {
        name,
        constraint_type: "flow",
        signal,
        kind,
        limit,
        severity: Severity::Warning,
        on_delay: 0,
        penalty: 0.0,
    }
}

fn spec(horizon: u32) -> EnvSpec {
    let dq = Variable::new("dq", "gate flow change", "1", -MAX_ACTION, MAX_ACTION);
    EnvSpec {
        id: ID,
        description:
            "Pipe with a 20-step transport delay: steer the downstream flow onto a switching target",
        observations: observations(),
        actions: vec![dq.clone()],
        signals: vec![
            flow_var("flow", "downstream flow"),
            flow_var("target", "downstream flow target"),
            Variable::new(
                "deviation",
                "downstream flow minus target",
                "1",
                -MAX_FLOW,
                MAX_FLOW,
            ),
            flow_var("gate_flow", "gate flow (enters the channel)"),
            dq,
        ],
        dt: CHANNEL_LENGTH_M / VELOCITY_M_S / DELAY as f64,
        dt_unit: "s",
        horizon,
        constraints: vec![
            // The gate saturates: fully closed or fully open (the flow is clipped there).
            constraint(
                "gate_flow_min",
                "gate_flow",
                ConstraintKind::Lower,
                SATURATION_MARGIN,
            ),
            constraint(
                "gate_flow_max",
                "gate_flow",
                ConstraintKind::Upper,
                MAX_FLOW - SATURATION_MARGIN,
            ),
            // |deviation| > 60 held for 10 consecutive steps: the alarm activates on the 10th
            // (an on-delay of 9 steps beyond the limit before that one).
            ConstraintSpec {
                on_delay: 9,
                ..constraint(
                    "flow_deviation",
                    "deviation",
                    ConstraintKind::Abs,
                    DEVIATION_LIMIT,
                )
            },
        ],
        // Hold the gate where it is.
        safe_action: vec![0.0],
        parameters: vec![],
        source: "NeoRL-2 Pipeline (polixir/NeoRL2, neorl2/envs/pipline.py)",
    }
}

impl ProcessModel for Pipeline {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn state_len(&self) -> usize {
        STATE_LEN
    }

    fn reset(&self, state: &mut [f64], rng: &mut Rng) {
        let flow = rng.uniform_in(INIT_FLOW.0, INIT_FLOW.1);
        state[PIPE..PIPE + DELAY].fill(flow);
        state[PAST_FLOWS..PAST_FLOWS + HISTORY].fill(flow);
        state[PAST_ACTIONS..PAST_ACTIONS + HISTORY].fill(0.0);
        state[GATE] = flow;
        state[ACTION] = 0.0;
        state[TARGET] = draw_target(rng);
    }

    fn step(&self, state: &mut [f64], action: &[f64], _t: u32, rng: &mut Rng) -> f64 {
        let a = action[0].clamp(-MAX_ACTION, MAX_ACTION);
        state[TARGET] = next_target(state[TARGET], rng);
        let gate = (state[GATE] + a).clamp(0.0, MAX_FLOW);
        let before = downstream(state);
        push_front(&mut state[PAST_FLOWS..PAST_FLOWS + HISTORY], before);
        push_front(&mut state[PAST_ACTIONS..PAST_ACTIONS + HISTORY], a);
        push_front(&mut state[PIPE..PIPE + DELAY], gate);
        state[GATE] = gate;
        state[ACTION] = a;
        reward(downstream(state), state[TARGET])
    }

    fn observe(&self, state: &[f64], _t: u32, obs: &mut [f32]) {
        obs[0] = downstream(state) as f32;
        obs[1] = state[TARGET] as f32;
        let history = &state[PAST_FLOWS..PAST_ACTIONS + HISTORY];
        for (o, x) in obs[2..].iter_mut().zip(history) {
            *o = *x as f32;
        }
    }

    fn signals(&self, state: &[f64], out: &mut [f64]) {
        let flow = downstream(state);
        out[0] = flow;
        out[1] = state[TARGET];
        out[2] = flow - state[TARGET];
        out[3] = state[GATE];
        out[4] = state[ACTION];
    }

    fn success(&self) -> Option<&Criterion> {
        Some(&SUCCESS)
    }

    fn succeeded(&self, state: &[f64], _t: u32) -> bool {
        (downstream(state) - state[TARGET]).abs() <= SUCCESS_TOLERANCE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs::ConfigValue;

    #[test]
    fn success_is_the_flow_on_target_at_the_end() {
        let (p, mut s, _) = started(3);
        s[PIPE + DELAY - 1] = s[TARGET] - 0.9 * SUCCESS_TOLERANCE;
        assert!(p.succeeded(&s, HORIZON));
        s[PIPE + DELAY - 1] = s[TARGET] + 1.1 * SUCCESS_TOLERANCE;
        assert!(!p.succeeded(&s, HORIZON));
    }

    fn pipeline() -> Pipeline {
        Pipeline::new(&mut Vec::new()).expect("default config is valid")
    }

    fn started(seed: u64) -> (Pipeline, Vec<f64>, Rng) {
        let p = pipeline();
        let mut rng = Rng::from_seed(seed);
        let mut s = vec![0.0; STATE_LEN];
        p.reset(&mut s, &mut rng);
        (p, s, rng)
    }

    fn obs(p: &Pipeline, s: &[f64]) -> Vec<f32> {
        let mut o = vec![0.0f32; p.spec().obs_dim()];
        p.observe(s, 0, &mut o);
        o
    }

    #[test]
    fn start_matches_the_original() {
        for seed in 0..50 {
            let (p, s, _) = started(seed);
            let o = obs(&p, &s);
            assert_eq!(o.len(), 52);
            let f = o[0];
            assert!((80.0..120.0).contains(&f));
            assert!(TARGETS.contains(&f64::from(o[1])));
            assert!(o[2..27].iter().all(|&x| x == f));
            assert!(o[27..].iter().all(|&x| x == 0.0));
        }
    }

    #[test]
    fn gate_flow_arrives_downstream_nineteen_steps_later() {
        let (p, mut s, mut rng) = started(7);
        let f0 = downstream(&s);
        // One +1 pulse, then nothing: the downstream flow rises by 1 on the 19th step after it.
        let mut flows = vec![];
        for t in 0..30 {
            let a = if t == 0 { 1.0 } else { 0.0 };
            p.step(&mut s, &[a], t, &mut rng);
            flows.push(downstream(&s));
        }
        for (k, f) in flows.iter().enumerate() {
            let want = if k >= DELAY - 1 { f0 + 1.0 } else { f0 };
            assert_eq!(*f, want, "step {}", k + 1);
        }
        let o = obs(&p, &s);
        assert_eq!(o[2], flows[28] as f32); // previous downstream flow
                                            // The pulse is 29 actions back, out of the 25-action window.
        assert!(o[27..].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn history_and_reward_follow_the_original() {
        let (p, mut s, mut rng) = started(11);
        let actions: Vec<f64> = (0..60).map(|k| ((k as f64) * 0.37).sin() * 1.3).collect();
        let mut flows = vec![downstream(&s)];
        for (t, &a) in actions.iter().enumerate() {
            let r = p.step(&mut s, &[a], t as u32, &mut rng);
            assert_eq!(r, reward(downstream(&s), s[TARGET]));
            flows.push(downstream(&s));
            let o = obs(&p, &s);
            for lag in 1..=HISTORY.min(t + 1) {
                assert_eq!(
                    f64::from(o[1 + lag]),
                    flows[flows.len() - 1 - lag] as f32 as f64
                );
            }
            for lag in 0..HISTORY.min(t + 1) {
                let want = actions[t - lag].clamp(-1.0, 1.0);
                assert_eq!(f64::from(o[27 + lag]), want as f32 as f64);
            }
        }
    }

    #[test]
    fn gate_flow_is_clipped_to_its_range() {
        let (p, mut s, mut rng) = started(3);
        for t in 0..300 {
            p.step(&mut s, &[5.0], t, &mut rng);
        }
        assert_eq!(s[GATE], MAX_FLOW);
        assert_eq!(downstream(&s), MAX_FLOW);
        for t in 0..300 {
            p.step(&mut s, &[-1.0], t, &mut rng);
        }
        assert_eq!((s[GATE], downstream(&s)), (0.0, 0.0));
        let mut sig = [0.0; 5];
        p.signals(&s, &mut sig);
        assert_eq!(sig[3], 0.0);
        assert_eq!(sig[2], -s[TARGET]);
    }

    #[test]
    fn targets_are_redrawn_at_the_published_rate() {
        let mut rng = Rng::from_seed(5);
        let n = 2_000_000;
        let (mut redraws, mut changes, mut target) = (0u32, 0u32, 50.0);
        let mut seen = [0u32; 4];
        for _ in 0..n {
            let mut probe = rng;
            let switched = probe.bernoulli(SWITCH_PROB);
            let next = next_target(target, &mut rng);
            redraws += u32::from(switched);
            changes += u32::from(next != target);
            if switched {
                seen[TARGETS.iter().position(|&x| x == next).unwrap_or(0)] += 1;
            }
            target = next;
        }
        let rate = f64::from(redraws) / f64::from(n);
        assert!((rate - 0.003).abs() < 0.0002, "redraw rate {rate}");
        let rate = f64::from(changes) / f64::from(n);
        assert!((rate - 0.00225).abs() < 0.0002, "change rate {rate}");
        assert!(seen.iter().all(|&c| (1300..1700).contains(&c)), "{seen:?}");
    }

    #[test]
    fn reward_and_score_are_neorl2s() {
        assert_eq!(reward(80.0, 80.0), 1.0);
        assert!((reward(200.0, 50.0) - (-2.75)).abs() < 1e-12);
        assert!((reward(0.0, 140.0) - (0.36 - 3.0)).abs() < 1e-12);
        assert_eq!(normalized_score(-296.0), 0.0);
        assert_eq!(normalized_score(751.0), 100.0);
    }

    #[test]
    fn spec_is_consistent_and_bounds_hold() {
        let (p, mut s, mut rng) = started(9);
        let spec = p.spec();
        assert_eq!(
            (spec.obs_dim(), spec.act_dim(), spec.horizon),
            (52, 1, 1000)
        );
        for c in &spec.constraints {
            assert!(spec.signal_index(c.signal).is_some(), "{}", c.name);
        }
        for t in 0..3000 {
            let a = if (t / 250) % 2 == 0 { 1.0 } else { -1.0 };
            p.step(&mut s, &[a], t, &mut rng);
            let o = obs(&p, &s);
            for (x, v) in o.iter().zip(&spec.observations) {
                assert!(
                    f64::from(*x) >= v.low && f64::from(*x) <= v.high,
                    "{} = {x}",
                    v.name
                );
            }
        }
    }

    #[test]
    fn options_are_checked() {
        let mut c = vec![("horizon".to_string(), ConfigValue::Number(200.0))];
        assert_eq!(Pipeline::new(&mut c).map(|p| p.spec().horizon), Ok(200));
        let mut c = vec![("delay".to_string(), ConfigValue::Number(3.0))];
        assert!(Pipeline::new(&mut c)
            .unwrap_err()
            .to_string()
            .contains("delay"));
        let mut c = vec![("horizon".to_string(), ConfigValue::Number(0.5))];
        assert!(Pipeline::new(&mut c).is_err());
    }
}
