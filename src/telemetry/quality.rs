//! Live data quality of one env batch, by env and feature: observations at a bound of their range
//! (`observation_saturation_total`), action components outside `[-1, 1]` clipped into the action
//! space (`action_clipped_total`) and step calls refused for bad input (`input_refused_total`,
//! also counted in `errors_total{component="env",kind="refused_input"}`).
//!
//! Counted once per batch step from the step's columns: one pass over the `n x obs_dim`
//! observations and the `n x act_dim` actions, with per-feature sums kept on the stack.

use super::builtins::Builtins;
use super::dynamic::{AnyChild, MetricFamily};
use super::types::CounterF;

/// Why a step call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// An action value was NaN or infinite.
    NonFinite,
    /// The actions had the wrong shape or count.
    Shape,
    /// The actions were not real numbers (dtype, masked elements, other types).
    Dtype,
}

impl Refusal {
    /// Every reason, in label order.
    pub const ALL: [Refusal; 3] = [Refusal::NonFinite, Refusal::Shape, Refusal::Dtype];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NonFinite => "non_finite",
            Refusal::Shape => "shape",
            Refusal::Dtype => "dtype",
        }
    }
}

/// Most features summed on the stack (more fall back to one allocation per batch step).
const STACK_FEATURES: usize = 32;

/// The data-quality series of one env batch.
#[derive(Debug)]
pub struct Quality {
    saturation: Vec<CounterF>,
    clipped: Vec<CounterF>,
    refused: [CounterF; 3],
    refused_errors: CounterF,
    refused_calls: CounterF,
    low: Vec<f32>,
    high: Vec<f32>,
}

fn counter(f: &MetricFamily, labels: &[&str]) -> CounterF {
    match f.child(labels) {
        Ok((AnyChild::Counter(c), _)) => c,
        _ => CounterF::default(),
    }
}

/// Adds into `sums[j]` (j = i mod width) whether each value matches `hit`.
fn count_by_column<T: Copy>(
    values: &[T],
    width: usize,
    hit: impl Fn(usize, T) -> bool,
    sums: &mut [u64],
) {
    if width == 0 {
        return;
    }
    for row in values.chunks_exact(width) {
        for (j, (&v, s)) in row.iter().zip(sums.iter_mut()).enumerate() {
            *s += u64::from(hit(j, v));
        }
    }
}

impl Quality {
    /// The series of env `env_id` whose observations are `observations` (name, low, high) and
    /// actions `actions` (names), every one created at 0.
    pub fn new(
        b: &Builtins,
        env_id: &str,
        observations: &[(&str, f64, f64)],
        actions: &[&str],
    ) -> Self {
        let refused = Refusal::ALL.map(|r| counter(&b.input_refused, &[env_id, r.as_str()]));
        Self {
            saturation: observations
                .iter()
                .map(|(n, _, _)| counter(&b.observation_saturation, &[env_id, n]))
                .collect(),
            clipped: actions
                .iter()
                .map(|n| counter(&b.action_clipped, &[env_id, n]))
                .collect(),
            refused,
            refused_errors: b.ops.error_counter("env", "refused_input"),
            refused_calls: b.ops.error_counter("env", "refused_call"),
            low: observations.iter().map(|o| o.1 as f32).collect(),
            high: observations.iter().map(|o| o.2 as f32).collect(),
        }
    }

    /// Counts a batch step's saturated observations (row-major, `obs_dim` per env) and clipped
    /// action components (the actions as sent, `act_dim` per env).
    pub fn record(&self, obs: &[f32], actions: &[f64]) {
        let (od, ad) = (self.saturation.len(), self.clipped.len());
        let mut stack = [0u64; STACK_FEATURES];
        let mut heap = Vec::new();
        let sums: &mut [u64] = if od.max(ad) <= STACK_FEATURES {
            &mut stack[..od.max(ad)]
        } else {
            heap.resize(od.max(ad), 0);
            &mut heap
        };
        let (low, high) = (&self.low, &self.high);
        count_by_column(obs, od, |j, v| v <= low[j] || v >= high[j], &mut sums[..od]);
        add(&self.saturation, sums);
        sums.iter_mut().for_each(|s| *s = 0);
        count_by_column(actions, ad, |_, a: f64| a.abs() > 1.0, &mut sums[..ad]);
        add(&self.clipped, sums);
    }

    /// Counts a step call refused for bad input.
    pub fn refused(&self, why: Refusal) {
        self.refused[why as usize].inc();
        self.refused_errors.inc();
    }

    /// Counts a step call refused because the batch was not ready for it (an env not reset).
    pub fn refused_call(&self) {
        self.refused_calls.inc();
    }
}

fn add(counters: &[CounterF], sums: &[u64]) {
    for (c, &s) in counters.iter().zip(sums) {
        if s > 0 {
            c.inc_by(s as f64);
        }
    }
}
