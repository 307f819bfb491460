//! Events as an upstream producer writes them, and the fan ids wxpulse must store for them.

use crate::service::TEST_PII_KEY;

/// The fan id wxpulse must store for a raw id, computed here without wxpulse's code.
pub fn expected_fan_id(raw: &str) -> u64 {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(TEST_PII_KEY.as_bytes()).expect("any key length");
    mac.update(raw.as_bytes());
    let d = mac.finalize().into_bytes();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// An event for `topic` in the Confluent wire format, written with the embedded schema
/// `version` of the topic (`None`: the newest), as an upstream producer would.
pub fn encode_event<T: serde::Serialize>(topic: &str, version: Option<u32>, value: &T) -> Vec<u8> {
    use wxpulse_runtime::codec;
    let subject = format!("{topic}-value");
    let schema = match version {
        Some(v) => codec::EMBEDDED
            .iter()
            .find(|s| s.subject == subject && s.version == v),
        None => codec::latest(&subject),
    }
    .expect("schema embedded");
    let mut out = Vec::new();
    codec::encode_into(
        value,
        schema.id,
        &codec::parse(schema.json).expect("parses"),
        &mut out,
    )
    .expect("encodes");
    out
}
