//! `validation.unknown_account = "quarantine"`: an unknown account's clicks are written to
//! `menu_clicks_quarantine`, which no view counts (nor any dead letter), and `wxpulse
//! quarantine release` moves them into `menu_clicks` once the account is published —
//! stamped with its brand, each once, however often the release runs.

use std::time::Duration;

use crate::golden::*;
use wxpulse_e2e::*;
use wxpulse_runtime::enrich::MenuCategory;

const DB: &str = "wx_quarantine";

/// `wxpulse quarantine <args>` against the test's stack; its standard output.
fn quarantine(stack: &Stack, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(binary("wxpulse")?)
        .args([
            "--brokers",
            &stack.brokers,
            "--clickhouse",
            &stack.clickhouse,
        ])
        .args(["--database", DB, "quarantine"])
        .args(args)
        .env("WXPULSE__PII__KEY", TEST_PII_KEY)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "wxpulse quarantine {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What a view-side reader sees: interactions counted by the rollup, per account.
async fn counted(ch: &clickhouse::Client) -> anyhow::Result<Vec<(String, u64)>> {
    Ok(ch
        .query(
            "SELECT app_id, toUInt64(sum(events)) FROM v_interaction_mix \
             GROUP BY app_id ORDER BY app_id",
        )
        .fetch_all()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_accounts_are_held_out_of_every_view_and_released_once() -> anyhow::Result<()> {
    let stack = Stack::start("quarantine")?;
    stack.prepare(DB, 2).await?;
    let t0 = last_month(&stack).await?.0 + D;
    let s = 1_000;
    publish(
        &stack,
        vec![
            account("wxa", "Maison"),
            button("wxa", "SHOP", MenuCategory::Ecommerce, "Shop"),
            button("wxb", "SHOP", MenuCategory::Ecommerce, "Shop"),
        ],
    )
    .await?;
    let service = Service::start(
        "wxpulse-menu-clicks",
        &stack,
        DB,
        &[("WXPULSE__VALIDATION__UNKNOWN_ACCOUNT", "quarantine")],
    )?;
    send(
        &stack,
        vec![
            click(1, "wxa", "oA", "SHOP", t0 + D, t0 + D + s),
            click(2, "wxb", "oB", "SHOP", t0 + D, t0 + D + s),
            click(3, "wxb", "oC", "SHOP", t0 + 2 * D, t0 + 2 * D + s),
            // An upstream retry of 3: a quarantined event is written, so its id is taken.
            click(3, "wxb", "oC", "SHOP", t0 + 2 * D, t0 + 2 * D + 6 * s),
            click(4, "wxa", "oA", "SHOP", t0 + 3 * D, t0 + 3 * D + s),
        ],
    )
    .await?;
    rows_in(&stack, DB, "menu_clicks", 2).await;
    let ch = stack.client(DB);
    let held = wait_for(Duration::from_secs(60), 2, || async {
        Ok(ch
            .query("SELECT count() FROM menu_clicks_quarantine FINAL")
            .fetch_one::<u64>()
            .await?)
    })
    .await;
    assert_eq!(held, 2, "wxb's clicks held");
    // Held out of every view and not dead letters; enriched like any row.
    assert_eq!(counted(&ch).await?, vec![("wxa".to_string(), 2)]);
    assert_eq!(count(&ch, "dead_letters").await?, 0);
    let daily: Vec<(String, String, u64)> = ch
        .query(
            "SELECT stream_table, app_id, toUInt64(sum(events)) FROM v_quarantine_daily \
             GROUP BY stream_table, app_id",
        )
        .fetch_all()
        .await?;
    assert_eq!(daily, vec![("menu_clicks".into(), "wxb".into(), 2)]);
    assert_eq!(
        stored(
            &stack,
            DB,
            "menu_clicks_quarantine",
            &["app_id", "brand", "category", "label"]
        )
        .await?,
        expect(&[
            (2, "wxb|unknown|ecommerce|Shop"),
            (3, "wxb|unknown|ecommerce|Shop")
        ])
    );
    assert_eq!(
        metric(&service.scrape()?, "wxpulse_quarantine_events_total", &[]),
        Some(2.0)
    );
    let listed = quarantine(&stack, &["list"])?;
    assert!(
        listed.contains("menu_clicks") && listed.contains("wxb"),
        "{listed}"
    );

    // Not published yet: nothing moves.
    let out = quarantine(&stack, &["release"])?;
    assert!(out.contains("released 0 events"), "{out}");
    assert_eq!(count(&ch, "menu_clicks").await?, 2);

    // Published: released once, with the account's brand; a second release adds nothing.
    publish(&stack, vec![account("wxb", "Atelier")]).await?;
    let out = quarantine(&stack, &["release", "--dry-run"])?;
    assert!(out.contains("would copy 2 events"), "{out}");
    assert_eq!(
        count(&ch, "menu_clicks").await?,
        2,
        "a dry run changes nothing"
    );
    let out = quarantine(&stack, &["release"])?;
    assert!(out.contains("released 2 events"), "{out}");
    let out = quarantine(&stack, &["release"])?;
    assert!(out.contains("released 0 events"), "{out}");
    assert_eq!(count(&ch, "menu_clicks").await?, 4);
    assert_eq!(
        ch.query("SELECT count() FROM menu_clicks_quarantine FINAL")
            .fetch_one::<u64>()
            .await?,
        0
    );
    assert_eq!(
        counted(&ch).await?,
        vec![("wxa".to_string(), 2), ("wxb".to_string(), 2)]
    );
    let released = stored(
        &stack,
        DB,
        "menu_clicks",
        &["app_id", "brand", "kafka_topic"],
    )
    .await?;
    assert_eq!(
        released.get(&event_id(3)).map(String::as_str),
        Some("wxb|Atelier|released:wxpulse.menu_clicks")
    );
    Ok(())
}
