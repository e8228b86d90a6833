//! The end-to-end throughput harness: `rampart throughput` (src/cmd_throughput.rs)
//! run from `cargo bench`, so it is found next to the other benchmarks.
//!
//! ```text
//! cargo bench --bench throughput -- [--brokers HOST:PORT] [--events N] [--batch N]
//! ```
//!
//! Without `--brokers` it starts a private Kafka for the run.
//! Every argument after `--` is passed to `rampart throughput`; see its `--help`.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    // cargo passes `--bench` to every benchmark binary; the harness does not take it.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let status = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("throughput")
        .args(&args)
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("rampart throughput failed: {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cannot start {}: {e}", env!("CARGO_BIN_EXE_rampart"));
            ExitCode::FAILURE
        }
    }
}
