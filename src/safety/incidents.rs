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
