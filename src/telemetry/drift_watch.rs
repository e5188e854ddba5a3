//! A fleet's drift watch: after each batch step, a sample of the batch's envs gives one row per env
//! (its observation, the action it was sent, its reward) to a [`DriftTracker`], and every
//! feature's PSI and Wasserstein-1 distance go to `feature_drift{env,source,feature}` and
//! `feature_drift_wasserstein{env,source,feature}`.
//!
//! The reference is a profile given up front, or the watch's own first `warmup` batch steps (their
//! rows kept, then cut into quantile bins by [`quantile_profile`], the same cut
//! `datasets.profile` makes). Memory is fixed per feature: the window's `window x bins` counters,
//! plus the sampled rows of the warmup while it lasts.
//!
//! A fleet refreshes the gauges every [`EXPORT_EVERY`] batch steps (rows given directly, every
//! time). Sampling: a batch step gives at most `sample` rows, from envs spaced evenly across the batch,
//! the starting env moving by one each step so every env is visited; envs that were reset instead
//! of stepped (next-step autoreset) give no row.

use super::builtins::Builtins;
use super::drift::{DriftTracker, FeatureProfile, Source};
use super::dynamic::AnyChild;
use super::types::GaugeF;
use crate::errors::CoreError;

/// Rows a batch step gives by default.
pub const DEFAULT_SAMPLE: usize = 64;

/// A fleet's gauges are refreshed every this many batch steps.
pub const EXPORT_EVERY: usize = 8;

/// Most batch steps a warmup may take (its rows are kept until it ends).
pub const MAX_WARMUP: usize = 100_000;

/// The reference profile of one feature's values: `bins` bins between the values' minimum and
/// maximum with quantile inner edges (linear interpolation between order statistics, NumPy's
/// default), and the values' share in each.
///
/// Errors:
///     [`CoreError::Config`] naming the feature: no value, a NaN or infinite value, `bins` outside
///     2..=1000.
pub fn quantile_profile(
    name: &str,
    source: Source,
    values: &mut [f64],
    bins: usize,
) -> Result<FeatureProfile, CoreError> {
    let bad = |why: &str| CoreError::config("profile", format!("feature {name:?}: {why}"));
    if !(2..=1000).contains(&bins) {
        return Err(CoreError::config(
            "bins",
            format!("must be an integer from 2 to 1000, got {bins}"),
        ));
    }
    if values.is_empty() {
        return Err(bad("has no value"));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(bad("holds NaN or inf"));
    }
    values.sort_unstable_by(f64::total_cmp);
    let last = values.len() - 1;
    let mut edges: Vec<f64> = (0..=bins)
        .map(|i| {
            let h = last as f64 * (i as f64 / bins as f64);
            let lo = (h.floor() as usize).min(last);
            let hi = (lo + 1).min(last);
            values[lo] + (h - lo as f64) * (values[hi] - values[lo])
        })
        .collect();
    for i in 1..edges.len() {
        edges[i] = edges[i].max(edges[i - 1]);
    }
    let inner = &edges[1..bins];
    let mut counts = vec![0u64; bins];
    for v in values.iter() {
        counts[inner.partition_point(|e| *e <= *v)] += 1;
    }
    let n = values.len() as f64;
    let shares = counts.iter().map(|&c| c as f64 / n).collect();
    FeatureProfile::new(name, source, edges, shares)
}

/// The reference being built from the first batch steps.
#[derive(Debug)]
struct Warmup {
    steps_left: usize,
    bins: usize,
    rows: Vec<f64>,
}

/// What the watch compares against.
#[derive(Debug)]
pub enum Reference {
    /// A profile: one per feature, in row order.
    Profile(Vec<FeatureProfile>),
    /// The first `steps` batch steps observed, cut into `bins` quantile bins.
    Warmup {
        /// Batch steps to build it from.
        steps: usize,
        /// Bins per feature.
        bins: usize,
    },
}

/// One fleet's drift watch (see the module docs).
#[derive(Debug)]
pub struct DriftWatch {
    features: Vec<(Source, String)>,
    window: usize,
    tracker: Option<DriftTracker>,
    warmup: Option<Warmup>,
    psi: Vec<GaugeF>,
    w1: Vec<GaugeF>,
    sample: usize,
    cursor: usize,
    rows: Vec<f64>,
}

fn gauge(f: &super::dynamic::MetricFamily, labels: &[&str]) -> GaugeF {
    match f.child(labels) {
        Ok((AnyChild::Gauge(g), _)) => g,
        _ => GaugeF::default(),
    }
}

impl DriftWatch {
    /// Watches `features` (source and name, in row order) of env `env_id` against `reference`
    /// over the last `window` batch steps, sampling at most `sample` rows per batch step (0: all),
    /// exporting into `gauges` if given.
    ///
    /// Errors:
    ///     [`CoreError::Config`]: a window or warmup of 0 or a warmup over [`MAX_WARMUP`], a
    ///     profile whose features are not `features` (another env, another shape), bins outside
    ///     2..=1000.
    pub fn new(
        features: Vec<(Source, String)>,
        reference: Reference,
        window: usize,
        sample: usize,
        gauges: Option<(&Builtins, &str)>,
    ) -> Result<Self, CoreError> {
        if window == 0 {
            return Err(CoreError::config("window", "must be at least 1 batch step"));
        }
        let (tracker, warmup) = match reference {
            Reference::Profile(p) => {
                let got: Vec<(Source, &str)> =
                    p.iter().map(|f| (f.source, f.name.as_str())).collect();
                let want: Vec<(Source, &str)> =
                    features.iter().map(|(s, n)| (*s, n.as_str())).collect();
                if got != want {
                    return Err(CoreError::config(
                        "profile",
                        format!("describes the features {got:?}, this env has {want:?}"),
                    ));
                }
                (Some(DriftTracker::new(p, window)?), None)
            }
            Reference::Warmup { steps, bins } => {
                if steps == 0 || steps > MAX_WARMUP {
                    return Err(CoreError::config(
                        "warmup",
                        format!("must be from 1 to {MAX_WARMUP} batch steps, got {steps}"),
                    ));
                }
                if !(2..=1000).contains(&bins) {
                    return Err(CoreError::config(
                        "bins",
                        format!("must be an integer from 2 to 1000, got {bins}"),
                    ));
                }
                let w = Warmup {
                    steps_left: steps,
                    bins,
                    rows: Vec::new(),
                };
                (None, Some(w))
            }
        };
        let (psi, w1) = match gauges {
            Some((b, env)) => features
                .iter()
                .map(|(s, n)| {
                    let labels = [env, s.as_str(), n.as_str()];
                    (
                        gauge(&b.feature_drift, &labels),
                        gauge(&b.feature_drift_wasserstein, &labels),
                    )
                })
                .unzip(),
            None => (Vec::new(), Vec::new()),
        };
        Ok(Self {
            features,
            window,
            tracker,
            warmup,
            psi,
            w1,
            sample,
            cursor: 0,
            rows: Vec::new(),
        })
    }

    /// The features, in row order.
    pub fn features(&self) -> &[(Source, String)] {
        &self.features
    }

    /// The reference in use (None while warming up).
    pub fn profile(&self) -> Option<&[FeatureProfile]> {
        self.tracker.as_ref().map(|t| t.features())
    }

    /// Batch steps left in the warmup (0 once the reference is set).
    pub fn warmup_left(&self) -> usize {
        self.warmup.as_ref().map_or(0, |w| w.steps_left)
    }

    /// Adds a batch step of whole rows (one value per feature, row-major) and updates the gauges.
    pub fn observe_rows(&mut self, rows: &[f64]) -> Result<(), CoreError> {
        self.observe_step(rows, true)
    }

    fn observe_step(&mut self, rows: &[f64], export: bool) -> Result<(), CoreError> {
        if let Some(w) = &mut self.warmup {
            w.rows.extend_from_slice(rows);
            w.steps_left -= 1;
            if w.steps_left == 0 {
                self.finish_warmup()?;
            }
            return Ok(());
        }
        if let Some(t) = &mut self.tracker {
            t.observe(rows);
        }
        if export {
            self.export();
        }
        Ok(())
    }

    /// Adds a batch step of `n` envs: observations (`n x od`), the actions sent (`n x ad`), the
    /// rewards, and which envs were stepped; samples rows as the module docs say.
    pub fn observe_batch(
        &mut self,
        obs: &[f32],
        actions: &[f64],
        rewards: &[f64],
        stepped: &[bool],
    ) -> Result<(), CoreError> {
        let n = rewards.len();
        if n == 0 {
            return Ok(());
        }
        let (od, ad) = (obs.len() / n, actions.len() / n);
        let m = if self.sample == 0 {
            n
        } else {
            self.sample.min(n)
        };
        let stride = n / m;
        // The starts that keep the last sampled env inside the batch: over `span` steps every
        // env is sampled.
        let span = n - (m - 1) * stride;
        let start = self.cursor % span;
        self.cursor = self.cursor.wrapping_add(1);
        let mut rows = std::mem::take(&mut self.rows);
        rows.clear();
        for t in 0..m {
            let i = start + t * stride;
            if !stepped[i] {
                continue;
            }
            rows.extend(obs[i * od..(i + 1) * od].iter().map(|&v| f64::from(v)));
            rows.extend_from_slice(&actions[i * ad..(i + 1) * ad]);
            rows.push(rewards[i]);
        }
        // The gauges every EXPORT_EVERY batch steps: a fleet steps far more often than it is
        // scraped, and the window moves little in a few steps.
        let res = self.observe_step(&rows, self.cursor % EXPORT_EVERY == 0);
        self.rows = rows;
        res
    }

    fn finish_warmup(&mut self) -> Result<(), CoreError> {
        let Some(w) = self.warmup.take() else {
            return Ok(());
        };
        let k = self.features.len();
        let mut col = Vec::with_capacity(w.rows.len() / k.max(1));
        let mut profiles = Vec::with_capacity(k);
        for (j, (source, name)) in self.features.iter().enumerate() {
            col.clear();
            col.extend(w.rows.iter().skip(j).step_by(k).filter(|v| !v.is_nan()));
            profiles.push(quantile_profile(name, *source, &mut col, w.bins)?);
        }
        self.tracker = Some(DriftTracker::new(profiles, self.window)?);
        Ok(())
    }

    fn export(&self) {
        let Some(t) = &self.tracker else { return };
        for (f, (psi, w1)) in self.psi.iter().zip(&self.w1).enumerate() {
            if let (Some(p), Some(w)) = (t.psi(f), t.w1(f)) {
                psi.set(p);
                w1.set(w);
            }
        }
    }

    /// Per feature: PSI, Wasserstein-1 (None while warming up or with an empty window) and the
    /// values in the window.
    pub fn report(&self) -> Vec<(Option<f64>, Option<f64>, u64)> {
        (0..self.features.len())
            .map(|f| match &self.tracker {
                Some(t) => (t.psi(f), t.w1(f), t.samples(f)),
                None => (None, None, 0),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Registry;

    fn features(k: usize) -> Vec<(Source, String)> {
        (0..k)
            .map(|j| (Source::Observation, format!("x{j}")))
            .collect()
    }

    #[test]
    fn quantile_bins_cut_at_interpolated_order_statistics() {
        let mut v: Vec<f64> = (0..=100).rev().map(f64::from).collect();
        let p = quantile_profile("x", Source::Observation, &mut v, 4).unwrap();
        assert_eq!(p.edges(), &[0.0, 25.0, 50.0, 75.0, 100.0]);
        // A value on an inner edge counts in the bin above it.
        let want = [25.0 / 101.0, 25.0 / 101.0, 25.0 / 101.0, 26.0 / 101.0];
        for (s, w) in p.shares().iter().zip(want) {
            assert!((s - w).abs() < 1e-12, "{:?}", p.shares());
        }
        let mut v = vec![0.0, 1.0];
        let p = quantile_profile("x", Source::Observation, &mut v, 4).unwrap();
        assert_eq!(p.edges(), &[0.0, 0.25, 0.5, 0.75, 1.0]);
        let err = |v: &mut [f64], bins| {
            quantile_profile("x", Source::Action, v, bins)
                .unwrap_err()
                .to_string()
        };
        assert!(err(&mut [], 4).contains("\"x\": has no value"));
        assert!(err(&mut [1.0, f64::NAN], 4).contains("holds NaN or inf"));
        assert!(err(&mut [1.0], 1).contains("bins: must be an integer from 2 to 1000, got 1"));
        assert!(err(&mut [1.0], 1001).contains("got 1001"));
    }

    #[test]
    fn a_sample_visits_every_env_and_skips_envs_not_stepped() {
        let reference = Reference::Warmup {
            steps: 1000,
            bins: 4,
        };
        let mut w = DriftWatch::new(features(1), reference, 10, 3, None).unwrap();
        let n = 10;
        let obs: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut seen = vec![0u32; n];
        for _ in 0..4 {
            w.observe_batch(&obs, &[], &vec![0.0; n], &vec![true; n])
                .unwrap();
            let rows = &w.rows;
            assert_eq!(rows.len(), 3 * 2, "3 rows of (observation, reward)");
            for r in rows.chunks(2) {
                seen[r[0] as usize] += 1;
            }
        }
        assert!(seen.iter().all(|&c| c >= 1), "{seen:?}");
        let mut stepped = vec![true; n];
        stepped.iter_mut().for_each(|s| *s = false);
        w.observe_batch(&obs, &[], &vec![0.0; n], &stepped).unwrap();
        assert!(w.rows.is_empty());
        let mut all = DriftWatch::new(
            features(1),
            Reference::Warmup { steps: 9, bins: 2 },
            1,
            0,
            None,
        )
        .unwrap();
        all.observe_batch(&obs, &[], &vec![0.0; n], &vec![true; n])
            .unwrap();
        assert_eq!(all.rows.len(), 2 * n, "sample 0 takes every env");
    }

    #[test]
    fn a_warmup_becomes_the_reference_and_the_same_data_does_not_drift() {
        let reg = Registry::new(100);
        let reference = Reference::Warmup { steps: 2, bins: 5 };
        let gauges = Some((reg.builtins(), "E"));
        let mut w = DriftWatch::new(features(2), reference, 4, 0, gauges).unwrap();
        let rows: Vec<f64> = (0..200).map(|i| f64::from(i % 37)).collect();
        w.observe_rows(&rows).unwrap();
        assert_eq!((w.warmup_left(), w.profile().is_none()), (1, true));
        assert_eq!(w.report(), vec![(None, None, 0), (None, None, 0)]);
        w.observe_rows(&rows).unwrap();
        assert_eq!(w.warmup_left(), 0);
        assert_eq!(w.profile().unwrap()[1].name, "x1");
        w.observe_rows(&rows).unwrap();
        let (psi, w1, samples) = w.report()[0];
        assert!(psi.unwrap() < 1e-9 && w1.unwrap() < 1e-9 && samples == 100);
        let shifted: Vec<f64> = rows.iter().map(|v| v + 100.0).collect();
        for _ in 0..4 {
            w.observe_rows(&shifted).unwrap();
        }
        assert!(w.report()[0].0.unwrap() > 0.25);
        let text = reg
            .encode(crate::telemetry::Format::Text, crate::telemetry::Scope::All)
            .unwrap();
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("feature_drift{env=\"E\",source=\"observation\",feature=\"x0\"}")
            })
            .unwrap();
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert_eq!(Some(v), w.report()[0].0);
    }

    #[test]
    fn bad_windows_warmups_and_profiles_are_refused() {
        let err = |r: Reference, window: usize| {
            DriftWatch::new(features(1), r, window, 0, None)
                .unwrap_err()
                .to_string()
        };
        let warm = |steps| Reference::Warmup { steps, bins: 10 };
        assert!(err(warm(1), 0).contains("window: must be at least 1"));
        assert!(err(warm(0), 1).contains("warmup: must be from 1 to 100000"));
        assert!(err(warm(MAX_WARMUP + 1), 1).contains("got 100001"));
        let bins = Reference::Warmup { steps: 1, bins: 1 };
        assert!(err(bins, 1).contains("bins: must be an integer from 2"));
        let other = FeatureProfile::new("y", Source::Observation, vec![0.0, 1.0], vec![1.0]);
        let msg = err(Reference::Profile(vec![other.unwrap()]), 1);
        assert!(msg.contains("profile: describes the features"), "{msg}");
        let wrong_source = FeatureProfile::new("x0", Source::Action, vec![0.0, 1.0], vec![1.0]);
        assert!(err(Reference::Profile(vec![wrong_source.unwrap()]), 1).contains("describes"));
    }
}
