//! Hand-counted cases of the ingest rules: per-event rejection against the
//! trusted now, the resume metadata codec, and the replay point reaching back
//! to dedup buckets a re-sighted event id is judged against.

#![allow(clippy::unwrap_used)]

mod support;

use prost::Message;
use rampart_core::dedup::DedupConfig;
use rampart_core::ingest::{IngestConfig, PartitionIngest, ResumePoint};
use rampart_core::model::{self, ModelInput};
use rampart_core::proto::v1::internal::Partial;
use rampart_core::proto::v1::{AttackEvent, AttackEventBatch};
use rampart_core::window::WindowConfig;
use support::{T0, TableEnricher, YEAR_2100, step};

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
