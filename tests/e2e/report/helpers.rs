//! What the report test shares: its database and size, months as ClickHouse prints them,
//! the order gateways deliver records in, and the check of a figure against the seed's.

use wxpulse_cli::produce;

pub(super) const DB: &str = "wx_report";

pub(super) const EVENTS: u64 = 1_000_000;

pub(super) fn month_date(yyyymm: u32) -> String {
    format!("{}-{:02}-01", yyyymm / 100, yyyymm % 100)
}

pub(super) fn month_of_day(day: &str) -> String {
    format!("{}-01", &day[..7])
}

/// The records as several gateways deliver them: shuffled within each 4-minute span of
/// server time (fans' events, copies and late ones interleaved in any order), never by more,
/// since the services rely on server time within a partition not going back by more than
/// `validation.max_future_skew` (5 minutes). Late (by client time) and re-sent records
/// already arrive out of event-time order from the generator.
pub(super) fn arrival_order(records: Vec<produce::Outgoing>) -> Vec<produce::Outgoing> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    const SPAN_MS: i64 = 4 * 60_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(20_251);
    let mut out = Vec::with_capacity(records.len());
    let mut span: Vec<produce::Outgoing> = Vec::new();
    for r in records {
        // A malformed record (at_ms 0) ends a span and keeps its place.
        if span
            .first()
            .is_some_and(|f| r.at_ms / SPAN_MS != f.at_ms / SPAN_MS)
        {
            span.shuffle(&mut rng);
            out.append(&mut span);
        }
        span.push(r);
    }
    span.shuffle(&mut rng);
    out.append(&mut span);
    out
}

pub(super) fn near(name: &str, got: f64, seed: f64, tolerance: f64) {
    eprintln!("{name}: {:.2}% (seed {:.2}%)", got * 100.0, seed * 100.0);
    assert!(
        (got - seed).abs() <= tolerance,
        "{name}: {got:.4} is not within {tolerance} of the seed's {seed}"
    );
}
