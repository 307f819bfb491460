//! Copies of events re-sent 1 minute, 2 hours and 3 days later — after their originals
//! are written, across a SIGKILL and restart and a rebalance onto two instances — are all
//! dropped: every table holds each event once, and the dedup metrics say how late the
//! copies came. Expected numbers are counted here from what the test produced.

use std::time::Duration;

use wxpulse_cli::produce::{self, Outgoing};
use wxpulse_e2e::*;
use wxpulse_runtime::events::{MenuClick, MenuEvent};

const DB: &str = "wx_late_dups";
const TOPIC: &str = "wxpulse.menu_clicks";
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// A click `i` (its own event id and fan) received at `server_time`.
fn click(i: usize, server_time: i64) -> Outgoing {
    let event_id = format!("00000000-0000-4000-8000-{i:012x}");
    let app_id = format!("wxlate{:02}", i % 3);
    let openid = format!("oLATE_{i:05}");
    let e = MenuClick {
        event_id: &event_id,
        app_id: &app_id,
        openid: &openid,
        unionid: None,
        client_time: server_time - 700,
        server_time,
        event: MenuEvent::Click,
        event_key: "BUTTON_1",
        menu_id: None,
    };
    Outgoing {
        topic: TOPIC,
        key: format!("{app_id}|{openid}").into_bytes(),
        payload: Some(encode_event(TOPIC, Some(1), &e)),
        at_ms: 0,
    }
}

/// Sum of a metric over the instances.
fn total(services: &[&Service], name: &str, labels: &[&str]) -> f64 {
    services
        .iter()
        .filter_map(|s| s.scrape().ok())
        .filter_map(|t| metric(&t, name, labels))
        .sum()
}

async fn produce_and_wait(
    stack: &Stack,
    records: Vec<Outgoing>,
    want: u64,
    what: &str,
) -> anyhow::Result<()> {
    let producer = produce::producer(&stack.kafka())?;
    produce::send_all(&producer, records, |_| {}).await?;
    let ch = stack.client(DB);
    let got = wait_for(Duration::from_secs(90), want, || count(&ch, "menu_clicks")).await;
    assert_eq!(got, want, "{what}: rows in menu_clicks");
    let distinct: u64 = ch
        .query("SELECT uniqExact(event_id) FROM menu_clicks")
        .fetch_one()
        .await?;
    assert_eq!(distinct, want, "{what}: distinct event ids");
    assert_eq!(
        rollup(&ch, "menu_click").await?,
        want,
        "{what}: hourly rollup"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_re_sent_minutes_hours_and_days_later_are_dropped() -> anyhow::Result<()> {
    let stack = Stack::start("late_dups")?;
    stack.prepare(DB, 2).await?;
    let base = now_ms() - 4 * DAY;
    let at = |i: usize| base + (i as i64) * 2_000;
    let mut first = Service::start("wxpulse-menu-clicks", &stack, DB, &[])?;

    // 1. 300 originals over 10 minutes; 30 of them re-sent 1 minute later (gateway retry).
    let mut records = Vec::new();
    for i in 0..300 {
        records.push(click(i, at(i)));
        if i >= 30 && i % 9 == 0 && records.len() < 400 {
            records.push(click(i - 30, at(i - 30))); // same bytes, 60 s of traffic later
        }
    }
    let one_minute = records.len() - 300;
    produce_and_wait(&stack, records, 300, "originals and 1-minute copies").await?;
    let s = [&first];
    assert_eq!(
        total(
            &s,
            "wxpulse_dedup_duplicates_by_age_total",
            &["age=\"window\""]
        ),
        one_minute as f64,
        "1-minute copies are caught by the window"
    );

    // 2. Two hours later: 100 new clicks, then the first 100 originals again (a gateway
    //    replaying its log after an outage). The originals are written and out of the
    //    window by now, so only the horizon and ClickHouse can tell.
    let mut records: Vec<Outgoing> = (300..400)
        .map(|i| click(i, base + 2 * HOUR + i as i64))
        .collect();
    records.extend((0..100).map(|i| click(i, at(i))));
    produce_and_wait(&stack, records, 400, "2-hour copies").await?;
    assert_eq!(
        total(&s, "wxpulse_dedup_duplicates_by_age_total", &["age=\"1d\""]),
        100.0,
        "2-hour copies: looked up and dropped"
    );
    assert_eq!(
        total(
            &s,
            "wxpulse_dedup_horizon_lookups_total",
            &["verdict=\"duplicate\""]
        ),
        100.0
    );
    // The suspects parked in one partition's line are asked together, not one round trip
    // each (which held a backlogged partition for every false positive).
    let queries = total(&s, "wxpulse_dedup_horizon_queries_total", &[]);
    eprintln!("2-hour copies: 100 suspects settled in {queries} ClickHouse queries");
    assert!(
        (1.0..=25.0).contains(&queries),
        "100 suspects took {queries} queries"
    );

    // 3. A crash, a restart and a second instance: the horizon is rebuilt from ClickHouse.
    first.restart()?;
    let second = Service::start("wxpulse-menu-clicks", &stack, DB, &[])?;
    owns_partitions(&first, Duration::from_secs(90)).await;
    owns_partitions(&second, Duration::from_secs(90)).await;
    // Three days later: 100 new clicks, then copies of originals 100..200 (3 days late)
    // and of the 2-hour clicks 300..350 (2 days 22 hours late).
    let mut records: Vec<Outgoing> = (400..500)
        .map(|i| click(i, base + 3 * DAY + i as i64))
        .collect();
    records.extend((100..200).map(|i| click(i, at(i))));
    records.extend((300..350).map(|i| click(i, base + 2 * HOUR + i as i64)));
    produce_and_wait(
        &stack,
        records,
        500,
        "3-day copies after a restart and a rebalance",
    )
    .await?;
    let both = [&first, &second];
    assert_eq!(
        total(
            &both,
            "wxpulse_dedup_duplicates_by_age_total",
            &["age=\"older\""]
        ),
        150.0,
        "3-day copies: dropped by the rebuilt horizon"
    );
    assert_eq!(
        total(
            &both,
            "wxpulse_dedup_horizon_lookups_total",
            &["verdict=\"duplicate\""]
        ),
        150.0
    );
    assert!(total(&both, "wxpulse_dedup_horizon_bytes", &[]) > 0.0);
    Ok(())
}
