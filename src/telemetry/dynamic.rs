//! One named metric family of any type: what the registry stores and encodes.

use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;

use super::exemplar::ExemplarHistogram;
use super::family::{GuardedFamily, OverflowFamily};
use super::names;
use super::types::{check_buckets, Buckets, CounterF, GaugeF, NewCounter, NewGauge};
use crate::errors::CoreError;

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic counter; exposed with a `_total` suffix.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Observations counted in cumulative buckets.
    Histogram,
}

impl Kind {
    /// Lower-case name, as in `# TYPE` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The series store of a family, by type.
#[derive(Debug)]
pub enum AnyFamily {
    /// Counters.
    Counter(GuardedFamily<CounterF, NewCounter>),
    /// Gauges.
    Gauge(GuardedFamily<GaugeF, NewGauge>),
    /// Histograms with the family's buckets.
    Histogram(GuardedFamily<ExemplarHistogram, Buckets>),
}

/// A handle on one series: updates go straight to its atomics.
#[derive(Debug, Clone)]
pub enum AnyChild {
    /// A counter series.
    Counter(CounterF),
    /// A gauge series.
    Gauge(GaugeF),
    /// A histogram series.
    Histogram(ExemplarHistogram),
}

/// What a new family is: type, name, help, label names, buckets, and whether it is a safety family.
#[derive(Debug, Clone)]
pub struct FamilySpec<'a> {
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Metric name; a counter's `_total` suffix is optional.
    pub name: &'a str,
    /// Help text.
    pub help: &'a str,
    /// Label names.
    pub labels: &'a [String],
    /// Histogram bucket upper bounds (ignored for other types).
    pub buckets: &'a [f64],
    /// Also served on `/safety/metrics`.
    pub safety: bool,
    /// Histograms: the buckets keep exemplars (a lock on every observation, with one or not).
    pub exemplars: bool,
}

/// A registered family: name (without a counter's `_total`), help, store.
#[derive(Debug)]
pub struct MetricFamily {
    name: String,
    help: String,
    kind: Kind,
    safety: bool,
    negative_buckets: bool,
    store: AnyFamily,
}

impl MetricFamily {
    /// Builds a family; unlabelled families get their one series at once (exposed as 0).
    ///
    /// Errors:
    ///     [`CoreError::Metric`] for an invalid name, label name or bucket list.
    pub fn new(
        spec: &FamilySpec<'_>,
        limit: usize,
        overflow: Arc<OverflowFamily>,
    ) -> Result<Self, CoreError> {
        let name = match spec.kind {
            Kind::Counter => spec.name.strip_suffix("_total").unwrap_or(spec.name),
            _ => spec.name,
        };
        let reserved: &[&str] = match spec.kind {
            Kind::Histogram => &["le"],
            _ => &[],
        };
        names::check(name, spec.labels, reserved)?;
        let store = match spec.kind {
            Kind::Counter => AnyFamily::Counter(GuardedFamily::new(
                name,
                spec.labels,
                NewCounter,
                limit,
                overflow,
            )),
            Kind::Gauge => AnyFamily::Gauge(GuardedFamily::new(
                name,
                spec.labels,
                NewGauge,
                limit,
                overflow,
            )),
            Kind::Histogram => {
                check_buckets(name, spec.buckets)?;
                let b: Vec<f64> = spec
                    .buckets
                    .iter()
                    .copied()
                    .filter(|b| b.is_finite())
                    .collect();
                AnyFamily::Histogram(GuardedFamily::new(
                    name,
                    spec.labels,
                    Buckets {
                        bounds: b.into(),
                        exemplars: spec.exemplars,
                    },
                    limit,
                    overflow,
                ))
            }
        };
        let fam = Self {
            name: name.to_string(),
            help: names::clean_help(spec.help),
            kind: spec.kind,
            safety: spec.safety,
            negative_buckets: spec.kind == Kind::Histogram && spec.buckets.iter().any(|b| *b < 0.0),
            store,
        };
        if spec.labels.is_empty() {
            fam.child(&[])?;
        }
        Ok(fam)
    }

    /// The family name (a counter's without `_total`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The type.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// True for families also served on `/safety/metrics`.
    pub fn is_safety(&self) -> bool {
        self.safety
    }

    /// The label names.
    pub fn label_names(&self) -> &[String] {
        match &self.store {
            AnyFamily::Counter(f) => f.label_names(),
            AnyFamily::Gauge(f) => f.label_names(),
            AnyFamily::Histogram(f) => f.label_names(),
        }
    }

    /// Number of series held.
    pub fn len(&self) -> usize {
        match &self.store {
            AnyFamily::Counter(f) => f.len(),
            AnyFamily::Gauge(f) => f.len(),
            AnyFamily::Histogram(f) => f.len(),
        }
    }

    /// True while the family holds no series.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True for a histogram with a negative bucket bound (OpenMetrics forbids its `_sum`).
    pub fn has_negative_buckets(&self) -> bool {
        match &self.store {
            AnyFamily::Histogram(_) => self.negative_buckets,
            _ => false,
        }
    }

    /// Every sample name the family exposes (to refuse clashes with other families).
    pub fn exposed_names(&self) -> Vec<String> {
        let n = &self.name;
        match self.kind {
            Kind::Counter => vec![format!("{n}_total"), n.clone()],
            Kind::Gauge => vec![n.clone()],
            Kind::Histogram => vec![
                n.clone(),
                format!("{n}_bucket"),
                format!("{n}_count"),
                format!("{n}_sum"),
            ],
        }
    }

    /// The series for `values` and whether it was folded into `other` by the cardinality guard.
    pub fn child(&self, values: &[&str]) -> Result<(AnyChild, bool), CoreError> {
        Ok(match &self.store {
            AnyFamily::Counter(f) => {
                let (c, o) = f.child(values)?;
                (AnyChild::Counter(c), o)
            }
            AnyFamily::Gauge(f) => {
                let (c, o) = f.child(values)?;
                (AnyChild::Gauge(c), o)
            }
            AnyFamily::Histogram(f) => {
                let (c, o) = f.child(values)?;
                (AnyChild::Histogram(c), o)
            }
        })
    }

    /// Drops the series for `values`; true if it existed.
    pub fn remove(&self, values: &[&str]) -> bool {
        match &self.store {
            AnyFamily::Counter(f) => f.remove(values),
            AnyFamily::Gauge(f) => f.remove(values),
            AnyFamily::Histogram(f) => f.remove(values),
        }
    }

    /// Writes the family: descriptor (even before the first series, so every family is
    /// discoverable from the first scrape) and samples.
    pub fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let ty = match self.kind {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
            Kind::Histogram => MetricType::Histogram,
        };
        let m = encoder.encode_descriptor(&self.name, &self.help, None, ty)?;
        match &self.store {
            AnyFamily::Counter(f) => f.family().encode(m),
            AnyFamily::Gauge(f) => f.family().encode(m),
            AnyFamily::Histogram(f) => f.family().encode(m),
        }
    }
}
