//! A client the cluster refuses ends the command quickly, non-zero, with one `error:` line that
//! names the cause: wrong password, untrusted CA, a certificate for another host, a missing
//! client certificate (mTLS), and ACLs that deny the transactional id or the rollups topic.
//! Before, librdkafka's retries hid the first four behind a timeout after 10–15 s.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::common::{machine_alone, wait_bounded};

/// A refused login or handshake is reported within this (the old timeouts took 10–15 s).
const FAST: Duration = Duration::from_secs(6);

/// World files (MMDBs, sectors) in `dir/world` for the configs, without Kafka.
fn write_world(dir: &Path) {
    let out = rampart(
        &[
            "loadgen",
            "--output",
            dir.join("records.bin").to_str().unwrap(),
            "--events",
            "10",
            "--world-dir",
            dir.join("world").to_str().unwrap(),
            "--progress",
            "none",
        ],
        &[],
    );
    assert!(out.status.success());
}

/// Runs `rampart ARGS`, which must fail within `limit` with exactly one `error:` line, the
/// last one, containing every one of `phrases`; returns that line.
fn expect_refusal(
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
    phrases: &[&str],
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .envs(env.iter().copied())
        .env("RAMPART_METRICS__LISTEN", "")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(120));
    let took = started.elapsed();
    let stderr = std::fs::read_to_string(&log).unwrap();
    eprintln!(
        "$ rampart {} -> {status} after {took:?}\n{}",
        args.join(" "),
        tail(&stderr, 30)
    );
    assert!(!status.success(), "exited 0:\n{stderr}");
    assert!(took < limit, "took {took:?} (limit {limit:?})");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert_eq!(stderr.lines().last(), Some(errors[0]), "{stderr}");
    for phrase in phrases {
        assert!(
            errors[0].contains(phrase),
            "{phrase:?} not in {}",
            errors[0]
        );
    }
    assert_no_secret(&stderr);
    errors[0].to_owned()
}

#[test]
fn refused_logins_and_certificates_fail_fast_naming_the_cause() {
    let _machine = machine_alone();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_world(d);
    let password = secret_file(d, "kafka-password", APP_PASSWORD);
    let ca = tls_file("ca.pem");
    let wrong_password = [("RAMPART_KAFKA__CLIENT__SASL_PASSWORD", "not-the-password")];

    // Wrong password over SASL_SSL, from the environment: run and loadgen.
    let access =
        Access::scram(Listener::SaslSsl, APP_USER, &password).without("sasl.password_file");
    let cfg = write_config(d, "wrong-password", &access, "");
    let cfg_s = cfg.to_str().unwrap();
    let authentication = [
        "refused the connection",
        "authentication failed",
        "SCRAM-SHA-512",
    ];
    expect_refusal(
        &["run", "--config", cfg_s],
        &wrong_password,
        FAST,
        &authentication,
    );
    expect_refusal(
        &[
            "loadgen",
            "--config",
            cfg_s,
            "--events",
            "10",
            "--progress",
            "none",
        ],
        &wrong_password,
        FAST,
        &authentication,
    );

    // A CA that did not sign the broker's certificate.
    let untrusted = tls_file("untrusted-ca.pem");
    let access = Access::new(
        Listener::Ssl,
        &[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", &untrusted),
        ],
    );
    let cfg = write_config(d, "untrusted-ca", &access, "");
    expect_refusal(
        &["run", "--config", cfg.to_str().unwrap()],
        &[],
        FAST,
        &["TLS certificate was rejected", "certificate verify failed"],
    );

    // The right CA, but the certificate names wrong-host.invalid, not 127.0.0.1.
    let access = Access::new(
        Listener::WrongHost,
        &[("security.protocol", "SSL"), ("ssl.ca.location", &ca)],
    );
    let cfg = write_config(d, "wrong-host", &access, "");
    expect_refusal(
        &["run", "--config", cfg.to_str().unwrap()],
        &[],
        FAST,
        &["TLS certificate was rejected", "certificate verify failed"],
    );

    // mTLS without a client certificate: the broker's TLS alert.
    let access = Access::new(
        Listener::Mtls,
        &[("security.protocol", "SSL"), ("ssl.ca.location", &ca)],
    );
    let cfg = write_config(d, "no-client-cert", &access, "");
    expect_refusal(
        &["run", "--config", cfg.to_str().unwrap()],
        &[],
        FAST,
        &["TLS handshake failed", "client certificate"],
    );
}

#[test]
fn acls_denying_the_transactional_id_or_the_rollups_topic_stop_run_with_the_cause() {
    let _machine = machine_alone();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let broker = secured_broker().local().unwrap();
    let limited_password = secret_file(d, "limited-password", LIMITED_PASSWORD);
    let app_password = secret_file(d, "app-password", APP_PASSWORD);
    let access = Access::scram(Listener::SaslPlaintext, LIMITED_USER, &limited_password);
    let limited = format!("User:{LIMITED_USER}");

    // The transactional ids: init_transactions is refused at start.
    let txn_prefix = unique_name("denied");
    broker
        .create_acls(&[
            "--deny-principal",
            &limited,
            "--operation",
            "Write",
            "--resource-pattern-type",
            "prefixed",
            "--transactional-id",
            &txn_prefix,
        ])
        .unwrap();
    let cfg = write_config(
        d,
        "denied-txn",
        &access,
        &format!("transactional_id_prefix = \"{txn_prefix}\"\n"),
    );
    // The world files, and input for the next case (as the super user; -X wins over the file).
    let manifest = d.join("manifest.json");
    let out = rampart(
        &[
            "loadgen",
            "--config",
            cfg.to_str().unwrap(),
            "--partitions",
            "2",
            "--events",
            "2000",
            "--event-rate",
            "4000",
            "--world-dir",
            d.join("world").to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
            "--progress",
            "none",
            "-X",
            &format!("sasl.username={APP_USER}"),
            "-X",
            &format!("sasl.password_file={}", app_password.display()),
        ],
        &[],
    );
    assert!(out.status.success(), "loadgen as {APP_USER} failed");
    expect_refusal(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--instance",
            "txn",
        ],
        &[],
        FAST,
        &[
            "not authorized",
            &format!("transactional ids {txn_prefix}-"),
            "Transactional Id authorization failed",
        ],
    );

    // Write on the rollups topic: the merge stage's first transaction that adds a rollups
    // partition is refused; run stops instead of aborting and retrying forever.
    let rollups = config_value(&cfg, "rollups");
    broker
        .create_acls(&[
            "--deny-principal",
            &limited,
            "--operation",
            "Write",
            "--topic",
            &rollups,
        ])
        .unwrap();
    let line = expect_refusal(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--instance",
            "rollups",
        ],
        &[("RAMPART_PROCESSING__TRANSACTIONAL_ID_PREFIX", "allowed")],
        Duration::from_secs(60),
        &["not authorized", "Topic authorization failed", &rollups],
    );
    eprintln!("{line}");
}
