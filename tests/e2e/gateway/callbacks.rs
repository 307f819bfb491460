//! Callbacks of an Official Account in plaintext, compatible and safe mode, and of a WeCom
//! app: each lands once, enriched; a retry is dropped; a wrong signature, an unknown account,
//! a tampered ciphertext or a body that is not a callback is refused.

use std::time::{Duration, Instant};

use base64::Engine;
use wxpulse_e2e::*;
use wxpulse_runtime::enrich::SceneChannel;

use super::helpers::{event_xml, gateway_letters, maison, sha1_hex, WeChat, APP, KEY, TOKEN};
use crate::golden::{account, account_scene, publish, store};

/// A row of `v_associate_contacts`: corp, associate, contacts now, ever added, added
/// through a code, removed by the customer, removed by the associate, brand.
type AssociateContacts = (String, String, u64, u64, u64, u64, u64, String);

const DB: &str = "wx_gateway";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_callbacks_in_every_mode_land_once_enriched_and_bad_ones_are_refused(
) -> anyhow::Result<()> {
    let stack = Stack::start("gateway")?;
    let (gateway, t) = maison(&stack, DB).await?;
    let listen = gateway.listen.clone();
    let mut services = Vec::new();
    for bin in [
        "wxpulse-menu-clicks",
        "wxpulse-qr-scans",
        "wxpulse-chat-messages",
    ] {
        services.push(Service::start(bin, &stack, DB, &[])?);
    }
    let wechat = WeChat::new(listen.clone());

    // Server verification: the echo for the right signature, 401 for a wrong one.
    let q = wechat.query("1733380000", "n0");
    let verified = until_ok(Duration::from_secs(30), || {
        wechat.request("GET", &format!("/wechat/{APP}?{q}&echostr=4711"), "")
    })
    .await?;
    assert_eq!(verified, (200, "4711".to_string()));
    let (status, _) = wechat.request(
        "GET",
        &format!("/wechat/{APP}?timestamp=1&nonce=2&signature=0000&echostr=4711"),
        "",
    )?;
    assert_eq!(status, 401);

    let ok = (200, "success".to_string());
    // A menu click in plaintext, and WeChat's retry of it.
    let click = event_xml("oVIP", t, "CLICK", "SHOP", "");
    assert_eq!(wechat.push(APP, &click, "plain", "n1")?, ok);
    assert_eq!(wechat.push(APP, &click, "plain", "n1b")?, ok);
    // A VIEW in compatible mode.
    let view = event_xml(
        "oVIP",
        t + 5,
        "VIEW",
        "https://shop.example/x",
        "<MenuId>7</MenuId>",
    );
    assert_eq!(wechat.push(APP, &view, "compatible", "n2")?, ok);
    // Safe mode: a new follower from the store's code, then a scan by the VIP.
    let subscribe = event_xml(
        "oNEW",
        t + 10,
        "subscribe",
        "qrscene_1001",
        "<Ticket>TK</Ticket>",
    );
    assert_eq!(wechat.push(APP, &subscribe, "safe", "n3")?, ok);
    let scan = event_xml("oVIP", t + 20, "SCAN", "1001", "<Ticket>TK</Ticket>");
    assert_eq!(wechat.push(APP, &scan, "safe", "n4")?, ok);
    // A text message (its text is never kept, only its length), retried.
    let text = format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[oVIP]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好，在吗]]></Content>\
         <MsgId>23456789012345678</MsgId></xml>",
        t + 30
    );
    assert_eq!(wechat.push(APP, &text, "safe", "n5")?, ok);
    assert_eq!(wechat.push(APP, &text, "safe", "n5b")?, ok);
    // A follow without a code: to the fan-follow topic (see the follows test below).
    let follow = event_xml("oOTHER", t + 40, "subscribe", "", "");
    assert_eq!(wechat.push(APP, &follow, "safe", "n6")?, ok);

    // Refused: a wrong signature, a tampered ciphertext, an unknown account.
    let (status, _) = wechat.request(
        "POST",
        &format!("/wechat/{APP}?timestamp=1&nonce=2&signature=00"),
        &click,
    )?;
    assert_eq!(status, 401);
    let encrypt = {
        let mut raw =
            base64::engine::general_purpose::STANDARD.decode(wechat.encrypt(&scan, APP))?;
        let n = raw.len();
        raw[n - 1] ^= 0x5a;
        base64::engine::general_purpose::STANDARD.encode(raw)
    };
    let ts = "1733380000";
    let msg_signature = sha1_hex(&[TOKEN, ts, "n7", &encrypt]);
    let (status, _) = wechat.request(
        "POST",
        &format!(
            "/wechat/{APP}?{}&encrypt_type=aes&msg_signature={msg_signature}",
            wechat.query(ts, "n7")
        ),
        &format!("<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"),
    )?;
    assert_eq!(status, 400);
    // Signed by the account but not a callback: 400, and dead-lettered like the tampered one.
    let (status, _) = wechat.push(APP, "this is not xml <", "plain", "n9")?;
    assert_eq!(status, 400);
    let (status, _) = wechat.push("wxnobody", &click, "plain", "n8")?;
    assert_eq!(status, 404);

    // Exactly once each, enriched and segmented by the consumers.
    let ch = stack.client(DB);
    let clicks = wait_for(Duration::from_secs(60), 2, || count(&ch, "menu_clicks")).await;
    let scans = wait_for(Duration::from_secs(60), 2, || count(&ch, "qr_scans")).await;
    let messages = wait_for(Duration::from_secs(60), 1, || count(&ch, "chat_messages")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        (count(&ch, "menu_clicks").await?, clicks),
        (2, 2),
        "menu clicks: the retry dropped"
    );
    assert_eq!((count(&ch, "qr_scans").await?, scans), (2, 2));
    assert_eq!((count(&ch, "chat_messages").await?, messages), (1, 1));
    let menu: Vec<(String, String, String, String)> = ch
        .query(
            "SELECT event, event_key, category, relationship FROM menu_clicks ORDER BY event_time",
        )
        .fetch_all()
        .await?;
    assert_eq!(
        menu,
        vec![
            (
                "CLICK".into(),
                "SHOP".into(),
                "ecommerce".into(),
                "vip".into()
            ),
            (
                "VIEW".into(),
                "https://shop.example/x".into(),
                "unknown".into(),
                "vip".into()
            ),
        ]
    );
    let qr: Vec<(String, String, String, String, bool)> = ch
        .query(
            "SELECT event, channel, store_id, region, is_new_follow FROM qr_scans ORDER BY event_time",
        )
        .fetch_all()
        .await?;
    assert_eq!(
        qr,
        vec![
            (
                "SUBSCRIBE".into(),
                "store".into(),
                "sh01".into(),
                "East".into(),
                true
            ),
            (
                "SCAN".into(),
                "store".into(),
                "sh01".into(),
                "East".into(),
                false
            ),
        ]
    );
    let chat: Vec<(String, String, String, i32)> = ch
        .query("SELECT conversation, direction, msg_type, content_length FROM chat_messages")
        .fetch_all()
        .await?;
    assert_eq!(
        chat,
        vec![(
            "OFFICIAL_ACCOUNT".into(),
            "FAN_TO_BRAND".into(),
            "text".into(),
            5
        )]
    );
    let text = gateway.service.scrape()?;
    let outcome = |o: &str| {
        metric(
            &text,
            "wxpulse_gateway_callbacks_total",
            &[&format!("outcome=\"{o}\"")],
        )
    };
    assert_eq!(outcome("event"), Some(7.0));
    assert_eq!(
        outcome("follow"),
        Some(2.0),
        "the QR subscribe and the plain one"
    );
    assert_eq!(outcome("ignored"), Some(0.0));
    assert_eq!(outcome("bad_signature"), Some(2.0));
    assert_eq!(outcome("undecryptable"), Some(1.0));
    assert_eq!(outcome("malformed"), Some(1.0));
    assert_eq!(outcome("unknown_account"), Some(1.0));
    // The two refused bodies are in the dead-letter topic and the dead_letters table, and
    // nothing unsigned is: a wrong signature or an unknown account costs no letter.
    let letters = gateway_letters(&stack)?;
    assert_eq!(
        letters,
        vec![
            (format!("gateway:/wechat/{APP}"), "malformed".to_string()),
            (
                format!("gateway:/wechat/{APP}"),
                "undecryptable".to_string()
            ),
        ]
    );
    let recorded = wait_for(Duration::from_secs(30), 2, || async {
        Ok(ch
            .query("SELECT count() FROM dead_letters WHERE service = 'gateway'")
            .fetch_one::<u64>()
            .await?)
    })
    .await;
    assert_eq!(recorded, 2, "gateway letters in dead_letters");
    Ok(())
}

/// A WeCom app's callbacks (always encrypted, receive id = CorpID): the URL verification
/// echoes the decrypted `echostr`; a customer added through an associate's contact-me code
/// becomes a QR scan of that code for the corp, once however often WeCom retries; other
/// contact changes are acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_contact_callbacks_become_scans_of_the_contact_me_code() -> anyhow::Result<()> {
    const DB: &str = "wx_wecom";
    const CORP: &str = "wwcorp0001";
    let stack = Stack::start("wecom")?;
    stack.prepare(DB, 2).await?;
    publish(
        &stack,
        vec![
            account(CORP, "Maison"),
            account_scene(
                CORP,
                "zhang_qr",
                SceneChannel::Store,
                Some("sh01"),
                None,
                None,
            ),
            store("sh01", "East"),
        ],
    )
    .await?;
    let gateway = Gateway::start(
        &stack,
        DB,
        &format!(
            "[[account]]\napp_id = \"{CORP}\"\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{KEY}\"\n"
        ),
        &[],
    )?;
    let listen = gateway.listen.clone();
    let _scans = Service::start("wxpulse-qr-scans", &stack, DB, &[])?;
    let wecom = WeChat::new(listen.clone());
    let (ts, nonce) = ("1733380000", "w1");
    let signed = |encrypt: &str| {
        format!(
            "timestamp={ts}&nonce={nonce}&msg_signature={}",
            sha1_hex(&[TOKEN, ts, nonce, encrypt])
        )
    };
    // URL verification: the echostr is encrypted; its plaintext comes back.
    let echostr = wecom.encrypt("1616140317555161061", CORP);
    let path = format!(
        "/wecom/{CORP}?{}&echostr={}",
        signed(&echostr),
        echostr
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    let verified = until_ok(Duration::from_secs(30), || wecom.request("GET", &path, "")).await?;
    assert_eq!(verified, (200, "1616140317555161061".to_string()));
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        - 600;
    let change = |kind: &str, customer: &str, state: &str| {
        format!(
            "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
             <CreateTime>{t}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
             <Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[{kind}]]></ChangeType>\
             <UserID><![CDATA[zhang]]></UserID><ExternalUserID><![CDATA[{customer}]]></ExternalUserID>\
             <State><![CDATA[{state}]]></State></xml>"
        )
    };
    let post = |xml: String| -> anyhow::Result<(u16, String)> {
        let encrypt = wecom.encrypt(&xml, CORP);
        wecom.request(
            "POST",
            &format!("/wecom/{CORP}?{}", signed(&encrypt)),
            &format!("<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID>1</AgentID></xml>"),
        )
    };
    let ok = (200, "success".to_string());
    assert_eq!(
        post(change("add_external_contact", "wmEXT001", "zhang_qr"))?,
        ok
    );
    assert_eq!(
        post(change("add_external_contact", "wmEXT001", "zhang_qr"))?,
        ok,
        "WeCom's retry"
    );
    // zhang deletes the customer (same second: the removal is the later change), another
    // customer adds zhang without a code and a third deletes zhang.
    assert_eq!(post(change("del_external_contact", "wmEXT001", ""))?, ok);
    assert_eq!(post(change("add_external_contact", "wmEXT002", ""))?, ok);
    assert_eq!(post(change("add_external_contact", "wmEXT003", ""))?, ok);
    assert_eq!(post(change("del_follow_user", "wmEXT003", ""))?, ok);
    assert_eq!(post(change("edit_external_contact", "wmEXT002", ""))?, ok);

    let ch = stack.client(DB);
    let got = wait_for(Duration::from_secs(60), 1, || count(&ch, "qr_scans")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        (got, count(&ch, "qr_scans").await?),
        (1, 1),
        "the retry dropped"
    );
    let rows: Vec<(String, String, String, String, bool)> = ch
        .query("SELECT app_id, event, channel, store_id, is_new_follow FROM qr_scans")
        .fetch_all()
        .await?;
    assert_eq!(
        rows,
        vec![(
            CORP.into(),
            "SUBSCRIBE".into(),
            "store".into(),
            "sh01".into(),
            true
        )]
    );
    let text = gateway.service.scrape()?;
    let outcome = |o: &str| {
        metric(
            &text,
            "wxpulse_gateway_callbacks_total",
            &[&format!("outcome=\"{o}\"")],
        )
    };
    assert_eq!(outcome("event"), Some(2.0));
    assert_eq!(outcome("contact"), Some(6.0));
    assert_eq!(outcome("ignored"), Some(1.0));
    assert_eq!(outcome("verified"), Some(1.0));

    // The mirror copies the contact changes (the retry is the same record) into
    // associate_contact_events, pseudonymised as the scan's fan, and the view counts zhang's
    // contacts: wmEXT002 now, three ever added (one through his code), one removal by each
    // side.
    mirror_profiles(&stack, DB)?;
    let changes: Vec<(String, String, u64, String, String)> = ch
        .query(
            "SELECT corp_id, userid, contact_id, change, state FROM associate_contact_events FINAL \
             ORDER BY contact_id, change",
        )
        .fetch_all()
        .await?;
    let contact = |ext: &str| expected_fan_id(ext);
    let mut want = vec![
        (
            CORP.to_string(),
            "zhang".to_string(),
            contact("wmEXT001"),
            "added".to_string(),
            "zhang_qr".to_string(),
        ),
        (
            CORP.into(),
            "zhang".into(),
            contact("wmEXT001"),
            "removed_by_associate".into(),
            String::new(),
        ),
        (
            CORP.into(),
            "zhang".into(),
            contact("wmEXT002"),
            "added".into(),
            String::new(),
        ),
        (
            CORP.into(),
            "zhang".into(),
            contact("wmEXT003"),
            "added".into(),
            String::new(),
        ),
        (
            CORP.into(),
            "zhang".into(),
            contact("wmEXT003"),
            "removed_by_customer".into(),
            String::new(),
        ),
    ];
    want.sort_by(|a, b| (a.2, &a.3).cmp(&(b.2, &b.3)));
    assert_eq!(changes, want);
    let scanned: u64 = ch
        .query("SELECT any(fan_id) FROM qr_scans")
        .fetch_one()
        .await?;
    assert_eq!(scanned, contact("wmEXT001"), "a contact joins its scan");
    let per_associate: Vec<AssociateContacts> = ch
        .query(
            "SELECT app_id, userid, contacts_now, contacts_ever_added, added_through_code, \
             removed_by_customer, removed_by_associate, brand FROM v_associate_contacts",
        )
        .fetch_all()
        .await?;
    assert_eq!(
        per_associate,
        vec![(CORP.into(), "zhang".into(), 1, 3, 1, 1, 1, "Maison".into())]
    );

    // An Official Account added to the accounts file is served without a restart.
    std::fs::write(
        &gateway.accounts,
        format!(
            "[[account]]\napp_id = \"{CORP}\"\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{KEY}\"\n\
             [[account]]\napp_id = \"wxlater\"\ntoken = \"{TOKEN}\"\n"
        ),
    )?;
    let q = wecom.query(ts, "w9");
    let started = Instant::now();
    let answer = loop {
        let r = wecom.request("GET", &format!("/wechat/wxlater?{q}&echostr=42"), "")?;
        if r.0 == 200 || started.elapsed() > Duration::from_secs(20) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        answer,
        (200, "42".to_string()),
        "the new account within the 5 s re-read"
    );
    Ok(())
}
