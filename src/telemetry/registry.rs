//! The metrics registry: built-in families, user families, the process collector, health state;
//! encoded as Prometheus text 0.0.4 or OpenMetrics 1.0, in full or the safety families only.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry as PromRegistry;

use super::builtins::Builtins;
use super::dynamic::{AnyChild, FamilySpec, MetricFamily};
use super::env_metrics::EnvMetrics;
use super::exemplar::{ExemplarHistogram, ExemplarLabels};
use super::family::OverflowFamily;
use super::fault_metrics::FaultGauges;
use super::health::{HealthState, SafetyState};
use super::logging::{self, SafetyEvent};
use super::ops::Queue;
use super::process;
use super::types::{CounterF, GaugeF};
use crate::errors::CoreError;
use crate::safety::audit::LossSink;

/// Default bound on label sets per family.
pub const DEFAULT_MAX_LABEL_SETS: usize = 1000;

/// Exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Which families to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everything, with the process collector.
    All,
    /// Everything but the `process_*` families (for embedding in another client's registry).
    NoProcess,
    /// The safety families only.
    Safety,
}

/// Sample names the process collector owns.
const PROCESS_NAMES: [&str; 6] = [
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
];

/// Where an audit trail reports the events it loses: `audit_events_dropped_total` and the
/// `audit_trail` health check of one registry.
#[derive(Debug)]
pub struct AuditLosses {
    counter: CounterF,
    health: Arc<HealthState>,
    write_errors: CounterF,
    drops: CounterF,
    depth: GaugeF,
    capacity: GaugeF,
}

impl LossSink for AuditLosses {
    fn attach(&self, dropped_so_far: u64, last_error: Option<&str>) {
        self.counter.inc_by(dropped_so_far as f64);
        self.health.audit_attached(dropped_so_far, last_error);
    }

    fn lost(&self, n: u64, why: &str) {
        self.counter.inc_by(n as f64);
        self.health.audit_lost(n, why);
        if why.starts_with("write failed") {
            self.write_errors.inc();
        } else {
            self.drops.inc();
        }
    }

    fn queued(&self, depth: usize, capacity: usize) {
        self.depth.set(depth as f64);
        self.capacity.set(capacity as f64);
    }
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    families: RwLock<Vec<Arc<MetricFamily>>>,
    overflow: Arc<OverflowFamily>,
    builtins: Builtins,
    health: Arc<HealthState>,
    audit_losses: Arc<AuditLosses>,
    violation_ids: Arc<AtomicU64>,
}

#[derive(Debug)]
struct View {
    inner: Arc<Inner>,
    scope: Scope,
}

impl Collector for View {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let families = self
            .inner
            .families
            .read()
            .unwrap_or_else(|p| p.into_inner());
        for f in families.iter() {
            if self.scope != Scope::Safety || f.is_safety() {
                f.encode(&mut encoder)?;
            }
        }
        drop(families);
        if self.scope == Scope::Safety {
            return Ok(());
        }
        if !self.inner.overflow.is_empty() {
            let m = encoder.encode_descriptor(
                "metric_label_overflow",
                "Label sets folded into 'other' by the cardinality guard, by metric.",
                None,
                MetricType::Counter,
            )?;
            self.inner.overflow.encode(m)?;
        }
        if self.scope == Scope::All {
            if let Some(s) = process::read() {
                process::encode(&s, &mut encoder)?;
            }
        }
        Ok(())
    }
}

/// A metrics registry. Cheap to share: clone the `Arc` it lives in.
#[derive(Debug)]
pub struct Registry {
    inner: Arc<Inner>,
    all: PromRegistry,
    no_process: PromRegistry,
    safety: PromRegistry,
}

fn view(inner: &Arc<Inner>, scope: Scope) -> PromRegistry {
    let mut r = PromRegistry::default();
    r.register_collector(Box::new(View {
        inner: inner.clone(),
        scope,
    }));
    r
}

/// The process-wide registry every env records into unless given another.
pub fn default_registry() -> &'static Arc<Registry> {
    static DEFAULT: OnceLock<Arc<Registry>> = OnceLock::new();
    DEFAULT.get_or_init(|| Arc::new(Registry::new(DEFAULT_MAX_LABEL_SETS)))
}

impl Registry {
    /// A registry holding at most `max_label_sets` label sets per family (at least 1).
    ///
    /// # Panics
    /// Never for any argument: the built-in definitions are constants checked by the tests.
    pub fn new(max_label_sets: usize) -> Self {
        Self::try_new(max_label_sets).expect("built-in metric definitions are valid")
    }

    /// Like [`Registry::new`], returning definition errors instead of panicking.
    pub fn try_new(max_label_sets: usize) -> Result<Self, CoreError> {
        let limit = max_label_sets.max(1);
        let overflow = Arc::new(OverflowFamily::default());
        let builtins = Builtins::new(limit, overflow.clone())?;
        let health = Arc::new(HealthState::default());
        let (depth, capacity) = builtins.ops.queue(Queue::Audit);
        let audit_losses = Arc::new(AuditLosses {
            counter: builtins.audit_dropped.clone(),
            health: health.clone(),
            write_errors: builtins.ops.error_counter("audit", "write"),
            drops: builtins.ops.error_counter("audit", "dropped"),
            depth,
            capacity,
        });
        let inner = Arc::new(Inner {
            limit,
            families: RwLock::new(builtins.all.clone()),
            overflow,
            builtins,
            health,
            audit_losses,
            violation_ids: Arc::new(AtomicU64::new(0)),
        });
        Ok(Self {
            all: view(&inner, Scope::All),
            no_process: view(&inner, Scope::NoProcess),
            safety: view(&inner, Scope::Safety),
            inner,
        })
    }

    /// The bound on label sets per family.
    pub fn max_label_sets(&self) -> usize {
        self.inner.limit
    }

    /// The health state (checks read it; batches and Python write it).
    pub fn health(&self) -> &Arc<HealthState> {
        &self.inner.health
    }

    /// The built-in families.
    pub fn builtins(&self) -> &Builtins {
        &self.inner.builtins
    }

    /// Encodes the registry.
    ///
    /// Errors:
    ///     [`CoreError::Metric`] if a writer fails (only on allocation failure in practice).
    pub fn encode(&self, format: Format, scope: Scope) -> Result<String, CoreError> {
        self.inner.builtins.ops.set_queue(
            Queue::Log,
            logging::deferred_len(),
            logging::DEFERRED_MAX,
        );
        let reg = match scope {
            Scope::All => &self.all,
            Scope::NoProcess => &self.no_process,
            Scope::Safety => &self.safety,
        };
        let mut out = String::with_capacity(8192);
        let res = match format {
            Format::Text => prometheus_text::encode(&mut out, reg),
            Format::OpenMetrics => text::encode(&mut out, reg),
        };
        res.map_err(|_| CoreError::Metric("encoding the registry failed".into()))?;
        if format == Format::OpenMetrics {
            out = self.drop_negative_sums(out);
        }
        Ok(out)
    }

    /// OpenMetrics forbids `_sum` (and so `_count`, which must come with it) on histograms with
    /// negative buckets (`episode_reward`): drop both; the `+Inf` bucket still holds the count.
    fn drop_negative_sums(&self, text: String) -> String {
        let names: Vec<String> = {
            let families = self
                .inner
                .families
                .read()
                .unwrap_or_else(|p| p.into_inner());
            families
                .iter()
                .filter(|f| f.has_negative_buckets())
                .flat_map(|f| [format!("{}_sum", f.name()), format!("{}_count", f.name())])
                .collect()
        };
        if names.is_empty() {
            return text;
        }
        let is_sum = |line: &str| {
            names.iter().any(|n| {
                line.strip_prefix(n.as_str())
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
        };
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            if !is_sum(line) {
                out.push_str(line);
            }
        }
        out
    }

    /// Registers a family.
    ///
    /// Errors:
    ///     [`CoreError::Metric`] for an invalid definition or a name clashing with a family's
    ///     samples (including the built-in and `process_*` ones).
    pub fn register(&self, spec: &FamilySpec<'_>) -> Result<Arc<MetricFamily>, CoreError> {
        let fam = MetricFamily::new(spec, self.inner.limit, self.inner.overflow.clone())?;
        let mut families = self
            .inner
            .families
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let mut taken: Vec<String> = families.iter().flat_map(|f| f.exposed_names()).collect();
        taken.extend(PROCESS_NAMES.iter().map(|s| s.to_string()));
        taken.extend([
            "metric_label_overflow_total".to_string(),
            "metric_label_overflow".into(),
        ]);
        if let Some(clash) = fam.exposed_names().iter().find(|n| taken.contains(n)) {
            return Err(CoreError::Metric(format!(
                "duplicated timeseries in the registry: {clash}"
            )));
        }
        let fam = Arc::new(fam);
        families.push(fam.clone());
        Ok(fam)
    }

    /// Removes a family registered with [`Registry::register`]; built-ins stay. True if removed.
    pub fn unregister(&self, name: &str) -> bool {
        let name = name.strip_suffix("_total").unwrap_or(name);
        let mut families = self
            .inner
            .families
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let builtin =
            |f: &Arc<MetricFamily>| self.inner.builtins.all.iter().any(|b| Arc::ptr_eq(b, f));
        let before = families.len();
        families.retain(|f| f.name() != name || builtin(f));
        families.len() != before
    }

    /// Names of the registered families (counters without `_total`).
    pub fn names(&self) -> Vec<String> {
        let families = self
            .inner
            .families
            .read()
            .unwrap_or_else(|p| p.into_inner());
        families.iter().map(|f| f.name().to_string()).collect()
    }

    /// The handle an env batch records into; `constraint_types[k]`, `severities[k]` and
    /// `constraint_names[k]` describe constraint k of the env.
    pub fn env_metrics(
        &self,
        env_id: &str,
        constraint_types: &[String],
        severities: &[&'static str],
        constraint_names: &[String],
    ) -> Arc<EnvMetrics> {
        let b = &self.inner.builtins;
        let n = constraint_names.len().max(constraint_types.len());
        let ty = |k: usize| constraint_types.get(k).map_or("unknown", |s| s.as_str());
        let sev = |k: usize| severities.get(k).copied().unwrap_or("warning");
        let name = |k: usize| constraint_names.get(k).map_or("unknown", |s| s.as_str());
        let health = self.inner.health.clone();
        health.live(1);
        Arc::new(EnvMetrics {
            env_id: env_id.to_string(),
            constraint_names: (0..n).map(|k| name(k).to_string()).collect(),
            constraint_types: (0..n).map(|k| ty(k).to_string()).collect(),
            severities: (0..n).map(sev).collect(),
            env_steps: counter(&b.env_steps, &[env_id]),
            episodes: counter(&b.episodes, &[env_id]),
            step_latency: histogram(&b.step_latency, &[env_id]),
            shield: counter(&b.shield_interventions, &[env_id]),
            violations: (0..n)
                .map(|k| counter(&b.safety_violations, &[ty(k), sev(k)]))
                .collect(),
            shutdowns: (0..n)
                .map(|k| counter(&b.emergency_shutdowns, &[name(k)]))
                .collect(),
            reward: b.episode_reward.clone(),
            outcomes: super::env_metrics::Outcomes::new(b, env_id),
            response: b.safety_response.clone(),
            last_violation: b.last_violation.clone(),
            active: b.active_environments.clone(),
            contribution: Default::default(),
            safety: Default::default(),
            health: {
                health.batch(SafetyState::Active, 1);
                health
            },
            violation_ids: self.inner.violation_ids.clone(),
            audit_losses: self.inner.audit_losses.clone(),
        })
    }

    /// The `faults_active{env,fault}` series of a batch of `env_id` envs with faults `names`,
    /// created at 0.
    pub fn fault_gauges(&self, env_id: &str, names: &[String]) -> FaultGauges {
        let b = &self.inner.builtins;
        FaultGauges::new(
            names
                .iter()
                .map(|f| match b.faults_active.child(&[env_id, f]) {
                    Ok((AnyChild::Gauge(g), _)) => g,
                    _ => GaugeF::default(),
                })
                .collect(),
        )
    }

    /// Records one policy inference: its latency (with `exemplar` as its bucket's exemplar, if
    /// given) and the number of actions it computed.
    pub fn record_inference(&self, seconds: f64, actions: u64, exemplar: Option<&ExemplarLabels>) {
        let b = &self.inner.builtins;
        match exemplar {
            Some(labels) => {
                b.inference_latency
                    .observe_with(seconds, labels, std::time::SystemTime::now())
            }
            None => b.inference_latency.observe(seconds),
        }
        if actions > 0 {
            b.actions_computed.inc_by(actions as f64);
        }
    }

    /// Records (and logs, rate-limited) a safety violation found outside an env batch.
    /// Returns the violation id (`violation_id` if given, else a fresh one).
    pub fn record_safety_violation(&self, e: &SafetyEvent<'_>) -> String {
        let b = &self.inner.builtins;
        counter(&b.safety_violations, &[e.constraint_type, e.severity]).inc();
        b.last_violation.set(super::clock::unix_now());
        let id = if e.violation_id.is_empty() {
            logging::violation_id(&self.inner.violation_ids)
        } else {
            e.violation_id.to_string()
        };
        logging::safety_violation(&SafetyEvent {
            violation_id: &id,
            ..*e
        });
        id
    }

    /// Records (and logs) an emergency shutdown for `reason`.
    pub fn record_emergency_shutdown(&self, reason: &str, env: &str) {
        counter(&self.inner.builtins.emergency_shutdowns, &[reason]).inc();
        logging::emergency_shutdown(env, None, reason, f64::NAN, f64::NAN);
    }

    /// Records (and logs) a human intervention for `reason`.
    pub fn record_human_intervention(&self, reason: &str) {
        counter(&self.inner.builtins.human_interventions, &[reason]).inc();
        logging::human_intervention(reason);
    }

    /// Counts audit events lost by a trail this registry does not watch itself.
    pub fn record_audit_dropped(&self, n: u64) {
        self.inner
            .audit_losses
            .lost(n, "reported by the application");
    }
}

/// The counter series of `f` for `values`; a detached counter if `f` is not a counter family.
fn counter(f: &MetricFamily, values: &[&str]) -> CounterF {
    match f.child(values) {
        Ok((AnyChild::Counter(c), _)) => c,
        _ => CounterF::default(),
    }
}

fn histogram(f: &MetricFamily, values: &[&str]) -> ExemplarHistogram {
    match f.child(values) {
        Ok((AnyChild::Histogram(h), _)) => h,
        _ => ExemplarHistogram::new([1.0]),
    }
}
