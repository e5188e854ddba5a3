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

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Logger of safety events (violations, shutdowns, interventions).
pub const SAFETY: &str = "neorl_industrial.safety";
/// Logger of the HTTP exporter.
pub const EXPORTER: &str = "neorl_industrial.exporter";
/// Logger of the metrics registry and push client.
pub const TELEMETRY: &str = "neorl_industrial.telemetry";

/// Most distinct keys the limiter tracks; past this, new keys share one slot.
const MAX_KEYS: usize = 4096;

/// A safety constraint violation with everything an operator needs to act on it.
#[derive(Debug, Clone, Copy)]
pub struct SafetyEvent<'a> {
    /// Env id, e.g. `ChemicalReactor-v0`.
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
    match target {
        SAFETY => {
            tracing::warn!(target: SAFETY, suppressed = n, window_seconds = window, "suppressed {n} similar events: {what}")
        }
        _ => {
            tracing::warn!(target: EXPORTER, suppressed = n, window_seconds = window, "suppressed {n} similar events: {what}")
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
    let idx = index(e.env_index);
    if e.severity == "critical" {
        tracing::error!(target: SAFETY, constraint = e.constraint, constraint_type = e.constraint_type, severity = e.severity, current_value = e.current_value, limit = e.limit, violation_id = e.violation_id, env = e.env, env_index = idx, "safety violation");
    } else {
        tracing::warn!(target: SAFETY, constraint = e.constraint, constraint_type = e.constraint_type, severity = e.severity, current_value = e.current_value, limit = e.limit, violation_id = e.violation_id, env = e.env, env_index = idx, "safety violation");
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
    let idx = index(env_index);
    tracing::error!(target: SAFETY, reason = reason, current_value = current_value, limit = limit, env = env, env_index = idx, "emergency shutdown");
}

/// Logs a human intervention (warning level), rate-limited.
pub fn human_intervention(reason: &str) {
    if !pass(SAFETY, &["intervention", reason], || {
        format!("human intervention (reason {reason:?})")
    }) {
        return;
    }
    tracing::warn!(target: SAFETY, reason = reason, "human intervention");
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
        tracing::warn!(target: EXPORTER, kind = self.kind.as_str(), peer = self.peer.as_str(), "request refused");
    }
}

/// Most events waiting to be logged; more are dropped (the rate limiter keeps this far away).
const DEFERRED_MAX: usize = 256;

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
    tracing::info!(target: EXPORTER, listeners = listeners, tls = tls, basic_auth = auth, "metrics exporter started");
}

/// Logs that an exporter stopped.
pub fn exporter_stopped(listeners: &str) {
    tracing::info!(target: EXPORTER, listeners = listeners, "metrics exporter stopped");
}

/// Logs a push to a Pushgateway.
pub fn pushed(url: &str, job: &str, bytes: usize) {
    tracing::info!(target: TELEMETRY, url = url, job = job, bytes = bytes, "pushed metrics to gateway");
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
    fn key_space_is_bounded() {
        let l = RateLimiter::new(Duration::from_secs(60), 1);
        for k in 1..(MAX_KEYS as u64 + 500) {
            l.check(k, String::new);
        }
        assert!(l.slots.lock().unwrap().len() <= MAX_KEYS + 1);
    }
}
