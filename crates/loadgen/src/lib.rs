//! rampart-loadgen: synthetic attack traffic with its ground truth.
//!
//! Owns: the synthetic internet ([`World`]: countries, ASNs, prefixes, source
//! populations, sector-tagged target ranges) and the files that describe it
//! (sector table; MMDB files through `rampart_enrich`'s writer), the
//! deterministic event [`Generator`] with deliberate faults (duplicates, jitter,
//! late events, bursts, malformed messages), batching into Kafka-ready
//! [`Record`]s partitioned by source IP ([`RecordStream`]), the exact
//! per-partition input sequences the ground truth is computed from
//! ([`partition_sequences`], [`ground_truth`] via `rampart_core::model`), and a record file format ([`RecordWriter`],
//! [`RecordReader`]).
//!
//! Must not know about: Kafka clients, tokio, the wall clock, terminals. The
//! same seeds and settings give the same bytes; sending records to a broker,
//! progress display and verification belong to the CLI.
//!
//! Faults, each configurable ([`GenConfig`], [`RecordConfig`]):
//! - duplicates ([`Fault::ExactDuplicate`]: the same bytes again within
//!   `duplicate_delay_ms`; [`Fault::SensorCopy`]: same fields, another
//!   sensor_id, no event_id). rampart's default `Auto` fingerprint (event_id
//!   when present, else src/dst ip+port, protocol, kind, rule id, 1 s bucket)
//!   leaves sensor_id out, so sensor copies ARE duplicates for the pipeline;
//! - bounded jitter (`jitter_ms` + `duplicate_delay_ms` = 3 s by default, under
//!   rampart's default 5 s out-of-orderness, so only [`Fault::Late`] events are late);
//! - late events, 10–30 min old by default (beyond window + out-of-orderness +
//!   allowed lateness);
//! - bursts of one country or sector ([`BurstConfig`]);
//! - malformed messages ([`MalformedKind`], each with the `Rejection` rampart gives it).
//!
//! Determinism: all randomness is PCG-64 seeded from `GenConfig::seed` /
//! `WorldConfig::seed` with integer-only sampling; floats only shape the tables
//! when the world is built. Record timestamps derive from event time, never
//! from the wall clock.
//!
//! ```
//! use std::sync::Arc;
//! use rampart_loadgen::*;
//! let world = Arc::new(World::new(WorldConfig { sources: 10_000, ..WorldConfig::default() }).unwrap());
//! let generator = Generator::new(world, GenConfig::default()).unwrap();
//! let records: Vec<Record> =
//!     RecordStream::new(generator, RecordConfig::default(), Limit::Events(10_000)).unwrap().collect();
//! assert!(!records.is_empty());
//! ```

mod data;
mod error;
mod event;
mod file;
mod generator;
mod json;
mod record;
mod rng;
mod world;

pub use data::{SECTORS, UNKNOWN_SECTOR_WEIGHT};
pub use error::LoadgenError;
pub use event::{Event, IpBytes};
pub use file::{MAGIC, MAX_FRAME, RecordReader, RecordWriter};
pub use generator::{BurstConfig, BurstTarget, Fault, GenConfig, GenStats, Generated, Generator};
pub use json::in_format;
pub use record::{
    Limit, MalformedKind, Record, RecordConfig, RecordStats, RecordStream, ground_truth,
    model_inputs, partition_for_key, partition_sequences,
};
pub use world::{Asn, Country, OriginNetwork, TargetRange, World, WorldConfig, WorldEnricher};
