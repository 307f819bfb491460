//! A primary that crashes after its overflow lane wrote records it diverted, but before
//! it wrote the rest of the same batch, and comes back with other overflow settings (as
//! on-call does when the lane struggles: a new `max_per_window`, or `enabled = false`).
//!
//! ClickHouse is frozen while the primary flushes: the batch's diverted records reach the
//! overflow topic (they are delivered before the insert), its own rows do not. The primary
//! is SIGKILLed, ClickHouse thaws, the lane writes the diverted rows, and the primary
//! restarts with the new settings and replays the batch. The lane's rows are written
//! already: the replay must neither write those events again (whatever the new settings
//! decide for them) nor count them twice into the fan's month count of the records it
//! writes itself before them (their running count is that of the fan's events in order).
//!
//! Measured on 9d31e9f: after the restart with `max_per_window` changed, the replayed
//! records kept before a diverted one carried a month count raised by the lane's rows;
//! after the restart with `enabled = false`, the lane's events were written a second time.

use super::*;

/// The settings of the primary's two restarts: a new `max_per_window`, then the lane off.
const RESTARTS: [&[(&str, &str)]; 2] = [
    &[
        ("WXPULSE__OVERFLOW__ENABLED", "true"),
        ("WXPULSE__OVERFLOW__WINDOW_RECORDS", "200"),
        ("WXPULSE__OVERFLOW__MAX_PER_WINDOW", "10"),
    ],
    &[("WXPULSE__OVERFLOW__ENABLED", "false")],
];

/// Sum of `topic`'s partitions' high watermarks.
fn log_end(brokers: &str, topic: &str) -> anyhow::Result<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let mut end = 0;
    for p in 0..PARTITIONS {
        end += consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))?
            .1;
    }
    Ok(end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_restarted_with_new_overflow_settings_after_a_crash_writes_each_event_once(
) -> anyhow::Result<()> {
    crash_and_restart(
        "hot_keys_crash",
        "wx_hot_keys_crash",
        [800, 600, 600],
        &RESTARTS,
    )
    .await
}

/// The crash comes in the primary's first batch: no row of the partition is written yet
/// (no watermark), only the lane's rows of the records the batch diverted. Measured on
/// 46662dc: the restart with the lane off wrote those events a second time (741 rows for
/// 600 events, 141 of them diverted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_crashed_in_its_first_batch_and_restarts_without_the_lane_writes_each_event_once(
) -> anyhow::Result<()> {
    crash_and_restart(
        "hot_keys_first",
        "wx_hot_keys_first",
        [0, 600, 600],
        &RESTARTS[1..],
    )
    .await
}

/// `phases[0]` events with both lanes running normally, then for each of `restarts`: the
/// next phase's events sent with ClickHouse frozen, the primary SIGKILLed once it diverted
/// records of the batch, ClickHouse thawed, the lane left to write them, the primary
/// restarted with those settings. Then every row and view must equal the truth.
async fn crash_and_restart(
    name: &str,
    db: &str,
    phases: [u32; 3],
    restarts: &[&[(&str, &str)]],
) -> anyhow::Result<()> {
    let phases = &phases[..=restarts.len()];
    let total: u32 = phases.iter().sum();
    let (stack, fans, events, _) = world(name, db, total, 23).await?;

    let lane_env = [
        ("WXPULSE__OVERFLOW__LANE", "overflow"),
        ("WXPULSE__OVERFLOW__WINDOW_RECORDS", "200"),
        ("WXPULSE__OVERFLOW__MAX_PER_WINDOW", "20"),
    ];
    let mut primary = Service::start(
        "wxpulse-menu-clicks",
        &stack,
        db,
        &[
            ("WXPULSE__OVERFLOW__ENABLED", "true"),
            ("WXPULSE__OVERFLOW__WINDOW_RECORDS", "200"),
            ("WXPULSE__OVERFLOW__MAX_PER_WINDOW", "20"),
        ],
    )?;
    let lane = Service::start("wxpulse-menu-clicks", &stack, db, &lane_env)?;
    owns_partitions(&primary, Duration::from_secs(90)).await;
    owns_partitions(&lane, Duration::from_secs(90)).await;
    let ch = stack.client(db);

    // Phase 1: running normally, so the hot fan has rows of both lanes.
    let first = phases[0] as usize;
    send(
        &stack,
        events[..first].iter().map(|e| outgoing(&fans, e)).collect(),
    )
    .await?;
    let written = at_least(Duration::from_secs(120), first as u64, || {
        count(&ch, "menu_clicks")
    })
    .await;
    assert_eq!(written, first as u64, "phase 1 written");

    // The crashes, each followed by a restart with other settings.
    let mut from = first;
    for (phase, settings) in restarts.iter().enumerate() {
        let to = from + phases[phase + 1] as usize;
        let diverted_before = log_end(&stack.brokers, OVERFLOW)?;
        // Its partitions restored (which reads ClickHouse) before ClickHouse freezes.
        ready(&primary, Duration::from_secs(90)).await;
        stack.freeze_component("clickhouse", true)?;
        send(
            &stack,
            events[from..to]
                .iter()
                .map(|e| outgoing(&fans, e))
                .collect(),
        )
        .await?;
        // The primary's flushes deliver their diverted records, then hang on the insert.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut diverted = log_end(&stack.brokers, OVERFLOW)?;
        let mut stable_since = Instant::now();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = log_end(&stack.brokers, OVERFLOW)?;
            if now != diverted {
                diverted = now;
                stable_since = Instant::now();
            } else if diverted > diverted_before && stable_since.elapsed() > Duration::from_secs(3)
            {
                break;
            }
        }
        primary.kill();
        stack.freeze_component("clickhouse", false)?;
        eprintln!(
            "crash {}: {} records diverted by the batch in flight; primary SIGKILLed",
            phase + 1,
            diverted - diverted_before
        );
        assert!(
            diverted > diverted_before,
            "the primary diverted records of the batch it could not insert"
        );
        // The lane writes them.
        let deadline = Instant::now() + Duration::from_secs(90);
        while !matches!(
            uncommitted(&stack.brokers, "wxpulse-menu-clicks-overflow", OVERFLOW),
            Ok(0)
        ) && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // The dead member's session ends first (see Service::restart).
        tokio::time::sleep(SESSION_TIMEOUT + Duration::from_secs(1)).await;
        primary = Service::start("wxpulse-menu-clicks", &stack, db, settings)?;
        owns_partitions(&primary, Duration::from_secs(90)).await;
        let written = at_least(Duration::from_secs(120), to as u64, || {
            count(&ch, "menu_clicks")
        })
        .await;
        tokio::time::sleep(Duration::from_millis(1_500)).await; // any overshoot
        eprintln!(
            "after restart {} ({settings:?}): {written} rows for {to} events",
            phase + 1
        );
        from = to;
    }

    // One row per event, each with the fan's running month count and lifecycle.
    let twice: Vec<(String, String)> = ch
        .query(
            "SELECT toString(event_id), arrayStringConcat(groupArray(concat(toString(kafka_topic), \
             '/', toString(kafka_partition), '/', toString(kafka_offset))), ' ') \
             FROM menu_clicks GROUP BY event_id HAVING count() > 1 ORDER BY event_id LIMIT 10",
        )
        .fetch_all()
        .await?;
    let (wrong, _) = rows_differing(&ch, &fans, &events, None).await?;
    assert!(
        twice.is_empty() && wrong.is_empty(),
        "events written more than once: {twice:?}; {} rows differ from the expectation, \
         e.g.:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(15)].join("\n")
    );
    assert_eq!(count(&ch, "menu_clicks").await?, u64::from(total), "rows");
    let per_fan: BTreeSet<usize> = events.iter().map(|e| e.fan).collect();
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
        vec![(u64::from(total), per_fan.len() as u64)],
        "v_interaction_mix"
    );
    assert_eq!(count(&ch, "dead_letters").await?, 0, "dead letters");
    Ok(())
}
