//! The failover scenario: a three-node cluster, three `rampart run`
//! processes over 12 input partitions, input paced over the run; the node
//! leading the most partitions is SIGKILLed and restarted, then the node
//! coordinating the ingest group, then every rampart process is restarted in
//! turn (SIGTERM, start). Roles are split across the processes (`a` ingest
//! only, `b` merge only, `c` both), so every kind of process meets every
//! fault; `RAMPART_CLUSTER_LAYOUT=both` runs both stages in every process.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rampart_testkit::KafkaCluster;

use crate::common::*;
use crate::timing::{self, SendSchedule};

/// The paced input: events and the time they are spread over (the event-time
/// rate is 2000/s, so 80 000 events over 40 s keep event time near real
/// time). `RAMPART_CLUSTER_EVENTS` / `RAMPART_CLUSTER_SECONDS` run a longer
/// sustained scenario (the faults then start a third into it).
fn pace() -> (u64, Duration) {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    (
        var("RAMPART_CLUSTER_EVENTS", 80_000),
        Duration::from_secs(var("RAMPART_CLUSTER_SECONDS", 40)),
    )
}
/// The workload's `[window]`: 5 s windows, out_of_orderness + allowed_lateness 2 s.
const WINDOW_MS: i64 = 5_000;
const CLOSE_WAIT_MS: i64 = 2_000;

fn cluster() -> &'static KafkaCluster {
    static CLUSTER: OnceLock<KafkaCluster> = OnceLock::new();
    let cluster = CLUSTER.get_or_init(|| {
        let started = Instant::now();
        let c = KafkaCluster::start(3).expect("three-node cluster");
        eprintln!(
            "[driver] cluster {} up in {:?}",
            c.bootstrap(),
            started.elapsed()
        );
        c
    });
    // A test that failed mid-fault may have left a node down.
    for node in cluster.node_ids() {
        if cluster.pid(node).is_none() {
            cluster.restart(node).unwrap();
        }
    }
    cluster
}

/// One injected fault: what, and from when to when.
struct Fault {
    name: String,
    from: Instant,
    to: Instant,
}

/// SIGKILLs `node`, keeps it down for `down`, restarts it.
fn bounce(
    fleet: &mut Fleet,
    cluster: &KafkaCluster,
    node: i32,
    down: Duration,
    why: &str,
) -> Fault {
    let from = Instant::now();
    eprintln!("[driver] kill -9 node {node} ({why})");
    cluster.kill(node).unwrap();
    fleet.sleep(down);
    cluster.restart(node).unwrap();
    eprintln!("[driver] node {node} back after {:?}", from.elapsed());
    Fault {
        name: format!("kill -9 node {node} ({why})"),
        from,
        to: Instant::now(),
    }
}

/// SIGTERM and wait (90 s); a process that does not exit fails the test
/// with its threads' stacks (gdb, when installed) and every log's tail (the
/// logs die with the workload's directory). A process whose watchdog found a
/// Kafka call hung past its timeout exits 1 by itself (a restart resolves
/// it, as for any fatal commit error): that counts as a clean stop here. Any
/// other failed exit prints the tail of the process's log.
fn terminate_or_show_logs(fleet: &mut Fleet, name: &str) -> std::process::ExitStatus {
    let log = fleet.live[name].log.clone();
    let status = terminate_within(fleet, name, Duration::from_secs(90));
    let overdue = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("kafka call overdue");
    if overdue {
        eprintln!("[driver] {name} exited {status} after a Kafka call hung past its timeout");
        fleet
            .unexpected_exits
            .push((name.to_owned(), "overdue call".into()));
        return std::process::ExitStatus::default();
    }
    if !status.success() {
        // The caller fails the test; the log goes with the workload's directory.
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("[driver] {name} exited {status} on SIGTERM; the last lines of its log:");
        for l in &lines[lines.len().saturating_sub(60)..] {
            eprintln!("[{name}] {}", l.chars().take(400).collect::<String>());
        }
    }
    status
}

fn terminate_within(fleet: &mut Fleet, name: &str, limit: Duration) -> std::process::ExitStatus {
    let pid = fleet.live[name].child.id();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = fleet.live.get_mut(name).unwrap().child.try_wait().unwrap() {
            fleet.live.remove(name);
            eprintln!("[driver] {name} pid {pid} exited on SIGTERM: {status}");
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let stacks = std::process::Command::new("gdb")
        .args([
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("no gdb: {e}"));
    let frames: Vec<&str> = stacks
        .lines()
        .filter(|l| l.starts_with("Thread") || l.contains("rampart") || l.contains("rd_kafka_"))
        .collect();
    eprintln!(
        "{}\n==== stacks of {name} ({pid})\n{}",
        fleet.log_tails(60),
        frames.join("\n")
    );
    panic!("{name} did not exit within {limit:?} of SIGTERM");
}

fn scenario(label: &str, seed: u64, roles: &[(&str, &[&str])]) {
    let _machine = machine_alone();
    let cluster = cluster();
    let started = Instant::now();
    let (events, over) = pace();
    let w = workload(
        cluster,
        &Spec {
            events,
            partitions: 12,
            events_per_batch: 50,
            malformed_share: 0.005,
            seed,
            rate: 2_000,
            // Longer than any stall injected here (a node outage, a restart).
            idle_timeout: "25s".into(),
            checkpoint_interval: "1s".into(),
            ..Spec::default()
        },
    );
    let truth = w.truth();
    assert!(truth.rollups.len() > 1_000 && !truth.rejected.is_empty());
    let b = w.bootstrap.clone();
    let during = Observer::start(&b, &w.topics.rollups, Isolation::Committed);
    let mut fleet = Fleet::new(&w);
    for (name, args) in roles {
        fleet.instance_args.insert(
            name.to_string(),
            args.iter().map(|a| a.to_string()).collect(),
        );
        fleet.start(name);
    }
    let schedule = SendSchedule {
        start: Instant::now(),
        over,
        records: w.records.len(),
    };
    let input = produce_paced(&w, over);
    let mut faults = Vec::new();

    fleet.sleep((over / 3).max(Duration::from_secs(6)));
    let topics = [
        w.topics.input.as_str(),
        w.topics.partials.as_str(),
        w.topics.rollups.as_str(),
        w.topics.dlq.as_str(),
    ];
    let busiest = cluster.node_leading_most(&topics).unwrap();
    let led = topics
        .iter()
        .map(|t| {
            cluster
                .leaders(t)
                .unwrap()
                .values()
                .filter(|l| **l == busiest)
                .count()
        })
        .sum::<usize>();
    faults.push(bounce(
        &mut fleet,
        cluster,
        busiest,
        Duration::from_secs(1),
        &format!("leads {led} partitions"),
    ));

    fleet.sleep(Duration::from_secs(3));
    let coordinator = cluster.group_coordinator(&w.topics.ingest_group).unwrap();
    assert!(coordinator > 0, "no coordinator for the ingest group");
    let transactions: Vec<String> = fleet
        .names()
        .iter()
        .flat_map(|n| {
            // `[processing] transactional_id_prefix` of the workload's config.
            ["ingest-0", "ingest-1", "merge"].map(|s| format!("rampart-{}-{s}-{n}", w.topics.input))
        })
        .filter(|id| cluster.transaction_coordinator(id).unwrap() == coordinator)
        .collect();
    faults.push(bounce(
        &mut fleet,
        cluster,
        coordinator,
        Duration::from_secs(1),
        &format!(
            "coordinates group {}, merge group on node {}, transactions {transactions:?}",
            w.topics.ingest_group,
            cluster.group_coordinator(&w.topics.merge_group).unwrap()
        ),
    ));

    fleet.sleep(Duration::from_secs(3));
    let from = Instant::now();
    for name in fleet.names() {
        let status = terminate_or_show_logs(&mut fleet, &name);
        assert!(status.success(), "{name} exited with {status} on SIGTERM");
        fleet.start(&name);
        fleet.sleep(Duration::from_secs(2));
    }
    faults.push(Fault {
        name: "rolling restart of a, b, c".into(),
        from,
        to: Instant::now(),
    });

    while !input.is_finished() {
        fleet.sleep(Duration::from_millis(500));
    }
    input.join().unwrap();
    let want = truth.rollups.len();
    // Bounded: a hung call costs its timeout and grace (20 s) before the
    // process exits and is restarted.
    let deadline = Instant::now() + Duration::from_secs(150);
    while during.len() < want && Instant::now() < deadline {
        fleet.sleep(Duration::from_millis(500));
    }
    // Anything published after the expected set would be a duplicate.
    fleet.sleep(Duration::from_secs(2));
    let statuses: Vec<_> = fleet
        .names()
        .into_iter()
        .map(|n| (n.clone(), terminate_or_show_logs(&mut fleet, &n)))
        .collect();
    let during = during.finish();
    let after = read_all(&b, &w.topics.rollups, Duration::from_secs(3));
    let dlq = read_all(&b, &w.topics.dlq, Duration::from_secs(2));
    let end_offsets = w
        .topics
        .outputs()
        .iter()
        .map(|t| (t.to_string(), end_offsets(&b, t)))
        .collect();

    let closes = timing::close_times(&w.records, 12, WINDOW_MS, CLOSE_WAIT_MS, &schedule);
    let latencies = timing::latencies_ms(&during, &closes);
    let before_faults: std::collections::BTreeMap<i64, Instant> = closes
        .iter()
        .filter(|(_, close)| **close < faults[0].from)
        .map(|(w, c)| (*w, *c))
        .collect();
    let quiet_latencies = timing::latencies_ms(&during, &before_faults);
    eprintln!(
        "[report] {label}: {} rollups, {} events over {over:?}; rollup latency after window close (read_committed): all windows p50 {} ms, p99 {} ms, max {} ms ({} rollups); windows closed before the first fault p50 {} ms, p99 {} ms ({} rollups)",
        truth.rollups.len(),
        truth.totals.events,
        timing::quantile(&latencies, 0.5),
        timing::quantile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0),
        latencies.len(),
        timing::quantile(&quiet_latencies, 0.5),
        timing::quantile(&quiet_latencies, 0.99),
        quiet_latencies.len(),
    );
    let quiet = timing::longest_stall(&during, schedule.start, faults[0].from);
    eprintln!("[report] {label}: longest gap between rollups before the first fault: {quiet:?}");
    for f in &faults {
        // A fault's effect lasts until the pipeline has caught up: look 15 s past it.
        let stall = timing::longest_stall(&during, f.from, f.to + Duration::from_secs(15));
        eprintln!(
            "[report] {label}: {} for {:?}: longest gap between rollups {stall:?}",
            f.name,
            f.to - f.from
        );
    }
    eprintln!(
        "[driver] {label} done in {:?}; unexpected exits (restarted): {:?}",
        started.elapsed(),
        fleet.unexpected_exits
    );
    for l in fleet
        .grep("fatal")
        .iter()
        .chain(&fleet.grep("aborting and rewinding"))
    {
        eprintln!("[log] {}", &l[..l.len().min(300)]);
    }
    let outcome = Outcome {
        truth,
        during,
        after,
        dlq,
        end_offsets,
    };
    if std::panic::catch_unwind(|| verify(&w, &outcome, label)).is_err() {
        eprintln!("{}", fleet.log_tails(30));
        panic!("exactly-once violated (see above)");
    }
    for (name, status) in statuses {
        assert!(status.success(), "{name} exited with {status} on SIGTERM");
    }
    // The rollups came while the faults ran, not all at the end.
    assert!(
        latencies.len() * 2 > want,
        "only {} of {want} rollups measured",
        latencies.len()
    );
}

#[test]
fn node_failures_and_rolling_restart_keep_exactly_once() {
    if std::env::var("RAMPART_CLUSTER_LAYOUT").as_deref() == Ok("both") {
        scenario(
            "both roles",
            0xC1_0001,
            &[("a", &[]), ("b", &[]), ("c", &[])],
        );
    } else {
        scenario(
            "split roles",
            0xC1_0002,
            &[
                ("a", &["--role", "ingest"]),
                ("b", &["--role", "merge"]),
                ("c", &[]),
            ],
        );
    }
}
