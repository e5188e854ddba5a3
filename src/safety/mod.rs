//! The safety layer: constraints evaluated on every step of every env, alarms with on-delay and
//! deadband, incidents, the cost signal, emergency shutdown, the shield and the audit trail.

pub mod alarm;
pub mod audit;
pub mod checker;
pub mod config;
pub mod constraints;
pub mod incidents;
pub mod monitor;
pub mod shield;

pub use alarm::{AlarmState, Response};
pub use checker::{At, Checker, EventKind, Outcome, Outputs, SafetyEvent};
pub use constraints::{Constraint, ConstraintSet, Kind};
pub use shield::Shield;
