//! `rampart loadgen` to a file, run as the built binary: the same seed gives
//! byte-identical files, another seed other bytes, and a run stopped by the
//! wall clock is regenerated exactly from its manifest's event count.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{RAMPART_BIN, machine_alone};

fn loadgen(args: &[&str]) -> String {
    let out = Command::new(RAMPART_BIN)
        .arg("loadgen")
        .args(args)
        .args(["--sources", "20000", "--asns", "1000", "--prefixes", "3000"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "loadgen {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let common = [
        "--events",
        "30000",
        "--batch",
        "50",
        "--epoch",
        "1735689600000",
    ];
    for (file, seed) in [("a.bin", "3"), ("b.bin", "3"), ("c.bin", "4")] {
        let out = loadgen(&[&common[..], &["--seed", seed, "--output", &p(d, file)]].concat());
        assert!(out.contains("30,000 events"), "{out}");
    }
    let a = std::fs::read(d.join("a.bin")).unwrap();
    assert!(a.len() > 100_000, "{} bytes", a.len());
    assert!(
        a == std::fs::read(d.join("b.bin")).unwrap(),
        "same seed, other bytes"
    );
    assert!(
        a != std::fs::read(d.join("c.bin")).unwrap(),
        "other seed, same bytes"
    );
}

#[test]
fn a_run_stopped_by_the_clock_is_regenerated_from_its_manifest() {
    // Paced by the wall clock: alone on the machine.
    let _machine = machine_alone();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    loadgen(&[
        "--seed",
        "9",
        "--rate",
        "20000",
        "--duration",
        "1500ms",
        "--batch",
        "100",
        "--output",
        &p(d, "paced.bin"),
        "--manifest",
        &p(d, "m.json"),
        "--progress",
        "plain",
    ]);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("m.json")).unwrap()).unwrap();
    let events = m["produced"]["events"].as_u64().unwrap();
    let epoch = m["generator"]["epoch_ms"].as_i64().unwrap();
    assert_eq!(m["generator"]["event_rate"].as_u64(), Some(20_000));
    // Paced: about 1.5 s x 20 000 events/s.
    assert!((20_000..=40_000).contains(&events), "{events} events");
    // Unpaced, bounded by the event count: the same bytes.
    loadgen(&[
        "--seed",
        "9",
        "--event-rate",
        "20000",
        "--events",
        &events.to_string(),
        "--batch",
        "100",
        "--epoch",
        &epoch.to_string(),
        "--output",
        &p(d, "again.bin"),
    ]);
    assert!(
        std::fs::read(d.join("paced.bin")).unwrap() == std::fs::read(d.join("again.bin")).unwrap(),
        "the regenerated records differ"
    );
}
