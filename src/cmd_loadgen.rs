//! `rampart loadgen`: seeded, deterministic attack traffic to Kafka or a file.
//!
//! The records come from `rampart_loadgen::RecordStream`; this command adds
//! what the library must not know: the Kafka producer (explicit partition per
//! record, so every event of a source IP lands on the partition
//! `partition_for_key` chose), wall-clock pacing, progress display, the
//! world files and the manifest `rampart verify` regenerates the run from.

mod driver;
mod progress;
mod setup;
mod sink;

use std::io::{BufWriter, IsTerminal as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use rampart_formats::Format;
use rampart_loadgen::{
    GenConfig, Generator, Limit, RecordConfig, RecordStream, RecordWriter, World, WorldConfig,
};

pub use driver::{LiveCounters, Outcome, Pacing, drive};
use progress::Progress;
pub use progress::ProgressMode;
pub use setup::ensure_input_topic;
use setup::{load_config_without_enrich_files, write_world_files};
pub use sink::{KafkaSink, Sink};

use crate::manifest::{Manifest, OutputSpec, Produced};
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
    /// Share of events from a scanning botnet: each from the next /24 of a
    /// walk over all the world's /24s (default 0: Zipf-concentrated sources).
    /// At 1, a window with fewer events than --prefixes has at most one event
    /// per /24, and rampart publishes about one origin_prefix rollup per event.
    #[arg(long)]
    pub source_spread: Option<f64>,
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
    /// Input format of the messages: protobuf (AttackEventBatch), eve
    /// (Suricata EVE), zeek-conn, ocsf or ecs. The same events in each
    /// (docs/formats.md says what each carries); one JSON document per event,
    /// newline-delimited, --batch documents per message.
    #[arg(long, value_parser = parse_format, default_value = "protobuf")]
    pub format: Format,
    #[command(flatten)]
    pub client: util::ClientArgs,
    /// Progress display on stderr: auto (a bar on a terminal, plain lines otherwise), bar, plain, none.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

pub fn parse_format(name: &str) -> Result<Format, String> {
    Format::parse(name).ok_or_else(|| {
        format!("unknown format {name:?} (protobuf, eve, suricata-eve, zeek-conn, ocsf, ecs)")
    })
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
    // The config's input of this format, else its first input.
    let topic = args
        .topic
        .clone()
        .or_else(|| {
            let inputs = &settings.as_ref()?.inputs;
            inputs
                .iter()
                .find(|i| i.format == args.format)
                .or(inputs.first())
                .map(|i| i.topic.clone())
        })
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
        source_spread: args.source_spread.unwrap_or(defaults.source_spread),
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
        "loadgen: seed {} -> {target} ({}), {partitions} partitions, {} events/message, {}, event time from {} at {}/s",
        args.seed,
        args.format.as_str(),
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
        args.format,
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
            input_format: args.format,
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
