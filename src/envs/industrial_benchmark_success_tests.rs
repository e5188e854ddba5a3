//! IndustrialBenchmark-v0's success criterion: a low mean cost over the last steps.

use super::*;
use crate::envs::ProcessModel;

/// An episode of the default benchmark under `policy` (state to action); the mean cost of its
/// window.
fn episode_under(policy: impl Fn(&[f64]) -> [f64; 3]) -> (IndustrialBenchmark, Vec<f64>, f64) {
    let ib = IndustrialBenchmark::new(&mut Vec::new()).expect("default config is valid");
    let (mut s, mut rng) = (vec![0.0; STATE_LEN], Rng::from_seed(5));
    ib.reset(&mut s, &mut rng);
    assert_eq!(
        s[WINDOW_COST], 0.0,
        "the reset's own step is not in the window"
    );
    let (mut sum, h) = (0.0, ib.spec.horizon);
    for t in 0..h {
        let action = policy(&s);
        ib.step(&mut s, &action, t, &mut rng);
        if t >= h - SUCCESS_WINDOW {
            sum += s[COST];
        }
    }
    (ib, s, sum / f64::from(SUCCESS_WINDOW))
}

#[test]
fn success_is_a_low_mean_cost_over_the_last_steps() {
    // The regulator baseline's operating point (v, g, h) = (40, 45, 60): cheap.
    let per_unit = [1.0, 10.0, 100.0 * (15.0_f64).to_radians().sin() / 0.9 / 5.0];
    let (ib, s, mean) = episode_under(|s| {
        let target = [40.0, 45.0, 60.0];
        std::array::from_fn(|i| ((target[i] - s[V + i]) / per_unit[i]).clamp(-1.0, 1.0))
    });
    assert!(mean <= SUCCESS_MEAN_COST, "{mean}");
    assert!(ib.succeeded(&s, ib.spec.horizon));
    assert_eq!(s[WINDOW_COST], mean * f64::from(SUCCESS_WINDOW));
    // Velocity and gain driven up: expensive.
    let (ib, s, mean) = episode_under(|_| [1.0, 1.0, 0.0]);
    assert!(mean > SUCCESS_MEAN_COST, "{mean}");
    assert!(!ib.succeeded(&s, ib.spec.horizon));
}
