//! `wxpulse dims mirror`: copies the fan-profile dimension into ClickHouse's
//! `fan_profiles`, where the follower, unfollow and monthly-active views read follows,
//! unfollows and the follower base (see `schemas/clickhouse/VIEWS.md`, the writer's
//! contract), and the follows and unfollows the gateway reported (`wxpulse.dim.fan_follow`)
//! straight into `fan_follow_events`, beside those the profiles carry, and the WeCom
//! associates' contact changes (`wxpulse.dim.associate_contact`) into
//! `associate_contact_events` ([`contacts`]).
//!
//! At-least-once is enough here: `fan_profiles` is a ReplacingMergeTree on (account, fan)
//! versioned by `updated_at`, and `fan_follow_events` one on (account, fan, kind, time) as
//! `associate_contact_events` is on (corp, associate, contact, change, time), so
//! re-inserting a record already stored changes nothing.
//! Offsets are committed after the insert; a crash re-reads from the last commit. The raw
//! openid of the record is pseudonymised with the services' PII key before it leaves.
//!
//! Run without `--once` it is a service like the consumers: batches as `[batch]` says
//! (`max_rows`, `max_age`), retries a failing write with the `[retry]` backoff (never skips
//! it), serves `/metrics`, `/healthz` and `/readyz` on `metrics.listen` ([`metrics`]), and on
//! SIGTERM writes and commits the batch in flight (within `kafka.drain_timeout`) and exits 0.

pub mod contacts;
pub mod metrics;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clickhouse::Row;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use wxpulse_runtime::codec::Registry;
use wxpulse_runtime::config::Config;
use wxpulse_runtime::enrich::{
    birthday, Dimension, DimensionRecord, FanFollowRecord, FanProfileRecord,
};
use wxpulse_runtime::pii::Pseudonymizer;
use wxpulse_runtime::retry::Backoff;

use self::contacts::{contact_row, decode_contact, ContactRow};
use self::metrics::{MirrorMetrics, Stage};

/// How often the lag is computed (committed offsets and high watermarks from the broker).
const LAG_INTERVAL: Duration = Duration::from_secs(2);

/// A row of `fan_profiles`.
#[derive(Debug, Clone, PartialEq, Row, Serialize)]
#[allow(missing_docs)]
pub struct ProfileRow {
    pub app_id: String,
    pub fan_id: u64,
    pub status: &'static str,
    pub member_tier: String,
    pub associate_userid: String,
    pub followed_at: Option<i64>,
    pub unfollowed_at: Option<i64>,
    pub follow_source: String,
    pub updated_at: i64,
    pub is_deleted: u8,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    /// `"MM-DD"`, or empty: unknown, or not a birthday (migration 0019).
    pub birthday: String,
}

/// A row of `fan_follow_events`: a follow or unfollow the gateway reported.
#[derive(Debug, Clone, PartialEq, Row, Serialize)]
#[allow(missing_docs)]
pub struct FollowRow {
    pub app_id: String,
    pub fan_id: u64,
    pub kind: &'static str,
    pub at: i64,
    pub follow_source: String,
    /// 1 when the callback told the source (a subscribe with a QR scene): then this row's
    /// source is the follow's own. Without one, the same follow published with its source
    /// on the CRM's profile (same second, from WeChat's user-info API) wins the merge.
    pub source_known: u8,
}

/// The row of a reported follow or unfollow; a tombstone writes nothing (the history keeps
/// what happened).
pub fn follow_row(pii: &Pseudonymizer, record: FanFollowRecord) -> FollowRow {
    let source = record.follow_source.unwrap_or_default();
    FollowRow {
        fan_id: pii.fan_id(&record.openid),
        app_id: record.app_id,
        kind: record.kind.as_str(),
        at: record.at,
        source_known: u8::from(!source.is_empty()),
        follow_source: source,
    }
}

/// The topics mirrored.
const TOPICS: [Dimension; 3] = [
    Dimension::FanProfile,
    Dimension::FanFollow,
    Dimension::AssociateContact,
];

/// Where a record is in the topic: its position feeds the table's watermark, which tells a
/// starting service how much of the topic the table holds.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Record timestamp, ms: the version of a tombstone.
    pub time_ms: i64,
}

/// The row of a profile record, or of a tombstone of `key`.
pub fn row(
    pii: &Pseudonymizer,
    key: &str,
    record: Option<FanProfileRecord>,
    origin: Origin,
) -> Option<ProfileRow> {
    match record {
        Some(r) => Some(ProfileRow {
            fan_id: pii.fan_id(&r.openid),
            app_id: r.app_id,
            status: r.status.as_str(),
            member_tier: r.member_tier.unwrap_or_default(),
            associate_userid: r.associate_userid.unwrap_or_default(),
            followed_at: r.followed_at,
            unfollowed_at: r.unfollowed_at,
            follow_source: r.follow_source.unwrap_or_default(),
            updated_at: r.updated_at,
            is_deleted: 0,
            kafka_partition: origin.partition,
            kafka_offset: origin.offset,
            birthday: birthday::stored(r.birthday.as_deref()),
        }),
        None => {
            let (app_id, openid) = key.split_once('|')?;
            Some(ProfileRow {
                app_id: app_id.to_string(),
                fan_id: pii.fan_id(openid),
                status: "unknown",
                member_tier: String::new(),
                associate_userid: String::new(),
                followed_at: None,
                unfollowed_at: None,
                follow_source: String::new(),
                updated_at: origin.time_ms,
                is_deleted: 1,
                kafka_partition: origin.partition,
                kafka_offset: origin.offset,
                birthday: String::new(),
            })
        }
    }
}

/// Mirrors until SIGINT/SIGTERM, or with `once` up to the end the topic has at the start
/// (failing if no record arrives for `idle`); returns the rows written. Without `once` it
/// serves its metrics and health on `metrics.listen`.
pub async fn run(
    config: &Config,
    kafka: &wxpulse_runtime::config::KafkaConfig,
    ch: &wxpulse_runtime::config::ClickHouseConfig,
    once: bool,
    idle: Duration,
) -> anyhow::Result<u64> {
    wxpulse_runtime::kafka::preflight(kafka)?;
    let mut settings = wxpulse_runtime::kafka::client_config(kafka);
    settings
        .set("group.id", "wxpulse-fan-profile-mirror")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: StreamConsumer =
        wxpulse_runtime::kafka::create(&settings, "fan-profile consumer")?;
    // Follow mode joins the group (replicas share partitions). Once mode assigns every
    // partition at the group's committed offset and stops at the end the topic had when it
    // started: no group join to wait for, and no guessing from idle time.
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    if once {
        let mut tpl = TopicPartitionList::new();
        for d in TOPICS {
            let metadata = consumer
                .fetch_metadata(Some(d.topic()), Duration::from_secs(10))
                .with_context(|| format!("{} metadata", d.topic()))?;
            // A topic not created yet (no gateway has reported a follow) has nothing to copy.
            for t in metadata.topics().iter().filter(|t| t.error().is_none()) {
                for p in t.partitions() {
                    tpl.add_partition(d.topic(), p.id());
                }
            }
        }
        let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
        let mut start = TopicPartitionList::new();
        for e in committed.elements() {
            let (low, high) =
                consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(10))?;
            let from = match e.offset() {
                Offset::Offset(o) if o >= low => o,
                _ => low,
            };
            if from < high {
                ends.insert((e.topic().to_string(), e.partition()), high);
            }
            start.add_partition_offset(e.topic(), e.partition(), Offset::Offset(from))?;
        }
        consumer.assign(&start)?;
        if ends.is_empty() {
            return Ok(0);
        }
    } else {
        consumer.subscribe(&TOPICS.map(Dimension::topic))?;
    }
    let client = wxpulse_runtime::sink::client(ch)?;
    wxpulse_runtime::sink::check_tls(&client, ch).await?;
    let registry = Registry::from_config(&config.schema_registry)?;
    registry.check()?;
    let pii = Pseudonymizer::new(config.pii.key.expose().as_bytes());

    let consumer = Arc::new(consumer);
    let metrics = MirrorMetrics::new(config.batch.stuck_after);
    let stop = wxpulse_runtime::shutdown::on_signals();
    // The endpoint outlives `stop`: /readyz says "shutting down" while the last batch is
    // written, and a last scrape still sees the final counts.
    let serving = CancellationToken::new();
    if !once {
        let listen = config
            .metrics
            .listen
            .parse()
            .with_context(|| format!("metrics.listen {:?}", config.metrics.listen))?;
        wxpulse_runtime::metrics::serve(metrics.clone(), listen, serving.clone()).await?;
        tokio::spawn(watch(
            consumer.clone(),
            client.clone(),
            metrics.clone(),
            serving.clone(),
        ));
    }
    let mut mirror = Mirror {
        consumer,
        client,
        metrics,
        rows: Vec::new(),
        follows: Vec::new(),
        contacts: Vec::new(),
        next: HashMap::new(),
        retry: config.retry.clone(),
        insert_timeout: ch.insert_timeout,
        drain_timeout: config.kafka.drain_timeout,
    };
    let written = mirror
        .follow(&registry, &pii, &config.batch, ends, once, idle, &stop)
        .await;
    serving.cancel();
    written
}

/// The consumer, the sink and the batch between two flushes.
struct Mirror {
    consumer: Arc<StreamConsumer>,
    client: clickhouse::Client,
    metrics: Arc<MirrorMetrics>,
    rows: Vec<ProfileRow>,
    follows: Vec<FollowRow>,
    contacts: Vec<ContactRow>,
    /// Per topic and partition, the offset to commit once `rows` and `follows` are written.
    next: HashMap<(String, i32), i64>,
    retry: wxpulse_runtime::config::RetryConfig,
    insert_timeout: Duration,
    drain_timeout: Duration,
}

impl Mirror {
    /// The loop: read, batch, write at `batch.max_rows` or once the oldest record waited
    /// `batch.max_age`; on `stop` (or, with `once`, at the ends) write the batch in flight.
    #[allow(clippy::too_many_arguments)]
    async fn follow(
        &mut self,
        registry: &Registry,
        pii: &Pseudonymizer,
        batch: &wxpulse_runtime::config::BatchConfig,
        mut ends: HashMap<(String, i32), i64>,
        once: bool,
        idle: Duration,
        stop: &CancellationToken,
    ) -> anyhow::Result<u64> {
        let mut written = 0u64;
        let mut last_record = Instant::now();
        let mut pending_since: Option<Instant> = None;
        let mut skipped = 0u64;
        loop {
            let received = tokio::select! {
                m = self.consumer.recv() => Some(m),
                _ = tokio::time::sleep(Duration::from_millis(200)) => None,
                _ = stop.cancelled() => break,
            };
            match received {
                Some(Ok(m)) => {
                    self.metrics.consumed();
                    last_record = Instant::now();
                    pending_since.get_or_insert(last_record);
                    let at = (m.topic().to_string(), m.partition());
                    if m.offset() + 1 >= ends.get(&at).copied().unwrap_or(i64::MAX) {
                        ends.remove(&at);
                    }
                    self.next.insert(at, m.offset() + 1);
                    let key = m
                        .key()
                        .and_then(|k| std::str::from_utf8(k).ok())
                        .unwrap_or("");
                    if m.topic() == Dimension::AssociateContact.topic() {
                        match m.payload().map(|p| decode_contact(registry, p)) {
                            Some(Ok(r)) => self.contacts.push(contact_row(pii, r)),
                            Some(Err(e)) => {
                                skipped += 1;
                                self.metrics.skipped();
                                tracing::warn!(error = %e, offset = m.offset(), "associate contact skipped");
                            }
                            None => {} // a tombstone, as for follows
                        }
                    } else if m.topic() == Dimension::FanFollow.topic() {
                        match m.payload().map(|p| decode_follow(registry, p)) {
                            Some(Ok(r)) => self.follows.push(follow_row(pii, r)),
                            Some(Err(e)) => {
                                skipped += 1;
                                self.metrics.skipped();
                                tracing::warn!(error = %e, offset = m.offset(), "fan follow skipped");
                            }
                            None => {} // a tombstone: compaction's business, not history's
                        }
                    } else {
                        match profile_row(registry, pii, key, &m) {
                            Ok(r) => self.rows.push(r),
                            Err(why) => {
                                skipped += 1;
                                self.metrics.skipped();
                                tracing::warn!(offset = m.offset(), why, "fan profile skipped");
                            }
                        }
                    }
                }
                // librdkafka retries by itself; a broker that is away shows as lag.
                Some(Err(e)) => {
                    self.metrics.error(Stage::Consume);
                    tracing::warn!(error = %e, "fan-profile consumer");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                None => {}
            }
            let due = self.pending() >= batch.max_rows.max(1)
                || pending_since.is_some_and(|t| t.elapsed() >= batch.max_age);
            if due {
                written += self.flush(stop, None).await?;
                pending_since = None;
            }
            if once && ends.is_empty() {
                break;
            }
            if once && last_record.elapsed() >= idle {
                anyhow::bail!("no fan-profile record for {idle:?} before the end of the topic");
            }
        }
        // The batch in flight, within kafka.drain_timeout once a shutdown was asked for.
        let deadline = stop.is_cancelled().then(|| {
            self.metrics.draining();
            Instant::now() + self.drain_timeout
        });
        written += self.flush(stop, deadline).await?;
        if skipped > 0 {
            tracing::warn!(skipped, "fan profiles that did not decode were skipped");
        }
        Ok(written)
    }

    /// Inserts the rows, retrying until they are in (or, after a shutdown request, until
    /// `deadline`), then commits the offsets they came from. A failed commit only means
    /// the records are read and written again, which changes nothing.
    async fn flush(
        &mut self,
        stop: &CancellationToken,
        mut deadline: Option<Instant>,
    ) -> anyhow::Result<u64> {
        if self.next.is_empty() {
            return Ok(0);
        }
        let n = self.pending() as u64;
        if n > 0 {
            self.metrics.flush_started();
            let mut backoff = Backoff::new(&self.retry);
            loop {
                let attempt = tokio::time::timeout(self.insert_timeout, self.insert()).await;
                let error = match attempt {
                    Ok(Ok(())) => break,
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(_) => format!(
                        "no answer within {:?} (clickhouse.insert_timeout)",
                        self.insert_timeout
                    ),
                };
                self.metrics.error(Stage::Insert);
                tracing::warn!(
                    error,
                    rows = n,
                    "cannot write fan profiles into fan_profiles; retrying"
                );
                if deadline.is_none() && stop.is_cancelled() {
                    self.metrics.draining();
                    deadline = Some(Instant::now() + self.drain_timeout);
                }
                let delay = backoff.next_delay();
                if let Some(d) = deadline {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.metrics.flush_ended();
                        anyhow::bail!(
                            "{n} fan profiles not written before kafka.drain_timeout ({:?}): \
                             their offsets are not committed, the next start reads them again; \
                             last error: {error}",
                            self.drain_timeout
                        );
                    }
                    tokio::time::sleep(delay.min(left)).await;
                } else {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.cancelled() => {}
                    }
                }
            }
            self.metrics.flush_ended();
            self.metrics.wrote(n, unix_now());
            self.rows.clear();
            self.follows.clear();
            self.contacts.clear();
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, p), o) in self.next.iter() {
            tpl.add_partition_offset(topic, *p, Offset::Offset(*o))?;
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Sync) {
            self.metrics.error(Stage::Commit);
            tracing::warn!(error = %e, "offsets not committed: those records are read again (harmless)");
        }
        self.next.clear();
        Ok(n)
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Every `LAG_INTERVAL` until `stop`: the lag of the assigned partitions (a blocking broker
/// round trip, off the async threads), and ClickHouse asked again while it has not answered.
async fn watch(
    consumer: Arc<StreamConsumer>,
    client: clickhouse::Client,
    metrics: Arc<MirrorMetrics>,
    stop: CancellationToken,
) {
    loop {
        if !metrics.clickhouse_ok() {
            match client.query("SELECT 1").execute().await {
                Ok(()) => metrics.clickhouse_answered(),
                Err(e) => {
                    metrics.error(Stage::Insert);
                    tracing::warn!(error = %e, "ClickHouse does not answer");
                }
            }
        }
        let c = consumer.clone();
        match tokio::task::spawn_blocking(move || lags(&c, LAG_INTERVAL)).await {
            Ok(Ok(lags)) => metrics.set_lags(&lags),
            Ok(Err(e)) => {
                metrics.error(Stage::Lag);
                tracing::debug!(error = %e, "fan-profile lag unknown");
            }
            Err(e) => tracing::warn!(error = %e, "fan-profile lag task"),
        }
        tokio::select! {
            _ = tokio::time::sleep(LAG_INTERVAL) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// For each partition assigned to `consumer`: the records after the group's committed
/// offset (from the log start when it has none), i.e. what a restart would read again and
/// what is not yet in ClickHouse.
fn lags(
    consumer: &StreamConsumer,
    timeout: Duration,
) -> KafkaResult<Vec<(&'static str, i32, i64)>> {
    let assignment = consumer.assignment()?;
    if assignment.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = consumer.committed_offsets(assignment, timeout)?;
    let mut out = Vec::new();
    for topic in TOPICS.map(Dimension::topic) {
        for e in committed.elements_for_topic(topic) {
            let (low, high) = consumer.fetch_watermarks(topic, e.partition(), timeout)?;
            let from = match e.offset() {
                Offset::Offset(o) if o >= low => o,
                _ => low,
            };
            out.push((topic, e.partition(), (high - from).max(0)));
        }
    }
    Ok(out)
}

fn decode(registry: &Registry, payload: &[u8]) -> anyhow::Result<FanProfileRecord> {
    match DimensionRecord::from_framed(Dimension::FanProfile, payload, registry) {
        Ok(DimensionRecord::FanProfile(r)) => Ok(r),
        Ok(_) => anyhow::bail!("not a fan profile"),
        Err(why) => anyhow::bail!(why),
    }
}

/// The row of a fan-profile record or tombstone; why not, for the log.
fn profile_row(
    registry: &Registry,
    pii: &Pseudonymizer,
    key: &str,
    m: &rdkafka::message::BorrowedMessage<'_>,
) -> Result<ProfileRow, String> {
    let record = match m.payload() {
        None => None,
        Some(p) => Some(decode(registry, p).map_err(|e| format!("{e:#}"))?),
    };
    let origin = Origin {
        partition: m.partition(),
        offset: m.offset(),
        time_ms: m.timestamp().to_millis().unwrap_or(0),
    };
    row(pii, key, record, origin)
        .ok_or_else(|| "tombstone without an app_id|openid key".to_string())
}

fn decode_follow(registry: &Registry, payload: &[u8]) -> anyhow::Result<FanFollowRecord> {
    match DimensionRecord::from_framed(Dimension::FanFollow, payload, registry) {
        Ok(DimensionRecord::FanFollow(r)) => Ok(r),
        Ok(_) => anyhow::bail!("not a fan follow"),
        Err(why) => anyhow::bail!(why),
    }
}

impl Mirror {
    /// Rows batched, of the three tables.
    fn pending(&self) -> usize {
        self.rows.len() + self.follows.len() + self.contacts.len()
    }

    /// One insert per table with rows (each idempotent, so a retry after a later one
    /// failed writes the earlier ones again harmlessly).
    async fn insert(&self) -> anyhow::Result<()> {
        insert_into(&self.client, "fan_profiles", &self.rows).await?;
        insert_into(&self.client, "fan_follow_events", &self.follows).await?;
        insert_into(&self.client, "associate_contact_events", &self.contacts).await
    }
}

/// One insert of `rows` into `table`; nothing when there are none.
async fn insert_into<R: clickhouse::RowOwned + clickhouse::RowWrite>(
    client: &clickhouse::Client,
    table: &str,
    rows: &[R],
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = client.insert::<R>(table).await?;
    for r in rows {
        insert.write(r).await?;
    }
    insert
        .end()
        .await
        .with_context(|| format!("cannot insert into {table}"))
}

#[cfg(test)]
mod tests;
