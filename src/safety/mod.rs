//! The safety layer: constraints evaluated on every step of every env.

pub mod constraints;

pub use constraints::{Constraint, ConstraintSet};
