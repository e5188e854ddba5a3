//! A batch's injected faults: set before the first reset, tracked after every step and reset
//! (which faults started where, for the audit trail, and how many envs have each active, for
//! `faults_active`).

use std::sync::Arc;

use super::{wall_now, VecCore};
use crate::errors::{try_filled, CoreError};
use crate::faults::{FaultSet, Started};
use crate::safety::audit::FaultSource;
use crate::telemetry::fault_metrics::FaultGauges;

/// What tracking reuses from step to step, and where it reports.
#[derive(Debug, Default)]
pub(super) struct Tracking {
    /// Envs with each fault active after the last step or reset.
    active: Vec<u64>,
    started: Vec<Started>,
    source: Option<Arc<FaultSource>>,
    gauges: Option<FaultGauges>,
}

impl VecCore {
    /// Injects `faults` into every env of the batch (before its first reset; the envs' fault
    /// memory joins their state). Refused, nothing changed, after a reset or if the memory cannot
    /// be allocated.
    pub fn set_faults(&mut self, faults: FaultSet) -> Result<(), CoreError> {
        if self.slots.iter().any(|s| s.started) {
            return Err(CoreError::config(
                "faults",
                "can only be set before the batch's first reset",
            ));
        }
        let stride = self.state_len + self.sig_len + faults.block_len();
        let what = format!("{} {} envs with faults", self.n, self.model.spec().id);
        self.states = try_filled(self.n.checked_mul(stride), 0.0, "faults", &what)?;
        self.stride = stride;
        let labels = faults.faults().iter().map(|f| {
            [
                f.name.clone(),
                f.effect.kind().to_string(),
                f.target.to_string(),
                f.effect.target_type().to_string(),
                f.schedule.clock.as_str().to_string(),
            ]
        });
        self.fault_track = Tracking {
            active: vec![0; faults.faults().len()],
            started: Vec::new(),
            source: (!faults.is_empty()).then(|| {
                Arc::new(FaultSource {
                    env_id: self.model.spec().id.to_string(),
                    faults: labels.collect(),
                })
            }),
            gauges: None,
        };
        self.faults = faults;
        Ok(())
    }

    /// The injected faults.
    pub fn faults(&self) -> &FaultSet {
        &self.faults
    }

    /// Sets how many envs have each fault active into `gauges` from now on.
    pub fn set_fault_gauges(&mut self, gauges: FaultGauges) {
        let mut g = gauges;
        g.set(&self.fault_track.active);
        self.fault_track.gauges = Some(g);
    }

    /// Envs with each fault active after the last step or reset, in fault order.
    pub fn faults_active(&self) -> &[u64] {
        &self.fault_track.active
    }

    /// After a step or reset: the faults that started in an env go to the audit trail, and the
    /// counts of envs with each fault active to the gauges. One pass over the batch, only for a
    /// batch with faults.
    #[inline]
    pub(super) fn track_faults(&mut self) {
        if !self.faults.is_empty() {
            self.track_faulted();
        }
    }

    fn track_faulted(&mut self) {
        let t = &mut self.fault_track;
        t.started.clear();
        t.active.fill(0);
        let off = self.state_len + self.sig_len;
        let envs = self.states.chunks_exact_mut(self.stride).zip(&self.slots);
        for (i, (chunk, slot)) in envs.enumerate().filter(|(_, (_, s))| s.started) {
            let at = (i, slot.episode, slot.elapsed);
            (self.faults).track(&mut chunk[off..], at, &mut t.started, &mut t.active);
        }
        if let Some(g) = &mut t.gauges {
            g.set(&t.active);
        }
        if let (Some((trail, _)), Some(src), false) = (&self.audit, &t.source, t.started.is_empty())
        {
            trail.faults(src, t.started.clone(), wall_now());
        }
    }
}
