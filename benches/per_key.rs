//! The per-key path on one core, at high source cardinality: one window of
//! `KEYS` events, each from its own source /24 (a scanning botnet, issue 14),
//! so nearly every event makes a new origin cell and an origin prefix rollup.
//! Phases, each timed alone (thread CPU time) on the same window and reported per key (one
//! input event = one new /24):
//!
//! - `cells`: decode → validate → enrich → dedup → cell creation and update
//!   (`process_batch` over the window's events);
//! - `close`: the window's roll-up into partials (`flush`);
//! - `encode_partials`: the partials into one `PartialBatch` message;
//! - `merge`: decode the message, merge it, finalise the rollups;
//! - `encode_rollups`: every rollup into its message bytes.
//!
//! Each phase runs with every key published (`exact`) and with
//! `keys.publish_top = 1000` (`top1000`), which folds the rest of the
//! prefixes and ASNs into `other:<country>`.
//!
//! Run: `cargo bench --bench per_key -- --warm-up-time 1 --measurement-time 5`

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use prost::Message;
use rampart_core::budget::KeyBudget;
use rampart_core::enrich::{Enricher, Origin, SectorId};
use rampart_core::ingest::{IngestConfig, PartitionIngest};
use rampart_core::merge::Merger;
use rampart_core::proto::v1::internal::{Partial, PartialBatch};
use rampart_core::proto::v1::{AttackEvent, AttackEventBatch, Rollup};

/// The binary's allocator and its setting (src/main.rs), so the benchmark
/// measures what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keys (events, source /24s) of the window.
const KEYS: u32 = 50_000;
const BATCH: u32 = 1000;
const T0: i64 = 1_700_000_040_000;

/// Country from the /8, ASN from the /16 (as in issue 14's experiment).
struct SlashEnricher;

impl Enricher for SlashEnricher {
    fn origin(&mut self, src: &[u8]) -> Origin {
        match src {
            [a, b, ..] => Origin {
                country: [b'A' + a % 26, b'A' + (a / 26) % 26],
                asn: u32::from(*a) << 8 | u32::from(*b),
            },
            _ => Origin::UNKNOWN,
        }
    }
    fn sector(&mut self, dst: &[u8]) -> SectorId {
        SectorId(u16::from(dst.get(2).copied().unwrap_or(0) % 17))
    }
    fn sector_name(&self, id: SectorId) -> &str {
        const NAMES: [&str; 17] = [
            "unknown", "cisa:s01", "cisa:s02", "cisa:s03", "cisa:s04", "cisa:s05", "cisa:s06",
            "cisa:s07", "cisa:s08", "cisa:s09", "cisa:s10", "cisa:s11", "cisa:s12", "cisa:s13",
            "cisa:s14", "cisa:s15", "cisa:s16",
        ];
        NAMES.get(usize::from(id.0)).copied().unwrap_or("unknown")
    }
}

/// The window's messages: event `i` from /24 number `i` (spread over the
/// /8s by a multiplicative walk), one second of event time in all.
fn messages() -> Vec<Vec<u8>> {
    (0..KEYS / BATCH)
        .map(|m| {
            let events = (m * BATCH..(m + 1) * BATCH)
                .map(|i| {
                    let slash24 = (i.wrapping_mul(2_654_435_761) >> 8) % (223 << 16);
                    let [_, a, b, c] = (slash24 + (1 << 16)).to_be_bytes();
                    AttackEvent {
                        time_ms: T0 + i64::from(i) * 1000 / i64::from(KEYS),
                        src_ip: vec![a, b, c, 7],
                        dst_ip: vec![203, 0, (i % 251) as u8, 1],
                        src_port: 40_000,
                        dst_port: [22, 23, 80, 443, 445][(i % 5) as usize],
                        protocol: 6,
                        kind: 1,
                        rule_id: i % 50,
                        packets: 1,
                        bytes: 60,
                        ..AttackEvent::default()
                    }
                })
                .collect();
            AttackEventBatch { events }.encode_to_vec()
        })
        .collect()
}

fn ingest_window(cfg: &IngestConfig, msgs: &[Vec<u8>]) -> PartitionIngest {
    let mut ing = PartitionIngest::new(cfg.clone(), 0, 1);
    for (offset, m) in msgs.iter().enumerate() {
        ing.process_batch(m, None, offset as i64, &mut SlashEnricher)
            .unwrap();
    }
    ing
}

/// The window's partials; the ingest is handed back so its drop is not timed.
fn close(mut ing: PartitionIngest) -> (PartialBatch, PartitionIngest) {
    let mut partials: Vec<Partial> = Vec::new();
    let marker = ing.flush(&SlashEnricher, &mut partials);
    let batch = PartialBatch {
        partials,
        closed: vec![marker],
        partials_partitions: 1,
    };
    (batch, ing)
}

fn merge(cfg: &IngestConfig, bytes: &[u8]) -> Vec<Rollup> {
    let batch = PartialBatch::decode(bytes).unwrap();
    let mut merger = Merger::new(cfg.window.size_ms);
    merger.apply(&batch, 0).unwrap();
    let mut rollups = Vec::new();
    merger.take_final(&mut rollups);
    rollups
}

/// Times `routine` on fresh inputs from `setup` in the thread's CPU time (a
/// busy shared machine does not skew it); setup and dropping what the
/// routine returns are untimed.
fn timed<I, O>(
    iters: u64,
    mut setup: impl FnMut() -> I,
    mut routine: impl FnMut(I) -> O,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let input = setup();
        let t = cpu_time::ThreadTime::now();
        let out = black_box(routine(input));
        total += t.elapsed();
        drop(out);
    }
    total
}

fn bench(c: &mut Criterion) {
    let msgs = messages();
    for (name, keys) in [
        ("exact", KeyBudget::UNBOUNDED),
        (
            "top1000",
            KeyBudget {
                publish_top_keys: 1000,
                ..KeyBudget::UNBOUNDED
            },
        ),
    ] {
        let cfg = IngestConfig {
            keys,
            ..IngestConfig::default()
        };
        let (batch, _) = close(ingest_window(&cfg, &msgs));
        let encoded = batch.encode_to_vec();
        let rollups = merge(&cfg, &encoded);
        eprintln!(
            "per_key/{name}: {KEYS} events → {} partials ({} bytes) → {} rollups",
            batch.partials.len(),
            encoded.len(),
            rollups.len()
        );
        let mut g = c.benchmark_group(format!("per_key/{name}"));
        g.throughput(Throughput::Elements(u64::from(KEYS)));
        g.sample_size(10);
        g.bench_function("cells", |b| {
            b.iter_custom(|n| timed(n, || (), |()| ingest_window(&cfg, &msgs)))
        });
        g.bench_function("close", |b| {
            b.iter_custom(|n| timed(n, || ingest_window(&cfg, &msgs), close))
        });
        g.bench_function("encode_partials", |b| {
            b.iter_custom(|n| timed(n, || (), |()| black_box(&batch).encode_to_vec()))
        });
        g.bench_function("merge", |b| {
            b.iter_custom(|n| timed(n, || (), |()| merge(&cfg, black_box(&encoded))))
        });
        g.bench_function("encode_rollups", |b| {
            b.iter_custom(|n| {
                timed(
                    n,
                    || (),
                    |()| {
                        black_box(&rollups)
                            .iter()
                            .map(|r| r.encode_to_vec().len())
                            .sum::<usize>()
                    },
                )
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
fn main() {
    rampart_pipeline::allocator::keep_freed_pages();
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
