//! Semantic checks of a parsed [`Config`]: durations, sizes, fingerprint
//! fields, topic names, files and addresses, every problem collected at once,
//! and the conversion into the units the stages use ([`Settings`]).

use std::path::{Path, PathBuf};

use rampart_core::budget::{KeyBudget, ORIGIN_CELL_BYTES};
use rampart_core::dedup::DedupConfig;
use rampart_core::fingerprint::{Field, FingerprintSpec};
use rampart_core::ingest::IngestConfig;
use rampart_core::validate::Limits;
use rampart_core::window::WindowConfig;

use super::sections::KeysSection;
use super::{Config, ConfigIssue, FieldsSetting, InputSection, Settings, TopicsSection};

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

/// Under exactly-once a transaction stays open for one checkpoint interval
/// plus its commit; the broker aborts one older than the producer's
/// `transaction.timeout.ms`, which fences the stage. The interval must be at
/// most half the timeout, so a slow commit still lands in time.
fn checkpoint_outlives_transaction(cfg: &Config, checkpoint_ms: i64) -> Option<String> {
    if cfg.processing.guarantee != super::Guarantee::ExactlyOnce {
        return None;
    }
    const KEY: &str = "transaction.timeout.ms";
    let default = rampart_kafka::config::TRANSACTIONAL_DEFAULTS
        .iter()
        .find(|(k, _)| *k == KEY)
        .map_or("60000", |(_, v)| *v);
    let given = cfg.kafka.client.get(KEY);
    // An unreadable value is librdkafka's to refuse (check-config says so).
    let timeout_ms: i64 = given.unwrap_or(default).trim().parse().ok()?;
    (checkpoint_ms.saturating_mul(2) > timeout_ms).then(|| {
        let from = if given.is_some() {
            "kafka.client"
        } else {
            "rampart's default"
        };
        format!(
            "{} ms is more than half of {KEY} ({timeout_ms} ms, {from}): a transaction stays \
             open one checkpoint interval plus its commit, and the broker aborts one older than \
             {KEY}, which fences the stage; shorten the interval or raise {KEY}",
            checkpoint_ms
        )
    })
}

/// Semantic checks that need more than types; every problem is collected.
pub(super) fn check(
    mut cfg: Config,
    source: &str,
    issues: &mut Vec<ConfigIssue>,
) -> Option<Settings> {
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
    let rollups_retention = dur("topics.rollups_retention", &cfg.topics.rollups_retention, 1);
    let checkpoint = dur(
        "processing.checkpoint_interval",
        &cfg.processing.checkpoint_interval,
        10,
    );
    let caught_up_checkpoint = dur(
        "processing.caught_up_checkpoint_after",
        &cfg.processing.caught_up_checkpoint_after,
        10,
    );
    let mut issue = |key: &str, message: String| {
        issues.push(ConfigIssue {
            source: source.to_string(),
            key: key.to_string(),
            message,
        })
    };
    if let Some(message) = checkpoint_outlives_transaction(&cfg, checkpoint) {
        issue("processing.checkpoint_interval", message);
    }
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
    let inputs = if cfg.inputs.is_empty() {
        vec![InputSection {
            topic: cfg.topics.input.clone(),
            format: rampart_formats::Format::Protobuf,
        }]
    } else {
        if cfg.topics.input != TopicsSection::default().input {
            issue(
                "topics.input",
                "name the input topics in [[inputs]] only (topics.input is the one input when there is no [[inputs]])".into(),
            );
        }
        cfg.inputs.clone()
    };
    let input_keys: Vec<String> = (0..inputs.len())
        .map(|i| format!("inputs[{i}].topic"))
        .collect();
    for (i, input) in inputs.iter().enumerate() {
        if inputs[..i].iter().any(|other| other.topic == input.topic) {
            issue(
                &input_keys[i],
                format!("{:?} is named by two inputs", input.topic),
            );
        }
    }
    let named_inputs = inputs
        .iter()
        .zip(&input_keys)
        .filter(|_| !cfg.inputs.is_empty())
        .map(|(input, key)| (key.as_str(), &input.topic));
    for (key, name) in [
        ("topics.input", &cfg.topics.input),
        ("topics.partials", &cfg.topics.partials),
        ("topics.rollups", &cfg.topics.rollups),
        ("topics.dlq", &cfg.topics.dlq),
    ]
    .into_iter()
    .chain(named_inputs)
    {
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
    if let Some(n) = cfg.topics.min_insync_replicas
        && (n < 1 || n > cfg.topics.replication_factor)
    {
        issue(
            "topics.min_insync_replicas",
            format!(
                "must be between 1 and topics.replication_factor ({}), got {n}: with more, no write is ever acknowledged",
                cfg.topics.replication_factor
            ),
        );
    }
    if rollups_retention > 0 && rollups_retention < size {
        issue(
            "topics.rollups_retention",
            format!(
                "must be at least one window ({}), got {:?}",
                cfg.window.size, cfg.topics.rollups_retention
            ),
        );
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
    if bucket > 0 && ooo.saturating_add(horizon) > bucket.saturating_mul(254) {
        // The dedup table tags entries with 8 bits of bucket index (dedup
        // module doc, "Tag range"): more live buckets would forget too early.
        issue(
            "dedup.bucket",
            format!(
                "too small for dedup.horizon ({}) plus window.out_of_orderness ({}): they may span at most 254 buckets",
                cfg.dedup.horizon, cfg.window.out_of_orderness
            ),
        );
    }
    let keys = key_budget(&cfg.keys, &mut issue);
    let memory_budget = memory_budget(&cfg, &mut issue);
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
        keys,
    };
    Some(Settings {
        raw: cfg,
        ingest,
        idle_timeout_ms: idle,
        memory_budget,
        checkpoint_interval_ms: checkpoint,
        caught_up_checkpoint_ms: caught_up_checkpoint.min(checkpoint),
        rollups_retention_ms: rollups_retention,
        reset_state: false,
        inputs,
    })
}

/// `processing.memory_budget`: none when empty; otherwise it must hold the
/// librdkafka queues of every stage thread and one partition
/// (`crate::memory`).
fn memory_budget(cfg: &Config, issue: &mut impl FnMut(&str, String)) -> Option<usize> {
    let text = cfg.processing.memory_budget.trim();
    if text.is_empty() {
        return None;
    }
    let budget = match parse_bytes(text) {
        Ok(b) => b,
        Err(e) => {
            issue("processing.memory_budget", e);
            return None;
        }
    };
    let partials = u32::try_from(cfg.topics.partials_partitions).unwrap_or(1);
    let threads = cfg.processing.threads() + cfg.processing.merge_threads_for(partials);
    let queues = crate::memory::queue_bytes(&cfg.kafka.client, threads);
    let cells = parse_bytes(&cfg.keys.memory).unwrap_or(0);
    let least = crate::memory::minimum_budget(queues, cells);
    if budget < least {
        issue(
            "processing.memory_budget",
            format!(
                "{text} cannot hold librdkafka's queues of {threads} stage threads ({} MiB) and \
                 one partition ({} MiB of keys.memory plus a minimal dedup table): at least {} MiB",
                queues >> 20,
                cells >> 20,
                least.div_ceil(1 << 20)
            ),
        );
        return None;
    }
    Some(budget)
}

/// The key budget of `[keys]`; `prefix_cells` 0 is sized from `memory`
/// (two open windows of `ORIGIN_CELL_BYTES` cells).
fn key_budget(keys: &KeysSection, issue: &mut impl FnMut(&str, String)) -> KeyBudget {
    let memory = match parse_bytes(&keys.memory) {
        Ok(m) => m,
        Err(e) => {
            issue("keys.memory", e);
            0
        }
    };
    let prefix_cells = match keys.prefix_cells {
        0 => {
            let cells = memory / (2 * ORIGIN_CELL_BYTES);
            if cells == 0 {
                issue(
                    "keys.memory",
                    format!(
                        "must hold at least two cells ({} bytes)",
                        2 * ORIGIN_CELL_BYTES
                    ),
                );
            }
            cells
        }
        n => n,
    };
    let unbounded_if_zero = |n: usize| if n == 0 { usize::MAX } else { n };
    KeyBudget {
        prefix_cells,
        publish_top_keys: unbounded_if_zero(keys.publish_top),
        count_entries: unbounded_if_zero(keys.count_entries),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
