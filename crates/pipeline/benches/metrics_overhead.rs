//! What the ingest stage's metrics cost on its hot path: the ingest
//! handler's per-message core work (`process_batch` + `take_closed` over
//! loadgen batches of 1000 events, MMDB-equivalent `WorldEnricher`) timed
//! without and with the per-message metric flush (`IngestMetrics::batch`,
//! six counter increments per Kafka message) against a real installed
//! Prometheus recorder, so the handles are live atomics, not no-ops.
//!
//! Each sample processes the same pre-generated records through a fresh
//! `PartitionIngest` (built outside the timed section), so both variants see
//! identical dedup and window states.
//!
//! Run: `cargo bench -p rampart-pipeline --bench metrics_overhead -- --warm-up-time 1 --measurement-time 5`

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_core::ingest::PartitionIngest;
use rampart_loadgen::{
    GenConfig, Generator, Limit, Record, RecordConfig, RecordStream, World, WorldConfig,
};
use rampart_pipeline::telemetry::IngestMetrics;

const EVENTS: u64 = 200_000;
const PER_BATCH: usize = 1000;

fn records(world: &Arc<World>) -> Vec<Record> {
    let generator = Generator::new(
        world.clone(),
        GenConfig {
            seed: 3,
            rate: 50_000,
            ..GenConfig::default()
        },
    )
    .unwrap();
    let cfg = RecordConfig {
        partitions: 1,
        events_per_batch: PER_BATCH,
        malformed_share: 0.0,
        ..RecordConfig::default()
    };
    RecordStream::new(generator, cfg, Limit::Events(EVENTS))
        .unwrap()
        .collect()
}

fn bench(c: &mut Criterion) {
    let handle = rampart_pipeline::telemetry::install_recorder().unwrap();
    let world = Arc::new(World::new(WorldConfig::default()).unwrap());
    let recs = records(&world);
    let settings = rampart_pipeline::config::load(None, std::iter::empty()).unwrap();
    let mut metrics = IngestMetrics::new();
    let mut out = Vec::new();
    let mut pass = |with_metrics: bool| -> Duration {
        let mut enricher = world.enricher();
        let mut part = PartitionIngest::new(settings.ingest.clone(), 0, 1);
        let start = Instant::now();
        for (off, r) in recs.iter().enumerate() {
            let res =
                part.process_batch(&r.payload, Some(r.timestamp_ms), off as i64, &mut enricher);
            if let Ok(stats) = res {
                if with_metrics {
                    metrics.batch(r.payload.len(), &stats);
                }
                black_box(stats);
            }
            out.clear();
            black_box(part.take_closed(&enricher, &mut out));
        }
        start.elapsed()
    };
    let mut g = c.benchmark_group("ingest_metrics");
    g.throughput(Throughput::Elements(EVENTS));
    g.sample_size(10);
    g.bench_function("without_metrics", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| pass(false)).sum())
    });
    g.bench_function("with_metrics", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| pass(true)).sum())
    });
    g.finish();
    // The flush alone, per message, for the per-batch ratio.
    let stats = rampart_core::ingest::BatchStats {
        events: 1000,
        unique: 990,
        duplicates: 10,
        ..Default::default()
    };
    c.bench_function("ingest_metrics/flush_per_message", |b| {
        b.iter(|| metrics.batch(black_box(64_000), black_box(&stats)))
    });
    black_box(handle.render().len());
}

criterion_group!(benches, bench);
criterion_main!(benches);
