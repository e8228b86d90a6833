//! Exact, time-bucketed dedup of 128-bit fingerprints under a byte budget.
//!
//! An event is a duplicate when its fingerprint is remembered. A fingerprint is
//! remembered from its first (non-late) sighting until its time bucket expires:
//! bucket `b` covers event times `[b*bucket_ms, (b+1)*bucket_ms)` and expires
//! once `(b+1)*bucket_ms <= watermark - horizon_ms`. When the byte budget would
//! be exceeded, the oldest bucket is evicted early and that is counted
//! (`DedupStats::evicted_early_*`) — never unbounded growth.

/// Dedup settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DedupConfig {
    /// How long (event time) a fingerprint is remembered (default 10 min).
    pub horizon_ms: i64,
    /// Width of a time bucket (default horizon / 10, i.e. 1 min).
    pub bucket_ms: i64,
    /// Memory budget of the table in bytes (default 256 MiB).
    pub budget_bytes: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig { horizon_ms: 600_000, bucket_ms: 60_000, budget_bytes: 256 << 20 }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DedupStats {
    /// Fingerprints remembered now.
    pub entries: u64,
    /// Bytes held by the table(s) now (allocated capacity, not just used).
    pub bytes: u64,
    /// Buckets evicted before their time because of the budget, since start.
    pub evicted_early_buckets: u64,
    /// Fingerprints dropped by those early evictions, since start.
    pub evicted_early_entries: u64,
}

/// The dedup table of one input partition.
#[derive(Debug)]
pub struct Dedup {
    cfg: DedupConfig,
}

impl Dedup {
    pub fn new(cfg: DedupConfig) -> Self {
        Dedup { cfg }
    }

    /// Remembers `fp` under the bucket of `time_ms`; returns `true` when it was
    /// already remembered (a duplicate).
    pub fn check_insert(&mut self, fp: u128, time_ms: i64) -> bool {
        let _ = (&self.cfg, fp, time_ms);
        todo!("helper core-hot")
    }

    /// Forgets every bucket that expired at `watermark_ms`.
    pub fn expire(&mut self, watermark_ms: i64) {
        let _ = watermark_ms;
        todo!("helper core-hot")
    }

    /// Start (inclusive, ms) of the oldest bucket still remembered, if any.
    pub fn oldest_bucket_start(&self) -> Option<i64> {
        todo!("helper core-hot")
    }

    pub fn stats(&self) -> DedupStats {
        todo!("helper core-hot")
    }
}
