//! Finality and checkpoints against a real broker, with input written by a
//! plain rdkafka producer to explicit partitions (issue 10, items 1, 6, 7, 8):
//! partitions that never receive data (or only rejected messages) still let
//! every window become final, for any layout of threads and processes;
//! partition count changes are refused with an actionable error; an
//! at-least-once crash between producing and committing counts nothing twice;
//! unreadable checkpoint metadata is refused unless `--reset-state`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use rampart_core::model::ModelOutput;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

thread_local! {
    /// Processes this test started and has not reaped yet.
    static STARTED: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Kills (by PID) every process the test started and did not reap, also when
/// an assertion fails.
struct Reaper;

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in STARTED.with(|s| s.take()) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

fn reaped(child: &Child) {
    let pid = child.id();
    STARTED.with(|s| s.borrow_mut().retain(|p| *p != pid));
}

fn stop(child: &mut Child) -> std::process::ExitStatus {
    let status = terminate(child);
    reaped(child);
    status
}

/// A workload with `spec`, produced with a plain idempotent rdkafka producer
/// (explicit partitions).
fn produced(spec: Spec) -> Workload {
    let w = workload(broker(), &spec);
    produce_all(&w);
    w
}

/// `rampart run` with extra arguments and `RAMPART_*` overrides, its stderr in
/// a file (in `$FINALITY_DEBUG_DIR` when set, to read after a failure).
fn spawn(w: &Workload, name: &str, args: &[&str], env: &[(&str, &str)]) -> (Child, PathBuf) {
    let log = match std::env::var("FINALITY_DEBUG_DIR") {
        Ok(d) => PathBuf::from(d).join(format!("{name}.log")),
        Err(_) => w.dir.path().join(format!("{name}.log")),
    };
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.args(["run", "--config"])
        .arg(&w.config_path)
        .args(args)
        .env("RAMPART_LOG", "info,rdkafka=warn")
        .env("NO_COLOR", "1")
        // Instance names repeat across these tests, which run at once: a
        // prefix of the test's own keeps their transactional ids apart (the
        // same id would fence the other test's process).
        .env(
            "RAMPART_PROCESSING__TRANSACTIONAL_ID_PREFIX",
            format!("finality-{}", w.topics.input),
        )
        .stdin(Stdio::null())
        .stderr(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    STARTED.with(|s| s.borrow_mut().push(child.id()));
    (child, log)
}

fn log_text(log: &PathBuf) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Waits until every expected rollup was published (read_committed) or
/// `limit`; asserts they equal the ground truth, each key exactly once.
fn assert_final_rollups(w: &Workload, truth: &ModelOutput, limit: Duration) -> Duration {
    let start = Instant::now();
    let want = truth.rollups.len();
    let reads = read_until(broker().bootstrap(), &w.topics.rollups, limit, |all| {
        all.len() >= want
    });
    let took = start.elapsed();
    // Anything more would be a key published twice: give it a moment to show.
    let reads_after = read_all(
        broker().bootstrap(),
        &w.topics.rollups,
        Duration::from_secs(2),
    );
    let got = decode_rollups(&reads_after);
    let d = diff(&truth.rollups, &got);
    assert!(
        d.is_empty(),
        "{} of {want} rollups after {took:?}; {} differences, first ones:\n{}",
        reads.len(),
        d.len(),
        d.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
    took
}

/// The rollups topic holds exactly the ground truth now (read_committed,
/// after a 2 s quiet period).
fn assert_rollups_now(w: &Workload, truth: &ModelOutput) {
    let got = decode_rollups(&read_all(
        broker().bootstrap(),
        &w.topics.rollups,
        Duration::from_secs(2),
    ));
    let d = diff(&truth.rollups, &got);
    assert!(
        d.is_empty(),
        "{} differences: {:?}",
        d.len(),
        &d[..d.len().min(10)]
    );
}

fn empty_partitions_workload() -> (Workload, ModelOutput) {
    let w = produced(Spec {
        events: 3_000,
        partitions: 4,
        empty_partitions: 2,
        malformed_share: 0.0,
        ..Spec::default()
    });
    let mut per = [0usize; 4];
    for r in &w.records {
        per[r.partition as usize] += 1;
    }
    assert!(
        per[0] > 0 && per[1] > 0 && per[2] == 0 && per[3] == 0,
        "{per:?}"
    );
    let truth = w.truth();
    assert!(truth.rollups.len() > 20, "{}", truth.rollups.len());
    (w, truth)
}

/// idle_timeout (1 s) + allowed_lateness (1 s) + checkpoint (0.3 s), plus the
/// start of the process and its group joins on a shared 2-core machine.
const FINALITY_LIMIT: Duration = Duration::from_secs(60);

fn empty_partitions_become_final(threads: Option<&str>, processes: usize) {
    let _reaper = Reaper;
    let (w, truth) = empty_partitions_workload();
    let env: Vec<(&str, &str)> = threads
        .map(|t| vec![("RAMPART_PROCESSING__INGEST_THREADS", t)])
        .unwrap_or_default();
    let mut children: Vec<(Child, PathBuf)> = (0..processes)
        .map(|i| {
            spawn(
                &w,
                &format!("p{i}"),
                &["--instance", &format!("p{i}")],
                &env,
            )
        })
        .collect();
    let took = assert_final_rollups(&w, &truth, FINALITY_LIMIT);
    for (c, log) in &mut children {
        let status = stop(c);
        assert!(status.success(), "exit {status}: {}", log_text(log));
    }
    eprintln!("every window final {took:?} after the start");
}

#[test]
fn empty_partitions_become_final_with_an_ingest_thread_per_partition() {
    let _reaper = Reaper;
    empty_partitions_become_final(Some("4"), 1);
}

#[test]
fn empty_partitions_become_final_with_the_default_ingest_threads() {
    let _reaper = Reaper;
    empty_partitions_become_final(None, 1);
}

#[test]
fn empty_partitions_become_final_across_two_processes() {
    let _reaper = Reaper;
    empty_partitions_become_final(Some("1"), 2);
}

/// Partitions 2 and 3 receive only messages that are dead-lettered whole.
#[test]
fn partitions_with_only_rejected_messages_become_final() {
    let _reaper = Reaper;
    let (mut w, _) = empty_partitions_workload();
    let last = w.records.iter().max_by_key(|r| r.timestamp_ms).unwrap();
    let (t, clock) = (last.timestamp_ms, last.clock_ms);
    let junk: Vec<rampart_loadgen::Record> = (0..6)
        .map(|i| rampart_loadgen::Record {
            partition: 2 + (i % 2),
            key: vec![1, 2, 3, 4],
            payload: vec![0x0a, 0xff, 0x01, i as u8],
            timestamp_ms: t,
            clock_ms: clock,
        })
        .collect();
    let plain: Vec<PlainRecord> = junk
        .iter()
        .map(|r| PlainRecord {
            partition: r.partition,
            timestamp_ms: r.timestamp_ms,
            key: Some(r.key.clone()),
            payload: Some(r.payload.clone()),
            headers: Vec::new(),
        })
        .collect();
    produce_plain(
        broker().bootstrap(),
        &w.topics.input,
        Compression::None,
        &plain,
    );
    w.records.extend(junk);
    let truth = w.truth();
    assert_eq!(truth.rejected.len(), 6);
    let (mut child, log) = spawn(&w, "solo", &["--instance", "solo"], &[]);
    assert_final_rollups(&w, &truth, FINALITY_LIMIT);
    let dlq = read_until(
        broker().bootstrap(),
        &w.topics.dlq,
        Duration::from_secs(30),
        |a| a.len() >= 6,
    );
    let status = stop(&mut child);
    assert!(status.success(), "exit {status}: {}", log_text(&log));
    let mut got: BTreeMap<(u32, i64), String> = BTreeMap::new();
    for m in &dlq {
        let p = m.headers["rampart.source.partition"].parse().unwrap();
        let o = m.headers["rampart.source.offset"].parse().unwrap();
        got.insert((p, o), m.headers["rampart.reason"].clone());
    }
    let want: BTreeMap<(u32, i64), String> = truth
        .rejected
        .iter()
        .map(|r| ((r.partition, r.offset), r.reason.as_str().to_owned()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(dlq.len(), 6, "a message was dead-lettered twice");
}

fn admin() -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", broker().bootstrap())
        .create()
        .unwrap()
}

fn grow_topic(topic: &str, partitions: usize) {
    let rt = tokio_runtime();
    let res = rt
        .block_on(admin().create_partitions(
            &[NewPartitions::new(topic, partitions)],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .unwrap();
    for r in res {
        r.unwrap();
    }
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Waits (bounded) for the process to exit by itself; returns its status.
fn exits_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let status = wait_bounded(child, limit);
    reaped(child);
    status
}

fn assert_refused(status: std::process::ExitStatus, log: &PathBuf, needles: &[&str]) {
    let text = log_text(log);
    assert!(
        !status.success(),
        "rampart kept running or exited 0:\n{text}"
    );
    for n in needles {
        assert!(text.contains(n), "log lacks {n:?}:\n{text}");
    }
}

#[test]
fn input_partitions_added_while_running_stop_the_stage_with_what_to_do() {
    let _reaper = Reaper;
    let w = produced(Spec {
        events: 3_000,
        malformed_share: 0.0,
        ..Spec::default()
    });
    let truth = w.truth();
    let (mut child, log) = spawn(&w, "solo", &["--instance", "solo"], &[]);
    assert_final_rollups(&w, &truth, FINALITY_LIMIT);
    grow_topic(&w.topics.input, 8);
    let status = exits_within(&mut child, Duration::from_secs(90));
    assert_refused(status, &log, &[&w.topics.input, "4", "8", "--reset-state"]);
    // Nothing was published twice, no partial was dead-lettered.
    let got = decode_rollups(&read_all(
        broker().bootstrap(),
        &w.topics.rollups,
        Duration::from_secs(2),
    ));
    assert!(diff(&truth.rollups, &got).is_empty());
    assert!(read_all(broker().bootstrap(), &w.topics.dlq, Duration::from_secs(1)).is_empty());
}

#[test]
fn input_partitions_added_between_runs_are_refused_at_start() {
    let _reaper = Reaper;
    let w = produced(Spec {
        events: 2_000,
        malformed_share: 0.0,
        ..Spec::default()
    });
    let truth = w.truth();
    let (mut child, log) = spawn(&w, "first", &["--instance", "solo"], &[]);
    assert_final_rollups(&w, &truth, FINALITY_LIMIT);
    let status = stop(&mut child);
    assert!(status.success(), "{}", log_text(&log));
    grow_topic(&w.topics.input, 8);
    let (mut child, log) = spawn(&w, "second", &["--instance", "solo"], &[]);
    let status = exits_within(&mut child, Duration::from_secs(90));
    assert_refused(status, &log, &[&w.topics.input, "--reset-state"]);
    // The way out the message names: once drained, --reset-state starts afresh.
    let (mut child, log) = spawn(&w, "reset", &["--instance", "solo", "--reset-state"], &[]);
    std::thread::sleep(Duration::from_secs(8));
    let status = stop(&mut child);
    assert!(status.success(), "{}", log_text(&log));
    assert_rollups_now(&w, &truth);
}

#[test]
fn partials_partitions_changed_between_runs_are_refused_at_start() {
    let _reaper = Reaper;
    let w = produced(Spec {
        events: 2_000,
        malformed_share: 0.0,
        ..Spec::default()
    });
    let truth = w.truth();
    let (mut child, log) = spawn(&w, "first", &["--instance", "solo"], &[]);
    assert_final_rollups(&w, &truth, FINALITY_LIMIT);
    let status = stop(&mut child);
    assert!(status.success(), "{}", log_text(&log));
    grow_topic(&w.topics.partials, 5);
    let (mut child, log) = spawn(&w, "second", &["--instance", "solo"], &[]);
    let status = exits_within(&mut child, Duration::from_secs(90));
    assert_refused(
        status,
        &log,
        &[&w.topics.partials, "3", "5", "--reset-state"],
    );
    assert_rollups_now(&w, &truth);
}

/// At-least-once: the ingest is killed after producing partials but long
/// before its first commit (a 60 s checkpoint interval, also when caught up),
/// while the merge holds windows partitions 0 and 1 have closed and the
/// empty partitions 2 and 3 have not (a 60 s idle timeout). The restarted ingest writes every partial
/// again; the merge must count each once. One ingest thread, so the empty
/// partitions follow their thread's frontier once idle.
#[test]
fn at_least_once_crash_between_produce_and_commit_counts_each_event_once() {
    let _reaper = Reaper;
    let w = produced(Spec {
        events: 6_000,
        empty_partitions: 2,
        malformed_share: 0.0,
        ..Spec::default()
    });
    let truth = w.truth();
    let alo = ("RAMPART_PROCESSING__GUARANTEE", "at-least-once");
    let one = ("RAMPART_PROCESSING__INGEST_THREADS", "1");
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let (mut merge, merge_log) = spawn(
        &w,
        "merge",
        &["--role", "merge", "--instance", "m"],
        &[alo, ("RAMPART_METRICS__LISTEN", &metrics_addr)],
    );
    let (mut ingest, _) = spawn(
        &w,
        "ingest-1",
        &["--role", "ingest", "--instance", "i"],
        &[
            alo,
            one,
            ("RAMPART_PROCESSING__CHECKPOINT_INTERVAL", "60s"),
            ("RAMPART_PROCESSING__CAUGHT_UP_CHECKPOINT_AFTER", "60s"),
            ("RAMPART_WINDOW__IDLE_TIMEOUT", "60s"),
        ],
    );
    // Partials written (not transactional under at-least-once), no window final.
    let bootstrap = broker().bootstrap();
    let partials = read_until(
        bootstrap,
        &w.topics.partials,
        Duration::from_secs(60),
        |a| a.len() >= 3,
    );
    assert!(partials.len() >= 3, "no partials before the crash");
    std::thread::sleep(Duration::from_secs(3));
    assert!(read_all(bootstrap, &w.topics.rollups, Duration::from_secs(1)).is_empty());
    kill9(&mut ingest);
    reaped(&ingest);
    let (mut ingest, ingest_log) = spawn(
        &w,
        "ingest-2",
        &["--role", "ingest", "--instance", "i"],
        &[alo, one],
    );
    assert_final_rollups(&w, &truth, FINALITY_LIMIT);
    // The rewritten partials were seen and dropped, and said so.
    let (code, scrape) = http_get(&metrics_addr, "/metrics");
    assert_eq!(code, 200);
    let dropped: f64 = scrape
        .lines()
        .filter(|l| l.starts_with("rampart_merge_partials_dropped_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(dropped > 0.0, "no dropped partials reported:\n{scrape}");
    for (c, log) in [(&mut ingest, &ingest_log), (&mut merge, &merge_log)] {
        let status = stop(c);
        assert!(status.success(), "{}", log_text(log));
    }
}

/// Sets the committed offset metadata of `group` on `topic`'s partition 0.
fn overwrite_metadata(group: &str, topic: &str, metadata: &str) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker().bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut q = TopicPartitionList::new();
    q.add_partition(topic, 0);
    let committed = c.committed_offsets(q, Duration::from_secs(10)).unwrap();
    let offset = committed.elements()[0].offset();
    assert!(
        matches!(offset, Offset::Offset(_)),
        "nothing committed: {offset:?}"
    );
    let mut tpl = TopicPartitionList::new();
    let mut e = tpl.add_partition(topic, 0);
    e.set_offset(offset).unwrap();
    e.set_metadata(metadata);
    c.commit(&tpl, CommitMode::Sync).unwrap();
}

#[test]
fn unreadable_checkpoint_metadata_is_refused_unless_reset_state() {
    let _reaper = Reaper;
    let w = produced(Spec {
        events: 2_000,
        malformed_share: 0.0,
        ..Spec::default()
    });
    let truth = w.truth();
    let (mut child, log) = spawn(&w, "first", &["--instance", "solo"], &[]);
    assert_final_rollups(&w, &truth, FINALITY_LIMIT);
    assert!(stop(&mut child).success(), "{}", log_text(&log));

    let cases = [
        (&w.topics.ingest_group, &w.topics.input, "", "missing"),
        (
            &w.topics.ingest_group,
            &w.topics.input,
            "not;metadata",
            "unreadable",
        ),
        (&w.topics.ingest_group, &w.topics.input, "v9;r=0", "newer"),
        (
            &w.topics.merge_group,
            &w.topics.partials,
            "garbage",
            "unreadable",
        ),
    ];
    for (i, (group, topic, meta, what)) in cases.into_iter().enumerate() {
        overwrite_metadata(group, topic, meta);
        let (mut child, log) = spawn(&w, &format!("refused-{i}"), &["--instance", "solo"], &[]);
        let status = exits_within(&mut child, Duration::from_secs(90));
        assert_refused(
            status,
            &log,
            &[topic, group, "partition 0", what, "--reset-state"],
        );
        if i + 1 < 4 {
            // Restore a readable checkpoint for the next case: reset once.
            let (mut child, log) = spawn(
                &w,
                &format!("reset-{i}"),
                &["--instance", "solo", "--reset-state"],
                &[],
            );
            std::thread::sleep(Duration::from_secs(8));
            assert!(stop(&mut child).success(), "{}", log_text(&log));
        }
    }
    let (mut child, log) = spawn(&w, "reset", &["--instance", "solo", "--reset-state"], &[]);
    std::thread::sleep(Duration::from_secs(8));
    assert!(stop(&mut child).success(), "{}", log_text(&log));
    // After the reset the checkpoint is readable again: a plain start works.
    let (mut child, log) = spawn(&w, "after", &["--instance", "solo"], &[]);
    std::thread::sleep(Duration::from_secs(8));
    assert!(stop(&mut child).success(), "{}", log_text(&log));
    assert_rollups_now(&w, &truth);
}
