//! The records [`super::generate_with`] makes beside a planned event's own encoding, and
//! the tests' reader of framed records: the stream of event ids, a framed event copied
//! under a foreign account, malformed records of every dead-letter reason, and `Frames`
//! (tests only). Apart from `generate.rs` so that file keeps the plan-to-records loop and
//! its truth.

use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use wxpulse_cli::produce::Outgoing;
use wxpulse_runtime::codec::{self, EMBEDDED};
use wxpulse_runtime::events::{MenuClick, MenuEvent};

pub(super) struct Ids {
    pub(super) rng: ChaCha8Rng,
}

impl Ids {
    fn uuid(&mut self) -> String {
        self.next().to_string()
    }

    pub(super) fn next(&mut self) -> uuid::Uuid {
        uuid::Builder::from_random_bytes(self.rng.gen()).into_uuid()
    }
}
/// The framed event `framed` as one of account `app_id`, with event id `event_id`: every
/// interaction schema begins with the strings `event_id` and `app_id`, so the datum is
/// those two re-encoded followed by the original's remaining bytes.
pub(super) fn as_foreign_account(framed: &[u8], event_id: &str, app_id: &str) -> Option<Vec<u8>> {
    /// An Avro long (zigzag varint): its value and its length in bytes.
    fn read_long(bytes: &[u8]) -> Option<(i64, usize)> {
        let mut n: u64 = 0;
        for (i, b) in bytes.iter().enumerate().take(10) {
            n |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(((n >> 1) as i64 ^ -((n & 1) as i64), i + 1));
            }
        }
        None
    }
    fn write_string(out: &mut Vec<u8>, s: &str) {
        let mut n = ((s.len() as i64) << 1) as u64; // zigzag of a non-negative length
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(s.as_bytes());
    }
    let (head, mut rest) = framed.split_at_checked(5)?;
    for _ in 0..2 {
        let (len, n) = read_long(rest)?;
        rest = rest.get(n + usize::try_from(len).ok()?..)?;
    }
    let mut out = head.to_vec();
    write_string(&mut out, event_id);
    write_string(&mut out, app_id);
    out.extend_from_slice(rest);
    Some(out)
}

/// One malformed record of a random kind, and the dead-letter reason it must get.
pub(super) fn malformed(
    rng: &mut ChaCha8Rng,
    ids: &mut Ids,
    topic: &'static str,
    schema_id: u32,
) -> (&'static str, Outgoing) {
    let key = b"bad".to_vec();
    match rng.gen_range(0..4) {
        0 => (
            "undecodable",
            Outgoing {
                topic,
                key,
                payload: Some(br#"{"not":"avro"}"#.to_vec()),
                at_ms: 0,
            },
        ),
        1 => {
            let mut payload = vec![0, 0, 0, 0, 0];
            payload[1..5].copy_from_slice(&schema_id.to_be_bytes());
            payload.extend_from_slice(&[0x80, 0x80, 0x80]); // a varint that never ends
            (
                "undecodable",
                Outgoing {
                    topic,
                    key,
                    payload: Some(payload),
                    at_ms: 0,
                },
            )
        }
        2 => {
            let mut payload = vec![0, 0, 0, 0x03, 0xe7]; // schema id 999
            payload.extend_from_slice(b"whatever");
            (
                "unknown_schema",
                Outgoing {
                    topic,
                    key,
                    payload: Some(payload),
                    at_ms: 0,
                },
            )
        }
        _ => {
            // A well-formed menu click without an openid, on whatever topic: decodes on
            // the menu topic (missing_field) and is undecodable elsewhere.
            let (id, schema) = {
                let s = EMBEDDED.iter().find(|s| s.id == 1).expect("menu click v1");
                (s.id, codec::parse(s.json).expect("parses"))
            };
            let event_id = ids.uuid();
            let e = MenuClick {
                event_id: &event_id,
                app_id: "wxb00a00",
                openid: "",
                unionid: None,
                client_time: 1_700_000_000_000,
                server_time: 1_700_000_000_100,
                event: MenuEvent::Click,
                event_key: "MEMBER_CENTER",
                menu_id: None,
            };
            let mut payload = Vec::new();
            codec::encode_into(&e, id, &schema, &mut payload).expect("valid shape");
            let reason = if topic == "wxpulse.menu_clicks" {
                "missing_field"
            } else {
                "undecodable"
            };
            (
                reason,
                Outgoing {
                    topic,
                    key,
                    payload: Some(payload),
                    at_ms: 0,
                },
            )
        }
    }
}

/// The test-side reader of generated records: the embedded schemas by id, and each record's
/// datum with the schema it was framed with, when that schema is its topic's (as the
/// services check, a schema of another subject is undecodable).
#[cfg(test)]
pub(crate) struct Frames(
    pub(super) std::collections::HashMap<u32, (&'static str, serde_avro_fast::Schema)>,
);

#[cfg(test)]
impl Frames {
    pub(crate) fn new() -> Frames {
        Frames(
            EMBEDDED
                .iter()
                .map(|s| (s.id, (s.subject, codec::parse(s.json).expect("parses"))))
                .collect(),
        )
    }

    /// The schema and datum of `r`, or `None` for a tombstone, a bad frame or a schema of
    /// another subject.
    pub(crate) fn of<'a>(
        &'a self,
        r: &'a Outgoing,
    ) -> Option<(&'a serde_avro_fast::Schema, &'a [u8])> {
        let (id, datum) = codec::split_frame(r.payload.as_deref()?).ok()?;
        let (subject, schema) = self.0.get(&id)?;
        (*subject == format!("{}-value", r.topic)).then_some((schema, datum))
    }
}
