//! `wxpulse-generate`: synthetic WeChat telemetry shaped by the seed report, deterministic
//! by seed, with duplicates, late events and malformed records, and its own ground truth.
//!
//! Shapes (seed 000, H1 2020): stream mix 70/13/11/6 (menu, article, chat, QR), exact to
//! the unit; menu categories e-commerce 45%, brand/product info 33%, CRM 22%; a long tail
//! of fan activity (about 1 in 11 followers interacts more than 4 times a month); push
//! reads at the seed's open rates by position, read depth through its two survival
//! points; QR follows scanned at the profiles' follow times; associates answering most
//! fans within minutes, some after hours, some never. Events reference the [`World`]
//! (buttons, scenes, articles, associates, fans), but for a configurable share of keys no
//! dimension record has.
//!
//! The events are planned first (`plan`: who does what when), then encoded in server-time
//! order. The ground truth is tallied from the plan and the world's records — never by
//! reading the pipeline's output — so tests compare two independent computations.

mod conversions;
#[cfg(test)]
mod conversions_check;
mod orders;
mod plan;
mod records;
mod touch;
mod truth;

use std::collections::BTreeMap;

use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use wxpulse_runtime::codec::{self, EMBEDDED};
use wxpulse_runtime::enrich::{Dimension, MenuCategory, SceneChannel};
use wxpulse_runtime::events::{
    ArticleRead, ChatMessage, ConversationKind, Direction, MenuClick, MsgType, QrEvent, QrScan,
};

pub use conversions::{
    month_date, AssociateCredit, ConversionShapes, Conversions, Credited, FunnelRow, FunnelShape,
    OrdersDay, PushCredit, SceneCredit, TouchKind, TouchTotals, ACTIVE_OVER, ATTRIBUTION_WINDOW_MS,
    MODELS,
};
pub use orders::{model, Model, CLOTHING, LUXURY, ORDERS_TOPIC, PURCHASES_PER_EVENT, REFUND_SHARE};
pub use plan::{
    depth_weibull, DEPTH_POINTS, OPEN_MULTI_CUMULATIVE, OPEN_MULTI_FIRST, OPEN_SINGLE,
    SEGMENTED_LIFT,
};
pub use truth::{
    source_name, AccountActivity, ArticleTruth, AssociateDay, AssociateMonth, AssociateTruth,
    FollowCounts, Heatmap, MonthActivity, PushTruth, Reads, Report, Shapes, SCREENS,
};

use records::{as_foreign_account, malformed, Ids};

use crate::world::{self, World};
use wxpulse_cli::produce::Outgoing;

pub use crate::spec::{Spec, RETRY_AFTER_MS, STREAMS, UNKNOWN};

/// What a fan writes and what associates answer (text messages only; never stored).
const FAN_TEXTS: [&str; 3] = [
    "您好，请问这款包还有货吗？",
    "请问周末可以预约到店吗？",
    "会员积分怎么查询？",
];
const REPLY_TEXTS: [&str; 3] = [
    "您好，有的，欢迎到店试背。",
    "可以的，已为您预约周六下午。",
    "您好，在会员中心即可查看积分。",
];

/// The generator's own tally of what the pipeline must end up with.
///
/// Dimension tallies resolve the keys the events carry through the world's records, as
/// the pipeline must; names are the ones rows carry (lowercase), and `unknown` stands for
/// a key no record has, as the pipeline's marker does.
///
/// The BI figures ([`Report`], flattened into the same JSON object) count each valid
/// event once (retry copies dropped, malformed records dead-lettered), by event time (the
/// client time, late events included where they happened), in Asia/Shanghai days, months,
/// weekdays and hours, with the definitions of `schemas/clickhouse/VIEWS.md`. Engagement
/// per push is the views' one: fans who read any article of the push from any source /
/// fans reached ([`PushTruth`]). It is at least the push's open rate, so the seed's 6.33%
/// (unsegmented) and 7.86% (segmented), a measure below its own 7.68% open rate, cannot
/// both hold with the open rates; the generator keeps their ratio instead: every rate of a
/// segmented push is [`SEGMENTED_LIFT`] (7.86 / 6.33) times an unsegmented one.
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
    /// Menu clicks per category, by Avro symbol (`ECOMMERCE`, `BRAND_INFO`, `CRM`, and
    /// `UNKNOWN` for keys no button has); the same counts as `menu_clicks_by_category`.
    pub menu_categories: BTreeMap<String, u64>,
    /// Records produced to the interaction topics in all (dimension records and orders not
    /// included: see [`Conversions::records`]).
    pub records: u64,
    /// Menu clicks per category as the button records resolve `app_id|event_key`
    /// (`ecommerce`, `brand_info`, `crm`, `unknown`).
    pub menu_clicks_by_category: BTreeMap<String, u64>,
    /// QR scans (subscribe and scan) per channel of their scene (`store`, `associate`,
    /// `event`, `article`, `ad`, `packaging`, `payment`, `unknown`).
    pub qr_scans_by_channel: BTreeMap<String, u64>,
    /// New follows (`SUBSCRIBE` scans) per channel of their scene.
    pub new_follows_by_channel: BTreeMap<String, u64>,
    /// Events that carry a key their dimension has no record of, per dimension: menu clicks
    /// with an unknown button, scans of an unknown scene, reads of an unknown article, WeCom
    /// messages of an unknown associate, and every event of a fan without a profile.
    /// Every dimension is listed, with 0 when nothing misses.
    pub dimension_missing: BTreeMap<String, u64>,
    /// Events per stream and relationship segment of the fan's profile (`prospect`,
    /// `customer`, `vip`; `unknown` for fans without one).
    pub events_by_segment: BTreeMap<String, BTreeMap<String, u64>>,
    /// Records of the world per dimension (what `generate` publishes unless told not to).
    pub dimension_records: BTreeMap<String, u64>,
    /// The BI report's figures: fan activity, pushes and articles, follows, associates,
    /// push heatmap and headline shapes (see [`Report`]; JSON keys at the top level).
    #[serde(flatten)]
    pub report: Report,
    /// Orders (`wxpulse.orders`, not interactions: none of the figures above count them)
    /// and the attribution and funnel views' figures (see [`Conversions`]).
    pub conversions: Conversions,
}

impl GroundTruth {
    fn miss(&mut self, dimension: Dimension) {
        *self
            .dimension_missing
            .entry(dimension.as_str().to_string())
            .or_default() += 1;
    }
}

/// Generates the records (in production order) and the ground truth, in the world of
/// `spec` (see [`generate_with`]).
pub fn generate(spec: &Spec) -> (Vec<Outgoing>, GroundTruth) {
    generate_with(spec, &World::new(spec))
}

/// Generates the events of `spec` in `world`: their keys are the world's, but for the
/// `unknown_dimension_share` that reference keys no record has. The world may have been
/// built for an earlier span of the same length (live mode publishes it first, then
/// starts the events when that is done).
pub fn generate_with(spec: &Spec, world: &World) -> (Vec<Outgoing>, GroundTruth) {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut ids = Ids {
        rng: ChaCha8Rng::seed_from_u64(spec.seed ^ 0x5eed),
    };
    let mut truth = GroundTruth::default();
    for d in Dimension::ALL {
        truth.dimension_missing.insert(d.as_str().to_string(), 0);
    }
    for (d, n) in world.record_counts() {
        truth
            .dimension_records
            .insert(d.as_str().to_string(), n as u64);
    }
    let offset = spec.start_ms - world.span.0;
    let planned = plan::plan(spec, world, offset);
    let mut out: Vec<Outgoing> = Vec::with_capacity(planned.len() + planned.len() / 32);
    let mut copies: std::collections::VecDeque<Outgoing> = Default::default();
    // Re-sends by the server time they arrive at.
    let mut resends: std::collections::BTreeMap<i64, Vec<Outgoing>> = Default::default();
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
    let unknown = spec.unknown_dimension_share;
    // Qualifying touches of the orders' attribution (associate chats, push or CTA reads,
    // scans, e-commerce clicks), with their event ids.
    let mut touches: Vec<conversions::Touch> = Vec::new();
    for (index, e) in planned.iter().enumerate() {
        let s = match e.what {
            plan::What::Menu => 0,
            plan::What::Read(_) => 1,
            plan::What::Chat(_) => 2,
            plan::What::Scan { .. } => 3,
        };
        let (stream, topic, _) = STREAMS[s];
        let (account, fan) = (e.account as usize, e.fan);
        let (server_time, client_time) = (e.server, e.client);
        let app_id = world.accounts[account].record.app_id.as_str();
        let openid = world::openid(app_id, fan);
        let unionid = (fan % 5 != 0).then(|| format!("u{}_{fan:06}", &app_id[..5]));
        let uuid = ids.next();
        let event_id = uuid.to_string();
        let mut menu_category = None;
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
        let encoded = match &e.what {
            plan::What::Menu => {
                let (key, event) = if rng.gen_bool(unknown) {
                    world.unknown_button(account, &mut rng)
                } else {
                    let b = world.pick_button(account, &mut rng);
                    (b.key.clone(), b.event)
                };
                let category = world.button_category(app_id, &key);
                menu_category = category;
                if category.is_none() {
                    truth.miss(Dimension::MenuButton);
                }
                let symbol = match category {
                    Some(MenuCategory::Ecommerce) => "ECOMMERCE",
                    Some(MenuCategory::BrandInfo) => "BRAND_INFO",
                    Some(MenuCategory::Crm) => "CRM",
                    Some(MenuCategory::Other) => "OTHER",
                    None => "UNKNOWN",
                };
                *truth.menu_categories.entry(symbol.to_string()).or_default() += 1;
                let name = category.map_or(UNKNOWN, MenuCategory::as_str);
                *truth
                    .menu_clicks_by_category
                    .entry(name.to_string())
                    .or_default() += 1;
                let e = MenuClick {
                    event_id: h.0,
                    app_id: h.1,
                    openid: h.2,
                    unionid: h.3,
                    client_time: h.4,
                    server_time: h.5,
                    event,
                    event_key: &key,
                    menu_id: None,
                };
                codec::encode_into(&e, *schema_id, schema, &mut payload)
            }
            plan::What::Read(read) => {
                let (article_id, msgid, idx) = match &read.article {
                    plan::Article::Known(i) => {
                        let a = &world.articles[*i];
                        (a.article_id.as_str(), a.msgid, a.idx)
                    }
                    plan::Article::Unknown { id, msgid, idx } => (id.as_str(), *msgid, *idx),
                };
                if !world.has_article(article_id) {
                    truth.miss(Dimension::Article);
                }
                let e = ArticleRead {
                    event_id: h.0,
                    app_id: h.1,
                    openid: h.2,
                    unionid: h.3,
                    client_time: h.4,
                    server_time: h.5,
                    article_id,
                    msgid,
                    idx,
                    source: read.source,
                    read_depth: read.depth,
                    read_seconds: read.seconds,
                    shared: read.shared,
                    favorited: read.favorited,
                    cta_clicked: read.cta,
                };
                codec::encode_into(&e, *schema_id, schema, &mut payload)
            }
            plan::What::Chat(chat) => {
                let userid = chat.associate.userid(world);
                if userid.is_some_and(|u| !world.has_associate(u)) {
                    truth.miss(Dimension::Associate);
                }
                let chat_id = (chat.conversation == ConversationKind::WecomGroup)
                    .then(|| format!("wrgrp_{}", userid.unwrap_or_default()));
                let msg_type = [
                    MsgType::Text,
                    MsgType::Text,
                    MsgType::Text,
                    MsgType::Image,
                    MsgType::Voice,
                    MsgType::Miniprogram,
                ][rng.gen_range(0..6)];
                let from_fan = matches!(
                    chat.direction,
                    Direction::FanToBrand | Direction::FanToAssociate
                );
                let texts = if from_fan { FAN_TEXTS } else { REPLY_TEXTS };
                let content = (msg_type == MsgType::Text).then(|| texts[rng.gen_range(0..3)]);
                let e = ChatMessage {
                    event_id: h.0,
                    app_id: h.1,
                    openid: h.2,
                    unionid: h.3,
                    client_time: h.4,
                    server_time: h.5,
                    msg_id: rng.gen(),
                    conversation: chat.conversation,
                    direction: chat.direction,
                    msg_type,
                    userid,
                    chat_id: chat_id.as_deref(),
                    content,
                    content_length: content.map_or(0, |c| c.chars().count() as i32),
                };
                codec::encode_into(&e, *schema_id, schema, &mut payload)
            }
            plan::What::Scan { subscribe, scene } => {
                let scene = match scene {
                    plan::Scene::Known(i) => world.scenes[*i].scene.as_str(),
                    plan::Scene::Unknown(s) => s.as_str(),
                };
                let channel = world.scene_channel(scene);
                if channel.is_none() {
                    truth.miss(Dimension::QrScene);
                }
                let channel = channel.map_or(UNKNOWN, SceneChannel::as_str).to_string();
                *truth
                    .qr_scans_by_channel
                    .entry(channel.clone())
                    .or_default() += 1;
                if *subscribe {
                    *truth.new_follows_by_channel.entry(channel).or_default() += 1;
                }
                let key = if *subscribe {
                    format!("qrscene_{scene}")
                } else {
                    scene.to_string()
                };
                let e = QrScan {
                    event_id: h.0,
                    app_id: h.1,
                    openid: h.2,
                    unionid: h.3,
                    client_time: h.4,
                    server_time: h.5,
                    event: if *subscribe {
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
        if let Some(kind) = conversions::touch_kind(world, e, menu_category) {
            touches.push(conversions::Touch {
                index: index as u32,
                kind,
                event_id: uuid.as_u128(),
            });
        }
        let segment = match world.fan(account, fan) {
            Some(f) => world::segment_name(f.status),
            None => {
                truth.miss(Dimension::FanProfile);
                UNKNOWN
            }
        };
        *truth
            .events_by_segment
            .entry(stream.to_string())
            .or_default()
            .entry(segment.to_string())
            .or_default() += 1;
        *truth.events.entry(stream.to_string()).or_default() += 1;
        *truth
            .events_by_account
            .entry(stream.to_string())
            .or_default()
            .entry(app_id.to_string())
            .or_default() += 1;
        truth.late += u64::from(e.late);
        let record = Outgoing {
            topic,
            key: format!("{app_id}|{openid}").into_bytes(),
            payload: Some(payload),
            at_ms: server_time,
        };
        // WeChat retries an event 5 s after a timeout: the gateway receives the copy (same
        // bytes, same event_id) about 5 s of server time later, whatever the traffic.
        while copies
            .front()
            .is_some_and(|c| c.at_ms + RETRY_AFTER_MS <= server_time)
        {
            out.extend(copies.pop_front());
        }
        if rng.gen_bool(spec.duplicate_share) {
            copies.push_back(record.clone());
            truth.duplicates += 1;
        }
        if spec.resend_share > 0.0 && rng.gen_bool(spec.resend_share) {
            const MINUTE: i64 = 60_000;
            let delay = match rng.gen_range(0..3) {
                0 => rng.gen_range(MINUTE..60 * MINUTE),
                1 => rng.gen_range(60 * MINUTE..1_440 * MINUTE),
                _ => rng.gen_range(1_440 * MINUTE..3 * 1_440 * MINUTE),
            };
            resends
                .entry(server_time + delay)
                .or_default()
                .push(record.clone());
            truth.duplicates += 1;
        }
        if spec.unknown_account_share > 0.0 && rng.gen_bool(spec.unknown_account_share) {
            let foreign = format!("wxforeign{:02}", rng.gen_range(0..5));
            let event_id = ids.next().to_string();
            let payload = record
                .payload
                .as_deref()
                .and_then(|p| as_foreign_account(p, &event_id, &foreign))
                .expect("generated events begin with event_id and app_id");
            out.push(Outgoing {
                topic,
                key: format!("{foreign}|{openid}").into_bytes(),
                payload: Some(payload),
                at_ms: server_time,
            });
            *truth
                .dead_letters
                .entry("unknown_account".to_string())
                .or_default() += 1;
        }
        out.push(record);
        // Re-sends due by now arrive after this event (the first one received past due).
        while let Some(entry) = resends.first_entry() {
            if *entry.key() > server_time {
                break;
            }
            out.extend(entry.remove());
        }
        if rng.gen_bool(spec.malformed_share) {
            let (reason, bad) = malformed(&mut rng, &mut ids, topic, *schema_id);
            *truth.dead_letters.entry(reason.to_string()).or_default() += 1;
            out.push(bad);
        }
    }
    out.extend(copies);
    out.extend(resends.into_values().flatten());
    truth.records = out.len() as u64;
    truth.report = truth::tally(spec, world, &planned);
    // Orders after the interactions they follow, on their own random streams: the records
    // above are the same with or without them.
    let interactions = truth::interactions(&planned);
    let orders = orders::plan(spec, world, offset, &planned, &touches, &interactions);
    let (order_records, produced) = orders::encode(spec, world, &orders);
    let out = orders::merge(out, order_records);
    truth.conversions = conversions::tally(
        world,
        &planned,
        &touches,
        &orders,
        &interactions,
        produced,
        spec.events,
    );
    (out, truth)
}

#[cfg(test)]
pub(crate) use records::Frames;
// The tests read records with the same event types (`use super::*`).
#[cfg(test)]
use wxpulse_runtime::events::MenuEvent;

#[cfg(test)]
mod tests;
