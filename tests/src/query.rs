//! The ClickHouse side of the tests: counts and rollups to wait for, the month the generated
//! data spans, the views as the migrations define them, and the mirror that fills the
//! dimension tables the views read.

use std::time::{Duration, Instant};

use crate::service::{cli, TEST_PII_KEY};
use crate::stack::Stack;

/// Polls `count` until it returns `want` or `timeout` passes; returns the last value.
pub async fn wait_for<F, Fut>(timeout: Duration, want: u64, mut count: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = 0;
    while Instant::now() < deadline {
        if let Ok(n) = count().await {
            last = n;
            if n == want {
                // Stay a moment to catch any overshoot (a double count).
                tokio::time::sleep(Duration::from_millis(1500)).await;
                return count().await.unwrap_or(n);
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    last
}

/// `SELECT count() FROM table`.
pub async fn count(client: &clickhouse::Client, table: &str) -> anyhow::Result<u64> {
    Ok(client
        .query(&format!("SELECT count() FROM {table}"))
        .fetch_one::<u64>()
        .await?)
}

/// `SELECT sum(events) FROM interactions_hourly WHERE stream = ?`.
pub async fn rollup(client: &clickhouse::Client, stream: &str) -> anyhow::Result<u64> {
    Ok(client
        .query("SELECT toUInt64(sum(events)) FROM interactions_hourly WHERE stream = ?")
        .bind(stream)
        .fetch_one::<u64>()
        .await?)
}

/// Start of last month and of this month in Asia/Shanghai, ms, as ClickHouse computes
/// them: a span whose events are never in the future, whatever today's date.
pub async fn last_month(stack: &Stack) -> anyhow::Result<(i64, i64)> {
    Ok(stack
        .client("default")
        .query(
            "SELECT toInt64(toUnixTimestamp(toStartOfMonth(now('Asia/Shanghai')) - INTERVAL 1 MONTH, 'Asia/Shanghai')) * 1000, \
                    toInt64(toUnixTimestamp(toStartOfMonth(now('Asia/Shanghai')), 'Asia/Shanghai')) * 1000",
        )
        .fetch_one::<(i64, i64)>()
        .await?)
}

/// Copies the fan-profile and fan-follow topics into `database`'s `fan_profiles` and
/// `fan_follow_events` with `wxpulse dims mirror --once`, as compose's mirror does
/// continuously: the views that need profiles and follows read them.
pub fn mirror_profiles(stack: &Stack, database: &str) -> anyhow::Result<()> {
    let status = cli(stack, database)?
        .args(["dims", "mirror", "--once"])
        .env("WXPULSE__PII__KEY", TEST_PII_KEY)
        .status()?;
    anyhow::ensure!(status.success(), "dims mirror: {status}");
    Ok(())
}

/// The `CREATE MATERIALIZED VIEW` statement of `name` as the migrations define it, to
/// put a view back after a test broke it.
pub fn view_statement(name: &str) -> String {
    wxpulse_cli::migrate::MIGRATIONS
        .iter()
        .flat_map(|m| wxpulse_cli::migrate::statements(m.sql))
        .find(|s| s.contains(&format!("VIEW IF NOT EXISTS {name} ")))
        .map(|s| wxpulse_cli::migrate::render(&s, None))
        .expect("the view is in the migrations")
}
