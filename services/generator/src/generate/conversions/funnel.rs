//! The social-selling funnel of any period and activity threshold, from what the tally
//! kept of the purchases ([`Conversions::social_funnel`]), and the helpers the tally's
//! parts share with it.

use std::collections::BTreeMap;

use super::rows::{Conversions, FunnelRow};
use crate::generate::touch::FanKey;

/// `yyyy-mm-01` of `yyyymm`.
pub fn month_date(yyyymm: u32) -> String {
    format!("{}-{:02}-01", yyyymm / 100, yyyymm % 100)
}

/// Per fan: purchases and their amounts.
type Spending = BTreeMap<FanKey, (u64, i64)>;

pub(super) fn ratio(n: f64, d: f64) -> Option<f64> {
    (d > 0.0).then(|| n / d)
}

impl Conversions {
    /// The funnel over calendar months `from..=to` (`yyyymm`) with activity threshold
    /// `active_over`: the rows of `social_funnel(from_month, to_month, active_over)`
    /// (`month` is `from`'s first day).
    pub fn social_funnel(&self, from: u32, to: u32, active_over: u64) -> Vec<FunnelRow> {
        let b = &self.basis;
        // (app_id, store) → fan → (purchases, spent).
        let mut stores: BTreeMap<(&str, &str), Spending> = BTreeMap::new();
        for (m, app, fan, store, amount) in &b.purchases {
            if (from..=to).contains(m) {
                let e = stores
                    .entry((app.as_str(), store.as_str()))
                    .or_default()
                    .entry(*fan)
                    .or_default();
                e.0 += 1;
                e.1 += amount;
            }
        }
        let mut out = Vec::new();
        for ((app, store), fans) in stores {
            let mut rows: BTreeMap<&str, FunnelRow> = BTreeMap::new();
            for (fan, &(n, spent)) in &fans {
                let associate = b.associates.get(fan).map_or("", String::as_str);
                let interactions: u64 = b
                    .interactions
                    .get(fan)
                    .map_or(0, |c| c.range(from..=to).map(|(_, n)| n).sum());
                let added = !associate.is_empty();
                let active = added && interactions > active_over;
                let repurchasing = active && n >= 2;
                let count = |row: &mut FunnelRow, all: bool| {
                    row.added += u64::from(added);
                    row.active += u64::from(active);
                    row.repurchasing += u64::from(repurchasing);
                    if all || added {
                        row.purchases += n;
                        row.spent_fen += spent;
                    }
                    if repurchasing {
                        // Repurchases, summed here; divided below.
                        row.repurchase_frequency =
                            Some(row.repurchase_frequency.unwrap_or(0.0) + n as f64);
                    }
                };
                count(rows.entry("").or_default(), true);
                if added {
                    count(rows.entry(associate).or_default(), false);
                }
            }
            let buyers = fans.len() as u64;
            for (associate, mut row) in rows {
                row.month = month_date(from);
                row.app_id = app.to_string();
                row.store_id = store.to_string();
                row.level = if associate.is_empty() {
                    "store"
                } else {
                    "associate"
                }
                .into();
                row.associate_userid = associate.to_string();
                row.buyers = buyers;
                row.add_rate = ratio(row.added as f64, buyers as f64);
                row.active_rate = ratio(row.active as f64, row.added as f64);
                row.repurchase_rate = ratio(row.repurchasing as f64, row.active as f64);
                row.repurchase_frequency = row
                    .repurchase_frequency
                    .and_then(|n| ratio(n, row.repurchasing as f64));
                row.basket_fen = ratio(row.spent_fen as f64, row.purchases as f64);
                out.push(row);
            }
        }
        out
    }
}
