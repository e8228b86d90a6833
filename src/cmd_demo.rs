//! `rampart demo`: zero setup. Starts a private Apache Kafka (rampart-localkafka:
//! provisioned from Maven Central on first use, single-node KRaft on
//! loopback), writes a synthetic world's MMDB and sector files, runs loadgen
//! into it at a steady rate, runs both stages in-process and shows a live view
//! every second until `--duration` passes or Ctrl-C, then a summary.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use rampart_formats::Format;
use rampart_loadgen::{
    BurstConfig, GenConfig, Generator, Limit, RecordConfig, RecordStream, World, WorldConfig,
};
use rampart_pipeline::Role;

use crate::cmd_loadgen::{self, KafkaSink, LiveCounters, Pacing, Sink};
use crate::demo_view::{MetricValues, Windows, pct, read_rollups, view};
use crate::live_view::{Key, LiveView};
use crate::{logging, util};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// How long the demo runs (Ctrl-C ends it earlier).
    #[arg(long, default_value = "40s", value_parser = util::parse_duration)]
    pub duration: Duration,
    /// Events/s the demo's load generator sends (a demo pace, not rampart's limit).
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// Events per Kafka message.
    #[arg(long, default_value_t = 200)]
    pub batch: usize,
    /// Tumbling window length (short, so rollups appear quickly).
    #[arg(long, default_value = "5s")]
    pub window: String,
    /// Use this Kafka (host:port) instead of starting a private one.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Address of the /metrics page (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub metrics: String,
    /// Input format the load generator writes and rampart reads: protobuf
    /// (AttackEventBatch), or eve (Suricata EVE JSON: the demo's config reads
    /// the input topic through an `[[inputs]]` entry with format
    /// suricata-eve); zeek-conn, ocsf and ecs work the same way.
    #[arg(long, value_parser = cmd_loadgen::parse_format, default_value = "protobuf")]
    pub format: Format,
    /// Seed of the traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print each frame as plain lines below the previous one instead of
    /// redrawing the screen (the default when stdout is not a terminal).
    #[arg(long)]
    pub plain: bool,
    /// With --brokers: settings for its Kafka clients (security, ...).
    #[command(flatten)]
    pub client: util::ClientArgs,
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn cache_dir() -> std::path::PathBuf {
    std::env::var_os("RAMPART_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/rampart"))
        })
        .unwrap_or_else(|| std::path::PathBuf::from(".cache/rampart"))
}

/// Starts the private broker, saying what happens while it does.
fn start_broker(out: &mut impl std::io::Write) -> anyhow::Result<rampart_localkafka::LocalKafka> {
    if !on_path("java") || !on_path("mvn") {
        bail!(
            "the demo runs a private Apache Kafka, which needs Java 17+ and Maven (to fetch Kafka \
             from Maven Central once). Install them (Debian/Ubuntu: apt-get install \
             openjdk-17-jre-headless maven), or point the demo at a running Kafka with --brokers HOST:PORT"
        );
    }
    let kafka_home = cache_dir().join("kafka-4.1.1");
    if kafka_home.join(".complete").is_file() {
        writeln!(
            out,
            "starting a private Apache Kafka 4.1.1 (single-node KRaft on 127.0.0.1, jars cached in {}) ...",
            kafka_home.display()
        )?;
    } else {
        writeln!(
            out,
            "first run: fetching Apache Kafka 4.1.1 and its dependencies from Maven Central into {} \
             (once; a minute or two), then starting it (single-node KRaft on 127.0.0.1) ...",
            kafka_home.display()
        )?;
    }
    out.flush()?;
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut next = 10;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let s = start.elapsed().as_secs();
                if s >= next {
                    println!("  ... still starting Kafka ({s} s)");
                    next += 10;
                }
            }
        })
    };
    let t = Instant::now();
    let broker = rampart_localkafka::LocalKafka::start(&rampart_localkafka::Options::default());
    done.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    let broker = broker.context("the private Kafka did not start")?;
    writeln!(
        out,
        "Kafka is up at {} ({:.1} s); it is stopped and its data deleted when the demo ends",
        broker.bootstrap(),
        t.elapsed().as_secs_f64()
    )?;
    Ok(broker)
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    writeln!(
        out,
        "rampart demo: synthetic attack traffic -> Kafka -> rampart (ingest + merge, in this process) -> rollups, for {} s (Ctrl-C ends it early)",
        args.duration.as_secs()
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    util::install_signal_handlers(stop.clone())?;

    let broker;
    // The private broker is plaintext on loopback; client settings are for --brokers.
    let client = if args.brokers.is_some() {
        args.client.overrides()?
    } else {
        rampart_kafka::Overrides::new()
    };
    let (brokers, kafka_label) = match &args.brokers {
        Some(b) => (b.clone(), format!("Kafka {b}")),
        None => {
            broker = start_broker(&mut out)?;
            (
                broker.bootstrap().to_string(),
                format!("private Apache Kafka 4.1.1 at {}", broker.bootstrap()),
            )
        }
    };
    let run_id = format!("demo-{:08x}", rand_id());
    let dir = tempfile::Builder::new().prefix("rampart-demo-").tempdir()?;
    let world_cfg = WorldConfig {
        seed: args.seed,
        sources: 200_000,
        asns: 5_000,
        prefixes: 15_000,
        ..WorldConfig::default()
    };
    let world = Arc::new(World::new(world_cfg)?);
    world.write_mmdb(
        &dir.path().join("country.mmdb"),
        &dir.path().join("asn.mmdb"),
    )?;
    world.write_sector_table(&dir.path().join("sectors.csv"))?;
    let input = format!("{run_id}.raw");
    let rollups = format!("{run_id}.rollups");
    // Protobuf is read from `topics.input`; another format needs an
    // `[[inputs]]` entry (which replaces `topics.input`).
    let (input_key, inputs_table) = if args.format == Format::Protobuf {
        (format!("input = \"{input}\"\n"), String::new())
    } else {
        (
            String::new(),
            format!(
                "\n[[inputs]]\ntopic = \"{input}\"\nformat = \"{}\"\n",
                args.format.as_str()
            ),
        )
    };
    let config_text = format!(
        r#"[kafka]
brokers = "{brokers}"
ingest_group = "{run_id}-ingest"
merge_group = "{run_id}-merge"

[topics]
{input_key}partials = "{run_id}.partials"
rollups = "{rollups}"
dlq = "{run_id}.dlq"
input_partitions = 4
partials_partitions = 2
rollups_partitions = 2

[window]
size = "{window}"
out_of_orderness = "3s"
allowed_lateness = "1s"
idle_timeout = "3s"

[enrich]
country_db = "{d}/country.mmdb"
asn_db = "{d}/asn.mmdb"
sectors = "{d}/sectors.csv"

[processing]
checkpoint_interval = "500ms"
transactional_id_prefix = "{run_id}"

[metrics]
listen = ""
{inputs_table}"#,
        window = args.window,
        d = dir.path().display(),
    );
    let config_path = dir.path().join("rampart.toml");
    std::fs::write(&config_path, config_text)?;
    let mut settings = rampart_pipeline::config::load(Some(&config_path), std::iter::empty())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    settings.raw.kafka.client = client.clone();
    let window_ms = settings.ingest.window.size_ms;

    let handle = rampart_pipeline::telemetry::install_recorder()?;
    let server = rampart_pipeline::http::serve(&args.metrics, handle.clone())?;
    let metrics_url = format!("http://{}/metrics", server.addr());

    util::check_kafka(&brokers, &client)?;
    let partitions = cmd_loadgen::ensure_input_topic(&brokers, &input, Some(4), &client)?;
    create_topics(&settings)?;

    // Both stages, in this process.
    let shutdown = Arc::new(AtomicBool::new(false));
    let pipeline = {
        let shutdown = shutdown.clone();
        let settings = settings.clone();
        let instance = run_id.clone();
        std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || {
                rampart_pipeline::run(&settings, Role::Both, &instance, shutdown, None)
            })?
    };

    // The load generator: event time follows the wall clock at the demo's rate.
    let now = util::now_ms();
    let gen_cfg = GenConfig {
        seed: args.seed,
        rate: args.rate.max(1),
        epoch_ms: now / 1000 * 1000,
        // A burst of one country or sector every 30 s, for 10 s.
        bursts: Some(BurstConfig {
            period_ms: 30_000,
            duration_ms: 10_000,
            share: 0.3,
        }),
        ..GenConfig::default()
    };
    let rec_cfg = RecordConfig {
        partitions,
        events_per_batch: args.batch,
        ..RecordConfig::default()
    };
    let mut stream = RecordStream::new(
        Generator::new(world.clone(), gen_cfg)?,
        rec_cfg,
        Limit::Unbounded,
    )?;
    let live = Arc::new(LiveCounters::default());
    let gen_stop = Arc::new(AtomicBool::new(false));
    let loadgen = {
        let live = live.clone();
        let gen_stop = gen_stop.clone();
        let mut sink = Sink::Kafka(KafkaSink::new(&brokers, &input, &client)?);
        let rate = args.rate;
        let format = args.format;
        std::thread::Builder::new().name("loadgen".into()).spawn(
            move || -> anyhow::Result<cmd_loadgen::Outcome> {
                let outcome = cmd_loadgen::drive(
                    &mut stream,
                    &mut sink,
                    format,
                    &Pacing {
                        rate,
                        deadline: None,
                    },
                    &gen_stop,
                    &live,
                    &mut |_| {},
                )?;
                sink.finish()?;
                Ok(outcome)
            },
        )?
    };

    // Reads the published rollups (read_committed).
    let windows = Arc::new(Mutex::new(Windows::default()));
    let reader_stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let windows = windows.clone();
        let reader_stop = reader_stop.clone();
        let brokers = brokers.clone();
        let rollups = rollups.clone();
        let client = client.clone();
        std::thread::Builder::new()
            .name("rollups".into())
            .spawn(move || read_rollups(&brokers, &client, &rollups, &windows, &reader_stop))?
    };

    writeln!(
        out,
        "loadgen sends {} events/s ({} per message, {}) into {input}; windows of {} s; metrics at {metrics_url}\n",
        util::thousands(args.rate),
        args.batch,
        args.format.as_str(),
        window_ms / 1000
    )?;
    let started = Instant::now();
    let mut last = (Instant::now(), 0u64, 0u64);
    let mut live_view = LiveView::start(args.plain)?;
    let mut lines = Vec::new();
    let mut next_frame = Instant::now() + Duration::from_secs(1);
    while started.elapsed() < args.duration && !stop.load(Ordering::Relaxed) {
        // Keys (q, Esc, Ctrl-C: raw mode turns Ctrl-C into a key) only on the full screen.
        let key = live_view.next_key(next_frame.saturating_duration_since(Instant::now()));
        if key == Some(Key::Quit) {
            break;
        }
        if Instant::now() >= next_frame {
            next_frame = Instant::now() + Duration::from_secs(1);
            let produced = live.events.load(Ordering::Relaxed);
            let m = MetricValues::read(&handle.render());
            let dt = last.0.elapsed().as_secs_f64().max(1e-3);
            let rate_in = produced.saturating_sub(last.1) as f64 / dt;
            let rate_out = m.received.saturating_sub(last.2) as f64 / dt;
            last = (Instant::now(), produced, m.received);
            lines = view(
                started.elapsed(),
                args.duration,
                &kafka_label,
                &metrics_url,
                (rate_in, produced, live.records.load(Ordering::Relaxed)),
                (rate_out, &m),
                &windows
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
        } else if !live_view.is_full_screen() {
            continue;
        }
        // The whole frame, every time (a key or a resize redraws at once).
        if !lines.is_empty() {
            live_view.show(&lines)?;
        }
        if pipeline.is_finished() {
            break;
        }
    }
    live_view.finish(&lines)?;

    // Wind down: stop the generator, let the pipeline drain for a moment, stop it.
    writeln!(
        out,
        "\nstopping: load generator, then both stages (final checkpoint) ..."
    )?;
    gen_stop.store(true, Ordering::SeqCst);
    let outcome = loadgen
        .join()
        .map_err(|_| anyhow::anyhow!("the load generator panicked"))??;
    // Let the ingest take in what was produced (bounded) so that the summary's
    // counts are complete.
    let drain_deadline = Instant::now() + DRAIN_LIMIT;
    while !pipeline.is_finished() && Instant::now() < drain_deadline {
        let m = MetricValues::read(&handle.render());
        if m.received >= outcome.events && m.dlq >= outcome.malformed {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    shutdown.store(true, Ordering::SeqCst);
    let pipeline_result = pipeline
        .join()
        .map_err(|_| anyhow::anyhow!("the pipeline thread panicked"))?;
    std::thread::sleep(Duration::from_millis(500));
    reader_stop.store(true, Ordering::SeqCst);
    let _ = reader.join();
    let m = MetricValues::read(&handle.render());
    let w = windows
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let secs = started.elapsed().as_secs_f64();
    writeln!(out, "\nsummary ({secs:.0} s on {kafka_label}):")?;
    writeln!(
        out,
        "  produced   {} events in {} messages ({} malformed on purpose), {} on average (the demo's pace)",
        util::thousands(outcome.events),
        util::thousands(outcome.records),
        util::thousands(outcome.malformed),
        util::rate(outcome.events as f64 / secs)
    )?;
    writeln!(
        out,
        "  processed  {} events: {} duplicates dropped ({:.2} %), {} late, {} messages to the DLQ",
        util::thousands(m.received),
        util::thousands(m.duplicates),
        pct(m.duplicates, m.received),
        util::thousands(m.late),
        util::thousands(m.dlq)
    )?;
    writeln!(
        out,
        "  published  {} rollups for {} closed windows of {} s (5 dimensions: origin country, ASN, prefix, target sector, country x sector)",
        util::thousands(w.rollups),
        w.by_start.len(),
        window_ms / 1000
    )?;
    writeln!(
        out,
        "  These rates are the demo's chosen pace on one machine, not rampart's speed: see the README for throughput."
    )?;
    if let Some(warmup) = logging::warmup_summary() {
        writeln!(out, "  ({warmup})")?;
    }
    drop(w);
    if let Err(e) = pipeline_result {
        bail!("the pipeline stopped with an error: {e}");
    }
    drop(server);
    Ok(())
}

/// How long the demo waits, after the load generator stops, for the ingest
/// to count every produced event before stopping the stages.
const DRAIN_LIMIT: Duration = Duration::from_secs(20);

/// Creates the pipeline's other topics and waits until the broker's metadata
/// shows them (a freshly started broker answers metadata before it lists new topics).
fn create_topics(settings: &rampart_pipeline::config::Settings) -> anyhow::Result<()> {
    use rampart_kafka::TopicSpec;
    let t = &settings.raw.topics;
    let specs = [
        TopicSpec::partials(&t.partials, t.partials_partitions).replication(1),
        TopicSpec::rollups(
            &t.rollups,
            t.rollups_partitions,
            settings.rollups_retention_ms,
        )
        .replication(1),
        TopicSpec::dlq(&t.dlq, t.dlq_partitions).replication(1),
    ];
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rampart_kafka::admin_config(&settings.raw.kafka.brokers, &settings.raw.kafka.client)?
            .create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(rampart_kafka::ensure_topics(&admin, &specs))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    for s in &specs {
        while rampart_kafka::partition_count(&admin, &s.name).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "topic {} was created but does not show in the metadata",
                    s.name
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

fn rand_id() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(16)
}
