//! A Pushgateway client for batch jobs (training runs that end before a scrape would come).
//!
//! Plain HTTP/1.1 over a blocking socket with timeouts: one request per push, no connection pool.
//! Label values that cannot sit in a URL path segment use the gateway's `@base64` encoding.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use base64::Engine;

use super::logging;
use super::names::is_label_name;
use crate::errors::CoreError;

/// How to change the group on the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushMethod {
    /// Replace every metric of the group.
    Put,
    /// Replace only the metrics with the pushed names.
    Post,
    /// Delete the group.
    Delete,
}

impl PushMethod {
    /// Parses `PUT`, `POST` or `DELETE` (any case).
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        match s.to_ascii_uppercase().as_str() {
            "PUT" => Ok(PushMethod::Put),
            "POST" => Ok(PushMethod::Post),
            "DELETE" => Ok(PushMethod::Delete),
            _ => Err(CoreError::config(
                "method",
                format!("must be PUT, POST or DELETE, got {s:?}"),
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            PushMethod::Put => "PUT",
            PushMethod::Post => "POST",
            PushMethod::Delete => "DELETE",
        }
    }
}

/// A parsed `http://host:port/prefix` gateway address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    prefix: String,
}

fn parse_url(url: &str) -> Result<Target, CoreError> {
    let bad = |m: &str| CoreError::config("url", format!("{m}: {url:?}"));
    let rest = if let Some(r) = url.strip_prefix("http://") {
        r
    } else if url.starts_with("https://") {
        return Err(bad(
            "https is not supported by the push client; use an http gateway address",
        ));
    } else if url.contains("://") {
        return Err(bad("only http:// addresses are supported"));
    } else {
        url
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("expected http://host:port"));
    }
    let (host, port) = if let Some(h) = authority.strip_prefix('[') {
        let (h, p) = h
            .split_once(']')
            .ok_or_else(|| bad("unclosed IPv6 bracket"))?;
        (h.to_string(), p.strip_prefix(':').unwrap_or(""))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (authority.to_string(), ""),
        }
    };
    if host.is_empty() {
        return Err(bad("expected http://host:port"));
    }
    let port = if port.is_empty() {
        80
    } else {
        port.parse::<u16>().map_err(|_| bad("invalid port"))?
    };
    Ok(Target {
        host,
        port,
        prefix: path.trim_end_matches('/').to_string(),
    })
}

fn segment(key: &str, value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if plain {
        format!("/{key}/{value}")
    } else {
        let b = base64::engine::general_purpose::URL_SAFE.encode(value);
        // An empty value is one '=' in the gateway's base64 convention.
        let b = if b.is_empty() { "=".to_string() } else { b };
        format!("/{key}@base64/{b}")
    }
}

/// The gateway path for `job` and its grouping key.
fn group_path(job: &str, grouping: &[(String, String)]) -> Result<String, CoreError> {
    if job.is_empty() {
        return Err(CoreError::config("job", "must not be empty"));
    }
    let mut p = format!("/metrics{}", segment("job", job));
    for (k, v) in grouping {
        if !is_label_name(k) || k == "job" {
            return Err(CoreError::config(
                "grouping_key",
                format!("invalid label name {k:?}"),
            ));
        }
        p.push_str(&segment(k, v));
    }
    Ok(p)
}

/// Sends `body` (Prometheus text) to the gateway at `url` for `job` and `grouping`.
///
/// Errors:
///     [`CoreError::Config`] for a bad URL, job or grouping key; [`CoreError::Exporter`] when the
///     gateway cannot be reached, times out or answers other than 2xx (with its message).
pub fn push(
    url: &str,
    job: &str,
    grouping: &[(String, String)],
    method: PushMethod,
    body: &str,
    timeout: Duration,
) -> Result<(), CoreError> {
    let t = parse_url(url)?;
    let path = format!("{}{}", t.prefix, group_path(job, grouping)?);
    let net = |what: &str, e: std::io::Error| CoreError::Exporter {
        message: format!("push to {url}: {what}: {e}"),
        errno: e.raw_os_error(),
    };
    let addr = (t.host.as_str(), t.port)
        .to_socket_addrs()
        .map_err(|e| net("cannot resolve", e))?
        .next()
        .ok_or_else(|| CoreError::config("url", format!("{url:?} resolves to no address")))?;
    let timeout = timeout.max(Duration::from_millis(1));
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| net("connect", e))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| net("socket", e))?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| net("socket", e))?;
    let body = if method == PushMethod::Delete {
        ""
    } else {
        body
    };
    let host = if t.host.contains(':') {
        format!("[{}]", t.host)
    } else {
        t.host.clone()
    };
    let head = format!(
        "{} {path} HTTP/1.1\r\nHost: {host}:{}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\nUser-Agent: neorl-industrial/{}\r\n\r\n",
        method.as_str(),
        t.port,
        body.len(),
        env!("CARGO_PKG_VERSION")
    );
    s.write_all(head.as_bytes()).map_err(|e| net("send", e))?;
    s.write_all(body.as_bytes()).map_err(|e| net("send", e))?;
    let mut reply = Vec::new();
    // Bounded read: the status line and a short message are all that matter.
    let _ = s.take(64 * 1024).read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| CoreError::Exporter {
            message: format!("push to {url}: no HTTP response"),
            errno: None,
        })?;
    if !(200..300).contains(&status) {
        let msg = text.split("\r\n\r\n").nth(1).unwrap_or("").trim();
        return Err(CoreError::Exporter {
            message: format!(
                "push to {url}: gateway answered {status}: {}",
                &msg[..msg.len().min(500)]
            ),
            errno: None,
        });
    }
    logging::pushed(url, job, body.len());
    Ok(())
}

/// The `errors_total{component="push"}` kind of a failed push: `connect` (the gateway could not be
/// reached or the connection failed), `http` (it answered, but not with 2xx, or not with HTTP);
/// None for a refused configuration (nothing was attempted).
pub fn error_kind(e: &CoreError) -> Option<&'static str> {
    match e {
        CoreError::Exporter { errno: Some(_), .. } => Some("connect"),
        CoreError::Exporter { errno: None, .. } => Some("http"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gateway_addresses() {
        let t = parse_url("http://localhost:9091").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.prefix.as_str()),
            ("localhost", 9091, "")
        );
        let t = parse_url("127.0.0.1:9091/gw/").unwrap();
        assert_eq!((t.port, t.prefix.as_str()), (9091, "/gw"));
        let t = parse_url("http://[::1]:9/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9));
        for bad in [
            "https://x:1",
            "ftp://x",
            "http://:1",
            "http://x:99999",
            "http://u@x:1",
            "http://[::1:9",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn builds_group_paths_with_base64_where_needed() {
        assert_eq!(group_path("train", &[]).unwrap(), "/metrics/job/train");
        let g = vec![
            ("run".to_string(), "a/b".to_string()),
            ("x".to_string(), String::new()),
        ];
        assert_eq!(
            group_path("j", &g).unwrap(),
            "/metrics/job/j/run@base64/YS9i/x@base64/="
        );
        assert!(group_path("", &[]).is_err());
        assert!(group_path("j", &[("bad-key".into(), "v".into())]).is_err());
        assert!(PushMethod::parse("get").is_err());
    }
}
