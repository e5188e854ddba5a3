//! A batch of environments stepped together.
//!
//! Layout: one flat `f64` buffer holds every env's row, `[model state | last signals]`, so an env is
//! one contiguous chunk. The batch is cut into lanes of consecutive envs that the batch's threads
//! (the caller and its helpers, `crate::pool`) take in turn. A lane works on per-env rows and
//! readings in reusable scratch and, when done, writes its part of the step's outputs as columns
//! ([`Columns`], constraint-major [`Readings`]): the arrays Python receives, with no per-env loop
//! left for the caller. Each env owns its RNG stream, seeded from `(seed + index)` as Gymnasium's
//! vector envs do, so results never depend on the thread count, the lane size or the batch size:
//! env `i` of a batch equals a single env seeded the same way.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::pool::Pool;

use crate::envs::{Batching, ProcessModel, StepItem};
use crate::errors::{try_filled, CoreError};
use crate::rng::{entropy_seed, Rng};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::safety::audit::{AuditTrail, Source};
use crate::safety::{
    shield, AlarmState, At, Checker, ConstraintSet, EventKind, Outputs, SafetyEvent, Shield,
};
use crate::telemetry::env_metrics::{BatchRecord, EnvMetrics};
use crate::telemetry::health::SafetyState;

/// Incident ids are unique within the process: `safety_000001`, `safety_000002`, ...
static NEXT_INCIDENT: AtomicU64 = AtomicU64::new(1);

/// What happens when an env's episode ends (Gymnasium's `AutoresetMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autoreset {
    /// The step after the end resets the env and returns its first observation (reward 0).
    NextStep,
    /// The env resets within the ending step; the last observation goes to `final_obs`.
    SameStep,
    /// The caller resets ended envs with a mask.
    Disabled,
}

impl Autoreset {
    /// Parses Gymnasium's mode names (`next_step`, `same_step`, `disabled`), case-insensitively.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        match s.to_ascii_lowercase().replace('_', "").as_str() {
            "nextstep" => Ok(Autoreset::NextStep),
            "samestep" => Ok(Autoreset::SameStep),
            "disabled" => Ok(Autoreset::Disabled),
            _ => Err(CoreError::config(
                "autoreset_mode",
                format!("must be next_step, same_step or disabled, got {s:?}"),
            )),
        }
    }
}

/// Per-env bookkeeping besides the model state.
#[derive(Debug, Clone, Copy)]
struct Slot {
    rng: Rng,
    /// Steps taken in the current episode.
    elapsed: u32,
    /// The episode ended at the last step.
    done: bool,
    /// The env has been reset at least once.
    started: bool,
    /// Episodes started so far.
    episode: u64,
    /// Return of the current episode so far.
    ret: f64,
}

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
}

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
    fn zeros(len: usize) -> Self {
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
            fn new(n: usize) -> Self {
                Self { $($field: vec![$zero; n],)* }
            }

            fn view(&mut self) -> ColumnsMut<'_> {
                ColumnsMut { $($field: &mut self.$field,)* }
            }

            /// The rows as columns.
            fn of_rows(rows: &[Row]) -> Self {
                Self { $($field: rows.iter().map(|$r| $conv).collect(),)* }
            }
        }

        /// A lane's part of [`Columns`].
        struct ColumnsMut<'a> {
            $($field: &'a mut [$t],)*
        }

        impl<'a> ColumnsMut<'a> {
            /// Splits off the next `len` envs.
            fn take(&mut self, len: usize) -> ColumnsMut<'a> {
                ColumnsMut { $($field: take(&mut self.$field, len),)* }
            }

            /// No columns (a single env's step keeps its row).
            fn none() -> Self {
                ColumnsMut { $($field: &mut [],)* }
            }

            /// Writes the lane's rows, one column at a time.
            fn fill(&mut self, rows: &[Row]) {
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
            closed: VecDeque::new(),
            keep: KEEP_INCIDENTS,
        }
    }

    /// Keeps the `keep` most recent closed incidents from now on.
    pub fn set_keep(&mut self, keep: usize) {
        self.keep = keep;
        self.trim();
    }

    fn trim(&mut self) {
        while self.closed.len() > self.keep {
            self.closed.pop_front();
        }
    }

    /// Adds a step: its transitions, cost, alarms and events.
    fn add_step(&mut self, c: &StepView<'_>) {
        let n = c.stepped.len();
        self.steps += c.stepped.iter().map(|&s| u64::from(s)).sum::<u64>();
        let stepped_cost = c.cost.iter().zip(c.stepped).filter(|(_, &s)| s);
        self.cost += stepped_cost.map(|(x, _)| x).sum::<f64>();
        let same_step = !c.final_active.is_empty();
        for (j, count) in self.in_violation.iter_mut().enumerate() {
            let now = &c.active[j * n..(j + 1) * n];
            *count += if same_step {
                // Envs reset within the step report their reset readings; count their last step.
                let before = &c.final_active[j * n..(j + 1) * n];
                let active = |i: usize| {
                    if c.reset_in_step[i] {
                        before[i]
                    } else {
                        now[i]
                    }
                };
                (0..n).filter(|&i| c.stepped[i] && active(i)).count() as u64
            } else {
                now.iter().zip(c.stepped).filter(|(&a, &s)| a && s).count() as u64
            };
        }
        self.add_events(c.events);
    }

    /// Adds safety events (a step's, or those a reset raises).
    fn add_events(&mut self, events: &[SafetyEvent]) {
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

/// What the metrics and the running totals read of a step, borrowed: per-env columns (`n`
/// entries), the alarms after the step (`k x n`; before any same-step reset in `final_active`,
/// empty without same-step autoreset) and the events.
struct StepView<'a> {
    stepped: &'a [bool],
    cost: &'a [f64],
    terminated: &'a [bool],
    truncated: &'a [bool],
    shielded: &'a [bool],
    reset_in_step: &'a [bool],
    episode_return: &'a [f64],
    active: &'a [bool],
    final_active: &'a [bool],
    events: &'a [SafetyEvent],
}

impl<'a> StepView<'a> {
    /// A batch of one: its row's fields as one-entry columns (nothing allocated).
    fn of_one(r: &'a Row, active: &'a [bool], events: &'a [SafetyEvent]) -> Self {
        use std::slice::from_ref;
        Self {
            stepped: from_ref(&r.stepped),
            cost: from_ref(&r.cost),
            terminated: from_ref(&r.terminated),
            truncated: from_ref(&r.truncated),
            shielded: from_ref(&r.shielded),
            reset_in_step: from_ref(&r.reset_in_step),
            episode_return: from_ref(&r.episode_return),
            active,
            final_active: &[],
            events,
        }
    }
}

/// The step of a batch of one env ([`VecCore::step_one`]): its row instead of columns, in
/// buffers the batch reuses (valid until its next step).
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
    fn of_one(one: OneStep) -> Self {
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

    fn view(&self) -> StepView<'_> {
        let c = &self.cols;
        StepView {
            stepped: &c.stepped,
            cost: &c.cost,
            terminated: &c.terminated,
            truncated: &c.truncated,
            shielded: &c.shielded,
            reset_in_step: &c.reset_in_step,
            episode_return: &c.episode_return,
            active: &self.readings.active,
            final_active: &self.final_readings.active,
            events: &self.events,
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

/// A snapshot of a batch's full state (for pickling and copying).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The flat row buffer.
    pub rows: Vec<f64>,
    /// RNG state words, four per env.
    pub rngs: Vec<u64>,
    /// Steps taken per env.
    pub elapsed: Vec<u32>,
    /// Episode-ended flags per env.
    pub done: Vec<bool>,
    /// Reset-at-least-once flags per env.
    pub started: Vec<bool>,
    /// Return of the current episode so far, per env.
    pub returns: Vec<f64>,
    /// Episodes started so far, per env.
    pub episodes: Vec<u64>,
    /// Alarm states (on-delay counts, open incidents), `num_envs x constraints x
    /// AlarmState::INT_WORDS` integers (see [`AlarmState::to_words`]).
    pub alarm_ints: Vec<u64>,
    /// The alarms' real fields, `num_envs x constraints x AlarmState::REAL_WORDS`.
    pub alarm_reals: Vec<f64>,
}

/// Envs per lane below which splitting costs more than it gains.
const MIN_LANE: usize = 16;

/// Most envs of one batch: 16.8 million, far beyond what one process steps usefully, and a bound
/// on what a typo (`num_envs=10**12`) can ask the allocator for.
pub const MAX_ENVS: usize = 1 << 24;

/// Most threads of a private pool: far more than any machine's cores, and a bound on what a typo
/// (`num_threads=10**6`) can ask the operating system for.
pub const MAX_THREADS: usize = 1024;

/// The most signals an env may declare (a stack buffer).
pub const MAX_SIGNALS: usize = 32;

/// The most action dimensions an env may declare (a stack buffer).
pub const MAX_ACTIONS: usize = 16;

/// The shared step context, built from disjoint fields so the lanes can borrow the buffers.
macro_rules! ctx {
    ($s:expr, $wall:expr) => {
        Ctx {
            model: $s.model.as_ref(),
            checker: &$s.checker,
            shield: $s.shield,
            state_len: $s.state_len,
            row_len: $s.row_len,
            autoreset: $s.autoreset,
            frame: &$s.frame,
            wall: $wall,
        }
    };
}

/// What every step reads from the spec, laid out for the per-env loops: the action map and the
/// observation bounds as flat arrays, and the horizon.
struct Frame {
    /// Physical value at normalised action -1, per action element.
    act_low: Vec<f64>,
    /// Physical span of the normalised range [-1, 1], per action element.
    act_span: Vec<f64>,
    /// Observation bounds (a sensor's range), per observation element.
    obs_low: Vec<f32>,
    obs_high: Vec<f32>,
    horizon: u32,
}

impl Frame {
    fn of(spec: &crate::spec::EnvSpec) -> Self {
        Self {
            act_low: spec.actions.iter().map(|v| v.low).collect(),
            act_span: spec.actions.iter().map(|v| v.high - v.low).collect(),
            obs_low: spec.observations.iter().map(|v| v.low as f32).collect(),
            obs_high: spec.observations.iter().map(|v| v.high as f32).collect(),
            horizon: spec.horizon,
        }
    }

    /// Clips a normalised action into [-1, 1] and maps it to physical units in `phys` (as
    /// [`EnvSpec::to_physical`](crate::spec::EnvSpec::to_physical)); returns how many elements
    /// were clipped.
    #[inline]
    fn to_physical(&self, normalised: &[f64], phys: &mut [f64]) -> u32 {
        let mut clipped = 0u32;
        let map = self.act_low.iter().zip(&self.act_span);
        for ((p, &a), (&low, &span)) in phys.iter_mut().zip(normalised).zip(map) {
            let x = a.clamp(-1.0, 1.0);
            clipped += u32::from(x != a);
            *p = crate::spec::denormalise(x, low, span);
        }
        clipped
    }

    /// Keeps observations inside the observation space (a sensor's range), so noise or an
    /// extreme excursion never yields an observation outside the declared bounds.
    #[inline]
    fn clamp_obs(&self, obs: &mut [f32]) {
        let bounds = self.obs_low.iter().zip(&self.obs_high);
        for (o, (&low, &high)) in obs.iter_mut().zip(bounds) {
            *o = o.clamp(low, high);
        }
    }
}

/// A batch of one environment kind.
pub struct VecCore {
    model: Box<dyn ProcessModel>,
    checker: Checker,
    shield: Shield,
    n: usize,
    state_len: usize,
    row_len: usize,
    rows: Vec<f64>,
    slots: Vec<Slot>,
    alarms: Vec<AlarmState>,
    autoreset: Autoreset,
    frame: Frame,
    /// A private pool (`num_threads`), or `None` for the shared one.
    pool: Option<Pool>,
    audit: Option<(Arc<AuditTrail>, Arc<Source>)>,
    metrics: Option<Arc<EnvMetrics>>,
    scratch: Scratch,
    totals: Arc<Mutex<Totals>>,
    /// The last [`step_one`](Self::step_one)'s outputs.
    one: OneStep,
    /// Every env has been reset since the batch was made or restored (checked once, not on
    /// every step).
    all_started: bool,
}

/// Unix time now, read once per batch.
fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl VecCore {
    /// A batch of `n` envs of `model` with its default constraints and no shield;
    /// `threads = Some(k)` runs on a private pool of k threads.
    pub fn new(
        model: Box<dyn ProcessModel>,
        n: usize,
        autoreset: Autoreset,
        threads: Option<usize>,
    ) -> Result<Self, CoreError> {
        if n == 0 {
            return Err(CoreError::config("num_envs", "must be at least 1"));
        }
        if n > MAX_ENVS {
            return Err(CoreError::config(
                "num_envs",
                format!("must be at most {MAX_ENVS}, got {n}"),
            ));
        }
        let spec = model.spec();
        if spec.signals.len() > MAX_SIGNALS || spec.act_dim() > MAX_ACTIONS {
            return Err(CoreError::config(
                "env",
                "declares more signals or actions than supported",
            ));
        }
        let pool = match threads {
            None => None,
            Some(k) if k > MAX_THREADS => {
                return Err(CoreError::config(
                    "num_threads",
                    format!("must be at most {MAX_THREADS}, got {k}"),
                ))
            }
            Some(k) => Some(Pool::new(Some(k))?),
        };
        let checker = Checker::new(ConstraintSet::defaults(spec), spec);
        let state_len = model.state_len();
        let row_len = state_len + spec.signals.len();
        let base = entropy_seed();
        let what = format!("{n} {} envs", spec.id);
        let mut slots = try_filled(
            Some(n),
            Slot {
                rng: Rng::from_seed(base),
                elapsed: 0,
                done: false,
                started: false,
                episode: 0,
                ret: 0.0,
            },
            "num_envs",
            &what,
        )?;
        for (i, slot) in slots.iter_mut().enumerate() {
            slot.rng = Rng::from_seed(base.wrapping_add(i as u64));
        }
        let rows = try_filled(n.checked_mul(row_len), 0.0, "num_envs", &what)?;
        let k = checker.len();
        let alarms = try_filled(n.checked_mul(k), AlarmState::default(), "num_envs", &what)?;
        let frame = Frame::of(spec);
        Ok(Self {
            model,
            checker,
            shield: Shield::Off,
            n,
            state_len,
            row_len,
            rows,
            slots,
            alarms,
            autoreset,
            frame,
            pool,
            audit: None,
            metrics: None,
            scratch: Scratch::default(),
            totals: Arc::new(Mutex::new(Totals::new(k))),
            one: OneStep::default(),
            all_started: false,
        })
    }

    /// Records every batch step into `metrics` (once per batch, not per env), or stops recording.
    pub fn set_metrics(&mut self, metrics: Option<Arc<EnvMetrics>>) {
        if let Some(m) = &metrics {
            m.set_active(self.n as i64);
            m.set_safety_state(if self.checker.is_empty() {
                SafetyState::Inactive
            } else {
                SafetyState::Active
            });
        }
        self.metrics = metrics;
        self.link_audit_losses();
    }

    /// Lets the audit trail report its losses to the registry recorded into.
    fn link_audit_losses(&self) {
        if let (Some((trail, _)), Some(m)) = (&self.audit, &self.metrics) {
            trail.report_losses_to(m.audit_losses());
        }
    }

    /// The metrics handle, if recording.
    pub fn metrics(&self) -> Option<&Arc<EnvMetrics>> {
        self.metrics.as_ref()
    }

    /// One metrics update for a batch step: counts from the rows and events, logs for new incidents.
    fn record(&self, cols: &StepView<'_>, seconds: f64) {
        let Some(m) = &self.metrics else { return };
        let events = cols.events;
        let k = self.checker.len();
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
                    responses.push(e.alarm.response_seconds);
                }
                _ => {}
            }
        }
        self.log_events(m, events, violations, shutdowns);
        let ended = cols.terminated.iter().zip(cols.truncated);
        let returns: Vec<f64> = ended
            .zip(cols.episode_return)
            .filter(|((&a, &b), _)| a || b)
            .map(|(_, &r)| r)
            .collect();
        let count = |flags: &[bool]| flags.iter().map(|&f| u64::from(f)).sum::<u64>();
        m.record_batch(&BatchRecord {
            env_steps: count(cols.stepped),
            episode_returns: &returns,
            step_seconds: seconds,
            violations,
            shutdowns,
            shield_interventions: count(cols.shielded),
            response_seconds: &responses,
        });
        if self.autoreset == Autoreset::Disabled && shutdowns.iter().any(|&s| s > 0) {
            m.set_safety_state(SafetyState::ShutDown);
        }
    }

    /// Logs the batch's new violations and shutdowns in event order. The rate limiter decides
    /// once per constraint for the batch's count (a flood of thousands per step then costs a
    /// handful of decisions, not thousands), and every violation takes an id, logged or not.
    fn log_events(
        &self,
        m: &EnvMetrics,
        events: &[SafetyEvent],
        violations: &[u64],
        shutdowns: &[u64],
    ) {
        let opened: u64 = violations.iter().sum();
        if opened == 0 && shutdowns.iter().all(|&s| s == 0) {
            return;
        }
        let mut v_pass: Vec<u64> = (0..violations.len())
            .map(|c| m.violations_passing(c, violations[c]))
            .collect();
        let mut s_pass: Vec<u64> = (0..shutdowns.len())
            .map(|c| m.shutdowns_passing(c, shutdowns[c]))
            .collect();
        let mut id = m.take_violation_ids(opened);
        if v_pass.iter().chain(&s_pass).all(|&p| p == 0) {
            return;
        }
        for e in events {
            let Some(c) = e.constraint.map(usize::from) else {
                continue;
            };
            let limit = || self.checker.set.constraints[c].limit_near(e.value);
            match e.kind {
                EventKind::IncidentOpened => {
                    id += 1;
                    if v_pass[c] > 0 {
                        v_pass[c] -= 1;
                        m.log_violation_passed(c, e.env, e.value, limit(), id);
                    }
                }
                EventKind::EmergencyShutdown if s_pass[c] > 0 => {
                    s_pass[c] -= 1;
                    m.log_shutdown_passed(c, e.env, e.value, limit());
                }
                _ => {}
            }
        }
    }

    /// Sends this batch's safety events to `trail` from now on.
    pub fn set_audit(&mut self, trail: Option<Arc<AuditTrail>>) {
        let spec = self.model.spec();
        self.audit = trail.map(|t| {
            let src = Source {
                env_id: spec.id.to_string(),
                constraints: self.checker.set.clone(),
                dt_seconds: self.checker.dt_seconds,
            };
            (t, Arc::new(src))
        });
        self.link_audit_losses();
    }

    /// Gives incident events their ids (writing them back into open alarms) and sends the events
    /// to the audit trail.
    fn publish(&mut self, events: &mut [SafetyEvent]) {
        if events.is_empty() {
            return;
        }
        let k = self.checker.len();
        let mut opened: Vec<(usize, u16, u64)> = Vec::new();
        for e in events.iter_mut() {
            let Some(c) = e.constraint else { continue };
            if e.kind == EventKind::IncidentOpened {
                let id = NEXT_INCIDENT.fetch_add(1, Ordering::Relaxed);
                e.alarm.incident = id;
                opened.push((e.env, c, id));
                let a = &mut self.alarms[e.env * k + usize::from(c)];
                if a.active && a.incident == 0 {
                    a.incident = id;
                }
            } else if e.alarm.incident == 0 {
                if let Some(&(_, _, id)) =
                    opened.iter().rev().find(|(i, j, _)| *i == e.env && *j == c)
                {
                    e.alarm.incident = id;
                }
            }
        }
        if let Some((trail, src)) = &self.audit {
            trail.events(src, events.to_vec());
        }
    }

    /// Replaces the constraint set and the shield (before the first reset); refused, nothing
    /// changed, if the alarms of that many constraints cannot be allocated.
    pub fn set_safety(&mut self, set: ConstraintSet, shield: Shield) -> Result<(), CoreError> {
        let what = format!("the alarms of {} constraints in {} envs", set.len(), self.n);
        self.alarms = try_filled(
            self.n.checked_mul(set.len()),
            AlarmState::default(),
            "constraints",
            &what,
        )?;
        self.lock_totals().clone_from(&Totals::new(set.len()));
        self.checker = Checker::new(set, self.model.spec());
        self.shield = shield;
        Ok(())
    }

    /// The running safety counts (shared: they stay readable while the batch steps).
    pub fn totals(&self) -> Arc<Mutex<Totals>> {
        self.totals.clone()
    }

    fn lock_totals(&self) -> std::sync::MutexGuard<'_, Totals> {
        // Nothing panics while holding the lock; a poisoned one still holds whole counts.
        self.totals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The model (spec, dimensions).
    pub fn model(&self) -> &dyn ProcessModel {
        self.model.as_ref()
    }

    /// The safety evaluation (constraints, ramps).
    pub fn checker(&self) -> &Checker {
        &self.checker
    }

    /// The shield in use.
    pub fn shield(&self) -> Shield {
        self.shield
    }

    /// Number of envs.
    pub fn num_envs(&self) -> usize {
        self.n
    }

    /// The autoreset mode.
    pub fn autoreset(&self) -> Autoreset {
        self.autoreset
    }

    fn lane_len(&self) -> usize {
        let threads = self.pool().num_threads();
        // A few lanes per thread balance uneven work (adaptive integration) without tiny tasks.
        self.n.div_ceil(threads * 4).max(MIN_LANE)
    }

    /// The batch's threads: its private pool or the shared one.
    fn pool(&self) -> &Pool {
        self.pool.as_ref().unwrap_or_else(|| Pool::shared())
    }

    /// Resets the envs selected by `mask` (all if `None`); `seeds[i] = Some(s)` reseeds env i.
    pub fn reset(
        &mut self,
        seeds: Option<&[Option<u64>]>,
        mask: Option<&[bool]>,
    ) -> Result<ResetOut, CoreError> {
        if let Some(s) = seeds {
            if s.len() != self.n {
                return Err(CoreError::config(
                    "seed",
                    format!("needs {} seeds, got {}", self.n, s.len()),
                ));
            }
        }
        if let Some(m) = mask {
            if m.len() != self.n {
                return Err(CoreError::config(
                    "reset_mask",
                    format!("must have one entry per env ({}), got {}", self.n, m.len()),
                ));
            }
        }
        let (n, od, k) = (self.n, self.model.spec().obs_dim(), self.checker.len());
        let mut obs = vec![0.0f32; n * od];
        let mut readings = Readings::zeros(n * k);
        let lane = self.lane_len();
        let ctx = ctx!(self, wall_now());
        let work = self.scratch.fit(n, k);
        let lanes = Lanes::split(
            lane,
            &mut self.rows,
            &mut self.slots,
            &mut self.alarms,
            &mut obs,
            (&mut work.readings, &mut readings),
            (ctx.row_len, od, k),
        );
        let pool = self.pool.as_ref().unwrap_or_else(|| Pool::shared());
        let events = pool.map(lanes, |mut l| {
            let mut events = Vec::new();
            for j in 0..l.len() {
                let i = l.first + j;
                if mask.is_none_or(|m| m[i]) {
                    if let Some(Some(s)) = seeds.map(|s| s[i]) {
                        l.slots[j].rng = Rng::from_seed(s);
                    }
                    ctx.reset_lane_env(&mut l, j, k, &mut events);
                }
                ctx.observe_one(&mut l, j, k);
            }
            l.commit();
            events
        });
        let mut events: Vec<SafetyEvent> = events.into_iter().flatten().collect();
        self.publish(&mut events);
        self.lock_totals().add_events(&events);
        Ok(ResetOut {
            obs,
            readings,
            events,
        })
    }

    /// Steps every env with normalised actions (`num_envs x act_dim`, row-major).
    pub fn step(&mut self, actions: &[f64]) -> Result<StepOut, CoreError> {
        let same_step = self.autoreset == Autoreset::SameStep;
        if self.n == 1 && !same_step {
            return self
                .step_one(actions)
                .map(|one| StepOut::of_one(one.clone()));
        }
        let started = std::time::Instant::now();
        self.validate(actions)?;
        let spec = self.model.spec();
        let (n, od, ad, k) = (self.n, spec.obs_dim(), spec.act_dim(), self.checker.len());
        let fin = if same_step { n } else { 0 };
        let mut out = StepOut {
            obs: vec![0.0; n * od],
            cols: Columns::new(n),
            action: vec![0.0; n * ad],
            readings: Readings::zeros(n * k),
            final_obs: vec![0.0; fin * od],
            final_readings: Readings::zeros(fin * k),
            events: Vec::new(),
        };
        let lane = self.lane_len();
        let ctx = ctx!(self, wall_now());
        let work = self.scratch.fit(n, k);
        let lanes = Lanes::split(
            lane,
            &mut self.rows,
            &mut self.slots,
            &mut self.alarms,
            &mut out.obs,
            (&mut work.readings, &mut out.readings),
            (ctx.row_len, od, k),
        );
        let mut extra: Vec<StepLane<'_>> = Vec::with_capacity(lanes.len());
        {
            let mut acts = actions;
            let mut rows = work.rows.as_mut_slice();
            let mut cols = out.cols.view();
            let mut phys = out.action.as_mut_slice();
            let mut fobs = out.final_obs.as_mut_slice();
            let mut fr = ReadingColumns::of(&mut out.final_readings, fin, k);
            for l in &lanes {
                let m = l.len();
                let fm = if same_step { m } else { 0 };
                extra.push(StepLane {
                    actions: take_ref(&mut acts, m * ad),
                    rows: take(&mut rows, m),
                    cols: cols.take(m),
                    phys: take(&mut phys, m * ad),
                    final_obs: take(&mut fobs, fm * od),
                    final_readings: fr.take(fm),
                });
            }
        }
        let mut pairs: Vec<(Lane<'_>, StepLane<'_>)> = lanes.into_iter().zip(extra).collect();
        let pool = self.pool.as_ref().unwrap_or_else(|| Pool::shared());
        let events = if ctx.model.batching() == Batching::WholeBatch {
            // Three rounds, the middle one over the whole batch (see `Batching::WholeBatch`).
            let refs: Vec<&mut (Lane<'_>, StepLane<'_>)> = pairs.iter_mut().collect();
            let preps = pool.map(refs, |(l, e)| ctx.prepare_lane(l, e, (ad, k)));
            let rewards: Vec<Vec<f64>> = {
                let mut items = Vec::with_capacity(n);
                for ((l, e), p) in pairs.iter_mut().zip(&preps) {
                    items.extend(ctx.lane_items(l, e, ad, &p.pre));
                }
                ctx.model.step_batch(&mut items, pool);
                let mut stepped = items.iter().map(|it| it.reward);
                preps.iter().map(|p| spread(&p.pre, &mut stepped)).collect()
            };
            let rounds: Vec<_> = pairs.into_iter().zip(preps).zip(rewards).collect();
            pool.map(rounds, |(((mut l, mut e), p), r)| {
                ctx.finish_lane(&mut l, &mut e, (od, k), p, &r)
            })
        } else {
            pool.map(pairs, |(mut l, mut e)| {
                let mut events = Vec::new();
                for j in 0..l.len() {
                    ctx.step_env(&mut l, &mut e, j, (od, ad, k), &mut events);
                }
                l.commit();
                e.commit();
                events
            })
        };
        let mut events: Vec<SafetyEvent> = events.into_iter().flatten().collect();
        Ok(self.conclude(out, &mut events, started))
    }

    /// Steps a batch of one env as [`step`](Self::step) does and returns its row instead of
    /// columns: the single env's step, stepped directly (the model's own `step`, the same
    /// arithmetic as a batch's) with nothing allocated beyond its outputs. Same-step autoreset
    /// takes the batch's way.
    pub fn step_one(&mut self, action: &[f64]) -> Result<&OneStep, CoreError> {
        if self.n != 1 {
            return Err(CoreError::config(
                "num_envs",
                format!("step_one steps a batch of one env, this one has {}", self.n),
            ));
        }
        if self.autoreset == Autoreset::SameStep {
            let mut out = self.step(action)?;
            self.one = OneStep {
                row: out.row(0),
                obs: std::mem::take(&mut out.obs),
                action: std::mem::take(&mut out.action),
                readings: std::mem::take(&mut out.readings),
                events: std::mem::take(&mut out.events),
            };
            return Ok(&self.one);
        }
        let started = std::time::Instant::now();
        self.validate(action)?;
        let spec = self.model.spec();
        let (od, ad, k) = (spec.obs_dim(), spec.act_dim(), self.checker.len());
        // The outputs live in the batch and are overwritten in place: nothing allocated per step.
        let one = &mut self.one;
        one.obs.resize(od, 0.0);
        one.action.resize(ad, 0.0);
        one.readings.values.resize(k, 0.0);
        one.readings.margins.resize(k, 0.0);
        one.readings.active.resize(k, false);
        let mut events = std::mem::take(&mut one.events);
        events.clear();
        {
            let ctx = ctx!(self, wall_now());
            let work = self.scratch.fit(1, k);
            let mut l = Lane {
                first: 0,
                od,
                rows: &mut self.rows,
                slots: &mut self.slots,
                alarms: &mut self.alarms,
                obs: &mut one.obs,
                readings: ReadingsMut::of(&mut one.readings),
                out: ReadingColumns::none(),
            };
            let mut e = StepLane {
                actions: action,
                rows: &mut work.rows,
                cols: ColumnsMut::none(),
                phys: &mut one.action,
                final_obs: &mut [],
                final_readings: ReadingColumns::none(),
            };
            ctx.step_env(&mut l, &mut e, 0, (od, ad, k), &mut events);
            one.row = work.rows[0];
        }
        self.publish(&mut events);
        self.one.events = events;
        let one = &self.one;
        self.account(
            &StepView::of_one(&one.row, &one.readings.active, &one.events),
            started,
        );
        Ok(&self.one)
    }

    /// Publishes and records a step's events; `out` with them.
    fn conclude(
        &mut self,
        mut out: StepOut,
        events: &mut Vec<SafetyEvent>,
        started: std::time::Instant,
    ) -> StepOut {
        self.publish(events);
        out.events = std::mem::take(events);
        self.account(&out.view(), started);
        out
    }

    /// Records a step into the metrics and the running totals.
    fn account(&self, view: &StepView<'_>, started: std::time::Instant) {
        self.record(view, started.elapsed().as_secs_f64());
        self.lock_totals().add_step(view);
    }

    fn validate(&mut self, actions: &[f64]) -> Result<(), CoreError> {
        let ad = self.model.spec().act_dim();
        if actions.len() != self.n * ad {
            return Err(CoreError::action(format!(
                "expected {} values ({} envs x {} action dims), got {}",
                self.n * ad,
                self.n,
                ad,
                actions.len()
            )));
        }
        // A branch-free pass the compiler vectorizes; the search only when a value is wrong.
        if !actions.iter().fold(true, |ok, a| ok & a.is_finite()) {
            let k = actions.iter().position(|a| !a.is_finite()).unwrap_or(0);
            return Err(CoreError::InvalidAction {
                env: Some(k / ad),
                element: Some(k % ad),
                message: format!("must be finite, got {}", actions[k]),
            });
        }
        if !self.all_started {
            if let Some(i) = self.slots.iter().position(|s| !s.started) {
                return Err(CoreError::ResetNeeded(format!(
                    "env {i} has not been reset: call reset() before step()"
                )));
            }
            self.all_started = true;
        }
        if self.autoreset == Autoreset::Disabled {
            if let Some(i) = self.slots.iter().position(|s| s.done) {
                // One message for the single env (reset()) and the vector env (a reset mask).
                return Err(CoreError::ResetNeeded(format!(
                    "env {i} has ended its episode: call reset() before step() (a vector env with \
                     autoreset disabled can reset just the ended envs with \
                     reset(options={{'reset_mask': ...}}))"
                )));
            }
        }
        Ok(())
    }

    /// A copy of the full state.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            rows: self.rows.clone(),
            rngs: self.slots.iter().flat_map(|s| s.rng.state()).collect(),
            elapsed: self.slots.iter().map(|s| s.elapsed).collect(),
            done: self.slots.iter().map(|s| s.done).collect(),
            started: self.slots.iter().map(|s| s.started).collect(),
            returns: self.slots.iter().map(|s| s.ret).collect(),
            episodes: self.slots.iter().map(|s| s.episode).collect(),
            alarm_ints: self.alarms.iter().flat_map(|a| a.to_words().0).collect(),
            alarm_reals: self.alarms.iter().flat_map(|a| a.to_words().1).collect(),
        }
    }

    /// Restores a state taken by [`VecCore::snapshot`] from a batch of the same kind, size and
    /// constraints: process states, random streams, step counts, episode returns and alarms
    /// (on-delay counts, open incidents), so the restored batch steps on exactly as the original.
    /// Refused as a whole (nothing changed) if any part does not fit.
    pub fn restore(&mut self, snap: &Snapshot) -> Result<(), CoreError> {
        let (n, k) = (self.n, self.checker.len());
        let (iw, rw) = (AlarmState::INT_WORDS, AlarmState::REAL_WORDS);
        let ok = snap.rows.len() == self.rows.len()
            && snap.rngs.len() == 4 * n
            && snap.elapsed.len() == n
            && snap.done.len() == n
            && snap.started.len() == n
            && snap.returns.len() == n
            && snap.episodes.len() == n
            && snap.alarm_ints.len() == n * k * iw
            && snap.alarm_reals.len() == n * k * rw;
        if !ok {
            return Err(CoreError::State(format!(
                "snapshot does not fit a batch of {n} {} envs with {k} constraints",
                self.model.spec().id
            )));
        }
        if snap.rows.iter().any(|v| !v.is_finite()) {
            return Err(CoreError::State(
                "snapshot holds non-finite state values".into(),
            ));
        }
        if let Some(i) = snap.returns.iter().position(|v| !v.is_finite()) {
            return Err(CoreError::State(format!(
                "snapshot holds a non-finite episode return for env {i}"
            )));
        }
        let alarms = snap
            .alarm_ints
            .chunks_exact(iw)
            .zip(snap.alarm_reals.chunks_exact(rw))
            .enumerate()
            .map(|(i, (ints, reals))| {
                let (env, c) = (i / k.max(1), &self.checker.set.constraints[i % k.max(1)]);
                AlarmState::from_words(ints, reals)
                    .and_then(|a| a.check_against(c, snap.elapsed[env]).map(|()| a))
                    .map_err(|m| {
                        CoreError::State(format!(
                            "snapshot alarm of env {env} constraint {:?}: {m}",
                            c.name
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let horizon = self.frame.horizon;
        if let Some(i) = snap.elapsed.iter().position(|&e| e > horizon) {
            return Err(CoreError::State(format!(
                "snapshot step count {} of env {i} is beyond the horizon {horizon}",
                snap.elapsed[i]
            )));
        }
        if let Some(i) = snap.episodes.iter().position(|&e| e == u64::MAX) {
            return Err(CoreError::State(format!(
                "snapshot episode count of env {i} is out of range"
            )));
        }
        self.rows.copy_from_slice(&snap.rows);
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let w = &snap.rngs[4 * i..4 * i + 4];
            slot.rng = Rng::from_state([w[0], w[1], w[2], w[3]]);
            slot.elapsed = snap.elapsed[i];
            slot.done = snap.done[i];
            slot.started = snap.started[i];
            slot.ret = snap.returns[i];
            slot.episode = snap.episodes[i];
        }
        self.all_started = false;
        // An incident open in the snapshot goes on in this batch as one of its own: a fresh id
        // (ids are unique within a process, and the original may still be stepping beside the
        // copy) and counted as opened here, so the copy's counts cover the incidents it closes.
        let mut opened = vec![0u64; k];
        for (i, (a, restored)) in self.alarms.iter_mut().zip(alarms).enumerate() {
            *a = restored;
            a.incident = if a.active {
                opened[i % k] += 1;
                NEXT_INCIDENT.fetch_add(1, Ordering::Relaxed)
            } else {
                0
            };
        }
        for (total, o) in self.lock_totals().opened.iter_mut().zip(opened) {
            *total += o;
        }
        Ok(())
    }
}

/// Splits off the first `len` elements of a mutable slice.
fn take<'a, T>(s: &mut &'a mut [T], len: usize) -> &'a mut [T] {
    let (head, tail) = std::mem::take(s).split_at_mut(len);
    *s = tail;
    head
}

fn take_ref<'a, T>(s: &mut &'a [T], len: usize) -> &'a [T] {
    let (head, tail) = s.split_at(len);
    *s = tail;
    head
}

/// Constraints whose column slices a lane holds in place; more go on the heap.
const INLINE_COLUMNS: usize = 4;

/// Slices of `k` columns: in place for the usual handful of constraints, so that splitting a
/// batch into lanes allocates nothing per lane.
enum Slices<'a, T> {
    Inline([&'a mut [T]; INLINE_COLUMNS], usize),
    Heap(Vec<&'a mut [T]>),
}

impl<'a, T> Slices<'a, T> {
    fn collect(it: impl ExactSizeIterator<Item = &'a mut [T]>) -> Self {
        if it.len() > INLINE_COLUMNS {
            return Self::Heap(it.collect());
        }
        let mut held: [&'a mut [T]; INLINE_COLUMNS] = Default::default();
        let mut len = 0;
        for (slot, s) in held.iter_mut().zip(it) {
            *slot = s;
            len += 1;
        }
        Self::Inline(held, len)
    }

    fn as_mut(&mut self) -> &mut [&'a mut [T]] {
        match self {
            Self::Inline(held, len) => &mut held[..*len],
            Self::Heap(v) => v,
        }
    }
}

impl<T> Default for Slices<'_, T> {
    /// No columns.
    fn default() -> Self {
        Self::Inline(Default::default(), 0)
    }
}

/// A lane's part of a [`Readings`] (constraint-major): per constraint, the lane's envs.
#[derive(Default)]
struct ReadingColumns<'a> {
    values: Slices<'a, f64>,
    margins: Slices<'a, f64>,
    active: Slices<'a, bool>,
}

impl<'a> ReadingColumns<'a> {
    /// No columns (a single env's readings are written in place: one env's row is its column).
    fn none() -> Self {
        Self::default()
    }

    /// The columns of `r`: `k` constraints of `n` envs each.
    fn of(r: &'a mut Readings, n: usize, k: usize) -> Self {
        fn columns<T>(mut all: &mut [T], n: usize, k: usize) -> Slices<'_, T> {
            Slices::collect((0..k).map(|_| take(&mut all, n)))
        }
        Self {
            values: columns(&mut r.values, n, k),
            margins: columns(&mut r.margins, n, k),
            active: columns(&mut r.active, n, k),
        }
    }

    /// Splits off the next `len` envs.
    fn take(&mut self, len: usize) -> ReadingColumns<'a> {
        fn part<'a, T>(cols: &mut Slices<'a, T>, len: usize) -> Slices<'a, T> {
            Slices::collect(cols.as_mut().iter_mut().map(|c| take(c, len)))
        }
        ReadingColumns {
            values: part(&mut self.values, len),
            margins: part(&mut self.margins, len),
            active: part(&mut self.active, len),
        }
    }

    /// Copies a lane's readings, env-major (`k` per env), into the columns.
    fn fill(&mut self, rows: &ReadingsMut<'_>) {
        fn transpose<T: Copy>(cols: &mut [&mut [T]], rows: &[T]) {
            let k = cols.len();
            if k == 0 {
                return;
            }
            for (c, col) in cols.iter_mut().enumerate() {
                for (x, row) in col.iter_mut().zip(rows.chunks_exact(k)) {
                    *x = row[c];
                }
            }
        }
        transpose(self.values.as_mut(), rows.values);
        transpose(self.margins.as_mut(), rows.margins);
        transpose(self.active.as_mut(), rows.active);
    }

    /// Writes env `j`'s readings (one env's [`Outputs`]).
    fn store(&mut self, j: usize, row: Outputs<'_>) {
        for (col, &x) in self.values.as_mut().iter_mut().zip(row.values.iter()) {
            col[j] = x;
        }
        for (col, &x) in self.margins.as_mut().iter_mut().zip(row.margins.iter()) {
            col[j] = x;
        }
        for (col, &x) in self.active.as_mut().iter_mut().zip(row.active.iter()) {
            col[j] = x;
        }
    }
}

/// Env-major readings (`k` per env) of a lane, as the checker writes them: a lane's working
/// copy, turned into [`ReadingColumns`] when the lane is done.
struct ReadingsMut<'a> {
    values: &'a mut [f64],
    margins: &'a mut [f64],
    active: &'a mut [bool],
}

impl<'a> ReadingsMut<'a> {
    fn of(r: &'a mut Readings) -> Self {
        Self {
            values: &mut r.values,
            margins: &mut r.margins,
            active: &mut r.active,
        }
    }

    fn take(&mut self, len: usize) -> ReadingsMut<'a> {
        ReadingsMut {
            values: take(&mut self.values, len),
            margins: take(&mut self.margins, len),
            active: take(&mut self.active, len),
        }
    }

    fn outputs(&mut self, j: usize, k: usize) -> Outputs<'_> {
        Outputs {
            values: &mut self.values[j * k..(j + 1) * k],
            margins: &mut self.margins[j * k..(j + 1) * k],
            active: &mut self.active[j * k..(j + 1) * k],
        }
    }
}

/// What a batch reuses from step to step: the lanes' working rows and readings.
#[derive(Debug, Default)]
struct Scratch {
    rows: Vec<Row>,
    readings: Readings,
}

impl Scratch {
    /// Sized for `n` envs and `k` constraints (every entry is written before it is read).
    fn fit(&mut self, n: usize, k: usize) -> &mut Self {
        self.rows.resize(n, Row::default());
        self.readings.values.resize(n * k, 0.0);
        self.readings.margins.resize(n * k, 0.0);
        self.readings.active.resize(n * k, false);
        self
    }
}

/// The envs `first..first + slots.len()` and their state and common outputs.
struct Lane<'a> {
    first: usize,
    od: usize,
    rows: &'a mut [f64],
    slots: &'a mut [Slot],
    alarms: &'a mut [AlarmState],
    obs: &'a mut [f32],
    /// Working readings, env-major.
    readings: ReadingsMut<'a>,
    /// Where the readings go when the lane is done.
    out: ReadingColumns<'a>,
}

impl Lane<'_> {
    fn len(&self) -> usize {
        self.slots.len()
    }

    /// Hands the lane's readings over to the output columns.
    fn commit(&mut self) {
        self.out.fill(&self.readings);
    }
}

/// Step-only inputs and outputs of a lane.
struct StepLane<'a> {
    actions: &'a [f64],
    /// Working rows.
    rows: &'a mut [Row],
    /// Where the rows go when the lane is done.
    cols: ColumnsMut<'a>,
    phys: &'a mut [f64],
    final_obs: &'a mut [f32],
    final_readings: ReadingColumns<'a>,
}

impl StepLane<'_> {
    /// Hands the lane's rows over to the output columns.
    fn commit(&mut self) {
        self.cols.fill(self.rows);
    }
}

struct Lanes;

impl Lanes {
    #[allow(clippy::too_many_arguments)]
    fn split<'a>(
        lane: usize,
        mut rows: &'a mut [f64],
        mut slots: &'a mut [Slot],
        mut alarms: &'a mut [AlarmState],
        mut obs: &'a mut [f32],
        (work, out): (&'a mut Readings, &'a mut Readings),
        (row_len, od, k): (usize, usize, usize),
    ) -> Vec<Lane<'a>> {
        let n = slots.len();
        let mut w = ReadingsMut::of(work);
        let mut r = ReadingColumns::of(out, n, k);
        let mut lanes = Vec::with_capacity(n.div_ceil(lane));
        let mut first = 0;
        while first < n {
            let m = lane.min(n - first);
            lanes.push(Lane {
                first,
                od,
                rows: take(&mut rows, m * row_len),
                slots: take(&mut slots, m),
                alarms: take(&mut alarms, m * k),
                obs: take(&mut obs, m * od),
                readings: w.take(m * k),
                out: r.take(m),
            });
            first += m;
        }
        lanes
    }
}

/// What the first pass over a lane leaves for the last: per env, `None` (reset by NEXT_STEP
/// autoreset) or its clipped-element count and whether the shield acted, and the events raised,
/// `counts[j]` of them by env `j`.
struct Prepared {
    pre: Vec<Option<(u32, bool)>>,
    counts: Vec<usize>,
    events: Vec<SafetyEvent>,
}

/// Per env of a lane, the reward of its step (taken in order from `stepped`), 0 where it did
/// not step.
fn spread(pre: &[Option<(u32, bool)>], stepped: &mut impl Iterator<Item = f64>) -> Vec<f64> {
    pre.iter()
        .map(|p| p.and_then(|_| stepped.next()).unwrap_or(0.0))
        .collect()
}

/// What every env of a batch step shares.
struct Ctx<'a> {
    model: &'a dyn ProcessModel,
    checker: &'a Checker,
    shield: Shield,
    state_len: usize,
    row_len: usize,
    autoreset: Autoreset,
    frame: &'a Frame,
    wall: f64,
}

impl Ctx<'_> {
    fn at(&self, env: usize, slot: &Slot) -> At {
        At {
            env,
            episode: slot.episode,
            step: slot.elapsed,
            wall: self.wall,
        }
    }

    fn reset_one(
        &self,
        env: usize,
        row: &mut [f64],
        slot: &mut Slot,
        alarms: &mut [AlarmState],
        events: &mut Vec<SafetyEvent>,
    ) {
        self.checker.close_all(alarms, self.at(env, slot), events);
        let (state, last) = row.split_at_mut(self.state_len);
        self.model.reset(state, &mut slot.rng);
        self.model.signals(state, last);
        slot.elapsed = 0;
        slot.done = false;
        slot.started = true;
        slot.episode += 1;
        slot.ret = 0.0;
    }

    fn reset_lane_env(&self, l: &mut Lane<'_>, j: usize, k: usize, events: &mut Vec<SafetyEvent>) {
        let row = &mut l.rows[j * self.row_len..(j + 1) * self.row_len];
        self.reset_one(
            l.first + j,
            row,
            &mut l.slots[j],
            &mut l.alarms[j * k..(j + 1) * k],
            events,
        );
    }

    /// Observation and readings of env `j` of the lane without stepping it.
    fn observe_one(&self, l: &mut Lane<'_>, j: usize, k: usize) {
        let (od, row_len, elapsed) = (l.od, self.row_len, l.slots[j].elapsed);
        let row = &l.rows[j * row_len..(j + 1) * row_len];
        let (state, last) = row.split_at(self.state_len);
        let obs = &mut l.obs[j * od..(j + 1) * od];
        self.model.observe(state, elapsed, obs);
        self.frame.clamp_obs(obs);
        // Signals equal `last` right after a reset or step, so rates read zero here.
        let alarms = &l.alarms[j * k..(j + 1) * k];
        self.checker
            .measure(alarms, last, last, l.readings.outputs(j, k));
    }

    /// Steps env `j` of a lane start to finish: autoreset or action and shield, the model's own
    /// `step`, then observation and safety; its events in order ([`Batching::EnvByEnv`], and a
    /// single env of any model).
    fn step_env(
        &self,
        l: &mut Lane<'_>,
        e: &mut StepLane<'_>,
        j: usize,
        (od, ad, k): (usize, usize, usize),
        events: &mut Vec<SafetyEvent>,
    ) {
        if let Some((clipped, shielded)) = self.prepare_one(l, e, j, (ad, k), events) {
            let slot = &mut l.slots[j];
            let start = j * self.row_len;
            let reward = self.model.step(
                &mut l.rows[start..start + self.state_len],
                &e.phys[j * ad..(j + 1) * ad],
                slot.elapsed,
                &mut slot.rng,
            );
            self.finish_one(l, e, j, (od, k), (reward, clipped, shielded), events);
        }
    }

    /// 1-2. Autoreset, actions and shield of every env of a lane.
    fn prepare_lane(
        &self,
        l: &mut Lane<'_>,
        e: &mut StepLane<'_>,
        (ad, k): (usize, usize),
    ) -> Prepared {
        let m = l.len();
        let mut p = Prepared {
            pre: Vec::with_capacity(m),
            counts: Vec::with_capacity(m),
            events: Vec::new(),
        };
        for j in 0..m {
            let before = p.events.len();
            p.pre
                .push(self.prepare_one(l, e, j, (ad, k), &mut p.events));
            p.counts.push(p.events.len() - before);
        }
        p
    }

    /// The lane's envs prepared to step (`pre[j]` is `Some`), as the model's step items.
    fn lane_items<'x>(
        &self,
        l: &'x mut Lane<'_>,
        e: &'x StepLane<'_>,
        ad: usize,
        pre: &'x [Option<(u32, bool)>],
    ) -> impl Iterator<Item = StepItem<'x>> + 'x {
        let state_len = self.state_len;
        l.rows
            .chunks_exact_mut(self.row_len)
            .zip(l.slots.iter_mut())
            .zip(e.phys.chunks_exact(ad.max(1)))
            .zip(pre)
            .filter(|(_, p)| p.is_some())
            .map(move |(((row, slot), action), _)| StepItem {
                state: &mut row[..state_len],
                action,
                t: slot.elapsed,
                rng: &mut slot.rng,
                reward: 0.0,
            })
    }

    /// 4. Observations and safety of every stepped env of a lane; the lane's events in env order.
    fn finish_lane(
        &self,
        l: &mut Lane<'_>,
        e: &mut StepLane<'_>,
        (od, k): (usize, usize),
        p: Prepared,
        rewards: &[f64],
    ) -> Vec<SafetyEvent> {
        let mut events = Vec::with_capacity(p.events.len());
        let mut pre_events = p.events.into_iter();
        for (j, &reward) in rewards.iter().enumerate().take(l.len()) {
            events.extend(pre_events.by_ref().take(p.counts[j]));
            if let Some((clipped, shielded)) = p.pre[j] {
                let act = (reward, clipped, shielded);
                self.finish_one(l, e, j, (od, k), act, &mut events);
            }
        }
        l.commit();
        e.commit();
        events
    }

    /// NEXT_STEP autoreset of an ended env (returns `None`), or the env's action clipped, mapped
    /// to physical units and shielded (returns the clipped count and whether the shield acted).
    fn prepare_one(
        &self,
        l: &mut Lane<'_>,
        e: &mut StepLane<'_>,
        j: usize,
        (ad, k): (usize, usize),
        events: &mut Vec<SafetyEvent>,
    ) -> Option<(u32, bool)> {
        if self.autoreset == Autoreset::NextStep && l.slots[j].done {
            self.reset_lane_env(l, j, k, events);
            self.observe_one(l, j, k);
            e.rows[j] = Row::default();
            return None;
        }
        let row = &mut l.rows[j * self.row_len..(j + 1) * self.row_len];
        let slot = &mut l.slots[j];
        let alarms = &mut l.alarms[j * k..(j + 1) * k];
        let phys = &mut e.phys[j * ad..(j + 1) * ad];
        // 1. Clip into the action box and map to physical units.
        let clipped = self
            .frame
            .to_physical(&e.actions[j * ad..(j + 1) * ad], phys);
        // 2. The shield.
        let (state, last) = row.split_at_mut(self.state_len);
        let view = shield::View {
            model: self.model,
            state,
            signals: last,
            t: slot.elapsed,
            rng: &slot.rng,
        };
        let shielded = shield::apply(self.shield, self.checker, &view, phys);
        if shielded {
            self.checker
                .shield_acted(alarms, self.at(l.first + j, slot), events);
        }
        Some((clipped, shielded))
    }

    /// 4. Observation and safety of a stepped env: values, alarms, cost, shutdown, autoreset.
    fn finish_one(
        &self,
        l: &mut Lane<'_>,
        e: &mut StepLane<'_>,
        j: usize,
        (od, k): (usize, usize),
        (mut reward, clipped, shielded): (f64, u32, bool),
        events: &mut Vec<SafetyEvent>,
    ) {
        let env = l.first + j;
        let row = &mut l.rows[j * self.row_len..(j + 1) * self.row_len];
        let slot = &mut l.slots[j];
        let alarms = &mut l.alarms[j * k..(j + 1) * k];
        let (state, last) = row.split_at_mut(self.state_len);
        slot.elapsed += 1;
        let obs = &mut l.obs[j * od..(j + 1) * od];
        self.model.observe(state, slot.elapsed, obs);
        self.frame.clamp_obs(obs);
        let mut sig = [0.0; MAX_SIGNALS];
        let sig = &mut sig[..last.len()];
        self.model.signals(state, sig);
        let at = self.at(env, slot);
        let o = self
            .checker
            .evaluate(alarms, sig, last, at, l.readings.outputs(j, k), events);
        last.copy_from_slice(sig);
        reward -= o.penalty;
        slot.ret += reward;
        let terminated = o.shutdown.is_some();
        let truncated = !terminated && slot.elapsed >= self.frame.horizon;
        let done = terminated || truncated;
        e.rows[j] = Row {
            reward,
            cost: o.cost,
            terminated,
            truncated,
            stepped: true,
            clipped,
            shielded,
            shutdown: o.shutdown,
            reset_in_step: false,
            episode_return: if done { slot.ret } else { 0.0 },
        };
        slot.done = done;
        if done {
            self.checker.close_all(alarms, at, events);
        }
        if self.autoreset == Autoreset::SameStep && done {
            e.final_obs[j * od..(j + 1) * od].copy_from_slice(obs);
            e.final_readings.store(j, l.readings.outputs(j, k));
            self.reset_lane_env(l, j, k, events);
            self.observe_one(l, j, k);
            e.rows[j].reset_in_step = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs;

    fn batch(n: usize, mode: Autoreset, threads: Option<usize>) -> VecCore {
        let model = envs::make("ChemicalReactor-v0", Vec::new()).expect("model");
        VecCore::new(model, n, mode, threads).expect("batch")
    }

    fn actions(n: usize, t: usize) -> Vec<f64> {
        // A deterministic sweep that visits runaway territory for some envs.
        (0..n)
            .map(|i| ((i * 7 + t * 3) % 11) as f64 / 5.0 - 1.0)
            .collect()
    }

    fn run(n: usize, threads: Option<usize>, steps: usize) -> Vec<f64> {
        let mut b = batch(n, Autoreset::NextStep, threads);
        let seeds: Vec<Option<u64>> = (0..n).map(|i| Some(100 + i as u64)).collect();
        b.reset(Some(&seeds), None).expect("reset");
        let mut trace = Vec::new();
        for t in 0..steps {
            let out = b.step(&actions(n, t)).expect("step");
            trace.extend(out.obs.iter().map(|&o| f64::from(o)));
            trace.extend(out.rows().iter().map(|r| r.reward));
        }
        trace
    }

    /// Batch-step throughput by thread count and actions, the set-ups timed in turns (best of 9)
    /// (`cargo test --release --lib batch_timing -- --ignored --nocapture`).
    #[test]
    #[ignore = "timing, not a check"]
    fn batch_timing() {
        let n = 1024;
        let mut setups = Vec::new();
        for id in ["ChemicalReactor-v0", "IndustrialBenchmark-v0"] {
            for zero in [true, false] {
                for threads in [1, 2] {
                    let model = envs::make(id, Vec::new()).expect("model");
                    let ad = model.spec().act_dim();
                    let mut b =
                        VecCore::new(model, n, Autoreset::NextStep, Some(threads)).expect("batch");
                    b.reset(None, None).expect("reset");
                    let mut rng = Rng::from_seed(3);
                    let acts: Vec<Vec<f64>> = (0..16)
                        .map(|_| {
                            (0..n * ad)
                                .map(|_| if zero { 0.0 } else { rng.uniform_in(-1.0, 1.0) })
                                .collect()
                        })
                        .collect();
                    let actions = if zero { "zero" } else { "random" };
                    let label = format!("{id} {actions} actions, {threads} thread(s)");
                    setups.push((label, b, acts, 0.0f64));
                }
            }
        }
        for _ in 0..9 {
            for (_, b, acts, best) in &mut setups {
                let t = std::time::Instant::now();
                for s in 0..100 {
                    b.step(&acts[s % 16]).expect("step");
                }
                *best = best.max((100 * n) as f64 / t.elapsed().as_secs_f64());
            }
        }
        for (label, _, _, best) in &setups {
            println!("{label}: {:.0} k env-steps/s", best / 1e3);
        }
    }

    /// Nanoseconds per step of a batch of one, as a single env steps it (random actions, reset
    /// when an episode ends): the batch machinery's cost around the model's own
    /// (`cargo test --release --lib single_timing -- --ignored --nocapture`).
    #[test]
    #[ignore = "timing, not a check"]
    fn single_timing() {
        for id in ["ChemicalReactor-v0", "IndustrialBenchmark-v0"] {
            let model = envs::make(id, Vec::new()).expect("model");
            let ad = model.spec().act_dim();
            let mut b = VecCore::new(model, 1, Autoreset::Disabled, None).expect("batch");
            let mut rng = Rng::from_seed(3);
            let acts: Vec<f64> = (0..4096 * ad).map(|_| rng.uniform_in(-1.0, 1.0)).collect();
            let mut best = f64::INFINITY;
            for _ in 0..9 {
                b.reset(Some(&[Some(0)]), None).expect("reset");
                let t = std::time::Instant::now();
                for a in acts.chunks_exact(ad) {
                    let out = b.step_one(a).expect("step");
                    if out.row.terminated || out.row.truncated {
                        b.reset(None, None).expect("reset");
                    }
                }
                best = best.min(t.elapsed().as_secs_f64() / 4096.0 * 1e9);
            }
            println!("{id}: {best:.0} ns per single step");
        }
    }

    #[test]
    fn frame_maps_and_clips_actions_as_the_spec_does() {
        let mut rng = Rng::from_seed(9);
        for id in envs::IDS {
            let model = envs::make(id, Vec::new()).expect("model");
            let spec = model.spec();
            let frame = Frame::of(spec);
            let ad = spec.act_dim();
            for _ in 0..200 {
                let a: Vec<f64> = (0..ad).map(|_| rng.uniform_in(-1.3, 1.3)).collect();
                let clamped: Vec<f64> = a.iter().map(|x| x.clamp(-1.0, 1.0)).collect();
                let (mut want, mut got) = (vec![0.0; ad], vec![0.0; ad]);
                spec.to_physical(&clamped, &mut want);
                let clipped = frame.to_physical(&a, &mut got);
                assert_eq!(got, want, "{id}");
                let n_out = a.iter().filter(|x| x.abs() > 1.0).count() as u32;
                assert_eq!(clipped, n_out, "{id}");
            }
            let mut obs: Vec<f32> = spec
                .observations
                .iter()
                .map(|v| v.high as f32 + 1.0)
                .collect();
            frame.clamp_obs(&mut obs);
            let high: Vec<f32> = spec.observations.iter().map(|v| v.high as f32).collect();
            assert_eq!(obs, high, "{id}");
        }
    }

    #[test]
    fn results_do_not_depend_on_thread_count() {
        let one = run(64, Some(1), 130);
        assert_eq!(one, run(64, Some(2), 130));
        assert_eq!(one, run(64, Some(3), 130));
        assert_eq!(one, run(64, None, 130));
    }

    #[test]
    fn env_i_of_a_batch_equals_a_single_env_with_seed_plus_i() {
        let (n, steps) = (40, 70);
        let mut b = batch(n, Autoreset::NextStep, None);
        b.reset(
            Some(&(0..n).map(|i| Some(5 + i as u64)).collect::<Vec<_>>()),
            None,
        )
        .expect("reset");
        let outs: Vec<StepOut> = (0..steps)
            .map(|t| b.step(&actions(n, t)).expect("step"))
            .collect();
        for i in [0, 17, 39] {
            let mut s = batch(1, Autoreset::NextStep, None);
            s.reset(Some(&[Some(5 + i as u64)]), None).expect("reset");
            for (t, out) in outs.iter().enumerate() {
                let o = s.step(&actions(n, t)[i..i + 1]).expect("step");
                assert_eq!(o.obs[..], out.obs[3 * i..3 * i + 3], "env {i} step {t}");
                assert_eq!(o.row(0), out.row(i));
            }
        }
    }

    #[test]
    fn next_step_autoreset_resets_on_the_step_after_the_end() {
        let mut b = batch(2, Autoreset::NextStep, None);
        b.reset(Some(&[Some(0), Some(1)]), None).expect("reset");
        let horizon = b.model().spec().horizon as usize;
        for t in 0..horizon {
            let out = b.step(&[0.0, 0.0]).expect("step");
            assert_eq!(out.row(0).truncated, t == horizon - 1);
        }
        let out = b.step(&[0.0, 0.0]).expect("step");
        assert!(!out.row(0).stepped && out.row(0).reward == 0.0);
        assert_eq!(&out.obs[..2], &[0.8f32, 330.0]);
    }

    #[test]
    fn same_step_autoreset_keeps_the_final_observation() {
        let mut b = batch(1, Autoreset::SameStep, None);
        b.reset(Some(&[Some(0)]), None).expect("reset");
        let horizon = b.model().spec().horizon as usize;
        let mut last = None;
        for _ in 0..horizon {
            last = Some(b.step(&[-0.2]).expect("step"));
        }
        let out = last.expect("stepped");
        assert!(out.row(0).truncated && out.row(0).reset_in_step);
        assert_eq!(&out.obs[..2], &[0.8f32, 330.0]);
        assert_ne!(out.final_obs[1], 330.0);
    }

    #[test]
    fn step_one_is_a_batch_of_ones_step_in_every_mode() {
        for mode in [
            Autoreset::NextStep,
            Autoreset::SameStep,
            Autoreset::Disabled,
        ] {
            let (mut a, mut b) = (batch(1, mode, None), batch(2, mode, None));
            a.reset(Some(&[Some(9)]), None).expect("reset");
            b.reset(Some(&[Some(9), Some(10)]), None).expect("reset");
            for t in 0..200 {
                let act = actions(2, t);
                let one = match a.step_one(&act[..1]) {
                    Ok(one) => one,
                    Err(CoreError::ResetNeeded(_)) => {
                        a.reset(None, Some(&[true])).expect("reset");
                        b.reset(None, Some(&[true, true])).expect("reset");
                        continue;
                    }
                    Err(e) => panic!("{e}"),
                };
                let out = b.step(&act).expect("step");
                let k = b.checker().len();
                assert_eq!(one.row, out.row(0), "{mode:?} step {t}");
                assert_eq!(one.obs, out.obs[..3]);
                let env0 = |v: &[bool]| (0..k).map(|c| v[c * 2]).collect::<Vec<_>>();
                assert_eq!(one.readings.active, env0(&out.readings.active));
            }
        }
        let err = batch(2, Autoreset::NextStep, None)
            .step_one(&[0.0])
            .unwrap_err();
        assert!(matches!(err, CoreError::Config { .. }), "{err:?}");
    }

    #[test]
    fn reading_columns_split_into_lanes_in_place_or_on_the_heap() {
        // Two constraints are held in place, six on the heap: both hand every lane its part of
        // each column, in order.
        for k in [2, 6] {
            let n = 5;
            let mut r = Readings::zeros(n * k);
            let mut cols = ReadingColumns::of(&mut r, n, k);
            assert_eq!(matches!(cols.values, Slices::Heap(_)), k > INLINE_COLUMNS);
            for (lane, len) in [2, 3].into_iter().enumerate() {
                let mut part = cols.take(len);
                for (c, col) in part.values.as_mut().iter_mut().enumerate() {
                    assert_eq!(col.len(), len);
                    col.fill((10 * c + lane) as f64);
                }
            }
            let expected: Vec<f64> = (0..k)
                .flat_map(|c| [0, 0, 1, 1, 1].map(|lane| (10 * c + lane) as f64))
                .collect();
            assert_eq!(r.values, expected, "k = {k}");
        }
    }

    #[test]
    fn every_env_must_be_reset_before_the_batch_steps() {
        let needs = |r: Result<StepOut, CoreError>, env: &str| match r {
            Err(CoreError::ResetNeeded(m)) => assert!(m.contains(env), "{m}"),
            other => panic!("expected a reset-needed error naming {env}, got {other:?}"),
        };
        let mut b = batch(3, Autoreset::NextStep, None);
        needs(b.step(&[0.0; 3]), "env 0");
        b.reset(None, Some(&[true, false, true])).expect("reset");
        needs(b.step(&[0.0; 3]), "env 1");
        b.reset(None, Some(&[false, true, false])).expect("reset");
        let mut snap = b.snapshot();
        b.step(&[0.0; 3]).expect("every env reset");
        b.step(&[0.0; 3]).expect("and again");
        // A restored state in which env 2 never started is checked afresh.
        snap.started[2] = false;
        b.restore(&snap).expect("restore");
        needs(b.step(&[0.0; 3]), "env 2");
        b.reset(None, Some(&[false, false, true])).expect("reset");
        b.step(&[0.0; 3]).expect("every env reset");
    }

    #[test]
    fn runaway_is_an_emergency_shutdown() {
        let mut b = batch(1, Autoreset::Disabled, None);
        b.reset(None, None).expect("reset");
        let mut ended = None;
        for t in 0..60 {
            let out = b.step(&[1.0]).expect("step");
            if out.row(0).terminated {
                ended = Some((t, out.row(0).shutdown));
                break;
            }
        }
        let (t, reason) = ended.expect("full heating must run the reactor away");
        let c = usize::from(reason.expect("a reason"));
        assert_eq!(b.checker().set.constraints[c].name, "thermal_runaway");
        let err = b.step(&[0.0]).unwrap_err();
        assert!(matches!(err, CoreError::ResetNeeded(_)));
        b.reset(None, Some(&[true])).expect("reset");
        assert!(b.step(&[0.0]).is_ok());
        // The running counts: every step taken, one shutdown, its incident closed by the reset.
        let totals = b.totals();
        let totals = totals.lock().expect("totals");
        assert_eq!(totals.steps, t as u64 + 2);
        assert_eq!(totals.shutdowns[c], 1);
        assert!(totals.opened[c] >= 1 && totals.events >= 3);
        let closing = totals
            .closed
            .iter()
            .filter(|e| e.constraint == Some(c as u16));
        assert_eq!(closing.count() as u64, totals.opened[c]);
    }

    #[test]
    fn bad_actions_name_env_and_element_and_leave_state_untouched() {
        let mut b = batch(3, Autoreset::NextStep, None);
        b.reset(Some(&[Some(1), Some(2), Some(3)]), None)
            .expect("reset");
        let before = b.snapshot();
        let err = b.step(&[0.0, f64::NAN, 0.0]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "action of env 1, element 0: must be finite, got NaN"
        );
        assert!(b
            .step(&[0.0, 0.0])
            .unwrap_err()
            .to_string()
            .contains("expected 3 values"));
        assert_eq!(before, b.snapshot());
        // Out-of-range finite values are clipped and counted.
        let out = b.step(&[5.0, -0.5, -7.0]).expect("step");
        assert_eq!(
            out.rows().iter().map(|r| r.clipped).collect::<Vec<_>>(),
            vec![1, 0, 1]
        );
        assert_eq!(out.action[0], 310.0);
        assert_eq!(out.action[2], 290.0);
    }

    #[test]
    fn snapshot_restores_the_exact_future() {
        let mut b = batch(4, Autoreset::NextStep, None);
        b.reset(Some(&[Some(9), Some(8), Some(7), Some(6)]), None)
            .expect("reset");
        for t in 0..10 {
            b.step(&actions(4, t)).expect("step");
        }
        let snap = b.snapshot();
        let a = b.step(&actions(4, 10)).expect("step");
        let mut c = batch(4, Autoreset::NextStep, None);
        c.restore(&snap).expect("restore");
        let r = c.step(&actions(4, 10)).expect("step");
        assert_eq!(a.obs, r.obs);
        assert_eq!(a.rows(), r.rows());
        assert!(batch(3, Autoreset::NextStep, None).restore(&snap).is_err());
    }

    #[test]
    fn a_batch_beyond_max_envs_is_a_config_error() {
        let model = envs::make("ChemicalReactor-v0", Vec::new()).expect("model");
        let err = VecCore::new(model, MAX_ENVS + 1, Autoreset::NextStep, None)
            .err()
            .expect("refused");
        assert_eq!(
            err,
            CoreError::config(
                "num_envs",
                format!("must be at most {MAX_ENVS}, got {}", MAX_ENVS + 1)
            )
        );
    }

    /// A snapshot with its real alarm fields as bits (a response time not yet known is NaN) and
    /// without incident ids (a restored open incident takes a fresh one).
    fn bitwise(s: &Snapshot) -> (Snapshot, Vec<u64>) {
        let bits = s.alarm_reals.iter().map(|v| v.to_bits()).collect();
        let mut s = s.clone();
        s.alarm_reals.clear();
        for words in s.alarm_ints.chunks_exact_mut(AlarmState::INT_WORDS) {
            words[2] = 0;
        }
        (s, bits)
    }

    #[test]
    fn snapshot_keeps_alarms_and_returns_and_refuses_bad_words() {
        let mut b = batch(4, Autoreset::NextStep, None);
        b.reset(Some(&[Some(1), Some(2), Some(3), Some(4)]), None)
            .expect("reset");
        // Warm coolant: the 331 K warning opens in some envs within a few steps.
        let mut t = 0;
        while !b.alarms.iter().any(|a| a.active) {
            b.step(&[0.4; 4]).expect("step");
            t += 1;
            assert!(t < 60, "no alarm opened");
        }
        let snap = b.snapshot();
        let mut c = batch(4, Autoreset::NextStep, None);
        c.restore(&snap).expect("restore");
        assert_eq!(bitwise(&c.snapshot()), bitwise(&snap));
        assert!(c.slots.iter().any(|s| s.ret != 0.0));
        // Open incidents go on under fresh ids, counted as opened in the copy.
        let ids = |b: &VecCore| -> Vec<u64> {
            b.alarms
                .iter()
                .filter(|a| a.active)
                .map(|a| a.incident)
                .collect()
        };
        let (old_ids, new_ids) = (ids(&b), ids(&c));
        assert!(new_ids.iter().all(|id| *id != 0 && !old_ids.contains(id)));
        let opened: u64 = c.lock_totals().opened.iter().sum();
        assert_eq!(opened, new_ids.len() as u64);
        for s in 0..5 {
            let (x, y) = (b.step(&actions(4, s)), c.step(&actions(4, s)));
            let (x, y) = (x.expect("step"), y.expect("step"));
            assert_eq!((&x.obs, x.rows()), (&y.obs, y.rows()));
        }
        let k = b.checker.len();
        for (word, bad, what) in [(0, 2, "active flag 2"), (4, 7, "response code 7")] {
            let mut tampered = snap.clone();
            tampered.alarm_ints[(2 * k + 1) * AlarmState::INT_WORDS + word] = bad;
            let before = c.snapshot();
            let err = c.restore(&tampered).expect_err("tampered").to_string();
            assert!(err.contains("env 2") && err.contains(what), "{err}");
            let after = bitwise(&c.snapshot());
            assert_eq!(
                after,
                bitwise(&before),
                "a refused restore changed the batch"
            );
        }
        let mut short = snap.clone();
        short.returns.pop();
        assert!(c.restore(&short).is_err());
        // Words that fit their ranges but not each other or the env's step count.
        let open = snap
            .alarm_ints
            .chunks_exact(AlarmState::INT_WORDS)
            .position(|w| w[0] == 1)
            .expect("an open alarm");
        let (env, at) = (open / k, open * AlarmState::INT_WORDS);
        for (word, bad, what) in [
            (3, 1000, "start step 1000 is after"),
            (1, 7, "beyond-limit count 7 exceeds"),
        ] {
            let mut tampered = snap.clone();
            tampered.alarm_ints[at + word] = bad;
            let err = c.restore(&tampered).expect_err("tampered").to_string();
            assert!(
                err.contains(&format!("env {env}")) && err.contains(what),
                "{err}"
            );
        }
        let mut late = snap.clone();
        late.elapsed[1] = 61;
        let err = c
            .restore(&late)
            .expect_err("beyond the horizon")
            .to_string();
        assert!(
            err.contains("step count 61 of env 1 is beyond the horizon 60"),
            "{err}"
        );
        let mut many = snap.clone();
        many.episodes[3] = u64::MAX;
        assert!(c.restore(&many).is_err());
    }
}

#[cfg(test)]
mod safety_tests {
    use super::*;
    use crate::envs;
    use crate::safety::config::{build, Value};
    use crate::safety::Shield;

    fn reactor(n: usize, mode: Autoreset, cfg: Value, shield: Shield) -> VecCore {
        let model = envs::make("ChemicalReactor-v0", Vec::new()).expect("model");
        let mut b = VecCore::new(model, n, mode, None).expect("batch");
        let signals: Vec<&str> = b.model().spec().signals.iter().map(|s| s.name).collect();
        let set = build(&cfg, &signals, &b.checker().set).expect("config");
        b.set_safety(set, shield).expect("alarms");
        b
    }

    fn heat_until_end(b: &mut VecCore, steps: usize) -> (Vec<SafetyEvent>, Vec<Row>) {
        b.reset(Some(&[Some(0)]), None).expect("reset");
        let (mut events, mut rows) = (Vec::new(), Vec::new());
        for _ in 0..steps {
            let out = b.step(&[1.0]).expect("step");
            let row = out.row(0);
            events.extend(out.events);
            rows.push(row);
            if row.terminated || row.truncated {
                break;
            }
        }
        (events, rows)
    }

    #[test]
    fn incidents_open_and_close_with_unique_ids_and_shutdown_is_the_response() {
        let mut b = reactor(1, Autoreset::Disabled, Value::Null, Shield::Off);
        let (events, rows) = heat_until_end(&mut b, 60);
        let last = rows.last().expect("rows");
        assert!(last.terminated && last.shutdown.is_some());
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds.first(), Some(&EventKind::IncidentOpened));
        assert!(kinds.contains(&EventKind::EmergencyShutdown));
        let shutdown = events
            .iter()
            .find(|e| e.kind == EventKind::EmergencyShutdown)
            .expect("shutdown");
        assert_eq!(shutdown.alarm.response, crate::safety::Response::Shutdown);
        assert_eq!(shutdown.alarm.response_seconds, 0.0);
        // Every open incident is closed at the episode's end, with the id it opened with.
        let opened: Vec<u64> = events
            .iter()
            .filter(|e| e.kind == EventKind::IncidentOpened)
            .map(|e| e.alarm.incident)
            .collect();
        let closed: Vec<u64> = events
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::IncidentClosed | EventKind::IncidentClosedByEpisodeEnd
                )
            })
            .map(|e| e.alarm.incident)
            .collect();
        assert!(opened.iter().all(|id| *id > 0));
        assert_eq!(opened.len(), closed.len());
        assert!(opened.iter().all(|id| closed.contains(id)));
        // Cost is positive exactly while an alarm is active.
        assert!(rows.iter().any(|r| r.cost > 0.0));
    }

    #[test]
    fn predictive_shield_prevents_the_runaway_that_happens_without_it() {
        let mut b = reactor(1, Autoreset::Disabled, Value::Null, Shield::Predictive);
        let (events, rows) = heat_until_end(&mut b, 60);
        assert!(
            rows.iter().all(|r| !r.terminated),
            "the shield must prevent the shutdown"
        );
        assert!(rows.iter().any(|r| r.shielded));
        assert!(events
            .iter()
            .any(|e| e.kind == EventKind::ShieldIntervention));
    }

    #[test]
    fn clip_shield_enforces_the_coolant_ramp() {
        let mut b = reactor(1, Autoreset::Disabled, Value::Null, Shield::Clip);
        b.reset(Some(&[Some(0)]), None).expect("reset");
        let out = b.step(&[1.0]).expect("step");
        // From the nominal 300 K the coolant may move at most 5 K per step.
        assert_eq!(out.action[0], 305.0);
        assert!(out.row(0).shielded);
        let out = b.step(&[1.0]).expect("step");
        assert_eq!(out.action[0], 310.0);
        let ramp = b
            .checker()
            .set
            .constraints
            .iter()
            .position(|c| c.name == "coolant_ramp")
            .expect("ramp");
        assert!(!out.readings.active[ramp]);
    }

    #[test]
    fn penalty_is_subtracted_while_active_and_overrides_apply() {
        let cfg = Value::Map(vec![(
            "temperature_high".into(),
            Value::Map(vec![
                ("limit".into(), Value::Num(300.0)),
                ("penalty".into(), Value::Num(2.5)),
            ]),
        )]);
        let mut plain = reactor(1, Autoreset::Disabled, Value::Null, Shield::Off);
        let mut pen = reactor(1, Autoreset::Disabled, cfg, Shield::Off);
        plain.reset(Some(&[Some(0)]), None).expect("reset");
        pen.reset(Some(&[Some(0)]), None).expect("reset");
        let a = plain.step(&[0.0]).expect("step");
        let b = pen.step(&[0.0]).expect("step");
        assert_eq!(a.row(0).reward - 2.5, b.row(0).reward);
        assert!(b.row(0).cost > 0.0 && a.row(0).cost == 0.0);
    }
}
