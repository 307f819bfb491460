//! The seed's shapes at the default spec, and the benchmark's size.

use super::support::spec;
use crate::generate::*;

/// The default spec (2 brands × 2 accounts × 20,000 fans, 200,000 events, a calendar
/// month): the seed's shapes, measured from the ground truth. Printed with
/// `--nocapture`.
#[test]
fn seed_shapes_at_the_default_spec() {
    let start = world::month_start_ms(202610);
    let spec = Spec {
        seed: 0,
        fans_per_account: 20_000,
        start_ms: start,
        end_ms: start + 30 * 86_400_000,
        duplicate_share: 0.01,
        resend_share: 0.0,
        late_share: 0.02,
        malformed_share: 0.005,
        ..spec(200_000)
    };
    let (_, truth) = generate(&spec);
    let s = &truth.report.shapes;
    eprintln!("{}", serde_json::to_string_pretty(s).unwrap_or_default());
    let within =
        |x: f64, lo: f64, hi: f64| assert!((lo..=hi).contains(&x), "{x} not in {lo}..{hi}");
    within(s.monthly_active_share, 0.085, 0.105);
    within(s.followers_with_0_to_2, 0.75, 0.9);
    within(s.open_rate_single, 0.095, 0.106);
    within(s.open_rate_first, 0.097, 0.109);
    within(s.open_rate_multi_cumulative, 0.14, 0.157);
    assert!(
        s.open_rate_non_first < s.open_rate_first * 0.6,
        "later articles are opened less"
    );
    within(s.depth_survival_3_27, 0.78, 0.82);
    within(s.depth_survival_8_87, 0.48, 0.52);
    within(s.read_sources["PUSH"], 0.85, 0.96);
    within(s.follow_sources["search"], 0.412, 0.416);
    within(s.follow_sources["qr"], 0.275, 0.279);
    within(s.follow_sources["paid_media"], 0.010, 0.013);
    within(s.unfollow_after_push, 0.0035, 0.005);
    within(s.waits_answered, 0.8, 0.95);
    within(s.first_reply_median_ms as f64, 120_000.0, 600_000.0);
    within(s.first_reply_p90_ms as f64, 1_800_000.0, 6.0 * 3_600_000.0);
    assert!(
        s.new_contacts_per_week_max >= 10.0,
        "good associates: >= 10 a week"
    );
    // Seed 000 as a table: pushes on Thursday and Friday evenings and at lunch.
    let mut when: BTreeMap<(u8, u8), u64> = BTreeMap::new();
    for p in truth.report.pushes.values() {
        *when.entry((p.weekday, p.hour)).or_default() += 1;
    }
    assert!(when
        .keys()
        .all(|&(d, h)| world::PUSH_HEATMAP[h as usize][d as usize - 1] > 0.0));
}

/// The benchmark's size: 1,000,000 events must generate well under a minute even in a
/// debug build (`cargo test -p wxpulse-cli -- --ignored --nocapture`).
#[test]
#[ignore = "a million events: ~25 s in a debug build"]
fn a_million_events_generate_well_under_a_minute() {
    let start = world::month_start_ms(202610);
    let spec = Spec {
        fans_per_account: 20_000,
        start_ms: start,
        end_ms: start + 30 * 86_400_000,
        ..spec(1_000_000)
    };
    let started = std::time::Instant::now();
    let (records, truth) = generate(&spec);
    let took = started.elapsed();
    eprintln!("{} records in {took:?}", records.len());
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&truth.report.shapes).unwrap_or_default()
    );
    assert!(took.as_secs() < 45, "{took:?}");
}
