//! The batch: determinism over threads and lanes, autoreset modes, snapshots, bad actions.

use super::slices::{Slices, INLINE_COLUMNS};
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
        trace.extend(out.rows().iter().map(|r| r.reward));
    }
    trace
}

/// Batch-step throughput by thread count and actions, the set-ups timed in turns (best of 9)
/// (`cargo test --release --lib batch_timing -- --ignored --nocapture`).
#[test]
#[ignore = "timing, not a check"]
fn batch_timing() {
    let n = 1024;
    let mut setups = Vec::new();
    for id in ["ChemicalReactor-v0", "IndustrialBenchmark-v0"] {
        for zero in [true, false] {
            for threads in [1, 2] {
                let model = envs::make(id, Vec::new()).expect("model");
                let ad = model.spec().act_dim();
                let mut b =
                    VecCore::new(model, n, Autoreset::NextStep, Some(threads)).expect("batch");
                b.reset(None, None).expect("reset");
                let mut rng = Rng::from_seed(3);
                let acts: Vec<Vec<f64>> = (0..16)
                    .map(|_| {
                        (0..n * ad)
                            .map(|_| if zero { 0.0 } else { rng.uniform_in(-1.0, 1.0) })
                            .collect()
                    })
                    .collect();
                let actions = if zero { "zero" } else { "random" };
                let label = format!("{id} {actions} actions, {threads} thread(s)");
                setups.push((label, b, acts, 0.0f64));
            }
        }
    }
    for _ in 0..9 {
        for (_, b, acts, best) in &mut setups {
            let t = std::time::Instant::now();
            for s in 0..100 {
                b.step(&acts[s % 16]).expect("step");
            }
            *best = best.max((100 * n) as f64 / t.elapsed().as_secs_f64());
        }
    }
    for (label, _, _, best) in &setups {
        println!("{label}: {:.0} k env-steps/s", best / 1e3);
    }
}

/// Nanoseconds per step of a batch of one, as a single env steps it (random actions, reset
/// when an episode ends): the batch machinery's cost around the model's own
/// (`cargo test --release --lib single_timing -- --ignored --nocapture`).
#[test]
#[ignore = "timing, not a check"]
fn single_timing() {
    for id in ["ChemicalReactor-v0", "IndustrialBenchmark-v0"] {
        let model = envs::make(id, Vec::new()).expect("model");
        let ad = model.spec().act_dim();
        let mut b = VecCore::new(model, 1, Autoreset::Disabled, None).expect("batch");
        let mut rng = Rng::from_seed(3);
        let acts: Vec<f64> = (0..4096 * ad).map(|_| rng.uniform_in(-1.0, 1.0)).collect();
        let mut best = f64::INFINITY;
        for _ in 0..9 {
            b.reset(Some(&[Some(0)]), None).expect("reset");
            let t = std::time::Instant::now();
            for a in acts.chunks_exact(ad) {
                let out = b.step_one(a).expect("step");
                if out.row.terminated || out.row.truncated {
                    b.reset(None, None).expect("reset");
                }
            }
            best = best.min(t.elapsed().as_secs_f64() / 4096.0 * 1e9);
        }
        println!("{id}: {best:.0} ns per single step");
    }
}

#[test]
fn frame_maps_and_clips_actions_as_the_spec_does() {
    let mut rng = Rng::from_seed(9);
    for id in envs::IDS {
        let model = envs::make(id, Vec::new()).expect("model");
        let spec = model.spec();
        let frame = Frame::of(spec);
        let ad = spec.act_dim();
        for _ in 0..200 {
            let a: Vec<f64> = (0..ad).map(|_| rng.uniform_in(-1.3, 1.3)).collect();
            let clamped: Vec<f64> = a.iter().map(|x| x.clamp(-1.0, 1.0)).collect();
            let (mut want, mut got) = (vec![0.0; ad], vec![0.0; ad]);
            spec.to_physical(&clamped, &mut want);
            let clipped = frame.to_physical(&a, &mut got);
            assert_eq!(got, want, "{id}");
            let n_out = a.iter().filter(|x| x.abs() > 1.0).count() as u32;
            assert_eq!(clipped, n_out, "{id}");
        }
        let mut obs: Vec<f32> = spec
            .observations
            .iter()
            .map(|v| v.high as f32 + 1.0)
            .collect();
        frame.clamp_obs(&mut obs);
        let high: Vec<f32> = spec.observations.iter().map(|v| v.high as f32).collect();
        assert_eq!(obs, high, "{id}");
    }
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
            assert_eq!(o.row(0), out.row(i));
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
        assert_eq!(out.row(0).truncated, t == horizon - 1);
    }
    let out = b.step(&[0.0, 0.0]).expect("step");
    assert!(!out.row(0).stepped && out.row(0).reward == 0.0);
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
    assert!(out.row(0).truncated && out.row(0).reset_in_step);
    assert_eq!(&out.obs[..2], &[0.8f32, 330.0]);
    assert_ne!(out.final_obs[1], 330.0);
}

#[test]
fn step_one_is_a_batch_of_ones_step_in_every_mode() {
    for mode in [
        Autoreset::NextStep,
        Autoreset::SameStep,
        Autoreset::Disabled,
    ] {
        let (mut a, mut b) = (batch(1, mode, None), batch(2, mode, None));
        a.reset(Some(&[Some(9)]), None).expect("reset");
        b.reset(Some(&[Some(9), Some(10)]), None).expect("reset");
        for t in 0..200 {
            let act = actions(2, t);
            let one = match a.step_one(&act[..1]) {
                Ok(one) => one,
                Err(CoreError::ResetNeeded(_)) => {
                    a.reset(None, Some(&[true])).expect("reset");
                    b.reset(None, Some(&[true, true])).expect("reset");
                    continue;
                }
                Err(e) => panic!("{e}"),
            };
            let out = b.step(&act).expect("step");
            let k = b.checker().len();
            assert_eq!(one.row, out.row(0), "{mode:?} step {t}");
            assert_eq!(one.obs, out.obs[..3]);
            let env0 = |v: &[bool]| (0..k).map(|c| v[c * 2]).collect::<Vec<_>>();
            assert_eq!(one.readings.active, env0(&out.readings.active));
        }
    }
    let err = batch(2, Autoreset::NextStep, None)
        .step_one(&[0.0])
        .unwrap_err();
    assert!(matches!(err, CoreError::Config { .. }), "{err:?}");
}

#[test]
fn reading_columns_split_into_lanes_in_place_or_on_the_heap() {
    // Two constraints are held in place, six on the heap: both hand every lane its part of
    // each column, in order.
    for k in [2, 6] {
        let n = 5;
        let mut r = Readings::zeros(n * k);
        let mut cols = ReadingColumns::of(&mut r, n, k);
        assert_eq!(matches!(cols.values, Slices::Heap(_)), k > INLINE_COLUMNS);
        for (lane, len) in [2, 3].into_iter().enumerate() {
            let mut part = cols.take(len);
            for (c, col) in part.values.as_mut().iter_mut().enumerate() {
                assert_eq!(col.len(), len);
                col.fill((10 * c + lane) as f64);
            }
        }
        let expected: Vec<f64> = (0..k)
            .flat_map(|c| [0, 0, 1, 1, 1].map(|lane| (10 * c + lane) as f64))
            .collect();
        assert_eq!(r.values, expected, "k = {k}");
    }
}

#[test]
fn every_env_must_be_reset_before_the_batch_steps() {
    let needs = |r: Result<StepOut, CoreError>, env: &str| match r {
        Err(CoreError::ResetNeeded(m)) => assert!(m.contains(env), "{m}"),
        other => panic!("expected a reset-needed error naming {env}, got {other:?}"),
    };
    let mut b = batch(3, Autoreset::NextStep, None);
    needs(b.step(&[0.0; 3]), "env 0");
    b.reset(None, Some(&[true, false, true])).expect("reset");
    needs(b.step(&[0.0; 3]), "env 1");
    b.reset(None, Some(&[false, true, false])).expect("reset");
    let mut snap = b.snapshot();
    b.step(&[0.0; 3]).expect("every env reset");
    b.step(&[0.0; 3]).expect("and again");
    // A restored state in which env 2 never started is checked afresh.
    snap.started[2] = false;
    b.restore(&snap).expect("restore");
    needs(b.step(&[0.0; 3]), "env 2");
    b.reset(None, Some(&[false, false, true])).expect("reset");
    b.step(&[0.0; 3]).expect("every env reset");
}

#[test]
fn runaway_is_an_emergency_shutdown() {
    let mut b = batch(1, Autoreset::Disabled, None);
    b.reset(None, None).expect("reset");
    let mut ended = None;
    for t in 0..60 {
        let out = b.step(&[1.0]).expect("step");
        if out.row(0).terminated {
            ended = Some((t, out.row(0).shutdown));
            break;
        }
    }
    let (t, reason) = ended.expect("full heating must run the reactor away");
    let c = usize::from(reason.expect("a reason"));
    assert_eq!(b.checker().set.constraints[c].name, "thermal_runaway");
    let err = b.step(&[0.0]).unwrap_err();
    assert!(matches!(err, CoreError::ResetNeeded(_)));
    b.reset(None, Some(&[true])).expect("reset");
    assert!(b.step(&[0.0]).is_ok());
    // The running counts: every step taken, one shutdown, its incident closed by the reset.
    let totals = b.totals();
    let totals = totals.lock().expect("totals");
    assert_eq!(totals.steps, t as u64 + 2);
    assert_eq!(totals.shutdowns[c], 1);
    assert!(totals.opened[c] >= 1 && totals.events >= 3);
    let closing = totals
        .closed
        .iter()
        .filter(|e| e.constraint == Some(c as u16));
    assert_eq!(closing.count() as u64, totals.opened[c]);
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
        out.rows().iter().map(|r| r.clipped).collect::<Vec<_>>(),
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
    assert_eq!(a.rows(), r.rows());
    assert!(batch(3, Autoreset::NextStep, None).restore(&snap).is_err());
}

#[test]
fn a_batch_beyond_max_envs_is_a_config_error() {
    let model = envs::make("ChemicalReactor-v0", Vec::new()).expect("model");
    let err = VecCore::new(model, MAX_ENVS + 1, Autoreset::NextStep, None)
        .err()
        .expect("refused");
    assert_eq!(
        err,
        CoreError::config(
            "num_envs",
            format!("must be at most {MAX_ENVS}, got {}", MAX_ENVS + 1)
        )
    );
}

/// A snapshot with its real alarm fields as bits (a response time not yet known is NaN) and
/// without incident ids (a restored open incident takes a fresh one).
fn bitwise(s: &Snapshot) -> (Snapshot, Vec<u64>) {
    let bits = s.alarm_reals.iter().map(|v| v.to_bits()).collect();
    let mut s = s.clone();
    s.alarm_reals.clear();
    for words in s.alarm_ints.chunks_exact_mut(AlarmState::INT_WORDS) {
        words[2] = 0;
    }
    (s, bits)
}

#[test]
fn snapshot_keeps_alarms_and_returns_and_refuses_bad_words() {
    let mut b = batch(4, Autoreset::NextStep, None);
    b.reset(Some(&[Some(1), Some(2), Some(3), Some(4)]), None)
        .expect("reset");
    // Warm coolant: the 331 K warning opens in some envs within a few steps.
    let mut t = 0;
    while !b.alarms.iter().any(|a| a.active) {
        b.step(&[0.4; 4]).expect("step");
        t += 1;
        assert!(t < 60, "no alarm opened");
    }
    let snap = b.snapshot();
    let mut c = batch(4, Autoreset::NextStep, None);
    c.restore(&snap).expect("restore");
    assert_eq!(bitwise(&c.snapshot()), bitwise(&snap));
    assert!(c.slots.iter().any(|s| s.ret != 0.0));
    // Open incidents go on under fresh ids, counted as opened in the copy.
    let ids = |b: &VecCore| -> Vec<u64> {
        b.alarms
            .iter()
            .filter(|a| a.active)
            .map(|a| a.incident)
            .collect()
    };
    let (old_ids, new_ids) = (ids(&b), ids(&c));
    assert!(new_ids.iter().all(|id| *id != 0 && !old_ids.contains(id)));
    let opened: u64 = c.lock_totals().opened.iter().sum();
    assert_eq!(opened, new_ids.len() as u64);
    for s in 0..5 {
        let (x, y) = (b.step(&actions(4, s)), c.step(&actions(4, s)));
        let (x, y) = (x.expect("step"), y.expect("step"));
        assert_eq!((&x.obs, x.rows()), (&y.obs, y.rows()));
    }
    let k = b.checker.len();
    for (word, bad, what) in [(0, 2, "active flag 2"), (4, 7, "response code 7")] {
        let mut tampered = snap.clone();
        tampered.alarm_ints[(2 * k + 1) * AlarmState::INT_WORDS + word] = bad;
        let before = c.snapshot();
        let err = c.restore(&tampered).expect_err("tampered").to_string();
        assert!(err.contains("env 2") && err.contains(what), "{err}");
        let after = bitwise(&c.snapshot());
        assert_eq!(
            after,
            bitwise(&before),
            "a refused restore changed the batch"
        );
    }
    let mut short = snap.clone();
    short.returns.pop();
    assert!(c.restore(&short).is_err());
    // Words that fit their ranges but not each other or the env's step count.
    let open = snap
        .alarm_ints
        .chunks_exact(AlarmState::INT_WORDS)
        .position(|w| w[0] == 1)
        .expect("an open alarm");
    let (env, at) = (open / k, open * AlarmState::INT_WORDS);
    for (word, bad, what) in [
        (3, 1000, "start step 1000 is after"),
        (1, 7, "beyond-limit count 7 exceeds"),
    ] {
        let mut tampered = snap.clone();
        tampered.alarm_ints[at + word] = bad;
        let err = c.restore(&tampered).expect_err("tampered").to_string();
        assert!(
            err.contains(&format!("env {env}")) && err.contains(what),
            "{err}"
        );
    }
    let mut late = snap.clone();
    late.elapsed[1] = 61;
    let err = c
        .restore(&late)
        .expect_err("beyond the horizon")
        .to_string();
    assert!(
        err.contains("step count 61 of env 1 is beyond the horizon 60"),
        "{err}"
    );
    let mut many = snap.clone();
    many.episodes[3] = u64::MAX;
    assert!(c.restore(&many).is_err());
}
