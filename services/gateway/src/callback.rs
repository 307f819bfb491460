//! A WeChat callback's XML, and the pipeline event it is: menu clicks, QR scans and fan
//! messages. The event id is derived from the callback's identity, so WeChat's retries of
//! the same callback (up to three, 5 s apart) carry the same id and the consumers drop them.

use std::collections::HashMap;

use quick_xml::events::Event;
use wxpulse_runtime::enrich::{
    AssociateContactRecord, ContactChange, DimensionRecord, FanFollowRecord, FollowKind,
};
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
    /// A change of a WeCom associate's external contacts for the associate-contact topic,
    /// and the QR scan an addition through a contact-me code also is.
    Contact {
        /// The addition or removal.
        contact: Contact,
        /// The scan, for an addition with a `State`.
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

/// A customer added to or removed from a WeCom associate's contacts (WeCom's
/// `change_external_contact`): the associate–customer relationship, which the CRM's fan
/// profile cannot carry (WeCom names the customer by ExternalUserID, not an openid).
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// Added, or removed by either side.
    pub change: ContactChange,
    /// The associate (UserID).
    pub userid: String,
    /// The customer (ExternalUserID).
    pub external_userid: String,
    /// CreateTime × 1000.
    pub at: i64,
    /// The contact-me code's State, for an addition through one.
    pub state: Option<String>,
}

impl Contact {
    /// The associate-contact record for `corp_id`, received at `server_time`.
    pub fn record(&self, corp_id: &str, server_time: i64) -> DimensionRecord {
        DimensionRecord::AssociateContact(AssociateContactRecord {
            corp_id: corp_id.to_string(),
            userid: self.userid.clone(),
            external_userid: self.external_userid.clone(),
            change: self.change,
            at: self.at,
            state: self.state.clone(),
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

/// Maps a WeCom app's callback (fields of the decrypted XML). A customer added to, or
/// removed from, an associate's contacts is an associate-contact record; an addition
/// through the associate's contact-me code with a `State` is also a QR scan of that code
/// (scene = State) by the customer (openid = ExternalUserID) for the corp (app_id =
/// CorpID), exactly as an Official Account's `subscribe` with a scene. Other changes
/// (remarks, customer groups) are acknowledged and counted.
pub fn map_wecom(f: &HashMap<String, String>) -> Result<Mapped, String> {
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or_default();
    let create: i64 = get("CreateTime")
        .trim()
        .parse()
        .map_err(|_| "CreateTime is not a number".to_string())?;
    if get("MsgType") != "event" {
        return Ok(Mapped::Ignored("wecom_message"));
    }
    let change = match (get("Event"), get("ChangeType")) {
        ("change_external_contact", "add_external_contact") => ContactChange::Added,
        ("change_external_contact", "del_external_contact") => ContactChange::RemovedByAssociate,
        ("change_external_contact", "del_follow_user") => ContactChange::RemovedByCustomer,
        ("change_external_contact", "edit_external_contact") => {
            return Ok(Mapped::Ignored("edit_external_contact"))
        }
        ("change_external_chat", _) => return Ok(Mapped::Ignored("customer_group_change")),
        _ => return Ok(Mapped::Ignored("wecom_other_event")),
    };
    let (customer, associate, state) = (get("ExternalUserID"), get("UserID"), get("State"));
    if customer.is_empty() {
        return Err("no ExternalUserID".to_string());
    }
    if associate.is_empty() {
        return Err("no UserID".to_string());
    }
    if customer.contains('|') || associate.contains('|') {
        return Err("UserID or ExternalUserID contains `|`".to_string());
    }
    let through_code = change == ContactChange::Added && !state.is_empty();
    let scan = through_code.then(|| {
        let identity =
            format!("wecom|add_external_contact|{associate}|{customer}|{create}|{state}");
        Interaction {
            stream: EventStream::QrScans,
            event_id: uuid::Uuid::new_v5(&NAMESPACE, identity.as_bytes()).to_string(),
            openid: customer.to_string(),
            client_time: create * 1000,
            kind: Kind::Scan {
                event: QrEvent::Subscribe,
                key: format!("qrscene_{state}"),
                ticket: None,
            },
        }
    });
    let contact = Contact {
        change,
        userid: associate.to_string(),
        external_userid: customer.to_string(),
        at: create * 1000,
        state: through_code.then(|| state.to_string()),
    };
    Ok(Mapped::Contact { contact, scan })
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
mod tests;
