//! Generation speed of loadgen, in events/s: bare events, batched records
//! (1000 events per message) and one event per message. The harness must never
//! be the bottleneck of a load test (target > 5 M events/s batched).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_loadgen::{
    GenConfig, Generator, Limit, RecordConfig, RecordStream, World, WorldConfig,
};

const N: u64 = 200_000;

fn bench(c: &mut Criterion) {
    let world = Arc::new(World::new(WorldConfig::default()).unwrap());
    let mut g = c.benchmark_group("loadgen");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));

    g.bench_function("events", |b| {
        let mut generator = Generator::new(world.clone(), GenConfig::default()).unwrap();
        b.iter(|| {
            for _ in 0..N {
                black_box(generator.next_event());
            }
        })
    });
    for (name, per_batch) in [("records_batched_1000", 1000), ("records_unbatched", 1)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let generator = Generator::new(world.clone(), GenConfig::default()).unwrap();
                let cfg = RecordConfig {
                    events_per_batch: per_batch,
                    ..RecordConfig::default()
                };
                let mut bytes = 0usize;
                for r in RecordStream::new(generator, cfg, Limit::Events(N)).unwrap() {
                    bytes += r.payload.len();
                }
                black_box(bytes)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
