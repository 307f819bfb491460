use std::collections::HashMap;

use super::*;

fn cfg(window: u32, max: u32) -> OverflowConfig {
    OverflowConfig {
        enabled: true,
        lane: crate::config::Lane::Primary,
        window_records: window,
        max_per_window: max,
    }
}

/// A log of keys: "hot" every other record, the rest distinct.
fn log(n: i64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|o| {
            if o % 2 == 0 {
                b"wx1|bot".to_vec()
            } else {
                format!("wx1|fan{o}").into_bytes()
            }
        })
        .collect()
}

fn run_from(keys: &[Vec<u8>], cfg: &OverflowConfig, first: i64) -> Vec<Verdict> {
    let mut hot = HotKeys::new(cfg);
    let mut out = Vec::new();
    for (o, key) in keys.iter().enumerate().skip(first as usize) {
        let o = o as i64;
        let mut v = hot.decide(o, Some(key));
        if let Verdict::Cold { window_start } = v {
            // What count_keys reads from the log.
            let mut counts = HashMap::new();
            for k in &keys[window_start as usize..o as usize] {
                *counts.entry(key_hash(k)).or_insert(0) += 1;
            }
            hot.warm(window_start, &counts);
            v = hot.decide(o, Some(key));
        }
        out.push(v);
    }
    out
}

#[test]
fn a_key_keeps_max_per_window_and_the_rest_of_the_window_is_diverted() {
    let c = cfg(10, 2);
    let keys = log(30);
    let verdicts = run_from(&keys, &c, 0);
    let diverted: Vec<usize> = verdicts
        .iter()
        .enumerate()
        .filter(|(_, v)| **v == Verdict::Divert)
        .map(|(o, _)| o)
        .collect();
    // The bot is at 0,2,4,6,8 of each window of 10: 0 and 2 stay, 4, 6, 8 go.
    assert_eq!(diverted, vec![4, 6, 8, 14, 16, 18, 24, 26, 28]);
}

#[test]
fn a_new_owner_starting_anywhere_diverts_exactly_what_the_first_one_did() {
    let c = cfg(16, 3);
    let keys = log(100);
    let whole = run_from(&keys, &c, 0);
    for first in 1..100 {
        let replay = run_from(&keys, &c, first);
        assert_eq!(replay, whole[first as usize..], "replay from {first}");
    }
}

#[test]
fn a_record_asked_again_is_not_counted_twice() {
    let c = cfg(10, 1);
    let mut hot = HotKeys::new(&c);
    hot.warm(0, &HashMap::new());
    assert_eq!(hot.decide(0, Some(b"k")), Verdict::Keep);
    assert_eq!(hot.decide(1, Some(b"k")), Verdict::Divert);
    assert_eq!(hot.decide(1, Some(b"k")), Verdict::Divert);
    assert_eq!(hot.over(), 1);
    assert_eq!(hot.decide(2, None), Verdict::Keep);
    // A new window forgets.
    assert_eq!(hot.decide(10, Some(b"k")), Verdict::Keep);
    assert_eq!(hot.over(), 0);
}

#[test]
fn the_segment_travels_in_a_header_unchanged() {
    let s = Segment {
        relationship: Relationship::Vip,
        lifecycle: Lifecycle::Dormant,
        month_interactions: 4_000_000,
    };
    assert_eq!(decode_segment(encode_segment(&s).as_bytes()), Some(s));
    assert_eq!(decode_segment(b"vip,active"), None);
    assert_eq!(decode_segment(b"vip,active,1,2"), None);
    assert_eq!(decode_segment(b"boss,active,1"), None);
}

#[test]
fn a_key_once_diverted_is_remembered_across_windows() {
    let c = cfg(10, 1);
    let mut hot = HotKeys::new(&c);
    hot.warm(0, &HashMap::new());
    assert_eq!(hot.decide(0, Some(b"bot")), Verdict::Keep);
    assert!(!hot.diverted_key(Some(b"bot")));
    assert_eq!(hot.decide(1, Some(b"bot")), Verdict::Divert);
    assert_eq!(hot.decide(12, Some(b"fan")), Verdict::Keep);
    assert!(
        hot.diverted_key(Some(b"bot")),
        "a new window keeps what was diverted"
    );
    assert!(!hot.diverted_key(Some(b"fan")));
    assert!(!hot.diverted_key(None));
}

/// A lane row keeps where its record was read in the primary topic: the restore of a
/// primary that crashed finds the records of its lost batch the lane wrote by it.
#[test]
fn a_diverted_record_carries_its_segment_and_source_to_the_lane() {
    use rdkafka::message::OwnedMessage;
    let segment = Segment {
        relationship: Relationship::Vip,
        lifecycle: Lifecycle::Active,
        month_interactions: 42,
    };
    let message = |source: &str| {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: SEGMENT_HEADER,
                value: Some(encode_segment(&segment).as_bytes()),
            })
            .insert(Header {
                key: SOURCE_HEADER,
                value: Some(source.as_bytes()),
            });
        OwnedMessage::new(
            Some(b"{}".to_vec()),
            None,
            "wxpulse.menu_clicks.overflow".into(),
            rdkafka::Timestamp::NotAvailable,
            0,
            7,
            Some(headers),
        )
    };
    let carried = super::carried(&message("wxpulse.menu_clicks/3/1234")).expect("carried");
    assert_eq!(carried.segment, segment);
    assert_eq!((carried.source_partition, carried.source_offset), (3, 1234));
    // A header it cannot read leaves the source unknown, never the row without its segment.
    let carried = super::carried(&message("garbage")).expect("carried");
    assert_eq!((carried.source_partition, carried.source_offset), (-1, -1));
}
