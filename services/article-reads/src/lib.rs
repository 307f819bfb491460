//! Article reads (13% of interactions, seed 000): a fan opened an article of a push, or
//! from chat, Moments, search or the account's history. The article gives the push, the
//! position in it (the seed's first-article open rate), the push size (single vs
//! multi-article), the publish time (push-time heatmap), the campaign and the targeted
//! segment (segmented vs unsegmented pushes), and the fans the push reached (open rate).

use std::sync::Arc;

use wxpulse_runtime::config::Config;
use wxpulse_runtime::enrich::Dimension;
use wxpulse_runtime::events::ArticleRead;
use wxpulse_runtime::stream::{Context, Stream};
use wxpulse_runtime::streams::EventStream;
use wxpulse_runtime::{event_row, row};

/// The article-read stream.
pub struct ArticleReads {
    /// [`NO_SEGMENT`], allocated once.
    none: Arc<str>,
}

impl ArticleReads {
    /// Builds the stream from the service config.
    pub fn new(_config: &Config) -> Self {
        ArticleReads {
            none: Arc::from(NO_SEGMENT),
        }
    }
}

event_row! {
    /// A row of `wxpulse.article_reads`.
    pub struct ArticleReadRow {
        pub article_id: Arc<str>,
        pub msgid: i64,
        pub idx: i32,
        pub articles_in_push: i32,
        pub published_at: Option<i64>,
        pub campaign: Arc<str>,
        pub target_segment: Arc<str>,
        pub fans_reached: i64,
        pub source: &'static str,
        pub read_depth: f32,
        pub read_seconds: i64,
        pub shared: bool,
        pub favorited: bool,
        pub cta_clicked: bool,
    }
}

/// What an unsegmented push (sent to every follower) stores as its target segment.
pub const NO_SEGMENT: &str = "none";

impl Stream for ArticleReads {
    const SERVICE: &'static str = EventStream::ArticleReads.service();
    const TOPIC: &'static str = EventStream::ArticleReads.topic();
    const TABLE: &'static str = EventStream::ArticleReads.table();
    const RECORD: &'static str = EventStream::ArticleReads.record();
    const DIMENSIONS: &'static [Dimension] = &[Dimension::Article];
    type Event<'a> = ArticleRead<'a>;
    type Row = ArticleReadRow;

    fn row(&mut self, e: &ArticleRead<'_>, cx: &Context<'_>) -> ArticleReadRow {
        let article = cx.dims.article(e.article_id);
        // The dimension is the publisher's record of the push; the event's msgid/idx
        // (what the client reported) stand in when it is missing.
        let (msgid, idx) = article.map_or((e.msgid, e.idx), |a| (a.msgid, a.idx));
        let campaign = match article {
            Some(a) => a.campaign.clone().unwrap_or_else(|| cx.dims.empty()),
            None => cx.dims.unknown(),
        };
        let target_segment = match article {
            Some(a) => a
                .target_segment
                .clone()
                .unwrap_or_else(|| self.none.clone()),
            None => cx.dims.unknown(),
        };
        row!(ArticleReadRow, cx, {
            // A known article's id is shared with the dimension: no copy per row.
            article_id: article.map_or_else(|| Arc::from(e.article_id), |a| a.article_id.clone()),
            msgid: msgid,
            idx: idx,
            articles_in_push: article.map_or(0, |a| a.articles_in_push),
            published_at: article.map(|a| a.published_at),
            campaign: campaign,
            target_segment: target_segment,
            fans_reached: article.map_or(0, |a| a.fans_reached),
            source: e.source.as_str(),
            read_depth: e.read_depth,
            read_seconds: e.read_seconds,
            shared: e.shared,
            favorited: e.favorited,
            cta_clicked: e.cta_clicked,
        })
    }
}
