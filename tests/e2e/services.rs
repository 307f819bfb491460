//! Issue 4: each service against golden input, on the local stack. Every scenario runs
//! the same acts — dimensions published, events (with an upstream-retry duplicate and a
//! late event), a dimension updated and a missing one arriving while the service runs,
//! SIGKILL and restart, more events — and compares every stored row with values written
//! out by hand here: enrichment, segment and the stream's own state across the restart.

use std::collections::BTreeMap;
use std::time::Duration;

use wxpulse_cli::produce::{self, Outgoing};
use wxpulse_e2e::*;
use wxpulse_runtime::codec;
use wxpulse_runtime::enrich::*;
use wxpulse_runtime::events::*;

const H: i64 = 3_600_000;
const D: i64 = 24 * H;

fn event_id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn encode<T: serde::Serialize>(topic: &str, value: &T) -> Vec<u8> {
    let s = codec::latest(&format!("{topic}-value")).expect("schema");
    let mut out = Vec::new();
    codec::encode_into(
        value,
        s.id,
        &codec::parse(s.json).expect("parses"),
        &mut out,
    )
    .expect("encodes");
    out
}

fn record<T: serde::Serialize>(topic: &'static str, app: &str, openid: &str, e: &T) -> Outgoing {
    Outgoing {
        topic,
        key: format!("{app}|{openid}").into_bytes(),
        payload: encode(topic, e),
        at_ms: 0,
    }
}

/// Start of last month in Asia/Shanghai, ms: every scenario's events fall in it (so none
/// is in the future, whatever today's date), and ClickHouse itself says when it begins.
async fn last_month(stack: &Stack) -> anyhow::Result<i64> {
    Ok(stack
        .client("default")
        .query(
            "SELECT toInt64(toUnixTimestamp(toStartOfMonth(now('Asia/Shanghai')) - INTERVAL 1 MONTH, 'Asia/Shanghai')) * 1000",
        )
        .fetch_one::<i64>()
        .await?)
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
            payload: d.encode().expect("encodes"),
            at_ms: 0,
        })
        .collect();
    send(stack, records).await
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
    let t0 = last_month(&stack).await? + D;
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
