//! TLS for the HTTP clients (ClickHouse, the schema registry): one rustls setup.
//!
//! Server certificates are checked against the system's roots, or against `ca_file` alone
//! when it is set (a private CA, or a test's). A client certificate is sent when
//! `cert_file` and `key_file` are both set (mutual TLS). Kafka's TLS is librdkafka's own
//! (`[kafka.client]` `ssl.*`), not this.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// TLS files of one connection; every path empty means system roots, no client certificate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM CA bundle to verify the server with instead of the system roots.
    pub ca_file: String,
    /// PEM client certificate (chain), for servers that require one.
    pub cert_file: String,
    /// PEM private key of `cert_file`.
    pub key_file: String,
}

/// Why a TLS client could not be set up; names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A configured file cannot be read or holds no usable PEM item.
    #[error("{setting} = {path:?}: {why}")]
    File {
        /// e.g. `clickhouse.tls.ca_file`.
        setting: String,
        /// The path configured.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// No CA file and the system has no root certificates.
    #[error("no system root certificates found ({0}); set {1}.ca_file")]
    NoRoots(String, String),
    /// Only one of cert_file and key_file is set.
    #[error("{0}.cert_file and {0}.key_file must be set together")]
    HalfClientCert(String),
    /// rustls refused the certificates or key.
    #[error("{setting}: {source}")]
    Rustls {
        /// The section, e.g. `clickhouse.tls`.
        setting: String,
        /// rustls' reason.
        source: rustls::Error,
    },
}

impl TlsConfig {
    /// The rustls client configuration; `section` (e.g. `clickhouse.tls`) names the
    /// settings in errors.
    pub fn client_config(&self, section: &str) -> Result<rustls::ClientConfig, TlsError> {
        let file_error = |key: &str, path: &str, why: String| TlsError::File {
            setting: format!("{section}.{key}"),
            path: path.to_string(),
            why,
        };
        let mut roots = rustls::RootCertStore::empty();
        if self.ca_file.is_empty() {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or("none installed".to_string(), |e| e.to_string());
                return Err(TlsError::NoRoots(why, section.to_string()));
            }
        } else {
            let certs = read_certs(&self.ca_file)
                .map_err(|why| file_error("ca_file", &self.ca_file, why))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| file_error("ca_file", &self.ca_file, e.to_string()))?;
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            setting: section.to_string(),
            source,
        })?
        .with_root_certificates(roots);
        match (self.cert_file.is_empty(), self.key_file.is_empty()) {
            (true, true) => Ok(builder.with_no_client_auth()),
            (false, false) => {
                let chain = read_certs(&self.cert_file)
                    .map_err(|why| file_error("cert_file", &self.cert_file, why))?;
                let key = PrivateKeyDer::from_pem_file(&self.key_file).map_err(|e| {
                    file_error(
                        "key_file",
                        &self.key_file,
                        format!("no PEM private key: {e}"),
                    )
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|source| TlsError::Rustls {
                        setting: section.to_string(),
                        source,
                    })
            }
            _ => Err(TlsError::HalfClientCert(section.to_string())),
        }
    }
}

fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".to_string());
    }
    Ok(certs)
}

/// The reasons of `error` and of every error under it, joined: TLS failures ("invalid
/// peer certificate: UnknownIssuer") sit several levels below what clients report.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut next = error.source();
    while let Some(e) = next {
        let text = e.to_string();
        // Wrappers often repeat their source's text; say it once.
        if !parts.last().is_some_and(|p| p.ends_with(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// Whether an error chain is a certificate or handshake failure: a setting to fix, not an
/// outage to wait out.
pub fn is_tls_failure(chain: &str) -> bool {
    let lower = chain.to_ascii_lowercase();
    ["certificate", "handshake", "tls", "ssl", "alert"]
        .iter()
        .any(|w| lower.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_name_the_setting() {
        let tls = TlsConfig {
            ca_file: "/nonexistent/ca.pem".into(),
            ..TlsConfig::default()
        };
        let e = tls.client_config("clickhouse.tls").expect_err("no file");
        assert!(
            e.to_string()
                .starts_with("clickhouse.tls.ca_file = \"/nonexistent/ca.pem\""),
            "{e}"
        );
        let half = TlsConfig {
            cert_file: "/x".into(),
            ..TlsConfig::default()
        };
        let e = half.client_config("schema_registry.tls").expect_err("half");
        assert!(
            e.to_string().contains("schema_registry.tls.cert_file"),
            "{e}"
        );
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let path = std::env::temp_dir().join(format!("wxpulse-tls-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").expect("write");
        let tls = TlsConfig {
            ca_file: path.to_string_lossy().into_owned(),
            ..TlsConfig::default()
        };
        let e = tls.client_config("clickhouse.tls").expect_err("empty");
        let _ = std::fs::remove_file(&path);
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }
}
