//! TLS for the exporter: a rustls server configuration (ring provider) from PEM files.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::webconfig::{ClientAuth, TlsSettings, TlsVersion};
use crate::errors::CoreError;

fn err(msg: impl Into<String>) -> CoreError {
    CoreError::config("web_config_file", msg)
}

fn certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, CoreError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| {
            err(format!(
                "cannot read certificates from {}: {e}",
                path.display()
            ))
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("invalid PEM in {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(err(format!("no certificate in {}", path.display())));
    }
    Ok(certs)
}

/// Builds the server configuration (HTTP/1.1 over TLS 1.2/1.3 as configured).
///
/// Errors:
///     [`CoreError::Config`] for unreadable or invalid PEM files, or a key that does not match.
pub fn server_config(t: &TlsSettings) -> Result<Arc<ServerConfig>, CoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(&t.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&t.key_file).map_err(|e| {
        err(format!(
            "cannot read a private key from {}: {e}",
            t.key_file.display()
        ))
    })?;
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if t.min_version <= TlsVersion::Tls12 && t.max_version >= TlsVersion::Tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if t.max_version >= TlsVersion::Tls13 {
        versions.push(&rustls::version::TLS13);
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| err(format!("TLS versions: {e}")))?;
    let builder = match (t.client_auth, &t.client_ca_file) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (mode, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| err(format!("invalid CA certificate in {}: {e}", ca.display())))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if mode == ClientAuth::VerifyIfGiven {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(
                v.build()
                    .map_err(|e| err(format!("client verifier: {e}")))?,
            )
        }
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| err(format!("certificate and key: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
