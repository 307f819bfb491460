//! The ClickHouse sink: typed RowBinary inserts (LZ4) with a deduplication token, retries
//! with exponential backoff, and the reads that restore a partition's state on assignment.
//!
//! Each insert is one partition's batch, a contiguous offset range, and carries
//! `insert_deduplication_token = "<topic>:<partition>:<first>-<last>"`. A retry of the same
//! batch (the first attempt timed out but the server had applied it) is dropped by
//! ClickHouse, in the table and — with `deduplicate_blocks_in_dependent_materialized_views`
//! — in every rollup its materialized views feed. Rows carry their Kafka partition and
//! offset, and a materialized view keeps the highest offset per partition in
//! `ingest_watermarks`, so a new owner of a partition knows exactly what is already in.
//!
//! An INSERT whose materialized view throws leaves the raw rows and the views that ran
//! before it committed. So before each insert its range and token go to `ingest_intents`
//! ([`Sink::write_intent`]); a new owner reads the last intent and, if the batch may not
//! have completed, replays exactly it with the same token ([`Sink::repair`]) before
//! anything else — ClickHouse then drops what already landed and fills what did not.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clickhouse::{Client, Row, RowOwned, RowWrite};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::config::{ClickHouseConfig, Compression, RetryConfig, RowValidation};
use crate::metrics::Metrics;
use crate::retry::Backoff;
use crate::tls::TlsError;

/// Reading back what the overflow lane wrote for a restore.
pub mod diverted;
mod errors;

pub use errors::{classify, describe, ErrorClass};

/// Highest offset and newest server time already in ClickHouse for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    /// Highest offset written, or -1 when nothing was.
    pub offset: i64,
    /// Newest server_time written (ms), or 0.
    pub server_time_ms: i64,
}

/// Writes one service's rows to one table.
#[derive(Clone)]
pub struct Sink {
    client: Client,
    /// `client` without the row check (`clickhouse.validate_rows`).
    unchecked: Client,
    validate_rows: RowValidation,
    /// Tables an insert of this process checked and the server accepted.
    checked: Arc<Mutex<HashSet<String>>>,
    table: String,
    topic: String,
    insert_timeout: Duration,
    retry: RetryConfig,
}

/// Builds a client of `cfg.database` with the settings every wxpulse request needs.
pub fn client(cfg: &ClickHouseConfig) -> Result<Client, TlsError> {
    Ok(server(cfg)?
        .with_database(&cfg.database)
        .with_setting("insert_deduplicate", "1")
        .with_setting("deduplicate_blocks_in_dependent_materialized_views", "1")
        .with_setting("async_insert", "0"))
}

/// A client of the server on no particular database (migrations create it): URL, user,
/// password, and for `https://` TLS with `clickhouse.tls` (the crate's own client speaks
/// plain HTTP only).
pub fn server(cfg: &ClickHouseConfig) -> Result<Client, TlsError> {
    let client = if cfg.url.starts_with("https://") {
        let tls = cfg.tls.client_config("clickhouse.tls")?;
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        // As the crate's default client: keepalive, and idle connections closed before
        // the server's 3 s keep-alive timeout closes them under a request.
        http.set_keepalive(Some(Duration::from_secs(60)));
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let hyper =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(2))
                .build(https);
        Client::with_http_client(hyper)
    } else {
        Client::default()
    };
    let compression = match cfg.compression {
        Compression::Lz4 => clickhouse::Compression::Lz4,
        Compression::None => clickhouse::Compression::None,
    };
    Ok(client
        .with_url(&cfg.url)
        .with_user(&cfg.user)
        .with_password(cfg.password.expose())
        .with_compression(compression))
}

/// Asks the server for `SELECT 1`: a certificate or TLS failure is returned with the
/// setting to fix, since retrying cannot help; any other failure (the server is down) is
/// logged and left to the retry loops.
pub async fn check_tls(client: &Client, cfg: &ClickHouseConfig) -> anyhow::Result<()> {
    match client.query("SELECT 1").fetch_one::<u8>().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let chain = crate::tls::chain(&e);
            if cfg.url.starts_with("https://") && crate::tls::is_tls_failure(&chain) {
                anyhow::bail!(describe(&e, cfg));
            }
            tracing::warn!(url = %cfg.url, error = %chain, "ClickHouse not reachable yet; inserts will retry");
            Ok(())
        }
    }
}

#[derive(Row, Deserialize)]
struct WatermarkRow {
    n: u64,
    offset: i64,
    server_time: i64,
}

/// One (fan, month) of `fan_stream_months`: what segmentation restores.
#[derive(Debug, Row, Deserialize)]
pub struct FanMonth {
    /// Pseudonymous fan id.
    pub fan_id: u64,
    /// `yyyymm`, Asia/Shanghai.
    pub month: u32,
    /// Interactions written.
    pub interactions: u64,
    /// Latest event time written, ms.
    pub last_event_time: i64,
}

/// A batch an owner announced before inserting it: the range and token a successor
/// replays if the insert may not have completed.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct Intent {
    /// First offset of the batch (records skipped or dead-lettered included).
    pub first_offset: i64,
    /// Last offset of the batch.
    pub last_offset: i64,
    /// Its `insert_deduplication_token`.
    pub dedup_token: String,
    /// Oldest server_time among its rows, ms (narrows the replay's scan).
    pub min_server_time: i64,
    /// Newest server_time among its rows, ms.
    pub max_server_time: i64,
    /// Kafka timestamp of the record at `last_offset` (-1: none).
    pub last_record_time: i64,
}

#[derive(Row, serde::Serialize)]
struct IntentRow<'a> {
    table_name: &'a str,
    kafka_topic: &'a str,
    kafka_partition: i32,
    first_offset: i64,
    last_offset: i64,
    dedup_token: &'a str,
    min_server_time: i64,
    max_server_time: i64,
    last_record_time: i64,
}

/// Feeds each (event id, server time ms) of `cursor` to `each`; how many there were.
async fn each_written_id(
    mut cursor: clickhouse::query::RowCursor<WrittenIdRow>,
    mut each: impl FnMut(u128, i64),
) -> Result<usize, clickhouse::error::Error> {
    let mut n = 0;
    while let Some(row) = cursor.next().await? {
        each(row.event_id.as_u128(), row.server_ms);
        n += 1;
    }
    Ok(n)
}

#[derive(Row, Deserialize)]
struct WrittenIdRow {
    #[serde(with = "clickhouse::serde::uuid")]
    event_id: uuid::Uuid,
    server_ms: i64,
}

impl Sink {
    /// A sink for `table`, fed from `topic`.
    pub fn new(
        cfg: &ClickHouseConfig,
        retry: RetryConfig,
        table: &str,
        topic: &str,
    ) -> Result<Self, TlsError> {
        let client = client(cfg)?;
        Ok(Sink {
            unchecked: client.clone().with_validation(false),
            client,
            validate_rows: cfg.validate_rows,
            checked: Arc::default(),
            table: table.to_string(),
            topic: topic.to_string(),
            insert_timeout: cfg.insert_timeout,
            retry,
        })
    }

    /// The client, bound to the wxpulse database.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Per-fan, per-month aggregates of the rows already written for `partition`: the
    /// segmentation state its previous owner had (see `segment.rs`).
    pub async fn fan_months(
        &self,
        partition: i32,
    ) -> Result<Vec<FanMonth>, clickhouse::error::Error> {
        self.client
            .query(
                "SELECT fan_id, month, sum(interactions) AS interactions, \
                 toInt64(toUnixTimestamp64Milli(max(last_event_time))) AS last_event_time \
                 FROM fan_stream_months WHERE kafka_topic = ? AND kafka_partition = ? \
                 GROUP BY fan_id, month",
            )
            .bind(&self.topic)
            .bind(partition)
            .fetch_all()
            .await
    }

    /// The table written to.
    pub fn table(&self) -> &str {
        &self.table
    }
}

/// The quarantine twin of a stream table (`validation.unknown_account = quarantine`,
/// migration 0015): same columns, read by no rollup and no view.
pub fn quarantine_table(table: &str) -> String {
    format!("{table}_quarantine")
}

impl Sink {
    /// The dedup token of a batch: the same offset range of the same log (`incarnation`:
    /// resets of the partition, see `wxpulse ingest reset`) always yields the same token.
    pub fn dedup_token(&self, partition: i32, incarnation: u64, first: i64, last: i64) -> String {
        if incarnation == 0 {
            format!("{}:{partition}:{first}-{last}", self.topic)
        } else {
            format!("{}:{partition}:{first}-{last}@{incarnation}", self.topic)
        }
    }

    /// How many times `partition`'s ingest state was reset: its log's incarnation.
    pub async fn incarnation(&self, partition: i32) -> Result<u64, clickhouse::error::Error> {
        self.client
            .query(
                "SELECT count() FROM ingest_resets \
                 WHERE table_name = ? AND kafka_topic = ? AND kafka_partition = ?",
            )
            .bind(&self.table)
            .bind(&self.topic)
            .bind(partition)
            .fetch_one()
            .await
    }

    /// One insert attempt of `rows` into `table` under `token`.
    pub async fn insert_once<R: RowOwned + RowWrite>(
        &self,
        table: &str,
        rows: &[R],
        token: &str,
    ) -> Result<(), clickhouse::error::Error> {
        let check = match self.validate_rows {
            RowValidation::Always => true,
            RowValidation::Never => false,
            RowValidation::First => !self.checked(table),
        };
        let client = if check { &self.client } else { &self.unchecked };
        let attempt = async {
            let mut insert = client
                .insert::<R>(table)
                .await?
                .with_setting("insert_deduplication_token", token)
                .with_timeouts(Some(self.insert_timeout), Some(self.insert_timeout));
            for row in rows {
                insert.write(row).await?;
            }
            insert.end().await
        };
        let result = match tokio::time::timeout(self.insert_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(clickhouse::error::Error::TimedOut),
        };
        if check && result.is_ok() {
            self.checked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(table.to_string());
        }
        result
    }

    /// Whether an insert of this process into `table` passed the row check.
    fn checked(&self, table: &str) -> bool {
        self.checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(table)
    }

    /// Inserts into the sink's table until it succeeds or `cancel` fires; returns whether
    /// it succeeded. `cancel` is the partition's lease: no attempt starts once it is revoked.
    pub async fn insert<R: RowOwned + RowWrite>(
        &self,
        rows: &[R],
        token: &str,
        metrics: &Metrics,
        cancel: &CancellationToken,
    ) -> bool {
        self.insert_into(&self.table, rows, token, metrics, cancel)
            .await
    }

    /// [`Sink::insert`] into another table (the batch's dead letters).
    pub async fn insert_into<R: RowOwned + RowWrite>(
        &self,
        table: &str,
        rows: &[R],
        token: &str,
        metrics: &Metrics,
        cancel: &CancellationToken,
    ) -> bool {
        let mut backoff = Backoff::new(&self.retry);
        loop {
            if cancel.is_cancelled() {
                return false;
            }
            let started = Instant::now();
            let result = tokio::select! {
                r = self.insert_once(table, rows, token) => r,
                _ = cancel.cancelled() => return false,
            };
            metrics
                .insert_duration
                .with_label_values(&[table])
                .observe(started.elapsed().as_secs_f64());
            let Err(e) = result else { return true };
            let class = classify(&e);
            metrics
                .insert_errors
                .with_label_values(&[table, class.as_str()])
                .inc();
            tracing::warn!(table, token, error = %e, class = class.as_str(), "insert failed; retrying");
            if !backoff.wait(cancel).await {
                return false;
            }
        }
    }

    /// Records `intent` before its insert, retrying until it is written or `cancel` (the
    /// partition's lease) fires; returns whether the insert may start. Failures count as
    /// insert errors of the table: to an operator they are the same outage.
    pub async fn announce(
        &self,
        partition: i32,
        intent: &Intent,
        metrics: &Metrics,
        cancel: &CancellationToken,
    ) -> bool {
        let mut backoff = Backoff::new(&self.retry);
        let table = self.table.as_str();
        loop {
            if cancel.is_cancelled() {
                return false;
            }
            let written = tokio::select! {
                r = self.write_intent(partition, intent) => r,
                _ = cancel.cancelled() => return false,
            };
            let Err(e) = written else {
                return !cancel.is_cancelled();
            };
            let class = classify(&e);
            metrics
                .insert_errors
                .with_label_values(&[table, class.as_str()])
                .inc();
            tracing::warn!(table, partition, token = intent.dedup_token, error = %e, class = class.as_str(), "cannot record the batch's intent; retrying");
            if !backoff.wait(cancel).await {
                return false;
            }
        }
    }

    /// Records the batch about to be inserted (see the module doc). Must complete before
    /// the insert starts, and the lease must be checked between the two.
    pub async fn write_intent(
        &self,
        partition: i32,
        intent: &Intent,
    ) -> Result<(), clickhouse::error::Error> {
        let mut insert = self
            .client
            .insert::<IntentRow<'_>>("ingest_intents")
            .await?
            .with_timeouts(Some(self.insert_timeout), Some(self.insert_timeout));
        insert
            .write(&IntentRow {
                table_name: &self.table,
                kafka_topic: &self.topic,
                kafka_partition: partition,
                first_offset: intent.first_offset,
                last_offset: intent.last_offset,
                dedup_token: &intent.dedup_token,
                min_server_time: intent.min_server_time,
                max_server_time: intent.max_server_time,
                last_record_time: intent.last_record_time,
            })
            .await?;
        insert.end().await
    }

    /// The last batch announced for `partition`, if any.
    pub async fn last_intent(
        &self,
        partition: i32,
    ) -> Result<Option<Intent>, clickhouse::error::Error> {
        self.client
            .query(
                "SELECT first_offset, last_offset, dedup_token, \
                 toInt64(toUnixTimestamp64Milli(min_server_time)) AS min_server_time, \
                 toInt64(toUnixTimestamp64Milli(max_server_time)) AS max_server_time, \
                 last_record_time \
                 FROM ingest_intents \
                 WHERE table_name = ? AND kafka_topic = ? AND kafka_partition = ? \
                 ORDER BY written_at DESC, last_offset DESC LIMIT 1",
            )
            .bind(&self.table)
            .bind(&self.topic)
            .bind(partition)
            .fetch_optional()
            .await
    }

    fn intent_rows_filter(&self) -> String {
        format!(
            "FROM {} WHERE kafka_topic = ? AND kafka_partition = ? \
             AND kafka_offset BETWEEN ? AND ? \
             AND server_time BETWEEN fromUnixTimestamp64Milli(toInt64(?)) \
             AND fromUnixTimestamp64Milli(toInt64(?))",
            self.table
        )
    }

    /// Raw rows of `intent`'s batch already in the table: a part is atomic, so 0 means
    /// its insert wrote nothing anywhere (yet), more means the raw part committed.
    pub async fn rows_of(
        &self,
        partition: i32,
        intent: &Intent,
    ) -> Result<u64, clickhouse::error::Error> {
        self.client
            .query(&format!("SELECT count() {}", self.intent_rows_filter()))
            .bind(&self.topic)
            .bind(partition)
            .bind(intent.first_offset)
            .bind(intent.last_offset)
            .bind(intent.min_server_time)
            .bind(intent.max_server_time)
            .fetch_one()
            .await
    }

    /// Re-inserts `intent`'s raw rows, exactly as they were written, under the batch's own
    /// token: the raw table and every view that already has the block drop it; a view
    /// whose part failed gets it now.
    pub async fn repair(
        &self,
        partition: i32,
        intent: &Intent,
    ) -> Result<(), clickhouse::error::Error> {
        self.client
            .query(&format!(
                "INSERT INTO {} SELECT * {} ORDER BY kafka_offset",
                self.table,
                self.intent_rows_filter()
            ))
            .bind(&self.topic)
            .bind(partition)
            .bind(intent.first_offset)
            .bind(intent.last_offset)
            .bind(intent.min_server_time)
            .bind(intent.max_server_time)
            .with_setting("insert_deduplication_token", intent.dedup_token.as_str())
            .execute()
            .await
    }

    /// What is already in ClickHouse for `partition`.
    pub async fn watermark(&self, partition: i32) -> Result<Watermark, clickhouse::error::Error> {
        let row: WatermarkRow = self
            .client
            .query(
                "SELECT count() AS n, max(max_offset) AS offset, \
                 toUnixTimestamp64Milli(max(max_server_time)) AS server_time \
                 FROM ingest_watermarks \
                 WHERE table_name = ? AND kafka_topic = ? AND kafka_partition = ?",
            )
            .bind(&self.table)
            .bind(&self.topic)
            .bind(partition)
            .fetch_one()
            .await?;
        Ok(if row.n == 0 {
            Watermark {
                offset: -1,
                server_time_ms: 0,
            }
        } else {
            Watermark {
                offset: row.offset,
                server_time_ms: row.server_time,
            }
        })
    }

    /// Streams the event ids (with server time) written from `partition` since
    /// `since_ms`, to rebuild its dedup state without holding them all.
    pub async fn for_each_event_id(
        &self,
        partition: i32,
        since_ms: i64,
        each: impl FnMut(u128, i64),
    ) -> Result<usize, clickhouse::error::Error> {
        let cursor = self
            .client
            .query(&format!(
                "SELECT event_id, toUnixTimestamp64Milli(server_time) AS server_ms FROM {} \
                 WHERE kafka_topic = ? AND kafka_partition = ? \
                 AND server_time >= fromUnixTimestamp64Milli(toInt64(?))",
                self.table
            ))
            .bind(&self.topic)
            .bind(partition)
            .bind(since_ms)
            .fetch::<WrittenIdRow>()?;
        each_written_id(cursor, each).await
    }

    /// Which of `ids` are written with a server time since `since_ms`, and when: the exact
    /// check behind the dedup horizon. Not limited to one partition, so a copy that lands
    /// elsewhere (the topic's partition count changed) is still found.
    pub async fn written_event_ids(
        &self,
        ids: &[u128],
        since_ms: i64,
    ) -> Result<Vec<(u128, i64)>, clickhouse::error::Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = ids
            .iter()
            .map(|id| format!("'{}'", uuid::Uuid::from_u128(*id)))
            .collect::<Vec<_>>()
            .join(",");
        let rows: Vec<WrittenIdRow> = self
            .client
            .query(&format!(
                "SELECT event_id, min(toUnixTimestamp64Milli(server_time)) AS server_ms FROM {} \
                 WHERE event_id IN ({list}) AND server_time >= fromUnixTimestamp64Milli(toInt64(?)) \
                 GROUP BY event_id",
                self.table
            ))
            .bind(since_ms)
            .fetch_all()
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.event_id.as_u128(), r.server_ms))
            .collect())
    }
}
