//! Prints loadgen's generation rate: `cargo run --release -p rampart-loadgen
//! --example throughput -- [events] [events_per_batch]`. On a shared machine,
//! run it under `perf stat -e task-clock` to see the CPU time it really used.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use rampart_loadgen::{
    GenConfig, Generator, Limit, RecordConfig, RecordStream, World, WorldConfig,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    let per_batch: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let t = Instant::now();
    let world = Arc::new(World::new(WorldConfig::default()).unwrap());
    eprintln!("world built in {:?}", t.elapsed());
    let generator = Generator::new(world, GenConfig::default()).unwrap();
    let cfg = RecordConfig {
        events_per_batch: per_batch,
        ..RecordConfig::default()
    };
    let t = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    for r in RecordStream::new(generator, cfg, Limit::Events(n)).unwrap() {
        records += 1;
        bytes += r.payload.len() as u64;
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{n} events in {records} records ({bytes} payload bytes) in {s:.3} s: {:.2} M events/s, {:.1} B/event",
        n as f64 / s / 1e6,
        bytes as f64 / n as f64
    );
}
