//! Health state and the `/health/detailed` report.
//!
//! Status words follow the IETF health-check draft (`pass`, `warn`, `fail`). Readiness fails only
//! on `fail`; liveness never consults any check. The exporter reads this state without Python:
//! checks written in Python run on a Python thread and store their results here with a lifetime,
//! so a hung or dead checker shows up as a stale (failed) result instead of blocking a probe.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::clock::{iso8601, unix_now};
use super::process;

/// Result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Healthy.
    Pass,
    /// Degraded but serving.
    Warn,
    /// Unhealthy: readiness answers 503.
    Fail,
}

impl Status {
    /// The word used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }

    /// Parses `pass`, `warn` or `fail`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pass" => Some(Status::Pass),
            "warn" => Some(Status::Warn),
            "fail" => Some(Status::Fail),
            _ => None,
        }
    }
}

/// What an env batch reports about its safety layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SafetyState {
    /// Constraints are checked every step.
    Active,
    /// Checking is switched off.
    Inactive,
    /// An emergency shutdown holds the process down.
    ShutDown,
}

#[derive(Debug, Clone)]
struct UserCheck {
    status: Status,
    output: String,
    updated: Instant,
    ttl: Duration,
}

/// One entry of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// Check name.
    pub name: String,
    /// Its status.
    pub status: Status,
    /// Human explanation.
    pub output: String,
    /// A measured value and its unit, if the check has one.
    pub observed: Option<(f64, &'static str)>,
    /// More fields of the check's JSON object (the model's identity).
    pub details: Vec<(&'static str, String)>,
}

/// Facts the report needs from outside the registry.
#[derive(Debug, Clone, Default)]
pub struct ReportContext {
    /// Memory limit in bytes (`None`: the cgroup limit, else the machine's memory).
    pub memory_limit_bytes: Option<u64>,
    /// The serving exporter's listeners, if the report is for an exporter.
    pub exporter_listeners: Option<Vec<String>>,
}

/// The health of the process as the registry sees it.
#[derive(Debug)]
pub struct HealthState {
    started: Instant,
    live_batches: AtomicUsize,
    inactive_batches: AtomicUsize,
    shutdown_batches: AtomicUsize,
    model: Mutex<ModelState>,
    global_inactive: AtomicBool,
    global_shutdown: AtomicBool,
    checks: Mutex<BTreeMap<String, UserCheck>>,
    audit: AuditHealth,
}

/// The identity of a served model, as `model_info` and the `model_loaded` check show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelIdentity {
    /// Model name (the file's stem, or what the user named it).
    pub name: String,
    /// Model version (the file's metadata, the user's, or the digest's first 12 digits).
    pub version: String,
    /// Framework that runs it (`sb3`, `torchscript`, `onnx`, `d3rlpy`, `python`, `builtin`).
    pub framework: String,
    /// SHA-256 of the model file (empty for code).
    pub sha256: String,
}

/// What the `model_loaded` check knows of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ModelState {
    /// Nobody said: a live env batch counts as a model.
    Unset,
    /// A service is loading its model: not ready until it answers a probe batch.
    Loading(String),
    /// Loaded (and, for a service, probed), with its identity when known.
    Loaded(Option<ModelIdentity>),
}

/// What the audit trails writing for this registry's batches lost.
#[derive(Debug, Default)]
struct AuditHealth {
    trails: AtomicUsize,
    lost: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Default for HealthState {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            live_batches: AtomicUsize::new(0),
            inactive_batches: AtomicUsize::new(0),
            shutdown_batches: AtomicUsize::new(0),
            model: Mutex::new(ModelState::Unset),
            global_inactive: AtomicBool::new(false),
            global_shutdown: AtomicBool::new(false),
            checks: Mutex::new(BTreeMap::new()),
            audit: AuditHealth::default(),
        }
    }
}

/// Memory use at or above this fraction of the limit warns.
const MEMORY_WARN: f64 = 0.9;

impl HealthState {
    /// Seconds since the registry was created.
    pub fn uptime(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// An env batch came to life (`+1`) or went away (`-1`) in `state`.
    pub(crate) fn batch(&self, state: SafetyState, delta: isize) {
        let add = |c: &AtomicUsize| {
            if delta >= 0 {
                c.fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
            } else {
                c.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
            }
        };
        match state {
            SafetyState::Active => {}
            SafetyState::Inactive => add(&self.inactive_batches),
            SafetyState::ShutDown => add(&self.shutdown_batches),
        }
    }

    /// Counts a live batch in or out (the "model loaded" check).
    pub(crate) fn live(&self, delta: isize) {
        if delta >= 0 {
            self.live_batches
                .fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
        } else {
            self.live_batches
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }

    /// Marks a model (policy) as loaded, for processes that serve a policy without env batches.
    pub fn set_model_loaded(&self, loaded: bool) {
        *self.model_state() = if loaded {
            ModelState::Loaded(None)
        } else {
            ModelState::Unset
        };
    }

    /// A service is loading `what`: the check fails (not ready) until [`Self::set_model`].
    pub fn set_model_loading(&self, what: &str) {
        *self.model_state() = ModelState::Loading(what.to_string());
    }

    /// The served model, loaded and answering.
    pub fn set_model(&self, model: ModelIdentity) {
        *self.model_state() = ModelState::Loaded(Some(model));
    }

    fn model_state(&self) -> std::sync::MutexGuard<'_, ModelState> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Process-wide safety status, for controllers that run their own safety layer.
    pub fn set_safety(&self, active: bool, shut_down: bool) {
        self.global_inactive.store(!active, Ordering::Relaxed);
        self.global_shutdown.store(shut_down, Ordering::Relaxed);
    }

    /// Stores the result of a user check, valid for `ttl` (stale results fail).
    pub fn set_check(&self, name: &str, status: Status, output: &str, ttl: Duration) {
        let mut checks = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        checks.insert(
            name.to_string(),
            UserCheck {
                status,
                output: output.to_string(),
                updated: Instant::now(),
                ttl,
            },
        );
    }

    /// An audit trail reports its losses here (`lost` events so far, `why` the last).
    pub(crate) fn audit_attached(&self, lost: u64, why: Option<&str>) {
        self.audit.trails.fetch_add(1, Ordering::Relaxed);
        if lost > 0 {
            self.audit_lost(lost, why.unwrap_or("unknown"));
        }
    }

    /// An audit trail lost `n` events.
    pub(crate) fn audit_lost(&self, n: u64, why: &str) {
        self.audit.lost.fetch_add(n, Ordering::Relaxed);
        let mut last = self
            .audit
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *last = Some(why.to_string());
    }

    /// Forgets a user check; true if it existed.
    pub fn remove_check(&self, name: &str) -> bool {
        let mut checks = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        checks.remove(name).is_some()
    }

    /// Runs every check.
    pub fn report(&self, ctx: &ReportContext) -> Report {
        let mut checks = vec![self.safety_check(), self.model_check(), memory_check(ctx)];
        if let Some(l) = &ctx.exporter_listeners {
            checks.push(CheckResult {
                name: "exporter".into(),
                status: Status::Pass,
                output: format!("serving on {}", l.join(", ")),
                observed: None,
                details: Vec::new(),
            });
        }
        checks.extend(self.audit_check());
        checks.extend(self.user_checks());
        let status = checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Pass);
        Report {
            status,
            uptime: self.uptime(),
            checks,
        }
    }

    fn safety_check(&self) -> CheckResult {
        let live = self.live_batches.load(Ordering::Relaxed);
        let down = self.shutdown_batches.load(Ordering::Relaxed);
        let off = self.inactive_batches.load(Ordering::Relaxed);
        let (status, output) = if self.global_shutdown.load(Ordering::Relaxed) {
            (Status::Fail, "emergency shutdown reported".to_string())
        } else if down > 0 {
            (
                Status::Fail,
                format!("emergency shutdown in {down} env batch(es)"),
            )
        } else if self.global_inactive.load(Ordering::Relaxed) {
            (
                Status::Warn,
                "safety monitoring reported inactive".to_string(),
            )
        } else if off > 0 {
            (
                Status::Warn,
                format!("safety monitoring off in {off} of {live} env batch(es)"),
            )
        } else if live == 0 {
            (
                Status::Warn,
                "no environment batch is monitored".to_string(),
            )
        } else {
            (Status::Pass, format!("active in {live} env batch(es)"))
        };
        CheckResult {
            name: "safety_system".into(),
            status,
            output,
            observed: None,
            details: Vec::new(),
        }
    }

    /// `warn` once any audit event was lost (the trail is incomplete, the process still serves);
    /// absent while no trail reports here.
    fn audit_check(&self) -> Option<CheckResult> {
        let lost = self.audit.lost.load(Ordering::Relaxed);
        let trails = self.audit.trails.load(Ordering::Relaxed);
        if lost == 0 && trails == 0 {
            return None;
        }
        let (status, output) = if lost == 0 {
            (Status::Pass, "no audit event lost".to_string())
        } else {
            let last = self
                .audit
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_default();
            (
                Status::Warn,
                format!("{lost} audit event(s) lost, last because: {last}"),
            )
        };
        Some(CheckResult {
            name: "audit_trail".into(),
            status,
            output,
            observed: Some((lost as f64, "events")),
            details: Vec::new(),
        })
    }

    fn model_check(&self) -> CheckResult {
        let live = self.live_batches.load(Ordering::Relaxed);
        let mut details = Vec::new();
        let (status, output) = match &*self.model_state() {
            ModelState::Loaded(Some(m)) => {
                details = vec![
                    ("name", m.name.clone()),
                    ("version", m.version.clone()),
                    ("framework", m.framework.clone()),
                    ("sha256", m.sha256.clone()),
                ];
                let what = format!("{} {} ({})", m.name, m.version, m.framework);
                (Status::Pass, format!("model {what} loaded"))
            }
            ModelState::Loaded(None) => (Status::Pass, "model loaded".to_string()),
            ModelState::Loading(what) => (
                Status::Fail,
                format!("loading {what}: not yet answered a probe batch"),
            ),
            ModelState::Unset if live > 0 => (Status::Pass, format!("{live} env batch(es) live")),
            ModelState::Unset => (
                Status::Fail,
                "no model loaded and no env batch live".to_string(),
            ),
        };
        CheckResult {
            name: "model_loaded".into(),
            status,
            output,
            observed: None,
            details,
        }
    }

    fn user_checks(&self) -> Vec<CheckResult> {
        let checks = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        checks
            .iter()
            .map(|(name, c)| {
                let age = c.updated.elapsed();
                let (status, output) = if age > c.ttl {
                    (
                        Status::Fail,
                        format!("stale: no result for {:.1}s", age.as_secs_f64()),
                    )
                } else {
                    (c.status, c.output.clone())
                };
                CheckResult {
                    name: name.clone(),
                    status,
                    output,
                    observed: None,
                    details: Vec::new(),
                }
            })
            .collect()
    }
}

fn memory_check(ctx: &ReportContext) -> CheckResult {
    let rss = process::read().map(|s| s.resident_memory_bytes);
    let limit = ctx
        .memory_limit_bytes
        .map(|l| l as f64)
        .or_else(detect_memory_limit);
    let (status, output, observed) = match (rss, limit) {
        (Some(r), Some(l)) if l > 0.0 => {
            let frac = r / l;
            let status = if frac >= 1.0 {
                Status::Fail
            } else if frac >= MEMORY_WARN {
                Status::Warn
            } else {
                Status::Pass
            };
            (
                status,
                format!(
                    "{:.0} MiB of {:.0} MiB ({:.1}%)",
                    r / 1048576.0,
                    l / 1048576.0,
                    frac * 100.0
                ),
                Some((r, "bytes")),
            )
        }
        _ => (Status::Warn, "memory usage unavailable".to_string(), None),
    };
    CheckResult {
        name: "memory_usage".into(),
        status,
        output,
        observed,
        details: Vec::new(),
    }
}

/// The cgroup memory limit (v2, then v1), else the machine's total memory.
pub fn detect_memory_limit() -> Option<f64> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let cgroup = read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| *v > 0.0 && *v < (1u64 << 60) as f64);
    cgroup.or_else(|| {
        read("/proc/meminfo")?
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<f64>()
            .ok()
            .map(|kb| kb * 1024.0)
    })
}

/// The outcome of every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The worst status of any check.
    pub status: Status,
    /// Seconds since the registry was created.
    pub uptime: f64,
    /// Each check's result.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// The report as JSON (`application/health+json`).
    pub fn to_json(&self, service: &str) -> String {
        let mut checks = Map::new();
        for c in &self.checks {
            let mut e = Map::new();
            e.insert("status".into(), json!(c.status.as_str()));
            e.insert("output".into(), json!(c.output));
            if let Some((v, unit)) = c.observed {
                e.insert("observedValue".into(), json!(v));
                e.insert("observedUnit".into(), json!(unit));
            }
            for (k, v) in &c.details {
                e.insert((*k).into(), json!(v));
            }
            checks.insert(c.name.clone(), Value::Object(e));
        }
        json!({
            "status": self.status.as_str(),
            "service": service,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime": self.uptime,
            "timestamp": iso8601(unix_now()),
            "checks": checks,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(r: &Report, name: &str) -> Status {
        r.checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.status)
            .unwrap()
    }

    #[test]
    fn no_batch_means_not_ready_and_a_batch_makes_it_ready() {
        let h = HealthState::default();
        let ctx = ReportContext {
            memory_limit_bytes: Some(1 << 40),
            exporter_listeners: None,
        };
        let r = h.report(&ctx);
        assert_eq!(status_of(&r, "model_loaded"), Status::Fail);
        assert_eq!(r.status, Status::Fail);
        h.live(1);
        h.batch(SafetyState::Active, 1);
        assert_eq!(h.report(&ctx).status, Status::Pass);
        h.batch(SafetyState::ShutDown, 1);
        assert_eq!(status_of(&h.report(&ctx), "safety_system"), Status::Fail);
    }

    #[test]
    fn memory_over_the_limit_fails_and_stale_checks_fail() {
        let h = HealthState::default();
        h.set_model_loaded(true);
        let tight = ReportContext {
            memory_limit_bytes: Some(1),
            exporter_listeners: None,
        };
        assert_eq!(status_of(&h.report(&tight), "memory_usage"), Status::Fail);
        h.set_check("db", Status::Pass, "ok", Duration::from_millis(0));
        std::thread::sleep(Duration::from_millis(2));
        let r = h.report(&ReportContext::default());
        assert_eq!(status_of(&r, "db"), Status::Fail);
        let v: Value = serde_json::from_str(&r.to_json("svc")).unwrap();
        assert_eq!(v["checks"]["db"]["status"], "fail");
        assert!(h.remove_check("db"));
    }

    #[test]
    fn audit_losses_warn() {
        let h = HealthState::default();
        assert!(h.audit_check().is_none());
        h.audit_attached(0, None);
        assert_eq!(h.audit_check().map(|c| c.status), Some(Status::Pass));
        h.audit_lost(3, "write failed: No space left on device (os error 28)");
        let c = h.audit_check().unwrap();
        assert_eq!(c.status, Status::Warn);
        assert!(c.output.starts_with("3 audit event(s) lost") && c.output.contains("No space"));
    }

    fn check_of(r: &Report, name: &str) -> (Status, String) {
        let c = r.checks.iter().find(|c| c.name == name).unwrap();
        (c.status, c.output.clone())
    }

    fn roomy() -> ReportContext {
        ReportContext {
            memory_limit_bytes: Some(1 << 50),
            exporter_listeners: None,
        }
    }

    #[test]
    fn uptime_counts_up_from_creation() {
        let h = HealthState::default();
        let a = h.uptime();
        std::thread::sleep(Duration::from_millis(5));
        let b = h.uptime();
        assert!(a >= 0.0 && b >= a + 0.004 && b < 60.0, "{a} {b}");
        assert!(h.report(&roomy()).uptime >= b);
    }

    #[test]
    fn batches_come_and_go_in_each_state() {
        let h = HealthState::default();
        h.live(1);
        h.live(1);
        h.batch(SafetyState::Inactive, 1);
        let r = h.report(&roomy());
        assert_eq!(
            check_of(&r, "safety_system"),
            (
                Status::Warn,
                "safety monitoring off in 1 of 2 env batch(es)".into()
            )
        );
        assert_eq!(
            check_of(&r, "model_loaded"),
            (Status::Pass, "2 env batch(es) live".into())
        );
        h.batch(SafetyState::Inactive, -1);
        h.live(-1);
        assert_eq!(
            check_of(&h.report(&roomy()), "safety_system"),
            (Status::Pass, "active in 1 env batch(es)".into())
        );
        h.batch(SafetyState::ShutDown, 1);
        assert_eq!(
            check_of(&h.report(&roomy()), "safety_system"),
            (Status::Fail, "emergency shutdown in 1 env batch(es)".into())
        );
        h.batch(SafetyState::ShutDown, -1);
        h.live(-1);
        let r = h.report(&roomy());
        assert_eq!(
            check_of(&r, "safety_system"),
            (Status::Warn, "no environment batch is monitored".into())
        );
        assert_eq!(check_of(&r, "model_loaded").0, Status::Fail);
    }

    #[test]
    fn a_loading_model_fails_the_check_even_with_live_batches_until_it_is_set() {
        let h = HealthState::default();
        h.live(1);
        h.set_model_loading("policy.zip");
        let r = h.report(&roomy());
        assert_eq!(
            check_of(&r, "model_loaded"),
            (
                Status::Fail,
                "loading policy.zip: not yet answered a probe batch".into()
            )
        );
        assert_eq!(r.status, Status::Fail);
        h.set_model(ModelIdentity {
            name: "ppo".into(),
            version: "3".into(),
            framework: "sb3".into(),
            sha256: "ab".repeat(32),
        });
        let r = h.report(&roomy());
        assert_eq!(
            check_of(&r, "model_loaded"),
            (Status::Pass, "model ppo 3 (sb3) loaded".into())
        );
        let json: Value = serde_json::from_str(&r.to_json("svc")).unwrap();
        let c = &json["checks"]["model_loaded"];
        assert_eq!(c["name"], "ppo");
        assert_eq!(c["version"], "3");
        assert_eq!(c["framework"], "sb3");
        assert_eq!(c["sha256"], "ab".repeat(32));
        assert!(json["checks"]["memory_usage"].get("name").is_none());
    }

    #[test]
    fn model_and_process_wide_safety_flags() {
        let h = HealthState::default();
        h.set_model_loaded(true);
        assert_eq!(
            check_of(&h.report(&roomy()), "model_loaded"),
            (Status::Pass, "model loaded".into())
        );
        h.set_model_loaded(false);
        assert_eq!(
            check_of(&h.report(&roomy()), "model_loaded").0,
            Status::Fail
        );
        h.live(1);
        h.set_safety(true, false);
        assert_eq!(
            check_of(&h.report(&roomy()), "safety_system").0,
            Status::Pass
        );
        h.set_safety(false, false);
        assert_eq!(
            check_of(&h.report(&roomy()), "safety_system"),
            (Status::Warn, "safety monitoring reported inactive".into())
        );
        h.set_safety(true, true);
        assert_eq!(
            check_of(&h.report(&roomy()), "safety_system"),
            (Status::Fail, "emergency shutdown reported".into())
        );
    }

    #[test]
    fn a_trail_attached_with_losses_warns_at_once() {
        let h = HealthState::default();
        h.audit_attached(3, Some("queue full"));
        let c = h.audit_check().unwrap();
        assert_eq!(c.status, Status::Warn);
        assert_eq!(c.output, "3 audit event(s) lost, last because: queue full");
        assert_eq!(c.observed, Some((3.0, "events")));
        let h = HealthState::default();
        h.audit_attached(2, None);
        assert!(h
            .audit_check()
            .unwrap()
            .output
            .ends_with("because: unknown"));
    }

    #[test]
    fn user_checks_are_kept_replaced_and_removed() {
        let h = HealthState::default();
        assert!(!h.remove_check("db"));
        h.set_check("db", Status::Warn, "slow", Duration::from_secs(60));
        assert_eq!(
            check_of(&h.report(&roomy()), "db"),
            (Status::Warn, "slow".into())
        );
        assert!(h.remove_check("db"));
        assert!(!h.remove_check("db"));
        assert!(h.report(&roomy()).checks.iter().all(|c| c.name != "db"));
    }

    #[test]
    fn memory_check_needs_a_positive_limit_and_finds_the_machine_s() {
        let h = HealthState::default();
        let zero = ReportContext {
            memory_limit_bytes: Some(0),
            exporter_listeners: None,
        };
        let (status, output) = check_of(&h.report(&zero), "memory_usage");
        assert_eq!(
            (status, output.as_str()),
            (Status::Warn, "memory usage unavailable")
        );
        let (status, _) = check_of(&h.report(&roomy()), "memory_usage");
        assert_eq!(status, Status::Pass);
        // The limit found: the cgroup's, else the machine's memory (read here independently).
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let cgroup = read("/sys/fs/cgroup/memory.max")
            .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|v| *v > 0.0 && *v < (1u64 << 60) as f64);
        let total_kb: Option<f64> = read("/proc/meminfo").and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        });
        let expect = cgroup.or(total_kb.map(|kb| kb * 1024.0));
        assert_eq!(detect_memory_limit(), expect);
        if let Some(limit) = expect {
            assert!(limit > 16.0 * 1048576.0, "{limit}");
            // No limit given: the detected one is used, so the check has a figure.
            let (_, output) = check_of(&h.report(&ReportContext::default()), "memory_usage");
            assert!(output.contains("MiB of"), "{output}");
        }
    }

    #[test]
    fn status_words_round_trip() {
        for s in [Status::Pass, Status::Warn, Status::Fail] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("ok"), None);
        assert_eq!(Status::parse("Pass"), None);
    }
}
