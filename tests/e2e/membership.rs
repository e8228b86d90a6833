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
