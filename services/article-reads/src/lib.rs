//! Article reads (13% of interactions, seed 000): depth, time, share and CTA per read.

use clickhouse::Row;
use serde::Serialize;
use wxpulse_runtime::config::Config;
use wxpulse_runtime::events::{ArticleRead, ReadSource};
use wxpulse_runtime::stream::{Meta, Stream};

/// The article-read stream.
pub struct ArticleReads;

impl ArticleReads {
    /// Builds the stream from the service config.
    pub fn new(_config: &Config) -> Self {
        ArticleReads
    }
}

/// A row of `wxpulse.article_reads`.
#[derive(Debug, Clone, Row, Serialize)]
#[allow(missing_docs)]
pub struct ArticleReadRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: uuid::Uuid,
    pub app_id: String,
    pub fan_id: u64,
    pub union_id: u64,
    pub event_time: i64,
    pub server_time: i64,
    pub article_id: String,
    pub msgid: i64,
    pub idx: i32,
    pub source: &'static str,
    pub read_depth: f32,
    pub read_seconds: i64,
    pub shared: bool,
    pub favorited: bool,
    pub cta_clicked: bool,
    pub kafka_topic: &'static str,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
}

impl Stream for ArticleReads {
    const SERVICE: &'static str = "article-reads";
    const TOPIC: &'static str = "wxpulse.article_reads";
    const TABLE: &'static str = "article_reads";
    const RECORD: &'static str = "com.wxpulse.events.ArticleRead";
    type Event<'a> = ArticleRead<'a>;
    type Row = ArticleReadRow;

    fn row(&mut self, e: &ArticleRead<'_>, meta: &Meta) -> ArticleReadRow {
        let source = match e.source {
            ReadSource::Push => "PUSH",
            ReadSource::Chat => "CHAT",
            ReadSource::Moments => "MOMENTS",
            ReadSource::Search => "SEARCH",
            ReadSource::History => "HISTORY",
            ReadSource::Other => "OTHER",
        };
        ArticleReadRow {
            event_id: meta.event_id,
            app_id: e.app_id.to_string(),
            fan_id: meta.fan_id,
            union_id: meta.union_id,
            event_time: e.client_time,
            server_time: e.server_time,
            article_id: e.article_id.to_string(),
            msgid: e.msgid,
            idx: e.idx,
            source,
            read_depth: e.read_depth,
            read_seconds: e.read_seconds,
            shared: e.shared,
            favorited: e.favorited,
            cta_clicked: e.cta_clicked,
            kafka_topic: meta.topic,
            kafka_partition: meta.partition,
            kafka_offset: meta.offset,
        }
    }
}
