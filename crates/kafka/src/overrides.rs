//! The librdkafka properties a user gives for every client (`[kafka.client]` in the config file,
//! `RAMPART_KAFKA__CLIENT__*`, `-X key=value`), with secrets kept out of every printout.
//!
//! - Keys are librdkafka property names. An `_` may stand for a `.` (`sasl_password` is
//!   `sasl.password`), because environment variable names cannot hold dots; librdkafka's
//!   string properties have no underscores, so nothing is lost.
//! - `KEY_file` (e.g. `sasl.password_file`, `RAMPART_KAFKA__CLIENT__SASL_PASSWORD_FILE`) reads
//!   KEY's value from a file, as Kubernetes and compose mount secrets; a trailing newline is
//!   dropped. [`Overrides::resolve_files`] does the reading.
//! - A value written as a TOML integer or boolean (`sasl.password = 12345`) is taken as its
//!   text: librdkafka properties are strings.
//! - [`is_secret`] values never show in `Debug`, in [`Overrides::redacted`] nor in this crate's
//!   error messages.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// What a secret value shows as wherever it would be printed.
pub const REDACTED: &str = "[redacted]";

/// Suffix of the keys that name a file holding the value of the key before it.
pub const FILE_SUFFIX: &str = "_file";

/// Whether `key`'s value is a secret (a password, a private key, a client secret).
pub fn is_secret(key: &str) -> bool {
    let key = key.strip_suffix(FILE_SUFFIX).unwrap_or(key);
    ["password", "secret", "passphrase", "private.key", "key.pem"]
        .iter()
        .any(|word| key.contains(word))
        // Unsecured JWT settings and inline key material.
        || matches!(key, "sasl.oauthbearer.config" | "ssl_key")
}

/// The librdkafka name of a user key: lower case, `_` for `.`, except a trailing `_file`.
pub fn normalize_key(key: &str) -> String {
    let key = key.trim().to_ascii_lowercase();
    match key.strip_suffix(FILE_SUFFIX) {
        Some(base) => format!("{}{FILE_SUFFIX}", base.replace('_', ".")),
        None => key.replace('_', "."),
    }
}

/// Passthrough librdkafka settings (`key = value`), applied after rampart's defaults.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Overrides(BTreeMap<String, String>);

/// A `*_file` setting that could not be turned into its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProblem {
    /// The key as written, e.g. `sasl.password_file`.
    pub key: String,
    /// What went wrong (names the file, never its content).
    pub message: String,
}

impl Overrides {
    /// No settings.
    pub fn new() -> Self {
        Overrides(BTreeMap::new())
    }

    /// Sets `key` (normalized, see [`normalize_key`]) to `value`.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl Into<String>) {
        self.0.insert(normalize_key(key.as_ref()), value.into());
    }

    /// The value of `key` (a librdkafka name).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Whether `key` (a librdkafka name) is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The settings in key order, secrets in clear: only for handing to librdkafka.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    /// Number of settings.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no setting.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The settings with every secret value replaced by [`REDACTED`], for printing.
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret(k) { REDACTED } else { v.as_str() };
                (k.clone(), shown.to_string())
            })
            .collect()
    }

    /// Replaces every `KEY_file = PATH` by `KEY = <content of PATH>` (one trailing newline
    /// dropped). Reports every unreadable or empty file, and every KEY given both ways.
    pub fn resolve_files(&self) -> Result<Overrides, Vec<FileProblem>> {
        let mut resolved = BTreeMap::new();
        let mut problems = Vec::new();
        for (key, value) in &self.0 {
            let Some(base) = key.strip_suffix(FILE_SUFFIX) else {
                resolved.insert(key.clone(), value.clone());
                continue;
            };
            if self.0.contains_key(base) {
                problems.push(FileProblem {
                    key: key.clone(),
                    message: format!("{base} is set too; set either {base} or {key}"),
                });
                continue;
            }
            match read_secret_file(Path::new(value)) {
                Ok(content) => {
                    resolved.insert(base.to_string(), content);
                }
                Err(message) => problems.push(FileProblem {
                    key: key.clone(),
                    message,
                }),
            }
        }
        if problems.is_empty() {
            Ok(Overrides(resolved))
        } else {
            Err(problems)
        }
    }
}

fn read_secret_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(text.to_string())
}

impl fmt::Debug for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.redacted()).finish()
    }
}

impl<K: AsRef<str>, V: Into<String>> FromIterator<(K, V)> for Overrides {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut o = Overrides::new();
        o.extend(iter);
        o
    }
}

impl<K: AsRef<str>, V: Into<String>> Extend<(K, V)> for Overrides {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<'a> IntoIterator for &'a Overrides {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A table of `key = value`; values may be strings, integers or booleans (taken as their text).
impl<'de> serde::Deserialize<'de> for Overrides {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Value {
            Text(String),
            Integer(i64),
            Flag(bool),
            Other(serde::de::IgnoredAny),
        }
        let map = BTreeMap::<String, Value>::deserialize(deserializer)?;
        let mut out = Overrides::new();
        for (key, value) in map {
            let text = match value {
                Value::Text(s) => s,
                Value::Integer(n) => n.to_string(),
                Value::Flag(b) => b.to_string(),
                // No value of it in the message: it may be a secret.
                Value::Other(_) => {
                    return Err(serde::de::Error::custom(format!(
                        "librdkafka setting `{key}` must be a string, an integer or a boolean \
                         (write it in quotes)"
                    )));
                }
            };
            out.insert(key, text);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_take_underscores_for_dots_but_keep_the_file_suffix() {
        assert_eq!(normalize_key("SASL_PASSWORD"), "sasl.password");
        assert_eq!(normalize_key("sasl_password_FILE"), "sasl.password_file");
        assert_eq!(normalize_key("sasl.password_file"), "sasl.password_file");
        assert_eq!(normalize_key("ssl.ca.location"), "ssl.ca.location");
    }

    #[test]
    fn secrets_are_recognised() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
            "ssl.key.pem",
            "sasl.password_file",
            "sasl.oauthbearer.config",
        ] {
            assert!(is_secret(key), "{key}");
        }
        for key in ["sasl.username", "ssl.key.location", "security.protocol"] {
            assert!(!is_secret(key), "{key}");
        }
    }

    #[test]
    fn debug_and_redacted_hide_secret_values() {
        let o: Overrides = [
            ("sasl.username", "alice"),
            ("sasl.password", "hunter2-s3cret"),
            ("ssl_key_password", "k3y-pass"),
        ]
        .into_iter()
        .collect();
        let shown = format!("{o:?} {:?}", o.redacted());
        assert!(shown.contains("alice"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("k3y-pass"),
            "{shown}"
        );
        assert_eq!(o.get("ssl.key.password"), Some("k3y-pass"));
    }

    #[test]
    fn file_keys_are_read_and_conflicts_reported() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("password");
        std::fs::write(&secret, "from-a-file\n").unwrap();
        let o: Overrides = [("sasl.password_file", secret.display().to_string())]
            .into_iter()
            .collect();
        let resolved = o.resolve_files().unwrap();
        assert_eq!(resolved.get("sasl.password"), Some("from-a-file"));
        assert!(!resolved.contains_key("sasl.password_file"));

        let both: Overrides = [
            ("sasl.password_file", secret.display().to_string()),
            ("sasl.password", "x".to_string()),
            ("ssl.key.password_file", "/nonexistent/rampart".to_string()),
        ]
        .into_iter()
        .collect();
        let problems = both.resolve_files().unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].message.contains("either"), "{problems:?}");
        assert!(problems[1].message.contains("/nonexistent/rampart"));
    }

    #[test]
    fn numbers_and_booleans_are_strings_and_floats_are_refused() {
        // As rampart's config loader does: from a parsed value, so errors carry no source line.
        let parse = |text: &str| text.parse::<toml::Table>().unwrap().try_into::<Overrides>();
        let o =
            parse("\"sasl.password\" = 12345\n\"enable.ssl.certificate.verification\" = false\n")
                .unwrap();
        assert_eq!(o.get("sasl.password"), Some("12345"));
        assert_eq!(o.get("enable.ssl.certificate.verification"), Some("false"));
        let err = parse("\"sasl.password\" = 1.5\n").unwrap_err();
        assert!(err.to_string().contains("sasl.password"), "{err}");
        assert!(!err.to_string().contains("1.5"), "{err}");
    }
}
