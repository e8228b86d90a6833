//! The core path on one core: decode → validate → enrich → dedup → aggregate,
//! plus window close (`take_closed`) and merging the partials, per batch of
//! 1000 events with realistic cardinalities (≈200 countries, 30k ASNs, 50k
//! Zipf-skewed source /24s, 16 sectors, ~3 % exact duplicates, mild
//! out-of-order), event time advancing so windows close.
//!
//! Run: `cargo bench -p rampart-core --bench core -- --warm-up-time 1 --measurement-time 5`

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use rampart_core::enrich::{Enricher, Origin, SectorId};
use rampart_core::ingest::{IngestConfig, PartitionIngest};
use rampart_core::merge::Merger;
use rampart_core::proto::v1::internal::PartialBatch;
use rampart_core::proto::v1::{AttackEvent, AttackEventBatch, Rollup};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BATCH: usize = 1000;
const BATCHES: usize = 1200;
/// Event time covered by one batch: 1200 batches ≈ 120 s ≈ 2 windows closing.
const BATCH_SPAN_MS: i64 = 100;
const PREFIXES: usize = 50_000;
const T0: i64 = 1_700_000_000_000;

/// In-memory enricher: origin is a function of the /24, sector of the
/// destination's third octet. Stands in for the MMDB enricher.
struct FastEnricher {
    names: Vec<String>,
}

fn mix(x: u32) -> u32 {
    let x = x.wrapping_mul(0x9E37_79B1);
    x ^ (x >> 15)
}

impl Enricher for FastEnricher {
    fn origin(&mut self, src: &[u8]) -> Origin {
        let p = match src {
            [a, b, c, _] => u32::from_be_bytes([0, *a, *b, *c]),
            _ => 0,
        };
        let asn = mix(p) % 30_000 + 1;
        let c = (mix(asn) % 200) as u8;
        Origin {
            country: [b'A' + c / 26 % 26, b'A' + c % 26],
            asn,
        }
    }
    fn sector(&mut self, dst: &[u8]) -> SectorId {
        SectorId(u16::from(dst.get(2).copied().unwrap_or(0) % 17))
    }
    fn sector_name(&self, id: SectorId) -> &str {
        self.names
            .get(usize::from(id.0))
            .map_or("unknown", String::as_str)
    }
}

fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let mut acc = 0.0;
    let mut v: Vec<f64> = (1..=n)
        .map(|k| {
            acc += 1.0 / (k as f64).powf(s);
            acc
        })
        .collect();
    let total = acc;
    v.iter_mut().for_each(|x| *x /= total);
    v
}

fn pick(cdf: &[f64], rng: &mut StdRng) -> usize {
    let u: f64 = rng.random();
    cdf.partition_point(|&x| x < u).min(cdf.len() - 1)
}

fn payloads() -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(42);
    let prefixes: Vec<[u8; 3]> = (0..PREFIXES)
        .map(|_| [rng.random_range(1..224), rng.random(), rng.random()])
        .collect();
    let prefix_cdf = zipf_cdf(PREFIXES, 1.05);
    let ports: Vec<u32> = (0..1000).map(|_| rng.random_range(1..65536)).collect();
    let port_cdf = zipf_cdf(ports.len(), 1.2);
    let mut recent: Vec<AttackEvent> = Vec::new();
    let mut out = Vec::with_capacity(BATCHES);
    for b in 0..BATCHES {
        let base = T0 + b as i64 * BATCH_SPAN_MS;
        let mut events = Vec::with_capacity(BATCH);
        for i in 0..BATCH {
            if !recent.is_empty() && rng.random_range(0..100) < 3 {
                events.push(recent[rng.random_range(0..recent.len())].clone());
                continue;
            }
            let p = prefixes[pick(&prefix_cdf, &mut rng)];
            let e = AttackEvent {
                time_ms: base + (i as i64 * BATCH_SPAN_MS) / BATCH as i64
                    - rng.random_range(0..2000),
                src_ip: vec![p[0], p[1], p[2], rng.random()],
                dst_ip: vec![203, 0, rng.random(), rng.random()],
                src_port: rng.random_range(1024..65536),
                dst_port: ports[pick(&port_cdf, &mut rng)],
                protocol: 6,
                kind: rng.random_range(1..=5),
                rule_id: rng.random_range(0..50),
                event_id: String::new(),
                packets: rng.random_range(1..4),
                bytes: rng.random_range(40..1500),
                sensor_id: String::new(),
            };
            if recent.len() < 1000 {
                recent.push(e.clone());
            } else {
                let k = rng.random_range(0..recent.len());
                recent[k] = e.clone();
            }
            events.push(e);
        }
        out.push(AttackEventBatch { events }.encode_to_vec());
    }
    out
}

fn bench(c: &mut Criterion) {
    let payloads = payloads();
    let mut enr = FastEnricher {
        names: std::iter::once("unknown".to_owned())
            .chain((1..=16).map(|i| format!("cisa:sector{i:02}")))
            .collect(),
    };
    let cfg = IngestConfig::default();
    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("core_path", |b| {
        let mut ing = PartitionIngest::new(cfg.clone(), 0, 1);
        let mut merger = Merger::new(cfg.window.size_ms);
        let mut next = 0usize;
        let mut partials = Vec::new();
        let mut rollups: Vec<Rollup> = Vec::new();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if next == payloads.len() {
                    // Event time would go back: start a fresh partition (untimed).
                    ing = PartitionIngest::new(cfg.clone(), 0, 1);
                    merger = Merger::new(cfg.window.size_ms);
                    next = 0;
                }
                let start = Instant::now();
                let st = ing
                    .process_batch(&payloads[next], None, next as i64, &mut enr)
                    .unwrap();
                partials.clear();
                let closed = ing.take_closed(&enr, &mut partials);
                if closed.is_some() || !partials.is_empty() {
                    let batch = PartialBatch {
                        partials: std::mem::take(&mut partials),
                        closed: closed.into_iter().collect(),
                    };
                    merger.apply(&batch, next as i64).unwrap();
                    rollups.clear();
                    merger.take_final(&mut rollups);
                    black_box(&rollups);
                }
                total += start.elapsed();
                black_box(st);
                next += 1;
            }
            total
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
