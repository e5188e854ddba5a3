//! What a batch step and a reset hand back: per-env rows and columns, constraint readings.

use super::slices::take;
use crate::safety::SafetyEvent;
pub use crate::step::Row;
use crate::step::{Episodes, StepView};

/// Constraint readings of a batch: values, margins and active alarms, `k x num_envs` each
/// (constraint-major: constraint `c` of env `i` at `c * num_envs + i`, so each constraint's readings
/// are one contiguous column, handed to Python as they are).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readings {
    /// Constraint values.
    pub values: Vec<f64>,
    /// Margins to the limits (positive: satisfied).
    pub margins: Vec<f64>,
    /// Active alarms.
    pub active: Vec<bool>,
}

impl Readings {
    pub(super) fn zeros(len: usize) -> Self {
        Self {
            values: vec![0.0; len],
            margins: vec![0.0; len],
            active: vec![false; len],
        }
    }
}

/// Declares [`Columns`] (one vector per [`Row`] field) and its lane views.
macro_rules! columns {
    ($($(#[$doc:meta])* $field:ident: $t:ty = $zero:expr, from $r:ident => $conv:expr;)*) => {
        /// Per-env step results as columns, `num_envs` entries each: what a [`Row`] holds, laid
        /// out as the arrays Python receives (`clipped` and `shutdown` as int64, -1: no shutdown).
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct Columns {
            $($(#[$doc])* pub $field: Vec<$t>,)*
        }

        impl Columns {
            pub(super) fn new(n: usize) -> Self {
                Self { $($field: vec![$zero; n],)* }
            }

            pub(super) fn view(&mut self) -> ColumnsMut<'_> {
                ColumnsMut { $($field: &mut self.$field,)* }
            }

            /// The rows as columns.
            pub(super) fn of_rows(rows: &[Row]) -> Self {
                Self { $($field: rows.iter().map(|$r| $conv).collect(),)* }
            }
        }

        /// A lane's part of [`Columns`].
        pub(super) struct ColumnsMut<'a> {
            $($field: &'a mut [$t],)*
        }

        impl<'a> ColumnsMut<'a> {
            /// Splits off the next `len` envs.
            pub(super) fn take(&mut self, len: usize) -> ColumnsMut<'a> {
                ColumnsMut { $($field: take(&mut self.$field, len),)* }
            }

            /// No columns (a single env's step keeps its row).
            pub(super) fn none() -> Self {
                ColumnsMut { $($field: &mut [],)* }
            }

            /// Writes the lane's rows, one column at a time.
            pub(super) fn fill(&mut self, rows: &[Row]) {
                $(for (x, $r) in self.$field.iter_mut().zip(rows) {
                    *x = $conv;
                })*
            }
        }
    };
}

columns! {
    /// Reward, penalties included (0 for an autoreset step).
    reward: f64 = 0.0, from r => r.reward;
    /// Safety cost.
    cost: f64 = 0.0, from r => r.cost;
    /// Ended in a terminal state.
    terminated: bool = false, from r => r.terminated;
    /// Cut at the horizon.
    truncated: bool = false, from r => r.truncated;
    /// Stepped (false: reset by NEXT_STEP autoreset).
    stepped: bool = false, from r => r.stepped;
    /// Action elements clipped into `[-1, 1]`.
    clipped: i64 = 0, from r => i64::from(r.clipped);
    /// The shield changed the action.
    shielded: bool = false, from r => r.shielded;
    /// Index of the critical constraint that shut the env down, -1: none.
    shutdown: i64 = -1, from r => r.shutdown.map_or(-1, i64::from);
    /// SAME_STEP: ended and reset within the step.
    reset_in_step: bool = false, from r => r.reset_in_step;
    /// Return of the episode that ended in the step.
    episode_return: f64 = 0.0, from r => r.episode_return;
    /// Ended in the step and met the success criterion.
    success: bool = false, from r => r.success;
    /// Observations clamped to their range (bit j: observation j).
    pegged: u64 = 0, from r => r.pegged;
}

impl Columns {
    /// Env `i`'s results as a [`Row`].
    pub fn row(&self, i: usize) -> Row {
        Row {
            reward: self.reward[i],
            cost: self.cost[i],
            terminated: self.terminated[i],
            truncated: self.truncated[i],
            stepped: self.stepped[i],
            clipped: u32::try_from(self.clipped[i]).unwrap_or(u32::MAX),
            shielded: self.shielded[i],
            shutdown: u16::try_from(self.shutdown[i]).ok(),
            reset_in_step: self.reset_in_step[i],
            episode_return: self.episode_return[i],
            success: self.success[i],
            pegged: self.pegged[i],
        }
    }
}

/// Everything one batch step produces, in fresh buffers.
#[derive(Debug, Clone, Default)]
pub struct StepOut {
    /// Observations, `num_envs x obs_dim`, after any autoreset.
    pub obs: Vec<f32>,
    /// Per-env scalars.
    pub cols: Columns,
    /// Physical actions applied (after the shield), `num_envs x act_dim`.
    pub action: Vec<f64>,
    /// Constraint readings (after any autoreset: the reset state's).
    pub readings: Readings,
    /// SAME_STEP: observation before the reset, `num_envs x obs_dim` (valid where `reset_in_step`).
    pub final_obs: Vec<f32>,
    /// SAME_STEP: readings before the reset (valid where `reset_in_step`).
    pub final_readings: Readings,
    /// Safety events in env order.
    pub events: Vec<SafetyEvent>,
}

/// The step of a batch of one env ([`VecCore::step_one`](super::VecCore::step_one)): its row
/// instead of columns, in buffers the batch reuses (valid until its next step).
#[derive(Debug, Clone, Default)]
pub struct OneStep {
    /// The env's results.
    pub row: Row,
    /// Observation after the step.
    pub obs: Vec<f32>,
    /// Physical action applied (after the shield).
    pub action: Vec<f64>,
    /// Constraint readings, one per constraint.
    pub readings: Readings,
    /// Safety events.
    pub events: Vec<SafetyEvent>,
}

impl StepOut {
    pub(super) fn of_one(one: OneStep) -> Self {
        Self {
            obs: one.obs,
            cols: Columns::of_rows(&[one.row]),
            action: one.action,
            readings: one.readings,
            final_obs: Vec::new(),
            final_readings: Readings::default(),
            events: one.events,
        }
    }

    pub(super) fn view<'a>(&'a self, episodes: &'a dyn Episodes) -> StepView<'a> {
        let c = &self.cols;
        StepView {
            stepped: &c.stepped,
            cost: &c.cost,
            terminated: &c.terminated,
            truncated: &c.truncated,
            shielded: &c.shielded,
            reset_in_step: &c.reset_in_step,
            episode_return: &c.episode_return,
            success: &c.success,
            active: &self.readings.active,
            final_active: &self.final_readings.active,
            events: &self.events,
            episodes,
        }
    }

    /// Env `i`'s results as a [`Row`].
    pub fn row(&self, i: usize) -> Row {
        self.cols.row(i)
    }

    /// Every env's results as [`Row`]s.
    pub fn rows(&self) -> Vec<Row> {
        (0..self.cols.reward.len()).map(|i| self.row(i)).collect()
    }
}

/// The result of a reset.
#[derive(Debug, Clone, Default)]
pub struct ResetOut {
    /// Observations, `num_envs x obs_dim` (envs outside the mask keep their current observation).
    pub obs: Vec<f32>,
    /// Constraint readings.
    pub readings: Readings,
    /// Incidents closed by the reset.
    pub events: Vec<SafetyEvent>,
}
