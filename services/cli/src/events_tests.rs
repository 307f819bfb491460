use std::io::Write;
use std::time::Duration;

use super::*;
use wxpulse_runtime::events::{MenuEvent, ReadSource};

const NOW: i64 = 1_760_000_000_000;
const ID: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

fn validation() -> ValidationConfig {
    ValidationConfig {
        max_future_skew: Duration::from_secs(300),
        max_lateness: Duration::from_secs(7 * 86_400),
        max_payload_bytes: 65_536,
        unknown_account: wxpulse_runtime::config::UnknownAccount::DeadLetter,
    }
}

fn encoder(stream: EventStream) -> Encoder {
    Encoder::new(stream, stream.schema().id, validation(), NOW).expect("encoder")
}

fn file(name: &str, text: &[u8]) -> (tempdir::Dir, std::path::PathBuf) {
    let dir = tempdir::Dir::new();
    let path = dir.0.join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text))
        .expect("write");
    (dir, path)
}

/// A temporary directory removed on drop (the crate has no tempfile dependency).
mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "wxpulse-events-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).expect("mkdir");
            Dir(path)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn all(encoder: &Encoder, path: &Path) -> Vec<Result<Outgoing, BadLine>> {
    let mut out = Vec::new();
    let format = Format::of_path(path).expect("format");
    read(encoder, path, format, |o| {
        out.push(o);
        Ok(())
    })
    .expect("readable");
    out
}

fn click_json(event_id: &str, extra: &str) -> String {
    format!(
        r#"{{"event_id":"{event_id}","app_id":"wxa","openid":"o1","client_time":{},"server_time":{},"event":"CLICK","event_key":"SHOP"{extra}}}"#,
        NOW - 60_000,
        NOW - 59_000
    )
}

#[test]
fn a_json_line_is_framed_with_the_schema_id_keyed_by_fan_and_decodes_as_the_services_read_it() {
    let e = encoder(EventStream::MenuClicks);
    let line = click_json(ID, r#","menu_id":7,"unionid":null"#);
    let Json::Object(object) = serde_json::from_str(&line).expect("json") else {
        panic!("object")
    };
    let record = e.from_json(&object).expect("valid");
    assert_eq!(record.topic, "wxpulse.menu_clicks");
    assert_eq!(record.key, b"wxa|o1");
    let payload = record.payload.expect("payload");
    let (id, datum) = codec::split_frame(&payload).expect("framed");
    assert_eq!(id, 1);
    let schema = codec::parse(EventStream::MenuClicks.schema().json).expect("schema");
    let click: MenuClick<'_> = codec::decode(datum, &schema).expect("decodes");
    assert_eq!(click.event_id, ID);
    assert_eq!(click.event, MenuEvent::Click);
    assert_eq!(click.event_key, "SHOP");
    assert_eq!(click.menu_id, Some(7));
    assert_eq!(click.unionid, None);
    assert_eq!(click.client_time, NOW - 60_000);
}

#[test]
fn every_bad_line_is_reported_with_its_number_and_reason() {
    let lines = [
        click_json(ID, ""),
        // 2: a misspelt mapping.
        click_json(ID, r#","openId":"o1""#),
        // 3: blank lines are skipped, not reported.
        String::new(),
        // 4
        "{not json".to_string(),
        // 5: a symbol the enum does not have.
        click_json(ID, "").replace("CLICK", "TAP"),
        // 6: a required field missing.
        click_json(ID, "").replace(r#""event_key":"SHOP""#, r#""menu_id":1"#),
        // 7: a string where a long goes.
        click_json(ID, r#","menu_id":"7""#),
        // 8: what the services would dead-letter: not a UUID.
        click_json("e-1", ""),
        // 9: later than validation.max_lateness.
        click_json(ID, "").replace(
            &format!("\"client_time\":{}", NOW - 60_000),
            &format!("\"client_time\":{}", NOW - 8 * 86_400_000),
        ),
        // 10: an array.
        "[1]".to_string(),
        click_json("3f2504e0-4f89-41d3-9a0c-0305e82c3302", ""),
    ];
    let (_dir, path) = file("clicks.jsonl", lines.join("\n").as_bytes());
    let out = all(&encoder(EventStream::MenuClicks), &path);
    let bad: Vec<(u64, String)> = out
        .iter()
        .filter_map(|o| o.as_ref().err())
        .map(|b| (b.line, b.reason.clone()))
        .collect();
    assert_eq!(out.iter().filter(|o| o.is_ok()).count(), 2, "{bad:?}");
    let lines: Vec<u64> = bad.iter().map(|b| b.0).collect();
    assert_eq!(lines, vec![2, 4, 5, 6, 7, 8, 9, 10]);
    let reason = |line: u64| {
        bad.iter()
            .find(|b| b.0 == line)
            .map_or("", |b| b.1.as_str())
    };
    assert!(
        reason(2).starts_with("unknown field openId"),
        "{}",
        reason(2)
    );
    assert!(reason(4).starts_with("not JSON"), "{}", reason(4));
    assert!(
        reason(5).contains("\"TAP\" is not one of CLICK, VIEW"),
        "{}",
        reason(5)
    );
    assert_eq!(reason(6), "missing field `event_key`");
    assert!(
        reason(7).contains("field `menu_id`: expected an integer"),
        "{}",
        reason(7)
    );
    assert_eq!(reason(8), "invalid_field: event_id is not a UUID");
    assert!(reason(9).starts_with("too_old"), "{}", reason(9));
    assert_eq!(reason(10), "not a JSON object");
}

#[test]
fn csv_cells_are_parsed_by_field_type_and_empty_cells_are_absent() {
    let text = format!(
        "event_id,app_id,openid,unionid,client_time,server_time,article_id,msgid,idx,source,read_depth,read_seconds,shared\n\
         {ID},wxa,o1,,{c},{s},art-1,9001,2,PUSH,0.75,42,true\n\
         3f2504e0-4f89-41d3-9a0c-0305e82c3302,wxa,o2,u2,{c},{s},art-1,9001,2,PUSH,deep,42,\n\
         3f2504e0-4f89-41d3-9a0c-0305e82c3303,wxa,o3,,{c},{s},art-1,9001,2,PUSH,0.5,42,maybe\n",
        c = NOW - 60_000,
        s = NOW - 59_000
    );
    let (_dir, path) = file("reads.csv", text.as_bytes());
    let e = encoder(EventStream::ArticleReads);
    let out = all(&e, &path);
    assert_eq!(out.len(), 3);
    let record = out[0].as_ref().expect("line 2 is valid");
    let (id, datum) =
        codec::split_frame(record.payload.as_deref().expect("payload")).expect("framed");
    assert_eq!(id, EventStream::ArticleReads.schema().id);
    let schema = codec::parse(EventStream::ArticleReads.schema().json).expect("schema");
    let read: ArticleRead<'_> = codec::decode(datum, &schema).expect("decodes");
    assert_eq!((read.idx, read.read_seconds, read.shared), (2, 42, true));
    assert_eq!(read.source, ReadSource::Push);
    assert!((read.read_depth - 0.75).abs() < 1e-6);
    assert_eq!(read.unionid, None);
    assert!(
        !read.favorited,
        "an absent defaulted field takes its default"
    );
    let bad: Vec<String> = out[1..]
        .iter()
        .map(|o| o.as_ref().err().map(|b| b.to_string()).unwrap_or_default())
        .collect();
    assert_eq!(
        bad,
        vec![
            "line 3: field `read_depth`: \"deep\" is not a number".to_string(),
            "line 4: field `shared`: \"maybe\" is not true or false".to_string(),
        ]
    );
    // A column the schema does not have refuses the file at its header.
    let (_dir, path) = file("reads2.csv", b"event_id,page_url\nx,y\n");
    let out = all(&e, &path);
    assert_eq!(out.len(), 1);
    let header = out[0].as_ref().expect_err("refused");
    assert_eq!(header.line, 1);
    assert!(
        header.reason.starts_with("unknown column page_url"),
        "{header}"
    );
}

#[test]
fn an_avro_container_file_of_an_older_schema_is_read_with_the_newest() {
    // Article reads v1 (read_seconds an int, no scene_note), as an adopter's export.
    let v1 = codec::EMBEDDED
        .iter()
        .find(|s| s.subject == "wxpulse.article_reads-value" && s.version == 1)
        .expect("v1");
    let writer_schema = apache_avro::Schema::parse_str(v1.json).expect("v1 parses");
    let mut writer = apache_avro::Writer::new(&writer_schema, Vec::new());
    for (n, openid) in [(1, "o1"), (2, "o2")] {
        let mut r = apache_avro::types::Record::new(&writer_schema).expect("record");
        r.put(
            "event_id",
            format!("3f2504e0-4f89-41d3-9a0c-0305e82c330{n}"),
        );
        r.put("app_id", "wxa");
        r.put("openid", openid);
        r.put("unionid", Avro::Union(0, Box::new(Avro::Null)));
        r.put("client_time", Avro::TimestampMillis(NOW - 60_000));
        r.put("server_time", Avro::TimestampMillis(NOW - 59_000));
        r.put("article_id", "art-1");
        r.put("msgid", 9001i64);
        r.put("idx", 1i32);
        r.put("source", Avro::Enum(0, "PUSH".into()));
        r.put("read_depth", 0.5f32);
        r.put("read_seconds", 30i32);
        r.put("shared", n == 2);
        r.put("favorited", false);
        r.put("cta_clicked", false);
        writer.append(r).expect("append");
    }
    let bytes = writer.into_inner().expect("container");
    let (_dir, path) = file("reads.avro", &bytes);
    let out = all(&encoder(EventStream::ArticleReads), &path);
    assert_eq!(out.len(), 2);
    let schema = codec::parse(EventStream::ArticleReads.schema().json).expect("schema");
    for (o, openid) in out.iter().zip(["o1", "o2"]) {
        let record = o.as_ref().expect("valid");
        assert_eq!(record.key, format!("wxa|{openid}").into_bytes());
        let (id, datum) =
            codec::split_frame(record.payload.as_deref().expect("payload")).expect("framed");
        assert_eq!(
            id,
            EventStream::ArticleReads.schema().id,
            "written with the newest"
        );
        let read: ArticleRead<'_> = codec::decode(datum, &schema).expect("decodes");
        assert_eq!((read.openid, read.read_seconds), (openid, 30));
        assert_eq!(read.shared, openid == "o2");
    }
}
