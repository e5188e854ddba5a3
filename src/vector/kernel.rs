//! One env's step and reset inside a lane: the code every thread of a batch runs.

use super::lanes::{spread, Lane, Prepared, Slot, StepLane};
use super::outputs::Row;
use super::{Autoreset, MAX_SIGNALS};
use crate::envs::{Batching, ProcessModel, StepItem};
use crate::faults::FaultSet;
use crate::pool::Pool;
use crate::safety::{shield, AlarmState, At, Checker, SafetyEvent, Shield};

/// The shared step context, built from disjoint fields so the lanes can borrow the buffers.
macro_rules! ctx {
    ($s:expr, $wall:expr) => {
        Ctx {
            model: $s.model.as_ref(),
            checker: &$s.checker,
            shield: $s.shield,
            state_len: $s.state_len,
            sig_len: $s.sig_len,
            stride: $s.stride,
            faults: &$s.faults,
            autoreset: $s.autoreset,
            frame: &$s.frame,
            wall: $wall,
        }
    };
}

/// What every step reads from the spec, laid out for the per-env loops: the action map and the
/// observation bounds as flat arrays, and the horizon.
pub(super) struct Frame {
    /// Physical value at normalised action -1, per action element.
    pub(super) act_low: Vec<f64>,
    /// Physical span of the normalised range [-1, 1], per action element.
    pub(super) act_span: Vec<f64>,
    /// Observation bounds (a sensor's range), per observation element.
    pub(super) obs_low: Vec<f32>,
    pub(super) obs_high: Vec<f32>,
    pub(super) horizon: u32,
}

impl Frame {
    pub(super) fn of(spec: &crate::spec::EnvSpec) -> Self {
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
    pub(super) fn to_physical(&self, normalised: &[f64], phys: &mut [f64]) -> u32 {
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
    /// extreme excursion never yields an observation outside the declared bounds. Returns which
    /// were clamped: bit `j` for observation `j` (the first 64), a sensor pegged at its end of
    /// scale.
    #[inline]
    pub(super) fn clamp_obs(&self, obs: &mut [f32]) -> u64 {
        let bounds = self.obs_low.iter().zip(&self.obs_high);
        let mut pegged = 0u64;
        for (j, (o, (&low, &high))) in obs.iter_mut().zip(bounds).enumerate() {
            let c = o.clamp(low, high);
            pegged |= u64::from(c != *o && j < 64) << (j & 63);
            *o = c;
        }
        pegged
    }
}

/// Steps a batch's lanes (the envs of `pairs`) on `pool`: the whole batch's way or env by env,
/// as the model steps best (see [`Batching`]); the lanes' events. `F`: whether the batch has
/// faults (their hooks are compiled in only then).
pub(super) fn step_lanes<const F: bool>(
    ctx: &Ctx<'_>,
    mut pairs: Vec<(Lane<'_>, StepLane<'_>)>,
    pool: &Pool,
    (n, od, ad, k): (usize, usize, usize, usize),
) -> Vec<Vec<SafetyEvent>> {
    if ctx.model.batching() == Batching::WholeBatch {
        // Three rounds, the middle one over the whole batch (see `Batching::WholeBatch`).
        let refs: Vec<&mut (Lane<'_>, StepLane<'_>)> = pairs.iter_mut().collect();
        let preps = pool.map(refs, |(l, e)| ctx.prepare_lane::<F>(l, e, (ad, k)));
        let rewards: Vec<Vec<f64>> = {
            let mut items = Vec::with_capacity(n);
            for ((l, e), p) in pairs.iter_mut().zip(&preps) {
                items.extend(ctx.lane_items::<F>(l, e, ad, &p.pre));
            }
            ctx.model.step_batch(&mut items, pool);
            let mut stepped = items.iter().map(|it| it.reward);
            preps.iter().map(|p| spread(&p.pre, &mut stepped)).collect()
        };
        let rounds: Vec<_> = pairs.into_iter().zip(preps).zip(rewards).collect();
        pool.map(rounds, |(((mut l, mut e), p), r)| {
            ctx.finish_lane::<F>(&mut l, &mut e, (od, k), p, &r)
        })
    } else {
        pool.map(pairs, |(mut l, mut e)| {
            let mut events = Vec::new();
            for j in 0..l.len() {
                ctx.step_env::<F>(&mut l, &mut e, j, (od, ad, k), &mut events);
            }
            l.commit();
            e.commit();
            events
        })
    }
}

/// What every env of a batch step shares.
pub(super) struct Ctx<'a> {
    pub(super) model: &'a dyn ProcessModel,
    pub(super) checker: &'a Checker,
    pub(super) shield: Shield,
    pub(super) state_len: usize,
    /// Signals per env (the chunk is `[state | signals | fault memory]`).
    pub(super) sig_len: usize,
    pub(super) stride: usize,
    pub(super) faults: &'a FaultSet,
    pub(super) autoreset: Autoreset,
    pub(super) frame: &'a Frame,
    pub(super) wall: f64,
}

/// An env's chunk cut into its model state, its last signals and its fault memory.
#[inline]
fn parts(chunk: &mut [f64], state_len: usize, sig_len: usize) -> [&mut [f64]; 3] {
    let (state, rest) = chunk.split_at_mut(state_len);
    let (last, mem) = rest.split_at_mut(sig_len);
    [state, last, mem]
}

impl Ctx<'_> {
    pub(super) fn at(&self, env: usize, slot: &Slot) -> At {
        At {
            env,
            episode: slot.episode,
            step: slot.elapsed,
            wall: self.wall,
        }
    }

    pub(super) fn reset_one(
        &self,
        env: usize,
        chunk: &mut [f64],
        slot: &mut Slot,
        alarms: &mut [AlarmState],
        events: &mut Vec<SafetyEvent>,
    ) {
        self.checker.close_all(alarms, self.at(env, slot), events);
        let [state, last, mem] = parts(chunk, self.state_len, self.sig_len);
        // The fault stream's key is read from the env's stream before the model draws from it.
        self.faults.reset(mem, &slot.rng);
        self.model.reset(state, &mut slot.rng);
        self.model.signals(state, last);
        slot.elapsed = 0;
        slot.done = false;
        slot.started = true;
        slot.episode += 1;
        slot.ret = 0.0;
    }

    pub(super) fn reset_lane_env(
        &self,
        l: &mut Lane<'_>,
        j: usize,
        k: usize,
        events: &mut Vec<SafetyEvent>,
    ) {
        let chunk = &mut l.states[j * self.stride..(j + 1) * self.stride];
        self.reset_one(
            l.first + j,
            chunk,
            &mut l.slots[j],
            &mut l.alarms[j * k..(j + 1) * k],
            events,
        );
    }

    /// Observation and readings of env `j` of the lane without stepping it.
    pub(super) fn observe_one(&self, l: &mut Lane<'_>, j: usize, k: usize) {
        let (od, stride, elapsed) = (l.od, self.stride, l.slots[j].elapsed);
        let chunk = &mut l.states[j * stride..(j + 1) * stride];
        let [state, last, mem] = parts(chunk, self.state_len, self.sig_len);
        let obs = &mut l.obs[j * od..(j + 1) * od];
        self.model.observe(state, elapsed, obs);
        self.faults.sensors(mem, obs, elapsed);
        self.frame.clamp_obs(obs);
        // Signals equal `last` right after a reset or step, so rates read zero here.
        let alarms = &l.alarms[j * k..(j + 1) * k];
        self.checker
            .measure(alarms, last, last, l.readings.outputs(j, k));
    }

    /// Steps env `j` of a lane start to finish: autoreset or action and shield, the model's own
    /// `step`, then observation and safety; its events in order ([`Batching::EnvByEnv`], and a
    /// single env of any model).
    pub(super) fn step_env<const F: bool>(
        &self,
        l: &mut Lane<'_>,
        e: &mut StepLane<'_>,
        j: usize,
        (od, ad, k): (usize, usize, usize),
        events: &mut Vec<SafetyEvent>,
    ) {
        if let Some((clipped, shielded)) = self.prepare_one::<F>(l, e, j, (ad, k), events) {
            let slot = &mut l.slots[j];
            let chunk = &mut l.states[j * self.stride..(j + 1) * self.stride];
            let [state, _, mem] = parts(chunk, self.state_len, self.sig_len);
            let action = &e.phys[j * ad..(j + 1) * ad];
            let reward = if F && self.faults.drifts() {
                let params = self.faults.params(mem, slot.elapsed);
                (self.model).step_with(state, action, slot.elapsed, &mut slot.rng, params)
            } else {
                self.model.step(state, action, slot.elapsed, &mut slot.rng)
            };
            self.finish_one::<F>(l, e, j, (od, k), (reward, clipped, shielded), events);
        }
    }

    /// 1-2. Autoreset, actions and shield of every env of a lane.
    pub(super) fn prepare_lane<const F: bool>(
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
                .push(self.prepare_one::<F>(l, e, j, (ad, k), &mut p.events));
            p.counts.push(p.events.len() - before);
        }
        p
    }

    /// The lane's envs prepared to step (`pre[j]` is `Some`), as the model's step items.
    pub(super) fn lane_items<'x, const F: bool>(
        &'x self,
        l: &'x mut Lane<'_>,
        e: &'x StepLane<'_>,
        ad: usize,
        pre: &'x [Option<(u32, bool)>],
    ) -> impl Iterator<Item = StepItem<'x>> + 'x {
        let (state_len, sig_len, faults) = (self.state_len, self.sig_len, self.faults);
        l.states
            .chunks_exact_mut(self.stride)
            .zip(l.slots.iter_mut())
            .zip(e.phys.chunks_exact(ad.max(1)))
            .zip(pre)
            .filter(|(_, p)| p.is_some())
            .map(move |(((chunk, slot), action), _)| {
                let [state, _, mem] = parts(chunk, state_len, sig_len);
                let params = if F && faults.drifts() {
                    faults.params(mem, slot.elapsed)
                } else {
                    &[]
                };
                StepItem {
                    state,
                    action,
                    t: slot.elapsed,
                    rng: &mut slot.rng,
                    params,
                    reward: 0.0,
                }
            })
    }

    /// 4. Observations and safety of every stepped env of a lane; the lane's events in env order.
    pub(super) fn finish_lane<const F: bool>(
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
                self.finish_one::<F>(l, e, j, (od, k), act, &mut events);
            }
        }
        l.commit();
        e.commit();
        events
    }

    /// NEXT_STEP autoreset of an ended env (returns `None`), or the env's action clipped, mapped
    /// to physical units and shielded (returns the clipped count and whether the shield acted).
    pub(super) fn prepare_one<const F: bool>(
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
            e.results[j] = Row::default();
            return None;
        }
        let chunk = &mut l.states[j * self.stride..(j + 1) * self.stride];
        let slot = &mut l.slots[j];
        let alarms = &mut l.alarms[j * k..(j + 1) * k];
        let phys = &mut e.phys[j * ad..(j + 1) * ad];
        // 1. Clip into the action box and map to physical units.
        let clipped = self
            .frame
            .to_physical(&e.actions[j * ad..(j + 1) * ad], phys);
        // 2. The shield.
        let [state, last, mem] = parts(chunk, self.state_len, self.sig_len);
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
        // 3. Actuator faults act on what the actuator is told, the shield's word included.
        if F {
            self.faults.actuators(mem, phys, slot.elapsed);
        }
        Some((clipped, shielded))
    }

    /// 4. Observation and safety of a stepped env: values, alarms, cost, shutdown, autoreset.
    pub(super) fn finish_one<const F: bool>(
        &self,
        l: &mut Lane<'_>,
        e: &mut StepLane<'_>,
        j: usize,
        (od, k): (usize, usize),
        (mut reward, clipped, shielded): (f64, u32, bool),
        events: &mut Vec<SafetyEvent>,
    ) {
        let env = l.first + j;
        let chunk = &mut l.states[j * self.stride..(j + 1) * self.stride];
        let slot = &mut l.slots[j];
        let alarms = &mut l.alarms[j * k..(j + 1) * k];
        let [state, last, mem] = parts(chunk, self.state_len, self.sig_len);
        slot.elapsed += 1;
        let obs = &mut l.obs[j * od..(j + 1) * od];
        self.model.observe(state, slot.elapsed, obs);
        if F {
            self.faults.count_step(mem);
            self.faults.sensors(mem, obs, slot.elapsed);
        }
        let pegged = self.frame.clamp_obs(obs);
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
        // Judged once per episode, at its horizon: a shutdown is never a success.
        let success = truncated && self.model.succeeded(state, slot.elapsed);
        e.results[j] = Row {
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
            success,
            pegged,
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
            e.results[j].reset_in_step = true;
        }
    }
}
