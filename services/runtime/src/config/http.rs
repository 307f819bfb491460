//! The sections of the HTTP services a consumer calls — the schema registry and ClickHouse —
//! and the check of their TLS settings, which both share.

use std::time::Duration;

use serde::Deserialize;

use crate::secret::{scalar_string, Secret};
use crate::tls::TlsConfig;

/// Schema registry; an empty URL means the schemas embedded in the binary.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Confluent-compatible REST endpoint, or empty.
    pub url: String,
    /// Per request.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Basic auth user (a managed registry's API key); empty = no Basic auth.
    #[serde(default, deserialize_with = "scalar_string")]
    pub username: String,
    /// Basic auth password (the API secret).
    #[serde(default)]
    pub password: Secret,
    /// File holding the Basic auth password, instead of `password`.
    #[serde(default)]
    pub password_file: String,
    /// Bearer token (`Authorization: Bearer`), instead of Basic auth.
    #[serde(default)]
    pub bearer_token: Secret,
    /// File holding the bearer token, instead of `bearer_token`.
    #[serde(default)]
    pub bearer_token_file: String,
    /// CA and client certificate for an `https://` URL.
    #[serde(default)]
    pub tls: TlsConfig,
}

/// ClickHouse HTTP interface.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// `http://host:8123`, or `https://host:8443` (TLS, see `tls`).
    pub url: String,
    /// Database holding wxpulse's tables.
    pub database: String,
    /// User.
    #[serde(deserialize_with = "scalar_string")]
    pub user: String,
    /// Password.
    pub password: Secret,
    /// File holding the password, instead of `password`.
    #[serde(default)]
    pub password_file: String,
    /// CA and client certificate for an `https://` URL.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Upper bound of one insert attempt.
    #[serde(with = "humantime_serde")]
    pub insert_timeout: Duration,
    /// Which inserts of rows have the `clickhouse` crate check them against the table's
    /// columns (names and types).
    pub validate_rows: RowValidation,
    /// How inserts are compressed on the wire.
    pub compression: Compression,
}

/// Compression of the insert bodies. LZ4 (ClickHouse's native framing) cuts the bytes sent
/// 2.4–3x for 5–6% of a service's CPU; where ClickHouse is on the same host or a fast local
/// network, `none` saves that CPU in the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// LZ4.
    Lz4,
    /// Uncompressed.
    None,
}

/// When a stream's rows are checked against the table's schema. The check catches a row
/// type that no longer matches its table with a clear error, but costs CPU on every row
/// (`RowBinaryWithNamesAndTypes`); once one insert into a table passed it, the rows of that
/// process have the same type and the server the same columns (migrations run before the
/// services), so later inserts can use plain `RowBinary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowValidation {
    /// Each table's first successful insert of a process is checked, later ones are not.
    First,
    /// Every insert is checked.
    Always,
    /// No insert is checked (a mismatch fails with a terse "not enough data").
    Never,
}

/// TLS files of `section` are checked when set (read and parsed), so a wrong path fails at
/// startup naming the setting; they are refused on a plain `http://` URL, where they would
/// silently not be used.
pub(super) fn check_tls(url: &str, tls: &TlsConfig, section: &str, errors: &mut Vec<String>) {
    let set = !(tls.ca_file.is_empty() && tls.cert_file.is_empty() && tls.key_file.is_empty());
    if !set {
        return;
    }
    if !url.starts_with("https://") {
        errors.push(format!(
            "{section}.tls is set but {section}.url is not https:// ({url:?})"
        ));
        return;
    }
    if let Err(e) = tls.client_config(&format!("{section}.tls")) {
        errors.push(e.to_string());
    }
}
