//! A finished batch step into the metrics and the logs: counts from its columns and events, one
//! [`EnvMetrics::record_batch`], and the logs of its new violations and shutdowns behind the rate
//! limiter. The batch hands over its step once; nothing here runs per env on the step path.

use crate::safety::{ConstraintSet, EventKind, SafetyEvent};
use crate::step::StepView;

use super::env_metrics::{BatchRecord, EnvMetrics};
use super::exemplar::{Observed, Origin};
use super::logging;

impl EnvMetrics {
    /// Records a finished batch step that took `seconds`; `constraints` are the batch's (for the
    /// limits its logs quote). Returns whether a constraint shut an env down in this step.
    pub fn record_step(
        &self,
        view: &StepView<'_>,
        seconds: f64,
        constraints: &ConstraintSet,
    ) -> bool {
        let events = view.events;
        let k = constraints.len();
        // Stack buffers for the usual handful of constraints: nothing allocated per batch.
        let (mut v_buf, mut s_buf) = ([0u64; 32], [0u64; 32]);
        let (mut v_heap, mut s_heap) = (Vec::new(), Vec::new());
        let (violations, shutdowns): (&mut [u64], &mut [u64]) = if k <= 32 {
            (&mut v_buf[..k], &mut s_buf[..k])
        } else {
            v_heap.resize(k, 0);
            s_heap.resize(k, 0);
            (&mut v_heap, &mut s_heap)
        };
        let mut responses = Vec::new();
        for e in events {
            let Some(c) = e.constraint.map(usize::from) else {
                continue;
            };
            match e.kind {
                EventKind::IncidentOpened => violations[c] += 1,
                EventKind::EmergencyShutdown => shutdowns[c] += 1,
                EventKind::IncidentClosed | EventKind::IncidentClosedByEpisodeEnd
                    if e.alarm.response_seconds.is_finite() =>
                {
                    responses.push(Observed {
                        value: e.alarm.response_seconds,
                        origin: Origin {
                            env_index: e.env,
                            episode: e.episode,
                            incident: e.alarm.incident,
                        },
                    });
                }
                _ => {}
            }
        }
        self.log_events(events, violations, shutdowns, constraints);
        let ended = view.terminated.iter().zip(view.truncated);
        let returns: Vec<Observed> = ended
            .clone()
            .zip(view.episode_return)
            .enumerate()
            .filter(|(_, ((&a, &b), _))| a || b)
            .map(|(i, (_, &r))| Observed {
                value: r,
                origin: Origin {
                    env_index: i,
                    episode: view.ended_episode(i),
                    incident: 0,
                },
            })
            .collect();
        if !returns.is_empty() {
            // [success, failure, shutdown, truncated]: a shutdown is never a success; an episode
            // is truncated only by a reset before its end (counted by the reset).
            let mut outcomes = [0u64; 4];
            for ((&terminated, &truncated), &success) in ended.zip(view.success) {
                if terminated {
                    outcomes[2] += 1;
                } else if truncated {
                    outcomes[usize::from(!success)] += 1;
                }
            }
            self.record_outcomes(outcomes);
        }
        let count = |flags: &[bool]| flags.iter().map(|&f| u64::from(f)).sum::<u64>();
        self.record_batch(&BatchRecord {
            env_steps: count(view.stepped),
            step_seconds: seconds,
            violations,
            shutdowns,
            shield_interventions: count(view.shielded),
            ended: &returns,
            responses: &responses,
            ..BatchRecord::default()
        });
        shutdowns.iter().any(|&s| s > 0)
    }

    /// Logs the batch's new violations and shutdowns in event order. The rate limiter decides
    /// once per constraint for the batch's count (a flood of thousands per step then costs a
    /// handful of decisions, not thousands), and every violation takes an id, logged or not.
    fn log_events(
        &self,
        events: &[SafetyEvent],
        violations: &[u64],
        shutdowns: &[u64],
        constraints: &ConstraintSet,
    ) {
        let opened: u64 = violations.iter().sum();
        if opened == 0 && shutdowns.iter().all(|&s| s == 0) {
            return;
        }
        let mut v_pass: Vec<u64> = (0..violations.len())
            .map(|c| self.violations_passing(c, violations[c]))
            .collect();
        let mut s_pass: Vec<u64> = (0..shutdowns.len())
            .map(|c| self.shutdowns_passing(c, shutdowns[c]))
            .collect();
        let mut id = self.take_violation_ids(opened);
        if v_pass.iter().chain(&s_pass).all(|&p| p == 0) {
            return;
        }
        for e in events {
            let Some(c) = e.constraint.map(usize::from) else {
                continue;
            };
            let limit = || constraints.constraints[c].limit_near(e.value);
            let at = logging::Correlation {
                episode: Some(e.episode),
                incident: Some(e.alarm.incident),
            };
            match e.kind {
                EventKind::IncidentOpened => {
                    id += 1;
                    if v_pass[c] > 0 {
                        v_pass[c] -= 1;
                        self.log_violation_passed(c, (e.env, e.value, limit()), id, at);
                    }
                }
                EventKind::EmergencyShutdown if s_pass[c] > 0 => {
                    s_pass[c] -= 1;
                    self.log_shutdown_passed(c, (e.env, e.value, limit()), at);
                }
                _ => {}
            }
        }
    }
}
