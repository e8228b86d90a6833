//! The `rampart` binary.

use clap::Parser;

/// rampart: attack-telemetry rollups on Kafka.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
