//! `wxpulse conversions settle`: stores the credits of the purchases that can no longer
//! change, so the conversion views compute the touch join only for the open days
//! (migration 0017).
//!
//! A purchase's credits depend on its order's purchase records and on the fan's touches up
//! to its purchase time. Once every event up to a cutoff has arrived — the cutoff lies
//! `validation.max_lateness` (the services refuse later events) plus a margin for consumer
//! lag before now — the credits of each order whose first purchase record is before the
//! cutoff are final. A settle recomputes, month by month from the last settle's month, the
//! purchases before the cutoff with the same SQL the views use, into the staging table
//! `order_credits_settling`, and swaps each month into `order_credits_settled` with
//! `REPLACE PARTITION` (an empty month drops it): a month is replaced whole, never
//! appended to, so a settle retried after a failure or run twice leaves the same rows.
//! Only then is the cutoff recorded in `conversion_settles`; the views treat a purchase as
//! open when its order has no settled row and its first record is at or after that cutoff,
//! so a settle interrupted between two months is exact too.
//!
//! Events older than the cutoff that arrive anyway (a `dlq replay`, a `quarantine
//! release`) are counted once their month is settled again: `--from <month>`.
//! Run one settle at a time (the staging table is shared); on a cluster, against each
//! shard's node, like `quarantine release`: the settled table is local, as the views read it.

use anyhow::{bail, Context};
use clickhouse::Row;
use serde::Deserialize;
use wxpulse_runtime::config::ClickHouseConfig;
use wxpulse_runtime::sink;

/// The settled table's columns the settle writes from `order_credits_to_settle`.
const COLUMNS: &str = "app_id, brand, order_id, fan_id, purchase_time, event_id, amount_fen, \
    currency, channel, order_store_id, order_region, share_code, share_store_id, share_region, \
    items, attribution_window_s, credit_no, model, touch, touch_time, touch_event_id, \
    associate_userid, store_id, region, msgid, article_id, campaign, scene, qr_channel, weight";

/// One month a settle replaces: its partition and the purchase times it settles.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct Month {
    /// Partition (`toYYYYMM`).
    pub partition: u32,
    /// First purchase time settled, ms since the epoch (the month's start).
    pub from_ms: i64,
    /// End of the purchase times settled (exclusive): the month's end or the cutoff.
    pub to_ms: i64,
}

/// What a settle did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The cutoff it recorded, ms since the epoch.
    pub cutoff_ms: i64,
    /// The previous settle's cutoff (0: none).
    pub previous_ms: i64,
    /// Each month replaced, with its settled purchases.
    pub months: Vec<(u32, u64)>,
}

/// The state of the settled part.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct Status {
    /// Last settle's cutoff, ms since the epoch (0: never settled).
    pub settled_until_ms: i64,
    /// Purchases settled.
    pub settled: u64,
    /// Purchases still open (joined with the touches on every read).
    pub open: u64,
}

/// `text` (`2026-11-28`, `2026-11-28 06:00:00`, ISO 8601) in Asia/Shanghai unless it has
/// an offset, as ms since the epoch; the server parses it, as it parses the views' times.
pub async fn parse_time(ch: &ClickHouseConfig, text: &str) -> anyhow::Result<i64> {
    sink::client(ch)?
        .query("SELECT toUnixTimestamp64Milli(parseDateTime64BestEffort(?, 3, 'Asia/Shanghai'))")
        .bind(text)
        .fetch_one::<i64>()
        .await
        .with_context(|| format!("cannot read {text:?} as a time"))
}

/// The last settle's cutoff, ms since the epoch (0 when none).
pub async fn settled_until(ch: &ClickHouseConfig) -> anyhow::Result<i64> {
    sink::client(ch)?
        .query("SELECT toUnixTimestamp64Milli(max(settled_until)) FROM conversion_settles")
        .fetch_one::<i64>()
        .await
        .context("cannot read conversion_settles (run `wxpulse migrate`)")
}

/// Settled and open purchases.
pub async fn status(ch: &ClickHouseConfig) -> anyhow::Result<Status> {
    sink::client(ch)?
        .query(
            "SELECT (SELECT toUnixTimestamp64Milli(max(settled_until)) FROM conversion_settles) \
             AS settled_until_ms, \
             (SELECT count() FROM order_credits_settled WHERE credit_no = 1) AS settled, \
             (SELECT count() FROM order_purchases_open) AS open",
        )
        .fetch_one::<Status>()
        .await
        .context("cannot read the settled conversions (run `wxpulse migrate`)")
}

/// The months a settle up to `cutoff_ms` replaces: from `from` (a date in the first month)
/// or else the last settle's month (or, before any, the first purchase's) to the cutoff's.
pub async fn months(
    ch: &ClickHouseConfig,
    cutoff_ms: i64,
    from: Option<&str>,
) -> anyhow::Result<Vec<Month>> {
    let first = match from {
        Some(_) => "toStartOfMonth(parseDateTime64BestEffort(?, 3, 'Asia/Shanghai'))",
        None => {
            "toStartOfMonth(if(w > toDateTime64(0, 3, 'Asia/Shanghai'), w, \
             ifNull((SELECT minOrNull(purchase_time) FROM order_purchases_open), cutoff)))"
        }
    };
    let sql = format!(
        "WITH fromUnixTimestamp64Milli(?, 'Asia/Shanghai') AS cutoff, \
              (SELECT max(settled_until) FROM conversion_settles) AS w, \
              assumeNotNull({first}) AS first_month, \
              toStartOfMonth(cutoff - toIntervalMillisecond(1)) AS last_month \
         SELECT toUInt32(toYYYYMM(m)) AS partition, \
                toUnixTimestamp64Milli(toDateTime64(m, 3, 'Asia/Shanghai')) AS from_ms, \
                least(toUnixTimestamp64Milli(toDateTime64(addMonths(m, 1), 3, 'Asia/Shanghai')), \
                      toUnixTimestamp64Milli(cutoff)) AS to_ms \
         FROM (SELECT arrayJoin(arrayMap(i -> addMonths(toDate(first_month), i), \
               range(toUInt32(greatest(0, dateDiff('month', toDate(first_month), toDate(last_month)) + 1))))) AS m) \
         ORDER BY partition"
    );
    let mut query = sink::client(ch)?.query(&sql).bind(cutoff_ms);
    if let Some(from) = from {
        query = query.bind(from);
    }
    query
        .fetch_all::<Month>()
        .await
        .context("cannot list the months to settle")
}

/// Settles every purchase whose order's first purchase record is before `cutoff_ms`
/// (see the module doc); `from` re-settles from that month on. Refuses a cutoff before the
/// last settle's: the settled part never shrinks.
pub async fn settle(
    ch: &ClickHouseConfig,
    cutoff_ms: i64,
    from: Option<&str>,
) -> anyhow::Result<Settled> {
    let previous_ms = settled_until(ch).await?;
    if cutoff_ms < previous_ms {
        bail!(
            "cutoff {cutoff_ms} is before the last settle's ({previous_ms}): the settled \
             conversions never move back (to recompute old months, use --from with a later cutoff)"
        );
    }
    let client = sink::client(ch)?;
    // A month is built anew each time: a retried insert must not be skipped as a duplicate
    // of the one a failed attempt wrote before the partition was dropped.
    let staging = client.clone().with_setting("insert_deduplicate", "0");
    let mut done = Vec::new();
    let months = months(ch, cutoff_ms, from).await?;
    let first_ms = months.first().map_or(cutoff_ms, |m| m.from_ms);
    for m in months {
        let p = m.partition;
        client
            .query(&format!(
                "ALTER TABLE order_credits_settling DROP PARTITION {p}"
            ))
            .execute()
            .await
            .with_context(|| format!("cannot clear month {p} of order_credits_settling"))?;
        staging
            .query(&format!(
                "INSERT INTO order_credits_settling ({COLUMNS}, settled_until) \
                 SELECT {COLUMNS}, fromUnixTimestamp64Milli(?, 'Asia/Shanghai') \
                 FROM order_credits_to_settle(from_ms = ?, to_ms = ?)"
            ))
            .bind(cutoff_ms)
            .bind(m.from_ms)
            .bind(m.to_ms)
            .execute()
            .await
            .with_context(|| format!("cannot compute the credits of month {p}"))?;
        let purchases: u64 = client
            .query(
                "SELECT count() FROM order_credits_settling \
                 WHERE toYYYYMM(purchase_time) = ? AND credit_no = 1",
            )
            .bind(p)
            .fetch_one()
            .await
            .with_context(|| format!("cannot count month {p}"))?;
        // REPLACE refuses an empty source month; an empty month has nothing settled.
        let swap = if purchases > 0 {
            format!("ALTER TABLE order_credits_settled REPLACE PARTITION {p} FROM order_credits_settling")
        } else {
            format!("ALTER TABLE order_credits_settled DROP PARTITION {p}")
        };
        client
            .query(&swap)
            .execute()
            .await
            .with_context(|| format!("cannot replace month {p} of order_credits_settled"))?;
        client
            .query(&format!(
                "ALTER TABLE order_credits_settling DROP PARTITION {p}"
            ))
            .execute()
            .await
            .with_context(|| format!("cannot clear month {p} of order_credits_settling"))?;
        done.push((p, purchases));
    }
    client
        .query(
            "INSERT INTO conversion_settles (settled_until, from_month, purchases) \
             SELECT fromUnixTimestamp64Milli(?, 'Asia/Shanghai'), \
                    toDate(fromUnixTimestamp64Milli(?, 'Asia/Shanghai')), ?",
        )
        .bind(cutoff_ms)
        .bind(first_ms)
        .bind(done.iter().map(|(_, n)| n).sum::<u64>())
        .execute()
        .await
        .context("cannot record the settle")?;
    Ok(Settled {
        cutoff_ms,
        previous_ms,
        months: done,
    })
}
