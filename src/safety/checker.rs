//! Per-step safety evaluation of one env: values, margins, alarms, cost, shutdown and events.

use super::alarm::{AlarmState, Response, Transition};
use super::constraints::{ConstraintSet, Kind};
use crate::spec::{EnvSpec, Severity};

/// What happened, for the audit trail, the logs and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A constraint's alarm activated.
    IncidentOpened,
    /// An alarm cleared.
    IncidentClosed,
    /// An open incident ended with its episode (reset or end of episode).
    IncidentClosedByEpisodeEnd,
    /// A critical alarm shut the env down.
    EmergencyShutdown,
    /// The shield changed the agent's action.
    ShieldIntervention,
}

impl EventKind {
    /// Event name in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::IncidentOpened => "incident_opened",
            EventKind::IncidentClosed | EventKind::IncidentClosedByEpisodeEnd => "incident_closed",
            EventKind::EmergencyShutdown => "emergency_shutdown",
            EventKind::ShieldIntervention => "shield_intervention",
        }
    }
}

/// One safety event of one env.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SafetyEvent {
    /// What happened.
    pub kind: EventKind,
    /// Env index within its batch.
    pub env: usize,
    /// Episode number of that env (1 for the first).
    pub episode: u64,
    /// Constraint index, if the event concerns one.
    pub constraint: Option<u16>,
    /// Episode step (steps taken so far).
    pub step: u32,
    /// Wall time [unix s].
    pub wall: f64,
    /// The constrained value now.
    pub value: f64,
    /// The incident as it stands (incident events).
    pub alarm: AlarmState,
}

/// Per-step result of the evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Outcome {
    /// Cost signal of this step.
    pub cost: f64,
    /// Reward penalty of this step (to subtract).
    pub penalty: f64,
    /// The critical constraint that shuts the env down, if any.
    pub shutdown: Option<u16>,
}

/// Output slices of one env's evaluation.
pub struct Outputs<'a> {
    /// Constraint values.
    pub values: &'a mut [f64],
    /// Margins (positive: satisfied).
    pub margins: &'a mut [f64],
    /// Active alarms.
    pub active: &'a mut [bool],
}

/// Where and when an evaluation happens.
#[derive(Debug, Clone, Copy)]
pub struct At {
    /// Env index.
    pub env: usize,
    /// Episode number.
    pub episode: u64,
    /// Episode step.
    pub step: u32,
    /// Wall time [unix s], one reading per batch.
    pub wall: f64,
}

/// An actuator ramp limit the clip shield enforces: action `action` may move at most `limit`
/// physical units per step from its last value (signal `signal`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ramp {
    /// Action index.
    pub action: usize,
    /// Signal index holding the last applied value.
    pub signal: usize,
    /// Largest change per step.
    pub limit: f64,
}

/// The safety evaluation of one environment kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Checker {
    /// The constraints.
    pub set: ConstraintSet,
    /// Ramp limits on actions (rate constraints on signals that are actions).
    pub ramps: Vec<Ramp>,
    /// Indices of critical constraints.
    pub critical: Vec<usize>,
    /// Step length in seconds (for response times).
    pub dt_seconds: f64,
}

impl Checker {
    /// A checker for `set` over an env of `spec`.
    pub fn new(set: ConstraintSet, spec: &EnvSpec) -> Self {
        let ramps = set
            .constraints
            .iter()
            .filter_map(|c| match c.kind {
                Kind::Rate { signal, limit } => {
                    let name = spec.signals.get(signal)?.name;
                    let action = spec.actions.iter().position(|a| a.name == name)?;
                    Some(Ramp {
                        action,
                        signal,
                        limit,
                    })
                }
                _ => None,
            })
            .collect();
        let critical = (0..set.len())
            .filter(|&i| set.constraints[i].severity == Severity::Critical)
            .collect();
        let dt_seconds = spec.dt
            * match spec.dt_unit {
                "min" => 60.0,
                "h" => 3600.0,
                "ms" => 1e-3,
                _ => 1.0,
            };
        Self {
            set,
            ramps,
            critical,
            dt_seconds,
        }
    }

    /// Number of constraints.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// True without constraints.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Evaluates every constraint after a step, advancing the alarms and appending events.
    pub fn evaluate(
        &self,
        alarms: &mut [AlarmState],
        signals: &[f64],
        previous: &[f64],
        at: At,
        out: Outputs<'_>,
        events: &mut Vec<SafetyEvent>,
    ) -> Outcome {
        let mut o = Outcome::default();
        for (k, c) in self.set.constraints.iter().enumerate() {
            let value = c.value(signals, previous);
            let margin = c.margin(value);
            let a = &mut alarms[k];
            let tr = a.update(c, value, margin, at.step, at.wall);
            if tr != Transition::Stay {
                let kind = if tr == Transition::Activated {
                    EventKind::IncidentOpened
                } else {
                    EventKind::IncidentClosed
                };
                events.push(event(kind, at, Some(k), value, *a));
            }
            if a.active {
                o.cost += c.cost(margin);
                o.penalty += c.penalty;
                if c.severity == Severity::Critical && o.shutdown.is_none() {
                    o.shutdown = Some(k as u16);
                }
            }
            out.values[k] = value;
            out.margins[k] = margin;
            out.active[k] = a.active;
        }
        if let Some(k) = o.shutdown {
            let k = usize::from(k);
            let a = &mut alarms[k];
            a.respond(
                Response::Shutdown,
                f64::from(at.step.saturating_sub(a.start_step)) * self.dt_seconds,
            );
            events.push(event(
                EventKind::EmergencyShutdown,
                at,
                Some(k),
                out.values[k],
                *a,
            ));
        }
        o
    }

    /// Values and margins without touching alarms (reset observations).
    pub fn measure(
        &self,
        alarms: &[AlarmState],
        signals: &[f64],
        previous: &[f64],
        out: Outputs<'_>,
    ) {
        for (k, c) in self.set.constraints.iter().enumerate() {
            let value = c.value(signals, previous);
            out.values[k] = value;
            out.margins[k] = c.margin(value);
            out.active[k] = alarms[k].active;
        }
    }

    /// Marks a shield intervention on every open incident and records the event.
    pub fn shield_acted(&self, alarms: &mut [AlarmState], at: At, events: &mut Vec<SafetyEvent>) {
        for a in alarms.iter_mut() {
            let secs = f64::from(at.step.saturating_sub(a.start_step)) * self.dt_seconds;
            a.respond(Response::Shield, secs);
        }
        events.push(event(
            EventKind::ShieldIntervention,
            at,
            None,
            f64::NAN,
            AlarmState::default(),
        ));
    }

    /// Closes every open incident because the episode ended.
    pub fn close_all(&self, alarms: &mut [AlarmState], at: At, events: &mut Vec<SafetyEvent>) {
        for (k, a) in alarms.iter_mut().enumerate() {
            if a.active {
                events.push(event(
                    EventKind::IncidentClosedByEpisodeEnd,
                    at,
                    Some(k),
                    f64::NAN,
                    *a,
                ));
            }
            *a = AlarmState::default();
        }
    }
}

fn event(
    kind: EventKind,
    at: At,
    constraint: Option<usize>,
    value: f64,
    alarm: AlarmState,
) -> SafetyEvent {
    SafetyEvent {
        kind,
        env: at.env,
        episode: at.episode,
        constraint: constraint.map(|k| k as u16),
        step: at.step,
        wall: at.wall,
        value,
        alarm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs::make;
    use crate::safety::constraints::Constraint;

    fn reactor_spec() -> EnvSpec {
        make("ChemicalReactor-v0", Vec::new())
            .expect("reactor")
            .spec()
            .clone()
    }

    /// The reactor's checker: temperature_high (warning, 331 K), thermal_runaway (critical, 350 K,
    /// penalty 2), coolant_ramp (rate 5 K per step on the action signal Tc); signals `[Ca, T, Tc]`.
    fn reactor_checker() -> Checker {
        let spec = reactor_spec();
        let mut set = ConstraintSet::defaults(&spec);
        set.constraints[1].penalty = 2.0;
        Checker::new(set, &spec)
    }

    fn at(step: u32) -> At {
        At {
            env: 3,
            episode: 2,
            step,
            wall: 1000.0 + f64::from(step),
        }
    }

    struct Buf {
        values: Vec<f64>,
        margins: Vec<f64>,
        active: Vec<bool>,
    }

    impl Buf {
        fn new(k: usize) -> Self {
            Self {
                values: vec![f64::NAN; k],
                margins: vec![f64::NAN; k],
                active: vec![true; k],
            }
        }
        fn out(&mut self) -> Outputs<'_> {
            Outputs {
                values: &mut self.values,
                margins: &mut self.margins,
                active: &mut self.active,
            }
        }
    }

    #[test]
    fn labels_and_sizes() {
        assert_eq!(
            [
                EventKind::IncidentOpened,
                EventKind::IncidentClosed,
                EventKind::IncidentClosedByEpisodeEnd,
                EventKind::EmergencyShutdown,
                EventKind::ShieldIntervention,
            ]
            .map(EventKind::as_str),
            [
                "incident_opened",
                "incident_closed",
                "incident_closed",
                "emergency_shutdown",
                "shield_intervention"
            ]
        );
        let c = reactor_checker();
        assert_eq!((c.len(), c.is_empty()), (3, false));
        let none = Checker::new(ConstraintSet::default(), &reactor_spec());
        assert_eq!((none.len(), none.is_empty()), (0, true));
    }

    #[test]
    fn new_finds_ramps_critical_constraints_and_the_step_in_seconds() {
        let c = reactor_checker();
        assert_eq!(
            c.ramps,
            vec![Ramp {
                action: 0,
                signal: 2,
                limit: 5.0
            }]
        );
        assert_eq!(c.critical, vec![1]);
        let spec = reactor_spec();
        assert_eq!(c.dt_seconds, spec.dt * 60.0);
        for (unit, factor) in [("h", 3600.0), ("ms", 1e-3), ("s", 1.0), ("step", 1.0)] {
            let mut s = spec.clone();
            s.dt_unit = unit;
            let k = Checker::new(ConstraintSet::default(), &s);
            assert_eq!(k.dt_seconds, spec.dt * factor, "{unit}");
        }
        // A rate constraint on a signal that is no action is no ramp.
        let set = ConstraintSet {
            constraints: vec![Constraint::new(
                "t_rate",
                "rate",
                Kind::Rate {
                    signal: 1,
                    limit: 1.0,
                },
                Severity::Warning,
            )],
        };
        assert!(Checker::new(set, &spec).ramps.is_empty());
    }

    #[test]
    fn evaluate_opens_costs_penalises_shuts_down_and_times_the_response() {
        let c = reactor_checker();
        let mut alarms = vec![AlarmState::default(); 3];
        let mut events = Vec::new();
        let mut buf = Buf::new(3);
        // Step 1: T = 340 K, above the warning limit only.
        let o = c.evaluate(
            &mut alarms,
            &[0.5, 340.0, 300.0],
            &[0.5, 330.0, 300.0],
            at(1),
            buf.out(),
            &mut events,
        );
        assert_eq!(buf.values, vec![340.0, 340.0, 0.0]);
        assert_eq!(buf.margins, vec![-9.0, 10.0, 5.0]);
        assert_eq!(buf.active, vec![true, false, false]);
        assert_eq!(o.shutdown, None);
        assert_eq!(o.penalty, 0.0);
        assert_eq!(o.cost, 9.0 / 331.0);
        assert_eq!(events.len(), 1);
        assert_eq!(
            (
                events[0].kind,
                events[0].constraint,
                events[0].env,
                events[0].episode
            ),
            (EventKind::IncidentOpened, Some(0), 3, 2)
        );
        assert_eq!(
            (events[0].step, events[0].wall, events[0].value),
            (1, 1001.0, 340.0)
        );
        // Step 4: T = 360 K: the runaway opens and shuts the env down; its penalty applies and the
        // warning incident (open since step 1) is answered by the shutdown 3 steps later.
        events.clear();
        let o = c.evaluate(
            &mut alarms,
            &[0.5, 360.0, 300.0],
            &[0.5, 340.0, 300.0],
            at(4),
            buf.out(),
            &mut events,
        );
        assert_eq!(o.shutdown, Some(1));
        assert_eq!(o.penalty, 2.0);
        assert_eq!(o.cost, 29.0 / 331.0 + 10.0 / 350.0);
        let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.constraint)).collect();
        assert_eq!(
            kinds,
            vec![
                (EventKind::IncidentOpened, Some(1)),
                (EventKind::EmergencyShutdown, Some(1)),
            ]
        );
        assert_eq!(events[1].value, 360.0);
        assert_eq!(alarms[1].response, Response::Shutdown);
        assert_eq!(alarms[1].response_seconds, 0.0);
        // The shutdown answers the incident that caused it; another open incident is unanswered.
        assert_eq!(alarms[0].response, Response::None);
        // Back to 300 K: both clear.
        events.clear();
        c.evaluate(
            &mut alarms,
            &[0.5, 300.0, 300.0],
            &[0.5, 360.0, 300.0],
            at(5),
            buf.out(),
            &mut events,
        );
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.kind == EventKind::IncidentClosed));
        assert_eq!(buf.active, vec![false, false, false]);
    }

    #[test]
    fn a_shutdown_times_the_response_from_the_incident_start() {
        let c = reactor_checker();
        let mut alarms = vec![AlarmState::default(); 3];
        let mut events = Vec::new();
        let mut buf = Buf::new(3);
        let hot = [0.5, 360.0, 300.0];
        // Opened (and shut down) at step 2; marked unanswered again, the shutdown still in force at
        // step 5 records 3 steps.
        c.evaluate(&mut alarms, &hot, &hot, at(2), buf.out(), &mut events);
        assert_eq!(alarms[1].start_step, 2);
        alarms[1].response = Response::None;
        c.evaluate(&mut alarms, &hot, &hot, at(5), buf.out(), &mut events);
        assert_eq!(alarms[1].response, Response::Shutdown);
        assert_eq!(alarms[1].response_seconds, 3.0 * c.dt_seconds);
    }

    #[test]
    fn measure_reads_without_touching_alarms() {
        let c = reactor_checker();
        let mut alarms = vec![AlarmState::default(); 3];
        alarms[2].active = true;
        let before = alarms.clone();
        let mut buf = Buf::new(3);
        c.measure(&alarms, &[0.5, 340.0, 310.0], &[0.5, 0.0, 300.0], buf.out());
        assert_eq!(buf.values, vec![340.0, 340.0, 10.0]);
        assert_eq!(buf.margins, vec![-9.0, 10.0, -5.0]);
        assert_eq!(buf.active, vec![false, false, true]);
        assert_eq!(alarms, before);
    }

    #[test]
    fn shield_and_episode_end_answer_and_close_open_incidents() {
        let c = reactor_checker();
        let mut alarms = vec![AlarmState::default(); 3];
        let mut events = Vec::new();
        let mut buf = Buf::new(3);
        c.evaluate(
            &mut alarms,
            &[0.5, 340.0, 300.0],
            &[0.5, 340.0, 300.0],
            at(2),
            buf.out(),
            &mut events,
        );
        events.clear();
        c.shield_acted(&mut alarms, at(6), &mut events);
        assert_eq!(alarms[0].response, Response::Shield);
        assert_eq!(alarms[0].response_seconds, 4.0 * c.dt_seconds);
        // Alarms that are not active are not answered.
        assert_eq!(alarms[1].response, Response::None);
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].kind, events[0].constraint, events[0].step),
            (EventKind::ShieldIntervention, None, 6)
        );
        events.clear();
        c.close_all(&mut alarms, at(7), &mut events);
        assert_eq!(events.len(), 1);
        assert_eq!(
            (
                events[0].kind,
                events[0].constraint,
                events[0].alarm.start_step
            ),
            (EventKind::IncidentClosedByEpisodeEnd, Some(0), 2)
        );
        assert!(alarms.iter().all(|a| *a == AlarmState::default()));
    }
}
