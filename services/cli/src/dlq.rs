//! `wxpulse dlq list|replay`: what was dead-lettered, and sending it back after a fix.
//!
//! The dead-letter topic is read from the beginning by a group-less consumer. A record can
//! be dead-lettered twice when its partition was redelivered before the consumer committed;
//! the envelope's (source topic, partition, offset) identifies it, so both commands count
//! and replay each source record once.
//!
//! A replay is idempotent: each source record sent back is recorded in ClickHouse
//! (`dlq_replays`) after its delivery, and later replays skip what is recorded, so running
//! the same replay twice writes no event twice (a replayed event usually has an old server
//! time, which the consumers' event-id window would not recognise).
//!
//! Envelopes of every schema version are read. A v2 envelope may hold only the first bytes
//! of an oversized record (`payload_truncated`); replay refuses those, since sending the
//! prefix would produce a broken event, and says where the whole record is. A v3 envelope
//! is sealed (the record's key and value encrypted, no readable PII in the topic):
//! [`open`] opens it with the services' `pii.key`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clickhouse::Row;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use wxpulse_runtime::config::{ClickHouseConfig, KafkaConfig};
use wxpulse_runtime::dlq::{self as envelope, DeadLetterReason, Envelope};
use wxpulse_runtime::pii::{letter_origin, Sealer};
use wxpulse_runtime::{kafka, sink};

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
    /// Raw value: whole, or its first bytes when `payload_truncated`.
    pub payload: Vec<u8>,
    /// Length of the whole original value.
    pub payload_length: u64,
    /// Hex SHA-256 of the whole original value (computed here for v1 envelopes, which
    /// always hold it whole).
    pub payload_sha256: String,
    /// Whether `payload` is only a prefix; such a letter is never replayed.
    pub payload_truncated: bool,
    /// Whether `payload` still holds the sealed key and value (v3): see [`open`].
    pub sealed: bool,
}

impl Letter {
    /// A callback body the gateway refused (source `gateway:<path>`): not an event, so
    /// never replayed; it is kept to be read (`dlq list --show`) and fixed at the sender.
    pub fn is_callback(&self) -> bool {
        self.source_topic.starts_with("gateway:")
    }

    /// Why this letter cannot be replayed, if it cannot.
    pub fn unreplayable(&self) -> Option<String> {
        if self.sealed && !self.payload_truncated {
            return Some(format!(
                "{}:{}@{} ({}): refused, the dead letter is sealed and was not opened: run \
                 with the services' pii.key (WXPULSE__PII__KEY or pii.key_file)",
                self.source_topic,
                self.source_partition,
                self.source_offset,
                self.reason.as_str(),
            ));
        }
        self.payload_truncated.then(|| {
            format!(
                "{}:{}@{} ({}): refused, the dead letter holds only the first {} of {} bytes \
                 (sha256 {}); replaying them would produce a broken event. The whole record \
                 is in {} partition {} at offset {} until the topic's retention.",
                self.source_topic,
                self.source_partition,
                self.source_offset,
                self.reason.as_str(),
                self.payload.len(),
                self.payload_length,
                self.payload_sha256,
                self.source_topic,
                self.source_partition,
                self.source_offset,
            )
        })
    }

    fn from_envelope(d: &Envelope<'_>) -> Self {
        let payload_sha256 = if d.payload_sha256.is_empty() {
            envelope::sha256_hex(d.payload)
        } else {
            d.payload_sha256.to_string()
        };
        Letter {
            reason: d.reason,
            detail: d.detail.to_string(),
            source_topic: d.source_topic.to_string(),
            source_partition: d.source_partition,
            source_offset: d.source_offset,
            source_key: d.source_key.map(<[u8]>::to_vec),
            service: d.service.to_string(),
            first_seen: d.first_seen,
            payload: d.payload.to_vec(),
            payload_length: d.original_length(),
            payload_sha256,
            payload_truncated: d.payload_truncated,
            sealed: d.sealed,
        }
    }
}

/// Opens the sealed letters among `letters` with the services' `pii.key`, so their key and
/// value can be shown and replayed. A whole letter that does not open means another key
/// (or an altered letter) and is an error naming it; a truncated one that does not open was
/// cut after sealing and stays sealed (it is never replayed anyway).
pub fn open(letters: Vec<Letter>, sealer: &Sealer) -> anyhow::Result<Vec<Letter>> {
    letters
        .into_iter()
        .map(|mut l| {
            if !l.sealed {
                return Ok(l);
            }
            let origin = letter_origin(&l.source_topic, l.source_partition, l.source_offset);
            match sealer.open(&l.payload, &origin) {
                Ok((key, value)) => {
                    l.source_key = key;
                    l.payload = value;
                    l.sealed = false;
                    Ok(l)
                }
                Err(_) if l.payload_truncated => Ok(l),
                Err(e) => Err(anyhow::Error::new(e).context(format!(
                    "dead letter {}:{}@{} (is pii.key the services' key?)",
                    l.source_topic, l.source_partition, l.source_offset
                ))),
            }
        })
        .collect()
}

/// Decodes one record of the dead-letter topic (v1 or v2 envelope).
pub fn decode(value: &[u8]) -> Option<Letter> {
    Envelope::decode(value)
        .ok()
        .map(|d| Letter::from_envelope(&d))
}

/// Reads every dead letter now in `topic`, once per source record: each partition from its
/// start to the end it had when the read began. `patience` is how long the broker may send
/// nothing while some partition is short of that end; past it the read fails rather than
/// return part of the topic (it used to stop at the first quiet `patience`, so a slow
/// broker made `dlq list` show no letters and `dlq replay` replay fewer).
pub fn read_all(
    kafka: &KafkaConfig,
    topic: &str,
    patience: Duration,
) -> anyhow::Result<Vec<Letter>> {
    kafka::preflight(kafka)?;
    let consumer: BaseConsumer = kafka::create(
        &kafka::consumer_config(kafka, "wxpulse-dlq-reader"),
        "dead-letter reader",
    )?;
    let partitions = partitions_of(&consumer, topic, patience)?;
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    let mut marks = Vec::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .with_context(|| format!("cannot read the end of {topic} partition {p}"))?;
        marks.push(format!("{p}: {low}..{high}"));
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
    }
    let mut letters = Vec::new();
    if ends.is_empty() {
        // Said on stderr: an empty answer must be told apart from a read that went wrong.
        eprintln!("{topic} holds no records (partition: first..end offset {marks:?})");
        return Ok(letters);
    }
    consumer.assign(&tpl).context("cannot assign partitions")?;
    let mut seen = HashSet::new();
    let mut last = Instant::now();
    while !ends.is_empty() {
        if last.elapsed() >= patience {
            let mut short: Vec<i32> = ends.keys().copied().collect();
            short.sort_unstable();
            bail!(
                "{topic} was not read to its end: nothing came for {patience:?} while partitions {short:?} were short of it"
            );
        }
        let polled = consumer.poll(Duration::from_millis(100));
        // The position (next offset to read) tells when a partition is done: it passes the
        // end both after its last record and over markers never delivered as records.
        if let Ok(positions) = consumer.position() {
            for e in positions.elements() {
                if let (Offset::Offset(at), Some(end)) = (e.offset(), ends.get(&e.partition())) {
                    if at >= *end {
                        ends.remove(&e.partition());
                    }
                }
            }
        }
        let Some(message) = polled else {
            continue;
        };
        let message = message.context("consumer error")?;
        last = Instant::now();
        let Some(payload) = message.payload() else {
            continue;
        };
        let Some(letter) = decode(payload) else {
            continue;
        };
        if !seen.insert((
            letter.source_topic.clone(),
            letter.source_partition,
            letter.source_offset,
        )) {
            continue;
        }
        letters.push(letter);
    }
    Ok(letters)
}

/// The partitions of `topic`. A broker may answer a topic's metadata with an error (a
/// leader being elected, a loaded broker) and no partitions: that is asked again until
/// `patience` ends, then an error — never read as "no dead letters".
fn partitions_of(
    consumer: &BaseConsumer,
    topic: &str,
    patience: Duration,
) -> anyhow::Result<Vec<i32>> {
    let started = Instant::now();
    loop {
        let problem = match kafka::topic_partitions(consumer, topic) {
            Ok(partitions) if !partitions.is_empty() => return Ok(partitions),
            Ok(_) => "the broker lists no partitions".to_string(),
            Err(e) => format!("the broker answers {e}"),
        };
        if started.elapsed() >= patience {
            bail!("cannot read {topic}: {problem} (does the topic exist? `wxpulse topics create`)");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
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

/// What a replay did.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Records sent back to their source topics.
    pub sent: usize,
    /// One message per matching letter that was not sent (truncated payload).
    pub refused: Vec<String>,
    /// Matching letters skipped because an earlier replay already sent them.
    pub already: usize,
    /// Matching letters skipped because they are callbacks the gateway refused.
    pub callbacks: usize,
}

/// A source record a replay sent, as `dlq_replays` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Row, Serialize, Deserialize)]
struct ReplayedSource {
    source_topic: String,
    source_partition: i32,
    source_offset: i64,
}

#[derive(Row, Serialize)]
struct ReplayRow<'a> {
    source_topic: &'a str,
    source_partition: i32,
    source_offset: i64,
    reason: &'a str,
}

fn source_of(l: &Letter) -> ReplayedSource {
    ReplayedSource {
        source_topic: l.source_topic.clone(),
        source_partition: l.source_partition,
        source_offset: l.source_offset,
    }
}

/// Re-produces the matching letters' payloads to their source topics, once: letters an
/// earlier replay sent are skipped (unless `force`), letters whose payload is truncated
/// are refused, each with its reason. Sent ones are recorded in `dlq_replays` after their
/// delivery; a crash in between can send those again, and only those.
pub async fn replay(
    kafka: &KafkaConfig,
    ch: &ClickHouseConfig,
    letters: &[Letter],
    reason: Option<DeadLetterReason>,
    since_ms: Option<i64>,
    force: bool,
) -> anyhow::Result<Replayed> {
    let client = sink::client(ch)?;
    let done: HashSet<ReplayedSource> = if force {
        HashSet::new()
    } else {
        client
            .query("SELECT source_topic, source_partition, source_offset FROM dlq_replays FINAL")
            .fetch_all::<ReplayedSource>()
            .await
            .context("cannot read dlq_replays (run `wxpulse migrate`)")?
            .into_iter()
            .collect()
    };
    let matching = |l: &&Letter| {
        reason.is_none_or(|r| r == l.reason) && since_ms.is_none_or(|t| l.first_seen >= t)
    };
    let callbacks = letters
        .iter()
        .filter(|l| l.is_callback())
        .filter(matching)
        .count();
    let mut seen = HashSet::new();
    let (fresh, already): (Vec<&Letter>, Vec<&Letter>) = letters
        .iter()
        .filter(|l| !l.is_callback())
        .filter(|l| seen.insert(source_of(l)))
        .partition(|l| !done.contains(&source_of(l)));
    let fresh: Vec<Letter> = fresh.into_iter().cloned().collect();
    let (chosen, refused) = choose(&fresh, reason, since_ms);
    let sent_letters: Vec<&Letter> = fresh
        .iter()
        .filter(|l| reason.is_none_or(|r| r == l.reason))
        .filter(|l| since_ms.is_none_or(|t| l.first_seen >= t))
        .filter(|l| l.unreplayable().is_none())
        .collect();
    let already = already
        .iter()
        .filter(|l| reason.is_none_or(|r| r == l.reason))
        .filter(|l| since_ms.is_none_or(|t| l.first_seen >= t))
        .count();
    let producer = produce::producer(kafka)?;
    let sent = produce::send_all(&producer, chosen, |_| {}).await?;
    if !sent_letters.is_empty() {
        let mut insert = client
            .insert::<ReplayRow<'_>>("dlq_replays")
            .await
            .context("cannot record the replay")?;
        for l in &sent_letters {
            insert
                .write(&ReplayRow {
                    source_topic: &l.source_topic,
                    source_partition: l.source_partition,
                    source_offset: l.source_offset,
                    reason: l.reason.as_str(),
                })
                .await?;
        }
        insert.end().await.context("cannot record the replay")?;
    }
    Ok(Replayed {
        sent,
        refused,
        already,
        callbacks,
    })
}

/// The records a replay sends, and a refusal for each matching letter it must not send.
pub fn choose(
    letters: &[Letter],
    reason: Option<DeadLetterReason>,
    since_ms: Option<i64>,
) -> (Vec<Outgoing>, Vec<String>) {
    let mut refused = Vec::new();
    let chosen = letters
        .iter()
        .filter(|l| !l.is_callback())
        .filter(|l| reason.is_none_or(|r| r == l.reason))
        .filter(|l| since_ms.is_none_or(|t| l.first_seen >= t))
        .filter(|l| match l.unreplayable() {
            Some(why) => {
                refused.push(why);
                false
            }
            None => true,
        })
        .map(|l| Outgoing {
            topic: Box::leak(l.source_topic.clone().into_boxed_str()),
            key: l.source_key.clone().unwrap_or_default(),
            payload: Some(l.payload.clone()),
            at_ms: 0,
        })
        .collect();
    (chosen, refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxpulse_runtime::dlq::{DeadLetter, Limits, DEFAULT_MESSAGE_MAX_BYTES};

    fn letter(reason: DeadLetterReason, offset: i64, payload: &[u8]) -> Letter {
        let fitted = DeadLetter {
            reason,
            detail: "d",
            source_topic: "wxpulse.menu_clicks",
            source_partition: 0,
            source_offset: offset,
            source_key: Some(b"wxa|o1"),
            service: "menu-clicks",
            first_seen: 1_700_000_000_000,
            payload,
        }
        .fit(&Limits {
            max_message_bytes: DEFAULT_MESSAGE_MAX_BYTES,
            truncate_to: 8192,
        });
        decode(&fitted.value).expect("decodes")
    }

    fn sealed(sealer: &Sealer, reason: DeadLetterReason, offset: i64, payload: &[u8]) -> Letter {
        let fitted = DeadLetter {
            reason,
            detail: "d",
            source_topic: "wxpulse.chat_messages",
            source_partition: 2,
            source_offset: offset,
            source_key: Some(b"wxa|oSECRET"),
            service: "chat-messages",
            first_seen: 1_700_000_000_000,
            payload,
        }
        .fit_sealed(
            &Limits {
                max_message_bytes: DEFAULT_MESSAGE_MAX_BYTES,
                truncate_to: 8192,
            },
            sealer,
        );
        let bytes = String::from_utf8_lossy(&fitted.value).into_owned()
            + &String::from_utf8_lossy(fitted.key.as_deref().unwrap_or_default());
        assert!(
            !bytes.contains("oSECRET") && !bytes.contains("private words"),
            "PII in the dead letter's bytes: {bytes}"
        );
        decode(&fitted.value).expect("decodes")
    }

    #[test]
    fn sealed_letters_replay_only_once_opened_with_the_services_key() {
        let sealer = Sealer::new(b"the-services-pii-key");
        let text = b"private words from oSECRET".to_vec();
        let big = vec![7u8; 100_000];
        let letters = vec![
            sealed(&sealer, DeadLetterReason::TooOld, 1, &text),
            sealed(&sealer, DeadLetterReason::Oversized, 2, &big),
        ];
        assert!(letters.iter().all(|l| l.sealed && l.source_key.is_none()));
        // Not opened: nothing is sent, each refusal says why.
        let (sent, refused) = choose(&letters, None, None);
        assert!(sent.is_empty());
        assert!(refused[0].contains("sealed"), "{refused:?}");
        // Another key: an error naming the letter.
        let wrong = open(letters.clone(), &Sealer::new(b"another-key-0000000"))
            .expect_err("another key does not open it");
        assert!(
            format!("{wrong:#}").contains("wxpulse.chat_messages:2@1"),
            "{wrong:#}"
        );
        // The services' key: key and value back, the truncated one as its prefix.
        let opened = open(letters, &sealer).expect("opens");
        assert_eq!(opened[0].source_key.as_deref(), Some(&b"wxa|oSECRET"[..]));
        assert_eq!(opened[0].payload, text);
        assert!(opened[1].payload_truncated && !opened[1].sealed);
        assert_eq!(opened[1].payload, big[..8192]);
        assert_eq!(opened[1].payload_length, 100_000);
        let (sent, refused) = choose(&opened, None, None);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].key, b"wxa|oSECRET");
        assert_eq!(sent[0].payload.as_deref(), Some(&text[..]));
        assert_eq!(refused.len(), 1, "the truncated one is still refused");
    }

    #[test]
    fn replay_refuses_truncated_letters_and_sends_the_rest() {
        let big = vec![7u8; 100_000];
        let letters = [
            letter(DeadLetterReason::Oversized, 1, &big),
            letter(DeadLetterReason::TooOld, 2, b"whole"),
        ];
        assert!(letters[0].payload_truncated);
        assert_eq!(letters[0].payload.len(), 8192);
        assert_eq!(letters[0].payload_length, 100_000);
        assert_eq!(letters[0].payload_sha256, envelope::sha256_hex(&big));
        let (sent, refused) = choose(&letters, None, None);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].payload.as_deref(), Some(&b"whole"[..]));
        assert_eq!(sent[0].key, b"wxa|o1");
        assert_eq!(refused.len(), 1);
        assert!(
            refused[0].contains("wxpulse.menu_clicks:0@1")
                && refused[0].contains("first 8192 of 100000 bytes")
                && refused[0].contains("refused"),
            "{}",
            refused[0]
        );
        let (sent, refused) = choose(&letters, Some(DeadLetterReason::Oversized), None);
        assert!(sent.is_empty());
        assert_eq!(refused.len(), 1);
    }

    #[test]
    fn callbacks_the_gateway_refused_are_never_replayed() {
        let mut callback = letter(DeadLetterReason::Undecodable, 3, b"<xml>broken");
        callback.source_topic = "gateway:/wechat/wxa".into();
        let letters = [callback, letter(DeadLetterReason::Undecodable, 4, b"event")];
        assert!(letters[0].is_callback() && !letters[1].is_callback());
        let (sent, refused) = choose(&letters, Some(DeadLetterReason::Undecodable), None);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].topic, "wxpulse.menu_clicks");
        assert!(refused.is_empty(), "{refused:?}");
    }
}
