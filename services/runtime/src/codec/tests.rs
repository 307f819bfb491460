use super::*;
use std::io::{Read, Write};

#[test]
fn every_embedded_schema_parses_and_ids_are_unique() {
    let mut ids = std::collections::HashSet::new();
    for s in EMBEDDED {
        parse(s.json).unwrap_or_else(|e| panic!("{} v{}: {e}", s.subject, s.version));
        assert!(ids.insert(s.id), "duplicate id {}", s.id);
    }
    assert_eq!(
        latest("wxpulse.article_reads-value").map(|s| s.version),
        Some(2)
    );
    assert_eq!(
        latest("wxpulse.dead_letters-value").map(|s| (s.id, s.version)),
        Some((10, 4))
    );
}

#[test]
fn framing_is_checked() {
    assert!(matches!(split_frame(&[]), Err(DecodeError::Framing(_))));
    assert!(matches!(
        split_frame(&[1, 0, 0, 0, 1, 2]),
        Err(DecodeError::Framing(_))
    ));
    assert!(matches!(
        split_frame(&[0, 0, 0]),
        Err(DecodeError::Framing(_))
    ));
    assert_eq!(
        split_frame(&[0, 0, 0, 1, 2, 9]).ok(),
        Some((258, &[9u8][..]))
    );
}

#[test]
fn remote_registry_is_asked_once_and_404_means_unknown() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let schema = serde_json::json!({ "schema": EMBEDDED[0].json }).to_string();
    let server = std::thread::spawn(move || {
        let mut served = Vec::new();
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).expect("read");
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let (status, body) = if request.starts_with("GET /schemas/ids/42 ") {
                ("200 OK", schema.clone())
            } else {
                ("404 Not Found", r#"{"error_code":40403}"#.to_string())
            };
            let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            stream.write_all(reply.as_bytes()).expect("write");
            served.push(request.lines().next().unwrap_or_default().to_string());
        }
        served
    });
    let registry = Registry::new(&format!("http://{addr}"), Duration::from_secs(2));
    assert!(registry.cached(42).is_none());
    assert!(registry.fetch_blocking(42).expect("reachable").is_some());
    assert!(registry.fetch_blocking(42).expect("cached").is_some());
    assert!(registry.fetch_blocking(7).expect("reachable").is_none());
    let served = server.join().expect("server");
    assert_eq!(
        served.len(),
        2,
        "the second lookup of 42 was served from the cache"
    );
}

#[test]
fn a_producer_frames_with_the_registry_id_of_its_schema() {
    // Embedded: the id of the exact text, none for a text the subject does not hold.
    let embedded = Registry::embedded();
    let clicks = latest("wxpulse.menu_clicks-value").expect("embedded");
    assert_eq!(
        embedded.id_of(clicks.subject, clicks.json).expect("local"),
        Some(1)
    );
    assert_eq!(
        embedded
            .id_of("wxpulse.qr_scans-value", clicks.json)
            .expect("local"),
        None
    );
    // Remote: POST /subjects/<subject> answers the id, or 404 when not registered.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let mut served = Vec::new();
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buf = vec![0u8; 16384];
            let n = stream.read(&mut buf).expect("read");
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let (status, body) = if request.starts_with("POST /subjects/wxpulse.menu_clicks-value")
            {
                ("200 OK", r#"{"subject":"x","id":4711,"version":3}"#)
            } else {
                ("404 Not Found", r#"{"error_code":40401}"#)
            };
            let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            stream.write_all(reply.as_bytes()).expect("write");
            served.push(request.lines().next().unwrap_or_default().to_string());
        }
        served
    });
    let registry = Registry::new(&format!("http://{addr}"), Duration::from_secs(2));
    assert_eq!(
        registry
            .id_of(clicks.subject, clicks.json)
            .expect("reachable"),
        Some(4711)
    );
    assert_eq!(
        registry
            .id_of("wxpulse.qr_scans-value", clicks.json)
            .expect("reachable"),
        None
    );
    let served = server.join().expect("server");
    assert!(served[0].starts_with("POST /subjects/wxpulse.menu_clicks-value?normalize=true "));
}

#[test]
fn base64_matches_rfc4648() {
    for (raw, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foobar", "Zm9vYmFy"),
        ("key:secret", "a2V5OnNlY3JldA=="),
    ] {
        assert_eq!(base64(raw.as_bytes()), encoded);
    }
}

#[test]
fn unreachable_registry_is_transient_not_unknown() {
    let registry = Registry::new("http://127.0.0.1:1", Duration::from_millis(200));
    assert!(registry.fetch_blocking(42).is_err());
}
