//! `rampart verify`: regenerates a loadgen run from its manifest, computes the
//! exact expected rollups with the reference model (`rampart_loadgen::ground_truth`,
//! enriched from the world's own tables, not from the MMDB/CSV files), reads the
//! published rollups read_committed and compares them field by field.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use prost::Message as _;
use rampart_core::proto::v1::{Rollup, TopEntry};
use rampart_pipeline::records::{dimension_name, rollup_key};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::manifest::{Digest, Manifest, OutputSpec};
use crate::util;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The manifest `rampart loadgen --manifest` wrote.
    #[arg(long)]
    pub manifest: PathBuf,
    /// The rampart config the run used: window, dedup and validation settings
    /// (so the expected semantics match), brokers and the rollups topic.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers (default: the config's kafka.brokers).
    #[arg(long)]
    pub brokers: Option<String>,
    /// The rollups topic (default: the config's topics.rollups).
    #[arg(long)]
    pub rollups_topic: Option<String>,
    /// How long to wait for the expected number of rollups.
    #[arg(long, default_value = "120s", value_parser = util::parse_duration)]
    pub timeout: Duration,
    /// Once enough rollups are read, keep reading until nothing new arrives
    /// for this long (to catch extra or repeated rollups).
    #[arg(long, default_value = "2s", value_parser = util::parse_duration)]
    pub settle: Duration,
    /// Most rows of the difference table.
    #[arg(long, default_value_t = 20)]
    pub max_rows: usize,
    #[command(flatten)]
    pub client: util::ClientArgs,
}

/// One row of the difference table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub dimension: String,
    pub key: String,
    pub window: String,
    pub field: String,
    pub expected: String,
    pub got: String,
}

/// The comparison of published rollups with the ground truth.
#[derive(Debug, Default)]
pub struct Comparison {
    pub expected: usize,
    pub read: usize,
    pub matching: usize,
    pub differing: usize,
    pub missing: usize,
    pub extra: usize,
    pub repeated: usize,
    pub undecodable: usize,
    pub rows: Vec<Row>,
}

impl Comparison {
    pub fn ok(&self) -> bool {
        self.differing == 0
            && self.missing == 0
            && self.extra == 0
            && self.repeated == 0
            && self.undecodable == 0
            && self.read == self.expected
    }
}

pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let manifest = Manifest::read(&args.manifest)?;
    let settings = args.client.load(args.config.as_deref())?;
    let brokers = args
        .brokers
        .clone()
        .unwrap_or_else(|| settings.raw.kafka.brokers.clone());
    util::check_kafka(&brokers, &settings.raw.kafka.client)?;
    let topic = args
        .rollups_topic
        .clone()
        .unwrap_or_else(|| settings.raw.topics.rollups.clone());
    if let OutputSpec::Kafka { topic: input, .. } = &manifest.output
        && args.config.is_some()
        && !settings
            .inputs
            .iter()
            .any(|i| i.topic == *input && i.format == manifest.input_format)
    {
        let reads: Vec<String> = settings
            .inputs
            .iter()
            .map(|i| format!("{} ({})", i.topic, i.format.as_str()))
            .collect();
        eprintln!(
            "verify: note: the manifest's records went to topic {input} ({}), the config reads {}",
            manifest.input_format.as_str(),
            reads.join(", ")
        );
    }

    // 1. The exact records of the run, checked against the manifest's digest.
    let t = Instant::now();
    let world = manifest.world()?;
    let stream = manifest.stream(world.clone())?;
    let mut digest = Digest::default();
    let records: Vec<_> = stream.inspect(|r| digest.add(r)).collect();
    if digest.hex() != manifest.produced.digest || records.len() as u64 != manifest.produced.records
    {
        bail!(
            "the regenerated records differ from the run ({} records, digest {}; the manifest says {} records, digest {}): \
             was the manifest written by another rampart version?",
            records.len(),
            digest.hex(),
            manifest.produced.records,
            manifest.produced.digest
        );
    }
    // 2. The ground truth, with the run's window/dedup/validation semantics,
    // of the events as the run's input format carries them.
    let format = manifest.input_format;
    let records = records.into_iter().map(|r| match format {
        rampart_formats::Format::Protobuf => r,
        _ => rampart_loadgen::in_format(&r, format).1,
    });
    let truth = rampart_loadgen::ground_truth(
        records,
        manifest.records.partitions,
        &settings.ingest,
        &world,
        true,
    );
    eprintln!(
        "verify: {} events in {} messages regenerated; ground truth: {} rollups ({} unique, {} duplicates, {} late, {} dead letters) in {:.1} s",
        util::thousands(manifest.produced.events),
        util::thousands(manifest.produced.records),
        util::thousands(truth.rollups.len() as u64),
        util::thousands(truth.totals.unique),
        util::thousands(truth.totals.duplicates),
        util::thousands(truth.totals.late),
        util::thousands(truth.rejected.len() as u64),
        t.elapsed().as_secs_f64()
    );

    // 3. What was published.
    eprintln!(
        "verify: reading {topic} on {brokers} (read_committed, up to {:?})",
        args.timeout
    );
    let reads = read_rollups(
        &brokers,
        &settings.raw.kafka.client,
        &topic,
        truth.rollups.len(),
        args.timeout,
        args.settle,
    )?;

    // 4. Compare.
    let cmp = compare(&truth.rollups, &reads);
    let mut out = std::io::stdout().lock();
    print_table(&mut out, &cmp.rows, args.max_rows)?;
    let windows: std::collections::BTreeSet<i64> =
        truth.rollups.iter().map(|r| r.window_start_ms).collect();
    if cmp.ok() {
        writeln!(
            out,
            "verify: PASS: all {} rollups ({} windows) equal the ground truth of {} events, field by field",
            util::thousands(cmp.expected as u64),
            windows.len(),
            util::thousands(manifest.produced.events)
        )?;
        Ok(())
    } else {
        writeln!(
            out,
            "verify: FAIL: {} differing, {} missing, {} extra, {} published more than once, {} undecodable ({} expected, {} matching, {} read from {topic})",
            cmp.differing,
            cmp.missing,
            cmp.extra,
            cmp.repeated,
            cmp.undecodable,
            util::thousands(cmp.expected as u64),
            util::thousands(cmp.matching as u64),
            util::thousands(cmp.read as u64),
        )?;
        out.flush()?;
        std::process::exit(1);
    }
}

/// A message read from the rollups topic.
#[derive(Clone, Debug)]
pub struct Published {
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
}

/// Reads `topic` from the beginning, read_committed, until at least `want`
/// messages and then `settle` without a new one, or `timeout`.
pub fn read_rollups(
    brokers: &str,
    overrides: &rampart_kafka::Overrides,
    topic: &str,
    want: usize,
    timeout: Duration,
    settle: Duration,
) -> anyhow::Result<Vec<Published>> {
    let mut cfg = ClientConfig::new();
    for (k, v) in overrides {
        cfg.set(k, v);
    }
    let consumer: BaseConsumer = cfg
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("rampart-verify-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("cannot create a Kafka consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("cannot reach Kafka at {brokers}"))?;
    let parts = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    if parts == 0 {
        bail!("topic {topic} does not exist on {brokers} (has `rampart run` started?)");
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..parts {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut last_new = Instant::now();
    while Instant::now() < deadline {
        if out.len() >= want && last_new.elapsed() >= settle {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                out.push(Published {
                    key: m.key().unwrap_or_default().to_vec(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                });
                last_new = Instant::now();
            }
            Some(Err(e)) => eprintln!("verify: consumer: {e}"),
            None => {}
        }
    }
    Ok(out)
}

/// Compares `published` with `expected`, key by key and field by field.
pub fn compare(expected: &[Rollup], published: &[Published]) -> Comparison {
    let mut cmp = Comparison {
        expected: expected.len(),
        read: published.len(),
        ..Comparison::default()
    };
    let exp: BTreeMap<String, &Rollup> = expected.iter().map(|r| (rollup_key(r), r)).collect();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut bad_keys = std::collections::BTreeSet::new();
    for p in published {
        let Ok(r) = Rollup::decode(&p.payload[..]) else {
            cmp.undecodable += 1;
            cmp.rows.push(Row {
                dimension: "?".into(),
                key: String::from_utf8_lossy(&p.key).into_owned(),
                window: "?".into(),
                field: "(payload)".into(),
                expected: "a Rollup".into(),
                got: format!("undecodable, {} bytes", p.payload.len()),
            });
            continue;
        };
        let k = rollup_key(&r);
        let row = |field: &str, e: String, g: String| Row {
            dimension: dimension_name(r.dimension).to_string(),
            key: r.key.clone(),
            window: util::utc(r.window_start_ms),
            field: field.to_string(),
            expected: e,
            got: g,
        };
        *seen.entry(k.clone()).or_default() += 1;
        if p.key != k.as_bytes() {
            cmp.rows.push(row(
                "(kafka key)",
                k.clone(),
                String::from_utf8_lossy(&p.key).into_owned(),
            ));
            bad_keys.insert(k.clone());
        }
        match exp.get(&k) {
            None => {
                cmp.extra += 1;
                cmp.rows.push(row(
                    "(rollup)",
                    "absent".into(),
                    format!("published, raw_events={}", r.raw_events),
                ));
            }
            Some(e) => {
                let diffs = field_diffs(e, &r);
                if diffs.is_empty() && e.encode_to_vec() == r.encode_to_vec() {
                    continue;
                }
                bad_keys.insert(k.clone());
                if diffs.is_empty() {
                    cmp.rows
                        .push(row("(bytes)", "same fields".into(), "other bytes".into()));
                }
                for (field, ev, gv) in diffs {
                    cmp.rows.push(row(field, ev, gv));
                }
            }
        }
    }
    cmp.differing = bad_keys.len();
    for (k, n) in &seen {
        if *n > 1 {
            cmp.repeated += 1;
            if let Some(e) = exp.get(k) {
                cmp.rows.push(Row {
                    dimension: dimension_name(e.dimension).to_string(),
                    key: e.key.clone(),
                    window: util::utc(e.window_start_ms),
                    field: "(published)".into(),
                    expected: "1 time".into(),
                    got: format!("{n} times"),
                });
            }
        }
    }
    for (k, e) in &exp {
        if !seen.contains_key(k) {
            cmp.missing += 1;
            cmp.rows.push(Row {
                dimension: dimension_name(e.dimension).to_string(),
                key: e.key.clone(),
                window: util::utc(e.window_start_ms),
                field: "(rollup)".into(),
                expected: format!("raw_events={}", e.raw_events),
                got: "missing".into(),
            });
        }
    }
    cmp.matching = exp
        .keys()
        .filter(|k| seen.get(*k) == Some(&1) && !bad_keys.contains(*k))
        .count();
    cmp
}

fn tops(t: &[TopEntry]) -> String {
    t.iter()
        .map(|e| format!("{}:{}", e.value, e.count))
        .collect::<Vec<_>>()
        .join(" ")
}

fn sketch(b: &[u8]) -> String {
    format!(
        "{} bytes, xxh3 {:08x}",
        b.len(),
        xxhash_rust::xxh3::xxh3_64(b) >> 32
    )
}

/// The fields that differ, as (name, expected, got).
fn field_diffs(e: &Rollup, g: &Rollup) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    macro_rules! num {
        ($($f:ident),*) => {$(
            if e.$f != g.$f {
                out.push((stringify!($f), e.$f.to_string(), g.$f.to_string()));
            }
        )*};
    }
    num!(
        window_end_ms,
        raw_events,
        unique_events,
        duplicates,
        packets,
        bytes,
        late_events,
        distinct_sources,
        first_seen_ms,
        last_seen_ms
    );
    if e.sources_sketch != g.sources_sketch {
        out.push((
            "sources_sketch",
            sketch(&e.sources_sketch),
            sketch(&g.sources_sketch),
        ));
    }
    for (name, a, b) in [
        ("top_dst_ports", &e.top_dst_ports, &g.top_dst_ports),
        ("top_kinds", &e.top_kinds, &g.top_kinds),
        ("top_rules", &e.top_rules, &g.top_rules),
    ] {
        if a != b {
            out.push((name, tops(a), tops(b)));
        }
    }
    out
}

fn cell(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Prints at most `max_rows` rows as an aligned table, then how many were left out.
pub fn print_table(
    out: &mut impl std::io::Write,
    rows: &[Row],
    max_rows: usize,
) -> std::io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let head = ["dimension", "key", "window", "field", "expected", "got"];
    let shown: Vec<[String; 6]> = rows
        .iter()
        .take(max_rows)
        .map(|r| {
            [
                cell(&r.dimension, 16),
                cell(&r.key, 40),
                r.window.clone(),
                cell(&r.field, 16),
                cell(&r.expected, 36),
                cell(&r.got, 36),
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for r in &shown {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 6]| -> String {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            if i < 5 {
                s.push_str(&" ".repeat(w.saturating_sub(c.chars().count())));
            }
        }
        s
    };
    writeln!(out, "{}", line(head))?;
    for r in &shown {
        writeln!(
            out,
            "{}",
            line([
                r[0].as_str(),
                r[1].as_str(),
                r[2].as_str(),
                r[3].as_str(),
                r[4].as_str(),
                r[5].as_str()
            ])
        )?;
    }
    if rows.len() > shown.len() {
        writeln!(
            out,
            "... and {} more rows (--max-rows to see more)",
            rows.len() - shown.len()
        )?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rampart_core::proto::v1::Dimension;

    fn rollup(key: &str, raw: u64) -> Rollup {
        Rollup {
            dimension: Dimension::OriginCountry as i32,
            key: key.into(),
            window_start_ms: 60_000,
            window_end_ms: 120_000,
            raw_events: raw,
            unique_events: raw,
            ..Rollup::default()
        }
    }

    fn publish(r: &Rollup) -> Published {
        Published {
            key: rollup_key(r).into_bytes(),
            payload: r.encode_to_vec(),
        }
    }

    #[test]
    fn equal_sets_pass() {
        let exp = vec![rollup("CN", 5), rollup("US", 2)];
        let got: Vec<_> = exp.iter().map(publish).collect();
        let c = compare(&exp, &got);
        assert!(c.ok(), "{c:?}");
        assert_eq!(c.matching, 2);
    }

    #[test]
    fn every_kind_of_difference_is_named() {
        let exp = vec![rollup("CN", 5), rollup("US", 2), rollup("IN", 1)];
        let got = vec![
            publish(&rollup("CN", 6)),
            publish(&rollup("US", 2)),
            publish(&rollup("US", 2)),
            publish(&rollup("FR", 1)),
            Published {
                key: b"x".to_vec(),
                payload: vec![0xff, 0xff],
            },
        ];
        let c = compare(&exp, &got);
        assert!(!c.ok());
        assert_eq!(
            (c.differing, c.missing, c.extra, c.repeated, c.undecodable),
            (1, 1, 1, 1, 1)
        );
        assert_eq!(c.matching, 0);
        let cn = c.rows.iter().find(|r| r.key == "CN").unwrap();
        assert_eq!(
            (cn.field.as_str(), cn.expected.as_str(), cn.got.as_str()),
            ("raw_events", "5", "6")
        );
        let mut text = Vec::new();
        print_table(&mut text, &c.rows, 3).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("more rows"), "{text}");
        assert!(text.starts_with("dimension"), "{text}");
    }
}
