//! Exactly-once under faults: `rampart run` processes killed, stalled and
//! restarted (`processes`), the broker killed and restarted (`broker`), and an
//! aborted transaction's output checked invisible (`eos_abort`). Verdict:
//! `common::verify`. Each test holds the machine alone (`common::machine_alone`):
//! they are timing-sensitive (session timeouts, a zombie) and would fight over
//! 2 cores.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod broker;
mod eos_abort;
mod processes;

use std::time::Duration;

/// SplitMix64: the fault schedule's seeded RNG.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi` (milliseconds).
    pub fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next_u64() % (hi - lo).max(1))
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }
}
