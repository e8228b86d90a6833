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
        DedupConfig {
            horizon_ms: 600_000,
            bucket_ms: 60_000,
            budget_bytes: 256 << 20,
        }
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
    map: std::collections::HashMap<u128, i64>,
    counts: std::collections::BTreeMap<i64, u64>,
    first_live: i64,
    stats: DedupStats,
}

/// Approximate bytes per map slot of the simple implementation.
const SLOT_BYTES: usize = 33;

impl Dedup {
    pub fn new(cfg: DedupConfig) -> Self {
        let cfg = DedupConfig {
            bucket_ms: cfg.bucket_ms.max(1),
            horizon_ms: cfg.horizon_ms.max(0),
            ..cfg
        };
        Dedup {
            cfg,
            map: Default::default(),
            counts: Default::default(),
            first_live: i64::MIN,
            stats: DedupStats::default(),
        }
    }

    /// Remembers `fp` under the bucket of `time_ms`; returns `true` when it was
    /// already remembered (a duplicate).
    pub fn check_insert(&mut self, fp: u128, time_ms: i64) -> bool {
        let b = time_ms.div_euclid(self.cfg.bucket_ms);
        if b < self.first_live {
            return false;
        }
        if self.map.contains_key(&fp) {
            return true;
        }
        while (self.map.len() + 1) * SLOT_BYTES * 2 > self.cfg.budget_bytes {
            let Some((&oldest, &n)) = self.counts.iter().next() else {
                break;
            };
            self.map.retain(|_, v| *v != oldest);
            self.counts.remove(&oldest);
            self.stats.evicted_early_buckets += 1;
            self.stats.evicted_early_entries += n;
        }
        self.map.insert(fp, b);
        *self.counts.entry(b).or_default() += 1;
        false
    }

    /// Forgets every bucket that expired at `watermark_ms`.
    pub fn expire(&mut self, watermark_ms: i64) {
        let first_live = watermark_ms
            .saturating_sub(self.cfg.horizon_ms)
            .div_euclid(self.cfg.bucket_ms);
        if first_live <= self.first_live {
            return;
        }
        self.first_live = first_live;
        self.map.retain(|_, b| *b >= first_live);
        self.counts = self.counts.split_off(&first_live);
    }

    /// Start (inclusive, ms) of the oldest bucket still remembered, if any.
    pub fn oldest_bucket_start(&self) -> Option<i64> {
        self.counts
            .keys()
            .next()
            .map(|b| b.saturating_mul(self.cfg.bucket_ms))
    }

    pub fn stats(&self) -> DedupStats {
        DedupStats {
            entries: self.map.len() as u64,
            bytes: (self.map.capacity() * SLOT_BYTES) as u64,
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DedupConfig {
        DedupConfig {
            horizon_ms: 10_000,
            bucket_ms: 1_000,
            budget_bytes: 64 << 20,
        }
    }

    #[test]
    fn duplicates_and_expiry_boundary() {
        let mut d = Dedup::new(cfg());
        assert!(!d.check_insert(1, 5_500));
        assert!(d.check_insert(1, 5_999));
        assert!(
            d.check_insert(1, 90_000),
            "duplicate regardless of its own time"
        );
        assert!(!d.check_insert(2, 6_000));
        assert_eq!(d.stats().entries, 2);
        assert_eq!(d.oldest_bucket_start(), Some(5_000));
        // bucket 5 covers [5000, 6000): expires once 6000 <= watermark - 10000.
        d.expire(15_999);
        assert!(d.check_insert(1, 5_500));
        d.expire(16_000);
        assert_eq!(d.stats().entries, 1);
        assert_eq!(d.oldest_bucket_start(), Some(6_000));
        assert!(d.check_insert(2, 6_000));
        assert!(!d.check_insert(1, 7_000), "forgotten after expiry");
        assert!(!d.check_insert(3, 5_999), "expired bucket: not remembered");
        assert!(!d.check_insert(3, 5_999));
    }
}
