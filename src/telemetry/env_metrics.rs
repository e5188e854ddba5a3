//! The handle an env batch records into once per batch step: pre-resolved series, so recording is
//! a few atomic operations with no lookup and no allocation.

use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use super::builtins::Builtins;
use super::clock::unix_now;
use super::dynamic::AnyChild;
use super::exemplar::{ExemplarHistogram, ExemplarLabels, Observed};
use super::health::{HealthState, SafetyState};
use super::logging::{self, SafetyEvent};
use super::types::{CounterF, GaugeF};

/// What one batch step did, for [`EnvMetrics::record_batch`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchRecord<'a> {
    /// Transitions taken in this batch step.
    pub env_steps: u64,
    /// Returns of the episodes that ended in this batch step.
    pub episode_returns: &'a [f64],
    /// Wall time of the batch step, seconds.
    pub step_seconds: f64,
    /// Per constraint k: new violations (activations) this batch step.
    pub violations: &'a [u64],
    /// Per constraint k: emergency shutdowns it caused this batch step.
    pub shutdowns: &'a [u64],
    /// Actions the shield replaced this batch step.
    pub shield_interventions: u64,
    /// Safety response times observed this batch step, seconds.
    pub response_seconds: &'a [f64],
    /// Returns of episodes that ended in this batch step, with their env and episode: counted
    /// and observed like `episode_returns`, and the exemplars of the reward histograms.
    pub ended: &'a [Observed],
    /// Safety response times with their env, episode and incident: observed like
    /// `response_seconds`, and the exemplars of `safety_response_time_seconds`.
    pub responses: &'a [Observed],
}

/// The outcomes an episode ends with, as `episode_outcomes_total`'s `outcome` label: every
/// finished episode is exactly one of them.
pub const OUTCOMES: [&str; 4] = ["success", "failure", "shutdown", "truncated"];

/// One batch's per-env episode series: `episode_outcomes_total{env,outcome}` (every outcome's
/// series created, at 0, with the batch) and `episode_reward_by_env{env}`.
#[derive(Debug)]
pub struct Outcomes {
    /// By [`OUTCOMES`] index.
    counts: [CounterF; 4],
    reward: ExemplarHistogram,
}

impl Outcomes {
    /// The series of env `env_id` in the built-in families `b`.
    pub fn new(b: &Builtins, env_id: &str) -> Self {
        let counts = OUTCOMES.map(|o| match b.episode_outcomes.child(&[env_id, o]) {
            Ok((AnyChild::Counter(c), _)) => c,
            _ => CounterF::default(),
        });
        let reward = match b.episode_reward_by_env.child(&[env_id]) {
            Ok((AnyChild::Histogram(h), _)) => h,
            _ => ExemplarHistogram::new([1.0]),
        };
        Self { counts, reward }
    }
}

/// The series one env batch updates (labelled by its env id and constraints).
#[derive(Debug)]
pub struct EnvMetrics {
    pub(crate) env_id: String,
    pub(crate) constraint_names: Vec<String>,
    pub(crate) constraint_types: Vec<String>,
    pub(crate) severities: Vec<&'static str>,
    pub(crate) env_steps: CounterF,
    pub(crate) episodes: CounterF,
    pub(crate) step_latency: ExemplarHistogram,
    pub(crate) shield: CounterF,
    pub(crate) violations: Vec<CounterF>,
    pub(crate) shutdowns: Vec<CounterF>,
    pub(crate) reward: ExemplarHistogram,
    pub(crate) outcomes: Outcomes,
    pub(crate) response: ExemplarHistogram,
    pub(crate) last_violation: GaugeF,
    pub(crate) active: GaugeF,
    pub(crate) contribution: AtomicI64,
    pub(crate) safety: AtomicU8,
    pub(crate) health: Arc<HealthState>,
    pub(crate) violation_ids: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) audit_losses: Arc<super::registry::AuditLosses>,
}

fn state_of(v: u8) -> SafetyState {
    match v {
        1 => SafetyState::Inactive,
        2 => SafetyState::ShutDown,
        _ => SafetyState::Active,
    }
}

fn code_of(s: SafetyState) -> u8 {
    match s {
        SafetyState::Active => 0,
        SafetyState::Inactive => 1,
        SafetyState::ShutDown => 2,
    }
}

impl EnvMetrics {
    /// Records one batch step. Counts are added, each episode return and response time observed
    /// once, the batch latency observed once; extra entries in `violations`/`shutdowns` beyond
    /// the env's constraints are ignored.
    #[inline]
    pub fn record_batch(&self, rec: &BatchRecord<'_>) {
        if rec.env_steps > 0 {
            self.env_steps.inc_by(rec.env_steps as f64);
        }
        let ended = rec.episode_returns.len() + rec.ended.len();
        if ended > 0 {
            self.episodes.inc_by(ended as f64);
            for &r in rec.episode_returns {
                self.reward.observe(r);
                self.outcomes.reward.observe(r);
            }
        }
        self.record_exemplars(rec.ended, rec.responses);
        self.step_latency.observe(rec.step_seconds);
        let mut violated = false;
        for (c, &v) in self.violations.iter().zip(rec.violations) {
            if v > 0 {
                c.inc_by(v as f64);
                violated = true;
            }
        }
        for (c, &v) in self.shutdowns.iter().zip(rec.shutdowns) {
            if v > 0 {
                c.inc_by(v as f64);
            }
        }
        if rec.shield_interventions > 0 {
            self.shield.inc_by(rec.shield_interventions as f64);
        }
        for &s in rec.response_seconds {
            self.response.observe(s);
        }
        if violated {
            self.last_violation.set(unix_now());
        }
    }

    /// Observes episode returns and response times with their exemplars: the run id read and the
    /// clock stamped once for the batch step.
    fn record_exemplars(&self, ended: &[Observed], responses: &[Observed]) {
        if ended.is_empty() && responses.is_empty() {
            return;
        }
        let run = ExemplarLabels::run(logging::run_id());
        let at = SystemTime::now();
        for e in ended {
            let labels = run.with(&e.origin);
            self.reward.observe_with(e.value, &labels, at);
            self.outcomes.reward.observe_with(e.value, &labels, at);
        }
        for r in responses {
            self.response
                .observe_with(r.value, &run.with(&r.origin), at);
        }
    }

    /// Counts episodes by outcome: `[success, failure, shutdown, truncated]` (see [`OUTCOMES`]).
    pub fn record_outcomes(&self, counts: [u64; 4]) {
        for (c, n) in self.outcomes.counts.iter().zip(counts) {
            if n > 0 {
                c.inc_by(n as f64);
            }
        }
    }

    /// Sets how many envs this batch contributes to `active_environments` (the gauge is the sum
    /// over live batches; the contribution is withdrawn when the handle is dropped).
    pub fn set_active(&self, n: i64) {
        let old = self.contribution.swap(n, Ordering::Relaxed);
        self.active.inc_by((n - old) as f64);
    }

    /// Reports the batch's safety layer state to the health checks.
    pub fn set_safety_state(&self, state: SafetyState) {
        let old = state_of(self.safety.swap(code_of(state), Ordering::Relaxed));
        if old != state {
            self.health.batch(old, -1);
            self.health.batch(state, 1);
        }
    }

    /// Where an audit trail fed by this batch reports its losses.
    pub fn audit_losses(&self) -> Arc<super::registry::AuditLosses> {
        self.audit_losses.clone()
    }

    /// The env id the series are labelled with.
    pub fn env_id(&self) -> &str {
        &self.env_id
    }

    /// Logs a violation of constraint `k` (rate-limited, see [`logging`]) and returns its id.
    pub fn log_violation(
        &self,
        k: usize,
        env_index: usize,
        current_value: f64,
        limit: f64,
    ) -> String {
        let id = logging::violation_id(&self.violation_ids);
        logging::safety_violation(&self.violation(k, env_index, current_value, limit, &id));
        id
    }

    /// The log record of a violation of constraint `k`.
    fn violation<'a>(
        &'a self,
        k: usize,
        env_index: usize,
        current_value: f64,
        limit: f64,
        violation_id: &'a str,
    ) -> SafetyEvent<'a> {
        SafetyEvent {
            env: &self.env_id,
            env_index: Some(env_index),
            constraint: self.name(k),
            constraint_type: self
                .constraint_types
                .get(k)
                .map_or("unknown", |s| s.as_str()),
            severity: self.severities.get(k).copied().unwrap_or("warning"),
            current_value,
            limit,
            violation_id,
        }
    }

    /// How many of `count` new violations of constraint `k` the rate limiter lets be logged now
    /// (one decision for a batch's worth).
    pub fn violations_passing(&self, k: usize, count: u64) -> u64 {
        logging::safety_violations_passing(&self.env_id, self.name(k), count)
    }

    /// How many of `count` emergency shutdowns by constraint `k` may be logged now.
    pub fn shutdowns_passing(&self, k: usize, count: u64) -> u64 {
        logging::emergency_shutdowns_passing(&self.env_id, self.name(k), count)
    }

    /// Reserves `count` violation ids; the first is the returned number plus one.
    pub fn take_violation_ids(&self, count: u64) -> u64 {
        self.violation_ids
            .fetch_add(count, std::sync::atomic::Ordering::Relaxed)
    }

    /// Logs a violation of constraint `k` with id number `id`, already let through by
    /// [`EnvMetrics::violations_passing`].
    pub fn log_violation_passed(
        &self,
        k: usize,
        (env_index, current_value, limit): (usize, f64, f64),
        id: u64,
        at: logging::Correlation,
    ) {
        let id = logging::violation_id_text(id);
        let event = self.violation(k, env_index, current_value, limit, &id);
        logging::safety_violation_passed_in(&event, at);
    }

    /// Logs an emergency shutdown by constraint `k`, already let through by
    /// [`EnvMetrics::shutdowns_passing`], with its episode and incident.
    pub fn log_shutdown_passed(
        &self,
        k: usize,
        (env_index, current_value, limit): (usize, f64, f64),
        at: logging::Correlation,
    ) {
        let env = (self.env_id.as_str(), Some(env_index));
        logging::emergency_shutdown_passed_in(env, self.name(k), current_value, limit, at);
    }

    fn name(&self, k: usize) -> &str {
        self.constraint_names
            .get(k)
            .map_or("unknown", |s| s.as_str())
    }

    /// Logs an emergency shutdown caused by constraint `k` (rate-limited).
    pub fn log_shutdown(&self, k: usize, env_index: usize, current_value: f64, limit: f64) {
        let reason = self
            .constraint_names
            .get(k)
            .map_or("unknown", |s| s.as_str());
        logging::emergency_shutdown(&self.env_id, Some(env_index), reason, current_value, limit);
    }
}

impl Drop for EnvMetrics {
    fn drop(&mut self) {
        let n = self.contribution.swap(0, Ordering::Relaxed);
        self.active.dec_by(n as f64);
        self.health
            .batch(state_of(self.safety.load(Ordering::Relaxed)), -1);
        self.health.live(-1);
    }
}
