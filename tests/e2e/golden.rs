//! Golden-input building blocks shared by the per-service and the conversion end-to-end
//! tests: dimension records, events as an upstream would produce them, and readers of
//! what the services stored.

use std::collections::BTreeMap;
use std::time::Duration;

use wxpulse_cli::produce::{self, Outgoing};
use wxpulse_e2e::*;
use wxpulse_runtime::enrich::*;
use wxpulse_runtime::events::*;

pub(crate) const H: i64 = 3_600_000;
pub(crate) const D: i64 = 24 * H;

pub(crate) fn event_id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

pub(crate) fn record<T: serde::Serialize>(
    topic: &'static str,
    app: &str,
    openid: &str,
    e: &T,
) -> Outgoing {
    Outgoing {
        topic,
        key: format!("{app}|{openid}").into_bytes(),
        payload: Some(encode_event(topic, None, e)),
        at_ms: 0,
    }
}

pub(crate) async fn send(stack: &Stack, records: Vec<Outgoing>) -> anyhow::Result<()> {
    let producer = produce::producer(&stack.kafka())?;
    produce::send_all(&producer, records, |_| {}).await?;
    Ok(())
}

pub(crate) async fn publish(stack: &Stack, dims: Vec<DimensionRecord>) -> anyhow::Result<()> {
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
pub(crate) fn versions_kept(
    brokers: &str,
    topic: &str,
    key: &str,
) -> anyhow::Result<(usize, i64, i64)> {
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
pub(crate) async fn applied(service: &Service, dimension: Dimension, n: u64) {
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

pub(crate) async fn rows_in(stack: &Stack, db: &str, table: &str, n: u64) {
    let ch = stack.client(db);
    let got = wait_for(Duration::from_secs(60), n, || count(&ch, table)).await;
    assert_eq!(got, n, "{table}: rows");
}

/// Every row as `event_id → "col1|col2|..."`.
pub(crate) async fn stored(
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

pub(crate) fn expect(rows: &[(u32, &str)]) -> BTreeMap<String, String> {
    rows.iter()
        .map(|(n, v)| (event_id(*n), v.to_string()))
        .collect()
}

pub(crate) fn account(app_id: &str, brand: &str) -> DimensionRecord {
    DimensionRecord::Account(AccountRecord {
        app_id: app_id.into(),
        brand: brand.into(),
        name: format!("{brand} official"),
        account_type: AccountType::Service,
        fans: 1000,
        updated_at: 0,
    })
}

pub(crate) fn fan(
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
        birthday: None,
    })
}

pub(crate) fn store(id: &str, region: &str) -> DimensionRecord {
    DimensionRecord::Store(StoreRecord {
        store_id: id.into(),
        name: id.into(),
        city: "Shanghai".into(),
        region: region.into(),
        tier: "1".into(),
        updated_at: 0,
    })
}

pub(crate) fn associate(userid: &str, store_id: &str) -> DimensionRecord {
    DimensionRecord::Associate(AssociateRecord {
        userid: userid.into(),
        name: userid.into(),
        store_id: store_id.into(),
        active: true,
        updated_at: 0,
    })
}

/// The raw ids of a scenario are absent from every table of its database.
pub(crate) async fn no_raw_ids(stack: &Stack, db: &str) -> anyhow::Result<()> {
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

pub(crate) fn click(n: u32, app: &str, openid: &str, key: &str, t: i64, server: i64) -> Outgoing {
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

pub(crate) fn button(app: &str, key: &str, category: MenuCategory, label: &str) -> DimensionRecord {
    DimensionRecord::MenuButton(MenuButtonRecord {
        app_id: app.into(),
        event_key: key.into(),
        category,
        label: label.into(),
        updated_at: 0,
    })
}

pub(crate) fn scan(
    n: u32,
    openid: &str,
    event: QrEvent,
    key: &str,
    t: i64,
    server: i64,
) -> Outgoing {
    scan_of("wxa", n, openid, event, key, t, server)
}

/// A scan of account `app_id`'s code.
pub(crate) fn scan_of(
    app_id: &str,
    n: u32,
    openid: &str,
    event: QrEvent,
    key: &str,
    t: i64,
    server: i64,
) -> Outgoing {
    let id = event_id(n);
    record(
        "wxpulse.qr_scans",
        app_id,
        openid,
        &QrScan {
            event_id: &id,
            app_id,
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

/// A code published for every account (no app_id, as v1 records are).
pub(crate) fn scene(
    scene: &str,
    channel: SceneChannel,
    store_id: Option<&str>,
    userid: Option<&str>,
    campaign: Option<&str>,
) -> DimensionRecord {
    account_scene("", scene, channel, store_id, userid, campaign)
}

/// A code of account `app_id` (scene ids are per Official Account).
pub(crate) fn account_scene(
    app_id: &str,
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
        app_id: app_id.into(),
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn message(
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

pub(crate) fn read(
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
pub(crate) fn article(
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
