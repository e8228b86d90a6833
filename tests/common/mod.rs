//! The one fixture module of the end-to-end tests (`tests/e2e.rs`,
//! `tests/chaos.rs`, `tests/metrics.rs`) and of `benches/eos_recovery.rs`:
//!
//! - [`workload`]: a seeded loadgen workload with its ground truth, world files
//!   and generated config, on the shared or a private broker;
//! - [`produce`]: producing that workload (all at once or paced), and records
//!   made by a plain Kafka client (explicit partition, timestamp, compression);
//! - [`process`]: the built `rampart` binary run as a user would, and a
//!   [`Fleet`] of named instances for fault injection;
//! - [`read`]: read_committed / read_uncommitted readers, background
//!   [`Observer`]s, end offsets, dead letters with their headers;
//! - [`verdict`]: rollup diffs and the exactly-once verdict.
//!
//! Tests of one binary run on parallel threads; a test that must not share
//! the machine (timing bounds, private broker, fault injection) holds
//! [`machine_alone`], one that runs `rampart` but tolerates company holds
//! [`machine_shared`].
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub mod http;
pub mod process;
pub mod produce;
pub mod read;
pub mod verdict;
pub mod workload;

pub use http::*;
pub use process::*;
pub use produce::*;
pub use read::*;
pub use verdict::*;
pub use workload::*;

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rampart_testkit::KafkaBroker;

/// The broker every test of a binary shares (`RAMPART_TEST_BOOTSTRAP`, or one
/// started for the binary).
pub fn broker() -> &'static KafkaBroker {
    KafkaBroker::shared()
}

static MACHINE: RwLock<()> = RwLock::new(());

/// Held by a test that needs the (2-core) machine to itself: no other test of
/// its binary that runs `rampart` or a broker runs meanwhile.
pub fn machine_alone() -> RwLockWriteGuard<'static, ()> {
    // A failed test poisons the lock; the next one still needs it.
    MACHINE.write().unwrap_or_else(PoisonError::into_inner)
}

/// Held by a test that runs `rampart` and may share the machine with other
/// such tests, but not with a [`machine_alone`] one.
pub fn machine_shared() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(PoisonError::into_inner)
}
