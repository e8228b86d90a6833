//! The `rampart` binary.

mod cmd_demo;
mod cmd_loadgen;
mod cmd_run;
mod cmd_tail;
mod cmd_throughput;
mod cmd_top;
mod cmd_verify;
mod demo_view;
mod live_view;
mod logging;
mod manifest;
mod promtext;
mod util;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// mimalloc rather than glibc malloc: rampart allocates and frees many small
/// objects per key (cells, partials, rollups), and with glibc's allocator the
/// per-key path ran about 3x slower (`cargo bench --bench per_key`, README
/// "Throughput"). Its freed pages are kept for reuse
/// (`rampart_pipeline::allocator`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// rampart: exact attack-telemetry rollups on Kafka.
///
/// Consumes AttackEventBatch messages, drops duplicates, enriches them with
/// origin (country, ASN, prefix) and target sector, aggregates them in
/// event-time windows and publishes one final rollup per window, dimension and
/// key, exactly once.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "RAMPART_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the pipeline (both stages by default) until SIGINT/SIGTERM.
    ///
    /// On a signal it stops consuming, commits what it has processed and
    /// leaves its consumer groups, then exits 0.
    Run(cmd_run::RunArgs),
    /// See it work, zero setup: a private Kafka, synthetic traffic, both stages, a live view.
    Demo(cmd_demo::DemoArgs),
    /// Generate seeded, deterministic attack traffic into Kafka or a file.
    Loadgen(Box<cmd_loadgen::LoadgenArgs>),
    /// Compare the published rollups with the exact ground truth of a loadgen run.
    Verify(cmd_verify::VerifyArgs),
    /// Measure how fast rampart drains a pre-loaded topic, next to a bare consumer.
    ///
    /// Pre-loads a topic with generated traffic, reads it with a bare consumer,
    /// then drains it with rampart (exactly-once and at-least-once), and ends
    /// with `rampart_events_per_s=N bare_consumer_events_per_s=N ratio=R`.
    /// Build with --release for meaningful figures.
    Throughput(cmd_throughput::ThroughputArgs),
    /// A live terminal view of a running instance, from its /metrics and /ready.
    ///
    /// Pipeline view: events/s in and out per stage, dedup ratio, late events,
    /// dead letters by reason, consumer and watermark lag, window close
    /// latency, checkpoints and aborts, readiness. Domain view: the origin
    /// countries, target sectors and attack kinds of the windows that closed
    /// last. Keys: p pipeline, d domain, Tab switch, q quit. Plain lines when
    /// stdout is not a terminal.
    Top(cmd_top::TopArgs),
    /// Print the final rollups as they are published (read_committed).
    ///
    /// A table by default; `--format json` writes one JSON object per line,
    /// for `jq` or `duckdb`. Starts with new rollups unless `--from-beginning`
    /// or `--since 1h`; `--dimension` and `--key` filter.
    Tail(cmd_tail::TailArgs),
    /// Check a configuration file (and RAMPART_* overrides); print every error.
    ///
    /// Also builds every Kafka client configuration `run` would use, without connecting:
    /// librdkafka's own checks, conflicting security settings, unreadable CA/certificate/key.
    CheckConfig {
        /// The TOML configuration file (without it, only defaults and environment).
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        client: util::ClientArgs,
    },
}

fn main() -> std::process::ExitCode {
    rampart_pipeline::allocator::keep_freed_pages();
    let cli = Cli::parse();
    // The live views and tail's output are for people: only warnings interrupt them.
    let default_filter = match cli.command {
        Command::Demo(_) | Command::Top(_) | Command::Tail(_) => "warn,rdkafka=error",
        _ => "info,rdkafka=warn",
    };
    logging::init(cli.log_format, default_filter);
    let result = match cli.command {
        Command::Run(args) => cmd_run::run(args),
        Command::Demo(args) => cmd_demo::run(args),
        Command::Loadgen(args) => cmd_loadgen::run(*args),
        Command::Verify(args) => cmd_verify::run(args),
        Command::CheckConfig { config, client } => check_config(config, &client),
        Command::Throughput(args) => cmd_throughput::run(args),
        Command::Top(args) => cmd_top::run(args),
        Command::Tail(args) => cmd_tail::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: wrapping errors often repeat their
/// source's text in their own.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(text.trim()) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text.trim());
    }
    line.replace('\n', " ")
}

fn check_config(path: Option<PathBuf>, client: &util::ClientArgs) -> anyhow::Result<()> {
    let source = path
        .as_ref()
        .map_or_else(|| "defaults".to_string(), |p| p.display().to_string());
    let settings = match client.load(path.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprint!("{e}");
            std::process::exit(2);
        }
    };
    // Each librdkafka client config `run` builds, as librdkafka would take it.
    let mut problems = std::collections::BTreeSet::new();
    for (label, kind, config) in rampart_pipeline::client_configs(&settings)? {
        for p in rampart_kafka::check_client(&config, kind) {
            let key = if p.key.is_empty() {
                "kafka.client".to_string()
            } else {
                format!("kafka.client.{}", p.key)
            };
            // The same problem shows in every client: say it once, with the first client.
            if !problems
                .iter()
                .any(|(k, m, _): &(String, String, &str)| *k == key && *m == p.message)
            {
                problems.insert((key, p.message, label));
            }
        }
    }
    if !problems.is_empty() {
        eprintln!(
            "{} Kafka client configuration error{}:",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        for (key, message, label) in &problems {
            eprintln!("  - {source}: key `{key}`: {message} ({label})");
        }
        std::process::exit(2);
    }
    // The topics as they exist, where the cluster answers: what `run` would warn about or refuse.
    match rampart_pipeline::check_existing_topics(&settings, std::time::Duration::from_secs(3)) {
        Ok(None) => println!(
            "kafka at {} did not answer within 3 s: existing topics not checked",
            settings.raw.kafka.brokers
        ),
        Ok(Some(problems)) => {
            let refusals: Vec<_> = problems
                .iter()
                .filter(|p| p.severity == rampart_kafka::Severity::Refuse)
                .collect();
            for p in problems
                .iter()
                .filter(|p| p.severity == rampart_kafka::Severity::Warn)
            {
                println!("warning: {p}");
            }
            if !refusals.is_empty() {
                eprintln!(
                    "{} existing topic setting{} `rampart run` refuses:",
                    refusals.len(),
                    if refusals.len() == 1 { "" } else { "s" }
                );
                for p in refusals {
                    eprintln!("  - {source}: {p}");
                }
                std::process::exit(2);
            }
        }
        Err(e) => println!("existing topics not checked: {e}"),
    }
    let s = settings;
    println!(
        "configuration ok: brokers {}, input {}, window {} ms, guarantee {:?}",
        s.raw.kafka.brokers,
        s.raw.topics.input,
        s.ingest.window.size_ms,
        s.raw.processing.guarantee
    );
    println!(
        "kafka client settings (secrets redacted): {:?}; librdkafka {} with {}",
        s.raw.kafka.client.redacted(),
        rampart_kafka::librdkafka_version(),
        rampart_kafka::builtin_features()?.join(",")
    );
    Ok(())
}
