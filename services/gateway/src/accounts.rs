//! The Official Accounts the gateway answers for: token and AES key per AppID, from a TOML
//! file that is re-read when it changes (an account added or a key rotated without a
//! restart). A file that no longer parses keeps the accounts loaded before, loudly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use anyhow::Context;
use serde::Deserialize;

use crate::crypto::AesKey;

/// One account's callback settings.
#[derive(Clone)]
pub struct Account {
    /// The server configuration's Token.
    pub token: String,
    /// From EncodingAESKey; `None`: plaintext mode only.
    pub key: Option<AesKey>,
    /// Key of the article-read beacon (`POST /v1/article_reads?key=…`); `None`: no beacon.
    pub beacon_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    account: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    app_id: String,
    token: String,
    #[serde(default)]
    encoding_aes_key: String,
    #[serde(default)]
    beacon_key: String,
}

/// Parses an accounts file's text.
pub fn parse(text: &str) -> anyhow::Result<HashMap<String, Account>> {
    let file: File = toml::from_str(text).context("accounts file")?;
    let mut out = HashMap::new();
    for e in file.account {
        anyhow::ensure!(
            !e.app_id.is_empty() && !e.token.is_empty(),
            "an account without app_id or token"
        );
        let key = if e.encoding_aes_key.is_empty() {
            None
        } else {
            Some(
                AesKey::from_encoding_aes_key(&e.encoding_aes_key)
                    .with_context(|| format!("account {}", e.app_id))?,
            )
        };
        anyhow::ensure!(
            out.insert(
                e.app_id.clone(),
                Account {
                    token: e.token,
                    key,
                    beacon_key: Some(e.beacon_key).filter(|k| !k.is_empty()),
                }
            )
            .is_none(),
            "account {} twice",
            e.app_id
        );
    }
    Ok(out)
}

/// The accounts of one reading of the file, and the file's modification time then.
type Loaded = (Arc<HashMap<String, Account>>, Option<SystemTime>);

/// The accounts, swapped whole when the file changes.
pub struct Accounts {
    path: PathBuf,
    current: RwLock<Loaded>,
}

impl Accounts {
    /// Loads `path`; a file that cannot be read or parsed stops the start.
    pub fn load(path: &Path) -> anyhow::Result<Accounts> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("gateway.accounts_file {}", path.display()))?;
        let accounts = parse(&text)?;
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Ok(Accounts {
            path: path.to_path_buf(),
            current: RwLock::new((Arc::new(accounts), modified)),
        })
    }

    /// The account of `app_id`.
    pub fn get(&self, app_id: &str) -> Option<Account> {
        self.current.read().ok()?.0.get(app_id).cloned()
    }

    /// The account whose beacon key is `key`, and its AppID.
    pub fn by_beacon_key(&self, key: &str) -> Option<String> {
        if key.is_empty() {
            return None;
        }
        let current = self.current.read().ok()?;
        current
            .0
            .iter()
            .find(|(_, a)| {
                a.beacon_key
                    .as_deref()
                    .is_some_and(|k| crate::crypto::same(k, key))
            })
            .map(|(app_id, _)| app_id.clone())
    }

    /// How many accounts are loaded.
    pub fn len(&self) -> usize {
        self.current.read().map_or(0, |c| c.0.len())
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-reads the file if its modification time changed; true when accounts changed.
    pub fn reload_if_changed(&self) -> bool {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let unchanged = self.current.read().map(|c| c.1 == modified).unwrap_or(true);
        if unchanged {
            return false;
        }
        match std::fs::read_to_string(&self.path)
            .map_err(anyhow::Error::from)
            .and_then(|t| parse(&t))
        {
            Ok(accounts) => {
                let n = accounts.len();
                if let Ok(mut c) = self.current.write() {
                    *c = (Arc::new(accounts), modified);
                }
                tracing::info!(accounts = n, "accounts file re-read");
                true
            }
            Err(e) => {
                if let Ok(mut c) = self.current.write() {
                    c.1 = modified;
                }
                tracing::error!(error = %format!("{e:#}"), "accounts file unreadable; keeping the accounts loaded before");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_parse_and_bad_keys_are_refused() {
        let ok = parse(
            "[[account]]\napp_id = \"wxa\"\ntoken = \"t\"\nencoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\n\
             [[account]]\napp_id = \"wxb\"\ntoken = \"u\"\n",
        )
        .expect("parses");
        assert!(ok["wxa"].key.is_some() && ok["wxb"].key.is_none());
        assert!(parse(
            "[[account]]\napp_id = \"wxa\"\ntoken = \"t\"\nencoding_aes_key = \"short\"\n"
        )
        .is_err());
        assert!(parse("[[account]]\napp_id = \"wxa\"\ntoken = \"t\"\n[[account]]\napp_id = \"wxa\"\ntoken = \"t\"\n").is_err());
    }
}
