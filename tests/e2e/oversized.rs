//! Records rampart cannot write, against the real broker: an input message
//! whose dead letter would exceed the producer's `message.max.bytes` is
//! dead-lettered as coordinates only (`payload_too_large`) and processing
//! goes on; a record the broker refuses on every retry (here: the DLQ topic's
//! own `max.message.bytes`) stops rampart with an error naming the position
//! after a bounded number of aborts, which the aborts counter shows, instead
//! of abort → replay → the same failure forever.

use std::time::{Duration, Instant};

use crate::common::*;

/// A record that is no protobuf at all (its first tag has wire type 7),
/// `len` bytes long, incompressible (so no codec shrinks it under a limit).
fn malformed(partition: i32, timestamp_ms: i64, len: usize) -> PlainRecord {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let payload = std::iter::once(0xff)
        .chain(std::iter::repeat_with(|| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        }))
        .take(len)
        .collect();
    PlainRecord {
        partition,
        timestamp_ms,
        key: Some(b"k".to_vec()),
        payload: Some(payload),
        headers: Vec::new(),
    }
}

#[test]
fn an_input_too_large_to_dead_letter_whole_goes_to_the_dlq_as_coordinates() {
    let _machine = machine_shared();
    let w = workload(
        broker(),
        &Spec {
            events: 6_000,
            partitions: 1,
            malformed_share: 0.0,
            ..Spec::default()
        },
    );
    produce_all(&w);
    // 999 900 bytes fit the producer's 1 000 000; with rampart's rampart.*
    // headers the whole dead letter would not.
    let last = w.records.last().unwrap().timestamp_ms;
    let at = produce_plain(
        &w.bootstrap,
        &w.topics.input,
        Compression::None,
        &[malformed(0, last, 999_900)],
    );
    let (partition, offset) = at[0];
    let truth = w.truth();
    let mut child = w.rampart(&["--instance", "oversized"]);
    let dlq = read_dead_letters(
        &w.bootstrap,
        &w.topics.dlq,
        Duration::from_secs(90),
        |all| !all.is_empty(),
    );
    let reads = read_until(
        &w.bootstrap,
        &w.topics.rollups,
        Duration::from_secs(90),
        |all| all.len() >= truth.rollups.len(),
    );
    let status = terminate(&mut child);
    assert!(status.success(), "rampart exited with {status}");
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    let letter = &dlq[0];
    assert_eq!(letter.rampart.reason.as_deref(), Some("payload_too_large"));
    assert_eq!(
        (
            letter.rampart.source_partition,
            letter.rampart.source_offset
        ),
        (Some(partition), Some(offset)),
        "{letter:?}"
    );
    assert!(letter.key.is_none(), "coordinates only: {:?}", letter.key);
    assert!(
        letter.payload.as_ref().is_none_or(Vec::is_empty),
        "coordinates only"
    );
    // The rest of the input was processed exactly.
    let d = diff(&truth.rollups, &decode_rollups(&reads));
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn the_same_failure_after_every_replay_stops_rampart_and_counts_the_aborts() {
    let _machine = machine_shared();
    let w = workload(
        broker(),
        &Spec {
            events: 2_000,
            partitions: 1,
            malformed_share: 0.0,
            ..Spec::default()
        },
    );
    // The DLQ accepts nothing over 2000 bytes; the dead letter of a 5000 byte
    // malformed message is refused by the broker every time.
    broker()
        .create_topic_with(&w.topics.dlq, 1, &[("max.message.bytes", "2000")])
        .unwrap();
    produce_all(&w);
    let first = w.records.first().unwrap().timestamp_ms;
    produce_plain(
        &w.bootstrap,
        &w.topics.input,
        Compression::None,
        &[malformed(0, first, 5_000)],
    );
    let started = Instant::now();
    let mut rampart = LoggedRampart::start(
        &w.config_path,
        &["--instance", "refused"],
        &[("RAMPART_METRICS__LISTEN", "127.0.0.1:0")],
    );
    let addr = rampart.metrics_addr();
    let mut aborts_seen = 0.0f64;
    let status = loop {
        if let Some(status) = rampart.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "rampart still retries after {:?}:\n{}",
            started.elapsed(),
            rampart.log()
        );
        if let Some((200, body)) = http_status(&addr, "/metrics") {
            let aborts: f64 = body
                .lines()
                .filter(|l| l.starts_with("rampart_checkpoint_aborts_total{stage=\"ingest\""))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            aborts_seen = aborts_seen.max(aborts);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = rampart.log();
    assert!(!status.success(), "must exit non-zero:\n{log}");
    assert!(
        log.contains("times in a row at the same input position"),
        "{log}"
    );
    assert!(aborts_seen >= 1.0, "aborts counter never moved:\n{log}");
}
