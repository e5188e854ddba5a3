//! Web configuration files in the format of Prometheus' exporter-toolkit (`--web.config.file`):
//! `tls_server_config`, `http_server_config` and `basic_auth_users` (bcrypt hashes).
//!
//! Unknown keys are errors, as in exporter-toolkit; keys it knows that this exporter does not
//! implement are errors too, so a file never silently means less than it says. Relative paths are
//! relative to the file's folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::errors::CoreError;

const FIELD: &str = "web_config_file";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// TLS protocol versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate asked for.
    None,
    /// Verified if given.
    VerifyIfGiven,
    /// Required and verified.
    RequireAndVerify,
}

/// TLS settings with resolved paths.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// Client certificate policy.
    pub client_auth: ClientAuth,
    /// PEM CA bundle for client certificates.
    pub client_ca_file: Option<PathBuf>,
    /// Lowest accepted version.
    pub min_version: TlsVersion,
    /// Highest accepted version.
    pub max_version: TlsVersion,
}

/// A parsed web configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebConfig {
    /// TLS, if configured.
    pub tls: Option<TlsSettings>,
    /// User name to bcrypt hash; empty: no authentication.
    pub users: BTreeMap<String, String>,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
}

impl WebConfig {
    /// True if every request must authenticate: basic auth users, or required and verified
    /// client certificates.
    pub fn authenticates(&self) -> bool {
        !self.users.is_empty()
            || self
                .tls
                .as_ref()
                .is_some_and(|t| t.client_auth == ClientAuth::RequireAndVerify)
    }
}

fn err(msg: impl Into<String>) -> CoreError {
    CoreError::config(FIELD, msg)
}

/// Reads and parses the file at `path`.
///
/// Errors:
///     [`CoreError::Config`] for an unreadable file, bad YAML, unknown or unsupported keys,
///     invalid bcrypt hashes or header names, or missing certificate paths.
pub fn load(path: &Path) -> Result<WebConfig, CoreError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
    parse(&text, path.parent().unwrap_or(Path::new(".")))
}

/// Parses YAML text; relative paths resolve against `base`.
pub fn parse(yaml: &str, base: &Path) -> Result<WebConfig, CoreError> {
    if yaml.trim().is_empty() {
        return Ok(WebConfig::default());
    }
    let raw: RawConfig =
        serde_norway::from_str(yaml).map_err(|e| err(format!("invalid YAML: {e}")))?;
    let mut cfg = WebConfig::default();
    for (user, hash) in raw.basic_auth_users.unwrap_or_default() {
        bcrypt::HashParts::from_str(&hash).map_err(|_| {
            err(format!(
                "basic_auth_users: the hash of user {user:?} is not a bcrypt hash"
            ))
        })?;
        cfg.users.insert(user, hash);
    }
    if let Some(h) = raw.http_server_config {
        // http2 is accepted for compatibility; this exporter speaks HTTP/1.1 only.
        let _ = h.http2;
        for (k, v) in h.headers.unwrap_or_default() {
            if hyper::header::HeaderName::from_str(&k).is_err()
                || hyper::header::HeaderValue::from_str(&v).is_err()
            {
                return Err(err(format!(
                    "http_server_config.headers: invalid header {k:?}"
                )));
            }
            cfg.headers.push((k, v));
        }
    }
    if let Some(t) = raw.tls_server_config {
        cfg.tls = Some(tls(t, base)?);
    }
    Ok(cfg)
}

fn tls(t: RawTls, base: &Path) -> Result<TlsSettings, CoreError> {
    let unsupported = [
        ("cipher_suites", t.cipher_suites.is_some()),
        ("curve_preferences", t.curve_preferences.is_some()),
        ("client_allowed_sans", t.client_allowed_sans.is_some()),
    ];
    if let Some((k, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(err(format!(
            "tls_server_config.{k} is not supported by this exporter"
        )));
    }
    let _ = t.prefer_server_cipher_suites;
    let path = |p: Option<String>, key: &str| -> Result<PathBuf, CoreError> {
        let p = p
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err(format!("tls_server_config.{key} is required")))?;
        Ok(base.join(p))
    };
    let client_auth = match t.client_auth_type.as_deref().unwrap_or("NoClientCert") {
        "NoClientCert" => ClientAuth::None,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerify,
        other => {
            return Err(err(format!(
                "tls_server_config.client_auth_type {other:?} is not supported \
                 (NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
            )))
        }
    };
    let client_ca_file = t
        .client_ca_file
        .filter(|s| !s.is_empty())
        .map(|p| base.join(p));
    if client_auth != ClientAuth::None && client_ca_file.is_none() {
        return Err(err(
            "tls_server_config.client_ca_file is required to verify client certificates",
        ));
    }
    let version = |v: Option<String>, default: TlsVersion, key: &str| match v.as_deref() {
        None => Ok(default),
        Some("TLS12") => Ok(TlsVersion::Tls12),
        Some("TLS13") => Ok(TlsVersion::Tls13),
        Some(o) => Err(err(format!(
            "tls_server_config.{key} {o:?} is not supported (TLS12, TLS13)"
        ))),
    };
    let min_version = version(t.min_version, TlsVersion::Tls12, "min_version")?;
    let max_version = version(t.max_version, TlsVersion::Tls13, "max_version")?;
    if min_version > max_version {
        return Err(err("tls_server_config.min_version is above max_version"));
    }
    Ok(TlsSettings {
        cert_file: path(t.cert_file, "cert_file")?,
        key_file: path(t.key_file, "key_file")?,
        client_auth,
        client_ca_file,
        min_version,
        max_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2b$04$8CbAqAbDlSdG9bNV.9IxkeaX3lwtFXEvPyNdPStTEM7ykAYT3bAoG";

    #[test]
    fn parses_the_exporter_toolkit_format() {
        let y = format!(
            "tls_server_config:\n  cert_file: c.pem\n  key_file: /k.pem\n  min_version: TLS13\n\
             http_server_config:\n  headers:\n    X-Frame-Options: deny\n\
             basic_auth_users:\n  alice: '{HASH}'\n"
        );
        let c = parse(&y, Path::new("/etc/x")).unwrap();
        let t = c.tls.unwrap();
        assert_eq!(t.cert_file, PathBuf::from("/etc/x/c.pem"));
        assert_eq!(t.key_file, PathBuf::from("/k.pem"));
        assert_eq!(t.min_version, TlsVersion::Tls13);
        assert_eq!(c.users.len(), 1);
        assert_eq!(c.headers, vec![("X-Frame-Options".into(), "deny".into())]);
    }

    #[test]
    fn rejects_what_it_cannot_honour() {
        let base = Path::new(".");
        for bad in [
            "basic_auth_users: [",
            "unknown_key: 1",
            "basic_auth_users:\n  bob: plaintext\n",
            "tls_server_config:\n  cert_file: a\n",
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n",
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n",
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
            "http_server_config:\n  headers:\n    'bad header': x\n",
            "- a list\n",
        ] {
            assert!(matches!(parse(bad, base), Err(CoreError::Config { .. })), "{bad}");
        }
        assert_eq!(parse("", base).unwrap(), WebConfig::default());
    }

    #[test]
    fn client_certificates_need_a_ca_file_resolved_like_the_others() {
        let y = "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  \
                 client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n";
        let t = parse(y, Path::new("/etc/x")).unwrap().tls.unwrap();
        assert_eq!(t.client_auth, ClientAuth::RequireAndVerify);
        assert_eq!(t.client_ca_file, Some(PathBuf::from("/etc/x/ca.pem")));
        assert_eq!(t.min_version, TlsVersion::Tls12);
        assert_eq!(t.max_version, TlsVersion::Tls13);
        // An empty client_ca_file is no file.
        let y = "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  client_ca_file: ''\n";
        let t = parse(y, Path::new("/etc/x")).unwrap().tls.unwrap();
        assert_eq!((t.client_auth, t.client_ca_file), (ClientAuth::None, None));
    }

    #[test]
    fn load_reads_the_file_and_resolves_paths_beside_it() {
        let dir = std::env::temp_dir().join(format!("neorl-webconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("web.yml");
        std::fs::write(
            &path,
            format!("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\nbasic_auth_users:\n  alice: '{HASH}'\n"),
        )
        .unwrap();
        let c = load(&path).unwrap();
        assert_eq!(c.tls.unwrap().cert_file, dir.join("c.pem"));
        assert_eq!(c.users.get("alice").map(String::as_str), Some(HASH));
        let missing = dir.join("missing.yml");
        let err = load(&missing).unwrap_err().to_string();
        assert!(err.contains("cannot read"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
