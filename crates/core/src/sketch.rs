//! Distinct-source sketch: exact while small, HyperLogLog (p = 12) above.
//!
//! The representation is a function of the set alone (exact iff it holds at
//! most `EXACT_LIMIT` distinct hashes; registers are a max over hashes), so
//! merges in any order and any split of the input give identical bytes.

use crate::proto::v1::internal as pb;

/// Largest set kept exactly.
pub const EXACT_LIMIT: usize = 256;
/// HyperLogLog precision: 2^12 one-byte registers.
pub const HLL_PRECISION: u32 = 12;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceSketch {
    _todo: (),
}

/// 64-bit hash of a source address (4 or 16 bytes) as the sketch uses it.
pub fn source_hash(ip: &[u8]) -> u64 {
    let _ = ip;
    todo!("helper core-hot")
}

impl SourceSketch {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn insert_hash(&mut self, h: u64) {
        let _ = h;
        todo!("helper core-hot")
    }
    pub fn merge(&mut self, other: &SourceSketch) {
        let _ = other;
        todo!("helper core-hot")
    }
    /// Exact count while exact, HLL estimate (rounded) otherwise.
    pub fn estimate(&self) -> u64 {
        todo!("helper core-hot")
    }
    pub fn is_exact(&self) -> bool {
        todo!("helper core-hot")
    }
    pub fn to_proto(&self) -> pb::SourceSketch {
        todo!("helper core-hot")
    }
    /// Rejects malformed sketches (unsorted/duplicate hashes, wrong register count, both set).
    pub fn from_proto(p: &pb::SourceSketch) -> Result<Self, &'static str> {
        let _ = p;
        todo!("helper core-hot")
    }
}
