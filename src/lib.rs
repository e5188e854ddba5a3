//! neorl-industrial: industrial process environments for reinforcement learning, in Rust.
//!
//! This file is the Python module's manifest only: what `neorl_industrial._core` exports.

pub mod elementary;
pub mod envs;
pub mod errors;
pub mod faults;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod integrate;
pub mod pool;
pub mod py;
pub mod rng;
pub mod safety;
pub mod spec;
pub mod step;
pub mod telemetry;
pub mod vector;

use pyo3::prelude::*;

/// The native core of neorl_industrial.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<py::vector::CoreVecEnv>()?;
    m.add_class::<py::vector::SingleEnv>()?;
    m.add_class::<py::vector::SafetyTotals>()?;
    m.add_class::<py::safety::PyAuditTrail>()?;
    m.add_class::<py::safety::PyMonitor>()?;
    m.add_class::<py::drift::CoreDrift>()?;
    m.add_function(wrap_pyfunction!(py::vector::env_ids, m)?)?;
    m.add("EVENT_KINDS", py::events::EVENT_KINDS.to_vec())?;
    m.add("MAX_ENVS", vector::MAX_ENVS)?;
    m.add("MAX_THREADS", vector::MAX_THREADS)?;
    m.add_class::<py::telemetry::MetricsRegistry>()?;
    m.add_class::<py::telemetry::CoreFamily>()?;
    m.add_class::<py::telemetry::CounterChild>()?;
    m.add_class::<py::telemetry::GaugeChild>()?;
    m.add_class::<py::telemetry::HistogramChild>()?;
    m.add_class::<py::telemetry::EnvMetricsHandle>()?;
    m.add_class::<py::exporter::CoreExporter>()?;
    m.add_function(wrap_pyfunction!(py::exporter::push_to_gateway, m)?)?;
    m.add_function(wrap_pyfunction!(py::logging::flush_suppressed_logs, m)?)?;
    m.add_function(wrap_pyfunction!(py::logging::set_log_rate_limit, m)?)?;
    m.add_function(wrap_pyfunction!(py::logging::pump_exporter_logs, m)?)?;
    m.add_function(wrap_pyfunction!(py::logging::wake_exporter_log_pump, m)?)?;
    m.add_function(wrap_pyfunction!(py::logging::run_id, m)?)?;
    m.add_function(wrap_pyfunction!(py::logging::set_run_id, m)?)?;
    // A test build's hooks: attributes of the module, not part of its API (nor of `__all__`).
    #[cfg(feature = "test-hooks")]
    m.setattr(
        "_log_from_rust_threads",
        wrap_pyfunction!(py::logging::_log_from_rust_threads, m)?,
    )?;
    #[cfg(feature = "test-hooks")]
    m.setattr(
        "_log_correlated",
        wrap_pyfunction!(py::logging::_log_correlated, m)?,
    )?;
    py::logging::install(m.py())?;
    Ok(())
}
