//! Reading the broker's side of the hot-key test: the logs as produced, the rule applied to
//! them independently of wxpulse's code, and the consumer groups' progress.

use super::*;

/// Every record of `topic` as (partition, offset, payload), read from the beginning.
pub(super) fn read_log(brokers: &str, topic: &str) -> anyhow::Result<Vec<(i32, i64, Vec<u8>)>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "e2e-hot-keys-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut end = 0;
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)?;
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        end += high - low;
    }
    consumer.assign(&tpl)?;
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (out.len() as i64) < end {
        anyhow::ensure!(
            Instant::now() < deadline,
            "read {} of {end} records of {topic}",
            out.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m?;
            out.push((
                m.partition(),
                m.offset(),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    out.sort_by_key(|(p, o, _)| (*p, *o));
    Ok(out)
}

/// The event numbers the rule diverts, each partition's records in offset order: a
/// record is diverted when its key already has `MAX_PER_WINDOW` records among the records
/// of its window `[k·WINDOW_RECORDS, (k+1)·WINDOW_RECORDS)` before it (copies count: they
/// are records of the key). A copy of an event already seen is dropped, wherever it goes.
/// Returns (diverted events, kept events per partition).
pub(super) fn rule(
    log: &[(i32, i64, Vec<u8>)],
    events_by_payload: &HashMap<Vec<u8>, (u32, usize)>,
) -> (BTreeSet<u32>, BTreeMap<i32, u64>) {
    let mut counts: HashMap<(i32, i64, usize), u32> = HashMap::new();
    let mut seen = BTreeSet::new();
    let mut diverted = BTreeSet::new();
    let mut kept: BTreeMap<i32, u64> = BTreeMap::new();
    for (partition, offset, payload) in log {
        let (n, fan) = events_by_payload[payload];
        let window = offset.div_euclid(WINDOW_RECORDS);
        let c = counts.entry((*partition, window, fan)).or_insert(0);
        let divert = *c >= MAX_PER_WINDOW;
        *c += 1;
        if !seen.insert(n) {
            continue;
        }
        if divert {
            diverted.insert(n);
        } else {
            *kept.entry(*partition).or_insert(0) += 1;
        }
    }
    (diverted, kept)
}

/// Polls `f` until it returns at least `want` (or `patience` passes); the last value.
pub(super) async fn at_least<F, Fut>(patience: Duration, want: u64, mut f: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let deadline = Instant::now() + patience;
    let mut last = 0;
    while Instant::now() < deadline {
        if let Ok(n) = f().await {
            last = n;
            if n >= want {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    last
}

pub(super) async fn count_where(ch: &clickhouse::Client, filter: &str) -> anyhow::Result<u64> {
    Ok(ch
        .query(&format!("SELECT count() FROM menu_clicks WHERE {filter}"))
        .fetch_one()
        .await?)
}

/// Records of `topic` the consumer group `group` has not committed yet (a partition it
/// never committed counts from its start). Reads the group's offsets without joining it.
pub(super) fn uncommitted(brokers: &str, group: &str, topic: &str) -> anyhow::Result<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    let mut behind = 0;
    for p in 0..PARTITIONS {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        let done = match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(rdkafka::Offset::Offset(next)) => next.max(low),
            _ => low,
        };
        behind += (high - done).max(0);
    }
    Ok(behind)
}

/// Distinct events in `topic`'s log.
pub(super) fn distinct_in(
    stack: &Stack,
    topic: &str,
    events_by_payload: &HashMap<Vec<u8>, (u32, usize)>,
) -> anyhow::Result<u64> {
    let log = read_log(&stack.brokers, topic)?;
    let ids: BTreeSet<u32> = log
        .iter()
        .filter_map(|(_, _, p)| events_by_payload.get(p).map(|(n, _)| *n))
        .collect();
    Ok(ids.len() as u64)
}
