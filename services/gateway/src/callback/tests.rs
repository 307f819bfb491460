//! Unit tests of the callback mapping: fields, event ids, follows, messages, WeCom contacts.

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

#[test]
fn wecom_contact_changes_become_records_and_a_coded_addition_also_a_scan() {
    let change = |kind: &str, state: &str| {
        xml(&format!(
            "<CreateTime>1733380000</CreateTime><MsgType>event</MsgType>\
             <Event>change_external_contact</Event><ChangeType>{kind}</ChangeType>\
             <UserID>zhang</UserID><ExternalUserID>wmEXT1</ExternalUserID>\
             <State>{state}</State>"
        ))
    };
    let Ok(Mapped::Contact { contact, scan }) = map_wecom(&change("add_external_contact", "qr1"))
    else {
        panic!("an addition is a contact change");
    };
    assert_eq!(contact.change, ContactChange::Added);
    assert_eq!(contact.state.as_deref(), Some("qr1"));
    assert!(matches!(scan, Some(Interaction { ref openid, .. }) if openid == "wmEXT1"));
    let DimensionRecord::AssociateContact(r) = contact.record("wwcorp", 7) else {
        panic!("an associate-contact record");
    };
    assert_eq!(r.key(), "wwcorp|zhang|wmEXT1|added");
    assert_eq!((r.at, r.updated_at), (1_733_380_000_000, 7));
    for (kind, want) in [
        ("del_external_contact", ContactChange::RemovedByAssociate),
        ("del_follow_user", ContactChange::RemovedByCustomer),
    ] {
        let Ok(Mapped::Contact { contact, scan }) = map_wecom(&change(kind, "qr1")) else {
            panic!("{kind} is a contact change");
        };
        assert_eq!(
            (contact.change, contact.state.clone(), scan),
            (want, None, None),
            "{kind}"
        );
        assert!(contact.record("wwcorp", 7).key().ends_with("|removed"));
    }
    let Ok(Mapped::Contact { scan: None, .. }) = map_wecom(&change("add_external_contact", ""))
    else {
        panic!("an addition without a code is no scan");
    };
    assert_eq!(
        map_wecom(&change("edit_external_contact", "")),
        Ok(Mapped::Ignored("edit_external_contact"))
    );
    let mut no_customer = change("del_follow_user", "");
    no_customer.remove("ExternalUserID");
    assert!(map_wecom(&no_customer).is_err());
}
