//! Constraints on named signals, evaluated per env inside the batch step.
//!
//! A constraint measures one quantity (a signal, its magnitude, its change since the last step, or
//! a linear combination of signals) against a limit. Alarm behaviour (on-delay, deadband) follows
//! ISA-18.2 and lives in [`super::alarm`]; this module only measures.

use crate::spec::{ConstraintKind, ConstraintSpec, EnvSpec, Severity};

/// What a constraint measures and which side of the limit is safe.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `signal <= limit`.
    Upper {
        /// Signal index.
        signal: usize,
        /// Highest safe value.
        limit: f64,
    },
    /// `signal >= limit`.
    Lower {
        /// Signal index.
        signal: usize,
        /// Lowest safe value.
        limit: f64,
    },
    /// `low <= signal <= high`.
    Band {
        /// Signal index.
        signal: usize,
        /// Lowest safe value.
        low: f64,
        /// Highest safe value.
        high: f64,
    },
    /// `|signal| <= limit` (a band symmetric around zero, e.g. a frequency deviation).
    Abs {
        /// Signal index.
        signal: usize,
        /// Largest safe magnitude.
        limit: f64,
    },
    /// `|signal_t - signal_{t-1}| <= limit` per step (actuator ramp, rate of change of a state).
    Rate {
        /// Signal index.
        signal: usize,
        /// Largest safe change per step.
        limit: f64,
    },
    /// `sum_i a_i x_i <= b` over signals.
    Linear {
        /// `(signal index, coefficient)` pairs.
        terms: Vec<(usize, f64)>,
        /// Right-hand side.
        b: f64,
    },
}

impl Kind {
    /// Configuration label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Upper { .. } => "upper",
            Kind::Lower { .. } => "lower",
            Kind::Band { .. } => "band",
            Kind::Abs { .. } => "abs",
            Kind::Rate { .. } => "rate",
            Kind::Linear { .. } => "linear",
        }
    }

    /// The signal a single-signal constraint watches.
    pub fn signal(&self) -> Option<usize> {
        match self {
            Kind::Upper { signal, .. }
            | Kind::Lower { signal, .. }
            | Kind::Band { signal, .. }
            | Kind::Abs { signal, .. }
            | Kind::Rate { signal, .. } => Some(*signal),
            Kind::Linear { .. } => None,
        }
    }
}

/// A constraint bound to the signals of one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// Unique name, e.g. `"temperature_high"`.
    pub name: String,
    /// Metric label, e.g. `"temperature"`.
    pub constraint_type: String,
    /// What is measured.
    pub kind: Kind,
    /// Alarm severity; an active critical constraint shuts the env down.
    pub severity: Severity,
    /// Weight of this constraint in the cost signal.
    pub weight: f64,
    /// Scale that normalises the exceedance in the cost signal (same unit as the limit).
    pub scale: f64,
    /// Subtracted from the reward on every step the alarm is active.
    pub penalty: f64,
    /// How far back inside the limit the value must return to clear an active alarm.
    pub deadband: f64,
    /// Steps the value must stay beyond the limit before the alarm activates (0: at once).
    pub on_delay: u32,
}

impl Constraint {
    /// A constraint of `kind` with the defaults: weight 1, scale |limit| (1 if the limit is 0),
    /// no penalty, no deadband, no on-delay.
    pub fn new(name: &str, constraint_type: &str, kind: Kind, severity: Severity) -> Self {
        let mut c = Self {
            name: name.to_string(),
            constraint_type: constraint_type.to_string(),
            kind,
            severity,
            weight: 1.0,
            scale: 1.0,
            penalty: 0.0,
            deadband: 0.0,
            on_delay: 0,
        };
        c.scale = c.default_scale();
        c
    }

    /// Binds a declared constraint to its signal; `None` if the spec names an unknown signal.
    pub fn from_spec(spec: &EnvSpec, c: &ConstraintSpec) -> Option<Self> {
        let signal = spec.signal_index(c.signal)?;
        let limit = c.limit;
        let kind = match c.kind {
            ConstraintKind::Upper => Kind::Upper { signal, limit },
            ConstraintKind::Lower => Kind::Lower { signal, limit },
            ConstraintKind::Abs => Kind::Abs { signal, limit },
            ConstraintKind::Rate => Kind::Rate { signal, limit },
        };
        let mut out = Self::new(c.name, c.constraint_type, kind, c.severity);
        out.on_delay = c.on_delay;
        out.penalty = c.penalty;
        Some(out)
    }

    /// The default normalisation: the size of the limit (the band's width for a band).
    pub fn default_scale(&self) -> f64 {
        let s = match &self.kind {
            Kind::Band { low, high, .. } => high - low,
            Kind::Linear { b, .. } => b.abs(),
            _ => self.limit().abs(),
        };
        if s.is_finite() && s > 0.0 {
            s
        } else {
            1.0
        }
    }

    /// The limit reported in incidents (for a band: the upper bound).
    pub fn limit(&self) -> f64 {
        match &self.kind {
            Kind::Upper { limit, .. }
            | Kind::Lower { limit, .. }
            | Kind::Abs { limit, .. }
            | Kind::Rate { limit, .. } => *limit,
            Kind::Band { high, .. } => *high,
            Kind::Linear { b, .. } => *b,
        }
    }

    /// The limit on the side `value` lies on (for a band, the bound nearer to it).
    pub fn limit_near(&self, value: f64) -> f64 {
        match &self.kind {
            Kind::Band { low, high, .. } => {
                if value < (low + high) * 0.5 {
                    *low
                } else {
                    *high
                }
            }
            _ => self.limit(),
        }
    }

    /// The constrained quantity.
    #[inline]
    pub fn value(&self, signals: &[f64], previous: &[f64]) -> f64 {
        match &self.kind {
            Kind::Upper { signal, .. } | Kind::Lower { signal, .. } | Kind::Band { signal, .. } => {
                signals[*signal]
            }
            Kind::Abs { signal, .. } => signals[*signal].abs(),
            Kind::Rate { signal, .. } => (signals[*signal] - previous[*signal]).abs(),
            Kind::Linear { terms, .. } => terms.iter().map(|(i, a)| a * signals[*i]).sum(),
        }
    }

    /// Distance to the limit, positive while satisfied (in the limit's unit); NaN for a NaN value.
    #[inline]
    pub fn margin(&self, value: f64) -> f64 {
        match &self.kind {
            Kind::Upper { limit, .. } | Kind::Abs { limit, .. } | Kind::Rate { limit, .. } => {
                limit - value
            }
            Kind::Lower { limit, .. } => value - limit,
            Kind::Band { low, high, .. } => (value - low).min(high - value),
            Kind::Linear { b, .. } => b - value,
        }
    }

    /// Cost contribution of a value: `weight * max(0, -margin) / scale` (NaN counts as one scale).
    #[inline]
    pub fn cost(&self, margin: f64) -> f64 {
        let exceed = if margin.is_nan() {
            self.scale
        } else {
            (-margin).max(0.0)
        };
        self.weight * exceed / self.scale
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

    /// Writes each constraint's value.
    pub fn values(&self, signals: &[f64], previous: &[f64], values: &mut [f64]) {
        for (c, v) in self.constraints.iter().zip(values.iter_mut()) {
            *v = c.value(signals, previous);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(kind: Kind) -> Constraint {
        Constraint::new("x", "t", kind, Severity::Warning)
    }

    #[test]
    fn each_kind_measures_and_signs_its_margin() {
        let up = c(Kind::Upper {
            signal: 0,
            limit: 10.0,
        });
        assert_eq!(up.margin(up.value(&[12.0], &[0.0])), -2.0);
        let lo = c(Kind::Lower {
            signal: 0,
            limit: 10.0,
        });
        assert_eq!(lo.margin(lo.value(&[12.0], &[0.0])), 2.0);
        let band = c(Kind::Band {
            signal: 0,
            low: 20.0,
            high: 24.0,
        });
        assert_eq!(band.margin(19.0), -1.0);
        assert_eq!(band.margin(23.0), 1.0);
        assert_eq!(band.limit_near(19.0), 20.0);
        assert_eq!(band.limit_near(25.0), 24.0);
        let ab = c(Kind::Abs {
            signal: 0,
            limit: 1.0,
        });
        assert_eq!(ab.value(&[-3.0], &[0.0]), 3.0);
        let ra = c(Kind::Rate {
            signal: 0,
            limit: 5.0,
        });
        assert_eq!(ra.value(&[300.0], &[307.0]), 7.0);
        assert_eq!(ra.margin(7.0), -2.0);
        let lin = c(Kind::Linear {
            terms: vec![(0, 2.0), (1, -1.0)],
            b: 3.0,
        });
        assert_eq!(lin.value(&[4.0, 1.0], &[0.0, 0.0]), 7.0);
        assert_eq!(lin.margin(7.0), -4.0);
    }

    #[test]
    fn cost_is_weighted_relative_exceedance() {
        let mut up = c(Kind::Upper {
            signal: 0,
            limit: 200.0,
        });
        assert_eq!(up.scale, 200.0);
        assert_eq!(up.cost(5.0), 0.0);
        assert_eq!(up.cost(-10.0), 0.05);
        up.weight = 2.0;
        assert_eq!(up.cost(-10.0), 0.1);
        assert_eq!(up.cost(f64::NAN), 2.0);
        assert_eq!(
            c(Kind::Lower {
                signal: 0,
                limit: 0.0
            })
            .scale,
            1.0
        );
    }

    #[test]
    fn kinds_name_themselves_and_their_signal() {
        let kinds = [
            Kind::Upper {
                signal: 3,
                limit: 1.0,
            },
            Kind::Lower {
                signal: 3,
                limit: 1.0,
            },
            Kind::Band {
                signal: 3,
                low: 0.0,
                high: 1.0,
            },
            Kind::Abs {
                signal: 3,
                limit: 1.0,
            },
            Kind::Rate {
                signal: 3,
                limit: 1.0,
            },
            Kind::Linear {
                terms: vec![(3, 1.0)],
                b: 1.0,
            },
        ];
        let names: Vec<_> = kinds.iter().map(Kind::as_str).collect();
        assert_eq!(names, ["upper", "lower", "band", "abs", "rate", "linear"]);
        let signals: Vec<_> = kinds.iter().map(Kind::signal).collect();
        assert_eq!(signals, [Some(3), Some(3), Some(3), Some(3), Some(3), None]);
    }

    #[test]
    fn default_scales_and_band_limits() {
        let band = c(Kind::Band {
            signal: 0,
            low: 20.0,
            high: 24.0,
        });
        assert_eq!(band.scale, 4.0);
        assert_eq!(band.limit(), 24.0);
        // The midpoint belongs to the upper half.
        assert_eq!(band.limit_near(22.0), 24.0);
        assert_eq!(band.limit_near(21.9), 20.0);
        let lin = c(Kind::Linear {
            terms: vec![(0, 1.0)],
            b: -3.0,
        });
        assert_eq!((lin.scale, lin.limit()), (3.0, -3.0));
        let lower = c(Kind::Lower {
            signal: 0,
            limit: -8.0,
        });
        assert_eq!(lower.scale, 8.0);
        // A band of width 0 and a non-finite limit fall back to 1.
        let flat = c(Kind::Band {
            signal: 0,
            low: 2.0,
            high: 2.0,
        });
        assert_eq!(flat.scale, 1.0);
        let inf = c(Kind::Upper {
            signal: 0,
            limit: f64::INFINITY,
        });
        assert_eq!(inf.scale, 1.0);
    }

    #[test]
    fn a_set_writes_each_value_in_order() {
        let set = ConstraintSet {
            constraints: vec![
                c(Kind::Upper {
                    signal: 1,
                    limit: 0.0,
                }),
                c(Kind::Rate {
                    signal: 0,
                    limit: 0.0,
                }),
            ],
        };
        assert_eq!((set.len(), set.is_empty()), (2, false));
        assert!(ConstraintSet::default().is_empty());
        let mut v = [0.0; 2];
        set.values(&[5.0, 7.0], &[2.0, 0.0], &mut v);
        assert_eq!(v, [7.0, 3.0]);
    }
}
