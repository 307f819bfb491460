//! `wxpulse dlq list|replay`: what was dead-lettered, and sending it back after a fix.
//!
//! The dead-letter topic is read from the beginning by a group-less consumer. A record can
//! be dead-lettered twice when its partition was redelivered before the consumer committed;
//! the envelope's (source topic, partition, offset) identifies it, so both commands count
//! and replay each source record once.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use wxpulse_runtime::codec::{self, Registry};
use wxpulse_runtime::config::KafkaConfig;
use wxpulse_runtime::dlq::{DeadLetter, DeadLetterReason};
use wxpulse_runtime::kafka;

use crate::produce::{self, Outgoing};

/// A dead letter read back, owned.
#[derive(Debug, Clone)]
pub struct Letter {
    /// Reason.
    pub reason: DeadLetterReason,
    /// Detail.
    pub detail: String,
    /// Source topic.
    pub source_topic: String,
    /// Source partition.
    pub source_partition: i32,
    /// Source offset.
    pub source_offset: i64,
    /// Source key.
    pub source_key: Option<Vec<u8>>,
    /// Rejecting service.
    pub service: String,
    /// Rejection time, ms.
    pub first_seen: i64,
    /// Raw value.
    pub payload: Vec<u8>,
}

/// Reads every dead letter now in `topic`, once per source record.
pub fn read_all(kafka: &KafkaConfig, topic: &str, idle: Duration) -> anyhow::Result<Vec<Letter>> {
    kafka::preflight(kafka)?;
    let consumer: BaseConsumer = kafka::create(
        &kafka::consumer_config(kafka, "wxpulse-dlq-reader"),
        "dead-letter reader",
    )?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("cannot read topic metadata")?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl).context("cannot assign partitions")?;
    let registry = Registry::embedded();
    let mut seen = HashSet::new();
    let mut letters = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < idle {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.context("consumer error")?;
        last = Instant::now();
        let Some(payload) = message.payload() else {
            continue;
        };
        let Ok((id, datum)) = codec::split_frame(payload) else {
            continue;
        };
        let Some(schema) = registry.cached(id) else {
            continue;
        };
        let Ok(d) = codec::decode::<DeadLetter<'_>>(datum, &schema.schema) else {
            continue;
        };
        if !seen.insert((
            d.source_topic.to_string(),
            d.source_partition,
            d.source_offset,
        )) {
            continue;
        }
        letters.push(Letter {
            reason: d.reason,
            detail: d.detail.to_string(),
            source_topic: d.source_topic.to_string(),
            source_partition: d.source_partition,
            source_offset: d.source_offset,
            source_key: d.source_key.map(<[u8]>::to_vec),
            service: d.service.to_string(),
            first_seen: d.first_seen,
            payload: d.payload.to_vec(),
        });
    }
    Ok(letters)
}

/// Counts by (service, reason).
pub fn summarize(letters: &[Letter]) -> BTreeMap<(String, String), u64> {
    let mut counts = BTreeMap::new();
    for l in letters {
        *counts
            .entry((l.service.clone(), l.reason.as_str().to_string()))
            .or_default() += 1;
    }
    counts
}

/// Re-produces the matching letters' payloads to their source topics.
pub async fn replay(
    kafka: &KafkaConfig,
    letters: &[Letter],
    reason: Option<DeadLetterReason>,
    since_ms: Option<i64>,
) -> anyhow::Result<usize> {
    let producer = produce::producer(kafka)?;
    let chosen: Vec<Outgoing> = letters
        .iter()
        .filter(|l| reason.is_none_or(|r| r == l.reason))
        .filter(|l| since_ms.is_none_or(|t| l.first_seen >= t))
        .map(|l| Outgoing {
            topic: Box::leak(l.source_topic.clone().into_boxed_str()),
            key: l.source_key.clone().unwrap_or_default(),
            payload: Some(l.payload.clone()),
            at_ms: 0,
        })
        .collect();
    produce::send_all(&producer, chosen, |_| {}).await
}
