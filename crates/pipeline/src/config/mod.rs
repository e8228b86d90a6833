//! rampart's configuration: one TOML file, layered defaults → file → `RAMPART_*`
//! environment, every error reported at once with where it came from.
//!
//! Environment overrides name a key path with `__` between levels, upper case:
//! `RAMPART_KAFKA__BROKERS=10.0.0.1:9092`, `RAMPART_WINDOW__SIZE=30s`. Values
//! are read as TOML literals when they parse as one (numbers, booleans), else as
//! strings.
//!
//! Files: this one loads (file, environment, `-X` settings) and reports;
//! `sections` holds the serde structs of each TOML section with their
//! defaults; `check` turns them into [`Settings`], collecting every problem.

mod check;
mod sections;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use rampart_core::ingest::IngestConfig;

pub use check::{parse_bytes, parse_duration_ms};
pub use sections::{
    Config, DedupSection, EnrichSection, FieldsSetting, Guarantee, InputSection, KafkaSection,
    MetricsSection, ProcessingSection, TopicsSection, ValidateSection, WindowSection,
};

/// One configuration problem, with the place it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The file, or `env RAMPART_...`, or `defaults`.
    pub source: String,
    /// Dotted key path, e.g. `window.size`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(f, "{}: key `{}`: {}", self.source, self.key, self.message)
        }
    }
}

/// Every problem found while loading a configuration.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        writeln!(
            f,
            "{n} configuration error{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for i in &self.issues {
            writeln!(f, "  - {i}")?;
        }
        Ok(())
    }
}

/// The configuration in the units the stages use, after validation.
#[derive(Clone, Debug)]
pub struct Settings {
    pub raw: Config,
    pub ingest: IngestConfig,
    pub idle_timeout_ms: i64,
    /// `processing.memory_budget` in bytes, if set.
    pub memory_budget: Option<usize>,
    pub checkpoint_interval_ms: i64,
    /// `processing.caught_up_checkpoint_after`, at most the interval.
    pub caught_up_checkpoint_ms: i64,
    /// `topics.rollups_retention` in milliseconds.
    pub rollups_retention_ms: i64,
    /// `rampart run --reset-state` (not a file setting): a partition whose
    /// checkpoint is refused (metadata missing, unreadable or of a newer
    /// version; a changed partition count) starts from its committed offset
    /// with empty state instead of stopping the stage.
    pub reset_state: bool,
    /// The input topics in config order (never empty): `[[inputs]]`, or
    /// `topics.input` as protobuf when there is none.
    pub inputs: Vec<InputSection>,
}

const SECTIONS: [&str; 10] = [
    "kafka",
    "inputs",
    "topics",
    "window",
    "dedup",
    "keys",
    "validate",
    "enrich",
    "processing",
    "metrics",
];

/// Loads the configuration: defaults, then `path` (if given), then the
/// `RAMPART_*` variables in `env`. Returns every problem at once.
pub fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigError> {
    load_with_client(path, env, &[])
}

/// [`load`], then librdkafka settings from the command line (`-X key=value`), which win.
pub fn load_with_client(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    client_args: &[(String, String)],
) -> Result<Settings, ConfigError> {
    let mut issues = Vec::new();
    let file_label = path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "defaults".into());
    let mut table = toml::Table::new();
    if let Some(p) = path {
        match std::fs::read_to_string(p) {
            Err(e) => issues.push(ConfigIssue {
                source: file_label.clone(),
                key: String::new(),
                message: format!("cannot read: {e}"),
            }),
            Ok(text) => match text.parse::<toml::Table>() {
                Ok(t) => table = t,
                // Without the quoted source line: it may hold a secret.
                Err(e) => issues.push(ConfigIssue {
                    source: file_label.clone(),
                    key: String::new(),
                    message: format!(
                        "not valid TOML at line {}: {}",
                        e.span()
                            .map_or(0, |s| text[..s.start].lines().count().max(1)),
                        e.message()
                    ),
                }),
            },
        }
    }
    // Where each top-level section's values came from, for error messages.
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("RAMPART_") else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.len() < 2 || path.iter().any(String::is_empty) {
            // Variables such as RAMPART_LOG are not configuration keys.
            continue;
        }
        // librdkafka settings stay strings as given: `12345` or `0x1F` is a password, not a number.
        let parsed = if path.starts_with(&["kafka".to_string(), "client".to_string()]) {
            toml::Value::String(value.clone())
        } else {
            format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(value.clone()))
        };
        if let Err(message) = set_path(&mut table, &path, parsed) {
            issues.push(ConfigIssue {
                source: format!("env {name}"),
                key: path.join("."),
                message,
            });
        } else {
            origin.insert(path[0].clone(), format!("{file_label} (with env {name})"));
        }
    }
    for (key, value) in client_args {
        let path = ["kafka".to_string(), "client".to_string(), key.clone()];
        if let Err(message) = set_path(&mut table, &path, toml::Value::String(value.clone())) {
            issues.push(ConfigIssue {
                source: format!("-X {key}"),
                key: path.join("."),
                message,
            });
        } else {
            origin.insert("kafka".into(), format!("{file_label} (with -X {key})"));
        }
    }
    let mut cfg = Config::default();
    for (section, value) in &table {
        let source = origin
            .get(section)
            .cloned()
            .unwrap_or_else(|| file_label.clone());
        let res = match section.as_str() {
            "kafka" => value.clone().try_into().map(|v| cfg.kafka = v),
            "inputs" => value.clone().try_into().map(|v| cfg.inputs = v),
            "topics" => value.clone().try_into().map(|v| cfg.topics = v),
            "window" => value.clone().try_into().map(|v| cfg.window = v),
            "dedup" => value.clone().try_into().map(|v| cfg.dedup = v),
            "keys" => value.clone().try_into().map(|v| cfg.keys = v),
            "validate" => value.clone().try_into().map(|v| cfg.validate = v),
            "enrich" => value.clone().try_into().map(|v| cfg.enrich = v),
            "processing" => value.clone().try_into().map(|v| cfg.processing = v),
            "metrics" => value.clone().try_into().map(|v| cfg.metrics = v),
            other => {
                issues.push(ConfigIssue {
                    source,
                    key: other.to_string(),
                    message: format!("unknown section (expected one of {})", SECTIONS.join(", ")),
                });
                continue;
            }
        };
        if let Err(e) = res {
            issues.push(ConfigIssue {
                source,
                key: section.clone(),
                message: e.to_string().trim().to_string(),
            });
        }
    }
    let settings = check::check(cfg, &file_label, &mut issues);
    if issues.is_empty() {
        settings.ok_or(ConfigError { issues: Vec::new() })
    } else {
        Err(ConfigError { issues })
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut cur = table;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{p}` is not a table"))?;
    }
    cur.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn the_documented_example_is_exactly_the_defaults() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/rampart.toml");
        let s = load(Some(Path::new(example)), []).unwrap();
        assert_eq!(s.raw, Config::default());
    }

    #[test]
    fn a_caught_up_checkpoint_comes_at_most_one_interval_after_the_last() {
        assert_eq!(load(None, []).unwrap().caught_up_checkpoint_ms, 100);
        let f = write("[processing]\ncheckpoint_interval = \"50ms\"\n");
        assert_eq!(
            load(Some(f.path()), []).unwrap().caught_up_checkpoint_ms,
            50
        );
        let f = write("[processing]\ncaught_up_checkpoint_after = \"1ms\"\n");
        let err = load(Some(f.path()), []).unwrap_err().to_string();
        assert!(
            err.contains("processing.caught_up_checkpoint_after"),
            "{err}"
        );
    }

    #[test]
    fn merge_threads_default_to_the_cores_up_to_the_partials_partitions() {
        let s = load(None, []).unwrap().raw.processing;
        assert_eq!(s.merge_threads_for(1), 1);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(s.merge_threads_for(64), cores.min(64));
        let f = write("[processing]\nmerge_threads = 3\n");
        let s = load(Some(f.path()), []).unwrap().raw.processing;
        assert_eq!(s.merge_threads_for(1), 3);
    }

    #[test]
    fn defaults_are_valid() {
        let s = load(None, []).unwrap();
        assert_eq!(s.ingest.window.size_ms, 60_000);
        assert_eq!(s.ingest.dedup.budget_bytes, 1 << 30);
        assert_eq!(s.raw.processing.guarantee, Guarantee::ExactlyOnce);
        assert!(s.raw.enrich.origin_table);
        let off = load(
            None,
            [("RAMPART_ENRICH__ORIGIN_TABLE".into(), "false".into())],
        )
        .unwrap();
        assert!(!off.raw.enrich.origin_table);
    }

    #[test]
    fn key_budgets_default_from_memory_and_zero_means_all() {
        let s = load(None, []).unwrap();
        let cell = rampart_core::budget::ORIGIN_CELL_BYTES;
        assert_eq!(s.ingest.keys.prefix_cells, (64 << 20) / (2 * cell));
        assert_eq!(s.ingest.keys.publish_top_keys, usize::MAX);
        assert_eq!(s.ingest.keys.count_entries, 1024);
        let f = write("[keys]\nprefix_cells = 7\npublish_top = 3\ncount_entries = 0\n");
        let s = load(Some(f.path()), []).unwrap();
        assert_eq!(
            s.ingest.keys,
            rampart_core::budget::KeyBudget {
                prefix_cells: 7,
                publish_top_keys: 3,
                count_entries: usize::MAX,
            }
        );
        // What `run` could not size is refused by the same load check-config runs.
        let f = write("[keys]\nmemory = \"1KiB\"\n");
        let err = load(Some(f.path()), []).unwrap_err();
        assert!(err.to_string().contains("keys.memory"), "{err}");
        let f = write("[keys]\nmemory = \"plenty\"\n");
        let err = load(Some(f.path()), []).unwrap_err();
        assert!(err.to_string().contains("keys.memory"), "{err}");
    }

    #[test]
    fn memory_budget_must_hold_the_queues_and_one_partition() {
        assert_eq!(load(None, []).unwrap().memory_budget, None);
        let f = write("[processing]\ningest_threads = 2\nmemory_budget = \"2GiB\"\n");
        assert_eq!(
            load(Some(f.path()), []).unwrap().memory_budget,
            Some(2 << 30)
        );
        // Three stage threads' queues alone are 3 x 288 MiB.
        let f = write(
            "[processing]\ningest_threads = 2\nmerge_threads = 1\nmemory_budget = \"800MiB\"\n",
        );
        let err = load(Some(f.path()), []).unwrap_err();
        assert!(
            err.to_string().contains("processing.memory_budget"),
            "{err}"
        );
        let f = write("[processing]\nmemory_budget = \"lots\"\n");
        assert!(load(Some(f.path()), []).is_err());
    }

    #[test]
    fn inputs_name_topics_and_formats_and_default_to_the_protobuf_input() {
        use rampart_formats::Format;
        let s = load(None, []).unwrap();
        let one = |topic: &str, format| InputSection {
            topic: topic.into(),
            format,
        };
        assert_eq!(s.inputs, vec![one("attacks.raw", Format::Protobuf)]);
        let f = write(
            "[[inputs]]\ntopic = \"eve\"\nformat = \"suricata-eve\"\n\n\
             [[inputs]]\ntopic = \"raw\"\n",
        );
        let s = load(Some(f.path()), []).unwrap();
        assert_eq!(
            s.inputs,
            vec![
                one("eve", Format::SuricataEve),
                one("raw", Format::Protobuf)
            ]
        );
        // A topic twice, topics.input beside [[inputs]], a bad name, an
        // unknown format: each named.
        let f = write(
            "[topics]\ninput = \"x\"\n[[inputs]]\ntopic = \"a\"\n[[inputs]]\ntopic = \"a\"\n\
             [[inputs]]\ntopic = \"no spaces\"\n",
        );
        let text = load(Some(f.path()), []).unwrap_err().to_string();
        for needle in [
            "inputs[1].topic",
            "named by two inputs",
            "key `topics.input`",
            "inputs[2].topic",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        let f = write("[[inputs]]\ntopic = \"a\"\nformat = \"netflow\"\n");
        let text = load(Some(f.path()), []).unwrap_err().to_string();
        assert!(
            text.contains("inputs") && text.contains("netflow"),
            "{text}"
        );
    }

    #[test]
    fn file_then_env_override() {
        let f = write("[window]\nsize = \"30s\"\n[kafka]\nbrokers = \"a:1\"\n");
        let env = [("RAMPART_WINDOW__SIZE".to_string(), "10s".to_string())];
        let s = load(Some(f.path()), env).unwrap();
        assert_eq!(s.ingest.window.size_ms, 10_000);
        assert_eq!(s.raw.kafka.brokers, "a:1");
    }

    #[test]
    fn every_error_is_reported_with_file_and_key() {
        let f = write(
            "[window]\nsize = \"6x\"\n[dedup]\nbudget = \"lots\"\nfields = [\"src_ip\", \"colour\"]\n[topics]\nsurprise = 1\n[bogus]\n",
        );
        let err = load(Some(f.path()), []).unwrap_err();
        let text = err.to_string();
        let file = f.path().display().to_string();
        for needle in [
            "window.size",
            "dedup.budget",
            "colour",
            "surprise",
            "bogus",
            file.as_str(),
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert!(err.issues.len() >= 5, "{text}");
    }

    #[test]
    fn the_dedup_horizon_may_span_at_most_254_buckets() {
        // 10 min + 5 s of out-of-orderness in 1 min buckets: fine.
        let f = write("[dedup]\nhorizon = \"10m\"\nbucket = \"1m\"\n");
        assert!(load(Some(f.path()), []).is_ok());
        // 254 buckets exactly pass, one millisecond more does not.
        let f = write(
            "[window]\nout_of_orderness = \"0s\"\n[dedup]\nhorizon = \"254s\"\nbucket = \"1s\"\n",
        );
        assert!(load(Some(f.path()), []).is_ok());
        let f = write(
            "[window]\nout_of_orderness = \"1ms\"\n[dedup]\nhorizon = \"254s\"\nbucket = \"1s\"\n",
        );
        let err = load(Some(f.path()), []).unwrap_err();
        assert_eq!(err.issues.len(), 1, "{err}");
        assert_eq!(err.issues[0].key, "dedup.bucket");
        assert!(err.issues[0].message.contains("254 buckets"), "{err}");
    }

    #[test]
    fn a_checkpoint_interval_must_stay_within_half_the_transaction_timeout() {
        // Rampart's default timeout is 60 s: 30 s passes, 31 s does not.
        let f = write("[processing]\ncheckpoint_interval = \"30s\"\n");
        assert!(load(Some(f.path()), []).is_ok());
        let f = write("[processing]\ncheckpoint_interval = \"31s\"\n");
        let err = load(Some(f.path()), []).unwrap_err();
        assert_eq!(err.issues.len(), 1, "{err}");
        let issue = &err.issues[0];
        assert_eq!(issue.key, "processing.checkpoint_interval");
        assert_eq!(issue.source, f.path().display().to_string());
        assert!(issue.message.contains("60000 ms"), "{err}");
        // A timeout given in kafka.client is the one compared.
        let f = write(
            "[processing]\ncheckpoint_interval = \"5s\"\n[kafka.client]\n\"transaction.timeout.ms\" = \"9000\"\n",
        );
        let err = load(Some(f.path()), []).unwrap_err().to_string();
        assert!(
            err.contains("processing.checkpoint_interval") && err.contains("9000 ms, kafka.client"),
            "{err}"
        );
        // At-least-once opens no transaction.
        let f =
            write("[processing]\ncheckpoint_interval = \"5m\"\nguarantee = \"at-least-once\"\n");
        assert!(load(Some(f.path()), []).is_ok());
    }

    #[test]
    fn env_errors_name_the_variable() {
        let env = [("RAMPART_WINDOW__SIZE".to_string(), "soon".to_string())];
        let err = load(None, env).unwrap_err();
        assert!(err.to_string().contains("window.size"), "{err}");
    }

    #[test]
    fn client_secrets_from_env_file_and_command_line_stay_strings_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let key_pass = dir.path().join("key-password");
        std::fs::write(&key_pass, "file-s3cret\n").unwrap();
        let f = write(&format!(
            "[kafka.client]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.password\" = 424242\n\"ssl.key.password_file\" = \"{}\"\n",
            key_pass.display()
        ));
        let env = [
            // Overrides the file's numeric password; stays the exact string.
            (
                "RAMPART_KAFKA__CLIENT__SASL_PASSWORD".to_string(),
                "0x1F".to_string(),
            ),
            (
                "RAMPART_KAFKA__CLIENT__SASL_USERNAME".to_string(),
                "alice".to_string(),
            ),
        ];
        let cli = [("sasl.mechanism".to_string(), "SCRAM-SHA-512".to_string())];
        let s = load_with_client(Some(f.path()), env, &cli).unwrap();
        let c = &s.raw.kafka.client;
        assert_eq!(c.get("sasl.password"), Some("0x1F"));
        assert_eq!(c.get("sasl.username"), Some("alice"));
        assert_eq!(c.get("ssl.key.password"), Some("file-s3cret"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert!(!c.contains_key("ssl.key.password_file"));
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("0x1F") && !shown.contains("file-s3cret"),
            "{shown}"
        );

        let f = write("[kafka.client]\n\"sasl.password\" = 7\n");
        assert_eq!(
            load(Some(f.path()), [])
                .unwrap()
                .raw
                .kafka
                .client
                .get("sasl.password"),
            Some("7")
        );
    }

    #[test]
    fn client_file_errors_name_the_key_and_bad_toml_hides_the_line() {
        let f = write("[kafka.client]\n\"sasl.password_file\" = \"/nonexistent/pw\"\n");
        let err = load(Some(f.path()), []).unwrap_err().to_string();
        assert!(
            err.contains("kafka.client.sasl.password_file") && err.contains("/nonexistent/pw"),
            "{err}"
        );
        let f = write("[kafka.client]\n\"sasl.password\" = \"hunter2\" oops\n");
        let err = load(Some(f.path()), []).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
