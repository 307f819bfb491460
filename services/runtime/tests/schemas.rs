//! The schema policy, checked: every `.avsc` in `schemas/avro/` parses (with the reference
//! implementation and with the decoder we use), documents every field, is embedded with an
//! id, and each version can read data written with the previous one (BACKWARD).

use std::path::{Path, PathBuf};

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/avro")
}

/// (subject dir, [(version, text)]) sorted by version.
fn subjects() -> Vec<(String, Vec<(u32, String)>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(schema_dir()).expect("schemas/avro exists") {
        let dir = entry.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        let mut versions = Vec::new();
        for file in std::fs::read_dir(&dir).expect("subject dir") {
            let path = file.expect("file").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let Some(v) = name.strip_prefix('v').and_then(|n| n.strip_suffix(".avsc")) else {
                panic!("unexpected file {}", path.display())
            };
            let v: u32 = v
                .parse()
                .unwrap_or_else(|_| panic!("bad version in {name}"));
            versions.push((v, std::fs::read_to_string(&path).expect("readable")));
        }
        versions.sort_by_key(|v| v.0);
        let expected: Vec<u32> = (1..=versions.len() as u32).collect();
        assert_eq!(
            versions.iter().map(|v| v.0).collect::<Vec<_>>(),
            expected,
            "{}: versions must be v1..vN",
            dir.display()
        );
        out.push((
            dir.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string(),
            versions,
        ));
    }
    assert!(
        out.len() >= 13,
        "expected every topic's schema, found {}",
        out.len()
    );
    out
}

#[test]
fn every_schema_parses_and_documents_every_field() {
    for (subject, versions) in subjects() {
        for (v, text) in versions {
            Schema::parse_str(&text).unwrap_or_else(|e| panic!("{subject} v{v}: {e}"));
            wxpulse_runtime::codec::parse(&text).unwrap_or_else(|e| panic!("{subject} v{v}: {e}"));
            let json: serde_json::Value = serde_json::from_str(&text).expect("json");
            assert!(json["doc"].is_string(), "{subject} v{v}: record doc");
            assert!(
                json["namespace"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("com.wxpulse")),
                "{subject} v{v}: namespace"
            );
            for field in json["fields"].as_array().expect("fields") {
                assert!(
                    field["doc"].as_str().is_some_and(|d| !d.is_empty()),
                    "{subject} v{v}: field {} has no doc",
                    field["name"]
                );
            }
        }
    }
}

#[test]
fn every_version_reads_data_of_the_previous_one() {
    for (subject, versions) in subjects() {
        for pair in versions.windows(2) {
            let (old_v, old) = (&pair[0].0, Schema::parse_str(&pair[0].1).expect("parses"));
            let (new_v, new) = (&pair[1].0, Schema::parse_str(&pair[1].1).expect("parses"));
            SchemaCompatibility::can_read(&old, &new)
                .unwrap_or_else(|e| panic!("{subject}: v{new_v} cannot read v{old_v} data: {e}"));
        }
    }
}

#[test]
fn the_compatibility_check_rejects_a_breaking_change() {
    let (_, versions) = subjects()
        .into_iter()
        .find(|(s, _)| s == "menu_click")
        .expect("menu_click");
    let old = Schema::parse_str(&versions[0].1).expect("parses");
    // A new required field without a default cannot read old data.
    let mut json: serde_json::Value = serde_json::from_str(&versions[0].1).expect("json");
    json["fields"]
        .as_array_mut()
        .expect("fields")
        .push(serde_json::json!({"name": "store_id", "type": "string", "doc": "x"}));
    let breaking = Schema::parse_str(&json.to_string()).expect("parses");
    assert!(SchemaCompatibility::can_read(&old, &breaking).is_err());
}

#[test]
fn every_schema_file_is_embedded_with_an_id() {
    for (subject, versions) in subjects() {
        for (v, text) in versions {
            assert!(
                wxpulse_runtime::codec::EMBEDDED
                    .iter()
                    .any(|e| e.version == v && e.json == text),
                "{subject} v{v} is not in codec::EMBEDDED"
            );
        }
    }
}
