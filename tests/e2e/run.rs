//! `rampart run` against a real Apache Kafka: rollups equal the reference
//! model's ground truth, the DLQ holds exactly the malformed messages, and
//! processed + dead-lettered = produced.

use std::collections::BTreeMap;
use std::time::Duration;

use rampart_core::proto::v1::Dimension;

use crate::common::*;

#[test]
fn run_publishes_exactly_the_ground_truth_and_dead_letters_bad_input() {
    let _machine = machine_shared();
    let w = workload(broker(), &Spec::default());
    produce_all(&w);
    let truth = w.truth();
    assert!(
        truth.rollups.len() > 100,
        "workload too small: {}",
        truth.rollups.len()
    );
    assert!(
        !truth.rejected.is_empty(),
        "workload has no malformed messages"
    );
    assert!(
        truth.totals.duplicates > 0 && truth.totals.late > 0,
        "{:?}",
        truth.totals
    );

    let mut child = w.rampart(&["--instance", "solo"]);
    let want = truth.rollups.len();
    let reads = read_until(
        &w.bootstrap,
        &w.topics.rollups,
        Duration::from_secs(180),
        |all| all.len() >= want,
    );
    let dlq = read_dead_letters(
        &w.bootstrap,
        &w.topics.dlq,
        Duration::from_secs(30),
        |all| all.len() >= truth.rejected.len(),
    );
    // Anything published after the expected count would be a duplicate: give it a moment to show.
    std::thread::sleep(Duration::from_secs(2));
    let status = terminate(&mut child);
    assert!(status.success(), "rampart exited with {status}");
    let reads_after = read_all(&w.bootstrap, &w.topics.rollups, Duration::from_secs(2));
    assert_eq!(
        reads_after.len(),
        reads.len(),
        "rollups published after the expected set"
    );

    let got = decode_rollups(&reads);
    let d = diff(&truth.rollups, &got);
    assert!(
        d.is_empty(),
        "{} differences, first ones:\n{}",
        d.len(),
        d.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );

    // The DLQ holds exactly the rejected messages, each with its reason and
    // source position, and the original key and payload of that position (the
    // input topic was empty: the n-th record to a partition is at offset n).
    let mut want_dlq: BTreeMap<(u32, i64), &str> = BTreeMap::new();
    for r in &truth.rejected {
        want_dlq.insert((r.partition, r.offset), r.reason.as_str());
    }
    let mut produced: BTreeMap<(u32, i64), &rampart_loadgen::Record> = BTreeMap::new();
    let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &w.records {
        let offset = next_offset.entry(r.partition).or_default();
        produced.insert((r.partition as u32, *offset), r);
        *offset += 1;
    }
    let mut got_dlq: BTreeMap<(u32, i64), String> = BTreeMap::new();
    for m in &dlq {
        let p = m.rampart.source_partition.unwrap() as u32;
        let o = m.rampart.source_offset.unwrap();
        assert_eq!(
            m.rampart.source_topic.as_deref(),
            Some(w.topics.input.as_str())
        );
        let original = produced[&(p, o)];
        // An empty key or payload may come back as none at all.
        assert_eq!(
            m.key.as_deref().unwrap_or_default(),
            &original.key[..],
            "key of {p}/{o}"
        );
        assert_eq!(
            m.payload.as_deref().unwrap_or_default(),
            &original.payload[..],
            "payload of {p}/{o}"
        );
        got_dlq.insert((p, o), m.rampart.reason.clone().unwrap());
    }
    let got_dlq_ref: BTreeMap<(u32, i64), &str> =
        got_dlq.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(got_dlq_ref, want_dlq);
    assert_eq!(
        dlq.len(),
        truth.rejected.len(),
        "a message was dead-lettered twice"
    );

    // Every input message is accounted for: processed (its events in the rollups) or dead-lettered.
    let (raw, unique, dups, late) = sum_raw(&got, Dimension::TargetSector);
    assert_eq!(
        raw + late,
        truth.totals.events,
        "events in rollups vs valid events produced"
    );
    assert_eq!(
        (unique, dups, late),
        (
            truth.totals.unique,
            truth.totals.duplicates,
            truth.totals.late
        )
    );
    assert_eq!(truth.totals.messages, w.records.len() as u64);
    let valid_messages = w.records.len() - truth.rejected.len();
    assert_eq!(valid_messages + dlq.len(), w.records.len());
}

/// Runs `rampart run` processes with their stderr captured in files, so a test
/// can check what each one did.
fn spawn_logged(w: &Workload, instance: &str) -> (std::process::Child, std::path::PathBuf) {
    let log = w.dir.path().join(format!("{instance}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let child = std::process::Command::new(RAMPART_BIN)
        .args(["run", "--config"])
        .arg(&w.config_path)
        .args(["--instance", instance])
        .env("RAMPART_LOG", "info,rdkafka=warn")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    (child, log)
}

#[test]
fn two_processes_in_one_group_publish_the_same_rollups_as_one() {
    let _machine = machine_shared();
    let w = workload(
        broker(),
        &Spec {
            events: 40_000,
            events_per_batch: 20,
            seed: 11,
            ..Spec::default()
        },
    );
    produce_all(&w);
    let truth = w.truth();
    let (mut a, log_a) = spawn_logged(&w, "a");
    let (mut b, log_b) = spawn_logged(&w, "b");
    let want = truth.rollups.len();
    let reads = read_until(
        &w.bootstrap,
        &w.topics.rollups,
        Duration::from_secs(180),
        |all| all.len() >= want,
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(terminate(&mut a).success());
    assert!(terminate(&mut b).success());
    let reads_after = read_all(&w.bootstrap, &w.topics.rollups, Duration::from_secs(2));
    assert_eq!(
        reads_after.len(),
        reads.len(),
        "rollups published after the expected set"
    );
    let d = diff(&truth.rollups, &decode_rollups(&reads));
    assert!(
        d.is_empty(),
        "{} differences:\n{}",
        d.len(),
        d.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
    // Both processes really shared the work.
    for log in [&log_a, &log_b] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            text.lines()
                .any(|l| l.contains("partitions assigned") && l.contains("ingest")),
            "{} never got ingest partitions:\n{text}",
            log.display()
        );
    }
}

#[test]
fn sigterm_mid_run_then_restart_loses_and_duplicates_nothing() {
    // One event per message: enough messages that the signal lands mid-stream.
    let _machine = machine_shared();
    let w = workload(
        broker(),
        &Spec {
            events: 30_000,
            events_per_batch: 1,
            seed: 23,
            ..Spec::default()
        },
    );
    produce_all(&w);
    let truth = w.truth();
    let (mut first, log) = spawn_logged(&w, "first");
    // Stop it as soon as it has published something, i.e. mid-run.
    let early = read_until(
        &w.bootstrap,
        &w.topics.rollups,
        Duration::from_secs(120),
        |all| !all.is_empty(),
    );
    assert!(!early.is_empty(), "no rollup within 120 s");
    let status = terminate(&mut first);
    assert!(status.success(), "SIGTERM exit status {status}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("stopping: final checkpoint"), "{text}");
    let before_restart = read_all(&w.bootstrap, &w.topics.rollups, Duration::from_secs(1)).len();
    assert!(
        before_restart < truth.rollups.len(),
        "the first run finished everything; the test proves nothing"
    );

    let (mut second, _) = spawn_logged(&w, "second");
    let want = truth.rollups.len();
    let reads = read_until(
        &w.bootstrap,
        &w.topics.rollups,
        Duration::from_secs(180),
        |all| all.len() >= want,
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(terminate(&mut second).success());
    let reads_after = read_all(&w.bootstrap, &w.topics.rollups, Duration::from_secs(2));
    assert_eq!(
        reads_after.len(),
        reads.len(),
        "rollups published after the expected set"
    );
    let d = diff(&truth.rollups, &decode_rollups(&reads));
    assert!(
        d.is_empty(),
        "{} differences:\n{}",
        d.len(),
        d.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
    let dlq = read_all(&w.bootstrap, &w.topics.dlq, Duration::from_secs(1));
    assert_eq!(
        dlq.len(),
        truth.rejected.len(),
        "dead letters lost or written twice across the restart"
    );
}
