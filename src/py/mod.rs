//! Thin pyo3 wrappers: convert types, release the GIL, call the core. No logic lives here.

pub mod convert;
pub mod drift;
pub mod events;
pub mod exporter;
pub mod faults;
pub mod info;
pub mod logging;
pub mod safety;
pub mod telemetry;
pub mod vector;
