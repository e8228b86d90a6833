//! `rampart loadgen`: seeded, deterministic attack traffic to Kafka or a file.
//!
//! The records come from `rampart_loadgen::RecordStream`; this command adds
//! what the library must not know: the Kafka producer (explicit partition per
//! record, so every event of a source IP lands on the partition
//! `partition_for_key` chose), wall-clock pacing, progress display, the
//! world files and the manifest `rampart verify` regenerates the run from.

use std::io::{BufWriter, IsTerminal as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use rampart_loadgen::{
    GenConfig, Generator, Limit, Record, RecordConfig, RecordStream, RecordWriter, World,
    WorldConfig,
};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::manifest::{Digest, Manifest, OutputSpec, Produced};
use crate::util;

/// Partitions of a newly created input topic when neither `--partitions` nor
/// a config says otherwise (rampart's `topics.input_partitions` default).
const DEFAULT_PARTITIONS: u32 = 4;
/// Events when neither `--events` nor `--duration` is given.
const DEFAULT_EVENTS: u64 = 1_000_000;

#[derive(Args, Debug)]
pub struct LoadgenArgs {
    /// A rampart config file: brokers, input topic and its partition count
    /// default to its `kafka.brokers`, `topics.input`, `topics.input_partitions`.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers (default: from --config, else 127.0.0.1:9092).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Input topic (default: from --config, else attacks.raw). Created when
    /// missing (retention.ms=-1, message.timestamp.after.max.ms unbounded for
    /// --future-share); an existing topic must have --partitions partitions.
    #[arg(long)]
    pub topic: Option<String>,
    /// Partitions the records are spread over (must equal the input topic's
    /// count; default: the existing topic's, else the config's, else 4).
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Write the records to this file (record file format) instead of Kafka.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Seed of the event stream.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seed of the synthetic world (countries, ASNs, sources, targets); default = --seed.
    #[arg(long)]
    pub world_seed: Option<u64>,
    /// Distinct potential source addresses in the world.
    #[arg(long, default_value_t = 1_000_000)]
    pub sources: u32,
    /// ASNs in the world.
    #[arg(long, default_value_t = 20_000)]
    pub asns: u32,
    /// IPv4 /24 prefixes in the world.
    #[arg(long, default_value_t = 60_000)]
    pub prefixes: u32,
    /// Wall-clock pacing in events/s; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Events per second of EVENT time (default: --rate when pacing, else 100000).
    #[arg(long)]
    pub event_rate: Option<u64>,
    /// Stop after this many events (duplicates included; malformed messages are extra).
    /// Default 1000000 when --duration is not given either.
    #[arg(long, conflicts_with = "duration")]
    pub events: Option<u64>,
    /// Stop after this much wall-clock time (e.g. 30s, 5m).
    #[arg(long, value_parser = util::parse_duration)]
    pub duration: Option<Duration>,
    /// Events per Kafka message (an AttackEventBatch); 1 = one event per message.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Share of events that are duplicates (library default 0.02).
    #[arg(long)]
    pub duplicate_rate: Option<f64>,
    /// Of those, the share that are overlapping-sensor copies (library default 0.3).
    #[arg(long)]
    pub overlap_share: Option<f64>,
    /// Share of original events that are late, 10-30 min old (library default 0.001).
    #[arg(long)]
    pub late_fraction: Option<f64>,
    /// Share of messages that are malformed (library default 0.001).
    #[arg(long)]
    pub malformed_share: Option<f64>,
    /// Share of events from clock-skewed sensors: stamped 1 day to 80 years in
    /// the future, in a message whose CreateTime is as far ahead (default 0).
    /// rampart dead-letters each such event `time_in_future`.
    #[arg(long)]
    pub future_share: Option<f64>,
    /// Share of events with an event_id seen again later by another sensor,
    /// with a later time_ms (default 0): a duplicate within rampart's dedup
    /// horizon, also across a restart.
    #[arg(long)]
    pub resight_share: Option<f64>,
    /// A re-sighting's time is 1..=this ms after the original's (default 150000).
    #[arg(long)]
    pub resight_delay_ms: Option<i64>,
    /// Leave the last N partitions of the topic empty: records go only to the
    /// others (rampart must still finalise every window). Default 0.
    #[arg(long, default_value_t = 0)]
    pub empty_partitions: u32,
    /// Bounded out-of-order jitter in ms of event time (library default 2000).
    #[arg(long)]
    pub jitter_ms: Option<i64>,
    /// No periodic country/sector bursts.
    #[arg(long)]
    pub no_bursts: bool,
    /// Event time of the first event, ms since the Unix epoch. Default: now minus
    /// the run's event-time span, aligned to a minute, so the broker's
    /// retention never deletes the input and no timestamp lies in the future.
    #[arg(long)]
    pub epoch: Option<i64>,
    /// Write the world's country.mmdb, asn.mmdb and sectors.csv into DIR, for
    /// `rampart run`'s [enrich] section.
    #[arg(long)]
    pub world_dir: Option<PathBuf>,
    /// Write the manifest (all settings + events produced) here, for `rampart verify`.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Compression codec of the produced messages (librdkafka's
    /// `compression.type`; default lz4, none for messages of < 10 events).
    #[arg(long, value_enum)]
    pub compression: Option<Codec>,
    #[command(flatten)]
    pub client: util::ClientArgs,
    /// Progress display on stderr: auto (a bar on a terminal, plain lines otherwise), bar, plain, none.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

/// A producer compression codec (every one librdkafka is built with).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    fn as_str(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    Auto,
    Bar,
    Plain,
    None,
}

pub fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    let settings = match &args.config {
        Some(p) => Some(load_config_without_enrich_files(p, &args.client.settings)?),
        None => None,
    };
    let brokers = args
        .brokers
        .clone()
        .or_else(|| settings.as_ref().map(|s| s.raw.kafka.brokers.clone()))
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args
        .topic
        .clone()
        .or_else(|| settings.as_ref().map(|s| s.raw.topics.input.clone()))
        .unwrap_or_else(|| "attacks.raw".into());
    let client_overrides = match &settings {
        Some(s) => s.raw.kafka.client.clone(),
        None => args.client.overrides()?,
    };

    let world_cfg = WorldConfig {
        seed: args.world_seed.unwrap_or(args.seed),
        sources: args.sources,
        asns: args.asns,
        prefixes: args.prefixes,
        ..WorldConfig::default()
    };
    let t = Instant::now();
    let world = Arc::new(World::new(world_cfg.clone()).context("cannot build the world")?);
    eprintln!(
        "loadgen: world seed {} ({} countries, {} ASNs, {} sources) built in {:.1} s",
        world_cfg.seed,
        world.countries().len(),
        world.asns().len(),
        util::thousands(u64::from(world_cfg.sources)),
        t.elapsed().as_secs_f64()
    );
    if let Some(dir) = &args.world_dir {
        write_world_files(&world, dir)?;
    }

    // Partitions and the destination.
    let mut sink;
    let partitions;
    let output_spec;
    match &args.output {
        Some(path) => {
            partitions = args
                .partitions
                .or_else(|| {
                    settings
                        .as_ref()
                        .map(|s| s.raw.topics.input_partitions.max(1) as u32)
                })
                .unwrap_or(DEFAULT_PARTITIONS);
            let f = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            sink = Sink::File(RecordWriter::new(BufWriter::with_capacity(1 << 20, f))?);
            output_spec = OutputSpec::File {
                path: path.display().to_string(),
            };
        }
        None => {
            let wanted = args.partitions.or_else(|| {
                settings
                    .as_ref()
                    .map(|s| s.raw.topics.input_partitions.max(1) as u32)
            });
            util::check_kafka(&brokers, &client_overrides)?;
            partitions = ensure_input_topic(&brokers, &topic, wanted, &client_overrides)?;
            let mut overrides = client_overrides.clone();
            if let Some(codec) = args.compression {
                overrides.insert("compression.type", codec.as_str());
            } else if args.batch < 10 {
                // Tiny messages: lz4 costs more CPU than it saves (measured ~290k vs
                // 340-515k messages/s with one event per message on 2 cores).
                if !overrides.contains_key("compression.type") {
                    overrides.insert("compression.type", "none");
                }
            }
            sink = Sink::Kafka(KafkaSink::new(&brokers, &topic, &overrides)?);
            output_spec = OutputSpec::Kafka {
                brokers: brokers.clone(),
                topic: topic.clone(),
            };
        }
    }

    let defaults = GenConfig::default();
    let event_rate = args.event_rate.unwrap_or(if args.rate > 0 {
        args.rate
    } else {
        defaults.rate
    });
    if event_rate == 0 {
        bail!("--event-rate must be > 0");
    }
    let events_limit = match (args.events, args.duration) {
        (Some(n), _) => Some(n),
        (None, None) => Some(DEFAULT_EVENTS),
        (None, Some(_)) => None,
    };
    let epoch_ms = match args.epoch {
        Some(e) => e,
        None => {
            // The event-time span the run will cover, estimated when it is bounded by wall clock.
            let events_est = match (events_limit, args.duration) {
                (Some(n), _) => Some(n),
                (None, Some(d)) if args.rate > 0 => {
                    Some(args.rate.saturating_mul(d.as_millis() as u64) / 1000)
                }
                _ => None,
            };
            let span_ms = match events_est {
                Some(n) => (u128::from(n) * 1000 / u128::from(event_rate)) as i64,
                None => 3_600_000,
            };
            (util::now_ms() - span_ms.min(30 * 86_400_000)) / 60_000 * 60_000
        }
    };
    let gen_cfg = GenConfig {
        seed: args.seed,
        rate: event_rate,
        epoch_ms,
        duplicate_rate: args.duplicate_rate.unwrap_or(defaults.duplicate_rate),
        overlap_share: args.overlap_share.unwrap_or(defaults.overlap_share),
        late_fraction: args.late_fraction.unwrap_or(defaults.late_fraction),
        jitter_ms: args.jitter_ms.unwrap_or(defaults.jitter_ms),
        future_share: args.future_share.unwrap_or(defaults.future_share),
        resight_share: args.resight_share.unwrap_or(defaults.resight_share),
        resight_delay_ms: args.resight_delay_ms.unwrap_or(defaults.resight_delay_ms),
        bursts: if args.no_bursts {
            None
        } else {
            defaults.bursts.clone()
        },
        ..defaults
    };
    let rec_cfg = RecordConfig {
        partitions,
        events_per_batch: args.batch,
        malformed_share: args
            .malformed_share
            .unwrap_or(RecordConfig::default().malformed_share),
        empty_partitions: args.empty_partitions,
        ..RecordConfig::default()
    };
    let generator = Generator::new(world.clone(), gen_cfg.clone())?;
    let limit = events_limit.map_or(Limit::Unbounded, Limit::Events);
    let mut stream = RecordStream::new(generator, rec_cfg.clone(), limit)?;

    let stop = Arc::new(AtomicBool::new(false));
    util::install_signal_handlers(stop.clone())?;
    let live = Arc::new(LiveCounters::default());
    let mode = match args.progress {
        ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
        ProgressMode::Auto => ProgressMode::Plain,
        m => m,
    };
    let target = match &output_spec {
        OutputSpec::Kafka { brokers, topic } => format!("kafka {brokers} topic {topic}"),
        OutputSpec::File { path } => format!("file {path}"),
    };
    eprintln!(
        "loadgen: seed {} -> {target}, {partitions} partitions, {} events/message, {}, event time from {} at {}/s",
        args.seed,
        args.batch,
        if args.rate > 0 {
            format!("paced at {}/s", util::thousands(args.rate))
        } else {
            "as fast as possible".into()
        },
        util::utc(epoch_ms),
        util::thousands(event_rate),
    );
    let mut progress = Progress::new(mode, events_limit, args.duration);
    let started = Instant::now();
    let outcome = drive(
        &mut stream,
        &mut sink,
        &Pacing {
            rate: args.rate,
            deadline: args.duration.map(|d| started + d),
        },
        &stop,
        &live,
        &mut |s| progress.tick(s),
    )?;
    progress.finish();
    let delivered = sink.finish()?;
    let wall = started.elapsed().as_secs_f64();
    if stop.load(Ordering::SeqCst) {
        eprintln!("loadgen: interrupted; the run ends cleanly at the events produced so far");
    }
    println!(
        "loadgen: {} events in {} messages ({} malformed, {:.1} MB) in {wall:.2} s: {} events/s, {} messages/s{}",
        util::thousands(outcome.events),
        util::thousands(outcome.records),
        util::thousands(outcome.malformed),
        outcome.payload_bytes as f64 / 1e6,
        util::thousands((outcome.events as f64 / wall.max(1e-9)) as u64),
        util::thousands((outcome.records as f64 / wall.max(1e-9)) as u64),
        delivered
            .map(|n| format!(", {} acknowledged by the broker", util::thousands(n)))
            .unwrap_or_default(),
    );
    if let Some(path) = &args.manifest {
        let m = Manifest {
            format: crate::manifest::FORMAT,
            rampart_version: env!("CARGO_PKG_VERSION").to_string(),
            world: (&world_cfg).into(),
            generator: (&gen_cfg).into(),
            records: (&rec_cfg).into(),
            output: output_spec,
            produced: Produced {
                events: outcome.events,
                records: outcome.records,
                malformed: outcome.malformed,
                payload_bytes: outcome.payload_bytes,
                digest: outcome.digest.clone(),
                first_clock_ms: epoch_ms,
                last_clock_ms: outcome.last_clock_ms,
                wall_seconds: wall,
            },
        };
        m.write(path)?;
        println!("loadgen: manifest written to {}", path.display());
    }
    Ok(())
}

/// Loads a rampart config for its Kafka and topic settings. Loadgen usually
/// runs before the enrichment files exist (it writes them with --world-dir),
/// so missing `[enrich]` files are not an error here.
fn load_config_without_enrich_files(
    path: &Path,
    client_args: &[(String, String)],
) -> anyhow::Result<rampart_pipeline::config::Settings> {
    let err =
        match rampart_pipeline::config::load_with_client(Some(path), std::env::vars(), client_args)
        {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
    if err.issues.iter().any(|i| !i.key.starts_with("enrich.")) {
        bail!("{err}");
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut table: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    table.remove("enrich");
    let tmp = tempfile::NamedTempFile::new()?;
    std::fs::write(tmp.path(), toml::to_string(&table)?)?;
    rampart_pipeline::config::load_with_client(
        Some(tmp.path()),
        std::env::vars().filter(|(k, _)| !k.starts_with("RAMPART_ENRICH__")),
        client_args,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Writes `country.mmdb`, `asn.mmdb` and `sectors.csv` for `world` into `dir`
/// and prints the matching `[enrich]` section.
pub fn write_world_files(world: &World, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let country = dir.join("country.mmdb");
    let asn = dir.join("asn.mmdb");
    let sectors = dir.join("sectors.csv");
    world.write_mmdb(&country, &asn)?;
    world.write_sector_table(&sectors)?;
    eprintln!(
        "loadgen: world files in {} — for rampart.toml:\n  [enrich]\n  country_db = {:?}\n  asn_db = {:?}\n  sectors = {:?}",
        dir.display(),
        country.display().to_string(),
        asn.display().to_string(),
        sectors.display().to_string()
    );
    Ok(())
}

/// Creates the input topic with `wanted` (default 4) partitions,
/// `retention.ms=-1` and no bound on how far ahead a CreateTime may be
/// (`message.timestamp.after.max.ms`) when missing; returns its partition count. An existing
/// topic with another count than `wanted` is an error.
pub fn ensure_input_topic(
    brokers: &str,
    topic: &str,
    wanted: Option<u32>,
    overrides: &rampart_kafka::Overrides,
) -> anyhow::Result<u32> {
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rampart_kafka::admin_config(brokers, overrides)?
            .create()
            .context("cannot create a Kafka admin client")?;
    match rampart_kafka::partition_count(&admin, topic) {
        Ok(n) => {
            let n = n.max(1) as u32;
            if let Some(w) = wanted.filter(|w| *w != n) {
                bail!(
                    "topic {topic} exists with {n} partitions, not {w}: records are partitioned \
                     by source IP over exactly that many partitions (pass --partitions {n}, or use another topic)"
                );
            }
            Ok(n)
        }
        Err(rampart_kafka::Error::UnknownTopic(_)) => {
            let n = wanted.unwrap_or(DEFAULT_PARTITIONS);
            let spec = rampart_kafka::TopicSpec::new(topic, n as i32)
                .replication(-1)
                .config("retention.ms", "-1")
                // Clock-skewed sensors (--future-share) stamp CreateTimes far
                // ahead, which Kafka 4 refuses by default (1 h).
                .config("message.timestamp.after.max.ms", "9223372036854775807");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(rampart_kafka::ensure_topics(&admin, &[spec]))
                .with_context(|| format!("cannot create topic {topic} on {brokers}"))?;
            eprintln!("loadgen: created topic {topic} ({n} partitions, retention.ms=-1)");
            Ok(n)
        }
        Err(e) => Err(e).with_context(|| format!("cannot reach Kafka at {brokers}")),
    }
}

/// Live counters of a running loadgen (read by the demo's view).
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub events: AtomicU64,
    pub records: AtomicU64,
}

/// A snapshot passed to the progress callback.
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    pub events: u64,
    pub records: u64,
    pub elapsed: Duration,
}

/// Wall-clock pacing and bound.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    /// Events/s; 0 = unpaced.
    pub rate: u64,
    pub deadline: Option<Instant>,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub events: u64,
    pub records: u64,
    pub malformed: u64,
    pub payload_bytes: u64,
    pub digest: String,
    pub last_clock_ms: i64,
}

/// Sends `stream` into `sink` until it ends, the deadline passes or `stop` is
/// set. An early end stops the stream at its current event count, so the
/// records sent equal those of `Limit::Events(outcome.events)`.
pub fn drive(
    stream: &mut RecordStream,
    sink: &mut Sink,
    pacing: &Pacing,
    stop: &AtomicBool,
    live: &LiveCounters,
    on_tick: &mut dyn FnMut(Tick),
) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    let mut digest = Digest::default();
    let mut next_tick = start;
    let mut stopping = false;
    while let Some(r) = stream.next() {
        sink.send(&r)?;
        digest.add(&r);
        let events = stream.stats().events;
        let records = stream.stats().records;
        live.events.store(events, Ordering::Relaxed);
        live.records.store(records, Ordering::Relaxed);
        let now = Instant::now();
        if now >= next_tick {
            on_tick(Tick {
                events,
                records,
                elapsed: now - start,
            });
            next_tick = now + Duration::from_millis(100);
        }
        if stopping {
            continue;
        }
        if stop.load(Ordering::Relaxed) || pacing.deadline.is_some_and(|d| now >= d) {
            // End here: the remaining open batches are flushed by the stream.
            stream.set_limit(Limit::Events(stream.generator().stats().events));
            stopping = true;
            continue;
        }
        if pacing.rate > 0 {
            // Sleep while ahead of the schedule (events / rate seconds after start).
            let due = Duration::from_secs_f64(events as f64 / pacing.rate as f64);
            let mut ahead = due.saturating_sub(now - start);
            while ahead > Duration::from_millis(1) && !stop.load(Ordering::Relaxed) {
                let mut nap = ahead.min(Duration::from_millis(50));
                if let Some(d) = pacing.deadline {
                    nap = nap.min(d.saturating_duration_since(Instant::now()));
                }
                if nap.is_zero() {
                    break;
                }
                std::thread::sleep(nap);
                ahead = ahead.saturating_sub(nap);
            }
        }
    }
    let s = stream.stats();
    on_tick(Tick {
        events: s.events,
        records: s.records,
        elapsed: start.elapsed(),
    });
    Ok(Outcome {
        events: s.events,
        records: s.records,
        malformed: s.malformed,
        payload_bytes: s.payload_bytes,
        digest: digest.hex(),
        last_clock_ms: stream.generator().now_ms(),
    })
}

/// Where records go.
pub enum Sink {
    Kafka(KafkaSink),
    File(RecordWriter<BufWriter<std::fs::File>>),
}

impl Sink {
    fn send(&mut self, r: &Record) -> anyhow::Result<()> {
        match self {
            Sink::Kafka(k) => k.send(r),
            Sink::File(w) => Ok(w.write(r)?),
        }
    }

    /// Flushes; for Kafka, waits for every delivery and returns how many the
    /// broker acknowledged (an error if any failed).
    pub fn finish(self) -> anyhow::Result<Option<u64>> {
        match self {
            Sink::Kafka(k) => k.finish().map(Some),
            Sink::File(w) => {
                w.finish()?;
                Ok(None)
            }
        }
    }
}

/// Counts deliveries; keeps the first failure.
#[derive(Default)]
pub struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self
                    .first_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// An idempotent producer that sends each record to its explicit partition
/// with its own timestamp (idempotence keeps each partition's order through retries).
pub struct KafkaSink {
    producer: ThreadedProducer<Deliveries>,
    topic: String,
}

impl KafkaSink {
    /// A producer for `topic` with throughput-oriented defaults; `overrides` win.
    pub fn new(
        brokers: &str,
        topic: &str,
        overrides: &rampart_kafka::Overrides,
    ) -> anyhow::Result<KafkaSink> {
        let mut all = rampart_kafka::Overrides::new();
        for (k, v) in [
            ("linger.ms", "20"),
            ("batch.size", "1000000"),
            ("batch.num.messages", "100000"),
            ("queue.buffering.max.messages", "1000000"),
            ("queue.buffering.max.kbytes", "1048576"),
            ("message.timeout.ms", "120000"),
        ] {
            all.insert(k, v);
        }
        all.extend(overrides.iter());
        let cfg: ClientConfig = rampart_kafka::producer_config(brokers, &all)?;
        let producer = cfg
            .create_with_context(Deliveries::default())
            .with_context(|| format!("cannot create a Kafka producer for {brokers}"))?;
        Ok(KafkaSink {
            producer,
            topic: topic.to_string(),
        })
    }

    fn send(&mut self, r: &Record) -> anyhow::Result<()> {
        let mut rec = BaseRecord::to(&self.topic)
            .partition(r.partition)
            .key(&r.key[..])
            .payload(&r.payload[..])
            .timestamp(r.timestamp_ms);
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_micros(500));
                }
                Err((e, _)) => return Err(e).context("cannot produce"),
            }
            if let Some(e) = self.first_error() {
                bail!("delivery failed: {e}");
            }
        }
    }

    fn first_error(&self) -> Option<String> {
        self.producer
            .context()
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn finish(self) -> anyhow::Result<u64> {
        self.producer
            .flush(Duration::from_secs(120))
            .context("not every message was delivered within 120 s")?;
        let ctx = self.producer.context();
        let failed = ctx.failed.load(Ordering::Relaxed);
        if failed > 0 {
            bail!(
                "{failed} messages were not delivered (first error: {}); the manifest would not match the topic",
                self.first_error().unwrap_or_default()
            );
        }
        Ok(ctx.ok.load(Ordering::Relaxed))
    }
}

/// Progress on stderr: an indicatif bar, plain lines every 2 s, or nothing.
struct Progress {
    mode: ProgressMode,
    /// The bar and whether its position counts events (else seconds).
    bar: Option<(indicatif::ProgressBar, bool)>,
    last_line: Instant,
    last: (Duration, u64),
}

impl Progress {
    fn new(mode: ProgressMode, events: Option<u64>, duration: Option<Duration>) -> Progress {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let (bar, template, counts_events) = match (events, duration) {
                (Some(n), _) => (
                    indicatif::ProgressBar::new(n),
                    "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events  {msg}",
                    true,
                ),
                (None, Some(d)) => (
                    indicatif::ProgressBar::new(d.as_secs().max(1)),
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} s  {msg}",
                    false,
                ),
                (None, None) => (
                    indicatif::ProgressBar::new_spinner(),
                    "{spinner} [{elapsed_precise}] {msg}",
                    true,
                ),
            };
            let style = indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            (bar.with_style(style), counts_events)
        });
        Progress {
            mode,
            bar,
            last_line: Instant::now(),
            last: (Duration::ZERO, 0),
        }
    }

    fn tick(&mut self, t: Tick) {
        let dt = t.elapsed.saturating_sub(self.last.0).as_secs_f64();
        let now_rate = t.events.saturating_sub(self.last.1) as f64 / dt.max(1e-9);
        match &self.bar {
            Some((bar, counts_events)) => {
                if dt >= 0.5 {
                    bar.set_message(format!(
                        "{} events  {} messages  now {} events",
                        util::thousands(t.events),
                        util::thousands(t.records),
                        util::rate(now_rate)
                    ));
                    self.last = (t.elapsed, t.events);
                }
                bar.set_position(if *counts_events {
                    t.events
                } else {
                    t.elapsed.as_secs()
                });
            }
            None if self.mode == ProgressMode::Plain
                && self.last_line.elapsed() >= Duration::from_secs(2) =>
            {
                eprintln!(
                    "loadgen: {:>6.1} s  {} events  {} messages  now {} events",
                    t.elapsed.as_secs_f64(),
                    util::thousands(t.events),
                    util::thousands(t.records),
                    util::rate(now_rate)
                );
                self.last_line = Instant::now();
                self.last = (t.elapsed, t.events);
            }
            None => {}
        }
    }

    fn finish(&mut self) {
        if let Some((bar, _)) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
