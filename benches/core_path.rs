//! The core path on one core: decode → validate → enrich → dedup → aggregate,
//! plus window close (`take_closed`) and merging the partials into rollups,
//! per batch of 1000 events with realistic key cardinalities and a realistic
//! event-time rate.
//!
//! # Why these numbers
//! - Event time advances at 50 k events/s (one batch = 20 ms of event time):
//!   a national darknet averages ~22 k events/s (DESIGN.md), peaks 2–10× that.
//!   With 60 s windows a window holds ~3 M events, so every source /24 gets
//!   many events per window, as in production. (A bench that advances event
//!   time 100× faster makes cells nearly empty and measures window closes,
//!   not the per-event path.)
//! - ≈200 countries, 30 k ASNs, 50 k Zipf(1.05)-skewed source /24s (origin is
//!   a function of the /24), 16 sectors + unknown (function of the
//!   destination /24), 1000 Zipf(1.2) destination ports, 5 kinds, 50 rules,
//!   ~3 % exact duplicates of recent events, up to 2 s out of order.
//! - The stream never rewinds: batches are generated on the fly outside the
//!   timed section, so the partition runs on like a real one; windows close
//!   inside the timed loop at their natural frequency (one close + merge every
//!   ~3000 batches), the dedup table reaches its steady state (byte budget,
//!   horizon), and every event processed is counted in the figure.
//!
//! Run: `cargo bench --bench core_path -- core_path --warm-up-time 1 --measurement-time 5`

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use prost::Message;
use rampart_core::enrich::{Enricher, Origin, Prefix24Origins, SectorId};
use rampart_core::ingest::{IngestConfig, PartitionIngest};
use rampart_core::merge::Merger;
use rampart_core::proto::v1::internal::PartialBatch;
use rampart_core::proto::v1::{AttackEvent, AttackEventBatch, Rollup};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The binary's allocator and its setting (src/main.rs), so the benchmark
/// measures what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 1000;
/// Event time covered by one batch: 1000 events per 20 ms = 50 k events/s.
const BATCH_SPAN_MS: i64 = 20;
const PREFIXES: usize = 50_000;
const T0: i64 = 1_700_000_000_000;
/// Event time processed untimed before measuring (three windows).
const PREWARM_S: i64 = 180;

/// In-memory enricher: origin is a function of the /24, sector of the
/// destination's third octet. Stands in for the MMDB enricher, with its table
/// of every /24's origin as `rampart-enrich` builds from MMDB files.
struct FastEnricher {
    names: Vec<String>,
    table: Arc<Prefix24Origins>,
}

const ASNS: u32 = 30_000;

fn origin_of_asn(asn: u32) -> Origin {
    let c = (mix(asn) % 200) as u8;
    Origin {
        country: [b'A' + c / 26 % 26, b'A' + c % 26],
        asn,
    }
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
        origin_of_asn(mix(p) % ASNS + 1)
    }
    fn sector(&mut self, dst: &[u8]) -> SectorId {
        SectorId(u16::from(dst.get(2).copied().unwrap_or(0) % 17))
    }
    // Both answers are functions of the /24, as an MMDB network or asset
    // CIDR of /24 or shorter is: `rampart-enrich` says so too.
    fn origin_of_prefix24(&mut self, src: &[u8]) -> (Origin, bool) {
        (self.origin(src), src.len() == 4)
    }
    fn sector_of_prefix24(&mut self, dst: &[u8]) -> (SectorId, bool) {
        (self.sector(dst), dst.len() == 4)
    }
    fn prefix24_origins(&self) -> Option<&Arc<Prefix24Origins>> {
        Some(&self.table)
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

/// An endless, deterministic stream of encoded batches.
struct Stream {
    rng: StdRng,
    prefixes: Vec<[u8; 3]>,
    prefix_cdf: Vec<f64>,
    ports: Vec<u32>,
    port_cdf: Vec<f64>,
    recent: Vec<AttackEvent>,
    next: i64,
}

impl Stream {
    fn new() -> Self {
        let mut rng = StdRng::seed_from_u64(42);
        let prefixes = (0..PREFIXES)
            .map(|_| [rng.random_range(1..224), rng.random(), rng.random()])
            .collect();
        let ports = (0..1000).map(|_| rng.random_range(1..65536)).collect();
        Stream {
            rng,
            prefixes,
            prefix_cdf: zipf_cdf(PREFIXES, 1.05),
            ports,
            port_cdf: zipf_cdf(1000, 1.2),
            recent: Vec::with_capacity(1000),
            next: 0,
        }
    }

    fn batch(&mut self) -> Vec<u8> {
        let rng = &mut self.rng;
        let base = T0 + self.next * BATCH_SPAN_MS;
        self.next += 1;
        let mut events = Vec::with_capacity(BATCH);
        for i in 0..BATCH {
            if !self.recent.is_empty() && rng.random_range(0..100) < 3 {
                events.push(self.recent[rng.random_range(0..self.recent.len())].clone());
                continue;
            }
            let p = self.prefixes[pick(&self.prefix_cdf, rng)];
            let e = AttackEvent {
                time_ms: base + (i as i64 * BATCH_SPAN_MS) / BATCH as i64
                    - rng.random_range(0..2000),
                src_ip: vec![p[0], p[1], p[2], rng.random()],
                dst_ip: vec![203, 0, rng.random(), rng.random()],
                src_port: rng.random_range(1024..65536),
                dst_port: self.ports[pick(&self.port_cdf, rng)],
                protocol: 6,
                kind: rng.random_range(1..=5),
                rule_id: rng.random_range(0..50),
                event_id: String::new(),
                packets: rng.random_range(1..4),
                bytes: rng.random_range(40..1500),
                sensor_id: String::new(),
            };
            if self.recent.len() < 1000 {
                self.recent.push(e.clone());
            } else {
                let k = rng.random_range(0..self.recent.len());
                self.recent[k] = e.clone();
            }
            events.push(e);
        }
        AttackEventBatch { events }.encode_to_vec()
    }
}

fn enricher() -> FastEnricher {
    // Origin index `asn - 1`, so a /24's slot (index + 1) is its ASN.
    let origins = (1..=ASNS).map(origin_of_asn).collect();
    let slots = (0..Prefix24Origins::PREFIXES as u32)
        .map(|p| mix(p) % ASNS + 1)
        .collect();
    FastEnricher {
        names: std::iter::once("unknown".to_owned())
            .chain((1..=16).map(|i| format!("cisa:sector{i:02}")))
            .collect(),
        table: Arc::new(Prefix24Origins::new(slots, origins).expect("a slot per /24")),
    }
}

fn bench(c: &mut Criterion) {
    let mut enr = enricher();
    let cfg = IngestConfig::default();
    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(BATCH as u64));
    // One partition for the whole run (criterion calls the routine once per
    // sample): the stream goes on across samples.
    let mut stream = Stream::new();
    let mut ing = PartitionIngest::new(cfg.clone(), 0, 1);
    let mut merger = Merger::new(cfg.window.size_ms);
    let mut offset = 0i64;
    let mut partials = Vec::new();
    let mut rollups: Vec<Rollup> = Vec::new();
    let mut finals = 0u64;
    let mut rollups_total = 0usize;
    // Untimed prewarm: a long-running partition, not a fresh one (dedup table
    // grown towards its budget, windows open and closing).
    let prewarm = PREWARM_S * 1000 / BATCH_SPAN_MS;
    while offset < prewarm {
        let payload = stream.batch();
        ing.process_batch(&payload, None, offset, &mut enr).unwrap();
        partials.clear();
        let closed = ing.take_closed(&enr, &mut partials);
        let batch = PartialBatch {
            partials: std::mem::take(&mut partials),
            closed: closed.into_iter().collect(),
            partials_partitions: 1,
        };
        merger.apply(&batch, offset).unwrap();
        rollups.clear();
        merger.take_final(&mut rollups);
        offset += 1;
    }
    let mut timed = Duration::ZERO;
    let mut timed_batches = 0u64;
    g.bench_function("core_path", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Generated outside the timed section.
                let payload = stream.batch();
                let start = Instant::now();
                let st = ing.process_batch(&payload, None, offset, &mut enr).unwrap();
                partials.clear();
                let closed = ing.take_closed(&enr, &mut partials);
                if closed.is_some() || !partials.is_empty() {
                    let batch = PartialBatch {
                        partials: std::mem::take(&mut partials),
                        closed: closed.into_iter().collect(),
                        partials_partitions: 1,
                    };
                    merger.apply(&batch, offset).unwrap();
                    rollups.clear();
                    let n = merger.take_final(&mut rollups);
                    rollups_total += n;
                    finals += u64::from(n > 0);
                    black_box(&rollups);
                }
                total += start.elapsed();
                black_box(st);
                offset += 1;
            }
            timed += total;
            timed_batches += iters;
            total
        });
    });
    g.finish();
    eprintln!(
        "core_path: {timed_batches} timed batches ({} s of event time), {finals} windows \
         final with {rollups_total} rollups; mean over all timed batches: {:.3} M events/s; \
         dedup {:?}",
        timed_batches as i64 * BATCH_SPAN_MS / 1000,
        (timed_batches as f64 * BATCH as f64) / timed.as_secs_f64() / 1e6,
        ing.dedup_stats()
    );
}

/// `RAMPART_CORE_PROFILE=<seconds of event time>[:<warm-up seconds>]`: no
/// criterion; runs the same path from a fresh partition for that long and
/// prints where the time went (for `perf record`, and to see the cost of
/// window closes apart). The figures leave out the warm-up's batches: with a
/// warm-up past the dedup horizon (10 min) they are the steady state, not the
/// table's growth.
fn profile(seconds: i64, warm_seconds: i64) {
    let mut enr = enricher();
    let cfg = IngestConfig::default();
    let mut stream = Stream::new();
    let mut ing = PartitionIngest::new(cfg.clone(), 0, 1);
    let mut merger = Merger::new(cfg.window.size_ms);
    let mut partials = Vec::new();
    let mut rollups: Vec<Rollup> = Vec::new();
    let (mut t_proc, mut t_close, mut t_apply, mut t_final) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let (mut n_partials, mut n_rollups) = (0usize, 0usize);
    let batches = seconds * 1000 / BATCH_SPAN_MS;
    let warm = (warm_seconds * 1000 / BATCH_SPAN_MS).clamp(0, batches);
    let mut gen_cpu = 0u64;
    let mut cpu0 = thread_cpu_ns();
    for offset in 0..batches {
        if offset == warm {
            (t_proc, t_close, t_apply, t_final) = Default::default();
            (n_partials, n_rollups, gen_cpu) = (0, 0, 0);
            cpu0 = thread_cpu_ns();
        }
        let g0 = thread_cpu_ns();
        let payload = stream.batch();
        gen_cpu += thread_cpu_ns() - g0;
        let t = Instant::now();
        ing.process_batch(&payload, None, offset, &mut enr).unwrap();
        let t1 = Instant::now();
        partials.clear();
        let closed = ing.take_closed(&enr, &mut partials);
        let t2 = Instant::now();
        n_partials += partials.len();
        let batch = PartialBatch {
            partials: std::mem::take(&mut partials),
            closed: closed.into_iter().collect(),
            partials_partitions: 1,
        };
        merger.apply(&batch, offset).unwrap();
        let t3 = Instant::now();
        rollups.clear();
        n_rollups += merger.take_final(&mut rollups);
        let t4 = Instant::now();
        t_proc += t1 - t;
        t_close += t2 - t1;
        t_apply += t3 - t2;
        t_final += t4 - t3;
    }
    let cpu = thread_cpu_ns() - cpu0 - gen_cpu;
    let total = t_proc + t_close + t_apply + t_final;
    let events = ((batches - warm) as usize * BATCH) as f64;
    eprintln!(
        "{} batches after {warm} warm-up: {:.3} M events/s per thread CPU second ({:.3} M/s wall); process_batch {:?}, take_closed {:?} \
         ({n_partials} partials), merger.apply {:?}, take_final {:?} ({n_rollups} rollups); \
         dedup {:?}; peak resident {} MiB",
        batches - warm,
        events / (cpu as f64 / 1e9) / 1e6,
        events / total.as_secs_f64() / 1e6,
        t_proc,
        t_close,
        t_apply,
        t_final,
        ing.dedup_stats(),
        peak_resident_kib() / 1024
    );
}

/// Peak resident set of this process (`VmHWM`, Linux), 0 elsewhere.
fn peak_resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// On-CPU time of this thread (Linux `/proc/thread-self/schedstat`), so a
/// loaded machine does not skew the profile figures; 0 elsewhere.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

criterion_group!(benches, bench);

fn main() {
    rampart_pipeline::allocator::keep_freed_pages();
    if let Ok(v) = std::env::var("RAMPART_CORE_PROFILE") {
        let (run, warm) = v.split_once(':').unwrap_or((&v, "0"));
        match (run.parse(), warm.parse()) {
            (Ok(run), Ok(warm)) => profile(run, warm),
            _ => eprintln!("RAMPART_CORE_PROFILE takes <seconds>[:<warm-up seconds>], not {v:?}"),
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
