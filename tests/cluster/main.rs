//! Exactly-once on a replicated cluster: three Kafka nodes (KRaft, combined
//! controller+broker, replication factor 3, `min.insync.replicas = 2`), three
//! `rampart run` processes, input streaming in, while the driver SIGKILLs the
//! node leading the most partitions, later the node coordinating the ingest
//! group (and transactions), restarts each, and restarts the rampart
//! processes one by one. Verdict: `common::verify`. The run also reports the
//! rollup latency after window close and the longest stall around each fault
//! (`timing`).
//!
//! The cluster is private to this binary (`rampart-testkit`'s
//! `KafkaCluster`, killed when the binary exits); `RAMPART_TEST_BOOTSTRAP`
//! is not used. Each test holds the machine alone.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod failover;
mod timing;
