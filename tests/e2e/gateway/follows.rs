//! Follows and unfollows that only the gateway hears of, through to the consumers'
//! lifecycle, `fan_follow_events` and the follower views.

use std::time::Duration;

use wxpulse_e2e::*;

use super::helpers::{event_xml, maison, vip_followed_ms, WeChat, APP};

/// Follows and unfollows that WeChat reports only to the gateway (a `subscribe` without a
/// QR code, an `unsubscribe`) reach the fan-follow topic: the consumers' lifecycle sees the
/// fan leave and come back, the CRM's profile fields (relationship, its own follow) are
/// untouched, a retried unfollow is one row of `fan_follow_events`, and the follower views
/// count each follow once — a QR-code subscribe only through its scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_reported_by_wechat_set_follow_times_without_overwriting_the_profile(
) -> anyhow::Result<()> {
    const DB: &str = "wx_gateway_follows";
    let stack = Stack::start("gateway-follows")?;
    let (gateway, t) = maison(&stack, DB).await?;
    let crm_follow_ms = vip_followed_ms(t);
    let clicks = Service::start("wxpulse-menu-clicks", &stack, DB, &[])?;
    let scans = Service::start("wxpulse-qr-scans", &stack, DB, &[])?;
    let wechat = WeChat::new(gateway.listen.clone());
    let ok = (200, "success".to_string());
    // Each click is sent once the service has applied the follows before it, as a fan's
    // click arrives well after their follow; `applied` is that count.
    let applied = |n: u64| {
        let clicks = &clicks;
        async move {
            wait_for(Duration::from_secs(60), n, || async {
                Ok(metric(
                    &clicks.scrape()?,
                    "wxpulse_enrich_dimension_updates_total",
                    &["dimension=\"fan_follow\""],
                )
                .unwrap_or(0.0) as u64)
            })
            .await
        }
    };
    let q = wechat.query("1733380000", "v");
    until_ok(Duration::from_secs(30), || {
        wechat.request("GET", &format!("/wechat/{APP}?{q}&echostr=1"), "")
    })
    .await?;

    // The VIP unfollows (and WeChat retries the callback), then clicks: churned, still VIP.
    let unfollow = event_xml("oVIP", t, "unsubscribe", "", "");
    assert_eq!(wechat.push(APP, &unfollow, "plain", "u1")?, ok);
    assert_eq!(wechat.push(APP, &unfollow, "plain", "u1b")?, ok);
    assert_eq!(applied(2).await, 2);
    let click = |openid: &str, at: i64| event_xml(openid, at, "CLICK", "SHOP", "");
    assert_eq!(wechat.push(APP, &click("oVIP", t + 10), "plain", "c1")?, ok);
    // Someone the CRM does not know follows without a code (safe mode), then clicks: new.
    let follow = event_xml("oNEW", t + 20, "subscribe", "", "");
    assert_eq!(wechat.push(APP, &follow, "safe", "f1")?, ok);
    assert_eq!(applied(3).await, 3);
    assert_eq!(wechat.push(APP, &click("oNEW", t + 30), "plain", "c2")?, ok);
    // The VIP comes back through the store's code: a follow and a scan; then clicks: new.
    let back = event_xml(
        "oVIP",
        t + 40,
        "subscribe",
        "qrscene_1001",
        "<Ticket>TK</Ticket>",
    );
    assert_eq!(wechat.push(APP, &back, "compatible", "f2")?, ok);
    assert_eq!(applied(4).await, 4);
    assert_eq!(wechat.push(APP, &click("oVIP", t + 50), "plain", "c3")?, ok);

    let ch = stack.client(DB);
    assert_eq!(
        wait_for(Duration::from_secs(60), 3, || count(&ch, "menu_clicks")).await,
        3
    );
    assert_eq!(
        wait_for(Duration::from_secs(60), 1, || count(&ch, "qr_scans")).await,
        1
    );
    let segments: Vec<(String, String)> = ch
        .query("SELECT relationship, lifecycle FROM menu_clicks ORDER BY event_time")
        .fetch_all()
        .await?;
    let pair = |r: &str, l: &str| (r.to_string(), l.to_string());
    assert_eq!(
        segments,
        vec![
            pair("vip", "churned"),
            pair("unknown", "new"),
            pair("vip", "new")
        ],
        "the lifecycle follows WeChat's follows; the relationship stays the CRM's"
    );

    // The mirror copies the profile and the reported follows into ClickHouse.
    mirror_profiles(&stack, DB)?;
    let history: Vec<(String, i64, String)> = ch
        .query(
            "SELECT kind, toUnixTimestamp64Milli(at), follow_source FROM fan_follow_events FINAL \
             ORDER BY at, kind",
        )
        .fetch_all()
        .await?;
    let row = |kind: &str, at: i64, source: &str| (kind.to_string(), at, source.to_string());
    assert_eq!(
        history,
        vec![
            row("follow", crm_follow_ms, "search"),
            row("unfollow", t * 1000, ""),
            row("follow", (t + 20) * 1000, ""),
            row("follow", (t + 40) * 1000, "ADD_SCENE_QR_CODE"),
        ],
        "the CRM's follow, and each reported one once (the retried unfollow too)"
    );
    let profile: (String, i64) = ch
        .query(
            "SELECT status, toUnixTimestamp64Milli(assumeNotNull(followed_at)) \
             FROM fan_profiles FINAL WHERE is_deleted = 0",
        )
        .fetch_one()
        .await?;
    assert_eq!(
        profile,
        ("vip".to_string(), crm_follow_ms),
        "the CRM's profile is not overwritten"
    );
    // New follows: the VIP's return once, as a QR follow (from its scan); oNEW's as
    // unknown-source; the CRM's 400-day-old follow as search. One unfollow.
    let growth: Vec<(String, u64, u64)> = ch
        .query(
            "SELECT source_group, sum(new_follows), sum(unfollows) FROM v_follower_growth \
             WHERE app_id = ? GROUP BY source_group ORDER BY source_group",
        )
        .bind(APP)
        .fetch_all()
        .await?;
    let g = |s: &str, f: u64, u: u64| (s.to_string(), f, u);
    assert_eq!(
        growth,
        vec![g("qr", 1, 0), g("search", 1, 0), g("unknown", 1, 1)]
    );
    let text = gateway.service.scrape()?;
    let outcome = |o: &str| {
        metric(
            &text,
            "wxpulse_gateway_callbacks_total",
            &[&format!("outcome=\"{o}\"")],
        )
    };
    assert_eq!(
        outcome("follow"),
        Some(4.0),
        "two unfollows (one a retry), two follows"
    );
    assert_eq!(outcome("event"), Some(4.0), "three clicks and the scan");
    drop(scans);
    Ok(())
}
