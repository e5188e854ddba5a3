//! Python face of the logging bridge: installs pyo3-log and exposes the rate limiter.

use std::time::Duration;

use pyo3::prelude::*;

use crate::errors::CoreError;
use crate::telemetry::logging;

/// Installs the `log` to Python `logging` bridge once (a second install is a no-op).
///
/// Loggers are cached but levels are not, so a level set in Python later (or by pytest's caplog)
/// applies at once; events are rare (rate-limited), so the per-event level check is cheap.
pub fn install(py: Python<'_>) -> PyResult<()> {
    let logger =
        pyo3_log::Logger::new(py, pyo3_log::Caching::Loggers)?.filter(log::LevelFilter::Info);
    // Another copy of the bridge may already be installed in this process: keep it.
    let _ = logger.install();
    Ok(())
}

/// Emits every pending "suppressed N similar events" summary now.
#[pyfunction]
pub fn flush_suppressed_logs(py: Python<'_>) {
    py.detach(logging::flush_suppressed);
}

/// Waits up to ``timeout`` seconds (GIL released) for events the exporter thread queued, logs
/// them and returns how many (the exporter never waits for the GIL, so a Python thread logs for it).
#[pyfunction]
pub fn pump_exporter_logs(py: Python<'_>, timeout: f64) -> PyResult<usize> {
    let t = Duration::try_from_secs_f64(timeout).map_err(|_| {
        CoreError::config(
            "timeout",
            format!("must be a non-negative number, got {timeout}"),
        )
    })?;
    let events = py.detach(|| logging::wait_deferred(t));
    for e in &events {
        e.emit();
    }
    Ok(events.len())
}

/// Wakes every thread waiting in :func:`pump_exporter_logs` (at shutdown).
#[pyfunction]
pub fn wake_exporter_log_pump() {
    logging::wake_deferred();
}

/// Sets the rate limit: each kind of event per env and constraint passes ``burst`` times per ``window_seconds``.
#[pyfunction]
pub fn set_log_rate_limit(window_seconds: f64, burst: u32) -> PyResult<()> {
    let w = Duration::try_from_secs_f64(window_seconds).map_err(|_| {
        CoreError::config(
            "window_seconds",
            format!("must be a non-negative number, got {window_seconds}"),
        )
    })?;
    logging::limiter().configure(w, burst);
    Ok(())
}

/// The run id every log line and audit event carries (see ``neorl_industrial.logging.run_id``).
#[pyfunction]
pub fn run_id() -> String {
    logging::run_id().to_string()
}

/// Sets the run id from now on; ``None`` forgets it (the next use reads
/// ``NEORL_INDUSTRIAL_RUN_ID`` again, or generates one).
#[pyfunction]
pub fn set_run_id(run_id: Option<&str>) -> PyResult<()> {
    match run_id {
        Some(id) => logging::set_run_id(id)?,
        None => logging::reset_run_id(),
    }
    Ok(())
}

/// Test hook: logs one safety violation of ``constraint`` in env ``env`` at ``env_index`` with
/// the episode and incident numbers given (as the batch step does), through the rate limiter.
#[cfg(feature = "test-hooks")]
#[pyfunction]
#[pyo3(signature = (env, env_index, constraint, episode=None, incident=None, shutdown=false))]
pub fn _log_correlated(
    py: Python<'_>,
    env: &str,
    env_index: usize,
    constraint: &str,
    episode: Option<u64>,
    incident: Option<u64>,
    shutdown: bool,
) {
    let c = logging::Correlation { episode, incident };
    py.detach(|| {
        if shutdown {
            if logging::emergency_shutdowns_passing(env, constraint, 1) > 0 {
                logging::emergency_shutdown_passed_in(
                    (env, Some(env_index)),
                    constraint,
                    2.0,
                    1.0,
                    c,
                );
            }
        } else if logging::safety_violations_passing(env, constraint, 1) > 0 {
            let e = logging::SafetyEvent {
                env,
                env_index: Some(env_index),
                constraint,
                constraint_type: "selftest",
                severity: "warning",
                current_value: 2.0,
                limit: 1.0,
                violation_id: "sv-test",
            };
            logging::safety_violation_passed_in(&e, c);
        }
    });
}

/// Test hook: ``threads`` Rust threads each log ``events`` safety events while this call waits
/// for them with the GIL released (the pattern every batch step follows). Returns events sent.
#[cfg(feature = "test-hooks")]
#[pyfunction]
pub fn _log_from_rust_threads(py: Python<'_>, threads: usize, events: usize) -> usize {
    py.detach(|| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..events {
                        let env = format!("thread-{t}");
                        let id = format!("t{t}-{i}");
                        logging::safety_violation(&logging::SafetyEvent {
                            env: &env,
                            env_index: Some(i),
                            constraint: "selftest",
                            constraint_type: "selftest",
                            severity: "warning",
                            current_value: i as f64,
                            limit: 0.0,
                            violation_id: &id,
                        });
                    }
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).count() * events
    })
}
