//! The semantic faults of issue 10 (clock-skewed sensors, re-sighted event
//! ids) against a hand count of the generated records.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use prost::Message;
use rampart_loadgen::*;
use rampart_proto::v1::AttackEventBatch;

fn world() -> Arc<World> {
    Arc::new(World::new(WorldConfig::default()).unwrap())
}

/// Clock-skewed sensors and re-sighted ids: the ground truth dead-letters
/// exactly the skewed events (per event, judged by the record's clock, not its
/// far-future CreateTime) and counts every re-sighting within the horizon as
/// a duplicate.
#[test]
fn skewed_clocks_and_resightings_in_the_ground_truth() {
    let world = world();
    let cfg = GenConfig {
        rate: 200,
        future_share: 0.01,
        resight_share: 0.2,
        resight_delay_ms: 90_000,
        bursts: None,
        ..GenConfig::default()
    };
    let mut stream = RecordStream::new(
        Generator::new(world.clone(), cfg).unwrap(),
        RecordConfig {
            partitions: 3,
            events_per_batch: 50,
            malformed_share: 0.0,
            ..RecordConfig::default()
        },
        Limit::Events(20_000),
    )
    .unwrap();
    let records: Vec<Record> = stream.by_ref().collect();
    let stats = stream.generator().stats().clone();
    assert!(
        stats.future_time > 50 && stats.resightings > 200,
        "{stats:?}"
    );
    // A record holding a skewed event carries a far-future CreateTime.
    let skewed = records
        .iter()
        .filter(|r| r.timestamp_ms > r.clock_ms + 86_000_000)
        .count();
    assert!(skewed > 0);
    // Hand count: events more than 5 min ahead of their record's clock (the
    // skewed originals and their exact redeliveries).
    let ahead: u64 = records
        .iter()
        .map(|r| {
            AttackEventBatch::decode(r.payload.as_slice())
                .unwrap()
                .events
                .iter()
                .filter(|e| e.time_ms > r.clock_ms + 300_000)
                .count() as u64
        })
        .sum();
    assert!(ahead >= stats.future_time);
    let ingest = rampart_core::ingest::IngestConfig::default();
    let truth = ground_truth(records, 3, &ingest, &world, true);
    assert_eq!(truth.totals.rejected_events, ahead);
    assert!(
        truth
            .rejected
            .iter()
            .all(|r| r.index.is_some()
                && r.reason == rampart_core::validate::Rejection::TimeInFuture)
    );
    // 90 s later is within the default 10 min horizon: every re-sighting is a duplicate.
    assert!(
        truth.totals.duplicates >= stats.resightings,
        "{:?} {stats:?}",
        truth.totals
    );
}
