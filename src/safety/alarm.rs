//! Alarm state per env and constraint: on-delay, deadband, incidents (ISA-18.2 alarm practice).
//!
//! A value must stay beyond the limit for more than `on_delay` consecutive steps to activate the
//! alarm, and must come back inside the limit by at least `deadband` to clear it. Activation opens
//! an incident, clearing closes it.

use super::constraints::Constraint;

/// How an incident was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Response {
    /// Nothing acted on it.
    #[default]
    None,
    /// The shield changed an action while it was open.
    Shield,
    /// The env was shut down.
    Shutdown,
}

impl Response {
    /// Label used in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Response::None => "none",
            Response::Shield => "shield",
            Response::Shutdown => "shutdown",
        }
    }
}

/// What an update did to the alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// No change.
    Stay,
    /// The alarm activated: an incident opens.
    Activated,
    /// The alarm cleared: the incident closes.
    Cleared,
}

/// Alarm state of one constraint in one env, with its open incident.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AlarmState {
    /// The alarm is active (an incident is open).
    pub active: bool,
    /// Consecutive steps beyond the limit so far.
    pub beyond: u32,
    /// Incident id (assigned when the open event is published; 0 until then).
    pub incident: u64,
    /// Episode step at which the incident opened.
    pub start_step: u32,
    /// Wall time at which it opened [unix s].
    pub start_wall: f64,
    /// Value at opening.
    pub first_value: f64,
    /// Value furthest beyond the limit so far.
    pub peak_value: f64,
    /// Margin of the peak value (most negative seen).
    pub peak_margin: f64,
    /// How it was answered.
    pub response: Response,
    /// Process time from opening to the response [s] (NaN: no response yet).
    pub response_seconds: f64,
}

impl AlarmState {
    /// Integer fields saved per alarm by [`AlarmState::to_words`].
    pub const INT_WORDS: usize = 5;
    /// Real fields saved per alarm by [`AlarmState::to_words`].
    pub const REAL_WORDS: usize = 5;

    /// The state as plain numbers (for snapshots and pickles): `[active, beyond, incident,
    /// start_step, response]` and `[start_wall, first_value, peak_value, peak_margin,
    /// response_seconds]`.
    pub fn to_words(&self) -> ([u64; Self::INT_WORDS], [f64; Self::REAL_WORDS]) {
        let response = match self.response {
            Response::None => 0,
            Response::Shield => 1,
            Response::Shutdown => 2,
        };
        (
            [
                u64::from(self.active),
                u64::from(self.beyond),
                self.incident,
                u64::from(self.start_step),
                response,
            ],
            [
                self.start_wall,
                self.first_value,
                self.peak_value,
                self.peak_margin,
                self.response_seconds,
            ],
        )
    }

    /// The state saved by [`AlarmState::to_words`]; an error names the field out of its range.
    pub fn from_words(ints: &[u64], reals: &[f64]) -> Result<Self, String> {
        let [active, beyond, incident, start_step, response] = ints else {
            return Err(format!(
                "{} integer words, not {}",
                ints.len(),
                Self::INT_WORDS
            ));
        };
        let [start_wall, first_value, peak_value, peak_margin, response_seconds] = reals else {
            return Err(format!(
                "{} real words, not {}",
                reals.len(),
                Self::REAL_WORDS
            ));
        };
        let small = |name: &str, v: u64| {
            u32::try_from(v).map_err(|_| format!("{name} {v} is out of range"))
        };
        Ok(Self {
            active: match active {
                0 => false,
                1 => true,
                v => return Err(format!("active flag {v} is neither 0 nor 1")),
            },
            beyond: small("beyond-limit count", *beyond)?,
            incident: *incident,
            start_step: small("start step", *start_step)?,
            start_wall: *start_wall,
            first_value: *first_value,
            peak_value: *peak_value,
            peak_margin: *peak_margin,
            response: match response {
                0 => Response::None,
                1 => Response::Shield,
                2 => Response::Shutdown,
                v => return Err(format!("response code {v} is not 0, 1 or 2")),
            },
            response_seconds: *response_seconds,
        })
    }

    /// Checks a restored state against its constraint and its env's step count: an open incident
    /// started no later than now, and the count of steps beyond the limit fits the on-delay
    /// (it stops at `on_delay + 1`, when the alarm opens) and the steps taken.
    pub fn check_against(&self, c: &Constraint, elapsed: u32) -> Result<(), String> {
        let most = if self.active {
            c.on_delay.saturating_add(1)
        } else {
            c.on_delay
        };
        if self.beyond > most.min(elapsed) {
            return Err(format!(
                "beyond-limit count {} exceeds {} (on-delay {}, {elapsed} steps taken)",
                self.beyond,
                most.min(elapsed),
                c.on_delay
            ));
        }
        if self.active && self.start_step > elapsed {
            return Err(format!(
                "incident start step {} is after the env's step count {elapsed}",
                self.start_step
            ));
        }
        Ok(())
    }

    /// Advances the alarm with this step's value and margin.
    pub fn update(
        &mut self,
        c: &Constraint,
        value: f64,
        margin: f64,
        step: u32,
        wall: f64,
    ) -> Transition {
        let beyond = margin.is_nan() || margin < 0.0;
        if self.active {
            if margin < self.peak_margin || margin.is_nan() {
                self.peak_margin = margin;
                self.peak_value = value;
            }
            if margin >= c.deadband {
                self.active = false;
                self.beyond = 0;
                return Transition::Cleared;
            }
            return Transition::Stay;
        }
        if !beyond {
            self.beyond = 0;
            return Transition::Stay;
        }
        self.beyond = self.beyond.saturating_add(1);
        if self.beyond <= c.on_delay {
            return Transition::Stay;
        }
        *self = AlarmState {
            active: true,
            beyond: self.beyond,
            incident: 0,
            start_step: step,
            start_wall: wall,
            first_value: value,
            peak_value: value,
            peak_margin: margin,
            response: Response::None,
            response_seconds: f64::NAN,
        };
        Transition::Activated
    }

    /// Records the first response to the open incident.
    pub fn respond(&mut self, response: Response, seconds: f64) {
        if self.active && self.response == Response::None {
            self.response = response;
            self.response_seconds = seconds;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::constraints::Kind;
    use crate::spec::Severity;

    fn run(c: &Constraint, values: &[f64]) -> Vec<Transition> {
        let mut a = AlarmState::default();
        values
            .iter()
            .enumerate()
            .map(|(t, &v)| a.update(c, v, c.margin(v), t as u32, 0.0))
            .collect()
    }

    #[test]
    fn on_delay_needs_consecutive_steps_beyond_the_limit() {
        let mut c = Constraint::new(
            "t",
            "temperature",
            Kind::Upper {
                signal: 0,
                limit: 10.0,
            },
            Severity::Warning,
        );
        c.on_delay = 2;
        use Transition::*;
        // Two steps beyond, then back: never activates. Three in a row: activates on the third.
        assert_eq!(
            run(&c, &[11.0, 11.0, 9.0, 11.0, 11.0, 11.0]),
            vec![Stay, Stay, Stay, Stay, Stay, Activated]
        );
    }

    #[test]
    fn deadband_holds_the_alarm_until_well_inside() {
        let mut c = Constraint::new(
            "t",
            "temperature",
            Kind::Upper {
                signal: 0,
                limit: 10.0,
            },
            Severity::Warning,
        );
        c.deadband = 1.0;
        use Transition::*;
        assert_eq!(
            run(&c, &[11.0, 9.5, 10.5, 9.0, 12.0]),
            vec![Activated, Stay, Stay, Cleared, Activated]
        );
    }

    #[test]
    fn peak_tracks_the_worst_value_and_nan_is_beyond() {
        let c = Constraint::new(
            "t",
            "temperature",
            Kind::Upper {
                signal: 0,
                limit: 10.0,
            },
            Severity::Warning,
        );
        let mut a = AlarmState::default();
        for v in [12.0, 15.0, 13.0] {
            a.update(&c, v, c.margin(v), 0, 0.0);
        }
        assert_eq!((a.first_value, a.peak_value), (12.0, 15.0));
        let mut b = AlarmState::default();
        assert_eq!(
            b.update(&c, f64::NAN, f64::NAN, 0, 0.0),
            Transition::Activated
        );
    }

    fn constraint(kind: Kind) -> Constraint {
        Constraint::new("c", "temperature", kind, Severity::Warning)
    }

    #[test]
    fn a_value_exactly_at_a_limit_is_within_it() {
        // The limit is the highest (lowest) safe value: reaching it is not a breach, the next
        // representable value beyond it is.
        let cases = [
            (
                Kind::Upper {
                    signal: 0,
                    limit: 350.0,
                },
                350.0,
                f64::next_up(350.0),
            ),
            (
                Kind::Lower {
                    signal: 0,
                    limit: 0.5,
                },
                0.5,
                f64::next_down(0.5),
            ),
            (
                Kind::Band {
                    signal: 0,
                    low: -1.0,
                    high: 1.0,
                },
                1.0,
                f64::next_up(1.0),
            ),
            (
                Kind::Band {
                    signal: 0,
                    low: -1.0,
                    high: 1.0,
                },
                -1.0,
                f64::next_down(-1.0),
            ),
            (
                Kind::Abs {
                    signal: 0,
                    limit: 0.2,
                },
                0.2,
                f64::next_up(0.2),
            ),
        ];
        use Transition::*;
        for (kind, at, beyond) in cases {
            let c = constraint(kind.clone());
            assert_eq!(c.margin(at), 0.0, "{kind:?}");
            assert_eq!(run(&c, &[at; 5]), vec![Stay; 5], "{kind:?} at {at}");
            assert_eq!(c.cost(c.margin(at)), 0.0, "{kind:?}");
            assert_eq!(
                run(&c, &[at, beyond, at]),
                vec![Stay, Activated, Cleared],
                "{kind:?}"
            );
            assert!(c.cost(c.margin(beyond)) > 0.0, "{kind:?}");
        }
    }

    #[test]
    fn on_delay_counts_up_to_its_value_exactly() {
        // on_delay = n: n steps beyond are tolerated, the (n + 1)-th activates.
        let mut c = constraint(Kind::Upper {
            signal: 0,
            limit: 10.0,
        });
        use Transition::*;
        for n in 0..4u32 {
            c.on_delay = n;
            let mut want = vec![Stay; n as usize];
            want.push(Activated);
            assert_eq!(run(&c, &vec![11.0; n as usize + 1]), want, "on_delay {n}");
        }
    }

    #[test]
    fn the_deadband_edge_clears_and_just_inside_it_holds() {
        let mut c = constraint(Kind::Upper {
            signal: 0,
            limit: 10.0,
        });
        c.deadband = 0.5;
        use Transition::*;
        // Margin exactly the deadband (value 9.5) clears; a hair less (value just above 9.5) holds.
        assert_eq!(run(&c, &[11.0, 9.5]), vec![Activated, Cleared]);
        assert_eq!(
            run(&c, &[11.0, f64::next_up(9.5), 10.0]),
            vec![Activated, Stay, Stay]
        );
    }

    #[test]
    fn peak_keeps_the_first_worst_value_and_resets_with_a_new_incident() {
        let c = constraint(Kind::Upper {
            signal: 0,
            limit: 10.0,
        });
        let mut a = AlarmState::default();
        for (t, v) in [12.0, 15.0, 15.0, 13.0].into_iter().enumerate() {
            a.update(&c, v, c.margin(v), t as u32, t as f64);
        }
        assert_eq!((a.start_step, a.start_wall), (0, 0.0));
        assert_eq!((a.peak_value, a.peak_margin), (15.0, -5.0));
        assert_eq!(
            a.update(&c, 9.0, c.margin(9.0), 4, 4.0),
            Transition::Cleared
        );
        assert!(!a.active);
        assert_eq!(
            a.update(&c, 11.0, c.margin(11.0), 5, 5.0),
            Transition::Activated
        );
        assert_eq!((a.start_step, a.first_value, a.peak_value), (5, 11.0, 11.0));
    }

    #[test]
    fn of_two_equally_bad_values_the_first_stays_the_peak() {
        // A band breached by the same margin on either side: the peak is the first worst value.
        let c = constraint(Kind::Band {
            signal: 0,
            low: -1.0,
            high: 1.0,
        });
        let mut a = AlarmState::default();
        for v in [2.0, -2.0, 1.5] {
            a.update(&c, v, c.margin(v), 0, 0.0);
        }
        assert_eq!((a.peak_value, a.peak_margin), (2.0, -1.0));
    }

    #[test]
    fn responses_are_labelled_for_the_audit_trail() {
        let labels = [Response::None, Response::Shield, Response::Shutdown].map(Response::as_str);
        assert_eq!(labels, ["none", "shield", "shutdown"]);
    }
}
