//! Safety events as Python sees them: a dict of equal-length columns, and the codes of its kinds.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::py::convert;
use crate::safety::SafetyEvent;

/// Event codes in the ``kind`` column of [`events_columns`].
pub const EVENT_KINDS: [&str; 5] = [
    "incident_opened",
    "incident_closed",
    "incident_closed_by_episode_end",
    "emergency_shutdown",
    "shield_intervention",
];

fn kind_code(k: crate::safety::EventKind) -> u8 {
    use crate::safety::EventKind::*;
    match k {
        IncidentOpened => 0,
        IncidentClosed => 1,
        IncidentClosedByEpisodeEnd => 2,
        EmergencyShutdown => 3,
        ShieldIntervention => 4,
    }
}

fn response_code(r: crate::safety::Response) -> u8 {
    match r {
        crate::safety::Response::None => 0,
        crate::safety::Response::Shield => 1,
        crate::safety::Response::Shutdown => 2,
    }
}

/// Events as a dict of equal-length columns: ``kind`` (code into ``EVENT_KINDS``), ``env``,
/// ``episode``, ``constraint`` (-1: none), ``step``, ``value``, ``incident``, ``first_value``,
/// ``peak_value``, ``start_step``, ``response`` (0 none, 1 shield, 2 shutdown), ``response_seconds``.
pub fn events_columns<'py>(
    py: Python<'py>,
    events: &[SafetyEvent],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    macro_rules! col {
        ($key:literal, $f:expr) => {
            d.set_item($key, convert::array1(py, events.iter().map($f).collect()))?;
        };
    }
    col!("kind", |e| kind_code(e.kind));
    col!("env", |e| e.env as i64);
    col!("episode", |e| e.episode as i64);
    col!("constraint", |e| e.constraint.map_or(-1, i64::from));
    col!("step", |e| i64::from(e.step));
    col!("value", |e| e.value);
    col!("incident", |e| e.alarm.incident);
    col!("first_value", |e| e.alarm.first_value);
    col!("peak_value", |e| e.alarm.peak_value);
    col!("start_step", |e| i64::from(e.alarm.start_step));
    col!("response", |e| response_code(e.alarm.response));
    col!("response_seconds", |e| e.alarm.response_seconds);
    Ok(d)
}
