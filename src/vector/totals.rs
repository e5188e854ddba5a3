//! A batch's running safety counts.

use std::collections::VecDeque;

use crate::safety::{EventKind, SafetyEvent};
use crate::step::StepView;

/// A batch's running safety counts since it was made, and its most recent closed incidents: what
/// Python's `SafetyStats` shows. The batch adds to them as it steps (behind a lock, so they can be
/// read from another thread meanwhile).
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    /// Env steps taken (not counting NEXT_STEP autoreset steps).
    pub steps: u64,
    /// Sum of the cost signal, added in env order (the same for any thread count).
    pub cost: f64,
    /// Safety events (what the audit trail receives).
    pub events: u64,
    /// Shield interventions.
    pub shield: u64,
    /// Incidents opened, per constraint.
    pub opened: Vec<u64>,
    /// Emergency shutdowns, per constraint.
    pub shutdowns: Vec<u64>,
    /// Env steps ending with the constraint's alarm active, per constraint.
    pub in_violation: Vec<u64>,
    /// Env steps ending with no alarm active.
    pub alarm_free: u64,
    /// Closing events of the most recent incidents (up to `keep`), oldest first.
    pub closed: VecDeque<SafetyEvent>,
    /// How many closed incidents are kept.
    pub keep: usize,
}

/// Closed incidents a batch keeps by default.
pub const KEEP_INCIDENTS: usize = 1000;

impl Totals {
    /// Zero counts for `k` constraints.
    pub fn new(k: usize) -> Self {
        Self {
            steps: 0,
            cost: 0.0,
            events: 0,
            shield: 0,
            opened: vec![0; k],
            shutdowns: vec![0; k],
            in_violation: vec![0; k],
            alarm_free: 0,
            closed: VecDeque::new(),
            keep: KEEP_INCIDENTS,
        }
    }

    /// Keeps the `keep` most recent closed incidents from now on.
    pub fn set_keep(&mut self, keep: usize) {
        self.keep = keep;
        self.trim();
    }

    pub(super) fn trim(&mut self) {
        while self.closed.len() > self.keep {
            self.closed.pop_front();
        }
    }

    /// Adds a step: its transitions, cost, alarms and events.
    pub(super) fn add_step(&mut self, c: &StepView<'_>) {
        let n = c.stepped.len();
        self.steps += c.stepped.iter().map(|&s| u64::from(s)).sum::<u64>();
        let stepped_cost = c.cost.iter().zip(c.stepped).filter(|(_, &s)| s);
        self.cost += stepped_cost.map(|(x, _)| x).sum::<f64>();
        self.add_alarms(c, n);
        self.add_events(c.events);
    }

    /// Counts steps ending with each alarm active, and with none, 64 envs at a time as bit masks
    /// (one pass over the alarm rows, no allocation). Envs reset within a same-step batch report
    /// their reset readings: their last step's alarms are the final ones.
    fn add_alarms(&mut self, c: &StepView<'_>, n: usize) {
        let same_step = !c.final_active.is_empty();
        let bits = |flags: &[bool]| {
            flags
                .iter()
                .enumerate()
                .fold(0u64, |m, (b, &f)| m | (u64::from(f) << b))
        };
        for start in (0..n).step_by(64) {
            let end = (start + 64).min(n);
            let stepped = bits(&c.stepped[start..end]);
            let reset = if same_step {
                bits(&c.reset_in_step[start..end])
            } else {
                0
            };
            let mut any = 0u64;
            for (j, count) in self.in_violation.iter_mut().enumerate() {
                let row = j * n;
                let mut active = bits(&c.active[row + start..row + end]);
                if reset != 0 {
                    let before = bits(&c.final_active[row + start..row + end]);
                    active = (active & !reset) | (before & reset);
                }
                *count += u64::from((active & stepped).count_ones());
                any |= active;
            }
            self.alarm_free += u64::from((stepped & !any).count_ones());
        }
    }

    /// Adds safety events (a step's, or those a reset raises).
    pub(super) fn add_events(&mut self, events: &[SafetyEvent]) {
        self.events += events.len() as u64;
        let k = self.opened.len();
        for e in events {
            let c = e.constraint.map(usize::from).filter(|&c| c < k);
            match (e.kind, c) {
                (EventKind::IncidentOpened, Some(c)) => self.opened[c] += 1,
                (EventKind::EmergencyShutdown, Some(c)) => self.shutdowns[c] += 1,
                (EventKind::ShieldIntervention, _) => self.shield += 1,
                (EventKind::IncidentClosed | EventKind::IncidentClosedByEpisodeEnd, _) => {
                    self.closed.push_back(*e);
                }
                _ => {}
            }
        }
        self.trim();
    }
}
