//! WeChat's side of the protocol, written here from the specification, and what the
//! gateway tests share: the account Maison with its credentials, callback bodies, and the
//! gateway's dead letters.

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine;
use wxpulse_e2e::*;
use wxpulse_runtime::enrich::{CustomerStatus, MenuCategory, SceneChannel};

use crate::golden::{account, account_scene, button, fan, publish, store};

pub(super) const APP: &str = "wxgw00a00";
pub(super) const TOKEN: &str = "pamtest";
pub(super) const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

/// WeChat's side of the protocol.
pub(super) struct WeChat {
    addr: String,
    key: [u8; 32],
}

pub(super) fn sha1_hex(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let d = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        sorted.concat().as_bytes(),
    );
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl WeChat {
    pub(super) fn new(addr: String) -> WeChat {
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
    pub(super) fn encrypt(&self, msg: &str, app_id: &str) -> String {
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
    pub(super) fn request(
        &self,
        method: &str,
        path: &str,
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
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

    pub(super) fn query(&self, timestamp: &str, nonce: &str) -> String {
        let signature = sha1_hex(&[TOKEN, timestamp, nonce]);
        format!("timestamp={timestamp}&nonce={nonce}&signature={signature}&openid=o")
    }

    /// A message push in `mode`: plain, compatible (both) or safe (ciphertext only).
    pub(super) fn push(
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

pub(super) fn event_xml(openid: &str, create: i64, event: &str, key: &str, extra: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>{create}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>\
         <EventKey><![CDATA[{key}]]></EventKey>{extra}</xml>"
    )
}

/// When the CRM says the VIP followed: 400 days before `t`.
pub(super) fn vip_followed_ms(t: i64) -> i64 {
    t * 1000 - 400 * 86_400_000
}

/// Prepares `db` with the account Maison (a menu button, the store code 1001 of store
/// sh01, and the VIP `oVIP` in the CRM) and starts a gateway for it; returns the gateway and
/// `t`, an hour ago in Unix seconds, the time the callbacks start at.
pub(super) async fn maison(stack: &Stack, db: &str) -> anyhow::Result<(Gateway, i64)> {
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

/// The gateway's dead letters in the topic: (source, outcome), sorted.
pub(super) fn gateway_letters(stack: &Stack) -> anyhow::Result<Vec<(String, String)>> {
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
