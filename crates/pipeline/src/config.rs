//! rampart's configuration: one TOML file, layered defaults → file → `RAMPART_*`
//! environment, every error reported at once with where it came from.
//!
//! Environment overrides name a key path with `__` between levels, upper case:
//! `RAMPART_KAFKA__BROKERS=10.0.0.1:9092`, `RAMPART_WINDOW__SIZE=30s`. Values
//! are read as TOML literals when they parse as one (numbers, booleans), else as
//! strings.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rampart_core::dedup::DedupConfig;
use rampart_core::fingerprint::{Field, FingerprintSpec};
use rampart_core::ingest::IngestConfig;
use rampart_core::validate::Limits;
use rampart_core::window::WindowConfig;
use serde::Deserialize;

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

/// Where a stage's guarantees come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guarantee {
    /// Kafka transactions: outputs and input offsets commit atomically; no
    /// duplicate and no loss through crashes (the default).
    ExactlyOnce,
    /// No transactions: outputs are flushed, then offsets committed. A crash
    /// between the two re-publishes the same rollups (same key, same bytes).
    AtLeastOnce,
}

/// The whole configuration. Every section and key has a default.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub kafka: KafkaSection,
    pub topics: TopicsSection,
    pub window: WindowSection,
    pub dedup: DedupSection,
    pub validate: ValidateSection,
    pub enrich: EnrichSection,
    pub processing: ProcessingSection,
    pub metrics: MetricsSection,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSection {
    /// `bootstrap.servers` (default `127.0.0.1:9092`).
    pub brokers: String,
    /// Consumer group of the ingest stage (default `rampart-ingest`).
    pub ingest_group: String,
    /// Consumer group of the merge stage (default `rampart-merge`).
    pub merge_group: String,
    /// Extra librdkafka settings for every client (security, tuning); `KEY_file` reads KEY
    /// from a file; secret values never print (see `rampart_kafka::overrides`).
    pub client: rampart_kafka::Overrides,
}

impl Default for KafkaSection {
    fn default() -> Self {
        KafkaSection {
            brokers: "127.0.0.1:9092".into(),
            ingest_group: "rampart-ingest".into(),
            merge_group: "rampart-merge".into(),
            client: rampart_kafka::Overrides::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsSection {
    pub input: String,
    pub partials: String,
    pub rollups: String,
    pub dlq: String,
    /// Create missing topics at start (default true). Existing topics are left as they are.
    pub create: bool,
    /// Partitions used when creating topics that are missing.
    pub input_partitions: i32,
    pub partials_partitions: i32,
    pub rollups_partitions: i32,
    pub dlq_partitions: i32,
    pub replication_factor: i32,
}

impl Default for TopicsSection {
    fn default() -> Self {
        TopicsSection {
            input: "attacks.raw".into(),
            partials: "rampart.partials".into(),
            rollups: "attacks.rollups".into(),
            dlq: "attacks.dlq".into(),
            create: true,
            input_partitions: 4,
            partials_partitions: 4,
            rollups_partitions: 4,
            dlq_partitions: 1,
            replication_factor: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowSection {
    /// Tumbling window length (default 60s).
    pub size: String,
    /// Bounded out-of-orderness of the watermark (default 5s).
    pub out_of_orderness: String,
    /// How long after its end a window still takes events (default 10s).
    pub allowed_lateness: String,
    /// After this much processing time without input, a partition's watermark
    /// advances by processing time (default 30s).
    pub idle_timeout: String,
}

impl Default for WindowSection {
    fn default() -> Self {
        WindowSection {
            size: "60s".into(),
            out_of_orderness: "5s".into(),
            allowed_lateness: "10s".into(),
            idle_timeout: "30s".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupSection {
    /// How long (event time) a fingerprint is remembered (default 10m).
    pub horizon: String,
    /// Width of one dedup time bucket (default 1m).
    pub bucket: String,
    /// Memory budget of one partition's dedup table (default 256MiB).
    pub budget: String,
    /// Fingerprint fields: "auto" (event_id when present, else the 5-tuple,
    /// kind, rule id and time bucket) or a list such as
    /// ["src_ip", "dst_ip", "dst_port", "time_bucket"].
    pub fields: FieldsSetting,
    /// Time bucket used by the `time_bucket` fingerprint field (default 1s).
    pub time_bucket: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FieldsSetting {
    Auto(String),
    List(Vec<String>),
}

impl Default for DedupSection {
    fn default() -> Self {
        DedupSection {
            horizon: "10m".into(),
            bucket: "1m".into(),
            budget: "256MiB".into(),
            fields: FieldsSetting::Auto("auto".into()),
            time_bucket: "1s".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidateSection {
    /// Most events one Kafka message may carry (default 100000).
    pub max_batch_events: usize,
    /// Largest event time ahead of the Kafka message timestamp (default 5m).
    pub max_future: String,
    /// Largest event time behind the Kafka message timestamp (default 7d).
    pub max_past: String,
}

impl Default for ValidateSection {
    fn default() -> Self {
        ValidateSection {
            max_batch_events: 100_000,
            max_future: "5m".into(),
            max_past: "7d".into(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichSection {
    /// GeoLite2-Country (or City) shaped MMDB; without it every origin country is `ZZ`.
    pub country_db: Option<PathBuf>,
    /// GeoLite2-ASN shaped MMDB; without it every ASN is 0.
    pub asn_db: Option<PathBuf>,
    /// Asset inventory, CSV (`cidr,sector`) or TOML (`[[asset]]`); without it every sector is `unknown`.
    pub sectors: Option<PathBuf>,
    /// Dotted path of the two-letter country code in `country_db`'s records for a database
    /// that is not GeoIP2/GeoLite2/DB-IP shaped (e.g. `country_code`); default `country.iso_code`.
    pub country_field: Option<String>,
    /// Dotted path of the AS number (a number, or text like `AS13335`) in `asn_db`'s records;
    /// default `autonomous_system_number`.
    pub asn_field: Option<String>,
}

impl EnrichSection {
    /// Where the MMDB files keep country and ASN.
    pub fn origin_fields(&self) -> rampart_enrich::OriginFields {
        let defaults = rampart_enrich::OriginFields::default();
        rampart_enrich::OriginFields {
            country: self.country_field.clone().unwrap_or(defaults.country),
            asn: self.asn_field.clone().unwrap_or(defaults.asn),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessingSection {
    /// `exactly-once` (default) or `at-least-once`.
    pub guarantee: Guarantee,
    /// How often outputs and offsets are committed (default 1s).
    pub checkpoint_interval: String,
    /// Prefix of transactional ids; each stage instance appends role and a
    /// stable instance id (default `rampart`).
    pub transactional_id_prefix: String,
    /// Ingest threads in this process, each its own consumer-group member
    /// with its own partitions (0 = one per CPU core, at most one per input
    /// partition).
    pub ingest_threads: usize,
}

impl Default for ProcessingSection {
    fn default() -> Self {
        ProcessingSection {
            guarantee: Guarantee::ExactlyOnce,
            checkpoint_interval: "1s".into(),
            transactional_id_prefix: "rampart".into(),
            ingest_threads: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Address of the `/metrics`, `/health` and `/ready` endpoints
    /// (default `127.0.0.1:9898`; port 0 picks a free one; empty disables).
    pub listen: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: "127.0.0.1:9898".into(),
        }
    }
}

/// The configuration in the units the stages use, after validation.
#[derive(Clone, Debug)]
pub struct Settings {
    pub raw: Config,
    pub ingest: IngestConfig,
    pub idle_timeout_ms: i64,
    pub checkpoint_interval_ms: i64,
    /// `rampart run --reset-state` (not a file setting): a partition whose
    /// checkpoint is refused (metadata missing, unreadable or of a newer
    /// version; a changed partition count) starts from its committed offset
    /// with empty state instead of stopping the stage.
    pub reset_state: bool,
}

/// Parses a duration such as `500ms`, `10s`, `5m`, `2h`, `7d` into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (expected e.g. 500ms, 10s, 5m, 2h, 7d)"))?;
    let mult = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "invalid duration {s:?} (expected e.g. 500ms, 10s, 5m, 2h, 7d)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("duration {s:?} is too large"))
}

/// Parses a size such as `256MiB`, `1GiB`, `64KiB`, `1000000` (bytes).
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (expected e.g. 64MiB, 2GiB)"))?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(format!("invalid size {s:?} (expected e.g. 64MiB, 2GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

fn parse_field(name: &str) -> Option<Field> {
    Some(match name {
        "event_id" => Field::EventId,
        "src_ip" => Field::SrcIp,
        "dst_ip" => Field::DstIp,
        "src_port" => Field::SrcPort,
        "dst_port" => Field::DstPort,
        "protocol" => Field::Protocol,
        "kind" => Field::Kind,
        "rule_id" => Field::RuleId,
        "time_bucket" => Field::TimeBucket,
        "time" => Field::Time,
        "sensor_id" => Field::SensorId,
        _ => return None,
    })
}

const SECTIONS: [&str; 8] = [
    "kafka",
    "topics",
    "window",
    "dedup",
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
            "topics" => value.clone().try_into().map(|v| cfg.topics = v),
            "window" => value.clone().try_into().map(|v| cfg.window = v),
            "dedup" => value.clone().try_into().map(|v| cfg.dedup = v),
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
    let settings = check(cfg, &file_label, &mut issues);
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

/// Semantic checks that need more than types; every problem is collected.
fn check(mut cfg: Config, source: &str, issues: &mut Vec<ConfigIssue>) -> Option<Settings> {
    let mut issue = |key: &str, message: String| {
        issues.push(ConfigIssue {
            source: source.to_string(),
            key: key.to_string(),
            message,
        })
    };
    let mut dur = |key: &str, v: &str, min: i64| -> i64 {
        match parse_duration_ms(v) {
            Ok(ms) if ms < min => {
                issue(key, format!("must be at least {min}ms, got {v:?}"));
                0
            }
            Ok(ms) => ms,
            Err(e) => {
                issue(key, e);
                0
            }
        }
    };
    let size = dur("window.size", &cfg.window.size, 1);
    let ooo = dur("window.out_of_orderness", &cfg.window.out_of_orderness, 0);
    let lateness = dur("window.allowed_lateness", &cfg.window.allowed_lateness, 0);
    let idle = dur("window.idle_timeout", &cfg.window.idle_timeout, 1);
    let horizon = dur("dedup.horizon", &cfg.dedup.horizon, 0);
    let bucket = dur("dedup.bucket", &cfg.dedup.bucket, 1);
    let time_bucket = dur("dedup.time_bucket", &cfg.dedup.time_bucket, 1);
    let max_future = dur("validate.max_future", &cfg.validate.max_future, 0);
    let max_past = dur("validate.max_past", &cfg.validate.max_past, 0);
    let checkpoint = dur(
        "processing.checkpoint_interval",
        &cfg.processing.checkpoint_interval,
        10,
    );
    let mut issue = |key: &str, message: String| {
        issues.push(ConfigIssue {
            source: source.to_string(),
            key: key.to_string(),
            message,
        })
    };
    let budget = match parse_bytes(&cfg.dedup.budget) {
        Ok(b) => b,
        Err(e) => {
            issue("dedup.budget", e);
            0
        }
    };
    let fingerprint = match &cfg.dedup.fields {
        FieldsSetting::Auto(s) if s == "auto" => FingerprintSpec::Auto {
            time_bucket_ms: time_bucket,
        },
        FieldsSetting::Auto(s) => {
            issue(
                "dedup.fields",
                format!("expected \"auto\" or a list of fields, got {s:?}"),
            );
            FingerprintSpec::default()
        }
        FieldsSetting::List(names) => {
            let mut fields = Vec::new();
            for n in names {
                match parse_field(n) {
                    Some(f) => fields.push(f),
                    None => issue(
                        "dedup.fields",
                        format!(
                            "unknown field {n:?} (expected event_id, src_ip, dst_ip, src_port, dst_port, protocol, kind, rule_id, time_bucket, time, sensor_id)"
                        ),
                    ),
                }
            }
            if names.is_empty() {
                issue("dedup.fields", "must name at least one field".into());
            }
            FingerprintSpec::Fields {
                fields,
                time_bucket_ms: time_bucket,
            }
        }
    };
    if cfg.kafka.brokers.trim().is_empty() {
        issue("kafka.brokers", "must not be empty".into());
    }
    match cfg.kafka.client.resolve_files() {
        Ok(resolved) => cfg.kafka.client = resolved,
        Err(problems) => {
            for p in problems {
                issue(&format!("kafka.client.{}", p.key), p.message);
            }
        }
    }
    for (key, name) in [
        ("topics.input", &cfg.topics.input),
        ("topics.partials", &cfg.topics.partials),
        ("topics.rollups", &cfg.topics.rollups),
        ("topics.dlq", &cfg.topics.dlq),
    ] {
        let valid = !name.is_empty()
            && name.len() <= 249
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            issue(
                key,
                format!("{name:?} is not a valid Kafka topic name ([a-zA-Z0-9._-], 1..=249 chars)"),
            );
        }
    }
    for (key, n) in [
        ("topics.input_partitions", cfg.topics.input_partitions),
        ("topics.partials_partitions", cfg.topics.partials_partitions),
        ("topics.rollups_partitions", cfg.topics.rollups_partitions),
        ("topics.dlq_partitions", cfg.topics.dlq_partitions),
        ("topics.replication_factor", cfg.topics.replication_factor),
    ] {
        if n < 1 {
            issue(key, format!("must be at least 1, got {n}"));
        }
    }
    if cfg.validate.max_batch_events == 0 {
        issue("validate.max_batch_events", "must be at least 1".into());
    }
    for (key, p) in [
        ("enrich.country_db", &cfg.enrich.country_db),
        ("enrich.asn_db", &cfg.enrich.asn_db),
        ("enrich.sectors", &cfg.enrich.sectors),
    ] {
        if let Some(p) = p.as_ref().filter(|p| !p.is_file()) {
            issue(key, format!("no such file: {}", p.display()));
        }
    }
    // The databases `run` would refuse (another schema, a missing field).
    fn existing(p: &Option<PathBuf>) -> Option<&Path> {
        p.as_deref().filter(|p| p.is_file())
    }
    let (country_db, asn_db) = (
        existing(&cfg.enrich.country_db),
        existing(&cfg.enrich.asn_db),
    );
    if country_db.is_some() || asn_db.is_some() {
        let fields = cfg.enrich.origin_fields();
        if let Err(e) = rampart_enrich::MmdbOrigin::open_with(country_db, asn_db, &fields) {
            let key = match &e {
                rampart_enrich::EnrichError::Schema { key, .. } => format!("enrich.{key}"),
                _ => "enrich".to_string(),
            };
            issue(&key, e.to_string());
        }
    }
    if !cfg.metrics.listen.is_empty() && cfg.metrics.listen.parse::<std::net::SocketAddr>().is_err()
    {
        issue(
            "metrics.listen",
            format!(
                "{:?} is not an address such as 127.0.0.1:9898",
                cfg.metrics.listen
            ),
        );
    }
    if bucket > 0 && horizon > 0 && bucket > horizon {
        issue(
            "dedup.bucket",
            format!("must not exceed dedup.horizon ({})", cfg.dedup.horizon),
        );
    }
    if !issues.is_empty() {
        return None;
    }
    let ingest = IngestConfig {
        window: WindowConfig {
            size_ms: size,
            out_of_orderness_ms: ooo,
            allowed_lateness_ms: lateness,
        },
        dedup: DedupConfig {
            horizon_ms: horizon,
            bucket_ms: bucket,
            budget_bytes: budget,
        },
        fingerprint,
        limits: Limits {
            max_batch_events: cfg.validate.max_batch_events,
            max_future_ms: max_future,
            max_past_ms: max_past,
            ..Limits::default()
        },
    };
    Some(Settings {
        raw: cfg,
        ingest,
        idle_timeout_ms: idle,
        checkpoint_interval_ms: checkpoint,
        reset_state: false,
    })
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
    fn defaults_are_valid() {
        let s = load(None, []).unwrap();
        assert_eq!(s.ingest.window.size_ms, 60_000);
        assert_eq!(s.ingest.dedup.budget_bytes, 256 << 20);
        assert_eq!(s.raw.processing.guarantee, Guarantee::ExactlyOnce);
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

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
        assert!(parse_duration_ms("").is_err());
        assert!(parse_duration_ms("99999999999999999999d").is_err());
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert!(parse_bytes("1TB").is_err());
    }
}
