//! Chaos: every fault the pipeline promises to survive, at once and at scale. Generated
//! events with 1 % poison flow while services are SIGKILLed every few seconds, the
//! ClickHouse adapter is killed and restarted, the broker restarts (opt-in: Tansu 0.6
//! breaks on it, see below), a rollup's view
//! throws for a while and is then fixed, and the menu-click consumers go 1 → 3 → 2.
//! It ends with the promise itself: raw rows = distinct event ids = generated events,
//! every rollup equal to its recomputation from the raw rows, every poison record in the
//! dead-letter topic with its reason, and no panic in any service log.
//!
//! `make test` runs the CI size (100,000 events); `make chaos` runs 1,000,000 and prints
//! the summary table the README quotes. `WXPULSE_CHAOS_EVENTS` sets the size,
//! `WXPULSE_CHAOS_RATE` the records produced per second (kills go on until all are).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use wxpulse_cli::{dlq, produce};
use wxpulse_e2e::*;
use wxpulse_generator::generate;

use crate::runtime::spec;

const MENU: &str = "wxpulse-menu-clicks";
/// The rollup view made to throw for a while (it feeds `engagement_hourly`).
const BROKEN_VIEW: &str = "mv_menu_clicks_engagement";

/// What happened, for the summary table.
#[derive(Default)]
struct Chaos {
    kills: u32,
    adapter_kills: u32,
    broker_restarts: u32,
    view_failures: u32,
    consumers: Vec<usize>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_test_kills_outages_broker_restart_failing_view_and_rebalance_count_exactly(
) -> anyhow::Result<()> {
    let events: u64 = std::env::var("WXPULSE_CHAOS_EVENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(100_000);
    let big = events >= 500_000;
    let db = "wx_chaos";
    let stack = Stack::start("chaos")?;
    stack.prepare(db, 6).await?;
    let ch = stack.client(db);
    // The view made to fail reads a switch, so it can break and heal while events flow
    // without a moment in which it does not exist (an insert then would skip it for good,
    // as it would on a real server: that is an operator's DROP, not a failing view).
    ch.query("CREATE TABLE chaos_view_broken (broken UInt8) ENGINE = Memory")
        .execute()
        .await?;
    ch.query(&format!("DROP VIEW {BROKEN_VIEW}"))
        .execute()
        .await?;
    ch.query(&view_statement(BROKEN_VIEW).replacen(
        "FROM menu_clicks",
        "FROM menu_clicks WHERE throwIf((SELECT count() FROM chaos_view_broken) > 0) = 0",
        1,
    ))
    .execute()
    .await?;
    let started = Instant::now();

    // Only this run's part of the (appended) service logs is checked for panics.
    let mut log_starts = BTreeMap::new();
    for (bin, _, _) in SERVICES {
        let len = std::fs::metadata(service_log(bin))
            .map(|m| m.len())
            .unwrap_or(0);
        log_starts.insert(bin, len);
    }

    let batch = [("WXPULSE__BATCH__MAX_ROWS", "2000")];
    let mut services = Vec::new();
    for (bin, _, _) in SERVICES {
        services.push(Service::start(bin, &stack, db, &batch)?);
    }
    let spec = spec(21, events, 0.01);
    // Produced at a steady rate, so every fault below lands while events flow.
    let rate: u64 = std::env::var("WXPULSE_CHAOS_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if big { 4_000 } else { 1_500 });
    let (records, truth) = generate::generate(&spec);
    let producer = produce::producer(&stack.kafka())?;
    // Held by the test while the broker restarts: the upstream producer is not under test
    // (Tansu answers a produce during shutdown with UNKNOWN, which no producer retries).
    let producer_turn = std::sync::Arc::new(tokio::sync::Mutex::new(()));
    let turn = producer_turn.clone();
    let producing = tokio::spawn(async move {
        let mut sent = 0;
        let start = Instant::now();
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let chunk: Vec<_> = records.by_ref().take(1_000).collect();
            let _turn = turn.lock().await;
            sent += produce::send_all(&producer, chunk, |_| {}).await?;
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        anyhow::Ok(sent)
    });
    let total: u64 = truth.events.values().sum();
    let poison: u64 = truth.dead_letters.values().sum();
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let mut chaos = Chaos {
        consumers: vec![1],
        ..Chaos::default()
    };

    // The scripted faults, in this order, with random kills between each.
    let kills_between = if big { 4 } else { 2 };
    let mut plan = |victims: usize, n: u32| -> Vec<(usize, Duration, Duration)> {
        (0..n)
            .map(|_| {
                (
                    rng.gen_range(0..victims),
                    Duration::from_millis(rng.gen_range(1500..4000)),
                    Duration::from_millis(rng.gen_range(0..600)),
                )
            })
            .collect()
    };
    /// SIGKILLs each planned victim after its pause; it restarts after its downtime, and
    /// not before its dead group member has expired (see [`Service::restart`]).
    async fn run_kills(
        services: &mut [Service],
        chaos: &mut Chaos,
        plan: Vec<(usize, Duration, Duration)>,
    ) -> anyhow::Result<()> {
        for (victim, before, down) in plan {
            tokio::time::sleep(before).await;
            services[victim].kill();
            chaos.kills += 1;
            tokio::time::sleep(down).await;
            services[victim].restart()?;
        }
        Ok(())
    }

    let kills = plan(services.len(), kills_between);
    run_kills(&mut services, &mut chaos, kills).await?;

    // The ClickHouse adapter crashes (SIGKILL) and comes back 5 s later.
    stack.kill_component("clickhouse")?;
    chaos.adapter_kills += 1;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stack.start_clickhouse()?;
    let kills = plan(services.len(), kills_between);
    run_kills(&mut services, &mut chaos, kills).await?;

    // The broker restarts: only when asked (`WXPULSE_CHAOS_BROKER_RESTART=1`). Tansu 0.6
    // cannot take it under load: the restarted broker panics in its idempotent-produce check
    // ("more or less than one row", tansu-storage `lite.rs`) for a producer id of the old
    // process, its storage task dies and it answers nothing again (measured: 2 of 6 runs;
    // deploy/local/README.md). A real broker restart is a test for a real cluster.
    if std::env::var("WXPULSE_CHAOS_BROKER_RESTART").is_ok_and(|v| v == "1") {
        let _paused = producer_turn.lock().await;
        stack.stop_kafka()?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        stack.start_kafka()?;
        chaos.broker_restarts += 1;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let kills = plan(services.len(), kills_between);
    run_kills(&mut services, &mut chaos, kills).await?;

    // A rollup's view throws on every insert for a while (as TOO_MANY_PARTS would), with a
    // kill while it does; then it is fixed.
    ch.query("INSERT INTO chaos_view_broken VALUES (1)")
        .execute()
        .await?;
    chaos.view_failures += 1;
    tokio::time::sleep(Duration::from_secs(4)).await;
    services[0].kill();
    chaos.kills += 1;
    services[0].restart()?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    ch.query("TRUNCATE TABLE chaos_view_broken")
        .execute()
        .await?;

    // Menu-click consumers 1 → 3 → 2, with a kill among them.
    for _ in 0..2 {
        let extra = Service::start(MENU, &stack, db, &batch)?;
        owns_partitions(&extra, Duration::from_secs(90)).await;
        services.push(extra);
        chaos
            .consumers
            .push(chaos.consumers.last().copied().unwrap_or(1) + 1);
    }
    let kills = plan(services.len(), kills_between);
    run_kills(&mut services, &mut chaos, kills).await?;
    // The leaving consumer owns partitions (a kill may just have restarted it: a SIGTERM
    // before its handler is installed would end it by the default action, not a drain).
    owns_partitions(&services[SERVICES.len()], Duration::from_secs(90)).await;
    let mut leaving = services.remove(SERVICES.len());
    assert_eq!(
        leaving.terminate(Duration::from_secs(30)),
        Some(0),
        "a leaving menu-click consumer drains and exits 0"
    );
    chaos.consumers.push(2);

    // Kills go on until every event was produced.
    while !producing.is_finished() {
        let kills = plan(services.len(), 1);
        run_kills(&mut services, &mut chaos, kills).await?;
    }
    producing.await??;
    let produced_at = started.elapsed();

    // The promise.
    let patience = Duration::from_secs(if big { 900 } else { 300 });
    let mut rows = BTreeMap::new();
    for (_, table, stream) in SERVICES {
        let want = truth.events.get(stream).copied().unwrap_or(0);
        let got = wait_for(patience, want, || count(&ch, table)).await;
        rows.insert(table, got);
    }
    let settled_at = started.elapsed();
    // A late double would show after the counts first match.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut failures = Vec::new();
    let mut table_rows = Vec::new();
    for (_, table, stream) in SERVICES {
        let want = truth.events.get(stream).copied().unwrap_or(0);
        let raw = count(&ch, table).await?;
        let distinct: u64 = ch
            .query(&format!("SELECT uniqExact(event_id) FROM {table}"))
            .fetch_one()
            .await?;
        if raw != want || distinct != want {
            failures.push(format!(
                "{table}: {raw} rows, {distinct} distinct ids, {want} generated"
            ));
        }
        table_rows.push((table, want, raw, distinct));
    }
    let rollups = rollup_mismatches(&ch).await?;
    failures.extend(rollups.iter().cloned());

    let letters = dead_letters_until(&stack, &truth.dead_letters, Duration::from_secs(60))?;
    if letters != truth.dead_letters {
        failures.push(format!(
            "dead letters by reason {letters:?}, generated {:?}",
            truth.dead_letters
        ));
    }

    let mut panics = 0;
    for (bin, from) in &log_starts {
        panics += panics_in(&service_log(bin), *from)?;
    }
    if panics > 0 {
        failures.push(format!("{panics} panics in the service logs"));
    }

    println!("\n== chaos: {events} generated events (seed 21), 6 partitions per topic");
    println!("| what | figure |\n|---|---|");
    println!(
        "| records produced (valid + duplicates + poison) | {} |",
        truth.records
    );
    println!("| distinct valid events | {total} |");
    println!("| upstream duplicates | {} |", truth.duplicates);
    println!("| poison records | {poison} |");
    println!("| service SIGKILLs | {} |", chaos.kills);
    println!("| ClickHouse adapter SIGKILLs | {} |", chaos.adapter_kills);
    println!("| broker restarts | {} |", chaos.broker_restarts);
    println!(
        "| rollup view failures (then fixed) | {} |",
        chaos.view_failures
    );
    println!(
        "| menu-click consumers | {} |",
        chaos
            .consumers
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" → ")
    );
    println!(
        "| produced at | {rate} records/s, all after {:.0} s |",
        produced_at.as_secs_f64()
    );
    println!("| all counted after | {:.0} s |", settled_at.as_secs_f64());
    println!("\n| table | generated | rows | distinct ids |\n|---|---|---|---|");
    for (table, want, raw, distinct) in &table_rows {
        println!("| {table} | {want} | {raw} | {distinct} |");
    }
    println!("\n| dead-letter reason | generated | in the topic |\n|---|---|---|");
    for (reason, n) in &truth.dead_letters {
        println!(
            "| {reason} | {n} | {} |",
            letters.get(reason).copied().unwrap_or(0)
        );
    }
    println!(
        "\nrollups equal to their recomputation from raw: {}; panics: {panics}",
        if rollups.is_empty() { "all" } else { "NOT all" }
    );
    assert!(
        failures.is_empty(),
        "chaos broke the promise: {failures:#?}"
    );
    Ok(())
}

/// Every rollup against its recomputation from the raw rows; one line per difference.
async fn rollup_mismatches(ch: &clickhouse::Client) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    // interactions_hourly, key by key.
    for (_, table, stream) in SERVICES {
        let sql = format!(
            "SELECT count() FROM ( \
               SELECT app_id, hour, sum(events) AS n FROM interactions_hourly \
               WHERE stream = '{stream}' GROUP BY app_id, hour \
             ) AS r FULL OUTER JOIN ( \
               SELECT app_id, toStartOfHour(toDateTime(event_time, 'Asia/Shanghai')) AS hour, \
                      count() AS n FROM {table} GROUP BY app_id, hour \
             ) AS w USING (app_id, hour) WHERE r.n != w.n"
        );
        let differing: u64 = ch.query(&sql).fetch_one().await?;
        if differing > 0 {
            out.push(format!(
                "interactions_hourly {stream}: {differing} hours differ from {table}"
            ));
        }
    }
    // The other rollups fed by every raw table: by account, or by partition where the
    // rollup is kept per partition.
    for (_, table, stream) in SERVICES {
        let by_account = format!("SELECT app_id, count() FROM {table} GROUP BY app_id");
        let by_partition = format!(
            "SELECT toString(kafka_partition), count() FROM {table} GROUP BY kafka_partition"
        );
        let checks = [
            (
                "engagement_hourly",
                format!(
                    "SELECT app_id, toUInt64(sum(events)) FROM engagement_hourly \
                     WHERE stream = '{stream}' GROUP BY app_id"
                ),
                &by_account,
            ),
            (
                "fan_activity_monthly",
                format!(
                    "SELECT app_id, toUInt64(sum({table})) FROM fan_activity_monthly GROUP BY app_id"
                ),
                &by_account,
            ),
            (
                "fan_stream_months",
                format!(
                    "SELECT toString(kafka_partition), toUInt64(sum(interactions)) \
                     FROM fan_stream_months WHERE kafka_topic = 'wxpulse.{table}' \
                     GROUP BY kafka_partition"
                ),
                &by_partition,
            ),
        ];
        for (rollup, sql, raw_sql) in checks {
            let raw = keyed(ch, raw_sql).await?;
            let got = keyed(ch, &sql).await?;
            if got != raw {
                out.push(format!(
                    "{rollup} for {table}: {got:?}, recomputed from raw {raw:?}"
                ));
            }
        }
    }
    // The watermark of every partition is the highest offset written.
    let marks: Vec<(String, i32, i64, i64)> = ch
        .query(
            "SELECT t, p, r, w FROM ( \
               SELECT 'menu_clicks' AS t, kafka_partition AS p, max(kafka_offset) AS r FROM menu_clicks GROUP BY p \
               UNION ALL SELECT 'qr_scans', kafka_partition, max(kafka_offset) FROM qr_scans GROUP BY kafka_partition \
               UNION ALL SELECT 'chat_messages', kafka_partition, max(kafka_offset) FROM chat_messages GROUP BY kafka_partition \
               UNION ALL SELECT 'article_reads', kafka_partition, max(kafka_offset) FROM article_reads GROUP BY kafka_partition \
             ) AS raw LEFT JOIN ( \
               SELECT table_name AS t, kafka_partition AS p, max(max_offset) AS w \
               FROM ingest_watermarks GROUP BY t, p \
             ) AS marks USING (t, p) WHERE r > w",
        )
        .fetch_all()
        .await?;
    for (table, partition, raw, mark) in marks {
        out.push(format!(
            "{table} partition {partition}: rows up to offset {raw}, watermark {mark}"
        ));
    }
    Ok(out)
}

/// `key, n` rows as a map, without zero totals (a rollup may keep an emptied key).
async fn keyed(ch: &clickhouse::Client, sql: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    Ok(ch
        .query(sql)
        .fetch_all::<(String, u64)>()
        .await?
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect())
}

/// Dead letters by reason, read until they match `want` or `patience` ends.
fn dead_letters_until(
    stack: &Stack,
    want: &BTreeMap<String, u64>,
    patience: Duration,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let deadline = Instant::now() + patience;
    loop {
        let mut by_reason = BTreeMap::new();
        for l in dlq::read_all(
            &stack.kafka(),
            "wxpulse.dead_letters",
            Duration::from_secs(2),
        )? {
            *by_reason
                .entry(l.reason.as_str().to_string())
                .or_insert(0u64) += 1;
        }
        if &by_reason == want || Instant::now() >= deadline {
            return Ok(by_reason);
        }
    }
}

/// Lines reporting a panic in `path` after byte `from`.
fn panics_in(path: &std::path::Path, from: u64) -> anyhow::Result<usize> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Ok(0);
    };
    file.seek(SeekFrom::Start(from))?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| l.contains("panicked"))
        .count())
}
