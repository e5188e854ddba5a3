//! Constraints on named signals, evaluated per env inside the batch step.

use crate::spec::{ConstraintKind, ConstraintSpec, EnvSpec, Severity};

/// A constraint bound to a signal index of one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// Unique name, e.g. `"temperature_high"`.
    pub name: String,
    /// Metric label, e.g. `"temperature"`.
    pub constraint_type: String,
    /// Index into the env's signals.
    pub signal: usize,
    /// Which side of the limit is safe.
    pub kind: ConstraintKind,
    /// The limit, in the signal's unit.
    pub limit: f64,
    /// Alarm severity.
    pub severity: Severity,
}

impl Constraint {
    /// Binds a declared constraint to its signal; `None` if the spec names an unknown signal.
    pub fn from_spec(spec: &EnvSpec, c: &ConstraintSpec) -> Option<Self> {
        Some(Self {
            name: c.name.to_string(),
            constraint_type: c.constraint_type.to_string(),
            signal: spec.signal_index(c.signal)?,
            kind: c.kind.clone(),
            limit: c.limit,
            severity: c.severity,
        })
    }

    /// The constrained quantity: the signal itself, its magnitude, or its change since last step.
    #[inline]
    pub fn value(&self, signals: &[f64], previous: &[f64]) -> f64 {
        let s = signals[self.signal];
        match self.kind {
            ConstraintKind::Upper | ConstraintKind::Lower => s,
            ConstraintKind::Abs => s.abs(),
            ConstraintKind::Rate => (s - previous[self.signal]).abs(),
        }
    }

    /// Distance to the limit, positive while satisfied (in the signal's unit).
    #[inline]
    pub fn margin(&self, value: f64) -> f64 {
        match self.kind {
            ConstraintKind::Lower => value - self.limit,
            _ => self.limit - value,
        }
    }
}

/// The constraints of one environment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConstraintSet {
    /// In declaration order; info arrays follow this order.
    pub constraints: Vec<Constraint>,
}

impl ConstraintSet {
    /// The defaults an environment declares.
    pub fn defaults(spec: &EnvSpec) -> Self {
        Self {
            constraints: spec
                .constraints
                .iter()
                .filter_map(|c| Constraint::from_spec(spec, c))
                .collect(),
        }
    }

    /// Number of constraints.
    pub fn len(&self) -> usize {
        self.constraints.len()
    }

    /// True when there are no constraints.
    pub fn is_empty(&self) -> bool {
        self.constraints.is_empty()
    }

    /// Writes each constraint's value and returns the index of the first violated critical
    /// constraint, if any (the shutdown reason).
    pub fn evaluate(&self, signals: &[f64], previous: &[f64], values: &mut [f64]) -> Option<usize> {
        let mut critical = None;
        for (i, (c, v)) in self.constraints.iter().zip(values.iter_mut()).enumerate() {
            *v = c.value(signals, previous);
            if critical.is_none() && c.severity == Severity::Critical && !(c.margin(*v) >= 0.0) {
                critical = Some(i);
            }
        }
        critical
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(kind: ConstraintKind, limit: f64, severity: Severity) -> Constraint {
        Constraint {
            name: "x".into(),
            constraint_type: "t".into(),
            signal: 0,
            kind,
            limit,
            severity,
        }
    }

    #[test]
    fn each_kind_measures_and_signs_its_margin() {
        let up = c(ConstraintKind::Upper, 10.0, Severity::Warning);
        assert_eq!(up.margin(up.value(&[12.0], &[0.0])), -2.0);
        let lo = c(ConstraintKind::Lower, 10.0, Severity::Warning);
        assert_eq!(lo.margin(lo.value(&[12.0], &[0.0])), 2.0);
        let ab = c(ConstraintKind::Abs, 1.0, Severity::Warning);
        assert_eq!(ab.value(&[-3.0], &[0.0]), 3.0);
        let ra = c(ConstraintKind::Rate, 5.0, Severity::Warning);
        assert_eq!(ra.value(&[300.0], &[307.0]), 7.0);
        assert_eq!(ra.margin(7.0), -2.0);
    }

    #[test]
    fn first_violated_critical_is_the_shutdown_reason() {
        let set = ConstraintSet {
            constraints: vec![
                c(ConstraintKind::Upper, 1.0, Severity::Warning),
                c(ConstraintKind::Upper, 5.0, Severity::Critical),
            ],
        };
        let mut v = [0.0; 2];
        assert_eq!(set.evaluate(&[3.0], &[0.0], &mut v), None);
        assert_eq!(set.evaluate(&[6.0], &[0.0], &mut v), Some(1));
        // NaN is never "safe".
        assert_eq!(set.evaluate(&[f64::NAN], &[0.0], &mut v), Some(1));
    }
}
