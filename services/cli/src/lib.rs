//! The `wxpulse` command line as a library, so end-to-end tests drive the same code.

pub mod conversions;
pub mod dims;
pub mod dlq;
pub mod events;
pub mod ingest;
pub mod migrate;
pub mod mirror;
pub mod produce;
pub mod quarantine;
pub mod topics;

use std::future::Future;
use std::process::ExitCode;

/// The `main` of every operator command (`wxpulse`, `wxpulse-generate`): warnings to
/// stderr, one async runtime, and the error chain printed under the command's `name` with
/// a failing exit status, so scripts and CI see the same shape of failure from both.
pub fn command_main<F>(name: &str, run: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("warn")
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
