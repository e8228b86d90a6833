//! Issue 10, items 2, 4 and 5 end to end: input produced by a plain rdkafka
//! producer (not loadgen), `rampart run` against the real broker, rollups
//! compared with the reference model and the DLQ read back.

use std::time::Duration;

use prost::Message as _;
use rampart_core::model::{self, ModelInput, ModelOutput};
use rampart_core::proto::v1::{AttackEvent, AttackEventBatch, Dimension};
use rampart_core::validate::Rejection;

use crate::common::*;

/// A far-future time: 2100-01-01.
const YEAR_2100: i64 = 4_102_444_800_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// An empty loadgen workload: its world, config and topics, no records.
fn empty_workload() -> Workload {
    workload(
        broker(),
        &Spec {
            events: 0,
            partitions: 1,
            malformed_share: 0.0,
            ..Spec::default()
        },
    )
}

/// Sends `(payload, CreateTime)` messages to partition 0 with a plain producer.
fn send(topic: &str, messages: &[(Vec<u8>, i64)]) {
    let records: Vec<PlainRecord> = messages
        .iter()
        .map(|(payload, ts)| PlainRecord {
            partition: 0,
            timestamp_ms: *ts,
            key: Some(b"k".to_vec()),
            payload: Some(payload.clone()),
            headers: vec![("trace".into(), b"t-1".to_vec())],
        })
        .collect();
    let at = produce_plain(broker().bootstrap(), topic, Compression::None, &records);
    assert!(at.iter().all(|&(p, _)| p == 0));
}

/// Kafka 4 refuses a CreateTime more than an hour ahead by default
/// (`message.timestamp.after.max.ms`); many clusters allow it, and then
/// nothing but rampart stands between a broken sensor clock and the windows.
fn accept_any_create_time(topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker().bootstrap())
        .create()
        .unwrap();
    let change = AlterConfig::new(ResourceSpecifier::Topic(topic))
        .set("retention.ms", "-1")
        .set("message.timestamp.after.max.ms", "9223372036854775807");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let res = rt
        .block_on(admin.alter_configs(&[change], &AdminOptions::new()))
        .unwrap();
    assert!(res.iter().all(Result::is_ok), "{res:?}");
}

fn event(time_ms: i64, n: u32, id: &str) -> AttackEvent {
    AttackEvent {
        time_ms,
        src_ip: vec![
            (11 + n % 200) as u8,
            (n / 200 % 250) as u8,
            (n % 7) as u8,
            (n % 250) as u8,
        ],
        dst_ip: vec![192, 0, 2, (n % 200) as u8],
        src_port: 1024 + n % 60_000,
        dst_port: [22, 23, 80, 443, 3389][(n % 5) as usize],
        protocol: 6,
        kind: 1,
        event_id: id.to_owned(),
        packets: 1,
        bytes: 60,
        ..Default::default()
    }
}

fn batch(events: Vec<AttackEvent>) -> Vec<u8> {
    AttackEventBatch { events }.encode_to_vec()
}

/// The model over partition 0's messages, every one judged against `now`.
fn truth(w: &Workload, messages: &[(Vec<u8>, i64)], now: i64) -> ModelOutput {
    let inputs: Vec<ModelInput> = messages
        .iter()
        .enumerate()
        .map(|(o, (payload, _))| ModelInput::Message {
            offset: o as i64,
            payload: payload.clone(),
            trusted_now_ms: Some(now),
        })
        .collect();
    model::run(&w.ingest, &[inputs], &mut w.world.enricher(), true)
}

/// Runs rampart until `want` rollups and `dlq` dead letters are out; returns both.
fn run_until(w: &Workload, want: usize, dlq: usize) -> (Vec<Read>, Vec<DeadLetter>) {
    let _shared = machine_shared();
    let instance = rampart_testkit::unique_name("events");
    let mut child = w.rampart(&["--instance", &instance]);
    let bootstrap = broker().bootstrap();
    let rollups = read_until(
        bootstrap,
        &w.topics.rollups,
        Duration::from_secs(120),
        |all| all.len() >= want,
    );
    let dead = read_dead_letters(bootstrap, &w.topics.dlq, Duration::from_secs(30), |all| {
        all.len() >= dlq
    });
    std::thread::sleep(Duration::from_secs(2));
    let status = terminate(&mut child);
    assert!(status.success(), "rampart exited with {status}");
    (rollups, dead)
}

fn assert_rollups_equal(truth: &ModelOutput, reads: &[Read]) {
    let got = decode_rollups(reads);
    let d = diff(&truth.rollups, &got);
    assert!(
        d.is_empty(),
        "{} differences:\n{}",
        d.len(),
        d.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// Item 2: one event stamped 2100 in a message whose CreateTime is 2100, then
/// 3,000 normal events on the same partition. The future event is
/// dead-lettered `time_in_future` (judged by rampart's ingest clock, not the
/// CreateTime) and the 3,000 are counted exactly.
#[test]
fn a_future_clock_cannot_poison_a_partition() {
    let w = empty_workload();
    accept_any_create_time(&w.topics.input);
    let now = now_ms();
    let start = now - 120_000;
    let mut messages = vec![(batch(vec![event(YEAR_2100, 0, "")]), YEAR_2100)];
    for m in 0..30u32 {
        let events = (0..100u32)
            .map(|i| {
                let n = m * 100 + i;
                event(start + i64::from(n) * 20, n, "")
            })
            .collect();
        messages.push((batch(events), now));
    }
    send(&w.topics.input, &messages);
    let truth = truth(&w, &messages, now);
    assert_eq!(truth.totals.events, 3_000, "hand count");
    assert_eq!(truth.rejected.len(), 1);
    let (rollups, dlq) = run_until(&w, truth.rollups.len(), 1);
    assert_rollups_equal(&truth, &rollups);
    let counted: u64 = decode_rollups(&rollups)
        .iter()
        .filter(|r| r.dimension == Dimension::OriginCountry as i32)
        .map(|r| r.raw_events + r.late_events)
        .sum();
    assert_eq!(counted, 3_000);
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    let d = &dlq[0].rampart;
    assert_eq!(d.reason.as_deref(), Some("time_in_future"));
    assert_eq!(d.rejected.as_deref(), Some("0:time_in_future"));
    assert_eq!((d.events, d.source_offset), (Some(1), Some(0)));
    assert_eq!(d.source_topic.as_deref(), Some(w.topics.input.as_str()));
    assert_eq!(
        dlq[0].payload.as_deref(),
        Some(messages[0].0.as_slice()),
        "the rejected event's own bytes"
    );
}

/// Item 4: a 201-event message with one `dst_port = 70000`: the 200 valid
/// events are counted; one dead letter holds exactly the bad event.
#[test]
fn one_bad_event_is_dead_lettered_alone() {
    let w = empty_workload();
    let now = now_ms();
    let start = now - 60_000;
    let mut events: Vec<AttackEvent> = (0..201u32)
        .map(|n| event(start + i64::from(n) * 50, n, &format!("id-{n}")))
        .collect();
    events[100].dst_port = 70_000;
    let bad = events[100].clone();
    let messages = vec![(batch(events), now)];
    send(&w.topics.input, &messages);
    let truth = truth(&w, &messages, now);
    assert_eq!(truth.totals.events, 200, "hand count");
    assert_eq!(truth.rejected[0].index, Some(100));
    assert_eq!(truth.rejected[0].reason, Rejection::PortOutOfRange);
    let (rollups, dlq) = run_until(&w, truth.rollups.len(), 1);
    assert_rollups_equal(&truth, &rollups);
    assert_eq!(
        sum_raw(&decode_rollups(&rollups), Dimension::TargetSector).0,
        200
    );
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    let d = &dlq[0];
    assert_eq!(d.rampart.reason.as_deref(), Some("port_out_of_range"));
    assert_eq!(d.rampart.rejected.as_deref(), Some("100:port_out_of_range"));
    assert_eq!(d.rampart.events, Some(1));
    assert_eq!(d.key.as_deref(), Some(&b"k"[..]));
    assert_eq!(d.headers[0], ("trace".to_owned(), Some(b"t-1".to_vec())));
    let back = AttackEventBatch::decode(d.payload.as_deref().unwrap_or_default()).unwrap();
    assert_eq!(back.events, vec![bad]);
}

/// Item 5: event ids first seen before a restart and seen again after it,
/// with later times in a later dedup bucket (within the horizon), are
/// duplicates: the restart's replay reaches back to their first bucket.
#[test]
fn resighted_event_ids_stay_duplicates_across_a_restart() {
    let w = empty_workload();
    let now = now_ms();
    let minute = (now - 900_000) / 60_000 * 60_000;
    // Phase 1: 50 ids at minute+1..6 s (dedup bucket [minute, minute+60 s)),
    // fillers without id up to minute+70 s so that bucket ends before the
    // emitted windows when rampart stops.
    let mut phase1 = Vec::new();
    let ids: Vec<AttackEvent> = (0..50u32)
        .map(|n| event(minute + 1_000 + i64::from(n) * 100, n, &format!("x-{n}")))
        .collect();
    phase1.push((batch(ids.clone()), now));
    for m in 0..7u32 {
        let evs = (0..100u32)
            .map(|i| {
                let n = 1_000 + m * 100 + i;
                event(minute + 6_000 + i64::from(m * 100 + i) * 92, n, "")
            })
            .collect();
        phase1.push((batch(evs), now));
    }
    send(&w.topics.input, &phase1);
    let truth1 = truth(&w, &phase1, now);
    let (_, _) = run_until(&w, truth1.rollups.len(), 0);

    // Phase 2: the same ids 150 s later (bucket [minute+120 s, minute+180 s)),
    // then fillers.
    let mut phase2 = Vec::new();
    let again: Vec<AttackEvent> = ids
        .iter()
        .map(|e| AttackEvent {
            time_ms: e.time_ms + 150_000,
            sensor_id: "second-sensor".into(),
            ..e.clone()
        })
        .collect();
    phase2.push((batch(again), now));
    let evs = (0..100u32)
        .map(|i| event(minute + 160_000 + i64::from(i) * 50, 5_000 + i, ""))
        .collect();
    phase2.push((batch(evs), now));
    send(&w.topics.input, &phase2);
    let all: Vec<(Vec<u8>, i64)> = phase1.iter().chain(&phase2).cloned().collect();
    let truth = truth(&w, &all, now);
    assert_eq!(truth.totals.duplicates, 50, "hand count: every re-sighting");
    let (rollups, _) = run_until(&w, truth.rollups.len(), 0);
    assert_rollups_equal(&truth, &rollups);
    assert_eq!(
        sum_raw(&decode_rollups(&rollups), Dimension::OriginCountry).2,
        50
    );
}

/// Issue 11, item 8: a null value (a Kafka tombstone) and an empty value are
/// both refused as `empty_batch`, and each is dead-lettered as it came: the
/// tombstone's dead letter has a null value, the empty one's an empty value.
#[test]
fn a_tombstone_is_dead_lettered_as_a_tombstone() {
    let w = empty_workload();
    let now = now_ms();
    let events = (0..100u32)
        .map(|n| event(now - 60_000 + i64::from(n) * 100, n, ""))
        .collect();
    let record = |payload: Option<Vec<u8>>| PlainRecord {
        partition: 0,
        timestamp_ms: now,
        key: Some(b"k".to_vec()),
        payload,
        headers: Vec::new(),
    };
    let records = [
        record(None),
        record(Some(Vec::new())),
        record(Some(batch(events))),
    ];
    let at = produce_plain(
        broker().bootstrap(),
        &w.topics.input,
        Compression::None,
        &records,
    );
    let (_, dlq) = run_until(&w, 1, 2);
    assert_eq!(dlq.len(), 2, "{dlq:?}");
    let by_offset = |offset: i64| {
        dlq.iter()
            .find(|d| d.rampart.source_offset == Some(offset))
            .unwrap_or_else(|| panic!("no dead letter of offset {offset}: {dlq:?}"))
    };
    let tombstone = by_offset(at[0].1);
    assert_eq!(tombstone.rampart.reason.as_deref(), Some("empty_batch"));
    assert_eq!(tombstone.payload, None, "a tombstone stays a tombstone");
    assert_eq!(tombstone.key.as_deref(), Some(&b"k"[..]));
    let empty = by_offset(at[1].1);
    assert_eq!(empty.rampart.reason.as_deref(), Some("empty_batch"));
    assert_eq!(empty.payload.as_deref(), Some(&[][..]));
}
