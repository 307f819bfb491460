//! Reads the dimension topics: to their end before the service consumes events, then
//! follows them for the life of the process, so an update applies within about a second.
//!
//! Every instance reads every partition of every dimension topic it needs (plain
//! `assign`, no consumer group, nothing committed): dimensions are small and every
//! instance needs all of them. Records are applied in offset order per key, so the
//! latest value wins whether or not the broker has compacted the topic yet (Kafka never
//! compacts the active segment; Tansu 0.6 compacts every 10 minutes).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::{Dimension, DimensionRecord, Dimensions};
use crate::codec::Registry;
use crate::config::Config;
use crate::metrics::Metrics;

/// One record of a dimension topic: a new value, or a tombstone (`record: None`).
#[derive(Debug)]
pub struct Update {
    /// Which dimension.
    pub dimension: Dimension,
    /// Kafka key.
    pub key: String,
    /// The value, or `None` to delete the key.
    pub record: Option<DimensionRecord>,
}

/// The running follower: updates arrive on `updates` in batches.
pub struct Feed {
    /// Batches of updates in offset order per partition.
    pub updates: mpsc::Receiver<Vec<Update>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Feed {
    /// A feed that never delivers: services whose stream needs no dimension topic.
    pub fn idle() -> Self {
        let (_tx, updates) = mpsc::channel(1);
        Feed {
            updates,
            stop: Arc::new(AtomicBool::new(true)),
            thread: None,
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads `wanted` dimensions to their current end into `dims` (bounded by
/// `dimensions.load_timeout`), each partition from its offset in `starts` (what a snapshot
/// already loaded) or its beginning, then follows them on a thread.
pub fn load_and_follow(
    config: &Config,
    service: &str,
    wanted: &[Dimension],
    starts: super::snapshot::Starts,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    dims: &mut Dimensions,
) -> anyhow::Result<Feed> {
    if wanted.is_empty() {
        return Ok(Feed::idle());
    }
    let group = format!("wxpulse-{service}-dimensions");
    let consumer: BaseConsumer = crate::source::client_config(&config.kafka, &group)
        .remove("statistics.interval.ms")
        .create()
        .context("cannot create the dimension consumer")?;
    let mut follower = Follower {
        consumer,
        wanted: wanted.to_vec(),
        assigned: HashSet::new(),
        starts,
        registry,
        metrics,
    };
    follower.assign_new_partitions();
    let started = Instant::now();
    let unfinished = follower.load(dims, started + config.dimensions.load_timeout);
    for d in wanted {
        follower
            .metrics
            .dimension_records
            .with_label_values(&[d.as_str()])
            .set(dims.len(*d) as i64);
    }
    if unfinished.is_empty() {
        tracing::info!(elapsed = ?started.elapsed(), "dimensions loaded");
    } else {
        // What was read, per dimension: records held, and how far each unfinished one got.
        let progress: Vec<String> = wanted
            .iter()
            .map(|d| {
                let left: Vec<String> = unfinished
                    .iter()
                    .filter(|(u, ..)| u == d)
                    .map(|(_, p, read, end)| format!("p{p} at {read}/{end}"))
                    .collect();
                let state = if left.is_empty() {
                    "complete".to_string()
                } else {
                    format!("unfinished: {}", left.join(", "))
                };
                format!("{} {} records ({state})", d.as_str(), dims.len(*d))
            })
            .collect();
        let progress = progress.join("; ");
        // Unknown accounts may be dead-lettered: a half-read account dimension would reject
        // the events of every account not read yet. Refuse to start instead.
        if config.validation.unknown_account == crate::config::UnknownAccount::DeadLetter
            && unfinished.iter().any(|(d, ..)| *d == Dimension::Account)
        {
            anyhow::bail!(
                "the account dimension was not read to its end within dimensions.load_timeout \
                 ({:?}); starting would dead-letter the events of accounts not read yet. \
                 Loaded so far: {progress}. Raise dimensions.load_timeout or check the broker",
                config.dimensions.load_timeout
            );
        }
        tracing::error!(
            timeout = ?config.dimensions.load_timeout,
            loaded = %progress,
            "dimension topics not read to their end in time; starting with what was read \
             (missing values are written as unknown) and still reading"
        );
    }
    let (tx, updates) = mpsc::channel(64);
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("wxpulse-dimensions".into())
            .spawn(move || follower.follow(&tx, &stop))
            .context("cannot start the dimension thread")?
    };
    Ok(Feed {
        updates,
        stop,
        thread: Some(thread),
    })
}

struct Follower {
    consumer: BaseConsumer,
    wanted: Vec<Dimension>,
    assigned: HashSet<(Dimension, i32)>,
    /// Where a snapshot left each partition off (absent: the beginning).
    starts: super::snapshot::Starts,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
}

impl Follower {
    /// Assigns, from the beginning, every partition not yet assigned (topics created or
    /// grown after startup are picked up by calling this again).
    fn assign_new_partitions(&mut self) {
        let mut tpl = TopicPartitionList::new();
        for d in &self.wanted {
            let metadata = match self
                .consumer
                .fetch_metadata(Some(d.topic()), Duration::from_secs(10))
            {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(topic = d.topic(), error = %e, "cannot read dimension topic metadata");
                    continue;
                }
            };
            for topic in metadata.topics() {
                if topic.error().is_some() {
                    tracing::warn!(
                        topic = d.topic(),
                        "dimension topic does not exist yet; its values are unknown until it does"
                    );
                    continue;
                }
                for p in topic.partitions() {
                    if self.assigned.insert((*d, p.id())) {
                        let from = self
                            .starts
                            .get(&(*d, p.id()))
                            .map_or(Offset::Beginning, |o| Offset::Offset(*o));
                        let _ = tpl.add_partition_offset(d.topic(), p.id(), from);
                    }
                }
            }
        }
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.incremental_assign(&tpl) {
                tracing::warn!(error = %e, "cannot assign dimension partitions");
                for e in tpl.elements() {
                    if let Some(d) = Dimension::of_topic(e.topic()) {
                        self.assigned.remove(&(d, e.partition()));
                    }
                }
            }
        }
    }

    /// Applies records until every assigned partition reached the end it had at the
    /// start, or `deadline`; the partitions that did not get there, with the offset read
    /// up to and their end.
    fn load(
        &mut self,
        dims: &mut Dimensions,
        deadline: Instant,
    ) -> Vec<(Dimension, i32, i64, i64)> {
        let mut read: std::collections::HashMap<(Dimension, i32), i64> = Default::default();
        let mut ends: Vec<(Dimension, i32, i64)> = Vec::new();
        for (d, p) in &self.assigned {
            match self
                .consumer
                .fetch_watermarks(d.topic(), *p, Duration::from_secs(10))
            {
                Ok((low, high))
                    if high > self.starts.get(&(*d, *p)).copied().unwrap_or(low).max(low) =>
                {
                    ends.push((*d, *p, high))
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(topic = d.topic(), partition = p, error = %e, "cannot read dimension watermarks");
                }
            }
        }
        while !ends.is_empty() {
            if Instant::now() >= deadline {
                return ends
                    .into_iter()
                    .map(|(d, p, high)| (d, p, read.get(&(d, p)).map_or(0, |o| o + 1), high))
                    .collect();
            }
            let Some(result) = self.consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = match result {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "dimension consumer error");
                    continue;
                }
            };
            let (topic, partition, offset) =
                (message.topic(), message.partition(), message.offset());
            if let Some(d) = Dimension::of_topic(topic) {
                read.insert((d, partition), offset);
            }
            if let Some(update) = self.update(topic, message.key(), message.payload()) {
                self.count(update.dimension);
                dims.apply(update.dimension, &update.key, update.record);
            }
            ends.retain(|(d, p, high)| {
                !(d.topic() == topic && *p == partition && offset + 1 >= *high)
            });
        }
        Vec::new()
    }

    fn follow(mut self, tx: &mpsc::Sender<Vec<Update>>, stop: &AtomicBool) {
        let mut last_metadata = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if last_metadata.elapsed() >= Duration::from_secs(30) {
                self.assign_new_partitions();
                last_metadata = Instant::now();
            }
            let mut batch = Vec::new();
            let mut timeout = Duration::from_millis(200);
            while batch.len() < 10_000 {
                let Some(result) = self.consumer.poll(timeout) else {
                    break;
                };
                timeout = Duration::ZERO;
                match result {
                    Ok(m) => {
                        if let Some(update) = self.update(m.topic(), m.key(), m.payload()) {
                            self.count(update.dimension);
                            batch.push(update);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "dimension consumer error"),
                }
            }
            if !batch.is_empty() && tx.blocking_send(batch).is_err() {
                return; // the pipeline is gone
            }
        }
    }

    fn count(&self, d: Dimension) {
        self.metrics
            .dimension_updates
            .with_label_values(&[d.as_str()])
            .inc();
    }

    /// Decodes one record; a bad one is logged, counted and skipped (every instance reads
    /// every dimension record, so dead-lettering here would repeat it per instance).
    fn update(&self, topic: &str, key: Option<&[u8]>, payload: Option<&[u8]>) -> Option<Update> {
        let dimension = Dimension::of_topic(topic)?;
        let reject = |why: String| {
            self.metrics
                .dimension_rejected
                .with_label_values(&[dimension.as_str()])
                .inc();
            tracing::warn!(topic, reason = %why, "dimension record skipped");
        };
        let Some(key) = key.and_then(|k| std::str::from_utf8(k).ok()) else {
            reject("missing or non-UTF-8 key".into());
            return None;
        };
        let Some(payload) = payload else {
            return Some(Update {
                dimension,
                key: key.to_string(),
                record: None,
            });
        };
        let decoded = DimensionRecord::from_framed(dimension, payload, &self.registry);
        match decoded {
            Ok(record) => Some(Update {
                dimension,
                key: key.to_string(),
                record: Some(record),
            }),
            Err(why) => {
                reject(why);
                None
            }
        }
    }
}
