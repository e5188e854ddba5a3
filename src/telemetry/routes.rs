//! Request handling for the exporter: authentication, method check, routing, responses.
//! Runs on the exporter's runtime; never touches Python.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderName, HeaderValue, ACCEPT, ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use tokio::sync::Semaphore;

use super::auth::BasicAuth;
use super::control::{self, Control};
use super::encoder::Encoder;
use super::health::{ReportContext, Status};
use super::logging;
use super::negotiate::format_for;
use super::registry::{Registry, Scope};

/// Service name in health responses.
pub const SERVICE: &str = "neorl-industrial";

/// Which endpoints a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Everything; `/metrics` is the full registry.
    Main,
    /// The safety port: `/metrics` and `/safety/metrics` are the safety families; health too.
    Safety,
}

/// What every request handler shares.
#[derive(Debug)]
pub struct ServerState {
    /// The registry served.
    pub registry: Arc<Registry>,
    /// Basic auth, if configured.
    pub auth: Option<Arc<BasicAuth>>,
    /// Extra response headers from the web config.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Memory limit and listeners for `/health/detailed`.
    pub report: ReportContext,
    /// Admission to bcrypt verification.
    pub gate: AuthGate,
    /// Scrapes, encoded off the runtime thread.
    pub encoder: Arc<Encoder>,
    /// The control endpoints (off unless a serving process enables them).
    pub control: Arc<Control>,
    /// Liveness and readiness probes answered without credentials.
    pub open_probes: bool,
}

/// Most requests waiting for a bcrypt verification; more are answered 429 at once.
const AUTH_QUEUE: usize = 16;

/// One bcrypt verification at a time (as exporter-toolkit does), behind a short queue: a flood of
/// password guesses costs at most one core and a few connections, never the probes' latency.
#[derive(Debug)]
pub struct AuthGate {
    permit: Arc<Semaphore>,
    waiting: AtomicUsize,
}

impl Default for AuthGate {
    fn default() -> Self {
        Self {
            permit: Arc::new(Semaphore::new(1)),
            waiting: AtomicUsize::new(0),
        }
    }
}

/// What authentication decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Allowed,
    Refused,
    Busy,
}

type Resp = Response<Full<Bytes>>;

fn respond(
    state: &ServerState,
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(CONTENT_TYPE, v);
    }
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    for (k, v) in &state.headers {
        h.insert(k.clone(), v.clone());
    }
    r
}

fn json_resp(state: &ServerState, status: StatusCode, body: String) -> Resp {
    respond(state, status, "application/json", body)
}

async fn authorized(state: &ServerState, req: &Request<Incoming>) -> Admission {
    let Some(auth) = &state.auth else {
        return Admission::Allowed;
    };
    if state.open_probes && is_probe(req.uri().path()) {
        return Admission::Allowed;
    }
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    match auth.check_cached(header.as_deref()) {
        Some(true) => return Admission::Allowed,
        Some(false) => return Admission::Refused,
        None => {}
    }
    let gate = &state.gate;
    if gate.waiting.fetch_add(1, Ordering::AcqRel) >= AUTH_QUEUE {
        gate.waiting.fetch_sub(1, Ordering::AcqRel);
        return Admission::Busy;
    }
    let permit = gate.permit.clone().acquire_owned().await;
    gate.waiting.fetch_sub(1, Ordering::AcqRel);
    let Ok(permit) = permit else {
        return Admission::Busy;
    };
    let auth = auth.clone();
    // bcrypt takes tens of milliseconds: keep it off the thread serving other connections.
    let ok = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        auth.check(header.as_deref())
    })
    .await
    .unwrap_or(false);
    if ok {
        Admission::Allowed
    } else {
        Admission::Refused
    }
}

/// True for the liveness and readiness probes a platform calls without credentials (with
/// `open_probes`); `/health/detailed` and `/health` are not among them.
fn is_probe(path: &str) -> bool {
    matches!(
        path,
        "/health/live" | "/livez" | "/health/ready" | "/readyz"
    )
}

/// True for the paths of health probes.
fn is_health(path: &str) -> bool {
    matches!(
        path,
        "/health" | "/healthz" | "/health/live" | "/livez" | "/health/ready" | "/readyz"
    )
}

/// Answers one request of a connection that found every slot taken: health probes (with no
/// credentials to verify, or ones already verified) are answered as usual, the rest gets 503.
pub async fn handle_when_busy(
    state: Arc<ServerState>,
    listener: Listener,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Resp {
    let verified = match &state.auth {
        None => true,
        Some(auth) => {
            let header = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
            auth.check_cached(header) == Some(true)
        }
    };
    if verified && is_health(req.uri().path()) {
        return handle(state, listener, req, peer).await;
    }
    let mut r = respond(
        &state,
        StatusCode::SERVICE_UNAVAILABLE,
        "text/plain; charset=utf-8",
        "Service Unavailable: too many connections\n",
    );
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// Answers one request.
pub async fn handle(
    state: Arc<ServerState>,
    listener: Listener,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Resp {
    let admission = authorized(&state, &req).await;
    if admission == Admission::Busy {
        logging::exporter_refused("too many credentials to verify", &peer.to_string());
        let mut r = respond(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            "text/plain; charset=utf-8",
            "Too Many Requests\n",
        );
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    if admission == Admission::Refused {
        state.registry.builtins().ops.error("exporter", "auth", 1);
        logging::exporter_refused("unauthorized", &peer.to_string());
        let mut r = respond(
            &state,
            StatusCode::UNAUTHORIZED,
            "text/plain; charset=utf-8",
            "Unauthorized\n",
        );
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"neorl-industrial\", charset=\"UTF-8\""),
        );
        return r;
    }
    let path = req.uri().path();
    if listener == Listener::Main && state.control.enabled() && control::is_control_path(path) {
        let allow = control::allowed(path);
        let (status, body) = control::answer(&state.control, req).await;
        let mut r = json_resp(&state, status, body);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        return r;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = respond(
            &state,
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "Method Not Allowed\n",
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path();
    match path {
        "/metrics" | "/safety/metrics" => {
            let scope = if path == "/metrics" && listener == Listener::Main {
                Scope::All
            } else {
                Scope::Safety
            };
            let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let format = format_for(accept);
            match state.encoder.encode(&state.registry, format, scope).await {
                Ok(text) => respond(&state, StatusCode::OK, format.content_type(), text),
                Err(e) => respond(
                    &state,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain; charset=utf-8",
                    format!("{e}\n"),
                ),
            }
        }
        "/health" | "/healthz" => json_resp(
            &state,
            StatusCode::OK,
            json!({"status": "healthy", "service": SERVICE, "version": env!("CARGO_PKG_VERSION")})
                .to_string(),
        ),
        "/health/live" | "/livez" => json_resp(
            &state,
            StatusCode::OK,
            json!({"status": "alive", "uptime": state.registry.health().uptime()}).to_string(),
        ),
        "/health/ready" | "/readyz" | "/health/detailed" => {
            let report = state.registry.health().report(&state.report);
            let status = if path != "/health/detailed" && report.status == Status::Fail {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            respond(
                &state,
                status,
                "application/health+json",
                report.to_json(SERVICE),
            )
        }
        "/" => respond(&state, StatusCode::OK, "text/html; charset=utf-8", INDEX),
        _ => respond(
            &state,
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "Not Found\n",
        ),
    }
}

const INDEX: &str = "<!doctype html><html><head><title>neorl-industrial exporter</title></head><body>\
<h1>neorl-industrial exporter</h1><ul>\
<li><a href=\"/metrics\">/metrics</a></li><li><a href=\"/safety/metrics\">/safety/metrics</a></li>\
<li><a href=\"/health\">/health</a></li><li><a href=\"/health/live\">/health/live</a></li>\
<li><a href=\"/health/ready\">/health/ready</a></li><li><a href=\"/health/detailed\">/health/detailed</a></li>\
</ul></body></html>\n";

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
