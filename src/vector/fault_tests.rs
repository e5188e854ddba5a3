//! A batch with injected faults: env i of a batch is the single env of its seed whatever the
//! threads, sensor faults leave the process and its safety readings alone, drift steps the
//! integration lanes, and the tracking counts and reports starts.

use super::*;
use crate::envs;
use crate::faults::config::build;
use crate::safety::config::Value;

fn faults(spec: &crate::spec::EnvSpec, items: &[&[(&str, Value)]]) -> FaultSet {
    let list = items
        .iter()
        .map(|f| Value::Map(f.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()))
        .collect();
    build(&Value::List(list), spec).expect("valid faults")
}

fn s(x: &str) -> Value {
    Value::Str(x.into())
}

fn n(x: f64) -> Value {
    Value::Num(x)
}

fn mixed(spec: &crate::spec::EnvSpec) -> FaultSet {
    faults(
        spec,
        &[
            &[
                ("kind", s("sensor_noise")),
                ("variable", s("T")),
                ("std", n(0.5)),
            ],
            &[
                ("kind", s("sensor_dropout")),
                ("variable", s("Ca")),
                ("p", n(0.2)),
            ],
            &[
                ("kind", s("parameter_drift")),
                ("parameter", s("UA")),
                ("factor", n(0.9)),
                ("start", n(5.0)),
                ("ramp", n(10.0)),
            ],
            &[
                ("kind", s("actuator_stuck")),
                ("action", s("Tc")),
                ("start", n(20.0)),
            ],
        ],
    )
}

/// Observations, rewards and readings of `n` envs seeded from `first`, with `fs` applied.
fn run(
    n: usize,
    first: u64,
    threads: Option<usize>,
    fs: Option<fn(&crate::spec::EnvSpec) -> FaultSet>,
) -> Vec<Vec<u64>> {
    let model = envs::make("ChemicalReactor-v0", Vec::new()).expect("model");
    let spec = model.spec().clone();
    let mut b = VecCore::new(model, n, Autoreset::NextStep, threads).expect("batch");
    if let Some(f) = fs {
        b.set_faults(f(&spec)).expect("faults");
    }
    let seeds: Vec<Option<u64>> = (0..n).map(|i| Some(first + i as u64)).collect();
    b.reset(Some(&seeds), None).expect("reset");
    let mut per_env = vec![Vec::new(); n];
    for t in 0..70 {
        // Env i acts by its seed, so a batch and single envs of the same seeds act alike.
        let acts: Vec<f64> = (0..n)
            .map(|i| -0.6 + 0.1 * ((t as u64 + first + i as u64) % 5) as f64)
            .collect();
        let out = b.step(&acts).expect("step");
        let rows = out.rows();
        for (i, trace) in per_env.iter_mut().enumerate() {
            trace.extend(
                out.obs[i * 3..i * 3 + 3]
                    .iter()
                    .map(|o| u64::from(o.to_bits())),
            );
            trace.push(rows[i].reward.to_bits());
            trace.push(out.readings.values[i].to_bits()); // temperature_high: the true T
        }
    }
    per_env
}

#[test]
fn env_i_of_a_faulted_batch_is_the_single_env_of_its_seed_whatever_the_threads() {
    let batch = run(40, 100, Some(3), Some(mixed));
    assert_eq!(run(40, 100, Some(1), Some(mixed)), batch);
    for i in [0, 17, 39] {
        assert_eq!(run(1, 100 + i as u64, None, Some(mixed))[0], batch[i]);
    }
    assert_ne!(run(40, 100, Some(3), None), batch);
}

#[test]
fn sensor_faults_leave_the_process_and_its_safety_readings_alone() {
    fn sensors(spec: &crate::spec::EnvSpec) -> FaultSet {
        faults(
            spec,
            &[
                &[
                    ("kind", s("sensor_bias")),
                    ("variable", s("T")),
                    ("value", n(40.0)),
                ],
                &[
                    ("kind", s("sensor_freeze")),
                    ("variable", s("Ca")),
                    ("start", n(3.0)),
                ],
            ],
        )
    }
    let (plain, faulted) = (run(8, 5, None, None), run(8, 5, None, Some(sensors)));
    for (p, f) in plain.iter().zip(&faulted) {
        // Per step: obs Ca, T, set-point, reward, true T.
        for (ps, fs) in p.chunks(5).zip(f.chunks(5)) {
            assert_eq!(ps[3..], fs[3..], "reward and safety reading");
            assert_ne!(ps[1], fs[1], "the biased T");
        }
    }
}

#[test]
fn tracking_counts_active_envs_and_sends_starts_to_the_audit_trail() {
    let dir = std::env::temp_dir().join(format!("neorl-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("audit.jsonl");
    let trail = Arc::new(AuditTrail::open(&path, 16).expect("trail"));
    let model = envs::make("ChemicalReactor-v0", Vec::new()).expect("model");
    let spec = model.spec().clone();
    let mut b = VecCore::new(model, 3, Autoreset::Disabled, None).expect("batch");
    let window = [
        ("kind", s("sensor_bias")),
        ("variable", s("T")),
        ("value", n(1.0)),
        ("start", n(2.0)),
        ("end", n(4.0)),
    ];
    b.set_faults(faults(&spec, &[&window])).expect("faults");
    b.set_audit(Some(trail.clone()));
    assert_eq!(b.faults_active(), [0]);
    b.reset(None, None).expect("reset");
    let mut seen = Vec::new();
    for _ in 0..5 {
        b.step(&[-0.5; 3]).expect("step");
        seen.push(b.faults_active()[0]);
    }
    assert_eq!(seen, [0, 3, 3, 0, 0]);
    assert!(
        b.set_faults(FaultSet::none()).is_err(),
        "only before the first reset"
    );
    trail.flush();
    let text = std::fs::read_to_string(&path).expect("trail file");
    let starts: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"fault_started\""))
        .collect();
    assert_eq!(starts.len(), 3);
    assert!(starts[0].contains("\"env_index\":0,\"episode\":1,\"episode_id\":\"0-1\",\"step\":2"));
    assert!(starts[0].contains(
        "\"fault\":\"sensor_bias:T\",\"fault_kind\":\"sensor_bias\",\"target\":\"T\",\"target_type\":\"observation\",\"clock\":\"episode\""
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
