//! The audit trail: safety events as JSON Lines, written by a background thread.
//!
//! Stepping never waits on disk: a batch's events go into a bounded queue as one message; a writer
//! thread formats them (structlog's field names: `event`, `level`, `timestamp`, `logger`, plus the
//! incident fields) and writes whole lines with one `write` per drained batch, so the file only
//! ever holds complete lines and an event reaches the operating system within one queue hop (well
//! under the one-second promise, also across `kill -9`). A full queue or a failing disk drops
//! events, and every dropped event is counted ([`AuditTrail::dropped`]), never silent.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::checker::{EventKind, SafetyEvent};
use super::constraints::ConstraintSet;
use crate::errors::CoreError;
use crate::spec::Severity;

/// Static facts about the envs whose events a message carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Environment id.
    pub env_id: String,
    /// Constraint names, types, severities and limits by index.
    pub constraints: ConstraintSet,
    /// Step length in seconds (for durations).
    pub dt_seconds: f64,
}

enum Msg {
    Events(Arc<Source>, Vec<SafetyEvent>),
    Record(String),
    Sync(SyncSender<()>),
}

/// A JSON Lines audit trail with a background writer.
pub struct AuditTrail {
    path: PathBuf,
    tx: Mutex<Option<SyncSender<Msg>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    state: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    dropped: AtomicU64,
    written: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn drop_events(&self, n: u64, why: Option<String>) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        if let Some(w) = why {
            if let Ok(mut e) = self.last_error.lock() {
                *e = Some(w);
            }
        }
    }
}

impl AuditTrail {
    /// Opens (appends to) `path`; `capacity` is the queue length in batches (>= 1).
    pub fn open(path: &Path, capacity: usize) -> Result<Self, CoreError> {
        if capacity == 0 {
            return Err(CoreError::config("audit_capacity", "must be at least 1"));
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                CoreError::config("audit_log", format!("cannot open {}: {e}", path.display()))
            })?;
        let (tx, rx) = sync_channel(capacity);
        let state = Arc::new(Shared::default());
        let shared = Arc::clone(&state);
        let worker = std::thread::Builder::new()
            .name("neorl-audit".into())
            .spawn(move || writer(file, rx, &shared))
            .map_err(|e| {
                CoreError::config("audit_log", format!("cannot start the writer thread: {e}"))
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            tx: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(worker)),
            state,
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Events dropped so far (queue full, disk errors, or sent after close).
    pub fn dropped(&self) -> u64 {
        self.state.dropped.load(Ordering::Relaxed)
    }

    /// Events written so far.
    pub fn written(&self) -> u64 {
        self.state.written.load(Ordering::Relaxed)
    }

    /// The last write error, if any.
    pub fn last_error(&self) -> Option<String> {
        self.state.last_error.lock().ok().and_then(|e| e.clone())
    }

    fn send(&self, msg: Msg, n: u64) {
        let guard = match self.tx.lock() {
            Ok(g) => g,
            Err(_) => {
                return self
                    .state
                    .drop_events(n, Some("audit queue lock poisoned".into()))
            }
        };
        let Some(tx) = guard.as_ref() else {
            return self
                .state
                .drop_events(n, Some("audit trail is closed".into()));
        };
        match tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.state.drop_events(n, Some("audit queue full".into()))
            }
            Err(TrySendError::Disconnected(_)) => self
                .state
                .drop_events(n, Some("audit writer stopped".into())),
        }
    }

    /// Queues a batch's safety events (never blocks).
    pub fn events(&self, source: &Arc<Source>, events: Vec<SafetyEvent>) {
        if events.is_empty() {
            return;
        }
        let n = events.len() as u64;
        self.send(Msg::Events(Arc::clone(source), events), n);
    }

    /// Queues a free-form event (`run_start`, `run_end`, ...) with extra JSON fields
    /// (`fields_json` must be a JSON object's members without braces, or empty).
    pub fn record(&self, event: &str, level: &str, fields_json: &str) {
        let mut line = String::with_capacity(128 + fields_json.len());
        head(&mut line, event, level, now());
        if !fields_json.trim().is_empty() {
            line.push(',');
            line.push_str(fields_json);
        }
        line.push_str("}\n");
        self.send(Msg::Record(line), 1);
    }

    /// Waits until everything queued so far is written.
    pub fn flush(&self) {
        let (tx, rx) = sync_channel(1);
        let sent = match self.tx.lock() {
            Ok(g) => g.as_ref().is_some_and(|s| s.send(Msg::Sync(tx)).is_ok()),
            Err(_) => false,
        };
        if sent {
            let _ = rx.recv();
        }
    }

    /// Flushes, stops the writer and closes the file; later events are counted as dropped.
    pub fn close(&self) {
        if let Ok(mut g) = self.tx.lock() {
            g.take();
        }
        if let Some(h) = self.worker.lock().ok().and_then(|mut w| w.take()) {
            let _ = h.join();
        }
    }
}

impl Drop for AuditTrail {
    fn drop(&mut self) {
        self.close();
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Writes queued messages until every sender is gone.
fn writer(mut file: File, rx: Receiver<Msg>, shared: &Shared) {
    let mut buf = String::new();
    while let Ok(first) = rx.recv() {
        let mut pending = 0u64;
        let mut syncs = Vec::new();
        let mut next = Some(first);
        // Drain what is queued, up to ~64 KiB per write, so lines reach the OS promptly.
        while let Some(msg) = next {
            match msg {
                Msg::Events(src, events) => {
                    for e in &events {
                        format_event(&mut buf, &src, e);
                    }
                    pending += events.len() as u64;
                }
                Msg::Record(line) => {
                    buf.push_str(&line);
                    pending += 1;
                }
                Msg::Sync(done) => syncs.push(done),
            }
            next = if buf.len() < 64 * 1024 {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !buf.is_empty() {
            match file.write_all(buf.as_bytes()) {
                Ok(()) => {
                    shared.written.fetch_add(pending, Ordering::Relaxed);
                }
                Err(e) => shared.drop_events(pending, Some(format!("write failed: {e}"))),
            }
            buf.clear();
        }
        for s in syncs {
            let _ = s.send(());
        }
    }
    let _ = file.sync_all();
}

fn level(kind: EventKind, severity: Severity) -> &'static str {
    match kind {
        EventKind::EmergencyShutdown => "critical",
        EventKind::IncidentOpened => match severity {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        },
        _ => "info",
    }
}

fn head(out: &mut String, event: &str, level: &str, wall: f64) {
    let _ = write!(
        out,
        "{{\"event\":\"{event}\",\"level\":\"{level}\",\"timestamp\":\"{}\",\"logger\":\"neorl_industrial.safety\"",
        iso8601(wall)
    );
}

fn num(out: &mut String, key: &str, v: f64) {
    if v.is_finite() {
        let _ = write!(out, ",\"{key}\":{v:?}");
    } else {
        let _ = write!(out, ",\"{key}\":null");
    }
}

/// Appends one event as a JSON line.
pub fn format_event(out: &mut String, src: &Source, e: &SafetyEvent) {
    let c = e
        .constraint
        .and_then(|k| src.constraints.constraints.get(usize::from(k)));
    let severity = c.map_or(Severity::Info, |c| c.severity);
    head(out, e.kind.as_str(), level(e.kind, severity), e.wall);
    let _ = write!(
        out,
        ",\"env_id\":\"{}\",\"env_index\":{},\"episode\":{},\"step\":{}",
        escape(&src.env_id),
        e.env,
        e.episode,
        e.step
    );
    if let Some(c) = c {
        let a = &e.alarm;
        let _ = write!(
            out,
            ",\"incident_id\":\"safety_{:06}\",\"constraint\":\"{}\",\"constraint_type\":\"{}\",\"severity\":\"{}\"",
            a.incident,
            escape(&c.name),
            escape(&c.constraint_type),
            severity.as_str()
        );
        num(out, "limit", c.limit_near(a.first_value));
        num(out, "value", e.value);
        num(out, "first_value", a.first_value);
        num(out, "peak_value", a.peak_value);
        let _ = write!(
            out,
            ",\"start_step\":{},\"start_time\":\"{}\"",
            a.start_step,
            iso8601(a.start_wall)
        );
        if matches!(
            e.kind,
            EventKind::IncidentClosed | EventKind::IncidentClosedByEpisodeEnd
        ) {
            let steps = e.step.saturating_sub(a.start_step);
            let reason = if e.kind == EventKind::IncidentClosed {
                "cleared"
            } else {
                "episode_end"
            };
            let _ = write!(
                out,
                ",\"end_step\":{},\"end_time\":\"{}\",\"duration_steps\":{steps},\"close_reason\":\"{reason}\"",
                e.step,
                iso8601(e.wall)
            );
            num(out, "duration_seconds", f64::from(steps) * src.dt_seconds);
            num(out, "duration_wall_seconds", e.wall - a.start_wall);
        }
        let _ = write!(out, ",\"response\":\"{}\"", a.response.as_str());
        num(out, "response_time_seconds", a.response_seconds);
    }
    out.push_str("}\n");
}

/// JSON string escaping.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// ISO 8601 UTC with microseconds, e.g. `2026-11-28T03:49:06.123456Z`.
pub fn iso8601(unix: f64) -> String {
    let unix = if unix.is_finite() { unix.max(0.0) } else { 0.0 };
    let secs = unix.floor() as i64;
    let micros = ((unix - secs as f64) * 1e6).round().min(999_999.0) as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(iso8601(0.0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(iso8601(951_782_400.5), "2000-02-29T00:00:00.500000Z");
        assert_eq!(iso8601(1_795_835_346.25), "2026-11-28T03:09:06.250000Z");
    }

    #[test]
    fn escape_keeps_json_valid() {
        assert_eq!(escape("a\"b\\c\nd\u{1}"), "a\\\"b\\\\c\\nd\\u0001");
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
}
