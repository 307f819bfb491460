//! The notification topic read back: at start, and continuously, every notification of
//! the lookback (whichever notifier instance sent it) goes into [`Sent`]. Before a
//! process acts on partitions it was just given, it waits until it has read the topic to
//! the end it has now ([`Catchup::wait`]): whatever the previous owner sent — acknowledged
//! before it gave the partition up, or before it died — is then known, and a replay of
//! the same triggers sends nothing twice. Kafka transactions would give the same for a
//! Kafka-to-Kafka hop, but Tansu (the local broker) has none, and the read-back also
//! restores the limits' counts, which a transaction would not.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use uuid::Uuid;
use wxpulse_runtime::codec::{self, Registry};
use wxpulse_runtime::config::Config;

use crate::limits::{Sent, SentNote};
use crate::notification::SentRecord;

/// Full name of the record the topic carries.
pub const RECORD: &str = "com.wxpulse.notifications.Notification";

/// How far the reader got: the next offset of each partition of the topic.
#[derive(Clone)]
pub struct Catchup {
    topic: String,
    positions: Arc<Mutex<HashMap<i32, i64>>>,
    probe: Arc<BaseConsumer>,
}

impl Catchup {
    /// Waits until every partition is read to the end it has now; `Err` after `timeout`
    /// (the caller must not act on new partitions then: it would risk sending twice).
    pub fn wait(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let partitions: Vec<i32> = self
            .positions
            .lock()
            .map_err(|_| anyhow::anyhow!("ledger positions poisoned"))?
            .keys()
            .copied()
            .collect();
        let mut ends = Vec::new();
        for p in partitions {
            let (_, high) = self
                .probe
                .fetch_watermarks(&self.topic, p, timeout)
                .with_context(|| format!("cannot read the end of {} [{p}]", self.topic))?;
            ends.push((p, high));
        }
        loop {
            let behind: Vec<(i32, i64, i64)> = {
                let positions = self
                    .positions
                    .lock()
                    .map_err(|_| anyhow::anyhow!("ledger positions poisoned"))?;
                ends.iter()
                    .filter_map(|(p, high)| {
                        let at = positions.get(p).copied().unwrap_or(0);
                        (at < *high).then_some((*p, at, *high))
                    })
                    .collect()
            };
            if behind.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "{} not read to its end within {timeout:?}: {behind:?} (partition, at, end)",
                    self.topic
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The reader thread; stops when dropped.
pub struct Ledger {
    catchup: Catchup,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ledger {
    /// Starts reading `topic` from `lookback` before now (each partition's first record
    /// at or after that time) into `sent`.
    pub fn start(
        config: &Config,
        registry: Arc<Registry>,
        sent: Arc<Mutex<Sent>>,
    ) -> anyhow::Result<Self> {
        let topic = config.notifier.topic.clone();
        let client = || {
            wxpulse_runtime::source::client_config(&config.kafka, "wxpulse-notifier-ledger")
                .remove("statistics.interval.ms")
                .clone()
        };
        let consumer: BaseConsumer = client()
            .create()
            .context("cannot create the ledger consumer")?;
        let probe: BaseConsumer = client()
            .create()
            .context("cannot create the ledger probe")?;
        let timeout = config.kafka.connect_timeout.max(Duration::from_secs(10));
        let metadata = probe
            .fetch_metadata(Some(&topic), timeout)
            .with_context(|| format!("cannot read the metadata of {topic}"))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        anyhow::ensure!(
            !partitions.is_empty(),
            "topic {topic} does not exist (create it with `wxpulse topics create`)"
        );
        let since = now_ms() - i64::try_from(config.notifier.lookback.as_millis())?;
        let mut wanted = TopicPartitionList::new();
        for p in &partitions {
            wanted.add_partition_offset(&topic, *p, Offset::Offset(since))?;
        }
        // The first offset at or after `since` per partition; a broker that cannot answer
        // by time is read from the start (the lookback filter then skips the old ones).
        let starts = match probe.offsets_for_times(wanted, timeout) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(%topic, error = %e, "offsets by time unavailable; reading from the start");
                let mut all = TopicPartitionList::new();
                for p in &partitions {
                    all.add_partition_offset(&topic, *p, Offset::Beginning)?;
                }
                all
            }
        };
        let mut positions = HashMap::new();
        let mut assign = TopicPartitionList::new();
        for e in starts.elements() {
            let (low, high) = probe.fetch_watermarks(&topic, e.partition(), timeout)?;
            let start = match e.offset() {
                Offset::Offset(o) => o,
                Offset::Beginning => low,
                _ => high,
            };
            positions.insert(e.partition(), start);
            assign.add_partition_offset(&topic, e.partition(), Offset::Offset(start))?;
        }
        consumer
            .assign(&assign)
            .context("cannot assign the ledger")?;
        let positions = Arc::new(Mutex::new(positions));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (positions, stop) = (positions.clone(), stop.clone());
            std::thread::Builder::new()
                .name("ledger".into())
                .spawn(move || read(consumer, registry, sent, positions, stop, since))?
        };
        Ok(Ledger {
            catchup: Catchup {
                topic,
                positions,
                probe: Arc::new(probe),
            },
            stop,
            thread: Some(thread),
        })
    }

    /// The handle the rebalance callback waits with.
    pub fn catchup(&self) -> Catchup {
        self.catchup.clone()
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn read(
    consumer: BaseConsumer,
    registry: Arc<Registry>,
    sent: Arc<Mutex<Sent>>,
    positions: Arc<Mutex<HashMap<i32, i64>>>,
    stop: Arc<AtomicBool>,
    since: i64,
) {
    while !stop.load(Ordering::Relaxed) {
        let Some(next) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = match next {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "ledger read failed; retrying");
                continue;
            }
        };
        match note(&registry, m.payload().unwrap_or_default()) {
            Ok(Some(n)) if n.server_time >= since => {
                if let Ok(mut s) = sent.lock() {
                    s.record(n);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                partition = m.partition(),
                offset = m.offset(),
                error = %e,
                "a notification record the ledger cannot read; skipped"
            ),
        }
        if let Ok(mut p) = positions.lock() {
            p.insert(m.partition(), m.offset() + 1);
        }
    }
}

/// Decodes a notification record into what the limits keep; `None` for a record of
/// another kind.
fn note(registry: &Registry, payload: &[u8]) -> anyhow::Result<Option<SentNote>> {
    let (id, datum) = codec::split_frame(payload)?;
    let writer = loop {
        match registry.cached(id) {
            Some(w) => break w,
            None => match registry.fetch_blocking(id) {
                Ok(Some(w)) => break w,
                Ok(None) => anyhow::bail!("schema id {id} is unknown to the registry"),
                Err(e) => {
                    tracing::warn!(error = %e, "registry unavailable; ledger waits");
                    std::thread::sleep(Duration::from_secs(1));
                }
            },
        }
    };
    if writer.record != RECORD {
        return Ok(None);
    }
    let r: SentRecord<'_> = codec::decode(datum, &writer.schema)?;
    Ok(Some(SentNote {
        id: Uuid::parse_str(r.notification_id)?,
        rule: r.rule,
        associate: Arc::from(r.associate_userid),
        fan_id: r.fan_id.parse()?,
        server_time: r.server_time,
    }))
}
