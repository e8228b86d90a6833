//! End-to-end tests of the `rampart` binary run as a user would, against the
//! shared real Apache Kafka (`RAMPART_TEST_BOOTSTRAP`, or one started for this
//! binary): `run` against the ground truth, `loadgen` → `run` → `verify`,
//! `loadgen` to files, `demo`, the terminal commands (`demo`'s live view in
//! tmux, `top`, `tail`), and checks of the fixtures themselves.
//!
//! Tests of this binary run on parallel threads; see `common` for the lock
//! that keeps timing-bound ones alone on the machine.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod codecs;
mod demo;
mod events;
mod failures;
mod finality;
mod fixtures;
mod json_input;
mod loadgen;
mod membership;
mod oversized;
mod run;
mod secured;
mod terminal;
mod throughput;
mod topics;
mod verify;
