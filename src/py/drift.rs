//! Python face of a drift watch (``neorl_industrial.drift.DriftMonitor`` holds one).

use std::sync::{Arc, Mutex, MutexGuard};

use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::errors::CoreError;
use crate::py::telemetry::MetricsRegistry;
use crate::telemetry::drift::{FeatureProfile, Source};
use crate::telemetry::drift_watch::{quantile_profile, DriftWatch, Reference};

/// One feature of a profile as Python passes it: ``(source, name, edges, shares)``.
type FeatureTuple = (String, String, Vec<f64>, Vec<f64>);

fn source(s: &str, name: &str) -> Result<Source, CoreError> {
    Source::parse(s).ok_or_else(|| {
        CoreError::config(
            "profile",
            format!("feature {name:?}: unknown source {s:?} (observation, action or reward)"),
        )
    })
}

/// Sliding-window drift of an env's features against a reference (see
/// ``telemetry/drift_watch.rs``), fed row by row (:meth:`observe`) or by a vector env it is
/// attached to (``CoreVecEnv.set_drift``), exporting ``feature_drift`` to ``registry``.
#[pyclass(module = "neorl_industrial._core")]
pub struct CoreDrift {
    inner: Arc<Mutex<DriftWatch>>,
}

#[pymethods]
impl CoreDrift {
    /// ``features``: ``(source, name)`` per feature in row order; ``profile``: ``(source, name,
    /// edges, shares)`` per feature, or None with ``warmup`` (batch steps) and ``bins``;
    /// ``window``: batch steps kept; ``sample``: rows a vector env gives per batch step (0: all).
    #[new]
    #[pyo3(signature = (features, window, profile=None, warmup=None, bins=10, sample=64, registry=None, env_id=""))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        features: Vec<(String, String)>,
        window: usize,
        profile: Option<Vec<FeatureTuple>>,
        warmup: Option<usize>,
        bins: usize,
        sample: usize,
        registry: Option<PyRef<'_, MetricsRegistry>>,
        env_id: &str,
    ) -> PyResult<Self> {
        let features = features
            .into_iter()
            .map(|(s, n)| Ok((source(&s, &n)?, n)))
            .collect::<Result<Vec<_>, CoreError>>()?;
        let reference = match (profile, warmup) {
            (Some(p), None) => Reference::Profile(
                p.into_iter()
                    .map(|(s, n, e, sh)| FeatureProfile::new(&n, source(&s, &n)?, e, sh))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            (None, Some(steps)) => Reference::Warmup { steps, bins },
            _ => {
                return Err(CoreError::config(
                    "drift",
                    "give a reference profile or a warmup, not both and not neither",
                )
                .into())
            }
        };
        let reg = registry.as_ref().map(|r| r.inner().clone());
        let gauges = reg.as_ref().map(|r| (r.builtins(), env_id));
        let watch = DriftWatch::new(features, reference, window, sample, gauges)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(watch)),
        })
    }

    /// Adds one batch step: a ``(rows, features)`` float64 array (NaN values are not counted).
    fn observe(&self, py: Python<'_>, rows: PyReadonlyArray2<'_, f64>) -> PyResult<()> {
        let a = rows.as_array();
        let k = self.lock().features().len();
        if a.ncols() != k {
            return Err(CoreError::config(
                "rows",
                format!("must have {k} columns (one per feature), got {}", a.ncols()),
            )
            .into());
        }
        let flat: Vec<f64> = a.iter().copied().collect();
        let inner = &self.inner;
        py.detach(|| {
            inner
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .observe_rows(&flat)
        })?;
        Ok(())
    }

    /// Per feature: ``(psi, wasserstein, samples)`` (None while warming up or with an empty
    /// window).
    fn report(&self) -> Vec<(Option<f64>, Option<f64>, u64)> {
        self.lock().report()
    }

    /// The reference in use as ``(source, name, edges, shares)`` per feature (None while warming
    /// up).
    fn profile(&self) -> Option<Vec<FeatureTuple>> {
        self.lock().profile().map(|p| {
            p.iter()
                .map(|f| {
                    let (e, s) = (f.edges().to_vec(), f.shares().to_vec());
                    (f.source.as_str().to_string(), f.name.clone(), e, s)
                })
                .collect()
        })
    }

    /// Batch steps left in the warmup (0 once the reference is set).
    #[getter]
    fn warmup_left(&self) -> usize {
        self.lock().warmup_left()
    }

    /// ``(edges, shares)`` of ``values`` cut into ``bins`` quantile bins (what a profile holds
    /// per feature).
    #[staticmethod]
    fn quantile_bins(
        values: PyReadonlyArray1<'_, f64>,
        bins: usize,
        name: &str,
    ) -> PyResult<(Vec<f64>, Vec<f64>)> {
        let mut v: Vec<f64> = values.as_array().iter().copied().collect();
        let f = quantile_profile(name, Source::Observation, &mut v, bins)?;
        Ok((f.edges().to_vec(), f.shares().to_vec()))
    }
}

impl CoreDrift {
    fn lock(&self) -> MutexGuard<'_, DriftWatch> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The watch, shared with the batch it is attached to.
    pub fn shared(&self) -> Arc<Mutex<DriftWatch>> {
        self.inner.clone()
    }
}
