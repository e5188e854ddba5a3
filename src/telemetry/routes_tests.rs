//! Request handling over real HTTP/1.1 connections: each route's status, type and body, the
//! method rule, basic auth, the bounded bcrypt queue, and the answers given when every connection
//! slot is taken. Most exchanges run in memory through the listeners' own connection setup; a few
//! go through a running exporter over TCP.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use base64::Engine;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::telemetry::exporter::{serve_http, Exporter, ExporterConfig};
use crate::telemetry::registry::Format;
use crate::telemetry::webconfig::WebConfig;

/// Bound on any one exchange or wait: only a hang reaches it.
const PATIENCE: Duration = Duration::from_secs(30);

const PLAIN: &str = "text/plain; charset=utf-8";
const BUSY_BODY: &str = "Service Unavailable: too many connections\n";

fn state(headers: Vec<(HeaderName, HeaderValue)>) -> ServerState {
    ServerState {
        registry: Arc::new(Registry::new(16)),
        auth: None,
        headers,
        report: ReportContext::default(),
        gate: AuthGate::default(),
        encoder: Arc::default(),
        control: Arc::new(Control::new(false)),
        open_probes: false,
    }
}

/// A state serving a fresh registry with a memory limit no process reaches, an extra
/// `x-frame-options: deny` header and, when `locked`, basic auth for alice (password "pw").
fn served(locked: bool) -> Arc<ServerState> {
    let mut s = state(vec![(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("deny"),
    )]);
    s.report.memory_limit_bytes = Some(1 << 50);
    if locked {
        let mut users = BTreeMap::new();
        // bcrypt's cheapest cost: a verification takes about a millisecond.
        users.insert("alice".to_string(), bcrypt::hash("pw", 4).unwrap());
        s.auth = BasicAuth::new(&users).map(Arc::new);
    }
    Arc::new(s)
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn peer() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 40000))
}

fn basic(user: &str, pass: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {b}")
}

/// One request, sent with `connection: close`.
#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
}

fn get(path: &str) -> Req {
    method("GET", path)
}

fn method(method: &'static str, path: &str) -> Req {
    Req {
        method,
        path: path.to_string(),
        headers: Vec::new(),
    }
}

impl Req {
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    fn auth(self, user: &str, pass: &str) -> Self {
        self.header("authorization", &basic(user, pass))
    }

    fn bytes(&self) -> Vec<u8> {
        let mut r = format!(
            "{} {} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n",
            self.method, self.path
        );
        for (k, v) in &self.headers {
            r += &format!("{k}: {v}\r\n");
        }
        r += "\r\n";
        r.into_bytes()
    }
}

/// A parsed response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn parse(raw: &[u8]) -> Self {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head in {text:?}"));
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap_or("");
        assert!(first.starts_with("HTTP/1.1 "), "status line {first:?}");
        let status = first[9..12].parse().unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Self {
            status,
            headers,
            body: body.to_string(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    /// Status, content type and body of a short text answer, with the headers every answer has.
    fn assert_plain(&self, status: u16, body: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type(), PLAIN, "{self:?}");
        assert_eq!(self.body, body, "{self:?}");
        self.assert_common();
    }

    fn assert_common(&self) {
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(self.header("x-frame-options"), Some("deny"));
    }

    /// A 503 of a connection in triage.
    fn assert_busy(&self) {
        self.assert_plain(503, BUSY_BODY);
        assert_eq!(self.header("retry-after"), Some("1"), "{self:?}");
    }
}

/// Which entry point answers the connection.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// `handle`, through the listeners' connection setup.
    Slot,
    /// `handle_when_busy`, as a connection that found every slot taken.
    Triage,
}

/// Serves one connection the way triage does: one request, no keep-alive.
async fn serve_triage(io: DuplexStream, state: Arc<ServerState>, kind: Listener) {
    let svc = service_fn(move |req| {
        let st = state.clone();
        async move { Ok::<_, Infallible>(handle_when_busy(st, kind, req, peer()).await) }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

/// Sends `req` on a new in-memory connection and reads the answer until the server closes.
async fn exchange(state: Arc<ServerState>, kind: Listener, via: Via, req: Req) -> Reply {
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let serve = async move {
        match via {
            Via::Slot => {
                let noop = Arc::new(|| {});
                serve_http(server, peer(), state, kind, PATIENCE, false, noop).await;
            }
            Via::Triage => serve_triage(server, state, kind).await,
        }
    };
    let talk = async move {
        client.write_all(&req.bytes()).await.unwrap();
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        out
    };
    let out = tokio::time::timeout(PATIENCE, async { tokio::join!(serve, talk).1 })
        .await
        .expect("the exchange hung");
    Reply::parse(&out)
}

/// `exchange` on the main listener through a slot.
async fn ask(state: &Arc<ServerState>, req: Req) -> Reply {
    exchange(state.clone(), Listener::Main, Via::Slot, req).await
}

/// `exchange` on the main listener through triage.
async fn ask_busy(state: &Arc<ServerState>, req: Req) -> Reply {
    exchange(state.clone(), Listener::Main, Via::Triage, req).await
}

fn health_body() -> Value {
    json!({"status": "healthy", "service": SERVICE, "version": env!("CARGO_PKG_VERSION")})
}

/// The full registry: the build info and process families beside every safety family.
fn assert_full(r: &Reply) {
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("neorl_industrial_build_info"), "{r:?}");
    assert!(r.body.contains("# TYPE human_interventions_total counter"));
    assert!(r.body.contains("# TYPE safety_violations_total counter"));
    assert_eq!(
        r.body.contains("process_resident_memory_bytes"),
        cfg!(target_os = "linux")
    );
}

/// The safety families only, exactly as the registry encodes them.
fn assert_safety(r: &Reply, registry: &Registry) {
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.content_type(), Format::Text.content_type());
    assert_eq!(
        r.body,
        registry.encode(Format::Text, Scope::Safety).unwrap()
    );
    assert!(!r.body.contains("build_info") && !r.body.contains("process_"));
}

#[test]
fn probe_paths_are_health_paths() {
    for p in [
        "/health",
        "/healthz",
        "/health/live",
        "/livez",
        "/health/ready",
        "/readyz",
    ] {
        assert!(is_health(p), "{p}");
    }
    for p in [
        "/",
        "/metrics",
        "/safety/metrics",
        "/health/detailed",
        "/healthy",
    ] {
        assert!(!is_health(p), "{p}");
    }
}

#[test]
fn responses_carry_status_type_nosniff_and_the_configured_headers() {
    let s = state(vec![(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("deny"),
    )]);
    let r = respond(&s, StatusCode::IM_A_TEAPOT, "text/plain", "short and stout");
    assert_eq!(r.status(), StatusCode::IM_A_TEAPOT);
    let h = r.headers();
    assert_eq!(h[CONTENT_TYPE], "text/plain");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "deny");
    let j = json_resp(&s, StatusCode::OK, "{}".into());
    assert_eq!(j.status(), StatusCode::OK);
    assert_eq!(j.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(j.headers()["x-frame-options"], "deny");
}

#[test]
fn metrics_are_served_in_the_negotiated_format() {
    let s = served(false);
    run(async {
        for path in ["/metrics", "/metrics?name=x"] {
            let r = ask(&s, get(path)).await;
            assert_full(&r);
            assert_eq!(r.content_type(), Format::Text.content_type());
            assert!(!r.body.contains("# EOF"));
            r.assert_common();
        }
        let om = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;q=0.3";
        let r = ask(&s, get("/metrics").header("accept", om)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type(), Format::OpenMetrics.content_type());
        assert!(r.body.ends_with("# EOF\n"), "{r:?}");
        assert!(r.body.contains("# TYPE human_interventions counter"));
        r.assert_common();
    });
}

#[test]
fn the_metrics_scope_follows_the_path_and_the_listener() {
    let s = served(false);
    run(async {
        let on = |kind, path: &str| exchange(s.clone(), kind, Via::Slot, get(path));
        assert_full(&on(Listener::Main, "/metrics").await);
        assert_safety(&on(Listener::Main, "/safety/metrics").await, &s.registry);
        assert_safety(&on(Listener::Safety, "/metrics").await, &s.registry);
        assert_safety(&on(Listener::Safety, "/safety/metrics").await, &s.registry);
        // The safety port serves health as well.
        let r = on(Listener::Safety, "/healthz").await;
        assert_eq!((r.status, r.json()), (200, health_body()));
    });
}

#[test]
fn health_liveness_index_and_unknown_paths() {
    let s = served(false);
    run(async {
        for path in ["/health", "/healthz"] {
            let r = ask(&s, get(path)).await;
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(r.content_type(), "application/json");
            assert_eq!(r.json(), health_body());
            r.assert_common();
        }
        for path in ["/health/live", "/livez"] {
            let r = ask(&s, get(path)).await;
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(r.content_type(), "application/json");
            let j = r.json();
            assert_eq!(j["status"], "alive");
            assert!(j["uptime"].as_f64().is_some_and(|u| u >= 0.0), "{j}");
            assert_eq!(j.as_object().map(|o| o.len()), Some(2));
        }
        let r = ask(&s, get("/")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type(), "text/html; charset=utf-8");
        assert_eq!(r.body, INDEX);
        r.assert_common();
        for path in ["/nope", "/metrics/", "/healthy", "/health/", "//"] {
            ask(&s, get(path)).await.assert_plain(404, "Not Found\n");
        }
    });
}

#[test]
fn readiness_follows_the_report_and_the_detailed_report_always_answers() {
    let s = served(false);
    run(async {
        // No model and no env batch: the report fails.
        for path in ["/health/ready", "/readyz"] {
            let r = ask(&s, get(path)).await;
            assert_eq!(r.status, 503, "{path}");
            assert_eq!(r.content_type(), "application/health+json");
            let j = r.json();
            assert_eq!(j["status"], "fail");
            assert_eq!(j["checks"]["model_loaded"]["status"], "fail");
            r.assert_common();
        }
        let r = ask(&s, get("/health/detailed")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type(), "application/health+json");
        let j = r.json();
        assert_eq!(
            (j["status"].as_str(), j["service"].as_str()),
            (Some("fail"), Some(SERVICE))
        );
        s.registry.health().set_model_loaded(true);
        for path in ["/health/ready", "/readyz", "/health/detailed"] {
            let r = ask(&s, get(path)).await;
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(r.content_type(), "application/health+json");
            let j = r.json();
            assert_ne!(j["status"], "fail", "{j}");
            assert_eq!(j["checks"]["model_loaded"]["status"], "pass");
        }
    });
}

#[test]
fn only_get_and_head_are_allowed() {
    let s = served(false);
    run(async {
        for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            for path in ["/metrics", "/healthz", "/nope"] {
                let r = ask(&s, method(m, path)).await;
                r.assert_plain(405, "Method Not Allowed\n");
                assert_eq!(r.header("allow"), Some("GET, HEAD"), "{m} {path}");
            }
        }
        let r = ask(&s, method("HEAD", "/metrics")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type(), Format::Text.content_type());
        assert_eq!(r.body, "");
        let r = ask(&s, method("HEAD", "/healthz")).await;
        assert_eq!((r.status, r.content_type()), (200, "application/json"));
        assert_eq!(r.body, "");
        let r = ask(&s, method("HEAD", "/nope")).await;
        assert_eq!((r.status, r.body.as_str()), (404, ""));
    });
}

fn assert_unauthorized(r: &Reply) {
    r.assert_plain(401, "Unauthorized\n");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"neorl-industrial\", charset=\"UTF-8\"")
    );
}

#[test]
fn basic_auth_refuses_missing_and_wrong_credentials_and_admits_good_ones() {
    let s = served(true);
    run(async {
        for path in ["/metrics", "/healthz", "/", "/nope"] {
            assert_unauthorized(&ask(&s, get(path)).await);
        }
        // Refused before the method is looked at.
        assert_unauthorized(&ask(&s, method("POST", "/metrics")).await);
        // Verified by bcrypt, then refused from the cache.
        for _ in 0..2 {
            assert_unauthorized(&ask(&s, get("/metrics").auth("alice", "guess")).await);
        }
        assert_unauthorized(&ask(&s, get("/metrics").auth("bob", "pw")).await);
        assert_unauthorized(&ask(&s, get("/metrics").header("authorization", "Bearer pw")).await);
        // Verified by bcrypt, then admitted from the cache.
        for _ in 0..2 {
            let r = ask(&s, get("/metrics").auth("alice", "pw")).await;
            assert_full(&r);
            assert_eq!(r.header("www-authenticate"), None);
        }
        let r = ask(&s, get("/healthz").auth("alice", "pw")).await;
        assert_eq!((r.status, r.json()), (200, health_body()));
        let r = ask(&s, method("POST", "/metrics").auth("alice", "pw")).await;
        r.assert_plain(405, "Method Not Allowed\n");
        assert_eq!(s.gate.waiting.load(Ordering::Acquire), 0);
    });
}

fn assert_too_many(r: &Reply) {
    r.assert_plain(429, "Too Many Requests\n");
    assert_eq!(r.header("retry-after"), Some("1"), "{r:?}");
}

#[test]
fn a_full_verification_queue_answers_429_until_it_drains() {
    let s = served(true);
    run(async {
        // Holding the gate's permit keeps every verification waiting in the queue.
        let held = s.gate.permit.clone().acquire_owned().await.unwrap();
        let queued: Vec<_> = (0..AUTH_QUEUE)
            .map(|_| tokio::spawn(ask_owned(s.clone(), get("/metrics").auth("alice", "pw"))))
            .collect();
        tokio::time::timeout(PATIENCE, async {
            while s.gate.waiting.load(Ordering::Acquire) < AUTH_QUEUE {
                assert!(
                    !queued.iter().any(|t| t.is_finished()),
                    "a request was answered while the permit was held"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the queue never filled");
        // Credentials bcrypt would have to verify are refused at once, without joining the queue.
        assert_too_many(&ask(&s, get("/metrics").auth("alice", "pw")).await);
        assert_too_many(&ask(&s, get("/healthz").auth("alice", "guess")).await);
        assert_eq!(s.gate.waiting.load(Ordering::Acquire), AUTH_QUEUE);
        // What needs no verification is answered as usual.
        assert_unauthorized(&ask(&s, get("/metrics")).await);
        assert!(!queued.iter().any(|t| t.is_finished()));
        drop(held);
        for t in queued {
            assert_full(&t.await.unwrap());
        }
        assert_eq!(s.gate.waiting.load(Ordering::Acquire), 0);
        assert_full(&ask(&s, get("/metrics").auth("alice", "pw")).await);
        assert_unauthorized(&ask(&s, get("/metrics").auth("alice", "guess")).await);
    });
}

async fn ask_owned(state: Arc<ServerState>, req: Req) -> Reply {
    exchange(state, Listener::Main, Via::Slot, req).await
}

#[test]
fn a_closed_gate_answers_429() {
    let s = served(true);
    s.gate.permit.close();
    run(async {
        assert_too_many(&ask(&s, get("/metrics").auth("alice", "pw")).await);
        assert_eq!(s.gate.waiting.load(Ordering::Acquire), 0);
        assert_unauthorized(&ask(&s, get("/metrics")).await);
    });
}

#[test]
fn in_triage_only_health_probes_are_answered() {
    let s = served(false);
    run(async {
        for path in [
            "/metrics",
            "/safety/metrics",
            "/",
            "/health/detailed",
            "/nope",
        ] {
            ask_busy(&s, get(path)).await.assert_busy();
            ask_busy(&s, method("POST", path)).await.assert_busy();
        }
        for path in ["/health", "/healthz"] {
            let r = ask_busy(&s, get(path)).await;
            assert_eq!((r.status, r.json()), (200, health_body()), "{path}");
            assert_eq!(r.content_type(), "application/json");
            r.assert_common();
            assert_eq!(r.header("retry-after"), None);
        }
        for path in ["/health/live", "/livez"] {
            let r = ask_busy(&s, get(path)).await;
            assert_eq!(
                (r.status, r.json()["status"].as_str()),
                (200, Some("alive"))
            );
        }
        // Probes get the answer they would get from a slot, method rule included.
        for path in ["/health/ready", "/readyz"] {
            let r = ask_busy(&s, get(path)).await;
            assert_eq!(r.status, 503, "{path}");
            assert_eq!(r.content_type(), "application/health+json");
            assert_eq!(r.json()["status"], "fail");
        }
        s.registry.health().set_model_loaded(true);
        let r = ask_busy(&s, get("/readyz")).await;
        assert_eq!(
            (r.status, r.content_type()),
            (200, "application/health+json")
        );
        let r = ask_busy(&s, method("POST", "/healthz")).await;
        r.assert_plain(405, "Method Not Allowed\n");
        // The safety listener triages alike.
        let on_safety = |req| exchange(s.clone(), Listener::Safety, Via::Triage, req);
        on_safety(get("/metrics")).await.assert_busy();
        let r = on_safety(get("/livez")).await;
        assert_eq!(
            (r.status, r.json()["status"].as_str()),
            (200, Some("alive"))
        );
    });
}

#[test]
fn in_triage_probes_need_credentials_verified_before() {
    let s = served(true);
    let auth = s.auth.clone().unwrap();
    let good = basic("alice", "pw");
    run(async {
        // No credentials, unverified ones, wrong ones: 503, and no bcrypt work.
        ask_busy(&s, get("/healthz")).await.assert_busy();
        ask_busy(&s, get("/healthz").auth("alice", "pw"))
            .await
            .assert_busy();
        ask_busy(&s, get("/healthz").auth("alice", "guess"))
            .await
            .assert_busy();
        assert_eq!(auth.check_cached(Some(good.as_bytes())), None);
        // Verified once on a slot, the same credentials reach probes in triage.
        assert_full(&ask(&s, get("/metrics").auth("alice", "pw")).await);
        assert_eq!(auth.check_cached(Some(good.as_bytes())), Some(true));
        let r = ask_busy(&s, get("/healthz").auth("alice", "pw")).await;
        assert_eq!((r.status, r.json()), (200, health_body()));
        let r = ask_busy(&s, get("/livez").auth("alice", "pw")).await;
        assert_eq!(r.status, 200);
        // Nothing else, and not other credentials.
        ask_busy(&s, get("/metrics").auth("alice", "pw"))
            .await
            .assert_busy();
        ask_busy(&s, get("/healthz")).await.assert_busy();
        ask_busy(&s, get("/healthz").auth("alice", "guess"))
            .await
            .assert_busy();
    });
}

// ------------------------------------------------------------------------- a running exporter

/// `req` on a new TCP connection to `port`, read until the server closes.
fn tcp(port: u16, req: &Req) -> Reply {
    let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    c.write_all(&req.bytes()).unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    Reply::parse(&out)
}

/// An exporter on any free port of 127.0.0.1, with a memory limit no process reaches.
fn config() -> ExporterConfig {
    ExporterConfig {
        addr: "127.0.0.1".into(),
        port: 0,
        memory_limit_bytes: Some(1 << 50),
        ..ExporterConfig::default()
    }
}

#[test]
fn the_exporter_serves_each_listener_over_tcp() {
    let registry = Arc::new(Registry::new(16));
    let cfg = ExporterConfig {
        safety_port: Some(0),
        ..config()
    };
    let mut ex = Exporter::start(registry.clone(), cfg).unwrap();
    let r = tcp(ex.port(), &get("/metrics"));
    assert_full(&r);
    let safety = ex.safety_port().unwrap();
    assert_safety(&tcp(safety, &get("/metrics")), &registry);
    let r = tcp(safety, &get("/healthz"));
    assert_eq!((r.status, r.json()), (200, health_body()));
    let r = tcp(ex.port(), &get("/readyz"));
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["checks"]["exporter"]["status"], "pass");
    ex.stop();
}

/// Reads one response to a keep-alive request: the head, then `content-length` bytes of body.
fn read_one(c: &mut TcpStream) -> Reply {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n\r\n") {
        assert_eq!(
            c.read(&mut byte).unwrap(),
            1,
            "closed inside a response head"
        );
        out.push(byte[0]);
    }
    let len: usize = Reply::parse(&out)
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .expect("a content-length");
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).unwrap();
    out.extend_from_slice(&body);
    Reply::parse(&out)
}

/// The answer to `req` from an exporter whose one slot is held by an idle keep-alive connection
/// (served once, so the exporter tracks it): the newcomer is triaged and the idle one evicted.
fn triaged(req: &Req) -> Reply {
    let registry = Arc::new(Registry::new(16));
    let cfg = ExporterConfig {
        max_connections: 1,
        // Far beyond the clients' read timeout: only an eviction closes the idle connection.
        header_timeout: PATIENCE * 4,
        connection_timeout: PATIENCE * 8,
        ..config()
    };
    let mut ex = Exporter::start(registry, cfg).unwrap();
    let mut idle = TcpStream::connect((Ipv4Addr::LOCALHOST, ex.port())).unwrap();
    idle.set_read_timeout(Some(PATIENCE)).unwrap();
    idle.write_all(b"GET /livez HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .unwrap();
    assert_eq!(read_one(&mut idle).status, 200);
    let r = tcp(ex.port(), req);
    let mut rest = Vec::new();
    assert_eq!(
        idle.read_to_end(&mut rest).unwrap(),
        0,
        "the idle connection was not closed"
    );
    ex.stop();
    r
}

#[test]
fn a_full_exporter_answers_probes_and_turns_the_rest_away() {
    let r = triaged(&get("/metrics"));
    assert_eq!((r.status, r.body.as_str()), (503, BUSY_BODY));
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = triaged(&get("/healthz"));
    assert_eq!((r.status, r.json()), (200, health_body()));
}

#[test]
fn open_probes_answer_liveness_and_readiness_without_credentials_and_nothing_else() {
    let mut s = Arc::into_inner(served(true)).unwrap();
    s.open_probes = true;
    let s = Arc::new(s);
    run(async {
        for path in ["/health/live", "/livez"] {
            assert_eq!(ask(&s, get(path)).await.status, 200, "{path}");
        }
        for path in ["/health/ready", "/readyz"] {
            // No batch and no model: not ready, but answered (no 401).
            assert_eq!(ask(&s, get(path)).await.status, 503, "{path}");
        }
        for path in [
            "/health/detailed",
            "/health",
            "/healthz",
            "/metrics",
            "/safety/metrics",
        ] {
            assert_unauthorized(&ask(&s, get(path)).await);
        }
    });
}

#[test]
fn beyond_loopback_without_authentication_is_refused_unless_insecure() {
    let registry = Arc::new(Registry::new(16));
    let exposed = ExporterConfig {
        addr: "0.0.0.0".into(),
        safety_port: Some(0),
        ..config()
    };
    let e = Exporter::start(registry.clone(), exposed.clone()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("beyond loopback, without authentication"),
        "{msg}"
    );
    assert!(msg.contains("insecure=True (--insecure)"), "{msg}");
    let gauge = || registry.builtins().insecure_listeners.get();
    let ex = Exporter::start(
        registry.clone(),
        ExporterConfig {
            insecure: true,
            ..exposed.clone()
        },
    )
    .unwrap();
    assert_eq!(
        gauge(),
        2.0,
        "both listeners serve unauthenticated beyond loopback"
    );
    drop(ex);
    assert_eq!(gauge(), 0.0);
    // Loopback needs nothing, and authentication lifts the refusal.
    let ex = Exporter::start(registry.clone(), config()).unwrap();
    assert_eq!(gauge(), 0.0);
    drop(ex);
    let mut users = BTreeMap::new();
    users.insert("alice".to_string(), bcrypt::hash("pw", 4).unwrap());
    let web = WebConfig {
        users,
        ..WebConfig::default()
    };
    let ex = Exporter::start(registry.clone(), ExporterConfig { web, ..exposed }).unwrap();
    assert_eq!(gauge(), 0.0);
    drop(ex);
}
