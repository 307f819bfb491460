//! The menu-click service: brand, category, label and segment across dimension updates and
//! a restart.

use std::time::Duration;

use crate::golden::*;
use wxpulse_e2e::*;
use wxpulse_runtime::enrich::*;

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
