//! Bounds on what one input partition keeps and publishes per window, so
//! hostile or merely scattered sources (random IPv6 /48s, a scanning botnet
//! touching every /24) cannot grow memory or partials without bound.
//!
//! Three rules, each exact in totals:
//! - **Prefix cells.** A window holds at most `prefix_cells` origin cells
//!   (source prefix × origin) per input partition. They are admitted in event
//!   order (late, duplicate and unique events alike); an event whose cell is
//!   not admitted counts in its origin's `other` cell, published under the
//!   origin prefix dimension as `other:<country>`. The ASN dimension stays
//!   exact: an `other` cell keeps its origin.
//! - **Published keys.** At window close, at most `publish_top_keys` origin
//!   prefixes and as many ASNs are published per partition: the largest by
//!   `raw_events + late_events`, ties by the smaller key string. The events of
//!   the others are counted under `other:<country>` of the same dimension (a
//!   key spanning several countries splits by country). `other:` keys are
//!   always published.
//! - **Count entries.** A partial's destination-port and rule count maps hold
//!   at most `count_entries` values (largest counts, ties by the smaller
//!   value); the rest is summed in `dst_ports_overflow` / `rules_overflow`.
//!
//! The rules apply per input partition and window, so a key that spans
//! partitions may be published from some and folded into `other` in others;
//! per-key counts are then lower bounds and per-country totals stay exact.
//! The reference model (`model`) applies the same rules.

/// Key string prefix of an overflow key: `other:<country>`.
pub const OTHER_KEY_PREFIX: &str = "other:";

/// The overflow key of `country` (an ISO code, `ZZ` when unknown).
pub fn other_key(country: &str) -> String {
    format!("{OTHER_KEY_PREFIX}{country}")
}

/// Bytes one origin cell takes in a window, for sizing `prefix_cells` from
/// a memory budget: the slab entry, its index map entry and the first
/// allocation of its port and rule tables (a test in `ingest::cells` holds
/// the estimate to the types).
pub const ORIGIN_CELL_BYTES: usize = 640;

/// Limits of one input partition per window (module doc). `usize::MAX`
/// means unbounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyBudget {
    pub prefix_cells: usize,
    pub publish_top_keys: usize,
    pub count_entries: usize,
}

impl KeyBudget {
    /// No limit at all: every key kept and published, full count maps.
    pub const UNBOUNDED: KeyBudget = KeyBudget {
        prefix_cells: usize::MAX,
        publish_top_keys: usize::MAX,
        count_entries: usize::MAX,
    };
}

impl Default for KeyBudget {
    fn default() -> Self {
        KeyBudget::UNBOUNDED
    }
}

/// Keeps the `keep` entries of `counts` (sorted by value) with the largest
/// counts, ties by the smaller value, still sorted by value; returns the sum
/// of the other counts.
pub fn cap_counts(counts: &mut Vec<(u32, u64)>, keep: usize) -> u64 {
    if counts.len() <= keep {
        return 0;
    }
    let mut by_count = std::mem::take(counts);
    by_count.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let overflow = by_count
        .get(keep..)
        .unwrap_or_default()
        .iter()
        .fold(0u64, |sum, e| sum.saturating_add(e.1));
    by_count.truncate(keep);
    by_count.sort_unstable_by_key(|e| e.0);
    *counts = by_count;
    overflow
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_keeps_largest_counts_and_sums_the_rest() {
        let mut c = vec![(1, 5), (2, 1), (3, 5), (4, 7), (9, 1)];
        assert_eq!(cap_counts(&mut c, 3), 2);
        assert_eq!(c, vec![(1, 5), (3, 5), (4, 7)]);
        let mut ties = vec![(1, 2), (2, 2), (3, 2)];
        assert_eq!(cap_counts(&mut ties, 2), 2);
        assert_eq!(ties, vec![(1, 2), (2, 2)]);
        let mut small = vec![(1, 1)];
        assert_eq!(cap_counts(&mut small, 1), 0);
        assert_eq!(small, vec![(1, 1)]);
    }
}
