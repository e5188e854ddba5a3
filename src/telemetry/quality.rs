//! Live data quality of one env batch, by env and feature: observations beyond their range,
//! clamped to a bound (`observation_saturation_total`: a sensor pegged at its end of scale; a
//! value that merely equals a bound, like a 0/1 flag, is not counted), action components outside `[-1, 1]` clipped into the action
//! space (`action_clipped_total`) and step calls refused for bad input (`input_refused_total`,
//! also counted in `errors_total{component="env",kind="refused_input"}`).
//!
//! Counted once per batch step from the step's columns: the per-env masks of clamped
//! observations (mostly zero) and one pass over the `n x act_dim` actions, with per-feature sums
//! kept on the stack.

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
}

fn counter(f: &MetricFamily, labels: &[&str]) -> CounterF {
    match f.child(labels) {
        Ok((AnyChild::Counter(c), _)) => c,
        _ => CounterF::default(),
    }
}

/// Adds into `sums[j]` (j = i mod width) whether each value matches `hit`.
fn count_by_column(values: &[f64], width: usize, hit: impl Fn(f64) -> bool, sums: &mut [u64]) {
    if width == 0 {
        return;
    }
    for row in values.chunks_exact(width) {
        for (&v, s) in row.iter().zip(sums.iter_mut()) {
            *s += u64::from(hit(v));
        }
    }
}

impl Quality {
    /// The series of env `env_id` whose observations are `observations` and actions `actions`
    /// (names), every one created at 0.
    pub fn new(b: &Builtins, env_id: &str, observations: &[&str], actions: &[&str]) -> Self {
        let refused = Refusal::ALL.map(|r| counter(&b.input_refused, &[env_id, r.as_str()]));
        Self {
            saturation: observations
                .iter()
                .map(|n| counter(&b.observation_saturation, &[env_id, n]))
                .collect(),
            clipped: actions
                .iter()
                .map(|n| counter(&b.action_clipped, &[env_id, n]))
                .collect(),
            refused,
            refused_errors: b.ops.error_counter("env", "refused_input"),
            refused_calls: b.ops.error_counter("env", "refused_call"),
        }
    }

    /// Counts a batch step's pegged observations (per env, bit `j`: observation `j` was clamped)
    /// and clipped action components (the actions as sent, `act_dim` per env).
    pub fn record(&self, pegged: &[u64], actions: &[f64]) {
        let (od, ad) = (self.saturation.len(), self.clipped.len());
        let mut stack = [0u64; STACK_FEATURES];
        let mut heap = Vec::new();
        let sums: &mut [u64] = if od.max(ad) <= STACK_FEATURES {
            &mut stack[..od.max(ad)]
        } else {
            heap.resize(od.max(ad), 0);
            &mut heap
        };
        if pegged.iter().any(|&m| m != 0) {
            for &m in pegged {
                let mut bits = m;
                while bits != 0 {
                    let j = bits.trailing_zeros() as usize;
                    if let Some(s) = sums.get_mut(j).filter(|_| j < od) {
                        *s += 1;
                    }
                    bits &= bits - 1;
                }
            }
            add(&self.saturation, sums);
            sums.iter_mut().for_each(|s| *s = 0);
        }
        count_by_column(actions, ad, |a: f64| a.abs() > 1.0, &mut sums[..ad]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{Format, Registry, Scope};

    fn value(reg: &Registry, series: &str) -> f64 {
        let text = reg.encode(Format::Text, Scope::All).unwrap();
        let line = text.lines().find(|l| l.starts_with(series));
        line.and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no series {series}"))
    }

    #[test]
    fn pegged_observations_clipped_actions_and_refusals_are_counted_by_feature() {
        let reg = Registry::new(100);
        let q = Quality::new(reg.builtins(), "E", &["a", "b", "c"], &["u", "v"]);
        let sat = |f: &str| {
            value(
                &reg,
                &format!("observation_saturation_total{{env=\"E\",feature=\"{f}\"}}"),
            )
        };
        let clip = |f: &str| {
            value(
                &reg,
                &format!("action_clipped_total{{env=\"E\",feature=\"{f}\"}}"),
            )
        };
        assert_eq!(
            (sat("a"), clip("u")),
            (0.0, 0.0),
            "every series exists at 0"
        );
        // Three envs: env 0 pegged a and c, env 2 pegged c; bits beyond the 3 features ignored.
        q.record(
            &[0b101, 0, 0b100 | 1 << 40],
            &[1.0, -1.5, 2.0, 0.5, -1.0, 1.0000001],
        );
        assert_eq!((sat("a"), sat("b"), sat("c")), (1.0, 0.0, 2.0));
        assert_eq!(
            (clip("u"), clip("v")),
            (1.0, 2.0),
            "exactly +-1 is in range"
        );
        q.record(&[0, 0, 0], &[0.0; 6]);
        assert_eq!((sat("c"), clip("v")), (2.0, 2.0));
        q.refused(Refusal::NonFinite);
        q.refused(Refusal::Dtype);
        q.refused(Refusal::Dtype);
        q.refused_call();
        let refused = |r: &str| {
            value(
                &reg,
                &format!("input_refused_total{{env=\"E\",reason=\"{r}\"}}"),
            )
        };
        assert_eq!(
            (refused("non_finite"), refused("shape"), refused("dtype")),
            (1.0, 0.0, 2.0)
        );
        let errors = |k: &str| {
            value(
                &reg,
                &format!("errors_total{{component=\"env\",kind=\"{k}\"}}"),
            )
        };
        assert_eq!(
            (errors("refused_input"), errors("refused_call")),
            (3.0, 1.0)
        );
    }

    #[test]
    fn many_features_fall_back_to_the_heap() {
        let reg = Registry::new(1000);
        let names: Vec<String> = (0..40).map(|j| format!("o{j}")).collect();
        let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        let q = Quality::new(reg.builtins(), "E", &refs, &refs);
        q.record(&[1 << 39], &[2.0; 40]);
        let sat = value(
            &reg,
            "observation_saturation_total{env=\"E\",feature=\"o39\"}",
        );
        let clip = value(&reg, "action_clipped_total{env=\"E\",feature=\"o39\"}");
        assert_eq!((sat, clip), (1.0, 1.0));
    }
}
