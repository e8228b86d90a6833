//! `rampart tail`: follows the rollups topic (read_committed, so only
//! committed, final rollups) and prints each rollup as it is published — a
//! table for people, or one JSON object per line for `jq` and `duckdb`
//! (what `vector tap` is to Vector, for rampart's output).

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use prost::Message as _;
use rampart_core::proto::v1::{AttackKind, Dimension, Rollup, TopEntry};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::util;

#[derive(Args, Debug)]
pub struct TailArgs {
    /// The instance's TOML configuration (brokers, rollups topic, [kafka.client]
    /// settings such as TLS/SASL); without it, defaults and RAMPART_* variables.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Only rollups of this dimension.
    #[arg(long, value_enum)]
    pub dimension: Option<DimensionArg>,
    /// Only rollups with this key, e.g. `CN`, `AS4134`, `203.0.113.0/24`,
    /// `cisa:energy`, `CN|cisa:energy`.
    #[arg(long)]
    pub key: Option<String>,
    /// `table` (aligned columns) or `json` (one object per line, every Rollup
    /// field except the sources sketch, whose estimate is `distinct_sources`).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Start with the oldest rollup the topic still holds (default: only new ones).
    #[arg(long, conflicts_with = "since")]
    pub from_beginning: bool,
    /// Start with the rollups published within this long, e.g. `1h`, `15m`.
    #[arg(long, value_parser = util::parse_duration)]
    pub since: Option<Duration>,
    #[command(flatten)]
    pub client: util::ClientArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DimensionArg {
    #[value(name = "origin_country")]
    OriginCountry,
    #[value(name = "origin_asn")]
    OriginAsn,
    #[value(name = "origin_prefix")]
    OriginPrefix,
    #[value(name = "target_sector")]
    TargetSector,
    #[value(name = "country_sector")]
    CountrySector,
}

impl DimensionArg {
    fn dimension(self) -> Dimension {
        match self {
            DimensionArg::OriginCountry => Dimension::OriginCountry,
            DimensionArg::OriginAsn => Dimension::OriginAsn,
            DimensionArg::OriginPrefix => Dimension::OriginPrefix,
            DimensionArg::TargetSector => Dimension::TargetSector,
            DimensionArg::CountrySector => Dimension::CountrySector,
        }
    }
}

pub fn run(args: TailArgs) -> anyhow::Result<()> {
    let settings = args.client.load(args.config.as_deref())?;
    let kafka = &settings.raw.kafka;
    let topic = settings.raw.topics.rollups.clone();
    let group = format!("rampart-tail-{}", std::process::id());
    util::check_kafka(&kafka.brokers, &kafka.client)?;
    // Assigned, never subscribed or committed: the group id is only a name.
    let consumer: BaseConsumer =
        rampart_kafka::consumer_config(&kafka.brokers, &group, &kafka.client)?
            .create()
            .context("cannot create the Kafka consumer")?;
    let start = if args.from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    let assignment = assign(&consumer, &topic, start, args.since)?;
    eprintln!(
        "tail: {topic} on {} ({} partitions, read_committed){}",
        kafka.brokers,
        assignment,
        match (args.from_beginning, args.since) {
            (true, _) => ", from the beginning".to_string(),
            (_, Some(d)) => format!(", from {} s ago", d.as_secs()),
            _ => ", new rollups only".to_string(),
        }
    );
    let want_dim = args.dimension.map(|d| d.dimension() as i32);
    let mut out = std::io::stdout().lock();
    let mut rows = 0u64;
    loop {
        let msg = match consumer.poll(Duration::from_millis(500)) {
            None => {
                out.flush().or_else(ignore_broken_pipe)?;
                continue;
            }
            Some(Err(e)) => {
                // Transient errors (a broker restart) are retried by the client.
                tracing::warn!(error = %e, "tail: consumer error");
                continue;
            }
            Some(Ok(m)) => m,
        };
        let payload = rdkafka::Message::payload(&msg).unwrap_or_default();
        let rollup = match Rollup::decode(payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    partition = rdkafka::Message::partition(&msg),
                    offset = rdkafka::Message::offset(&msg),
                    error = %e,
                    "tail: a message of the rollups topic is not a Rollup; skipped"
                );
                continue;
            }
        };
        if want_dim.is_some_and(|d| d != rollup.dimension)
            || args.key.as_ref().is_some_and(|k| *k != rollup.key)
        {
            continue;
        }
        let written = match args.format {
            Format::Json => writeln!(out, "{}", to_json(&rollup)),
            Format::Table => {
                if rows.is_multiple_of(40) {
                    writeln!(out, "{}", table_header())
                        .and_then(|()| writeln!(out, "{}", table_row(&rollup)))
                } else {
                    writeln!(out, "{}", table_row(&rollup))
                }
            }
        };
        rows += 1;
        if let Err(e) = written {
            return ignore_broken_pipe(e);
        }
    }
}

/// A reader that went away (`| head`) ends the tail quietly.
fn ignore_broken_pipe(e: std::io::Error) -> anyhow::Result<()> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    Err(e.into())
}

/// Assigns every partition of `topic` at `start` (or at the first offset at
/// or after `now - since`); waits for the topic to exist. Returns the partition count.
fn assign(
    consumer: &BaseConsumer,
    topic: &str,
    start: Offset,
    since: Option<Duration>,
) -> anyhow::Result<usize> {
    let mut waited = false;
    let partitions = loop {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .context("cannot reach Kafka to read the rollups topic's metadata")?;
        let n = md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len());
        if n > 0 {
            break n;
        }
        if !waited {
            eprintln!("tail: topic {topic} does not exist yet; waiting for rampart to create it");
            waited = true;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        let offset = match since {
            Some(d) => Offset::Offset(util::now_ms() - d.as_millis() as i64),
            None => start,
        };
        tpl.add_partition_offset(topic, p, offset)?;
    }
    if since.is_some() {
        // Timestamps in, offsets out (a partition without newer messages gets its end).
        tpl = consumer
            .offsets_for_times(tpl, Duration::from_secs(10))
            .context("cannot look up offsets by time")?;
        for e in tpl.elements() {
            if let Some(err) = e.error().err() {
                bail!(
                    "cannot find the offset of partition {}: {err}",
                    e.partition()
                );
            }
        }
    }
    consumer.assign(&tpl)?;
    Ok(partitions)
}

fn dimension_name(d: i32) -> &'static str {
    rampart_pipeline::records::dimension_name(d)
}

fn entries(t: &[TopEntry]) -> serde_json::Value {
    t.iter()
        .map(|e| serde_json::json!({"value": e.value, "count": e.count}))
        .collect()
}

/// One rollup as a JSON object: the Rollup fields under their proto names
/// (the sketch bytes left out), plus the window start and end in UTC text.
pub(crate) fn to_json(r: &Rollup) -> serde_json::Value {
    serde_json::json!({
        "dimension": dimension_name(r.dimension),
        "key": r.key,
        "window_start": util::utc(r.window_start_ms),
        "window_end": util::utc(r.window_end_ms),
        "window_start_ms": r.window_start_ms,
        "window_end_ms": r.window_end_ms,
        "raw_events": r.raw_events,
        "unique_events": r.unique_events,
        "duplicates": r.duplicates,
        "packets": r.packets,
        "bytes": r.bytes,
        "late_events": r.late_events,
        "distinct_sources": r.distinct_sources,
        "top_dst_ports": entries(&r.top_dst_ports),
        "top_kinds": entries(&r.top_kinds),
        "top_rules": entries(&r.top_rules),
        "first_seen_ms": r.first_seen_ms,
        "last_seen_ms": r.last_seen_ms,
        "dst_ports_overflow": r.dst_ports_overflow,
        "rules_overflow": r.rules_overflow,
    })
}

fn table_header() -> String {
    format!(
        "{:<20} {:<14} {:<22} {:>10} {:>10} {:>8} {:>6} {:>8}  {}",
        "window (UTC)",
        "dimension",
        "key",
        "raw",
        "unique",
        "dups",
        "late",
        "sources",
        "top ports / kinds"
    )
}

fn table_row(r: &Rollup) -> String {
    let start = util::utc(r.window_start_ms);
    let end = util::utc(r.window_end_ms);
    let window = format!(
        "{} {}-{}",
        start.get(5..10).unwrap_or("?"),
        start.get(11..19).unwrap_or("?"),
        end.get(14..19).unwrap_or("?")
    );
    let ports: Vec<String> = r
        .top_dst_ports
        .iter()
        .take(3)
        .map(|e| e.value.to_string())
        .collect();
    let kinds: Vec<String> = r
        .top_kinds
        .iter()
        .take(2)
        .map(|e| {
            AttackKind::try_from(e.value as i32)
                .map(|k| {
                    k.as_str_name()
                        .trim_start_matches("ATTACK_KIND_")
                        .to_ascii_lowercase()
                })
                .unwrap_or_else(|_| e.value.to_string())
        })
        .collect();
    format!(
        "{:<20} {:<14} {:<22} {:>10} {:>10} {:>8} {:>6} {:>8}  {} / {}",
        window,
        dimension_name(r.dimension),
        r.key,
        util::thousands(r.raw_events),
        util::thousands(r.unique_events),
        util::thousands(r.duplicates),
        util::thousands(r.late_events),
        util::thousands(r.distinct_sources),
        ports.join(","),
        kinds.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_carries_the_rollup_fields() {
        let r = Rollup {
            dimension: Dimension::TargetSector as i32,
            key: "cisa:energy".into(),
            window_start_ms: 1_735_689_600_000,
            window_end_ms: 1_735_689_660_000,
            raw_events: 12,
            unique_events: 10,
            duplicates: 2,
            top_dst_ports: vec![TopEntry {
                value: 22,
                count: 7,
            }],
            ..Rollup::default()
        };
        let j = to_json(&r);
        assert_eq!(j["dimension"], "target_sector");
        assert_eq!(j["key"], "cisa:energy");
        assert_eq!(j["window_start"], "2025-01-01T00:00:00Z");
        assert_eq!(j["raw_events"], 12);
        assert_eq!(j["top_dst_ports"][0]["value"], 22);
        let row = table_row(&r);
        assert!(row.starts_with("01-01 00:00:00-01:00"), "{row}");
        assert!(row.contains("cisa:energy"), "{row}");
    }
}
