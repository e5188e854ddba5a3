//! Registry-level tests: built-in names, batch recording, both formats, scopes, clashes.

use super::dynamic::{AnyChild, FamilySpec, Kind};
use super::*;

fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn batch(reg: &Registry) -> std::sync::Arc<EnvMetrics> {
    reg.env_metrics(
        "ChemicalReactor-v0",
        &["temperature".into(), "temperature".into()],
        &["warning", "critical"],
        &["temperature_high".into(), "temperature_runaway".into()],
    )
}

#[test]
fn a_batch_step_updates_every_contract_metric() {
    let reg = Registry::new(1000);
    let m = batch(&reg);
    m.set_active(8);
    m.record_batch(&BatchRecord {
        env_steps: 8,
        episode_returns: &[-5.0, 20.0],
        step_seconds: 0.002,
        violations: &[3, 1],
        shutdowns: &[0, 1],
        shield_interventions: 2,
        response_seconds: &[0.01],
        ..BatchRecord::default()
    });
    let t = reg.encode(Format::Text, Scope::All).unwrap();
    let env = "{env=\"ChemicalReactor-v0\"}";
    assert_eq!(sample(&t, &format!("env_steps_total{env}")), Some(8.0));
    assert_eq!(sample(&t, &format!("episodes_total{env}")), Some(2.0));
    assert_eq!(
        sample(&t, &format!("shield_interventions_total{env}")),
        Some(2.0)
    );
    assert_eq!(
        sample(&t, &format!("step_latency_seconds_count{env}")),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &t,
            "safety_violations_total{constraint_type=\"temperature\",severity=\"warning\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &t,
            "safety_violations_total{constraint_type=\"temperature\",severity=\"critical\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &t,
            "emergency_shutdowns_total{reason=\"temperature_runaway\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&t, "emergency_shutdowns_total{reason=\"temperature_high\"}"),
        Some(0.0)
    );
    assert_eq!(sample(&t, "episode_reward_count"), Some(2.0));
    assert_eq!(sample(&t, "episode_reward_bucket{le=\"-1\"}"), Some(1.0));
    assert_eq!(sample(&t, "safety_response_time_seconds_count"), Some(1.0));
    assert_eq!(sample(&t, "active_environments"), Some(8.0));
    assert!(sample(&t, "last_safety_violation_timestamp_seconds").unwrap() > 1e9);
    assert!(t.contains("# TYPE safety_violations_total counter"));
    assert!(t.contains("neorl_industrial_build_info{version=\""));
    assert!(t.contains("process_resident_memory_bytes") == cfg!(target_os = "linux"));
    // Dropping the batch withdraws its envs.
    drop(m);
    let t = reg.encode(Format::Text, Scope::All).unwrap();
    assert_eq!(sample(&t, "active_environments"), Some(0.0));
}

#[test]
fn openmetrics_and_text_differ_where_the_formats_do() {
    let reg = Registry::new(10);
    let om = reg.encode(Format::OpenMetrics, Scope::All).unwrap();
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE actions_computed counter"));
    let t = reg.encode(Format::Text, Scope::All).unwrap();
    assert!(!t.contains("# EOF"));
    assert!(t.contains("# TYPE actions_computed_total counter"));
}

#[test]
fn the_safety_scope_holds_only_safety_families() {
    let reg = Registry::new(10);
    let _m = batch(&reg);
    let s = reg.encode(Format::Text, Scope::Safety).unwrap();
    for name in [
        "safety_violations_total",
        "emergency_shutdowns_total",
        "last_safety_violation_timestamp_seconds",
        "human_interventions_total",
        "safety_response_time_seconds",
        "audit_events_dropped_total",
    ] {
        assert!(s.contains(&format!("# TYPE {name} ")), "{name}");
    }
    for name in [
        "env_steps_total",
        "process_",
        "inference_latency_seconds",
        "build_info",
    ] {
        assert!(!s.contains(name), "{name}");
    }
    let np = reg.encode(Format::Text, Scope::NoProcess).unwrap();
    assert!(!np.contains("process_") && np.contains("env_steps_total"));
}

#[test]
fn user_families_register_update_clash_and_unregister() {
    let reg = Registry::new(10);
    let spec = |kind, name| FamilySpec {
        kind,
        name,
        help: "h\n\"x\"",
        labels: &[],
        buckets: &[0.5],
        safety: false,
        exemplars: true,
    };
    let f = reg.register(&spec(Kind::Counter, "jobs_total")).unwrap();
    if let (AnyChild::Counter(c), _) = f.child(&[]).unwrap() {
        c.inc_by(2.5);
    }
    let t = reg.encode(Format::Text, Scope::All).unwrap();
    assert!(t.contains("# HELP jobs_total h 'x'\n"));
    assert_eq!(sample(&t, "jobs_total "), Some(2.5));
    for clash in [
        spec(Kind::Gauge, "jobs_total"),
        spec(Kind::Counter, "jobs"),
        spec(Kind::Gauge, "episode_reward_sum"),
        spec(Kind::Gauge, "process_open_fds"),
        spec(Kind::Histogram, "env_steps"),
    ] {
        let r = reg.register(&clash);
        // env_steps (histogram) clashes with the counter's family name env_steps.
        assert!(r.is_err(), "{}", clash.name);
    }
    assert!(reg.register(&spec(Kind::Gauge, "bad name")).is_err());
    assert!(reg.unregister("jobs_total"));
    assert!(!reg.unregister("episodes"));
    assert!(reg.register(&spec(Kind::Gauge, "jobs")).is_ok());
}

#[test]
fn folding_keeps_each_family_bounded_and_is_exposed() {
    let reg = Registry::new(50);
    let metrics: Vec<_> = (0..200)
        .map(|i| reg.env_metrics(&format!("env{i}"), &[], &[], &[]))
        .collect();
    let t = reg.encode(Format::Text, Scope::All).unwrap();
    let series = t
        .lines()
        .filter(|l| l.starts_with("env_steps_total{"))
        .count();
    assert_eq!(series, 51);
    assert!(t.contains("env_steps_total{env=\"other\"}"));
    assert_eq!(
        sample(&t, "metric_label_overflow_total{metric=\"env_steps\"}"),
        Some(150.0)
    );
    drop(metrics);
}

#[test]
fn health_follows_batches_and_safety_state() {
    let reg = Registry::new(10);
    let ctx = health::ReportContext {
        memory_limit_bytes: Some(1 << 50),
        exporter_listeners: None,
    };
    assert_eq!(reg.health().report(&ctx).status, Status::Fail);
    let m = batch(&reg);
    assert_eq!(reg.health().report(&ctx).status, Status::Pass);
    m.set_safety_state(SafetyState::ShutDown);
    assert_eq!(reg.health().report(&ctx).status, Status::Fail);
    m.set_safety_state(SafetyState::Active);
    assert_eq!(reg.health().report(&ctx).status, Status::Pass);
    m.set_safety_state(SafetyState::Inactive);
    drop(m);
    assert_eq!(reg.health().report(&ctx).status, Status::Fail);
}

#[test]
fn the_default_registry_is_one_instance() {
    assert!(std::sync::Arc::ptr_eq(
        default_registry(),
        default_registry()
    ));
}
