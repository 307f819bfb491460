//! A WeChat callback's XML, and the pipeline event it is: menu clicks, QR scans and fan
//! messages. The event id is derived from the callback's identity, so WeChat's retries of
//! the same callback (up to three, 5 s apart) carry the same id and the consumers drop them.

use std::collections::HashMap;

use quick_xml::events::Event;
use wxpulse_runtime::enrich::{DimensionRecord, FanFollowRecord, FollowKind};
use wxpulse_runtime::events::{
    ChatMessage, ConversationKind, Direction, MenuClick, MenuEvent, MsgType, QrEvent, QrScan,
};
use wxpulse_runtime::streams::EventStream;

/// The flat `<xml><Name>value</Name>…</xml>` of a callback, by element name.
pub fn fields(xml: &str) -> Result<HashMap<String, String>, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = HashMap::new();
    let mut depth = 0usize;
    let mut current: Option<String> = None;
    let mut text = String::new();
    loop {
        match reader.read_event().map_err(|e| format!("not XML: {e}"))? {
            Event::Start(e) => {
                depth += 1;
                if depth == 2 {
                    current = Some(String::from_utf8_lossy(e.name().as_ref()).into_owned());
                    text.clear();
                }
            }
            Event::End(_) => {
                if depth == 2 {
                    if let Some(name) = current.take() {
                        out.insert(name, std::mem::take(&mut text));
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Event::Empty(e) if depth == 1 => {
                out.insert(
                    String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                    String::new(),
                );
            }
            Event::Text(t) if depth == 2 => {
                text.push_str(&t.decode().map_err(|e| format!("not UTF-8: {e}"))?);
            }
            Event::CData(t) if depth == 2 => {
                text.push_str(&t.decode().map_err(|e| format!("not UTF-8: {e}"))?);
            }
            Event::GeneralRef(r) if depth == 2 => {
                if r.is_char_ref() {
                    if let Ok(Some(c)) = r.resolve_char_ref() {
                        text.push(c);
                    }
                } else {
                    let name: &[u8] = &r;
                    text.push_str(match name {
                        b"amp" => "&",
                        b"lt" => "<",
                        b"gt" => ">",
                        b"quot" => "\"",
                        b"apos" => "'",
                        _ => "",
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 || out.is_empty() {
        return Err("not a WeChat callback (<xml> with fields)".to_string());
    }
    Ok(out)
}

/// What a callback becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// An event for a pipeline topic.
    Event(Interaction),
    /// A follow or unfollow for the fan-follow topic, and the QR scan a `subscribe` with a
    /// scene also is.
    Follow {
        /// The follow or unfollow.
        follow: Follow,
        /// The scan, for a `subscribe` through a QR code.
        scan: Option<Interaction>,
    },
    /// Understood and acknowledged, not an event of the pipeline (e.g. a follow without a
    /// QR code, a location report); named for the metrics.
    Ignored(&'static str),
}

/// An event with owned fields, ready to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    /// Target stream.
    pub stream: EventStream,
    /// Derived event id.
    pub event_id: String,
    /// The fan's openid (FromUserName).
    pub openid: String,
    /// CreateTime × 1000.
    pub client_time: i64,
    /// What kind.
    pub kind: Kind,
}

/// A fan following or unfollowing the account: it sets the fan's follow times without
/// touching the CRM's profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Follow {
    /// Follow or unfollow.
    pub kind: FollowKind,
    /// The fan's openid (FromUserName).
    pub openid: String,
    /// CreateTime × 1000.
    pub at: i64,
    /// `ADD_SCENE_QR_CODE` for a subscribe with a scene; WeChat tells no other source.
    pub source: Option<&'static str>,
}

impl Follow {
    /// The fan-follow record for `app_id`, received at `server_time`.
    pub fn record(&self, app_id: &str, server_time: i64) -> DimensionRecord {
        DimensionRecord::FanFollow(FanFollowRecord {
            app_id: app_id.to_string(),
            openid: self.openid.clone(),
            kind: self.kind,
            at: self.at,
            follow_source: self.source.map(str::to_string),
            updated_at: server_time,
        })
    }
}

/// The stream-specific part.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Menu click.
    Menu {
        /// CLICK, VIEW, VIEW_MINIPROGRAM.
        event: MenuEvent,
        /// EventKey.
        key: String,
        /// MenuId.
        menu_id: Option<i64>,
    },
    /// QR scan.
    Scan {
        /// SUBSCRIBE or SCAN.
        event: QrEvent,
        /// EventKey (`qrscene_<scene>` or `<scene>`).
        key: String,
        /// Ticket.
        ticket: Option<String>,
    },
    /// A fan's message to the account.
    Message {
        /// MsgId.
        msg_id: i64,
        /// MsgType.
        msg_type: MsgType,
        /// Characters of the text (0 for others); the text itself is never kept.
        length: i32,
    },
}

/// Namespace of the derived event ids (UUIDv5).
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6f1d_4c7e_2b8a_4f0e_9d3c_5a7b_1e2f_8c90);

/// Maps a callback's fields; `Err` says what is missing or wrong.
pub fn map(f: &HashMap<String, String>) -> Result<Mapped, String> {
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or_default();
    let openid = get("FromUserName");
    if openid.is_empty() {
        return Err("no FromUserName".to_string());
    }
    let create: i64 = get("CreateTime")
        .trim()
        .parse()
        .map_err(|_| "CreateTime is not a number".to_string())?;
    let msg_type = get("MsgType");
    let key = get("EventKey");
    let id = |identity: &str| uuid::Uuid::new_v5(&NAMESPACE, identity.as_bytes()).to_string();
    let event_identity = || format!("{openid}|{create}|{msg_type}|{}|{key}", get("Event"));
    let interaction = |stream, event_id, kind| Interaction {
        stream,
        event_id,
        openid: openid.to_string(),
        client_time: create * 1000,
        kind,
    };
    let follow = |kind, source| Follow {
        kind,
        openid: openid.to_string(),
        at: create * 1000,
        source,
    };
    if msg_type == "event" {
        let menu = |event| {
            interaction(
                EventStream::MenuClicks,
                id(&event_identity()),
                Kind::Menu {
                    event,
                    key: key.to_string(),
                    menu_id: get("MenuId").trim().parse().ok(),
                },
            )
        };
        let scan = |event| {
            interaction(
                EventStream::QrScans,
                id(&event_identity()),
                Kind::Scan {
                    event,
                    key: key.to_string(),
                    ticket: Some(get("Ticket").to_string()).filter(|t| !t.is_empty()),
                },
            )
        };
        return Ok(match get("Event") {
            "CLICK" => Mapped::Event(menu(MenuEvent::Click)),
            "VIEW" => Mapped::Event(menu(MenuEvent::View)),
            "view_miniprogram" => Mapped::Event(menu(MenuEvent::ViewMiniprogram)),
            "subscribe" if key.starts_with("qrscene_") => Mapped::Follow {
                follow: follow(FollowKind::Follow, Some("ADD_SCENE_QR_CODE")),
                scan: Some(scan(QrEvent::Subscribe)),
            },
            "SCAN" => Mapped::Event(scan(QrEvent::Scan)),
            "subscribe" => Mapped::Follow {
                follow: follow(FollowKind::Follow, None),
                scan: None,
            },
            "unsubscribe" => Mapped::Follow {
                follow: follow(FollowKind::Unfollow, None),
                scan: None,
            },
            _ => Mapped::Ignored("other_event"),
        });
    }
    let kind = match msg_type {
        "text" => MsgType::Text,
        "image" => MsgType::Image,
        "voice" => MsgType::Voice,
        "video" | "shortvideo" => MsgType::Video,
        "location" => MsgType::Location,
        "link" => MsgType::Link,
        "" => return Err("no MsgType".to_string()),
        _ => return Ok(Mapped::Ignored("other_message")),
    };
    let msg_id: i64 = get("MsgId")
        .trim()
        .parse()
        .map_err(|_| "MsgId is not a number".to_string())?;
    let length = get("Content").chars().count().min(i32::MAX as usize) as i32;
    Ok(Mapped::Event(interaction(
        EventStream::ChatMessages,
        id(&format!("{openid}|msg|{msg_id}")),
        Kind::Message {
            msg_id,
            msg_type: kind,
            length,
        },
    )))
}

/// Maps a WeCom app's callback (fields of the decrypted XML): a customer added through an
/// associate's contact-me code with a `State` is a QR scan of that code (scene = State) by
/// the customer (openid = ExternalUserID) for the corp (app_id = CorpID), exactly as an
/// Official Account's `subscribe` with a scene; other contact and group changes are
/// acknowledged and counted.
pub fn map_wecom(f: &HashMap<String, String>) -> Result<Mapped, String> {
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or_default();
    let create: i64 = get("CreateTime")
        .trim()
        .parse()
        .map_err(|_| "CreateTime is not a number".to_string())?;
    if get("MsgType") != "event" {
        return Ok(Mapped::Ignored("wecom_message"));
    }
    match (get("Event"), get("ChangeType")) {
        ("change_external_contact", "add_external_contact") if !get("State").is_empty() => {
            let (customer, associate, state) = (get("ExternalUserID"), get("UserID"), get("State"));
            if customer.is_empty() {
                return Err("no ExternalUserID".to_string());
            }
            let identity =
                format!("wecom|add_external_contact|{associate}|{customer}|{create}|{state}");
            Ok(Mapped::Event(Interaction {
                stream: EventStream::QrScans,
                event_id: uuid::Uuid::new_v5(&NAMESPACE, identity.as_bytes()).to_string(),
                openid: customer.to_string(),
                client_time: create * 1000,
                kind: Kind::Scan {
                    event: QrEvent::Subscribe,
                    key: format!("qrscene_{state}"),
                    ticket: None,
                },
            }))
        }
        ("change_external_contact", "add_external_contact") => {
            Ok(Mapped::Ignored("add_external_contact"))
        }
        ("change_external_contact", "del_external_contact") => {
            Ok(Mapped::Ignored("del_external_contact"))
        }
        ("change_external_contact", "del_follow_user") => Ok(Mapped::Ignored("del_follow_user")),
        ("change_external_contact", "edit_external_contact") => {
            Ok(Mapped::Ignored("edit_external_contact"))
        }
        ("change_external_chat", _) => Ok(Mapped::Ignored("customer_group_change")),
        _ => Ok(Mapped::Ignored("wecom_other_event")),
    }
}

impl Interaction {
    /// Encodes for `app_id`, received at `server_time`: the framed value.
    pub fn encode(
        &self,
        app_id: &str,
        server_time: i64,
        schema_id: u32,
        schema: &serde_avro_fast::Schema,
    ) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(160);
        let (event_id, openid) = (self.event_id.as_str(), self.openid.as_str());
        let result = match &self.kind {
            Kind::Menu {
                event,
                key,
                menu_id,
            } => wxpulse_runtime::codec::encode_into(
                &MenuClick {
                    event_id,
                    app_id,
                    openid,
                    unionid: None,
                    client_time: self.client_time,
                    server_time,
                    event: *event,
                    event_key: key,
                    menu_id: *menu_id,
                },
                schema_id,
                schema,
                &mut out,
            ),
            Kind::Scan { event, key, ticket } => wxpulse_runtime::codec::encode_into(
                &QrScan {
                    event_id,
                    app_id,
                    openid,
                    unionid: None,
                    client_time: self.client_time,
                    server_time,
                    event: *event,
                    event_key: key,
                    ticket: ticket.as_deref(),
                },
                schema_id,
                schema,
                &mut out,
            ),
            Kind::Message {
                msg_id,
                msg_type,
                length,
            } => wxpulse_runtime::codec::encode_into(
                &ChatMessage {
                    event_id,
                    app_id,
                    openid,
                    unionid: None,
                    client_time: self.client_time,
                    server_time,
                    msg_id: *msg_id,
                    conversation: ConversationKind::OfficialAccount,
                    direction: Direction::FanToBrand,
                    msg_type: *msg_type,
                    userid: None,
                    chat_id: None,
                    content: None,
                    content_length: *length,
                },
                schema_id,
                schema,
                &mut out,
            ),
        };
        result.map_err(|e| e.to_string())?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xml(body: &str) -> HashMap<String, String> {
        fields(&format!("<xml>{body}</xml>")).expect("parses")
    }

    #[test]
    fn fields_read_cdata_text_and_entities() {
        let f = xml(
            "<ToUserName><![CDATA[gh_1]]></ToUserName><CreateTime>1733380000</CreateTime>\
             <Content>a &amp; b &#20320;</Content><Empty/>",
        );
        assert_eq!(f["ToUserName"], "gh_1");
        assert_eq!(f["CreateTime"], "1733380000");
        assert_eq!(f["Content"], "a & b 你");
        assert!(fields("not xml <").is_err());
        assert!(fields("<xml></xml>").is_err());
    }

    #[test]
    fn callbacks_map_to_events_with_ids_that_retries_repeat() {
        let click = xml(
            "<FromUserName>o1</FromUserName><CreateTime>100</CreateTime><MsgType>event</MsgType>\
             <Event>CLICK</Event><EventKey>SHOP</EventKey>",
        );
        let Ok(Mapped::Event(a)) = map(&click) else {
            panic!("a click")
        };
        assert_eq!(
            (a.stream, a.client_time),
            (EventStream::MenuClicks, 100_000)
        );
        let Ok(Mapped::Event(b)) = map(&click) else {
            panic!("a click")
        };
        assert_eq!(a.event_id, b.event_id, "a retry carries the same id");
        let mut later = click.clone();
        later.insert("CreateTime".into(), "101".into());
        let Ok(Mapped::Event(c)) = map(&later) else {
            panic!("a click")
        };
        assert_ne!(a.event_id, c.event_id, "another click, another id");
        let scan = xml(
            "<FromUserName>o1</FromUserName><CreateTime>100</CreateTime><MsgType>event</MsgType>\
             <Event>subscribe</Event><EventKey>qrscene_1001</EventKey>",
        );
        let Ok(Mapped::Follow {
            follow,
            scan: Some(scan),
        }) = map(&scan)
        else {
            panic!("a subscribe through a QR code is a follow and a scan")
        };
        assert_eq!(scan.stream, EventStream::QrScans);
        assert_eq!(
            (follow.kind, follow.at, follow.source),
            (FollowKind::Follow, 100_000, Some("ADD_SCENE_QR_CODE"))
        );
        let plain = xml(
            "<FromUserName>o1</FromUserName><CreateTime>100</CreateTime><MsgType>event</MsgType>\
             <Event>subscribe</Event><EventKey></EventKey>",
        );
        let gone = xml(
            "<FromUserName>o1</FromUserName><CreateTime>200</CreateTime><MsgType>event</MsgType>\
             <Event>unsubscribe</Event><EventKey></EventKey>",
        );
        let follow = |kind, at| Follow {
            kind,
            openid: "o1".into(),
            at,
            source: None,
        };
        assert_eq!(
            map(&plain),
            Ok(Mapped::Follow {
                follow: follow(FollowKind::Follow, 100_000),
                scan: None
            })
        );
        assert_eq!(
            map(&gone),
            Ok(Mapped::Follow {
                follow: follow(FollowKind::Unfollow, 200_000),
                scan: None
            })
        );
        let DimensionRecord::FanFollow(r) = follow(FollowKind::Unfollow, 200_000).record("wxa", 7)
        else {
            panic!("a fan-follow record")
        };
        assert_eq!(
            (r.app_id.as_str(), r.updated_at, r.follow_source),
            ("wxa", 7, None)
        );
        let text = xml(
            "<FromUserName>o1</FromUserName><CreateTime>100</CreateTime><MsgType>text</MsgType>\
             <Content>你好</Content><MsgId>42</MsgId>",
        );
        let Ok(Mapped::Event(m)) = map(&text) else {
            panic!("a message")
        };
        assert_eq!(
            m.kind,
            Kind::Message {
                msg_id: 42,
                msg_type: MsgType::Text,
                length: 2
            }
        );
        assert!(
            map(&xml("<CreateTime>1</CreateTime>")).is_err(),
            "no FromUserName"
        );
        assert!(map(&xml(
            "<FromUserName>o</FromUserName><CreateTime>x</CreateTime>"
        ))
        .is_err());
    }
}
