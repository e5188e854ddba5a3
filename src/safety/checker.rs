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
