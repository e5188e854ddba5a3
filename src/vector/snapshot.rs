//! Saving and restoring a batch's whole state.

use super::VecCore;
use crate::errors::CoreError;
use crate::rng::Rng;
use crate::safety::{incidents, AlarmState};

/// A snapshot of a batch's full state (for pickling and copying).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The flat state buffer (each env's model state and last signals).
    pub states: Vec<f64>,
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

impl VecCore {
    /// A copy of the full state.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            states: self.states.clone(),
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
        let ok = snap.states.len() == self.states.len()
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
        if snap.states.iter().any(|v| !v.is_finite()) {
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
        self.states.copy_from_slice(&snap.states);
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
                incidents::next_id()
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
