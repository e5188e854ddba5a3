//! Python faces of the safety layer: the audit trail and the standalone monitor.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{IntoPyArray, PyArrayMethods, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::errors::CoreError;
use crate::py::convert;
use crate::py::events::events_columns;
use crate::py::telemetry::MetricsRegistry;
use crate::safety::audit::AuditTrail;
use crate::safety::config;
use crate::safety::monitor::Monitor;
use crate::safety::{ConstraintSet, EventKind, SafetyEvent};
use crate::telemetry::logging;
use crate::telemetry::registry::Registry;

/// A JSON Lines audit trail written by a background thread.
///
/// Args:
///     path: File to append to (created if missing).
///     capacity: Queue length in batches; when full, events are dropped and counted.
#[pyclass(module = "neorl_industrial._core", name = "AuditTrail")]
pub struct PyAuditTrail {
    inner: Arc<AuditTrail>,
}

impl PyAuditTrail {
    /// The shared trail.
    pub fn inner(&self) -> &Arc<AuditTrail> {
        &self.inner
    }
}

#[pymethods]
impl PyAuditTrail {
    #[new]
    #[pyo3(signature = (path, capacity=4096))]
    fn new(path: PathBuf, capacity: usize) -> PyResult<Self> {
        Ok(Self {
            inner: Arc::new(AuditTrail::open(&path, capacity)?),
        })
    }

    /// The file written to.
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.path().to_path_buf()
    }

    /// Events dropped so far (queue full, write errors, or after close).
    #[getter]
    fn dropped(&self) -> u64 {
        self.inner.dropped()
    }

    /// Events written so far.
    #[getter]
    fn written(&self) -> u64 {
        self.inner.written()
    }

    /// The last write problem, if any.
    #[getter]
    fn last_error(&self) -> Option<String> {
        self.inner.last_error()
    }

    /// Queues a free-form event with extra fields given as a JSON object's members (no braces).
    #[pyo3(signature = (event, level="info", fields_json=""))]
    fn record(&self, py: Python<'_>, event: &str, level: &str, fields_json: &str) {
        // May wait for a writer that fell behind: not while holding the GIL.
        let t = Arc::clone(&self.inner);
        py.detach(move || t.record(event, level, fields_json));
    }

    /// Blocks until every queued event is written.
    fn flush(&self, py: Python<'_>) {
        let t = Arc::clone(&self.inner);
        py.detach(move || t.flush());
    }

    /// Flushes and stops the writer.
    fn close(&self, py: Python<'_>) {
        let t = Arc::clone(&self.inner);
        py.detach(move || t.close());
    }
}

/// Counts and logs each alarm raised in `events` into `reg`, as `env_id`'s violations.
fn record_opened(reg: &Registry, set: &ConstraintSet, env_id: &str, events: &[SafetyEvent]) {
    for e in events
        .iter()
        .filter(|e| e.kind == EventKind::IncidentOpened)
    {
        let Some(c) = e
            .constraint
            .and_then(|k| set.constraints.get(usize::from(k)))
        else {
            continue;
        };
        reg.record_safety_violation(&logging::SafetyEvent {
            env: env_id,
            env_index: Some(e.env),
            constraint: &c.name,
            constraint_type: &c.constraint_type,
            severity: c.severity.as_str(),
            current_value: e.value,
            limit: c.limit_near(e.value),
            violation_id: "",
        });
    }
}

/// Constraint checks for signal vectors from any source (a real plant, a log, another simulator).
///
/// Args:
///     constraints: Constraint configuration (a list of full entries, or a mapping name -> entry).
///     signals: Signal names, in the column order of the values passed to ``check``.
///     num_systems: Number of independent systems checked together.
///     dt: Seconds between checks (for response times).
#[pyclass(module = "neorl_industrial._core", name = "CoreMonitor")]
pub struct PyMonitor {
    monitor: Monitor,
    signals: Vec<String>,
}

#[pymethods]
impl PyMonitor {
    #[new]
    #[pyo3(signature = (constraints, signals, num_systems=1, dt=1.0))]
    fn new(
        constraints: &Bound<'_, PyAny>,
        signals: Vec<String>,
        num_systems: usize,
        dt: f64,
    ) -> PyResult<Self> {
        let tree = convert::value_tree(constraints, "constraints")?;
        let names: Vec<&str> = signals.iter().map(String::as_str).collect();
        let set = config::build(&tree, &names, &ConstraintSet::default())?;
        if set.is_empty() {
            return Err(CoreError::config("constraints", "needs at least one constraint").into());
        }
        Ok(Self {
            monitor: Monitor::new(set, signals.len(), num_systems, dt)?,
            signals,
        })
    }

    /// Signal names.
    #[getter]
    fn signals(&self) -> Vec<String> {
        self.signals.clone()
    }

    /// The constraints: ``(name, constraint_type, severity, kind, limit)`` per constraint.
    #[getter]
    fn constraints(&self) -> Vec<(String, String, &'static str, &'static str, f64)> {
        self.monitor
            .constraints()
            .constraints
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.constraint_type.clone(),
                    c.severity.as_str(),
                    c.kind.as_str(),
                    c.limit(),
                )
            })
            .collect()
    }

    /// Checks ``values[num_systems, n_signals]`` (finite numbers) at wall time ``wall``. With a
    /// ``registry``, each new violation (an alarm raised) is counted in its
    /// ``safety_violations_total`` and logged (rate-limited) as in env ``env_id``, as an env
    /// batch does.
    ///
    /// Returns:
    ///     ``(values, margins, active, events)``: ``num_systems x k`` arrays and the incident events.
    #[pyo3(signature = (values, wall, registry=None, env_id=""))]
    fn check<'py>(
        &mut self,
        py: Python<'py>,
        values: PyReadonlyArray2<'py, f64>,
        wall: f64,
        registry: Option<PyRef<'py, MetricsRegistry>>,
        env_id: &str,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let a = values.as_array();
        if a.iter().any(|v| !v.is_finite()) {
            return Err(CoreError::config("state", "values must be finite").into());
        }
        let flat: Vec<f64> = a.iter().copied().collect();
        let out = self.monitor.check(&flat, wall)?;
        if let Some(reg) = registry {
            let (reg, set) = (reg.inner(), self.monitor.constraints());
            py.detach(|| record_opened(&reg, set, env_id, &out.events));
        }
        let k = self.monitor.constraints().len();
        let n = flat.len() / self.signals.len().max(1);
        let shape = |v: Vec<f64>| -> PyResult<Bound<'py, PyAny>> {
            Ok(v.into_pyarray(py).reshape([n, k])?.into_any())
        };
        PyTuple::new(
            py,
            [
                shape(out.values)?,
                shape(out.margins)?,
                out.active.into_pyarray(py).reshape([n, k])?.into_any(),
                events_columns(py, &out.events)?.into_any(),
            ],
        )
    }

    /// Forgets alarm states and previous values.
    fn reset(&mut self) {
        self.monitor.reset();
    }
}
