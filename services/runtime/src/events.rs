//! The interaction events as Rust structs: the reader side of `schemas/avro/`.
//!
//! Strings borrow from the Kafka payload, so decoding allocates nothing. Every enum has a
//! catch-all `Other` (`#[serde(other)]`) so a writer that adds a symbol does not break
//! readers, and every field added after v1 carries `#[serde(default)]`. The same structs
//! serialize, which is how the generator and the tests produce events.

use serde::{Deserialize, Serialize};

/// The fields every interaction carries; the runtime validates and deduplicates on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Upstream-assigned UUID, repeated by retries.
    pub event_id: &'a str,
    /// Official Account AppID.
    pub app_id: &'a str,
    /// Fan's OpenID (raw, personal data).
    pub openid: &'a str,
    /// Fan's UnionID, when known (raw, personal data).
    pub unionid: Option<&'a str>,
    /// Device time, ms since the epoch: the event time.
    pub client_time: i64,
    /// Receive time, ms since the epoch.
    pub server_time: i64,
}

/// An event with a [`Header`].
pub trait Interaction {
    /// The common fields.
    fn header(&self) -> Header<'_>;
}

macro_rules! interaction {
    ($t:ident) => {
        impl Interaction for $t<'_> {
            fn header(&self) -> Header<'_> {
                Header {
                    event_id: self.event_id,
                    app_id: self.app_id,
                    openid: self.openid,
                    unionid: self.unionid,
                    client_time: self.client_time,
                    server_time: self.server_time,
                }
            }
        }
    };
}

/// WeChat menu event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MenuEvent {
    /// A button with a key.
    #[serde(rename = "CLICK")]
    Click,
    /// A button opening a URL.
    #[serde(rename = "VIEW")]
    View,
    /// A button opening a mini-program page.
    #[serde(rename = "VIEW_MINIPROGRAM")]
    ViewMiniprogram,
    /// A symbol this build does not know.
    #[serde(rename = "OTHER", other)]
    Other,
}

impl MenuEvent {
    /// The Avro symbol, as the tables store it.
    pub const fn as_str(self) -> &'static str {
        match self {
            MenuEvent::Click => "CLICK",
            MenuEvent::View => "VIEW",
            MenuEvent::ViewMiniprogram => "VIEW_MINIPROGRAM",
            MenuEvent::Other => "OTHER",
        }
    }
}

/// A fan tapped a custom-menu button (`menu_click` v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MenuClick<'a> {
    /// See [`Header`].
    pub event_id: &'a str,
    /// See [`Header`].
    pub app_id: &'a str,
    /// See [`Header`].
    pub openid: &'a str,
    /// See [`Header`].
    pub unionid: Option<&'a str>,
    /// See [`Header`].
    pub client_time: i64,
    /// See [`Header`].
    pub server_time: i64,
    /// CLICK, VIEW or mini-program.
    pub event: MenuEvent,
    /// Button key, URL or page path.
    pub event_key: &'a str,
    /// Personalised menu id.
    pub menu_id: Option<i64>,
}
interaction!(MenuClick);

/// WeChat QR event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QrEvent {
    /// The scan made the fan follow (`qrscene_` key).
    #[serde(rename = "SUBSCRIBE")]
    Subscribe,
    /// An existing fan scanned.
    #[serde(rename = "SCAN")]
    Scan,
    /// A symbol this build does not know.
    #[serde(rename = "OTHER", other)]
    Other,
}

impl QrEvent {
    /// The Avro symbol, as the tables store it.
    pub const fn as_str(self) -> &'static str {
        match self {
            QrEvent::Subscribe => "SUBSCRIBE",
            QrEvent::Scan => "SCAN",
            QrEvent::Other => "OTHER",
        }
    }
}

/// A fan scanned a parametric QR code (`qr_scan` v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QrScan<'a> {
    /// See [`Header`].
    pub event_id: &'a str,
    /// See [`Header`].
    pub app_id: &'a str,
    /// See [`Header`].
    pub openid: &'a str,
    /// See [`Header`].
    pub unionid: Option<&'a str>,
    /// See [`Header`].
    pub client_time: i64,
    /// See [`Header`].
    pub server_time: i64,
    /// SUBSCRIBE or SCAN.
    pub event: QrEvent,
    /// `qrscene_<scene>` or `<scene>`.
    pub event_key: &'a str,
    /// QR ticket.
    pub ticket: Option<&'a str>,
}
interaction!(QrScan);

/// Where a chat message was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConversationKind {
    /// Chat with the Official Account.
    #[serde(rename = "OFFICIAL_ACCOUNT")]
    OfficialAccount,
    /// WeCom 1:1 between an associate and a customer.
    #[serde(rename = "WECOM_PRIVATE")]
    WecomPrivate,
    /// WeCom customer group.
    #[serde(rename = "WECOM_GROUP")]
    WecomGroup,
    /// A symbol this build does not know.
    #[serde(rename = "OTHER", other)]
    Other,
}

impl ConversationKind {
    /// The Avro symbol, as the tables store it.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConversationKind::OfficialAccount => "OFFICIAL_ACCOUNT",
            ConversationKind::WecomPrivate => "WECOM_PRIVATE",
            ConversationKind::WecomGroup => "WECOM_GROUP",
            ConversationKind::Other => "OTHER",
        }
    }
}

/// Who sent a message to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Fan to the Official Account.
    #[serde(rename = "FAN_TO_BRAND")]
    FanToBrand,
    /// Official Account to the fan.
    #[serde(rename = "BRAND_TO_FAN")]
    BrandToFan,
    /// Fan to an associate.
    #[serde(rename = "FAN_TO_ASSOCIATE")]
    FanToAssociate,
    /// Associate to a fan.
    #[serde(rename = "ASSOCIATE_TO_FAN")]
    AssociateToFan,
    /// A symbol this build does not know.
    #[serde(rename = "OTHER", other)]
    Other,
}

impl Direction {
    /// The Avro symbol, as the tables store it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::FanToBrand => "FAN_TO_BRAND",
            Direction::BrandToFan => "BRAND_TO_FAN",
            Direction::FanToAssociate => "FAN_TO_ASSOCIATE",
            Direction::AssociateToFan => "ASSOCIATE_TO_FAN",
            Direction::Other => "OTHER",
        }
    }
}

/// WeChat MsgType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MsgType {
    /// Text.
    Text,
    /// Image.
    Image,
    /// Voice.
    Voice,
    /// Video.
    Video,
    /// Link card.
    Link,
    /// Mini-program card.
    Miniprogram,
    /// Location.
    Location,
    /// File.
    File,
    /// A symbol this build does not know.
    #[serde(other)]
    Other,
}

impl MsgType {
    /// The Avro symbol (WeChat's MsgType), as the tables store it.
    pub const fn as_str(self) -> &'static str {
        match self {
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
}

/// One chat message (`chat_message` v1). `content` is decoded only to be dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage<'a> {
    /// See [`Header`].
    pub event_id: &'a str,
    /// See [`Header`].
    pub app_id: &'a str,
    /// See [`Header`].
    pub openid: &'a str,
    /// See [`Header`].
    pub unionid: Option<&'a str>,
    /// See [`Header`].
    pub client_time: i64,
    /// See [`Header`].
    pub server_time: i64,
    /// MsgId.
    pub msg_id: i64,
    /// Account, WeCom 1:1 or group.
    pub conversation: ConversationKind,
    /// Sender and receiver.
    pub direction: Direction,
    /// MsgType.
    pub msg_type: MsgType,
    /// Associate's WeCom userid.
    pub userid: Option<&'a str>,
    /// Group chat id.
    pub chat_id: Option<&'a str>,
    /// Message text: personal data, never stored.
    pub content: Option<&'a str>,
    /// Characters of content.
    #[serde(default)]
    pub content_length: i32,
}
interaction!(ChatMessage);

/// Where an article was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadSource {
    /// From the push message.
    #[serde(rename = "PUSH")]
    Push,
    /// Forwarded in a chat.
    #[serde(rename = "CHAT")]
    Chat,
    /// From Moments.
    #[serde(rename = "MOMENTS")]
    Moments,
    /// From search.
    #[serde(rename = "SEARCH")]
    Search,
    /// From the account's history.
    #[serde(rename = "HISTORY")]
    History,
    /// A symbol this build does not know.
    #[serde(rename = "OTHER", other)]
    Other,
}

impl ReadSource {
    /// The Avro symbol, as the tables store it.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReadSource::Push => "PUSH",
            ReadSource::Chat => "CHAT",
            ReadSource::Moments => "MOMENTS",
            ReadSource::Search => "SEARCH",
            ReadSource::History => "HISTORY",
            ReadSource::Other => "OTHER",
        }
    }
}

/// A fan read an article (`article_read` v1 and v2; v2 widened `read_seconds` to long and
/// added `scene_note`, which readers ignore).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArticleRead<'a> {
    /// See [`Header`].
    pub event_id: &'a str,
    /// See [`Header`].
    pub app_id: &'a str,
    /// See [`Header`].
    pub openid: &'a str,
    /// See [`Header`].
    pub unionid: Option<&'a str>,
    /// See [`Header`].
    pub client_time: i64,
    /// See [`Header`].
    pub server_time: i64,
    /// Article id.
    pub article_id: &'a str,
    /// Push msgid.
    pub msgid: i64,
    /// Position in the push, 1 = first.
    pub idx: i32,
    /// Where it was opened.
    pub source: ReadSource,
    /// Screens scrolled.
    pub read_depth: f32,
    /// Seconds read (int in v1, long in v2).
    pub read_seconds: i64,
    /// Shared.
    #[serde(default)]
    pub shared: bool,
    /// Favourited.
    #[serde(default)]
    pub favorited: bool,
    /// Call-to-action clicked.
    #[serde(default)]
    pub cta_clicked: bool,
}
interaction!(ArticleRead);

/// Purchase or refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderKind {
    /// A sale.
    #[serde(rename = "PURCHASE")]
    Purchase,
    /// Money back on an earlier purchase, by its order_id.
    #[serde(rename = "REFUND")]
    Refund,
    /// A symbol this build does not know: dead-lettered, it cannot be counted either way.
    #[serde(rename = "OTHER", other)]
    Other,
}

/// Where an order was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderChannel {
    /// The brand's WeChat mini-program mall.
    #[serde(rename = "MINI_PROGRAM")]
    MiniProgram,
    /// A store's point of sale.
    #[serde(rename = "STORE_POS")]
    StorePos,
    /// A symbol this build does not know.
    #[serde(rename = "OTHER", other)]
    Other,
}

/// A purchase or refund from the mall or a store (`order` v1): what conversions are
/// attributed from. Not an interaction for the engagement figures, but it shares the
/// header so it is validated, deduplicated and pseudonymised like one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order<'a> {
    /// See [`Header`].
    pub event_id: &'a str,
    /// Brand order id; a refund carries its purchase's.
    pub order_id: &'a str,
    /// Purchase or refund.
    pub kind: OrderKind,
    /// See [`Header`].
    pub app_id: &'a str,
    /// See [`Header`].
    pub openid: &'a str,
    /// See [`Header`].
    pub unionid: Option<&'a str>,
    /// When the order or refund was placed, ms: the event time.
    pub order_time: i64,
    /// See [`Header`].
    pub server_time: i64,
    /// Minor units (fen), positive for both kinds.
    pub amount_fen: i64,
    /// ISO 4217.
    pub currency: &'a str,
    /// Store of a POS order, or the store a mall order is credited to.
    pub store_id: Option<&'a str>,
    /// Mall or store.
    pub channel: OrderChannel,
    /// The associate's userid when the order came through their share link.
    pub share_code: Option<&'a str>,
    /// Line items.
    pub items: i32,
}

impl Interaction for Order<'_> {
    fn header(&self) -> Header<'_> {
        Header {
            event_id: self.event_id,
            app_id: self.app_id,
            openid: self.openid,
            unionid: self.unionid,
            client_time: self.order_time,
            server_time: self.server_time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode_into, latest, parse, split_frame};

    fn article(read_seconds: i64) -> ArticleRead<'static> {
        ArticleRead {
            event_id: "00000000-0000-4000-8000-000000000001",
            app_id: "wxa",
            openid: "o1",
            unionid: None,
            client_time: 1_700_000_000_000,
            server_time: 1_700_000_000_500,
            article_id: "a1",
            msgid: 10,
            idx: 1,
            source: ReadSource::Push,
            read_depth: 3.5,
            read_seconds,
            shared: true,
            favorited: false,
            cta_clicked: true,
        }
    }

    #[test]
    fn v1_int_read_seconds_widens_and_round_trips() {
        let v1 = parse(include_str!("../../../schemas/avro/article_read/v1.avsc")).expect("v1");
        let mut buf = Vec::new();
        encode_into(&article(42), 4, &v1, &mut buf).expect("encode");
        let (id, datum) = split_frame(&buf).expect("framed");
        assert_eq!(id, 4);
        let back: ArticleRead<'_> = decode(datum, &v1).expect("decode");
        assert_eq!(back, article(42));
    }

    #[test]
    fn v2_writer_with_added_field_decodes_into_the_same_struct() {
        #[derive(Serialize)]
        struct V2<'a> {
            #[serde(flatten)]
            base: ArticleRead<'a>,
            scene_note: Option<&'a str>,
        }
        let v2 = parse(latest("wxpulse.article_reads-value").expect("v2").json).expect("v2");
        let value = V2 {
            base: article(7),
            scene_note: Some("note"),
        };
        let datum = serde_avro_fast::to_datum_vec(
            &value,
            &mut serde_avro_fast::ser::SerializerConfig::new(&v2),
        )
        .expect("encode v2");
        let back: ArticleRead<'_> = decode(&datum, &v2).expect("decode v2 as reader");
        assert_eq!(back, article(7));
    }

    #[test]
    fn unknown_enum_symbol_maps_to_other() {
        let mut json: serde_json::Value =
            serde_json::from_str(include_str!("../../../schemas/avro/menu_click/v1.avsc"))
                .expect("json");
        let symbols = json["fields"]
            .as_array_mut()
            .and_then(|f| f.iter_mut().find(|f| f["name"] == "event"))
            .and_then(|f| f["type"]["symbols"].as_array_mut())
            .expect("event enum");
        symbols.push("SCANCODE_PUSH".into());
        let writer = parse(&json.to_string()).expect("evolved writer");
        let click = MenuClick {
            event_id: "e",
            app_id: "a",
            openid: "o",
            unionid: Some("u"),
            client_time: 1,
            server_time: 2,
            event: MenuEvent::Other,
            event_key: "k",
            menu_id: None,
        };
        // Write the new symbol (index 4) by hand: header fields, then the enum index.
        let mut datum = serde_avro_fast::to_datum_vec(
            &click,
            &mut serde_avro_fast::ser::SerializerConfig::new(&writer),
        )
        .expect("encode");
        let enum_pos = datum.len() - 1 - 2 - 1; // enum varint, key ("k" = 2 bytes), null menu_id
        assert_eq!(datum[enum_pos], 6, "OTHER is index 3 (zigzag 6)");
        datum[enum_pos] = 8; // index 4 = SCANCODE_PUSH
        let back: MenuClick<'_> = decode(&datum, &writer).expect("decode");
        assert_eq!(back.event, MenuEvent::Other);
    }

    #[test]
    fn stored_names_are_the_avro_symbols() {
        fn same<T: Serialize>(v: T, name: &str) {
            assert_eq!(
                serde_json::to_string(&v).expect("json"),
                format!("\"{name}\"")
            );
        }
        for v in [
            MenuEvent::Click,
            MenuEvent::View,
            MenuEvent::ViewMiniprogram,
            MenuEvent::Other,
        ] {
            same(v, v.as_str());
        }
        for v in [QrEvent::Subscribe, QrEvent::Scan, QrEvent::Other] {
            same(v, v.as_str());
        }
        for v in [
            ConversationKind::OfficialAccount,
            ConversationKind::WecomPrivate,
            ConversationKind::WecomGroup,
            ConversationKind::Other,
        ] {
            same(v, v.as_str());
        }
        for v in [
            Direction::FanToBrand,
            Direction::BrandToFan,
            Direction::FanToAssociate,
            Direction::AssociateToFan,
            Direction::Other,
        ] {
            same(v, v.as_str());
        }
        for v in [
            MsgType::Text,
            MsgType::Image,
            MsgType::Voice,
            MsgType::Video,
            MsgType::Link,
            MsgType::Miniprogram,
            MsgType::Location,
            MsgType::File,
            MsgType::Other,
        ] {
            same(v, v.as_str());
        }
        for v in [
            ReadSource::Push,
            ReadSource::Chat,
            ReadSource::Moments,
            ReadSource::Search,
            ReadSource::History,
            ReadSource::Other,
        ] {
            same(v, v.as_str());
        }
    }
}
