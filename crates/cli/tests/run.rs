//! `rampart run` against a real Apache Kafka: rollups equal the reference
//! model's ground truth, the DLQ holds exactly the malformed messages, and
//! processed + dead-lettered = produced.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use rampart_core::proto::v1::Dimension;

#[test]
fn run_publishes_exactly_the_ground_truth_and_dead_letters_bad_input() {
    let w = workload(Spec::default());
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
    let reads = read_until(&w.topics.rollups, Duration::from_secs(180), |all| {
        all.len() >= want
    });
    let dlq = read_until(&w.topics.dlq, Duration::from_secs(30), |all| {
        all.len() >= truth.rejected.len()
    });
    // Anything published after the expected count would be a duplicate: give it a moment to show.
    std::thread::sleep(Duration::from_secs(2));
    let status = terminate(&mut child);
    assert!(status.success(), "rampart exited with {status}");
    let reads_after = read_all(&w.topics.rollups, Duration::from_secs(2));
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

    // The DLQ holds exactly the rejected messages, each with its reason and source position.
    let mut want_dlq: BTreeMap<(u32, i64), &str> = BTreeMap::new();
    for r in &truth.rejected {
        want_dlq.insert((r.partition, r.offset), r.reason.as_str());
    }
    let mut got_dlq: BTreeMap<(u32, i64), String> = BTreeMap::new();
    for m in &dlq {
        let p: u32 = m.headers["rampart.source.partition"].parse().unwrap();
        let o: i64 = m.headers["rampart.source.offset"].parse().unwrap();
        assert_eq!(m.headers["rampart.source.topic"], w.topics.input);
        got_dlq.insert((p, o), m.headers["rampart.reason"].clone());
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
