//! Chat messages (11% of interactions, seed 000). The message text is decoded only to be
//! dropped: no content column exists, so it cannot reach ClickHouse (PIPL).
//!
//! The associate gives the store and region. In a WeCom 1:1 conversation, an associate's
//! message that answers waiting fan messages carries the first-reply time: from the
//! earliest unanswered fan message to the reply (seeds 003/004 judge associates on reply
//! rate and time). That wait is per-partition state, rebuilt on assignment by replaying
//! the partition's recent 1:1 rows from ClickHouse in offset order.

use std::collections::HashMap;
use std::sync::Arc;

use clickhouse::Row;
use serde::Deserialize;
use wxpulse_runtime::config::Config;
use wxpulse_runtime::enrich::{Dimension, Dimensions};
use wxpulse_runtime::events::{ChatMessage, ConversationKind, Direction, MsgType};
use wxpulse_runtime::pii::FanId;
use wxpulse_runtime::stream::{Context, History, Stream};
use wxpulse_runtime::{event_row, row};

/// A fan message waits this long (by server time) for a reply; older waits are dropped, so
/// a restart replays only this much history.
pub const REPLY_WINDOW_MS: i64 = 7 * 86_400_000;

/// Fan messages awaiting an associate's reply, per 1:1 conversation (fan × associate).
#[derive(Debug, Default)]
pub struct Waiting {
    /// fan → [(associate userid, earliest unanswered (event time, server time))].
    fans: HashMap<FanId, Vec<(Box<str>, i64, i64)>>,
}

impl Waiting {
    /// A fan wrote to an associate at `t` (received at `server`): starts the wait unless
    /// one is already running.
    pub fn fan_wrote(&mut self, fan: FanId, userid: &str, t: i64, server: i64) {
        let waits = self.fans.entry(fan).or_default();
        match waits.iter_mut().find(|w| &*w.0 == userid) {
            Some(w) if server - w.2 <= REPLY_WINDOW_MS => {}
            Some(w) => *w = (userid.into(), t, server),
            None => waits.push((userid.into(), t, server)),
        }
    }

    /// The associate wrote at `t`: the first-reply time, if fan messages were waiting
    /// (within the window, and not after this message).
    pub fn associate_wrote(
        &mut self,
        fan: FanId,
        userid: &str,
        t: i64,
        server: i64,
    ) -> Option<i64> {
        let waits = self.fans.get_mut(&fan)?;
        let i = waits.iter().position(|w| &*w.0 == userid)?;
        let (_, since, since_server) = waits[i];
        if t < since {
            return None;
        }
        waits.swap_remove(i);
        if waits.is_empty() {
            self.fans.remove(&fan);
        }
        (server - since_server <= REPLY_WINDOW_MS).then_some(t - since)
    }
}

/// The chat-message stream.
#[derive(Default)]
pub struct ChatMessages {
    waiting: HashMap<i32, Waiting>,
}

impl ChatMessages {
    /// Builds the stream from the service config.
    pub fn new(_config: &Config) -> Self {
        ChatMessages::default()
    }
}

event_row! {
    /// A row of `wxpulse.chat_messages`.
    pub struct ChatMessageRow {
        pub msg_id: i64,
        pub conversation: &'static str,
        pub direction: &'static str,
        pub msg_type: &'static str,
        pub associate_userid: String,
        pub store_id: Arc<str>,
        pub region: Arc<str>,
        pub chat_id: String,
        pub content_length: i32,
        pub first_reply_ms: Option<i64>,
    }
}

fn conversation(k: ConversationKind) -> &'static str {
    match k {
        ConversationKind::OfficialAccount => "OFFICIAL_ACCOUNT",
        ConversationKind::WecomPrivate => "WECOM_PRIVATE",
        ConversationKind::WecomGroup => "WECOM_GROUP",
        ConversationKind::Other => "OTHER",
    }
}

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::FanToBrand => "FAN_TO_BRAND",
        Direction::BrandToFan => "BRAND_TO_FAN",
        Direction::FanToAssociate => "FAN_TO_ASSOCIATE",
        Direction::AssociateToFan => "ASSOCIATE_TO_FAN",
        Direction::Other => "OTHER",
    }
}

fn msg_type(t: MsgType) -> &'static str {
    match t {
        MsgType::Text => "text",
        MsgType::Image => "image",
        MsgType::Voice => "voice",
        MsgType::Video => "video",
        MsgType::Link => "link",
        MsgType::Miniprogram => "miniprogram",
        MsgType::Location => "location",
        MsgType::File => "file",
        MsgType::Other => "other",
    }
}

/// Store and region of an associate; empty when the message has no associate.
fn place(dims: &Dimensions, userid: &str) -> (Arc<str>, Arc<str>) {
    if userid.is_empty() {
        return (dims.empty(), dims.empty());
    }
    let Some(a) = dims.associate(userid) else {
        return (dims.unknown(), dims.unknown());
    };
    let region = dims
        .store(&a.store_id)
        .map_or_else(|| dims.unknown(), |s| s.region.clone());
    (a.store_id.clone(), region)
}

#[derive(Row, Deserialize)]
struct PastMessage {
    fan_id: u64,
    associate_userid: String,
    from_fan: bool,
    t: i64,
    server: i64,
}

impl Stream for ChatMessages {
    const SERVICE: &'static str = "chat-messages";
    const TOPIC: &'static str = "wxpulse.chat_messages";
    const TABLE: &'static str = "chat_messages";
    const RECORD: &'static str = "com.wxpulse.events.ChatMessage";
    const DIMENSIONS: &'static [Dimension] = &[Dimension::Associate, Dimension::Store];
    type Event<'a> = ChatMessage<'a>;
    type Row = ChatMessageRow;

    fn row(&mut self, e: &ChatMessage<'_>, cx: &Context<'_>) -> ChatMessageRow {
        let userid = e.userid.unwrap_or_default();
        let (store_id, region) = place(cx.dims, userid);
        let mut first_reply_ms = None;
        if e.conversation == ConversationKind::WecomPrivate && !userid.is_empty() {
            let waiting = self.waiting.entry(cx.meta.partition).or_default();
            let fan = cx.meta.fan_id;
            match e.direction {
                Direction::FanToAssociate => {
                    waiting.fan_wrote(fan, userid, cx.event_time, cx.server_time)
                }
                Direction::AssociateToFan => {
                    first_reply_ms =
                        waiting.associate_wrote(fan, userid, cx.event_time, cx.server_time)
                }
                _ => {}
            }
        }
        row!(ChatMessageRow, cx, {
            msg_id: e.msg_id,
            conversation: conversation(e.conversation),
            direction: direction(e.direction),
            msg_type: msg_type(e.msg_type),
            associate_userid: userid.to_string(),
            store_id: store_id,
            region: region,
            chat_id: e.chat_id.unwrap_or_default().to_string(),
            content_length: e.content_length,
            first_reply_ms: first_reply_ms,
        })
    }

    async fn restore(&mut self, h: &History<'_>) -> Result<(), clickhouse::error::Error> {
        let mut waiting = Waiting::default();
        if h.watermark_offset >= 0 {
            let past: Vec<PastMessage> = h
                .client
                .query(&format!(
                    "SELECT fan_id, associate_userid, direction = 'FAN_TO_ASSOCIATE' AS from_fan, \
                     toInt64(toUnixTimestamp64Milli(event_time)) AS t, \
                     toInt64(toUnixTimestamp64Milli(server_time)) AS server \
                     FROM {} WHERE kafka_topic = ? AND kafka_partition = ? \
                     AND conversation = 'WECOM_PRIVATE' AND associate_userid != '' \
                     AND direction IN ('FAN_TO_ASSOCIATE', 'ASSOCIATE_TO_FAN') \
                     AND server_time >= fromUnixTimestamp64Milli(toInt64(?)) \
                     ORDER BY kafka_offset",
                    h.table
                ))
                .bind(h.topic)
                .bind(h.partition)
                .bind(h.watermark_server_time - 2 * REPLY_WINDOW_MS)
                .fetch_all()
                .await?;
            for m in past {
                if m.from_fan {
                    waiting.fan_wrote(m.fan_id, &m.associate_userid, m.t, m.server);
                } else {
                    waiting.associate_wrote(m.fan_id, &m.associate_userid, m.t, m.server);
                }
            }
        }
        self.waiting.insert(h.partition, waiting);
        Ok(())
    }

    fn forget(&mut self, partition: i32) {
        self.waiting.remove(&partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn first_reply_measures_from_the_earliest_waiting_fan_message() {
        let mut w = Waiting::default();
        w.fan_wrote(1, "zhang", 10 * H, 10 * H);
        w.fan_wrote(1, "zhang", 11 * H, 11 * H);
        assert_eq!(
            w.associate_wrote(1, "li", 12 * H, 12 * H),
            None,
            "another associate"
        );
        assert_eq!(w.associate_wrote(1, "zhang", 12 * H, 12 * H), Some(2 * H));
        assert_eq!(
            w.associate_wrote(1, "zhang", 13 * H, 13 * H),
            None,
            "already answered"
        );
        w.fan_wrote(1, "zhang", 20 * H, 20 * H);
        assert_eq!(
            w.associate_wrote(1, "zhang", 19 * H, 20 * H),
            None,
            "not a reply: earlier"
        );
        assert_eq!(w.associate_wrote(1, "zhang", 21 * H, 21 * H), Some(H));
    }

    #[test]
    fn a_wait_expires_after_the_window() {
        let mut w = Waiting::default();
        w.fan_wrote(1, "zhang", 0, 0);
        let late = REPLY_WINDOW_MS + 1;
        assert_eq!(w.associate_wrote(1, "zhang", late, late), None);
        w.fan_wrote(2, "zhang", 0, 0);
        w.fan_wrote(2, "zhang", late, late); // the stale wait restarts
        assert_eq!(w.associate_wrote(2, "zhang", late + H, late + H), Some(H));
    }
}
