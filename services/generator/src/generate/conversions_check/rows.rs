//! The rows the second computation keeps (a fan by its ids, a touch as `fan_touches`
//! holds it, sums of credit rows) and how its sums are compared with the truth's. A leaf
//! of the check.

use std::collections::{BTreeMap, HashSet};

pub(super) type Fan = (String, String);

/// A qualifying touch as `fan_touches` holds it.
#[derive(Debug, Clone)]
pub(super) struct TouchRow {
    pub(super) time: i64,
    pub(super) event_id: String,
    pub(super) touch: &'static str,
    pub(super) associate_userid: String,
    pub(super) store_id: String,
    pub(super) region: String,
    pub(super) msgid: i64,
    pub(super) article_id: String,
    pub(super) campaign: String,
    pub(super) scene: String,
    pub(super) qr_channel: String,
}

impl TouchRow {
    pub(super) fn new(time: i64, event_id: &str, touch: &'static str) -> TouchRow {
        TouchRow {
            time,
            event_id: event_id.to_string(),
            touch,
            associate_userid: String::new(),
            store_id: String::new(),
            region: String::new(),
            msgid: 0,
            article_id: String::new(),
            campaign: String::new(),
            scene: String::new(),
            qr_channel: String::new(),
        }
    }
}

/// Sums of credit rows: orders, refunds, gross, refunded, share-code orders, buyers.
#[derive(Debug, Default)]
pub(super) struct Sums {
    pub(super) orders: f64,
    pub(super) refunds: f64,
    pub(super) gross: f64,
    pub(super) refunded: f64,
    pub(super) share_code_orders: f64,
    pub(super) buyers: HashSet<Fan>,
}

pub(super) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

pub(super) fn same(
    name: &str,
    got: &BTreeMap<Vec<String>, Sums>,
    want: &BTreeMap<Vec<String>, [f64; 6]>,
) {
    let keys: Vec<&Vec<String>> = got.keys().collect();
    let want_keys: Vec<&Vec<String>> = want.keys().collect();
    assert_eq!(keys, want_keys, "{name}: groups");
    for (k, s) in got {
        let w = want[k];
        let g = [
            s.orders,
            s.refunds,
            s.gross,
            s.refunded,
            s.share_code_orders,
            s.buyers.len() as f64,
        ];
        for (i, (x, y)) in g.iter().zip(w).enumerate() {
            // Refunds and share-code orders are not in every view: NaN in `want`.
            assert!(y.is_nan() || close(*x, y), "{name} {k:?} [{i}]: {x} vs {y}");
        }
    }
    assert!(!got.is_empty(), "{name} has rows");
}
