//! Mixed message sizes (`RecordConfig::min_events_per_batch`): the same
//! events as fixed-size batches, cut into messages of many sizes.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use prost::Message;
use rampart_core::ingest::IngestConfig;
use rampart_loadgen::{
    GenConfig, Generator, Limit, Record, RecordConfig, RecordStream, World, WorldConfig,
    ground_truth,
};
use rampart_proto::v1::AttackEventBatch;

const EVENTS: u64 = 60_000;

fn records(world: &Arc<World>, cfg: RecordConfig) -> Vec<Record> {
    let g = Generator::new(world.clone(), GenConfig::default()).unwrap();
    RecordStream::new(g, cfg, Limit::Events(EVENTS))
        .unwrap()
        .collect()
}

fn events_in(r: &Record) -> usize {
    AttackEventBatch::decode(&r.payload[..])
        .unwrap()
        .events
        .len()
}

#[test]
fn mixed_sizes_spread_over_the_range_and_carry_the_same_events() {
    let world = Arc::new(World::new(WorldConfig::default()).unwrap());
    // 2 partitions at 100 k events/s: a partition fills 1000 events in 20 ms
    // of event time, well before the 100 ms linger, so sizes are the draws.
    let fixed_cfg = RecordConfig {
        partitions: 2,
        events_per_batch: 1000,
        malformed_share: 0.0,
        ..RecordConfig::default()
    };
    let mixed_cfg = RecordConfig {
        min_events_per_batch: Some(1),
        ..fixed_cfg.clone()
    };
    let fixed = records(&world, fixed_cfg);
    let mixed = records(&world, mixed_cfg.clone());
    assert_eq!(mixed, records(&world, mixed_cfg), "deterministic per seed");

    let sizes: Vec<usize> = mixed.iter().map(events_in).collect();
    assert_eq!(sizes.iter().sum::<usize>() as u64, EVENTS);
    assert!(sizes.iter().all(|&n| (1..=1000).contains(&n)), "{sizes:?}");
    // Uniform over 1..=1000: about 120 messages of 500 on average; a fixed
    // size would give 60 (plus the last partial batch per partition).
    assert!(mixed.len() > 90, "{} messages", mixed.len());
    let small = sizes.iter().filter(|&&n| n <= 250).count();
    let large = sizes.iter().filter(|&&n| n > 750).count();
    assert!(small >= 10 && large >= 10, "small {small}, large {large}");
    let distinct: BTreeSet<usize> = sizes.iter().copied().collect();
    assert!(distinct.len() > 50, "{} distinct sizes", distinct.len());
    assert!(fixed.iter().filter(|r| events_in(r) == 1000).count() >= 58);

    // Same events, other cuts: the same rollups.
    let ingest = IngestConfig::default();
    let a = ground_truth(fixed, 2, &ingest, &world, true);
    let b = ground_truth(mixed, 2, &ingest, &world, true);
    assert!(!a.rollups.is_empty());
    assert_eq!(a.rollups, b.rollups);
}

#[test]
fn a_minimum_outside_one_to_the_batch_size_is_refused() {
    for min in [0, 1001] {
        let cfg = RecordConfig {
            events_per_batch: 1000,
            min_events_per_batch: Some(min),
            ..RecordConfig::default()
        };
        assert!(cfg.check().is_err(), "min {min}");
    }
}
