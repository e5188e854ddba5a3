//! Python face of the drift tracker (``neorl_industrial.drift.DriftMonitor`` holds one).

use numpy::PyReadonlyArray2;
use pyo3::prelude::*;

use crate::errors::CoreError;
use crate::telemetry::drift::{DriftTracker, FeatureProfile, Source};

/// Sliding-window drift of features against a reference profile (see ``telemetry/drift.rs``).
#[pyclass(module = "neorl_industrial._core")]
pub struct CoreDrift {
    inner: DriftTracker,
}

#[pymethods]
impl CoreDrift {
    /// ``features``: ``(source, name, edges, shares)`` per feature, in row order; ``window``:
    /// batch steps kept.
    #[new]
    fn new(features: Vec<(String, String, Vec<f64>, Vec<f64>)>, window: usize) -> PyResult<Self> {
        let profiles = features
            .into_iter()
            .map(|(source, name, edges, shares)| {
                let s = Source::parse(&source).ok_or_else(|| {
                    CoreError::config(
                        "profile",
                        format!("feature {name:?}: unknown source {source:?}"),
                    )
                })?;
                FeatureProfile::new(&name, s, edges, shares)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            inner: DriftTracker::new(profiles, window)?,
        })
    }

    /// Adds one batch step: a ``(rows, features)`` float64 array.
    fn observe(&mut self, py: Python<'_>, rows: PyReadonlyArray2<'_, f64>) -> PyResult<()> {
        let k = self.inner.features().len();
        let a = rows.as_array();
        if a.ncols() != k {
            return Err(CoreError::config(
                "rows",
                format!("must have {k} columns (one per feature), got {}", a.ncols()),
            )
            .into());
        }
        let flat: Vec<f64> = a.iter().copied().collect();
        let inner = &mut self.inner;
        py.detach(|| inner.observe(&flat));
        Ok(())
    }

    /// PSI of feature ``i`` (None while its window is empty).
    fn psi(&self, i: usize) -> PyResult<Option<f64>> {
        self.check(i)?;
        Ok(self.inner.psi(i))
    }

    /// Wasserstein-1 distance of feature ``i``, in its unit (None while its window is empty).
    fn w1(&self, i: usize) -> PyResult<Option<f64>> {
        self.check(i)?;
        Ok(self.inner.w1(i))
    }

    /// Values of feature ``i`` in the window.
    fn samples(&self, i: usize) -> PyResult<u64> {
        self.check(i)?;
        Ok(self.inner.samples(i))
    }
}

impl CoreDrift {
    fn check(&self, i: usize) -> PyResult<()> {
        let k = self.inner.features().len();
        if i >= k {
            return Err(
                CoreError::config("feature", format!("index {i} out of range 0..{k}")).into(),
            );
        }
        Ok(())
    }
}
