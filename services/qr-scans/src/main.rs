//! `wxpulse-qr-scans`: consumes parametric QR scan events, writes wxpulse.qr_scans.

fn main() -> std::process::ExitCode {
    wxpulse_runtime::service::main(
        "Consumes parametric QR scan events, writes wxpulse.qr_scans",
        wxpulse_qr_scans::QrScans::new,
    )
}
