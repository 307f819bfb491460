//! `wxpulse-chat-messages`: consumes chat message events (content never stored), writes wxpulse.chat_messages.

fn main() -> std::process::ExitCode {
    wxpulse_runtime::service::main(
        "Consumes chat message events (content never stored), writes wxpulse.chat_messages",
        wxpulse_chat_messages::ChatMessages::new,
    )
}
