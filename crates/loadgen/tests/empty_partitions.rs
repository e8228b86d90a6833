//! The "partitions left empty" fault: records go only to the first
//! `partitions - empty_partitions` partitions, the ground truth still covers
//! the whole topic (its empty partitions close every window too).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use rampart_core::ingest::IngestConfig;
use rampart_loadgen::{
    GenConfig, Generator, Limit, RecordConfig, RecordStream, World, WorldConfig, ground_truth,
    partition_for_key,
};

#[test]
fn empty_partitions_receive_nothing_and_the_truth_is_unchanged_by_them() {
    let world = Arc::new(World::new(WorldConfig::default()).unwrap());
    let cfg = RecordConfig {
        partitions: 4,
        empty_partitions: 2,
        events_per_batch: 50,
        ..RecordConfig::default()
    };
    let g = Generator::new(world.clone(), GenConfig::default()).unwrap();
    let records: Vec<_> = RecordStream::new(g, cfg.clone(), Limit::Events(20_000))
        .unwrap()
        .collect();
    let mut per = [0usize; 4];
    for r in &records {
        per[usize::try_from(r.partition).unwrap()] += 1;
        // Routed by source over the two used partitions, so duplicates still meet.
        assert_eq!(r.partition, partition_for_key(&r.key, 2));
    }
    assert!(per[0] > 0 && per[1] > 0, "{per:?}");
    assert_eq!(per[2..], [0, 0]);

    // The same events over a 2-partition topic: the same rollups (the empty
    // partitions add nothing but must not hold anything back).
    let ingest = IngestConfig::default();
    let four = ground_truth(records.iter().cloned(), 4, &ingest, &world, true);
    let two = ground_truth(records, 2, &ingest, &world, true);
    assert!(!four.rollups.is_empty());
    assert_eq!(four.rollups, two.rollups);

    let bad = RecordConfig {
        empty_partitions: 4,
        ..cfg
    };
    assert!(bad.check().is_err());
}
