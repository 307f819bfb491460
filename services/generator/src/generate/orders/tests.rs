use std::collections::{HashMap, HashSet};

use super::decoded::{self, ChannelIn, KindIn};
use super::*;
use crate::generate::{generate, generate_with};

fn spec(events: u64, fans: u32) -> Spec {
    let start = month_start_ms(202610);
    Spec {
        seed: 5,
        brands: 2,
        accounts_per_brand: 2,
        fans_per_account: fans,
        events,
        start_ms: start,
        end_ms: start + 31 * world::DAY_MS,
        duplicate_share: 0.02,
        resend_share: 0.0,
        late_share: 0.05,
        malformed_share: 0.01,
        unknown_dimension_share: 0.02,
        unknown_account_share: 0.0,
    }
}

#[test]
fn orders_are_valid_records_inside_the_span() {
    let spec = Spec {
        malformed_share: 0.03,
        ..spec(60_000, 3_000)
    };
    let world = World::new(&spec);
    let (records, truth) = generate_with(&spec, &world);
    let c = &truth.conversions;
    let all = decoded::orders(&records);
    assert_eq!(all.len() as u64, c.records);
    let stores: HashSet<&str> = world.stores.iter().map(|s| s.store_id.as_str()).collect();
    let mut seen: HashSet<String> = HashSet::new();
    let (mut copies, mut dead) = (0u64, BTreeMap::<String, u64>::new());
    let mut purchases: HashMap<(String, String), i64> = HashMap::new();
    let mut refunds: Vec<decoded::OrderIn> = Vec::new();
    let mut late = 0;
    for (key, o) in all {
        if let Some(reason) = o.invalid() {
            *dead.entry(reason.to_string()).or_default() += 1;
            continue;
        }
        if !seen.insert(o.event_id.clone()) {
            copies += 1;
            continue;
        }
        // Keyed by fan like the events, so a fan's records share a partition.
        assert_eq!(key, format!("{}|{}", o.app_id, o.openid).into_bytes());
        let fan: u32 = o
            .openid
            .rsplit('_')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("fan");
        assert_eq!(o.openid, world::openid(&o.app_id, fan));
        assert_eq!(
            o.unionid,
            unionid(&o.app_id, fan),
            "as the fan's events carry it"
        );
        assert!(uuid::Uuid::try_parse(&o.event_id).is_ok());
        assert!(
            (spec.start_ms..spec.end_ms).contains(&o.order_time),
            "{o:?}"
        );
        assert!(o.server_time >= o.order_time && o.server_time < spec.end_ms);
        assert!(
            o.server_time - o.order_time <= LATE_MAX_MS,
            "well under 7 days"
        );
        late += u32::from(o.server_time - o.order_time >= LATE_MIN_MS);
        assert_eq!(o.currency, "CNY");
        assert!(o.amount_fen > 0 && o.items >= 1, "{o:?}");
        match (o.channel, o.store_id.as_deref()) {
            (ChannelIn::StorePos, Some(s)) => {
                assert!(stores.contains(s) || s.ends_with("_popup01"), "{s}")
            }
            (ChannelIn::MiniProgram, Some(s)) => assert!(stores.contains(s), "{s}"),
            (ChannelIn::MiniProgram, None) => {}
            x => panic!("{x:?}"),
        }
        if let Some(code) = &o.share_code {
            assert_eq!(o.channel, ChannelIn::MiniProgram);
            assert!(world.has_associate(code) || code.starts_with("newhire"));
        }
        match o.kind {
            KindIn::Purchase => {
                let key = (o.app_id.clone(), o.order_id.clone());
                assert!(
                    purchases.insert(key, o.amount_fen).is_none(),
                    "one per order"
                );
            }
            _ => refunds.push(o),
        }
    }
    assert_eq!((copies, &dead), (c.duplicates, &c.dead_letters));
    assert!(copies > 0 && dead.contains_key("missing_field") && dead.len() == 2);
    assert!(late > 0, "some POS uploads are late");
    assert_eq!(purchases.len() as u64, c.purchases);
    assert_eq!(refunds.len() as u64, c.refunds);
    // Refunds: of known orders (but a few of orders before the span), never more than
    // the order's amount; whole, partial, and several per order.
    let mut refunded: HashMap<(String, String), (i64, u32)> = HashMap::new();
    let mut unmatched = 0;
    for r in &refunds {
        let key = (r.app_id.clone(), r.order_id.clone());
        if !purchases.contains_key(&key) {
            assert!(r.order_id.contains("-P"), "{r:?}");
            unmatched += 1;
            continue;
        }
        let e = refunded.entry(key).or_default();
        e.0 += r.amount_fen;
        e.1 += 1;
    }
    assert_eq!(unmatched, c.unmatched_refunds);
    assert!(unmatched > 0);
    let whole = refunded
        .iter()
        .filter(|(k, r)| r.0 == purchases[*k])
        .count();
    let several = refunded.values().filter(|r| r.1 > 1).count();
    assert!(refunded.iter().all(|(k, r)| r.0 <= purchases[k]));
    assert!(whole > 0 && whole < refunded.len() && several > 0);
    let share = refunded.len() as f64 / purchases.len() as f64;
    assert!((0.015..0.06).contains(&share), "{share}");
    // A modest share of the traffic.
    let per_event = purchases.len() as f64 / spec.events as f64;
    assert!((0.01..0.03).contains(&per_event), "{per_event}");
    let s = &c.shapes;
    assert!(s.share_code_share > 0.03, "{}", s.share_code_share);
    assert!(s.touchless_purchases > 0 && s.stale_touch_purchases > 0);
    assert!(
        (s.touchless_purchases + s.stale_touch_purchases) * 5 < c.purchases,
        "most purchases follow a touch"
    );
    assert!(
        s.chat_lift > 1.5,
        "conversion is higher after chats: {}",
        s.chat_lift
    );
}

#[test]
fn orders_are_deterministic_and_their_own() {
    let spec = spec(20_000, 1_000);
    let (a, ta) = generate(&spec);
    let (b, tb) = generate(&spec);
    assert_eq!(ta.conversions, tb.conversions);
    let orders = |r: &[Outgoing]| -> Vec<Vec<u8>> {
        r.iter()
            .filter(|r| r.topic == ORDERS_TOPIC)
            .filter_map(|r| r.payload.clone())
            .collect()
    };
    assert_eq!(orders(&a), orders(&b));
    assert!(ta.conversions.purchases > 100);
    let other = generate(&Spec { seed: 6, ..spec }).1;
    assert_ne!(other.conversions, ta.conversions);
    // Orders are interleaved by server time, after the records produced before them.
    let mut last = 0;
    for r in a.iter().filter(|r| r.topic == ORDERS_TOPIC) {
        assert!(r.at_ms + RETRY_AFTER_MS >= last);
        last = last.max(r.at_ms);
    }
    let first = a.iter().position(|r| r.topic == ORDERS_TOPIC).unwrap_or(0);
    assert!(
        first > 0 && first < a.len() / 2,
        "interleaved, not appended"
    );
}

/// The default spec (2 brands × 2 accounts × 20,000 fans, 200,000 events, a calendar
/// month): each brand's stores, pooled, land in seed 003's ranges for its model.
/// Printed with `--nocapture`.
#[test]
fn the_funnel_lands_in_seed_003s_ranges_at_the_default_spec() {
    let start = month_start_ms(202610);
    let spec = Spec {
        seed: 0,
        fans_per_account: 20_000,
        start_ms: start,
        end_ms: start + 30 * world::DAY_MS,
        duplicate_share: 0.01,
        resend_share: 0.0,
        late_share: 0.02,
        malformed_share: 0.005,
        unknown_dimension_share: 0.01,
        unknown_account_share: 0.0,
        ..spec(200_000, 0)
    };
    let (_, truth) = generate(&spec);
    let s = &truth.conversions.shapes;
    eprintln!("{}", serde_json::to_string_pretty(s).unwrap_or_default());
    let within =
        |x: f64, lo: f64, hi: f64| assert!((lo..=hi).contains(&x), "{x} not in {lo}..{hi}");
    let luxury = &s.funnel["luxury"];
    within(luxury.add_rate, 0.50, 0.60);
    within(luxury.active_rate, 0.09, 0.11);
    within(luxury.repurchase_rate, 0.70, 0.80);
    within(luxury.basket_yuan, 20_000.0, 25_000.0);
    let clothing = &s.funnel["clothing"];
    within(clothing.add_rate, 0.35, 0.45);
    within(clothing.active_rate, 0.11, 0.13);
    within(clothing.repurchase_rate, 0.70, 0.80);
    within(clothing.basket_yuan, 1_350.0, 1_650.0);
    for f in [luxury, clothing] {
        assert!(f.stores >= 20 && f.buyers > 1_000, "{f:?}");
        within(f.repurchase_frequency, 2.0, 3.5);
    }
    within(s.purchases_per_event, 0.01, 0.03);
    within(s.refunded_share, 0.02, 0.06);
    assert!(s.last_touch["associate_chat"] > 0.05, "{:?}", s.last_touch);
    assert!(s.chat_lift > 1.5, "{}", s.chat_lift);
    // Every store of both brands sells, each row with the brand's add rate to rounding.
    let rows: Vec<&crate::generate::FunnelRow> = truth
        .conversions
        .funnel
        .iter()
        .filter(|r| r.level == "store")
        .collect();
    assert_eq!(
        rows.len(),
        4 * (10 + 2),
        "10 stores, the mall, a pop-up per account"
    );
    for r in rows {
        let add = if r.app_id.starts_with("wxb00") {
            0.55
        } else {
            0.40
        };
        let got = r.add_rate.unwrap_or(0.0);
        assert!((got - add).abs() <= 1.0 / r.buyers as f64 + 0.01, "{r:?}");
    }
}

#[test]
fn no_events_no_orders() {
    let (records, truth) = generate(&spec(0, 100));
    assert!(records.is_empty());
    assert_eq!(truth.conversions.records, 0);
}
