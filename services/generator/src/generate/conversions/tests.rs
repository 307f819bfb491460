use super::*;
use crate::generate::orders::{Channel, Kind, PlannedOrder};
use crate::generate::plan::{Associate, Chat, Read};
use crate::generate::Spec;
use wxpulse_runtime::events::Direction;

const H: i64 = 3_600_000;

fn world() -> (Spec, World) {
    let start = crate::world::month_start_ms(202610);
    let spec = Spec {
        seed: 11,
        brands: 1,
        accounts_per_brand: 1,
        fans_per_account: 200,
        events: 0,
        start_ms: start,
        end_ms: start + 30 * DAY_MS,
        duplicate_share: 0.0,
        resend_share: 0.0,
        late_share: 0.0,
        malformed_share: 0.0,
        unknown_dimension_share: 0.0,
        unknown_account_share: 0.0,
    };
    let world = World::new(&spec);
    (spec, world)
}

fn event(fan: u32, client: i64, what: What) -> Planned {
    Planned {
        server: client + 100,
        client,
        account: 0,
        fan,
        late: false,
        what,
    }
}

fn read(article: usize, source: ReadSource, cta: bool) -> What {
    What::Read(Read {
        article: Article::Known(article),
        source,
        depth: 3.0,
        seconds: 40,
        shared: false,
        favorited: false,
        cta,
    })
}

fn order(fan: u32, id: &str, kind: Kind, time: i64, amount_fen: i64) -> PlannedOrder {
    PlannedOrder {
        account: 0,
        fan,
        event_id: uuid::Uuid::from_u128(time as u128 * 16 + u128::from(fan % 16)),
        order_id: id.to_string(),
        kind,
        time,
        server: time + 500,
        amount_fen,
        store_id: None,
        channel: Channel::MiniProgram,
        share_code: None,
        items: 1,
    }
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1.0)
}

fn totals(c: &Conversions, model: &str, touch: &str) -> Credited {
    c.by_touch
        .iter()
        .find(|t| t.model == model && t.touch == touch)
        .map(|t| t.credited.clone())
        .unwrap_or_default()
}

#[test]
fn only_qualifying_events_are_touches() {
    let (_, world) = world();
    let chat = |conversation, associate| {
        event(
            0,
            0,
            What::Chat(Chat {
                conversation,
                direction: Direction::AssociateToFan,
                associate,
            }),
        )
    };
    let kind = |e: &Planned, menu| touch_kind(&world, e, menu);
    let private = chat(ConversationKind::WecomPrivate, Associate::Known(0));
    assert_eq!(kind(&private, None), Some(TouchKind::AssociateChat));
    let unknown = chat(
        ConversationKind::WecomPrivate,
        Associate::Unknown("newhire01".into()),
    );
    assert_eq!(kind(&unknown, None), Some(TouchKind::AssociateChat));
    let group = chat(ConversationKind::WecomGroup, Associate::Known(0));
    assert_eq!(kind(&group, None), None);
    let official = chat(ConversationKind::OfficialAccount, Associate::None);
    assert_eq!(kind(&official, None), None);
    let push = event(0, 0, read(0, ReadSource::Push, false));
    assert_eq!(kind(&push, None), Some(TouchKind::Article));
    let cta = event(0, 0, read(0, ReadSource::Moments, true));
    assert_eq!(kind(&cta, None), Some(TouchKind::Article));
    let moments = event(0, 0, read(0, ReadSource::Moments, false));
    assert_eq!(kind(&moments, None), None);
    let menu = event(0, 0, What::Menu);
    assert_eq!(
        kind(&menu, Some(MenuCategory::Ecommerce)),
        Some(TouchKind::MenuEcommerce)
    );
    assert_eq!(kind(&menu, Some(MenuCategory::Crm)), None);
    assert_eq!(kind(&menu, None), None, "a button no record has");
    let scan = event(
        0,
        0,
        What::Scan {
            subscribe: false,
            scene: Scene::Unknown("retired_x".into()),
        },
    );
    assert_eq!(kind(&scan, None), Some(TouchKind::QrScan));
}

/// One fan's touches and orders, credited by hand from the contract.
#[test]
fn orders_are_credited_as_the_contract_says() {
    let (spec, world) = world();
    let bound = |f: &u32| world.fan(0, *f).and_then(|x| x.associate);
    let fan = (0..200u32)
        .find(|f| bound(f).is_some())
        .expect("a fan with an associate");
    let other = (0..200u32)
        .find(|f| *f != fan && world.fan(0, *f).is_some())
        .expect("another fan");
    let associate = &world.associates[bound(&fan).expect("bound")];
    let region = world
        .stores
        .iter()
        .find(|s| s.store_id == associate.store_id)
        .map(|s| s.region.clone())
        .expect("its store");
    let article = world.accounts[0].pushes[0].articles[0];
    let a = &world.articles[article];
    let t0 = spec.start_ms + DAY_MS;
    let (t1, t2) = (t0 + 2 * H, t0 + 3 * H);
    let planned = vec![
        event(
            fan,
            t0,
            What::Chat(Chat {
                conversation: ConversationKind::WecomPrivate,
                direction: Direction::FanToAssociate,
                associate: Associate::Known(bound(&fan).expect("bound")),
            }),
        ),
        event(fan, t1, read(article, ReadSource::Push, false)),
        // Two touches at the same millisecond: the greater event id is the later.
        event(fan, t2, What::Menu),
        event(
            fan,
            t2,
            What::Scan {
                subscribe: false,
                scene: Scene::Unknown("retired_x".into()),
            },
        ),
        // Not a touch: a group message.
        event(
            fan,
            t2 + H,
            What::Chat(Chat {
                conversation: ConversationKind::WecomGroup,
                direction: Direction::FanToAssociate,
                associate: Associate::Known(bound(&fan).expect("bound")),
            }),
        ),
    ];
    let touches = vec![
        Touch {
            index: 0,
            kind: TouchKind::AssociateChat,
            event_id: 0x10,
        },
        Touch {
            index: 1,
            kind: TouchKind::Article,
            event_id: 0x20,
        },
        Touch {
            index: 2,
            kind: TouchKind::MenuEcommerce,
            event_id: 0x30,
        },
        Touch {
            index: 3,
            kind: TouchKind::QrScan,
            event_id: 0x05,
        },
    ];
    let p1 = t0 + ATTRIBUTION_WINDOW_MS; // the chat is exactly a window before: in
    let p2 = p1 + 1; // ... and now out
    let mut shared = order(fan, "o3", Kind::Purchase, t2 + H, 70_000);
    shared.share_code = Some(associate.userid.clone());
    let orders = vec![
        order(fan, "o1", Kind::Purchase, p1, 100_000),
        order(fan, "o1", Kind::Refund, p1 + DAY_MS, 30_000),
        order(fan, "o2", Kind::Purchase, p2, 50_000),
        shared,
        order(other, "o4", Kind::Purchase, t2, 20_000),
        order(fan, "o5", Kind::Purchase, t2 + 10 * DAY_MS, 10_000),
        order(other, "gone", Kind::Refund, t2 + 2 * H, 5_000),
    ];
    let mut interactions = HashMap::new();
    interactions.insert((0, fan), BTreeMap::from([(202610, 5)]));
    let c = tally(
        &world,
        &planned,
        &touches,
        &orders,
        &interactions,
        Produced::default(),
        100,
    );
    assert_eq!((c.purchases, c.refunds, c.unmatched_refunds), (5, 2, 1));

    // Last touch: o1 and o2 to the menu click (it ties the scan and has the greater
    // event id), o3 to the share code, o4 (no touches) and o5 (touches too old) to none.
    let last = |t| totals(&c, "last_touch", t);
    assert_eq!(last("menu_ecommerce").orders, 2.0);
    assert_eq!(last("menu_ecommerce").refunds, 1.0);
    assert_eq!(last("menu_ecommerce").gross_fen, 150_000.0);
    assert_eq!(last("menu_ecommerce").refunded_fen, 30_000.0);
    assert_eq!(last("menu_ecommerce").net_fen, 120_000.0);
    assert_eq!(last("menu_ecommerce").buyers, 1);
    assert_eq!(last("share_code").orders, 1.0);
    assert_eq!(last("none").orders, 2.0);
    assert_eq!(last("none").buyers, 2);
    assert_eq!(last("qr_scan").orders, 0.0);
    assert_eq!(last("unmatched_refund").refunds, 1.0);
    assert_eq!(last("unmatched_refund").refunded_fen, 5_000.0);
    assert_eq!(
        (c.shapes.touchless_purchases, c.shapes.stale_touch_purchases),
        (1, 1)
    );
    // First touch: o1 to the chat (the window includes its start), o2 to the read.
    let first = |t| totals(&c, "first_touch", t);
    assert_eq!(first("associate_chat").orders, 1.0);
    assert_eq!(first("associate_chat").refunded_fen, 30_000.0);
    assert_eq!(first("article").orders, 1.0);
    // Linear: o1 a quarter to each of 4 touches, o2 a third to each of 3.
    let linear = |t| totals(&c, "linear", t);
    assert!(close(linear("associate_chat").orders, 0.25));
    assert!(close(linear("associate_chat").gross_fen, 25_000.0));
    assert!(close(linear("associate_chat").refunded_fen, 7_500.0));
    assert!(close(linear("associate_chat").refunds, 0.25));
    for t in ["article", "qr_scan", "menu_ecommerce"] {
        assert!(close(linear(t).orders, 0.25 + 1.0 / 3.0), "{t}");
        assert!(close(linear(t).gross_fen, 25_000.0 + 50_000.0 / 3.0), "{t}");
        assert!(close(
            linear(t).net_fen,
            25_000.0 + 50_000.0 / 3.0 - 7_500.0
        ));
    }
    // Every purchase's weights sum to 1 in every model; the refund reverses its share.
    for model in MODELS {
        let rows: Vec<&TouchTotals> = c.by_touch.iter().filter(|t| t.model == model).collect();
        let orders: f64 = rows.iter().map(|t| t.credited.orders).sum();
        let refunds: f64 = rows.iter().map(|t| t.credited.refunds).sum();
        let refunded: f64 = rows.iter().map(|t| t.credited.refunded_fen).sum();
        assert!(close(orders, 5.0) && close(refunds, 2.0), "{model}");
        assert!(close(refunded, 35_000.0), "{model}");
    }

    // By associate: the share code's associate with its store; the chat's first touch.
    let month = month_date(202610);
    let row = |model: &str| {
        c.by_associate
            .iter()
            .find(|r| r.model == model && r.associate_userid == associate.userid)
            .cloned()
    };
    let l = row("last_touch").expect("share code row");
    assert_eq!(
        (l.month.as_str(), l.app_id.as_str()),
        (month.as_str(), "wxb00a00")
    );
    assert_eq!((&l.store_id, &l.region), (&associate.store_id, &region));
    assert_eq!((l.credited.orders, l.share_code_orders), (1.0, 1.0));
    assert_eq!(l.credited.gross_fen, 70_000.0);
    let f = row("first_touch").expect("chat row");
    assert_eq!((f.credited.orders, f.share_code_orders), (2.0, 1.0));
    assert_eq!(f.credited.gross_fen, 170_000.0);
    assert_eq!(f.credited.refunded_fen, 30_000.0);
    assert_eq!(f.credited.buyers, 1);
    // The scan of a scene no record has is `unknown` everywhere, associate included.
    let unknown = c
        .by_associate
        .iter()
        .find(|r| r.model == "linear" && r.associate_userid == "unknown")
        .expect("the unknown scene's row");
    assert_eq!(
        (unknown.store_id.as_str(), unknown.region.as_str()),
        ("unknown", "unknown")
    );
    let scene = c
        .by_scene
        .iter()
        .find(|r| r.model == "linear")
        .expect("scene row");
    assert_eq!(
        (scene.scene.as_str(), scene.qr_channel.as_str()),
        ("retired_x", "unknown")
    );
    assert!(close(scene.credited.orders, 0.25 + 1.0 / 3.0));
    assert!(c.by_scene.iter().all(|r| r.model == "linear"));
    let push = c
        .by_push
        .iter()
        .find(|r| r.model == "first_touch")
        .expect("push row");
    assert_eq!((push.msgid, &push.article_id), (a.msgid, &a.article_id));
    assert_eq!(push.campaign, a.campaign.clone().unwrap_or_default());
    assert_eq!(push.credited.orders, 1.0);

    // Orders per day: the refund on its own day; the unmatched one too.
    let refund_day = shanghai(p1 + DAY_MS).date();
    let d = c
        .orders_daily
        .iter()
        .find(|d| d.day == refund_day && d.refunds > 0 && d.purchases == 0)
        .expect("the refund's day");
    assert_eq!(
        (d.refunded_fen, d.net_fen, d.basket_fen),
        (30_000, -30_000, None)
    );
    let purchases: u64 = c.orders_daily.iter().map(|d| d.purchases).sum();
    let refunded: i64 = c.orders_daily.iter().map(|d| d.refunded_fen).sum();
    assert_eq!((purchases, refunded), (5, 35_000));
    assert!(c
        .orders_daily
        .iter()
        .all(|d| d.store_id.is_empty() && d.region.is_empty()));

    // The funnel of the mall without a store: 2 buyers, the bound one active (5 > 4)
    // and repurchasing (4 purchases).
    let store = c
        .funnel
        .iter()
        .find(|r| r.level == "store")
        .expect("store row");
    let added = u64::from(world.fan(0, other).and_then(|f| f.associate).is_some()) + 1;
    assert_eq!(
        (store.buyers, store.added, store.active, store.repurchasing),
        (2, added, 1, 1)
    );
    assert_eq!((store.purchases, store.spent_fen), (5, 250_000));
    assert_eq!(store.repurchase_frequency, Some(4.0));
    let mine = c
        .funnel
        .iter()
        .find(|r| r.level == "associate" && r.associate_userid == associate.userid)
        .expect("associate row");
    assert_eq!(
        (mine.buyers, mine.added, mine.active, mine.repurchasing),
        (2, 1, 1, 1)
    );
    assert_eq!((mine.purchases, mine.spent_fen), (4, 230_000));
    assert_eq!(mine.add_rate, Some(0.5));
    // Over a higher threshold nobody is active; over no month nobody buys.
    let strict = c.social_funnel(202610, 202610, 5);
    assert!(strict
        .iter()
        .all(|r| r.active == 0 && r.active_rate.is_some_and(|x| x == 0.0)));
    assert!(strict.iter().all(|r| r.repurchase_rate.is_none()));
    assert!(c.social_funnel(202611, 202612, 4).is_empty());
}
