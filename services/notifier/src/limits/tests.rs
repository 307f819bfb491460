use std::sync::Arc;

use wxpulse_runtime::config::{Config, QuietHours};
use wxpulse_runtime::enrich::CustomerStatus;

use super::*;

const HOUR: i64 = 3_600_000;
/// 2026-12-01 00:00 Asia/Shanghai.
const DEC1: i64 = 1_764_518_400_000;

fn config() -> NotifierConfig {
    Config::load(None, std::iter::empty::<(String, String)>())
        .expect("defaults load")
        .notifier
}

fn candidate(rule: Rule, fan: u64, associate: &str, server_time: i64) -> Candidate {
    Candidate {
        rule,
        associate: Arc::from(associate),
        fan_id: fan,
        relationship: CustomerStatus::Vip,
        event_time: server_time,
        server_time,
        amount_fen: 0,
        article_id: String::new(),
        scene: String::new(),
        detail: String::new(),
    }
}

fn note(id: u128, c: &Candidate) -> SentNote {
    SentNote {
        id: Uuid::from_u128(id),
        rule: c.rule,
        associate: c.associate.clone(),
        fan_id: c.fan_id,
        server_time: c.server_time,
    }
}

#[test]
fn quiet_hours_span_midnight_in_shanghai_time() {
    let q = Quiet::new(&config()); // 22:00-09:00
    assert!(!q.contains(DEC1 + 21 * HOUR + 59 * 60_000));
    assert!(q.contains(DEC1 + 22 * HOUR));
    assert!(q.contains(DEC1 + 3 * HOUR));
    assert!(!q.contains(DEC1 + 9 * HOUR));
    assert_eq!(
        q.end_after(DEC1 + 23 * HOUR + 17 * 60_000 + 5),
        DEC1 + 33 * HOUR
    );
    assert_eq!(q.end_after(DEC1 + 2 * HOUR), DEC1 + 9 * HOUR);
    assert_eq!(q.end_after(DEC1 + 12 * HOUR), DEC1 + 12 * HOUR);
}

#[test]
fn a_rule_fires_once_per_fan_window_and_a_replay_is_recognised() {
    let cfg = config(); // in_store_scan: 1 per fan per 4 h, drop in quiet hours
    let q = Quiet::new(&cfg);
    let mut sent = Sent::new(26 * HOUR, 1000);
    let first = candidate(Rule::InStoreScan, 7, "a1", DEC1 + 10 * HOUR);
    assert_eq!(
        decide(&cfg, &q, &sent, &Uuid::from_u128(1), &first),
        Verdict::Send {
            deliver_after: first.server_time
        }
    );
    sent.record(note(1, &first));
    assert_eq!(
        decide(&cfg, &q, &sent, &Uuid::from_u128(1), &first),
        Verdict::AlreadySent
    );
    let again = candidate(Rule::InStoreScan, 7, "a1", DEC1 + 13 * HOUR);
    assert_eq!(
        decide(&cfg, &q, &sent, &Uuid::from_u128(2), &again),
        Verdict::FanLimited
    );
    let later = candidate(Rule::InStoreScan, 7, "a1", DEC1 + 14 * HOUR + 1);
    assert!(matches!(
        decide(&cfg, &q, &sent, &Uuid::from_u128(3), &later),
        Verdict::Send { .. }
    ));
    // Another rule, another fan: their own counts.
    let read = candidate(Rule::HighIntentRead, 7, "a1", DEC1 + 13 * HOUR);
    assert!(matches!(
        decide(&cfg, &q, &sent, &Uuid::from_u128(4), &read),
        Verdict::Send { .. }
    ));
}

#[test]
fn quiet_hours_drop_or_defer_by_rule() {
    let cfg = config();
    let q = Quiet::new(&cfg);
    let sent = Sent::new(26 * HOUR, 1000);
    let night = DEC1 + 23 * HOUR;
    let scan = candidate(Rule::InStoreScan, 1, "a", night);
    assert_eq!(cfg.rules.in_store_scan.quiet_hours, QuietHours::Drop);
    assert_eq!(
        decide(&cfg, &q, &sent, &Uuid::from_u128(1), &scan),
        Verdict::Quiet
    );
    let purchase = candidate(Rule::Purchase, 1, "a", night);
    assert_eq!(
        decide(&cfg, &q, &sent, &Uuid::from_u128(2), &purchase),
        Verdict::Send {
            deliver_after: DEC1 + 33 * HOUR
        }
    );
}

#[test]
fn the_associate_limit_counts_every_rule_in_any_hour() {
    let mut cfg = config();
    cfg.associate_per_hour = 3;
    let q = Quiet::new(&cfg);
    let mut sent = Sent::new(26 * HOUR, 1000);
    for i in 0..3u64 {
        let c = candidate(
            Rule::Purchase,
            i,
            "busy",
            DEC1 + 10 * HOUR + i as i64 * 60_000,
        );
        sent.record(note(u128::from(i) + 1, &c));
    }
    let fourth = candidate(Rule::Purchase, 9, "busy", DEC1 + 10 * HOUR + 30 * 60_000);
    assert_eq!(
        decide(&cfg, &q, &sent, &Uuid::from_u128(10), &fourth),
        Verdict::AssociateLimited
    );
    let other = candidate(Rule::Purchase, 9, "calm", DEC1 + 10 * HOUR + 30 * 60_000);
    assert!(matches!(
        decide(&cfg, &q, &sent, &Uuid::from_u128(11), &other),
        Verdict::Send { .. }
    ));
    let next_hour = candidate(Rule::Purchase, 9, "busy", DEC1 + 11 * HOUR + 60_000);
    assert!(matches!(
        decide(&cfg, &q, &sent, &Uuid::from_u128(12), &next_hour),
        Verdict::Send { .. }
    ));
}

#[test]
fn memory_is_bounded_by_lookback_and_cap() {
    let mut sent = Sent::new(10 * HOUR, 5);
    for i in 0..20i64 {
        let c = candidate(Rule::Purchase, i as u64, "a", DEC1 + i * HOUR);
        assert!(sent.record(note(i as u128 + 1, &c)));
    }
    assert!(sent.len() <= 5);
    assert!(sent.contains(&Uuid::from_u128(20)));
    assert!(!sent.contains(&Uuid::from_u128(1)));
    let dup = candidate(Rule::Purchase, 19, "a", DEC1 + 19 * HOUR);
    assert!(!sent.record(note(20, &dup)));
}
