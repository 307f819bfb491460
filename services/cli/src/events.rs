//! `wxpulse events load`: produce an adopter's event file (historical exports, test data)
//! to an event topic exactly as live events arrive — Confluent-framed Avro with the
//! registry's id of the newest schema, keyed `app_id|openid`, through the same idempotent
//! producer (and so the same partitioner) as every wxpulse producer.
//!
//! A file is checked whole before anything is produced: every line is parsed against the
//! stream's Avro schema (field names, types, enum symbols, required fields; unknown fields
//! are errors, since they are usually a misspelt mapping) and then decoded with the
//! services' own reader and validated as they validate (event id a UUID, ids present,
//! timestamps plausible). Every bad line is reported with its number and reason; a file
//! with one is not produced unless `--skip-bad` says to produce the rest. What the
//! services could still reject on their own (an unknown account, a duplicate) they
//! dead-letter or drop as usual.
//!
//! Formats, by extension: JSON Lines (`.jsonl`, `.ndjson`: one object per line), CSV
//! (`.csv`: a header row of field names; an empty cell is an absent field) and Avro object
//! container files (`.avro`: any writer schema the stream's newest schema can read, as
//! the registry's BACKWARD rule guarantees). Timestamps are milliseconds since the epoch.

use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;
use apache_avro::types::Value as Avro;
use serde_json::Value as Json;
use wxpulse_runtime::codec;
use wxpulse_runtime::config::ValidationConfig;
use wxpulse_runtime::events::{ArticleRead, ChatMessage, Interaction, MenuClick, Order, QrScan};
use wxpulse_runtime::streams::EventStream;
use wxpulse_runtime::validate::validate;

use crate::produce::Outgoing;

/// How an event file is written, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    JsonLines,
    /// A header row of field names, then one event per row.
    Csv,
    /// An Avro object container file.
    Avro,
}

impl Format {
    /// The format of `path`, if the loader reads it.
    pub fn of_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Some(Format::JsonLines),
            "csv" => Some(Format::Csv),
            "avro" => Some(Format::Avro),
            _ => None,
        }
    }
}

/// A line (record, for Avro files) that cannot be loaded, for the person fixing the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line of a JSON Lines or CSV file (the header is line 1); 1-based record of
    /// an Avro file.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// What a field of the schema accepts.
#[derive(Debug, Clone)]
enum Kind {
    String,
    Int,
    Long,
    Float,
    Double,
    Boolean,
    Enum(Vec<String>),
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    kind: Kind,
    /// Index of the value branch and of the null branch, for `["null", T]` fields.
    union: Option<(u32, u32)>,
    default: Option<Json>,
}

/// Turns the lines of one stream's files into framed, keyed records.
pub struct Encoder {
    stream: EventStream,
    schema_id: u32,
    avro: apache_avro::Schema,
    fast: serde_avro_fast::Schema,
    fields: Vec<Field>,
    names: HashSet<String>,
    validation: ValidationConfig,
    now_ms: i64,
}

impl Encoder {
    /// An encoder writing with `schema_id` (the registry's id of the stream's newest
    /// schema), validating as the services do at `now_ms`.
    pub fn new(
        stream: EventStream,
        schema_id: u32,
        validation: ValidationConfig,
        now_ms: i64,
    ) -> anyhow::Result<Encoder> {
        let json = stream.schema().json;
        let avro = apache_avro::Schema::parse_str(json).context("embedded schema")?;
        let fast = codec::parse(json).context("embedded schema")?;
        let fields = fields(json).context("embedded schema")?;
        let names = fields.iter().map(|f| f.name.clone()).collect();
        Ok(Encoder {
            stream,
            schema_id,
            avro,
            fast,
            fields,
            names,
            validation,
            now_ms,
        })
    }

    /// One JSON object (a JSON Lines line, or a CSV row made into one) to a record.
    pub fn from_json(&self, object: &serde_json::Map<String, Json>) -> Result<Outgoing, String> {
        let mut unknown: Vec<&str> = object
            .keys()
            .filter(|k| !self.names.contains(k.as_str()))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(format!(
                "unknown field{} {} (the {} schema has: {})",
                if unknown.len() > 1 { "s" } else { "" },
                unknown.join(", "),
                self.stream.as_str(),
                self.field_names()
            ));
        }
        let mut record = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            let value = match object.get(&field.name) {
                None | Some(Json::Null) => match (&field.default, field.union) {
                    (_, Some((_, null))) => Avro::Union(null, Box::new(Avro::Null)),
                    (Some(default), None) => value(field, default)?,
                    (None, None) => return Err(format!("missing field `{}`", field.name)),
                },
                Some(v) => value(field, v)?,
            };
            record.push((field.name.clone(), value));
        }
        self.encode(Avro::Record(record))
    }

    /// A CSV row (cells named by `header`) to a record: each cell is parsed as its field's
    /// type, an empty cell is an absent field.
    pub fn from_csv(
        &self,
        header: &csv::StringRecord,
        row: &csv::StringRecord,
    ) -> Result<Outgoing, String> {
        let mut object = serde_json::Map::new();
        for (name, cell) in header.iter().zip(row.iter()) {
            if cell.is_empty() {
                continue;
            }
            let Some(field) = self.fields.iter().find(|f| f.name == name) else {
                object.insert(name.to_string(), Json::String(cell.to_string()));
                continue;
            };
            let parsed = match field.kind {
                Kind::String | Kind::Enum(_) => Json::String(cell.to_string()),
                Kind::Int | Kind::Long => cell
                    .trim()
                    .parse::<i64>()
                    .map(Json::from)
                    .map_err(|_| format!("field `{name}`: {cell:?} is not an integer"))?,
                Kind::Float | Kind::Double => cell
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Json::Number)
                    .ok_or_else(|| format!("field `{name}`: {cell:?} is not a number"))?,
                Kind::Boolean => match cell.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" => Json::Bool(true),
                    "false" | "0" => Json::Bool(false),
                    _ => return Err(format!("field `{name}`: {cell:?} is not true or false")),
                },
            };
            object.insert(name.to_string(), parsed);
        }
        self.from_json(&object)
    }

    /// A record of an Avro container file, already resolved to the stream's schema.
    pub fn from_avro(&self, value: Avro) -> Result<Outgoing, String> {
        self.encode(value)
    }

    /// Header fields a CSV file names that the schema does not: reported once, for line 1.
    pub fn unknown_columns(&self, header: &csv::StringRecord) -> Option<BadLine> {
        let unknown: Vec<&str> = header.iter().filter(|h| !self.names.contains(*h)).collect();
        (!unknown.is_empty()).then(|| BadLine {
            line: 1,
            reason: format!(
                "unknown column{} {} (the {} schema has: {})",
                if unknown.len() > 1 { "s" } else { "" },
                unknown.join(", "),
                self.stream.as_str(),
                self.field_names()
            ),
        })
    }

    fn field_names(&self) -> String {
        let names: Vec<&str> = self.fields.iter().map(|f| f.name.as_str()).collect();
        names.join(", ")
    }

    /// Encodes (apache-avro checks the value against the schema), then decodes the datum
    /// with the services' reader and validates its header as they do.
    fn encode(&self, record: Avro) -> Result<Outgoing, String> {
        let datum = apache_avro::to_avro_datum(&self.avro, record).map_err(short)?;
        let key = match self.stream {
            EventStream::MenuClicks => self.check::<MenuClick<'_>>(&datum),
            EventStream::QrScans => self.check::<QrScan<'_>>(&datum),
            EventStream::ChatMessages => self.check::<ChatMessage<'_>>(&datum),
            EventStream::ArticleReads => self.check::<ArticleRead<'_>>(&datum),
            EventStream::Orders => self.check::<Order<'_>>(&datum),
        }?;
        let mut payload = Vec::with_capacity(datum.len() + 5);
        payload.push(0);
        payload.extend_from_slice(&self.schema_id.to_be_bytes());
        payload.extend_from_slice(&datum);
        Ok(Outgoing {
            topic: self.stream.topic(),
            key,
            payload: Some(payload),
            at_ms: 0,
        })
    }

    /// The key (`app_id|openid`) of a datum the services would accept.
    fn check<'a, E>(&self, datum: &'a [u8]) -> Result<Vec<u8>, String>
    where
        E: serde::Deserialize<'a> + Interaction,
    {
        let event: E = codec::decode(datum, &self.fast).map_err(|e| e.to_string())?;
        let header = event.header();
        validate(&header, self.now_ms, &self.validation)
            .map_err(|r| format!("{}: {}", r.reason.as_str(), r.detail))?;
        Ok(format!("{}|{}", header.app_id, header.openid).into_bytes())
    }
}

/// apache-avro's errors print the whole schema and value: keep the reason, for a line of
/// the report.
fn short(e: apache_avro::Error) -> String {
    let text = e.to_string();
    let reason = text.rsplit("Reason: ").next().unwrap_or(&text);
    let line = reason.lines().next().unwrap_or_default();
    line.chars().take(300).collect()
}

/// A JSON value as the Avro value of `field`.
fn value(field: &Field, v: &Json) -> Result<Avro, String> {
    let name = &field.name;
    let wrong = |what: &str| format!("field `{name}`: expected {what}, got {v}");
    let inner = match (&field.kind, v) {
        (Kind::String, Json::String(s)) => Avro::String(s.clone()),
        (Kind::Enum(symbols), Json::String(s)) => match symbols.iter().position(|x| x == s) {
            Some(i) => Avro::Enum(i as u32, s.clone()),
            None => {
                return Err(format!(
                    "field `{name}`: {s:?} is not one of {}",
                    symbols.join(", ")
                ))
            }
        },
        (Kind::Long, Json::Number(n)) => Avro::Long(n.as_i64().ok_or_else(|| wrong("an integer"))?),
        (Kind::Int, Json::Number(n)) => Avro::Int(
            n.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| wrong("a 32-bit integer"))?,
        ),
        (Kind::Float, Json::Number(n)) => {
            Avro::Float(n.as_f64().ok_or_else(|| wrong("a number"))? as f32)
        }
        (Kind::Double, Json::Number(n)) => {
            Avro::Double(n.as_f64().ok_or_else(|| wrong("a number"))?)
        }
        (Kind::Boolean, Json::Bool(b)) => Avro::Boolean(*b),
        (Kind::String, _) => return Err(wrong("a string")),
        (Kind::Enum(_), _) => return Err(wrong("a string (enum symbol)")),
        (Kind::Int | Kind::Long, _) => return Err(wrong("an integer")),
        (Kind::Float | Kind::Double, _) => return Err(wrong("a number")),
        (Kind::Boolean, _) => return Err(wrong("true or false")),
    };
    Ok(match field.union {
        Some((branch, _)) => Avro::Union(branch, Box::new(inner)),
        None => inner,
    })
}

/// The fields of a record schema's JSON, with what each accepts.
fn fields(json: &str) -> anyhow::Result<Vec<Field>> {
    let schema: Json = serde_json::from_str(json)?;
    let list = schema
        .get("fields")
        .and_then(Json::as_array)
        .context("not a record schema")?;
    list.iter()
        .map(|f| {
            let name = f
                .get("name")
                .and_then(Json::as_str)
                .context("field without a name")?;
            let ty = f.get("type").context("field without a type")?;
            let (kind, union) = match ty {
                Json::Array(branches) => {
                    let null = branches
                        .iter()
                        .position(|b| b == "null")
                        .with_context(|| format!("{name}: a union without null"))?;
                    let (i, other) = branches
                        .iter()
                        .enumerate()
                        .find(|(_, b)| *b != "null")
                        .with_context(|| format!("{name}: a union of null only"))?;
                    (kind(other)?, Some((i as u32, null as u32)))
                }
                other => (kind(other)?, None),
            };
            Ok(Field {
                name: name.to_string(),
                kind,
                union,
                default: f.get("default").cloned(),
            })
        })
        .collect()
}

fn kind(ty: &Json) -> anyhow::Result<Kind> {
    let name = match ty {
        Json::String(s) => s.as_str(),
        Json::Object(o) => o.get("type").and_then(Json::as_str).unwrap_or_default(),
        _ => "",
    };
    Ok(match name {
        "string" => Kind::String,
        "int" => Kind::Int,
        "long" => Kind::Long,
        "float" => Kind::Float,
        "double" => Kind::Double,
        "boolean" => Kind::Boolean,
        "enum" => Kind::Enum(
            ty.get("symbols")
                .and_then(Json::as_array)
                .map(|s| {
                    s.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        other => anyhow::bail!("type {other:?} is not one the loader reads"),
    })
}

/// Reads `path` line by line (record by record), handing each record or bad line to
/// `each`; the file itself failing (unreadable, not Avro) is an error.
pub fn read(
    encoder: &Encoder,
    path: &Path,
    format: Format,
    mut each: impl FnMut(Result<Outgoing, BadLine>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    match format {
        Format::JsonLines => {
            for (i, line) in BufReader::new(file).lines().enumerate() {
                let line_no = i as u64 + 1;
                let line = line.with_context(|| format!("{}: line {line_no}", path.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                let outcome = match serde_json::from_str::<Json>(&line) {
                    Ok(Json::Object(object)) => encoder.from_json(&object),
                    Ok(_) => Err("not a JSON object".to_string()),
                    Err(e) => Err(format!("not JSON: {e}")),
                };
                each(outcome.map_err(|reason| BadLine {
                    line: line_no,
                    reason,
                }))?;
            }
        }
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(file);
            let header = reader.headers().context("no CSV header row")?.clone();
            if let Some(bad) = encoder.unknown_columns(&header) {
                return each(Err(bad));
            }
            for row in reader.records() {
                let outcome = match row {
                    Ok(row) => {
                        let line = row.position().map_or(0, |p| p.line());
                        encoder
                            .from_csv(&header, &row)
                            .map_err(|reason| BadLine { line, reason })
                    }
                    Err(e) => Err(BadLine {
                        line: e.position().map_or(0, |p| p.line()),
                        reason: e.to_string(),
                    }),
                };
                each(outcome)?;
            }
        }
        Format::Avro => {
            let reader = apache_avro::Reader::with_schema(&encoder.avro, BufReader::new(file))
                .with_context(|| {
                    format!(
                        "{} is not an Avro container file the {} schema can read",
                        path.display(),
                        encoder.stream.as_str()
                    )
                })?;
            for (i, value) in reader.enumerate() {
                let line = i as u64 + 1;
                let outcome = value.map_err(short).and_then(|v| encoder.from_avro(v));
                each(outcome.map_err(|reason| BadLine { line, reason }))?;
            }
        }
    }
    Ok(())
}

/// What `events load` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Lines (records) that would be or were produced.
    pub valid: u64,
    /// Lines reported bad.
    pub bad: u64,
    /// Records the broker acknowledged (0 on a dry run or a refused file).
    pub produced: u64,
}

/// What to load and how.
#[derive(Debug, Clone)]
pub struct Load<'a> {
    /// Target stream.
    pub stream: EventStream,
    /// The file.
    pub file: &'a Path,
    /// Check only.
    pub dry_run: bool,
    /// Produce the valid lines of a file that has bad ones.
    pub skip_bad: bool,
}

/// Checks the whole file (every bad line to stderr), then — unless it is a dry run or a
/// bad line refuses the file — produces it, with a progress bar on a terminal.
pub async fn load(
    load: &Load<'_>,
    encoder: Encoder,
    kafka: &wxpulse_runtime::config::KafkaConfig,
) -> anyhow::Result<Summary> {
    let format = Format::of_path(load.file).with_context(|| {
        format!(
            "{}: the format is taken from the extension: .jsonl/.ndjson, .csv or .avro",
            load.file.display()
        )
    })?;
    let mut summary = Summary::default();
    read(&encoder, load.file, format, |outcome| {
        match outcome {
            Ok(_) => summary.valid += 1,
            Err(bad) => {
                summary.bad += 1;
                eprintln!("{}: {bad}", load.file.display());
            }
        }
        Ok(())
    })?;
    if load.dry_run {
        return Ok(summary);
    }
    if summary.bad > 0 && !load.skip_bad {
        anyhow::bail!(
            "{}: {} bad line(s) of {}; nothing produced (fix them, or --skip-bad to produce \
             the {} valid ones)",
            load.file.display(),
            summary.bad,
            summary.bad + summary.valid,
            summary.valid
        );
    }
    if summary.valid == 0 {
        return Ok(summary);
    }
    let producer = crate::produce::producer(kafka)?;
    let bar = indicatif::ProgressBar::new(summary.valid).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {pos}/{len} events · {per_sec} · eta {eta} {wide_bar}",
        )
        .context("progress template")?,
    );
    // The file is read again on a thread and handed over through a bounded queue, so a
    // file of any size is produced in constant memory.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Outgoing>(10_000);
    let reader = {
        let (file, stream) = (load.file.to_path_buf(), load.stream);
        let (schema_id, validation, now_ms) = (
            encoder.schema_id,
            encoder.validation.clone(),
            encoder.now_ms,
        );
        std::thread::spawn(move || -> anyhow::Result<()> {
            let encoder = Encoder::new(stream, schema_id, validation, now_ms)?;
            read(&encoder, &file, format, |outcome| {
                if let Ok(record) = outcome {
                    tx.send(record).context("producer stopped")?;
                }
                Ok(())
            })
        })
    };
    let sent = crate::produce::send_all(&producer, rx.iter(), |n| bar.set_position(n as u64)).await;
    bar.finish_and_clear();
    let read = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the file reader panicked"))?;
    summary.produced = sent? as u64;
    read?;
    Ok(summary)
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
