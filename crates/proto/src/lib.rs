//! rampart's protobuf contract, generated from `proto/rampart/v1/*.proto`.
//!
//! `v1` holds the public messages (`AttackEvent`, `AttackEventBatch`, `Rollup`);
//! `v1::internal` the messages between the ingest and merge stages. This crate
//! owns nothing else: no logic, no I/O.

#![allow(clippy::all, missing_docs)]

pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/rampart.v1.rs"));

    pub mod internal {
        include!(concat!(env!("OUT_DIR"), "/rampart.v1.internal.rs"));
    }
}

pub use prost::Message;
