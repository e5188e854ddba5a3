//! One error type for the core, mapped once to the Python exception tree.
//!
//! The exception classes live in `neorl_industrial/exceptions.py` (Python allows the multiple
//! inheritance `InvalidActionError(NeorlError, ValueError)` that a native class cannot express);
//! this module looks them up once and converts every [`CoreError`] variant in one place.

use std::fmt;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// Every way the core can refuse a request.
#[derive(Debug, Clone, PartialEq)]
pub enum CoreError {
    /// An action was malformed: wrong shape, not finite, wrong type.
    InvalidAction {
        /// Env index within the batch, if the problem is one env's.
        env: Option<usize>,
        /// Element index within that env's action, if the problem is one element.
        element: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A configuration value was rejected.
    Config {
        /// The option or field at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No environment has this id.
    UnknownEnv {
        /// The id asked for.
        id: String,
        /// The ids that exist.
        known: String,
    },
    /// A call came in the wrong order (e.g. step before reset, or after the episode ended).
    ResetNeeded(String),
    /// A saved state could not be restored.
    State(String),
    /// An environment was entered from a second thread while a first was inside (names the env).
    ConcurrentUse(String),
    /// A metric was defined or used wrongly (bad name, clashing name, wrong labels, bad value).
    Metric(String),
    /// The exporter or the push client failed at the operating-system or network level.
    Exporter {
        /// What failed.
        message: String,
        /// The OS error number, if any (e.g. `EADDRINUSE`).
        errno: Option<i32>,
    },
}

/// A vector of `count` copies of `value`, allocated fallibly: a size that overflows or that the
/// allocator refuses is a [`CoreError::Config`] on `field` (naming `what` and the bytes asked
/// for) instead of an abort of the whole process.
pub fn try_filled<T: Clone>(
    count: Option<usize>,
    value: T,
    field: &str,
    what: &str,
) -> Result<Vec<T>, CoreError> {
    let size = std::mem::size_of::<T>();
    let refused = |bytes: Option<usize>| {
        let bytes = bytes.map_or("more than the address space".to_string(), |b| {
            format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
        });
        CoreError::config(
            field,
            format!("{what} need {bytes}, which could not be allocated"),
        )
    };
    let count = count.ok_or_else(|| refused(None))?;
    let mut v = Vec::new();
    v.try_reserve_exact(count)
        .map_err(|_| refused(count.checked_mul(size)))?;
    v.resize(count, value);
    Ok(v)
}

impl CoreError {
    /// A configuration error on `field`.
    pub fn config(field: &str, message: impl Into<String>) -> Self {
        CoreError::Config {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// An action error not tied to a single env.
    pub fn action(message: impl Into<String>) -> Self {
        CoreError::InvalidAction {
            env: None,
            element: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::InvalidAction {
                env,
                element,
                message,
            } => {
                match (env, element) {
                    (Some(e), Some(j)) => write!(f, "action of env {e}, element {j}: ")?,
                    (Some(e), None) => write!(f, "action of env {e}: ")?,
                    (None, Some(j)) => write!(f, "action element {j}: ")?,
                    (None, None) => write!(f, "action: ")?,
                }
                f.write_str(message)
            }
            CoreError::Config { field, message } => write!(f, "{field}: {message}"),
            CoreError::UnknownEnv { id, known } => {
                write!(f, "unknown environment {id:?}; known: {known}")
            }
            CoreError::ResetNeeded(m) | CoreError::State(m) | CoreError::Metric(m) => {
                f.write_str(m)
            }
            CoreError::Exporter { message, .. } => f.write_str(message),
            CoreError::ConcurrentUse(env) => write!(
                f,
                "{env}: already in step or reset on another thread; an environment belongs to one \
                 thread at a time (give each thread its own, or guard a shared one with a lock)"
            ),
        }
    }
}

impl std::error::Error for CoreError {}

static INVALID_ACTION: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CONFIG: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static UNKNOWN_ENV: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static RESET_NEEDED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static STATE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static METRIC: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static EXPORTER: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CONCURRENT_USE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn raise(py: Python<'_>, cell: &'static PyOnceLock<Py<PyType>>, name: &str, msg: String) -> PyErr {
    match cell.import(py, "neorl_industrial.exceptions", name) {
        Ok(ty) => PyErr::from_type(ty.clone(), msg),
        // Only reachable if the package is broken; still say what went wrong.
        Err(e) => PyRuntimeError::new_err(format!("{msg} (and {name} could not be imported: {e})")),
    }
}

impl From<CoreError> for PyErr {
    fn from(err: CoreError) -> PyErr {
        let msg = err.to_string();
        Python::attach(|py| match err {
            CoreError::InvalidAction { .. } => {
                raise(py, &INVALID_ACTION, "InvalidActionError", msg)
            }
            CoreError::Config { .. } => raise(py, &CONFIG, "ConfigError", msg),
            CoreError::UnknownEnv { .. } => raise(py, &UNKNOWN_ENV, "UnknownEnvironmentError", msg),
            CoreError::ResetNeeded(_) => raise(py, &RESET_NEEDED, "ResetNeededError", msg),
            CoreError::State(_) => raise(py, &STATE, "StateError", msg),
            CoreError::Metric(_) => raise(py, &METRIC, "MetricError", msg),
            CoreError::ConcurrentUse(_) => raise(py, &CONCURRENT_USE, "ConcurrentUseError", msg),
            CoreError::Exporter { errno, .. } => match (
                errno,
                EXPORTER.import(py, "neorl_industrial.exceptions", "ExporterError"),
            ) {
                // OSError(errno, strerror) sets .errno, so callers can test for EADDRINUSE.
                (Some(n), Ok(ty)) => PyErr::from_type(ty.clone(), (n, msg)),
                _ => raise(py, &EXPORTER, "ExporterError", msg),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_filled_refuses_impossible_sizes_with_a_config_error() {
        let v = try_filled(Some(3), 7u8, "num_envs", "3 envs").expect("small");
        assert_eq!(v, vec![7, 7, 7]);
        let err = try_filled(Some(usize::MAX / 2), 0.0f64, "num_envs", "many envs")
            .expect_err("beyond the address space");
        assert!(
            matches!(&err, CoreError::Config { field, message }
                if field == "num_envs" && message.starts_with("many envs need")),
            "{err:?}"
        );
        let err =
            try_filled(None::<usize>, 0u8, "constraints", "the alarms").expect_err("overflow");
        assert!(
            err.to_string().contains("more than the address space"),
            "{err}"
        );
    }
}
