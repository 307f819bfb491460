//! The `notifications` table and its views (migration 0018) on the real engine: a replay
//! that inserts notifications again is counted once, before and after the copies merge,
//! and `v_notifications` / `v_notifications_daily` give exactly the follow-ups computed
//! here from the same rows: a message from the associate told to that fan, in that account,
//! received in [deliver_after, deliver_after + 24 h). Around each notification sit the
//! messages that must not count: one before deliver_after (and before a deferred
//! notification's deliver_after, after its trigger), one at 24 h 01 min and one at exactly
//! 24 h, one from another associate, one from the associate to another fan, one from the
//! fan (the wrong direction) and one in another account.

use std::collections::BTreeMap;

use serde::Serialize;
use uuid::Uuid;
use wxpulse_e2e::*;

const DB: &str = "wx_notification_views";
const MIN: i64 = 60_000;
const H: i64 = 3_600_000;
const D: i64 = 86_400_000;
/// Asia/Shanghai is UTC+8 all year.
const SHANGHAI: i64 = 8 * H;

/// A row of `notifications` as the notifier inserts it (times in ms).
#[derive(Clone, clickhouse::Row, Serialize)]
struct NotificationRow {
    #[serde(with = "clickhouse::serde::uuid")]
    notification_id: Uuid,
    rule: String,
    app_id: String,
    brand: String,
    associate_userid: String,
    store_id: String,
    fan_id: u64,
    relationship: String,
    event_time: i64,
    server_time: i64,
    deliver_after: i64,
    #[serde(with = "clickhouse::serde::uuid")]
    trigger_event_id: Uuid,
    trigger_topic: String,
    trigger_partition: i32,
    trigger_offset: i64,
    amount_fen: i64,
    article_id: String,
    scene: String,
}

/// A chat message: the columns the follow-up reads, and the conversation.
#[derive(clickhouse::Row, Serialize)]
struct ChatRow {
    #[serde(with = "clickhouse::serde::uuid")]
    event_id: Uuid,
    app_id: String,
    fan_id: u64,
    event_time: i64,
    server_time: i64,
    conversation: String,
    direction: String,
    associate_userid: String,
}

/// Notification `n`: (rule, account, associate, store, fan, trigger server time, deliver_after).
fn notification(
    n: u128,
    (rule, app_id, associate, store, fan): (&str, &str, &str, &str, u64),
    server_time: i64,
    deliver_after: i64,
) -> NotificationRow {
    NotificationRow {
        notification_id: Uuid::from_u128(0x0018_0000 + n),
        rule: rule.into(),
        app_id: app_id.into(),
        brand: "unknown".into(),
        associate_userid: associate.into(),
        store_id: store.into(),
        fan_id: fan,
        relationship: "customer".into(),
        event_time: server_time - 2_000,
        server_time,
        deliver_after,
        trigger_event_id: Uuid::from_u128(0x7000 + n),
        trigger_topic: "wxpulse.orders".into(),
        trigger_partition: 0,
        trigger_offset: n as i64,
        amount_fen: if rule == "purchase" { 129_900 } else { 0 },
        article_id: String::new(),
        scene: String::new(),
    }
}

/// A WeCom 1:1 message received at `server_time`; `from_associate` gives the direction.
fn message(
    n: u128,
    (app_id, associate, fan): (&str, &str, u64),
    from_associate: bool,
    server_time: i64,
) -> ChatRow {
    ChatRow {
        event_id: Uuid::from_u128(0x0c00_0000 + n),
        app_id: app_id.into(),
        fan_id: fan,
        event_time: server_time - 1_000,
        server_time,
        conversation: "WECOM_PRIVATE".into(),
        direction: if from_associate {
            "ASSOCIATE_TO_FAN"
        } else {
            "FAN_TO_ASSOCIATE"
        }
        .into(),
        associate_userid: associate.into(),
    }
}

/// The follow-up of `n`, computed from the rows: the first message from its associate to
/// its fan in its account with deliver_after <= server_time < deliver_after + 24 h.
fn follow_up(n: &NotificationRow, messages: &[ChatRow]) -> Option<i64> {
    messages
        .iter()
        .filter(|m| {
            m.direction == "ASSOCIATE_TO_FAN"
                && m.app_id == n.app_id
                && m.fan_id == n.fan_id
                && m.associate_userid == n.associate_userid
                && m.server_time >= n.deliver_after
                && m.server_time < n.deliver_after + D
        })
        .map(|m| m.server_time)
        .min()
}

/// Days since 1970-01-01 of `ms`'s date in Asia/Shanghai.
fn shanghai_day(ms: i64) -> i32 {
    (ms + SHANGHAI).div_euclid(D) as i32
}

fn brand(app_id: &str) -> &'static str {
    match app_id {
        "wxn" => "Nova",
        "wxo" => "Orbit",
        _ => "",
    }
}

/// (rule, account, associate, store, fan) of a notification told to `(account, associate,
/// store)`.
fn of(
    (app_id, associate, store): (&'static str, &'static str, &'static str),
    rule: &'static str,
    fan: u64,
) -> (&'static str, &'static str, &'static str, &'static str, u64) {
    (rule, app_id, associate, store, fan)
}

/// (day, account, rule, associate, store): the grain of `v_notifications_daily`.
type Cell = (i32, String, String, String, String);
type Daily = (i32, String, String, String, String, u64, u64, f64, String);
type Single = (String, i32, String, String, u8, Option<i64>, String);

/// `v_notifications_daily` as computed from the rows, each notification id once.
fn expected_daily(notes: &[NotificationRow], messages: &[ChatRow]) -> Vec<Daily> {
    let mut cells: BTreeMap<Cell, (u64, u64)> = BTreeMap::new();
    for n in notes {
        let key = (
            shanghai_day(n.deliver_after),
            n.app_id.clone(),
            n.rule.clone(),
            n.associate_userid.clone(),
            n.store_id.clone(),
        );
        let cell = cells.entry(key).or_default();
        cell.0 += 1;
        cell.1 += u64::from(follow_up(n, messages).is_some());
    }
    cells
        .into_iter()
        .map(|((day, app, rule, associate, store), (count, followed))| {
            let b = brand(&app).to_string();
            let rate = followed as f64 / count as f64;
            (day, app, rule, associate, store, count, followed, rate, b)
        })
        .collect()
}

/// `v_notifications` as computed from the rows, ordered by id.
fn expected_single(notes: &[NotificationRow], messages: &[ChatRow]) -> Vec<Single> {
    let mut out: Vec<Single> = notes
        .iter()
        .map(|n| {
            let at = follow_up(n, messages);
            (
                n.notification_id.to_string(),
                shanghai_day(n.deliver_after),
                n.rule.clone(),
                n.app_id.clone(),
                u8::from(at.is_some()),
                at,
                brand(&n.app_id).to_string(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

async fn daily(ch: &clickhouse::Client) -> anyhow::Result<Vec<Daily>> {
    Ok(ch
        .query(
            "SELECT toInt32(day), app_id, rule, associate_userid, store_id, notifications, \
             followed_up, follow_up_rate, brand FROM v_notifications_daily ORDER BY ALL",
        )
        .fetch_all()
        .await?)
}

async fn single(ch: &clickhouse::Client) -> anyhow::Result<Vec<Single>> {
    Ok(ch
        .query(
            "SELECT toString(notification_id) AS id, toInt32(day), rule, app_id, followed_up, \
             toUnixTimestamp64Milli(followed_up_at), brand FROM v_notifications ORDER BY id",
        )
        .fetch_all()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_count_once_and_follow_ups_are_the_associates_messages_within_24_hours(
) -> anyhow::Result<()> {
    let stack = Stack::start("notification_views")?;
    stack.prepare(DB, 1).await?;
    let ch = stack.client(DB);

    // Day d0: midnight (Asia/Shanghai) 20 days ago, well inside every table's TTL.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let d0 = ((now + SHANGHAI).div_euclid(D) - 20) * D - SHANGHAI;
    let (zhang, wang, li) = (
        ("wxn", "zhang", "S1"),
        ("wxn", "wang", "S1"),
        ("wxn", "li", "S2"),
    );
    let notes = vec![
        // 1: followed up 23 h 59 min after (a message a minute before does not count).
        notification(1, of(zhang, "purchase", 1), d0 + 10 * H, d0 + 10 * H),
        // 2: only a message 24 h 01 min after, one from wang, one from zhang to fan 3 and
        // one from the fan: not followed up.
        notification(
            2,
            of(zhang, "high_intent_read", 2),
            d0 + 12 * H,
            d0 + 12 * H,
        ),
        // 3: deferred past quiet hours to d1 09:00; zhang wrote between the trigger and
        // then (does not count) and at 09:00:00.000 exactly (counts). Its day is d1.
        notification(
            3,
            of(zhang, "unanswered_message", 4),
            d0 + 23 * H + 10 * MIN,
            d0 + D + 9 * H,
        ),
        // 4: a message at exactly 24 h: not followed up.
        notification(4, of(wang, "birthday", 8), d0 + 8 * H, d0 + 8 * H),
        // 5: followed up after 2 h.
        notification(5, of(li, "in_store_scan", 6), d0 + 15 * H, d0 + 15 * H),
        // 6: li wrote to fan 7, but in account wxo: not followed up.
        notification(6, of(li, "refund", 7), d0 + 16 * H, d0 + 16 * H),
        // 7, 8: one message follows up both (a purchase and its refund).
        notification(
            7,
            of(zhang, "purchase", 10),
            d0 + D + 10 * H,
            d0 + D + 10 * H,
        ),
        notification(8, of(zhang, "refund", 10), d0 + D + 11 * H, d0 + D + 11 * H),
        // 9: zhang's second purchase notification of d0, never followed up: rate 1/2.
        notification(9, of(zhang, "purchase", 11), d0 + 18 * H, d0 + 18 * H),
        // 10: fan 1 of account wxo (brand Orbit), told to chen; zhang's messages to fan 1
        // of wxn say nothing about it.
        notification(
            10,
            of(("wxo", "chen", "S9"), "tier_change", 1),
            d0 + 10 * H,
            d0 + 10 * H,
        ),
    ];
    let messages = vec![
        message(1, ("wxn", "zhang", 1), true, d0 + 10 * H - MIN),
        message(
            2,
            ("wxn", "zhang", 1),
            true,
            d0 + 10 * H + 23 * H + 59 * MIN,
        ),
        message(3, ("wxn", "zhang", 2), true, d0 + 12 * H + 24 * H + MIN),
        message(4, ("wxn", "wang", 2), true, d0 + 13 * H),
        message(5, ("wxn", "zhang", 3), true, d0 + 13 * H),
        message(6, ("wxn", "zhang", 2), false, d0 + 14 * H),
        message(7, ("wxn", "zhang", 4), true, d0 + 23 * H + 20 * MIN),
        message(8, ("wxn", "zhang", 4), true, d0 + D + 9 * H),
        message(9, ("wxn", "wang", 8), true, d0 + 8 * H + D),
        message(10, ("wxn", "li", 6), true, d0 + 17 * H),
        message(11, ("wxo", "li", 7), true, d0 + 17 * H),
        message(12, ("wxn", "zhang", 10), true, d0 + D + 11 * H + 30 * MIN),
        message(13, ("wxo", "chen", 1), true, d0 + 10 * H + 5 * MIN),
    ];

    // The accounts' brands come from their rows (account_brand), not from the notifier's
    // stamp (`unknown` here).
    ch.query(
        "INSERT INTO menu_clicks (app_id, brand, fan_id, event_time, server_time) VALUES \
         ('wxn', 'Nova', 1, now64(3), now64(3)), ('wxo', 'Orbit', 1, now64(3), now64(3))",
    )
    .execute()
    .await?;
    // Only the columns the views read; the others take their defaults (so no validation of
    // the struct against the whole table).
    let mut insert = ch
        .clone()
        .with_validation(false)
        .insert::<ChatRow>("chat_messages")
        .await?;
    for m in &messages {
        insert.write(m).await?;
    }
    insert.end().await?;

    // The notifier's first flush holds notifications 1-5; it crashes before committing
    // its input, and the replay's flush holds 1-10: 1-5 are stored twice. Merges are
    // stopped so the copies stay until the views have been read.
    ch.query("SYSTEM STOP MERGES notifications")
        .execute()
        .await?;
    for flush in [&notes[..5], &notes[..]] {
        let mut insert = ch.insert::<NotificationRow>("notifications").await?;
        for n in flush {
            insert.write(n).await?;
        }
        insert.end().await?;
    }
    assert_eq!(
        count(&ch, "notifications").await?,
        15,
        "the copies are stored"
    );

    // The figures worked out by hand, so that the reference below is not checked against
    // itself only: 6 of 10 followed up (1, 3, 5, 7, 8, 10).
    let want_daily = expected_daily(&notes, &messages);
    let want_single = expected_single(&notes, &messages);
    let followed: Vec<u128> = notes
        .iter()
        .filter(|n| follow_up(n, &messages).is_some())
        .map(|n| n.notification_id.as_u128() - 0x0018_0000)
        .collect();
    assert_eq!(followed, [1, 3, 5, 7, 8, 10]);
    let day0 = shanghai_day(d0);
    assert!(want_daily.contains(&(
        day0,
        "wxn".into(),
        "purchase".into(),
        "zhang".into(),
        "S1".into(),
        2,
        1,
        0.5,
        "Nova".into()
    )));
    assert_eq!(want_daily.len(), 9, "{want_daily:?}");

    assert_eq!(daily(&ch).await?, want_daily, "before the copies merge");
    assert_eq!(single(&ch).await?, want_single, "before the copies merge");

    // After the merge the table holds each notification once; the views do not change.
    ch.query("SYSTEM START MERGES notifications")
        .execute()
        .await?;
    ch.query("OPTIMIZE TABLE notifications FINAL")
        .execute()
        .await?;
    assert_eq!(count(&ch, "notifications").await?, 10, "merged");
    assert_eq!(daily(&ch).await?, want_daily, "after the merge");
    assert_eq!(single(&ch).await?, want_single, "after the merge");

    // The views' columns, as VIEWS.md documents them; no fan id in either.
    for (view, want) in [
        (
            "v_notifications_daily",
            "day Date, app_id String, rule String, associate_userid String, \
             store_id String, notifications UInt64, followed_up UInt64, \
             follow_up_rate Float64, brand String",
        ),
        (
            "v_notifications",
            "day Date, notification_id UUID, rule String, app_id String, \
             associate_userid String, store_id String, relationship String, \
             event_time DateTime64(3, 'Asia/Shanghai'), server_time DateTime64(3, 'Asia/Shanghai'), \
             deliver_after DateTime64(3, 'Asia/Shanghai'), amount_fen Int64, article_id String, \
             scene String, followed_up UInt8, \
             followed_up_at Nullable(DateTime64(3, 'Asia/Shanghai')), brand String",
        ),
    ] {
        let got: Vec<String> = ch
            .query(
                "SELECT concat(name, ' ', type) FROM system.columns \
                 WHERE database = ? AND table = ? ORDER BY position",
            )
            .bind(DB)
            .bind(view)
            .fetch_all()
            .await?;
        assert_eq!(got.join(", "), want, "{view}");
    }
    Ok(())
}
