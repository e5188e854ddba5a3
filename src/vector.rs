//! A batch of environments stepped together.
//!
//! Layout: one flat `f64` buffer holds every env's row, `[model state | previous signals]`, so an env
//! is one contiguous chunk and rayon hands whole envs to threads. Each env owns its RNG stream,
//! seeded from `(seed + index)` as Gymnasium's vector envs do, so results never depend on the
//! thread count, the chunking or the batch size: env `i` of a batch equals a single env seeded the
//! same way.

use rayon::prelude::*;

use crate::envs::ProcessModel;
use crate::errors::CoreError;
use crate::rng::{entropy_seed, Rng};
use crate::safety::ConstraintSet;

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
        match s.to_ascii_lowercase().as_str() {
            "next_step" | "nextstep" => Ok(Autoreset::NextStep),
            "same_step" | "samestep" => Ok(Autoreset::SameStep),
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
}

/// Per-env scalar results of one step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Row {
    /// Reward of the step (0 for an autoreset step).
    pub reward: f64,
    /// Episode ended in a terminal state (emergency shutdown).
    pub terminated: bool,
    /// Episode cut at the horizon.
    pub truncated: bool,
    /// The env was stepped (false: it was reset by NEXT_STEP autoreset instead).
    pub stepped: bool,
    /// Number of action elements clipped into `[-1, 1]`.
    pub clipped: u32,
    /// Index of the critical constraint that shut the env down.
    pub shutdown: Option<u16>,
    /// SAME_STEP only: the env ended and was reset within this step.
    pub reset_in_step: bool,
}

/// Everything one batch step produces, in fresh buffers.
#[derive(Debug, Clone, Default)]
pub struct StepOut {
    /// Observations, `num_envs x obs_dim`, after any autoreset.
    pub obs: Vec<f32>,
    /// Per-env scalars.
    pub rows: Vec<Row>,
    /// Physical actions applied, `num_envs x act_dim`.
    pub action: Vec<f64>,
    /// Constraint values, `num_envs x n_constraints` (after any autoreset: the reset state's).
    pub constraint_values: Vec<f64>,
    /// SAME_STEP: observation before the reset, `num_envs x obs_dim` (valid where `reset_in_step`).
    pub final_obs: Vec<f32>,
    /// SAME_STEP: constraint values before the reset (valid where `reset_in_step`).
    pub final_constraint_values: Vec<f64>,
}

/// The result of a reset: observations and constraint values of the reset envs.
#[derive(Debug, Clone, Default)]
pub struct ResetOut {
    /// Observations, `num_envs x obs_dim` (envs outside the mask keep their current observation).
    pub obs: Vec<f32>,
    /// Constraint values, `num_envs x n_constraints`.
    pub constraint_values: Vec<f64>,
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
}

/// Envs below this count per rayon task are not worth splitting further.
const MIN_ENVS_PER_TASK: usize = 16;

/// A batch of one environment kind.
pub struct VecCore {
    model: Box<dyn ProcessModel>,
    constraints: ConstraintSet,
    n: usize,
    state_len: usize,
    row_len: usize,
    rows: Vec<f64>,
    slots: Vec<Slot>,
    autoreset: Autoreset,
    pool: Option<rayon::ThreadPool>,
}

impl VecCore {
    /// A batch of `n` envs of `model`; `threads = Some(k)` runs on a private pool of k threads.
    pub fn new(
        model: Box<dyn ProcessModel>,
        n: usize,
        autoreset: Autoreset,
        threads: Option<usize>,
    ) -> Result<Self, CoreError> {
        if n == 0 {
            return Err(CoreError::config("num_envs", "must be at least 1"));
        }
        let pool = match threads {
            None => None,
            Some(0) => return Err(CoreError::config("num_threads", "must be at least 1")),
            Some(k) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(k)
                    .build()
                    .map_err(|e| CoreError::config("num_threads", e.to_string()))?,
            ),
        };
        let constraints = ConstraintSet::defaults(model.spec());
        let state_len = model.state_len();
        let row_len = state_len + model.spec().signals.len();
        let base = entropy_seed();
        let slots = (0..n)
            .map(|i| Slot {
                rng: Rng::from_seed(base.wrapping_add(i as u64)),
                elapsed: 0,
                done: false,
                started: false,
            })
            .collect();
        Ok(Self {
            model,
            constraints,
            n,
            state_len,
            row_len,
            rows: vec![0.0; n * row_len],
            slots,
            autoreset,
            pool,
        })
    }

    /// The model (spec, dimensions).
    pub fn model(&self) -> &dyn ProcessModel {
        self.model.as_ref()
    }

    /// The constraints evaluated each step.
    pub fn constraints(&self) -> &ConstraintSet {
        &self.constraints
    }

    /// Number of envs.
    pub fn num_envs(&self) -> usize {
        self.n
    }

    /// The autoreset mode.
    pub fn autoreset(&self) -> Autoreset {
        self.autoreset
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
        let (od, nc) = (self.model.spec().obs_dim(), self.constraints.len());
        let mut out = ResetOut {
            obs: vec![0.0; self.n * od],
            constraint_values: vec![0.0; self.n * nc],
        };
        let (model, constraints, sl) = (self.model.as_ref(), &self.constraints, self.state_len);
        let rows = &mut self.rows;
        let slots = &mut self.slots;
        let row_len = self.row_len;
        let pool = self.pool.as_ref();
        let mut work = || {
            rows.par_chunks_mut(row_len)
                .zip(slots.par_iter_mut())
                .zip(out.obs.par_chunks_mut(od.max(1)))
                .zip(out.constraint_values.par_chunks_mut(nc.max(1)))
                .enumerate()
                .with_min_len(MIN_ENVS_PER_TASK)
                .for_each(|(i, (((row, slot), obs), cv))| {
                    let selected = mask.is_none_or(|m| m[i]);
                    if selected {
                        if let Some(Some(s)) = seeds.map(|s| s[i]) {
                            slot.rng = Rng::from_seed(s);
                        }
                        reset_one(model, sl, row, slot);
                    }
                    observe_one(model, constraints, sl, row, slot.elapsed, obs, cv);
                });
        };
        match pool {
            Some(p) => p.install(work),
            None => work(),
        }
        Ok(out)
    }

    /// Steps every env with normalised actions (`num_envs x act_dim`, row-major).
    pub fn step(&mut self, actions: &[f64]) -> Result<StepOut, CoreError> {
        self.validate(actions)?;
        let spec = self.model.spec();
        let (od, ad, nc) = (spec.obs_dim(), spec.act_dim(), self.constraints.len());
        let same_step = self.autoreset == Autoreset::SameStep;
        let n = self.n;
        let mut out = StepOut {
            obs: vec![0.0; n * od],
            rows: vec![Row::default(); n],
            action: vec![0.0; n * ad],
            constraint_values: vec![0.0; n * nc],
            final_obs: if same_step {
                vec![0.0; n * od]
            } else {
                Vec::new()
            },
            final_constraint_values: if same_step {
                vec![0.0; n * nc]
            } else {
                Vec::new()
            },
        };
        let ctx = Ctx {
            model: self.model.as_ref(),
            constraints: &self.constraints,
            state_len: self.state_len,
            autoreset: self.autoreset,
        };
        let row_len = self.row_len;
        let rows = &mut self.rows;
        let slots = &mut self.slots;
        let (fo_len, fc_len) = if same_step {
            (od.max(1), nc.max(1))
        } else {
            (1, 1)
        };
        let mut dummy_fo = Vec::new();
        let mut dummy_fc = Vec::new();
        let (fo, fc) = if same_step {
            (&mut out.final_obs, &mut out.final_constraint_values)
        } else {
            // Empty chunk iterators would end the zip early; give one chunk per env.
            dummy_fo.resize(n, 0.0f32);
            dummy_fc.resize(n, 0.0f64);
            (&mut dummy_fo, &mut dummy_fc)
        };
        let mut work = || {
            rows.par_chunks_mut(row_len)
                .zip(slots.par_iter_mut())
                .zip(actions.par_chunks(ad.max(1)))
                .zip(out.obs.par_chunks_mut(od.max(1)))
                .zip(out.rows.par_iter_mut())
                .zip(out.action.par_chunks_mut(ad.max(1)))
                .zip(out.constraint_values.par_chunks_mut(nc.max(1)))
                .zip(fo.par_chunks_mut(fo_len))
                .zip(fc.par_chunks_mut(fc_len))
                .with_min_len(MIN_ENVS_PER_TASK)
                .for_each(
                    |((((((((row, slot), a), obs), r), phys), cv), fobs), fcv)| {
                        ctx.step_one(row, slot, a, obs, r, phys, cv, fobs, fcv);
                    },
                );
        };
        match self.pool.as_ref() {
            Some(p) => p.install(work),
            None => work(),
        }
        Ok(out)
    }

    fn validate(&self, actions: &[f64]) -> Result<(), CoreError> {
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
        if let Some(k) = actions.iter().position(|a| !a.is_finite()) {
            return Err(CoreError::InvalidAction {
                env: Some(k / ad),
                element: Some(k % ad),
                message: format!("must be finite, got {}", actions[k]),
            });
        }
        if let Some(i) = self.slots.iter().position(|s| !s.started) {
            return Err(CoreError::ResetNeeded(format!(
                "env {i} has not been reset: call reset() before step()"
            )));
        }
        if self.autoreset == Autoreset::Disabled {
            if let Some(i) = self.slots.iter().position(|s| s.done) {
                return Err(CoreError::ResetNeeded(format!(
                    "env {i} has ended its episode and autoreset is disabled: \
                     reset it with reset(options={{'reset_mask': ...}}) before stepping"
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
        }
    }

    /// Restores a state taken by [`VecCore::snapshot`] from a batch of the same kind and size.
    pub fn restore(&mut self, snap: &Snapshot) -> Result<(), CoreError> {
        let n = self.n;
        let ok = snap.rows.len() == self.rows.len()
            && snap.rngs.len() == 4 * n
            && snap.elapsed.len() == n
            && snap.done.len() == n
            && snap.started.len() == n;
        if !ok {
            return Err(CoreError::State(format!(
                "snapshot does not fit a batch of {n} {} envs",
                self.model.spec().id
            )));
        }
        self.rows.copy_from_slice(&snap.rows);
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let w = &snap.rngs[4 * i..4 * i + 4];
            slot.rng = Rng::from_state([w[0], w[1], w[2], w[3]]);
            slot.elapsed = snap.elapsed[i];
            slot.done = snap.done[i];
            slot.started = snap.started[i];
        }
        Ok(())
    }
}

fn reset_one(model: &dyn ProcessModel, state_len: usize, row: &mut [f64], slot: &mut Slot) {
    let (state, prev) = row.split_at_mut(state_len);
    model.reset(state, &mut slot.rng);
    model.signals(state, prev);
    slot.elapsed = 0;
    slot.done = false;
    slot.started = true;
}

fn observe_one(
    model: &dyn ProcessModel,
    constraints: &ConstraintSet,
    state_len: usize,
    row: &[f64],
    elapsed: u32,
    obs: &mut [f32],
    cv: &mut [f64],
) {
    let (state, prev) = row.split_at(state_len);
    model.observe(state, elapsed, obs);
    clamp_obs(model, obs);
    let mut sig = [0.0; MAX_SIGNALS];
    let sig = &mut sig[..prev.len().min(MAX_SIGNALS)];
    model.signals(state, sig);
    constraints.evaluate(sig, prev, cv);
}

/// Keeps observations inside the observation space (a sensor's range), so noise or an extreme
/// excursion never yields an observation outside the declared bounds.
#[inline]
fn clamp_obs(model: &dyn ProcessModel, obs: &mut [f32]) {
    for (o, v) in obs.iter_mut().zip(&model.spec().observations) {
        *o = o.clamp(v.low as f32, v.high as f32);
    }
}

/// The most signals an env may declare (a stack buffer; checked by the registry tests).
pub const MAX_SIGNALS: usize = 32;

struct Ctx<'a> {
    model: &'a dyn ProcessModel,
    constraints: &'a ConstraintSet,
    state_len: usize,
    autoreset: Autoreset,
}

impl Ctx<'_> {
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn step_one(
        &self,
        row: &mut [f64],
        slot: &mut Slot,
        action: &[f64],
        obs: &mut [f32],
        r: &mut Row,
        phys: &mut [f64],
        cv: &mut [f64],
        final_obs: &mut [f32],
        final_cv: &mut [f64],
    ) {
        if self.autoreset == Autoreset::NextStep && slot.done {
            reset_one(self.model, self.state_len, row, slot);
            observe_one(
                self.model,
                self.constraints,
                self.state_len,
                row,
                0,
                obs,
                cv,
            );
            *r = Row::default();
            return;
        }
        let spec = self.model.spec();
        let mut clipped = 0u32;
        let mut norm = [0.0; MAX_ACTIONS];
        let norm = &mut norm[..action.len().min(MAX_ACTIONS)];
        for (n, &a) in norm.iter_mut().zip(action) {
            let c = a.clamp(-1.0, 1.0);
            clipped += u32::from(c != a);
            *n = c;
        }
        spec.to_physical(norm, phys);
        let (state, prev) = row.split_at_mut(self.state_len);
        let reward = self.model.step(state, phys, slot.elapsed, &mut slot.rng);
        slot.elapsed += 1;
        self.model.observe(state, slot.elapsed, obs);
        clamp_obs(self.model, obs);
        let mut sig = [0.0; MAX_SIGNALS];
        let sig = &mut sig[..prev.len().min(MAX_SIGNALS)];
        self.model.signals(state, sig);
        let shutdown = self.constraints.evaluate(sig, prev, cv);
        prev.copy_from_slice(sig);
        let terminated = shutdown.is_some();
        let truncated = !terminated && slot.elapsed >= spec.horizon;
        *r = Row {
            reward,
            terminated,
            truncated,
            stepped: true,
            clipped,
            shutdown: shutdown.map(|i| i as u16),
            reset_in_step: false,
        };
        slot.done = terminated || truncated;
        if self.autoreset == Autoreset::SameStep && slot.done {
            final_obs.copy_from_slice(obs);
            final_cv.copy_from_slice(cv);
            reset_one(self.model, self.state_len, row, slot);
            observe_one(
                self.model,
                self.constraints,
                self.state_len,
                row,
                0,
                obs,
                cv,
            );
            r.reset_in_step = true;
        }
    }
}

/// The most action dimensions an env may declare (a stack buffer; checked by the registry tests).
pub const MAX_ACTIONS: usize = 16;

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
            trace.extend(out.rows.iter().map(|r| r.reward));
        }
        trace
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
                assert_eq!(o.rows[0], out.rows[i]);
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
            assert_eq!(out.rows[0].truncated, t == horizon - 1);
        }
        let out = b.step(&[0.0, 0.0]).expect("step");
        assert!(!out.rows[0].stepped && out.rows[0].reward == 0.0);
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
        assert!(out.rows[0].truncated && out.rows[0].reset_in_step);
        assert_eq!(&out.obs[..2], &[0.8f32, 330.0]);
        assert_ne!(out.final_obs[1], 330.0);
    }

    #[test]
    fn runaway_is_an_emergency_shutdown() {
        let mut b = batch(1, Autoreset::Disabled, None);
        b.reset(None, None).expect("reset");
        let mut ended = None;
        for t in 0..60 {
            let out = b.step(&[1.0]).expect("step");
            if out.rows[0].terminated {
                ended = Some((t, out.rows[0].shutdown));
                break;
            }
        }
        let (_, reason) = ended.expect("full heating must run the reactor away");
        let name = &b.constraints().constraints[usize::from(reason.expect("a reason"))].name;
        assert_eq!(name, "thermal_runaway");
        let err = b.step(&[0.0]).unwrap_err();
        assert!(matches!(err, CoreError::ResetNeeded(_)));
        b.reset(None, Some(&[true])).expect("reset");
        assert!(b.step(&[0.0]).is_ok());
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
            out.rows.iter().map(|r| r.clipped).collect::<Vec<_>>(),
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
        assert!(batch(3, Autoreset::NextStep, None).restore(&snap).is_err());
    }
}
