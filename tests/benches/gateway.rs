//! How many WeChat callbacks `wxpulse-gateway` answers per second on this machine, and how
//! fast (WeChat gives up after 5 s): safe-mode (encrypted) menu clicks from
//! `WXPULSE_BENCH_CLIENTS` concurrent clients (default 16), one connection per callback,
//! `WXPULSE_BENCH_CALLBACKS` in all (default 20,000), each answered only after the local
//! broker (Tansu) acknowledged its event. Also the in-process cost of one callback
//! (signature, decryption, XML, mapping, Avro encoding), without the broker. Prints figures.
//!
//! Run: `make bench-gateway` (`cargo bench -p wxpulse-e2e --bench gateway`).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use wxpulse_e2e::{Gateway, Stack};
use wxpulse_gateway::callback::{self, Mapped};
use wxpulse_gateway::crypto::{self, AesKey};

const DB: &str = "wx_bench_gateway";
const APP: &str = "wxbench00";
const TOKEN: &str = "benchtoken";
const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

fn click(n: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[oBENCH{:06}]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event>\
         <EventKey><![CDATA[SHOP]]></EventKey></xml>",
        n % 50_000,
        1_733_380_000 + (n % 10_000_000) as i64
    )
}

/// The request WeChat would send for callback `n`, safe mode.
fn request(key: &AesKey, n: u64, host: &str) -> String {
    let (ts, nonce) = ("1733380000", format!("n{n}"));
    let encrypt = key.encrypt(&click(n), APP, [9; 16]);
    let signature = crypto::signature(&[TOKEN, ts, &nonce]);
    let msg_signature = crypto::signature(&[TOKEN, ts, &nonce, &encrypt]);
    let body = format!("<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>");
    format!(
        "POST /wechat/{APP}?timestamp={ts}&nonce={nonce}&signature={signature}&encrypt_type=aes&msg_signature={msg_signature} HTTP/1.0\r\n\
         Host: {host}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn send(addr: &str, request: &str) -> std::io::Result<u16> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out);
    Ok(text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0))
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let (total, clients) = (
        env("WXPULSE_BENCH_CALLBACKS", 20_000),
        env("WXPULSE_BENCH_CLIENTS", 16),
    );
    let key = AesKey::from_encoding_aes_key(KEY).map_err(anyhow::Error::msg)?;

    // In-process: what the gateway does with one safe-mode callback, without the broker.
    let schema = wxpulse_runtime::codec::parse(
        wxpulse_runtime::streams::EventStream::MenuClicks
            .schema()
            .json,
    )?;
    let bodies: Vec<(String, String)> = (0..10_000u64)
        .map(|n| {
            let encrypt = key.encrypt(&click(n), APP, [9; 16]);
            let sig = crypto::signature(&[TOKEN, "1", "2", &encrypt]);
            (encrypt, sig)
        })
        .collect();
    let started = Instant::now();
    let mut bytes = 0usize;
    for (encrypt, sig) in &bodies {
        let expected = crypto::signature(&[TOKEN, "1", "2", encrypt]);
        assert!(crypto::signature_matches(&expected, sig));
        let xml = key.decrypt(encrypt, APP).map_err(anyhow::Error::msg)?;
        let fields = callback::fields(&xml).map_err(anyhow::Error::msg)?;
        let Ok(Mapped::Event(event)) = callback::map(&fields) else {
            anyhow::bail!("not an event")
        };
        bytes += event
            .encode(APP, 1_733_380_000_000, 1, &schema)
            .map_err(anyhow::Error::msg)?
            .len();
    }
    let per = started.elapsed().as_secs_f64() / bodies.len() as f64;
    assert!(bytes > 0);

    // End to end through the local broker.
    let stack = Stack::start("bench-gateway")?;
    tokio::runtime::Runtime::new()?.block_on(stack.prepare(DB, 4))?;
    let gateway = Gateway::start(
        &stack,
        DB,
        &format!(
            "[[account]]\napp_id = \"{APP}\"\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{KEY}\"\n"
        ),
        &[("WXPULSE__LOG__LEVEL", "warn")],
    )?;
    let listen = gateway.listen.clone();
    let warm = request(&key, total + 1, &listen);
    let deadline = Instant::now() + Duration::from_secs(30);
    while send(&listen, &warm).map_or(true, |s| s != 200) {
        anyhow::ensure!(Instant::now() < deadline, "the gateway did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }
    let requests: Vec<String> = (0..total).map(|n| request(&key, n, &listen)).collect();
    let started = Instant::now();
    let results: Vec<(Vec<Duration>, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (requests, listen) = (&requests, &listen);
                scope.spawn(move || {
                    let mut times = Vec::new();
                    let mut failed = 0u64;
                    for r in requests.iter().skip(c as usize).step_by(clients as usize) {
                        let t = Instant::now();
                        match send(listen, r) {
                            Ok(200) => times.push(t.elapsed()),
                            _ => failed += 1,
                        }
                    }
                    (times, failed)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let failed: u64 = results.iter().map(|r| r.1).sum();
    let mut times: Vec<Duration> = results.into_iter().flat_map(|r| r.0).collect();
    times.sort_unstable();
    let q =
        |p: f64| times.get(((times.len() as f64 * p) as usize).min(times.len().saturating_sub(1)));
    println!("wxpulse-gateway, safe-mode menu-click callbacks:");
    println!(
        "  in-process (verify, decrypt, XML, map, encode): {:.1} µs/callback ({:.0}/s/core)",
        per * 1e6,
        1.0 / per
    );
    println!(
        "  through Tansu, {clients} clients, {total} callbacks: {:.0} callbacks/s; answer p50 {:?}, p99 {:?}, max {:?}; {failed} not answered 200",
        times.len() as f64 / wall,
        q(0.50).copied().unwrap_or_default(),
        q(0.99).copied().unwrap_or_default(),
        times.last().copied().unwrap_or_default()
    );
    Ok(())
}
