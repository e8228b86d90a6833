//! Property tests of the merge under at-least-once faults: an ingest that
//! crashed between producing and committing writes a suffix of its partial
//! batches again (the same bytes, since a replay is deterministic), at any
//! point of the other partitions' streams. The merged rollups must equal the
//! fault-free run's, byte for byte, none published twice — also when the merger
//! itself is cut and resumed from its checkpoint metadata.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use prost::Message;
use rampart_core::enrich::{Enricher, Origin, SectorId};
use rampart_core::ingest::{IngestConfig, PartitionIngest};
use rampart_core::merge::{MergeError, MergeResumePoint, Merger};
use rampart_core::proto::v1::internal::PartialBatch;
use rampart_core::proto::v1::{AttackEvent, AttackEventBatch, Rollup};
use rampart_core::window::WindowConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct FirstByte;

impl Enricher for FirstByte {
    fn origin(&mut self, src: &[u8]) -> Origin {
        let b = src.first().copied().unwrap_or(0);
        Origin {
            country: [[b'C', b'N'], [b'U', b'S'], [b'R', b'U']][usize::from(b % 3)],
            asn: 64_500 + u32::from(b % 5),
        }
    }
    fn sector(&mut self, dst: &[u8]) -> SectorId {
        SectorId(u16::from(dst.first().copied().unwrap_or(0) % 3))
    }
    fn sector_name(&self, id: SectorId) -> &str {
        ["unknown", "cisa:energy", "cisa:water"][usize::from(id.0 % 3)]
    }
}

const T0: i64 = 1_700_000_000_000;

fn config() -> IngestConfig {
    IngestConfig {
        window: WindowConfig {
            size_ms: 1_000,
            out_of_orderness_ms: 200,
            allowed_lateness_ms: 500,
        },
        ..IngestConfig::default()
    }
}

/// Every partition's partial batches, in the order its ingest wrote them,
/// ending with a flush (every window closed).
fn ingest(partitions: u32, events: usize, seed: u64) -> Vec<Vec<PartialBatch>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut enr = FirstByte;
    let mut outs = Vec::new();
    for p in 0..partitions {
        let mut ing = PartitionIngest::new(config(), p, partitions);
        let mut batches = Vec::new();
        let mut offset = 0;
        let mut i = 0;
        while i < events {
            let n = rng.random_range(1..=8usize);
            let evs: Vec<AttackEvent> = (i..i + n)
                .map(|k| AttackEvent {
                    time_ms: T0 + k as i64 * 37 - rng.random_range(0..300),
                    src_ip: vec![rng.random_range(1..7), 0, 0, rng.random_range(0..9)],
                    dst_ip: vec![rng.random_range(0..4), 0, 0, 1],
                    dst_port: [22, 23, 445][rng.random_range(0..3usize)],
                    protocol: 6,
                    packets: 1,
                    bytes: 60,
                    ..AttackEvent::default()
                })
                .collect();
            i += n;
            let payload = AttackEventBatch { events: evs }.encode_to_vec();
            ing.process_batch(&payload, None, offset, &mut enr).unwrap();
            offset += 1;
            let mut partials = Vec::new();
            let closed = ing.take_closed(&enr, &mut partials).into_iter().collect();
            batches.push(PartialBatch {
                partials,
                closed,
                partials_partitions: 1,
            });
        }
        let mut partials = Vec::new();
        let marker = ing.flush(&enr, &mut partials);
        batches.push(PartialBatch {
            partials,
            closed: vec![marker],
            partials_partitions: 1,
        });
        outs.push(batches);
    }
    outs
}

/// Interleaves the partitions' streams at random (each keeps its order).
fn interleave(streams: &[Vec<PartialBatch>], seed: u64) -> Vec<PartialBatch> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut next = vec![0usize; streams.len()];
    let mut out = Vec::new();
    loop {
        let live: Vec<usize> = (0..streams.len())
            .filter(|&s| next[s] < streams[s].len())
            .collect();
        if live.is_empty() {
            return out;
        }
        let s = live[rng.random_range(0..live.len())];
        out.push(streams[s][next[s]].clone());
        next[s] += 1;
    }
}

/// Merges `seq`, cutting the merger after `cut` batches and resuming it from
/// its metadata; returns every rollup published.
fn merge(seq: &[PartialBatch], cut: usize) -> (Vec<Rollup>, Merger) {
    let mut got = Vec::new();
    let mut m = Merger::new(1_000);
    let cut = cut.min(seq.len());
    for (off, b) in seq.iter().enumerate().take(cut) {
        m.apply(b, off as i64).unwrap();
        m.take_final(&mut got);
    }
    let rp = MergeResumePoint::from_metadata(&m.resume_point().to_metadata()).unwrap();
    let mut m = Merger::resume(1_000, &rp);
    for (off, b) in seq.iter().enumerate().skip(rp.replay_from_offset as usize) {
        m.apply(b, off as i64).unwrap();
        m.take_final(&mut got);
    }
    (got, m)
}

fn encode(r: &[Rollup]) -> Vec<Vec<u8>> {
    r.iter().map(Message::encode_to_vec).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Each partition's stream with a suffix written again (`crash` = where
    /// its last commit was, `resent` = how far it had got) merges to exactly
    /// the fault-free rollups, each key once.
    #[test]
    fn rewritten_partials_are_merged_once(
        partitions in 1u32..4,
        events in 1usize..300,
        seed in any::<u64>(),
        crashes in proptest::collection::vec((0.0f64..1.0, 0.0f64..1.0), 3),
        merger_cut in 0.0f64..1.0,
    ) {
        let clean = ingest(partitions, events, seed);
        let (expect, _) = merge(&interleave(&clean, seed ^ 1), usize::MAX);
        let faulty: Vec<Vec<PartialBatch>> = clean
            .iter()
            .zip(&crashes)
            .map(|(s, &(c, r))| {
                let committed = (s.len() as f64 * c) as usize;
                let written = committed + ((s.len() - committed) as f64 * r) as usize;
                let mut v = s[..written].to_vec();
                v.extend_from_slice(&s[committed..]);
                v
            })
            .collect();
        let seq = interleave(&faulty, seed ^ 2);
        let cut = (seq.len() as f64 * merger_cut) as usize;
        let (got, m) = merge(&seq, cut);
        let mut keys = BTreeSet::new();
        for r in &got {
            prop_assert!(keys.insert((r.window_start_ms, r.dimension, r.key.clone())), "published twice: {:?}", r.key);
        }
        prop_assert_eq!(encode(&got), encode(&expect));
        prop_assert_eq!(m.open_entries(), 0);
    }
}

/// The case: partition 0 closes window W, partition 1 has not; the
/// crash makes partition 0 write W's partials (and marker) again. They are
/// dropped, and counted.
#[test]
fn partials_of_a_window_their_partition_closed_are_dropped() {
    let clean = ingest(2, 120, 3);
    let (expect, _) = merge(&interleave(&clean, 9), usize::MAX);
    // Partition 0 entirely, then partition 0 again, then partition 1.
    let mut seq = clean[0].clone();
    seq.extend(clean[0].iter().cloned());
    seq.extend(clean[1].iter().cloned());
    let mut got = Vec::new();
    let mut m = Merger::new(1_000);
    for (off, b) in seq.iter().enumerate() {
        m.apply(b, off as i64).unwrap();
        m.take_final(&mut got);
    }
    assert_eq!(encode(&got), encode(&expect));
    let s = m.stats();
    let rewritten: u64 = clean[0].iter().map(|b| b.partials.len() as u64).sum();
    assert!(rewritten > 0);
    // Partition 0's flush closed every window, so each rewritten partial
    // is of a window its partition had closed.
    assert_eq!(s.partials_after_close, rewritten, "{s:?}");
    assert_eq!(s.duplicate_partials, 0, "{s:?}");
}

/// A partial naming an input partition the markers say does not exist is refused.
#[test]
fn partial_from_an_unknown_input_partition_is_refused() {
    let clean = ingest(2, 40, 5);
    let mut m = Merger::new(1_000);
    let with_marker = clean[0].iter().position(|b| !b.closed.is_empty()).unwrap();
    for (off, b) in clean[0].iter().enumerate().take(with_marker + 1) {
        m.apply(b, off as i64).unwrap();
    }
    let mut bad = clean[1]
        .iter()
        .find(|b| !b.partials.is_empty())
        .unwrap()
        .clone();
    bad.closed.clear();
    for p in &mut bad.partials {
        p.input_partition = 7;
    }
    assert_eq!(
        m.apply(&bad, 1_000),
        Err(MergeError::PartitionOutOfRange {
            partition: 7,
            partitions: 2
        })
    );
}
