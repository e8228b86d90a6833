//! What the engine tests share: a table enricher, random streams and
//! configurations, feeding a stream to ingest and merge. Each test binary
//! uses a part of it.

#![allow(dead_code, clippy::unwrap_used, clippy::needless_range_loop)]

use proptest::prelude::*;
use prost::Message;
use rampart_core::dedup::DedupConfig;
use rampart_core::enrich::{Enricher, Origin, SectorId};
use rampart_core::fingerprint::FingerprintSpec;
use rampart_core::ingest::{IngestConfig, PartitionIngest};
use rampart_core::merge::Merger;
use rampart_core::model::{ModelInput, Rejected};
use rampart_core::proto::v1::internal::PartialBatch;
use rampart_core::proto::v1::{AttackEvent, AttackEventBatch, Rollup};
use rampart_core::window::WindowConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Country/ASN from the source's first byte, sector from the destination's.
pub struct TableEnricher;

const COUNTRIES: [[u8; 2]; 5] = [*b"CN", *b"US", *b"RU", *b"zz", *b"ZZ"];
const SECTORS: [&str; 5] = [
    "unknown",
    "cisa:energy",
    "cisa:water",
    "cisa:health",
    "cisa:energy",
];

impl Enricher for TableEnricher {
    fn origin(&mut self, src: &[u8]) -> Origin {
        let b = src.first().copied().unwrap_or(0);
        // An odd first byte: the ASN also varies with the last byte, so its
        // /24s do not share one origin.
        let split = if b % 2 == 1 {
            u32::from(src.last().copied().unwrap_or(0) % 3) * 10
        } else {
            0
        };
        Origin {
            country: COUNTRIES[usize::from(b) % COUNTRIES.len()],
            asn: 64_500 + u32::from(b % 7) + split,
        }
    }
    fn sector(&mut self, dst: &[u8]) -> SectorId {
        let b = dst.first().copied().unwrap_or(0);
        // A first byte divisible by 3: the sector also varies with the last byte.
        let split = if b % 3 == 0 {
            dst.last().copied().unwrap_or(0)
        } else {
            0
        };
        SectorId(u16::from(b.wrapping_add(split)) % SECTORS.len() as u16)
    }
    // The claim is made exactly where the whole /24 shares the answer, so
    // ingest's per-/24 and per-address caches are both exercised (a cache
    // that shared an answer it should not would differ from the model).
    fn origin_of_prefix24(&mut self, src: &[u8]) -> (Origin, bool) {
        let shared = src.len() == 4 && src.first().is_some_and(|b| b % 2 == 0);
        (self.origin(src), shared)
    }
    fn sector_of_prefix24(&mut self, dst: &[u8]) -> (SectorId, bool) {
        let shared = dst.len() == 4 && dst.first().is_some_and(|b| b % 3 != 0);
        (self.sector(dst), shared)
    }
    fn sector_name(&self, id: SectorId) -> &str {
        SECTORS.get(usize::from(id.0)).copied().unwrap_or("unknown")
    }
}

pub const T0: i64 = 1_700_000_000_123;

/// Knobs of a random stream.
#[derive(Clone, Debug)]
pub struct Gen {
    pub seed: u64,
    pub events: usize,
    pub dup_pct: u32,
    pub late_pct: u32,
    pub jitter_ms: i64,
    pub bad_pct: u32,
}

pub fn gen_strategy() -> impl Strategy<Value = Gen> {
    (
        any::<u64>(),
        1usize..400,
        0u32..15,
        0u32..8,
        0i64..3000,
        0u32..4,
    )
        .prop_map(
            |(seed, events, dup_pct, late_pct, jitter_ms, bad_pct)| Gen {
                seed,
                events,
                dup_pct,
                late_pct,
                jitter_ms,
                bad_pct,
            },
        )
}

pub fn cfg_strategy() -> impl Strategy<Value = IngestConfig> {
    (
        prop_oneof![Just(1000i64), Just(2000), Just(5000)],
        0i64..3000,
        0i64..4000,
        prop_oneof![Just(1000i64), Just(2000)],
        2000i64..20_000,
        any::<bool>(),
    )
        .prop_map(
            |(size_ms, ooo, lateness, bucket_ms, horizon_ms, id_spec)| IngestConfig {
                window: WindowConfig {
                    size_ms,
                    out_of_orderness_ms: ooo,
                    allowed_lateness_ms: lateness,
                },
                dedup: DedupConfig {
                    horizon_ms,
                    bucket_ms,
                    budget_bytes: 64 << 20,
                },
                fingerprint: FingerprintSpec::Auto {
                    time_bucket_ms: if id_spec { 500 } else { 1000 },
                },
                ..IngestConfig::default()
            },
        )
}

/// A random event stream: small key space, exact redeliveries, out-of-order
/// and (sometimes) very late events.
pub fn events(g: &Gen, bucket_ms: i64) -> Vec<AttackEvent> {
    let mut rng = StdRng::seed_from_u64(g.seed);
    let mut out: Vec<AttackEvent> = Vec::with_capacity(g.events);
    for i in 0..g.events {
        if !out.is_empty() && rng.random_range(0..100) < g.dup_pct {
            let back = rng.random_range(1..=out.len().min(50));
            let mut e = out[out.len() - back].clone();
            if !e.event_id.is_empty() && rng.random_range(0..2) == 0 {
                // A re-sighting of the same event id at a later time (a second
                // sensor, a clock-skewed redelivery): often another window and
                // another dedup bucket, within the horizon or past it.
                e.time_ms += rng.random_range(0..4 * bucket_ms);
            }
            out.push(e);
            continue;
        }
        let mut t = T0 + i as i64 * 40 - rng.random_range(0..=g.jitter_ms);
        if rng.random_range(0..100) < g.late_pct {
            t -= rng.random_range(5_000..30_000);
        }
        let src = if rng.random_range(0..10) == 0 {
            let mut v = vec![0x20, 0x01, 0x0d, 0xb8, rng.random_range(0..2), 0];
            v.extend((0..10).map(|_| rng.random_range(0..3u8)));
            v
        } else {
            vec![
                rng.random_range(1..8),
                rng.random_range(0..2),
                rng.random_range(0..3),
                rng.random_range(0..20),
            ]
        };
        let dst = if rng.random_range(0..20) == 0 {
            vec![rng.random_range(0..8); 16]
        } else {
            vec![rng.random_range(0..8), 0, 0, rng.random_range(0..4)]
        };
        let event_id = if rng.random_range(0..4) == 0 {
            format!("ev-{i}")
        } else {
            String::new()
        };
        out.push(AttackEvent {
            time_ms: t,
            src_ip: src,
            dst_ip: dst,
            src_port: rng.random_range(1024..1030),
            dst_port: [22, 23, 80, 443, 445, 3389, 8080][rng.random_range(0..7)],
            protocol: 6,
            kind: rng.random_range(0..=5),
            rule_id: rng.random_range(0..4),
            event_id,
            packets: rng.random_range(0..3),
            bytes: rng.random_range(0..1500),
            sensor_id: String::new(),
        });
    }
    out
}

/// A far-future time (year 2100), as a sensor with a broken clock sends.
pub const YEAR_2100: i64 = 4_102_444_800_000;

/// Cuts a partition's events into messages (random sizes), with some bad
/// messages, bad events inside good messages (invalid fields, clock-skewed
/// far-future times) and idle advances in between. Each message carries the
/// trusted now of a stepped ingest clock.
pub fn messages(evs: &[AttackEvent], seed: u64, bad_pct: u32, idle: bool) -> Vec<ModelInput> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut out = Vec::new();
    let mut off = 0i64;
    let mut i = 0;
    let mut clock = T0 + 1_000;
    while i < evs.len() {
        let n = rng.random_range(1..=12).min(evs.len() - i);
        let mut batch = AttackEventBatch {
            events: evs[i..i + n].to_vec(),
        };
        i += n;
        if rng.random_range(0..100) < bad_pct * 2 {
            let at = rng.random_range(0..=batch.events.len());
            let mut e = batch.events[at.min(batch.events.len() - 1)].clone();
            match rng.random_range(0..3) {
                0 => e.dst_port = 70_000,
                1 => e.time_ms = YEAR_2100,
                _ => e.time_ms = clock + 301_000, // just past max_future
            }
            batch.events.insert(at, e);
        }
        if rng.random_range(0..6) == 0 {
            clock += rng.random_range(1_000..20_000);
        }
        if rng.random_range(0..100) < bad_pct {
            let payload = match rng.random_range(0..3) {
                0 => vec![0x0a, 0xff, 0x01],
                1 => Vec::new(),
                _ => {
                    let mut b = batch.clone();
                    b.events[0].src_ip = vec![1, 2, 3];
                    b.encode_to_vec()
                }
            };
            out.push(ModelInput::Message {
                offset: off,
                payload,
                trusted_now_ms: Some(clock),
            });
            off += 1;
        }
        out.push(ModelInput::Message {
            offset: off,
            payload: batch.encode_to_vec(),
            trusted_now_ms: Some(clock),
        });
        off += 1;
        if idle && rng.random_range(0..15) == 0 {
            let last = batch.events.iter().map(|e| e.time_ms).max().unwrap_or(T0);
            out.push(ModelInput::IdleAdvance {
                head_ms: last + rng.random_range(0..8000),
            });
        }
    }
    out
}

/// Offset at which each idle advance applies: the next message's offset.
pub fn idle_offsets(items: &[ModelInput]) -> Vec<i64> {
    let mut next = items
        .iter()
        .filter_map(|x| match x {
            ModelInput::Message { offset, .. } => Some(*offset + 1),
            ModelInput::IdleAdvance { .. } => None,
        })
        .max()
        .unwrap_or(0);
    let mut v = vec![0; items.len()];
    for (i, it) in items.iter().enumerate().rev() {
        match it {
            ModelInput::Message { offset, .. } => next = *offset,
            ModelInput::IdleAdvance { .. } => v[i] = next,
        }
    }
    v
}

/// Feeds one item to a partition's ingest; returns the partial batch it
/// emitted. A message's trusted now reaches the ingest as its recorded
/// ingest clock (an entry whenever it changes), as the stage records it.
pub fn step(
    ing: &mut PartitionIngest,
    item: &ModelInput,
    at: i64,
    enr: &mut TableEnricher,
    rejected: &mut Vec<(i64, Option<u32>, String)>,
) -> PartialBatch {
    match item {
        ModelInput::Message {
            offset,
            payload,
            trusted_now_ms,
        } => {
            if let Some(now) = *trusted_now_ms
                && ing.trusted_now(*offset) != Some(now)
            {
                ing.record_clock(*offset, now);
            }
            match ing.process_batch(payload, None, *offset, enr) {
                Err(r) => rejected.push((*offset, None, r.as_str().to_owned())),
                Ok(st) => {
                    assert_eq!(st.rejected as usize, ing.rejected_events().len());
                    for &(index, r) in ing.rejected_events() {
                        rejected.push((*offset, Some(index), r.as_str().to_owned()));
                    }
                }
            }
        }
        ModelInput::IdleAdvance { head_ms } => {
            assert!(ing.advance_idle(*head_ms, at), "idle advance record full");
        }
    }
    let mut partials = Vec::new();
    let closed = ing.take_closed(&*enr, &mut partials).into_iter().collect();
    PartialBatch {
        partials,
        closed,
        partials_partitions: 1,
    }
}

/// Runs every partition's ingest (round-robin interleaving), returning each
/// partition's partial batches in order, and the rejections.
pub fn ingest_all(
    cfg: &IngestConfig,
    parts: &[Vec<ModelInput>],
    flush: bool,
) -> (Vec<Vec<PartialBatch>>, Vec<Rejected>) {
    let n = parts.len() as u32;
    let mut enr = TableEnricher;
    let mut ings: Vec<PartitionIngest> = (0..n)
        .map(|p| PartitionIngest::new(cfg.clone(), p, n))
        .collect();
    let mut outs: Vec<Vec<PartialBatch>> = vec![Vec::new(); parts.len()];
    let mut rejected = Vec::new();
    let max_len = parts.iter().map(Vec::len).max().unwrap_or(0);
    let idle: Vec<Vec<i64>> = parts.iter().map(|p| idle_offsets(p)).collect();
    for i in 0..max_len {
        for (p, items) in parts.iter().enumerate() {
            if let Some(item) = items.get(i) {
                let mut rej = Vec::new();
                outs[p].push(step(&mut ings[p], item, idle[p][i], &mut enr, &mut rej));
                rejected.extend(
                    rej.into_iter()
                        .map(|(offset, index, reason)| (p, offset, index, reason)),
                );
            }
        }
    }
    if flush {
        for (p, ing) in ings.iter_mut().enumerate() {
            let mut partials = Vec::new();
            let m = ing.flush(&enr, &mut partials);
            outs[p].push(PartialBatch {
                partials,
                closed: vec![m],
                partials_partitions: 1,
            });
        }
    }
    let rejected = rejected
        .into_iter()
        .map(|(p, offset, index, reason)| {
            let reason = rampart_core::validate::Rejection::ALL
                .into_iter()
                .find(|r| r.as_str() == reason)
                .unwrap();
            Rejected {
                partition: p as u32,
                offset,
                index,
                reason,
            }
        })
        .collect();
    (outs, rejected)
}

/// Merges partial batches (interleaved round-robin) through one merger.
pub fn merge_all(size_ms: i64, outs: &[Vec<PartialBatch>]) -> Vec<Rollup> {
    let mut m = Merger::new(size_ms);
    let mut rollups = Vec::new();
    let mut off = 0;
    let max_len = outs.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..max_len {
        for o in outs {
            if let Some(b) = o.get(i) {
                m.apply(b, off).unwrap();
                off += 1;
                m.take_final(&mut rollups);
            }
        }
    }
    assert_eq!(m.stats().partials_after_final, 0);
    rollups
}

pub fn encode(r: &[Rollup]) -> Vec<Vec<u8>> {
    r.iter().map(Message::encode_to_vec).collect()
}

pub fn assert_same(core: &[Rollup], model: &[Rollup]) {
    if encode(core) != encode(model) {
        assert_eq!(core.len(), model.len(), "rollup count");
        for (a, b) in core.iter().zip(model) {
            assert_eq!(a, b);
        }
        panic!("bytes differ");
    }
}

pub fn split_partitions(evs: &[AttackEvent], n: usize) -> Vec<Vec<AttackEvent>> {
    let mut parts = vec![Vec::new(); n];
    for e in evs {
        let h = e.src_ip.iter().fold(7usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(*b))
        });
        parts[h % n].push(e.clone());
    }
    parts
}
