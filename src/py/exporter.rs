//! Python face of the exporter and the push client. Both release the GIL while they wait.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::CoreError;
use crate::py::telemetry::MetricsRegistry;
use crate::telemetry::control::ControlHandler;
use crate::telemetry::exporter::{default_max_connections, Exporter, ExporterConfig};
use crate::telemetry::push::{self, PushMethod};
use crate::telemetry::registry::{Format, Scope};
use crate::telemetry::webconfig;

fn port(field: &str, p: i64) -> Result<u16, CoreError> {
    u16::try_from(p).map_err(|_| CoreError::config(field, format!("must be 0..=65535, got {p}")))
}

fn seconds(field: &str, s: f64) -> Result<Duration, CoreError> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            CoreError::config(
                field,
                format!("must be a positive number of seconds, got {s}"),
            )
        })
}

/// A running HTTP exporter (see ``neorl_industrial.exporter.start_http_server``).
#[pyclass(module = "neorl_industrial._core", frozen)]
pub struct CoreExporter {
    /// `None` once stopped. Locked only briefly, never across a wait, so a thread holding the
    /// GIL never waits on a thread that waits for the GIL.
    inner: Mutex<Option<Exporter>>,
    port: u16,
    safety_port: Option<u16>,
    url: String,
    insecure_listeners: usize,
}

#[pymethods]
impl CoreExporter {
    #[new]
    #[pyo3(signature = (registry, port=8000, addr="127.0.0.1", safety_port=None, web_config_file=None, max_connections=None, header_timeout=10.0, connection_timeout=60.0, memory_limit_bytes=None, control=false, insecure=false, open_probes=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        registry: &MetricsRegistry,
        port: i64,
        addr: &str,
        safety_port: Option<i64>,
        web_config_file: Option<&str>,
        max_connections: Option<usize>,
        header_timeout: f64,
        connection_timeout: f64,
        memory_limit_bytes: Option<u64>,
        control: bool,
        insecure: bool,
        open_probes: bool,
    ) -> PyResult<Self> {
        let web = match web_config_file {
            Some(p) => webconfig::load(Path::new(p))?,
            None => Default::default(),
        };
        let cfg = ExporterConfig {
            addr: addr.to_string(),
            port: self::port("port", port)?,
            safety_port: safety_port
                .map(|p| self::port("safety_port", p))
                .transpose()?,
            web,
            max_connections: max_connections.unwrap_or_else(default_max_connections),
            header_timeout: seconds("header_timeout", header_timeout)?,
            connection_timeout: seconds("connection_timeout", connection_timeout)?,
            memory_limit_bytes,
            control,
            insecure,
            open_probes,
        };
        let reg = registry.inner();
        // Starting logs (and may take the GIL from this thread): release it meanwhile.
        let ex = py.detach(|| Exporter::start(reg, cfg))?;
        Ok(Self {
            port: ex.port(),
            insecure_listeners: ex.insecure_listeners(),
            safety_port: ex.safety_port(),
            url: ex.url(),
            inner: Mutex::new(Some(ex)),
        })
    }

    /// Listeners serving beyond loopback without authentication (``insecure=True``).
    #[getter]
    fn insecure_listeners(&self) -> usize {
        self.insecure_listeners
    }

    /// Port of the main listener.
    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    /// Port of the safety listener, if any.
    #[getter]
    fn safety_port(&self) -> Option<u16> {
        self.safety_port
    }

    /// Base URL of the main listener.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// True until stopped.
    #[getter]
    fn running(&self) -> bool {
        self.inner
            .lock()
            .map(|e| e.as_ref().is_some_and(Exporter::running))
            .unwrap_or(false)
    }

    /// Hands the control endpoints' requests to ``handler(method, path, body) -> (status, json)``
    /// (``None``: they are answered 503 again). Only for an exporter started with ``control``.
    #[pyo3(signature = (handler))]
    fn attach_control(&self, handler: Option<Py<PyAny>>) -> PyResult<()> {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(ex) = guard.as_ref() else {
            return Err(CoreError::config("control", "the exporter is stopped").into());
        };
        if !ex.control().enabled() {
            return Err(CoreError::config(
                "control",
                "the exporter was started without control endpoints (control=True)",
            )
            .into());
        }
        let handler = handler.map(|h| Arc::new(PyControl(h)) as Arc<dyn ControlHandler>);
        ex.control().attach(handler);
        Ok(())
    }

    /// Stops serving; idempotent. Waits for the exporter thread with the GIL released.
    fn stop(&self, py: Python<'_>) {
        let taken = self.inner.lock().map(|mut e| e.take()).unwrap_or(None);
        if let Some(mut ex) = taken {
            ex.control().attach(None);
            py.detach(move || ex.stop());
        }
    }
}

/// A Python callable answering control requests (see ``PolicyService.handle_control``).
struct PyControl(Py<PyAny>);

impl ControlHandler for PyControl {
    fn handle(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        Python::attach(|py| {
            self.0
                .call1(py, (method, path, PyBytes::new(py, body)))
                .and_then(|r| r.extract::<(u16, String)>(py))
                .unwrap_or_else(|e| {
                    let why = format!("the control handler failed: {e}");
                    (500, serde_json::json!({ "error": why }).to_string())
                })
        })
    }
}

/// Pushes the registry (Prometheus text) to a Pushgateway; ``method`` PUT, POST or DELETE.
#[pyfunction]
#[pyo3(signature = (url, job, registry, grouping_key=Vec::new(), method="PUT", timeout=10.0))]
pub fn push_to_gateway(
    py: Python<'_>,
    url: &str,
    job: &str,
    registry: &MetricsRegistry,
    grouping_key: Vec<(String, String)>,
    method: &str,
    timeout: f64,
) -> PyResult<()> {
    let m = PushMethod::parse(method)?;
    let t = seconds("timeout", timeout)?;
    let reg = registry.inner();
    py.detach(|| {
        let body = if m == PushMethod::Delete {
            String::new()
        } else {
            reg.encode(Format::Text, Scope::All)?
        };
        push::push(url, job, &grouping_key, m, &body, t).inspect_err(|e| {
            if let Some(kind) = push::error_kind(e) {
                reg.builtins().ops.error("push", kind, 1);
            }
        })
    })?;
    Ok(())
}
