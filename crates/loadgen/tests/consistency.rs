//! The run is self-consistent: the files the world writes answer like the
//! world, every valid record passes rampart's validation, every malformed one
//! is rejected for its own reason, and the ground truth counts what was generated.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, OnceLock};

use rampart_core::enrich::{Enricher, Origin};
use rampart_core::event::decode_batch;
use rampart_core::ingest::IngestConfig;
use rampart_core::proto::v1::Dimension;
use rampart_core::validate::{Limits, Rejection, validate_batch};
use rampart_enrich::Enrichment;
use rampart_loadgen::*;

fn world() -> Arc<World> {
    static W: OnceLock<Arc<World>> = OnceLock::new();
    W.get_or_init(|| {
        Arc::new(
            World::new(WorldConfig {
                sources: 200_000,
                ..WorldConfig::default()
            })
            .unwrap(),
        )
    })
    .clone()
}

fn records(n: u64, rec: RecordConfig) -> (Vec<(Record, Option<MalformedKind>)>, GenStats) {
    let g = Generator::new(
        world(),
        GenConfig {
            rate: 20_000,
            ..GenConfig::default()
        },
    )
    .unwrap();
    let mut s = RecordStream::new(g, rec, Limit::Events(n)).unwrap();
    let mut out = Vec::new();
    while let Some(r) = s.next_annotated() {
        out.push(r);
    }
    (out, s.generator().stats().clone())
}

#[test]
fn written_files_answer_like_the_world() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let (c, a, s) = (
        dir.path().join("country.mmdb"),
        dir.path().join("asn.mmdb"),
        dir.path().join("sectors.csv"),
    );
    w.write_mmdb(&c, &a).unwrap();
    w.write_sector_table(&s).unwrap();
    // Same world, same bytes.
    let c2 = dir.path().join("country2.mmdb");
    let a2 = dir.path().join("asn2.mmdb");
    World::new(w.config().clone())
        .unwrap()
        .write_mmdb(&c2, &a2)
        .unwrap();
    assert_eq!(std::fs::read(&c).unwrap(), std::fs::read(&c2).unwrap());
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&a2).unwrap());

    // rampart-enrich's reader (the maxminddb crate) answers like the world.
    let mut files = Enrichment::open(Some(&c), Some(&a), Some(&s)).unwrap();
    let mut truth = w.enricher();
    let g = Generator::new(world(), GenConfig::default()).unwrap();
    let mut v6 = 0;
    for x in g.take(50_000) {
        let (src, dst) = (x.event.src_ip.as_slice(), x.event.dst_ip.as_slice());
        v6 += usize::from(src.len() == 16);
        let o = files.origin(src);
        assert_ne!(o, Origin::UNKNOWN);
        assert_eq!(o, truth.origin(src), "{:?}", x.event.src_ip.to_ip());
        let (fs, ts) = (files.sector(dst), truth.sector(dst));
        assert_eq!(
            files.sector_name(fs),
            truth.sector_name(ts),
            "{:?}",
            x.event.dst_ip.to_ip()
        );
    }
    assert!(v6 > 0);
    // Outside the world: unknown in both.
    assert_eq!(files.origin(&[10, 1, 2, 3]), Origin::UNKNOWN);
    let unknown = files.sector(&[10, 1, 2, 3]);
    assert_eq!(files.sector_name(unknown), "unknown");
}

#[test]
fn valid_records_pass_validation_malformed_ones_fail_for_their_reason() {
    let limits = Limits::default();
    for per_batch in [1, 100] {
        let (recs, gs) = records(
            60_000,
            RecordConfig {
                events_per_batch: per_batch,
                malformed_share: 0.2,
                ..RecordConfig::default()
            },
        );
        let mut events = 0u64;
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for (r, m) in &recs {
            let res = decode_batch(&r.payload, limits.max_batch_events, &mut out)
                .map_err(|_| Rejection::MalformedProtobuf)
                .and_then(|()| validate_batch(&out, Some(r.timestamp_ms), &limits));
            match m {
                None => {
                    assert_eq!(res, Ok(()), "valid record rejected");
                    events += out.len() as u64;
                }
                Some(k) => {
                    assert_eq!(res, Err(k.rejection()), "{k:?}");
                    seen.insert(*k);
                }
            }
        }
        assert_eq!(events, gs.events);
        assert_eq!(seen.len(), MalformedKind::ALL.len());
    }
}

#[test]
fn ground_truth_counts_what_was_generated() {
    let rc = RecordConfig {
        events_per_batch: 200,
        malformed_share: 0.01,
        ..RecordConfig::default()
    };
    let (recs, gs) = records(40_000, rc.clone());
    let malformed = recs.iter().filter(|(_, m)| m.is_some()).count();
    let cfg = IngestConfig::default();
    let out = ground_truth(
        recs.into_iter().map(|(r, _)| r),
        rc.partitions,
        &cfg,
        &world(),
        true,
    );
    assert_eq!(out.rejected.len(), malformed);
    assert_eq!(out.totals.events, gs.events);
    // Every injected duplicate is found, every late event judged late (a copy
    // of a late event is late itself, hence the sums), nothing else.
    let injected = gs.exact_duplicates + gs.sensor_copies;
    assert_eq!(
        out.totals.duplicates + out.totals.late,
        injected + gs.late,
        "{:?} vs {gs:?}",
        out.totals
    );
    assert!(
        out.totals.late >= gs.late && gs.late > 0,
        "{:?} vs {gs:?}",
        out.totals
    );
    // Rollups by country add up to every non-late event.
    let by_country: u64 = out
        .rollups
        .iter()
        .filter(|r| r.dimension == Dimension::OriginCountry as i32)
        .map(|r| r.raw_events)
        .sum();
    assert_eq!(by_country, out.totals.events - out.totals.late);
    assert!(out.rollups.iter().any(|r| r.key == "CN"));
    assert!(
        !out.rollups
            .iter()
            .any(|r| r.dimension == Dimension::OriginCountry as i32 && r.key == "ZZ")
    );
}
