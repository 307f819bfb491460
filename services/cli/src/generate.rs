//! `wxpulse generate`: synthetic WeChat telemetry shaped by the seed report, deterministic
//! by seed, with duplicates, late events and malformed records, and its own ground truth.
//!
//! Shapes (seed 000, H1 2020): stream mix 70/13/11/6 (menu, article, chat, QR); menu
//! categories e-commerce 45%, brand/product info 33%, CRM 22%. The ground truth is tallied
//! here, while generating, from the generator's own decisions — never by reading the
//! pipeline's output — so tests compare two independent computations.

use std::collections::BTreeMap;

use rand::distributions::WeightedIndex;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use wxpulse_runtime::codec::{self, EMBEDDED};
use wxpulse_runtime::events::{
    ArticleRead, ChatMessage, ConversationKind, Direction, MenuClick, MenuEvent, MsgType, QrEvent,
    QrScan, ReadSource,
};

use crate::produce::Outgoing;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// RNG seed: same seed, same records.
    pub seed: u64,
    /// Brands.
    pub brands: u32,
    /// Official Accounts per brand.
    pub accounts_per_brand: u32,
    /// Fans per account.
    pub fans_per_account: u32,
    /// Distinct valid interactions.
    pub events: u64,
    /// Event times are spread over [start_ms, end_ms).
    pub start_ms: i64,
    /// End of the span.
    pub end_ms: i64,
    /// Share of extra copies of valid events (upstream retries).
    pub duplicate_share: f64,
    /// Share of valid events that arrive hours to days late.
    pub late_share: f64,
    /// Share of extra malformed records.
    pub malformed_share: f64,
}

/// The four interaction streams with their topic and share of interactions (seed 000).
pub const STREAMS: [(&str, &str, f64); 4] = [
    ("menu_click", "wxpulse.menu_clicks", 0.70),
    ("article_read", "wxpulse.article_reads", 0.13),
    ("chat_message", "wxpulse.chat_messages", 0.11),
    ("qr_scan", "wxpulse.qr_scans", 0.06),
];

/// When an upstream retry arrives after the original (WeChat: 5 s timeout, then retry).
const RETRY_AFTER_MS: i64 = 5_000;

/// Menu buttons: (key, category, is a URL).
const BUTTONS: [(&str, &str, MenuEvent); 9] = [
    ("SHOP_NEW_ARRIVALS", "ECOMMERCE", MenuEvent::Click),
    ("https://mall.example.com/", "ECOMMERCE", MenuEvent::View),
    ("pages/mall/index", "ECOMMERCE", MenuEvent::ViewMiniprogram),
    ("BRAND_STORY", "BRAND_INFO", MenuEvent::Click),
    (
        "https://brand.example.com/collections",
        "BRAND_INFO",
        MenuEvent::View,
    ),
    ("LOOKBOOK", "BRAND_INFO", MenuEvent::Click),
    ("MEMBER_CENTER", "CRM", MenuEvent::Click),
    ("CONTACT_SERVICE", "CRM", MenuEvent::Click),
    ("pages/booking/index", "CRM", MenuEvent::ViewMiniprogram),
];
/// Category weights per button so categories come out 45 / 33 / 22.
const BUTTON_WEIGHTS: [f64; 9] = [15.0, 15.0, 15.0, 11.0, 11.0, 11.0, 7.34, 7.33, 7.33];

/// The generator's own tally of what the pipeline must end up with.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct GroundTruth {
    /// Distinct valid events per stream.
    pub events: BTreeMap<String, u64>,
    /// Distinct valid events per stream and account.
    pub events_by_account: BTreeMap<String, BTreeMap<String, u64>>,
    /// Extra copies produced (must not be counted).
    pub duplicates: u64,
    /// Late (but within lateness) events among the valid ones.
    pub late: u64,
    /// Malformed records per dead-letter reason (metric label names).
    pub dead_letters: BTreeMap<String, u64>,
    /// Menu clicks per category.
    pub menu_categories: BTreeMap<String, u64>,
    /// Records produced in all.
    pub records: u64,
}

struct Ids {
    rng: ChaCha8Rng,
}

impl Ids {
    fn uuid(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.rng.gen())
            .into_uuid()
            .to_string()
    }
}

/// Generates the records (in production order) and the ground truth.
pub fn generate(spec: &Spec) -> (Vec<Outgoing>, GroundTruth) {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut ids = Ids {
        rng: ChaCha8Rng::seed_from_u64(spec.seed ^ 0x5eed),
    };
    let stream_pick = WeightedIndex::new(STREAMS.iter().map(|s| s.2)).expect("positive weights");
    let button_pick = WeightedIndex::new(BUTTON_WEIGHTS).expect("positive weights");
    let mut truth = GroundTruth::default();
    let mut out: Vec<Outgoing> = Vec::with_capacity(spec.events as usize);
    let mut copies: Vec<Outgoing> = Vec::new();
    let schema = |subject: &str| {
        let s = EMBEDDED
            .iter()
            .find(|s| s.subject == subject && s.version == 1)
            .expect("v1 of every event subject is embedded");
        (s.id, codec::parse(s.json).expect("embedded schemas parse"))
    };
    let schemas: Vec<(u32, serde_avro_fast::Schema)> = STREAMS
        .iter()
        .map(|(_, topic, _)| schema(&format!("{topic}-value")))
        .collect();
    let accounts: Vec<String> = (0..spec.brands)
        .flat_map(|b| (0..spec.accounts_per_brand).map(move |a| format!("wxb{b:02}a{a:02}")))
        .collect();
    let span = (spec.end_ms - spec.start_ms).max(1);
    let events = spec.events.max(1) as i128;
    for i in 0..spec.events {
        let s = stream_pick.sample(&mut rng);
        let (stream, topic, _) = STREAMS[s];
        let app_id = accounts[rng.gen_range(0..accounts.len())].as_str();
        let fan = rng.gen_range(0..spec.fans_per_account);
        let openid = format!("o{app_id}_{fan:06}");
        let unionid = (fan % 5 != 0).then(|| format!("u{}_{fan:06}", &app_id[..5]));
        // The gateway stamps server_time on receipt, so it grows with production order;
        // it is the client time that arrives late and out of order.
        // Exact in i128: at more than 1000 events/s a per-event step in whole ms would be 0.
        let slot = |k: i128| spec.start_ms + (k * span as i128 / events) as i64;
        let server_time =
            slot(i as i128) + rng.gen_range(0..(slot(i as i128 + 1) - slot(i as i128)).max(1));
        let late = rng.gen_bool(spec.late_share);
        let delay = if late {
            rng.gen_range(3_600_000..3 * 86_400_000)
        } else {
            rng.gen_range(50..3_000)
        };
        let client_time = server_time - delay;
        let event_id = ids.uuid();
        let h = (
            event_id.as_str(),
            app_id,
            openid.as_str(),
            unionid.as_deref(),
            client_time,
            server_time,
        );
        let (schema_id, schema) = (&schemas[s].0, &schemas[s].1);
        let mut payload = Vec::with_capacity(160);
        let encoded = match stream {
            "menu_click" => {
                let b = button_pick.sample(&mut rng);
                *truth
                    .menu_categories
                    .entry(BUTTONS[b].1.to_string())
                    .or_default() += 1;
                let e = MenuClick {
                    event_id: h.0,
                    app_id: h.1,
                    openid: h.2,
                    unionid: h.3,
                    client_time: h.4,
                    server_time: h.5,
                    event: BUTTONS[b].2,
                    event_key: BUTTONS[b].0,
                    menu_id: None,
                };
                codec::encode_into(&e, *schema_id, schema, &mut payload)
            }
            "article_read" => {
                let idx = if rng.gen_bool(0.75) {
                    1
                } else {
                    rng.gen_range(2..=4)
                };
                let msgid = 1_000 + rng.gen_range(0..20);
                let article_id = format!("{app_id}_{msgid}_{idx}");
                let e = ArticleRead {
                    event_id: h.0,
                    app_id: h.1,
                    openid: h.2,
                    unionid: h.3,
                    client_time: h.4,
                    server_time: h.5,
                    article_id: &article_id,
                    msgid,
                    idx,
                    source: [
                        ReadSource::Push,
                        ReadSource::Chat,
                        ReadSource::Moments,
                        ReadSource::Search,
                        ReadSource::History,
                    ][rng.gen_range(0..5)],
                    read_depth: rng.gen_range(0.5..15.0),
                    read_seconds: rng.gen_range(3..600),
                    shared: rng.gen_bool(0.05),
                    favorited: rng.gen_bool(0.02),
                    cta_clicked: rng.gen_bool(0.08),
                };
                codec::encode_into(&e, *schema_id, schema, &mut payload)
            }
            "chat_message" => {
                let (conversation, direction) = match rng.gen_range(0..10) {
                    0..=1 => (ConversationKind::OfficialAccount, Direction::FanToBrand),
                    2..=4 => (ConversationKind::WecomPrivate, Direction::FanToAssociate),
                    5..=7 => (ConversationKind::WecomPrivate, Direction::AssociateToFan),
                    _ => (ConversationKind::WecomGroup, Direction::FanToAssociate),
                };
                let userid = format!("assoc_{:03}", fan % 40);
                let e = ChatMessage {
                    event_id: h.0,
                    app_id: h.1,
                    openid: h.2,
                    unionid: h.3,
                    client_time: h.4,
                    server_time: h.5,
                    msg_id: rng.gen(),
                    conversation,
                    direction,
                    msg_type: [
                        MsgType::Text,
                        MsgType::Text,
                        MsgType::Text,
                        MsgType::Image,
                        MsgType::Voice,
                        MsgType::Miniprogram,
                    ][rng.gen_range(0..6)],
                    userid: (conversation != ConversationKind::OfficialAccount)
                        .then_some(userid.as_str()),
                    chat_id: (conversation == ConversationKind::WecomGroup).then_some("wrgroup01"),
                    content: Some("您好，请问这款包还有货吗？"),
                    content_length: 13,
                };
                codec::encode_into(&e, *schema_id, schema, &mut payload)
            }
            _ => {
                let subscribe = rng.gen_bool(0.4);
                let scene = format!("store_{:04}", rng.gen_range(0..50));
                let key = if subscribe {
                    format!("qrscene_{scene}")
                } else {
                    scene
                };
                let e = QrScan {
                    event_id: h.0,
                    app_id: h.1,
                    openid: h.2,
                    unionid: h.3,
                    client_time: h.4,
                    server_time: h.5,
                    event: if subscribe {
                        QrEvent::Subscribe
                    } else {
                        QrEvent::Scan
                    },
                    event_key: &key,
                    ticket: None,
                };
                codec::encode_into(&e, *schema_id, schema, &mut payload)
            }
        };
        encoded.expect("generated events match their schema");
        *truth.events.entry(stream.to_string()).or_default() += 1;
        *truth
            .events_by_account
            .entry(stream.to_string())
            .or_default()
            .entry(app_id.to_string())
            .or_default() += 1;
        truth.late += u64::from(late);
        let record = Outgoing {
            topic,
            key: format!("{app_id}|{openid}").into_bytes(),
            payload: Some(payload),
            at_ms: server_time,
        };
        // WeChat retries an event 5 s after a timeout: the gateway receives the copy (same
        // bytes, same event_id) about 5 s of server time later, whatever the traffic.
        while copies
            .first()
            .is_some_and(|c| c.at_ms + RETRY_AFTER_MS <= server_time)
        {
            out.push(copies.remove(0));
        }
        if rng.gen_bool(spec.duplicate_share) {
            copies.push(record.clone());
            truth.duplicates += 1;
        }
        out.push(record);
        if rng.gen_bool(spec.malformed_share) {
            let (reason, bad) = malformed(&mut rng, &mut ids, topic, *schema_id);
            *truth.dead_letters.entry(reason.to_string()).or_default() += 1;
            out.push(bad);
        }
    }
    out.append(&mut copies);
    truth.records = out.len() as u64;
    (out, truth)
}

/// One malformed record of a random kind, and the dead-letter reason it must get.
fn malformed(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(events: u64) -> Spec {
        Spec {
            seed: 7,
            brands: 2,
            accounts_per_brand: 2,
            fans_per_account: 500,
            events,
            start_ms: 1_760_000_000_000,
            end_ms: 1_760_000_000_000 + 30 * 86_400_000,
            duplicate_share: 0.02,
            late_share: 0.03,
            malformed_share: 0.01,
        }
    }

    #[test]
    fn deterministic_by_seed() {
        let (a, ta) = generate(&spec(2_000));
        let (b, tb) = generate(&spec(2_000));
        assert_eq!(ta, tb);
        assert_eq!(a.len(), b.len());
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x.payload == y.payload && x.key == y.key));
    }

    #[test]
    fn shares_follow_the_seed_report() {
        let (records, truth) = generate(&spec(50_000));
        let total: u64 = truth.events.values().sum();
        assert_eq!(total, 50_000);
        let share = |s: &str| truth.events[s] as f64 / total as f64;
        assert!((share("menu_click") - 0.70).abs() < 0.01);
        assert!((share("qr_scan") - 0.06).abs() < 0.01);
        let menu = truth.events["menu_click"] as f64;
        assert!((truth.menu_categories["ECOMMERCE"] as f64 / menu - 0.45).abs() < 0.015);
        assert!((truth.menu_categories["CRM"] as f64 / menu - 0.22).abs() < 0.015);
        let bad: u64 = truth.dead_letters.values().sum();
        assert_eq!(records.len() as u64, total + truth.duplicates + bad);
    }

    #[test]
    fn server_times_spread_over_the_span_even_above_1000_per_second() {
        // 20k events in one second: the live benchmark's rate.
        let spec = Spec {
            end_ms: 1_760_000_000_000 + 1_000,
            ..spec(20_000)
        };
        let spec = Spec {
            start_ms: 1_760_000_000_000,
            malformed_share: 0.0,
            ..spec
        };
        let (records, truth) = generate(&spec);
        let times: Vec<i64> = records.iter().map(|r| r.at_ms).collect();
        let (lo, hi) = (times.iter().min().copied(), times.iter().max().copied());
        assert!(
            matches!((lo, hi), (Some(lo), Some(hi)) if hi - lo >= 990),
            "{lo:?}..{hi:?}"
        );
        // Retry copies trail their original by >= 5 s of server time, so within one
        // second of traffic they all come out at the end, still inside the dedup window.
        assert_eq!(records.len() as u64, 20_000 + truth.duplicates);
    }
}
