//! `wxpulse-menu-clicks`: consumes menu-click events, writes wxpulse.menu_clicks.

fn main() -> std::process::ExitCode {
    wxpulse_runtime::service::main(
        "Consumes menu-click events, writes wxpulse.menu_clicks",
        wxpulse_menu_clicks::MenuClicks::new,
    )
}
