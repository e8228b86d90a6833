//! Hot-path micro benches: dedup at steady-state table sizes (1M, 10M entries,
//! ~3 % duplicates, buckets expiring as event time advances), dedup memory per
//! entry at several sizes, and decode + validate + fingerprint per event.
//!
//! Run: `cargo bench --bench dedup -- --warm-up-time 1 --measurement-time 3`
//! (bytes/entry figures are printed first, on stderr, unless a filter other than
//! `dedup_memory` is given).

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use rampart_core::dedup::{Dedup, DedupConfig};
use rampart_core::event::{EventView, decode_batch};
use rampart_core::fingerprint::{FingerprintSpec, Fingerprinter};
use rampart_core::proto::v1::{AttackEvent, AttackEventBatch};
use rampart_core::validate::{Limits, validate};

/// A fast deterministic stream of fingerprints (splitmix64 pairs).
struct Stream {
    x: u64,
    recent: Vec<u128>,
    i: u64,
}

impl Stream {
    fn new(seed: u64) -> Self {
        Stream {
            x: seed,
            recent: vec![1; 4096],
            i: 0,
        }
    }
    fn mix(&mut self) -> u64 {
        self.x = self.x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// ~3 % repeats of a recent fingerprint, else a fresh one.
    fn next(&mut self) -> u128 {
        self.i += 1;
        let r = self.mix();
        if r % 100 < 3 {
            self.recent[(r >> 32) as usize % 4096]
        } else {
            let fp = (u128::from(self.mix()) << 64) | u128::from(r);
            self.recent[(self.i % 4096) as usize] = fp;
            fp
        }
    }
}

/// A table that keeps ~`n` live entries: time advances 1 ms per event,
/// buckets of n/10 ms, horizon n ms, expiry every 64k events.
struct Steady {
    d: Dedup,
    s: Stream,
    t: i64,
}

impl Steady {
    fn new(n: u64) -> Self {
        let bucket = (n / 10) as i64;
        let d = Dedup::new(DedupConfig {
            horizon_ms: n as i64,
            bucket_ms: bucket,
            budget_bytes: 8 << 30,
        });
        let mut st = Steady {
            d,
            s: Stream::new(n),
            t: 0,
        };
        st.run(2 * n);
        st
    }
    #[inline]
    fn run(&mut self, ops: u64) -> u64 {
        let mut dups = 0;
        for _ in 0..ops {
            self.t += 1;
            dups += u64::from(self.d.check_insert(self.s.next(), self.t));
            if self.t & 0xFFFF == 0 {
                self.d.expire(self.t);
            }
        }
        dups
    }
    /// The same stream through `check_insert_batch`, 1000 events per call.
    fn run_batch(&mut self, ops: u64) -> u64 {
        let (mut fps, mut times, mut dup) = (
            Vec::with_capacity(1000),
            Vec::with_capacity(1000),
            vec![false; 1000],
        );
        let mut dups = 0;
        let mut left = ops;
        while left > 0 {
            let k = left.min(1000);
            fps.clear();
            times.clear();
            for _ in 0..k {
                self.t += 1;
                fps.push(self.s.next());
                times.push(self.t);
            }
            self.d.check_insert_batch(&fps, &times, &mut dup);
            dups += dup[..k as usize].iter().filter(|&&d| d).count() as u64;
            self.d.expire(self.t);
            left -= k;
        }
        dups
    }
}

fn bytes_per_entry() {
    for n in [100_000u64, 1_000_000, 3_000_000, 10_000_000, 30_000_000] {
        let mut d = Dedup::new(DedupConfig {
            horizon_ms: i64::MAX / 4,
            bucket_ms: 1 << 40,
            budget_bytes: 8 << 30,
        });
        let mut s = Stream::new(n);
        let start = Instant::now();
        let mut dups = 0u64;
        while d.stats().entries < n {
            dups += u64::from(d.check_insert(s.next(), 0));
        }
        let st = d.stats();
        eprintln!(
            "dedup n={n:>9}: {:.1} bytes/entry ({} MiB), fill {:.0} ns/op, {dups} dups",
            st.bytes as f64 / st.entries as f64,
            st.bytes >> 20,
            start.elapsed().as_nanos() as f64 / (n + dups) as f64,
        );
    }
}

fn dedup(c: &mut Criterion) {
    // The memory report takes ~30 s: skip it when a filter excludes it.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if filters.iter().all(|f| "dedup_memory".contains(f.as_str())) {
        bytes_per_entry();
    }
    let mut g = c.benchmark_group("dedup_check_insert");
    g.throughput(Throughput::Elements(1));
    for n in [1_000_000u64, 10_000_000] {
        let mut st = Steady::new(n);
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let t0 = Instant::now();
                black_box(st.run(iters));
                t0.elapsed()
            })
        });
        g.bench_function(BenchmarkId::new("batch", n), |b| {
            b.iter_custom(|iters| {
                let t0 = Instant::now();
                black_box(st.run_batch(iters));
                t0.elapsed()
            })
        });
        let s = st.d.stats();
        eprintln!(
            "steady n={n}: entries {} bytes/entry {:.1}",
            s.entries,
            s.bytes as f64 / s.entries as f64
        );
    }
    g.finish();
}

fn batch_bytes(n: usize) -> Vec<u8> {
    let events = (0..n as u64)
        .map(|i| AttackEvent {
            time_ms: 1_700_000_000_000 + i as i64 * 7,
            src_ip: (0x0a00_0000u32 + (i as u32).wrapping_mul(2_654_435_761) % 50_000)
                .to_be_bytes()
                .to_vec(),
            dst_ip: (0xc633_6400u32 + (i % 256) as u32).to_be_bytes().to_vec(),
            src_port: 30_000 + (i % 30_000) as u32,
            dst_port: [22, 23, 80, 443, 445, 3389][(i % 6) as usize],
            protocol: 6,
            kind: 1,
            rule_id: (i % 50) as u32,
            event_id: String::new(),
            packets: 1,
            bytes: 60,
            sensor_id: "sensor-01".into(),
        })
        .collect();
    AttackEventBatch { events }.encode_to_vec()
}

fn decode_validate_fingerprint(c: &mut Criterion) {
    let n = 1000;
    let payload = batch_bytes(n);
    let limits = Limits::default();
    let fpr = Fingerprinter::new(FingerprintSpec::default());
    let mut out: Vec<EventView<'_>> = Vec::with_capacity(n);
    let mut g = c.benchmark_group("hot_path");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("decode", |b| {
        b.iter(|| {
            decode_batch(black_box(&payload), 100_000, &mut out).unwrap();
            out.len()
        })
    });
    g.bench_function("decode_validate_fingerprint", |b| {
        b.iter(|| {
            let mut out: Vec<EventView<'_>> = Vec::with_capacity(n);
            decode_batch(black_box(&payload), 100_000, &mut out).unwrap();
            let mut acc = 0u128;
            for ev in &out {
                if validate(ev, Some(1_700_000_000_000), &limits).is_ok() {
                    acc ^= fpr.fingerprint(ev);
                }
            }
            acc
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(20);
    targets = decode_validate_fingerprint, dedup
}
criterion_main!(benches);
