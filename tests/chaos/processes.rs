//! Chaos test of exactly-once: `rampart run` processes in one group on a real
//! Apache Kafka while a seeded driver SIGKILLs them at random moments (about
//! half land inside a transaction that holds output: dead letters, and at
//! window closes partials and rollups; the checkpoint interval is 1 s), restarts
//! them under the same instance name, adds and removes a third instance, and
//! stalls one past the session timeout (a zombie, SIGSTOP then SIGCONT).
//! Input keeps arriving during all of it. Verdict: see `common::verify`
//! (ground truth byte for byte, every rollup key exactly once for a
//! read_committed reader running during the chaos, DLQ exactly once, no
//! hanging transaction).

use std::time::{Duration, Instant};

use rampart_testkit::KafkaBroker;

use crate::Rng;
use crate::common::*;

/// SIGKILLs a random live instance, checks (before restarting it) whether it
/// died with an output transaction open, restarts it under the same name.
/// Returns whether a transaction was left open.
fn kill_round(fleet: &mut Fleet, rng: &mut Rng, w: &Workload) -> bool {
    let names: Vec<String> = fleet.names().into_iter().filter(|n| n != "c").collect();
    let victim = rng.pick(&names).clone();
    fleet.kill9(&victim);
    // The survivors commit every second; an output partition still unstable
    // after 2.5 s holds the dead instance's open transaction.
    fleet.sleep(Duration::from_millis(2_500));
    let open = open_transaction(&w.bootstrap, &w.topics);
    eprintln!("[driver] {victim} killed with an output transaction open: {open}");
    fleet.sleep(rng.ms(0, 1_500));
    fleet.start(&victim);
    open
}

#[test]
fn sigkill_restart_rebalance_and_zombie_keep_exactly_once() {
    let _machine = machine_alone();
    let started = Instant::now();
    let broker = KafkaBroker::shared();
    // Output waits for the 1 s interval, as it did before caught-up stages
    // committed early: it keeps the transactions with output open long
    // enough for the kills to land in them.
    let w = workload(
        broker,
        &Spec {
            extra_config: "caught_up_checkpoint_after = \"1s\"\n".into(),
            ..Spec::chaos()
        },
    );
    let truth = w.truth();
    assert!(
        truth.rollups.len() > 1_000,
        "workload too small: {}",
        truth.rollups.len()
    );
    assert!(
        !truth.rejected.is_empty(),
        "workload has no malformed messages"
    );
    eprintln!(
        "[driver] workload: {} messages, {} events, {} rollups, {} dead letters",
        w.records.len(),
        truth.totals.events,
        truth.rollups.len(),
        truth.rejected.len()
    );
    let bootstrap = w.bootstrap.clone();
    let during = Observer::start(&bootstrap, &w.topics.rollups, Isolation::Committed);
    // Counting observers of every output, both isolation levels: the
    // difference is what aborted transactions wrote.
    let counters: Vec<(Observer, Observer)> = w
        .topics
        .outputs()
        .iter()
        .map(|t| {
            (
                Observer::counting(&bootstrap, t, Isolation::Committed),
                Observer::counting(&bootstrap, t, Isolation::Uncommitted),
            )
        })
        .collect();
    // Long enough that the kills after the scripted ones still meet input:
    // once it ends, no transaction holds output and no kill can hit one.
    let input = produce_paced(&w, Duration::from_secs(100));

    let mut rng = Rng::new(0x5EED_0005);
    let mut fleet = Fleet::new(&w);
    fleet.start("a");
    fleet.start("b");
    let mut open_kills = 0;
    let mut kills = 0;

    fleet.sleep(rng.ms(6_000, 10_000));
    open_kills += kill_round(&mut fleet, &mut rng, &w) as u32;
    kills += 1;

    // Rebalance: a third instance joins, works a while, then leaves cleanly.
    fleet.sleep(rng.ms(3_000, 6_000));
    fleet.start("c");
    fleet.sleep(rng.ms(12_000, 15_000));
    let status = fleet.terminate("c");
    assert!(status.success(), "c exited with {status}");

    fleet.sleep(rng.ms(1_000, 4_000));
    open_kills += kill_round(&mut fleet, &mut rng, &w) as u32;
    kills += 1;

    // Zombie: stalled past the 10 s session timeout; its partitions move on,
    // and whatever it writes after waking must never commit.
    fleet.sleep(rng.ms(3_000, 6_000));
    let names = fleet.names();
    let zombie = rng.pick(&names).clone();
    let zombie_incarnation = fleet.live[&zombie].incarnation;
    fleet.stop(&zombie);
    std::thread::sleep(Duration::from_secs(14));
    fleet.cont(&zombie);

    fleet.sleep(rng.ms(3_000, 6_000));
    open_kills += kill_round(&mut fleet, &mut rng, &w) as u32;
    kills += 1;
    // At least five kills (a one-second transaction often holds no output:
    // partials and rollups come in bursts when windows close), and on while
    // input flows until one has provably hit an open output transaction
    // (~4 s a round: about eight more rounds). With a fixed eight, a run whose
    // three scripted kills missed had only kills after the input left (one CI
    // run: 0 of 8).
    while kills < 5 || (open_kills == 0 && !input.is_finished() && kills < 30) {
        fleet.sleep(rng.ms(1_000, 3_000));
        open_kills += kill_round(&mut fleet, &mut rng, &w) as u32;
        kills += 1;
    }

    while !input.is_finished() {
        fleet.sleep(Duration::from_millis(500));
    }
    input.join().unwrap();
    let want = truth.rollups.len();
    let deadline = started + Duration::from_secs(230);
    while during.len() < want && Instant::now() < deadline {
        fleet.sleep(Duration::from_millis(500));
    }
    // Anything published after the expected set would be a duplicate.
    fleet.sleep(Duration::from_secs(3));
    let statuses = fleet.shutdown();
    let during = during.finish();
    let mut committed_records = 0;
    let mut uncommitted_records = 0;
    for (rc, ru) in counters {
        committed_records += rc.finish_count();
        uncommitted_records += ru.finish_count();
    }
    let after = read_all(&bootstrap, &w.topics.rollups, Duration::from_secs(3));
    let dlq = read_all(&bootstrap, &w.topics.dlq, Duration::from_secs(2));
    let end_offsets = w
        .topics
        .outputs()
        .iter()
        .map(|t| (t.to_string(), end_offsets(&bootstrap, t)))
        .collect();
    eprintln!(
        "[driver] done in {:?}: {kills} kills ({open_kills} with an open output transaction), \
         {} unexpected exits {:?}; output records read_committed {committed_records}, \
         read_uncommitted {uncommitted_records} (aborted: {})",
        started.elapsed(),
        fleet.unexpected_exits.len(),
        fleet.unexpected_exits,
        uncommitted_records.saturating_sub(committed_records)
    );
    for l in fleet
        .grep("aborting and rewinding")
        .iter()
        .chain(&fleet.grep("fatal"))
        .chain(&fleet.grep("lost=true"))
    {
        eprintln!("[log] {l}");
    }
    let outcome = Outcome {
        truth,
        during,
        after,
        dlq,
        end_offsets,
    };
    if std::panic::catch_unwind(|| verify(&w, &outcome, "process chaos")).is_err() {
        eprintln!("{}", fleet.log_tails(30));
        panic!("exactly-once violated (see above)");
    }
    for (name, status) in statuses {
        assert!(status.success(), "{name} exited with {status} on SIGTERM");
    }
    assert!(
        open_kills >= 1,
        "no SIGKILL provably hit an open output transaction in {kills} rounds"
    );
    assert!(
        uncommitted_records > committed_records,
        "no aborted output was ever written: the kills never interrupted a transaction with output"
    );
    // The zombie really was one: after waking it found its partitions gone
    // (lost assignment or a fenced commit), aborted and rewound, or exited.
    let zombie_lines: Vec<String> = fleet
        .grep("")
        .into_iter()
        .filter(|l| l.starts_with(&format!("{zombie}.{zombie_incarnation}.log")))
        .filter(|l| {
            ["lost=true", "aborting", "fatal", "rewound", "fenced"]
                .iter()
                .any(|k| l.contains(k))
        })
        .collect();
    eprintln!("[driver] zombie {zombie}: {zombie_lines:#?}");
    assert!(
        !zombie_lines.is_empty(),
        "the zombie {zombie} never noticed it lost its partitions:\n{}",
        fleet.log_tails(40)
    );
}
