//! Where the e2e logs go: each service binary's stderr, and the broker's and the adapter's
//! logs of a stack whose test failed.

use std::path::PathBuf;

/// The log every instance of the binary `name` appends its stderr to.
pub fn service_log(name: &str) -> PathBuf {
    logs_dir().join(format!("{name}.log"))
}

/// Where the e2e logs go (`make e2e` clears it): the services' and failed stacks'.
pub(crate) fn logs_dir() -> PathBuf {
    std::env::temp_dir().join("wxpulse-e2e-logs")
}

/// The last `lines` lines of a log, so a failure in CI shows what the service was doing.
pub fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
