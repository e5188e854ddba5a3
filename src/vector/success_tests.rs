//! Episode success through a batch step: judged once, on the step that ends an episode at its
//! horizon, in every autoreset mode; never after an emergency shutdown; counted by outcome.

use super::*;
use crate::envs::{self, ConfigValue};
use crate::telemetry::{Format, Registry, Scope};

const MODES: [Autoreset; 3] = [
    Autoreset::NextStep,
    Autoreset::SameStep,
    Autoreset::Disabled,
];

/// A reactor batch with a single set-point `sp` and a 30-step horizon, recording into `reg`.
fn reactor(n: usize, mode: Autoreset, sp: f64, reg: &Registry) -> VecCore {
    let config = vec![
        ("setpoints".to_string(), ConfigValue::List(vec![sp])),
        ("horizon".to_string(), ConfigValue::Number(30.0)),
    ];
    let model = envs::make("ChemicalReactor-v0", config).expect("model");
    let mut b = VecCore::new(model, n, mode, None).expect("batch");
    let set = &b.checker().set;
    let types: Vec<String> = set
        .constraints
        .iter()
        .map(|c| c.constraint_type.clone())
        .collect();
    let sev: Vec<&'static str> = set
        .constraints
        .iter()
        .map(|c| c.severity.as_str())
        .collect();
    let names: Vec<String> = set.constraints.iter().map(|c| c.name.clone()).collect();
    let m = reg.env_metrics("ChemicalReactor-v0", &types, &sev, &names);
    b.set_metrics(Some(m));
    b.reset(Some(&vec![Some(7); n]), None).expect("reset");
    b
}

/// `episode_outcomes_total{env="ChemicalReactor-v0",outcome=...}`.
fn outcome(reg: &Registry, outcome: &str) -> f64 {
    let text = reg.encode(Format::Text, Scope::NoProcess).expect("encode");
    let series =
        format!("episode_outcomes_total{{env=\"ChemicalReactor-v0\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Steps with a constant normalised action until every env's first episode has ended; the rows
/// of each step.
fn run(b: &mut VecCore, action: f64) -> Vec<Vec<Row>> {
    let n = b.num_envs();
    let mut steps = Vec::new();
    let mut ended = vec![false; n];
    while !ended.iter().all(|&e| e) {
        let rows = b.step(&vec![action; n]).expect("step").rows();
        for (e, r) in ended.iter_mut().zip(&rows) {
            *e |= r.terminated || r.truncated;
        }
        steps.push(rows);
    }
    steps
}

#[test]
fn holding_the_steady_state_on_its_set_point_succeeds_in_every_mode() {
    for mode in MODES {
        let reg = Registry::new(1000);
        // The nominal coolant (300 K, normalised 0) settles Ca at 0.8774 mol/L within 20 steps.
        let mut b = reactor(3, mode, 0.8774, &reg);
        assert_eq!(outcome(&reg, "success"), 0.0, "series exist from the start");
        let steps = run(&mut b, 0.0);
        assert_eq!(steps.len(), 30, "{mode:?}");
        for (t, rows) in steps.iter().enumerate() {
            for r in rows {
                assert_eq!(r.truncated, t == 29);
                assert_eq!(r.success, t == 29, "{mode:?} step {t}");
                assert_eq!(r.reset_in_step, t == 29 && mode == Autoreset::SameStep);
            }
        }
        assert_eq!(outcome(&reg, "success"), 3.0);
        assert_eq!(
            (outcome(&reg, "failure"), outcome(&reg, "shutdown")),
            (0.0, 0.0)
        );
        if mode == Autoreset::NextStep {
            // The autoreset step after the end reports nothing of the episode.
            let rows = b.step(&[0.0; 3]).expect("step").rows();
            assert!(rows.iter().all(|r| !r.stepped && !r.success));
        }
    }
}

#[test]
fn missing_the_set_point_is_a_failure() {
    for mode in MODES {
        let reg = Registry::new(1000);
        let mut b = reactor(2, mode, 0.85, &reg);
        let last = run(&mut b, 0.0).pop().expect("steps");
        assert!(last.iter().all(|r| r.truncated && !r.success), "{mode:?}");
        assert_eq!(outcome(&reg, "failure"), 2.0);
        assert_eq!(
            (outcome(&reg, "success"), outcome(&reg, "shutdown")),
            (0.0, 0.0)
        );
    }
}

#[test]
fn an_emergency_shutdown_is_never_a_success() {
    for mode in MODES {
        let reg = Registry::new(1000);
        let mut b = reactor(2, mode, 0.8, &reg);
        // Full heating: thermal runaway within a few steps, before the success window.
        let steps = run(&mut b, 1.0);
        assert!(steps.len() < 20);
        let last = steps.last().expect("steps");
        assert!(last
            .iter()
            .all(|r| r.terminated && r.shutdown.is_some() && !r.success));
        if mode == Autoreset::Disabled {
            // The model alone would call it a success (no step of the window was missed): the
            // batch does not ask it after a shutdown.
            let (s, stride) = (b.snapshot().states, b.stride);
            let t = u32::try_from(steps.len()).expect("steps");
            assert!(b.model().succeeded(&s[..stride], t));
        }
        assert_eq!(outcome(&reg, "shutdown"), 2.0, "{mode:?}");
        assert_eq!(
            (outcome(&reg, "success"), outcome(&reg, "failure")),
            (0.0, 0.0)
        );
    }
}
