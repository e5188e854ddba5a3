//! The built-in metric families. Names, labels and buckets are a contract with dashboards and
//! alert rules (see the monitoring guide): change them only with a migration note.

use std::sync::Arc;

use super::dynamic::{AnyChild, FamilySpec, Kind, MetricFamily};
use super::exemplar::ExemplarHistogram;
use super::family::OverflowFamily;
use super::ops::Ops;
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
    /// `episode_outcomes_total{env,outcome}`.
    pub episode_outcomes: Arc<MetricFamily>,
    /// `episode_reward_by_env{env}`.
    pub episode_reward_by_env: Arc<MetricFamily>,
    /// `env_steps_total{env}`.
    pub env_steps: Arc<MetricFamily>,
    /// `step_latency_seconds{env}`.
    pub step_latency: Arc<MetricFamily>,
    /// `faults_active{env,fault}`.
    pub faults_active: Arc<MetricFamily>,
    /// `inference_latency_seconds`.
    pub inference_latency: ExemplarHistogram,
    /// `actions_computed_total`.
    pub actions_computed: CounterF,
    /// `active_environments`.
    pub active_environments: GaugeF,
    /// `episode_reward`.
    pub episode_reward: ExemplarHistogram,
    /// `safety_response_time_seconds`.
    pub safety_response: ExemplarHistogram,
    /// `last_safety_violation_timestamp_seconds`.
    pub last_violation: GaugeF,
    /// `audit_events_dropped_total`.
    pub audit_dropped: CounterF,
    /// `feature_drift{env,source,feature}`.
    pub feature_drift: Arc<MetricFamily>,
    /// `feature_drift_wasserstein{env,source,feature}`.
    pub feature_drift_wasserstein: Arc<MetricFamily>,
    /// `observation_saturation_total{env,feature}`.
    pub observation_saturation: Arc<MetricFamily>,
    /// `action_clipped_total{env,feature}`.
    pub action_clipped: Arc<MetricFamily>,
    /// `input_refused_total{env,reason}`.
    pub input_refused: Arc<MetricFamily>,
    /// `errors_total{component,kind}` and the queue gauges.
    pub ops: Ops,
    /// `exporter_insecure_listeners`.
    pub insecure_listeners: GaugeF,
    /// Every built-in family, in exposition order.
    pub all: Vec<Arc<MetricFamily>>,
}

/// One built-in family: kind, name, help, labels, buckets and whether it is a safety family.
struct Def {
    kind: Kind,
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
    safety: bool,
}

const fn def(
    kind: Kind,
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
    safety: bool,
) -> Def {
    Def {
        kind,
        name,
        help,
        labels,
        buckets,
        safety,
    }
}

use Kind::{Counter, Gauge, Histogram as Hist};

/// The built-in families, in exposition order.
const FAMILIES: [Def; 27] = [
    def(
        Gauge,
        "neorl_industrial_build_info",
        "Build of neorl-industrial (always 1).",
        &["version", "target", "profile"],
        &[],
        false,
    ),
    def(
        Counter,
        "safety_violations_total",
        "Safety constraint violations (activations), by constraint type and severity.",
        &["constraint_type", "severity"],
        &[],
        true,
    ),
    def(
        Counter,
        "emergency_shutdowns_total",
        "Emergency shutdowns, by reason (the constraint that tripped).",
        &["reason"],
        &[],
        true,
    ),
    def(
        Hist,
        "safety_response_time_seconds",
        "Time from violation detection to the safety response.",
        &[],
        &RESPONSE_BUCKETS,
        true,
    ),
    def(
        Counter,
        "human_interventions_total",
        "Manual overrides by an operator, by reason.",
        &["reason"],
        &[],
        true,
    ),
    def(
        Counter,
        "shield_interventions_total",
        "Actions replaced by the safety shield, by environment.",
        &["env"],
        &[],
        true,
    ),
    def(
        Gauge,
        "last_safety_violation_timestamp_seconds",
        "Unix time of the last batch step with a safety violation (0: none yet).",
        &[],
        &[],
        true,
    ),
    def(
        Counter,
        "audit_events_dropped_total",
        "Audit trail events lost: the queue was full, the disk failed, or the trail was closed.",
        &[],
        &[],
        true,
    ),
    def(
        Hist,
        "inference_latency_seconds",
        "Time spent computing actions (policy inference).",
        &[],
        &INFERENCE_BUCKETS,
        false,
    ),
    def(
        Counter,
        "actions_computed_total",
        "Actions computed by monitored policies.",
        &[],
        &[],
        false,
    ),
    def(
        Gauge,
        "active_environments",
        "Environments in live batches.",
        &[],
        &[],
        false,
    ),
    def(
        Hist,
        "episode_reward",
        "Return of each finished episode.",
        &[],
        &REWARD_BUCKETS,
        false,
    ),
    def(
        Counter,
        "episodes_total",
        "Finished episodes, by environment.",
        &["env"],
        &[],
        false,
    ),
    def(
        Counter,
        "episode_outcomes_total",
        "Episodes by environment and outcome: success (met the environment's success criterion), failure (did not, without a shutdown), shutdown (ended by an emergency shutdown), truncated (cut before its end by a reset).",
        &["env", "outcome"],
        &[],
        false,
    ),
    def(
        Hist,
        "episode_reward_by_env",
        "Return of each finished episode, by environment (the buckets of episode_reward).",
        &["env"],
        &REWARD_BUCKETS,
        false,
    ),
    def(
        Counter,
        "env_steps_total",
        "Environment transitions, by environment.",
        &["env"],
        &[],
        false,
    ),
    def(
        Hist,
        "step_latency_seconds",
        "Wall time of one batch step, by environment (one observation per batch step).",
        &["env"],
        &STEP_BUCKETS,
        false,
    ),
    def(
        Gauge,
        "feature_drift",
        "Population stability index of a feature's recent window against its reference profile (below 0.1 stable, 0.1 to 0.25 moderate, above 0.25 significant).",
        &["env", "source", "feature"],
        &[],
        false,
    ),
    def(
        Gauge,
        "feature_drift_wasserstein",
        "Wasserstein-1 distance of a feature's recent window from its reference profile, in the feature's unit.",
        &["env", "source", "feature"],
        &[],
        false,
    ),
    def(
        Counter,
        "observation_saturation_total",
        "Observation values at a bound of their range (the sensor reads its end of scale), by environment and variable.",
        &["env", "feature"],
        &[],
        false,
    ),
    def(
        Counter,
        "action_clipped_total",
        "Action components outside [-1, 1] that were clipped into the action space, by environment and action.",
        &["env", "feature"],
        &[],
        false,
    ),
    def(
        Counter,
        "input_refused_total",
        "Step calls refused for bad input, by environment and reason (non_finite, shape, dtype).",
        &["env", "reason"],
        &[],
        false,
    ),
    def(
        Counter,
        "errors_total",
        "Errors by component (env, policy, serving, exporter, audit, push) and kind.",
        &["component", "kind"],
        &[],
        false,
    ),
    def(
        Gauge,
        "queue_depth",
        "Items waiting in an internal queue: audit (audit-trail batches not yet written), log (events waiting to be logged), exporter_connections (HTTP connections in flight), fleet_tasks (fleet tasks pending).",
        &["queue"],
        &[],
        false,
    ),
    def(
        Gauge,
        "queue_capacity",
        "Most items an internal queue holds before it refuses or drops (0: unbounded).",
        &["queue"],
        &[],
        false,
    ),
    def(
        Gauge,
        "exporter_insecure_listeners",
        "Exporter listeners serving beyond loopback without authentication (allowed only when asked for with insecure=True / --insecure).",
        &[],
        &[],
        false,
    ),
    def(
        Gauge,
        "faults_active",
        "Environments with an injected fault active, by environment and fault name.",
        &["env", "fault"],
        &[],
        false,
    ),
];

/// Histograms observed on every batch step without an exemplar: made without exemplars, so their
/// observations take no lock for them.
const WITHOUT_EXEMPLARS: [&str; 1] = ["step_latency_seconds"];

fn make(
    d: &Def,
    limit: usize,
    overflow: &Arc<OverflowFamily>,
) -> Result<Arc<MetricFamily>, CoreError> {
    let labels: Vec<String> = d.labels.iter().map(|s| s.to_string()).collect();
    let spec = FamilySpec {
        kind: d.kind,
        name: d.name,
        help: d.help,
        labels: &labels,
        buckets: d.buckets,
        safety: d.safety,
        exemplars: !WITHOUT_EXEMPLARS.contains(&d.name),
    };
    Ok(Arc::new(MetricFamily::new(&spec, limit, overflow.clone())?))
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

fn histogram(f: &MetricFamily) -> Result<ExemplarHistogram, CoreError> {
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
        let all = FAMILIES
            .iter()
            .map(|d| make(d, limit, &overflow))
            .collect::<Result<Vec<_>, _>>()?;
        let by_name = |name: &str| -> Result<Arc<MetricFamily>, CoreError> {
            FAMILIES
                .iter()
                .position(|d| d.name == name)
                .map(|i| all[i].clone())
                .ok_or_else(|| CoreError::Metric(format!("no built-in family {name}")))
        };
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        let target = format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS);
        let info = by_name("neorl_industrial_build_info")?;
        if let AnyChild::Gauge(g) = info
            .child(&[env!("CARGO_PKG_VERSION"), &target, profile])?
            .0
        {
            g.set(1.0);
        }
        Ok(Self {
            inference_latency: histogram(by_name("inference_latency_seconds")?.as_ref())?,
            actions_computed: counter(by_name("actions_computed_total")?.as_ref())?,
            active_environments: gauge(by_name("active_environments")?.as_ref())?,
            episode_reward: histogram(by_name("episode_reward")?.as_ref())?,
            safety_response: histogram(by_name("safety_response_time_seconds")?.as_ref())?,
            last_violation: gauge(by_name("last_safety_violation_timestamp_seconds")?.as_ref())?,
            audit_dropped: counter(by_name("audit_events_dropped_total")?.as_ref())?,
            safety_violations: by_name("safety_violations_total")?,
            emergency_shutdowns: by_name("emergency_shutdowns_total")?,
            human_interventions: by_name("human_interventions_total")?,
            shield_interventions: by_name("shield_interventions_total")?,
            episodes: by_name("episodes_total")?,
            episode_outcomes: by_name("episode_outcomes_total")?,
            episode_reward_by_env: by_name("episode_reward_by_env")?,
            env_steps: by_name("env_steps_total")?,
            step_latency: by_name("step_latency_seconds")?,
            feature_drift: by_name("feature_drift")?,
            feature_drift_wasserstein: by_name("feature_drift_wasserstein")?,
            observation_saturation: by_name("observation_saturation_total")?,
            action_clipped: by_name("action_clipped_total")?,
            input_refused: by_name("input_refused_total")?,
            ops: Ops::new(
                by_name("errors_total")?,
                by_name("queue_depth")?.as_ref(),
                by_name("queue_capacity")?.as_ref(),
            ),
            faults_active: by_name("faults_active")?,
            insecure_listeners: gauge(by_name("exporter_insecure_listeners")?.as_ref())?,
            all,
        })
    }
}
