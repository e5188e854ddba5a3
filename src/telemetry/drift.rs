//! Model drift: how far the recent distribution of each feature (an observation variable, an
//! action, the reward) has moved from a reference profile.
//!
//! A reference profile gives each feature fixed bins (edges from the reference data's quantiles,
//! the outer ones its minimum and maximum) and the share of the reference in each bin. A
//! [`DriftTracker`] keeps, per feature, the bin counts of the last `window` batch steps (a ring of
//! per-step counts, so memory is fixed per feature: `window × bins` counters) and reports the
//! window's population stability index and Wasserstein-1 distance against the reference.
//!
//! PSI reads as common practice does: below [`PSI_MODERATE`] stable, up to [`PSI_SIGNIFICANT`]
//! moderate, above it significant. W1 is in the feature's own unit, with the mass of each bin
//! spread evenly over it (values beyond the outer edges count in the outer bins).

use std::collections::VecDeque;

use crate::errors::CoreError;

/// PSI from which a shift is moderate.
pub const PSI_MODERATE: f64 = 0.1;
/// PSI from which a shift is significant.
pub const PSI_SIGNIFICANT: f64 = 0.25;
/// Smallest share a bin counts with in the PSI (an empty bin would make it infinite).
const SHARE_FLOOR: f64 = 1e-4;

/// Where a feature comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An observation variable.
    Observation,
    /// An action component.
    Action,
    /// The reward.
    Reward,
}

impl Source {
    /// The label value (`observation`, `action`, `reward`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Observation => "observation",
            Source::Action => "action",
            Source::Reward => "reward",
        }
    }

    /// Parses a label value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "observation" => Some(Source::Observation),
            "action" => Some(Source::Action),
            "reward" => Some(Source::Reward),
            _ => None,
        }
    }
}

/// One feature's reference: bin edges and the reference's share in each bin.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureProfile {
    /// Feature name (from the env's spec).
    pub name: String,
    /// Where it comes from.
    pub source: Source,
    /// `bins + 1` non-decreasing finite edges.
    edges: Vec<f64>,
    /// The reference's share per bin (sums to 1).
    shares: Vec<f64>,
}

impl FeatureProfile {
    /// Checks and keeps a profile; `shares` are normalised to sum to 1.
    ///
    /// Errors:
    ///     [`CoreError::Config`] naming the feature: fewer than two edges, edges not finite or
    ///     decreasing, a share count other than `edges - 1`, shares negative, not finite or all 0.
    pub fn new(
        name: &str,
        source: Source,
        edges: Vec<f64>,
        shares: Vec<f64>,
    ) -> Result<Self, CoreError> {
        let bad = |why: String| CoreError::config("profile", format!("feature {name:?}: {why}"));
        if edges.len() < 2 {
            return Err(bad(format!("needs at least 2 edges, got {}", edges.len())));
        }
        if edges.iter().any(|e| !e.is_finite()) || edges.windows(2).any(|w| w[1] < w[0]) {
            return Err(bad("edges must be finite and non-decreasing".into()));
        }
        if shares.len() != edges.len() - 1 {
            return Err(bad(format!(
                "{} edges make {} bins, got {} shares",
                edges.len(),
                edges.len() - 1,
                shares.len()
            )));
        }
        let total: f64 = shares.iter().sum();
        if shares.iter().any(|s| !s.is_finite() || *s < 0.0) || total <= 0.0 {
            return Err(bad(
                "shares must be finite, non-negative and not all 0".into()
            ));
        }
        let shares = shares.iter().map(|s| s / total).collect();
        Ok(Self {
            name: name.to_string(),
            source,
            edges,
            shares,
        })
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.shares.len()
    }

    /// The bin of `v`: by the inner edges, values beyond the outer ones in the outer bins.
    /// The `bins + 1` edges.
    pub fn edges(&self) -> &[f64] {
        &self.edges
    }

    /// The reference's share per bin.
    pub fn shares(&self) -> &[f64] {
        &self.shares
    }

    fn bin(&self, v: f64) -> usize {
        let inner = &self.edges[1..self.edges.len() - 1];
        inner.partition_point(|e| *e <= v)
    }
}

/// The sliding-window counts of several features against their profiles.
#[derive(Debug, Clone)]
pub struct DriftTracker {
    features: Vec<FeatureProfile>,
    /// Start of each feature's bins in the flat count vectors.
    offsets: Vec<usize>,
    window: usize,
    /// Per batch step, every feature's bin counts (flat); the oldest first.
    ring: VecDeque<Vec<u32>>,
    /// The sum of the ring.
    totals: Vec<u64>,
}

impl DriftTracker {
    /// Tracks `features` over the last `window` batch steps.
    ///
    /// Errors:
    ///     [`CoreError::Config`] for a window of 0 or no feature.
    pub fn new(features: Vec<FeatureProfile>, window: usize) -> Result<Self, CoreError> {
        if window == 0 {
            return Err(CoreError::config("window", "must be at least 1 batch step"));
        }
        if features.is_empty() {
            return Err(CoreError::config("profile", "has no feature"));
        }
        let mut offsets = Vec::with_capacity(features.len());
        let mut flat = 0;
        for f in &features {
            offsets.push(flat);
            flat += f.bins();
        }
        Ok(Self {
            features,
            offsets,
            window,
            ring: VecDeque::with_capacity(window + 1),
            totals: vec![0; flat],
        })
    }

    /// The features, in the order of a row.
    pub fn features(&self) -> &[FeatureProfile] {
        &self.features
    }

    /// Adds one batch step: `rows` holds whole rows of one value per feature (row-major); NaN
    /// values are not counted. The step leaving the window is taken out.
    pub fn observe(&mut self, rows: &[f64]) {
        let k = self.features.len();
        let mut counts = if self.ring.len() >= self.window {
            let old = self.ring.pop_front().unwrap_or_default();
            for (t, c) in self.totals.iter_mut().zip(&old) {
                *t -= u64::from(*c);
            }
            old
        } else {
            vec![0; self.totals.len()]
        };
        counts.iter_mut().for_each(|c| *c = 0);
        for row in rows.chunks_exact(k) {
            for ((f, &off), &v) in self.features.iter().zip(&self.offsets).zip(row) {
                if !v.is_nan() {
                    counts[off + f.bin(v)] += 1;
                }
            }
        }
        for (t, c) in self.totals.iter_mut().zip(&counts) {
            *t += u64::from(*c);
        }
        self.ring.push_back(counts);
    }

    /// Values of feature `f` in the window.
    pub fn samples(&self, f: usize) -> u64 {
        self.window_counts(f).iter().sum()
    }

    fn window_counts(&self, f: usize) -> &[u64] {
        let off = self.offsets[f];
        &self.totals[off..off + self.features[f].bins()]
    }

    fn window_shares(&self, f: usize) -> Option<Vec<f64>> {
        let n = self.samples(f);
        (n > 0).then(|| {
            self.window_counts(f)
                .iter()
                .map(|&c| c as f64 / n as f64)
                .collect()
        })
    }

    /// Population stability index of feature `f`'s window against its reference (None while the
    /// window holds no value of it).
    pub fn psi(&self, f: usize) -> Option<f64> {
        let window = self.window_shares(f)?;
        let reference = &self.features[f].shares;
        Some(
            window
                .iter()
                .zip(reference)
                .map(|(&w, &r)| {
                    let (w, r) = (w.max(SHARE_FLOOR), r.max(SHARE_FLOOR));
                    (w - r) * (w / r).ln()
                })
                .sum(),
        )
    }

    /// Wasserstein-1 distance of feature `f`'s window to its reference, in the feature's unit
    /// (None while the window holds no value of it).
    pub fn w1(&self, f: usize) -> Option<f64> {
        let window = self.window_shares(f)?;
        let p = &self.features[f];
        let (mut below, mut total) = (0.0f64, 0.0);
        for (b, (&w, &r)) in window.iter().zip(&p.shares).enumerate() {
            // CDF gaps at the bin's two edges; the CDFs are linear in between.
            let above = below + w - r;
            let width = p.edges[b + 1] - p.edges[b];
            total += width
                * if below * above >= 0.0 {
                    (below.abs() + above.abs()) / 2.0
                } else {
                    (below * below + above * above) / (2.0 * (below.abs() + above.abs()))
                };
            below = above;
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A uniform reference on [0, 10) in ten unit bins.
    fn uniform(name: &str) -> FeatureProfile {
        let edges = (0..=10).map(f64::from).collect();
        FeatureProfile::new(name, Source::Observation, edges, vec![0.1; 10]).unwrap()
    }

    fn spread(lo: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| lo + 10.0 * (i as f64 + 0.5) / n as f64)
            .collect()
    }

    #[test]
    fn the_reference_itself_does_not_drift_and_a_shift_does() {
        let mut t = DriftTracker::new(vec![uniform("T")], 4).unwrap();
        assert_eq!((t.psi(0), t.w1(0)), (None, None));
        t.observe(&spread(0.0, 1000));
        assert!(t.psi(0).unwrap().abs() < 1e-12 && t.w1(0).unwrap().abs() < 1e-12);
        assert_eq!(t.samples(0), 1000);
        // Shifted by 2: what passes the top edge counts in the top bin.
        let mut s = DriftTracker::new(vec![uniform("T")], 4).unwrap();
        s.observe(&spread(2.0, 1000));
        assert!(s.psi(0).unwrap() > PSI_SIGNIFICANT, "{:?}", s.psi(0));
        let w1 = s.w1(0).unwrap();
        // 2 for the shift, less what folding [10, 12) into [9, 10) hides: 1.7.
        assert!((w1 - 1.7).abs() < 1e-9, "{w1}");
        // A small shift is stable by the PSI's reading.
        let mut m = DriftTracker::new(vec![uniform("T")], 4).unwrap();
        m.observe(&spread(0.05, 1000));
        assert!(m.psi(0).unwrap() < PSI_MODERATE);
    }

    #[test]
    fn the_window_forgets_the_oldest_step() {
        let mut t = DriftTracker::new(vec![uniform("T")], 2).unwrap();
        t.observe(&spread(5.0, 100)); // drifted
        t.observe(&spread(0.0, 100));
        assert!(t.psi(0).unwrap() > PSI_MODERATE);
        t.observe(&spread(0.0, 100)); // the drifted step leaves the window
        assert!(t.psi(0).unwrap().abs() < 1e-12);
        assert_eq!(t.samples(0), 200);
    }

    #[test]
    fn rows_feed_each_feature_its_column_and_nan_is_not_counted() {
        let a =
            FeatureProfile::new("a", Source::Action, vec![-1.0, 0.0, 1.0], vec![1.0, 1.0]).unwrap();
        let mut t = DriftTracker::new(vec![uniform("T"), a], 3).unwrap();
        t.observe(&[0.5, -0.5, 9.5, f64::NAN, 20.0, 0.5]);
        assert_eq!(t.samples(0), 3);
        assert_eq!(t.samples(1), 2);
        assert_eq!(t.window_counts(0)[0], 1);
        assert_eq!(t.window_counts(0)[9], 2); // 9.5, and 20 beyond the top edge
        assert_eq!(t.window_counts(1), &[1, 1]);
        assert_eq!(t.psi(1), Some(0.0));
    }

    #[test]
    fn bins_follow_the_inner_edges() {
        let p = uniform("T");
        assert_eq!(
            [-5.0, 0.0, 0.999, 1.0, 9.0, 10.0, 1e9].map(|v| p.bin(v)),
            [0, 0, 0, 1, 9, 9, 9]
        );
        // Equal edges (a feature constant over part of the reference) make an empty bin.
        let q = FeatureProfile::new("c", Source::Reward, vec![0.0, 1.0, 1.0, 2.0], vec![1.0; 3])
            .unwrap();
        assert_eq!([0.5, 1.0, 1.5].map(|v| q.bin(v)), [0, 2, 2]);
    }

    #[test]
    fn bad_profiles_and_windows_are_refused_naming_the_feature() {
        let err = |e: Vec<f64>, s: Vec<f64>| {
            FeatureProfile::new("Ca", Source::Observation, e, s)
                .unwrap_err()
                .to_string()
        };
        assert!(err(vec![1.0], vec![]).contains("feature \"Ca\": needs at least 2 edges, got 1"));
        assert!(err(vec![0.0, f64::NAN], vec![1.0]).contains("finite and non-decreasing"));
        assert!(err(vec![1.0, 0.0], vec![1.0]).contains("finite and non-decreasing"));
        assert!(err(vec![0.0, 1.0], vec![0.5, 0.5]).contains("2 edges make 1 bins, got 2 shares"));
        assert!(err(vec![0.0, 1.0], vec![0.0]).contains("not all 0"));
        assert!(err(vec![0.0, 1.0], vec![-1.0]).contains("non-negative"));
        let p = FeatureProfile::new("x", Source::Reward, vec![0.0, 1.0, 2.0], vec![2.0, 6.0]);
        assert_eq!(p.unwrap().shares, vec![0.25, 0.75]);
        assert!(DriftTracker::new(vec![uniform("T")], 0).is_err());
        assert!(DriftTracker::new(Vec::new(), 3).is_err());
        assert_eq!(Source::parse("action"), Some(Source::Action));
        assert_eq!(Source::parse("state"), None);
        assert_eq!(Source::Reward.as_str(), "reward");
    }
}
