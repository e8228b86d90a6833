//! `rampart demo` run as a user would: the built binary, no setup (it starts
//! its own private Kafka), a short duration. It must exit 0 and show rollups.
//! On EVE input (`--format eve`, on the shared broker so that the test can
//! read what went into the input topic) every produced document is processed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{RAMPART_BIN, broker, machine_alone, read_until};

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

/// The number right after `label` in `line` ("170,575" reads 170575).
fn number_after(line: &str, label: &str) -> u64 {
    let rest = line
        .split_once(label)
        .unwrap_or_else(|| panic!("no {label:?} in {line:?}"))
        .1
        .trim_start();
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {label:?} in {line:?}"))
}

fn summary_line<'a>(stdout: &'a str, first_word: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(first_word))
        .unwrap_or_else(|| panic!("no {first_word} line:\n{stdout}"))
}

#[test]
fn demo_on_eve_input_processes_every_produced_document() {
    // Bounded in time and load: alone on the machine.
    let _machine = machine_alone();
    let bootstrap = broker().bootstrap();
    let out = Command::new(RAMPART_BIN)
        .args([
            "demo",
            "--format",
            "eve",
            "--duration",
            "12s",
            "--rate",
            "5000",
            "--brokers",
            bootstrap,
            "--plain",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");

    let sends = summary_line(&stdout, "loadgen sends");
    assert!(sends.contains("suricata-eve"), "{sends}");
    let input = sends
        .split_once(" into ")
        .and_then(|(_, rest)| rest.split(';').next())
        .unwrap_or_else(|| panic!("no input topic in {sends:?}"));
    let produced = summary_line(&stdout, "produced");
    let (events, messages, malformed) = (
        number_after(produced, "produced"),
        number_after(produced, "events in"),
        number_after(produced, "messages ("),
    );
    let processed = summary_line(&stdout, "processed");
    assert!(events > 10_000, "{produced}");
    // The counters count what the ingest processed: a replay after an
    // aborted transaction counts again, so at least what was produced.
    assert!(
        number_after(processed, "processed") >= events,
        "{processed}"
    );
    assert!(
        number_after(processed, "late,") >= malformed,
        "a dead letter per malformed message: {processed}"
    );
    let published = summary_line(&stdout, "published");
    assert!(!published.contains(" 0 rollups"), "{published}");

    // Hand count of what went into the input topic: EVE documents, one per
    // line, one per produced event (a malformed message is one line that is
    // not JSON).
    let reads = read_until(bootstrap, input, Duration::from_secs(60), |all| {
        all.len() as u64 >= messages
    });
    assert_eq!(reads.len() as u64, messages, "messages in {input}");
    let (mut documents, mut not_json) = (0u64, 0u64);
    for r in &reads {
        for line in String::from_utf8_lossy(&r.payload).lines() {
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(doc) => {
                    assert!(doc["event_type"].is_string(), "not EVE: {line}");
                    assert!(doc["src_ip"].is_string(), "not EVE: {line}");
                    documents += 1;
                }
                Err(_) => not_json += 1,
            }
        }
    }
    assert_eq!(documents, events, "EVE documents in {input}");
    assert_eq!(not_json, malformed, "malformed messages in {input}");
}
