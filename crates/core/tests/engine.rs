//! Property tests of the ingest + merge engine against the reference model.

#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

mod support;

use std::collections::BTreeMap;

use proptest::prelude::*;
use prost::Message;
use rampart_core::ingest::{PartitionIngest, ResumePoint};
use rampart_core::merge::{MergeResumePoint, Merger};
use rampart_core::model::{self, ModelInput};
use rampart_core::proto::v1::internal::{Partial, PartialBatch};
use rampart_core::proto::v1::{AttackEventBatch, Rollup};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::*;

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
                    ms[k].apply(&PartialBatch { partials: chunk, closed, partials_partitions: 1 }, offs[k]).unwrap();
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

/// A found case: a message carries a copy of an event with an id, moved 325
/// buckets ahead; the copy is a duplicate in the model, and the dedup table's
/// tag range must not forget the original before judging it.
#[test]
fn a_resighting_far_ahead_is_judged_before_the_tag_range_moves() {
    let g = Gen {
        seed: 16_798_334_774_610_720_139,
        events: 225,
        dup_pct: 5,
        late_pct: 3,
        jitter_ms: 0,
        bad_pct: 1,
    };
    let mut cfg = rampart_core::ingest::IngestConfig::default();
    cfg.window.size_ms = 1000;
    cfg.window.out_of_orderness_ms = 0;
    cfg.window.allowed_lateness_ms = 0;
    cfg.dedup.horizon_ms = 2000;
    cfg.dedup.bucket_ms = 1000;
    cfg.dedup.budget_bytes = 64 << 20;
    cfg.fingerprint = rampart_core::fingerprint::FingerprintSpec::Auto {
        time_bucket_ms: 1000,
    };
    let evs = events(&g, cfg.dedup.bucket_ms);
    let parts: Vec<Vec<ModelInput>> = split_partitions(&evs, 2)
        .iter()
        .enumerate()
        .map(|(i, p)| messages(p, g.seed.wrapping_add(i as u64), g.bad_pct, true))
        .collect();
    let (outs, _) = ingest_all(&cfg, &parts, true);
    let m = model::run(&cfg, &parts, &mut TableEnricher, true);
    assert_same(&merge_all(cfg.window.size_ms, &outs), &m.rollups);
}
