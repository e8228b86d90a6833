//! Static group membership (issue 14, recovery): a process restarted after a
//! SIGKILL under the same `--instance` takes its partitions back at once,
//! not after the group timed its predecessor out (`session.timeout.ms`,
//! 10 s); a clean stop leaves the group, so no member of it is left behind.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::common::*;

/// Members the broker lists in `group` now.
fn members(bootstrap: &str, group: &str) -> Vec<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let list = c
        .fetch_group_list(Some(group), Duration::from_secs(10))
        .unwrap();
    list.groups()
        .iter()
        .flat_map(|g| g.members().iter().map(|m| m.client_id().to_owned()))
        .collect()
}

/// Members still listed in `group` once it lists none or `limit` has passed.
fn members_after(bootstrap: &str, group: &str, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let left = members(bootstrap, group);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Time from now until `fleet`'s instance `name` logs an assignment of
/// partitions to its stage `stage`, or `None` after `limit`.
fn until_assigned(fleet: &Fleet, name: &str, stage: &str, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let log = fleet.live[name].log.clone();
    let stage = format!("stage=\"{stage}\"");
    while started.elapsed() < limit {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.contains("partitions assigned") && l.contains(&stage) && !l.ends_with("[]"))
        {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn a_killed_instance_restarted_takes_its_partitions_back_at_once_and_a_clean_stop_leaves() {
    let _machine = machine_shared();
    let w = workload(
        broker(),
        &Spec {
            events: 20_000,
            partitions: 2,
            ..Spec::default()
        },
    );
    let input = produce_paced(&w, Duration::from_secs(20));
    let mut fleet = Fleet::new(&w);
    // Two merge threads: two members of one group stop (and leave) at once.
    fleet
        .env
        .push(("RAMPART_PROCESSING__MERGE_THREADS".into(), "2".into()));
    fleet.start("s");
    let first = until_assigned(&fleet, "s", "ingest", Duration::from_secs(60));
    assert!(first.is_some(), "{}", fleet.log_tails(30));
    std::thread::sleep(Duration::from_secs(2));

    fleet.kill9("s");
    fleet.start("s");
    // A dynamic member would wait out the dead one's 10 s session timeout.
    let back = until_assigned(&fleet, "s", "ingest", Duration::from_secs(30));
    assert!(
        back.is_some_and(|d| d < Duration::from_secs(6)),
        "partitions back after {back:?} (the session timeout is 10 s):\n{}",
        fleet.log_tails(30)
    );
    assert!(
        !members(&w.bootstrap, &w.topics.ingest_group).is_empty(),
        "the restarted instance is a member"
    );

    // Both stages of the new process are members before it stops.
    let merge = until_assigned(&fleet, "s", "merge", Duration::from_secs(30));
    assert!(merge.is_some(), "{}", fleet.log_tails(30));
    let status = fleet.terminate("s");
    assert!(status.success(), "{status}");
    // A static member that did not leave would stay listed for 10 s.
    for group in [&w.topics.ingest_group, &w.topics.merge_group] {
        let left = members_after(&w.bootstrap, group, Duration::from_secs(3));
        assert!(left.is_empty(), "{group}: members left behind: {left:?}");
    }
    input.join().unwrap();
}

/// librdkafka leaves only a group it has joined: a stage stopped while its
/// first join is in flight waits for it, then leaves.
#[test]
fn a_stop_during_the_first_join_still_leaves_the_group() {
    let _machine = machine_shared();
    let w = workload(
        broker(),
        &Spec {
            events: 1_000,
            partitions: 2,
            ..Spec::default()
        },
    );
    let mut fleet = Fleet::new(&w);
    fleet
        .env
        .push(("RAMPART_PROCESSING__MERGE_THREADS".into(), "2".into()));
    fleet.start("s");
    let log = fleet.live["s"].log.clone();
    let subscribed = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .any(|l| l.contains("stage started") && l.contains("stage=\"merge\""))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !subscribed() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(subscribed(), "{}", fleet.log_tails(30));
    let status = fleet.terminate("s");
    assert!(status.success(), "{status}\n{}", fleet.log_tails(30));
    for group in [&w.topics.ingest_group, &w.topics.merge_group] {
        let left = members_after(&w.bootstrap, group, Duration::from_secs(3));
        assert!(left.is_empty(), "{group}: members left behind: {left:?}");
    }
}

/// Runs both stages of `settings` in this process until the ingest stage's
/// (messages, replayed) satisfy `done` and then stay put for 2 s; returns
/// them and the ingest's rewinds.
fn run_ingest(
    settings: &rampart_pipeline::config::Settings,
    done: impl Fn((u64, u64)) -> bool,
) -> (u64, u64, u64) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let shutdown = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Mutex::new(rampart_pipeline::RunCounters::default()));
    let handle = {
        let (settings, shutdown, counters) = (settings.clone(), shutdown.clone(), counters.clone());
        std::thread::spawn(move || {
            rampart_pipeline::run(
                &settings,
                rampart_pipeline::Role::Both,
                "replay",
                shutdown,
                Some(&counters),
            )
        })
    };
    let read = || {
        let c = counters.lock().unwrap().ingest.clone();
        c.map_or((0, 0), |c| {
            (
                c.messages.load(Ordering::Relaxed),
                c.replayed.load(Ordering::Relaxed),
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = (read(), Instant::now());
    while Instant::now() < deadline && !handle.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        let now = read();
        if now != last.0 {
            last = (now, Instant::now());
        } else if done(now) && last.1.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    shutdown.store(true, Ordering::Relaxed);
    handle.join().unwrap().unwrap();
    let (messages, replayed) = read();
    let rewinds = counters
        .lock()
        .unwrap()
        .ingest
        .as_ref()
        .unwrap()
        .rewinds
        .load(Ordering::Relaxed);
    (messages, replayed, rewinds)
}

/// What a restarted stage reads again to rebuild its state (from its replay
/// offset up to the committed one) is counted as replayed, so a drain
/// measured by new input is not cut short by a handover
/// (`StageCounters::replayed`, `rampart throughput`).
#[test]
fn input_read_again_after_a_restart_is_counted_as_replayed() {
    let _machine = machine_shared();
    let w = workload(
        broker(),
        &Spec {
            events: 4_000,
            partitions: 2,
            ..Spec::default()
        },
    );
    produce_all(&w);
    let settings =
        rampart_pipeline::config::load(Some(&w.config_path), std::iter::empty()).unwrap();
    let input = w.records.len() as u64;
    // Two ingest threads may hand partitions over at the start (a fresh
    // group): what the second reads again is counted as replayed.
    let (first, first_replayed, rewinds) =
        run_ingest(&settings, |(m, r)| m.saturating_sub(r) >= input);
    if rewinds == 0 {
        assert_eq!(
            first - first_replayed,
            input,
            "first run: {first_replayed} replayed"
        );
    } else {
        // A checkpoint that lost a race with that rebalance rewound: what it
        // read again above the committed offset counts as new once more.
        assert!(
            first - first_replayed >= input,
            "first run, {rewinds} rewinds"
        );
    }
    // Everything is committed; the restart rebuilds the open windows and the
    // dedup horizon from their replay offsets, all below the committed ones.
    let (second, second_replayed, _) = run_ingest(&settings, |(m, _)| m > 0);
    assert!(second > 0, "the restart replayed nothing");
    assert_eq!(second_replayed, second, "second run");
}
