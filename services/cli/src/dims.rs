//! `wxpulse dims`: load dimension records from CSV, JSON or JSON Lines files into their
//! compacted topics, and delete keys with tombstones.
//!
//! A file is all or nothing. Every record is parsed and checked first — unknown fields,
//! enum symbols, required fields, empty or duplicate keys, the Avro schema — and every bad
//! record is reported with its line and field; only a file without one is produced. A
//! half-loaded dimension would make the services write `unknown` for keys the file had.
//!
//! Field names and enum symbols come from the dimension's embedded Avro schema, so the
//! loader accepts exactly what the topic carries. An empty CSV cell, or a JSON `null`, is
//! an absent field: `None` for optional fields, the default for defaulted ones, an error
//! for required ones.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wxpulse_runtime::codec;
use wxpulse_runtime::enrich::{
    AccountRecord, ArticleRecord, AssociateContactRecord, AssociateRecord, Birthday, Dimension,
    DimensionRecord, FanFollowRecord, FanProfileRecord, MenuButtonRecord, QrSceneRecord,
    StoreRecord,
};

use crate::produce::Outgoing;

/// How a dimension file is written, chosen by its extension so no flag can disagree with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.csv`: a header row of field names, then one record per row.
    Csv,
    /// `.json`: one array of record objects.
    Json,
    /// `.jsonl`: one record object per line.
    JsonLines,
}

impl Format {
    /// The format of `path` by its extension, if it is one the loader reads.
    pub fn of_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "jsonl" | "ndjson" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

/// A record that cannot be loaded: where it is and what is wrong, for the person who fixes
/// the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// 1-based line the record starts on (the header row is line 1 of a CSV file).
    pub line: u64,
    /// The field at fault, when one can be named.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "line {}, field `{field}`: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

fn bad(line: u64, field: Option<&str>, message: impl Into<String>) -> BadRecord {
    BadRecord {
        line,
        field: field.map(str::to_string),
        message: message.into(),
    }
}

/// Reads and checks a dimension file; fails, listing every bad record, if any is bad.
pub fn read_file(dimension: Dimension, path: &Path) -> anyhow::Result<Vec<DimensionRecord>> {
    let format = Format::of_path(path).with_context(|| {
        format!(
            "{}: unknown file type; use .csv, .json or .jsonl",
            path.display()
        )
    })?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(dimension, format, &text).map_err(|errors| {
        const SHOWN: usize = 50;
        let mut report = format!(
            "{}: {} bad {} record(s), nothing published",
            path.display(),
            errors.len(),
            dimension.as_str()
        );
        for e in errors.iter().take(SHOWN) {
            report.push_str(&format!("\n  {e}"));
        }
        if errors.len() > SHOWN {
            report.push_str(&format!("\n  ... and {} more", errors.len() - SHOWN));
        }
        anyhow::anyhow!(report)
    })
}

/// Parses and checks the records of `dimension` in `text`; every bad record, or none.
pub fn parse(
    dimension: Dimension,
    format: Format,
    text: &str,
) -> Result<Vec<DimensionRecord>, Vec<BadRecord>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text); // spreadsheet exports
    let fields = Fields::of(dimension);
    let (rows, mut errors) = match dimension {
        Dimension::Account => {
            rows::<AccountRecord>(format, text, &fields, DimensionRecord::Account)
        }
        Dimension::Store => rows::<StoreRecord>(format, text, &fields, DimensionRecord::Store),
        Dimension::Associate => {
            rows::<AssociateRecord>(format, text, &fields, DimensionRecord::Associate)
        }
        Dimension::QrScene => {
            rows::<QrSceneRecord>(format, text, &fields, DimensionRecord::QrScene)
        }
        Dimension::Article => {
            rows::<ArticleRecord>(format, text, &fields, DimensionRecord::Article)
        }
        Dimension::MenuButton => {
            rows::<MenuButtonRecord>(format, text, &fields, DimensionRecord::MenuButton)
        }
        Dimension::FanProfile => {
            rows::<FanProfileRecord>(format, text, &fields, DimensionRecord::FanProfile)
        }
        // A backfill of follows and unfollows (e.g. from an export of WeChat's follower list).
        Dimension::FanFollow => {
            rows::<FanFollowRecord>(format, text, &fields, DimensionRecord::FanFollow)
        }
        // A backfill of the associates' contact lists (WeCom's externalcontact/list API),
        // since the callbacks report only changes.
        Dimension::AssociateContact => {
            rows::<AssociateContactRecord>(format, text, &fields, DimensionRecord::AssociateContact)
        }
    };
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut records = Vec::with_capacity(rows.len());
    for (line, record) in rows {
        if let Err((field, message)) = check_key(&record) {
            errors.push(bad(line, Some(field), message));
            continue;
        }
        // Compaction keeps one record per key: a second row would silently win.
        if let Some(first) = seen.insert(record.key(), line) {
            errors.push(bad(
                line,
                None,
                format!("duplicate key `{}` (first on line {first})", record.key()),
            ));
            continue;
        }
        if let Err(e) = record.encode() {
            errors.push(bad(line, None, e.to_string()));
            continue;
        }
        records.push(record);
    }
    if errors.is_empty() {
        Ok(records)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

/// Stamps `updated_at` on records that do not carry one: the schema says the newest
/// version of a key wins, so a loaded record is as new as its load.
pub fn stamp(records: &mut [DimensionRecord], now_ms: i64) {
    for r in records {
        let updated_at = match r {
            DimensionRecord::Account(r) => &mut r.updated_at,
            DimensionRecord::Store(r) => &mut r.updated_at,
            DimensionRecord::Associate(r) => &mut r.updated_at,
            DimensionRecord::QrScene(r) => &mut r.updated_at,
            DimensionRecord::Article(r) => &mut r.updated_at,
            DimensionRecord::MenuButton(r) => &mut r.updated_at,
            DimensionRecord::FanProfile(r) => &mut r.updated_at,
            DimensionRecord::FanFollow(r) => &mut r.updated_at,
            DimensionRecord::AssociateContact(r) => &mut r.updated_at,
        };
        if *updated_at == 0 {
            *updated_at = now_ms;
        }
    }
}

/// The records as Kafka records: each to its dimension's topic, keyed by
/// [`DimensionRecord::key`] so compaction keeps the latest per key.
pub fn outgoing(records: &[DimensionRecord]) -> anyhow::Result<Vec<Outgoing>> {
    records
        .iter()
        .map(|r| {
            Ok(Outgoing {
                topic: r.dimension().topic(),
                key: r.key().into_bytes(),
                payload: Some(r.encode()?),
                at_ms: 0,
            })
        })
        .collect()
}

/// A tombstone for `key`: compaction then drops the key, and the services forget it.
pub fn tombstone(dimension: Dimension, key: &str) -> anyhow::Result<Outgoing> {
    anyhow::ensure!(!key.trim().is_empty(), "the key is empty");
    if matches!(dimension, Dimension::MenuButton | Dimension::FanProfile) {
        let second = match dimension {
            Dimension::MenuButton => "event_key",
            _ => "openid",
        };
        let ok = key
            .split_once('|')
            .is_some_and(|(app_id, rest)| !app_id.is_empty() && !rest.is_empty());
        anyhow::ensure!(
            ok,
            "a {} key is `app_id|{second}`, got `{key}`",
            dimension.as_str()
        );
    }
    if dimension == Dimension::FanFollow {
        let ok = wxpulse_runtime::enrich::split_follow_key(key)
            .is_some_and(|(app_id, openid, _)| !app_id.is_empty() && !openid.is_empty());
        anyhow::ensure!(
            ok,
            "a fan_follow key is `app_id|openid|follow` or `app_id|openid|unfollow`, got `{key}`"
        );
    }
    if dimension == Dimension::AssociateContact {
        anyhow::ensure!(
            wxpulse_runtime::enrich::split_contact_key(key).is_some(),
            "an associate_contact key is `corp_id|userid|external_userid|added` or `…|removed`, got `{key}`"
        );
    }
    Ok(Outgoing {
        topic: dimension.topic(),
        key: key.as_bytes().to_vec(),
        payload: None,
        at_ms: 0,
    })
}

/// Records published per dimension, for the summary line.
pub fn count_by_dimension(records: &[DimensionRecord]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.dimension().as_str()).or_default() += 1;
    }
    counts
}

/// A key that would make the record unreachable (empty, or an AppID that splits wrongly),
/// or a fan profile's birthday that is not `"MM-DD"`.
fn check_key(record: &DimensionRecord) -> Result<(), (&'static str, String)> {
    let non_empty = |field: &'static str, value: &str| {
        if value.trim().is_empty() {
            Err((field, "is empty, and it is (part of) the key".to_string()))
        } else {
            Ok(())
        }
    };
    let app_id = |value: &str| {
        non_empty("app_id", value)?;
        if value.contains('|') {
            return Err(("app_id", "contains `|`, the key separator".to_string()));
        }
        Ok(())
    };
    match record {
        DimensionRecord::Account(r) => app_id(&r.app_id),
        DimensionRecord::Store(r) => non_empty("store_id", &r.store_id),
        DimensionRecord::Associate(r) => non_empty("userid", &r.userid),
        DimensionRecord::QrScene(r) => non_empty("scene", &r.scene),
        DimensionRecord::Article(r) => non_empty("article_id", &r.article_id),
        DimensionRecord::MenuButton(r) => {
            app_id(&r.app_id)?;
            non_empty("event_key", &r.event_key)
        }
        DimensionRecord::FanProfile(r) => {
            app_id(&r.app_id)?;
            non_empty("openid", &r.openid)?;
            // Consumers would read a bad one as unknown: say so here, where it can be fixed.
            match r.birthday.as_deref().filter(|b| !b.is_empty()) {
                Some(b) => Birthday::parse(b)
                    .map(drop)
                    .map_err(|e| ("birthday", e.to_string())),
                None => Ok(()),
            }
        }
        DimensionRecord::FanFollow(r) => {
            app_id(&r.app_id)?;
            non_empty("openid", &r.openid)
        }
        DimensionRecord::AssociateContact(r) => {
            non_empty("corp_id", &r.corp_id)?;
            non_empty("userid", &r.userid)?;
            non_empty("external_userid", &r.external_userid)?;
            if r.change == wxpulse_runtime::enrich::ContactChange::Other {
                return Err((
                    "change",
                    "is ADDED, REMOVED_BY_ASSOCIATE or REMOVED_BY_CUSTOMER".to_string(),
                ));
            }
            for (field, value) in [
                ("corp_id", &r.corp_id),
                ("userid", &r.userid),
                ("external_userid", &r.external_userid),
            ] {
                if value.contains('|') {
                    return Err((field, "contains `|`, the key separator".to_string()));
                }
            }
            Ok(())
        }
    }
}

/// What the dimension's Avro schema says about its fields.
struct Fields {
    names: Vec<String>,
    /// Enum fields and their symbols.
    enums: HashMap<String, Vec<String>>,
}

impl Fields {
    fn of(dimension: Dimension) -> Fields {
        let subject = format!("{}-value", dimension.topic());
        let schema = codec::latest(&subject).expect("every dimension's schema is embedded");
        let json: Value = serde_json::from_str(schema.json).expect("embedded schemas are JSON");
        let mut fields = Fields {
            names: Vec::new(),
            enums: HashMap::new(),
        };
        for f in json["fields"].as_array().into_iter().flatten() {
            let Some(name) = f["name"].as_str() else {
                continue;
            };
            fields.names.push(name.to_string());
            let types = match &f["type"] {
                Value::Array(union) => union.iter().collect(),
                t => vec![t],
            };
            if let Some(symbols) = types
                .iter()
                .find(|t| t["type"] == "enum")
                .and_then(|t| t["symbols"].as_array())
            {
                let symbols = symbols
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect();
                fields.enums.insert(name.to_string(), symbols);
            }
        }
        fields
    }

    fn unknown(&self, line: u64, name: &str) -> Option<BadRecord> {
        (!self.names.iter().any(|n| n == name)).then(|| {
            bad(
                line,
                Some(name),
                format!("unknown field; expected one of {}", self.names.join(", ")),
            )
        })
    }

    fn bad_symbol(&self, line: u64, name: &str, value: Option<&str>) -> Option<BadRecord> {
        let symbols = self.enums.get(name)?;
        if value.is_some_and(|v| symbols.iter().any(|s| s == v)) {
            return None;
        }
        let shown = value.map_or_else(|| "this value".to_string(), |v| format!("`{v}`"));
        Some(bad(
            line,
            Some(name),
            format!("{shown} is not one of {}", symbols.join(", ")),
        ))
    }
}

/// Parses every record of `format` as `T`, with the line it starts on, and the bad ones.
fn rows<T: DeserializeOwned>(
    format: Format,
    text: &str,
    fields: &Fields,
    wrap: fn(T) -> DimensionRecord,
) -> (Vec<(u64, DimensionRecord)>, Vec<BadRecord>) {
    let parsed = match format {
        Format::Csv => csv_rows::<T>(text, fields),
        Format::Json => json_rows::<T>(text, fields),
        Format::JsonLines => jsonl_rows::<T>(text, fields),
    };
    let (mut ok, mut errors) = (Vec::new(), Vec::new());
    for row in parsed {
        match row {
            Ok((line, t)) => ok.push((line, wrap(t))),
            Err(e) => errors.push(e),
        }
    }
    (ok, errors)
}

type Row<T> = Result<(u64, T), BadRecord>;

fn csv_rows<T: DeserializeOwned>(text: &str, fields: &Fields) -> Vec<Row<T>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let line_of = |e: &csv::Error| e.position().map_or(0, |p| p.line());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return vec![Err(bad(line_of(&e), None, e.to_string()))],
    };
    let unknown: Vec<Row<T>> = headers
        .iter()
        .filter_map(|h| fields.unknown(1, h))
        .map(Err)
        .collect();
    if !unknown.is_empty() {
        return unknown;
    }
    let attempt = |cells: &[(String, String)]| -> Result<T, String> {
        let names: csv::StringRecord = cells.iter().map(|c| c.0.as_str()).collect();
        let values: csv::StringRecord = cells.iter().map(|c| c.1.as_str()).collect();
        values
            .deserialize::<T>(Some(&names))
            .map_err(|e| match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => err.kind().to_string(),
                _ => e.to_string(),
            })
    };
    reader
        .records()
        .map(|record| {
            let record = record.map_err(|e| bad(line_of(&e), None, e.to_string()))?;
            let line = record.position().map_or(0, |p| p.line());
            let cells: Vec<(String, String)> = headers
                .iter()
                .zip(record.iter())
                .filter(|(_, v)| !v.is_empty())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect();
            if let Some(e) = cells
                .iter()
                .find_map(|(h, v)| fields.bad_symbol(line, h, Some(v)))
            {
                return Err(e);
            }
            deserialize(line, &cells, attempt).map(|t| (line, t))
        })
        .collect()
}

fn json_rows<T: DeserializeOwned>(text: &str, fields: &Fields) -> Vec<Row<T>> {
    let elements = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(elements)) => elements,
        Ok(_) => return vec![Err(bad(1, None, "expected a JSON array of records"))],
        Err(e) => return vec![Err(bad(e.line() as u64, None, e.to_string()))],
    };
    let lines = element_lines(text);
    elements
        .into_iter()
        .enumerate()
        .map(|(i, v)| json_record(lines.get(i).copied().unwrap_or(0), v, fields))
        .collect()
}

fn jsonl_rows<T: DeserializeOwned>(text: &str, fields: &Fields) -> Vec<Row<T>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let line = i as u64 + 1;
            let value =
                serde_json::from_str::<Value>(l).map_err(|e| bad(line, None, e.to_string()))?;
            json_record(line, value, fields)
        })
        .collect()
}

fn json_record<T: DeserializeOwned>(line: u64, value: Value, fields: &Fields) -> Row<T> {
    let Value::Object(object) = value else {
        return Err(bad(line, None, "expected an object"));
    };
    let cells: Vec<(String, Value)> = object.into_iter().filter(|(_, v)| !v.is_null()).collect();
    for (name, v) in &cells {
        if let Some(e) = fields
            .unknown(line, name)
            .or_else(|| fields.bad_symbol(line, name, v.as_str()))
        {
            return Err(e);
        }
    }
    let attempt = |cells: &[(String, Value)]| -> Result<T, String> {
        serde_json::from_value(Value::Object(cells.iter().cloned().collect()))
            .map_err(|e| e.to_string())
    };
    deserialize(line, &cells, attempt).map(|t| (line, t))
}

/// Deserializes a record from its non-empty cells; on failure names the field at fault.
/// Neither csv nor serde_json says which struct field a type error is in, so the field is
/// found by leaving each cell out in turn: the one whose absence cures the error (or turns
/// it into "missing field" for that very name) is the culprit. Only bad rows pay for it.
fn deserialize<V: Clone, T>(
    line: u64,
    cells: &[(String, V)],
    attempt: impl Fn(&[(String, V)]) -> Result<T, String>,
) -> Result<T, BadRecord> {
    let message = match attempt(cells) {
        Ok(t) => return Ok(t),
        Err(m) => m,
    };
    if let Some(name) = missing_field(&message) {
        return Err(bad(line, Some(&name), "is required"));
    }
    let field = (0..cells.len()).find_map(|i| {
        let mut rest = cells.to_vec();
        let (name, _) = rest.remove(i);
        match attempt(&rest) {
            Ok(_) => Some(name),
            Err(m) if missing_field(&m).as_deref() == Some(name.as_str()) => Some(name),
            Err(_) => None,
        }
    });
    Err(BadRecord {
        line,
        field,
        message,
    })
}

/// The field of serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.split("missing field `").nth(1)?;
    Some(rest.split('`').next()?.to_string())
}

/// The line each element of a top-level JSON array starts on (`text` is valid JSON).
fn element_lines(text: &str) -> Vec<u64> {
    let mut lines = Vec::new();
    let (mut line, mut depth) = (1u64, 0usize);
    let (mut in_string, mut escaped, mut expect) = (false, false, false);
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if c.is_whitespace() {
            continue;
        }
        if expect {
            lines.push(line);
            expect = false;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' => {
                depth += 1;
                expect = depth == 1;
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 1 => expect = true,
            _ => {}
        }
    }
    lines
}

#[cfg(test)]
mod tests;
