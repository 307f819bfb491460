//! The conversions' ground truth recomputed the way migration 0007 reads the data: from
//! the records produced (malformed ones dead-lettered, retry copies dropped by event id)
//! and the published dimension records, with none of the generator's plan — a second
//! computation of every figure [`super::Conversions`] holds.

use std::collections::{BTreeMap, HashMap, HashSet};

use wxpulse_runtime::codec;
use wxpulse_runtime::enrich::{DimensionRecord, MenuCategory};
use wxpulse_runtime::events::{
    ArticleRead, ChatMessage, ConversationKind, MenuClick, QrScan, ReadSource,
};

use super::orders::decoded::{self, KindIn, OrderIn};
use super::{generate_with, Frames, Spec, ATTRIBUTION_WINDOW_MS, MODELS};
use crate::world::{self, World};

mod funnel;
mod rows;

use funnel::check_funnel;
use rows::{close, same, Fan, Sums, TouchRow};

#[test]
fn conversions_match_the_records_as_migration_0007_reads_them() {
    // Two calendar months, so months and the funnel's periods are exercised.
    let start = world::month_start_ms(202610) + 10 * world::DAY_MS;
    let spec = Spec {
        seed: 17,
        brands: 2,
        accounts_per_brand: 2,
        fans_per_account: 3_000,
        events: 80_000,
        start_ms: start,
        end_ms: start + 40 * world::DAY_MS,
        duplicate_share: 0.02,
        resend_share: 0.0,
        late_share: 0.05,
        malformed_share: 0.01,
        unknown_dimension_share: 0.03,
        unknown_account_share: 0.0,
    };
    let world = World::new(&spec);
    let (records, truth) = generate_with(&spec, &world);
    let c = &truth.conversions;

    // The dimensions as published.
    let mut buttons = HashMap::new();
    let mut scenes = HashMap::new();
    let mut articles = HashMap::new();
    let mut associates: HashMap<String, String> = HashMap::new();
    let mut regions: HashMap<String, String> = HashMap::new();
    let mut profiles: HashMap<Fan, String> = HashMap::new();
    let mut brands: HashMap<String, String> = HashMap::new();
    for r in world.dimension_records() {
        match r {
            DimensionRecord::MenuButton(b) => {
                buttons.insert((b.app_id, b.event_key), b.category);
            }
            DimensionRecord::QrScene(q) => {
                scenes.insert(q.scene.clone(), q);
            }
            DimensionRecord::Article(a) => {
                articles.insert(a.article_id.clone(), a);
            }
            DimensionRecord::Associate(a) => {
                associates.insert(a.userid, a.store_id);
            }
            DimensionRecord::Store(s) => {
                regions.insert(s.store_id, s.region);
            }
            DimensionRecord::FanProfile(f) => {
                profiles.insert((f.app_id, f.openid), f.associate_userid.unwrap_or_default());
            }
            DimensionRecord::Account(a) => {
                brands.insert(a.app_id, a.brand);
            }
            // The generated world publishes follows on the profiles, not through callbacks.
            DimensionRecord::FanFollow(_) | DimensionRecord::AssociateContact(_) => {}
        }
    }
    let unknown = || "unknown".to_string();
    let region = |store: &str| regions.get(store).cloned().unwrap_or_else(unknown);
    let place = |userid: &str| match associates.get(userid) {
        Some(store) => (store.clone(), region(store)),
        None => (unknown(), unknown()),
    };

    // Touches and interactions from the valid event records.
    let frames = Frames::new();
    let mut seen = HashSet::new();
    let mut touches: HashMap<Fan, Vec<TouchRow>> = HashMap::new();
    let mut interactions: HashMap<Fan, BTreeMap<u32, u64>> = HashMap::new();
    for r in records.iter().filter(|r| r.topic != super::ORDERS_TOPIC) {
        let Some((schema, datum)) = frames.of(r) else {
            continue;
        };
        macro_rules! valid {
            ($t:ty) => {{
                let Ok(e) = codec::decode::<$t>(datum, schema) else {
                    continue;
                };
                if e.openid.is_empty() || !seen.insert(e.event_id.to_string()) {
                    continue;
                }
                e
            }};
        }
        let (app, openid, t, touch) = match r.topic {
            "wxpulse.menu_clicks" => {
                let e = valid!(MenuClick<'_>);
                let key = (e.app_id.to_string(), e.event_key.to_string());
                let touch = (buttons.get(&key) == Some(&MenuCategory::Ecommerce))
                    .then(|| TouchRow::new(e.client_time, e.event_id, "menu_ecommerce"));
                (e.app_id, e.openid, e.client_time, touch)
            }
            "wxpulse.article_reads" => {
                let e = valid!(ArticleRead<'_>);
                let touch = (e.source == ReadSource::Push || e.cta_clicked).then(|| {
                    let a = articles.get(e.article_id);
                    TouchRow {
                        msgid: a.map_or(e.msgid, |a| a.msgid),
                        article_id: e.article_id.to_string(),
                        campaign: a
                            .map_or_else(unknown, |a| a.campaign.clone().unwrap_or_default()),
                        ..TouchRow::new(e.client_time, e.event_id, "article")
                    }
                });
                (e.app_id, e.openid, e.client_time, touch)
            }
            "wxpulse.chat_messages" => {
                let e = valid!(ChatMessage<'_>);
                let userid = e.userid.unwrap_or_default();
                let touch = (e.conversation == ConversationKind::WecomPrivate
                    && !userid.is_empty())
                .then(|| {
                    let (store_id, region) = place(userid);
                    TouchRow {
                        associate_userid: userid.to_string(),
                        store_id,
                        region,
                        ..TouchRow::new(e.client_time, e.event_id, "associate_chat")
                    }
                });
                (e.app_id, e.openid, e.client_time, touch)
            }
            _ => {
                let e = valid!(QrScan<'_>);
                let scene = e.event_key.strip_prefix("qrscene_").unwrap_or(e.event_key);
                let row = TouchRow::new(e.client_time, e.event_id, "qr_scan");
                let touch = match scenes.get(scene) {
                    None => TouchRow {
                        associate_userid: unknown(),
                        store_id: unknown(),
                        region: unknown(),
                        scene: scene.to_string(),
                        qr_channel: unknown(),
                        ..row
                    },
                    Some(s) => {
                        let store = s
                            .store_id
                            .clone()
                            .or_else(|| s.userid.as_ref().and_then(|u| associates.get(u).cloned()));
                        TouchRow {
                            associate_userid: s.userid.clone().unwrap_or_default(),
                            region: store.as_deref().map_or(String::new(), region),
                            store_id: store.unwrap_or_default(),
                            scene: scene.to_string(),
                            qr_channel: s.channel.as_str().to_string(),
                            ..row
                        }
                    }
                };
                (e.app_id, e.openid, e.client_time, Some(touch))
            }
        };
        let fan = (app.to_string(), openid.to_string());
        *interactions
            .entry(fan.clone())
            .or_default()
            .entry(world::shanghai(t).yyyymm())
            .or_default() += 1;
        if let Some(touch) = touch {
            touches.entry(fan).or_default().push(touch);
        }
    }

    // Orders: valid records once each; a purchase is the first row of its order.
    let mut orders: Vec<OrderIn> = Vec::new();
    let mut ids = HashSet::new();
    for (_, o) in decoded::orders(&records) {
        if o.invalid().is_none() && ids.insert(o.event_id.clone()) {
            orders.push(o);
        }
    }
    let mut first: BTreeMap<Fan, &OrderIn> = BTreeMap::new();
    for o in orders.iter().filter(|o| o.kind == KindIn::Purchase) {
        let e = first
            .entry((o.app_id.clone(), o.order_id.clone()))
            .or_insert(o);
        if (o.order_time, &o.event_id) < (e.order_time, &e.event_id) {
            *e = o;
        }
    }
    let mut credits: HashMap<Fan, Vec<Vec<(TouchRow, f64)>>> = HashMap::new();
    for (key, p) in &first {
        let per_model = match p.share_code.as_deref().filter(|s| !s.is_empty()) {
            Some(code) => {
                let (store_id, region) = place(code);
                let row = TouchRow {
                    associate_userid: code.to_string(),
                    store_id,
                    region,
                    ..TouchRow::new(0, "", "share_code")
                };
                vec![vec![(row, 1.0)]; 3]
            }
            None => {
                let fan = (p.app_id.clone(), p.openid.clone());
                let mut cands: Vec<TouchRow> = touches
                    .get(&fan)
                    .into_iter()
                    .flatten()
                    .filter(|t| {
                        p.order_time - ATTRIBUTION_WINDOW_MS <= t.time && t.time <= p.order_time
                    })
                    .cloned()
                    .collect();
                cands.sort_by(|a, b| (a.time, &a.event_id).cmp(&(b.time, &b.event_id)));
                match (cands.first(), cands.last()) {
                    (Some(f), Some(l)) => {
                        let n = cands.len() as f64;
                        vec![
                            vec![(l.clone(), 1.0)],
                            vec![(f.clone(), 1.0)],
                            cands.iter().map(|t| (t.clone(), 1.0 / n)).collect(),
                        ]
                    }
                    _ => vec![vec![(TouchRow::new(0, "", "none"), 1.0)]; 3],
                }
            }
        };
        credits.insert(key.clone(), per_model);
    }
    let unmatched = vec![vec![(TouchRow::new(0, "", "unmatched_refund"), 1.0)]; 3];

    // Credit rows into the views' groups.
    let mut by_touch: BTreeMap<Vec<String>, Sums> = BTreeMap::new();
    let mut by_associate: BTreeMap<Vec<String>, Sums> = BTreeMap::new();
    let mut by_push: BTreeMap<Vec<String>, Sums> = BTreeMap::new();
    let mut by_scene: BTreeMap<Vec<String>, Sums> = BTreeMap::new();
    let rows = first
        .values()
        .copied()
        .chain(orders.iter().filter(|o| o.kind == KindIn::Refund));
    let mut unmatched_refunds = 0;
    for o in rows {
        let purchase = o.kind == KindIn::Purchase;
        let key = (o.app_id.clone(), o.order_id.clone());
        let per_model = match credits.get(&key) {
            Some(c) => c,
            None => {
                unmatched_refunds += 1;
                &unmatched
            }
        };
        let day = world::shanghai(o.order_time).date();
        let month = format!("{}-01", &day[..7]);
        let fan = (o.app_id.clone(), o.openid.clone());
        for (m, list) in per_model.iter().enumerate() {
            let model = MODELS[m].to_string();
            for (t, w) in list {
                let add = |map: &mut BTreeMap<Vec<String>, Sums>, key: Vec<String>| {
                    let s = map.entry(key).or_default();
                    let amount = o.amount_fen as f64 * w;
                    if purchase {
                        s.orders += w;
                        s.gross += amount;
                        s.buyers.insert(fan.clone());
                        if t.touch == "share_code" {
                            s.share_code_orders += w;
                        }
                    } else {
                        s.refunds += w;
                        s.refunded += amount;
                    }
                };
                add(&mut by_touch, vec![model.clone(), t.touch.to_string()]);
                let head = vec![
                    month.clone(),
                    o.app_id.clone(),
                    o.currency.clone(),
                    model.clone(),
                ];
                if !t.associate_userid.is_empty() {
                    let mut k = head.clone();
                    k.extend([
                        t.associate_userid.clone(),
                        t.store_id.clone(),
                        t.region.clone(),
                    ]);
                    add(&mut by_associate, k);
                }
                if t.touch == "article" {
                    let mut k = head.clone();
                    k.extend([
                        t.msgid.to_string(),
                        t.article_id.clone(),
                        t.campaign.clone(),
                    ]);
                    add(&mut by_push, k);
                }
                if t.touch == "qr_scan" {
                    let mut k = head.clone();
                    k.extend([t.scene.clone(), t.qr_channel.clone()]);
                    add(&mut by_scene, k);
                }
            }
        }
    }
    assert_eq!(unmatched_refunds, c.unmatched_refunds);
    assert!(unmatched_refunds > 0);
    let nan = f64::NAN;
    let figures = |x: &super::Credited, share: f64| {
        [
            x.orders,
            x.refunds,
            x.gross_fen,
            x.refunded_fen,
            share,
            x.buyers as f64,
        ]
    };
    for t in &c.by_touch {
        assert!(close(
            t.credited.net_fen,
            t.credited.gross_fen - t.credited.refunded_fen
        ));
    }
    let want = c
        .by_touch
        .iter()
        .map(|t| {
            (
                vec![t.model.clone(), t.touch.clone()],
                figures(&t.credited, nan),
            )
        })
        .collect();
    same("by touch", &by_touch, &want);
    let want = c
        .by_associate
        .iter()
        .map(|r| (r.key(), figures(&r.credited, r.share_code_orders)))
        .collect();
    same("by associate", &by_associate, &want);
    let want = c
        .by_push
        .iter()
        .map(|r| (r.key(), figures(&r.credited, nan)))
        .collect();
    same("by push", &by_push, &want);
    let want = c
        .by_scene
        .iter()
        .map(|r| (r.key(), figures(&r.credited, nan)))
        .collect();
    same("by scene", &by_scene, &want);
    // What the data must exercise: every touch kind, unknown scenes, associates and
    // articles, two months.
    let touched: HashSet<&str> = c.by_touch.iter().map(|t| t.touch.as_str()).collect();
    for t in [
        "associate_chat",
        "article",
        "qr_scan",
        "menu_ecommerce",
        "share_code",
        "none",
        "unmatched_refund",
    ] {
        assert!(touched.contains(t), "{t}");
    }
    assert!(c.by_scene.iter().any(|r| r.qr_channel == "unknown"));
    assert!(c.by_push.iter().any(|r| r.campaign == "unknown"));
    assert!(c
        .by_associate
        .iter()
        .any(|r| r.store_id == "unknown" && r.associate_userid.starts_with("newhire")));
    let months: HashSet<&str> = c.by_associate.iter().map(|r| r.month.as_str()).collect();
    assert_eq!(months.len(), 2);

    // Orders per day, store and channel.
    type Day = (i64, i64, HashSet<Fan>, i64, i64, i64);
    let mut days: BTreeMap<Vec<String>, Day> = BTreeMap::new();
    let rows = first
        .values()
        .copied()
        .chain(orders.iter().filter(|o| o.kind == KindIn::Refund));
    for o in rows {
        let store = o.store_id.clone().unwrap_or_default();
        let key = vec![
            world::shanghai(o.order_time).date(),
            o.app_id.clone(),
            brands.get(&o.app_id).cloned().unwrap_or_else(unknown),
            store.clone(),
            if store.is_empty() {
                String::new()
            } else {
                region(&store)
            },
            match o.channel {
                decoded::ChannelIn::MiniProgram => "mini_program",
                decoded::ChannelIn::StorePos => "store_pos",
                decoded::ChannelIn::Other => "other",
            }
            .to_string(),
            o.currency.clone(),
        ];
        let d = days.entry(key).or_default();
        if o.kind == KindIn::Purchase {
            d.0 += 1;
            d.2.insert((o.app_id.clone(), o.openid.clone()));
            d.3 += i64::from(o.items);
            d.4 += o.amount_fen;
        } else {
            d.1 += 1;
            d.5 += o.amount_fen;
        }
    }
    let got: BTreeMap<Vec<String>, [i64; 7]> = days
        .into_iter()
        .map(|(k, d)| (k, [d.0, d.1, d.2.len() as i64, d.3, d.4, d.5, d.4 - d.5]))
        .collect();
    let want: BTreeMap<Vec<String>, [i64; 7]> = c
        .orders_daily
        .iter()
        .map(|d| {
            assert_eq!(
                d.basket_fen,
                (d.purchases > 0).then(|| d.gross_fen as f64 / d.purchases as f64)
            );
            (
                vec![
                    d.day.clone(),
                    d.app_id.clone(),
                    d.brand.clone(),
                    d.store_id.clone(),
                    d.region.clone(),
                    d.channel.clone(),
                    d.currency.clone(),
                ],
                [
                    d.purchases as i64,
                    d.refunds as i64,
                    d.buyers as i64,
                    d.items as i64,
                    d.gross_fen,
                    d.refunded_fen,
                    d.net_fen,
                ],
            )
        })
        .collect();
    assert_eq!(got, want, "orders per day");
    assert!(
        c.orders_daily.iter().any(|d| d.region == "unknown"),
        "a pop-up store"
    );

    // The funnel, monthly (active over 4) and over both months (active over 2).
    check_funnel(c, &first, &profiles, &interactions);
}
