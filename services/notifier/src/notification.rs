//! The notification as produced (`schemas/avro/notification/v1.avsc`) and as stored
//! (`notifications`, migration 0018), and its deterministic id.

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wxpulse_runtime::reexports::clickhouse;

use crate::rules::{Candidate, Rule};

/// Namespace of notification ids (UUID v5): the same rule and trigger always give the
/// same id, so a replay or an upstream retry of the trigger is recognised as sent.
const NAMESPACE: Uuid = Uuid::from_u128(0x6f1d_2a0c_8b7e_4c55_9a31_0d2e_77c4_b9e1);

/// The id of `rule` fired by the trigger `key` (its event id, or for a wait the id of the
/// message that waited).
pub fn id(rule: Rule, key: &Uuid) -> Uuid {
    let mut name = [0u8; 40];
    let r = rule.as_str().as_bytes();
    name[..r.len()].copy_from_slice(r);
    name[24..].copy_from_slice(key.as_bytes());
    Uuid::new_v5(&NAMESPACE, &name)
}

/// Where the trigger came from.
#[derive(Debug, Clone)]
pub struct Trigger<'a> {
    /// Its event id.
    pub event_id: Uuid,
    /// Its account.
    pub app_id: &'a str,
    /// The account's brand.
    pub brand: &'a str,
    /// Kafka coordinates.
    pub topic: &'a str,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
}

/// One notification, as the topic carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Notification {
    pub notification_id: String,
    pub rule: Rule,
    pub app_id: String,
    pub brand: String,
    pub associate_userid: String,
    pub store_id: String,
    pub fan_id: String,
    pub relationship: String,
    pub reason_zh: String,
    pub reason_en: String,
    pub event_time: i64,
    pub server_time: i64,
    pub deliver_after: i64,
    pub trigger_event_id: String,
    pub trigger_topic: String,
    pub trigger_partition: i32,
    pub trigger_offset: i64,
    pub amount_fen: i64,
    pub article_id: String,
    pub scene: String,
    pub link_page: String,
    pub link_query: String,
}

/// What the limits read back from the topic (other fields are skipped).
#[derive(Debug, Deserialize)]
pub struct SentRecord<'a> {
    /// Id.
    pub notification_id: &'a str,
    /// Rule.
    pub rule: Rule,
    /// Associate.
    pub associate_userid: &'a str,
    /// Fan (decimal).
    pub fan_id: &'a str,
    /// Trigger's server time.
    pub server_time: i64,
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// The reason shown to the associate, in Chinese and English.
pub fn reasons(c: &Candidate, reply_target_min: u64) -> (String, String) {
    let who_zh = match c.relationship.as_str() {
        "vip" => "您的VIP客户",
        "customer" => "您的客户",
        _ => "您的粉丝",
    };
    let who_en = match c.relationship.as_str() {
        "vip" => "Your VIP customer",
        "customer" => "Your customer",
        _ => "Your fan",
    };
    match c.rule {
        Rule::InStoreScan => (
            format!("{who_zh}刚刚在门店扫码（场景 {}），可能正在店内", c.scene),
            format!(
                "{who_en} just scanned an in-store QR code (scene {}) and may be in the store now",
                c.scene
            ),
        ),
        Rule::HighIntentRead => (
            format!("{who_zh}深度阅读了推送文章 {}，购买意向较高", c.article_id),
            format!(
                "{who_en} read push article {} in depth: high purchase intent",
                c.article_id
            ),
        ),
        Rule::UnansweredMessage => (
            format!("{who_zh}的消息已超过{reply_target_min}分钟未回复"),
            format!(
                "{who_en}'s message has waited more than {reply_target_min} minutes for your reply"
            ),
        ),
        Rule::Purchase => (
            format!("{who_zh}刚刚下单，金额 ¥{}", yuan(c.amount_fen)),
            format!("{who_en} just bought for ¥{}", yuan(c.amount_fen)),
        ),
        Rule::Refund => (
            format!("{who_zh}刚刚申请退款，金额 ¥{}", yuan(c.amount_fen)),
            format!("{who_en} just refunded ¥{}", yuan(c.amount_fen)),
        ),
        Rule::TierChange => (
            format!(
                "您的粉丝关系由{}变为{}",
                relationship_zh(&c.detail),
                relationship_zh(c.relationship.as_str())
            ),
            format!(
                "Your fan moved from {} to {}",
                c.detail,
                c.relationship.as_str()
            ),
        ),
        Rule::Birthday => (
            format!("{who_zh}的生日（{}）快到了", c.detail),
            format!("{who_en}'s birthday ({}) is coming up", c.detail),
        ),
        Rule::Replenishment => {
            let (usual, since) = c.detail.split_once('|').unwrap_or((&c.detail, "?"));
            (
                format!("{who_zh}通常每{usual}天回购一次，距上次购买已{since}天"),
                format!(
                    "{who_en} usually buys again every {usual} days; the last purchase was {since} days ago"
                ),
            )
        }
        Rule::Other => (String::new(), String::new()),
    }
}

fn relationship_zh(r: &str) -> &'static str {
    match r {
        "prospect" => "潜在客户",
        "customer" => "客户",
        "vip" => "VIP客户",
        _ => "未知",
    }
}

/// Builds the notification of a candidate that will be sent.
pub fn build(
    id: Uuid,
    c: &Candidate,
    t: &Trigger<'_>,
    store_id: &str,
    deliver_after: i64,
    link_page: &str,
    reply_target_min: u64,
) -> Notification {
    let (reason_zh, reason_en) = reasons(c, reply_target_min);
    Notification {
        notification_id: id.to_string(),
        rule: c.rule,
        app_id: t.app_id.to_string(),
        brand: t.brand.to_string(),
        associate_userid: c.associate.to_string(),
        store_id: store_id.to_string(),
        fan_id: c.fan_id.to_string(),
        relationship: c.relationship.as_str().to_string(),
        reason_zh,
        reason_en,
        event_time: c.event_time,
        server_time: c.server_time,
        deliver_after,
        trigger_event_id: t.event_id.to_string(),
        trigger_topic: t.topic.to_string(),
        trigger_partition: t.partition,
        trigger_offset: t.offset,
        amount_fen: c.amount_fen,
        article_id: c.article_id.clone(),
        scene: c.scene.clone(),
        link_page: link_page.to_string(),
        // Ids are digits, ASCII letters and `-`/`_`: nothing to escape.
        link_query: format!(
            "fan_id={}&rule={}&notification_id={id}",
            c.fan_id,
            c.rule.as_str()
        ),
    }
}

/// A row of `notifications`.
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
#[clickhouse(crate = "wxpulse_runtime::reexports::clickhouse")]
#[allow(missing_docs)]
pub struct NotificationRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub notification_id: Uuid,
    pub rule: &'static str,
    pub app_id: String,
    pub brand: String,
    pub associate_userid: String,
    pub store_id: String,
    pub fan_id: u64,
    pub relationship: String,
    pub event_time: i64,
    pub server_time: i64,
    pub deliver_after: i64,
    #[serde(with = "clickhouse::serde::uuid")]
    pub trigger_event_id: Uuid,
    pub trigger_topic: String,
    pub trigger_partition: i32,
    pub trigger_offset: i64,
    pub amount_fen: i64,
    pub article_id: String,
    pub scene: String,
}

impl NotificationRow {
    /// The row of a notification built by [`build`] (ids are known to parse).
    pub fn of(n: &Notification, id: Uuid, trigger_event_id: Uuid, fan_id: u64) -> Self {
        NotificationRow {
            notification_id: id,
            rule: n.rule.as_str(),
            app_id: n.app_id.clone(),
            brand: n.brand.clone(),
            associate_userid: n.associate_userid.clone(),
            store_id: n.store_id.clone(),
            fan_id,
            relationship: n.relationship.clone(),
            event_time: n.event_time,
            server_time: n.server_time,
            deliver_after: n.deliver_after,
            trigger_event_id,
            trigger_topic: n.trigger_topic.clone(),
            trigger_partition: n.trigger_partition,
            trigger_offset: n.trigger_offset,
            amount_fen: n.amount_fen,
            article_id: n.article_id.clone(),
            scene: n.scene.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wxpulse_runtime::codec::{self, Registry};
    use wxpulse_runtime::enrich::CustomerStatus;

    use super::*;

    fn candidate(rule: Rule) -> Candidate {
        Candidate {
            rule,
            associate: Arc::from("zhang"),
            fan_id: u64::MAX - 3,
            relationship: CustomerStatus::Vip,
            event_time: 1_764_561_600_000,
            server_time: 1_764_561_601_000,
            amount_fen: 129_950,
            article_id: String::new(),
            scene: String::new(),
            detail: String::new(),
        }
    }

    #[test]
    fn ids_depend_on_rule_and_trigger_only() {
        let e = Uuid::from_u128(42);
        assert_eq!(id(Rule::Purchase, &e), id(Rule::Purchase, &e));
        assert_ne!(id(Rule::Purchase, &e), id(Rule::Refund, &e));
        assert_ne!(
            id(Rule::Purchase, &e),
            id(Rule::Purchase, &Uuid::from_u128(43))
        );
    }

    #[test]
    fn a_notification_round_trips_through_its_schema_and_the_ledger_reads_it() {
        let embedded = codec::latest("wxpulse.notifications-value").expect("embedded");
        let schema = codec::parse(embedded.json).expect("parses");
        let c = candidate(Rule::Purchase);
        let trigger = Trigger {
            event_id: Uuid::from_u128(7),
            app_id: "wxa",
            brand: "Maison",
            topic: "wxpulse.orders",
            partition: 1,
            offset: 99,
        };
        let nid = id(c.rule, &trigger.event_id);
        let n = build(
            nid,
            &c,
            &trigger,
            "sh01",
            c.server_time,
            "pages/fan/detail",
            30,
        );
        assert!(n.reason_zh.contains("¥1299.50"), "{}", n.reason_zh);
        assert!(n.reason_en.contains("VIP"));
        let mut framed = Vec::new();
        codec::encode_into(&n, embedded.id, &schema, &mut framed).expect("fits the schema");
        let (sid, datum) = codec::split_frame(&framed).expect("framed");
        let writer = Registry::embedded().cached(sid).expect("embedded id");
        let back: Notification = codec::decode(datum, &writer.schema).expect("decodes");
        assert_eq!(back, n);
        let seen: SentRecord<'_> = codec::decode(datum, &writer.schema).expect("ledger view");
        assert_eq!(seen.notification_id, nid.to_string());
        assert_eq!(seen.rule, Rule::Purchase);
        assert_eq!(seen.fan_id.parse::<u64>().ok(), Some(u64::MAX - 3));
        assert_eq!(seen.server_time, c.server_time);
    }
}
