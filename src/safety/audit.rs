//! The audit trail: safety events as JSON Lines, written by a background thread.
//!
//! A batch's events go into a bounded queue as one message; a writer thread formats them
//! (structlog's field names: `event`, `level`, `timestamp`, `logger`, plus the incident fields) and
//! writes whole lines with one `write` per drained batch, so the file only ever holds complete
//! lines.
//!
//! The promise: every event queued reaches the operating system (and so survives `kill -9`) within
//! one second. Stepping does not wait on disk while the writer keeps up; if it falls more than
//! [`LAG_TARGET`] behind (more events than the disk takes), the producer waits for it to catch up,
//! so the backlog, and what a crash could take, stays under the promise. Only a writer stalled for
//! [`LAG_WAIT`] (a hung disk), a full queue, a failing disk or a closed trail drop events, and every
//! dropped event is counted ([`AuditTrail::dropped`]), told to the registries of the batches writing
//! here ([`LossSink`]: `audit_events_dropped_total` and the `audit_trail` health check), and written
//! into the trail itself as an `audit_events_lost` line at the next write that succeeds: never
//! silent. A write the disk cannot finish is cut back to the last whole line.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::checker::{EventKind, SafetyEvent};
use super::constraints::ConstraintSet;
use crate::errors::CoreError;
use crate::spec::Severity;

/// How far behind the writer may fall before producers wait for it.
pub const LAG_TARGET: Duration = Duration::from_millis(250);

/// Longest a producer waits for the writer; past it the writer counts as stalled and the
/// producer's events are dropped (counted) instead.
pub const LAG_WAIT: Duration = Duration::from_secs(5);

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
    /// The process that opened the trail: a forked child has no writer thread.
    pid: u32,
    tx: Mutex<Option<SyncSender<Msg>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    state: Arc<Shared>,
}

/// Told of every event a trail loses (a metrics registry counts them and reports them in health).
pub trait LossSink: Send + Sync {
    /// A trail starts reporting here, having lost `dropped_so_far` events before (`last_error`: why).
    fn attach(&self, dropped_so_far: u64, last_error: Option<&str>);
    /// `n` events were lost, because of `why`.
    fn lost(&self, n: u64, why: &str);
}

#[derive(Default)]
struct Shared {
    dropped: AtomicU64,
    written: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Where losses are reported. Drops are counted under this lock, so a sink attached while
    /// events are being dropped sees each loss exactly once.
    sinks: Mutex<Vec<Arc<dyn LossSink>>>,
    /// When each queued, unwritten data message was queued (oldest first).
    backlog: Mutex<VecDeque<Instant>>,
    caught_up: Condvar,
}

impl Shared {
    /// Waits while the oldest unwritten message is older than [`LAG_TARGET`]; false if the writer
    /// did not catch up within [`LAG_WAIT`].
    fn wait_for_writer(&self) -> bool {
        let deadline = Instant::now() + LAG_WAIT;
        let mut backlog = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
        while backlog.front().is_some_and(|t| t.elapsed() > LAG_TARGET) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            backlog = self
                .caught_up
                .wait_timeout(backlog, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        backlog.push_back(Instant::now());
        true
    }

    /// Takes `n` messages off the backlog (written, failed, or never queued).
    fn written_off(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut backlog = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..n {
            backlog.pop_front();
        }
        drop(backlog);
        self.caught_up.notify_all();
    }

    fn drop_events(&self, n: u64, why: String) {
        let sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        self.dropped.fetch_add(n, Ordering::Relaxed);
        for s in sinks.iter() {
            s.lost(n, &why);
        }
        drop(sinks);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(why);
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
            pid: std::process::id(),
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

    /// Reports every event lost from now on to `sink` (once per sink, however often attached),
    /// after the losses so far.
    pub fn report_losses_to(&self, sink: Arc<dyn LossSink>) {
        let mut sinks = self.state.sinks.lock().unwrap_or_else(|p| p.into_inner());
        let addr = |s: &Arc<dyn LossSink>| Arc::as_ptr(s).cast::<()>();
        if sinks.iter().any(|s| addr(s) == addr(&sink)) {
            return;
        }
        sink.attach(self.dropped(), self.last_error().as_deref());
        sinks.push(sink);
    }

    /// True in a process forked from the one that opened the trail (its writer is not here).
    fn forked(&self) -> bool {
        std::process::id() != self.pid
    }

    fn send(&self, msg: Msg, n: u64) {
        if self.forked() {
            return self.state.drop_events(
                n,
                format!(
                    "audit trail opened by process {}, used after a fork (open one per process)",
                    self.pid
                ),
            );
        }
        let guard = match self.tx.lock() {
            Ok(g) => g,
            Err(_) => {
                return self
                    .state
                    .drop_events(n, "audit queue lock poisoned".into())
            }
        };
        let Some(tx) = guard.as_ref().cloned() else {
            return self.state.drop_events(n, "audit trail is closed".into());
        };
        // Not holding the queue's lock while waiting: flush and close stay free to proceed.
        drop(guard);
        if !self.state.wait_for_writer() {
            return self.state.drop_events(
                n,
                format!(
                    "audit writer stalled: more than {:.2} s behind for {} s",
                    LAG_TARGET.as_secs_f64(),
                    LAG_WAIT.as_secs()
                ),
            );
        }
        let why = match tx.try_send(msg) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => "audit queue full",
            Err(TrySendError::Disconnected(_)) => "audit writer stopped",
        };
        self.state.written_off(1);
        self.state.drop_events(n, why.into());
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
        if self.forked() {
            return;
        }
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
            if self.forked() {
                // The writer runs in the parent only; there is nothing here to join.
                std::mem::forget(h);
            } else {
                let _ = h.join();
            }
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
    // Losses already written into the trail as `audit_events_lost` lines.
    let mut told = 0u64;
    while let Ok(first) = rx.recv() {
        let mut pending = 0u64;
        let mut messages = 0usize;
        let mut syncs = Vec::new();
        let mut next = Some(first);
        let lost = shared.dropped.load(Ordering::Relaxed);
        if lost > told {
            loss_line(&mut buf, lost - told, shared);
        }
        // Drain what is queued, up to ~64 KiB per write, so lines reach the OS promptly.
        while let Some(msg) = next {
            match msg {
                Msg::Events(src, events) => {
                    for e in &events {
                        format_event(&mut buf, &src, e);
                    }
                    pending += events.len() as u64;
                    messages += 1;
                }
                Msg::Record(line) => {
                    buf.push_str(&line);
                    pending += 1;
                    messages += 1;
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
            match write_lines(&mut file, buf.as_bytes()) {
                Ok(()) => {
                    shared.written.fetch_add(pending, Ordering::Relaxed);
                    told = told.max(lost);
                }
                Err(e) => shared.drop_events(pending, format!("write failed: {e}")),
            }
            buf.clear();
        }
        shared.written_off(messages);
        for s in syncs {
            let _ = s.send(());
        }
    }
    let lost = shared.dropped.load(Ordering::Relaxed);
    if lost > told {
        loss_line(&mut buf, lost - told, shared);
        let _ = write_lines(&mut file, buf.as_bytes());
    }
    let _ = file.sync_all();
}

/// The trail's own record of a gap: `count` events lost, and the last reason.
fn loss_line(out: &mut String, count: u64, shared: &Shared) {
    let why = shared
        .last_error
        .lock()
        .ok()
        .and_then(|e| e.clone())
        .unwrap_or_default();
    head(out, "audit_events_lost", "error", now());
    let _ = writeln!(out, ",\"count\":{count},\"reason\":\"{}\"}}", escape(&why));
}

/// A kill can stop a `write()` only where the kernel moves from one page of the file to the next
/// (it checks for fatal signals page by page; larger folios are aligned multiples of a page), so
/// lines laid out to end at every page boundary are whole in the file whatever the moment of the
/// kill.
const PAGE: usize = 4096;

/// Lays whole lines out for a file at `offset` so that no line crosses a page boundary: a line
/// that would is moved to the next page by spaces before the previous line's newline (JSON allows
/// the whitespace). The batch's first line cannot be moved that way, so the batch's last line is
/// padded to the end of its page when the room left there is less than twice the batch's longest
/// line: the next batch then starts on a fresh page or with room for a line of that size. Lines
/// longer than a page are written as they are.
fn page_layout(bytes: &[u8], offset: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8);
    let mut pos = (offset % PAGE as u64) as usize;
    let mut longest = 0;
    let pad = |out: &mut Vec<u8>, n: usize| {
        let nl = out.len() - 1;
        out.splice(nl..nl, std::iter::repeat_n(b' ', n));
    };
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let len = line.len();
        longest = longest.max(len);
        if len > PAGE - pos && len <= PAGE && out.last() == Some(&b'\n') {
            pad(&mut out, PAGE - pos);
            pos = 0;
        }
        out.extend_from_slice(line);
        pos = (pos + len) % PAGE;
    }
    if pos != 0 && PAGE - pos < 2 * longest && out.last() == Some(&b'\n') {
        pad(&mut out, PAGE - pos);
    }
    out
}

/// Appends whole lines, laid out by [`page_layout`]. If the disk fills part-way, the part written
/// is cut off again (when the file shows no other writer's bytes after it), so the file never ends
/// in a partial line that the next write would glue to a line of its own.
fn write_lines(file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
    let before = file.metadata().map(|m| m.len()).ok();
    let laid = page_layout(bytes, before.unwrap_or(0));
    let err = match file.write_all(&laid) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    if let (Some(before), Ok(now)) = (before, file.metadata().map(|m| m.len())) {
        if now > before && now < before + laid.len() as u64 {
            let _ = file.set_len(before);
        }
    }
    Err(err)
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
            let strip =
                |b: &[u8]| -> Vec<u8> { b.iter().copied().filter(|&c| c != b' ').collect() };
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
        assert!(
            shields[0].contains("\"env_id\":\"cstr-v0\",\"env_index\":0,\"episode\":1,\"step\":3")
        );
        assert!(shields[2].contains("\"env_index\":1,\"episode\":1,\"step\":4"));
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
        assert!(text.ends_with("\"i\":49}\n"));
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
}
