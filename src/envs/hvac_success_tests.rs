//! HVAC-v0's success criterion: comfort kept for most of the occupied time.

use super::*;
use crate::envs::ProcessModel;

/// A working day (Monday, the default start) under proportional heating of gain `power` [kW/K].
fn day_at(power: f64) -> (Hvac, Vec<f64>) {
    let b = Hvac::new(&mut Vec::new()).expect("default config is valid");
    let (mut s, mut rng) = (vec![0.0; STATE_LEN], Rng::from_seed(0));
    b.reset(&mut s, &mut rng);
    for t in 0..b.spec.horizon {
        // Proportional heating onto 21 degC.
        let p: Vec<f64> = (0..ZONES)
            .map(|i| (power * (21.0 - s[TA + i])).clamp(-P_MAX, P_MAX))
            .collect();
        b.step(&mut s, &p, t, &mut rng);
    }
    (b, s)
}

#[test]
fn success_is_comfort_kept_for_most_of_the_occupied_time() {
    // 10 h occupied (08:00-18:00), comfortable throughout.
    let (b, s) = day_at(0.5);
    assert_eq!((s[OCCUPIED_STEPS], s[COMFORT_STEPS]), (40.0, 40.0));
    assert!(b.succeeded(&s, b.spec.horizon));
    // A stiffer loop onto 21 degC overheats the sunny zone a few afternoon steps (no cooling in
    // winter): 37 of 40 is still most of the occupied time.
    let (b, s) = day_at(2.0);
    assert_eq!((s[OCCUPIED_STEPS], s[COMFORT_STEPS]), (40.0, 37.0));
    assert!(b.succeeded(&s, b.spec.horizon));
    // No heating on a winter day: cold all day.
    let (b, s) = day_at(0.0);
    assert!(s[OCCUPIED_STEPS] > 0.0 && s[COMFORT_STEPS] < s[OCCUPIED_STEPS]);
    assert!(!b.succeeded(&s, b.spec.horizon));
    // The share is a threshold: one uncomfortable step in ten occupied ones still passes.
    let mut s = s;
    (s[OCCUPIED_STEPS], s[COMFORT_STEPS]) = (10.0, 9.0);
    assert!(b.succeeded(&s, 96));
    s[COMFORT_STEPS] = 8.0;
    assert!(!b.succeeded(&s, 96));
}
