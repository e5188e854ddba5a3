//! Exemplars as the encoders write them: exact bucket lines with and without one, OpenMetrics
//! only, escaping, the 128-character limit, and the ids a batch step attaches.

use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::safety::{AlarmState, ConstraintSet, EventKind, SafetyEvent};
use crate::step::{Episodes, Row, StepView};
use crate::telemetry::dynamic::{AnyChild, FamilySpec, Kind};
use crate::telemetry::registry::{Format, Registry, Scope};

/// 2024-12-08T09:26:40.123Z.
fn at() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_733_650_000_123)
}

fn labels(pairs: &[(&str, &str)]) -> Result<ExemplarLabels, CoreError> {
    ExemplarLabels::given(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// A registry with one histogram `lat_seconds{route}` (buckets 0.1, 0.5) and its `a` series.
fn histogram() -> (Registry, ExemplarHistogram) {
    let reg = Registry::new(10);
    let fam = reg
        .register(&FamilySpec {
            kind: Kind::Histogram,
            name: "lat_seconds",
            help: "Latency.",
            labels: &["route".to_string()],
            buckets: &[0.1, 0.5],
            safety: false,
            exemplars: true,
        })
        .expect("family");
    let Ok((AnyChild::Histogram(h), _)) = fam.child(&["a"]) else {
        panic!("not a histogram");
    };
    (reg, h)
}

fn lines(reg: &Registry, format: Format, prefix: &str) -> Vec<String> {
    let text = reg.encode(format, Scope::NoProcess).expect("encode");
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_latest_exemplar_of_a_bucket_follows_its_line_in_openmetrics_only() {
    let (reg, h) = histogram();
    h.observe(0.05);
    h.observe_with(0.3, &labels(&[("run_id", "r0")]).unwrap(), at());
    let ids = labels(&[("run_id", "r1"), ("episode_id", "3-7")]).unwrap();
    h.observe_with(0.42, &ids, at());
    assert_eq!(
        lines(&reg, Format::OpenMetrics, "lat_seconds_bucket"),
        [
            r#"lat_seconds_bucket{le="0.1",route="a"} 1"#,
            r#"lat_seconds_bucket{le="0.5",route="a"} 3 # {run_id="r1",episode_id="3-7"} 0.42 1733650000.123"#,
            r#"lat_seconds_bucket{le="+Inf",route="a"} 3"#,
        ]
    );
    assert_eq!(
        lines(&reg, Format::Text, "lat_seconds_bucket"),
        [
            r#"lat_seconds_bucket{route="a",le="0.1"} 1"#,
            r#"lat_seconds_bucket{route="a",le="0.5"} 3"#,
            r#"lat_seconds_bucket{route="a",le="+Inf"} 3"#,
        ]
    );
    let text = reg.encode(Format::Text, Scope::NoProcess).unwrap();
    assert!(!text.contains("run_id"), "{text}");
}

#[test]
fn a_histogram_observed_without_exemplars_encodes_as_before() {
    let (reg, h) = histogram();
    h.observe(0.05);
    h.observe(7.0);
    assert_eq!(
        lines(&reg, Format::OpenMetrics, "lat_seconds"),
        [
            r#"lat_seconds_sum{route="a"} 7.05"#,
            r#"lat_seconds_count{route="a"} 2"#,
            r#"lat_seconds_bucket{le="0.1",route="a"} 1"#,
            r#"lat_seconds_bucket{le="0.5",route="a"} 1"#,
            r#"lat_seconds_bucket{le="+Inf",route="a"} 2"#,
        ]
    );
}

#[test]
fn exemplar_values_are_escaped_and_counted_in_characters() {
    let (reg, h) = histogram();
    let odd = labels(&[("note", "q\"b\\c\nd"), ("city", "Zürich")]).unwrap();
    assert_eq!(odd.chars(), "note".len() + 7 + "city".len() + 6);
    h.observe_with(9.0, &odd, at());
    assert_eq!(
        lines(&reg, Format::OpenMetrics, "lat_seconds_bucket{le=\"+Inf\""),
        [
            r#"lat_seconds_bucket{le="+Inf",route="a"} 1 # {note="q\"b\\c\nd",city="Zürich"} 9.0 1733650000.123"#
        ]
    );
}

#[test]
fn given_labels_past_128_characters_or_with_bad_names_are_refused() {
    let v122 = "x".repeat(122);
    assert_eq!(labels(&[("run_id", &v122)]).unwrap().chars(), 128);
    // 128 characters of two bytes each still fit: the limit counts characters, not bytes.
    assert!(labels(&[("a", &"é".repeat(127))]).is_ok());
    let v123 = "x".repeat(123);
    let err = labels(&[("run_id", &v123)]).unwrap_err().to_string();
    assert!(
        err.contains("129 characters") && err.contains("at most 128"),
        "{err}"
    );
    for bad in ["1a", "a-b", "__x", ""] {
        let err = labels(&[(bad, "v")]).unwrap_err().to_string();
        assert!(
            err.contains("invalid label name") && err.contains(bad),
            "{err}"
        );
    }
    let err = labels(&[("a", "1"), ("a", "2")]).unwrap_err().to_string();
    assert!(err.contains("duplicate label name \"a\""), "{err}");
}

#[test]
fn ids_render_as_the_logs_and_the_audit_trail_write_them() {
    let origin = Origin {
        env_index: 3,
        episode: 7,
        incident: 42,
    };
    let ids = ExemplarLabels::run("run-1".into()).with(&origin);
    let (reg, h) = histogram();
    h.observe_with(0.01, &ids, at());
    let line = lines(&reg, Format::OpenMetrics, "lat_seconds_bucket{le=\"0.1\"").join("");
    let want = format!(
        r#"# {{run_id="run-1",episode_id="{}",incident_id="{}"}} 0.01 "#,
        logging::episode_id(3, 7),
        logging::incident_id(42)
    );
    assert!(line.contains(&want), "{line}");
    assert_eq!(want.matches("3-7").count(), 1);
    assert!(want.contains("safety_000042"));
    assert_eq!(ids.chars(), 6 + 5 + 10 + 3 + 11 + 13);
    // Incident 0 is unknown: no incident_id.
    let no_incident = ExemplarLabels::run("r".into()).with(&Origin {
        incident: 0,
        ..origin
    });
    assert_eq!(no_incident.chars(), 6 + 1 + 10 + 3);
}

#[test]
fn ids_past_the_limit_are_left_out_in_order() {
    let origin = Origin {
        env_index: 12,
        episode: 345,
        incident: 1_234_567,
    };
    // 128-character run id: alone it would come to 134.
    let long: Arc<str> = "r".repeat(128).into();
    let ids = ExemplarLabels::run(long).with(&origin);
    assert_eq!(ids.chars(), 10 + 6 + 11 + 14);
    // A run id that leaves room for the episode but not the incident.
    let run: Arc<str> = "r".repeat(100).into();
    let ids = ExemplarLabels::run(run).with(&origin);
    assert_eq!(ids.chars(), 106 + 16);
    let (reg, h) = histogram();
    h.observe_with(0.2, &ids, at());
    let line = lines(&reg, Format::OpenMetrics, "lat_seconds_bucket{le=\"0.5\"").join("");
    assert!(line.contains(r#"episode_id="12-345"} 0.2"#), "{line}");
    assert!(!line.contains("incident_id"), "{line}");
}

/// Episode counters of a batch, as a test sets them.
struct Counters(Vec<u64>);

impl Episodes for Counters {
    fn started(&self, i: usize) -> u64 {
        self.0[i]
    }
}

fn closed(env: usize, episode: u64, incident: u64, response_seconds: f64) -> SafetyEvent {
    SafetyEvent {
        kind: EventKind::IncidentClosed,
        env,
        episode,
        constraint: Some(0),
        step: 5,
        wall: 0.0,
        value: 1.0,
        alarm: AlarmState {
            incident,
            response_seconds,
            ..AlarmState::default()
        },
    }
}

#[test]
fn a_batch_step_stamps_its_rewards_and_responses_with_the_run_episode_and_incident() {
    let run = logging::run_id();
    let reg = Registry::new(10);
    let m = reg.env_metrics("Test-v0", &[], &[], &[]);
    // Env 0 ended and was reset within the step (its counter moved to 5: it ended episode 4);
    // env 1 still runs; env 2 ended without a reset (episode 9).
    let (terminated, truncated) = ([false, false, true], [true, false, false]);
    let events = [closed(2, 9, 17, 0.02), closed(1, 3, 18, f64::NAN)];
    let view = StepView {
        stepped: &[true; 3],
        cost: &[0.0; 3],
        terminated: &terminated,
        truncated: &truncated,
        shielded: &[false; 3],
        reset_in_step: &[true, false, false],
        episode_return: &[-50.0, 0.0, 5.0],
        success: &[false; 3],
        active: &[],
        final_active: &[],
        events: &events,
        episodes: &Counters(vec![5, 3, 9]),
    };
    m.record_step(&view, 0.001, &ConstraintSet::default());
    let om = reg.encode(Format::OpenMetrics, Scope::NoProcess).unwrap();
    let bucket = |prefix: &str| -> String {
        om.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_default()
            .to_string()
    };
    let reward = bucket(r#"episode_reward_bucket{le="-10.0"}"#);
    assert!(
        reward.contains(&format!(r#"# {{run_id="{run}",episode_id="0-4"}} -50.0 "#)),
        "{reward}"
    );
    let reward = bucket(r#"episode_reward_bucket{le="10.0"}"#);
    assert!(
        reward.contains(&format!(r#"# {{run_id="{run}",episode_id="2-9"}} 5.0 "#)),
        "{reward}"
    );
    let by_env = bucket(r#"episode_reward_by_env_bucket{le="10.0",env="Test-v0"}"#);
    assert!(by_env.contains(r#"episode_id="2-9"} 5.0 "#), "{by_env}");
    let response = bucket(r#"safety_response_time_seconds_bucket{le="0.05"}"#);
    let want =
        format!(r#" 1 # {{run_id="{run}",episode_id="2-9",incident_id="safety_000017"}} 0.02 "#);
    assert!(response.contains(&want), "{response}");
    // The incident without a response is not observed; the running env ended no episode.
    assert!(
        !om.contains("safety_000018") && !om.contains("\"1-3\""),
        "{om}"
    );
    assert!(om.contains("episodes_total{env=\"Test-v0\"} 2"), "{om}");
}

#[test]
fn a_batch_of_one_reads_its_counter_like_a_batch() {
    let row = Row {
        truncated: true,
        reset_in_step: false,
        ..Row::default()
    };
    let counters = Counters(vec![2]);
    let view = StepView::of_one(&row, &[], &[], &counters);
    assert_eq!(view.ended_episode(0), 2);
    let row = Row {
        reset_in_step: true,
        ..row
    };
    assert_eq!(
        StepView::of_one(&row, &[], &[], &counters).ended_episode(0),
        1
    );
}

#[test]
fn the_step_latency_keeps_no_exemplars_and_the_exemplar_families_do() {
    let reg = Registry::new(10);
    let b = reg.builtins();
    for h in [&b.episode_reward, &b.safety_response, &b.inference_latency] {
        assert!(h.keeps_exemplars());
    }
    let Ok((AnyChild::Histogram(step), _)) = b.step_latency.child(&["x"]) else {
        panic!("not a histogram");
    };
    assert!(!step.keeps_exemplars());
    step.observe_with(0.002, &labels(&[("run_id", "r")]).unwrap(), at());
    let step_lines = lines(&reg, Format::OpenMetrics, "step_latency_seconds");
    assert!(
        step_lines.iter().any(|l| l.ends_with("} 1")),
        "{step_lines:?}"
    );
    assert!(
        step_lines.iter().all(|l| !l.contains('#')),
        "{step_lines:?}"
    );
    let (_, user) = histogram();
    assert!(
        user.keeps_exemplars(),
        "families registered by users keep exemplars"
    );
}
