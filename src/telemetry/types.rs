//! The metric value types every family uses, and the bucket constructor for histograms.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::MetricConstructor;
use prometheus_client::metrics::gauge::Gauge;

use super::exemplar::ExemplarHistogram;

/// A float counter (Python increments by any non-negative amount).
pub type CounterF = Counter<f64, AtomicU64>;

/// A float gauge.
pub type GaugeF = Gauge<f64, AtomicU64>;

/// Creates histograms with a fixed set of bucket upper bounds, keeping exemplars or not.
#[derive(Debug, Clone)]
pub struct Buckets {
    /// Upper bounds (an implicit `+Inf` follows).
    pub bounds: Arc<[f64]>,
    /// The histograms keep exemplars.
    pub exemplars: bool,
}

impl MetricConstructor<ExemplarHistogram> for Buckets {
    fn new_metric(&self) -> ExemplarHistogram {
        let bounds = self.bounds.iter().copied();
        if self.exemplars {
            ExemplarHistogram::new(bounds)
        } else {
            ExemplarHistogram::plain(bounds)
        }
    }
}

/// Creates default counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewCounter;

impl MetricConstructor<CounterF> for NewCounter {
    fn new_metric(&self) -> CounterF {
        CounterF::default()
    }
}

/// Creates default gauges.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewGauge;

impl MetricConstructor<GaugeF> for NewGauge {
    fn new_metric(&self) -> GaugeF {
        GaugeF::default()
    }
}

/// Checks histogram bucket bounds: finite and strictly increasing (an implicit `+Inf` follows).
pub fn check_buckets(name: &str, buckets: &[f64]) -> Result<(), crate::errors::CoreError> {
    let finite: Vec<f64> = buckets
        .iter()
        .copied()
        .filter(|b| *b != f64::INFINITY)
        .collect();
    if finite.is_empty() || finite.iter().any(|b| !b.is_finite()) {
        return Err(crate::errors::CoreError::Metric(format!(
            "{name}: buckets must be finite numbers (at least one), got {buckets:?}"
        )));
    }
    if finite.windows(2).any(|w| w[0] >= w[1]) {
        return Err(crate::errors::CoreError::Metric(format!(
            "{name}: buckets must be strictly increasing, got {buckets:?}"
        )));
    }
    Ok(())
}
