//! `rampart throughput` against the real broker: it reports rollups next to
//! events, and `--source-spread` / `--publish-top` move them as they must.

use std::process::{Command, Stdio};

use crate::common::{RAMPART_BIN, broker, machine_shared};

/// Runs a small at-least-once measurement; returns its summary's
/// `rollups_per_event`.
fn rollups_per_event(extra: &[&str]) -> f64 {
    run(extra).0
}

/// The value of `name` (e.g. `rollups_per_event=`) in a summary line.
fn field(line: &str, name: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

/// Runs a small at-least-once measurement; returns its summary's
/// `rollups_per_event` and the whole standard output.
fn run(extra: &[&str]) -> (f64, String) {
    let out = Command::new(RAMPART_BIN)
        .args(["throughput", "--brokers", broker().bootstrap()])
        .args(["--events", "20000", "--guarantee", "at-least-once"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "throughput {extra:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("rampart_events_per_s="))
        .unwrap_or_else(|| panic!("no summary in {stdout}"));
    assert!(field(line, "rollups_per_s=") > 0.0, "{line}");
    (field(line, "rollups_per_event="), stdout)
}

#[test]
fn throughput_reports_rollups_per_event_for_scattered_and_reduced_output() {
    let _machine = machine_shared();
    // 20 000 events (98 % originals) over 60 000 world /24s with every source
    // scattered: each original its own /24, so origin_prefix alone publishes
    // about 0.98 rollups per event, the other dimensions more on top.
    let scattered = rollups_per_event(&["--source-spread", "1"]);
    assert!(scattered > 0.95, "scattered: {scattered}");
    // The same events in messages of 1–1000 events: the same rollups, with
    // one ingest thread and with two (drained once each).
    let (mixed, stdout) = run(&[
        "--source-spread",
        "1",
        "--batch-mix",
        "1",
        "--ingest-threads",
        "1,2",
    ]);
    assert!(
        (mixed - scattered).abs() < 0.02,
        "mixed sizes: {mixed}, fixed: {scattered}"
    );
    let two = stdout
        .lines()
        .find(|l| l.starts_with("rampart_at_least_once_2_threads_events_per_s="))
        .unwrap_or_else(|| panic!("no two-thread line in {stdout}"));
    assert_eq!(field(two, "rollups_per_event="), mixed, "{stdout}");
    let scaling = stdout
        .lines()
        .find_map(|l| l.strip_prefix("rampart_at_least_once_scaling_2_over_1="))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no scaling line in {stdout}"));
    assert!(scaling > 0.0, "{stdout}");
    // Zipf-concentrated sources share /24s.
    let concentrated = rollups_per_event(&["--source-spread", "0"]);
    assert!(
        concentrated < scattered - 0.3,
        "{concentrated} vs {scattered}"
    );
    // At most 10 prefixes per window and input partition (4), the rest under
    // one other:<country> per country (~250 countries, two windows at most):
    // the ~0.98 prefix rollups per event fall under 0.03, ASNs fold too.
    let reduced = rollups_per_event(&["--source-spread", "1", "--publish-top", "10"]);
    assert!(
        scattered - reduced > 0.95,
        "reduced: {reduced}, scattered: {scattered}"
    );
}

/// A JSON input closes its windows too (the closing message is written in
/// the input's format, not as protobuf, which a JSON topic dead-letters),
/// and publishes the rollups the same events give as protobuf.
#[test]
fn throughput_on_eve_input_publishes_the_rollups_of_protobuf_input() {
    let _machine = machine_shared();
    let eve = rollups_per_event(&["--source-spread", "1", "--format", "eve"]);
    let protobuf = rollups_per_event(&["--source-spread", "1"]);
    assert!(
        (eve - protobuf).abs() < 0.02,
        "eve {eve}, protobuf {protobuf}"
    );
}
