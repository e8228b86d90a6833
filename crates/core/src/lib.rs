//! rampart-core: the pure engine every stage runs on.
//!
//! Owns: decoding of `AttackEventBatch` payloads (zero-copy views), validation
//! with a bounded set of rejection reasons, 128-bit fingerprints, exact
//! time-bucketed dedup under a byte budget, event-time windows and per-partition
//! watermarks, mergeable aggregates and sketches, the per-partition ingest
//! processor, the merger of partials and finalisation into `Rollup`s.
//!
//! Must not know about: Kafka, tokio, threads, clocks, files, metrics
//! registries. Everything here is a deterministic function of its inputs, so it
//! is benchmarked and property-tested alone. The wall clock never enters: "now"
//! is always a parameter (the broker's LogAppendTime, the ingest clock entries
//! the stage records, or a recorded idle advance).

pub mod aggregate;
pub mod budget;
pub mod dedup;
pub mod enrich;
pub mod event;
pub mod fingerprint;
pub mod ingest;
pub mod merge;
pub mod model;
pub mod prefix_cache;
pub mod sketch;
pub mod validate;
pub mod window;

pub use rampart_proto as proto;
