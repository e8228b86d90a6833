//! `rampart demo`: zero setup. Starts a private Apache Kafka (rampart-testkit:
//! provisioned from Maven Central on first use, single-node KRaft on
//! loopback), writes a synthetic world's MMDB and sector files, runs loadgen
//! into it at a steady rate, runs both stages in-process and shows a live view
//! every second until `--duration` passes or Ctrl-C, then a summary.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use prost::Message as _;
use rampart_core::proto::v1::{Dimension, Rollup};
use rampart_loadgen::{
    BurstConfig, GenConfig, Generator, Limit, RecordConfig, RecordStream, World, WorldConfig,
};
use rampart_pipeline::Role;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::cmd_loadgen::{self, KafkaSink, LiveCounters, Pacing, Sink};
use crate::util;

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
    /// Seed of the traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print each view below the previous one instead of redrawing it.
    #[arg(long)]
    pub plain: bool,
    /// With --brokers: settings for its Kafka clients (security, ...).
    #[command(flatten)]
    pub client: util::ClientArgs,
}

/// What the rollup reader has seen, per window start.
#[derive(Default)]
struct Windows {
    by_start: BTreeMap<i64, WindowView>,
    rollups: u64,
}

#[derive(Default, Clone)]
struct WindowView {
    end: i64,
    raw: u64,
    unique: u64,
    duplicates: u64,
    late: u64,
    countries: BTreeMap<String, u64>,
    sectors: BTreeMap<String, u64>,
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
fn start_broker(out: &mut impl std::io::Write) -> anyhow::Result<rampart_testkit::KafkaBroker> {
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
    let broker = rampart_testkit::KafkaBroker::start_private();
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
    let redraw = !args.plain && out.is_terminal();
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
    let config_text = format!(
        r#"[kafka]
brokers = "{brokers}"
ingest_group = "{run_id}-ingest"
merge_group = "{run_id}-merge"

[topics]
input = "{input}"
partials = "{run_id}.partials"
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
"#,
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
        std::thread::Builder::new().name("loadgen".into()).spawn(
            move || -> anyhow::Result<cmd_loadgen::Outcome> {
                let outcome = cmd_loadgen::drive(
                    &mut stream,
                    &mut sink,
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
        "loadgen sends {} events/s ({} per message) into {input}; windows of {} s; metrics at {metrics_url}\n",
        util::thousands(args.rate),
        args.batch,
        window_ms / 1000
    )?;
    let started = Instant::now();
    let mut last = (Instant::now(), 0u64, 0u64);
    let mut drawn = 0usize;
    while started.elapsed() < args.duration && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1).saturating_sub(last.0.elapsed()));
        let produced = live.events.load(Ordering::Relaxed);
        let m = MetricValues::read(&handle.render());
        let dt = last.0.elapsed().as_secs_f64().max(1e-3);
        let rate_in = produced.saturating_sub(last.1) as f64 / dt;
        let rate_out = m.received.saturating_sub(last.2) as f64 / dt;
        last = (Instant::now(), produced, m.received);
        let lines = view(
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
        if redraw && drawn > 0 {
            write!(out, "\x1b[{drawn}A\x1b[J")?;
        }
        for l in &lines {
            writeln!(out, "{l}")?;
        }
        if !redraw {
            writeln!(out)?;
        }
        out.flush()?;
        drawn = lines.len();
        if pipeline.is_finished() {
            break;
        }
    }

    // Wind down: stop the generator, let the pipeline drain for a moment, stop it.
    writeln!(
        out,
        "\nstopping: load generator, then both stages (final checkpoint) ..."
    )?;
    gen_stop.store(true, Ordering::SeqCst);
    let outcome = loadgen
        .join()
        .map_err(|_| anyhow::anyhow!("the load generator panicked"))??;
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
    drop(w);
    if let Err(e) = pipeline_result {
        bail!("the pipeline stopped with an error: {e}");
    }
    drop(server);
    Ok(())
}

/// Creates the pipeline's other topics and waits until the broker's metadata
/// shows them (a freshly started broker answers metadata before it lists new topics).
fn create_topics(settings: &rampart_pipeline::config::Settings) -> anyhow::Result<()> {
    use rampart_kafka::TopicSpec;
    let t = &settings.raw.topics;
    let specs = [
        TopicSpec::partials(&t.partials, t.partials_partitions).replication(1),
        TopicSpec::rollups(&t.rollups, t.rollups_partitions).replication(1),
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

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

/// The counters the view shows, read from the Prometheus exposition.
#[derive(Default, Debug)]
struct MetricValues {
    received: u64,
    duplicates: u64,
    late: u64,
    dlq: u64,
}

impl MetricValues {
    fn read(text: &str) -> MetricValues {
        let sum = |name: &str, labels: &[&str]| -> u64 {
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter(|l| l.split(['{', ' ']).next() == Some(name))
                .filter(|l| labels.iter().all(|x| l.contains(x)))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        };
        MetricValues {
            received: sum("rampart_received_events_total", &["stage=\"ingest\""]),
            duplicates: sum("rampart_discarded_events_total", &["reason=\"duplicate\""]),
            late: sum("rampart_discarded_events_total", &["reason=\"late\""]),
            dlq: sum("rampart_dlq_messages_total", &["stage=\"ingest\""]),
        }
    }
}

fn top(map: &BTreeMap<String, u64>, total: u64, n: usize, strip: &str) -> String {
    let mut v: Vec<(&String, &u64)> = map.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .take(n)
        .map(|(k, c)| {
            format!(
                "{} {:.1}%",
                k.strip_prefix(strip).unwrap_or(k),
                pct(**c, total)
            )
        })
        .collect::<Vec<_>>()
        .join("  ")
}

fn view(
    elapsed: Duration,
    duration: Duration,
    kafka: &str,
    metrics_url: &str,
    (rate_in, produced, messages): (f64, u64, u64),
    (rate_out, m): (f64, &MetricValues),
    w: &Windows,
) -> Vec<String> {
    let mut lines = vec![
        format!(
            "rampart demo  {:>3} s / {} s   {kafka}   metrics {metrics_url}",
            elapsed.as_secs(),
            duration.as_secs()
        ),
        format!(
            "  in   produced by loadgen  {:>10} events/s  {:>12} events  {:>9} messages",
            util::rate(rate_in).trim_end_matches("/s").trim(),
            util::thousands(produced),
            util::thousands(messages)
        ),
        format!(
            "  out  processed (ingest)   {:>10} events/s  {:>12} events  dedup {:.2} % duplicates  late {}  DLQ {} messages",
            util::rate(rate_out).trim_end_matches("/s").trim(),
            util::thousands(m.received),
            pct(m.duplicates, m.received),
            util::thousands(m.late),
            util::thousands(m.dlq)
        ),
    ];
    match w.by_start.iter().next_back() {
        Some((start, v)) => {
            lines.push(format!(
                "  last closed window {}-{} UTC: {} events, {} unique, {} duplicates, {} late  ({} rollups so far)",
                util::utc(*start).get(11..19).unwrap_or("?"),
                util::utc(v.end).get(11..19).unwrap_or("?"),
                util::thousands(v.raw + v.late),
                util::thousands(v.unique),
                util::thousands(v.duplicates),
                util::thousands(v.late),
                util::thousands(w.rollups)
            ));
            lines.push(format!(
                "    top origin countries: {}",
                top(&v.countries, v.raw, 6, "")
            ));
            lines.push(format!(
                "    top target sectors:   {}",
                top(&v.sectors, v.raw, 4, "cisa:")
            ));
        }
        None => lines.push(
            "  no window closed yet (a window is final a few seconds after it ends)".to_string(),
        ),
    }
    lines
}

fn read_rollups(
    brokers: &str,
    client: &rampart_kafka::Overrides,
    topic: &str,
    windows: &Mutex<Windows>,
    stop: &AtomicBool,
) {
    let mut config = ClientConfig::new();
    for (key, value) in client {
        config.set(key.as_str(), value.as_str());
    }
    let consumer: BaseConsumer = match config
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-view"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("demo: cannot read rollups: {e}");
            return;
        }
    };
    // The pipeline creates the topic when it starts.
    let mut assigned = false;
    while !stop.load(Ordering::Relaxed) {
        if !assigned {
            let parts = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(2))
                .ok()
                .and_then(|md| {
                    md.topics()
                        .iter()
                        .find(|t| t.name() == topic && t.error().is_none())
                        .map(|t| t.partitions().len())
                })
                .unwrap_or(0);
            if parts == 0 {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            let mut tpl = TopicPartitionList::new();
            for p in 0..parts {
                let _ = tpl.add_partition_offset(topic, p as i32, Offset::Beginning);
            }
            if consumer.assign(&tpl).is_err() {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            assigned = true;
        }
        let Some(Ok(msg)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let Ok(r) = Rollup::decode(rdkafka::Message::payload(&msg).unwrap_or_default()) else {
            continue;
        };
        let mut w = windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        w.rollups += 1;
        let v = w.by_start.entry(r.window_start_ms).or_default();
        v.end = r.window_end_ms;
        match Dimension::try_from(r.dimension) {
            Ok(Dimension::OriginCountry) => {
                *v.countries.entry(r.key).or_default() += r.raw_events;
            }
            Ok(Dimension::TargetSector) => {
                v.raw += r.raw_events;
                v.unique += r.unique_events;
                v.duplicates += r.duplicates;
                v.late += r.late_events;
                *v.sectors.entry(r.key).or_default() += r.raw_events;
            }
            _ => {}
        }
    }
}
