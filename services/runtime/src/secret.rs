//! Passwords, keys and tokens in the configuration.
//!
//! A [`Secret`] prints as `<redacted>` through `Debug` and `Display`, so `--print-config`,
//! a `{config:?}` in a log line or an error message cannot leak it; the value is reached
//! only through [`Secret::expose`], at the one place that hands it to a client. It has no
//! `Serialize` for the same reason.
//!
//! Every secret can also come from a file (`<name>_file`, e.g. a Kubernetes Secret mounted
//! as a volume), read once at startup; see [`read_file`].

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A configured secret; empty means "not set".
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the client that needs it; never format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no value is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whether one is set is worth showing; what it is never is.
        f.write_str(if self.0.is_empty() {
            "<unset>"
        } else {
            "<redacted>"
        })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// Any scalar: a password such as `1234` given in TOML or by env arrives as a number
    /// and is still a password (the env loader keeps `0123` a string, see `config.rs`).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarString).map(Secret)
    }
}

/// Deserializes any scalar as its text, for string settings that may look like numbers
/// (a user name `1001`, a password).
pub fn scalar_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_any(ScalarString)
}

struct ScalarString;

impl Visitor<'_> for ScalarString {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_char<E: de::Error>(self, v: char) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// Reads a secret file: the whole content, less a trailing line break (`echo` adds one;
/// Kubernetes Secret files have none).
pub fn read_file(path: &str) -> std::io::Result<Secret> {
    let text = std::fs::read_to_string(path)?;
    let value = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(
            format!("{s:?} {s} {s:#?}"),
            "<redacted> <redacted> <redacted>"
        );
        assert_eq!(format!("{:?}", Secret::default()), "<unset>");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn numbers_and_strings_are_taken_as_text() {
        #[derive(Deserialize)]
        struct T {
            a: Secret,
            b: Secret,
            #[serde(deserialize_with = "scalar_string")]
            c: String,
        }
        let t: T = serde_json::from_str(r#"{"a": 1234, "b": "0123", "c": 7}"#).expect("parses");
        assert_eq!(
            (t.a.expose(), t.b.expose(), t.c.as_str()),
            ("1234", "0123", "7")
        );
    }

    #[test]
    fn files_lose_one_trailing_line_break_only() {
        let dir = std::env::temp_dir().join(format!("wxpulse-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("p");
        for (content, want) in [
            ("s3cret\n", "s3cret"),
            ("s3cret", "s3cret"),
            (" a b \r\n", " a b "),
        ] {
            std::fs::write(&path, content).expect("write");
            let read = read_file(path.to_str().expect("utf-8 path")).expect("read");
            assert_eq!(read.expose(), want);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
