//! Chat messages (11% of interactions, seed 000). The message text is decoded only to be
//! dropped: no content column exists, so it cannot reach ClickHouse (PIPL).

use clickhouse::Row;
use serde::Serialize;
use wxpulse_runtime::config::Config;
use wxpulse_runtime::events::{ChatMessage, ConversationKind, Direction, MsgType};
use wxpulse_runtime::stream::{Meta, Stream};

/// The chat-message stream.
pub struct ChatMessages;

impl ChatMessages {
    /// Builds the stream from the service config.
    pub fn new(_config: &Config) -> Self {
        ChatMessages
    }
}

/// A row of `wxpulse.chat_messages`.
#[derive(Debug, Clone, Row, Serialize)]
#[allow(missing_docs)]
pub struct ChatMessageRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: uuid::Uuid,
    pub app_id: String,
    pub fan_id: u64,
    pub union_id: u64,
    pub event_time: i64,
    pub server_time: i64,
    pub msg_id: i64,
    pub conversation: &'static str,
    pub direction: &'static str,
    pub msg_type: &'static str,
    pub associate_userid: String,
    pub chat_id: String,
    pub content_length: i32,
    pub kafka_topic: &'static str,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
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

impl Stream for ChatMessages {
    const SERVICE: &'static str = "chat-messages";
    const TOPIC: &'static str = "wxpulse.chat_messages";
    const TABLE: &'static str = "chat_messages";
    const RECORD: &'static str = "com.wxpulse.events.ChatMessage";
    type Event<'a> = ChatMessage<'a>;
    type Row = ChatMessageRow;

    fn row(&mut self, e: &ChatMessage<'_>, meta: &Meta) -> ChatMessageRow {
        ChatMessageRow {
            event_id: meta.event_id,
            app_id: e.app_id.to_string(),
            fan_id: meta.fan_id,
            union_id: meta.union_id,
            event_time: e.client_time,
            server_time: e.server_time,
            msg_id: e.msg_id,
            conversation: conversation(e.conversation),
            direction: direction(e.direction),
            msg_type: msg_type(e.msg_type),
            associate_userid: e.userid.unwrap_or_default().to_string(),
            chat_id: e.chat_id.unwrap_or_default().to_string(),
            content_length: e.content_length,
            kafka_topic: meta.topic,
            kafka_partition: meta.partition,
            kafka_offset: meta.offset,
        }
    }
}
