//! Property tests of the ingest + merge engine against the reference model.

#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use prost::Message;
use rampart_core::dedup::DedupConfig;
use rampart_core::enrich::{Enricher, Origin, SectorId};
use rampart_core::fingerprint::FingerprintSpec;
use rampart_core::ingest::{IngestConfig, PartitionIngest, ResumePoint};
use rampart_core::merge::{MergeResumePoint, Merger};
use rampart_core::model::{self, ModelInput, Rejected};
use rampart_core::proto::v1::internal::{Partial, PartialBatch};
use rampart_core::proto::v1::{AttackEvent, AttackEventBatch, Rollup};
use rampart_core::window::WindowConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Country/ASN from the source's first byte, sector from the destination's.
struct TableEnricher;

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
        Origin {
            country: COUNTRIES[usize::from(b) % COUNTRIES.len()],
            asn: 64_500 + u32::from(b % 7),
        }
    }
    fn sector(&mut self, dst: &[u8]) -> SectorId {
        SectorId(u16::from(dst.first().copied().unwrap_or(0)) % SECTORS.len() as u16)
    }
    fn sector_name(&self, id: SectorId) -> &str {
        SECTORS.get(usize::from(id.0)).copied().unwrap_or("unknown")
    }
}

const T0: i64 = 1_700_000_000_123;

/// Knobs of a random stream.
#[derive(Clone, Debug)]
struct Gen {
    seed: u64,
    events: usize,
    dup_pct: u32,
    late_pct: u32,
    jitter_ms: i64,
    bad_pct: u32,
}

fn gen_strategy() -> impl Strategy<Value = Gen> {
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

fn cfg_strategy() -> impl Strategy<Value = IngestConfig> {
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
fn events(g: &Gen, bucket_ms: i64) -> Vec<AttackEvent> {
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
const YEAR_2100: i64 = 4_102_444_800_000;

/// Cuts a partition's events into messages (random sizes), with some bad
/// messages, bad events inside good messages (invalid fields, clock-skewed
/// far-future times) and idle advances in between. Each message carries the
/// trusted now of a stepped ingest clock.
fn messages(evs: &[AttackEvent], seed: u64, bad_pct: u32, idle: bool) -> Vec<ModelInput> {
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
fn idle_offsets(items: &[ModelInput]) -> Vec<i64> {
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
fn step(
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
        ModelInput::IdleAdvance { head_ms } => ing.advance_idle(*head_ms, at),
    }
    let mut partials = Vec::new();
    let closed = ing.take_closed(&*enr, &mut partials).into_iter().collect();
    PartialBatch { partials, closed }
}

/// Runs every partition's ingest (round-robin interleaving), returning each
/// partition's partial batches in order, and the rejections.
fn ingest_all(
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
fn merge_all(size_ms: i64, outs: &[Vec<PartialBatch>]) -> Vec<Rollup> {
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

fn encode(r: &[Rollup]) -> Vec<Vec<u8>> {
    r.iter().map(Message::encode_to_vec).collect()
}

fn assert_same(core: &[Rollup], model: &[Rollup]) {
    if encode(core) != encode(model) {
        assert_eq!(core.len(), model.len(), "rollup count");
        for (a, b) in core.iter().zip(model) {
            assert_eq!(a, b);
        }
        panic!("bytes differ");
    }
}

fn split_partitions(evs: &[AttackEvent], n: usize) -> Vec<Vec<AttackEvent>> {
    let mut parts = vec![Vec::new(); n];
    for e in evs {
        let h = e.src_ip.iter().fold(7usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(*b))
        });
        parts[h % n].push(e.clone());
    }
    parts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// ingest + merge == the reference model, byte for byte, with and without flush.
    #[test]
    fn core_equals_model(g in gen_strategy(), cfg in cfg_strategy(), n in 1usize..4, flush in any::<bool>()) {
        let evs = events(&g, cfg.dedup.bucket_ms);
        let parts: Vec<Vec<ModelInput>> = split_partitions(&evs, n)
            .iter()
            .enumerate()
            .map(|(i, p)| messages(p, g.seed.wrapping_add(i as u64), g.bad_pct, true))
            .collect();
        let (outs, rejected) = ingest_all(&cfg, &parts, flush);
        let core = merge_all(cfg.window.size_ms, &outs);
        let m = model::run(&cfg, &parts, &mut TableEnricher, flush);
        assert_same(&core, &m.rollups);
        prop_assert_eq!(rejected.len(), m.rejected.len());
        let mut rejected = rejected;
        rejected.sort();
        prop_assert_eq!(&rejected, &m.rejected);
        if flush {
            let events: u64 = m.rollups.iter().filter(|r| r.dimension == 1).map(|r| r.raw_events + r.late_events).sum();
            prop_assert_eq!(events, m.totals.events);
        }
        // Per event: every event of every decodable message is counted or
        // rejected on its own (hand count from the generated input).
        let mut produced = 0u64;
        for items in &parts {
            for it in items {
                if let ModelInput::Message { payload, .. } = it
                    && let Ok(b) = AttackEventBatch::decode(payload.as_slice())
                    && !b.events.is_empty()
                {
                    produced += b.events.len() as u64;
                }
            }
        }
        let whole = m.rejected.iter().filter(|r| r.index.is_none() && r.reason != rampart_core::validate::Rejection::MalformedProtobuf && r.reason != rampart_core::validate::Rejection::EmptyBatch).count();
        prop_assert_eq!(whole, 0, "no batch is too large here");
        prop_assert_eq!(m.totals.events + m.totals.rejected_events, produced);
        prop_assert!(m.rejected.iter().all(|r| r.index.is_none() || !matches!(r.reason, rampart_core::validate::Rejection::MalformedProtobuf)));
        // Same input again: same bytes.
        let (outs2, _) = ingest_all(&cfg, &parts, flush);
        prop_assert_eq!(encode(&merge_all(cfg.window.size_ms, &outs2)), encode(&core));
    }

    /// The merged result does not depend on how partial batches interleave,
    /// how they are split into messages, or how keys are spread over mergers.
    #[test]
    fn merge_is_order_and_split_independent(g in gen_strategy(), cfg in cfg_strategy(), n in 1usize..4, mergers in 1usize..4, seed in any::<u64>()) {
        let evs = events(&g, cfg.dedup.bucket_ms);
        let parts: Vec<Vec<ModelInput>> = split_partitions(&evs, n)
            .iter()
            .enumerate()
            .map(|(i, p)| messages(p, g.seed.wrapping_add(i as u64), 0, true))
            .collect();
        let (outs, _) = ingest_all(&cfg, &parts, true);
        let reference = merge_all(cfg.window.size_ms, &outs);
        prop_assert!(!reference.is_empty() || evs.is_empty());

        // Random interleaving (per-partition order kept), batches split at random,
        // partials of each batch shuffled, keys spread over `mergers` instances
        // (markers broadcast).
        let mut rng = StdRng::seed_from_u64(seed);
        let mut cursors = vec![0usize; outs.len()];
        let mut ms: Vec<Merger> = (0..mergers).map(|_| Merger::new(cfg.window.size_ms)).collect();
        let mut offs = vec![0i64; mergers];
        let mut got: Vec<Rollup> = Vec::new();
        loop {
            let live: Vec<usize> = (0..outs.len()).filter(|&p| cursors[p] < outs[p].len()).collect();
            if live.is_empty() { break; }
            let p = live[rng.random_range(0..live.len())];
            let b = &outs[p][cursors[p]];
            cursors[p] += 1;
            let mut partials: Vec<Partial> = b.partials.clone();
            for i in (1..partials.len()).rev() { partials.swap(i, rng.random_range(0..=i)); }
            let mut per: Vec<Vec<Partial>> = vec![Vec::new(); mergers];
            for x in partials {
                let k = (x.key.len() + x.dimension as usize) % mergers;
                per[k].push(x);
            }
            for (k, ps) in per.into_iter().enumerate() {
                // split into up to 3 messages; the marker goes with the last one
                let cut = if ps.is_empty() { 0 } else { rng.random_range(0..=ps.len()) };
                let (a, c) = ps.split_at(cut);
                for (chunk, last) in [(a.to_vec(), false), (c.to_vec(), true)] {
                    let closed = if last { b.closed.clone() } else { Vec::new() };
                    if chunk.is_empty() && closed.is_empty() { continue; }
                    ms[k].apply(&PartialBatch { partials: chunk, closed }, offs[k]).unwrap();
                    offs[k] += 1;
                    ms[k].take_final(&mut got);
                }
            }
        }
        got.sort_by(|a, b| (a.window_start_ms, a.dimension, &a.key).cmp(&(b.window_start_ms, b.dimension, &b.key)));
        assert_same(&got, &reference);
    }

    /// With no late events and sources keyed to partitions, the rollups are
    /// identical for 1, 2, 3 and 7 input partitions.
    #[test]
    fn partition_count_independent(g in gen_strategy(), cfg in cfg_strategy()) {
        let mut cfg = cfg;
        cfg.window.allowed_lateness_ms = 1_000_000_000;
        cfg.dedup.horizon_ms = 1_000_000_000;
        let evs = events(&g, cfg.dedup.bucket_ms);
        let mut first: Option<Vec<Vec<u8>>> = None;
        for n in [1usize, 2, 3, 7] {
            let parts: Vec<Vec<ModelInput>> = split_partitions(&evs, n)
                .iter()
                .enumerate()
                .map(|(i, p)| messages(p, g.seed.wrapping_add(i as u64 * 7), 0, false))
                .collect();
            let (outs, _) = ingest_all(&cfg, &parts, true);
            let r = merge_all(cfg.window.size_ms, &outs);
            prop_assert!(r.iter().all(|x| x.late_events == 0));
            let e = encode(&r);
            match &first {
                None => first = Some(e),
                Some(f) => prop_assert!(f == &e, "differs for {} partitions", n),
            }
        }
    }

    /// Cut at every point, resume from the resume point (through its
    /// metadata string), replay: the partials emitted before the cut plus those
    /// after equal the uninterrupted run's, each exactly once, and so do the
    /// dead letters. Replayed messages (below the committed offset) are judged
    /// by the recorded ingest clock alone: nothing new is recorded for them.
    #[test]
    fn ingest_resume_is_exact(g in gen_strategy(), cfg in cfg_strategy()) {
        let evs = events(&g, cfg.dedup.bucket_ms);
        let items = messages(&evs, g.seed, g.bad_pct, true);
        let at = idle_offsets(&items);
        let mut enr = TableEnricher;
        let flush_out = |ing: &mut PartitionIngest, out: &mut Vec<Partial>| {
            let mut p = Vec::new();
            ing.flush(&TableEnricher, &mut p);
            out.extend(p);
        };

        let mut full = PartitionIngest::new(cfg.clone(), 0, 1);
        let mut expect: Vec<Partial> = Vec::new();
        let mut expect_rejected = Vec::new();
        for (i, it) in items.iter().enumerate() {
            expect.extend(step(&mut full, it, at[i], &mut enr, &mut expect_rejected).partials);
        }
        flush_out(&mut full, &mut expect);
        let key = |p: &Partial| (p.window_start_ms, p.dimension, p.key.clone());
        let want: BTreeMap<_, _> = expect.iter().map(|p| (key(p), p.clone())).collect();
        prop_assert_eq!(want.len(), expect.len());

        for cut in 0..=items.len() {
            let mut first = PartitionIngest::new(cfg.clone(), 0, 1);
            let mut got: Vec<Partial> = Vec::new();
            let mut got_rejected = Vec::new();
            for (i, it) in items[..cut].iter().enumerate() {
                got.extend(step(&mut first, it, at[i], &mut enr, &mut got_rejected).partials);
            }
            let meta = first.resume_point().to_metadata();
            prop_assert!(meta.len() <= 1024, "metadata too long: {}", meta.len());
            let rp = ResumePoint::from_metadata(&meta).unwrap();
            prop_assert_eq!(&rp, &first.resume_point());
            drop(first);

            // The committed position: the next message offset after the cut.
            let committed = items[..cut].iter().filter_map(|x| match x { ModelInput::Message { offset, .. } => Some(offset + 1), _ => None }).max().unwrap_or(0);
            prop_assert!(rp.replay_from_offset <= committed);
            let mut resumed = PartitionIngest::resume(cfg.clone(), 0, 1, &rp);
            for (i, it) in items.iter().enumerate() {
                match it {
                    ModelInput::Message { offset, payload, trusted_now_ms } if *offset >= rp.replay_from_offset => {
                        if *offset < committed {
                            // A replayed message: the recorded clock judges it.
                            prop_assert_eq!(resumed.trusted_now(*offset), *trusted_now_ms, "clock at {} after a cut at {}", offset, cut);
                            let _ = resumed.process_batch(payload, None, *offset, &mut enr);
                            let mut partials = Vec::new();
                            resumed.take_closed(&enr, &mut partials);
                            got.extend(partials);
                            continue;
                        }
                    }
                    // idle advances before the cut are recorded in the resume point
                    ModelInput::IdleAdvance { .. } if i >= cut => {}
                    _ => continue,
                }
                got.extend(step(&mut resumed, it, at[i], &mut enr, &mut got_rejected).partials);
            }
            flush_out(&mut resumed, &mut got);

            let mut seen = BTreeMap::new();
            for p in &got {
                prop_assert!(seen.insert(key(p), p.clone()).is_none(), "emitted twice after a cut at {}: {:?}", cut, key(p));
            }
            prop_assert_eq!(&seen, &want, "cut at {}", cut);
            prop_assert_eq!(&got_rejected, &expect_rejected, "dead letters, cut at {}", cut);
        }
    }

    /// A merger cut at a random point and resumed from its resume point
    /// publishes exactly the uninterrupted run's rollups, none twice.
    #[test]
    fn merge_resume_is_exact(g in gen_strategy(), cfg in cfg_strategy(), n in 1usize..4, cut_frac in 0.0f64..1.0) {
        let evs = events(&g, cfg.dedup.bucket_ms);
        let parts: Vec<Vec<ModelInput>> = split_partitions(&evs, n)
            .iter()
            .enumerate()
            .map(|(i, p)| messages(p, g.seed.wrapping_add(i as u64), 0, true))
            .collect();
        let (outs, _) = ingest_all(&cfg, &parts, true);
        let mut seq: Vec<&PartialBatch> = Vec::new();
        let max_len = outs.iter().map(Vec::len).max().unwrap_or(0);
        for i in 0..max_len { for o in &outs { if let Some(b) = o.get(i) { seq.push(b); } } }
        let expect = merge_all(cfg.window.size_ms, &outs);

        let cut = ((seq.len() as f64) * cut_frac) as usize;
        let mut m = Merger::new(cfg.window.size_ms);
        let mut got = Vec::new();
        for (off, b) in seq[..cut].iter().enumerate() {
            m.apply(b, off as i64).unwrap();
            m.take_final(&mut got);
        }
        let rp = MergeResumePoint::from_metadata(&m.resume_point().to_metadata()).unwrap();
        prop_assert_eq!(&rp, &m.resume_point());
        let mut m2 = Merger::resume(cfg.window.size_ms, &rp);
        for (off, b) in seq.iter().enumerate().skip(rp.replay_from_offset as usize) {
            m2.apply(b, off as i64).unwrap();
            m2.take_final(&mut got);
        }
        prop_assert_eq!(m2.stats().partials_after_final, m2.stats().replayed_partials_skipped);
        assert_same(&got, &expect);
    }
}

#[test]
fn rejected_events_leave_state_untouched() {
    let cfg = IngestConfig::default();
    let mut ing = PartitionIngest::new(cfg, 0, 1);
    let mut enr = TableEnricher;
    ing.record_clock(0, T0);
    let good = AttackEventBatch {
        events: vec![AttackEvent {
            time_ms: T0,
            src_ip: vec![1, 2, 3, 4],
            dst_ip: vec![5, 6, 7, 8],
            ..Default::default()
        }],
    };
    // A whole message that does not decode: nothing changes.
    assert_eq!(
        ing.process_batch(&[0x0a, 0xff, 0x01], None, 0, &mut enr),
        Err(rampart_core::validate::Rejection::MalformedProtobuf)
    );
    assert_eq!((ing.head(), ing.open_windows()), (None, 0));
    // Bad events (a short address, a far-future time stamped by a broken
    // sensor clock) around a good one: only the good one counts, and the
    // future one does not move the head.
    let mut mixed = good.clone();
    mixed.events.insert(
        0,
        AttackEvent {
            time_ms: YEAR_2100,
            ..good.events[0].clone()
        },
    );
    mixed.events.push(AttackEvent {
        src_ip: vec![1, 2, 3],
        ..good.events[0].clone()
    });
    let st = ing
        .process_batch(&mixed.encode_to_vec(), None, 1, &mut enr)
        .unwrap();
    assert_eq!((st.events, st.unique, st.rejected), (1, 1, 2));
    assert_eq!(
        ing.rejected_events(),
        &[
            (0, rampart_core::validate::Rejection::TimeInFuture),
            (2, rampart_core::validate::Rejection::BadSrcIpLength)
        ]
    );
    assert_eq!(ing.head(), Some(T0));
    let st = ing
        .process_batch(&good.encode_to_vec(), None, 2, &mut enr)
        .unwrap();
    assert_eq!((st.events, st.unique, st.duplicates), (1, 0, 1));
    // The rejected future event was not remembered by dedup either.
    let future = AttackEventBatch {
        events: vec![mixed.events[0].clone()],
    };
    ing.record_clock(3, YEAR_2100);
    let st = ing
        .process_batch(&future.encode_to_vec(), None, 3, &mut enr)
        .unwrap();
    assert_eq!(
        (st.events, st.unique, st.duplicates, st.rejected),
        (1, 1, 0, 0)
    );
    assert!(ing.rejected_events().is_empty());
    // Accepted under a clock that reads 2100, it moved the head: the good
    // event is now late.
    ing.record_clock(4, T0);
    let st = ing
        .process_batch(&good.encode_to_vec(), None, 4, &mut enr)
        .unwrap();
    assert_eq!((st.events, st.duplicates, st.late), (1, 0, 1));
    // LogAppendTime, when the message carries it, wins over the clock.
    let st = ing
        .process_batch(&future.encode_to_vec(), Some(T0), 5, &mut enr)
        .unwrap();
    assert_eq!((st.events, st.rejected), (0, 1));
}

#[test]
fn metadata_is_versioned() {
    let rp = ResumePoint {
        replay_from_offset: 7,
        head_before: Some(5),
        emitted_before: None,
        idle_advances: vec![(8, 9), (10, 11)],
        clock: vec![(3, 1_700_000_000_000), (9, 1_700_000_010_000)],
    };
    let s = rp.to_metadata();
    assert_eq!(s, "v1;r=7;h=5;e=-;i=8:9,10:11;c=3:1700000000000,+6:+10000");
    assert_eq!(ResumePoint::from_metadata(&s).unwrap(), rp);
    assert!(ResumePoint::from_metadata("v2;r=1").is_err());
    assert!(ResumePoint::from_metadata("v1;r=x;h=-;e=-;i=").is_err());
}

/// A re-reported event id in the same dedup bucket but the next window: the
/// resume point must reach back to the bucket's first insertion, before the
/// open window's first offset.
#[test]
fn resume_reaches_back_to_live_dedup_bucket() {
    let cfg = IngestConfig {
        window: WindowConfig {
            size_ms: 1000,
            out_of_orderness_ms: 0,
            allowed_lateness_ms: 0,
        },
        dedup: DedupConfig {
            horizon_ms: 10_000,
            bucket_ms: 2000,
            budget_bytes: 1 << 20,
        },
        ..IngestConfig::default()
    };
    let t = 1_700_000_000_000i64;
    let ev = |time_ms: i64, id: &str| {
        AttackEventBatch {
            events: vec![AttackEvent {
                time_ms,
                src_ip: vec![1, 2, 3, 4],
                dst_ip: vec![5, 6, 7, 8],
                event_id: id.to_owned(),
                ..Default::default()
            }],
        }
        .encode_to_vec()
    };
    let msgs = [ev(t + 500, "x"), ev(t + 1000, ""), ev(t + 1500, "x")];
    let mut enr = TableEnricher;
    let run = |ing: &mut PartitionIngest,
               from: usize,
               to: usize,
               enr: &mut TableEnricher,
               out: &mut Vec<Partial>| {
        for (o, m) in msgs.iter().enumerate().take(to).skip(from) {
            ing.process_batch(m, None, o as i64, enr).unwrap();
            ing.take_closed(&*enr, out);
        }
    };
    let mut full = PartitionIngest::new(cfg.clone(), 0, 1);
    let mut expect = Vec::new();
    run(&mut full, 0, 3, &mut enr, &mut expect);
    full.flush(&enr, &mut expect);

    let mut first = PartitionIngest::new(cfg.clone(), 0, 1);
    let mut got = Vec::new();
    run(&mut first, 0, 2, &mut enr, &mut got);
    assert_eq!(got.len(), 5, "window 1 emitted before the cut");
    let rp = first.resume_point();
    assert_eq!(rp.replay_from_offset, 0);
    assert_eq!(rp.emitted_before, Some(t + 1000));
    let mut resumed = PartitionIngest::resume(cfg, 0, 1, &rp);
    run(
        &mut resumed,
        rp.replay_from_offset as usize,
        3,
        &mut enr,
        &mut got,
    );
    resumed.flush(&enr, &mut got);
    assert_eq!(got, expect);
    let w2 = got
        .iter()
        .find(|p| p.window_start_ms == t + 1000 && p.dimension == 1)
        .unwrap();
    assert_eq!(w2.aggregate.as_ref().unwrap().duplicates, 1);
}

/// One event id re-sighted with later times across dedup buckets and
/// windows (each sighting judged against the first one's bucket until it
/// expires), cut and resumed at every point: the duplicates match a hand
/// count every time.
#[test]
fn resighted_event_id_survives_every_cut() {
    let cfg = IngestConfig {
        window: WindowConfig {
            size_ms: 1000,
            out_of_orderness_ms: 0,
            allowed_lateness_ms: 0,
        },
        dedup: DedupConfig {
            horizon_ms: 4000,
            bucket_ms: 1000,
            budget_bytes: 1 << 20,
        },
        ..IngestConfig::default()
    };
    let t = 1_700_000_000_000i64;
    let ev = |time_ms: i64, id: &str, src: u8| AttackEvent {
        time_ms,
        src_ip: vec![1, 2, 3, src],
        dst_ip: vec![5, 6, 7, 8],
        event_id: id.to_owned(),
        ..Default::default()
    };
    // x: new @100 (bucket 0), dup @2100, dup @4500 (bucket 0 live until the
    // watermark reaches 5000), new @6200 (bucket 0 expired: stored in 6),
    // dup @8000. Fillers without id move the head along.
    let mut events = Vec::new();
    for (i, &(time, id)) in [
        (100, "x"),
        (900, ""),
        (1500, ""),
        (2100, "x"),
        (3000, ""),
        (4500, "x"),
        (5100, ""),
        (6200, "x"),
        (7000, ""),
        (8000, "x"),
        (9500, ""),
    ]
    .iter()
    .enumerate()
    {
        events.push(ev(t + time, id, i as u8));
    }
    let items: Vec<ModelInput> = events
        .iter()
        .enumerate()
        .map(|(o, e)| ModelInput::Message {
            offset: o as i64,
            payload: AttackEventBatch {
                events: vec![e.clone()],
            }
            .encode_to_vec(),
            trusted_now_ms: Some(t + 10_000),
        })
        .collect();
    let dups = |ps: &[Partial]| -> u64 {
        ps.iter()
            .filter(|p| p.dimension == 1)
            .map(|p| p.aggregate.as_ref().unwrap().duplicates)
            .sum()
    };
    let model = model::run(&cfg, std::slice::from_ref(&items), &mut TableEnricher, true);
    assert_eq!(model.totals.duplicates, 3, "hand count");
    let mut enr = TableEnricher;
    for cut in 0..=items.len() {
        let mut first = PartitionIngest::new(cfg.clone(), 0, 1);
        let mut got = Vec::new();
        for it in &items[..cut] {
            got.extend(step(&mut first, it, 0, &mut enr, &mut Vec::new()).partials);
        }
        let rp = ResumePoint::from_metadata(&first.resume_point().to_metadata()).unwrap();
        let mut resumed = PartitionIngest::resume(cfg.clone(), 0, 1, &rp);
        for it in &items[rp.replay_from_offset as usize..] {
            got.extend(step(&mut resumed, it, 0, &mut enr, &mut Vec::new()).partials);
        }
        resumed.flush(&enr, &mut got);
        assert_eq!(dups(&got), 3, "cut at {cut}, resumed from {rp:?}");
    }
}
