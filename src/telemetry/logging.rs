//! Structured log events (`tracing`) with a rate limiter.
//!
//! Events go through `tracing`; its `log` feature turns them into `log` records, which the Python
//! module hands to Python's `logging` (pyo3-log) under logger names `neorl_industrial.*` (the
//! event targets below). Fields appear as `key=value` after the message; the Python side lifts
//! them into record attributes.
//!
//! A violating fleet repeats the same event thousands of times a second. Each kind of event, per
//! env and constraint, may pass `burst` times per `window`; the rest are counted and reported by
//! one "suppressed N similar events" summary when the key next passes (or on [`flush_suppressed`]).
//! No lock is held while an event is emitted: emitting may wait for the GIL.
//!
//! Correlation: every event carries the process's [`run_id`], and safety events the
//! `episode_id` ([`episode_id`]) and `incident_id` ([`incident_id`]) of their [`Correlation`]
//! when known, the same values the audit trail writes, so a log line, an audit event and a metric
//! can be joined (docs/telemetry.md has the schema).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crate::errors::CoreError;

/// Logger of safety events (violations, shutdowns, interventions).
pub const SAFETY: &str = "neorl_industrial.safety";
/// Logger of the HTTP exporter.
pub const EXPORTER: &str = "neorl_industrial.exporter";
/// Logger of the metrics registry and push client.
pub const TELEMETRY: &str = "neorl_industrial.telemetry";

/// Most distinct keys the limiter tracks; past this, new keys share one slot.
const MAX_KEYS: usize = 4096;

/// Environment variable naming the run id (else one is generated per process).
pub const RUN_ID_ENV: &str = "NEORL_INDUSTRIAL_RUN_ID";

/// Longest run id accepted.
pub const RUN_ID_MAX_LEN: usize = 128;

/// The run id and how it was chosen.
#[derive(Debug, Clone)]
struct RunId {
    id: Arc<str>,
    /// Generated here (not set nor from [`RUN_ID_ENV`]): a forked child generates its own.
    generated_in: Option<u32>,
}

fn run_id_slot() -> &'static RwLock<Option<RunId>> {
    static R: RwLock<Option<RunId>> = RwLock::new(None);
    &R
}

/// Checks a run id: 1 to [`RUN_ID_MAX_LEN`] printable ASCII characters without spaces, quotes or
/// backslashes (it is written unescaped into log fields and audit lines).
pub fn check_run_id(id: &str) -> Result<(), CoreError> {
    let ok_char = |b: u8| b.is_ascii_graphic() && b != b'"' && b != b'\\' && b != b'\'';
    if id.is_empty() || id.len() > RUN_ID_MAX_LEN || !id.bytes().all(ok_char) {
        return Err(CoreError::config(
            "run_id",
            format!(
                "must be 1 to {RUN_ID_MAX_LEN} printable ASCII characters without spaces, quotes \
                 or backslashes, got {id:?}"
            ),
        ));
    }
    Ok(())
}

/// A fresh run id: 32 hex digits from the clock, the process id and an address (SplitMix64).
fn generate_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let local = 0u8;
    let mut state = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ (&local as *const u8 as u64).rotate_left(17);
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    format!("{:016x}{:016x}", next(), next())
}

/// The run id every log line and audit event carries: the one set by [`set_run_id`], else the
/// value of [`RUN_ID_ENV`] when the process first asked, else one generated once per process (a
/// forked child generates its own; a set or inherited id is kept).
pub fn run_id() -> Arc<str> {
    let pid = std::process::id();
    if let Some(r) = run_id_slot()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        if r.generated_in.is_none_or(|p| p == pid) {
            return Arc::clone(&r.id);
        }
    }
    let mut slot = run_id_slot().write().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = slot.as_ref() {
        if r.generated_in.is_none_or(|p| p == pid) {
            return Arc::clone(&r.id);
        }
    }
    let from_env = std::env::var(RUN_ID_ENV)
        .ok()
        .filter(|v| check_run_id(v).is_ok());
    let r = match from_env {
        Some(v) => RunId {
            id: v.into(),
            generated_in: None,
        },
        None => RunId {
            id: generate_run_id().into(),
            generated_in: Some(pid),
        },
    };
    let id = Arc::clone(&r.id);
    *slot = Some(r);
    id
}

/// Sets the run id from now on (checked by [`check_run_id`]).
pub fn set_run_id(id: &str) -> Result<(), CoreError> {
    check_run_id(id)?;
    *run_id_slot().write().unwrap_or_else(|p| p.into_inner()) = Some(RunId {
        id: id.into(),
        generated_in: None,
    });
    Ok(())
}

/// Forgets the run id: the next [`run_id`] reads [`RUN_ID_ENV`] again or generates a new one.
pub fn reset_run_id() {
    *run_id_slot().write().unwrap_or_else(|p| p.into_inner()) = None;
}

/// The `episode_id` of episode `episode` (1 for the first) of the env at `env_index` in its batch:
/// `"{env_index}-{episode}"`, unique within a batch of a run.
pub fn episode_id(env_index: usize, episode: u64) -> String {
    format!("{env_index}-{episode}")
}

/// The `incident_id` of incident number `n` (unique within the process): `safety_000042`.
pub fn incident_id(n: u64) -> String {
    format!("safety_{n:06}")
}

/// Where a safety event belongs, for joining its log line with the audit trail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Correlation {
    /// Episode number of the env (1 for the first), if known: logged as `episode` and `episode_id`.
    pub episode: Option<u64>,
    /// Incident number, if known (0 counts as unknown): logged as `incident_id`.
    pub incident: Option<u64>,
}

impl Correlation {
    fn episode_id(&self, env_index: Option<usize>) -> Option<String> {
        Some(episode_id(env_index?, self.episode?))
    }

    fn incident_id(&self) -> Option<String> {
        self.incident.filter(|&n| n > 0).map(incident_id)
    }
}

/// A safety constraint violation with everything an operator needs to act on it.
#[derive(Debug, Clone, Copy)]
pub struct SafetyEvent<'a> {
    /// Env id, e.g. `ChemicalReactor-v0` (logged as `env_id`).
    pub env: &'a str,
    /// Index of the env within its batch, if known.
    pub env_index: Option<usize>,
    /// Constraint name, e.g. `temperature_high`.
    pub constraint: &'a str,
    /// Constraint type (metric label), e.g. `temperature`.
    pub constraint_type: &'a str,
    /// `info`, `warning` or `critical`.
    pub severity: &'a str,
    /// The constrained value when the violation was detected.
    pub current_value: f64,
    /// The limit it crossed.
    pub limit: f64,
    /// Unique id of this violation.
    pub violation_id: &'a str,
}

#[derive(Debug)]
struct Slot {
    start: Instant,
    passed: u32,
    suppressed: u64,
    what: String,
}

/// Decides which repetitions of an event pass.
#[derive(Debug)]
pub struct RateLimiter {
    window_ms: AtomicU64,
    burst: AtomicU32,
    slots: Mutex<Slots>,
}

/// The limiter's decision for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Emit it; first report `suppressed` earlier repetitions (if non-zero) described by `what`.
    Emit {
        /// Repetitions dropped since the key last passed.
        suppressed: u64,
        /// What was suppressed.
        what: String,
    },
    /// Drop it (counted for the next summary).
    Drop,
}

impl RateLimiter {
    /// A limiter passing `burst` events per key per `window`.
    pub fn new(window: Duration, burst: u32) -> Self {
        Self {
            window_ms: AtomicU64::new(window.as_millis() as u64),
            burst: AtomicU32::new(burst),
            slots: Mutex::new(Slots::default()),
        }
    }

    /// Changes the window and burst and starts every key afresh (pending suppressed counts are
    /// discarded: [`flush_suppressed`] first to report them).
    pub fn configure(&self, window: Duration, burst: u32) {
        self.window_ms
            .store(window.as_millis() as u64, Ordering::Relaxed);
        self.burst.store(burst, Ordering::Relaxed);
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Decides for one occurrence of the event `key`, described by `what` (for summaries).
    pub fn check(&self, key: u64, what: impl FnOnce() -> String) -> Verdict {
        let window = Duration::from_millis(self.window_ms.load(Ordering::Relaxed));
        let burst = self.burst.load(Ordering::Relaxed);
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() >= MAX_KEYS && !slots.contains_key(&key) {
            slots.retain(|_, s| now.duration_since(s.start) < window || s.suppressed > 0);
        }
        let key = if slots.len() >= MAX_KEYS && !slots.contains_key(&key) {
            0
        } else {
            key
        };
        let slot = slots.entry(key).or_insert_with(|| Slot {
            start: now,
            passed: 0,
            suppressed: 0,
            what: what(),
        });
        if now.duration_since(slot.start) >= window {
            let suppressed = std::mem::take(&mut slot.suppressed);
            slot.start = now;
            slot.passed = 1;
            return Verdict::Emit {
                suppressed,
                what: slot.what.clone(),
            };
        }
        if slot.passed < burst {
            slot.passed += 1;
            return Verdict::Emit {
                suppressed: 0,
                what: String::new(),
            };
        }
        slot.suppressed += 1;
        Verdict::Drop
    }

    /// Decides for `count` occurrences of the event `key` at once, as `count` calls of
    /// [`RateLimiter::check`] at the same instant would: how many to emit (the first ones), and
    /// the earlier repetitions to report before them (with their description).
    pub fn check_many(
        &self,
        key: u64,
        count: u64,
        what: impl FnOnce() -> String,
    ) -> (u64, Option<(u64, String)>) {
        if count == 0 {
            return (0, None);
        }
        let (mut emit, mut report) = (0, None);
        if let Verdict::Emit { suppressed, what } = self.check(key, what) {
            emit += 1;
            if suppressed > 0 {
                report = Some((suppressed, what));
            }
        }
        // The rest within the same window: pass while the burst lasts, count the others.
        let burst = u64::from(self.burst.load(Ordering::Relaxed));
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        // `check` may have put the key in the shared overflow slot (0).
        let key = if slots.contains_key(&key) { key } else { 0 };
        let Some(slot) = slots.get_mut(&key) else {
            return (emit, report);
        };
        let rest = count - 1;
        let pass = rest.min(burst.saturating_sub(u64::from(slot.passed)));
        slot.passed += pass as u32;
        slot.suppressed += rest - pass;
        (emit + pass, report)
    }

    /// Takes every pending suppressed count, as `(what, count)`.
    pub fn drain(&self) -> Vec<(String, u64)> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .values_mut()
            .filter(|s| s.suppressed > 0)
            .map(|s| (s.what.clone(), std::mem::take(&mut s.suppressed)))
            .collect()
    }
}

/// The process-wide limiter (default: 5 events per key per 10 s).
pub fn limiter() -> &'static RateLimiter {
    static L: OnceLock<RateLimiter> = OnceLock::new();
    L.get_or_init(|| RateLimiter::new(Duration::from_secs(10), 5))
}

/// The limiter's key of an event: FNV-1a (64-bit) over its parts, each closed by a 0xff byte
/// (never part of UTF-8 text, so `["ab", "c"]` and `["a", "bc"]` differ). Computed for every
/// violation of every step, so a cheap hash rather than SipHash (measured: a third of the
/// instructions; the parts are names from the configuration, not input an attacker shapes).
fn key(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.as_bytes().iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // 0 is the shared overflow slot.
    h.max(1)
}

/// The limiter's map is keyed by [`key`]'s hashes already: its hasher passes them through.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        // Spread FNV's weaker low bits over the whole word (the table indexes by the low bits).
        self.0 = v ^ (v >> 29) ^ (v >> 47);
    }
}

type Slots = HashMap<u64, Slot, BuildHasherDefault<PassThrough>>;

fn summary(target: &'static str, n: u64, what: &str) {
    let window = limiter().window_ms.load(Ordering::Relaxed) as f64 / 1000.0;
    let run = run_id();
    let run = &*run;
    match target {
        SAFETY => {
            tracing::warn!(target: SAFETY, suppressed = n, window_seconds = window, run_id = run, "suppressed {n} similar events: {what}")
        }
        _ => {
            tracing::warn!(target: EXPORTER, suppressed = n, window_seconds = window, run_id = run, "suppressed {n} similar events: {what}")
        }
    }
}

fn pass(target: &'static str, parts: &[&str], what: impl FnOnce() -> String) -> bool {
    match limiter().check(key(parts), what) {
        Verdict::Drop => false,
        Verdict::Emit { suppressed, what } => {
            if suppressed > 0 {
                summary(target, suppressed, &what);
            }
            true
        }
    }
}

/// Emits every pending "suppressed N similar events" summary now.
pub fn flush_suppressed() {
    for (what, n) in limiter().drain() {
        let target = if what.starts_with("exporter") {
            EXPORTER
        } else {
            SAFETY
        };
        summary(target, n, &what);
    }
}

/// How many of `count` safety violations of `constraint` in `env` to log now (see
/// [`RateLimiter::check_many`]); reports what was suppressed before.
pub fn safety_violations_passing(env: &str, constraint: &str, count: u64) -> u64 {
    passing(&["violation", env, constraint], count, || {
        format!("safety violation (env {env:?}, constraint {constraint:?})")
    })
}

/// How many of `count` emergency shutdowns for `reason` in `env` to log now.
pub fn emergency_shutdowns_passing(env: &str, reason: &str, count: u64) -> u64 {
    passing(&["shutdown", env, reason], count, || {
        format!("emergency shutdown (env {env:?}, reason {reason:?})")
    })
}

fn passing(parts: &[&str], count: u64, what: impl FnOnce() -> String) -> u64 {
    if count == 0 {
        return 0; // nothing to decide (and no key to hash)
    }
    let (emit, report) = limiter().check_many(key(parts), count, what);
    if let Some((n, what)) = report {
        summary(SAFETY, n, &what);
    }
    emit
}

/// A fresh violation id (`sv-000001`, ...), unique within `seq`'s registry.
pub fn violation_id(seq: &AtomicU64) -> String {
    violation_id_text(seq.fetch_add(1, Ordering::Relaxed) + 1)
}

/// Violation id number `n` as logged (`sv-000001`, ...).
pub fn violation_id_text(n: u64) -> String {
    format!("sv-{n:06}")
}

fn index(i: Option<usize>) -> i64 {
    i.map_or(-1, |i| i as i64)
}

/// Logs a safety violation (error level if critical, else warning), rate-limited.
pub fn safety_violation(e: &SafetyEvent<'_>) {
    if !pass(SAFETY, &["violation", e.env, e.constraint], || {
        format!(
            "safety violation (env {:?}, constraint {:?})",
            e.env, e.constraint
        )
    }) {
        return;
    }
    safety_violation_passed(e);
}

/// Logs a safety violation the rate limiter has already let through.
pub fn safety_violation_passed(e: &SafetyEvent<'_>) {
    safety_violation_passed_in(e, Correlation::default());
}

/// Logs a safety violation the rate limiter has already let through, with its episode and
/// incident.
pub fn safety_violation_passed_in(e: &SafetyEvent<'_>, c: Correlation) {
    let idx = index(e.env_index);
    let run = run_id();
    let (run, episode) = (&*run, c.episode);
    let episode_id = c.episode_id(e.env_index);
    let incident_id = c.incident_id();
    let (episode_id, incident_id) = (episode_id.as_deref(), incident_id.as_deref());
    if e.severity == "critical" {
        tracing::error!(target: SAFETY, constraint = e.constraint, constraint_type = e.constraint_type, severity = e.severity, current_value = e.current_value, limit = e.limit, violation_id = e.violation_id, env_id = e.env, env_index = idx, run_id = run, episode, episode_id, incident_id, "safety violation");
    } else {
        tracing::warn!(target: SAFETY, constraint = e.constraint, constraint_type = e.constraint_type, severity = e.severity, current_value = e.current_value, limit = e.limit, violation_id = e.violation_id, env_id = e.env, env_index = idx, run_id = run, episode, episode_id, incident_id, "safety violation");
    }
}

/// Logs an emergency shutdown (error level), rate-limited.
pub fn emergency_shutdown(
    env: &str,
    env_index: Option<usize>,
    reason: &str,
    current_value: f64,
    limit: f64,
) {
    if !pass(SAFETY, &["shutdown", env, reason], || {
        format!("emergency shutdown (env {env:?}, reason {reason:?})")
    }) {
        return;
    }
    emergency_shutdown_passed(env, env_index, reason, current_value, limit);
}

/// Logs an emergency shutdown the rate limiter has already let through.
pub fn emergency_shutdown_passed(
    env: &str,
    env_index: Option<usize>,
    reason: &str,
    current_value: f64,
    limit: f64,
) {
    let at = (env, env_index);
    emergency_shutdown_passed_in(at, reason, current_value, limit, Correlation::default());
}

/// Logs an emergency shutdown of the env `at` (id, index) the rate limiter has already let
/// through, with its episode and incident.
pub fn emergency_shutdown_passed_in(
    at: (&str, Option<usize>),
    reason: &str,
    current_value: f64,
    limit: f64,
    c: Correlation,
) {
    let (env, idx) = (at.0, index(at.1));
    let run = run_id();
    let (run, episode) = (&*run, c.episode);
    let episode_id = c.episode_id(at.1);
    let incident_id = c.incident_id();
    let (episode_id, incident_id) = (episode_id.as_deref(), incident_id.as_deref());
    tracing::error!(target: SAFETY, reason = reason, current_value = current_value, limit = limit, env_id = env, env_index = idx, run_id = run, episode, episode_id, incident_id, "emergency shutdown");
}

/// Logs a human intervention (warning level), rate-limited.
pub fn human_intervention(reason: &str) {
    if !pass(SAFETY, &["intervention", reason], || {
        format!("human intervention (reason {reason:?})")
    }) {
        return;
    }
    let run = run_id();
    tracing::warn!(target: SAFETY, reason = reason, run_id = &*run, "human intervention");
}

/// A refused request, noted on the exporter thread and logged later by a thread that may wait
/// for the GIL (see [`wait_deferred`] and [`DeferredEvent::emit`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DeferredEvent {
    kind: String,
    peer: String,
    suppressed: u64,
    what: String,
}

impl DeferredEvent {
    /// Logs the event (after the summary of what the rate limiter suppressed before it).
    pub fn emit(&self) {
        if self.suppressed > 0 {
            summary(EXPORTER, self.suppressed, &self.what);
        }
        let run = run_id();
        tracing::warn!(target: EXPORTER, kind = self.kind.as_str(), peer = self.peer.as_str(), run_id = &*run, "request refused");
    }
}

/// Most events waiting to be logged; more are dropped (the rate limiter keeps this far away).
pub const DEFERRED_MAX: usize = 256;

/// Events waiting for a Python thread to log them.
pub fn deferred_len() -> usize {
    deferred().0.lock().unwrap_or_else(|p| p.into_inner()).len()
}

fn deferred() -> &'static (Mutex<VecDeque<DeferredEvent>>, Condvar) {
    static D: OnceLock<(Mutex<VecDeque<DeferredEvent>>, Condvar)> = OnceLock::new();
    D.get_or_init(|| (Mutex::new(VecDeque::new()), Condvar::new()))
}

/// Notes a refused request at the exporter (wrong or missing credentials, bad TLS), rate-limited.
///
/// The exporter thread never waits for the GIL, so it does not log: it queues the event, and
/// [`wait_deferred`] hands it to a Python thread that logs it.
pub fn exporter_refused(kind: &str, peer: &str) {
    let (suppressed, what) = match limiter().check(key(&["exporter", kind]), || {
        format!("exporter request refused ({kind})")
    }) {
        Verdict::Drop => return,
        Verdict::Emit { suppressed, what } => (suppressed, what),
    };
    let (queue, ready) = deferred();
    let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
    if q.len() < DEFERRED_MAX {
        q.push_back(DeferredEvent {
            kind: kind.to_string(),
            peer: peer.to_string(),
            suppressed,
            what,
        });
        ready.notify_all();
    }
}

/// Waits up to `timeout` for queued exporter events and takes them (call it with the GIL
/// released, then [`DeferredEvent::emit`] each where waiting for the GIL is harmless).
pub fn wait_deferred(timeout: Duration) -> Vec<DeferredEvent> {
    let (queue, ready) = deferred();
    let q = queue.lock().unwrap_or_else(|p| p.into_inner());
    let (mut q, _) = ready
        .wait_timeout_while(q, timeout, |q| q.is_empty())
        .unwrap_or_else(|p| p.into_inner());
    q.drain(..).collect()
}

/// Wakes every thread waiting in [`wait_deferred`] (at shutdown).
pub fn wake_deferred() {
    deferred().1.notify_all();
}

/// Logs that an exporter is serving.
pub fn exporter_started(listeners: &str, tls: bool, auth: bool) {
    let run = run_id();
    tracing::info!(target: EXPORTER, listeners = listeners, tls = tls, basic_auth = auth, run_id = &*run, "metrics exporter started");
}

/// Logs that an exporter stopped.
pub fn exporter_stopped(listeners: &str) {
    let run = run_id();
    tracing::info!(target: EXPORTER, listeners = listeners, run_id = &*run, "metrics exporter stopped");
}

/// Logs a push to a Pushgateway.
pub fn pushed(url: &str, job: &str, bytes: usize) {
    let run = run_id();
    tracing::info!(target: TELEMETRY, url = url, job = job, bytes = bytes, run_id = &*run, "pushed metrics to gateway");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_past_the_burst_are_counted_and_reported_once_the_window_ends() {
        let l = RateLimiter::new(Duration::from_millis(30), 2);
        let w = || "x".to_string();
        assert!(matches!(l.check(7, w), Verdict::Emit { suppressed: 0, .. }));
        assert!(matches!(l.check(7, w), Verdict::Emit { suppressed: 0, .. }));
        for _ in 0..10 {
            assert_eq!(l.check(7, w), Verdict::Drop);
        }
        // Another key is independent.
        assert!(matches!(l.check(8, w), Verdict::Emit { .. }));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(
            l.check(7, w),
            Verdict::Emit {
                suppressed: 10,
                what: "x".into()
            }
        );
        assert_eq!(
            l.check(7, w),
            Verdict::Emit {
                suppressed: 0,
                what: String::new()
            }
        );
        assert_eq!(l.check(7, w), Verdict::Drop);
        assert_eq!(l.drain(), vec![("x".to_string(), 1)]);
        assert!(l.drain().is_empty());
    }

    #[test]
    fn check_many_decides_as_repeated_checks_would() {
        let (one, many) = (
            RateLimiter::new(Duration::from_secs(60), 5),
            RateLimiter::new(Duration::from_secs(60), 5),
        );
        let mut emitted = 0;
        for count in [3u64, 0, 4, 10, 1] {
            let singles = (0..count)
                .filter(|_| one.check(7, || "x".into()) != Verdict::Drop)
                .count() as u64;
            let (emit, report) = many.check_many(7, count, || "x".into());
            assert_eq!(emit, singles, "batch of {count}");
            assert!(report.is_none());
            emitted += emit;
        }
        assert_eq!(emitted, 5);
        assert_eq!(many.drain(), one.drain());
        assert_eq!(many.drain(), Vec::new());
    }

    #[test]
    fn run_ids_are_printable_ascii_without_quotes_or_spaces() {
        for ok in [
            "a",
            "run-7",
            "0123abcdef",
            "exp/12:run.3_x",
            &"x".repeat(RUN_ID_MAX_LEN),
        ] {
            assert!(check_run_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a\"b",
            "a\\b",
            "a'b",
            "é",
            "a\nb",
            &"x".repeat(RUN_ID_MAX_LEN + 1),
        ] {
            assert!(check_run_id(bad).is_err(), "{bad:?}");
        }
        assert!(set_run_id("two words").is_err());
        let id = generate_run_id();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_ne!(generate_run_id(), generate_run_id());
    }

    #[test]
    fn episode_and_incident_ids_are_the_audit_trails() {
        assert_eq!(episode_id(3, 2), "3-2");
        assert_eq!(episode_id(0, 17), "0-17");
        assert_eq!(incident_id(42), "safety_000042");
        assert_eq!(incident_id(1_234_567), "safety_1234567");
        let c = Correlation {
            episode: Some(5),
            incident: Some(0),
        };
        assert_eq!(c.episode_id(Some(1)).as_deref(), Some("1-5"));
        assert_eq!(c.episode_id(None), None, "no env index, no episode id");
        assert_eq!(c.incident_id(), None, "incident 0 is none yet");
        assert_eq!(Correlation::default().episode_id(Some(1)), None);
    }

    /// Safety log records of the envs named `capture-*`, as `log` sees them.
    static CAPTURED: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, r: &log::Record<'_>) {
            let text = r.args().to_string();
            if r.target() == SAFETY && text.contains("capture-") {
                CAPTURED.lock().unwrap().push((r.level(), text));
            }
        }
        fn flush(&self) {}
    }

    fn captured(env: &str) -> Vec<(log::Level, String)> {
        let quoted = format!("env_id=\"{env}\"");
        CAPTURED
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t)| t.contains(&quoted))
            .cloned()
            .collect()
    }

    #[test]
    fn log_lines_carry_the_run_the_episode_and_the_incident() {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let _ = log::set_boxed_logger(Box::new(Capture));
            log::set_max_level(log::LevelFilter::Info);
        });
        let e = SafetyEvent {
            env: "capture-a",
            env_index: Some(3),
            constraint: "t_high",
            constraint_type: "temperature",
            severity: "critical",
            current_value: 325.5,
            limit: 320.0,
            violation_id: "sv-000009",
        };
        let c = Correlation {
            episode: Some(2),
            incident: Some(42),
        };
        safety_violation_passed_in(&e, c);
        let run = run_id();
        let (level, text) = captured("capture-a").pop().expect("logged");
        assert_eq!(level, log::Level::Error);
        assert_eq!(
            text,
            format!(
                "safety violation constraint=\"t_high\" constraint_type=\"temperature\" \
                 severity=\"critical\" current_value=325.5 limit=320.0 violation_id=\"sv-000009\" \
                 env_id=\"capture-a\" env_index=3 run_id=\"{run}\" episode=2 episode_id=\"3-2\" \
                 incident_id=\"safety_000042\""
            )
        );
        // Unknown episode and incident: no such fields; no env index: -1.
        let e = SafetyEvent {
            env: "capture-b",
            env_index: None,
            severity: "warning",
            ..e
        };
        safety_violation_passed(&e);
        let (level, text) = captured("capture-b").pop().expect("logged");
        assert_eq!(level, log::Level::Warn);
        assert!(
            text.ends_with(&format!("env_index=-1 run_id=\"{run}\"")),
            "{text}"
        );
        let at = ("capture-c", Some(1));
        emergency_shutdown_passed_in(at, "t_high", 351.0, 350.0, c);
        let (level, text) = captured("capture-c").pop().expect("logged");
        assert_eq!(level, log::Level::Error);
        assert_eq!(
            text,
            format!(
                "emergency shutdown reason=\"t_high\" current_value=351.0 limit=350.0 \
                 env_id=\"capture-c\" env_index=1 run_id=\"{run}\" episode=2 episode_id=\"1-2\" \
                 incident_id=\"safety_000042\""
            )
        );
    }

    /// The only test that changes the process's run id (tests run in parallel).
    #[test]
    fn every_audit_line_carries_the_run_id_of_when_it_was_queued() {
        use crate::safety::audit::{AuditTrail, Source};
        use crate::safety::{EventKind, SafetyEvent as Event};
        let dir = std::env::temp_dir().join(format!("neorl-log-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("run-id.jsonl");
        let _ = std::fs::remove_file(&path);
        let trail = AuditTrail::open(&path, 8).expect("open");
        let src = Arc::new(Source {
            env_id: "cstr-v0".into(),
            constraints: Default::default(),
            dt_seconds: 0.5,
        });
        let shield = Event {
            kind: EventKind::ShieldIntervention,
            env: 4,
            episode: 1,
            constraint: None,
            step: 9,
            wall: 0.0,
            value: 0.5,
            alarm: Default::default(),
        };
        set_run_id("run-a").expect("a valid run id");
        trail.record("first", "info", "");
        trail.events(&src, vec![shield]);
        set_run_id("run-b").expect("a valid run id");
        trail.record("second", "info", "\"k\":1");
        trail.close();
        reset_run_id();
        let generated = run_id();
        assert_eq!((generated.len(), run_id()), (32, generated));
        let text = std::fs::read_to_string(&path).expect("read");
        let runs: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
            .map(|v| format!("{} {}", v["event"], v["run_id"]))
            .collect();
        let want = [
            "first\" \"run-a",
            "shield_intervention\" \"run-a",
            "second\" \"run-b",
        ];
        assert_eq!(runs, want.map(|w| format!("\"{w}\"")), "{text}");
        assert!(
            text.contains("\"episode_id\":\"4-1\",\"step\":9}"),
            "{text}"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn key_space_is_bounded() {
        let l = RateLimiter::new(Duration::from_secs(60), 1);
        for k in 1..(MAX_KEYS as u64 + 500) {
            l.check(k, String::new);
        }
        assert!(l.slots.lock().unwrap().len() <= MAX_KEYS + 1);
    }
}
