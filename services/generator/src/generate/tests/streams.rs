//! The records as produced: deterministic by seed, the seed's stream mix, retry copies
//! and server times, odd and live specs, events of foreign accounts.

use super::support::spec;
use crate::generate::*;

#[test]
fn deterministic_by_seed() {
    let (a, ta) = generate(&spec(2_000));
    let (b, tb) = generate(&spec(2_000));
    assert_eq!(ta, tb);
    assert_eq!(a.len(), b.len());
    assert!(a
        .iter()
        .zip(&b)
        .all(|(x, y)| x.payload == y.payload && x.key == y.key));
}

#[test]
fn shares_follow_the_seed_report() {
    let (records, truth) = generate(&spec(50_000));
    let total: u64 = truth.events.values().sum();
    assert_eq!(total, 50_000);
    let share = |s: &str| truth.events[s] as f64 / total as f64;
    assert!((share("menu_click") - 0.70).abs() < 0.01);
    assert!((share("qr_scan") - 0.06).abs() < 0.01);
    let menu = truth.events["menu_click"] as f64;
    assert!((truth.menu_categories["ECOMMERCE"] as f64 / menu - 0.45).abs() < 0.015);
    assert!((truth.menu_categories["CRM"] as f64 / menu - 0.22).abs() < 0.015);
    // Among clicks on buttons the menu has, exactly the seed's mix.
    let known = menu - truth.menu_clicks_by_category[UNKNOWN] as f64;
    let category = |c: &str| truth.menu_clicks_by_category[c] as f64 / known;
    assert!((category("ecommerce") - 0.45).abs() < 0.01);
    assert!((category("brand_info") - 0.33).abs() < 0.01);
    assert!((category("crm") - 0.22).abs() < 0.01);
    let unknown = truth.menu_clicks_by_category[UNKNOWN] as f64 / menu;
    assert!((unknown - 0.01).abs() < 0.003, "{unknown}");
    let bad: u64 = truth.dead_letters.values().sum();
    let orders = truth.conversions.records;
    assert_eq!(
        records.len() as u64,
        total + truth.duplicates + bad + orders
    );
}

#[test]
fn resends_are_exact_copies_arriving_minutes_to_days_later() {
    let spec = Spec {
        duplicate_share: 0.0,
        resend_share: 0.05,
        malformed_share: 0.0,
        ..spec(20_000)
    };
    let (records, truth) = generate(&spec);
    // The arrival clock is the newest server time produced so far.
    let mut clock = i64::MIN;
    let mut seen = std::collections::HashSet::new();
    let mut delays = Vec::new();
    for r in &records {
        clock = clock.max(r.at_ms);
        if !seen.insert(r.payload.clone()) {
            delays.push(clock - r.at_ms);
        }
    }
    assert_eq!(delays.len() as u64, truth.duplicates);
    assert!((truth.duplicates as f64 / 20_000.0 - 0.05).abs() < 0.01);
    let share = |lo: i64, hi: i64| {
        delays.iter().filter(|d| (lo..hi).contains(*d)).count() as f64 / delays.len() as f64
    };
    let (minute, hour, day) = (60_000, 3_600_000, 86_400_000);
    // A third each within the hour, the day and three days (those due after the span
    // end come out at the end, earlier than due).
    assert!((share(minute, hour) - 1.0 / 3.0).abs() < 0.06, "{delays:?}");
    assert!((share(hour, day) - 1.0 / 3.0).abs() < 0.06);
    assert!(share(day, 3 * day + minute) > 0.2);
    assert_eq!(share(0, minute * 9 / 10), 0.0);
}

#[test]
fn server_times_spread_over_the_span_even_above_1000_per_second() {
    // 20k events in one second: the live benchmark's rate.
    let spec = Spec {
        end_ms: 1_760_000_000_000 + 1_000,
        ..spec(20_000)
    };
    let spec = Spec {
        start_ms: 1_760_000_000_000,
        malformed_share: 0.0,
        ..spec
    };
    let (records, truth) = generate(&spec);
    let times: Vec<i64> = records.iter().map(|r| r.at_ms).collect();
    let (lo, hi) = (times.iter().min().copied(), times.iter().max().copied());
    assert!(
        matches!((lo, hi), (Some(lo), Some(hi)) if hi - lo >= 990),
        "{lo:?}..{hi:?}"
    );
    // Retry copies trail their original by >= 5 s of server time, so within one
    // second of traffic they all come out at the end, still inside the dedup window.
    assert_eq!(
        records.len() as u64,
        20_000 + truth.duplicates + truth.conversions.records
    );
}

#[test]
fn odd_specs_generate_without_panicking() {
    for spec in [
        Spec {
            fans_per_account: 0,
            ..spec(500)
        },
        Spec {
            end_ms: 1_760_000_000_000 + 1,
            ..spec(500)
        },
        Spec {
            end_ms: 1_760_000_000_000 - 5,
            ..spec(50)
        },
        Spec {
            fans_per_account: 3,
            ..spec(0)
        },
        Spec {
            fans_per_account: 20,
            ..spec(10)
        },
    ] {
        let (records, truth) = generate(&spec);
        assert_eq!(truth.events.values().sum::<u64>(), spec.events, "{spec:?}");
        assert!(records.len() as u64 >= spec.events);
    }
}

/// Live mode publishes the world, then starts the events later: the events keep to
/// their own span, reads still follow their pushes.
#[test]
fn live_events_start_after_the_world() {
    let world_spec = Spec {
        end_ms: 1_760_000_000_000 + 30_000,
        late_share: 0.0,
        ..spec(20_000)
    };
    let world = World::new(&world_spec);
    let spec = Spec {
        start_ms: world_spec.start_ms + 7_000,
        end_ms: world_spec.end_ms + 7_000,
        ..world_spec.clone()
    };
    let (records, truth) = generate_with(&spec, &world);
    assert_eq!(truth.events.values().sum::<u64>(), 20_000);
    for r in records.iter().filter(|r| r.at_ms > 0) {
        assert!(
            (spec.start_ms..spec.end_ms).contains(&r.at_ms),
            "{}",
            r.at_ms
        );
    }
    let reads: u64 = truth
        .report
        .pushes
        .values()
        .map(|p| p.reads.push_readers)
        .sum();
    assert!(reads > 0);
}

#[test]
fn a_foreign_account_event_is_the_same_event_of_another_account() {
    let frames = Frames::new();
    let spec = Spec {
        seed: 5,
        brands: 1,
        accounts_per_brand: 2,
        fans_per_account: 500,
        events: 4_000,
        start_ms: 1_760_000_000_000,
        end_ms: 1_760_000_000_000 + 10 * 86_400_000,
        duplicate_share: 0.01,
        resend_share: 0.0,
        late_share: 0.0,
        malformed_share: 0.01,
        unknown_dimension_share: 0.0,
        unknown_account_share: 0.05,
    };
    let (records, truth) = generate(&spec);
    let foreign: Vec<_> = records
        .iter()
        .filter(|r| r.key.starts_with(b"wxforeign"))
        .collect();
    assert!(!foreign.is_empty());
    assert_eq!(
        truth.dead_letters.get("unknown_account").copied(),
        Some(foreign.len() as u64)
    );
    for r in foreign.iter().filter(|r| r.topic == "wxpulse.menu_clicks") {
        let payload = r.payload.as_deref().expect("a value");
        let (id, datum) = codec::split_frame(payload).expect("framed");
        let click: wxpulse_runtime::events::MenuClick<'_> =
            codec::decode(datum, &frames.0[&id].1).expect("decodes whole");
        assert!(click.app_id.starts_with("wxforeign"));
        assert!(uuid::Uuid::parse_str(click.event_id).is_ok());
        assert!(r.key.starts_with(format!("{}|", click.app_id).as_bytes()));
    }
}
