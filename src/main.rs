//! The `rampart` binary.

mod cmd_demo;
mod cmd_loadgen;
mod cmd_run;
mod cmd_throughput;
mod cmd_verify;
mod manifest;
mod util;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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
enum LogFormat {
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
    /// Check a configuration file (and RAMPART_* overrides); print every error.
    CheckConfig {
        /// The TOML configuration file (without it, only defaults and environment).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RAMPART_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The demo draws a live view on the terminal: only warnings interrupt it.
    let default_filter = match cli.command {
        Command::Demo(_) => "warn,rdkafka=error",
        _ => "info,rdkafka=warn",
    };
    init_logging(cli.log_format, default_filter);
    let result = match cli.command {
        Command::Run(args) => cmd_run::run(args),
        Command::Demo(args) => cmd_demo::run(args),
        Command::Loadgen(args) => cmd_loadgen::run(*args),
        Command::Verify(args) => cmd_verify::run(args),
        Command::CheckConfig { config } => check_config(config),
        Command::Throughput(args) => cmd_throughput::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn check_config(path: Option<PathBuf>) -> anyhow::Result<()> {
    match rampart_pipeline::config::load(path.as_deref(), std::env::vars()) {
        Ok(s) => {
            println!(
                "configuration ok: brokers {}, input {}, window {} ms, guarantee {:?}",
                s.raw.kafka.brokers,
                s.raw.topics.input,
                s.ingest.window.size_ms,
                s.raw.processing.guarantee
            );
            Ok(())
        }
        Err(e) => {
            eprint!("{e}");
            std::process::exit(2);
        }
    }
}
