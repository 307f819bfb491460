//! The orders as the topic gets them: Avro records with their retry copies and
//! malformed ones, merged into the production order of the other records.

use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use wxpulse_runtime::codec::{self, EMBEDDED};

use super::order::{Channel, Kind, PlannedOrder, Produced};
use crate::spec::{Spec, RETRY_AFTER_MS};
use crate::world::{self, World};
use wxpulse_cli::produce::Outgoing;

/// The orders topic.
pub const ORDERS_TOPIC: &str = "wxpulse.orders";

/// The order as the Avro record `com.wxpulse.events.Order` (v1), fields in schema order.
#[derive(Serialize)]
struct OrderRecord<'a> {
    event_id: &'a str,
    order_id: &'a str,
    kind: Kind,
    app_id: &'a str,
    openid: &'a str,
    unionid: Option<&'a str>,
    order_time: i64,
    server_time: i64,
    amount_fen: i64,
    currency: &'a str,
    store_id: Option<&'a str>,
    channel: Channel,
    share_code: Option<&'a str>,
    items: i32,
}

/// The unionid a fan's records carry (as the interaction events do).
pub(crate) fn unionid(app_id: &str, fan: u32) -> Option<String> {
    (fan % 5 != 0).then(|| format!("u{}_{fan:06}", &app_id[..5.min(app_id.len())]))
}

/// Encodes the orders (in production order) with their retry copies and malformed
/// records: (when each is produced, the record), and what was produced.
pub(crate) fn encode(
    spec: &Spec,
    world: &World,
    orders: &[PlannedOrder],
) -> (Vec<(i64, Outgoing)>, Produced) {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x6f72_6465_7273_2121); // "orders!!"
    let s = EMBEDDED
        .iter()
        .find(|s| s.subject == format!("{ORDERS_TOPIC}-value") && s.version == 1)
        .expect("order v1 is embedded");
    let (schema_id, schema) = (s.id, codec::parse(s.json).expect("embedded schemas parse"));
    let mut produced = Produced::default();
    let mut out = Vec::with_capacity(orders.len() + orders.len() / 32);
    for o in orders {
        let app_id = world.accounts[o.account as usize].record.app_id.as_str();
        let openid = world::openid(app_id, o.fan);
        let unionid = unionid(app_id, o.fan);
        let event_id = o.event_id.to_string();
        let mut record = OrderRecord {
            event_id: &event_id,
            order_id: &o.order_id,
            kind: o.kind,
            app_id,
            openid: &openid,
            unionid: unionid.as_deref(),
            order_time: o.time,
            server_time: o.server,
            amount_fen: o.amount_fen,
            currency: "CNY",
            store_id: o.store_id.as_deref(),
            channel: o.channel,
            share_code: o.share_code.as_deref(),
            items: o.items,
        };
        let key = format!("{app_id}|{openid}").into_bytes();
        let mut payload = Vec::with_capacity(160);
        codec::encode_into(&record, schema_id, &schema, &mut payload)
            .expect("generated orders match their schema");
        let valid = Outgoing {
            topic: ORDERS_TOPIC,
            key: key.clone(),
            payload: Some(payload),
            at_ms: o.server,
        };
        if rng.gen_bool(spec.duplicate_share) {
            out.push((o.server + RETRY_AFTER_MS, valid.clone()));
            produced.duplicates += 1;
        }
        out.push((o.server, valid));
        if rng.gen_bool(spec.malformed_share) {
            // The same order with one field the orders service must refuse.
            let bad_id = uuid::Builder::from_random_bytes(rng.gen())
                .into_uuid()
                .to_string();
            record.event_id = &bad_id;
            let reason = match rng.gen_range(0..5) {
                0 => {
                    record.kind = Kind::Other;
                    "invalid_field"
                }
                1 => {
                    record.order_id = "";
                    "missing_field"
                }
                2 => {
                    record.amount_fen = -record.amount_fen * i64::from(rng.gen_bool(0.5));
                    "invalid_field"
                }
                3 => {
                    record.currency = ["cny", "RMB ", "CN"][rng.gen_range(0..3)];
                    "invalid_field"
                }
                _ => {
                    record.items = -1;
                    "invalid_field"
                }
            };
            let mut payload = Vec::with_capacity(160);
            codec::encode_into(&record, schema_id, &schema, &mut payload)
                .expect("malformed orders still match their schema");
            *produced.dead_letters.entry(reason.to_string()).or_default() += 1;
            out.push((
                o.server,
                Outgoing {
                    topic: ORDERS_TOPIC,
                    key,
                    payload: Some(payload),
                    at_ms: o.server,
                },
            ));
        }
    }
    out.sort_by_key(|r| r.0); // stable: a copy after its original, a malformed one too
    produced.records = out.len() as u64;
    (out, produced)
}

/// `orders` (sorted by when each is produced) merged into the production order of the
/// other records: an order goes before the first record produced after it.
pub(crate) fn merge(records: Vec<Outgoing>, orders: Vec<(i64, Outgoing)>) -> Vec<Outgoing> {
    let mut out = Vec::with_capacity(records.len() + orders.len());
    let mut orders = orders.into_iter().peekable();
    for r in records {
        if r.at_ms > 0 {
            while let Some((_, o)) = orders.next_if(|(at, _)| *at <= r.at_ms) {
                out.push(o);
            }
        }
        out.push(r);
    }
    out.extend(orders.map(|(_, o)| o));
    out
}
