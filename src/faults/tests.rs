use super::config::build;
use super::*;
use crate::envs::make;
use crate::safety::config::Value;

fn reactor() -> EnvSpec {
    make("ChemicalReactor-v0", Vec::new())
        .expect("reactor")
        .spec()
        .clone()
}

fn s(x: &str) -> Value {
    Value::Str(x.into())
}

fn n(x: f64) -> Value {
    Value::Num(x)
}

fn fault(fields: &[(&str, Value)]) -> Value {
    Value::Map(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

fn set(faults: &[Value]) -> FaultSet {
    build(&Value::List(faults.to_vec()), &reactor()).expect("valid faults")
}

fn error(faults: &[Value]) -> String {
    build(&Value::List(faults.to_vec()), &reactor())
        .expect_err("refused")
        .to_string()
}

#[test]
fn the_schedule_is_active_from_start_to_end_and_ramps_linearly() {
    let sch = Schedule {
        start: 10,
        end: Some(20),
        ramp: 4,
        clock: Clock::Episode,
    };
    let levels: Vec<f64> = (8..22).map(|c| sch.level(c)).collect();
    assert_eq!(
        levels,
        [0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    );
    assert!(!sch.active(9) && sch.active(10) && sch.active(19) && !sch.active(20));
    let open = Schedule {
        end: None,
        ramp: 0,
        ..sch
    };
    assert_eq!((open.level(10), open.level(u64::MAX)), (1.0, 1.0));
    assert_eq!(open.level(9), 0.0);
}

#[test]
fn a_bias_ramps_in_and_ends() {
    let f = set(&[fault(&[
        ("kind", s("sensor_bias")),
        ("variable", s("T")),
        ("value", n(8.0)),
        ("start", n(2.0)),
        ("ramp", n(4.0)),
        ("end", n(10.0)),
    ])]);
    assert_eq!(f.faults()[0].name, "sensor_bias:T");
    let mut mem = vec![0.0; f.block_len()];
    f.reset(&mut mem, &Rng::from_seed(1));
    let seen: Vec<f32> = (0..12)
        .map(|t| {
            let mut obs = [0.5f32, 330.0, 0.8];
            f.sensors(&mut mem, &mut obs, t);
            assert_eq!((obs[0], obs[2]), (0.5, 0.8), "other variables untouched");
            obs[1] - 330.0
        })
        .collect();
    assert_eq!(
        seen,
        [0.0, 0.0, 0.0, 2.0, 4.0, 6.0, 8.0, 8.0, 8.0, 8.0, 0.0, 0.0]
    );
}

#[test]
fn noise_and_dropout_are_deterministic_per_key_and_independent_of_the_process_stream() {
    let f = set(&[
        fault(&[
            ("kind", s("sensor_noise")),
            ("variable", s("Ca")),
            ("std", n(0.1)),
        ]),
        fault(&[
            ("kind", s("sensor_dropout")),
            ("variable", s("T")),
            ("p", n(0.25)),
        ]),
    ]);
    let run = |seed: u64| -> Vec<[f32; 3]> {
        let rng = Rng::from_seed(seed);
        let mut mem = vec![0.0; f.block_len()];
        f.reset(&mut mem, &rng);
        (0..2000)
            .map(|t| {
                let mut obs = [0.5f32, 330.0, 0.8];
                f.sensors(&mut mem, &mut obs, t);
                obs
            })
            .collect()
    };
    let (a, b, c) = (run(3), run(3), run(4));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let noise: Vec<f64> = a.iter().map(|o| f64::from(o[0]) - 0.5).collect();
    let mean = noise.iter().sum::<f64>() / noise.len() as f64;
    let std = (noise.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / noise.len() as f64).sqrt();
    assert!(
        mean.abs() < 0.01 && (std - 0.1).abs() < 0.01,
        "{mean} {std}"
    );
    let dropped = a.iter().filter(|o| o[1] == 200.0).count() as f64 / a.len() as f64;
    assert!((dropped - 0.25).abs() < 0.03, "{dropped}");
    assert!(a.iter().all(|o| o[1] == 200.0 || o[1] == 330.0));
    // Reading the key does not draw from the env's own stream.
    let mut rng = Rng::from_seed(3);
    let before = rng;
    let mut mem = vec![0.0; f.block_len()];
    f.reset(&mut mem, &rng);
    assert_eq!(rng.next_u64(), before.clone().next_u64());
}

#[test]
fn a_frozen_sensor_holds_its_reading_from_the_fault_start() {
    let f = set(&[fault(&[
        ("kind", s("sensor_freeze")),
        ("variable", s("Ca")),
        ("start", n(3.0)),
    ])]);
    let mut mem = vec![0.0; f.block_len()];
    f.reset(&mut mem, &Rng::from_seed(1));
    let seen: Vec<f32> = (0..7)
        .map(|t| {
            let mut obs = [0.1 * t as f32, 330.0, 0.8];
            f.sensors(&mut mem, &mut obs, t);
            obs[0]
        })
        .collect();
    assert_eq!(seen, [0.0, 0.1, 0.2, 0.3, 0.3, 0.3, 0.3]);
}

#[test]
fn a_stuck_actuator_holds_its_position_or_the_given_value_and_a_rate_limit_slows_it() {
    let spec = reactor();
    let stuck = set(&[fault(&[
        ("kind", s("actuator_stuck")),
        ("action", s("Tc")),
        ("start", n(2.0)),
    ])]);
    let mut mem = vec![0.0; stuck.block_len()];
    stuck.reset(&mut mem, &Rng::from_seed(1));
    let applied: Vec<f64> = [291.0, 295.0, 309.0, 290.0]
        .iter()
        .enumerate()
        .map(|(t, &a)| {
            let mut phys = [a];
            stuck.actuators(&mut mem, &mut phys, t as u32);
            phys[0]
        })
        .collect();
    assert_eq!(applied, [291.0, 295.0, 295.0, 295.0]);
    // From the episode's start: the actuator's mid-range, where the envs start it.
    let at_start = set(&[fault(&[("kind", s("actuator_stuck")), ("action", s("Tc"))])]);
    let mut mem = vec![0.0; at_start.block_len()];
    at_start.reset(&mut mem, &Rng::from_seed(1));
    let mut phys = [305.0];
    at_start.actuators(&mut mem, &mut phys, 0);
    let mid = 0.5 * (spec.actions[0].low + spec.actions[0].high);
    assert_eq!(phys[0], mid);
    let given = set(&[fault(&[
        ("kind", s("actuator_stuck")),
        ("action", s("Tc")),
        ("value", n(308.0)),
    ])]);
    let mut mem = vec![0.0; given.block_len()];
    given.reset(&mut mem, &Rng::from_seed(1));
    let mut phys = [291.0];
    given.actuators(&mut mem, &mut phys, 0);
    assert_eq!(phys[0], 308.0);
    let slow = set(&[fault(&[
        ("kind", s("actuator_rate_limit")),
        ("action", s("Tc")),
        ("rate", n(2.0)),
    ])]);
    let mut mem = vec![0.0; slow.block_len()];
    slow.reset(&mut mem, &Rng::from_seed(1));
    let applied: Vec<f64> = [310.0, 310.0, 301.0, 290.0]
        .iter()
        .enumerate()
        .map(|(t, &a)| {
            let mut phys = [a];
            slow.actuators(&mut mem, &mut phys, t as u32);
            phys[0]
        })
        .collect();
    assert_eq!(applied, [302.0, 304.0, 302.0, 300.0]);
}

#[test]
fn drift_ramps_the_parameter_from_nominal_to_its_factor() {
    let f = set(&[fault(&[
        ("kind", s("parameter_drift")),
        ("parameter", s("UA")),
        ("factor", n(0.5)),
        ("start", n(10.0)),
        ("ramp", n(10.0)),
    ])]);
    assert!(f.drifts());
    let mut mem = vec![0.0; f.block_len()];
    f.reset(&mut mem, &Rng::from_seed(1));
    let ua = |t: u32, mem: &mut Vec<f64>| f.params(mem, t)[0];
    assert_eq!(ua(0, &mut mem), 5e4);
    assert_eq!(ua(10, &mut mem), 5e4);
    assert_eq!(ua(15, &mut mem), 5e4 * 0.75);
    assert_eq!(ua(25, &mut mem), 5e4 * 0.5);
    assert_eq!(f.params(&mut mem, 25)[1], 7.2e10, "k0 untouched");
}

#[test]
fn the_lifetime_clock_counts_steps_across_episodes() {
    let f = set(&[fault(&[
        ("kind", s("sensor_bias")),
        ("variable", s("T")),
        ("value", n(1.0)),
        ("start", n(5.0)),
        ("clock", s("lifetime")),
    ])]);
    let mut mem = vec![0.0; f.block_len()];
    let (mut started, mut active) = (Vec::new(), vec![0u64]);
    for episode in 1..=3u64 {
        f.reset(&mut mem, &Rng::from_seed(episode));
        for t in 0..3 {
            f.count_step(&mut mem);
            f.track(&mut mem, (0, episode, t + 1), &mut started, &mut active);
        }
    }
    // Steps 5..=9 of its life are active; it starts once, in episode 2.
    assert_eq!(active, [5]);
    assert_eq!(
        started,
        [Started {
            env: 0,
            episode: 2,
            step: 2,
            fault: 0
        }]
    );
}

#[test]
fn an_episode_fault_starts_again_in_every_episode() {
    let f = set(&[fault(&[("kind", s("sensor_freeze")), ("variable", s("T"))])]);
    let mut mem = vec![0.0; f.block_len()];
    let (mut started, mut active) = (Vec::new(), vec![0u64]);
    for episode in 1..=3u64 {
        f.reset(&mut mem, &Rng::from_seed(episode));
        for t in 0..4 {
            f.track(&mut mem, (7, episode, t), &mut started, &mut active);
        }
    }
    assert_eq!(active, [12]);
    let at: Vec<(usize, u64, u32)> = started.iter().map(|s| (s.env, s.episode, s.step)).collect();
    assert_eq!(at, [(7, 1, 0), (7, 2, 0), (7, 3, 0)]);
}

#[test]
fn no_faults_need_no_memory() {
    for cfg in [Value::Null, Value::List(vec![])] {
        let f = build(&cfg, &reactor()).expect("no faults");
        assert!(f.is_empty() && f.block_len() == 0 && !f.drifts());
    }
}

#[test]
fn every_bad_config_names_the_fault_and_the_field() {
    let bias = |extra: &[(&str, Value)]| {
        let mut f = vec![
            ("kind", s("sensor_bias")),
            ("variable", s("T")),
            ("value", n(1.0)),
        ];
        f.extend_from_slice(extra);
        fault(&f)
    };
    let cases: Vec<(Vec<Value>, &str)> = vec![
        (vec![fault(&[("kind", s("sensor_melt"))])], "faults[0].kind: must be one of sensor_bias"),
        (vec![fault(&[("variable", s("T"))])], "faults[0].kind: is missing"),
        (
            vec![bias(&[]), fault(&[("kind", s("sensor_bias")), ("variable", s("Tx")), ("value", n(1.0))])],
            "faults[1].variable: unknown observation variable \"Tx\"; known: Ca, T, Ca_setpoint",
        ),
        (
            vec![fault(&[("kind", s("parameter_drift")), ("parameter", s("UB")), ("factor", n(0.5))])],
            "faults[0].parameter: unknown parameter \"UB\"; known: UA, k0",
        ),
        (
            vec![fault(&[("kind", s("actuator_stuck")), ("action", s("Th"))])],
            "faults[0].action: unknown action \"Th\"; known: Tc",
        ),
        (vec![bias(&[("start", n(-1.0))])], "faults[0].start: must be a whole number of steps >= 0, got -1"),
        (vec![bias(&[("ramp", n(2.5))])], "faults[0].ramp: must be a whole number of steps >= 0, got 2.5"),
        (vec![bias(&[("start", n(10.0)), ("end", n(10.0))])], "faults[0].end: must be after start (10), got 10"),
        (vec![bias(&[("start", n(60.0))])], "faults[0].start: is never reached: episodes end after 60 steps"),
        (
            vec![fault(&[("kind", s("sensor_dropout")), ("variable", s("T")), ("p", n(1.5))])],
            "faults[0].p: must be a probability in [0, 1], got 1.5",
        ),
        (
            vec![fault(&[("kind", s("sensor_bias")), ("variable", s("T")), ("value", n(f64::NAN))])],
            "faults[0].value: must be a finite number, got NaN",
        ),
        (
            vec![fault(&[("kind", s("sensor_noise")), ("variable", s("T")), ("std", n(f64::INFINITY))])],
            "faults[0].std: must be a finite number, got inf",
        ),
        (
            vec![fault(&[("kind", s("parameter_drift")), ("parameter", s("k0")), ("factor", n(0.0))])],
            "faults[0].factor: must be > 0 and keep k0 within its admissible range",
        ),
        (
            vec![fault(&[("kind", s("parameter_drift")), ("parameter", s("UA")), ("factor", n(5.0))])],
            "faults[0].factor: must be > 0 and keep UA within its admissible range [5000, 100000]",
        ),
        (
            vec![fault(&[("kind", s("actuator_stuck")), ("action", s("Tc")), ("value", n(320.0))])],
            "faults[0].value: must be within the range of Tc [290, 310] K, got 320",
        ),
        (
            vec![fault(&[("kind", s("actuator_rate_limit")), ("action", s("Tc")), ("rate", n(0.0))])],
            "faults[0].rate: must be > 0, got 0",
        ),
        (
            vec![fault(&[("kind", s("actuator_rate_limit")), ("action", s("Tc"))])],
            "faults[0].rate: is missing",
        ),
        (vec![fault(&[("kind", s("sensor_bias")), ("variable", s("T"))])], "faults[0].value: is missing"),
        (vec![bias(&[]), bias(&[])], "faults[1].name: \"sensor_bias:T\" names two faults"),
        (
            vec![bias(&[("name", s("a"))]), bias(&[("name", s("a"))])],
            "faults[1].name: \"a\" names two faults",
        ),
        (
            vec![bias(&[("std", n(1.0))])],
            "faults[0].std: is not a field of a sensor_bias fault; its fields are kind, name, start, end, clock, variable, value, ramp",
        ),
        (vec![bias(&[("clock", s("wall"))])], "faults[0].clock: must be \"episode\" or \"lifetime\""),
        (vec![bias(&[("name", s(""))])], "faults[0].name: must be 1 to 128 printable characters"),
        (vec![n(3.0)], "faults[0]: must be a mapping, got 3"),
        (
            vec![fault(&[("kind", s("sensor_freeze")), ("variable", n(1.0))])],
            "faults[0].variable: must be the name of observation variable, got 1",
        ),
    ];
    for (cfg, want) in cases {
        let got = error(&cfg);
        assert!(
            got.starts_with(want),
            "{got:?} does not start with {want:?}"
        );
    }
    let not_a_list = build(&s("T"), &reactor()).expect_err("a string");
    assert!(not_a_list
        .to_string()
        .starts_with("faults: must be a list of mappings"));
    let many = Value::List(vec![bias(&[]); config::MAX_FAULTS + 1]);
    assert!(build(&many, &reactor())
        .expect_err("too many")
        .to_string()
        .starts_with("faults: at most 64 faults"));
}
