//! Which ClickHouse errors a retry can cure: the class decides the alert (a permanent one
//! pages a human), never whether to retry (Kafka keeps the data; nothing is skipped).

use crate::config::ClickHouseConfig;

/// Whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Network, timeout, overload, read-only replica: retry.
    Transient,
    /// Schema mismatch, unknown table, bad data: retrying will not help until someone
    /// fixes the deployment. We still retry (Kafka keeps the data; nothing is skipped) and
    /// the class makes the alert page a human.
    Permanent,
}

impl ErrorClass {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
        }
    }
}

/// ClickHouse error codes worth retrying (server overloaded, timeouts, replicas, Keeper).
const TRANSIENT_CODES: &[u32] = &[
    3, 32, 159, 164, 202, 203, 209, 210, 241, 242, 252, 285, 319, 425, 999, 1000, 1001,
];

/// Classifies a client error.
pub fn classify(e: &clickhouse::error::Error) -> ErrorClass {
    use clickhouse::error::Error as E;
    match e {
        E::Network(_) | E::TimedOut => ErrorClass::Transient,
        E::BadResponse(msg) => match exception_code(msg) {
            Some(code) if TRANSIENT_CODES.contains(&code) => ErrorClass::Transient,
            Some(_) => ErrorClass::Permanent,
            // No code: a proxy or load balancer answered; assume it passes.
            None => ErrorClass::Transient,
        },
        _ => ErrorClass::Permanent,
    }
}

/// The `N` of `Code: N. DB::Exception`.
fn exception_code(msg: &str) -> Option<u32> {
    let rest = &msg[msg.find("Code: ")? + 6..];
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

/// A client error with its causes (a TLS failure sits several levels down) and, for a
/// certificate or handshake failure, the settings to check.
pub fn describe(e: &clickhouse::error::Error, cfg: &ClickHouseConfig) -> String {
    let chain = crate::tls::chain(e);
    if cfg.url.starts_with("https://") && crate::tls::is_tls_failure(&chain) {
        format!(
            "TLS with {} failed: {chain} (check clickhouse.tls.ca_file, now {:?}, empty \
             meaning the system roots, and clickhouse.tls.cert_file/key_file if the server \
             requires a client certificate)",
            cfg.url, cfg.tls.ca_file
        )
    } else {
        chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_exception_code() {
        let bad = |m: &str| clickhouse::error::Error::BadResponse(m.to_string());
        assert_eq!(
            classify(&bad("Code: 252. DB::Exception: Too many parts")),
            ErrorClass::Transient
        );
        assert_eq!(
            classify(&bad(
                "Code: 60. DB::Exception: Table wxpulse.x does not exist"
            )),
            ErrorClass::Permanent
        );
        assert_eq!(classify(&bad("502 Bad Gateway")), ErrorClass::Transient);
        assert_eq!(
            classify(&clickhouse::error::Error::TimedOut),
            ErrorClass::Transient
        );
        assert_eq!(exception_code("Code: 1001. DB::Exception: x"), Some(1001));
    }
}
