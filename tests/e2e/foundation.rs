//! A few hundred hand-built events of each stream go through Kafka and the four
//! services and come back from ClickHouse exactly, with pseudonymised ids.

use std::time::Duration;

use wxpulse_cli::produce::{self, Outgoing};
use wxpulse_e2e::*;
use wxpulse_runtime::events::*;

const N: usize = 300;
const DB: &str = "wx_foundation";

/// What the test expects of one stored row: (event_id, app_id, fan_id, event_time ms, detail).
type Expected = (String, String, u64, i64, String);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// Builds N events per stream (plus 10 upstream-retry copies each) and the rows expected.
fn events() -> (Vec<Outgoing>, Vec<(&'static str, Vec<Expected>)>) {
    let base = now_ms() - 3_600_000;
    let mut out = Vec::new();
    let mut expected = Vec::new();
    for (s, (_, table, _)) in SERVICES.iter().enumerate() {
        let mut rows = Vec::new();
        for i in 0..N {
            let event_id = format!("00000000-0000-4000-8000-{:04x}{:08x}", s, i);
            let app_id = format!("wxe2e{:02}", i % 3);
            let openid = format!("oE2E_{s}_{i:05}");
            let client_time = base + (i as i64) * 1_000;
            let server_time = client_time + 700;
            let key = format!("{app_id}|{openid}").into_bytes();
            let (topic, payload, detail) = match *table {
                "menu_clicks" => {
                    let k = format!("BUTTON_{}", i % 9);
                    let e = MenuClick {
                        event_id: &event_id,
                        app_id: &app_id,
                        openid: &openid,
                        unionid: None,
                        client_time,
                        server_time,
                        event: MenuEvent::Click,
                        event_key: &k,
                        menu_id: None,
                    };
                    (
                        "wxpulse.menu_clicks",
                        encode_event("wxpulse.menu_clicks", Some(1), &e),
                        k,
                    )
                }
                "qr_scans" => {
                    let k = format!("qrscene_store_{:04}", i % 7);
                    let e = QrScan {
                        event_id: &event_id,
                        app_id: &app_id,
                        openid: &openid,
                        unionid: Some("uE2E"),
                        client_time,
                        server_time,
                        event: QrEvent::Subscribe,
                        event_key: &k,
                        ticket: None,
                    };
                    (
                        "wxpulse.qr_scans",
                        encode_event("wxpulse.qr_scans", Some(1), &e),
                        format!("store_{:04}", i % 7),
                    )
                }
                "chat_messages" => {
                    let e = ChatMessage {
                        event_id: &event_id,
                        app_id: &app_id,
                        openid: &openid,
                        unionid: None,
                        client_time,
                        server_time,
                        msg_id: i as i64,
                        conversation: ConversationKind::WecomPrivate,
                        direction: Direction::FanToAssociate,
                        msg_type: MsgType::Text,
                        userid: Some("assoc_007"),
                        chat_id: None,
                        content: Some("SECRET-CHAT-TEXT"),
                        content_length: 16,
                    };
                    (
                        "wxpulse.chat_messages",
                        encode_event("wxpulse.chat_messages", Some(1), &e),
                        "assoc_007".to_string(),
                    )
                }
                _ => {
                    let article = format!("art_{}", i % 5);
                    let e = ArticleRead {
                        event_id: &event_id,
                        app_id: &app_id,
                        openid: &openid,
                        unionid: None,
                        client_time,
                        server_time,
                        article_id: &article,
                        msgid: 77,
                        idx: 1 + (i % 3) as i32,
                        source: ReadSource::Push,
                        read_depth: 2.5,
                        read_seconds: 30,
                        shared: false,
                        favorited: false,
                        cta_clicked: i % 4 == 0,
                    };
                    (
                        "wxpulse.article_reads",
                        encode_event("wxpulse.article_reads", Some(1), &e),
                        article,
                    )
                }
            };
            if i % 30 == 0 {
                // An upstream retry: the same event again, a bit later in the stream.
                out.push(Outgoing {
                    topic,
                    key: key.clone(),
                    payload: Some(payload.clone()),
                    at_ms: 0,
                });
            }
            out.push(Outgoing {
                topic,
                key,
                payload: Some(payload),
                at_ms: 0,
            });
            rows.push((
                event_id,
                app_id,
                expected_fan_id(&openid),
                client_time,
                detail,
            ));
        }
        rows.sort();
        expected.push((*table, rows));
    }
    (out, expected)
}

const DETAIL: [(&str, &str); 4] = [
    ("menu_clicks", "event_key"),
    ("qr_scans", "scene"),
    ("chat_messages", "associate_userid"),
    ("article_reads", "article_id"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_every_stream_come_back_exactly() -> anyhow::Result<()> {
    let stack = Stack::start("foundation")?;
    stack.prepare(DB, 2).await?;
    let (records, expected) = events();
    let producer = produce::producer(&stack.kafka())?;
    produce::send_all(&producer, records, |_| {}).await?;

    let mut services = Vec::new();
    for (bin, _, _) in SERVICES {
        services.push(Service::start(bin, &stack, DB, &[])?);
    }
    let ch = stack.client(DB);
    for (table, rows) in &expected {
        let n = wait_for(Duration::from_secs(90), rows.len() as u64, || {
            count(&ch, table)
        })
        .await;
        assert_eq!(n, N as u64, "{table}: rows");
        let detail = DETAIL
            .iter()
            .find(|d| d.0 == *table)
            .map(|d| d.1)
            .expect("detail column");
        let got: Vec<(String, String, u64, i64, String)> = ch
            .query(&format!(
                "SELECT toString(event_id), app_id, fan_id, toUnixTimestamp64Milli(event_time), {detail} \
                 FROM {table} ORDER BY 1, 2, 3, 4, 5"
            ))
            .fetch_all()
            .await?;
        assert_eq!(&got, rows, "{table}: rows differ from what was produced");
    }
    for (_, _, stream) in SERVICES {
        assert_eq!(
            rollup(&ch, stream).await?,
            N as u64,
            "{stream}: hourly rollup"
        );
    }
    // No raw id nor chat text in any table, in any column.
    for table in [
        "menu_clicks",
        "qr_scans",
        "chat_messages",
        "article_reads",
        "interactions_hourly",
    ] {
        let leaks: u64 = ch
            .query(&format!(
                "SELECT count() FROM {table} WHERE positionCaseInsensitive(formatRow('TSV', *), 'oE2E') > 0 \
                 OR position(formatRow('TSV', *), 'uE2E') > 0 OR position(formatRow('TSV', *), 'SECRET') > 0"
            ))
            .fetch_one()
            .await?;
        assert_eq!(leaks, 0, "{table} holds a raw id or chat text");
    }
    // Metrics tell the same story, and a clean shutdown exits 0.
    let text = services[0].scrape()?;
    assert_eq!(
        metric(&text, "wxpulse_sink_events_written_total", &["menu_clicks"]),
        Some(N as f64)
    );
    assert_eq!(
        metric(&text, "wxpulse_dedup_events_dropped_total", &["event_id"]),
        Some(10.0)
    );
    assert_eq!(
        metric(&text, "wxpulse_source_events_consumed_total", &[]),
        Some((N + 10) as f64)
    );
    assert!(
        text.contains("wxpulse_source_consumer_lag_events{"),
        "lag per partition is exported:\n{text}"
    );
    assert!(http_get(&services[0].metrics, "/readyz")?.contains("ready"));
    for s in &mut services {
        assert_eq!(
            s.terminate(Duration::from_secs(20)),
            Some(0),
            "{} exits 0 on SIGTERM",
            s.name
        );
    }
    Ok(())
}
