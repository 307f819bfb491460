//! Issue 4: each service against golden input, on the local stack. Every scenario runs
//! the same acts — dimensions published, events (with an upstream-retry duplicate and a
//! late event), a dimension updated and a missing one arriving while the service runs,
//! SIGKILL and restart, more events — and compares every stored row with values written
//! out by hand here: enrichment, segment and the stream's own state across the restart.

use std::collections::BTreeMap;
use std::time::Duration;

use wxpulse_cli::produce::{self, Outgoing};
use wxpulse_e2e::*;
use wxpulse_runtime::enrich::*;
use wxpulse_runtime::events::*;

const H: i64 = 3_600_000;
const D: i64 = 24 * H;

fn event_id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn record<T: serde::Serialize>(topic: &'static str, app: &str, openid: &str, e: &T) -> Outgoing {
    Outgoing {
        topic,
        key: format!("{app}|{openid}").into_bytes(),
        payload: Some(encode_event(topic, None, e)),
        at_ms: 0,
    }
}

async fn send(stack: &Stack, records: Vec<Outgoing>) -> anyhow::Result<()> {
    let producer = produce::producer(&stack.brokers)?;
    produce::send_all(&producer, records, |_| {}).await?;
    Ok(())
}

async fn publish(stack: &Stack, dims: Vec<DimensionRecord>) -> anyhow::Result<()> {
    let records = dims
        .into_iter()
        .map(|d| Outgoing {
            topic: d.dimension().topic(),
            key: d.key().into_bytes(),
            payload: Some(d.encode().expect("encodes")),
            at_ms: 0,
        })
        .collect();
    send(stack, records).await
}

/// How many records of `key` a topic still holds, read from the beginning: whether the
/// broker compacted it. (Services must be right either way.)
fn versions_kept(brokers: &str, topic: &str, key: &str) -> anyhow::Result<(usize, i64, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "e2e-compaction-probe")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut end = 0;
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)?;
        end += consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))?
            .1;
    }
    consumer.assign(&tpl)?;
    let (mut seen, mut matching) = (0i64, 0usize);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seen < end && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            seen += 1;
            if m.key() == Some(key.as_bytes()) {
                matching += 1;
            }
        }
    }
    Ok((matching, seen, end))
}

/// Waits until the service applied `n` records of `dimension` since it started.
async fn applied(service: &Service, dimension: Dimension, n: u64) {
    let label = format!("dimension=\"{}\"", dimension.as_str());
    let got = wait_for(Duration::from_secs(30), n, || async {
        let text = service.scrape()?;
        Ok(
            metric(&text, "wxpulse_enrich_dimension_updates_total", &[&label]).unwrap_or(0.0)
                as u64,
        )
    })
    .await;
    assert_eq!(got, n, "{} updates applied", dimension.as_str());
}

async fn rows_in(stack: &Stack, db: &str, table: &str, n: u64) {
    let ch = stack.client(db);
    let got = wait_for(Duration::from_secs(60), n, || count(&ch, table)).await;
    assert_eq!(got, n, "{table}: rows");
}

/// Every row as `event_id → "col1|col2|..."`.
async fn stored(
    stack: &Stack,
    db: &str,
    table: &str,
    columns: &[&str],
) -> anyhow::Result<BTreeMap<String, String>> {
    let list = columns
        .iter()
        .map(|c| format!("toString({c})"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows: Vec<(String, String)> = stack
        .client(db)
        .query(&format!(
            "SELECT toString(event_id), arrayStringConcat([{list}], '|') FROM {table}"
        ))
        .fetch_all()
        .await?;
    Ok(rows.into_iter().collect())
}

fn expect(rows: &[(u32, &str)]) -> BTreeMap<String, String> {
    rows.iter()
        .map(|(n, v)| (event_id(*n), v.to_string()))
        .collect()
}

fn account(app_id: &str, brand: &str) -> DimensionRecord {
    DimensionRecord::Account(AccountRecord {
        app_id: app_id.into(),
        brand: brand.into(),
        name: format!("{brand} official"),
        account_type: AccountType::Service,
        fans: 1000,
        updated_at: 0,
    })
}

fn fan(
    app_id: &str,
    openid: &str,
    status: CustomerStatus,
    followed: i64,
    unfollowed: Option<i64>,
) -> DimensionRecord {
    DimensionRecord::FanProfile(FanProfileRecord {
        app_id: app_id.into(),
        openid: openid.into(),
        status,
        member_tier: None,
        associate_userid: None,
        followed_at: Some(followed),
        unfollowed_at: unfollowed,
        follow_source: Some("search".into()),
        updated_at: 0,
    })
}

fn store(id: &str, region: &str) -> DimensionRecord {
    DimensionRecord::Store(StoreRecord {
        store_id: id.into(),
        name: id.into(),
        city: "Shanghai".into(),
        region: region.into(),
        tier: "1".into(),
        updated_at: 0,
    })
}

fn associate(userid: &str, store_id: &str) -> DimensionRecord {
    DimensionRecord::Associate(AssociateRecord {
        userid: userid.into(),
        name: userid.into(),
        store_id: store_id.into(),
        active: true,
        updated_at: 0,
    })
}

/// The raw ids of a scenario are absent from every table of its database.
async fn no_raw_ids(stack: &Stack, db: &str) -> anyhow::Result<()> {
    let ch = stack.client(db);
    let tables: Vec<String> = ch
        .query("SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View%'")
        .fetch_all()
        .await?;
    for table in tables {
        let leaks: u64 = ch
            .query(&format!(
                "SELECT count() FROM {table} WHERE position(formatRow('TSV', *), 'oRAW') > 0"
            ))
            .fetch_one()
            .await?;
        assert_eq!(leaks, 0, "{table} holds a raw openid");
    }
    Ok(())
}

fn click(n: u32, app: &str, openid: &str, key: &str, t: i64, server: i64) -> Outgoing {
    let id = event_id(n);
    record(
        "wxpulse.menu_clicks",
        app,
        openid,
        &MenuClick {
            event_id: &id,
            app_id: app,
            openid,
            unionid: None,
            client_time: t,
            server_time: server,
            event: MenuEvent::Click,
            event_key: key,
            menu_id: None,
        },
    )
}

fn button(app: &str, key: &str, category: MenuCategory, label: &str) -> DimensionRecord {
    DimensionRecord::MenuButton(MenuButtonRecord {
        app_id: app.into(),
        event_key: key.into(),
        category,
        label: label.into(),
        updated_at: 0,
    })
}

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
            click(10, "wxb", f, "SHOP", t0 + 5 * D, t0 + 5 * D + s),
        ],
    )
    .await?;
    rows_in(&stack, DB, "menu_clicks", 9).await;

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
    rows_in(&stack, DB, "menu_clicks", 11).await;

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
    rows_in(&stack, DB, "menu_clicks", 14).await;

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
        (10, "unknown|unknown|unknown|unknown|active|1"),
        (11, "Maison|brand_info|Heritage|vip|active|4"),
        (12, "Maison|crm|Member|customer|active|2"),
        // After the restart: counts and last interactions continue, nothing resets.
        (13, "Maison|ecommerce|Shop|prospect|active|2"),
        (14, "Atelier|unknown|unknown|unknown|active|2"),
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

fn scan(n: u32, openid: &str, event: QrEvent, key: &str, t: i64, server: i64) -> Outgoing {
    let id = event_id(n);
    record(
        "wxpulse.qr_scans",
        "wxa",
        openid,
        &QrScan {
            event_id: &id,
            app_id: "wxa",
            openid,
            unionid: None,
            client_time: t,
            server_time: server,
            event,
            event_key: key,
            ticket: None,
        },
    )
}

fn scene(
    scene: &str,
    channel: SceneChannel,
    store_id: Option<&str>,
    userid: Option<&str>,
    campaign: Option<&str>,
) -> DimensionRecord {
    DimensionRecord::QrScene(QrSceneRecord {
        scene: scene.into(),
        channel,
        store_id: store_id.map(Into::into),
        userid: userid.map(Into::into),
        campaign: campaign.map(Into::into),
        updated_at: 0,
    })
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
        ],
    )
    .await?;
    rows_in(&stack, DB, "qr_scans", 4).await;
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
    applied(&service, Dimension::QrScene, 4).await;
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
    rows_in(&stack, DB, "qr_scans", 6).await;
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
    rows_in(&stack, DB, "qr_scans", 7).await;
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
    ]);
    assert_eq!(got, want);
    no_raw_ids(&stack, DB).await?;
    assert_eq!(service.terminate(Duration::from_secs(20)), Some(0));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn message(
    n: u32,
    openid: &str,
    conversation: ConversationKind,
    direction: Direction,
    userid: Option<&str>,
    t: i64,
    server: i64,
) -> Outgoing {
    let id = event_id(n);
    record(
        "wxpulse.chat_messages",
        "wxa",
        openid,
        &ChatMessage {
            event_id: &id,
            app_id: "wxa",
            openid,
            unionid: None,
            client_time: t,
            server_time: server,
            msg_id: i64::from(n),
            conversation,
            direction,
            msg_type: MsgType::Text,
            userid,
            chat_id: None,
            content: Some("oRAW private words"),
            content_length: 18,
        },
    )
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

fn read(
    n: u32,
    openid: &str,
    article_id: &str,
    msgid: i64,
    idx: i32,
    t: i64,
    server: i64,
) -> Outgoing {
    let id = event_id(n);
    record(
        "wxpulse.article_reads",
        "wxa",
        openid,
        &ArticleRead {
            event_id: &id,
            app_id: "wxa",
            openid,
            unionid: None,
            client_time: t,
            server_time: server,
            article_id,
            msgid,
            idx,
            source: ReadSource::Push,
            read_depth: 3.5,
            read_seconds: 40,
            shared: n % 2 == 0,
            favorited: false,
            cta_clicked: n % 3 == 0,
        },
    )
}

#[allow(clippy::too_many_arguments)]
fn article(
    id: &str,
    msgid: i64,
    idx: i32,
    of: i32,
    published: i64,
    campaign: Option<&str>,
    segment: Option<&str>,
    reached: i64,
) -> DimensionRecord {
    DimensionRecord::Article(ArticleRecord {
        article_id: id.into(),
        msgid,
        idx,
        articles_in_push: of,
        title: id.into(),
        published_at: published,
        campaign: campaign.map(Into::into),
        target_segment: segment.map(Into::into),
        fans_reached: reached,
        updated_at: 0,
    })
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
