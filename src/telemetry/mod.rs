//! Telemetry: the metrics registry, the process collector, health, the HTTP exporter, the
//! Pushgateway client and structured logging. Plain Rust: the Python wrappers live in `src/py/`.

pub mod auth;
pub mod builtins;
pub mod clock;
pub mod control;
pub mod drift;
pub mod drift_watch;
pub mod dynamic;
pub mod encoder;
pub mod env_metrics;
pub mod exemplar;
pub mod exporter;
pub mod family;
pub mod fault_metrics;
pub mod health;
pub mod logging;
pub mod names;
pub mod negotiate;
pub mod ops;
pub mod process;
pub mod push;
pub mod quality;
pub mod registry;
pub mod routes;
pub mod step_metrics;
pub mod tls;
pub mod types;
pub mod webconfig;

#[cfg(test)]
mod tests;

pub use env_metrics::{BatchRecord, EnvMetrics};
pub use health::{SafetyState, Status};
pub use registry::{default_registry, Format, Registry, Scope};
