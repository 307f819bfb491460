//! The QR-scan service: scene, channel, store, campaign and follow source, per account.

use std::time::Duration;

use crate::golden::*;
use wxpulse_e2e::*;
use wxpulse_runtime::enrich::*;
use wxpulse_runtime::events::*;

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
