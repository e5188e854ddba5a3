//! Incident ids: unique within the process (`safety_000001`, `safety_000002`, ...), given to an
//! incident when it opens and carried by every later event of it.

use std::sync::atomic::{AtomicU64, Ordering};

use super::alarm::AlarmState;
use super::checker::{EventKind, SafetyEvent};

static NEXT_INCIDENT: AtomicU64 = AtomicU64::new(1);

/// A fresh incident id.
pub fn next_id() -> u64 {
    NEXT_INCIDENT.fetch_add(1, Ordering::Relaxed)
}

/// Gives the incidents opened in `events` fresh ids, writes them into the open alarms (`alarms`:
/// `k` per env, env-major) and gives later events of the same incident in `events` (closed within
/// the step) the same id.
pub fn assign_ids(events: &mut [SafetyEvent], alarms: &mut [AlarmState], k: usize) {
    let mut opened: Vec<(usize, u16, u64)> = Vec::new();
    for e in events.iter_mut() {
        let Some(c) = e.constraint else { continue };
        if e.kind == EventKind::IncidentOpened {
            let id = next_id();
            e.alarm.incident = id;
            opened.push((e.env, c, id));
            let a = &mut alarms[e.env * k + usize::from(c)];
            if a.active && a.incident == 0 {
                a.incident = id;
            }
        } else if e.alarm.incident == 0 {
            if let Some(&(_, _, id)) = opened.iter().rev().find(|(i, j, _)| *i == e.env && *j == c)
            {
                e.alarm.incident = id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::checker::EventKind::*;

    fn event(kind: EventKind, env: usize, constraint: u16, incident: u64) -> SafetyEvent {
        let mut alarm = AlarmState {
            active: kind == IncidentOpened,
            ..AlarmState::default()
        };
        alarm.incident = incident;
        SafetyEvent {
            kind,
            env,
            episode: 1,
            constraint: Some(constraint),
            step: 0,
            wall: 0.0,
            value: 0.0,
            alarm,
        }
    }

    #[test]
    fn an_opened_incident_takes_a_fresh_id_its_alarm_and_its_close_share_it() {
        // Two envs with two constraints each (k = 2): env 1's constraint 1 is alarms[3].
        let mut alarms = vec![AlarmState::default(); 4];
        alarms[3].active = true;
        alarms[0].active = true;
        let mut events = vec![
            event(IncidentOpened, 1, 1, 0),
            event(IncidentOpened, 0, 0, 0),
            event(IncidentClosed, 1, 1, 0),
            event(IncidentClosed, 0, 1, 0), // no incident of env 0, constraint 1 opened here
            event(IncidentClosed, 0, 0, 77), // already carries its id
        ];
        assign_ids(&mut events, &mut alarms, 2);
        let (a, b) = (events[0].alarm.incident, events[1].alarm.incident);
        assert!(a > 0 && b > 0 && a != b);
        assert_eq!((alarms[3].incident, alarms[0].incident), (a, b));
        assert_eq!(events[2].alarm.incident, a);
        assert_eq!(events[3].alarm.incident, 0);
        assert_eq!(events[4].alarm.incident, 77);
        assert_eq!((alarms[1].incident, alarms[2].incident), (0, 0));
        assert!(next_id() > a.max(b));
    }

    #[test]
    fn an_alarm_that_already_has_an_id_or_is_not_active_keeps_what_it_has() {
        let mut alarms = vec![AlarmState::default(); 2];
        alarms[0].active = true;
        alarms[0].incident = 5;
        let mut events = vec![
            event(IncidentOpened, 0, 0, 0),
            event(IncidentOpened, 0, 1, 0),
        ];
        assign_ids(&mut events, &mut alarms, 2);
        assert_eq!(alarms[0].incident, 5);
        assert_eq!(alarms[1].incident, 0);
        // Ids come from one process-wide counter: fresh, increasing, whatever other tests took.
        let (a, b) = (events[0].alarm.incident, events[1].alarm.incident);
        assert!(a > 0 && b > a, "{a} {b}");
    }
}
