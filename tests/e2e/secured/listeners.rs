//! loadgen → run → verify PASS over each secured listener of one broker: SASL/SCRAM-SHA-512
//! without and with TLS, TLS alone, and mTLS with an encrypted client key. Every secret comes
//! from a file; none appears in any log line (debug level), check-config output or /metrics.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::common::{machine_alone, terminate};

/// One round: loadgen, check-config, run (with /metrics) and verify over `access`; returns
/// everything the commands printed.
fn round(dir: &Path, name: &str, access: &Access) -> String {
    let metrics = free_addr();
    let cfg = write_config(
        dir,
        name,
        access,
        &format!("[metrics]\nlisten = \"{metrics}\"\n"),
    );
    let cfg_s = cfg.to_str().unwrap();
    let manifest = dir.join(format!("{name}-manifest.json"));
    let world = dir.join("world");
    let mut printed = String::new();

    let out = rampart(
        &[
            "loadgen",
            "--config",
            cfg_s,
            "--partitions",
            "2",
            "--events",
            "3000",
            "--batch",
            "50",
            "--event-rate",
            "3000",
            "--sources",
            "5000",
            "--asns",
            "200",
            "--prefixes",
            "500",
            "--world-dir",
            world.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
            "--progress",
            "none",
        ],
        &[],
    );
    printed += &String::from_utf8_lossy(&out.stdout);
    printed += &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: loadgen failed");

    let out = rampart(&["check-config", "--config", cfg_s], &[]);
    let checked = String::from_utf8_lossy(&out.stdout).into_owned();
    printed += &checked;
    printed += &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: check-config failed");
    if access
        .client
        .iter()
        .any(|(k, _)| k.ends_with("password_file"))
    {
        assert!(checked.contains("[redacted]"), "{name}: {checked}");
    }

    let log = dir.join(format!("{name}-run.log"));
    let mut run = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["run", "--config", cfg_s, "--instance", name])
        .env("RAMPART_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // verify reads the rollups topic, which run creates.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("stage started")
    {
        assert!(Instant::now() < deadline, "{name}: run did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = rampart(
        &[
            "verify",
            "--manifest",
            manifest.to_str().unwrap(),
            "--config",
            cfg_s,
            "--timeout",
            "120s",
        ],
        &[],
    );
    let verdict = String::from_utf8_lossy(&out.stdout).into_owned();
    printed += &verdict;
    printed += &String::from_utf8_lossy(&out.stderr);
    let scraped = scrape(&metrics);
    printed += &scraped;
    let status = terminate(&mut run);
    let run_log = std::fs::read_to_string(&log).unwrap();
    eprintln!("--- {name}: rampart run log (tail)\n{}", tail(&run_log, 20));
    printed += &run_log;
    assert!(
        scraped.contains("rampart_received_events_total"),
        "{scraped}"
    );
    assert!(
        out.status.success() && verdict.contains("verify: PASS"),
        "{name}: {verdict}"
    );
    assert!(status.success(), "{name}: rampart run exited with {status}");
    printed
}

#[test]
fn loadgen_run_verify_exact_over_every_secured_listener() {
    let _machine = machine_alone();
    let dir = tempfile::tempdir().unwrap();
    let password = secret_file(dir.path(), "kafka-password", APP_PASSWORD);
    let key_password = secret_file(dir.path(), "key-password", KEY_PASSWORD);
    let ca = tls_file("ca.pem");
    let rounds = [
        (
            "sasl-plaintext",
            Access::scram(Listener::SaslPlaintext, APP_USER, &password),
        ),
        (
            "sasl-ssl",
            Access::scram(Listener::SaslSsl, APP_USER, &password),
        ),
        (
            "ssl",
            Access::new(
                Listener::Ssl,
                &[("security.protocol", "SSL"), ("ssl.ca.location", &ca)],
            ),
        ),
        (
            "mtls",
            Access::new(
                Listener::Mtls,
                &[
                    ("security.protocol", "SSL"),
                    ("ssl.ca.location", &ca),
                    ("ssl.certificate.location", &tls_file("client.pem")),
                    ("ssl.key.location", &tls_file("client.key")),
                    ("ssl.key.password_file", &key_password.display().to_string()),
                ],
            ),
        ),
    ];
    let mut printed = String::new();
    for (name, access) in &rounds {
        printed += &round(dir.path(), name, access);
    }
    assert_no_secret(&printed);
    // Debug logs of four rounds: enough output that finding no secret means something.
    assert!(
        printed.len() > 40_000,
        "too little output: {}",
        printed.len()
    );
    // The key really is encrypted: without its password librdkafka cannot load it.
    let key = std::fs::read_to_string(tls_file("client.key")).unwrap();
    assert!(key.contains("ENCRYPTED PRIVATE KEY"), "{key}");
}
