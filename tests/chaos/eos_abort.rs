//! An aborted transaction's output is invisible to read_committed readers, at
//! the level of rampart's own topics: a `rampart run` whose first transaction
//! is still open (long checkpoint interval) has already written partials and
//! rollups, visible read_uncommitted; it is SIGKILLed before committing; no
//! read_committed reader ever sees those records, and the restarted instance
//! (same name: it fences and aborts its predecessor's transaction) publishes
//! exactly the ground truth, once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rampart_testkit::KafkaBroker;

use crate::common::*;

/// Waits (bounded, supervising) until `cond` holds.
fn wait_for(fleet: &mut Fleet, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !cond() && Instant::now() < deadline {
        fleet.sleep(Duration::from_millis(50));
    }
    assert!(
        cond(),
        "condition not reached within 90 s:\n{}",
        fleet.log_tails(30)
    );
}

#[test]
fn killed_transaction_output_is_never_read_committed() {
    let _machine = machine_alone();
    let broker = KafkaBroker::shared();
    let w = workload(
        broker,
        &Spec {
            events: 40_000,
            partitions: 4,
            events_per_batch: 20,
            malformed_share: 0.01,
            seed: 31,
            idle_timeout: "3s".into(),
            checkpoint_interval: "300ms".into(),
            ..Spec::chaos()
        },
    );
    let truth = w.truth();
    assert!(!truth.rollups.is_empty() && !truth.rejected.is_empty());
    produce_all(&w);
    let b = w.bootstrap.clone();
    let t = &w.topics;
    let rollups_rc = Observer::start(&b, &t.rollups, Isolation::Committed);
    let rollups_ru = Observer::start(&b, &t.rollups, Isolation::Uncommitted);
    let partials_rc = Observer::start(&b, &t.partials, Isolation::Committed);
    let partials_ru = Observer::start(&b, &t.partials, Isolation::Uncommitted);
    let dlq_rc = Observer::start(&b, &t.dlq, Isolation::Committed);
    let dlq_ru = Observer::start(&b, &t.dlq, Isolation::Uncommitted);

    // The ingest and merge stages run as separate processes, so each can be
    // killed with its own transaction open while the other one commits.
    let mut fleet = Fleet::new(&w);
    fleet
        .instance_args
        .insert("ing".into(), vec!["--role".into(), "ingest".into()]);
    fleet
        .instance_args
        .insert("mrg".into(), vec!["--role".into(), "merge".into()]);
    // Long enough that nothing commits before the kill (also once caught
    // up), well below the 60 s transaction.timeout.ms after which the broker
    // would abort on its own (rampart refuses an interval over half of it).
    let long = [
        "RAMPART_PROCESSING__CHECKPOINT_INTERVAL",
        "RAMPART_PROCESSING__CAUGHT_UP_CHECKPOINT_AFTER",
    ]
    .map(|key| (key.to_string(), "30s".to_string()));
    let short = (
        "RAMPART_PROCESSING__CHECKPOINT_INTERVAL".to_string(),
        "300ms".to_string(),
    );
    // One ingest thread: with two, the second one joining the group makes the
    // first hand partitions over, and a handover commits (checkpoint on revoke),
    // which would close the very transaction this test kills open.
    let one_thread = (
        "RAMPART_PROCESSING__INGEST_THREADS".to_string(),
        "1".to_string(),
    );
    // Likewise for the merge threads.
    let one_merge_thread = (
        "RAMPART_PROCESSING__MERGE_THREADS".to_string(),
        "1".to_string(),
    );

    // 1. Ingest writes partials and dead letters in its first transaction, then dies.
    fleet.env = [&long[..], std::slice::from_ref(&one_thread)].concat();
    fleet.start("ing");
    wait_for(&mut fleet, || partials_ru.len() > 0 && dlq_ru.len() > 0);
    assert!(
        open_transaction(&b, t),
        "ingest output is written but no transaction is open"
    );
    fleet.kill9("ing");
    let aborted_partials: Vec<Read> = partials_ru.reads.lock().unwrap().clone();
    let aborted_dlq: Vec<Read> = dlq_ru.reads.lock().unwrap().clone();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        partials_rc.len(),
        0,
        "read_committed saw partials of an open transaction"
    );
    assert_eq!(
        dlq_rc.len(),
        0,
        "read_committed saw dead letters of an open transaction"
    );

    // 2. Its successor (same instance name) fences it, which aborts that
    //    transaction, and commits often; merge writes rollups in a long
    //    transaction, then dies.
    fleet.env = vec![short.clone(), one_thread];
    fleet.start("ing");
    fleet.env = [&long[..], &[one_merge_thread]].concat();
    fleet.start("mrg");
    wait_for(&mut fleet, || rollups_ru.len() >= 100);
    assert!(partials_rc.len() > 0, "the successor committed no partials");
    fleet.kill9("mrg");
    let aborted_rollups: Vec<Read> = rollups_ru.reads.lock().unwrap().clone();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        rollups_rc.len(),
        0,
        "read_committed saw rollups of an open transaction"
    );

    // 3. The merge successor aborts that transaction and publishes everything.
    fleet.env = vec![short];
    fleet.start("mrg");
    let want = truth.rollups.len();
    let deadline = Instant::now() + Duration::from_secs(150);
    while rollups_rc.len() < want && Instant::now() < deadline {
        fleet.sleep(Duration::from_millis(200));
    }
    fleet.sleep(Duration::from_secs(2));
    assert!(
        fleet.unexpected_exits.is_empty(),
        "{:?}\n{}",
        fleet.unexpected_exits,
        fleet.log_tails(20)
    );
    for (name, status) in fleet.shutdown() {
        assert!(status.success(), "{name}: {status}");
    }
    let during = rollups_rc.finish();
    let all_uncommitted = rollups_ru.finish();
    let partials_committed = partials_rc.finish();
    let dlq_committed = dlq_rc.finish();

    // The aborted records exist in the log (read_uncommitted saw them) but at
    // positions no read_committed reader ever returned.
    let all_uncommitted = all_uncommitted.len();
    let partials_uncommitted = partials_ru.finish().len();
    let dlq_uncommitted = dlq_ru.finish().len();
    for (what, aborted, committed) in [
        ("rollups", &aborted_rollups, &during),
        ("partials", &aborted_partials, &partials_committed),
        ("dead letters", &aborted_dlq, &dlq_committed),
    ] {
        let at: BTreeSet<(i32, i64)> = committed.iter().map(|r| (r.partition, r.offset)).collect();
        let leaked = aborted
            .iter()
            .filter(|r| at.contains(&(r.partition, r.offset)))
            .count();
        assert_eq!(leaked, 0, "{leaked} aborted {what} were read committed");
        assert!(
            !aborted.is_empty() && !committed.is_empty(),
            "{what}: nothing to compare"
        );
    }
    for (what, uncommitted, committed, aborted) in [
        (
            "rollups",
            all_uncommitted,
            during.len(),
            aborted_rollups.len(),
        ),
        (
            "partials",
            partials_uncommitted,
            partials_committed.len(),
            aborted_partials.len(),
        ),
        (
            "dead letters",
            dlq_uncommitted,
            dlq_committed.len(),
            aborted_dlq.len(),
        ),
    ] {
        assert!(
            uncommitted >= committed + aborted,
            "{what}: read_uncommitted {uncommitted} < committed {committed} + aborted {aborted}"
        );
    }
    eprintln!(
        "aborted and never read committed: {} rollups, {} partials messages, {} dead letters; \
         committed afterwards: {} rollups, {} partials messages, {} dead letters",
        aborted_rollups.len(),
        aborted_partials.len(),
        aborted_dlq.len(),
        during.len(),
        partials_committed.len(),
        dlq_committed.len()
    );
    let after = read_all(&b, &t.rollups, Duration::from_secs(2));
    let dlq = read_all(&b, &t.dlq, Duration::from_secs(2));
    let end_offsets = t
        .outputs()
        .iter()
        .map(|x| (x.to_string(), end_offsets(&b, x)))
        .collect();
    verify(
        &w,
        &Outcome {
            truth,
            during,
            after,
            dlq,
            end_offsets,
        },
        "kill before commit",
    );
}
