//! The hot-key overflow lane (issue 17 part 2): one bot fan sends 30 % of the menu clicks,
//! with exact copies of its events re-sent, while `wxpulse-menu-clicks` diverts its
//! records past `max_per_window` per window of offsets to `wxpulse.menu_clicks.overflow`
//! and a second `wxpulse-menu-clicks` (`overflow.lane = "overflow"`) writes them.
//!
//! The lane is SIGKILLed while events flow and stays down while the primary goes on
//! diverting (and committing) a backlog of the hot fan's records; the primary is then
//! SIGKILLed with events in flight and restarted *while the lane is still down*, and
//! copies of events diverted into that unwritten backlog arrive. A primary that restored
//! its event ids and month counts from ClickHouse at that moment would miss the diverted
//! events the lane has not written: a copy of one kept in the primary was written twice
//! and the hot fan's month counts were off (measured: 4012 rows for 4000 event ids, 639
//! rows wrong). So the restarted primary must wait for the lane before it restores (it
//! writes nothing while the lane is down), and once the lane is restarted everything below
//! must hold.
//!
//! Everything expected is computed here from what was produced, without wxpulse's code:
//! which records the rule diverts (from the offsets read back from the broker), each row's
//! category, relationship, lifecycle and running month count (the fan's events in order),
//! and every figure of the BI views menu clicks feed. The table must hold one row per
//! event id, the lane's rows exactly the diverted events of the hot fan, and the views the
//! ground truth.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use rand::Rng;
use wxpulse_cli::produce::Outgoing;
use wxpulse_e2e::*;
use wxpulse_runtime::enrich::MenuCategory;

use crate::golden::{send, D};

mod crash_replay;
mod log;
mod world;
use log::{at_least, count_where, distinct_in, read_log, rule, uncommitted};
use world::{outgoing, rows_differing, world, Event};

const DB: &str = "wx_hot_keys";
const TOPIC: &str = "wxpulse.menu_clicks";
const OVERFLOW: &str = "wxpulse.menu_clicks.overflow";
const PARTITIONS: i32 = 4;
const APP: &str = "wxhot";
const HOT: &str = "oHOT_BOT";
/// Fans besides the hot one.
const FANS: usize = 120;
/// Distinct events produced (copies come on top).
const EVENTS: u32 = 4_000;
/// Share of the events sent by the hot fan.
const HOT_SHARE: f64 = 0.3;
const WINDOW_RECORDS: i64 = 200;
const MAX_PER_WINDOW: u32 = 20;
/// segment.new_for (default).
const NEW_FOR: i64 = 30 * D;
/// (event key, category as stored).
const BUTTONS: [(&str, &str, MenuCategory); 3] = [
    ("SHOP", "ecommerce", MenuCategory::Ecommerce),
    ("STORY", "brand_info", MenuCategory::BrandInfo),
    ("MEMBER", "crm", MenuCategory::Crm),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_fan_is_diverted_to_the_overflow_lane_and_every_view_still_equals_the_truth(
) -> anyhow::Result<()> {
    let (stack, fans, events, mut rng) = world("hot_keys", DB, EVENTS, 17).await?;
    let mut events_by_payload = HashMap::new();
    for e in &events {
        let payload = outgoing(&fans, e).payload.expect("a payload");
        events_by_payload.insert(payload, (e.n, e.fan));
    }
    let hot_events: Vec<Event> = events.iter().filter(|e| e.fan == 0).copied().collect();
    let half = EVENTS as usize / 2;
    let (backlog_end, in_flight_end) = (3 * EVENTS as usize / 4, 4 * EVENTS as usize / 5);
    // Phase 1: the first half; every 40th record is followed by a copy of the hot fan's
    // latest event if it is among the last 10 (an upstream retry seconds later, within the
    // dedup window). The lane is SIGKILLed during it.
    let mut phase1 = Vec::new();
    let mut copies = 0;
    let mut latest_hot = None;
    for (i, e) in events[..half].iter().enumerate() {
        phase1.push(outgoing(&fans, e));
        if e.fan == 0 {
            latest_hot = Some(*e);
        }
        if i % 40 == 39 {
            if let Some(h) = latest_hot.take().filter(|h| h.n as usize + 10 > i + 1) {
                phase1.push(outgoing(&fans, &h));
                copies += 1;
            }
        }
    }
    let hot_between = |from: usize, to: usize| -> Vec<Event> {
        hot_events
            .iter()
            .filter(|e| (from..to).contains(&(e.n as usize - 1)))
            .copied()
            .collect()
    };
    let early_hot = hot_between(0, half);
    let backlog_hot = hot_between(half, backlog_end);

    let overflow = [
        ("WXPULSE__OVERFLOW__ENABLED", "true"),
        ("WXPULSE__OVERFLOW__WINDOW_RECORDS", "200"),
        ("WXPULSE__OVERFLOW__MAX_PER_WINDOW", "20"),
    ];
    let mut primary = Service::start("wxpulse-menu-clicks", &stack, DB, &overflow)?;
    let mut lane = Service::start(
        "wxpulse-menu-clicks",
        &stack,
        DB,
        &[
            ("WXPULSE__OVERFLOW__LANE", "overflow"),
            ("WXPULSE__OVERFLOW__WINDOW_RECORDS", "200"),
            ("WXPULSE__OVERFLOW__MAX_PER_WINDOW", "20"),
        ],
    )?;
    owns_partitions(&primary, Duration::from_secs(90)).await;
    owns_partitions(&lane, Duration::from_secs(90)).await;
    let ch = stack.client(DB);
    let in_lane = format!("kafka_topic = '{OVERFLOW}'");

    // 1. The first half; the lane is SIGKILLed once some of it is written.
    send(&stack, phase1).await?;
    let written = at_least(Duration::from_secs(60), 1_000, || count(&ch, "menu_clicks")).await;
    lane.kill();
    eprintln!("lane SIGKILLed with {written} rows written");

    // Phase 2, the lane's backlog: up to 3/4 of the events while only the primary runs,
    // with copies of other fans' events and of the hot fan's phase-1 events, diverted ones
    // among them: a copy arriving past the dedup window is looked up in ClickHouse, where
    // its diverted original is not yet (the lane is down), so the primary must wait for the
    // lane before it calls the copy fresh (with 4d684e2's runtime, 5 such copies were
    // written twice).
    let early_log = read_log(&stack.brokers, TOPIC)?;
    let (diverted_early, _) = rule(&early_log, &events_by_payload);
    let hot_partition = early_log
        .iter()
        .find(|(_, _, payload)| events_by_payload[payload].1 == 0)
        .map(|(partition, _, _)| *partition)
        .expect("a record of the hot fan");
    let early_others: Vec<Event> = events[..half]
        .iter()
        .filter(|e| e.fan != 0)
        .copied()
        .collect();
    let mut phase2 = Vec::new();
    let mut diverted_copies = 0u32;
    for (i, e) in events[half..backlog_end].iter().enumerate() {
        phase2.push(outgoing(&fans, e));
        if i % 25 == 0 {
            let copy = early_hot[rng.gen_range(0..early_hot.len())];
            diverted_copies += u32::from(diverted_early.contains(&copy.n));
            phase2.push(outgoing(&fans, &copy));
            copies += 1;
        }
        if i % 150 == 0 {
            let other = early_others[rng.gen_range(0..early_others.len())];
            phase2.push(outgoing(&fans, &other));
            copies += 1;
        }
    }
    assert!(diverted_copies > 0, "phase 2 copies some diverted events");
    // Phase 3a: in flight when the primary is SIGKILLed (replayed by its restart).
    let phase3a: Vec<Outgoing> = events[backlog_end..in_flight_end]
        .iter()
        .map(|e| outgoing(&fans, e))
        .collect();
    // Phase 3b, sent while the restarted primary waits for the lane: the rest, with copies
    // of the hot fan's backlog events (every 6th record: most of them diverted and not
    // written yet, some of the copies among the first `MAX_PER_WINDOW` of their window,
    // kept in the primary), of its phase-1 events (diverted ones among them), and of other
    // fans'.
    let mut phase3b = Vec::new();
    for (i, e) in events[in_flight_end..].iter().enumerate() {
        phase3b.push(outgoing(&fans, e));
        if i % 6 == 0 {
            phase3b.push(outgoing(
                &fans,
                &backlog_hot[rng.gen_range(0..backlog_hot.len())],
            ));
            copies += 1;
        }
        if i % 40 == 0 {
            phase3b.push(outgoing(
                &fans,
                &early_hot[rng.gen_range(0..early_hot.len())],
            ));
            copies += 1;
        }
        if i % 150 == 0 {
            let other = events[rng.gen_range(0..backlog_end)];
            phase3b.push(outgoing(&fans, &other));
            copies += 1;
        }
    }
    eprintln!(
        "{} events, {} of the hot fan, {copies} copies",
        events.len(),
        hot_events.len()
    );

    // 2. The backlog: the primary diverts and commits with no lane writing.
    send(&stack, phase2).await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut behind = uncommitted(&stack.brokers, "wxpulse-menu-clicks", TOPIC);
    while !matches!(behind, Ok(0)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        behind = uncommitted(&stack.brokers, "wxpulse-menu-clicks", TOPIC);
    }
    let diverted_so_far = distinct_in(&stack, OVERFLOW, &events_by_payload)?;
    let lane_wrote = count_where(&ch, &in_lane).await?;
    eprintln!(
        "primary's uncommitted records {behind:?}; {diverted_so_far} events diverted, \
         {lane_wrote} of them written by the lane"
    );
    assert!(
        diverted_so_far > lane_wrote,
        "no diverted event is waiting for the lane when the primary crashes"
    );

    // 3. The primary is SIGKILLed with more events in flight and restarted while the lane
    //    is down: it must not restore the hot fan's partition (nor write it) before the
    //    lane has written what was diverted. Copies of the backlog's events arrive
    //    meanwhile.
    send(&stack, phase3a).await?;
    primary.kill();
    primary.restart()?;
    owns_partitions(&primary, Duration::from_secs(90)).await;
    let assigned = Instant::now();
    let in_hot_partition = format!("kafka_topic = '{TOPIC}' AND kafka_partition = {hot_partition}");
    let before = count_where(&ch, &in_hot_partition).await?;
    send(&stack, phase3b).await?;
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(assigned.elapsed())).await;
    let wrote_while_lane_down = count_where(&ch, &in_hot_partition)
        .await?
        .saturating_sub(before);
    eprintln!(
        "the restarted primary wrote {wrote_while_lane_down} rows of the hot fan's partition \
         {hot_partition} in {:?} with the lane down",
        assigned.elapsed()
    );
    lane.restart()?;

    // Everything written; the time each partition of each lane completed (printed only:
    // the freshness of the other partitions is the benchmark's to measure).
    let log = read_log(&stack.brokers, TOPIC)?;
    let (diverted, kept) = rule(&log, &events_by_payload);
    let started = Instant::now();
    let mut done: BTreeMap<(String, i32), Duration> = BTreeMap::new();
    let deadline = started + Duration::from_secs(180);
    let mut total = 0;
    while Instant::now() < deadline {
        let rows: Vec<(String, i32, u64)> = ch
            .query("SELECT toString(kafka_topic), kafka_partition, count() FROM menu_clicks GROUP BY ALL")
            .fetch_all()
            .await
            .unwrap_or_default();
        total = rows.iter().map(|r| r.2).sum::<u64>();
        for (topic, partition, n) in rows {
            let complete = topic == TOPIC && kept.get(&partition) == Some(&n);
            if complete {
                done.entry((topic, partition)).or_insert(started.elapsed());
            }
        }
        if total >= u64::from(EVENTS) {
            tokio::time::sleep(Duration::from_millis(1_500)).await; // any overshoot
            total = count(&ch, "menu_clicks").await?;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "after the lane's restart: complete primary partitions {done:?}, all rows after {:?}",
        started.elapsed()
    );

    // One row per event id (an id written more than once is shown with its rows' origins).
    let twice: Vec<(String, String)> = ch
        .query(
            "SELECT toString(event_id), arrayStringConcat(groupArray(concat(toString(kafka_topic), \
             '/', toString(kafka_partition), '/', toString(kafka_offset))), ' ') \
             FROM menu_clicks GROUP BY event_id HAVING count() > 1 ORDER BY event_id",
        )
        .fetch_all()
        .await?;
    for (id, rows) in &twice {
        let n = id
            .rsplit('-')
            .next()
            .and_then(|tail| u32::from_str_radix(tail, 16).ok())
            .unwrap_or(0);
        eprintln!(
            "written more than once: event {n} (diverted by the rule: {}) from {rows}",
            diverted.contains(&n)
        );
    }
    assert_eq!(total, u64::from(EVENTS), "rows in menu_clicks");
    let distinct: u64 = ch
        .query("SELECT uniqExact(event_id) FROM menu_clicks")
        .fetch_one()
        .await?;
    assert_eq!(distinct, u64::from(EVENTS), "distinct event ids");

    // Each row: the lane it came through (the rule's diversions, all the hot fan's) and
    // its segment as a run without the lane gives it (the fan's events in order).
    assert!(!diverted.is_empty());
    assert!(
        diverted.iter().all(|n| events[*n as usize - 1].fan == 0),
        "the rule diverts only the hot fan"
    );
    let came_through = |n: u32| {
        if diverted.contains(&n) {
            OVERFLOW
        } else {
            TOPIC
        }
    };
    let (wrong, got) = rows_differing(&ch, &fans, &events, Some(&came_through)).await?;
    let hot_in_lane = got.values().filter(|v| v.starts_with(OVERFLOW)).count();
    eprintln!(
        "{} of the hot fan's {} events diverted by the rule; {hot_in_lane} rows came through the lane",
        diverted.len(),
        hot_events.len()
    );
    assert!(
        wrong.is_empty(),
        "{} rows differ from the expectation, e.g.:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(15)].join("\n")
    );

    assert_eq!(
        wrote_while_lane_down, 0,
        "the restarted primary wrote rows of the hot fan's partition before the lane had \
         written what was diverted (its restore cannot have seen the lane's backlog)"
    );

    // The BI views menu clicks feed, against the ground truth.
    let fan_ids: Vec<u64> = fans.iter().map(|f| expected_fan_id(&f.openid)).collect();
    type Cell = (i64, String, String, String);
    let mut daily: BTreeMap<Cell, (u64, BTreeSet<u64>)> = BTreeMap::new();
    let mut categories: BTreeMap<String, (u64, BTreeSet<u64>)> = BTreeMap::new();
    let mut per_fan: BTreeMap<u64, u64> = BTreeMap::new();
    for e in &events {
        let f = &fans[e.fan];
        let day = (e.t + 8 * 3_600_000).div_euclid(D);
        let cell = daily
            .entry((
                day,
                BUTTONS[e.button].1.to_string(),
                f.relationship().to_string(),
                f.lifecycle(e.t).to_string(),
            ))
            .or_default();
        cell.0 += 1;
        cell.1.insert(fan_ids[e.fan]);
        let c = categories
            .entry(BUTTONS[e.button].1.to_string())
            .or_default();
        c.0 += 1;
        c.1.insert(fan_ids[e.fan]);
        *per_fan.entry(fan_ids[e.fan]).or_default() += 1;
    }
    let want: Vec<(i64, String, String, String, u64, u64)> = daily
        .into_iter()
        .map(|((d, c, r, l), (n, f))| (d, c, r, l, n, f.len() as u64))
        .collect();
    let got: Vec<(i64, String, String, String, u64, u64)> = ch
        .query(
            "SELECT toInt64(dateDiff('day', toDate('1970-01-01'), day)), toString(category), \
             toString(relationship), toString(lifecycle), toUInt64(events), toUInt64(fans) \
             FROM v_engagement_daily WHERE app_id = ? AND stream = 'menu_click' ORDER BY ALL",
        )
        .bind(APP)
        .fetch_all()
        .await?;
    assert_eq!(got, want, "v_engagement_daily");
    let want: Vec<(String, u64, u64)> = categories
        .into_iter()
        .map(|(c, (n, f))| (c, n, f.len() as u64))
        .collect();
    let got: Vec<(String, u64, u64)> = ch
        .query(
            "SELECT toString(category), toUInt64(clicks), toUInt64(fans) FROM v_menu_categories \
             WHERE app_id = ? ORDER BY category",
        )
        .bind(APP)
        .fetch_all()
        .await?;
    assert_eq!(got, want, "v_menu_categories");
    let got: Vec<(u64, u64)> = ch
        .query(
            "SELECT toUInt64(events), toUInt64(fans) FROM v_interaction_mix \
             WHERE app_id = ? AND stream = 'menu_click'",
        )
        .bind(APP)
        .fetch_all()
        .await?;
    assert_eq!(
        got,
        vec![(u64::from(EVENTS), per_fan.len() as u64)],
        "v_interaction_mix"
    );
    let active = per_fan.values().filter(|n| **n > 4).count() as u64;
    let got: Vec<(String, u64, u64)> = ch
        .query(
            "SELECT population, toUInt64(interacting_fans), toUInt64(monthly_active_fans) \
             FROM v_monthly_active WHERE app_id = ?",
        )
        .bind(APP)
        .fetch_all()
        .await?;
    assert_eq!(
        got,
        vec![("interacting_fans".to_string(), per_fan.len() as u64, active)],
        "v_monthly_active"
    );
    let got: BTreeMap<u64, u64> = ch
        .query(
            "SELECT fan_id, toUInt64(sum(menu_clicks)) FROM fan_activity_monthly \
             WHERE app_id = ? GROUP BY fan_id",
        )
        .bind(APP)
        .fetch_all::<(u64, u64)>()
        .await?
        .into_iter()
        .collect();
    assert_eq!(got, per_fan, "fan_activity_monthly: each fan's clicks");
    assert_eq!(count(&ch, "dead_letters").await?, 0, "dead letters");

    // The metrics: the (restarted) primary diverted, the lane reports as its own service.
    let text = primary.scrape()?;
    let diverted_metric = metric(&text, "wxpulse_overflow_events_total", &[]).unwrap_or(0.0);
    assert!(
        diverted_metric > 0.0,
        "wxpulse_overflow_events_total of the primary: {diverted_metric}"
    );
    let text = lane.scrape()?;
    let lane_written = metric(
        &text,
        "wxpulse_sink_events_written_total",
        &["service=\"menu-clicks-overflow\""],
    )
    .unwrap_or(0.0);
    assert!(
        lane_written > 0.0,
        "the lane's rows written, service=\"menu-clicks-overflow\": {lane_written}"
    );
    Ok(())
}
