use super::letter::{opt_bytes, serde_bytes_borrowed};
use super::limits::RECORD_OVERHEAD;
use super::*;
use crate::codec::{self, DecodeError};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pii::{letter_origin, Sealer};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const LIMITS: Limits = Limits {
    max_message_bytes: DEFAULT_MESSAGE_MAX_BYTES,
    truncate_to: 8192,
};

fn letter<'a>(reason: DeadLetterReason, key: &'a [u8], payload: &'a [u8]) -> DeadLetter<'a> {
    DeadLetter {
        reason,
        detail: "arrived 9 days late",
        source_topic: "wxpulse.menu_clicks",
        source_partition: 3,
        source_offset: 12345,
        source_key: Some(key),
        service: "menu-clicks",
        first_seen: 1_700_000_000_000,
        payload,
    }
}

/// A payload that does not compress or repeat, like a real one.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn envelope_round_trips_with_raw_bytes_length_and_hash() {
    let payload = [0, 0, 0, 0, 1, 0xff, 0x00];
    let fitted = letter(DeadLetterReason::TooOld, b"wxa|o1", &payload).fit(&LIMITS);
    assert!(!fitted.truncated);
    assert_eq!(fitted.key.as_deref(), Some(&b"wxa|o1"[..]));
    let (id, _) = codec::split_frame(&fitted.value).expect("framed");
    assert_eq!(id, 10, "written with v4");
    let back = Envelope::decode(&fitted.value).expect("decodes");
    assert_eq!(back.reason, DeadLetterReason::TooOld);
    assert_eq!(back.source_key, Some(&b"wxa|o1"[..]));
    assert_eq!((back.source_partition, back.source_offset), (3, 12345));
    assert_eq!(back.payload, &payload[..]);
    assert_eq!(back.payload_length, 7);
    assert_eq!(back.payload_sha256, sha256_hex(&payload));
    assert!(!back.payload_truncated);
}

#[test]
fn a_1mb_oversized_record_becomes_a_small_truncated_envelope() {
    let payload = noise(1_048_576);
    let fitted = letter(DeadLetterReason::Oversized, b"wxa|o1", &payload).fit(&LIMITS);
    assert!(fitted.truncated);
    assert!(
        fitted.value.len() + 6 < 1_000_000,
        "{} bytes",
        fitted.value.len()
    );
    let back = Envelope::decode(&fitted.value).expect("decodes");
    assert_eq!(back.reason, DeadLetterReason::Oversized);
    assert_eq!(
        back.payload,
        &payload[..8192],
        "the first 8 KiB, byte for byte"
    );
    assert_eq!(back.payload_length, 1_048_576);
    assert_eq!(back.original_length(), 1_048_576);
    assert_eq!(back.payload_sha256, sha256_hex(&payload));
    assert_eq!(back.payload_sha256.len(), 64);
    assert!(back.payload_truncated);
}

#[test]
fn any_envelope_too_large_for_the_producer_is_cut_to_fit() {
    // Not oversized by validation (say the limit was raised), but larger than the
    // producer takes: the envelope is cut to the prefix anyway.
    let payload = noise(999_990);
    let fitted = letter(DeadLetterReason::Undecodable, b"wxa|o1", &payload).fit(&LIMITS);
    assert!(fitted.truncated);
    assert!(fitted.value.len() + 6 <= LIMITS.max_message_bytes - RECORD_OVERHEAD);
    let back = Envelope::decode(&fitted.value).expect("decodes");
    assert_eq!(back.payload, &payload[..8192]);
    assert_eq!(back.original_length(), 999_990);

    // A record that fits is kept whole, whatever its size, so it can be replayed.
    let payload = noise(500_000);
    let fitted = letter(DeadLetterReason::Undecodable, b"k", &payload).fit(&LIMITS);
    assert!(!fitted.truncated);
    assert_eq!(
        Envelope::decode(&fitted.value).expect("decodes").payload,
        &payload[..]
    );
}

#[test]
fn a_huge_key_or_small_producer_limit_still_fits() {
    let key = noise(900_000);
    let payload = noise(20_000);
    for max in [1_000, 10_000, 100_000, DEFAULT_MESSAGE_MAX_BYTES] {
        let limits = Limits {
            max_message_bytes: max,
            truncate_to: 8192,
        };
        for reason in [DeadLetterReason::Oversized, DeadLetterReason::TooOld] {
            for key in [&key[..], b"wxa|o1"] {
                let fitted = letter(reason, key, &payload).fit(&limits);
                let size = fitted.value.len() + fitted.key.as_ref().map_or(0, Vec::len);
                assert!(size + RECORD_OVERHEAD <= max, "{max}: {size} bytes");
                let back = Envelope::decode(&fitted.value).expect("decodes");
                assert_eq!(back.original_length(), 20_000);
                assert_eq!(back.payload, &payload[..back.payload.len()]);
                assert_eq!(back.payload_truncated, fitted.truncated);
            }
        }
    }
    let fitted = letter(DeadLetterReason::TooOld, &key, &payload).fit(&LIMITS);
    assert!(
        fitted.truncated && fitted.key.is_none(),
        "a cut key is not a key"
    );
}

#[test]
fn a_sealed_letter_keeps_no_readable_key_or_value_and_fits_like_any_other() {
    let sealer = Sealer::new(b"the-services-pii-key");
    let text = b"a chat message from oSECRET";
    let fitted =
        letter(DeadLetterReason::TooOld, b"wxa|oSECRET", text).fit_sealed(&LIMITS, &sealer);
    let key = fitted.key.clone().expect("keyed");
    assert_eq!(
        key,
        sealer.pseudonymous_key(b"wxa|oSECRET"),
        "one fan, one key"
    );
    let bytes = [&fitted.value[..], &key[..]].concat();
    assert!(
        !bytes.windows(7).any(|w| w == b"oSECRET"),
        "no raw openid in the letter's bytes"
    );
    let back = Envelope::decode(&fitted.value).expect("decodes");
    assert!(back.sealed && !back.payload_truncated && back.source_key.is_none());
    assert_eq!(
        back.payload_sha256,
        sha256_hex(text),
        "the hash of the raw value"
    );
    let origin = letter_origin(back.source_topic, back.source_partition, back.source_offset);
    let (k, v) = sealer.open(back.payload, &origin).expect("opens");
    assert_eq!(
        (k.as_deref(), &v[..]),
        (Some(&b"wxa|oSECRET"[..]), &text[..])
    );

    // Sizes: an oversized record keeps an openable 8 KiB prefix; a large one that fits is
    // whole; any limit is kept, as unsealed.
    let payload = noise(1_048_576);
    let fitted = letter(DeadLetterReason::Oversized, b"k", &payload).fit_sealed(&LIMITS, &sealer);
    let back = Envelope::decode(&fitted.value).expect("decodes");
    assert!(back.payload_truncated && fitted.truncated);
    let (_, v) = sealer.open(back.payload, &origin).expect("opens");
    assert_eq!(v, payload[..8192]);
    let payload = noise(500_000);
    let fitted = letter(DeadLetterReason::Undecodable, b"k", &payload).fit_sealed(&LIMITS, &sealer);
    let back = Envelope::decode(&fitted.value).expect("decodes");
    assert!(!back.payload_truncated);
    assert_eq!(
        sealer.open(back.payload, &origin).expect("opens").1,
        payload
    );
    let payload = noise(999_990);
    for max in [1_000, 10_000, 100_000, DEFAULT_MESSAGE_MAX_BYTES] {
        let limits = Limits {
            max_message_bytes: max,
            truncate_to: 8192,
        };
        for reason in [DeadLetterReason::Oversized, DeadLetterReason::TooOld] {
            let fitted = letter(reason, b"wxa|o1", &payload).fit_sealed(&limits, &sealer);
            let size = fitted.value.len() + fitted.key.as_ref().map_or(0, Vec::len);
            assert!(size + RECORD_OVERHEAD <= max, "{max}: {size} bytes");
            let back = Envelope::decode(&fitted.value).expect("decodes");
            let (_, v) = sealer
                .open(back.payload, &origin)
                .expect("what is kept opens");
            assert_eq!(v, payload[..v.len()]);
        }
    }
}

#[test]
fn v1_envelopes_still_decode() {
    let v1 = codec::EMBEDDED
        .iter()
        .find(|s| s.subject == SUBJECT && s.version == 1)
        .expect("v1 embedded");
    assert_eq!(v1.id, 7);
    // What a service of the previous release wrote: the v1 fields only.
    #[derive(Serialize)]
    struct V1<'a> {
        reason: DeadLetterReason,
        detail: &'a str,
        source_topic: &'a str,
        source_partition: i32,
        source_offset: i64,
        #[serde(with = "opt_bytes")]
        source_key: Option<&'a [u8]>,
        service: &'a str,
        first_seen: i64,
        #[serde(with = "serde_bytes_borrowed")]
        payload: &'a [u8],
    }
    let old = V1 {
        reason: DeadLetterReason::UnknownSchema,
        detail: "schema id 99",
        source_topic: "wxpulse.qr_scans",
        source_partition: 1,
        source_offset: 77,
        source_key: None,
        service: "qr-scans",
        first_seen: 1_700_000_000_000,
        payload: &[0, 0, 0, 0, 99, 1, 2],
    };
    let mut framed = Vec::new();
    codec::encode_into(
        &old,
        v1.id,
        &codec::parse(v1.json).expect("parses"),
        &mut framed,
    )
    .expect("encodes");
    let back = Envelope::decode(&framed).expect("v1 decodes");
    assert_eq!(back.reason, DeadLetterReason::UnknownSchema);
    assert_eq!(back.payload, old.payload);
    assert_eq!(back.payload_length, -1);
    assert_eq!(back.original_length(), 7);
    assert_eq!(back.payload_sha256, "");
    assert!(!back.payload_truncated);
    assert!(matches!(
        Envelope::decode(&[0, 0, 0, 0, 1, 2]),
        Err(DecodeError::UnknownSchema(1))
    ));
}

#[test]
fn produce_errors_are_classified() {
    use RDKafkaErrorCode as C;
    let class = |c| classify(&KafkaError::MessageProduction(c));
    for c in [C::MessageSizeTooLarge, C::MessageBatchTooLarge] {
        assert_eq!(class(c), Failure::TooLarge, "{c:?}");
    }
    for c in [
        C::InvalidMessage,
        C::InvalidMessageSize,
        C::InvalidRecord,
        C::InvalidTimestamp,
        C::UnsupportedForMessageFormat,
        C::BadMessage,
        C::BadCompression,
    ] {
        assert_eq!(class(c), Failure::Permanent, "{c:?}");
    }
    for c in [
        C::QueueFull,
        C::MessageTimedOut,
        C::AllBrokersDown,
        C::BrokerTransportFailure,
        C::NotLeaderForPartition,
        C::LeaderNotAvailable,
        C::RequestTimedOut,
        C::NotEnoughReplicas,
        C::UnknownTopicOrPartition,
        C::UnknownTopic,
        C::TopicAuthorizationFailed,
        C::InvalidDifferentRecord,
    ] {
        assert_eq!(class(c), Failure::Transient, "{c:?}");
    }
    assert_eq!(classify(&KafkaError::Canceled), Failure::Transient);
}

fn sink(client: &ClientConfig, limits: Limits) -> (DeadLetterSink, Arc<Metrics>) {
    let cfg = Config::load(None, Vec::new()).expect("defaults");
    let metrics = Metrics::new("test");
    let producer: FutureProducer = client.create().expect("producer");
    (
        DeadLetterSink::with_limits(producer, &cfg, &metrics.dead_letters_undeliverable, limits),
        metrics,
    )
}

fn undeliverable(metrics: &Metrics, reason: &str) -> u64 {
    metrics
        .dead_letters_undeliverable
        .with_label_values(&[reason])
        .get()
}

#[tokio::test]
async fn a_permanently_undeliverable_letter_is_counted_and_skipped_not_retried() {
    // A producer that takes 1000-byte messages, told (wrongly) that it takes 1 MB: the
    // envelope fails locally with MessageSizeTooLarge, is cut once to the prefix,
    // which still does not fit, and is given up on at once.
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", "127.0.0.1:1")
        .set("message.max.bytes", "1000");
    let limits = Limits {
        max_message_bytes: DEFAULT_MESSAGE_MAX_BYTES,
        truncate_to: 8192,
    };
    let (sink, metrics) = sink(&client, limits);
    let payload = noise(100_000);
    let pending = vec![
        sink.send(&letter(DeadLetterReason::Oversized, b"k", &payload)),
        sink.send(&letter(DeadLetterReason::Undecodable, b"k", &payload)),
    ];
    let never = CancellationToken::new();
    let delivered =
        tokio::time::timeout(Duration::from_secs(10), sink.deliver_all(pending, &never))
            .await
            .expect("permanent failures are not retried");
    assert!(delivered, "the batch proceeds");
    assert_eq!(undeliverable(&metrics, "oversized"), 1);
    assert_eq!(undeliverable(&metrics, "undecodable"), 1);
}

#[tokio::test]
async fn a_transient_failure_is_retried_until_the_batch_is_cancelled() {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", "127.0.0.1:1")
        .set("message.timeout.ms", "300");
    let (sink, metrics) = sink(&client, LIMITS);
    let pending = vec![sink.send(&letter(DeadLetterReason::TooOld, b"k", b"x"))];
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.cancel();
    });
    let delivered =
        tokio::time::timeout(Duration::from_secs(10), sink.deliver_all(pending, &cancel))
            .await
            .expect("cancellation ends the retries");
    assert!(!delivered, "not delivered, batch abandoned");
    assert_eq!(
        undeliverable(&metrics, "too_old"),
        0,
        "transient is not given up"
    );
}

#[test]
fn reason_names_round_trip() {
    for r in DeadLetterReason::ALL {
        assert_eq!(DeadLetterReason::parse(r.as_str()), Some(r));
    }
}
