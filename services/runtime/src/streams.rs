//! The event streams wxpulse consumes, named once: topic, schema subject, Avro record,
//! ClickHouse table and service. Every service's [`Stream`](crate::stream::Stream)
//! constants, the CLI's topic list and loader, and the generator take their names from
//! here, as the dimension topics do from [`Dimension`](crate::enrich::Dimension).

/// One event stream: a topic keyed `app_id|openid`, a raw table and the service between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventStream {
    /// Custom-menu clicks.
    MenuClicks,
    /// QR-code scans.
    QrScans,
    /// Chat messages (Official Account and WeCom).
    ChatMessages,
    /// Article reads.
    ArticleReads,
    /// Purchases and refunds.
    Orders,
}

impl EventStream {
    /// Every stream.
    pub const ALL: [EventStream; 5] = [
        EventStream::MenuClicks,
        EventStream::QrScans,
        EventStream::ChatMessages,
        EventStream::ArticleReads,
        EventStream::Orders,
    ];

    /// The stream's name where a person types it (`--stream`): its table's.
    pub const fn as_str(self) -> &'static str {
        self.table()
    }

    /// The stream named `name` ([`EventStream::as_str`]).
    pub fn parse(name: &str) -> Option<EventStream> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The stream whose topic is `topic` (the default topic names).
    pub fn of_topic(topic: &str) -> Option<EventStream> {
        Self::ALL.into_iter().find(|s| s.topic() == topic)
    }

    /// Topic the service consumes by default.
    pub const fn topic(self) -> &'static str {
        match self {
            EventStream::MenuClicks => "wxpulse.menu_clicks",
            EventStream::QrScans => "wxpulse.qr_scans",
            EventStream::ChatMessages => "wxpulse.chat_messages",
            EventStream::ArticleReads => "wxpulse.article_reads",
            EventStream::Orders => "wxpulse.orders",
        }
    }

    /// Schema-registry subject of the topic's values (TopicNameStrategy).
    pub const fn subject(self) -> &'static str {
        match self {
            EventStream::MenuClicks => "wxpulse.menu_clicks-value",
            EventStream::QrScans => "wxpulse.qr_scans-value",
            EventStream::ChatMessages => "wxpulse.chat_messages-value",
            EventStream::ArticleReads => "wxpulse.article_reads-value",
            EventStream::Orders => "wxpulse.orders-value",
        }
    }

    /// Full name of the Avro record the topic carries.
    pub const fn record(self) -> &'static str {
        match self {
            EventStream::MenuClicks => "com.wxpulse.events.MenuClick",
            EventStream::QrScans => "com.wxpulse.events.QrScan",
            EventStream::ChatMessages => "com.wxpulse.events.ChatMessage",
            EventStream::ArticleReads => "com.wxpulse.events.ArticleRead",
            EventStream::Orders => "com.wxpulse.events.Order",
        }
    }

    /// ClickHouse raw table the service writes.
    pub const fn table(self) -> &'static str {
        match self {
            EventStream::MenuClicks => "menu_clicks",
            EventStream::QrScans => "qr_scans",
            EventStream::ChatMessages => "chat_messages",
            EventStream::ArticleReads => "article_reads",
            EventStream::Orders => "orders",
        }
    }

    /// Service name: binary `wxpulse-<service>`, metric label, consumer group
    /// `wxpulse-<service>`.
    pub const fn service(self) -> &'static str {
        match self {
            EventStream::MenuClicks => "menu-clicks",
            EventStream::QrScans => "qr-scans",
            EventStream::ChatMessages => "chat-messages",
            EventStream::ArticleReads => "article-reads",
            EventStream::Orders => "orders",
        }
    }

    /// The newest embedded schema of the subject: what wxpulse's own producers write.
    pub fn schema(self) -> &'static crate::codec::EmbeddedSchema {
        crate::codec::latest(self.subject())
            .expect("every event stream has an embedded schema (tested)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_agree_with_each_other_and_the_schemas() {
        for s in EventStream::ALL {
            assert_eq!(s.subject(), format!("{}-value", s.topic()));
            assert_eq!(s.topic(), format!("wxpulse.{}", s.table()));
            assert_eq!(s.service().replace('-', "_"), s.table());
            assert_eq!(EventStream::parse(s.as_str()), Some(s));
            assert_eq!(EventStream::of_topic(s.topic()), Some(s));
            let writer = crate::codec::Writer::parse(s.schema().json).expect("parses");
            assert_eq!(writer.record, s.record());
        }
    }
}
