//! `wxpulse-gateway`: WeChat callbacks in, pipeline events out.

use std::process::ExitCode;

fn main() -> ExitCode {
    wxpulse_runtime::service::launch(
        "gateway",
        "Receives WeChat and WeCom callbacks and article-read beacons, and produces the pipeline's events",
        wxpulse_gateway::run,
    )
}
