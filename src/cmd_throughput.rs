//! `rampart throughput`: how fast rampart drains a pre-loaded topic, next to
//! a bare consumer reading the same topic in the same run.
//!
//! Not a test: a measurement. Both readers are timed from partition
//! assignment until every message of the topic has been read (rampart: and
//! processed), so the ratio isolates rampart's own cost.

use std::path::Path;
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
    /// Mixed message sizes: each message holds a number of events drawn
    /// uniformly from BATCH_MIX..=--batch (e.g. `--batch-mix 1 --batch 1000`:
    /// 1–1000 events per message, 500 on average), as from many producers.
    #[arg(long, value_name = "BATCH_MIX")]
    pub batch_mix: Option<usize>,
    /// Partitions of the pre-loaded topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Seed of the generated traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share of events from a scanning botnet, one /24 after another over
    /// the world's /24s (0 = today's Zipf-concentrated sources; 1 = about one
    /// event per /24 per window when --prefixes exceeds the events of a
    /// window). See `rampart loadgen --source-spread`.
    #[arg(long, default_value_t = 0.0)]
    pub source_spread: f64,
    /// IPv4 /24 prefixes in the generated world.
    #[arg(long, default_value_t = 60_000)]
    pub prefixes: u32,
    /// rampart's `keys.publish_top` (0 = publish every key).
    #[arg(long, default_value_t = 0)]
    pub publish_top: usize,
    /// rampart's `keys.prefix_cells` (0 = sized from `keys.memory`).
    #[arg(long, default_value_t = 0)]
    pub prefix_cells: usize,
    /// rampart's `processing.memory_budget` (e.g. 2GiB; default: none).
    #[arg(long)]
    pub memory_budget: Option<String>,
    /// Format of the pre-loaded messages: protobuf, or a JSON format (eve,
    /// zeek-conn, ocsf, ecs: the same events as documents, one per event).
    #[arg(long, value_parser = crate::cmd_loadgen::parse_format, default_value = "protobuf")]
    pub format: rampart_formats::Format,
    /// Which processing guarantees to measure.
    #[arg(long, value_enum, default_value_t = Which::Both)]
    pub guarantee: Which,
    /// Ingest threads of the measured process (0: rampart's default, one per
    /// core up to the partition count). 1 gives the rate of one thread; a
    /// list (`1,2`) drains the topic once per count and prints how the rate
    /// scales (`scaling_2_over_1=R`).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub ingest_threads: Vec<usize>,
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
        prefixes: args.prefixes,
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
        source_spread: args.source_spread,
        ..GenConfig::default()
    };
    let rec_cfg = RecordConfig {
        partitions: args.partitions,
        events_per_batch: args.batch,
        min_events_per_batch: args.batch_mix,
        malformed_share: 0.0,
        ..RecordConfig::default()
    };
    let gen_cfg_epoch = gen_cfg.epoch_ms;
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
    let per_message = match args.batch_mix {
        Some(min) => format!("{min}–{}", args.batch),
        None => args.batch.to_string(),
    };
    eprintln!(
        "pre-loading {} events ({per_message} per message) into {topic}...",
        args.events
    );
    let t = Instant::now();
    let mut last_event_ms = gen_cfg_epoch;
    let mut payload_bytes = 0u64;
    for r in stream.by_ref() {
        last_event_ms = last_event_ms.max(r.timestamp_ms);
        let r = rampart_loadgen::in_format(&r, args.format).0;
        payload_bytes += r.payload.len() as u64;
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
    // One closing event per partition, 3 minutes of event time after the
    // run: every window of the run becomes final (and its rollups counted)
    // without waiting for idle timeouts; the closing events' own windows
    // stay open and publish nothing.
    for partition in 0..args.partitions as i32 {
        let closing = closing_message(args.format, last_event_ms + 180_000);
        let rec = BaseRecord::to(&topic)
            .partition(partition)
            .key(&[192, 0, 2, 1][..])
            .payload(&closing)
            .timestamp(last_event_ms + 180_000);
        producer
            .send(rec)
            .map_err(|(e, _)| anyhow::anyhow!("cannot send the closing message: {e}"))?;
    }
    producer.flush(Duration::from_secs(300))?;
    let mut stats = stream.stats().clone();
    stats.records += u64::from(args.partitions);
    let load_s = t.elapsed().as_secs_f64();
    eprintln!(
        "pre-loaded {} events in {} messages ({:.1} MB, {}) in {load_s:.1} s: {:.0} events/s",
        stats.events,
        stats.records,
        payload_bytes as f64 / 1e6,
        args.format.as_str(),
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
    let runs: Vec<(&str, usize)> = guarantees
        .iter()
        .flat_map(|g| args.ingest_threads.iter().map(move |&t| (*g, t)))
        .collect();
    let label = |g: &str, threads: usize| match args.ingest_threads.len() {
        1 => g.to_string(),
        _ if threads == 1 => format!("{g}, 1 ingest thread"),
        _ => format!("{g}, {threads} ingest threads"),
    };
    let base = DrainBase {
        args: &args,
        brokers: &brokers,
        topic: &topic,
        client: &client,
        databases: [&country, &asn, &sectors],
    };
    let mut results = Vec::new();
    for &(g, threads) in &runs {
        let name = label(g, threads);
        let mut attempt = 0;
        let (mut settings, drained) = loop {
            let settings = base.settings(g, threads, &format!("{run_id}-{threads}-{attempt}"))?;
            eprintln!("rampart ({name}) draining the topic...");
            let drained = drain(&settings, stats.records)?;
            if drained.rewinds == 0 {
                break (settings, drained);
            }
            // Its counts include replayed input: not a measurement. A checkpoint
            // that lost a race with a startup rebalance does that at random.
            anyhow::ensure!(
                attempt == 0,
                "rampart ({name}): checkpoints failed and rewound in two drains in a row (see the \
                 log above); no figure to report"
            );
            eprintln!(
                "rampart ({name}): {} checkpoint(s) failed and rewound (see the log above), so the \
                 drain's counts include replayed input; draining again into fresh groups and topics",
                drained.rewinds
            );
            attempt += 1;
        };
        let secs = drained.seconds;
        let rss_growth = drained.rss_growth;
        let eps = stats.events as f64 / secs;
        let rollups_per_s = drained.rollups as f64 / drained.published_seconds;
        let rollups_per_event = drained.rollups as f64 / stats.events.max(1) as f64;
        eprintln!(
            "rampart ({name}): {secs:.2} s, {eps:.0} events/s, {:.0} messages/s; \
             {} rollups: {rollups_per_s:.0} rollups/s, {rollups_per_event:.3} per input event; \
             all published after {:.2} s ({:.0} events/s end to end); resident memory grew \
             {:.0} MiB ({:.1} MiB per input partition)",
            stats.records as f64 / secs,
            drained.rollups,
            drained.published_seconds,
            stats.events as f64 / drained.published_seconds,
            rss_growth as f64 / MIB,
            rss_growth as f64 / MIB / f64::from(args.partitions.max(1)),
        );
        if drained.handed_over > 0 {
            eprintln!(
                "rampart ({name}): a rebalance moved {} partition(s) while draining (a stage \
                 thread joined its group after the first took every partition; on a broker with \
                 group.initial.rebalance.delay.ms = 0 that happens at random): this run includes \
                 a 1-2 s handover",
                drained.handed_over
            );
        }
        results.push((g, threads, eps, rollups_per_s, rollups_per_event));
        if results.len() == 1 {
            // The merge alone: a fresh merge group re-reads the partials just
            // written, and publishes into its own topic (the drain's rollups
            // topic keeps each rollup once, for whoever reads it after).
            settings.raw.kafka.merge_group = format!("tp-merge-only-{g}-{run_id}");
            settings.raw.topics.rollups = format!("tp-rollups-merge-only-{g}-{run_id}");
            settings.raw.processing.merge_threads = 1;
            eprintln!("rampart merge ({g}) re-reading the partials alone...");
            let (merge_s, partials) = drain_merge(&settings)?;
            println!(
                "rampart_merge_events_per_s={:.0} merge_partials_per_s={:.0} (one merge thread, {partials} partials)",
                stats.events as f64 / merge_s,
                partials as f64 / merge_s
            );
        }
    }
    for &(g, threads, eps, rps, rpe) in &results[1..] {
        let threads = match args.ingest_threads.len() {
            1 => String::new(),
            _ => format!("_{threads}_threads"),
        };
        println!(
            "rampart_{}{threads}_events_per_s={eps:.0} ratio_to_bare={:.3} rollups_per_s={rps:.0} rollups_per_event={rpe:.3}",
            g.replace('-', "_"),
            eps / bare_eps
        );
    }
    for g in guarantees {
        let rate = |t: usize| results.iter().find(|r| r.0 == *g && r.1 == t).map(|r| r.2);
        for pair in args.ingest_threads.windows(2) {
            if let [a, b] = *pair
                && let (Some(ra), Some(rb)) = (rate(a), rate(b))
            {
                println!(
                    "rampart_{}_scaling_{b}_over_{a}={:.2}",
                    g.replace('-', "_"),
                    rb / ra
                );
            }
        }
    }
    let Some(&(_, _, first, rps, rpe)) = results.first() else {
        bail!("nothing was measured");
    };
    println!(
        "rampart_events_per_s={first:.0} bare_consumer_events_per_s={bare_eps:.0} ratio={:.3} \
         rollups_per_s={rps:.0} rollups_per_event={rpe:.3}",
        first / bare_eps
    );
    Ok(())
}

const MIB: f64 = 1024.0 * 1024.0;

/// What every drain of a run shares: the topic it reads, the databases it
/// enriches from, the command's options.
struct DrainBase<'a> {
    args: &'a ThroughputArgs,
    brokers: &'a str,
    topic: &'a str,
    client: &'a rampart_kafka::Overrides,
    /// Country and ASN MMDB files, the sector table.
    databases: [&'a Path; 3],
}

impl DrainBase<'_> {
    /// The settings of one drain: guarantee `g`, `threads` ingest threads,
    /// consumer groups and output topics of its own (named after `id`).
    fn settings(
        &self,
        g: &str,
        threads: usize,
        id: &str,
    ) -> anyhow::Result<rampart_pipeline::config::Settings> {
        let [country, asn, sectors] = self.databases.map(|p| p.display().to_string());
        let mut env: Vec<(String, String)> = [
            ("RAMPART_KAFKA__BROKERS", self.brokers.to_string()),
            ("RAMPART_KAFKA__INGEST_GROUP", format!("tp-ingest-{g}-{id}")),
            ("RAMPART_KAFKA__MERGE_GROUP", format!("tp-merge-{g}-{id}")),
            ("RAMPART_TOPICS__INPUT", self.topic.to_string()),
            ("RAMPART_TOPICS__PARTIALS", format!("tp-partials-{g}-{id}")),
            ("RAMPART_TOPICS__ROLLUPS", format!("tp-rollups-{g}-{id}")),
            ("RAMPART_TOPICS__DLQ", format!("tp-dlq-{g}-{id}")),
            ("RAMPART_ENRICH__COUNTRY_DB", country),
            ("RAMPART_ENRICH__ASN_DB", asn),
            ("RAMPART_ENRICH__SECTORS", sectors),
            ("RAMPART_PROCESSING__GUARANTEE", g.to_string()),
            ("RAMPART_METRICS__LISTEN", String::new()),
            ("RAMPART_PROCESSING__INGEST_THREADS", threads.to_string()),
            (
                "RAMPART_KEYS__PUBLISH_TOP",
                self.args.publish_top.to_string(),
            ),
            (
                "RAMPART_KEYS__PREFIX_CELLS",
                self.args.prefix_cells.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(budget) = &self.args.memory_budget {
            env.push((
                "RAMPART_PROCESSING__MEMORY_BUDGET".to_string(),
                budget.clone(),
            ));
        }
        let mut settings =
            rampart_pipeline::config::load(None, env).map_err(|e| anyhow::anyhow!("{e}"))?;
        settings.raw.kafka.client = self.client.clone();
        if let Some(input) = settings.inputs.first_mut() {
            input.format = self.args.format;
        }
        Ok(settings)
    }
}

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

/// One event at `time_ms` (TEST-NET source) in the input's format: an
/// `AttackEventBatch`, or the JSON format's document (a protobuf message on
/// a JSON topic is dead-lettered and would close no window).
fn closing_message(format: rampart_formats::Format, time_ms: i64) -> Vec<u8> {
    use prost::Message as _;
    let event = rampart_core::proto::v1::AttackEvent {
        time_ms,
        src_ip: vec![192, 0, 2, 1],
        dst_ip: vec![192, 0, 2, 2],
        dst_port: 22,
        protocol: 6,
        kind: 1,
        ..Default::default()
    };
    match format.encode(&event) {
        Some(document) => document.into_bytes(),
        None => rampart_core::proto::v1::AttackEventBatch {
            events: vec![event],
        }
        .encode_to_vec(),
    }
}

/// What one drain measured.
struct Drained {
    /// From partition assignment until the ingest stage processed every
    /// input message.
    seconds: f64,
    /// Rollups the merge stage published in all (the closing messages make
    /// every window of the run final; the merge's lag after the ingest is
    /// done is not in `seconds`).
    rollups: u64,
    /// From partition assignment until the last rollup was handed to the
    /// producer: input drained and every window published.
    published_seconds: f64,
    /// Partitions a rebalance moved while draining (a stage thread that
    /// joined its group late: the first member took every partition and
    /// handed some over, 1–2 s in which they waited).
    handed_over: u64,
    /// Rewinds to a committed checkpoint in either stage: the counts then
    /// include replayed input.
    rewinds: u64,
    /// How much this process's resident memory grew while the ingest drained
    /// (peak, sampled every 100 ms).
    rss_growth: u64,
}

/// Runs both stages until the ingest stage has processed `messages` input
/// messages (timed from partition assignment), then until the merge stage has
/// published nothing for three checkpoint intervals plus 2 s.
fn drain(settings: &rampart_pipeline::config::Settings, messages: u64) -> anyhow::Result<Drained> {
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
            // Input a thread read again after a handover (from the checkpoint
            // its predecessor committed on revoke) is not progress.
            let new = c
                .messages
                .load(Ordering::Relaxed)
                .saturating_sub(c.replayed.load(Ordering::Relaxed));
            if new >= messages {
                break assigned_at.map(|t| t.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // Publishing is over when no rollup came for this long: three checkpoints
    // plus a margin for a loaded machine, where a window's close, merge and
    // commit can pause several seconds (a shorter wait cut off the last
    // windows in 2 of 6 runs at load 10). Only the wall time grows with it:
    // `published_seconds` ends at the last rollup.
    let quiet = Duration::from_millis(3 * settings.checkpoint_interval_ms.max(0) as u64 + 8_000);
    let rollups = |c: &RunCounters| {
        c.merge
            .as_ref()
            .map_or(0, |m| m.produced.load(Ordering::Relaxed))
    };
    let mut last = (0u64, Instant::now());
    while result.is_some() && !handle.is_finished() && Instant::now() < deadline {
        let now = rollups(
            &counters
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > quiet {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Before stopping, which revokes every partition.
    let handed_over: u64 = {
        let c = counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        [&c.ingest, &c.merge]
            .into_iter()
            .flatten()
            .map(|c| c.revoked.load(Ordering::Relaxed))
            .sum()
    };
    shutdown.store(true, Ordering::Relaxed);
    let joined = handle
        .join()
        .map_err(|_| anyhow::anyhow!("pipeline thread panicked"))?;
    joined?;
    let seconds = result.context("rampart did not drain the topic (stopped or timed out)")?;
    let counters = counters
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let rewinds: u64 = [&counters.ingest, &counters.merge]
        .into_iter()
        .flatten()
        .map(|c| c.rewinds.load(Ordering::Relaxed))
        .sum();
    let rollups = rollups(&counters);
    anyhow::ensure!(
        rewinds > 0 || rollups > 0,
        "rampart published no rollups within {quiet:?} of draining the topic (see the log above)"
    );
    let published_seconds = assigned_at.map_or(seconds, |t| {
        last.1
            .saturating_duration_since(t)
            .as_secs_f64()
            .max(seconds)
    });
    Ok(Drained {
        seconds,
        rollups,
        published_seconds,
        handed_over,
        rewinds,
        rss_growth: rss_peak.saturating_sub(rss_before),
    })
}
