//! neorl-industrial: industrial process environments for reinforcement learning, in Rust.
//!
//! This file is the Python module's manifest only: what `neorl_industrial._core` exports.

pub mod envs;
pub mod errors;
pub mod integrate;
pub mod py;
pub mod rng;
pub mod safety;
pub mod spec;
pub mod telemetry;
pub mod vector;

use pyo3::prelude::*;

/// The native core of neorl_industrial.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<py::vector::CoreVecEnv>()?;
    m.add_function(wrap_pyfunction!(py::vector::env_ids, m)?)?;
    Ok(())
}
