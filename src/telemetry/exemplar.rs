//! OpenMetrics exemplars on histogram buckets: the ids of the event an observation came from.
//!
//! An exemplar ties one observation to what caused it: `run_id`, `episode_id` and `incident_id`,
//! written exactly as the log lines and the audit trail write them (see [`super::logging`]), so a
//! metric's exemplar, a log line and an audit event join on the same values. Applications may give
//! their own labels instead ([`ExemplarLabels::given`]).
//!
//! A histogram series keeps one exemplar per bucket, the latest observed into it, with its value
//! and the time of observation. The labels are small and fixed in size: the run id is the shared
//! `Arc` every log line uses, the episode and incident are numbers rendered only when a scrape
//! asks, so an exemplar costs no allocation per observation. Keeping exemplars costs each
//! observation a lock; the one histogram observed on every batch step without an exemplar
//! (`step_latency_seconds`) keeps none and costs what it did. Only the OpenMetrics encoding writes
//! exemplars: the Prometheus text format 0.0.4 has none.
//!
//! OpenMetrics limits an exemplar's label set to 128 UTF-8 characters (names and values together).
//! The ids are added in the order `run_id`, `episode_id`, `incident_id`, and an id that would take
//! the set past the limit is left out (a run id up to about 80 characters leaves room for all
//! three; one over 122 never fits); labels an application gives are refused past the limit.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{
    EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder,
};
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::logging;
use super::names::is_label_name;
use crate::errors::CoreError;

/// Most UTF-8 characters (label names and values together) in one exemplar's label set.
pub const MAX_EXEMPLAR_CHARS: usize = 128;

/// Where an observation came from: the env (its index in the batch), the env's episode (1 for the
/// first) and the incident (0: none), for an exemplar's `episode_id` and `incident_id`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Origin {
    /// Index of the env in its batch.
    pub env_index: usize,
    /// The env's episode number.
    pub episode: u64,
    /// Incident number (0: none).
    pub incident: u64,
}

/// A value observed with where it came from.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Observed {
    /// The observed value.
    pub value: f64,
    /// Its origin.
    pub origin: Origin,
}

/// The labels of one exemplar.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExemplarLabels {
    run_id: Option<Arc<str>>,
    /// Env index in its batch and episode number: `episode_id` `"{env_index}-{episode}"`.
    episode: Option<(usize, u64)>,
    /// Incident number: `incident_id` `safety_000042`.
    incident: Option<u64>,
    /// Labels given by the application, checked.
    given: Option<Arc<[(String, String)]>>,
    /// Characters of the label set as encoded (names and values).
    chars: usize,
}

/// Decimal digits of `n`.
fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

impl ExemplarLabels {
    /// The run's id, then the ids added with [`Self::episode`] and [`Self::incident`].
    pub fn run(run_id: Arc<str>) -> Self {
        let mut me = Self::default();
        let n = "run_id".len() + run_id.chars().count();
        if me.fits(n) {
            me.chars += n;
            me.run_id = Some(run_id);
        }
        me
    }

    /// Adds `episode_id` of episode `episode` of the env at `env_index` (left out past the limit).
    pub fn episode(mut self, env_index: usize, episode: u64) -> Self {
        let n = "episode_id".len() + digits(env_index as u64) + 1 + digits(episode);
        if self.given.is_none() && self.fits(n) {
            self.chars += n;
            self.episode = Some((env_index, episode));
        }
        self
    }

    /// Adds `incident_id` of incident number `n` (0: unknown, left out; left out past the limit).
    pub fn incident(mut self, n: u64) -> Self {
        let len = "incident_id".len() + "safety_".len() + digits(n).max(6);
        if n > 0 && self.given.is_none() && self.fits(len) {
            self.chars += len;
            self.incident = Some(n);
        }
        self
    }

    /// These labels (a run's) with the ids of `origin` added.
    pub fn with(&self, origin: &Origin) -> Self {
        self.clone()
            .episode(origin.env_index, origin.episode)
            .incident(origin.incident)
    }

    /// Labels an application gives, in its order.
    ///
    /// Errors:
    ///     [`CoreError::Metric`] naming the label for an invalid or repeated label name, and for a
    ///     set longer than [`MAX_EXEMPLAR_CHARS`] characters.
    pub fn given(labels: Vec<(String, String)>) -> Result<Self, CoreError> {
        let mut chars = 0;
        for (i, (name, value)) in labels.iter().enumerate() {
            if !is_label_name(name) {
                return Err(CoreError::Metric(format!(
                    "exemplar: invalid label name {name:?} (names match [a-zA-Z_][a-zA-Z0-9_]* \
                     and do not start with __)"
                )));
            }
            if labels[..i].iter().any(|(n, _)| n == name) {
                return Err(CoreError::Metric(format!(
                    "exemplar: duplicate label name {name:?}"
                )));
            }
            chars += name.chars().count() + value.chars().count();
        }
        if chars > MAX_EXEMPLAR_CHARS {
            return Err(CoreError::Metric(format!(
                "exemplar: label names and values come to {chars} characters; OpenMetrics allows \
                 at most {MAX_EXEMPLAR_CHARS}"
            )));
        }
        Ok(Self {
            given: Some(labels.into()),
            chars,
            ..Self::default()
        })
    }

    /// Characters of the label set as encoded (names and values together).
    pub fn chars(&self) -> usize {
        self.chars
    }

    fn fits(&self, n: usize) -> bool {
        self.chars + n <= MAX_EXEMPLAR_CHARS
    }
}

impl EncodeLabelSet for ExemplarLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        if let Some(given) = &self.given {
            for (k, v) in given.iter() {
                (k.as_str(), v.as_str()).encode(encoder.encode_label())?;
            }
            return Ok(());
        }
        if let Some(run) = &self.run_id {
            ("run_id", &**run).encode(encoder.encode_label())?;
        }
        if let Some((env_index, episode)) = self.episode {
            let id = logging::episode_id(env_index, episode);
            ("episode_id", id.as_str()).encode(encoder.encode_label())?;
        }
        if let Some(n) = self.incident {
            let id = logging::incident_id(n);
            ("incident_id", id.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// A histogram series; one of a family with exemplars keeps the latest of each bucket.
///
/// Keeping exemplars costs every observation a lock, given an exemplar or not; a family observed on
/// every batch step without one (`step_latency_seconds`) is made without them and ignores any given.
#[derive(Debug, Clone)]
pub struct ExemplarHistogram(Store);

#[derive(Debug, Clone)]
enum Store {
    Plain(Histogram),
    Exemplars(HistogramWithExemplars<ExemplarLabels>),
}

impl ExemplarHistogram {
    /// A histogram keeping exemplars, with these bucket upper bounds (an implicit `+Inf` follows).
    pub fn new(buckets: impl IntoIterator<Item = f64>) -> Self {
        let b: Vec<f64> = buckets.into_iter().collect();
        Self(Store::Exemplars(HistogramWithExemplars::new(b.into_iter())))
    }

    /// A histogram without exemplars, with these bucket upper bounds.
    pub fn plain(buckets: impl IntoIterator<Item = f64>) -> Self {
        Self(Store::Plain(Histogram::new(buckets)))
    }

    /// Records one observation without an exemplar.
    #[inline]
    pub fn observe(&self, v: f64) {
        match &self.0 {
            Store::Plain(h) => h.observe(v),
            Store::Exemplars(h) => h.observe(v, None, None),
        }
    }

    /// Records one observation; it becomes its bucket's exemplar, stamped `at` (unstamped if
    /// `at` is before 1970), unless the histogram keeps none.
    #[inline]
    pub fn observe_with(&self, v: f64, labels: &ExemplarLabels, at: SystemTime) {
        match &self.0 {
            Store::Plain(h) => h.observe(v),
            Store::Exemplars(h) => {
                let at = at.duration_since(UNIX_EPOCH).is_ok().then_some(at);
                h.observe(v, Some(labels.clone()), at);
            }
        }
    }

    /// True if the histogram keeps exemplars.
    pub fn keeps_exemplars(&self) -> bool {
        matches!(self.0, Store::Exemplars(_))
    }
}

impl TypedMetric for ExemplarHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ExemplarHistogram {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        match &self.0 {
            Store::Plain(h) => h.encode(encoder),
            Store::Exemplars(h) => h.encode(encoder),
        }
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
#[path = "exemplar_tests.rs"]
mod tests;
