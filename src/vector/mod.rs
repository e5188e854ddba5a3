//! A batch of environments stepped together.
//!
//! Layout: one flat `f64` buffer, `states`, holds every env's chunk of `stride` values, `[model
//! state | last signals]`, so an env is one contiguous chunk. The batch is cut into lanes of
//! consecutive envs that the batch's threads (the caller and its helpers, `crate::pool`) take in
//! turn. A lane works on per-env results and
//! readings in reusable scratch and, when done, writes its part of the step's outputs as columns
//! ([`Columns`], constraint-major [`Readings`]): the arrays Python receives, with no per-env loop
//! left for the caller. Each env owns its RNG stream, seeded from `(seed + index)` as Gymnasium's
//! vector envs do, so results never depend on the thread count, the lane size or the batch size:
//! env `i` of a batch equals a single env seeded the same way.

#[macro_use]
mod kernel;
mod faulted;
mod lanes;
mod outputs;
mod slices;
mod snapshot;
mod totals;

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod safety_tests;
#[cfg(test)]
mod success_tests;
#[cfg(test)]
mod tests;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::pool::Pool;

use crate::envs::ProcessModel;
use crate::errors::{try_filled, CoreError};
use crate::faults::FaultSet;
use crate::rng::{entropy_seed, Rng};
use std::sync::{Arc, Mutex};

use crate::safety::audit::{AuditTrail, Source};
use crate::safety::{incidents, AlarmState, Checker, ConstraintSet, SafetyEvent, Shield};
use crate::telemetry::drift_watch::DriftWatch;
use crate::telemetry::env_metrics::EnvMetrics;
use crate::telemetry::health::SafetyState;
use crate::telemetry::quality::{Quality, Refusal};

use crate::step::StepView;
use kernel::{Ctx, Frame};
use lanes::{Lane, Lanes, ReadingColumns, ReadingsMut, Scratch, Slot, StepLane};
use outputs::ColumnsMut;
pub use outputs::{Columns, OneStep, Readings, ResetOut, Row, StepOut};
use slices::{take, take_ref};
pub use snapshot::Snapshot;
pub use totals::{Totals, KEEP_INCIDENTS};

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
            _ => Err(Self::refuse(&format!("{s:?}"))),
        }
    }

    /// The error for a mode that is none of the three (`got`: how the value reads).
    pub fn refuse(got: &str) -> CoreError {
        CoreError::config(
            "autoreset_mode",
            format!("must be one of next_step, same_step, disabled (or AutoresetMode), got {got}"),
        )
    }
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

/// A batch of one environment kind.
pub struct VecCore {
    model: Box<dyn ProcessModel>,
    checker: Checker,
    shield: Shield,
    n: usize,
    state_len: usize,
    /// Signals per env.
    sig_len: usize,
    stride: usize,
    states: Vec<f64>,
    slots: Vec<Slot>,
    alarms: Vec<AlarmState>,
    autoreset: Autoreset,
    frame: Frame,
    /// A private pool (`num_threads`), or `None` for the shared one.
    pool: Option<Pool>,
    audit: Option<(Arc<AuditTrail>, Arc<Source>)>,
    metrics: Option<Arc<EnvMetrics>>,
    /// Data-quality counters, recorded with the metrics.
    quality: Option<Quality>,
    /// Whether the data-quality counters count (on unless turned off to measure their cost).
    quality_on: bool,
    /// The fleet's drift watch, fed a sample of every batch step.
    drift: Option<Arc<Mutex<DriftWatch>>>,
    scratch: Scratch,
    totals: Arc<Mutex<Totals>>,
    /// The last [`step_one`](Self::step_one)'s outputs.
    one: OneStep,
    /// Every env has been reset since the batch was made or restored (checked once, not on
    /// every step).
    all_started: bool,
    /// The injected faults (none by default) and their bookkeeping.
    faults: FaultSet,
    fault_track: faulted::Tracking,
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
            return Err(CoreError::config(
                "num_envs",
                "must be a positive integer, got 0",
            ));
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
            Some(0) => {
                return Err(CoreError::config(
                    "num_threads",
                    "must be a positive integer or None, got 0",
                ))
            }
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
        let stride = state_len + spec.signals.len();
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
        let states = try_filled(n.checked_mul(stride), 0.0, "num_envs", &what)?;
        let k = checker.len();
        let alarms = try_filled(n.checked_mul(k), AlarmState::default(), "num_envs", &what)?;
        let frame = Frame::of(spec);
        let sig_len = spec.signals.len();
        Ok(Self {
            model,
            checker,
            shield: Shield::Off,
            n,
            state_len,
            stride,
            states,
            slots,
            alarms,
            autoreset,
            frame,
            pool,
            audit: None,
            metrics: None,
            quality: None,
            quality_on: true,
            drift: None,
            scratch: Scratch::default(),
            totals: Arc::new(Mutex::new(Totals::new(k))),
            one: OneStep::default(),
            all_started: false,
            sig_len,
            faults: FaultSet::none(),
            fault_track: faulted::Tracking::default(),
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

    /// Counts data quality (saturated observations, clipped actions, refused calls) into
    /// `quality` from now on, or stops.
    pub fn set_quality(&mut self, quality: Option<Quality>) {
        self.quality = quality;
    }

    /// Turns the data-quality counters on or off (they are on; off measures their cost).
    pub fn set_quality_on(&mut self, on: bool) {
        self.quality_on = on;
    }

    /// Feeds every batch step to `watch` from now on (see [`DriftWatch`]), or stops.
    pub fn set_drift(&mut self, watch: Option<Arc<Mutex<DriftWatch>>>) {
        self.drift = watch;
    }

    /// Counts a call refused before it reached the batch (the actions could not be read).
    pub fn refused(&self, why: Refusal) {
        if let Some(q) = &self.quality {
            q.refused(why);
        }
    }

    fn refused_call(&self) {
        if let Some(q) = &self.quality {
            q.refused_call();
        }
    }

    /// Data quality and drift of a finished step: observations, the actions as sent, and the
    /// rewards, stepped flags and clamped-observation masks.
    fn watch(&self, obs: &[f32], actions: &[f64], cols: (&[f64], &[bool], &[u64])) {
        let (rewards, stepped, pegged) = cols;
        if let Some(q) = self.quality.as_ref().filter(|_| self.quality_on) {
            q.record(pegged, actions);
        }
        if let Some(d) = &self.drift {
            let mut d = d.lock().unwrap_or_else(|p| p.into_inner());
            // The batch's values are finite (checked or clamped): building a warmup reference
            // from them cannot fail.
            let _ = d.observe_batch(obs, actions, rewards, stepped);
        }
    }

    /// The metrics handle, if recording.
    pub fn metrics(&self) -> Option<&Arc<EnvMetrics>> {
        self.metrics.as_ref()
    }

    /// One metrics update for a batch step (see [`EnvMetrics::record_step`]); with autoreset
    /// disabled, a shutdown leaves the batch's safety layer shut down.
    fn record(&self, view: &StepView<'_>, seconds: f64) {
        let Some(m) = &self.metrics else { return };
        let shut_down = m.record_step(view, seconds, &self.checker.set);
        if shut_down && self.autoreset == Autoreset::Disabled {
            m.set_safety_state(SafetyState::ShutDown);
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

    /// Gives incident events their ids (see [`incidents::assign_ids`]) and sends the events to
    /// the audit trail.
    fn publish(&mut self, events: &mut [SafetyEvent]) {
        if events.is_empty() {
            return;
        }
        incidents::assign_ids(events, &mut self.alarms, self.checker.len());
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
                    format!(
                        "a list of seeds needs one per env ({}), got {}",
                        self.n,
                        s.len()
                    ),
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
            &mut self.states,
            &mut self.slots,
            &mut self.alarms,
            &mut obs,
            (&mut work.readings, &mut readings),
            (ctx.stride, od, k),
        );
        let pool = self.pool.as_ref().unwrap_or_else(|| Pool::shared());
        let done = pool.map(lanes, |mut l| {
            let (mut events, mut cut) = (Vec::new(), 0u64);
            for j in 0..l.len() {
                let i = l.first + j;
                if mask.is_none_or(|m| m[i]) {
                    if let Some(Some(s)) = seeds.map(|s| s[i]) {
                        l.slots[j].rng = Rng::from_seed(s);
                    }
                    let slot = &l.slots[j];
                    cut += u64::from(slot.started && !slot.done && slot.elapsed > 0);
                    ctx.reset_lane_env(&mut l, j, k, &mut events);
                }
                ctx.observe_one(&mut l, j, k);
            }
            l.commit();
            (events, cut)
        });
        let cut: u64 = done.iter().map(|d| d.1).sum();
        if let (Some(m), true) = (&self.metrics, cut > 0) {
            m.record_outcomes([0, 0, 0, cut]);
        }
        let mut events: Vec<SafetyEvent> = done.into_iter().flat_map(|d| d.0).collect();
        self.publish(&mut events);
        self.lock_totals().add_events(&events);
        self.track_faults();
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
            &mut self.states,
            &mut self.slots,
            &mut self.alarms,
            &mut out.obs,
            (&mut work.readings, &mut out.readings),
            (ctx.stride, od, k),
        );
        let mut extra: Vec<StepLane<'_>> = Vec::with_capacity(lanes.len());
        {
            let mut acts = actions;
            let mut results = work.results.as_mut_slice();
            let mut cols = out.cols.view();
            let mut phys = out.action.as_mut_slice();
            let mut fobs = out.final_obs.as_mut_slice();
            let mut fr = ReadingColumns::of(&mut out.final_readings, fin, k);
            for l in &lanes {
                let m = l.len();
                let fm = if same_step { m } else { 0 };
                extra.push(StepLane {
                    actions: take_ref(&mut acts, m * ad),
                    results: take(&mut results, m),
                    cols: cols.take(m),
                    phys: take(&mut phys, m * ad),
                    final_obs: take(&mut fobs, fm * od),
                    final_readings: fr.take(fm),
                });
            }
        }
        let pairs: Vec<(Lane<'_>, StepLane<'_>)> = lanes.into_iter().zip(extra).collect();
        let pool = self.pool.as_ref().unwrap_or_else(|| Pool::shared());
        // The fault hooks compiled in only for a batch with faults: nothing to pay without.
        let dims = (n, od, ad, k);
        let events = if ctx.faults.is_empty() {
            kernel::step_lanes::<false>(&ctx, pairs, pool, dims)
        } else {
            kernel::step_lanes::<true>(&ctx, pairs, pool, dims)
        };
        let mut events: Vec<SafetyEvent> = events.into_iter().flatten().collect();
        let out = self.conclude(out, &mut events, started);
        let c = &out.cols;
        self.watch(&out.obs, actions, (&c.reward, &c.stepped, &c.pegged));
        Ok(out)
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
                states: &mut self.states,
                slots: &mut self.slots,
                alarms: &mut self.alarms,
                obs: &mut one.obs,
                readings: ReadingsMut::of(&mut one.readings),
                out: ReadingColumns::none(),
            };
            let mut e = StepLane {
                actions: action,
                results: &mut work.results,
                cols: ColumnsMut::none(),
                phys: &mut one.action,
                final_obs: &mut [],
                final_readings: ReadingColumns::none(),
            };
            if ctx.faults.is_empty() {
                ctx.step_env::<false>(&mut l, &mut e, 0, (od, ad, k), &mut events);
            } else {
                ctx.step_env::<true>(&mut l, &mut e, 0, (od, ad, k), &mut events);
            }
            one.row = work.results[0];
        }
        self.publish(&mut events);
        self.one.events = events;
        self.track_faults();
        let one = &self.one;
        self.account(
            &StepView::of_one(&one.row, &one.readings.active, &one.events, &self.slots),
            started,
        );
        let r = one.row;
        self.watch(&one.obs, action, (&[r.reward], &[r.stepped], &[r.pegged]));
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
        self.track_faults();
        out.events = std::mem::take(events);
        self.account(&out.view(&self.slots), started);
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
            self.refused(Refusal::Shape);
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
            self.refused(Refusal::NonFinite);
            return Err(CoreError::InvalidAction {
                env: Some(k / ad),
                element: Some(k % ad),
                message: format!("must be finite, got {}", actions[k]),
            });
        }
        if !self.all_started {
            if let Some(i) = self.slots.iter().position(|s| !s.started) {
                self.refused_call();
                return Err(CoreError::ResetNeeded(format!(
                    "env {i} has not been reset: call reset() before step()"
                )));
            }
            self.all_started = true;
        }
        if self.autoreset == Autoreset::Disabled {
            if let Some(i) = self.slots.iter().position(|s| s.done) {
                self.refused_call();
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
}
