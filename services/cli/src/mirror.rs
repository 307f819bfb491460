//! `wxpulse dims mirror`: copies the fan-profile dimension into ClickHouse's
//! `fan_profiles`, where the follower, unfollow and monthly-active views read follows,
//! unfollows and the follower base (see `schemas/clickhouse/VIEWS.md`, the writer's
//! contract).
//!
//! At-least-once is enough here: `fan_profiles` is a ReplacingMergeTree on (account, fan)
//! versioned by `updated_at`, so re-inserting a record already stored changes nothing.
//! Offsets are committed after the insert; a crash re-reads from the last commit. The raw
//! openid of the record is pseudonymised with the services' PII key before it leaves.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use clickhouse::Row;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use wxpulse_runtime::codec::Registry;
use wxpulse_runtime::config::Config;
use wxpulse_runtime::enrich::{Dimension, DimensionRecord, FanProfileRecord};
use wxpulse_runtime::pii::Pseudonymizer;

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
}

/// The row of a profile record, or of a tombstone of `key` at `kafka_time` (ms).
pub fn row(
    pii: &Pseudonymizer,
    key: &str,
    record: Option<FanProfileRecord>,
    kafka_time: i64,
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
                updated_at: kafka_time,
                is_deleted: 1,
            })
        }
    }
}

/// Mirrors until SIGINT/SIGTERM, or with `once` up to the end the topic has at the start
/// (failing if no record arrives for `idle`);
/// returns the rows written.
pub async fn run(
    config: &Config,
    kafka: &wxpulse_runtime::config::KafkaConfig,
    ch: &wxpulse_runtime::config::ClickHouseConfig,
    once: bool,
    idle: Duration,
) -> anyhow::Result<u64> {
    let topic = Dimension::FanProfile.topic();
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
    let mut ends: HashMap<i32, i64> = HashMap::new();
    if once {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .context("fan-profile topic metadata")?;
        let mut tpl = TopicPartitionList::new();
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            tpl.add_partition(topic, p.id());
        }
        let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
        let mut start = TopicPartitionList::new();
        for e in committed.elements() {
            let (low, high) =
                consumer.fetch_watermarks(topic, e.partition(), Duration::from_secs(10))?;
            let from = match e.offset() {
                Offset::Offset(o) if o >= low => o,
                _ => low,
            };
            if from < high {
                ends.insert(e.partition(), high);
            }
            start.add_partition_offset(topic, e.partition(), Offset::Offset(from))?;
        }
        consumer.assign(&start)?;
        if ends.is_empty() {
            return Ok(0);
        }
    } else {
        consumer.subscribe(&[topic])?;
    }
    let client = wxpulse_runtime::sink::client(ch)?;
    wxpulse_runtime::sink::check_tls(&client, ch).await?;
    let registry = Registry::from_config(&config.schema_registry)?;
    registry.check()?;
    let pii = Pseudonymizer::new(config.pii.key.expose().as_bytes());
    let mut rows: Vec<ProfileRow> = Vec::new();
    let mut next: HashMap<i32, i64> = HashMap::new();
    let mut written = 0u64;
    let mut last_record = Instant::now();
    let mut last_flush = Instant::now();
    let mut skipped = 0u64;
    let stop = wxpulse_runtime::shutdown::on_signals();
    loop {
        let received = tokio::select! {
            m = consumer.recv() => Some(m),
            _ = tokio::time::sleep(Duration::from_millis(200)) => None,
            _ = stop.cancelled() => break,
        };
        if let Some(message) = received {
            let m = message.context("fan-profile consumer")?;
            last_record = Instant::now();
            if m.offset() + 1 >= ends.get(&m.partition()).copied().unwrap_or(i64::MAX) {
                ends.remove(&m.partition());
            }
            next.insert(m.partition(), m.offset() + 1);
            let key = m
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .unwrap_or("");
            let record = match m.payload() {
                None => None,
                Some(p) => match decode(&registry, p) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        skipped += 1;
                        tracing::warn!(error = %e, offset = m.offset(), "fan profile skipped");
                        continue;
                    }
                },
            };
            let time = m.timestamp().to_millis().unwrap_or(0);
            rows.extend(row(&pii, key, record, time));
        }
        let due = rows.len() >= 10_000 || last_flush.elapsed() >= Duration::from_secs(1);
        if due && !next.is_empty() {
            written += flush(&client, &consumer, topic, &mut rows, &mut next).await?;
            last_flush = Instant::now();
        }
        if once && ends.is_empty() {
            break;
        }
        if once && last_record.elapsed() >= idle {
            anyhow::bail!("no fan-profile record for {idle:?} before the end of the topic");
        }
    }
    written += flush(&client, &consumer, topic, &mut rows, &mut next).await?;
    if skipped > 0 {
        tracing::warn!(skipped, "fan profiles that did not decode were skipped");
    }
    Ok(written)
}

fn decode(registry: &Registry, payload: &[u8]) -> anyhow::Result<FanProfileRecord> {
    match DimensionRecord::from_framed(Dimension::FanProfile, payload, registry) {
        Ok(DimensionRecord::FanProfile(r)) => Ok(r),
        Ok(_) => anyhow::bail!("not a fan profile"),
        Err(why) => anyhow::bail!(why),
    }
}

/// Inserts the rows, then commits the offsets they came from.
async fn flush(
    client: &clickhouse::Client,
    consumer: &StreamConsumer,
    topic: &str,
    rows: &mut Vec<ProfileRow>,
    next: &mut HashMap<i32, i64>,
) -> anyhow::Result<u64> {
    let n = rows.len() as u64;
    if !rows.is_empty() {
        let mut insert = client.insert::<ProfileRow>("fan_profiles").await?;
        for r in rows.iter() {
            insert.write(r).await?;
        }
        insert
            .end()
            .await
            .context("cannot insert into fan_profiles")?;
        rows.clear();
    }
    if !next.is_empty() {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in next.iter() {
            tpl.add_partition_offset(topic, *p, Offset::Offset(*o))?;
        }
        consumer.commit(&tpl, CommitMode::Sync)?;
        next.clear();
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxpulse_runtime::enrich::CustomerStatus;

    #[test]
    fn rows_carry_the_pseudonym_and_tombstones_mark_deletion() {
        let pii = Pseudonymizer::new(b"k");
        let record = FanProfileRecord {
            app_id: "wxa".into(),
            openid: "oRAW".into(),
            status: CustomerStatus::Vip,
            member_tier: None,
            associate_userid: Some("zhang".into()),
            followed_at: Some(5),
            unfollowed_at: None,
            follow_source: Some("ADD_SCENE_SEARCH".into()),
            updated_at: 9,
        };
        let r = row(&pii, "wxa|oRAW", Some(record), 100).expect("row");
        assert_eq!(r.fan_id, pii.fan_id("oRAW"));
        assert_eq!((r.status, r.updated_at, r.is_deleted), ("vip", 9, 0));
        let t = row(&pii, "wxa|oRAW", None, 100).expect("tombstone");
        assert_eq!((t.fan_id, t.updated_at, t.is_deleted), (r.fan_id, 100, 1));
        assert!(row(&pii, "no-separator", None, 1).is_none());
        assert!(!format!("{r:?}{t:?}").contains("oRAW"));
    }
}
