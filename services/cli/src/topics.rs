//! `wxpulse topics create`: the topics wxpulse reads and writes, with their settings.
//!
//! Interaction topics are keyed by fan (`app_id|openid`) so a fan's events, their upstream
//! retries and the per-fan state that follows them share a partition. Dimension topics are
//! compacted: the latest record per key is the current value.

use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use wxpulse_runtime::config::KafkaConfig;
use wxpulse_runtime::enrich::Dimension;
use wxpulse_runtime::kafka;
use wxpulse_runtime::streams::EventStream;

/// Interaction topics (one per consumer service) and orders.
pub const EVENT_TOPICS: &[&str] = &[
    EventStream::MenuClicks.topic(),
    EventStream::QrScans.topic(),
    EventStream::ChatMessages.topic(),
    EventStream::ArticleReads.topic(),
    EventStream::Orders.topic(),
];

/// Compacted dimension topics, one per [`Dimension`].
pub const DIMENSION_TOPICS: [&str; Dimension::COUNT] = {
    let mut topics = [""; Dimension::COUNT];
    let mut i = 0;
    while i < Dimension::COUNT {
        topics[i] = Dimension::ALL[i].topic();
        i += 1;
    }
    topics
};

/// Dead letters of every service.
pub const DEAD_LETTER_TOPIC: &str = "wxpulse.dead_letters";

/// Notifications for associates (`wxpulse-notifier`), keyed by associate.
pub const NOTIFICATION_TOPIC: &str = "wxpulse.notifications";

/// Creates `topics` with `partitions` each (existing ones are left alone).
pub async fn create(
    cfg: &KafkaConfig,
    topics: &[(&str, i32, bool)],
    replication: i32,
) -> anyhow::Result<Vec<String>> {
    // A cluster that refuses the login fails here with the reason, not after the admin
    // request's own timeout.
    kafka::preflight(cfg)?;
    let admin: AdminClient<DefaultClientContext> =
        kafka::create(&kafka::client_config(cfg), "admin client")?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions, compacted)| {
            let t = NewTopic::new(name, *partitions, TopicReplication::Fixed(replication));
            if *compacted {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(45)));
    let results = admin
        .create_topics(&new, &options)
        .await
        .context("create_topics")?;
    let mut created = Vec::new();
    for r in results {
        match r {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, e)) => anyhow::bail!("cannot create topic {name}: {e}"),
        }
    }
    Ok(created)
}

/// Every wxpulse topic: events with `partitions`, dimensions compacted with one.
pub fn all(partitions: i32) -> Vec<(&'static str, i32, bool)> {
    EVENT_TOPICS
        .iter()
        .map(|t| (*t, partitions, false))
        .chain(DIMENSION_TOPICS.iter().map(|t| (*t, 1, true)))
        .chain([
            (DEAD_LETTER_TOPIC, partitions, false),
            (NOTIFICATION_TOPIC, partitions, false),
        ])
        .collect()
}
