//! Pseudonymisation of fan ids (PIPL): `openid` and `unionid` become keyed hashes at ingest,
//! so ClickHouse never holds a raw id.
//!
//! HMAC-SHA256 with a secret key: without the key nobody can recompute or enumerate the
//! mapping (a plain hash of an openid could be brute-forced from a list of ids). The result
//! is truncated to 64 bits: ClickHouse stores, sorts, joins and shards a `UInt64` at half the
//! cost of 128 bits, and the chance that any two of 100 million fans collide is about
//! n²/2⁶⁵ ≈ 3·10⁻⁴ — one collision would shift a unique count by one in 10⁸. The same key
//! in every service maps the same person to the same id everywhere.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A fan id as stored: the first 8 bytes of HMAC-SHA256(key, raw id), big-endian.
pub type FanId = u64;

/// Keyed hasher; cloning the prepared key state per call skips re-hashing the key.
#[derive(Clone)]
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
}

impl Pseudonymizer {
    /// Prepares the key.
    pub fn new(key: &[u8]) -> Self {
        Pseudonymizer {
            mac: Hmac::new_from_slice(key).expect("HMAC accepts keys of any length"),
        }
    }

    /// The pseudonymous id of a raw `openid` or `unionid`.
    pub fn fan_id(&self, raw: &str) -> FanId {
        self.fan_id_of(raw.as_bytes())
    }

    /// [`Pseudonymizer::fan_id`] of raw bytes (a record key's openid, not yet validated).
    pub fn fan_id_of(&self, raw: &[u8]) -> FanId {
        let mut mac = self.mac.clone();
        mac.update(raw);
        let digest = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }

    /// `0` for a missing id, which no real id hashes to in practice (2⁻⁶⁴).
    pub fn optional_fan_id(&self, raw: Option<&str>) -> FanId {
        raw.filter(|s| !s.is_empty()).map_or(0, |s| self.fan_id(s))
    }
}

/// The pseudonyms of recently seen fans, so a fan's next events skip the two HMACs (about
/// a third of an event's cost on the hot path): a fan's events come in bursts (a menu
/// session, the reads after a push), and a month of menu clicks repeats a fan four times on
/// average. Direct-mapped and fixed-size ([`FanIdCache::SLOTS`] slots of one cache line,
/// 4 MiB per decoder): a lookup is one hash and one line, nothing is allocated, and a
/// fan evicted by another simply pays the HMACs again. The slot holds the whole openid,
/// so a hit is exact; the unionid is checked by a 64-bit hash under a per-process random
/// seed (WeChat gives an openid one unionid, so only a changed unionid can miss this check,
/// and then only with probability 2⁻⁶⁴).
pub struct FanIdCache {
    slots: Box<[Slot]>,
    hasher: hashbrown::DefaultHashBuilder,
}

/// One remembered fan; `len == 0` is an empty slot.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Slot {
    openid: [u8; OPENID_MAX],
    len: u8,
    fan_id: FanId,
    union_id: FanId,
    union_tag: u64,
}

/// Longest openid a slot holds (WeChat's are 28 characters); longer ones are hashed each time.
const OPENID_MAX: usize = 39;

impl Slot {
    /// Whether this slot remembers `openid`.
    #[inline]
    fn holds(&self, openid: &[u8]) -> bool {
        usize::from(self.len) == openid.len() && &self.openid[..openid.len()] == openid
    }
}

impl Default for FanIdCache {
    fn default() -> Self {
        Self::with_slots(Self::SLOTS)
    }
}

impl FanIdCache {
    /// 65,536 slots: 65% of a month of menu clicks hit in `make bench` (77% at most, every
    /// fan's first event misses), at 4 MiB.
    pub const SLOTS: usize = 1 << 16;

    /// A cache of `slots` entries (rounded up to a power of two).
    pub fn with_slots(slots: usize) -> Self {
        use std::hash::BuildHasher;
        let hasher = hashbrown::DefaultHashBuilder::default();
        // The pair of a missing unionid, so every slot's pair is right for its tag.
        let empty = Slot {
            openid: [0; OPENID_MAX],
            len: 0,
            fan_id: 0,
            union_id: 0,
            union_tag: hasher.hash_one(b"".as_slice()),
        };
        FanIdCache {
            slots: vec![empty; slots.max(1).next_power_of_two()].into_boxed_slice(),
            hasher,
        }
    }

    /// Starts loading `openid`'s slot, so the [`FanIdCache::fan_ids`] that follows a few
    /// steps later finds it in cache.
    #[inline]
    pub fn prefetch(&self, openid: &[u8]) {
        crate::prefetch::line(&self.slots[self.slot(openid)]);
    }

    #[inline]
    fn slot(&self, openid: &[u8]) -> usize {
        use std::hash::BuildHasher;
        self.hasher.hash_one(openid) as usize & (self.slots.len() - 1)
    }

    /// `openid`'s fan id, from its slot or hashed into it: the lookahead's pseudonym of a
    /// coming event's fan, so its profile can be prefetched even on the fan's first event.
    pub fn warm(&mut self, pii: &Pseudonymizer, openid: &[u8]) -> Option<FanId> {
        self.remember(pii, openid)
            .map(|index| self.slots[index].fan_id)
    }

    /// `(pii.fan_id(openid), pii.optional_fan_id(unionid))`, from the cache when this fan
    /// was seen with this unionid and not evicted since.
    pub fn fan_ids(
        &mut self,
        pii: &Pseudonymizer,
        openid: &str,
        unionid: Option<&str>,
    ) -> (FanId, FanId) {
        use std::hash::BuildHasher;
        let Some(index) = self.remember(pii, openid.as_bytes()) else {
            return (pii.fan_id(openid), pii.optional_fan_id(unionid));
        };
        let union_tag = self.hasher.hash_one(unionid.unwrap_or_default().as_bytes());
        let slot = &mut self.slots[index];
        if slot.union_tag != union_tag {
            slot.union_id = pii.optional_fan_id(unionid);
            slot.union_tag = union_tag;
        }
        (slot.fan_id, slot.union_id)
    }

    /// The index of the slot holding `openid`, hashed into it if it held another fan;
    /// `None` for an id no slot holds. The slot's unionid pair is left as it is: it is
    /// always some unionid's tag and pseudonym (an empty slot's is the missing unionid's),
    /// which [`FanIdCache::fan_ids`] checks against the event's own.
    fn remember(&mut self, pii: &Pseudonymizer, openid: &[u8]) -> Option<usize> {
        if openid.is_empty() || openid.len() > OPENID_MAX {
            return None;
        }
        let index = self.slot(openid);
        let slot = &mut self.slots[index];
        if !slot.holds(openid) {
            slot.openid[..openid.len()].copy_from_slice(openid);
            slot.len = openid.len() as u8;
            slot.fan_id = pii.fan_id_of(openid);
        }
        Some(index)
    }
}

/// Authenticated encryption of what a dead letter keeps of a record — its raw value and key,
/// which hold openids, unionids and chat text — so the dead-letter topic holds no readable
/// PII and only `wxpulse dlq replay`, configured with the same `pii.key`, can send the
/// record back. AES-256-GCM under a key derived from `pii.key` (whoever has that key can
/// already compute every fan id); the letter's origin (topic, partition, offset) is
/// authenticated with it, so a sealed value cannot be moved to another letter.
pub struct Sealer {
    key: ring::aead::LessSafeKey,
    mac: Hmac<Sha256>,
    random: ring::rand::SystemRandom,
}

/// A sealed value could not be opened: another `pii.key`, or the bytes were changed or cut.
#[derive(Debug, thiserror::Error)]
#[error("cannot open a sealed dead letter: wrong pii.key, or the letter was altered or truncated")]
pub struct OpenError;

const NONCE_LEN: usize = ring::aead::NONCE_LEN;
const NO_KEY: u32 = u32::MAX;

impl Sealer {
    /// Bytes a sealed value adds to the key and value it holds: nonce, tag and the key's
    /// length.
    pub const OVERHEAD: usize = NONCE_LEN + 16 + 4;

    /// The sealer of `pii_key` (the services' and the CLI's `pii.key`).
    pub fn new(pii_key: &[u8]) -> Self {
        let mac = Hmac::<Sha256>::new_from_slice(pii_key).expect("HMAC accepts keys of any length");
        let mut derive = mac.clone();
        derive.update(b"wxpulse dead-letter seal, AES-256-GCM, v1");
        let derived = derive.finalize().into_bytes();
        let key = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &derived)
            .expect("a 32-byte key is an AES-256 key");
        Sealer {
            key: ring::aead::LessSafeKey::new(key),
            mac,
            random: ring::rand::SystemRandom::new(),
        }
    }

    /// The dead letter's Kafka key for a record's key: a keyed hash (hex), so one fan's
    /// letters still share a partition, without the openid.
    pub fn pseudonymous_key(&self, key: &[u8]) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(b"dead-letter key:");
        mac.update(key);
        hex::encode(&mac.finalize().into_bytes()[..16]).into_bytes()
    }

    /// `nonce ‖ AES-256-GCM(len(key) ‖ key ‖ value)`, bound to `origin`.
    pub fn seal(&self, key: Option<&[u8]>, value: &[u8], origin: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        ring::rand::SecureRandom::fill(&self.random, &mut nonce)
            .expect("the system's random source works");
        let key_len = key.map_or(NO_KEY, |k| k.len() as u32);
        let mut out = Vec::with_capacity(Self::OVERHEAD + key.map_or(0, <[u8]>::len) + value.len());
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(&key_len.to_be_bytes());
        out.extend_from_slice(key.unwrap_or_default());
        out.extend_from_slice(value);
        let mut body = out.split_off(start);
        self.key
            .seal_in_place_append_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(origin),
                &mut body,
            )
            .expect("AES-GCM seals any length a Kafka record can have");
        out.extend_from_slice(&body);
        out
    }

    /// The key and value [`Sealer::seal`] sealed for `origin`.
    pub fn open(
        &self,
        sealed: &[u8],
        origin: &[u8],
    ) -> Result<(Option<Vec<u8>>, Vec<u8>), OpenError> {
        if sealed.len() < Self::OVERHEAD {
            return Err(OpenError);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, ring::aead::Aad::from(origin), &mut body)
            .map_err(|_| OpenError)?;
        let (len, rest) = plain.split_at(4);
        let len = u32::from_be_bytes(len.try_into().map_err(|_| OpenError)?);
        if len == NO_KEY {
            return Ok((None, rest.to_vec()));
        }
        let len = len as usize;
        if len > rest.len() {
            return Err(OpenError);
        }
        Ok((Some(rest[..len].to_vec()), rest[len..].to_vec()))
    }
}

/// What a sealed dead letter is bound to: its source record's identity.
pub fn letter_origin(topic: &str, partition: i32, offset: i64) -> Vec<u8> {
    format!("{topic}:{partition}@{offset}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_letter_opens_with_its_key_and_origin_only() {
        let sealer = Sealer::new(b"key-one-0123456789");
        let origin = letter_origin("wxpulse.chat_messages", 3, 42);
        let sealed = sealer.seal(Some(b"wxa|oFAN"), b"hello, my openid is oFAN", &origin);
        let text = String::from_utf8_lossy(&sealed);
        assert!(!text.contains("oFAN") && !text.contains("hello"), "{text}");
        assert_eq!(sealed.len(), Sealer::OVERHEAD + 8 + 24);
        let (key, value) = sealer.open(&sealed, &origin).expect("opens");
        assert_eq!(key.as_deref(), Some(&b"wxa|oFAN"[..]));
        assert_eq!(value, b"hello, my openid is oFAN");
        // Another key, another origin, a flipped bit, a cut: refused.
        let other = Sealer::new(b"key-two-0123456789");
        assert!(other.open(&sealed, &origin).is_err());
        assert!(sealer
            .open(&sealed, &letter_origin("wxpulse.chat_messages", 3, 43))
            .is_err());
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert!(sealer.open(&flipped, &origin).is_err());
        assert!(sealer.open(&sealed[..sealed.len() - 1], &origin).is_err());
        // No key; an empty value.
        let keyless = sealer.seal(None, b"", &origin);
        assert_eq!(
            sealer.open(&keyless, &origin).expect("opens"),
            (None, Vec::new())
        );
        // Two seals of one value differ (random nonce).
        assert_ne!(
            sealer.seal(None, b"x", &origin),
            sealer.seal(None, b"x", &origin)
        );
    }

    #[test]
    fn the_letter_key_is_stable_keyed_and_not_the_openid() {
        let a = Sealer::new(b"key-one-0123456789");
        let b = Sealer::new(b"key-two-0123456789");
        let k = a.pseudonymous_key(b"wxa|oFAN");
        assert_eq!(k, a.pseudonymous_key(b"wxa|oFAN"));
        assert_ne!(k, b.pseudonymous_key(b"wxa|oFAN"));
        assert_eq!(k.len(), 32);
        assert!(!String::from_utf8_lossy(&k).contains("oFAN"));
    }

    #[test]
    fn keyed_stable_and_distinct() {
        let a = Pseudonymizer::new(b"key-one-0123456789");
        let b = Pseudonymizer::new(b"key-two-0123456789");
        assert_eq!(a.fan_id("oABC"), a.clone().fan_id("oABC"));
        assert_ne!(a.fan_id("oABC"), b.fan_id("oABC"), "the key matters");
        assert_ne!(a.fan_id("oABC"), a.fan_id("oABD"));
        assert_eq!(a.optional_fan_id(None), 0);
        assert_eq!(a.optional_fan_id(Some("")), 0);
    }

    #[test]
    fn the_cache_gives_what_the_hmac_gives() {
        let pii = Pseudonymizer::new(b"key-one-0123456789");
        // Two slots: fans evict each other, unionids change, ids too long to hold.
        let mut cache = FanIdCache::with_slots(2);
        let long = "o".repeat(OPENID_MAX + 1);
        let fans = ["oA", "oB", "oC", "oA", "oA", "oB", "", long.as_str(), "oC"];
        let unions = [
            Some("u1"),
            None,
            Some(""),
            Some("u1"),
            Some("u2"),
            None,
            None,
            Some("u3"),
        ];
        for round in 0..3 {
            for (i, openid) in fans.iter().enumerate() {
                let unionid = unions[(i + round) % unions.len()];
                assert_eq!(
                    cache.fan_ids(&pii, openid, unionid),
                    (pii.fan_id(openid), pii.optional_fan_id(unionid)),
                    "{openid:?} {unionid:?}"
                );
            }
        }
        assert_eq!(std::mem::size_of::<Slot>(), 64, "one cache line");
    }

    #[test]
    fn a_slot_warmed_from_a_record_key_changes_no_pseudonym() {
        let pii = Pseudonymizer::new(b"key-one-0123456789");
        // Warms of the fan that comes next, of another fan in the same slot, of a fan that
        // never comes, of ids no slot holds; the fans come with and without unionids.
        let mut cache = FanIdCache::with_slots(2);
        let long = "o".repeat(OPENID_MAX + 1);
        let fans = ["oA", "oB", "oC", "oA", "oB", "", long.as_str(), "oD"];
        let unions = [Some("u1"), None, Some(""), Some("u2"), Some("u1")];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for step in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let openid = fans[(x % fans.len() as u64) as usize];
            if x >> 62 == 0 {
                let warmed = cache.warm(&pii, openid.as_bytes());
                let held = !openid.is_empty() && openid.len() <= OPENID_MAX;
                assert_eq!(warmed, held.then(|| pii.fan_id(openid)), "step {step}");
                continue;
            }
            let unionid = unions[((x >> 8) % unions.len() as u64) as usize];
            assert_eq!(
                cache.fan_ids(&pii, openid, unionid),
                (pii.fan_id(openid), pii.optional_fan_id(unionid)),
                "step {step}: {openid:?} {unionid:?}"
            );
        }
    }

    #[test]
    fn matches_rfc4231_prefix() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let p = Pseudonymizer::new(b"Jefe");
        assert_eq!(p.fan_id("what do ya want for nothing?"), 0x5bdcc146bf60754e);
    }
}
