//! The hot-key overflow lane: one bot fan, scripted menu storm or huge customer group
//! makes its partition far busier than the rest, and through the pipeline's backpressure
//! stalls every partition of the service. Past a limit, that key's records are diverted to
//! `<topic>.overflow`, whose own consumers (the same binary, `overflow.lane = "overflow"`,
//! group `wxpulse-<service>-overflow`) build and insert their rows in parallel.
//!
//! What keeps effectively-once on both paths:
//! - **The decision is a pure function of the log.** A key may hold `max_per_window`
//!   records of every window of `window_records` consecutive offsets of its partition
//!   (`[k·w, (k+1)·w)`); later ones in the window are diverted. A new owner first counts
//!   the window's records before its first one from Kafka ([`count_keys`]), so a replay
//!   after a crash diverts exactly the records the crashed owner diverted — never a record
//!   in one lane the first time and in the other the second.
//! - **The primary keeps the order-dependent work**: validation, event-id dedup and the
//!   fan's segment (relationship, lifecycle, month count — computed in the fan's partition
//!   order) run for every record; only the row and its insert move. The segment travels in
//!   the [`SEGMENT_HEADER`], so a diverted row is exactly the row the primary would have
//!   written.
//! - **Diverted records are delivered before the batch that contains them is committed**
//!   (like dead letters), keyed by event id: a replay's copy lands in the same overflow
//!   partition, where the lane's own event-id dedup drops it.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, KafkaConfig, OverflowConfig, RetryConfig};
use crate::retry::Backoff;
use crate::segment::{Lifecycle, Relationship, Segment};

/// Header of a diverted record: the segment the primary computed, `relationship,lifecycle,
/// month_interactions`.
pub const SEGMENT_HEADER: &str = "wxpulse-segment";
/// Header of a diverted record: where it came from, `topic/partition/offset`.
pub const SOURCE_HEADER: &str = "wxpulse-source";

/// The overflow topic of `topic`.
pub fn topic_of(topic: &str) -> String {
    format!("{topic}.overflow")
}

/// The overflow lane's consumer group for a primary consuming as `group`.
pub fn lane_group_of(group: &str) -> String {
    format!("{group}-overflow")
}

/// Records of the overflow `topic` the lane (`group`) has not committed yet: what it has
/// not written. Blocking. A partition the group never committed counts from its start.
pub fn lane_backlog(
    consumer: &BaseConsumer,
    topic: &str,
    ends: &[(i32, i64, i64)],
) -> Result<i64, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for (p, _, _) in ends {
        tpl.add_partition(topic, *p);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    let mut behind = 0;
    for (p, low, high) in ends {
        let done = match committed.find_partition(topic, *p).map(|e| e.offset()) {
            Some(Offset::Offset(next)) => next.max(*low),
            _ => *low,
        };
        behind += (high - done).max(0);
    }
    Ok(behind)
}

/// Each partition of `topic` with its low and high watermarks. Blocking.
pub fn topic_ends(
    consumer: &BaseConsumer,
    topic: &str,
) -> Result<Vec<(i32, i64, i64)>, KafkaError> {
    let mut ends = Vec::new();
    for p in crate::kafka::topic_partitions(consumer, topic)? {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        ends.push((p, low, high));
    }
    Ok(ends)
}

/// A client of the lane's `group` that only reads its committed offsets: it never
/// subscribes, so it never joins the group.
pub fn lane_reader(kafka: &KafkaConfig, group: &str) -> Result<BaseConsumer, KafkaError> {
    let mut config: ClientConfig = crate::kafka::consumer_config(kafka, group);
    config
        .remove("statistics.interval.ms")
        .set("enable.auto.commit", "false");
    config.create()
}

/// A record key's identity in the counts: a fixed-seed hash, so two processes (and a
/// replay) count the same keys together.
pub fn key_hash(key: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x7778_7075_6c73_6500).hash_one(key)
}

/// Where a record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The window's counts before this record are not known yet (a new owner): read them
    /// first ([`count_keys`]), then ask again.
    Cold {
        /// First offset of the record's window: count `[window_start, offset)`.
        window_start: i64,
    },
    /// Processed here.
    Keep,
    /// Diverted to the overflow lane.
    Divert,
}

/// Per-partition counts of the keys of the current window. Holds at most
/// `window_records` entries (one per distinct key of the window).
#[derive(Debug)]
pub struct HotKeys {
    window: i64,
    max: u32,
    /// Start of the counted window, or -1 before the counts are known.
    window_start: i64,
    counts: hashbrown::HashMap<u64, u32>,
    /// Keys over the limit in this window.
    over: usize,
    /// The last record decided: a record parked after its decision (a suspect event id)
    /// comes back and must not count twice.
    last: Option<(i64, Verdict)>,
    /// A key that went over the limit with the last decision: logged once per window.
    crossed: Option<u64>,
    /// Keys diverted since these counts were made (the partition's restore): a suspect
    /// event id of one of them may be in the lane's backlog. Past [`MAX_DIVERTED_KEYS`]
    /// every key counts as diverted.
    diverted: hashbrown::HashSet<u64>,
}

/// Keys remembered as diverted per partition; a storm of more distinct hot keys makes
/// every suspect wait for the lane (exact, only slower).
pub const MAX_DIVERTED_KEYS: usize = 100_000;

impl HotKeys {
    /// Counts of no window yet: the first record is [`Verdict::Cold`].
    pub fn new(cfg: &OverflowConfig) -> Self {
        HotKeys {
            window: i64::from(cfg.window_records.max(1)),
            max: cfg.max_per_window,
            window_start: -1,
            counts: hashbrown::HashMap::new(),
            over: 0,
            last: None,
            crossed: None,
            diverted: hashbrown::HashSet::new(),
        }
    }

    fn start_of(&self, offset: i64) -> i64 {
        offset - offset.rem_euclid(self.window)
    }

    /// Counts the record of `key` at `offset` (offsets only increase) and says where it
    /// goes. A record without a key is never hot.
    pub fn decide(&mut self, offset: i64, key: Option<&[u8]>) -> Verdict {
        if let Some((last, verdict)) = self.last {
            if last == offset {
                return verdict;
            }
        }
        let start = self.start_of(offset);
        if self.window_start < 0 || start < self.window_start {
            return Verdict::Cold {
                window_start: start,
            };
        }
        if start != self.window_start {
            self.reset(start);
        }
        let verdict = match key {
            None => Verdict::Keep,
            Some(key) => self.count(key_hash(key)),
        };
        self.last = Some((offset, verdict));
        verdict
    }

    fn count(&mut self, hash: u64) -> Verdict {
        let n = self.counts.entry(hash).or_insert(0);
        let verdict = if *n >= self.max {
            Verdict::Divert
        } else {
            Verdict::Keep
        };
        if verdict == Verdict::Divert && self.diverted.len() <= MAX_DIVERTED_KEYS {
            self.diverted.insert(hash);
        }
        *n = n.saturating_add(1);
        if *n == self.max.saturating_add(1) {
            self.over += 1;
            self.crossed = Some(hash);
        }
        verdict
    }

    fn reset(&mut self, start: i64) {
        self.window_start = start;
        self.counts.clear();
        self.over = 0;
    }

    /// Takes the counts of the window starting at `window_start` read from the log, up to
    /// (not including) the record that was [`Verdict::Cold`].
    pub fn warm(&mut self, window_start: i64, keys: &HashMap<u64, u32>) {
        self.reset(window_start);
        for (&hash, &n) in keys {
            self.counts.insert(hash, n);
            if n > self.max {
                self.over += 1;
            }
        }
    }

    /// Whether records of `key` were diverted since these counts were made.
    pub fn diverted_key(&self, key: Option<&[u8]>) -> bool {
        if self.diverted.len() > MAX_DIVERTED_KEYS {
            return true;
        }
        key.is_some_and(|k| self.diverted.contains(&key_hash(k)))
    }

    /// The key hash that went over the limit with the last decision, once.
    pub fn take_crossed(&mut self) -> Option<u64> {
        self.crossed.take()
    }

    /// First offset of the counted window (-1: none yet).
    pub fn window_start(&self) -> i64 {
        self.window_start
    }

    /// Keys over the limit in the current window.
    pub fn over(&self) -> usize {
        self.over
    }
}

/// Counts the keys of `partition`'s records at offsets `[from, to)`: the window's counts a
/// new owner needs before it decides `to`. Blocking; gives up (`Ok(None)`) when `stop`
/// fires. Records deleted by retention are not counted (nothing can count them).
pub fn count_keys(
    kafka: &KafkaConfig,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
    stop: &CancellationToken,
) -> Result<Option<HashMap<u64, u32>>, KafkaError> {
    let mut counts = HashMap::new();
    if from >= to {
        return Ok(Some(counts));
    }
    let mut config: ClientConfig = crate::kafka::consumer_config(kafka, "wxpulse-overflow-count");
    config
        .remove("statistics.interval.ms")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.create()?;
    let (low, _) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
    let start = from.max(low);
    if start >= to {
        return Ok(Some(counts));
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(start))?;
    consumer.assign(&tpl)?;
    let mut quiet_since = Instant::now();
    loop {
        if stop.is_cancelled() {
            return Ok(None);
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.partition() == partition => {
                quiet_since = Instant::now();
                if m.offset() >= to {
                    break;
                }
                if m.offset() >= start {
                    if let Some(key) = m.key() {
                        *counts.entry(key_hash(key)).or_insert(0u32) += 1;
                    }
                }
                if m.offset() + 1 >= to {
                    break;
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(e),
            _ => {
                if quiet_since.elapsed() > Duration::from_secs(30) {
                    return Err(KafkaError::Canceled);
                }
            }
        }
    }
    Ok(Some(counts))
}

/// The segment header's value.
pub fn encode_segment(s: &Segment) -> String {
    format!(
        "{},{},{}",
        s.relationship.as_str(),
        s.lifecycle.as_str(),
        s.month_interactions
    )
}

/// The segment a diverted record carries, if its header is one.
pub fn decode_segment(value: &[u8]) -> Option<Segment> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.split(',');
    let relationship = Relationship::parse(parts.next()?)?;
    let lifecycle = Lifecycle::parse(parts.next()?)?;
    let month_interactions = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(Segment {
        relationship,
        lifecycle,
        month_interactions,
    })
}

/// What a diverted record brings from the primary to the lane's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carried {
    /// The segment the primary computed in the fan's partition order.
    pub segment: Segment,
    /// Partition of the record in the primary topic (-1 if its header is missing): with
    /// the offset, what lets a primary that crashed find the records of its lost batch the
    /// lane already wrote.
    pub source_partition: i32,
    /// Offset of the record in the primary topic (-1 if its header is missing).
    pub source_offset: i64,
}

/// What a consumed record (overflow lane) carries, read from its headers; `None` without
/// a segment header.
pub fn carried<M: Message>(m: &M) -> Option<Carried> {
    let headers = m.headers()?;
    let mut segment = None;
    let (mut source_partition, mut source_offset) = (-1, -1);
    for h in headers.iter() {
        match h.key {
            SEGMENT_HEADER => segment = h.value.and_then(decode_segment),
            SOURCE_HEADER => {
                if let Some((p, o)) = h.value.and_then(decode_source) {
                    (source_partition, source_offset) = (p, o);
                }
            }
            _ => {}
        }
    }
    Some(Carried {
        segment: segment?,
        source_partition,
        source_offset,
    })
}

/// `topic/partition/offset` (the topic may itself hold no `/`, but is not needed).
fn decode_source(value: &[u8]) -> Option<(i32, i64)> {
    let mut parts = std::str::from_utf8(value).ok()?.rsplitn(3, '/');
    let offset = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((partition, offset))
}

/// A diverted record on its way; awaited with [`OverflowSink::deliver_all`] before the
/// batch that contains it is inserted and committed.
pub struct Diverted {
    delivery: Option<Result<DeliveryFuture, KafkaError>>,
    key: [u8; 36],
    value: Vec<u8>,
    segment: String,
    source: String,
    timestamp: i64,
}

/// Where a diverted record was read: its [`SOURCE_HEADER`].
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Primary topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// Produces diverted records to `<topic>.overflow`.
#[derive(Clone)]
pub struct OverflowSink {
    producer: FutureProducer,
    topic: Arc<str>,
    retry: RetryConfig,
    errors: prometheus::IntCounter,
}

impl OverflowSink {
    /// An idempotent producer for the overflow topic of `topic`.
    pub fn create(
        cfg: &Config,
        topic: &str,
        errors: prometheus::IntCounter,
    ) -> Result<Self, KafkaError> {
        let producer = crate::kafka::client_config(&cfg.kafka)
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("enable.idempotence", "true")
            .create()?;
        Ok(OverflowSink {
            producer,
            topic: Arc::from(topic_of(topic)),
            retry: cfg.retry.clone(),
            errors,
        })
    }

    /// The topic diverted records go to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Hands the record at `source` (its `payload` and Kafka `timestamp`; event
    /// `event_id`, segmented as `segment`) to the producer.
    pub fn send(
        &self,
        source: Source<'_>,
        payload: &[u8],
        timestamp: i64,
        event_id: u128,
        segment: &Segment,
    ) -> Diverted {
        let mut key = [0u8; 36];
        uuid::Uuid::from_u128(event_id)
            .hyphenated()
            .encode_lower(&mut key);
        let mut diverted = Diverted {
            delivery: None,
            key,
            value: payload.to_vec(),
            segment: encode_segment(segment),
            source: format!("{}/{}/{}", source.topic, source.partition, source.offset),
            timestamp,
        };
        diverted.delivery = Some(self.produce(&diverted));
        diverted
    }

    fn produce(&self, d: &Diverted) -> Result<DeliveryFuture, KafkaError> {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: SEGMENT_HEADER,
                value: Some(d.segment.as_bytes()),
            })
            .insert(Header {
                key: SOURCE_HEADER,
                value: Some(d.source.as_bytes()),
            });
        let mut record = FutureRecord::to(&self.topic)
            .key(&d.key[..])
            .payload(&d.value)
            .headers(headers);
        if d.timestamp >= 0 {
            record = record.timestamp(d.timestamp);
        }
        self.producer.send_result(record).map_err(|(e, _)| e)
    }

    /// Awaits every diverted record's delivery, re-sending on failure with backoff until it
    /// is acknowledged: a diverted record is never given up (its offset would be committed
    /// with it nowhere). `false` only when `cancel` fired first.
    pub async fn deliver_all(&self, records: Vec<Diverted>, cancel: &CancellationToken) -> bool {
        for mut d in records {
            let mut backoff = Backoff::new(&self.retry);
            loop {
                let Some(attempt) = crate::kafka::delivered(d.delivery.take(), cancel).await else {
                    return false;
                };
                let Err(error) = attempt else {
                    break;
                };
                self.errors.inc();
                tracing::warn!(topic = %self.topic, source = %d.source, %error, "cannot deliver a diverted record; retrying (the partition waits)");
                if !backoff.wait(cancel).await {
                    return false;
                }
                d.delivery = Some(self.produce(&d));
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
