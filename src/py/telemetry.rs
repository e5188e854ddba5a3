//! Python face of the metrics registry: `MetricsRegistry`, metric families and their series.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::errors::CoreError;
use crate::telemetry::dynamic::{AnyChild, FamilySpec, Kind, MetricFamily};
use crate::telemetry::exemplar::{ExemplarHistogram, ExemplarLabels};
use crate::telemetry::health::{ModelIdentity, ReportContext, SafetyState, Status};
use crate::telemetry::logging::SafetyEvent;
use crate::telemetry::ops::Queue;
use crate::telemetry::registry::{default_registry, Format, Registry, Scope};
use crate::telemetry::routes::SERVICE;
use crate::telemetry::types::{CounterF, GaugeF};
use crate::telemetry::{BatchRecord, EnvMetrics};

/// A metrics registry (the process-wide default, or an isolated one).
///
/// Args:
///     max_label_sets: Most label sets per metric family; more fold into ``other``.
#[pyclass(module = "neorl_industrial._core", frozen)]
pub struct MetricsRegistry {
    inner: Arc<Registry>,
}

impl MetricsRegistry {
    /// The Rust registry, for env batches to record into.
    pub fn inner(&self) -> Arc<Registry> {
        self.inner.clone()
    }
}

fn scope(s: &str) -> Result<Scope, CoreError> {
    match s {
        "all" => Ok(Scope::All),
        "no_process" => Ok(Scope::NoProcess),
        "safety" => Ok(Scope::Safety),
        _ => Err(CoreError::config(
            "scope",
            format!("must be all, no_process or safety, got {s:?}"),
        )),
    }
}

fn kind(s: &str) -> Result<Kind, CoreError> {
    match s {
        "counter" => Ok(Kind::Counter),
        "gauge" => Ok(Kind::Gauge),
        "histogram" => Ok(Kind::Histogram),
        _ => Err(CoreError::config(
            "kind",
            format!("must be counter, gauge or histogram, got {s:?}"),
        )),
    }
}

fn severity(s: &str) -> Result<&'static str, CoreError> {
    match s {
        "info" => Ok("info"),
        "warning" => Ok("warning"),
        "critical" => Ok("critical"),
        _ => Err(CoreError::Metric(format!(
            "severity must be info, warning or critical, got {s:?}"
        ))),
    }
}

#[pymethods]
impl MetricsRegistry {
    #[new]
    #[pyo3(signature = (max_label_sets=1000))]
    fn new(max_label_sets: i64) -> PyResult<Self> {
        let n = usize::try_from(max_label_sets)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                CoreError::config(
                    "max_label_sets",
                    format!("must be at least 1, got {max_label_sets}"),
                )
            })?;
        Ok(Self {
            inner: Arc::new(Registry::new(n)),
        })
    }

    /// The process-wide registry every env records into unless given another.
    #[staticmethod]
    fn default_registry() -> Self {
        Self {
            inner: default_registry().clone(),
        }
    }

    /// Most label sets per family.
    #[getter]
    fn max_label_sets(&self) -> usize {
        self.inner.max_label_sets()
    }

    /// True if both objects wrap the same registry.
    fn same_as(&self, other: &MetricsRegistry) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The exposition: Prometheus text 0.0.4, or OpenMetrics 1.0; scope ``all``, ``no_process`` or ``safety``.
    #[pyo3(signature = (openmetrics=false, scope="all"))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        openmetrics: bool,
        scope: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let sc = self::scope(scope)?;
        let fmt = if openmetrics {
            Format::OpenMetrics
        } else {
            Format::Text
        };
        let reg = &self.inner;
        let text = py.detach(|| reg.encode(fmt, sc))?;
        Ok(PyBytes::new(py, text.as_bytes()))
    }

    /// Registers a family of ``kind`` (counter, gauge, histogram) and returns it.
    #[pyo3(signature = (kind, name, documentation, labelnames, buckets=Vec::new()))]
    fn register(
        &self,
        kind: &str,
        name: &str,
        documentation: &str,
        labelnames: Vec<String>,
        buckets: Vec<f64>,
    ) -> PyResult<CoreFamily> {
        let spec = FamilySpec {
            kind: self::kind(kind)?,
            name,
            help: documentation,
            labels: &labelnames,
            buckets: &buckets,
            safety: false,
            exemplars: true,
        };
        Ok(CoreFamily {
            fam: self.inner.register(&spec)?,
        })
    }

    /// Removes a family registered from Python; True if it was there (built-ins stay).
    fn unregister(&self, name: &str) -> bool {
        self.inner.unregister(name)
    }

    /// Names of the registered families.
    fn names(&self) -> Vec<String> {
        self.inner.names()
    }

    /// Marks a model (policy) as loaded for the ``model_loaded`` health check.
    fn set_model_loaded(&self, loaded: bool) {
        self.inner.health().set_model_loaded(loaded);
    }

    /// A service is loading ``what``: the ``model_loaded`` check fails (readiness 503) until
    /// :meth:`set_model`.
    fn set_model_loading(&self, what: &str) {
        self.inner.health().set_model_loading(what);
    }

    /// The served model is loaded and answered a probe: the ``model_loaded`` check passes and
    /// shows these fields.
    fn set_model(&self, name: String, version: String, framework: String, sha256: String) {
        self.inner.health().set_model(ModelIdentity {
            name,
            version,
            framework,
            sha256,
        });
    }

    /// Process-wide safety status for the ``safety_system`` health check.
    #[pyo3(signature = (active=true, shutdown=false))]
    fn set_safety_status(&self, active: bool, shutdown: bool) {
        self.inner.health().set_safety(active, shutdown);
    }

    /// Stores a user check result (``pass``, ``warn``, ``fail``) valid for ``ttl_seconds``.
    fn set_check(&self, name: &str, status: &str, output: &str, ttl_seconds: f64) -> PyResult<()> {
        let st = Status::parse(status).ok_or_else(|| {
            CoreError::config(
                "status",
                format!("must be pass, warn or fail, got {status:?}"),
            )
        })?;
        let ttl = Duration::try_from_secs_f64(ttl_seconds).map_err(|_| {
            CoreError::config(
                "ttl_seconds",
                format!("must be a non-negative number, got {ttl_seconds}"),
            )
        })?;
        self.inner.health().set_check(name, st, output, ttl);
        Ok(())
    }

    /// Forgets a user check; True if it existed.
    fn remove_check(&self, name: &str) -> bool {
        self.inner.health().remove_check(name)
    }

    /// The ``/health/detailed`` report as JSON text.
    #[pyo3(signature = (memory_limit_bytes=None))]
    fn health_report(&self, py: Python<'_>, memory_limit_bytes: Option<u64>) -> String {
        let ctx = ReportContext {
            memory_limit_bytes,
            exporter_listeners: None,
        };
        let reg = &self.inner;
        py.detach(|| reg.health().report(&ctx).to_json(SERVICE))
    }

    /// Counts ``n`` errors of ``component`` and ``kind`` in ``errors_total``.
    #[pyo3(signature = (component, kind, n=1))]
    fn count_error(&self, component: &str, kind: &str, n: u64) -> PyResult<()> {
        for (what, v) in [("component", component), ("kind", kind)] {
            if v.is_empty() {
                return Err(CoreError::config(what, "must not be empty").into());
            }
        }
        self.inner.builtins().ops.error(component, kind, n);
        Ok(())
    }

    /// Sets ``queue_depth{queue}`` and ``queue_capacity{queue}`` (0: unbounded); ``queue`` is
    /// ``audit``, ``log``, ``exporter_connections`` or ``fleet_tasks``.
    #[pyo3(signature = (queue, depth, capacity=0))]
    fn set_queue_depth(&self, queue: &str, depth: usize, capacity: usize) -> PyResult<()> {
        let q = Queue::parse(queue).ok_or_else(|| {
            CoreError::config(
                "queue",
                format!(
                    "must be one of audit, log, exporter_connections, fleet_tasks, got {queue:?}"
                ),
            )
        })?;
        self.inner.builtins().ops.set_queue(q, depth, capacity);
        Ok(())
    }

    /// Records one inference: ``inference_latency_seconds`` (``exemplar``: the labels of its
    /// bucket's exemplar) and ``actions_computed_total``.
    #[pyo3(signature = (seconds, actions=1, exemplar=None))]
    fn record_inference(
        &self,
        seconds: f64,
        actions: u64,
        exemplar: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let labels = exemplar_labels(exemplar)?;
        self.inner
            .record_inference(seconds, actions, labels.as_ref());
        Ok(())
    }

    /// Counts and logs a safety violation; returns its violation id.
    #[pyo3(signature = (constraint_type, severity, constraint="", current_value=f64::NAN, limit=f64::NAN, env="", violation_id=""))]
    #[allow(clippy::too_many_arguments)]
    fn record_safety_violation(
        &self,
        py: Python<'_>,
        constraint_type: &str,
        severity: &str,
        constraint: &str,
        current_value: f64,
        limit: f64,
        env: &str,
        violation_id: &str,
    ) -> String {
        let e = SafetyEvent {
            env,
            env_index: None,
            constraint: if constraint.is_empty() {
                constraint_type
            } else {
                constraint
            },
            constraint_type,
            severity,
            current_value,
            limit,
            violation_id,
        };
        let reg = &self.inner;
        py.detach(|| reg.record_safety_violation(&e))
    }

    /// Counts and logs an emergency shutdown.
    #[pyo3(signature = (reason, env=""))]
    fn record_emergency_shutdown(&self, py: Python<'_>, reason: &str, env: &str) {
        let reg = &self.inner;
        py.detach(|| reg.record_emergency_shutdown(reason, env));
    }

    /// Counts and logs a human intervention.
    fn record_human_intervention(&self, py: Python<'_>, reason: &str) {
        let reg = &self.inner;
        py.detach(|| reg.record_human_intervention(reason));
    }

    /// Counts audit events dropped because the audit queue was full.
    fn record_audit_dropped(&self, n: u64) {
        self.inner.record_audit_dropped(n);
    }

    /// A batch handle, as an env batch creates one (for custom loops and tests).
    fn env_metrics(
        &self,
        env_id: &str,
        constraint_types: Vec<String>,
        severities: Vec<String>,
        constraint_names: Vec<String>,
    ) -> PyResult<EnvMetricsHandle> {
        let sev = severities
            .iter()
            .map(|s| severity(s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EnvMetricsHandle {
            m: self
                .inner
                .env_metrics(env_id, &constraint_types, &sev, &constraint_names),
        })
    }
}

/// One metric family; ``labels`` returns its series.
#[pyclass(module = "neorl_industrial._core", frozen)]
pub struct CoreFamily {
    fam: Arc<MetricFamily>,
}

#[pymethods]
impl CoreFamily {
    /// The family name (a counter's without ``_total``).
    #[getter]
    fn name(&self) -> &str {
        self.fam.name()
    }

    /// ``counter``, ``gauge`` or ``histogram``.
    #[getter]
    fn kind(&self) -> &'static str {
        self.fam.kind().as_str()
    }

    /// The label names.
    #[getter]
    fn labelnames(&self) -> Vec<String> {
        self.fam.label_names().to_vec()
    }

    /// The series for ``values`` and whether the cardinality guard folded it into ``other``.
    fn labels(&self, py: Python<'_>, values: Vec<String>) -> PyResult<(Py<PyAny>, bool)> {
        let refs: Vec<&str> = values.iter().map(|s| s.as_str()).collect();
        let (child, folded) = self.fam.child(&refs)?;
        let obj = match child {
            AnyChild::Counter(c) => Py::new(py, CounterChild { c })?.into_any(),
            AnyChild::Gauge(g) => Py::new(py, GaugeChild { g })?.into_any(),
            AnyChild::Histogram(h) => Py::new(py, HistogramChild { h })?.into_any(),
        };
        Ok((obj, folded))
    }

    /// Drops the series for ``values``; True if it existed.
    fn remove(&self, values: Vec<String>) -> bool {
        let refs: Vec<&str> = values.iter().map(|s| s.as_str()).collect();
        self.fam.remove(&refs)
    }
}

/// One counter series.
#[pyclass(module = "neorl_industrial._core", frozen)]
pub struct CounterChild {
    c: CounterF,
}

#[pymethods]
impl CounterChild {
    /// Adds ``amount`` (non-negative).
    #[pyo3(signature = (amount=1.0))]
    fn inc(&self, amount: f64) -> PyResult<()> {
        if amount.is_nan() || amount < 0.0 {
            return Err(CoreError::Metric(format!(
                "counters can only be incremented by non-negative amounts, got {amount}"
            ))
            .into());
        }
        self.c.inc_by(amount);
        Ok(())
    }

    /// The current value.
    fn get(&self) -> f64 {
        self.c.get()
    }
}

/// One gauge series.
#[pyclass(module = "neorl_industrial._core", frozen)]
pub struct GaugeChild {
    g: GaugeF,
}

#[pymethods]
impl GaugeChild {
    /// Adds ``amount``.
    #[pyo3(signature = (amount=1.0))]
    fn inc(&self, amount: f64) {
        self.g.inc_by(amount);
    }

    /// Subtracts ``amount``.
    #[pyo3(signature = (amount=1.0))]
    fn dec(&self, amount: f64) {
        self.g.dec_by(amount);
    }

    /// Sets the value.
    fn set(&self, value: f64) {
        self.g.set(value);
    }

    /// The current value.
    fn get(&self) -> f64 {
        self.g.get()
    }
}

/// The labels of an exemplar given from Python: a dict of label name to str value, or None.
///
/// Errors:
///     [`CoreError::Metric`] naming what is wrong: not a dict, a name or value that is not a str,
///     an invalid name, a set over the OpenMetrics limit.
fn exemplar_labels(obj: Option<&Bound<'_, PyAny>>) -> Result<Option<ExemplarLabels>, CoreError> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    let type_name = |o: &Bound<'_, PyAny>| {
        o.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default()
    };
    let dict = obj.cast::<PyDict>().map_err(|_| {
        CoreError::Metric(format!(
            "exemplar: must be a dict of label name to str value, got {}",
            type_name(obj)
        ))
    })?;
    let mut labels = Vec::with_capacity(dict.len());
    for (k, v) in dict.iter() {
        let name = k.cast::<PyString>().map_err(|_| {
            CoreError::Metric(format!(
                "exemplar: label names must be str, got {}",
                type_name(&k)
            ))
        })?;
        let name = name
            .to_str()
            .map_err(|_| CoreError::Metric("exemplar: a label name is not valid UTF-8".into()))?
            .to_string();
        let value = v.cast::<PyString>().map_err(|_| {
            CoreError::Metric(format!(
                "exemplar: the value of label {name:?} must be a str, got {}",
                type_name(&v)
            ))
        })?;
        let value = value.to_str().map_err(|_| {
            CoreError::Metric(format!(
                "exemplar: the value of label {name:?} is not valid UTF-8"
            ))
        })?;
        labels.push((name, value.to_string()));
    }
    ExemplarLabels::given(labels).map(Some)
}

/// One histogram series.
#[pyclass(module = "neorl_industrial._core", frozen)]
pub struct HistogramChild {
    h: ExemplarHistogram,
}

#[pymethods]
impl HistogramChild {
    /// Records one observation; ``exemplar`` (a dict of label name to str value) makes it its
    /// bucket's exemplar.
    #[pyo3(signature = (value, exemplar=None))]
    fn observe(&self, value: f64, exemplar: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        match exemplar_labels(exemplar)? {
            Some(labels) => self.h.observe_with(value, &labels, SystemTime::now()),
            None => self.h.observe(value),
        }
        Ok(())
    }

    /// Records each value of a 1-D float64 array (one call for a batch).
    fn observe_many(&self, values: PyReadonlyArray1<'_, f64>) {
        for &v in values.as_array() {
            self.h.observe(v);
        }
    }
}

/// The series one env batch records into (what ``VectorIndustrialEnv`` holds).
#[pyclass(module = "neorl_industrial._core", frozen)]
pub struct EnvMetricsHandle {
    m: Arc<EnvMetrics>,
}

#[pymethods]
impl EnvMetricsHandle {
    /// Records one batch step (see the Rust ``BatchRecord``).
    #[pyo3(signature = (env_steps, episode_returns, step_seconds, violations, shutdowns, shield_interventions=0, response_seconds=Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn record_batch(
        &self,
        env_steps: u64,
        episode_returns: Vec<f64>,
        step_seconds: f64,
        violations: Vec<u64>,
        shutdowns: Vec<u64>,
        shield_interventions: u64,
        response_seconds: Vec<f64>,
    ) {
        self.m.record_batch(&BatchRecord {
            env_steps,
            episode_returns: &episode_returns,
            step_seconds,
            violations: &violations,
            shutdowns: &shutdowns,
            shield_interventions,
            response_seconds: &response_seconds,
            ..BatchRecord::default()
        });
    }

    /// Sets this batch's contribution to ``active_environments``.
    fn set_active(&self, n: i64) {
        self.m.set_active(n);
    }

    /// Reports the batch's safety layer: ``active``, ``inactive`` or ``shutdown``.
    fn set_safety_state(&self, state: &str) -> PyResult<()> {
        let s = match state {
            "active" => SafetyState::Active,
            "inactive" => SafetyState::Inactive,
            "shutdown" => SafetyState::ShutDown,
            _ => {
                return Err(CoreError::config(
                    "state",
                    format!("must be active, inactive or shutdown, got {state:?}"),
                )
                .into())
            }
        };
        self.m.set_safety_state(s);
        Ok(())
    }

    /// Logs (rate-limited) a violation of constraint ``k`` by env ``env_index``; returns its id.
    fn log_violation(
        &self,
        py: Python<'_>,
        k: usize,
        env_index: usize,
        current_value: f64,
        limit: f64,
    ) -> String {
        let m = &self.m;
        py.detach(|| m.log_violation(k, env_index, current_value, limit))
    }
}
