//! Unit tests of the audit trail: line formats, page layout, the writer and its loss lines.

use super::*;
use crate::safety::alarm::{AlarmState, Response};
use crate::safety::constraints::{Constraint, Kind};

#[test]
fn page_layout_keeps_every_line_inside_a_page() {
    let mut rng = crate::rng::Rng::from_seed(3);
    let mut offset = 0u64;
    let mut file = Vec::new();
    for _ in 0..200 {
        let mut batch = Vec::new();
        for _ in 0..(rng.int_in(1, 40)) {
            let n = rng.int_in(50, 900) as usize;
            batch.extend(std::iter::repeat_n(b'x', n));
            batch.push(b'\n');
        }
        let laid = page_layout(&batch, offset);
        // Same lines, only spaces added before newlines.
        let strip = |b: &[u8]| -> Vec<u8> { b.iter().copied().filter(|&c| c != b' ').collect() };
        assert_eq!(strip(&laid), strip(&batch));
        offset += laid.len() as u64;
        file.extend(laid);
    }
    let mut start = 0usize;
    let mut crossing = 0;
    for (i, &b) in file.iter().enumerate() {
        if b == b'\n' {
            if start / PAGE != i / PAGE {
                crossing += 1;
            }
            start = i + 1;
        }
    }
    // The first line of a batch may cross only when the page had less room than the previous
    // batch's longest line twice over: never with lines of similar lengths as here, bar a few.
    assert!(crossing <= 2, "{crossing} lines cross a page boundary");
    assert!(file.len() < 200 * 40 * 1000, "padding stays small");
}

#[test]
fn iso8601_matches_known_instants() {
    assert_eq!(iso8601(0.0), "1970-01-01T00:00:00.000000Z");
    assert_eq!(iso8601(951_782_400.5), "2000-02-29T00:00:00.500000Z");
    assert_eq!(iso8601(1_795_835_346.25), "2026-11-28T03:09:06.250000Z");
}

#[test]
fn records_are_written_and_counted_and_closed_trails_count_drops() {
    let dir = std::env::temp_dir().join(format!("neorl-audit-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("trail.jsonl");
    let _ = std::fs::remove_file(&path);
    let trail = AuditTrail::open(&path, 4).expect("open");
    trail.record("run_start", "info", "\"env_id\":\"X\"");
    trail.flush();
    assert_eq!(trail.written(), 1);
    trail.close();
    trail.record("run_end", "info", "");
    assert_eq!(trail.dropped(), 1);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.starts_with("{\"event\":\"run_start\",\"level\":\"info\",\"timestamp\":\""));
    assert!(text.ends_with("\"env_id\":\"X\"}\n"));
    assert!(AuditTrail::open(Path::new("/nonexistent-dir/x.jsonl"), 4).is_err());
}

#[derive(Default)]
struct Tally(Mutex<(u64, u64, Vec<String>)>);

impl LossSink for Tally {
    fn attach(&self, dropped_so_far: u64, _last_error: Option<&str>) {
        self.0.lock().unwrap().0 += dropped_so_far;
    }
    fn lost(&self, n: u64, why: &str) {
        let mut t = self.0.lock().unwrap();
        t.1 += n;
        t.2.push(why.to_string());
    }
}

#[test]
fn write_failures_are_counted_and_reported_to_each_sink_once() {
    let trail = AuditTrail::open(Path::new("/dev/full"), 4).expect("open /dev/full");
    trail.record("before", "info", "");
    trail.flush();
    assert_eq!((trail.written(), trail.dropped()), (0, 1));
    let sink = Arc::new(Tally::default());
    trail.report_losses_to(sink.clone());
    trail.report_losses_to(sink.clone());
    trail.record("after", "info", "");
    trail.flush();
    let t = sink.0.lock().unwrap();
    assert_eq!((t.0, t.1), (1, 1));
    assert!(t.2[0].contains("write failed"), "{:?}", t.2);
    assert!(trail
        .last_error()
        .unwrap_or_default()
        .contains("write failed"));
}

/// A fresh, empty file path for one test.
fn temp_trail(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("neorl-audit-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{name}.jsonl"));
    let _ = std::fs::remove_file(&path);
    path
}

fn backlog_len(shared: &Shared) -> usize {
    shared.backlog.lock().unwrap().len()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn shield_event(env: usize, step: u32) -> SafetyEvent {
    SafetyEvent {
        kind: EventKind::ShieldIntervention,
        env,
        episode: 1,
        constraint: None,
        step,
        wall: 1_795_835_346.25,
        value: 0.5,
        alarm: Default::default(),
    }
}

#[test]
fn wait_for_writer_passes_a_fresh_backlog_and_queues_one_message() {
    let shared = Shared::default();
    assert!(shared.wait_for_writer());
    assert_eq!(backlog_len(&shared), 1);
    // The front is fresh (well under LAG_TARGET): no waiting. Only a wait for a stalled writer
    // (LAG_WAIT) fails the bound, not a slow machine.
    let t0 = Instant::now();
    assert!(shared.wait_for_writer());
    assert!(t0.elapsed() < LAG_WAIT);
    assert_eq!(backlog_len(&shared), 2);
}

#[test]
fn wait_for_writer_waits_for_a_stale_backlog_to_be_written_off() {
    let shared = Arc::new(Shared::default());
    let stale = Instant::now()
        .checked_sub(LAG_TARGET * 2)
        .expect("clock far enough from its origin");
    shared.backlog.lock().unwrap().push_back(stale);
    let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let helper = {
        let (shared, released) = (Arc::clone(&shared), Arc::clone(&released));
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            released.store(true, Ordering::SeqCst);
            shared.written_off(1);
        })
    };
    assert!(shared.wait_for_writer(), "the writer caught up in time");
    assert!(
        released.load(Ordering::SeqCst),
        "returned before the stale message was written off"
    );
    helper.join().unwrap();
    assert_eq!(backlog_len(&shared), 1, "only the new message is queued");
}

#[test]
fn wait_for_writer_gives_up_on_a_stalled_writer_after_lag_wait() {
    let shared = Shared::default();
    let stale = Instant::now()
        .checked_sub(LAG_TARGET * 2)
        .expect("clock far enough from its origin");
    shared.backlog.lock().unwrap().push_back(stale);
    let t0 = Instant::now();
    assert!(!shared.wait_for_writer());
    assert!(t0.elapsed() >= LAG_WAIT);
    assert_eq!(backlog_len(&shared), 1, "nothing queued when giving up");
}

#[test]
fn written_off_takes_exactly_n_messages_off_the_backlog() {
    let shared = Shared::default();
    for _ in 0..3 {
        shared.backlog.lock().unwrap().push_back(Instant::now());
    }
    shared.written_off(0);
    assert_eq!(backlog_len(&shared), 3);
    shared.written_off(2);
    assert_eq!(backlog_len(&shared), 1);
    shared.written_off(1);
    assert_eq!(backlog_len(&shared), 0);
}

#[test]
fn events_are_written_counted_and_leave_no_backlog() {
    let path = temp_trail("events");
    let trail = AuditTrail::open(&path, 8).expect("open");
    let src = Arc::new(Source {
        env_id: "cstr-v0".into(),
        constraints: ConstraintSet::default(),
        dt_seconds: 0.1,
    });
    trail.events(&src, vec![shield_event(0, 3), shield_event(2, 3)]);
    trail.events(&src, Vec::new());
    trail.record("note", "info", "");
    trail.events(&src, vec![shield_event(1, 4)]);
    trail.flush();
    assert_eq!((trail.written(), trail.dropped()), (4, 0));
    assert_eq!(
        backlog_len(&trail.state),
        0,
        "every written message is written off"
    );
    let text = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let shields: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("\"event\":\"shield_intervention\""))
        .collect();
    assert_eq!(shields.len(), 3);
    assert!(shields[0].contains(
        "\"env_id\":\"cstr-v0\",\"env_index\":0,\"episode\":1,\"episode_id\":\"0-1\",\"step\":3"
    ));
    assert!(shields[2].contains("\"env_index\":1,\"episode\":1,\"episode_id\":\"1-1\",\"step\":4"));
    trail.close();
    let _ = std::fs::remove_file(&path);
}

#[test]
fn the_writer_keeps_up_after_a_pause_longer_than_the_lag_target() {
    let path = temp_trail("pause");
    let trail = AuditTrail::open(&path, 4).expect("open");
    trail.record("first", "info", "");
    trail.flush();
    std::thread::sleep(LAG_TARGET + Duration::from_millis(50));
    let t0 = Instant::now();
    trail.record("second", "info", "");
    // Bounded by the stall wait, not the lag target: only a producer held up for a stalled
    // writer fails it, not a slow machine.
    assert!(
        t0.elapsed() < LAG_WAIT,
        "an idle writer does not hold producers up"
    );
    trail.flush();
    assert_eq!((trail.written(), trail.dropped()), (2, 0));
    trail.close();
    let _ = std::fs::remove_file(&path);
}

#[test]
fn record_timestamps_are_the_current_wall_clock() {
    let path = temp_trail("clock");
    let trail = AuditTrail::open(&path, 4).expect("open");
    let before = iso8601(unix_now());
    trail.record("a", "info", "");
    trail.record("b", "info", "");
    let after = iso8601(unix_now());
    trail.close();
    let text = std::fs::read_to_string(&path).expect("read");
    let stamps: Vec<&str> = text
        .lines()
        .map(|l| {
            let rest = &l[l.find("\"timestamp\":\"").expect("timestamp") + 13..];
            &rest[..rest.find('"').expect("closing quote")]
        })
        .collect();
    assert_eq!(stamps.len(), 2, "{text}");
    // Same fixed-width format: string order is time order.
    for s in &stamps {
        assert!(
            before.as_str() <= *s && *s <= after.as_str(),
            "{s} not within [{before}, {after}]"
        );
    }
    assert!(stamps[0] <= stamps[1]);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn losses_are_counted_exactly_and_written_into_the_trail_once() {
    let path = temp_trail("losses");
    let mut trail = AuditTrail::open(&path, 4).expect("open");
    trail.record("ok", "info", "");
    trail.flush();
    assert_eq!((trail.written(), trail.dropped()), (1, 0));
    let pid = trail.pid;
    // As if in a forked child: the writer is not there, events are dropped and counted.
    trail.pid = pid.wrapping_add(1);
    trail.record("lost", "info", "");
    trail.record("lost", "info", "");
    assert_eq!(trail.dropped(), 2);
    assert!(trail.last_error().unwrap_or_default().contains("fork"));
    trail.pid = pid;
    trail.record("back", "info", "");
    trail.flush();
    trail.pid = pid.wrapping_add(1);
    for _ in 0..3 {
        trail.record("lost", "info", "");
    }
    trail.pid = pid;
    trail.record("again", "info", "");
    trail.flush();
    assert_eq!((trail.written(), trail.dropped()), (3, 5));
    let text = std::fs::read_to_string(&path).expect("read");
    let events: Vec<&str> = text
        .lines()
        .map(|l| {
            let rest = &l["{\"event\":\"".len()..];
            &rest[..rest.find('"').expect("closing quote")]
        })
        .collect();
    assert_eq!(
        events,
        [
            "ok",
            "audit_events_lost",
            "back",
            "audit_events_lost",
            "again"
        ],
        "{text}"
    );
    let counts: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("audit_events_lost"))
        .map(|l| {
            let rest = &l[l.find("\"count\":").expect("count") + 8..];
            &rest[..rest.find(',').expect("comma")]
        })
        .collect();
    assert_eq!(counts, ["2", "3"]);
    assert!(!text.contains("\"event\":\"lost\""));
    trail.close();
    let _ = std::fs::remove_file(&path);
}

#[test]
fn dropping_a_trail_writes_everything_and_stops_the_writer() {
    let path = temp_trail("drop");
    let trail = AuditTrail::open(&path, 64).expect("open");
    for i in 0..50 {
        trail.record("tick", "info", &format!("\"i\":{i}"));
    }
    let state = Arc::clone(&trail.state);
    drop(trail);
    assert_eq!(Arc::strong_count(&state), 1, "the writer thread has ended");
    assert_eq!(state.written.load(Ordering::Relaxed), 50);
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(text.lines().count(), 50);
    // The last line may be padded with spaces to the end of its page (see `page_layout`).
    assert!(text.ends_with('\n'));
    assert!(text.trim_end().ends_with("\"i\":49}"), "{text}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn messages_queued_while_the_writer_is_busy_share_one_write() {
    let path = temp_trail("batching");
    let mut trail = AuditTrail::open(&path, 8).expect("open");
    let pid = trail.pid;
    trail.pid = pid.wrapping_add(1);
    trail.record("lost", "info", "");
    trail.pid = pid;
    let pad = |n: usize| format!("\"pad\":\"{}\"", "x".repeat(n));
    {
        // The writer stops at the loss line (it reads the last error) until this is released,
        // so both records are queued by the time it drains.
        let _hold = trail.state.last_error.lock().unwrap();
        trail.record("a", "info", &pad(1500));
        trail.record("b", "info", &pad(1500));
    }
    trail.flush();
    assert_eq!((trail.written(), trail.dropped()), (2, 1));
    let text = std::fs::read_to_string(&path).expect("read");
    // One write: "b" follows "a" on the first page. Written one at a time, "a" would leave
    // less room than twice its length and "b" would start a new page.
    let b = text.find("{\"event\":\"b\"").expect("b written");
    assert!(b < PAGE, "b starts at {b}");
    assert!(text.find("{\"event\":\"a\"").expect("a written") < b);
    trail.close();
    let _ = std::fs::remove_file(&path);
}

const T0: f64 = 1_795_835_346.25;
const T0_ISO: &str = "2026-11-28T03:09:06.250000Z";

/// An env with one constraint of each severity, stepping every half second.
fn plant() -> Source {
    Source {
        env_id: "cstr-v0".into(),
        constraints: ConstraintSet {
            constraints: vec![
                Constraint::new(
                    "temperature_high",
                    "temperature",
                    Kind::Upper {
                        signal: 0,
                        limit: 350.0,
                    },
                    Severity::Critical,
                ),
                Constraint::new(
                    "level_band",
                    "level",
                    Kind::Band {
                        signal: 1,
                        low: 0.25,
                        high: 0.75,
                    },
                    Severity::Warning,
                ),
                Constraint::new(
                    "flow \"low\"",
                    "flow\tin",
                    Kind::Lower {
                        signal: 2,
                        limit: 1.5,
                    },
                    Severity::Info,
                ),
            ],
        },
        dt_seconds: 0.5,
    }
}

/// Incident 42 of the temperature constraint, opened at step 10 and [`T0`] at 351.5.
fn incident() -> AlarmState {
    AlarmState {
        incident: 42,
        start_step: 10,
        start_wall: T0,
        first_value: 351.5,
        peak_value: 351.5,
        response_seconds: f64::NAN,
        ..Default::default()
    }
}

fn event(kind: EventKind, c: Option<u16>, step: u32, wall: f64, value: f64) -> SafetyEvent {
    SafetyEvent {
        kind,
        env: 3,
        episode: 2,
        constraint: c,
        step,
        wall,
        value,
        alarm: incident(),
    }
}

/// The run id of the lines these tests format.
const RUN: &str = "run-7";

/// The line `format_event` writes for `e`, checked to be one JSON object.
fn line_of(src: &Source, e: &SafetyEvent) -> String {
    let mut out = String::new();
    format_event(&mut out, src, e, RUN);
    // One object and nothing after it but the newline.
    let parsed: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert!(parsed.is_object() && out.ends_with("}\n"), "{out}");
    out
}

/// The fields every line starts with.
fn head_of(event: &str, level: &str, timestamp: &str) -> String {
    let fields =
        format!("\"event\":\"{event}\",\"level\":\"{level}\",\"timestamp\":\"{timestamp}\"");
    format!("{{{fields},\"logger\":\"neorl_industrial.safety\",\"run_id\":\"{RUN}\"")
}

#[test]
fn an_opened_incident_is_one_line_with_its_limit_values_and_no_response_yet() {
    let e = event(EventKind::IncidentOpened, Some(0), 10, T0, 351.5);
    let want = head_of("incident_opened", "critical", T0_ISO)
        + ",\"env_id\":\"cstr-v0\",\"env_index\":3,\"episode\":2,\"episode_id\":\"3-2\",\"step\":10,\
           \"incident_id\":\"safety_000042\",\"constraint\":\"temperature_high\",\
           \"constraint_type\":\"temperature\",\"severity\":\"critical\",\"limit\":350.0,\
           \"current_value\":351.5,\"first_value\":351.5,\"peak_value\":351.5,\"start_step\":10,\
           \"start_time\":\"2026-11-28T03:09:06.250000Z\",\"response\":\"none\",\
           \"response_time_seconds\":null}\n";
    assert_eq!(line_of(&plant(), &e), want);
}

#[test]
fn a_cleared_incident_has_its_end_durations_and_response() {
    let mut e = event(EventKind::IncidentClosed, Some(0), 14, T0 + 1.75, 349.0);
    e.alarm.peak_value = 353.25;
    e.alarm.response = Response::Shutdown;
    e.alarm.response_seconds = 0.5;
    let want = head_of("incident_closed", "info", "2026-11-28T03:09:08.000000Z")
        + ",\"env_id\":\"cstr-v0\",\"env_index\":3,\"episode\":2,\"episode_id\":\"3-2\",\"step\":14,\
           \"incident_id\":\"safety_000042\",\"constraint\":\"temperature_high\",\
           \"constraint_type\":\"temperature\",\"severity\":\"critical\",\"limit\":350.0,\
           \"current_value\":349.0,\"first_value\":351.5,\"peak_value\":353.25,\"start_step\":10,\
           \"start_time\":\"2026-11-28T03:09:06.250000Z\",\"end_step\":14,\
           \"end_time\":\"2026-11-28T03:09:08.000000Z\",\"duration_steps\":4,\
           \"close_reason\":\"cleared\",\"duration_seconds\":2.0,\
           \"duration_wall_seconds\":1.75,\"response\":\"shutdown\",\
           \"response_time_seconds\":0.5}\n";
    assert_eq!(line_of(&plant(), &e), want);
}

#[test]
fn an_incident_ended_with_its_episode_says_so_and_writes_non_finite_values_as_null() {
    let mut e = event(
        EventKind::IncidentClosedByEpisodeEnd,
        Some(1),
        30,
        T0 + 0.5,
        f64::INFINITY,
    );
    e.env = 0;
    e.episode = 5;
    e.alarm.incident = 7;
    e.alarm.start_step = 27;
    // Below the band's middle: the limit reported is its low bound.
    e.alarm.first_value = 0.125;
    e.alarm.peak_value = f64::NEG_INFINITY;
    e.alarm.response = Response::Shield;
    e.alarm.response_seconds = 0.25;
    let want = head_of("incident_closed", "info", "2026-11-28T03:09:06.750000Z")
        + ",\"env_id\":\"cstr-v0\",\"env_index\":0,\"episode\":5,\"episode_id\":\"0-5\",\"step\":30,\
           \"incident_id\":\"safety_000007\",\"constraint\":\"level_band\",\
           \"constraint_type\":\"level\",\"severity\":\"warning\",\"limit\":0.25,\
           \"current_value\":null,\"first_value\":0.125,\"peak_value\":null,\"start_step\":27,\
           \"start_time\":\"2026-11-28T03:09:06.250000Z\",\"end_step\":30,\
           \"end_time\":\"2026-11-28T03:09:06.750000Z\",\"duration_steps\":3,\
           \"close_reason\":\"episode_end\",\"duration_seconds\":1.5,\
           \"duration_wall_seconds\":0.5,\"response\":\"shield\",\
           \"response_time_seconds\":0.25}\n";
    assert_eq!(line_of(&plant(), &e), want);
}

#[test]
fn a_shutdown_is_critical_and_has_no_end_fields() {
    let mut e = event(EventKind::EmergencyShutdown, Some(0), 12, T0 + 0.25, 352.0);
    e.env = 1;
    e.episode = 1;
    e.alarm.peak_value = 352.0;
    e.alarm.response = Response::Shutdown;
    e.alarm.response_seconds = 1.0;
    let at = "2026-11-28T03:09:06.500000Z";
    let want = head_of("emergency_shutdown", "critical", at)
        + ",\"env_id\":\"cstr-v0\",\"env_index\":1,\"episode\":1,\"episode_id\":\"1-1\",\"step\":12,\
           \"incident_id\":\"safety_000042\",\"constraint\":\"temperature_high\",\
           \"constraint_type\":\"temperature\",\"severity\":\"critical\",\"limit\":350.0,\
           \"current_value\":352.0,\"first_value\":351.5,\"peak_value\":352.0,\"start_step\":10,\
           \"start_time\":\"2026-11-28T03:09:06.250000Z\",\"response\":\"shutdown\",\
           \"response_time_seconds\":1.0}\n";
    assert_eq!(line_of(&plant(), &e), want);
    // A shutdown is critical whatever the constraint's severity, and without one.
    e.constraint = Some(2);
    assert!(line_of(&plant(), &e).starts_with(&head_of("emergency_shutdown", "critical", at)));
    e.constraint = None;
    let want = head_of("emergency_shutdown", "critical", at)
        + ",\"env_id\":\"cstr-v0\",\"env_index\":1,\"episode\":1,\"episode_id\":\"1-1\",\"step\":12}\n";
    assert_eq!(line_of(&plant(), &e), want);
}

#[test]
fn names_are_escaped_and_an_opened_incident_takes_its_constraints_severity_as_level() {
    let mut src = plant();
    src.env_id = "a\"b\\c".into();
    let mut e = event(EventKind::IncidentOpened, Some(2), 0, 0.0, f64::NAN);
    e.alarm.first_value = f64::NAN;
    let line = line_of(&src, &e);
    let epoch = "1970-01-01T00:00:00.000000Z";
    assert!(line.starts_with(&head_of("incident_opened", "info", epoch)));
    assert!(
        line.contains(",\"env_id\":\"a\\\"b\\\\c\",\"env_index\":3,"),
        "{line}"
    );
    assert!(
        line.contains(
            ",\"constraint\":\"flow \\\"low\\\"\",\"constraint_type\":\"flow\\tin\",\
             \"severity\":\"info\",\"limit\":1.5,\"current_value\":null,\"first_value\":null,"
        ),
        "{line}"
    );
    e.constraint = Some(1);
    assert!(line_of(&src, &e).contains("\"level\":\"warning\""));
    e.constraint = Some(0);
    assert!(line_of(&src, &e).contains("\"level\":\"critical\""));
}

#[test]
fn events_without_a_known_constraint_have_only_the_common_fields() {
    let src = plant();
    let mut out = String::new();
    let mut shield = event(EventKind::ShieldIntervention, None, 3, T0, 0.5);
    shield.env = 2;
    format_event(&mut out, &src, &shield, RUN);
    // An index past the set's end is no constraint either.
    let unknown = event(EventKind::IncidentOpened, Some(9), 4, T0, 0.5);
    format_event(&mut out, &src, &unknown, RUN);
    let want = head_of("shield_intervention", "info", T0_ISO)
        + ",\"env_id\":\"cstr-v0\",\"env_index\":2,\"episode\":2,\"episode_id\":\"2-2\",\"step\":3}\n"
        + &head_of("incident_opened", "info", T0_ISO)
        + ",\"env_id\":\"cstr-v0\",\"env_index\":3,\"episode\":2,\"episode_id\":\"3-2\",\"step\":4}\n";
    assert_eq!(out, want);
}

#[test]
fn level_follows_the_kind_and_for_opened_incidents_the_severity() {
    for (kind, levels) in [
        (EventKind::IncidentOpened, ["info", "warning", "critical"]),
        (EventKind::EmergencyShutdown, ["critical"; 3]),
        (EventKind::IncidentClosed, ["info"; 3]),
        (EventKind::IncidentClosedByEpisodeEnd, ["info"; 3]),
        (EventKind::ShieldIntervention, ["info"; 3]),
    ] {
        let severities = [Severity::Info, Severity::Warning, Severity::Critical];
        for (severity, want) in severities.into_iter().zip(levels) {
            assert_eq!(level(kind, severity), want, "{kind:?} {severity:?}");
        }
    }
}

#[test]
fn escape_writes_every_control_character_and_nothing_else_as_an_escape() {
    for c in 0u32..0x20 {
        let ch = char::from_u32(c).expect("a char");
        let want = match ch {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            '\t' => "\\t".to_string(),
            _ => format!("\\u{c:04x}"),
        };
        assert_eq!(escape(&ch.to_string()), want, "U+{c:04X}");
    }
    assert_eq!(
        escape("\u{0}\u{8}\u{b}\u{c}\u{1f}"),
        "\\u0000\\u0008\\u000b\\u000c\\u001f"
    );
    assert_eq!(escape(" "), " ");
    assert_eq!(escape("a b/\u{7f}é€😀"), "a b/\u{7f}é€😀");
    assert_eq!(escape("\"\\"), "\\\"\\\\");
    assert_eq!(escape(""), "");
    assert_eq!(escape("a\"b\\c\nd\u{1}"), "a\\\"b\\\\c\\nd\\u0001");
}

#[test]
fn iso8601_has_the_right_date_around_every_century_and_leap_day() {
    for (unix, want) in [
        (68_169_600.0, "1972-02-29T00:00:00"),
        (946_684_799.0, "1999-12-31T23:59:59"),
        (951_868_800.0, "2000-03-01T00:00:00"),
        (4_102_444_799.0, "2099-12-31T23:59:59"),
        (4_107_542_399.0, "2100-02-28T23:59:59"),
        (4_107_542_400.0, "2100-03-01T00:00:00"),
        (4_133_980_799.0, "2100-12-31T23:59:59"),
        (4_133_980_800.0, "2101-01-01T00:00:00"),
        (7_263_215_999.0, "2200-02-28T23:59:59"),
        (7_263_216_000.0, "2200-03-01T00:00:00"),
        (10_418_889_599.0, "2300-02-28T23:59:59"),
        (10_418_889_600.0, "2300-03-01T00:00:00"),
        (13_574_563_199.0, "2400-02-28T23:59:59"),
        (13_574_563_200.0, "2400-02-29T00:00:00"),
        (13_574_649_600.0, "2400-03-01T00:00:00"),
        (253_402_300_799.0, "9999-12-31T23:59:59"),
    ] {
        assert_eq!(iso8601(unix), format!("{want}.000000Z"), "{unix}");
    }
}

#[test]
fn iso8601_rounds_to_microseconds_without_carrying_into_the_next_second() {
    assert_eq!(iso8601(T0 + 0.5), "2026-11-28T03:09:06.750000Z");
    assert_eq!(iso8601(1_795_835_346.123456), "2026-11-28T03:09:06.123456Z");
    assert_eq!(iso8601(0.000_000_4), "1970-01-01T00:00:00.000000Z");
    assert_eq!(iso8601(0.000_000_6), "1970-01-01T00:00:00.000001Z");
    assert_eq!(iso8601(12.345_678_5), "1970-01-01T00:00:12.345679Z");
    assert_eq!(iso8601(59.999_999_9), "1970-01-01T00:00:59.999999Z");
    // Before the epoch and not a time at all: the epoch.
    for unix in [-1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(iso8601(unix), "1970-01-01T00:00:00.000000Z", "{unix}");
    }
}

/// One line of `len` bytes: `len - 1` copies of `fill`, `pad` spaces, a newline.
fn line(fill: u8, len: usize, pad: usize) -> Vec<u8> {
    let mut l = vec![fill; len - 1];
    l.extend(std::iter::repeat_n(b' ', pad));
    l.push(b'\n');
    l
}

/// Lines of the given lengths, filled with `a`, `b`, `c`, ...
fn lines(lens: &[usize]) -> Vec<u8> {
    let letters = (b'a'..=b'z').cycle();
    lens.iter()
        .zip(letters)
        .flat_map(|(&n, c)| line(c, n, 0))
        .collect()
}

#[test]
fn page_layout_moves_a_line_to_the_next_page_only_if_it_would_cross_into_it() {
    let batch = lines(&[1000, 3096]);
    assert_eq!(page_layout(&batch, 0), batch);
    let batch = lines(&[1000, 3000]);
    assert_eq!(page_layout(&batch, 5 * PAGE as u64 + 96), batch);
    assert_eq!(page_layout(&lines(&[4096]), 0), lines(&[4096]));
    // One byte more and the line moves to the next page.
    let want: Vec<u8> = [line(b'a', 1000, 3096), line(b'b', 3097, 999)].concat();
    assert_eq!(page_layout(&lines(&[1000, 3097]), 0), want);
    // A whole page's line moves too; it then ends the page, so nothing trails it.
    let want: Vec<u8> = [line(b'a', 100, 3996), line(b'b', 4096, 0)].concat();
    assert_eq!(page_layout(&lines(&[100, 4096]), 0), want);
}

#[test]
fn page_layout_pads_the_last_line_when_less_than_twice_the_longest_line_is_left() {
    let one = lines(&[1000]);
    // Room left: exactly twice the line, so no padding; then one byte less.
    assert_eq!(page_layout(&one, 1096), one);
    assert_eq!(page_layout(&one, 7 * PAGE as u64 + 1096), one);
    assert_eq!(page_layout(&one, 1097), line(b'a', 1000, 1999));
    // Between the line's length and twice it.
    assert_eq!(page_layout(&one, 1596), line(b'a', 1000, 1500));
    assert_eq!(page_layout(&one, 0), one);
    assert_eq!(page_layout(&one, 3096), one, "ends at the page end");
    // The longest line of the batch counts, not the last.
    let two = lines(&[1000, 100]);
    assert_eq!(page_layout(&two, 0), two);
    let want: Vec<u8> = [line(b'a', 1500, 0), line(b'b', 100, 2496)].concat();
    assert_eq!(page_layout(&lines(&[1500, 100]), 0), want);
    assert_eq!(page_layout(&[], 123), Vec::<u8>::new());
}

#[test]
fn page_layout_cannot_move_a_batchs_first_line_nor_lines_longer_than_a_page() {
    let batch = lines(&[200, 300]);
    assert_eq!(page_layout(&batch, 4000), batch, "the first line crosses");
    let want: Vec<u8> = [
        line(b'a', 100, 0),
        line(b'b', 5000, 0),
        line(b'c', 100, 2992),
    ]
    .concat();
    assert_eq!(page_layout(&lines(&[100, 5000, 100]), 0), want);
    assert_eq!(page_layout(&lines(&[4096]), 10), line(b'a', 4096, 4086));
}

/// Checks the layout of `batch` at `offset` line by line: the same lines with spaces added before
/// some newlines; each padded line ends at a page end and was padded only because the next line
/// would not fit in the page (or, the last, because less than twice the longest line was left);
/// no line moved this way crosses a page boundary.
fn check_layout(batch: &[u8], offset: u64) {
    let laid = page_layout(batch, offset);
    let page = PAGE as u64;
    let given: Vec<&[u8]> = batch.split_inclusive(|&b| b == b'\n').collect();
    let out: Vec<&[u8]> = laid.split_inclusive(|&b| b == b'\n').collect();
    assert_eq!(out.len(), given.len());
    let longest = given.iter().map(|l| l.len()).max().unwrap_or(0) as u64;
    let mut at = offset;
    for (k, (o, g)) in out.iter().zip(&given).enumerate() {
        let pad = (o.len() - g.len()) as u64;
        assert_eq!(o[..g.len() - 1], g[..g.len() - 1], "line {k}");
        assert!(o[g.len() - 1..o.len() - 1].iter().all(|&b| b == b' '));
        let end = at + o.len() as u64;
        if k > 0 && g.len() <= PAGE {
            assert_eq!(at / page, (end - 1) / page, "line {k} at {offset} crosses");
        }
        if pad > 0 {
            assert_eq!(end % page, 0, "line {k} padded to the page end");
            match given.get(k + 1) {
                Some(next) => assert!(next.len() as u64 > pad && next.len() <= PAGE),
                None => assert!(pad < 2 * longest),
            }
        } else if k + 1 < given.len() && given[k + 1].len() <= PAGE {
            let room = page - end % page;
            assert!(given[k + 1].len() as u64 <= room, "line {k} moved");
        }
        at = end;
    }
    if !laid.is_empty() && at % page != 0 {
        assert!(page - at % page >= 2 * longest, "room at {offset}");
    }
}

#[test]
fn page_layout_keeps_lines_inside_pages_for_any_offset_and_line_lengths() {
    let batches: [&[usize]; 6] = [
        &[1],
        &[40, 40, 40],
        &[700, 1200, 90, 2048, 2049, 1],
        &[4096, 4095, 2, 4097, 10],
        &[300; 30],
        &[1365, 1366, 1365, 1367],
    ];
    for lens in batches {
        let batch = lines(lens);
        for offset in (0..3 * PAGE as u64).step_by(97).chain([4095, 4096, 4097]) {
            check_layout(&batch, offset);
        }
    }
}

#[test]
fn cut_back_to_cuts_only_a_write_that_stopped_part_way() {
    assert_eq!(cut_back_to(100, 100, 50), None, "nothing written");
    assert_eq!(cut_back_to(100, 101, 50), Some(100));
    assert_eq!(cut_back_to(100, 120, 50), Some(100));
    assert_eq!(cut_back_to(100, 149, 50), Some(100));
    assert_eq!(cut_back_to(100, 150, 50), None, "all written");
    assert_eq!(cut_back_to(100, 200, 50), None, "other bytes follow");
    assert_eq!(cut_back_to(100, 90, 50), None, "shortened by someone else");
    assert_eq!(cut_back_to(0, 10, 50), Some(0));
}

/// Names the file [`partial_write_child`] writes to, in the child process only.
#[cfg(unix)]
const PARTIAL_WRITE_FILE: &str = "NEORL_AUDIT_PARTIAL_WRITE_FILE";

/// Run by [`a_write_stopped_by_the_file_size_limit_is_cut_back_to_whole_lines`] in a process of
/// its own (the size limit is the process's); does nothing otherwise.
#[cfg(unix)]
#[test]
fn partial_write_child() {
    let Some(path) = std::env::var_os(PARTIAL_WRITE_FILE) else {
        return;
    };
    let path = PathBuf::from(path);
    std::fs::write(&path, lines(&[4000, 4000])).expect("write the first lines");
    // SAFETY: plain system calls on this process's own signal disposition and limits.
    unsafe {
        // Past the limit `write` then fails with EFBIG instead of the signal ending the process.
        assert_ne!(libc::signal(libc::SIGXFSZ, libc::SIG_IGN), libc::SIG_ERR);
        let mut limit: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(10_000);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let mut file = OpenOptions::new().append(true).open(&path).expect("open");
    let err = write_lines(&mut file, &lines(&[250; 20])).expect_err("the limit stops the write");
    let len = file.metadata().expect("metadata").len();
    assert_eq!(len, 8000, "cut back after: {err}");
}

#[cfg(unix)]
#[test]
fn a_write_stopped_by_the_file_size_limit_is_cut_back_to_whole_lines() {
    let path = temp_trail("partial");
    let test = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, m)| m)
        .to_string()
        + "::partial_write_child";
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([test.as_str(), "--exact", "--test-threads=1", "--nocapture"])
        .env(PARTIAL_WRITE_FILE, &path)
        .output()
        .expect("run the child");
    let log = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("1 passed"), "the child ran: {log}");
    // The first write stopped part-way through the second batch's lines; none of them is left.
    assert_eq!(std::fs::read(&path).expect("read"), lines(&[4000, 4000]));
    let _ = std::fs::remove_file(&path);
}

/// Runs the writer over `msgs` to `path` (appending), `dropped` events lost beforehand.
fn run_writer(path: &Path, msgs: Vec<Msg>, dropped: u64) -> Shared {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    let (tx, rx) = sync_channel(msgs.len().max(1));
    for m in msgs {
        tx.send(m).expect("queue");
    }
    drop(tx);
    let shared = Shared::default();
    shared.dropped.store(dropped, Ordering::Relaxed);
    writer(file, rx, &shared);
    shared
}

/// A record line of exactly `len` bytes.
fn record_of_len(event: &str, len: usize) -> String {
    let start = format!("{{\"event\":\"{event}\",\"pad\":\"");
    let fill = len - start.len() - "\"}\n".len();
    format!("{start}{}\"}}\n", "x".repeat(fill))
}

#[test]
fn one_write_gathers_messages_until_it_holds_64_kib() {
    let cap = 64 * 1024;
    // Under the cap "b" joins "a"'s write and follows it on the page; at the cap it is written on
    // its own, after "a" was padded to the end of its page.
    for (a_len, b_at) in [(cap - 1, 100 + cap - 1), (cap, 17 * PAGE)] {
        let path = temp_trail(&format!("cap-{a_len}"));
        std::fs::write(&path, lines(&[100])).expect("first line");
        let msgs = vec![
            Msg::Record(record_of_len("a", a_len)),
            Msg::Record(record_of_len("b", 100)),
        ];
        let shared = run_writer(&path, msgs, 0);
        assert_eq!(shared.written.load(Ordering::Relaxed), 2);
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.find("{\"event\":\"a\""), Some(100));
        let b = text.find("{\"event\":\"b\"");
        assert_eq!(b, Some(b_at), "a is {a_len} bytes");
        let _ = std::fs::remove_file(&path);
    }
}

/// The `count` of each `audit_events_lost` line of `text`.
fn loss_counts(text: &str) -> Vec<u64> {
    text.lines()
        .filter(|l| l.starts_with("{\"event\":\"audit_events_lost\",\"level\":\"error\""))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON");
            v["count"].as_u64().expect("count")
        })
        .collect()
}

#[test]
fn a_writer_ending_with_losses_untold_writes_them_last() {
    let path = temp_trail("end-loss");
    let shared = run_writer(&path, Vec::new(), 4);
    assert_eq!(shared.written.load(Ordering::Relaxed), 0);
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_eq!(loss_counts(&text), [4]);
    let _ = std::fs::remove_file(&path);
    // Nothing lost: no loss line at all.
    run_writer(&path, vec![Msg::Record(record_of_len("a", 50))], 0);
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(loss_counts(&text).is_empty());
    let _ = std::fs::remove_file(&path);
}

#[test]
fn closing_a_trail_writes_the_losses_since_its_last_write_with_their_count() {
    let path = temp_trail("close-loss");
    let mut trail = AuditTrail::open(&path, 4).expect("open");
    let pid = trail.pid;
    let lose = |trail: &mut AuditTrail, n: usize| {
        // As if in a forked child: the events are dropped and counted.
        trail.pid = pid.wrapping_add(1);
        for _ in 0..n {
            trail.record("lost", "info", "");
        }
        trail.pid = pid;
    };
    lose(&mut trail, 2);
    trail.record("kept", "info", "");
    trail.flush();
    lose(&mut trail, 3);
    trail.close();
    assert_eq!((trail.written(), trail.dropped()), (1, 5));
    let text = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].starts_with("{\"event\":\"kept\""), "{text}");
    assert_eq!(loss_counts(&text), [2, 3], "{text}");
    assert!(lines[2].contains("\"reason\":\"audit trail opened by process"));
    let _ = std::fs::remove_file(&path);
}
