//! The per-record hot path, free of I/O: framing → writer schema → decode → validate →
//! event-id dedup → pseudonymise → the service's row. Everything a record can be rejected
//! for is decided here, so it is unit-tested without Kafka or ClickHouse.

use std::sync::Arc;

use crate::codec::{self, Registry, Writer};
use crate::config::{Config, Lane, UnknownAccount, ValidationConfig};
use crate::dedup::{Age, EventIds, Seen};
use crate::dlq::{DeadLetterReason, Rejection};
use crate::enrich::Dimensions;
use crate::events::Interaction;
use crate::pii::{FanIdCache, Pseudonymizer};
use crate::segment::{FanStates, Segment, Thresholds};
use crate::source::Record;
use crate::stream::{Context, Meta, Stream};
use crate::validate::validate;

/// What became of one record.
pub(crate) enum Outcome<R> {
    Row(R, i64),
    Duplicate(Age),
    /// The dedup horizon flags the event id: ClickHouse must settle it before the record
    /// goes on (nothing was recorded for it).
    Suspect(u128, i64),
    Rejected(Rejection),
    /// Of an account the dimension does not hold, under `unknown_account = quarantine`:
    /// the row goes to the stream table's quarantine twin (its id is taken: it is written).
    Quarantined(R, i64),
    /// Of a hot key: valid, first-seen and segmented here, its row is built by the overflow
    /// lane (see `overflow.rs`); its id is taken.
    Diverted {
        /// The event id, the overflow record's key.
        event_id: u128,
        /// Its segment, carried in a header.
        segment: Segment,
    },
}

/// A record that passed everything decided before dedup.
struct Admissible<E> {
    event: E,
    event_id: u128,
    /// Of an account the dimension does not hold (allowed: `unknown_account = quarantine`).
    unknown: bool,
}

/// Decodes records of one topic into rows.
pub struct Decoder {
    registry: Arc<Registry>,
    validation: ValidationConfig,
    pii: Pseudonymizer,
    /// Most events are of a fan seen moments ago: their pseudonyms are remembered.
    fan_ids: FanIdCache,
    topic: &'static str,
    thresholds: Thresholds,
    /// One shared allocation per AppID (a deployment has a few dozen); capped so a flood
    /// of garbage ids cannot grow it without bound.
    app_ids: hashbrown::HashMap<Box<str>, Arc<str>>,
    /// Records of a topic share a few schema ids: a one-entry cache skips the registry's
    /// lock and reference count per record.
    last: Option<(u32, Arc<Writer>)>,
    /// The overflow lane takes each record's segment from the primary (its header).
    lane: Lane,
}

impl Decoder {
    /// A decoder for records of `topic`.
    pub fn new(registry: Arc<Registry>, cfg: &Config, topic: &'static str) -> Self {
        Decoder {
            registry,
            validation: cfg.validation.clone(),
            pii: Pseudonymizer::new(cfg.pii.key.expose().as_bytes()),
            fan_ids: FanIdCache::default(),
            topic,
            thresholds: Thresholds::new(cfg.segment.new_for, cfg.segment.dormant_after),
            app_ids: hashbrown::HashMap::new(),
            last: None,
            lane: cfg.overflow.lane,
        }
    }

    /// The pseudonymiser, so dimension tables hash openids like events do.
    pub fn pseudonymizer(&self) -> &Pseudonymizer {
        &self.pii
    }

    fn app_id(&mut self, app_id: &str) -> Arc<str> {
        if let Some(shared) = self.app_ids.get(app_id) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(app_id);
        if self.app_ids.len() < 10_000 {
            self.app_ids.insert(app_id.into(), shared.clone());
        }
        shared
    }

    fn writer(&mut self, id: u32) -> Option<&Writer> {
        if self.last.as_ref().is_none_or(|(last, _)| *last != id) {
            self.last = Some((id, self.registry.cached(id)?));
        }
        self.last.as_ref().map(|(_, w)| w.as_ref())
    }

    /// Everything decided about `record` before dedup, in order: size, framing, writer
    /// schema, decoding, validation, the stream's own check and the account. One sequence
    /// for a record decided now ([`Decoder::decode_row`]) and one looked ahead at
    /// ([`Decoder::suspect_id`]), so the two never disagree on what reaches dedup.
    fn admissible<'r, S: Stream>(
        &mut self,
        stream: &S,
        record: &'r Record,
        ids: &EventIds,
        dims: &Dimensions,
        now: i64,
    ) -> Result<Admissible<S::Event<'r>>, Rejection> {
        use DeadLetterReason as R;
        let Some(payload) = record.payload.as_deref() else {
            return Err(Rejection::new(R::Undecodable, "null value (tombstone)"));
        };
        let max = self.validation.max_payload_bytes;
        if payload.len() > max {
            return Err(Rejection::new(
                R::Oversized,
                format!("{} bytes > {max}", payload.len()),
            ));
        }
        let (schema_id, datum) = codec::split_frame(payload)
            .map_err(|e| Rejection::new(R::Undecodable, e.to_string()))?;
        let Some(writer) = self.writer(schema_id) else {
            return Err(Rejection::new(
                R::UnknownSchema,
                format!("schema id {schema_id}"),
            ));
        };
        if writer.record != S::RECORD {
            return Err(Rejection::new(
                R::Undecodable,
                format!("schema id {schema_id} is not a {}", S::RECORD),
            ));
        }
        let event: S::Event<'r> = codec::decode(datum, &writer.schema)
            .map_err(|e| Rejection::new(R::Undecodable, e.to_string()))?;
        let header = event.header();
        self.fan_ids.prefetch(header.openid.as_bytes());
        let event_id = validate(&header, now, &self.validation)?;
        ids.horizon.prefetch(event_id);
        stream.check(&event)?;
        // Before dedup: a rejected event must not hold its id, or its replay would be
        // dropped as a duplicate.
        let unknown = !dims.knows_account(header.app_id);
        if unknown && self.validation.unknown_account == UnknownAccount::DeadLetter {
            let shown: String = header.app_id.chars().take(64).collect();
            return Err(Rejection::new(
                R::UnknownAccount,
                format!("app_id {shown} is not in the account dimension"),
            ));
        }
        Ok(Admissible {
            event,
            event_id,
            unknown,
        })
    }

    /// Prepares the records ahead of `ahead[0]`, the one about to be decoded, so their
    /// cache misses overlap this one's work instead of each waiting in turn: a record's key
    /// and payload lines ([`LOOK_RECORD`] ahead), its fan's pseudonym slot ([`LOOK_SLOT`]),
    /// then its fan id (hashed into that slot if new), fan profile and the fan's state in
    /// its partition, `fans_of(partition)` ([`LOOK_PROFILE`]). All from the record key
    /// (`app_id|openid`), before any decoding; a key of another shape prepares nothing.
    /// Changes no result: the slot is exact on the openid, and a record that is never
    /// decoded only cost its hash.
    #[inline]
    pub fn look_ahead<'a>(
        &mut self,
        dims: &Dimensions,
        fans_of: impl FnOnce(i32) -> Option<&'a FanStates>,
        ahead: &[Record],
    ) {
        if let Some(r) = ahead.get(LOOK_RECORD) {
            if let Some(key) = r.key.as_deref() {
                crate::prefetch::line(key.as_ptr());
            }
            if let Some(payload) = r.payload.as_deref() {
                crate::prefetch::line(payload.as_ptr());
                crate::prefetch::line(payload.as_ptr().wrapping_add(64));
            }
        }
        if let Some(openid) = ahead.get(LOOK_SLOT).and_then(key_openid) {
            self.fan_ids.prefetch(openid);
        }
        let Some(near) = ahead.get(LOOK_PROFILE) else {
            return;
        };
        let fan = key_openid(near).and_then(|openid| self.fan_ids.warm(&self.pii, openid));
        if let Some(fan) = fan {
            dims.prefetch_fan(fan);
            if let Some(fans) = fans_of(near.partition) {
                fans.prefetch(fan);
            }
        }
    }

    /// The event id and server time of `record` when dedup would call it suspect now
    /// ([`EventIds::would_be_suspect`]), changing no state; `None` for anything else
    /// (including a record rejected before dedup). The pipeline asks this of the records
    /// parked behind a suspect, to look them all up at once.
    pub(crate) fn suspect_id<S: Stream>(
        &mut self,
        stream: &S,
        record: &Record,
        ids: &EventIds,
        dims: &Dimensions,
        now: i64,
    ) -> Option<(u128, i64)> {
        let a = self.admissible(stream, record, ids, dims, now).ok()?;
        ids.would_be_suspect(a.event_id)
            .then(|| (a.event_id, a.event.header().server_time))
    }

    /// `divert`: the record's key is hot (`overflow.rs`): a valid, first-seen event of a
    /// known account is segmented but its row left to the overflow lane. `lane_wrote`: the
    /// lane already wrote this offset's row, for this event id, for an owner that lost its
    /// batch: that event is segmented as fresh (its id was restored from the lane's row)
    /// and comes back as diverted, to be written nowhere.
    #[allow(clippy::too_many_arguments)] // the partition's states, borrowed separately
    pub(crate) fn decode_row<S: Stream>(
        &mut self,
        stream: &mut S,
        record: &Record,
        ids: &mut EventIds,
        fans: &mut FanStates,
        dims: &Dimensions,
        now: i64,
        divert: bool,
        lane_wrote: Option<u128>,
    ) -> Outcome<S::Row> {
        let Admissible {
            event,
            event_id,
            unknown,
        } = match self.admissible(&*stream, record, ids, dims, now) {
            Ok(admissible) => admissible,
            Err(rejection) => return Outcome::Rejected(rejection),
        };
        let header = event.header();
        let lane_wrote = lane_wrote == Some(event_id);
        match ids.check(event_id, header.server_time, record.offset) {
            Seen::Fresh => {}
            _ if lane_wrote => {}
            Seen::Duplicate(age) => return Outcome::Duplicate(age),
            Seen::Suspect => return Outcome::Suspect(event_id, header.server_time),
        }
        let (fan_id, union_id) = self
            .fan_ids
            .fan_ids(&self.pii, header.openid, header.unionid);
        let carried = match self.lane {
            Lane::Overflow => record.carried,
            Lane::Primary => None,
        };
        let meta = Meta {
            event_id: uuid::Uuid::from_u128(event_id),
            fan_id,
            union_id,
            topic: self.topic,
            partition: record.partition,
            offset: record.offset,
            source_partition: carried.map_or(-1, |c| c.source_partition),
            source_offset: carried.map_or(-1, |c| c.source_offset),
        };
        let brand = match dims.account(header.app_id) {
            Some(account) => account.brand.clone(),
            None => dims.unknown(),
        };
        let profile = dims.fan(meta.fan_id);
        let segment = match carried {
            Some(carried) => carried.segment,
            None => fans.segment(meta.fan_id, header.client_time, profile, self.thresholds),
        };
        if (divert || lane_wrote) && !unknown {
            return Outcome::Diverted { event_id, segment };
        }
        let cx = Context {
            meta,
            app_id: self.app_id(header.app_id),
            brand,
            event_time: header.client_time,
            server_time: header.server_time,
            segment,
            dims,
        };
        let row = stream.row(&event, &cx);
        if unknown && self.validation.unknown_account == UnknownAccount::Quarantine {
            return Outcome::Quarantined(row, header.server_time);
        }
        Outcome::Row(row, header.server_time)
    }
}

/// How many records ahead [`Decoder::look_ahead`] prefetches a record's key and payload,
/// which its next step reads.
pub const LOOK_RECORD: usize = 12;
/// How many records ahead [`Decoder::look_ahead`] prefetches the fan's pseudonym slot,
/// which its last step reads.
pub const LOOK_SLOT: usize = 8;
/// How many records ahead [`Decoder::look_ahead`] takes the fan id and prefetches the
/// fan's profile and segment state. At ~1 µs per record, 4 records are several memory
/// latencies: far enough for each load to arrive, near enough that it is still in cache.
pub const LOOK_PROFILE: usize = 4;

/// The openid of a record keyed `app_id|openid`.
#[inline]
fn key_openid(record: &Record) -> Option<&[u8]> {
    let key = record.key.as_deref()?;
    let bar = key.iter().position(|&b| b == b'|')?;
    Some(&key[bar + 1..])
}

/// Benchmark access to the hot path, without I/O.
#[doc(hidden)]
pub mod bench {
    use super::*;

    /// Runs the per-record hot path once for `ahead[0]`, looking ahead as the pipeline
    /// does; `true` if it produced a row.
    #[allow(clippy::too_many_arguments)] // mirrors decode_row's inputs, bench-only
    pub fn process<S: Stream>(
        decoder: &mut Decoder,
        stream: &mut S,
        ahead: &[Record],
        ids: &mut EventIds,
        fans: &mut FanStates,
        dims: &Dimensions,
        now: i64,
        rows: &mut Vec<S::Row>,
    ) -> bool {
        decoder.look_ahead(dims, |_| Some(&*fans), ahead);
        let Some(record) = ahead.first() else {
            return false;
        };
        match decoder.decode_row(stream, record, ids, fans, dims, now, false, None) {
            Outcome::Row(row, _) => {
                rows.push(row);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::DeadLetterReason as R;
    use crate::events::{MenuClick, MenuEvent};

    struct Clicks;

    #[derive(clickhouse::Row, serde::Serialize)]
    struct Row {
        fan_id: u64,
        offset: i64,
    }

    impl Stream for Clicks {
        const SERVICE: &'static str = "test";
        const TOPIC: &'static str = "t";
        const TABLE: &'static str = "t";
        const RECORD: &'static str = "com.wxpulse.events.MenuClick";
        const DIMENSIONS: &'static [crate::enrich::Dimension] = &[];
        type Event<'a> = MenuClick<'a>;
        type Row = Row;
        fn row(&mut self, _: &MenuClick<'_>, cx: &Context<'_>) -> Row {
            Row {
                fan_id: cx.meta.fan_id,
                offset: cx.meta.offset,
            }
        }
    }

    const NOW: i64 = 1_760_000_000_000;

    fn click(event_id: &str, openid: &str) -> Vec<u8> {
        let schema = codec::parse(codec::EMBEDDED[0].json).expect("parses");
        let e = MenuClick {
            event_id,
            app_id: "wxa",
            openid,
            unionid: None,
            client_time: NOW - 1_000,
            server_time: NOW,
            event: MenuEvent::Click,
            event_key: "K",
            menu_id: None,
        };
        let mut out = Vec::new();
        codec::encode_into(&e, 1, &schema, &mut out).expect("encodes");
        out
    }

    /// What [`run_with`] gives for a quarantined record instead of its fan id.
    const QUARANTINED: u64 = u64::MAX;

    fn run(payloads: Vec<Option<Vec<u8>>>) -> Vec<Result<Option<u64>, R>> {
        run_with(payloads, &[], Vec::new())
    }

    /// Decodes `payloads` with the accounts `accounts` published and `env` overriding the
    /// defaults.
    fn run_with(
        payloads: Vec<Option<Vec<u8>>>,
        accounts: &[&str],
        env: Vec<(String, String)>,
    ) -> Vec<Result<Option<u64>, R>> {
        let cfg = Config::load(None, env).expect("defaults");
        let mut decoder = Decoder::new(Arc::new(Registry::embedded()), &cfg, "t");
        let mut ids = EventIds::configured(
            &cfg.dedup,
            prometheus::IntCounter::new("evicted", "test").expect("valid counter"),
            -1,
        );
        let mut fans = FanStates::default();
        let mut dims = Dimensions::detached(decoder.pseudonymizer().clone());
        for app_id in accounts {
            let account = crate::enrich::AccountRecord {
                app_id: app_id.to_string(),
                brand: "Atelier".into(),
                name: "Atelier official".into(),
                account_type: Default::default(),
                fans: 0,
                updated_at: 0,
            };
            dims.apply(
                crate::enrich::Dimension::Account,
                app_id,
                Some(crate::enrich::DimensionRecord::Account(account)),
            );
        }
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                let record = Record {
                    partition: 0,
                    offset: i as i64,
                    epoch: 1,
                    timestamp: -1,
                    key: None,
                    payload,
                    carried: None,
                };
                match decoder.decode_row(
                    &mut Clicks,
                    &record,
                    &mut ids,
                    &mut fans,
                    &dims,
                    NOW,
                    false,
                    None,
                ) {
                    Outcome::Row(row, _) => Ok(Some(row.fan_id)),
                    Outcome::Quarantined(..) => Ok(Some(QUARANTINED)),
                    Outcome::Duplicate(_) => Ok(None),
                    Outcome::Suspect(..) => panic!("nothing left the window"),
                    Outcome::Rejected(r) => Err(r.reason),
                    Outcome::Diverted { .. } => panic!("nothing is diverted here"),
                }
            })
            .collect()
    }

    #[test]
    fn unknown_accounts_are_kept_or_dead_lettered_as_configured() {
        const A: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
        const B: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3302";
        // The clicks are of account "wxa".
        let clicks = || {
            vec![
                Some(click(A, "o1")),
                Some(click(B, "o1")),
                Some(click(A, "o1")),
            ]
        };
        // `keep` writes another account's clicks, deduplicated as any event.
        let keep = vec![(
            "WXPULSE__VALIDATION__UNKNOWN_ACCOUNT".to_string(),
            "keep".to_string(),
        )];
        let out = run_with(clicks(), &["wxb"], keep);
        assert!(
            matches!(out[..], [Ok(Some(_)), Ok(Some(_)), Ok(None)]),
            "{out:?}"
        );
        // `dead_letter` (the default) with only another account published: every click is
        // dead-lettered, the repeat too (a rejected event holds no id, so its replay is not
        // a duplicate).
        let dead_letter = Vec::new;
        let out = run_with(clicks(), &["wxb"], dead_letter());
        assert_eq!(out, vec![Err(R::UnknownAccount); 3]);
        // ... and with "wxa" published, or no account at all, they are written.
        for accounts in [&["wxa", "wxb"][..], &[]] {
            let out = run_with(clicks(), accounts, dead_letter());
            assert!(
                matches!(out[..], [Ok(Some(_)), Ok(Some(_)), Ok(None)]),
                "{out:?}"
            );
        }
    }

    #[test]
    fn unknown_accounts_are_quarantined_once_and_known_ones_written() {
        const A: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
        const B: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3302";
        let quarantine = || {
            vec![(
                "WXPULSE__VALIDATION__UNKNOWN_ACCOUNT".to_string(),
                "quarantine".to_string(),
            )]
        };
        let clicks = vec![
            Some(click(A, "o1")),
            Some(click(B, "o1")),
            Some(click(A, "o1")),
        ];
        // Only "wxb" published: wxa's clicks are quarantined, and the repeat is a duplicate
        // (a quarantined event is written, so it holds its id).
        let out = run_with(clicks.clone(), &["wxb"], quarantine());
        assert_eq!(
            out,
            vec![Ok(Some(QUARANTINED)), Ok(Some(QUARANTINED)), Ok(None)]
        );
        // With "wxa" published they are rows.
        let out = run_with(clicks, &["wxa"], quarantine());
        assert!(
            matches!(out[..], [Ok(Some(a)), Ok(Some(b)), Ok(None)] if a != QUARANTINED && b != QUARANTINED),
            "{out:?}"
        );
    }

    #[test]
    fn classifies_every_record_kind() {
        const ID: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
        let mut wrong_record = click(ID, "o1");
        wrong_record[4] = 2; // framed as a QrScan (schema id 2)
        let mut unknown = click(ID, "o1");
        unknown[4] = 99;
        let out = run(vec![
            Some(click(ID, "o1")),
            Some(click(ID, "o1")),
            None,
            Some(vec![1, 2, 3]),
            Some(unknown),
            Some(wrong_record),
            Some(click("not-a-uuid", "o1")),
            Some(click("3f2504e0-4f89-41d3-9a0c-0305e82c3302", "")),
            Some(vec![0; 70_000]),
        ]);
        assert!(
            matches!(out[0], Ok(Some(id)) if id != 0),
            "first occurrence becomes a row"
        );
        assert_eq!(out[1], Ok(None), "the same event_id again is a duplicate");
        assert_eq!(
            out[2..],
            [
                Err(R::Undecodable),
                Err(R::Undecodable),
                Err(R::UnknownSchema),
                Err(R::Undecodable),
                Err(R::InvalidField),
                Err(R::MissingField),
                Err(R::Oversized),
            ]
        );
    }
}
