//! Each service against golden input, on the local stack. Every scenario runs
//! the same acts — dimensions published, events (with an upstream-retry duplicate and a
//! late event), a dimension updated and a missing one arriving while the service runs,
//! SIGKILL and restart, more events — and compares every stored row with values written
//! out by hand here: enrichment, segment and the stream's own state across the restart.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::golden::*;
use wxpulse_e2e::*;
use wxpulse_runtime::enrich::*;
use wxpulse_runtime::events::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn menu_clicks_are_enriched_and_segmented_across_updates_and_a_restart() -> anyhow::Result<()>
{
    const DB: &str = "wx_svc_menu";
    let stack = Stack::start("svc-menu")?;
    stack.prepare(DB, 2).await?;
    let t0 = last_month(&stack).await?.0 + D;
    let (a, b, c, d, e, f) = ("oRAW_A", "oRAW_B", "oRAW_C", "oRAW_D", "oRAW_E", "oRAW_F");
    publish(
        &stack,
        vec![
            account("wxa", "Maison"),
            button("wxa", "SHOP", MenuCategory::Ecommerce, "Shop"),
            button("wxa", "STORY", MenuCategory::BrandInfo, "Story"),
            fan("wxa", a, CustomerStatus::Vip, t0 - 400 * D, None),
            fan("wxa", b, CustomerStatus::Prospect, t0 - 12 * H, None),
            fan(
                "wxa",
                d,
                CustomerStatus::Customer,
                t0 - 300 * D,
                Some(t0 - 12 * H),
            ),
            fan("wxa", e, CustomerStatus::Prospect, t0 - 500 * D, None),
        ],
    )
    .await?;
    let mut service = Service::start("wxpulse-menu-clicks", &stack, DB, &[])?;
    let s = 1_000; // server receive delay, ms
    send(
        &stack,
        vec![
            // In the order the server received them.
            click(6, "wxa", e, "SHOP", t0 - 70 * D, t0 - 70 * D + s),
            click(1, "wxa", a, "SHOP", t0 + D, t0 + D + s),
            click(2, "wxa", a, "STORY", t0 + 2 * D, t0 + 2 * D + s),
            // An upstream retry of 2, 5 s later.
            click(2, "wxa", a, "STORY", t0 + 2 * D, t0 + 2 * D + 6 * s),
            click(3, "wxa", b, "SHOP", t0 + 3 * D, t0 + 3 * D + s),
            click(4, "wxa", c, "MEMBER", t0 + 3 * D, t0 + 3 * D + s),
            // Happened on day 0.5, reached the server three days later.
            click(9, "wxa", a, "SHOP", t0 + D / 2, t0 + 3 * D + D / 2),
            click(5, "wxa", d, "SHOP", t0 + 4 * D, t0 + 4 * D + s),
            click(7, "wxa", e, "SHOP", t0 + 5 * D, t0 + 5 * D + s),
            // Account wxb is not published yet: dead-lettered as unknown_account (the
            // default), not written as a phantom account.
            click(10, "wxb", f, "SHOP", t0 + 5 * D, t0 + 5 * D + s),
        ],
    )
    .await?;
    rows_in(&stack, DB, "menu_clicks", 8).await;

    // While it runs: a label changes, a missing button, profile and account arrive.
    publish(
        &stack,
        vec![
            button("wxa", "STORY", MenuCategory::BrandInfo, "Heritage"),
            button("wxa", "MEMBER", MenuCategory::Crm, "Member"),
            fan("wxa", c, CustomerStatus::Customer, t0 - 200 * D, None),
            account("wxb", "Atelier"),
        ],
    )
    .await?;
    applied(&service, Dimension::MenuButton, 4).await;
    let (kept, read, end) =
        versions_kept(&stack.brokers, Dimension::MenuButton.topic(), "wxa|STORY")?;
    eprintln!(
        "compaction probe: {kept} records of key wxa|STORY readable; {read} records read of {end} offsets"
    );
    applied(&service, Dimension::FanProfile, 5).await;
    applied(&service, Dimension::Account, 2).await;
    send(
        &stack,
        vec![
            click(11, "wxa", a, "STORY", t0 + 6 * D, t0 + 6 * D + s),
            click(12, "wxa", c, "MEMBER", t0 + 6 * D, t0 + 6 * D + s),
        ],
    )
    .await?;
    rows_in(&stack, DB, "menu_clicks", 10).await;
    let client = stack.client(DB);
    let letters: Vec<(String, i64)> = client
        .query("SELECT reason, source_offset FROM dead_letters FINAL ORDER BY source_offset")
        .fetch_all()
        .await?;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].0, "unknown_account");

    // A crash; the new process must resume every fan's month count and last interaction.
    service.kill();
    service.restart()?;
    send(
        &stack,
        vec![
            click(13, "wxa", e, "SHOP", t0 + 7 * D, t0 + 7 * D + s),
            click(14, "wxb", f, "SHOP", t0 + 7 * D, t0 + 7 * D + s),
            click(15, "wxa", a, "SHOP", t0 + 7 * D, t0 + 7 * D + s),
        ],
    )
    .await?;
    rows_in(&stack, DB, "menu_clicks", 13).await;

    let got = stored(
        &stack,
        DB,
        "menu_clicks",
        &[
            "brand",
            "category",
            "label",
            "relationship",
            "lifecycle",
            "month_interactions",
        ],
    )
    .await?;
    let want = expect(&[
        (1, "Maison|ecommerce|Shop|vip|active|1"),
        (2, "Maison|brand_info|Story|vip|active|2"),
        (3, "Maison|ecommerce|Shop|prospect|new|1"),
        (4, "Maison|unknown|unknown|unknown|active|1"),
        (5, "Maison|ecommerce|Shop|customer|churned|1"),
        (6, "Maison|ecommerce|Shop|prospect|active|1"),
        // 75 days after E's previous click: a dormant fan woken up; first click of the month.
        (7, "Maison|ecommerce|Shop|prospect|dormant|1"),
        // Late, but counted in its own month after 1 and 2.
        (9, "Maison|ecommerce|Shop|vip|active|3"),
        (11, "Maison|brand_info|Heritage|vip|active|4"),
        (12, "Maison|crm|Member|customer|active|2"),
        // After the restart: counts and last interactions continue, nothing resets.
        (13, "Maison|ecommerce|Shop|prospect|active|2"),
        // wxb's first counted click: 10 was dead-lettered before the account existed.
        (14, "Atelier|unknown|unknown|unknown|active|1"),
        (15, "Maison|ecommerce|Shop|vip|active|5"),
    ]);
    assert_eq!(got, want);
    let text = service.scrape()?;
    // After the restart only 13–15 were processed: wxb has no SHOP button and F no profile.
    assert_eq!(
        metric(
            &text,
            "wxpulse_enrich_dimension_missing_total",
            &["dimension=\"menu_button\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "wxpulse_enrich_dimension_missing_total",
            &["dimension=\"fan_profile\""]
        ),
        Some(1.0)
    );
    no_raw_ids(&stack, DB).await?;
    assert_eq!(service.terminate(Duration::from_secs(20)), Some(0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_scans_resolve_scene_channel_store_and_follow_source() -> anyhow::Result<()> {
    const DB: &str = "wx_svc_qr";
    let stack = Stack::start("svc-qr")?;
    stack.prepare(DB, 2).await?;
    let t0 = last_month(&stack).await?.0 + D;
    let (a, b, c) = ("oRAW_A", "oRAW_B", "oRAW_C");
    publish(
        &stack,
        vec![
            account("wxa", "Maison"),
            store("sh01", "East"),
            associate("zhang", "sh01"),
            scene(
                "store_sh01",
                SceneChannel::Store,
                Some("sh01"),
                None,
                Some("spring"),
            ),
            // A numeric scene_id: an associate's personal code, store through the associate.
            scene("1001", SceneChannel::Associate, None, Some("zhang"), None),
            fan("wxa", b, CustomerStatus::Vip, t0 - 400 * D, None),
            // Scene ids are per Official Account: account wxc's own 1001 is a counter code
            // of another store; wxa's scans of 1001 keep the code published for every
            // account (a v1 record without app_id).
            account("wxc", "Maison"),
            store("sh02", "East-2"),
            account_scene("wxc", "1001", SceneChannel::Store, Some("sh02"), None, None),
        ],
    )
    .await?;
    let mut service = Service::start("wxpulse-qr-scans", &stack, DB, &[])?;
    let s = 1_000;
    send(
        &stack,
        vec![
            scan(
                1,
                a,
                QrEvent::Subscribe,
                "qrscene_store_sh01",
                t0 + D,
                t0 + D + s,
            ),
            scan(2, b, QrEvent::Scan, "1001", t0 + D, t0 + D + s),
            scan(2, b, QrEvent::Scan, "1001", t0 + D, t0 + D + 6 * s),
            scan(
                3,
                c,
                QrEvent::Subscribe,
                "qrscene_ad_x",
                t0 + D,
                t0 + D + 2 * s,
            ),
            scan(5, b, QrEvent::Scan, "store_sh01", t0 + D / 2, t0 + 2 * D),
            scan_of(
                "wxc",
                9,
                "oRAW_D",
                QrEvent::Scan,
                "1001",
                t0 + D,
                t0 + D + s,
            ),
        ],
    )
    .await?;
    rows_in(&stack, DB, "qr_scans", 5).await;
    publish(
        &stack,
        vec![
            scene(
                "store_sh01",
                SceneChannel::Store,
                Some("sh01"),
                None,
                Some("summer"),
            ),
            scene("ad_x", SceneChannel::Ad, None, None, Some("launch")),
        ],
    )
    .await?;
    applied(&service, Dimension::QrScene, 5).await;
    send(
        &stack,
        vec![
            scan(
                6,
                a,
                QrEvent::Scan,
                "store_sh01",
                t0 + 3 * D,
                t0 + 3 * D + s,
            ),
            scan(7, c, QrEvent::Scan, "ad_x", t0 + 3 * D, t0 + 3 * D + s),
        ],
    )
    .await?;
    rows_in(&stack, DB, "qr_scans", 7).await;
    service.kill();
    service.restart()?;
    send(
        &stack,
        vec![scan(
            8,
            b,
            QrEvent::Scan,
            "1001",
            t0 + 4 * D,
            t0 + 4 * D + s,
        )],
    )
    .await?;
    rows_in(&stack, DB, "qr_scans", 8).await;
    let got = stored(
        &stack,
        DB,
        "qr_scans",
        &[
            "event",
            "scene",
            "scene_kind",
            "scene_id",
            "channel",
            "store_id",
            "associate_userid",
            "region",
            "campaign",
            "is_new_follow",
            "follow_source",
            "relationship",
            "lifecycle",
            "month_interactions",
        ],
    )
    .await?;
    let want = expect(&[
        (1, "SUBSCRIBE|store_sh01|str|0|store|sh01||East|spring|true|qr_store|unknown|new|1"),
        (2, "SCAN|1001|id|1001|associate|sh01|zhang|East||false||vip|active|1"),
        (3, "SUBSCRIBE|ad_x|str|0|unknown|unknown|unknown|unknown|unknown|true|qr_unknown|unknown|new|1"),
        (5, "SCAN|store_sh01|str|0|store|sh01||East|spring|false||vip|active|2"),
        (6, "SCAN|store_sh01|str|0|store|sh01||East|summer|false||unknown|active|2"),
        (7, "SCAN|ad_x|str|0|ad||||launch|false||unknown|active|2"),
        (8, "SCAN|1001|id|1001|associate|sh01|zhang|East||false||vip|active|3"),
        (9, "SCAN|1001|id|1001|store|sh02||East-2||false||unknown|active|1"),
    ]);
    assert_eq!(got, want);
    no_raw_ids(&stack, DB).await?;
    assert_eq!(service.terminate(Duration::from_secs(20)), Some(0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_messages_resolve_associate_store_region_and_first_reply_across_a_restart(
) -> anyhow::Result<()> {
    use ConversationKind::{OfficialAccount as Oa, WecomPrivate as Private};
    use Direction::{AssociateToFan as ToFan, FanToAssociate as ToAssociate, FanToBrand};
    const DB: &str = "wx_svc_chat";
    let stack = Stack::start("svc-chat")?;
    stack.prepare(DB, 2).await?;
    let t0 = last_month(&stack).await?.0 + D;
    let (a, b, c) = ("oRAW_A", "oRAW_B", "oRAW_C");
    publish(
        &stack,
        vec![
            account("wxa", "Maison"),
            store("sh01", "East"),
            store("sh02", "East-2"),
            associate("zhang", "sh01"),
            associate("li", "bj01"), // bj01 is not in the store dimension yet
        ],
    )
    .await?;
    let mut service = Service::start("wxpulse-chat-messages", &stack, DB, &[])?;
    let s = 1_000;
    let m = 60_000;
    send(
        &stack,
        vec![
            message(
                1,
                a,
                Private,
                ToAssociate,
                Some("zhang"),
                t0 + 10 * H,
                t0 + 10 * H + s,
            ),
            message(
                3,
                b,
                Private,
                ToAssociate,
                Some("li"),
                t0 + 10 * H,
                t0 + 10 * H + s,
            ),
            message(
                1,
                a,
                Private,
                ToAssociate,
                Some("zhang"),
                t0 + 10 * H,
                t0 + 10 * H + 6 * s,
            ),
            message(
                2,
                a,
                Private,
                ToFan,
                Some("zhang"),
                t0 + 10 * H + 30 * m,
                t0 + 10 * H + 30 * m + s,
            ),
            message(5, c, Oa, FanToBrand, None, t0 + 11 * H, t0 + 11 * H + s),
            // Late: written on day 0, received on day 2.
            message(6, c, Oa, FanToBrand, None, t0 - 12 * H, t0 + 2 * D),
        ],
    )
    .await?;
    rows_in(&stack, DB, "chat_messages", 5).await;
    publish(
        &stack,
        vec![store("bj01", "North"), associate("zhang", "sh02")],
    )
    .await?;
    applied(&service, Dimension::Store, 3).await;
    applied(&service, Dimension::Associate, 3).await;
    send(
        &stack,
        vec![message(
            7,
            b,
            Private,
            ToAssociate,
            Some("li"),
            t0 + 2 * D,
            t0 + 2 * D + s,
        )],
    )
    .await?;
    rows_in(&stack, DB, "chat_messages", 6).await;
    // The crash: B has been waiting for li since message 3; the new process must know.
    service.kill();
    service.restart()?;
    send(
        &stack,
        vec![
            message(
                8,
                b,
                Private,
                ToFan,
                Some("li"),
                t0 + 2 * D + H,
                t0 + 2 * D + H + s,
            ),
            message(
                9,
                a,
                Private,
                ToFan,
                Some("zhang"),
                t0 + 3 * D,
                t0 + 3 * D + s,
            ),
        ],
    )
    .await?;
    rows_in(&stack, DB, "chat_messages", 8).await;
    let got = stored(
        &stack,
        DB,
        "chat_messages",
        &[
            "conversation",
            "direction",
            "associate_userid",
            "store_id",
            "region",
            "ifNull(toString(first_reply_ms), '-')",
            "relationship",
            "month_interactions",
        ],
    )
    .await?;
    let reply_b = 2 * D + H - 10 * H; // from message 3 to message 8
    let want: BTreeMap<String, String> = expect(&[
        (
            1,
            "WECOM_PRIVATE|FAN_TO_ASSOCIATE|zhang|sh01|East|-|unknown|1",
        ),
        (
            2,
            "WECOM_PRIVATE|ASSOCIATE_TO_FAN|zhang|sh01|East|1800000|unknown|2",
        ),
        (
            3,
            "WECOM_PRIVATE|FAN_TO_ASSOCIATE|li|bj01|unknown|-|unknown|1",
        ),
        (5, "OFFICIAL_ACCOUNT|FAN_TO_BRAND||||-|unknown|1"),
        // Late, but in the same month as 5, and counted after it.
        (6, "OFFICIAL_ACCOUNT|FAN_TO_BRAND||||-|unknown|2"),
        (
            7,
            "WECOM_PRIVATE|FAN_TO_ASSOCIATE|li|bj01|North|-|unknown|2",
        ),
        (
            8,
            "WECOM_PRIVATE|ASSOCIATE_TO_FAN|li|bj01|North|REPLY_B|unknown|3",
        ),
        // Already answered (message 2): no new first reply; zhang now works in sh02.
        (
            9,
            "WECOM_PRIVATE|ASSOCIATE_TO_FAN|zhang|sh02|East-2|-|unknown|3",
        ),
    ])
    .into_iter()
    .map(|(k, v)| (k, v.replace("REPLY_B", &reply_b.to_string())))
    .collect();
    assert_eq!(got, want);
    // Chat text never reaches ClickHouse.
    let text: u64 = stack
        .client(DB)
        .query("SELECT count() FROM chat_messages WHERE position(formatRow('TSV', *), 'private words') > 0")
        .fetch_one()
        .await?;
    assert_eq!(text, 0);
    no_raw_ids(&stack, DB).await?;
    assert_eq!(service.terminate(Duration::from_secs(20)), Some(0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn article_reads_resolve_push_position_campaign_and_segment() -> anyhow::Result<()> {
    const DB: &str = "wx_svc_article";
    let stack = Stack::start("svc-article")?;
    stack.prepare(DB, 2).await?;
    let t0 = last_month(&stack).await?.0 + D;
    let (a, b, c, d) = ("oRAW_A", "oRAW_B", "oRAW_C", "oRAW_D");
    publish(
        &stack,
        vec![
            account("wxa", "Maison"),
            article("a1", 100, 1, 2, t0, Some("spring"), None, 1000),
            article("a2", 100, 2, 2, t0, Some("spring"), None, 1000),
            fan("wxa", a, CustomerStatus::Customer, t0 - 100 * D, None),
        ],
    )
    .await?;
    let mut service = Service::start("wxpulse-article-reads", &stack, DB, &[])?;
    let s = 1_000;
    send(
        &stack,
        vec![
            read(1, a, "a1", 100, 1, t0 + H, t0 + H + s),
            read(1, a, "a1", 100, 1, t0 + H, t0 + H + 6 * s),
            read(2, b, "a2", 100, 2, t0 + H, t0 + H + 2 * s),
            // a3 is not in the dimension yet: the event's own msgid/idx stand in.
            read(3, c, "a3", 200, 1, t0 + 2 * H, t0 + 2 * H + s),
            read(5, a, "a2", 100, 2, t0 + 2 * H, t0 + 3 * D),
        ],
    )
    .await?;
    rows_in(&stack, DB, "article_reads", 4).await;
    publish(
        &stack,
        vec![
            article(
                "a3",
                200,
                1,
                1,
                t0 + D / 2,
                Some("vip-preview"),
                Some("vip"),
                80,
            ),
            article("a1", 100, 1, 2, t0, Some("spring"), None, 1200),
        ],
    )
    .await?;
    applied(&service, Dimension::Article, 4).await;
    send(
        &stack,
        vec![
            read(6, c, "a3", 200, 1, t0 + 3 * D, t0 + 3 * D + s),
            read(7, d, "a1", 100, 1, t0 + 3 * D, t0 + 3 * D + s),
        ],
    )
    .await?;
    rows_in(&stack, DB, "article_reads", 6).await;
    service.kill();
    service.restart()?;
    send(
        &stack,
        vec![read(8, a, "a1", 100, 1, t0 + 4 * D, t0 + 4 * D + s)],
    )
    .await?;
    rows_in(&stack, DB, "article_reads", 7).await;
    let got = stored(
        &stack,
        DB,
        "article_reads",
        &[
            "msgid",
            "idx",
            "articles_in_push",
            "ifNull(toString(toUnixTimestamp64Milli(published_at)), '-')",
            "campaign",
            "target_segment",
            "fans_reached",
            "relationship",
            "month_interactions",
        ],
    )
    .await?;
    let p1 = t0.to_string();
    let p3 = (t0 + D / 2).to_string();
    let want: BTreeMap<String, String> = expect(&[
        (1, "100|1|2|P1|spring|none|1000|customer|1"),
        (2, "100|2|2|P1|spring|none|1000|unknown|1"),
        (3, "200|1|0|-|unknown|unknown|0|unknown|1"),
        (5, "100|2|2|P1|spring|none|1000|customer|2"),
        (6, "200|1|1|P3|vip-preview|vip|80|unknown|2"),
        (7, "100|1|2|P1|spring|none|1200|unknown|1"),
        (8, "100|1|2|P1|spring|none|1200|customer|3"),
    ])
    .into_iter()
    .map(|(k, v)| (k, v.replace("P1", &p1).replace("P3", &p3)))
    .collect();
    assert_eq!(got, want);
    no_raw_ids(&stack, DB).await?;
    assert_eq!(service.terminate(Duration::from_secs(20)), Some(0));
    Ok(())
}
