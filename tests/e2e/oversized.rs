//! One oversized record must not stall the service. A 1 MB record —
//! legal for the broker, far above `validation.max_payload_bytes` (64 KiB), and too large
//! for a dead-letter envelope that embeds it whole (librdkafka's `message.max.bytes` is
//! 1,000,000) — among valid events on one partition, valid events on the others. Every
//! valid event must land exactly once, the big record must be in the dead-letter topic
//! (truncated, with its length and SHA-256), and its partition must commit.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sha2::Digest;
use wxpulse_cli::dlq;
use wxpulse_e2e::*;
use wxpulse_runtime::dlq::DeadLetterReason;
use wxpulse_runtime::events::{MenuClick, MenuEvent};

const DB: &str = "wx_oversized";
const TOPIC: &str = "wxpulse.menu_clicks";
const PARTITIONS: i32 = 3;
/// Valid events per partition; on partition 0 the big record comes after the first third.
const PER_PARTITION: u32 = 60;
/// The big record's size: librdkafka's default `message.max.bytes` exactly, so its v1
/// envelope (payload + ~100 bytes of metadata) cannot be produced.
const BIG: usize = 1_000_000;
/// `kafka.dead_letter_truncate_bytes` default.
const PREFIX: usize = 8192;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// A valid menu click (its key and framed value), or, with `pad`, one whose `event_key`
/// makes the value exactly `pad` bytes.
fn click(n: u32, pad: Option<usize>) -> (Vec<u8>, Vec<u8>) {
    let event_id = format!("00000000-0000-4000-8000-{n:012x}");
    let openid = format!("oBIG_{n:05}");
    let server_time = now_ms() - 3_600_000 + i64::from(n) * 1_000;
    let encode = |event_key: &str| {
        let e = MenuClick {
            event_id: &event_id,
            app_id: "wxbig01",
            openid: &openid,
            unionid: None,
            client_time: server_time - 300,
            server_time,
            event: MenuEvent::Click,
            event_key,
            menu_id: None,
        };
        encode_event(TOPIC, Some(1), &e)
    };
    let mut value = encode("BUTTON_1");
    if let Some(size) = pad {
        // Letters that do not repeat, so nothing along the way gets to compress them away.
        let mut x = 0x2545_F491_4F6C_DD1D_u64;
        let mut key: String = (0..size - value.len())
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect();
        value = encode(&key);
        // Short by the replaced key, long by the longer varint length: adjust to size.
        while value.len() != size {
            if value.len() > size {
                key.pop();
            } else {
                key.push('z');
            }
            value = encode(&key);
        }
    }
    (format!("wxbig01|{openid}").into_bytes(), value)
}

/// A producer that takes the big record (librdkafka refuses messages over its own
/// `message.max.bytes`, 1,000,000 by default, before they reach the broker).
fn big_producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.max.bytes", "4000000")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()?)
}

fn hex_sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The consumer group's committed offset per partition (-1 when none).
fn committed(brokers: &str) -> anyhow::Result<Vec<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "wxpulse-menu-clicks")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    let offsets = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok((0..PARTITIONS)
        .map(
            |p| match offsets.find_partition(TOPIC, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            },
        )
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_test_a_1mb_record_is_dead_lettered_truncated_and_its_partition_commits(
) -> anyhow::Result<()> {
    let stack = Stack::start("oversized")?;
    stack.prepare(DB, PARTITIONS).await?;
    let producer = big_producer(&stack.brokers)?;
    let (big_key, big) = click(1_000_000, Some(BIG));
    let mut big_offset = -1;
    let mut n = 0;
    // One record at a time, so each partition's order is exactly the one written here.
    for partition in 0..PARTITIONS {
        for i in 0..PER_PARTITION {
            if partition == 0 && i == PER_PARTITION / 3 {
                let record = FutureRecord::to(TOPIC)
                    .partition(0)
                    .key(&big_key)
                    .payload(&big);
                let delivered = producer.send(record, Duration::from_secs(30)).await;
                let delivery = delivered.map_err(|(e, _)| {
                    anyhow::anyhow!("the broker refused a {BIG}-byte record: {e}")
                })?;
                assert_eq!(delivery.partition, 0);
                big_offset = delivery.offset;
            }
            n += 1;
            let (key, value) = click(n, None);
            let record = FutureRecord::to(TOPIC)
                .partition(partition)
                .key(&key)
                .payload(&value);
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
        }
    }
    let valid = u64::from(PARTITIONS as u32 * PER_PARTITION);
    let service = Service::start("wxpulse-menu-clicks", &stack, DB, &[])?;

    // Every valid event exactly once, on every partition, the big one's included.
    let ch = stack.client(DB);
    let rows = wait_for(Duration::from_secs(90), valid, || count(&ch, "menu_clicks")).await;
    assert_eq!(
        rows, valid,
        "menu_clicks rows vs valid events produced (a stalled partition writes none)"
    );
    let distinct: u64 = ch
        .query("SELECT uniqExact(event_id) FROM menu_clicks")
        .fetch_one()
        .await?;
    assert_eq!(distinct, valid, "distinct event ids");
    let per_partition: Vec<(i32, u64)> = ch
        .query("SELECT kafka_partition, count() FROM menu_clicks GROUP BY 1 ORDER BY 1")
        .fetch_all()
        .await?;
    assert_eq!(
        per_partition,
        (0..PARTITIONS)
            .map(|p| (p, u64::from(PER_PARTITION)))
            .collect::<Vec<_>>()
    );

    // The big record is a dead letter: reason, truncated, whole length and hash.
    let deadline = Instant::now() + Duration::from_secs(30);
    let letter = loop {
        let letters = dlq::read_all(
            &stack.kafka(),
            "wxpulse.dead_letters",
            Duration::from_secs(2),
        )?;
        if let Some(l) = letters
            .into_iter()
            .find(|l| l.source_partition == 0 && l.source_offset == big_offset)
        {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "the big record (0@{big_offset}) is not in the dead-letter topic"
        );
    };
    // Sealed: neither the record's key nor a byte of its value is readable in the topic;
    // the services' PII key opens it.
    assert!(
        letter.sealed && letter.source_key.is_none(),
        "the letter is sealed"
    );
    assert!(
        !letter.payload.windows(PREFIX).any(|w| w == &big[..PREFIX]),
        "the raw prefix is not in the letter"
    );
    let letter = dlq::open(
        vec![letter],
        &wxpulse_runtime::pii::Sealer::new(TEST_PII_KEY.as_bytes()),
    )?
    .remove(0);
    assert_eq!(letter.reason, DeadLetterReason::Oversized);
    assert_eq!(letter.source_topic, TOPIC);
    assert_eq!(letter.source_key.as_deref(), Some(&big_key[..]));
    assert!(letter.payload_truncated, "the envelope holds a prefix");
    assert_eq!(letter.payload_length, BIG as u64);
    assert_eq!(letter.payload_sha256, hex_sha256(&big));
    assert_eq!(
        letter.payload,
        big[..PREFIX],
        "the first 8 KiB, byte for byte"
    );
    assert!(letter.unreplayable().is_some(), "replay refuses it");

    // The partition committed past the big record, like the others.
    let want: Vec<i64> = (0..PARTITIONS)
        .map(|p| i64::from(PER_PARTITION) + i64::from(p == 0))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut offsets = committed(&stack.brokers)?;
    while offsets != want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        offsets = committed(&stack.brokers)?;
    }
    assert_eq!(offsets, want, "committed offsets per partition");

    // And the service says it is well: nothing stuck, nothing undeliverable, lag exported.
    let text = service.scrape()?;
    assert_eq!(
        metric(&text, "wxpulse_dlq_events_total", &["reason=\"oversized\""]),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "wxpulse_dlq_undeliverable_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "wxpulse_pipeline_flush_stuck_partitions", &[]),
        Some(0.0)
    );
    for p in 0..PARTITIONS {
        assert!(
            metric(
                &text,
                "wxpulse_source_consumer_lag_events",
                &[&format!("partition=\"{p}\"")]
            )
            .is_some(),
            "lag of partition {p} is exported:\n{text}"
        );
    }
    assert_eq!(http_get(&service.metrics, "/readyz")?, "ready\n");
    Ok(())
}
