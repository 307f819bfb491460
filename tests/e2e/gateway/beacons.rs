//! Article reads from the brand's pages through the gateway's beacon endpoint.

use std::time::Duration;

use wxpulse_e2e::*;

use super::helpers::{gateway_letters, WeChat, APP, TOKEN};
use crate::golden::{account, publish};

/// Article reads from the brand's pages through the beacon endpoint: a batch with one bad
/// read is answered with that read's index and reason and dead-lettered, the valid ones
/// land once (a read sent twice too), a wrong key is refused and a request over the
/// account's beacon burst is 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn article_read_beacons_land_once_and_bad_reads_are_named() -> anyhow::Result<()> {
    const DB: &str = "wx_beacon";
    let stack = Stack::start("beacon")?;
    stack.prepare(DB, 2).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    publish(&stack, vec![account(APP, "Maison")]).await?;
    let gateway = Gateway::start(
        &stack,
        DB,
        &format!(
            "[[account]]\napp_id = \"{APP}\"\ntoken = \"{TOKEN}\"\nbeacon_key = \"bk-4711\"\n"
        ),
        &[
            ("WXPULSE__GATEWAY__BEACON_RATE_LIMIT", "1"),
            ("WXPULSE__GATEWAY__BEACON_BURST", "6"),
        ],
    )?;
    let listen = gateway.listen.clone();
    let _reads = Service::start("wxpulse-article-reads", &stack, DB, &[])?;
    let page = WeChat::new(listen.clone());
    let read = |n: u32, openid: &str, source: &str, shared: bool| {
        serde_json::json!({
            "event_id": format!("00000000-0000-4000-8000-{n:012x}"),
            "openid": openid, "client_time": now - 60_000 + i64::from(n),
            "article_id": "art-1", "msgid": 9001, "idx": 1, "source": source,
            "read_depth": 3.5, "read_seconds": 40, "shared": shared,
        })
    };
    let batch = serde_json::json!([
        read(1, "oR1", "PUSH", false),
        read(2, "oR2", "TAP", false),
        read(3, "oR2", "MOMENTS", true),
        read(1, "oR1", "PUSH", false),
    ])
    .to_string();
    let answer = until_ok(Duration::from_secs(30), || {
        page.request("POST", "/v1/article_reads?key=bk-4711", &batch)
    })
    .await?;
    assert_eq!(answer.0, 200, "{answer:?}");
    let body: serde_json::Value = serde_json::from_str(&answer.1)?;
    assert_eq!(body["accepted"], 3);
    assert_eq!(body["rejected"][0]["index"], 1);
    assert!(
        body["rejected"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("\"TAP\""),
        "{body}"
    );
    let (status, _) = page.request("POST", "/v1/article_reads?key=wrong", &batch)?;
    assert_eq!(status, 401);
    // Over the account's beacon burst (6 reads): 429, nothing produced.
    let flood = serde_json::Value::Array((10..17).map(|n| read(n, "oR9", "PUSH", false)).collect());
    let (status, text) =
        page.request("POST", "/v1/article_reads?key=bk-4711", &flood.to_string())?;
    assert_eq!(status, 429, "{text}");
    let scraped = gateway.service.scrape()?;
    assert_eq!(
        metric(
            &scraped,
            "wxpulse_gateway_callbacks_total",
            &["outcome=\"rate_limited\""]
        ),
        Some(1.0)
    );
    // The rejected read was answered and is also in the dead-letter topic.
    let letters = gateway_letters(&stack)?;
    assert_eq!(
        letters,
        vec![(
            "gateway:/v1/article_reads".to_string(),
            "beacon_rejected".to_string()
        )]
    );

    let ch = stack.client(DB);
    let got = wait_for(Duration::from_secs(60), 2, || count(&ch, "article_reads")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        (got, count(&ch, "article_reads").await?),
        (2, 2),
        "the repeat dropped"
    );
    let rows: Vec<(String, bool)> = ch
        .query("SELECT source, shared FROM article_reads ORDER BY event_time")
        .fetch_all()
        .await?;
    assert_eq!(rows, vec![("PUSH".into(), false), ("MOMENTS".into(), true)]);
    Ok(())
}
