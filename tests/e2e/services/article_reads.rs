//! The article-read service: push, position, campaign and segment of each read.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::golden::*;
use wxpulse_e2e::*;
use wxpulse_runtime::enrich::*;

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
