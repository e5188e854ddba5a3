//! A finished batch step as the ones who watch it read it: per-env results and a borrowed view of
//! the step's columns, alarms and events. Defined below both the batch (`crate::vector`) and its
//! observers (`crate::telemetry`, the running totals), so neither imports the other.

use crate::safety::SafetyEvent;

/// Per-env scalar results of one step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Row {
    /// Reward of the step, penalties included (0 for an autoreset step).
    pub reward: f64,
    /// Safety cost of the step.
    pub cost: f64,
    /// Episode ended in a terminal state (emergency shutdown).
    pub terminated: bool,
    /// Episode cut at the horizon.
    pub truncated: bool,
    /// The env was stepped (false: it was reset by NEXT_STEP autoreset instead).
    pub stepped: bool,
    /// Number of action elements clipped into `[-1, 1]`.
    pub clipped: u32,
    /// The shield changed the action.
    pub shielded: bool,
    /// Index of the critical constraint that shut the env down.
    pub shutdown: Option<u16>,
    /// SAME_STEP only: the env ended and was reset within this step.
    pub reset_in_step: bool,
    /// Return of the episode that ended in this step.
    pub episode_return: f64,
    /// The episode ended in this step and met the model's success criterion (never after an
    /// emergency shutdown; see [`crate::envs::success`]).
    pub success: bool,
    /// Observations clamped to their range in this step (bit `j`: observation `j`, the first
    /// 64): a sensor at its end of scale. Zero for an autoreset step.
    pub pegged: u64,
}

/// The episode counters of a batch's envs, read only where an episode ended.
pub trait Episodes {
    /// Episodes env `i` has started so far (its current episode's number, 1 for the first).
    fn started(&self, i: usize) -> u64;
}

/// What the metrics and the running totals read of a step, borrowed: per-env columns (`n`
/// entries), the alarms after the step (`k x n`; before any same-step reset in `final_active`,
/// empty without same-step autoreset), the events and the envs' episode counters.
pub struct StepView<'a> {
    pub stepped: &'a [bool],
    pub cost: &'a [f64],
    pub terminated: &'a [bool],
    pub truncated: &'a [bool],
    pub shielded: &'a [bool],
    pub reset_in_step: &'a [bool],
    pub episode_return: &'a [f64],
    pub success: &'a [bool],
    pub active: &'a [bool],
    pub final_active: &'a [bool],
    pub events: &'a [SafetyEvent],
    pub episodes: &'a dyn Episodes,
}

impl<'a> StepView<'a> {
    /// A batch of one: its row's fields as one-entry columns (nothing allocated).
    pub fn of_one(
        r: &'a Row,
        active: &'a [bool],
        events: &'a [SafetyEvent],
        episodes: &'a dyn Episodes,
    ) -> Self {
        use std::slice::from_ref;
        Self {
            stepped: from_ref(&r.stepped),
            cost: from_ref(&r.cost),
            terminated: from_ref(&r.terminated),
            truncated: from_ref(&r.truncated),
            shielded: from_ref(&r.shielded),
            reset_in_step: from_ref(&r.reset_in_step),
            episode_return: from_ref(&r.episode_return),
            success: from_ref(&r.success),
            active,
            final_active: &[],
            events,
            episodes,
        }
    }

    /// Number of the episode env `i` ended in this step (1 for the first): its counter, less the
    /// episode a same-step reset began.
    pub fn ended_episode(&self, i: usize) -> u64 {
        let reset = self.reset_in_step.get(i).copied().unwrap_or(false);
        self.episodes.started(i).saturating_sub(u64::from(reset))
    }
}
