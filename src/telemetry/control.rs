//! The exporter's control endpoints: `POST /admin/reload`, `GET /interventions` and
//! `POST /interventions`. Off unless the process serving a policy enables them; a request then
//! goes, authenticated like every other, to that process's [`ControlHandler`].
//!
//! This side checks what needs no knowledge of the service: the method, the body's size (at most
//! [`MAX_BODY`] bytes) and that a POST body is JSON. The handler answers the rest and may wait
//! for its loop to apply the request between two batch steps, so it runs on a thread of its own
//! (at most [`MAX_PENDING`] at once), never on the runtime or its blocking pool.

use std::sync::{Arc, RwLock};

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::json;
use tokio::sync::{oneshot, Semaphore};

use super::webconfig::WebConfig;
use crate::errors::CoreError;

/// Largest request body accepted, bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// Control requests handled at once; more are answered 429.
pub const MAX_PENDING: usize = 4;

/// What answers control requests: the process serving a policy.
pub trait ControlHandler: Send + Sync {
    /// Answers `method path` with the request's body: an HTTP status and a JSON text.
    fn handle(&self, method: &str, path: &str, body: &[u8]) -> (u16, String);
}

/// The control endpoints of one exporter.
pub struct Control {
    enabled: bool,
    handler: RwLock<Option<Arc<dyn ControlHandler>>>,
    pending: Arc<Semaphore>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("enabled", &self.enabled)
            .field("attached", &self.attached())
            .finish()
    }
}

impl Control {
    /// Endpoints that answer (`enabled`) or are unknown paths, as without them.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            handler: RwLock::new(None),
            pending: Arc::new(Semaphore::new(MAX_PENDING)),
        }
    }

    /// True when the endpoints answer.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Hands requests to `handler` from now on (`None`: answered 503 again).
    pub fn attach(&self, handler: Option<Arc<dyn ControlHandler>>) {
        *self.handler.write().unwrap_or_else(|p| p.into_inner()) = handler;
    }

    /// Requests whose handler has not answered yet.
    pub fn in_flight(&self) -> usize {
        MAX_PENDING - self.pending.available_permits()
    }

    /// Waits (up to `limit`) for the answers under way to reach their clients: an operator's
    /// `shutdown` is answered before the exporter stops. Runs on the exporter's runtime.
    pub async fn drain(&self, limit: std::time::Duration) {
        if !self.enabled {
            return;
        }
        let deadline = tokio::time::Instant::now() + limit;
        while self.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // The connection tasks write the last answers on this runtime meanwhile.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    fn attached(&self) -> bool {
        self.handler
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    fn current(&self) -> Option<Arc<dyn ControlHandler>> {
        self.handler
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// True for the paths of the control endpoints.
pub fn is_control_path(path: &str) -> bool {
    matches!(path, "/admin/reload" | "/interventions")
}

/// The methods a control path takes (for `Allow`).
pub fn allowed(path: &str) -> &'static str {
    if path == "/interventions" {
        "GET, POST"
    } else {
        "POST"
    }
}

/// Refuses control endpoints on a listener beyond loopback without authentication (basic auth
/// users, or client certificates required and verified).
///
/// Errors:
///     [`CoreError::Config`] naming the address.
pub fn check_exposure(
    enabled: bool,
    addrs: &[std::net::SocketAddr],
    web: &WebConfig,
) -> Result<(), CoreError> {
    let authenticated = web.authenticates();
    match addrs.iter().find(|a| !a.ip().is_loopback()) {
        Some(a) if enabled && !authenticated => Err(CoreError::config(
            "admin",
            format!(
                "the admin and intervention endpoints listen on {a}, beyond loopback, only \
                 with authentication: set basic_auth_users (or required client certificates) \
                 in the web config"
            ),
        )),
        _ => Ok(()),
    }
}

/// Answers a control request: `(status, JSON text, Allow header when 405)`.
pub async fn answer(control: &Control, req: Request<Incoming>) -> (StatusCode, String) {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let error = |status: StatusCode, why: &str| (status, json!({ "error": why }).to_string());
    let takes = method == Method::POST || (method == Method::GET && path == "/interventions");
    if !takes {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{path} takes {}", allowed(&path)),
        );
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body exceeds {MAX_BODY} bytes"),
            );
        }
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}"),
            )
        }
    };
    if method == Method::POST && !body.is_empty() {
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&body) {
            return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}"));
        }
    }
    let Some(handler) = control.current() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is starting: no policy is serving yet",
        );
    };
    let Ok(permit) = control.pending.clone().try_acquire_owned() else {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many control requests under way",
        );
    };
    let (tx, rx) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("neorl-control".into())
        .spawn(move || {
            let _permit = permit;
            let _ = tx.send(handler.handle(method.as_str(), &path, &body));
        });
    if spawned.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "cannot start a thread");
    }
    match rx.await {
        Ok((status, text)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            text,
        ),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the handler ended without an answer",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::webconfig::{ClientAuth, TlsSettings, TlsVersion};
    use std::net::SocketAddr;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn tls(client_auth: ClientAuth) -> WebConfig {
        WebConfig {
            tls: Some(TlsSettings {
                cert_file: "c.pem".into(),
                key_file: "k.pem".into(),
                client_auth,
                client_ca_file: None,
                min_version: TlsVersion::Tls12,
                max_version: TlsVersion::Tls13,
            }),
            ..WebConfig::default()
        }
    }

    #[test]
    fn beyond_loopback_the_endpoints_need_authentication() {
        let open = WebConfig::default();
        let wide = addrs(&["127.0.0.1:1", "0.0.0.0:8000"]);
        let err = check_exposure(true, &wide, &open).unwrap_err().to_string();
        assert!(
            err.contains("listen on 0.0.0.0:8000, beyond loopback"),
            "{err}"
        );
        assert!(check_exposure(true, &addrs(&["127.0.0.1:1", "[::1]:2"]), &open).is_ok());
        assert!(check_exposure(false, &wide, &open).is_ok());
        let mut users = WebConfig::default();
        users.users.insert("u".into(), "$2b$04$x".into());
        assert!(check_exposure(true, &wide, &users).is_ok());
        assert!(check_exposure(true, &wide, &tls(ClientAuth::RequireAndVerify)).is_ok());
        assert!(check_exposure(true, &wide, &tls(ClientAuth::VerifyIfGiven)).is_err());
        assert!(check_exposure(true, &wide, &tls(ClientAuth::None)).is_err());
    }

    #[test]
    fn paths_methods_and_attaching() {
        assert!(is_control_path("/admin/reload") && is_control_path("/interventions"));
        assert!(!is_control_path("/admin") && !is_control_path("/interventions/1"));
        assert_eq!(allowed("/interventions"), "GET, POST");
        assert_eq!(allowed("/admin/reload"), "POST");
        struct Echo;
        impl ControlHandler for Echo {
            fn handle(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
                (201, format!("{method} {path} {}", body.len()))
            }
        }
        let c = Control::new(true);
        assert!(c.enabled() && !c.attached() && c.in_flight() == 0);
        c.attach(Some(Arc::new(Echo)));
        assert!(c.attached());
        let h = c.current().unwrap();
        assert_eq!(
            h.handle("POST", "/x", b"ab"),
            (201, "POST /x 2".to_string())
        );
        c.attach(None);
        assert!(!c.attached() && !Control::new(false).enabled());
    }
}
