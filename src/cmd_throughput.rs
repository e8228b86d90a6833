//! `rampart throughput`: how fast rampart drains a pre-loaded topic, next to
//! a bare consumer reading the same topic in the same run.
//!
//! Not a test: a measurement. Both readers are timed from partition
//! assignment until every message of the topic has been read (rampart: and
//! processed), so the ratio isolates rampart's own cost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use rampart_loadgen::{
    GenConfig, Generator, Limit, RecordConfig, RecordStream, World, WorldConfig,
};
use rampart_pipeline::{Role, RunCounters};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

#[derive(Args, Debug)]
pub struct ThroughputArgs {
    /// Kafka to measure against. Without it, a private single-node Kafka is
    /// started on loopback (provisioned from Maven Central on first use).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Events to pre-load.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Events per Kafka message (1 = one event per message).
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Partitions of the pre-loaded topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Seed of the generated traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Which processing guarantees to measure.
    #[arg(long, value_enum, default_value_t = Which::Both)]
    pub guarantee: Which,
    /// Ingest threads of the measured process (0: rampart's default, one per
    /// core up to the partition count). 1 gives the rate of one thread.
    #[arg(long, default_value_t = 0)]
    pub ingest_threads: usize,
    #[command(flatten)]
    pub client: crate::util::ClientArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// exactly-once and at-least-once, one after the other on the same topic.
    Both,
    ExactlyOnce,
    AtLeastOnce,
}

pub fn run(args: ThroughputArgs) -> anyhow::Result<()> {
    let client = args.client.overrides()?;
    let _private;
    let brokers = match &args.brokers {
        Some(b) => b.clone(),
        None => {
            eprintln!(
                "starting a private Kafka on loopback (first use downloads it from Maven Central)..."
            );
            let broker =
                rampart_localkafka::LocalKafka::start(&rampart_localkafka::Options::default())
                    .context("cannot start a local Kafka")?;
            let b = broker.bootstrap().to_string();
            _private = broker;
            b
        }
    };
    let dir = tempfile::tempdir()?;
    let world = Arc::new(World::new(WorldConfig {
        seed: args.seed,
        ..WorldConfig::default()
    })?);
    let (country, asn, sectors) = (
        dir.path().join("country.mmdb"),
        dir.path().join("asn.mmdb"),
        dir.path().join("sectors.csv"),
    );
    world.write_mmdb(&country, &asn)?;
    world.write_sector_table(&sectors)?;

    let run_id = format!(
        "{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() % 1_000_000
    );
    let topic = format!("rampart-throughput-{run_id}");
    crate::util::check_kafka(&brokers, &client)?;
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rampart_kafka::admin_config(&brokers, &client)?.create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let spec =
        rampart_kafka::TopicSpec::new(&topic, args.partitions as i32).config("retention.ms", "-1");
    rt.block_on(rampart_kafka::ensure_topics(&admin, &[spec]))?;

    // Pre-load: event time near the wall clock, so retention never trims the input.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let span_ms = (args.events as i64).saturating_mul(1000) / 100_000;
    let gen_cfg = GenConfig {
        seed: args.seed,
        epoch_ms: (now_ms - span_ms - 3_600_000) / 60_000 * 60_000,
        ..GenConfig::default()
    };
    let rec_cfg = RecordConfig {
        partitions: args.partitions,
        events_per_batch: args.batch,
        malformed_share: 0.0,
        ..RecordConfig::default()
    };
    let mut stream = RecordStream::new(
        Generator::new(world.clone(), gen_cfg)?,
        rec_cfg,
        Limit::Events(args.events),
    )?;
    let mut producer_settings: rampart_kafka::Overrides = [
        ("linger.ms", "20"),
        ("batch.size", "1000000"),
        ("queue.buffering.max.kbytes", "1048576"),
    ]
    .into_iter()
    .collect();
    producer_settings.extend(client.iter());
    let producer: ThreadedProducer<_> =
        rampart_kafka::producer_config(&brokers, &producer_settings)?.create()?;
    eprintln!(
        "pre-loading {} events ({} per message) into {topic}...",
        args.events, args.batch
    );
    let t = Instant::now();
    for r in stream.by_ref() {
        let mut rec = BaseRecord::to(&topic)
            .partition(r.partition)
            .key(&r.key)
            .payload(&r.payload)
            .timestamp(r.timestamp_ms);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(300))?;
    let stats = stream.stats().clone();
    let load_s = t.elapsed().as_secs_f64();
    eprintln!(
        "pre-loaded {} events in {} messages ({:.1} MB) in {load_s:.1} s: {:.0} events/s",
        stats.events,
        stats.records,
        stats.payload_bytes as f64 / 1e6,
        stats.events as f64 / load_s
    );

    eprintln!("bare consumer reading the topic...");
    let bare =
        rampart_kafka::bare_consume_rate(&brokers, &topic, &client, Duration::from_secs(600))?;
    if bare.messages != stats.records {
        bail!(
            "bare consumer read {} messages, expected {}",
            bare.messages,
            stats.records
        );
    }
    let bare_eps = stats.events as f64 / bare.seconds;
    eprintln!(
        "bare consumer: {:.2} s, {:.0} events/s ({:.0} messages/s)",
        bare.seconds,
        bare_eps,
        bare.messages_per_second()
    );

    let guarantees: &[&str] = match args.guarantee {
        Which::Both => &["exactly-once", "at-least-once"],
        Which::ExactlyOnce => &["exactly-once"],
        Which::AtLeastOnce => &["at-least-once"],
    };
    let mut results = Vec::new();
    for g in guarantees {
        let env = vec![
            ("RAMPART_KAFKA__BROKERS".to_string(), brokers.clone()),
            (
                "RAMPART_KAFKA__INGEST_GROUP".to_string(),
                format!("tp-ingest-{g}-{run_id}"),
            ),
            (
                "RAMPART_KAFKA__MERGE_GROUP".to_string(),
                format!("tp-merge-{g}-{run_id}"),
            ),
            ("RAMPART_TOPICS__INPUT".to_string(), topic.clone()),
            (
                "RAMPART_TOPICS__PARTIALS".to_string(),
                format!("tp-partials-{g}-{run_id}"),
            ),
            (
                "RAMPART_TOPICS__ROLLUPS".to_string(),
                format!("tp-rollups-{g}-{run_id}"),
            ),
            (
                "RAMPART_TOPICS__DLQ".to_string(),
                format!("tp-dlq-{g}-{run_id}"),
            ),
            (
                "RAMPART_ENRICH__COUNTRY_DB".to_string(),
                country.display().to_string(),
            ),
            (
                "RAMPART_ENRICH__ASN_DB".to_string(),
                asn.display().to_string(),
            ),
            (
                "RAMPART_ENRICH__SECTORS".to_string(),
                sectors.display().to_string(),
            ),
            ("RAMPART_PROCESSING__GUARANTEE".to_string(), g.to_string()),
            ("RAMPART_METRICS__LISTEN".to_string(), String::new()),
            (
                "RAMPART_PROCESSING__INGEST_THREADS".to_string(),
                args.ingest_threads.to_string(),
            ),
        ];
        let mut settings =
            rampart_pipeline::config::load(None, env).map_err(|e| anyhow::anyhow!("{e}"))?;
        settings.raw.kafka.client = client.clone();
        eprintln!("rampart ({g}) draining the topic...");
        let (secs, rss_growth) = drain(&settings, stats.records)?;
        let eps = stats.events as f64 / secs;
        eprintln!(
            "rampart ({g}): {secs:.2} s, {eps:.0} events/s, {:.0} messages/s; resident memory grew {:.0} MiB ({:.1} MiB per input partition)",
            stats.records as f64 / secs,
            rss_growth as f64 / MIB,
            rss_growth as f64 / MIB / f64::from(args.partitions.max(1)),
        );
        results.push((*g, eps));
        if results.len() == 1 {
            // The merge alone: a fresh merge group re-reads the partials just written.
            settings.raw.kafka.merge_group = format!("tp-merge-only-{g}-{run_id}");
            eprintln!("rampart merge ({g}) re-reading the partials alone...");
            let (merge_s, partials) = drain_merge(&settings)?;
            println!(
                "rampart_merge_events_per_s={:.0} merge_partials_per_s={:.0} (one merge thread, {partials} partials)",
                stats.events as f64 / merge_s,
                partials as f64 / merge_s
            );
        }
    }
    for (g, eps) in &results[1..] {
        println!(
            "rampart_{}_events_per_s={eps:.0} ratio_to_bare={:.3}",
            g.replace('-', "_"),
            eps / bare_eps
        );
    }
    let (_, first) = results[0];
    println!(
        "rampart_events_per_s={first:.0} bare_consumer_events_per_s={bare_eps:.0} ratio={:.3}",
        first / bare_eps
    );
    Ok(())
}

const MIB: f64 = 1024.0 * 1024.0;

/// This process's resident set size in bytes (Linux), 0 where unknown.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// Runs the merge stage alone until it has read every partial (nothing new
/// for 3 s); returns the seconds from assignment to the last partial and how
/// many it read.
fn drain_merge(settings: &rampart_pipeline::config::Settings) -> anyhow::Result<(f64, u64)> {
    let shutdown = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Mutex::new(RunCounters::default()));
    let handle = {
        let (settings, shutdown, counters) = (settings.clone(), shutdown.clone(), counters.clone());
        std::thread::spawn(move || {
            rampart_pipeline::run(
                &settings,
                Role::Merge,
                "throughput-merge",
                shutdown,
                Some(&counters),
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(1200);
    let (mut assigned_at, mut last) = (None, (0u64, Instant::now()));
    while !handle.is_finished() && Instant::now() < deadline {
        let merge = counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .merge
            .clone();
        if let Some(c) = merge {
            if assigned_at.is_none() && c.assigned.load(Ordering::Relaxed) > 0 {
                assigned_at = Some(Instant::now());
            }
            let n = c.messages.load(Ordering::Relaxed);
            if n != last.0 {
                last = (n, Instant::now());
            } else if n > 0 && last.1.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    shutdown.store(true, Ordering::Relaxed);
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("pipeline thread panicked"))??;
    let started = assigned_at.context("the merge was never assigned partitions")?;
    Ok((last.1.duration_since(started).as_secs_f64(), last.0))
}

/// Runs both stages until the ingest stage has processed `messages` input
/// messages; returns the seconds from partition assignment to that point and
/// how much this process's resident memory grew meanwhile (peak).
fn drain(
    settings: &rampart_pipeline::config::Settings,
    messages: u64,
) -> anyhow::Result<(f64, u64)> {
    let rss_before = resident_bytes();
    let mut rss_peak = rss_before;
    let mut next_sample = Instant::now();
    let shutdown = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Mutex::new(RunCounters::default()));
    let handle = {
        let (settings, shutdown, counters) = (settings.clone(), shutdown.clone(), counters.clone());
        std::thread::spawn(move || {
            rampart_pipeline::run(
                &settings,
                Role::Both,
                "throughput",
                shutdown,
                Some(&counters),
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(1200);
    let mut assigned_at = None;
    let result = loop {
        if handle.is_finished() || Instant::now() > deadline {
            break None;
        }
        let ingest = counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ingest
            .clone();
        if Instant::now() >= next_sample {
            rss_peak = rss_peak.max(resident_bytes());
            next_sample = Instant::now() + Duration::from_millis(100);
        }
        if let Some(c) = ingest {
            if assigned_at.is_none() && c.assigned.load(Ordering::Relaxed) > 0 {
                assigned_at = Some(Instant::now());
            }
            if c.messages.load(Ordering::Relaxed) >= messages {
                break assigned_at.map(|t| t.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    shutdown.store(true, Ordering::Relaxed);
    let joined = handle
        .join()
        .map_err(|_| anyhow::anyhow!("pipeline thread panicked"))?;
    joined?;
    let secs = result.context("rampart did not drain the topic (stopped or timed out)")?;
    Ok((secs, rss_peak.saturating_sub(rss_before)))
}
