//! Producing wxpulse records: Confluent-framed Avro, keyed by fan, lz4-compressed.

use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use wxpulse_runtime::config::KafkaConfig;
use wxpulse_runtime::kafka;

/// A record ready to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Topic.
    pub topic: &'static str,
    /// Key (`app_id|openid` for events).
    pub key: Vec<u8>,
    /// Framed value; `None` is a tombstone, which deletes the key from a compacted topic.
    pub payload: Option<Vec<u8>>,
    /// Server time the record carries (ms), for paced production; 0 = not an event.
    pub at_ms: i64,
}

/// An idempotent producer with the cluster's settings (`[kafka.client]`, SASL), checked
/// to connect first; lz4 because Tansu's sqlite engine cannot fetch snappy batches.
pub fn producer(cfg: &KafkaConfig) -> anyhow::Result<FutureProducer> {
    kafka::preflight(cfg)?;
    let mut config = kafka::client_config(cfg);
    config
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000");
    Ok(kafka::create(&config, "producer")?)
}

/// Sends every record and waits for all deliveries; fails on the first undelivered one.
pub async fn send_all(
    producer: &FutureProducer,
    records: impl IntoIterator<Item = Outgoing>,
    progress: impl FnMut(usize),
) -> anyhow::Result<usize> {
    send_paced(producer, records, false, progress).await
}

/// Like [`send_all`]; with `paced`, each record waits until the wall clock reaches its
/// `at_ms`, so a live stream's server times are the times the records were produced.
pub async fn send_paced(
    producer: &FutureProducer,
    records: impl IntoIterator<Item = Outgoing>,
    paced: bool,
    mut progress: impl FnMut(usize),
) -> anyhow::Result<usize> {
    let mut pending = std::collections::VecDeque::new();
    let mut sent = 0usize;
    for r in records {
        if paced && r.at_ms > 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            if r.at_ms > now {
                tokio::time::sleep(Duration::from_millis((r.at_ms - now) as u64)).await;
            }
        }
        loop {
            let mut record = FutureRecord::to(r.topic).key(&r.key);
            record.payload = r.payload.as_ref();
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push_back(delivery);
                    break;
                }
                // Local queue full: wait for the oldest delivery, then try again.
                Err((e, _)) if pending.is_empty() => anyhow::bail!("cannot enqueue a record: {e}"),
                Err(_) => confirm_oldest(&mut pending, &mut sent, &mut progress).await?,
            }
        }
        while pending.len() > 50_000 {
            confirm_oldest(&mut pending, &mut sent, &mut progress).await?;
        }
    }
    while !pending.is_empty() {
        confirm_oldest(&mut pending, &mut sent, &mut progress).await?;
    }
    producer.flush(Duration::from_secs(30)).context("flush")?;
    Ok(sent)
}

/// Awaits the oldest pending delivery; an undelivered record fails the whole send.
async fn confirm_oldest(
    pending: &mut std::collections::VecDeque<rdkafka::producer::DeliveryFuture>,
    sent: &mut usize,
    progress: &mut impl FnMut(usize),
) -> anyhow::Result<()> {
    if let Some(oldest) = pending.pop_front() {
        oldest
            .await
            .context("producer dropped")?
            .map_err(|(e, _)| e)?;
        *sent += 1;
        progress(*sent);
    }
    Ok(())
}
