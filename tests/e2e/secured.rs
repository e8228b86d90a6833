//! rampart against a Kafka that requires SASL/SCRAM-SHA-512 logins (a private broker whose
//! users are created when its storage is formatted): loadgen → run → verify exact with the
//! password read from a file, a wrong password fails fast with a non-zero exit, and the password
//! shows in no log line (at debug level), no check-config output and no /metrics scrape.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{machine_alone, terminate, wait_bounded};
use rampart_testkit::{KafkaBroker, Listener, Options, unique_name};

const USER: &str = "rampart-app";
const PASSWORD: &str = "Zq7pw-91827364-sEcret";

fn rampart(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .envs(env.iter().copied())
        .env("RAMPART_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    eprintln!(
        "$ rampart {}\n--- stdout\n{}--- stderr (tail)\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        tail(&String::from_utf8_lossy(&out.stderr), 20)
    );
    out
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn write_config(dir: &Path, bootstrap: &str, metrics: &str) -> std::path::PathBuf {
    let password_file = dir.join("kafka-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let w = dir.join("world");
    let text = format!(
        r#"
[kafka]
brokers = "{bootstrap}"
ingest_group = "{ig}"
merge_group = "{mg}"

[kafka.client]
"security.protocol" = "SASL_PLAINTEXT"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.username" = "{USER}"
"sasl.password_file" = "{pw}"

[topics]
input = "{input}"
partials = "{partials}"
rollups = "{rollups}"
dlq = "{dlq}"
input_partitions = 2
partials_partitions = 2
rollups_partitions = 2

[window]
size = "5s"
out_of_orderness = "3s"
allowed_lateness = "1s"
idle_timeout = "5s"

[enrich]
country_db = "{w}/country.mmdb"
asn_db = "{w}/asn.mmdb"
sectors = "{w}/sectors.csv"

[processing]
checkpoint_interval = "300ms"

[metrics]
listen = "{metrics}"
"#,
        ig = unique_name("ingest"),
        mg = unique_name("merge"),
        pw = password_file.display(),
        input = unique_name("raw"),
        partials = unique_name("partials"),
        rollups = unique_name("rollups"),
        dlq = unique_name("dlq"),
        w = w.display(),
    );
    let path = dir.join("rampart.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    buf
}

#[test]
fn scram_login_runs_exactly_and_never_prints_the_password() {
    // A private broker and three rampart processes.
    let _machine = machine_alone();
    let options = Options {
        scram_users: vec![(USER.into(), PASSWORD.into())],
        ..Options::default()
    };
    let broker = KafkaBroker::start_private_with(&options).unwrap();
    let sasl = broker
        .local()
        .and_then(|local| local.listener(Listener::SaslPlaintext))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_addr();
    let cfg = write_config(dir.path(), &sasl, &metrics);
    let cfg_s = cfg.to_str().unwrap();
    let mut printed = String::new();

    let manifest = dir.path().join("manifest.json");
    let world = dir.path().join("world");
    let out = rampart(
        &[
            "loadgen",
            "--config",
            cfg_s,
            "--partitions",
            "2",
            "--events",
            "6000",
            "--batch",
            "50",
            "--event-rate",
            "2000",
            "--sources",
            "20000",
            "--asns",
            "500",
            "--prefixes",
            "2000",
            "--world-dir",
            world.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
            "--progress",
            "none",
        ],
        &[],
    );
    assert!(out.status.success(), "loadgen over SASL failed");
    printed += &String::from_utf8_lossy(&out.stdout);
    printed += &String::from_utf8_lossy(&out.stderr);

    // After loadgen: it writes the world files the config names.
    let out = rampart(&["check-config", "--config", cfg_s], &[]);
    assert!(out.status.success());
    printed += &String::from_utf8_lossy(&out.stdout);
    printed += &String::from_utf8_lossy(&out.stderr);
    assert!(printed.contains("[redacted]"), "{printed}");

    let log = dir.path().join("run.log");
    let mut run = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["run", "--config", cfg_s, "--instance", "secured"])
        .env("RAMPART_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
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
    eprintln!(
        "--- rampart run log (tail)\n{}",
        tail(&std::fs::read_to_string(&log).unwrap(), 30)
    );
    printed += &verdict;
    printed += &String::from_utf8_lossy(&out.stderr);
    let scraped = scrape(&metrics);
    assert!(scraped.contains("rampart_"), "{scraped}");
    printed += &scraped;
    let status = terminate(&mut run);
    printed += &std::fs::read_to_string(&log).unwrap();
    assert!(
        out.status.success() && verdict.contains("verify: PASS"),
        "{verdict}"
    );
    assert!(status.success(), "rampart run exited with {status}");

    // A wrong password (from the environment, which wins over the file): fast, non-zero.
    let wrong_cfg = dir.path().join("wrong.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!(
            "\"sasl.password_file\" = \"{}\"",
            dir.path().join("kafka-password").display()
        ),
        "",
    );
    std::fs::write(&wrong_cfg, text).unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args([
            "run",
            "--config",
            wrong_cfg.to_str().unwrap(),
            "--instance",
            "wrong",
        ])
        .env("RAMPART_KAFKA__CLIENT__SASL_PASSWORD", "not-the-password")
        .env("RAMPART_METRICS__LISTEN", "")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(90));
    assert!(!status.success(), "run with a wrong password exited 0");
    eprintln!(
        "wrong password: exit {status} after {:?}",
        started.elapsed()
    );

    assert!(
        !printed.contains(PASSWORD),
        "the password was printed:\n{}",
        printed
            .lines()
            .filter(|l| l.contains(PASSWORD))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        printed.len() > 10_000,
        "too little output to mean anything: {}",
        printed.len()
    );
}
