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

/// Overflow topics of the hot-key lane (`[overflow]`): a primary service diverts a key's
/// records past `overflow.max_per_window` in a window of its partition to `<topic>.overflow`,
/// which the same service binary consumes with `overflow.lane = "overflow"`. Every event
/// stream but chat messages (reply pairing needs each conversation in order); partitioned
/// like the event topics, not compacted.
pub const OVERFLOW_TOPICS: &[&str] = &[
    "wxpulse.menu_clicks.overflow",
    "wxpulse.qr_scans.overflow",
    "wxpulse.article_reads.overflow",
    "wxpulse.orders.overflow",
];

/// The overflow topic of the event topic `topic`, if its stream has an overflow lane.
pub fn overflow_topic(topic: &str) -> Option<&'static str> {
    OVERFLOW_TOPICS
        .iter()
        .find(|o| o.strip_suffix(".overflow") == Some(topic))
        .copied()
}

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

/// Every wxpulse topic: events and their overflow topics with `partitions`, dimensions
/// compacted with one.
pub fn all(partitions: i32) -> Vec<(&'static str, i32, bool)> {
    EVENT_TOPICS
        .iter()
        .chain(OVERFLOW_TOPICS)
        .map(|t| (*t, partitions, false))
        .chain(DIMENSION_TOPICS.iter().map(|t| (*t, 1, true)))
        .chain([
            (DEAD_LETTER_TOPIC, partitions, false),
            (NOTIFICATION_TOPIC, partitions, false),
        ])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_topics_are_the_event_topics_but_chat_with_the_suffix() {
        let with_lane: Vec<String> = EventStream::ALL
            .into_iter()
            .filter(|s| *s != EventStream::ChatMessages)
            .map(|s| format!("{}.overflow", s.topic()))
            .collect();
        assert_eq!(OVERFLOW_TOPICS, with_lane.as_slice());
        for s in EventStream::ALL {
            let want = (s != EventStream::ChatMessages).then(|| format!("{}.overflow", s.topic()));
            assert_eq!(overflow_topic(s.topic()).map(str::to_string), want);
        }
        assert_eq!(overflow_topic("wxpulse.menu_clicks.overflow"), None);
    }

    #[test]
    fn all_creates_each_topic_once_with_overflow_partitioned_like_its_events() {
        let topics = all(12);
        let mut names: Vec<&str> = topics.iter().map(|(t, _, _)| *t).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), topics.len(), "a topic listed twice");
        for t in EVENT_TOPICS.iter().chain(OVERFLOW_TOPICS) {
            assert!(
                topics.contains(&(*t, 12, false)),
                "{t} missing or misconfigured"
            );
        }
        for t in DIMENSION_TOPICS {
            assert!(
                topics.contains(&(t, 1, true)),
                "{t} missing or not compacted"
            );
        }
    }
}
