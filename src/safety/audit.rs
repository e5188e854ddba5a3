//! The audit trail: safety events as JSON Lines, written by a background thread.
//!
//! A batch's events go into a bounded queue as one message; a writer thread formats them
//! (structlog's field names: `event`, `level`, `timestamp`, `logger`, then `run_id` and the
//! incident fields, named as in the log lines: docs/telemetry.md) and writes whole lines with one
//! `write` per drained batch, so the file only ever holds complete lines. The run id is taken
//! when an event is queued ([`logging::run_id`]).
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
use crate::faults::Started;
use crate::spec::Severity;
use crate::telemetry::logging;

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

/// A batch's faults, as its `fault_started` lines name them.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSource {
    /// Environment id.
    pub env_id: String,
    /// By fault index: name, kind, target, target type (`observation`, `parameter`, `action`)
    /// and clock (`episode`, `lifetime`).
    pub faults: Vec<[String; 5]>,
}

enum Msg {
    /// A batch's events and the run id when they were queued.
    Events(Arc<Source>, Vec<SafetyEvent>, Arc<str>),
    /// Faults that started in a batch's envs at wall time `.2`, and the run id.
    Faults(Arc<FaultSource>, Vec<Started>, f64, Arc<str>),
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
    /// `depth` batches are queued and not yet written, of at most `capacity`.
    fn queued(&self, _depth: usize, _capacity: usize) {}
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
    /// The queue's length in batches.
    capacity: usize,
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
        let depth = backlog.len();
        drop(backlog);
        self.report_depth(depth);
        true
    }

    /// Tells the sinks how many messages wait.
    fn report_depth(&self, depth: usize) {
        let sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        for s in sinks.iter() {
            s.queued(depth, self.capacity);
        }
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
        let depth = backlog.len();
        drop(backlog);
        self.caught_up.notify_all();
        self.report_depth(depth);
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
        let state = Arc::new(Shared {
            capacity,
            ..Shared::default()
        });
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
        let run_id = logging::run_id();
        self.send(Msg::Events(Arc::clone(source), events, run_id), n);
    }

    /// Queues the starts of faults in a batch's envs at wall time `wall` (never blocks), one
    /// `fault_started` line each.
    pub fn faults(&self, source: &Arc<FaultSource>, started: Vec<Started>, wall: f64) {
        if started.is_empty() {
            return;
        }
        let n = started.len() as u64;
        let run_id = logging::run_id();
        self.send(Msg::Faults(Arc::clone(source), started, wall, run_id), n);
    }

    /// Queues a free-form event (`run_start`, `run_end`, ...) with extra JSON fields
    /// (`fields_json` must be a JSON object's members without braces, or empty).
    pub fn record(&self, event: &str, level: &str, fields_json: &str) {
        let mut line = String::with_capacity(128 + fields_json.len());
        head(&mut line, event, level, now(), &logging::run_id());
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
                Msg::Events(src, events, run_id) => {
                    for e in &events {
                        format_event(&mut buf, &src, e, &run_id);
                    }
                    pending += events.len() as u64;
                    messages += 1;
                }
                Msg::Faults(src, started, wall, run_id) => {
                    for s in &started {
                        format_fault(&mut buf, &src, s, wall, &run_id);
                    }
                    pending += started.len() as u64;
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
    head(out, "audit_events_lost", "error", now(), &logging::run_id());
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
        if let Some(len) = cut_back_to(before, now, laid.len() as u64) {
            let _ = file.set_len(len);
        }
    }
    Err(err)
}

/// The length to cut a file back to after a failed write of `laid` bytes at `before`, when it now
/// ends part-way through them (`now`): `None` if none of them or all of them are there, or if the
/// file is shorter than before or longer than the write (another writer's bytes).
fn cut_back_to(before: u64, now: u64, laid: u64) -> Option<u64> {
    (now > before && now < before + laid).then_some(before)
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

/// The fields every line starts with: `event`, `level`, `timestamp`, `logger`, `run_id` (a run id
/// needs no escaping: [`logging::check_run_id`]).
fn head(out: &mut String, event: &str, level: &str, wall: f64, run_id: &str) {
    let _ = write!(
        out,
        "{{\"event\":\"{event}\",\"level\":\"{level}\",\"timestamp\":\"{}\",\"logger\":\"neorl_industrial.safety\",\"run_id\":\"{run_id}\"",
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

/// Appends one event of run `run_id` as a JSON line.
pub fn format_event(out: &mut String, src: &Source, e: &SafetyEvent, run_id: &str) {
    let c = e
        .constraint
        .and_then(|k| src.constraints.constraints.get(usize::from(k)));
    let severity = c.map_or(Severity::Info, |c| c.severity);
    head(
        out,
        e.kind.as_str(),
        level(e.kind, severity),
        e.wall,
        run_id,
    );
    let _ = write!(
        out,
        ",\"env_id\":\"{}\",\"env_index\":{},\"episode\":{},\"episode_id\":\"{}\",\"step\":{}",
        escape(&src.env_id),
        e.env,
        e.episode,
        logging::episode_id(e.env, e.episode),
        e.step
    );
    if let Some(c) = c {
        let a = &e.alarm;
        let _ = write!(
            out,
            ",\"incident_id\":\"{}\",\"constraint\":\"{}\",\"constraint_type\":\"{}\",\"severity\":\"{}\"",
            logging::incident_id(a.incident),
            escape(&c.name),
            escape(&c.constraint_type),
            severity.as_str()
        );
        num(out, "limit", c.limit_near(a.first_value));
        num(out, "current_value", e.value);
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

/// Appends one fault start of run `run_id` as a JSON line: `fault_started` at level `warning`,
/// with the env, episode and step it started at and the fault's name, kind, target and clock.
pub fn format_fault(out: &mut String, src: &FaultSource, s: &Started, wall: f64, run_id: &str) {
    head(out, "fault_started", "warning", wall, run_id);
    let _ = write!(
        out,
        ",\"env_id\":\"{}\",\"env_index\":{},\"episode\":{},\"episode_id\":\"{}\",\"step\":{}",
        escape(&src.env_id),
        s.env,
        s.episode,
        logging::episode_id(s.env, s.episode),
        s.step
    );
    if let Some([name, kind, target, target_type, clock]) = src.faults.get(s.fault) {
        let _ = write!(
            out,
            ",\"fault\":\"{}\",\"fault_kind\":\"{kind}\",\"target\":\"{}\",\"target_type\":\"{target_type}\",\"clock\":\"{clock}\"",
            escape(name),
            escape(target)
        );
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
#[path = "audit_tests.rs"]
mod tests;
