//! `wxpulse-gateway` with WeChat's side played by the test, from the developer
//! documentation's specification (a client written here: SHA-1 signatures of the sorted
//! token, timestamp and nonce; AES-256-CBC with the EncodingAESKey for compatible and safe
//! mode): menu clicks, QR scans and a fan's message in all three modes land in ClickHouse
//! once each, enriched and segmented by the consumers, while retries are dropped, a wrong
//! signature is 401, an unknown account 404, and a tampered ciphertext or a signed body
//! that is not a callback 400 and dead-lettered (never replayed: it is not an event).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use base64::Engine;
use wxpulse_e2e::*;
use wxpulse_runtime::enrich::{CustomerStatus, MenuCategory, SceneChannel};

use crate::golden::{account, account_scene, button, fan, publish, store};

const DB: &str = "wx_gateway";
const APP: &str = "wxgw00a00";
const TOKEN: &str = "pamtest";
const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

/// WeChat's side of the protocol.
struct WeChat {
    addr: String,
    key: [u8; 32],
}

fn sha1_hex(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let d = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        sorted.concat().as_bytes(),
    );
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl WeChat {
    fn new(addr: String) -> WeChat {
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let key = engine
            .decode(format!("{KEY}="))
            .expect("key")
            .try_into()
            .expect("32 bytes");
        WeChat { addr, key }
    }

    /// random(16) ‖ len(4) ‖ msg ‖ appid, PKCS#7 to 32-byte blocks, AES-256-CBC, base64.
    fn encrypt(&self, msg: &str, app_id: &str) -> String {
        use aes::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
        let mut plain = b"0123456789abcdef".to_vec();
        plain.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        plain.extend_from_slice(msg.as_bytes());
        plain.extend_from_slice(app_id.as_bytes());
        let pad = 32 - plain.len() % 32;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let len = plain.len();
        let cipher = cbc::Encryptor::<aes::Aes256>::new((&self.key).into(), self.key[..16].into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, len)
            .expect("blocks")
            .to_vec();
        base64::engine::general_purpose::STANDARD.encode(cipher)
    }

    /// One HTTP/1.0 request; (status, body).
    fn request(&self, method: &str, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
        let mut s = std::net::TcpStream::connect(&self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    fn query(&self, timestamp: &str, nonce: &str) -> String {
        let signature = sha1_hex(&[TOKEN, timestamp, nonce]);
        format!("timestamp={timestamp}&nonce={nonce}&signature={signature}&openid=o")
    }

    /// A message push in `mode`: plain, compatible (both) or safe (ciphertext only).
    fn push(
        &self,
        app_id: &str,
        xml: &str,
        mode: &str,
        nonce: &str,
    ) -> anyhow::Result<(u16, String)> {
        let ts = "1733380000";
        let q = self.query(ts, nonce);
        match mode {
            "plain" => self.request("POST", &format!("/wechat/{app_id}?{q}"), xml),
            _ => {
                let encrypt = self.encrypt(xml, app_id);
                let msg_signature = sha1_hex(&[TOKEN, ts, nonce, &encrypt]);
                let inner = xml.trim_start_matches("<xml>").trim_end_matches("</xml>");
                let body = if mode == "compatible" {
                    format!("<xml>{inner}<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
                } else {
                    format!("<xml><ToUserName><![CDATA[gh_test]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
                };
                self.request(
                    "POST",
                    &format!("/wechat/{app_id}?{q}&encrypt_type=aes&msg_signature={msg_signature}"),
                    &body,
                )
            }
        }
    }
}

fn event_xml(openid: &str, create: i64, event: &str, key: &str, extra: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>{create}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>\
         <EventKey><![CDATA[{key}]]></EventKey>{extra}</xml>"
    )
}

/// When the CRM says the VIP followed: 400 days before `t`.
fn vip_followed_ms(t: i64) -> i64 {
    t * 1000 - 400 * 86_400_000
}

/// Prepares `db` with the account Maison (a menu button, the store code 1001 of store
/// sh01, and the VIP `oVIP` in the CRM) and starts a gateway for it; returns the gateway and
/// `t`, an hour ago in Unix seconds, the time the callbacks start at.
async fn maison(stack: &Stack, db: &str) -> anyhow::Result<(Gateway, i64)> {
    stack.prepare(db, 2).await?;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let t = now_s - 3_600;
    publish(
        stack,
        vec![
            account(APP, "Maison"),
            button(APP, "SHOP", MenuCategory::Ecommerce, "Shop"),
            account_scene(APP, "1001", SceneChannel::Store, Some("sh01"), None, None),
            store("sh01", "East"),
            fan(APP, "oVIP", CustomerStatus::Vip, vip_followed_ms(t), None),
        ],
    )
    .await?;
    let gateway = Gateway::start(
        stack,
        db,
        &format!(
            "[[account]]\napp_id = \"{APP}\"\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{KEY}\"\n"
        ),
        &[],
    )?;
    Ok((gateway, t))
}

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

/// The gateway's dead letters in the topic: (source, outcome), sorted.
fn gateway_letters(stack: &Stack) -> anyhow::Result<Vec<(String, String)>> {
    let mut letters: Vec<(String, String)> = wxpulse_cli::dlq::read_all(
        &stack.kafka(),
        "wxpulse.dead_letters",
        Duration::from_secs(2),
    )?
    .into_iter()
    .filter(|l| l.service == "gateway")
    .map(|l| {
        assert!(l.is_callback() && l.sealed, "{l:?}");
        let outcome = l.detail.split(':').next().unwrap_or_default().to_string();
        (l.source_topic, outcome)
    })
    .collect();
    letters.sort();
    Ok(letters)
}

/// Article reads from the brand's pages through the beacon endpoint: a batch with one bad
/// read is answered with that read's index and reason and dead-lettered, the valid ones
/// land once (a read sent twice too), a wrong key is refused and a request over the
/// account's beacon burst is 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn article_read_beacons_land_once_and_bad_reads_are_named() -> anyhow::Result<()> {
    const DB: &str = "wx_beacon";
    let stack = Stack::start("beacon")?;
    stack.prepare(DB, 2).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    publish(&stack, vec![account(APP, "Maison")]).await?;
    let gateway = Gateway::start(
        &stack,
        DB,
        &format!(
            "[[account]]\napp_id = \"{APP}\"\ntoken = \"{TOKEN}\"\nbeacon_key = \"bk-4711\"\n"
        ),
        &[
            ("WXPULSE__GATEWAY__BEACON_RATE_LIMIT", "1"),
            ("WXPULSE__GATEWAY__BEACON_BURST", "6"),
        ],
    )?;
    let listen = gateway.listen.clone();
    let _reads = Service::start("wxpulse-article-reads", &stack, DB, &[])?;
    let page = WeChat::new(listen.clone());
    let read = |n: u32, openid: &str, source: &str, shared: bool| {
        serde_json::json!({
            "event_id": format!("00000000-0000-4000-8000-{n:012x}"),
            "openid": openid, "client_time": now - 60_000 + i64::from(n),
            "article_id": "art-1", "msgid": 9001, "idx": 1, "source": source,
            "read_depth": 3.5, "read_seconds": 40, "shared": shared,
        })
    };
    let batch = serde_json::json!([
        read(1, "oR1", "PUSH", false),
        read(2, "oR2", "TAP", false),
        read(3, "oR2", "MOMENTS", true),
        read(1, "oR1", "PUSH", false),
    ])
    .to_string();
    let answer = until_ok(Duration::from_secs(30), || {
        page.request("POST", "/v1/article_reads?key=bk-4711", &batch)
    })
    .await?;
    assert_eq!(answer.0, 200, "{answer:?}");
    let body: serde_json::Value = serde_json::from_str(&answer.1)?;
    assert_eq!(body["accepted"], 3);
    assert_eq!(body["rejected"][0]["index"], 1);
    assert!(
        body["rejected"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("\"TAP\""),
        "{body}"
    );
    let (status, _) = page.request("POST", "/v1/article_reads?key=wrong", &batch)?;
    assert_eq!(status, 401);
    // Over the account's beacon burst (6 reads): 429, nothing produced.
    let flood = serde_json::Value::Array((10..17).map(|n| read(n, "oR9", "PUSH", false)).collect());
    let (status, text) =
        page.request("POST", "/v1/article_reads?key=bk-4711", &flood.to_string())?;
    assert_eq!(status, 429, "{text}");
    let scraped = gateway.service.scrape()?;
    assert_eq!(
        metric(
            &scraped,
            "wxpulse_gateway_callbacks_total",
            &["outcome=\"rate_limited\""]
        ),
        Some(1.0)
    );
    // The rejected read was answered and is also in the dead-letter topic.
    let letters = gateway_letters(&stack)?;
    assert_eq!(
        letters,
        vec![(
            "gateway:/v1/article_reads".to_string(),
            "beacon_rejected".to_string()
        )]
    );

    let ch = stack.client(DB);
    let got = wait_for(Duration::from_secs(60), 2, || count(&ch, "article_reads")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        (got, count(&ch, "article_reads").await?),
        (2, 2),
        "the repeat dropped"
    );
    let rows: Vec<(String, bool)> = ch
        .query("SELECT source, shared FROM article_reads ORDER BY event_time")
        .fetch_all()
        .await?;
    assert_eq!(rows, vec![("PUSH".into(), false), ("MOMENTS".into(), true)]);
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
    let change = |kind: &str, state: &str| {
        format!(
            "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
             <CreateTime>{t}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
             <Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[{kind}]]></ChangeType>\
             <UserID><![CDATA[zhang]]></UserID><ExternalUserID><![CDATA[wmEXT001]]></ExternalUserID>\
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
    assert_eq!(post(change("add_external_contact", "zhang_qr"))?, ok);
    assert_eq!(
        post(change("add_external_contact", "zhang_qr"))?,
        ok,
        "WeCom's retry"
    );
    assert_eq!(post(change("del_external_contact", ""))?, ok);

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
    assert_eq!(outcome("ignored"), Some(1.0));
    assert_eq!(outcome("verified"), Some(1.0));

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

/// Follows and unfollows that WeChat reports only to the gateway (a `subscribe` without a
/// QR code, an `unsubscribe`) reach the fan-follow topic: the consumers' lifecycle sees the
/// fan leave and come back, the CRM's profile fields (relationship, its own follow) are
/// untouched, a retried unfollow is one row of `fan_follow_events`, and the follower views
/// count each follow once — a QR-code subscribe only through its scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_reported_by_wechat_set_follow_times_without_overwriting_the_profile(
) -> anyhow::Result<()> {
    const DB: &str = "wx_gateway_follows";
    let stack = Stack::start("gateway-follows")?;
    let (gateway, t) = maison(&stack, DB).await?;
    let crm_follow_ms = vip_followed_ms(t);
    let clicks = Service::start("wxpulse-menu-clicks", &stack, DB, &[])?;
    let scans = Service::start("wxpulse-qr-scans", &stack, DB, &[])?;
    let wechat = WeChat::new(gateway.listen.clone());
    let ok = (200, "success".to_string());
    // Each click is sent once the service has applied the follows before it, as a fan's
    // click arrives well after their follow; `applied` is that count.
    let applied = |n: u64| {
        let clicks = &clicks;
        async move {
            wait_for(Duration::from_secs(60), n, || async {
                Ok(metric(
                    &clicks.scrape()?,
                    "wxpulse_enrich_dimension_updates_total",
                    &["dimension=\"fan_follow\""],
                )
                .unwrap_or(0.0) as u64)
            })
            .await
        }
    };
    let q = wechat.query("1733380000", "v");
    until_ok(Duration::from_secs(30), || {
        wechat.request("GET", &format!("/wechat/{APP}?{q}&echostr=1"), "")
    })
    .await?;

    // The VIP unfollows (and WeChat retries the callback), then clicks: churned, still VIP.
    let unfollow = event_xml("oVIP", t, "unsubscribe", "", "");
    assert_eq!(wechat.push(APP, &unfollow, "plain", "u1")?, ok);
    assert_eq!(wechat.push(APP, &unfollow, "plain", "u1b")?, ok);
    assert_eq!(applied(2).await, 2);
    let click = |openid: &str, at: i64| event_xml(openid, at, "CLICK", "SHOP", "");
    assert_eq!(wechat.push(APP, &click("oVIP", t + 10), "plain", "c1")?, ok);
    // Someone the CRM does not know follows without a code (safe mode), then clicks: new.
    let follow = event_xml("oNEW", t + 20, "subscribe", "", "");
    assert_eq!(wechat.push(APP, &follow, "safe", "f1")?, ok);
    assert_eq!(applied(3).await, 3);
    assert_eq!(wechat.push(APP, &click("oNEW", t + 30), "plain", "c2")?, ok);
    // The VIP comes back through the store's code: a follow and a scan; then clicks: new.
    let back = event_xml(
        "oVIP",
        t + 40,
        "subscribe",
        "qrscene_1001",
        "<Ticket>TK</Ticket>",
    );
    assert_eq!(wechat.push(APP, &back, "compatible", "f2")?, ok);
    assert_eq!(applied(4).await, 4);
    assert_eq!(wechat.push(APP, &click("oVIP", t + 50), "plain", "c3")?, ok);

    let ch = stack.client(DB);
    assert_eq!(
        wait_for(Duration::from_secs(60), 3, || count(&ch, "menu_clicks")).await,
        3
    );
    assert_eq!(
        wait_for(Duration::from_secs(60), 1, || count(&ch, "qr_scans")).await,
        1
    );
    let segments: Vec<(String, String)> = ch
        .query("SELECT relationship, lifecycle FROM menu_clicks ORDER BY event_time")
        .fetch_all()
        .await?;
    let pair = |r: &str, l: &str| (r.to_string(), l.to_string());
    assert_eq!(
        segments,
        vec![
            pair("vip", "churned"),
            pair("unknown", "new"),
            pair("vip", "new")
        ],
        "the lifecycle follows WeChat's follows; the relationship stays the CRM's"
    );

    // The mirror copies the profile and the reported follows into ClickHouse.
    mirror_profiles(&stack, DB)?;
    let history: Vec<(String, i64, String)> = ch
        .query(
            "SELECT kind, toUnixTimestamp64Milli(at), follow_source FROM fan_follow_events FINAL \
             ORDER BY at, kind",
        )
        .fetch_all()
        .await?;
    let row = |kind: &str, at: i64, source: &str| (kind.to_string(), at, source.to_string());
    assert_eq!(
        history,
        vec![
            row("follow", crm_follow_ms, "search"),
            row("unfollow", t * 1000, ""),
            row("follow", (t + 20) * 1000, ""),
            row("follow", (t + 40) * 1000, "ADD_SCENE_QR_CODE"),
        ],
        "the CRM's follow, and each reported one once (the retried unfollow too)"
    );
    let profile: (String, i64) = ch
        .query(
            "SELECT status, toUnixTimestamp64Milli(assumeNotNull(followed_at)) \
             FROM fan_profiles FINAL WHERE is_deleted = 0",
        )
        .fetch_one()
        .await?;
    assert_eq!(
        profile,
        ("vip".to_string(), crm_follow_ms),
        "the CRM's profile is not overwritten"
    );
    // New follows: the VIP's return once, as a QR follow (from its scan); oNEW's as
    // unknown-source; the CRM's 400-day-old follow as search. One unfollow.
    let growth: Vec<(String, u64, u64)> = ch
        .query(
            "SELECT source_group, sum(new_follows), sum(unfollows) FROM v_follower_growth \
             WHERE app_id = ? GROUP BY source_group ORDER BY source_group",
        )
        .bind(APP)
        .fetch_all()
        .await?;
    let g = |s: &str, f: u64, u: u64| (s.to_string(), f, u);
    assert_eq!(
        growth,
        vec![g("qr", 1, 0), g("search", 1, 0), g("unknown", 1, 1)]
    );
    let text = gateway.service.scrape()?;
    let outcome = |o: &str| {
        metric(
            &text,
            "wxpulse_gateway_callbacks_total",
            &[&format!("outcome=\"{o}\"")],
        )
    };
    assert_eq!(
        outcome("follow"),
        Some(4.0),
        "two unfollows (one a retry), two follows"
    );
    assert_eq!(outcome("event"), Some(4.0), "three clicks and the scan");
    drop(scans);
    Ok(())
}
