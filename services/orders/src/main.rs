//! `wxpulse-orders`: consumes purchases and refunds, writes wxpulse.orders, from which the
//! conversion views attribute revenue to associates, pushes and QR scenes.

fn main() -> std::process::ExitCode {
    wxpulse_runtime::service::main(
        "Consumes purchases and refunds, writes wxpulse.orders for conversion attribution",
        wxpulse_orders::Orders::new,
    )
}
