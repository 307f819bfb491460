//! Orders attributed to the touches before them, on hand-built scenarios through
//! the real services. One fan per scenario, so each order's credit is written out here by
//! hand: a touch in the window, one out of it, two touches (last, first, linear), a share
//! code over a chat, a partial refund, an order ingested before its touch, a refund before
//! its purchase, a restart of every service between touch and order, upstream duplicates
//! and an invalid order. Then the BI views: by associate, push and scene, orders per
//! store, and the social-selling funnel. The same figures hold with part of the purchases
//! settled (`wxpulse conversions settle`, migration 0017) and orders arriving after the
//! settle, with all of them settled, and after settling twice.

use std::time::Duration;

mod expected;

use crate::golden::*;
use expected::{assert_views, expected};
use wxpulse_cli::produce::Outgoing;
use wxpulse_e2e::*;
use wxpulse_runtime::enrich::*;
use wxpulse_runtime::events::*;

const DB: &str = "wx_conversions";

#[allow(clippy::too_many_arguments)]
pub(crate) fn order(
    n: u32,
    openid: &str,
    order_id: &str,
    kind: OrderKind,
    t: i64,
    amount_fen: i64,
    store_id: Option<&str>,
    share_code: Option<&str>,
) -> Outgoing {
    let id = event_id(n);
    record(
        "wxpulse.orders",
        "wxa",
        openid,
        &Order {
            event_id: &id,
            order_id,
            kind,
            app_id: "wxa",
            openid,
            unionid: None,
            order_time: t,
            server_time: t + 1_000,
            amount_fen,
            currency: "CNY",
            store_id,
            channel: if store_id.is_some() && share_code.is_none() {
                OrderChannel::StorePos
            } else {
                OrderChannel::MiniProgram
            },
            share_code,
            items: 2,
        },
    )
}

fn chat(n: u32, openid: &str, associate: &str, t: i64, server: i64) -> Outgoing {
    message(
        n,
        openid,
        ConversationKind::WecomPrivate,
        Direction::FanToAssociate,
        Some(associate),
        t,
        server,
    )
}

fn with_associate(openid: &str, associate: Option<&str>, followed: i64) -> DimensionRecord {
    let mut profile = fan("wxa", openid, CustomerStatus::Customer, followed, None);
    if let DimensionRecord::FanProfile(p) = &mut profile {
        p.associate_userid = associate.map(Into::into);
    }
    profile
}

/// `order_credits` as sorted lines `order|record|model|touch|associate|store|region|msgid|
/// scene|weight|amount`.
async fn credits(stack: &Stack) -> anyhow::Result<Vec<String>> {
    Ok(stack
        .client(DB)
        .query(
            "SELECT arrayStringConcat([order_id, record, model, touch, associate_userid, \
             store_id, region, toString(msgid), scene, toString(round(weight, 6)), \
             toString(round(amount_fen, 6))], '|') AS line \
             FROM order_credits ORDER BY line",
        )
        .fetch_all()
        .await?)
}

fn lines(rows: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = rows.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Every model gives one credit of weight 1 to the same touch.
fn all_models(order: &str, record: &str, rest: &str) -> Vec<String> {
    ["last_touch", "first_touch", "linear"]
        .iter()
        .map(|m| format!("{order}|{record}|{m}|{rest}"))
        .collect()
}

async fn query_lines(stack: &Stack, sql: &str) -> anyhow::Result<Vec<String>> {
    let mut v: Vec<String> = stack.client(DB).query(sql).fetch_all().await?;
    v.sort();
    Ok(v)
}

/// `wxpulse conversions settle --until <cutoff>` (ms since the epoch, to the second).
fn settle(stack: &Stack, cutoff: i64) -> anyhow::Result<()> {
    let status = cli(stack, DB)?
        .args(["conversions", "settle", "--until"])
        .arg((cutoff / 1_000).to_string())
        .status()?;
    anyhow::ensure!(status.success(), "conversions settle: {status}");
    Ok(())
}

/// Purchases in the settled table.
async fn settled_purchases(stack: &Stack) -> anyhow::Result<u64> {
    Ok(stack
        .client(DB)
        .query("SELECT count() FROM order_credits_settled WHERE credit_no = 1")
        .fetch_one()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_attributed_exactly_whatever_arrives_first_and_across_a_restart(
) -> anyhow::Result<()> {
    let stack = Stack::start("conversions")?;
    stack.prepare(DB, 2).await?;
    let t0 = last_month(&stack).await?.0 + 2 * D;
    let s = 1_000;
    let (a, b, c, d, e, f, g) = (
        "oRAW_A", "oRAW_B", "oRAW_C", "oRAW_D", "oRAW_E", "oRAW_F", "oRAW_G",
    );
    publish(
        &stack,
        vec![
            account("wxa", "Maison"),
            store("s1", "east"),
            store("s2", "west"),
            associate("u1", "s1"),
            associate("u2", "s2"),
            scene(
                "store_s2",
                SceneChannel::Store,
                Some("s2"),
                None,
                Some("opening"),
            ),
            button("wxa", "SHOP", MenuCategory::Ecommerce, "Shop"),
            button("wxa", "STORY", MenuCategory::BrandInfo, "Story"),
            article("art1", 101, 1, 1, t0, Some("autumn"), None, 5000),
            with_associate(a, Some("u1"), t0 - 100 * D),
            with_associate(b, None, t0 - 100 * D),
            with_associate(c, Some("u1"), t0 - 100 * D),
            with_associate(d, Some("u2"), t0 - 100 * D),
        ],
    )
    .await?;
    let binaries = [
        "wxpulse-orders",
        "wxpulse-chat-messages",
        "wxpulse-article-reads",
        "wxpulse-qr-scans",
        "wxpulse-menu-clicks",
    ];
    let mut services = binaries
        .iter()
        .map(|b| Service::start(b, &stack, DB, &[]))
        .collect::<anyhow::Result<Vec<_>>>()?;

    // E: the order is ingested before the chat that preceded it reaches the broker.
    send(
        &stack,
        vec![order(
            60,
            e,
            "oE",
            OrderKind::Purchase,
            t0 + 4 * D,
            20_000,
            Some("s2"),
            None,
        )],
    )
    .await?;
    // G: a refund arrives before its purchase.
    send(
        &stack,
        vec![order(
            70,
            g,
            "oG",
            OrderKind::Refund,
            t0 + 7 * D,
            5_000,
            Some("s1"),
            None,
        )],
    )
    .await?;
    rows_in(&stack, DB, "orders", 2).await;
    assert_eq!(
        credits(&stack).await?,
        lines(
            &[
                all_models("oE", "purchase", "none||||0||1|20000"),
                all_models("oG", "refund", "unmatched_refund||||0||1|-5000"),
            ]
            .concat()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
        ),
        "before their touch and purchase arrive"
    );

    send(
        &stack,
        vec![
            // A: two chats with u1 and three brand-info clicks (5 interactions: active).
            chat(1, a, "u1", t0 + D, t0 + D + s),
            message(
                2,
                a,
                ConversationKind::WecomPrivate,
                Direction::AssociateToFan,
                Some("u1"),
                t0 + D + H,
                t0 + D + H + s,
            ),
            click(3, "wxa", a, "STORY", t0 + D / 2, t0 + D / 2 + s),
            click(4, "wxa", a, "STORY", t0 + D / 2 + H, t0 + D / 2 + H + s),
            click(
                5,
                "wxa",
                a,
                "STORY",
                t0 + D / 2 + 2 * H,
                t0 + D / 2 + 2 * H + s,
            ),
            // B: a scan 8 days before the order: outside the 7-day window.
            scan(10, b, QrEvent::Scan, "store_s2", t0, t0 + s),
            // C: a push read, then an e-commerce click.
            read(20, c, "art1", 101, 1, t0 + D, t0 + D + s),
            click(21, "wxa", c, "SHOP", t0 + 2 * D, t0 + 2 * D + s),
            // D: a chat with u1, but the order carries u2's share code.
            chat(30, d, "u1", t0 + D, t0 + D + s),
            // E's chat with u2: happened the day before the order, arrives after it.
            chat(61, e, "u2", t0 + 3 * D, t0 + 4 * D + 2 * H),
            // F: a scan at the store's code.
            scan(40, f, QrEvent::Scan, "store_s2", t0 + D, t0 + D + s),
        ],
    )
    .await?;
    rows_in(&stack, DB, "chat_messages", 4).await;
    rows_in(&stack, DB, "menu_clicks", 4).await;
    rows_in(&stack, DB, "qr_scans", 2).await;
    rows_in(&stack, DB, "article_reads", 1).await;

    // Every service crashes between F's scan and F's order.
    for service in &mut services {
        service.kill();
        service.restart()?;
    }
    // The orders before the cutoff of the first settle (t0 + 2 days + 2 hours) arrive.
    send(
        &stack,
        vec![
            order(
                22,
                c,
                "oC",
                OrderKind::Purchase,
                t0 + 2 * D + H,
                60_000,
                Some("s1"),
                None,
            ),
            // oC sent again under another event_id: one purchase per order id counts.
            order(
                23,
                c,
                "oC",
                OrderKind::Purchase,
                t0 + 2 * D + H,
                60_000,
                Some("s1"),
                None,
            ),
            order(
                31,
                d,
                "oD",
                OrderKind::Purchase,
                t0 + 2 * D,
                40_000,
                Some("s2"),
                Some("u2"),
            ),
            order(
                41,
                f,
                "oF",
                OrderKind::Purchase,
                t0 + 2 * D,
                8_000,
                None,
                None,
            ),
        ],
    )
    .await?;
    rows_in(&stack, DB, "orders", 6).await;
    let want = expected();
    let so_far: Vec<String> = want
        .iter()
        .filter(|l| {
            ["oC|", "oD|", "oE|", "oF|"]
                .iter()
                .any(|o| l.starts_with(o))
        })
        .cloned()
        .chain(all_models("oG", "refund", "unmatched_refund||||0||1|-5000"))
        .collect();
    let so_far = lines(&so_far.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(credits(&stack).await?, so_far, "before any settle");
    // Settled: oC, oD and oF; open: oE (and G's refund, whose purchase is not in). Twice:
    // the second settle replaces the same month with the same rows.
    let cutoff = t0 + 2 * D + 2 * H;
    for _ in 0..2 {
        settle(&stack, cutoff)?;
        assert_eq!(credits(&stack).await?, so_far, "oC, oD, oF settled");
        assert_eq!(settled_purchases(&stack).await?, 3);
    }

    // The rest arrive after the settle (after its cutoff, within the lateness bound).
    send(
        &stack,
        vec![
            order(
                50,
                a,
                "oA1",
                OrderKind::Purchase,
                t0 + 3 * D,
                100_000,
                Some("s1"),
                None,
            ),
            // An upstream retry of oA1 (same event_id).
            order(
                50,
                a,
                "oA1",
                OrderKind::Purchase,
                t0 + 3 * D,
                100_000,
                Some("s1"),
                None,
            ),
            order(
                51,
                a,
                "oA1",
                OrderKind::Refund,
                t0 + 5 * D,
                30_000,
                Some("s1"),
                None,
            ),
            order(
                52,
                a,
                "oA2",
                OrderKind::Purchase,
                t0 + 6 * D,
                50_000,
                Some("s1"),
                None,
            ),
            order(
                11,
                b,
                "oB",
                OrderKind::Purchase,
                t0 + 8 * D + H,
                9_000,
                Some("s9"),
                None,
            ),
            // The settled oC once more, under a third event_id and after the cutoff: still
            // one purchase, the settled one.
            order(
                24,
                c,
                "oC",
                OrderKind::Purchase,
                t0 + 3 * D,
                60_000,
                Some("s1"),
                None,
            ),
            order(
                71,
                g,
                "oG",
                OrderKind::Purchase,
                t0 + 6 * D,
                12_000,
                Some("s1"),
                None,
            ),
            // Cannot be counted: dead-lettered, not stored.
            order(
                80,
                g,
                "oBad",
                OrderKind::Purchase,
                t0 + 6 * D,
                0,
                Some("s1"),
                None,
            ),
        ],
    )
    .await?;
    rows_in(&stack, DB, "orders", 12).await;
    let orders = &services[0];
    let dead = wait_for(Duration::from_secs(30), 1, || async {
        let text = orders.scrape()?;
        Ok(metric(
            &text,
            "wxpulse_dlq_events_total",
            &["reason=\"invalid_field\""],
        )
        .unwrap_or(0.0) as u64)
    })
    .await;
    assert_eq!(dead, 1, "the zero-amount order is dead-lettered");

    // Enrichment of the order rows themselves.
    let enriched = query_lines(
        &stack,
        "SELECT arrayStringConcat([order_id, kind, channel, store_id, region, share_code, \
         share_store_id, share_region, toString(attribution_window_s)], '|') FROM orders \
         WHERE order_id IN ('oA1', 'oB', 'oD', 'oF') AND kind = 'purchase'",
    )
    .await?;
    assert_eq!(
        enriched,
        lines(&[
            "oA1|purchase|store_pos|s1|east||||604800",
            "oB|purchase|store_pos|s9|unknown||||604800",
            "oD|purchase|mini_program|s2|west|u2|s2|west|604800",
            "oF|purchase|mini_program||||||604800",
        ])
    );

    assert_eq!(
        credits(&stack).await?,
        lines(&want.iter().map(String::as_str).collect::<Vec<_>>())
    );
    // The funnel needs the profiles in ClickHouse: the mirror puts them there.
    mirror_profiles(&stack, DB)?;
    assert_views(&stack).await?;

    // Everything settled, twice: the same credits and views, nothing open.
    for _ in 0..2 {
        settle(&stack, t0 + 10 * D)?;
        assert_eq!(
            credits(&stack).await?,
            lines(&want.iter().map(String::as_str).collect::<Vec<_>>()),
            "all settled"
        );
        assert_views(&stack).await?;
        assert_eq!(settled_purchases(&stack).await?, 8);
        assert_eq!(count(&stack.client(DB), "order_purchases_open").await?, 0);
    }
    no_raw_ids(&stack, DB).await?;
    for service in &mut services {
        assert_eq!(service.terminate(Duration::from_secs(20)), Some(0));
    }
    Ok(())
}
