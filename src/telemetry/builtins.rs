//! The built-in metric families. Names, labels and buckets are a contract with dashboards and
//! alert rules (see the monitoring guide): change them only with a migration note.

use std::sync::Arc;

use prometheus_client::metrics::histogram::Histogram;

use super::dynamic::{AnyChild, FamilySpec, Kind, MetricFamily};
use super::family::OverflowFamily;
use super::types::{CounterF, GaugeF};
use crate::errors::CoreError;

/// Buckets of `inference_latency_seconds` (from the monitoring guide).
pub const INFERENCE_BUCKETS: [f64; 6] = [0.001, 0.01, 0.05, 0.1, 0.5, 1.0];
/// Buckets of `episode_reward` (from the monitoring guide).
pub const REWARD_BUCKETS: [f64; 7] = [-100.0, -10.0, -1.0, 0.0, 1.0, 10.0, 100.0];
/// Buckets of `step_latency_seconds`: a batch step spans microseconds (N = 1) to seconds.
pub const STEP_BUCKETS: [f64; 11] = [
    1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0,
];
/// Buckets of `safety_response_time_seconds`: detection to response.
pub const RESPONSE_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// Handles on the built-in families and their unlabelled series.
#[derive(Debug)]
pub struct Builtins {
    /// `safety_violations_total{constraint_type,severity}`.
    pub safety_violations: Arc<MetricFamily>,
    /// `emergency_shutdowns_total{reason}`.
    pub emergency_shutdowns: Arc<MetricFamily>,
    /// `human_interventions_total{reason}`.
    pub human_interventions: Arc<MetricFamily>,
    /// `shield_interventions_total{env}`.
    pub shield_interventions: Arc<MetricFamily>,
    /// `episodes_total{env}`.
    pub episodes: Arc<MetricFamily>,
    /// `env_steps_total{env}`.
    pub env_steps: Arc<MetricFamily>,
    /// `step_latency_seconds{env}`.
    pub step_latency: Arc<MetricFamily>,
    /// `inference_latency_seconds`.
    pub inference_latency: Histogram,
    /// `actions_computed_total`.
    pub actions_computed: CounterF,
    /// `active_environments`.
    pub active_environments: GaugeF,
    /// `episode_reward`.
    pub episode_reward: Histogram,
    /// `safety_response_time_seconds`.
    pub safety_response: Histogram,
    /// `last_safety_violation_timestamp_seconds`.
    pub last_violation: GaugeF,
    /// `audit_events_dropped_total`.
    pub audit_dropped: CounterF,
    /// Every built-in family, in exposition order.
    pub all: Vec<Arc<MetricFamily>>,
}

struct Maker {
    limit: usize,
    overflow: Arc<OverflowFamily>,
    all: Vec<Arc<MetricFamily>>,
}

impl Maker {
    fn make(
        &mut self,
        kind: Kind,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
        safety: bool,
    ) -> Result<Arc<MetricFamily>, CoreError> {
        let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        let spec = FamilySpec {
            kind,
            name,
            help,
            labels: &labels,
            buckets,
            safety,
        };
        let f = Arc::new(MetricFamily::new(&spec, self.limit, self.overflow.clone())?);
        self.all.push(f.clone());
        Ok(f)
    }
}

fn counter(f: &MetricFamily) -> Result<CounterF, CoreError> {
    match f.child(&[])?.0 {
        AnyChild::Counter(c) => Ok(c),
        _ => Err(CoreError::Metric(format!("{} is not a counter", f.name()))),
    }
}

fn gauge(f: &MetricFamily) -> Result<GaugeF, CoreError> {
    match f.child(&[])?.0 {
        AnyChild::Gauge(g) => Ok(g),
        _ => Err(CoreError::Metric(format!("{} is not a gauge", f.name()))),
    }
}

fn histogram(f: &MetricFamily) -> Result<Histogram, CoreError> {
    match f.child(&[])?.0 {
        AnyChild::Histogram(h) => Ok(h),
        _ => Err(CoreError::Metric(format!(
            "{} is not a histogram",
            f.name()
        ))),
    }
}

impl Builtins {
    /// Creates every built-in family with `limit` label sets each.
    pub fn new(limit: usize, overflow: Arc<OverflowFamily>) -> Result<Self, CoreError> {
        use Kind::{Counter, Gauge, Histogram as Hist};
        let mut m = Maker {
            limit,
            overflow,
            all: Vec::new(),
        };
        let info = m.make(
            Gauge,
            "neorl_industrial_build_info",
            "Build of neorl-industrial (always 1).",
            &["version", "target", "profile"],
            &[],
            false,
        )?;
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        let target = format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS);
        if let AnyChild::Gauge(g) = info
            .child(&[env!("CARGO_PKG_VERSION"), &target, profile])?
            .0
        {
            g.set(1.0);
        }
        let safety_violations = m.make(
            Counter,
            "safety_violations_total",
            "Safety constraint violations (activations), by constraint type and severity.",
            &["constraint_type", "severity"],
            &[],
            true,
        )?;
        let emergency_shutdowns = m.make(
            Counter,
            "emergency_shutdowns_total",
            "Emergency shutdowns, by reason (the constraint that tripped).",
            &["reason"],
            &[],
            true,
        )?;
        let safety_response = m.make(
            Hist,
            "safety_response_time_seconds",
            "Time from violation detection to the safety response.",
            &[],
            &RESPONSE_BUCKETS,
            true,
        )?;
        let human_interventions = m.make(
            Counter,
            "human_interventions_total",
            "Manual overrides by an operator, by reason.",
            &["reason"],
            &[],
            true,
        )?;
        let shield_interventions = m.make(
            Counter,
            "shield_interventions_total",
            "Actions replaced by the safety shield, by environment.",
            &["env"],
            &[],
            true,
        )?;
        let last_violation = m.make(
            Gauge,
            "last_safety_violation_timestamp_seconds",
            "Unix time of the last batch step with a safety violation (0: none yet).",
            &[],
            &[],
            true,
        )?;
        let audit_dropped = m.make(
            Counter,
            "audit_events_dropped_total",
            "Audit trail events lost: the queue was full, the disk failed, or the trail was closed.",
            &[],
            &[],
            true,
        )?;
        let inference_latency = m.make(
            Hist,
            "inference_latency_seconds",
            "Time spent computing actions (policy inference).",
            &[],
            &INFERENCE_BUCKETS,
            false,
        )?;
        let actions_computed = m.make(
            Counter,
            "actions_computed_total",
            "Actions computed by monitored policies.",
            &[],
            &[],
            false,
        )?;
        let active_environments = m.make(
            Gauge,
            "active_environments",
            "Environments in live batches.",
            &[],
            &[],
            false,
        )?;
        let episode_reward = m.make(
            Hist,
            "episode_reward",
            "Return of each finished episode.",
            &[],
            &REWARD_BUCKETS,
            false,
        )?;
        let episodes = m.make(
            Counter,
            "episodes_total",
            "Finished episodes, by environment.",
            &["env"],
            &[],
            false,
        )?;
        let env_steps = m.make(
            Counter,
            "env_steps_total",
            "Environment transitions, by environment.",
            &["env"],
            &[],
            false,
        )?;
        let step_latency = m.make(
            Hist,
            "step_latency_seconds",
            "Wall time of one batch step, by environment (one observation per batch step).",
            &["env"],
            &STEP_BUCKETS,
            false,
        )?;
        Ok(Self {
            inference_latency: histogram(&inference_latency)?,
            actions_computed: counter(&actions_computed)?,
            active_environments: gauge(&active_environments)?,
            episode_reward: histogram(&episode_reward)?,
            safety_response: histogram(&safety_response)?,
            last_violation: gauge(&last_violation)?,
            audit_dropped: counter(&audit_dropped)?,
            safety_violations,
            emergency_shutdowns,
            human_interventions,
            shield_interventions,
            episodes,
            env_steps,
            step_latency,
            all: m.all,
        })
    }
}
