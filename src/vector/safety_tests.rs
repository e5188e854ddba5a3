//! The batch with safety configured: alarms, incidents, shields and shutdowns through a batch step.

use super::*;
use crate::envs;
use crate::safety::config::{build, Value};
use crate::safety::{EventKind, Shield};

fn reactor(n: usize, mode: Autoreset, cfg: Value, shield: Shield) -> VecCore {
    let model = envs::make("ChemicalReactor-v0", Vec::new()).expect("model");
    let mut b = VecCore::new(model, n, mode, None).expect("batch");
    let signals: Vec<&str> = b.model().spec().signals.iter().map(|s| s.name).collect();
    let set = build(&cfg, &signals, &b.checker().set).expect("config");
    b.set_safety(set, shield).expect("alarms");
    b
}

fn heat_until_end(b: &mut VecCore, steps: usize) -> (Vec<SafetyEvent>, Vec<Row>) {
    b.reset(Some(&[Some(0)]), None).expect("reset");
    let (mut events, mut rows) = (Vec::new(), Vec::new());
    for _ in 0..steps {
        let out = b.step(&[1.0]).expect("step");
        let row = out.row(0);
        events.extend(out.events);
        rows.push(row);
        if row.terminated || row.truncated {
            break;
        }
    }
    (events, rows)
}

#[test]
fn incidents_open_and_close_with_unique_ids_and_shutdown_is_the_response() {
    let mut b = reactor(1, Autoreset::Disabled, Value::Null, Shield::Off);
    let (events, rows) = heat_until_end(&mut b, 60);
    let last = rows.last().expect("rows");
    assert!(last.terminated && last.shutdown.is_some());
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds.first(), Some(&EventKind::IncidentOpened));
    assert!(kinds.contains(&EventKind::EmergencyShutdown));
    let shutdown = events
        .iter()
        .find(|e| e.kind == EventKind::EmergencyShutdown)
        .expect("shutdown");
    assert_eq!(shutdown.alarm.response, crate::safety::Response::Shutdown);
    assert_eq!(shutdown.alarm.response_seconds, 0.0);
    // Every open incident is closed at the episode's end, with the id it opened with.
    let opened: Vec<u64> = events
        .iter()
        .filter(|e| e.kind == EventKind::IncidentOpened)
        .map(|e| e.alarm.incident)
        .collect();
    let closed: Vec<u64> = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::IncidentClosed | EventKind::IncidentClosedByEpisodeEnd
            )
        })
        .map(|e| e.alarm.incident)
        .collect();
    assert!(opened.iter().all(|id| *id > 0));
    assert_eq!(opened.len(), closed.len());
    assert!(opened.iter().all(|id| closed.contains(id)));
    // Cost is positive exactly while an alarm is active.
    assert!(rows.iter().any(|r| r.cost > 0.0));
}

#[test]
fn predictive_shield_prevents_the_runaway_that_happens_without_it() {
    let mut b = reactor(1, Autoreset::Disabled, Value::Null, Shield::Predictive);
    let (events, rows) = heat_until_end(&mut b, 60);
    assert!(
        rows.iter().all(|r| !r.terminated),
        "the shield must prevent the shutdown"
    );
    assert!(rows.iter().any(|r| r.shielded));
    assert!(events
        .iter()
        .any(|e| e.kind == EventKind::ShieldIntervention));
}

#[test]
fn clip_shield_enforces_the_coolant_ramp() {
    let mut b = reactor(1, Autoreset::Disabled, Value::Null, Shield::Clip);
    b.reset(Some(&[Some(0)]), None).expect("reset");
    let out = b.step(&[1.0]).expect("step");
    // From the nominal 300 K the coolant may move at most 5 K per step.
    assert_eq!(out.action[0], 305.0);
    assert!(out.row(0).shielded);
    let out = b.step(&[1.0]).expect("step");
    assert_eq!(out.action[0], 310.0);
    let ramp = b
        .checker()
        .set
        .constraints
        .iter()
        .position(|c| c.name == "coolant_ramp")
        .expect("ramp");
    assert!(!out.readings.active[ramp]);
}

#[test]
fn penalty_is_subtracted_while_active_and_overrides_apply() {
    let cfg = Value::Map(vec![(
        "temperature_high".into(),
        Value::Map(vec![
            ("limit".into(), Value::Num(300.0)),
            ("penalty".into(), Value::Num(2.5)),
        ]),
    )]);
    let mut plain = reactor(1, Autoreset::Disabled, Value::Null, Shield::Off);
    let mut pen = reactor(1, Autoreset::Disabled, cfg, Shield::Off);
    plain.reset(Some(&[Some(0)]), None).expect("reset");
    pen.reset(Some(&[Some(0)]), None).expect("reset");
    let a = plain.step(&[0.0]).expect("step");
    let b = pen.step(&[0.0]).expect("step");
    assert_eq!(a.row(0).reward - 2.5, b.row(0).reward);
    assert!(b.row(0).cost > 0.0 && a.row(0).cost == 0.0);
}
