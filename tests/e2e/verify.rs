//! `rampart loadgen` → `rampart run` → `rampart verify` on a real Apache Kafka,
//! all three as the built binary, the way a user runs them; then one corrupted
//! rollup in the rollups topic makes verify fail and name it.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use prost::Message as _;
use rampart_core::proto::v1::Rollup;
use rampart_testkit::unique_name;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::common::*;

fn rampart(args: &[&str]) -> Output {
    let out = Command::new(RAMPART_BIN)
        .args(args)
        .env("RAMPART_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run rampart");
    eprintln!(
        "$ rampart {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn config(dir: &Path, t: &Topics) -> std::path::PathBuf {
    let w = dir.join("world");
    let text = format!(
        r#"
[kafka]
brokers = "{bootstrap}"
ingest_group = "{ig}"
merge_group = "{mg}"

[topics]
input = "{input}"
partials = "{partials}"
rollups = "{rollups}"
dlq = "{dlq}"
partials_partitions = 3
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
listen = ""
"#,
        bootstrap = broker().bootstrap(),
        ig = t.ingest_group,
        mg = t.merge_group,
        input = t.input,
        partials = t.partials,
        rollups = t.rollups,
        dlq = t.dlq,
        w = w.display(),
    );
    let path = dir.join("rampart.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Kills `rampart run` if the test panics before stopping it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn loadgen_run_verify_passes_and_a_corrupted_rollup_fails_by_name() {
    // Bounded in time (170 s): alone on the machine.
    let _machine = machine_alone();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let t = Topics::unique();
    let cfg = config(dir.path(), &t);
    let manifest = dir.path().join("manifest.json");
    let world = dir.path().join("world");
    let out = rampart(&[
        "loadgen",
        "--config",
        cfg.to_str().unwrap(),
        "--partitions",
        "4",
        "--seed",
        "11",
        "--events",
        "20000",
        "--batch",
        "100",
        "--event-rate",
        "2000",
        "--sources",
        "60000",
        "--asns",
        "2000",
        "--prefixes",
        "6000",
        "--malformed-share",
        "0.01",
        "--late-fraction",
        "0.002",
        "--future-share",
        "0.002",
        "--resight-share",
        "0.05",
        "--resight-delay-ms",
        "30000",
        "--compression",
        "zstd",
        "--empty-partitions",
        "1",
        "--world-dir",
        world.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("20,000 events"), "{text}");

    let instance = unique_name("verify-test");
    let mut run = KillOnDrop(rampart_cmd(&cfg, &["--instance", &instance]));
    let verify_args = [
        "verify",
        "--manifest",
        manifest.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ];
    let out = rampart(&[&verify_args[..], &["--timeout", "90s"]].concat());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "verify failed on an honest run:\n{stdout}"
    );
    assert!(stdout.contains("verify: PASS"), "{stdout}");

    // Corrupt one rollup: same key, one more raw event.
    let reads = read_until(
        broker().bootstrap(),
        &t.rollups,
        Duration::from_secs(20),
        |all| !all.is_empty(),
    );
    let first = reads.first().expect("a rollup to corrupt");
    let mut r = Rollup::decode(&first.payload[..]).unwrap();
    r.raw_events += 1;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker().bootstrap())
        .create()
        .unwrap();
    producer
        .send(
            BaseRecord::to(&t.rollups)
                .key(&first.key[..])
                .payload(&r.encode_to_vec()[..]),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();

    let out = rampart(&[&verify_args[..], &["--timeout", "30s"]].concat());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "verify passed a corrupted topic");
    assert!(stdout.contains("verify: FAIL"), "{stdout}");
    let key_line = stdout
        .lines()
        .find(|l| l.contains(&format!(" {} ", r.key)) && l.contains("raw_events"))
        .unwrap_or_else(|| panic!("no row names key {} and raw_events:\n{stdout}", r.key));
    assert!(
        key_line.contains(&(r.raw_events - 1).to_string())
            && key_line.contains(&r.raw_events.to_string()),
        "{key_line}"
    );
    assert!(stdout.contains("1 published more than once"), "{stdout}");

    let status = terminate(&mut run.0);
    assert!(status.success(), "rampart run exited with {status}");
    assert!(
        started.elapsed() < Duration::from_secs(170),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn loadgen_refuses_a_topic_with_another_partition_count() {
    let topic = unique_name("raw");
    broker().create_topic(&topic, 3).unwrap();
    let out = rampart(&[
        "loadgen",
        "--brokers",
        broker().bootstrap(),
        "--topic",
        &topic,
        "--partitions",
        "4",
        "--events",
        "10",
        "--sources",
        "1000",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exists with 3 partitions, not 4"),
        "unclear error: {err}"
    );
}
