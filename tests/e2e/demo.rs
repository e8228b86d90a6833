//! `rampart demo` run as a user would: the built binary, no setup (it starts
//! its own private Kafka), a short duration. It must exit 0 and show rollups.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{RAMPART_BIN, machine_alone};

#[test]
fn demo_runs_by_itself_and_shows_rollups() {
    // Starts its own broker and is bounded in time: alone on the machine.
    let _machine = machine_alone();
    let started = Instant::now();
    let out = Command::new(RAMPART_BIN)
        .args(["demo", "--duration", "20s"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(110),
        "{:?}",
        started.elapsed()
    );
    // Rollups of a closed window were read back and shown.
    let countries = stdout
        .lines()
        .rfind(|l| l.contains("top origin countries:"))
        .unwrap_or_else(|| panic!("no closed window shown:\n{stdout}"));
    assert!(countries.contains("CN "), "{countries}");
    let sectors = stdout
        .lines()
        .rfind(|l| l.contains("top target sectors:"))
        .unwrap();
    assert!(sectors.contains('%'), "{sectors}");
    assert!(stdout.contains("metrics http://127.0.0.1:"), "{stdout}");
    let summary = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("published"))
        .unwrap_or_else(|| panic!("no summary:\n{stdout}"));
    assert!(!summary.contains(" 0 rollups"), "{summary}");
    assert!(stdout.contains("not rampart's speed"), "{stdout}");
    // A fresh broker's coordinator warm-up, retried by librdkafka, is no warning.
    assert!(!stderr.contains("Coordinator load in progress"), "{stderr}");
}
