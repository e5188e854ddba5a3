//! Request handling for the exporter: authentication, method check, routing, responses.
//! Runs on the exporter's runtime; never touches Python.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderName, HeaderValue, ACCEPT, ALLOW, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::auth::BasicAuth;
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

async fn authorized(state: &ServerState, req: &Request<Incoming>) -> bool {
    let Some(auth) = &state.auth else {
        return true;
    };
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    if auth.check_cached(header.as_deref()) {
        return true;
    }
    let auth = auth.clone();
    // bcrypt takes tens of milliseconds: keep it off the thread serving other connections.
    tokio::task::spawn_blocking(move || auth.check(header.as_deref()))
        .await
        .unwrap_or(false)
}

/// Answers one request.
pub async fn handle(
    state: Arc<ServerState>,
    listener: Listener,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Resp {
    if !authorized(&state, &req).await {
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
            match state.registry.encode(format, scope) {
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
