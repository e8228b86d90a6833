//! Exact, time-bucketed dedup of 128-bit fingerprints under a byte budget.
//!
//! An event is a duplicate when its fingerprint is remembered. A fingerprint is
//! remembered from its first (non-late) sighting until its time bucket expires:
//! bucket `b` covers event times `[b*bucket_ms, (b+1)*bucket_ms)` and expires
//! once `(b+1)*bucket_ms <= watermark - horizon_ms`. When the byte budget would
//! be exceeded, the oldest bucket is evicted early and that is counted
//! (`DedupStats::evicted_early_*`) — never unbounded growth.
//!
//! # Precise rules of this implementation
//! - **Effective fingerprint: 120 bits.** The top 8 bits of each stored slot
//!   hold the bucket tag (bucket index mod 256), so two fingerprints that differ
//!   only in their top 8 bits are the same event here (and the all-zero 120-bit
//!   value is folded onto 1, because 0 marks an empty slot). With xxh3-128
//!   fingerprints the chance of a false duplicate is ~n / 2^120 per lookup.
//! - A sighting whose bucket has already expired (`expire` was called with a
//!   watermark past it) is not remembered and is reported as new: late events
//!   are the caller's to count.
//! - **Tag range.** At most 256 consecutive buckets are live at once (tags
//!   are 8 bits). A new fingerprint whose bucket is 256 or more buckets newer
//!   than the oldest live one is first looked up, then the buckets 256+ older
//!   than its own are evicted to make room; one 256 or more buckets older than
//!   the newest live one is not remembered (counted as one evicted entry).
//!   Neither changes which event is a duplicate as long as
//!   `out_of_orderness + horizon <= 254 * bucket` (the config check enforces
//!   it): the sighting that makes the range jump also moves the watermark
//!   past every evicted bucket, and a bucket that old is already expired.
//! - `budget_bytes` bounds the allocated slots *including* the transient
//!   copy while one shard grows. Budgets below the minimum table
//!   (`Dedup::MIN_BYTES`, ~32 KiB) are raised to it.
//!
//! # Layout
//! One open-addressing table of `u128` slots, split by the top 4 fingerprint
//! bits into 16 shards so a growth step copies 1/16 of the table (small
//! transient memory, small pauses). Each shard is an *ordered* linear-probing
//! table (Amble & Knuth): slots are sorted by fingerprint, the home slot is a
//! multiply-shift range reduction of the fingerprint onto a non-power-of-two
//! capacity, and every entry sits at `max(home, previous entry + 1)`. A miss
//! stops at the first larger fingerprint (short probes even at 90 % load), an
//! insert shifts the rest of its run by one slot, and expiry is one forward
//! compaction pass that drops the expired tags. Shards grow x1.25 at 90 % load,
//! so the table holds 16 bytes per slot at 72–90 % load: 18–22 bytes per entry
//! while filling (more after expiry empties part of it: capacity is kept).
//!
//! Lookups in a large table are bound by memory latency; `check_insert_batch`
//! touches the home slots of a group of fingerprints first so their cache
//! misses overlap, which is several times faster than one-by-one calls.

/// Dedup settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DedupConfig {
    /// How long (event time) a fingerprint is remembered (default 10 min).
    pub horizon_ms: i64,
    /// Width of a time bucket (default horizon / 10, i.e. 1 min).
    pub bucket_ms: i64,
    /// Memory budget of the table in bytes (default 1 GiB: the 10-min horizon
    /// of ~70 k unique events/s at 18–22 bytes per entry).
    pub budget_bytes: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            horizon_ms: 600_000,
            bucket_ms: 60_000,
            budget_bytes: 1 << 30,
        }
    }
}

/// Counters of a `Dedup`; `Dedup::stats` is O(1).
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

const SHARD_BITS: u32 = 4;
const SHARDS: usize = 1 << SHARD_BITS;
const TAG_SHIFT: u32 = 120;
const KEY_MASK: u128 = (1u128 << TAG_SHIFT) - 1;
const MIN_CAP: usize = 64;
const SLOT_BYTES: usize = std::mem::size_of::<u128>();
/// Max load (entries / home capacity) before a shard grows: 9/10.
const LOAD_NUM: usize = 9;
const LOAD_DEN: usize = 10;

fn slack_for(cap: usize) -> usize {
    64 + cap / 128
}

/// One ordered linear-probing table.
#[derive(Debug)]
struct Shard {
    /// `cap` home slots followed by `slack` overflow slots; 0 = empty.
    slots: Vec<u128>,
    cap: usize,
    len: usize,
}

impl Shard {
    fn with_cap(cap: usize) -> Shard {
        Shard {
            slots: vec![0; cap + slack_for(cap)],
            cap,
            len: 0,
        }
    }

    fn max_len(&self) -> usize {
        self.cap * LOAD_NUM / LOAD_DEN
    }

    fn bytes(&self) -> usize {
        self.slots.len() * SLOT_BYTES
    }

    /// Home slot of a key for capacity `cap` (monotone in the key within a shard).
    #[inline(always)]
    fn home(key: u128, cap: usize) -> usize {
        // Bits 52..116 of the key: the shard bits 116..120 are dropped.
        let h = (key >> 52) as u64;
        ((u128::from(h) * cap as u128) >> 64) as usize
    }

    /// Rebuilds into `new_cap` home slots; `None` if the slack overflowed.
    fn rebuilt(&self, new_cap: usize) -> Option<Shard> {
        let mut out = Shard::with_cap(new_cap);
        let mut w = 0;
        for &cur in self.slots.iter().filter(|&&c| c != 0) {
            let pos = Shard::home(cur & KEY_MASK, new_cap).max(w);
            *out.slots.get_mut(pos)? = cur;
            w = pos + 1;
        }
        out.len = self.len;
        Some(out)
    }

    /// Drops every entry whose tag is in `mask`, compacting in place.
    /// Returns how many were dropped.
    fn sweep(&mut self, mask: &TagMask) -> usize {
        let cap = self.cap;
        let mut w = 0;
        let mut removed = 0;
        for i in 0..self.slots.len() {
            let Some(&cur) = self.slots.get(i) else { break };
            if cur == 0 {
                continue;
            }
            if let Some(s) = self.slots.get_mut(i) {
                *s = 0;
            }
            if mask.has((cur >> TAG_SHIFT) as u8) {
                removed += 1;
                continue;
            }
            // pos <= i: the entry sat at >= its home, and w <= i.
            let pos = Shard::home(cur & KEY_MASK, cap).max(w);
            if let Some(s) = self.slots.get_mut(pos) {
                *s = cur;
            }
            w = pos + 1;
        }
        self.len -= removed;
        removed
    }
}

/// A set of bucket tags.
#[derive(Default)]
struct TagMask([u64; 4]);

impl TagMask {
    fn set(&mut self, tag: u8) {
        if let Some(w) = self.0.get_mut(usize::from(tag >> 6)) {
            *w |= 1 << (tag & 63);
        }
    }
    #[inline(always)]
    fn has(&self, tag: u8) -> bool {
        self.0
            .get(usize::from(tag >> 6))
            .is_some_and(|w| w & (1 << (tag & 63)) != 0)
    }
}

/// Where a probe ended.
enum Probe {
    Found,
    /// Insert at this slot (shifting the run right up to the empty `end`).
    Vacant {
        pos: usize,
        end: usize,
    },
    /// No empty slot before the end of the slack: the shard must grow.
    Overflow,
}

/// The dedup table of one input partition.
#[derive(Debug)]
pub struct Dedup {
    cfg: DedupConfig,
    shards: Vec<Shard>,
    /// Entries per bucket, indexed by bucket mod 256.
    counts: Box<[u64; 256]>,
    /// Oldest and newest live bucket (meaningful while `stats.entries > 0`).
    lo: i64,
    hi: i64,
    /// Buckets below this have expired (cached from the last `expire`).
    first_live: i64,
    /// `stats.bytes` is kept up to date on every allocation change.
    stats: DedupStats,
}

impl Dedup {
    /// Smallest table; budgets below it are raised to it.
    pub const MIN_BYTES: usize = SHARDS * (MIN_CAP + 64) * SLOT_BYTES;

    pub fn new(cfg: DedupConfig) -> Self {
        let cfg = DedupConfig {
            bucket_ms: cfg.bucket_ms.max(1),
            horizon_ms: cfg.horizon_ms.max(0),
            budget_bytes: cfg.budget_bytes.max(Self::MIN_BYTES),
        };
        let shards: Vec<Shard> = (0..SHARDS).map(|_| Shard::with_cap(MIN_CAP)).collect();
        let bytes = shards.iter().map(Shard::bytes).sum::<usize>() as u64;
        Dedup {
            cfg,
            shards,
            counts: Box::new([0; 256]),
            lo: 0,
            hi: 0,
            first_live: i64::MIN,
            stats: DedupStats {
                bytes,
                ..DedupStats::default()
            },
        }
    }

    /// The effective (120-bit, never 0) key stored for `fp`.
    #[inline(always)]
    fn key_of(fp: u128) -> u128 {
        let k = fp & KEY_MASK;
        if k == 0 { 1 } else { k }
    }

    #[inline(always)]
    fn shard_of(key: u128) -> usize {
        (key >> (TAG_SHIFT - SHARD_BITS)) as usize & (SHARDS - 1)
    }

    #[inline(always)]
    fn probe(sh: &Shard, key: u128) -> Probe {
        let mut i = Shard::home(key, sh.cap);
        loop {
            let Some(&cur) = sh.slots.get(i) else {
                return Probe::Overflow;
            };
            if cur == 0 {
                return Probe::Vacant { pos: i, end: i };
            }
            let ck = cur & KEY_MASK;
            if ck == key {
                return Probe::Found;
            }
            if ck > key {
                break;
            }
            i += 1;
        }
        // `key` goes at i; the run continues up to the next empty slot.
        let pos = i;
        loop {
            i += 1;
            match sh.slots.get(i) {
                Some(0) => return Probe::Vacant { pos, end: i },
                Some(_) => {}
                None => return Probe::Overflow,
            }
        }
    }

    /// Remembers `fp` under the bucket of `time_ms`; returns `true` when it was
    /// already remembered (a duplicate).
    #[inline]
    pub fn check_insert(&mut self, fp: u128, time_ms: i64) -> bool {
        let b = time_ms.div_euclid(self.cfg.bucket_ms);
        if b < self.first_live {
            return false;
        }
        let key = Self::key_of(fp);
        let si = Self::shard_of(key);
        if self.stats.entries > 0 && b.saturating_sub(self.lo) >= 256 {
            // Tags are 8 bits: make room by evicting buckets 256+ older than
            // `b`, after the lookup, so `fp` is judged against everything
            // live before this sighting. Not early: this sighting moves the
            // watermark past them (module doc, "Tag range").
            if self
                .shards
                .get(si)
                .is_some_and(|sh| matches!(Self::probe(sh, key), Probe::Found))
            {
                return true;
            }
            self.evict_below(b - 255, false);
        }
        loop {
            let Some(sh) = self.shards.get_mut(si) else {
                return false;
            };
            let (pos, end) = match Self::probe(sh, key) {
                Probe::Found => return true,
                Probe::Vacant { pos, end } if sh.len < sh.max_len() => (pos, end),
                _ => {
                    if self.make_room(si) {
                        continue;
                    }
                    self.stats.evicted_early_entries += 1;
                    return false;
                }
            };
            if !self.admit_bucket(b) {
                return false;
            }
            let Some(sh) = self.shards.get_mut(si) else {
                return false;
            };
            if end > pos {
                sh.slots.copy_within(pos..end, pos + 1);
            }
            if let Some(s) = sh.slots.get_mut(pos) {
                *s = ((b as u128 & 0xFF) << TAG_SHIFT) | key;
            }
            sh.len += 1;
            if let Some(c) = self.counts.get_mut((b & 0xFF) as usize) {
                *c += 1;
            }
            self.stats.entries += 1;
            return false;
        }
    }

    /// `check_insert` for many events: `dup[i]` is set to whether
    /// `(fps[i], times[i])` was a duplicate, with the same result as calling
    /// `check_insert` in order. Faster on large tables: the home slots of each
    /// group of fingerprints are loaded together so their cache misses overlap.
    /// Processes `min(fps.len(), times.len(), dup.len())` items.
    pub fn check_insert_batch(&mut self, fps: &[u128], times: &[i64], dup: &mut [bool]) {
        const GROUP: usize = 16;
        let n = fps.len().min(times.len()).min(dup.len());
        let (fps, times, dup) = (&fps[..n], &times[..n], &mut dup[..n]);
        for ((f, t), d) in fps
            .chunks(GROUP)
            .zip(times.chunks(GROUP))
            .zip(dup.chunks_mut(GROUP))
        {
            let mut touch = 0u128;
            for &fp in f {
                let key = Self::key_of(fp);
                if let Some(sh) = self.shards.get(Self::shard_of(key)) {
                    touch ^= sh.slots.get(Shard::home(key, sh.cap)).copied().unwrap_or(0);
                }
            }
            std::hint::black_box(touch);
            for ((&fp, &t), d) in f.iter().zip(t).zip(d.iter_mut()) {
                *d = self.check_insert(fp, t);
            }
        }
    }

    /// Makes bucket `b` live (the table is unchanged when it returns true).
    /// Returns false when `b` is too old to get a tag (counted).
    fn admit_bucket(&mut self, b: i64) -> bool {
        if self.stats.entries == 0 {
            self.lo = b;
            self.hi = b;
            return true;
        }
        if b < self.lo {
            if self.hi.saturating_sub(b) >= 256 {
                self.stats.evicted_early_entries += 1;
                return false;
            }
            self.lo = b;
        } else if b > self.hi {
            self.hi = b;
        }
        true
    }

    /// Changes the byte budget (a process budget divided anew among the
    /// partitions a process owns). A larger one leaves room to grow; a smaller
    /// one than the table's size evicts the oldest buckets early (counted in
    /// `evicted_early_*`) and shrinks the shards until the table fits.
    pub fn set_budget(&mut self, budget_bytes: usize) {
        self.cfg.budget_bytes = budget_bytes.max(Self::MIN_BYTES);
        loop {
            for si in 0..self.shards.len() {
                let Some(sh) = self.shards.get(si) else { break };
                let need = (sh.len * LOAD_DEN / LOAD_NUM + 1).max(MIN_CAP);
                if need >= sh.cap {
                    continue;
                }
                if let Some(small) = sh.rebuilt(need) {
                    let (old, new) = (sh.bytes() as u64, small.bytes() as u64);
                    if let Some(slot) = self.shards.get_mut(si) {
                        *slot = small;
                    }
                    self.stats.bytes = self.stats.bytes - old + new;
                }
            }
            if self.stats.bytes as usize <= self.cfg.budget_bytes || self.stats.entries == 0 {
                return;
            }
            self.evict_below(self.lo + 1, true);
        }
    }

    /// Grows shard `si` within the budget, else evicts the oldest bucket.
    /// Returns false when nothing could be done (table empty and the shard
    /// still cannot grow).
    #[cold]
    fn make_room(&mut self, si: usize) -> bool {
        let Some(sh) = self.shards.get(si) else {
            return false;
        };
        let mut new_cap = sh.cap + sh.cap / 4;
        loop {
            let new_bytes = (new_cap + slack_for(new_cap)) * SLOT_BYTES;
            if self.stats.bytes as usize + new_bytes > self.cfg.budget_bytes {
                break;
            }
            let Some(sh) = self.shards.get(si) else {
                return false;
            };
            if let Some(grown) = sh.rebuilt(new_cap) {
                let old_bytes = sh.bytes();
                let nb = grown.bytes();
                if let Some(slot) = self.shards.get_mut(si) {
                    *slot = grown;
                }
                self.stats.bytes = self.stats.bytes - old_bytes as u64 + nb as u64;
                return true;
            }
            new_cap += new_cap / 4;
        }
        if self.stats.entries == 0 {
            return false;
        }
        self.evict_below(self.lo + 1, true);
        true
    }

    /// Drops every live bucket `< first_keep` in one sweep.
    fn evict_below(&mut self, first_keep: i64, early: bool) {
        if self.stats.entries == 0 || self.lo >= first_keep {
            return;
        }
        let mut mask = TagMask::default();
        let mut dropped = 0u64;
        let mut buckets = 0u64;
        let last = self.hi.min(first_keep - 1);
        let mut x = self.lo;
        while x <= last {
            let Some(c) = self.counts.get_mut((x & 0xFF) as usize) else {
                break;
            };
            if *c > 0 {
                mask.set((x & 0xFF) as u8);
                dropped += *c;
                buckets += 1;
                *c = 0;
            }
            x += 1;
        }
        let removed: usize = self.shards.iter_mut().map(|s| s.sweep(&mask)).sum();
        debug_assert_eq!(removed as u64, dropped);
        self.stats.entries -= dropped;
        if early {
            self.stats.evicted_early_buckets += buckets;
            self.stats.evicted_early_entries += dropped;
        }
        self.lo = first_keep;
        while self.lo <= self.hi && self.counts.get((self.lo & 0xFF) as usize) == Some(&0) {
            self.lo += 1;
        }
    }

    /// Forgets every bucket that expired at `watermark_ms`. O(1) when nothing
    /// new expired; otherwise one pass over the table.
    pub fn expire(&mut self, watermark_ms: i64) {
        let first_live = watermark_ms
            .saturating_sub(self.cfg.horizon_ms)
            .div_euclid(self.cfg.bucket_ms);
        if first_live <= self.first_live {
            return;
        }
        self.first_live = first_live;
        self.evict_below(first_live, false);
    }

    /// Start (inclusive, ms) of the oldest bucket still remembered, if any.
    pub fn oldest_bucket_start(&self) -> Option<i64> {
        (self.stats.entries > 0).then(|| self.lo.saturating_mul(self.cfg.bucket_ms))
    }

    /// Current counters (O(1)).
    pub fn stats(&self) -> DedupStats {
        self.stats
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
