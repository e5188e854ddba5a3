//! Metric families with a cardinality guard.
//!
//! A [`GuardedFamily`] holds at most `limit` label sets. Once full, a new label set folds into
//! the series whose every label value is `other`, and `metric_label_overflow_total{metric}` counts
//! the fold, so a fleet of envs with unbounded ids cannot exhaust memory or the Prometheus server.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder};
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::TypedMetric;
use std::sync::Mutex;

use super::types::CounterF;
use crate::errors::CoreError;

/// The label value that absorbs label sets past the family's limit.
pub const OVERFLOW_VALUE: &str = "other";

/// The values of one series, paired with the family's label names for encoding.
///
/// Equality and hashing use the values only: within a family the names never differ.
#[derive(Debug, Clone)]
pub struct LabelSet {
    names: Arc<[String]>,
    values: Box<[String]>,
}

impl LabelSet {
    /// A label set; `values` must have one entry per name (checked by the family).
    pub fn new(names: Arc<[String]>, values: Box<[String]>) -> Self {
        Self { names, values }
    }

    /// The label values, in name order.
    pub fn values(&self) -> &[String] {
        &self.values
    }
}

impl PartialEq for LabelSet {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl Eq for LabelSet {}

impl Hash for LabelSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.values.hash(state);
    }
}

impl EncodeLabelSet for LabelSet {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        for (k, v) in self.names.iter().zip(self.values.iter()) {
            (k.as_str(), v.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// Counts label sets folded into `other`, by metric name.
pub type OverflowFamily = Family<LabelSet, CounterF>;

/// A family of series keyed by label values, bounded to `limit` label sets.
#[derive(Debug)]
pub struct GuardedFamily<M, C> {
    name: String,
    names: Arc<[String]>,
    family: Family<LabelSet, M, C>,
    limit: usize,
    insert: Mutex<()>,
    /// Label sets created within the limit (the `other` set excluded).
    held: AtomicUsize,
    /// The `other` set exists.
    folded: AtomicBool,
    overflow: Arc<OverflowFamily>,
    overflow_names: Arc<[String]>,
}

impl<M, C> GuardedFamily<M, C>
where
    M: Clone + EncodeMetric + TypedMetric,
    C: MetricConstructor<M>,
{
    /// A family named `name` (for the overflow counter) with `label_names`.
    pub fn new(
        name: &str,
        label_names: &[String],
        constructor: C,
        limit: usize,
        overflow: Arc<OverflowFamily>,
    ) -> Self {
        Self {
            name: name.to_string(),
            names: label_names.to_vec().into(),
            family: Family::new_with_constructor(constructor),
            limit: limit.max(1),
            insert: Mutex::new(()),
            held: AtomicUsize::new(0),
            folded: AtomicBool::new(false),
            overflow,
            overflow_names: vec!["metric".to_string()].into(),
        }
    }

    /// The label names, in order.
    pub fn label_names(&self) -> &[String] {
        &self.names
    }

    /// The underlying family (for encoding).
    pub fn family(&self) -> &Family<LabelSet, M, C> {
        &self.family
    }

    /// Number of label sets held (including a folded `other` set).
    pub fn len(&self) -> usize {
        self.held.load(Ordering::Relaxed) + usize::from(self.folded.load(Ordering::Relaxed))
    }

    /// True while no series exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The series for `values`, created if needed; the flag is true when it was folded into `other`.
    ///
    /// Returns:
    ///     A handle sharing the series' state (cheap to keep and update), and the fold flag.
    ///
    /// Errors:
    ///     [`CoreError::Metric`] when the number of values differs from the number of label names.
    pub fn child(&self, values: &[&str]) -> Result<(M, bool), CoreError> {
        if values.len() != self.names.len() {
            return Err(CoreError::Metric(format!(
                "{}: expected {} label values ({}), got {}",
                self.name,
                self.names.len(),
                self.names.join(", "),
                values.len()
            )));
        }
        let key = LabelSet::new(
            self.names.clone(),
            values.iter().map(|v| v.to_string()).collect(),
        );
        if let Some(m) = self.family.get(&key) {
            return Ok((m.clone(), false));
        }
        // Serialise creations so the count check and the insert are one step.
        let _guard = self.insert.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = self.family.get(&key) {
            return Ok((m.clone(), false));
        }
        let held = self.held.load(Ordering::Relaxed);
        if held < self.limit {
            self.held.store(held + 1, Ordering::Relaxed);
            return Ok((self.family.get_or_create_owned(&key), false));
        }
        let other = self.other_key();
        if self.family.get(&other).is_none() {
            self.folded.store(true, Ordering::Relaxed);
        }
        self.overflow
            .get_or_create(&LabelSet::new(
                self.overflow_names.clone(),
                vec![self.name.clone()].into(),
            ))
            .inc();
        Ok((self.family.get_or_create_owned(&other), true))
    }

    /// Drops the series for `values`; true if it existed. A handle kept elsewhere still works but
    /// is no longer exposed.
    pub fn remove(&self, values: &[&str]) -> bool {
        let key = LabelSet::new(
            self.names.clone(),
            values.iter().map(|v| v.to_string()).collect(),
        );
        let _guard = self.insert.lock().unwrap_or_else(|p| p.into_inner());
        if !self.family.remove(&key) {
            return false;
        }
        if key == self.other_key() {
            self.folded.store(false, Ordering::Relaxed);
        } else {
            self.held.fetch_sub(1, Ordering::Relaxed);
        }
        true
    }

    fn other_key(&self) -> LabelSet {
        LabelSet::new(
            self.names.clone(),
            self.names
                .iter()
                .map(|_| OVERFLOW_VALUE.to_string())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::types::NewCounter;

    fn family(limit: usize) -> (GuardedFamily<CounterF, NewCounter>, Arc<OverflowFamily>) {
        let overflow = Arc::new(OverflowFamily::default());
        let f = GuardedFamily::new("x", &["a".to_string()], NewCounter, limit, overflow.clone());
        (f, overflow)
    }

    #[test]
    fn a_removed_series_frees_its_place_under_the_limit() {
        let (f, _) = family(1);
        f.child(&["a"]).unwrap().0.inc();
        assert!(f.child(&["b"]).unwrap().1);
        assert!(!f.remove(&["c"]));
        assert!(f.remove(&["a"]) && f.remove(&[OVERFLOW_VALUE]));
        assert!(f.is_empty());
        let (b, folded) = f.child(&["b"]).unwrap();
        assert!(!folded && b.get() == 0.0 && f.len() == 1);
    }

    #[test]
    fn label_sets_past_the_limit_fold_into_other_and_are_counted() {
        let (f, overflow) = family(3);
        for i in 0..100 {
            let (c, folded) = f.child(&[&format!("v{i}")]).unwrap();
            c.inc();
            assert_eq!(folded, i >= 3);
        }
        assert_eq!(f.len(), 4);
        let (other, _) = f.child(&["other"]).unwrap();
        assert_eq!(other.get(), 97.0);
        let key = LabelSet::new(vec!["metric".to_string()].into(), vec!["x".into()].into());
        assert_eq!(overflow.get_or_create(&key).get(), 97.0);
        // A known label set keeps its own series.
        let (c, folded) = f.child(&["v1"]).unwrap();
        assert!(!folded);
        assert_eq!(c.get(), 1.0);
    }

    #[test]
    fn wrong_arity_is_an_error() {
        let (f, _) = family(3);
        assert!(matches!(f.child(&[]), Err(CoreError::Metric(_))));
        assert!(f.child(&["a", "b"]).is_err());
    }
}
