//! Behaviour notifications (issue 17): every rule fires once for the fans and associates
//! it is for, the per-fan limit, quiet hours (drop and defer) and "no associate" hold
//! back what they should, an upstream retry of a trigger is not told twice, and neither
//! a SIGKILL nor a consumer that re-reads every topic from the start (what a crash before
//! any commit amounts to) sends anything again — on the topic or in the table.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use wxpulse_e2e::*;
use wxpulse_notifier::notification::Notification;
use wxpulse_runtime::codec::{self, Registry};
use wxpulse_runtime::enrich::*;
use wxpulse_runtime::events::*;

use crate::conversions::order;
use crate::golden::{account, associate, message, publish, read, record, scene, send, store};

const DB: &str = "wx_notify";
pub(crate) const MIN: i64 = 60_000;
const TOPIC: &str = "wxpulse.notifications";

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `HH:MM` of `ms` in Asia/Shanghai (UTC+8).
fn shanghai_hhmm(ms: i64) -> String {
    let m = (ms.div_euclid(MIN) + 480).rem_euclid(1440);
    format!("{:02}:{:02}", m / 60, m % 60)
}

fn profile(openid: &str, status: CustomerStatus, userid: Option<&str>) -> DimensionRecord {
    profile_at(openid, status, userid, 0)
}

pub(crate) fn profile_at(
    openid: &str,
    status: CustomerStatus,
    userid: Option<&str>,
    updated_at: i64,
) -> DimensionRecord {
    DimensionRecord::FanProfile(FanProfileRecord {
        app_id: "wxa".into(),
        openid: openid.into(),
        status,
        member_tier: None,
        associate_userid: userid.map(Into::into),
        followed_at: Some(1),
        unfollowed_at: None,
        follow_source: Some("search".into()),
        updated_at,
        birthday: None,
    })
}

fn qr(n: u32, openid: &str, key: &str, server: i64) -> wxpulse_cli::produce::Outgoing {
    let id = crate::golden::event_id(n);
    record(
        "wxpulse.qr_scans",
        "wxa",
        openid,
        &QrScan {
            event_id: &id,
            app_id: "wxa",
            openid,
            unionid: None,
            client_time: server - 500,
            server_time: server,
            event: QrEvent::Scan,
            event_key: key,
            ticket: None,
        },
    )
}

/// Every notification on the topic, read from the start to its end.
pub(crate) fn topic_notifications(stack: &Stack) -> anyhow::Result<Vec<Notification>> {
    let consumer: BaseConsumer =
        wxpulse_runtime::source::client_config(&stack.kafka(), "e2e-notify-reader").create()?;
    let metadata = consumer.fetch_metadata(Some(TOPIC), Duration::from_secs(10))?;
    let registry = Registry::embedded();
    let mut out = Vec::new();
    for p in metadata.topics()[0].partitions() {
        let (low, high) = consumer.fetch_watermarks(TOPIC, p.id(), Duration::from_secs(10))?;
        if high <= low {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, p.id(), Offset::Offset(low))?;
        consumer.assign(&tpl)?;
        let mut next = low;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while next < high && std::time::Instant::now() < deadline {
            let Some(m) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = m?;
            next = m.offset() + 1;
            let (id, datum) = codec::split_frame(m.payload().unwrap_or_default())?;
            let writer = registry.cached(id).expect("embedded schema");
            let n: Notification = codec::decode(datum, &writer.schema)?;
            assert_eq!(
                m.key(),
                Some(n.associate_userid.as_bytes()),
                "keyed by associate"
            );
            out.push(n);
        }
        anyhow::ensure!(next >= high, "partition {} not read to its end", p.id());
    }
    Ok(out)
}

/// `rule associate fan` of each notification, sorted.
pub(crate) fn summary(notes: &[Notification]) -> Vec<String> {
    let mut v: Vec<String> = notes
        .iter()
        .map(|n| format!("{} {} {}", n.rule.as_str(), n.associate_userid, n.fan_id))
        .collect();
    v.sort();
    v
}

async fn table_summary(stack: &Stack) -> anyhow::Result<Vec<String>> {
    let mut v: Vec<String> = stack
        .client(DB)
        .query("SELECT concat(rule, ' ', associate_userid, ' ', toString(fan_id)) FROM notifications FINAL")
        .fetch_all()
        .await?;
    v.sort();
    Ok(v)
}

pub(crate) async fn outcome(service: &Service, rule: &str, outcome: &str) -> u64 {
    let text = service.scrape().unwrap_or_default();
    metric(
        &text,
        "wxpulse_notifier_notifications_total",
        &[
            &format!("rule=\"{rule}\""),
            &format!("outcome=\"{outcome}\""),
        ],
    )
    .unwrap_or(0.0) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rule_notifies_once_within_limits_and_quiet_hours_across_a_kill_and_a_full_replay(
) -> anyhow::Result<()> {
    let stack = Stack::start("notifications")?;
    stack.prepare(DB, 2).await?;
    let t = now_ms() - 40 * MIN;
    // Quiet hours cover [t+14 min, t+20 min) of Shanghai time, whatever the hour now.
    let (quiet_start, quiet_end) = (shanghai_hhmm(t + 14 * MIN), shanghai_hhmm(t + 20 * MIN));
    publish(
        &stack,
        vec![
            account("wxa", "Maison"),
            store("sh01", "East"),
            store("bj01", "North"),
            associate("zhang", "sh01"),
            associate("wang", "sh01"),
            associate("li", "bj01"),
            scene(
                "101",
                SceneChannel::Associate,
                Some("sh01"),
                Some("zhang"),
                None,
            ),
            scene("201", SceneChannel::Store, Some("sh01"), None, None),
            profile("oVIP1", CustomerStatus::Vip, Some("zhang")),
            profile("oVIP2", CustomerStatus::Vip, Some("li")),
            profile("oCUS1", CustomerStatus::Customer, Some("wang")),
            profile("oPRO1", CustomerStatus::Prospect, Some("zhang")),
            profile("oNOA", CustomerStatus::Customer, None),
        ],
    )
    .await?;
    let (w, p) = (ConversationKind::WecomPrivate, Direction::FanToAssociate);
    let events = vec![
        qr(1, "oVIP1", "101", t),                   // in store: zhang
        qr(2, "oVIP1", "101", t + MIN),             // same fan within 4 h: limited
        qr(3, "oCUS1", "qrscene_201", t + 2 * MIN), // store code, own associate works there: wang
        qr(4, "oPRO1", "101", t + 3 * MIN),         // prospect: not for this rule
        qr(5, "oNOA", "201", t + 3 * MIN),          // no associate
        read(6, "oCUS1", "art-1", 77, 1, t + 4 * MIN, t + 4 * MIN), // deep push read: wang
        read(7, "oPRO1", "art-1", 77, 1, t + 4 * MIN, t + 4 * MIN), // prospect
        order(
            8,
            "oPRO1",
            "ord-8",
            OrderKind::Purchase,
            t + 5 * MIN,
            129_900,
            None,
            None,
        ), // zhang
        order(
            9,
            "oVIP1",
            "ord-9",
            OrderKind::Refund,
            t + 5 * MIN,
            50_000,
            None,
            Some("li"),
        ), // li
        message(10, "oCUS1", w, p, Some("wang"), t + 5 * MIN, t + 5 * MIN), // never answered: wang
        message(11, "oVIP1", w, p, Some("zhang"), t + 5 * MIN, t + 5 * MIN),
        message(
            12,
            "oVIP1",
            w,
            Direction::AssociateToFan,
            Some("zhang"),
            t + 6 * MIN,
            t + 6 * MIN,
        ),
        qr(13, "oVIP2", "101", t + 15 * MIN), // quiet hours: dropped
        order(
            14,
            "oVIP2",
            "ord-14",
            OrderKind::Purchase,
            t + 16 * MIN,
            880_000,
            None,
            None,
        ), // deferred: li
    ];
    send(&stack, events).await?;
    let fan = |o: &str| expected_fan_id(o).to_string();
    let mut expected = vec![
        format!("in_store_scan zhang {}", fan("oVIP1")),
        format!("in_store_scan wang {}", fan("oCUS1")),
        format!("high_intent_read wang {}", fan("oCUS1")),
        format!("purchase zhang {}", fan("oPRO1")),
        format!("refund li {}", fan("oVIP1")),
        format!("unanswered_message wang {}", fan("oCUS1")),
        format!("purchase li {}", fan("oVIP2")),
    ];
    expected.sort();

    let env = [
        ("WXPULSE__NOTIFIER__QUIET_START", quiet_start.as_str()),
        ("WXPULSE__NOTIFIER__QUIET_END", quiet_end.as_str()),
        ("WXPULSE__NOTIFIER__REPLY_TARGET", "2min"),
        ("WXPULSE__NOTIFIER__IDLE_AFTER", "3s"),
    ];
    let mut notifier = Service::start("wxpulse-notifier", &stack, DB, &env)?;
    let ch = stack.client(DB);
    let got = wait_for(Duration::from_secs(90), expected.len() as u64, || {
        count(&ch, "notifications")
    })
    .await;
    assert_eq!(got, expected.len() as u64, "notifications stored");
    // Nothing more trickles in.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let notes = topic_notifications(&stack)?;
    assert_eq!(summary(&notes), expected, "notifications on the topic");
    assert_eq!(
        table_summary(&stack).await?,
        expected,
        "notifications stored"
    );

    assert_eq!(outcome(&notifier, "in_store_scan", "fan_limited").await, 1);
    assert_eq!(outcome(&notifier, "in_store_scan", "quiet_hours").await, 1);
    assert_eq!(outcome(&notifier, "any", "no_associate").await, 1);
    assert_eq!(outcome(&notifier, "purchase", "deferred").await, 1);
    // The deferred one waits for the end of the quiet hours; the others go at once.
    let quiet_end_ms = {
        let end = t + 20 * MIN;
        end - end.rem_euclid(MIN)
    };
    for n in &notes {
        let want = if n.rule.as_str() == "purchase" && n.associate_userid == "li" {
            quiet_end_ms
        } else {
            n.server_time
        };
        assert_eq!(n.deliver_after, want, "deliver_after of {}", n.reason_en);
        assert!(n
            .link_query
            .contains(&format!("notification_id={}", n.notification_id)));
        assert!(
            !n.reason_zh.is_empty() && !n.fan_id.starts_with('o'),
            "no raw openid"
        );
    }
    let unanswered = notes
        .iter()
        .find(|n| n.rule.as_str() == "unanswered_message")
        .expect("unanswered");
    assert_eq!(
        unanswered.server_time,
        t + 7 * MIN,
        "message time + reply target"
    );

    // An upstream retry of a trigger (same event id, new offset) is recognised.
    send(&stack, vec![qr(1, "oVIP1", "101", t)]).await?;
    let replayed = wait_for(Duration::from_secs(30), 1, || async {
        Ok(outcome(&notifier, "in_store_scan", "replayed").await)
    })
    .await;
    assert_eq!(replayed, 1, "the retried scan is known as sent");

    // The CRM makes a customer a VIP: their associate is told, once.
    publish(
        &stack,
        vec![profile_at(
            "oCUS1",
            CustomerStatus::Vip,
            Some("wang"),
            now_ms(),
        )],
    )
    .await?;
    expected.push(format!("tier_change wang {}", fan("oCUS1")));
    expected.sort();
    let got = wait_for(Duration::from_secs(60), expected.len() as u64, || {
        count(&ch, "notifications")
    })
    .await;
    assert_eq!(got, expected.len() as u64, "the tier change is told");
    let tier = topic_notifications(&stack)?
        .into_iter()
        .find(|n| n.rule.as_str() == "tier_change")
        .expect("on the topic");
    assert_eq!(
        (tier.relationship.as_str(), tier.reason_en.as_str()),
        ("vip", "Your fan moved from customer to vip")
    );

    // SIGKILL and restart; then a notifier in a new group, which reads every topic from
    // the start: every trigger again, nothing sent again.
    notifier.restart()?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    notifier.kill();
    let mut fresh = env.to_vec();
    fresh.push(("WXPULSE__KAFKA__GROUP_ID", "wxpulse-notifier-replay"));
    let replay = Service::start("wxpulse-notifier", &stack, DB, &fresh)?;
    // The seven event-triggered notifications and the retried scan's copy; the tier change
    // is in the profile the new process loads at start, which is not a change.
    let read_back = wait_for(Duration::from_secs(60), 8, || async {
        let text = replay.scrape()?;
        Ok([
            "in_store_scan",
            "high_intent_read",
            "purchase",
            "refund",
            "unanswered_message",
        ]
        .iter()
        .map(|r| {
            metric(
                &text,
                "wxpulse_notifier_notifications_total",
                &[&format!("rule=\"{r}\""), "outcome=\"replayed\""],
            )
            .unwrap_or(0.0) as u64
        })
        .sum())
    })
    .await;
    assert_eq!(read_back, 8, "triggers found already told");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = topic_notifications(&stack)?;
    assert_eq!(summary(&after), expected, "no notification sent twice");
    let ids: BTreeSet<&str> = after.iter().map(|n| n.notification_id.as_str()).collect();
    assert_eq!(ids.len(), expected.len());
    assert_eq!(
        table_summary(&stack).await?,
        expected,
        "one row per notification"
    );
    Ok(())
}
