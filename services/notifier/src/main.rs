//! `wxpulse-notifier`: reads the scan, read, chat and order topics and tells each fan's
//! associate when the fan does something worth a conversation.

fn main() -> std::process::ExitCode {
    wxpulse_runtime::service::launch(
        "notifier",
        "Tells sales associates when one of their fans acts (WeCom CRM notifications)",
        wxpulse_notifier::run,
    )
}
