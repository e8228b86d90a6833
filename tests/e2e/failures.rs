//! Failing loudly: a fatal error of any one stage thread stops the whole
//! process quickly with a non-zero exit and turns `/health` 503 first, and
//! input deleted before rampart read it stops the stage with an error naming
//! the lost offsets instead of being skipped silently.

use std::time::{Duration, Instant};

use crate::common::*;

fn plain(records: &[rampart_loadgen::Record]) -> Vec<PlainRecord> {
    records
        .iter()
        .map(|r| PlainRecord {
            partition: r.partition,
            timestamp_ms: r.timestamp_ms,
            key: Some(r.key.clone()),
            payload: Some(r.payload.clone()),
            headers: Vec::new(),
        })
        .collect()
}

#[test]
fn a_fenced_merge_stage_stops_the_whole_process_and_fails_health() {
    let _machine = machine_shared();
    let w = workload(
        broker(),
        &Spec {
            events: 40_000,
            partitions: 2,
            ..Spec::default()
        },
    );
    // Input keeps flowing, so the merge stage keeps committing transactions.
    let producer = produce_paced(&w, Duration::from_secs(40));
    let instance = w.topics.merge_group.clone();
    let first = LoggedRampart::start(
        &w.config_path,
        &["--instance", &instance],
        &[("RAMPART_METRICS__LISTEN", "127.0.0.1:0")],
    );
    let addr = first.metrics_addr();
    // The merge stage runs: rollups appear.
    let rollups = read_until(
        &w.bootstrap,
        &w.topics.rollups,
        Duration::from_secs(60),
        |r| !r.is_empty(),
    );
    assert!(!rollups.is_empty(), "no rollups before the fence");
    assert_eq!(http_status(&addr, "/health").map(|r| r.0), Some(200));

    // A merge-only process under the same instance takes over the merge
    // stage's transactional id: the first one's merge producer is fenced
    // while its ingest threads run on.
    let fenced_at = Instant::now();
    let mut second = rampart_cmd(
        &w.config_path,
        &["--role", "merge", "--instance", &instance],
    );
    let mut first = first;
    let mut saw_503 = None;
    let status = loop {
        if let Some(status) = first.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            fenced_at.elapsed() < Duration::from_secs(15),
            "the first process still runs {:?} after its merge stage was fenced",
            fenced_at.elapsed()
        );
        if saw_503.is_none()
            && let Some((503, body)) = http_status(&addr, "/health")
        {
            saw_503 = Some(body);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    eprintln!(
        "first process exited {status} after {:?}",
        fenced_at.elapsed()
    );
    assert!(!status.success(), "a fenced merge stage must exit non-zero");
    let body = saw_503.expect("/health never answered 503 before the process exited");
    assert!(body.contains("merge"), "{body}");
    assert!(
        first.log().contains("stage failed; stopping every stage"),
        "{}",
        first.log()
    );
    let second_status = terminate(&mut second);
    assert!(
        second_status.success(),
        "merge-only process: {second_status}"
    );
    producer.join().unwrap();
}

#[test]
fn input_deleted_before_it_was_read_stops_with_the_lost_offsets() {
    let _machine = machine_shared();
    let w = workload(
        broker(),
        &Spec {
            events: 8_000,
            partitions: 2,
            malformed_share: 0.0,
            ..Spec::default()
        },
    );
    let half = w.records.len() / 2;
    produce_plain(
        &w.bootstrap,
        &w.topics.input,
        Compression::None,
        &plain(&w.records[..half]),
    );
    let instance = w.topics.ingest_group.clone();
    let mut first = w.rampart(&["--instance", &instance]);
    read_until(
        &w.bootstrap,
        &w.topics.rollups,
        Duration::from_secs(60),
        |r| !r.is_empty(),
    );
    assert!(terminate(&mut first).success());

    // While rampart is down, more input arrives and retention (here:
    // DeleteRecords) removes partition 0 up to its end before it is read.
    let landed = produce_plain(
        &w.bootstrap,
        &w.topics.input,
        Compression::None,
        &plain(&w.records[half..]),
    );
    let end0 = landed
        .iter()
        .filter(|(p, _)| *p == 0)
        .map(|(_, o)| o + 1)
        .max()
        .expect("records on partition 0");
    broker()
        .delete_records_before(&w.topics.input, 0, end0)
        .unwrap();

    let started = Instant::now();
    let second = LoggedRampart::start(&w.config_path, &["--instance", &instance], &[]);
    let mut second = second;
    let status = wait_bounded(&mut second.child, Duration::from_secs(60));
    eprintln!("restart exited {status} after {:?}", started.elapsed());
    assert!(
        !status.success(),
        "lost input must stop rampart, not be skipped"
    );
    let log = second.log();
    let line = log
        .lines()
        .find(|l| l.contains("would skip input records"))
        .unwrap_or_else(|| panic!("no skipped-records error in:\n{log}"));
    let want = format!("{} partition 0: offsets ", w.topics.input);
    assert!(line.contains(&want), "{line}");
    assert!(
        line.contains(&format!("..{end0} deleted before they were read")),
        "{line}"
    );
}

/// An IPinfo-lite-shaped MMDB (top-level `country_code`, `asn` as "AS…"
/// text), written by the project's own MMDB writer.
fn ipinfo_like_mmdb(dir: &std::path::Path) -> std::path::PathBuf {
    use rampart_mmdb::{MmdbWriter, Value};
    let mut w = MmdbWriter::new("ipinfo lite.mmdb");
    for (net, cc, asn) in [
        ("1.2.3.0/24", "JP", "AS2497"),
        ("8.8.8.0/24", "US", "AS15169"),
    ] {
        let record = Value::map([("country_code", Value::from(cc)), ("asn", Value::from(asn))]);
        w.insert(net.parse().unwrap(), record).unwrap();
    }
    let path = dir.join("ipinfo.mmdb");
    w.write_to_path(&path).unwrap();
    path
}

/// A country database of another schema is refused by `check-config` and
/// `rampart run` at start, naming the file and the setting that would read
/// it, instead of turning every origin into `ZZ`; with `country_field` /
/// `asn_field` set, the same file is accepted.
#[test]
fn a_database_of_another_schema_is_refused_naming_the_file() {
    let _machine = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let db = ipinfo_like_mmdb(dir.path());
    let config = dir.path().join("rampart.toml");
    let write_config = |extra: &str| {
        let text = format!(
            "[kafka]\nbrokers = \"{}\"\n\n[topics]\ninput = \"{}\"\n\n[enrich]\ncountry_db = \"{}\"\n{extra}\n[metrics]\nlisten = \"\"\n",
            broker().bootstrap(),
            rampart_testkit::unique_name("raw"),
            db.display()
        );
        std::fs::write(&config, text).unwrap();
    };
    write_config("");
    let check = std::process::Command::new(RAMPART_BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "check-config accepted it:\n{text}");
    for needle in ["ipinfo.mmdb", "country_field"] {
        assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
    }

    let started = Instant::now();
    let run = std::process::Command::new(RAMPART_BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("RAMPART_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(!run.status.success(), "run accepted it:\n{text}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(text.contains("ipinfo.mmdb"), "{text}");

    write_config("country_field = \"country_code\"\n");
    let check = std::process::Command::new(RAMPART_BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
