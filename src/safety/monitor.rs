//! A standalone safety monitor for state vectors that do not come from our environments.
//!
//! Users running a real control loop hand in the current values of named signals; the monitor
//! keeps alarm state (on-delay, deadband), previous values (for rates) and the step count per
//! system, for one system or a batch of them.

use super::alarm::AlarmState;
use super::checker::{At, Checker, Outputs, SafetyEvent};
use super::constraints::ConstraintSet;
use crate::errors::{try_filled, CoreError};
use crate::spec::Severity;

/// Readings of one check of every system, `n x k` each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Check {
    /// Constraint values.
    pub values: Vec<f64>,
    /// Margins (positive: satisfied).
    pub margins: Vec<f64>,
    /// Active alarms.
    pub active: Vec<bool>,
    /// Incident events of this check.
    pub events: Vec<SafetyEvent>,
}

/// Alarm state for `n` monitored systems with the same signals and constraints.
#[derive(Debug, Clone)]
pub struct Monitor {
    checker: Checker,
    n_signals: usize,
    n: usize,
    alarms: Vec<AlarmState>,
    last: Vec<f64>,
    steps: Vec<u32>,
    started: bool,
}

impl Monitor {
    /// A monitor of `n` systems with `n_signals` signals; `dt_seconds` is the check interval.
    pub fn new(
        set: ConstraintSet,
        n_signals: usize,
        n: usize,
        dt_seconds: f64,
    ) -> Result<Self, CoreError> {
        if n == 0 {
            return Err(CoreError::config("num_systems", "must be at least 1"));
        }
        if !(dt_seconds.is_finite() && dt_seconds > 0.0) {
            return Err(CoreError::config(
                "dt",
                format!("must be a positive number of seconds, got {dt_seconds}"),
            ));
        }
        let critical = (0..set.len())
            .filter(|&i| set.constraints[i].severity == Severity::Critical)
            .collect();
        let k = set.len();
        let what = format!("the states of {n} systems");
        let alarms = try_filled(
            n.checked_mul(k),
            AlarmState::default(),
            "num_systems",
            &what,
        )?;
        let last = try_filled(n.checked_mul(n_signals), 0.0, "num_systems", &what)?;
        let steps = try_filled(Some(n), 0, "num_systems", &what)?;
        Ok(Self {
            checker: Checker {
                set,
                ramps: Vec::new(),
                critical,
                dt_seconds,
            },
            n_signals,
            n,
            alarms,
            last,
            steps,
            started: false,
        })
    }

    /// The constraints.
    pub fn constraints(&self) -> &ConstraintSet {
        &self.checker.set
    }

    /// Checks the current signal values of every system (`n x n_signals`, row-major).
    pub fn check(&mut self, signals: &[f64], wall: f64) -> Result<Check, CoreError> {
        let (n, d, k) = (self.n, self.n_signals, self.checker.len());
        if signals.len() != n * d {
            return Err(CoreError::config(
                "state",
                format!(
                    "expected {} values ({n} systems x {d} signals), got {}",
                    n * d,
                    signals.len()
                ),
            ));
        }
        if !self.started {
            self.last.copy_from_slice(signals);
            self.started = true;
        }
        let mut out = Check {
            values: vec![0.0; n * k],
            margins: vec![0.0; n * k],
            active: vec![false; n * k],
            events: Vec::new(),
        };
        for i in 0..n {
            let at = At {
                env: i,
                episode: 1,
                step: self.steps[i],
                wall,
            };
            let outputs = Outputs {
                values: &mut out.values[i * k..(i + 1) * k],
                margins: &mut out.margins[i * k..(i + 1) * k],
                active: &mut out.active[i * k..(i + 1) * k],
            };
            let sig = &signals[i * d..(i + 1) * d];
            self.checker.evaluate(
                &mut self.alarms[i * k..(i + 1) * k],
                sig,
                &self.last[i * d..(i + 1) * d],
                at,
                outputs,
                &mut out.events,
            );
            self.steps[i] += 1;
        }
        self.last.copy_from_slice(signals);
        Ok(out)
    }

    /// Forgets alarms, previous values and step counts.
    pub fn reset(&mut self) {
        self.alarms.fill(AlarmState::default());
        self.steps.fill(0);
        self.started = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::constraints::{Constraint, Kind};

    #[test]
    fn rates_start_at_zero_and_alarms_follow_each_system() {
        let set = ConstraintSet {
            constraints: vec![
                Constraint::new(
                    "p_high",
                    "pressure",
                    Kind::Upper {
                        signal: 0,
                        limit: 10.0,
                    },
                    Severity::Critical,
                ),
                Constraint::new(
                    "valve_rate",
                    "actuator_rate",
                    Kind::Rate {
                        signal: 1,
                        limit: 2.0,
                    },
                    Severity::Warning,
                ),
            ],
        };
        let mut m = Monitor::new(set, 2, 2, 1.0).expect("monitor");
        let c = m.check(&[5.0, 50.0, 11.0, 0.0], 0.0).expect("check");
        assert_eq!(c.values, vec![5.0, 0.0, 11.0, 0.0]);
        assert_eq!(c.active, vec![false, false, true, false]);
        let c = m.check(&[5.0, 53.0, 9.0, 1.0], 1.0).expect("check");
        assert_eq!(c.values, vec![5.0, 3.0, 9.0, 1.0]);
        assert_eq!(c.active, vec![false, true, false, false]);
        assert!(m.check(&[1.0], 2.0).is_err());
    }

    /// Three systems, three signals, two constraints: `[a, b, c]` with a <= 10 (critical) and
    /// |c - c_prev| <= 1.
    fn three() -> Monitor {
        let set = ConstraintSet {
            constraints: vec![
                Constraint::new(
                    "a_high",
                    "a",
                    Kind::Upper {
                        signal: 0,
                        limit: 10.0,
                    },
                    Severity::Critical,
                ),
                Constraint::new(
                    "c_rate",
                    "rate",
                    Kind::Rate {
                        signal: 2,
                        limit: 1.0,
                    },
                    Severity::Warning,
                ),
            ],
        };
        Monitor::new(set, 3, 3, 0.5).expect("monitor")
    }

    #[test]
    fn each_system_has_its_own_rows() {
        let mut m = three();
        assert_eq!(m.constraints().len(), 2);
        assert_eq!(m.constraints().constraints[1].name, "c_rate");
        let c = m
            .check(&[1.0, 0.0, 5.0, 11.0, 0.0, 6.0, 12.0, 0.0, 7.0], 0.0)
            .expect("check");
        assert_eq!(c.values, vec![1.0, 0.0, 11.0, 0.0, 12.0, 0.0]);
        assert_eq!(c.margins, vec![9.0, 1.0, -1.0, 1.0, -2.0, 1.0]);
        assert_eq!(c.active, vec![false, false, true, false, true, false]);
        // A critical alarm opens an incident and shuts its system down.
        let events: Vec<_> = c
            .events
            .iter()
            .map(|e| (e.kind, e.env, e.constraint))
            .collect();
        use crate::safety::checker::EventKind::{EmergencyShutdown, IncidentOpened};
        assert_eq!(
            events,
            vec![
                (IncidentOpened, 1, Some(0)),
                (EmergencyShutdown, 1, Some(0)),
                (IncidentOpened, 2, Some(0)),
                (EmergencyShutdown, 2, Some(0)),
            ]
        );
        // Rates against each system's own previous values.
        let c = m
            .check(&[1.0, 0.0, 5.5, 1.0, 0.0, 8.0, 1.0, 0.0, 7.0], 1.0)
            .expect("check");
        assert_eq!(c.values, vec![1.0, 0.5, 1.0, 2.0, 1.0, 0.0]);
        assert_eq!(c.margins, vec![9.0, 0.5, 9.0, -1.0, 9.0, 1.0]);
        assert_eq!(c.active, vec![false, false, false, true, false, false]);
        assert!(c.events.iter().all(|e| e.step == 1));
        // The wrong number of values is refused, whatever the layout.
        for len in [3, 4, 6, 8, 10] {
            assert!(m.check(&vec![0.0; len], 2.0).is_err(), "{len}");
        }
    }

    #[test]
    fn reset_forgets_alarms_steps_and_previous_values() {
        let mut m = three();
        m.check(&[11.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 0.0)
            .expect("check");
        m.reset();
        // No rate against the values before the reset, the alarm starts anew at step 0.
        let c = m
            .check(&[11.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 5.0)
            .expect("check");
        assert_eq!(c.values[1], 0.0);
        assert_eq!(c.events.len(), 2);
        assert_eq!((c.events[0].step, c.events[0].wall), (0, 5.0));
        assert!(Monitor::new(ConstraintSet::default(), 1, 0, 1.0).is_err());
        for dt in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(Monitor::new(ConstraintSet::default(), 1, 1, dt).is_err());
        }
    }
}
