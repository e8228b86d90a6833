//! Exact, mergeable aggregates of one (window, dimension, key) and their
//! finalisation into a public `Rollup`.
//!
//! Merging is associative and commutative: counters add (saturating, which stays
//! associative for non-negative values), count maps add per value, sketches
//! merge (their bytes are a function of the set alone), first/last take min/max.
//! So any split of the input gives the same bytes.

use prost::Message;

use crate::proto::v1::internal as pb;
use crate::proto::v1::{Dimension, Rollup, TopEntry};
use crate::sketch::SourceSketch;

/// Length of each top-k list in a rollup.
pub const TOP_K: usize = 10;

/// Why an internal `Aggregate` message cannot be merged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    #[error("bad source sketch: {0}")]
    BadSketch(&'static str),
    #[error("count entries not strictly sorted by value")]
    UnsortedCounts,
    #[error("unique events exceed raw events")]
    Inconsistent,
}

/// An exact count map: `(value, count)` strictly sorted by value, no zero
/// count. A sorted vector rather than a tree: merges are linear, and it is
/// already the wire order.
pub type Counts = Vec<(u32, u64)>;

/// An exact aggregate; the in-memory form of `internal.Aggregate`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Aggregate {
    pub raw_events: u64,
    pub unique_events: u64,
    pub duplicates: u64,
    pub packets: u64,
    pub bytes: u64,
    pub late_events: u64,
    pub sources: SourceSketch,
    pub dst_ports: Counts,
    pub kinds: Counts,
    pub rules: Counts,
    /// (first, last) event time among unique events; `None` when there were none.
    pub seen: Option<(i64, i64)>,
    /// Unique events cut from `dst_ports` / `rules` by the count-entry cap.
    pub dst_ports_overflow: u64,
    pub rules_overflow: u64,
}

/// Adds `from` into `into` (both sorted by value; the result is too).
fn add_counts(into: &mut Counts, from: &[(u32, u64)]) {
    if from.is_empty() {
        return;
    }
    if into.is_empty() {
        into.extend_from_slice(from);
        return;
    }
    let mut out = Vec::with_capacity(into.len() + from.len());
    let (mut i, mut j) = (0, 0);
    while let (Some(&a), Some(&b)) = (into.get(i), from.get(j)) {
        if a.0 < b.0 {
            out.push(a);
            i += 1;
        } else if b.0 < a.0 {
            out.push(b);
            j += 1;
        } else {
            out.push((a.0, a.1.saturating_add(b.1)));
            i += 1;
            j += 1;
        }
    }
    out.extend_from_slice(into.get(i..).unwrap_or_default());
    out.extend_from_slice(from.get(j..).unwrap_or_default());
    *into = out;
}

/// Sorts `(value, count)` pairs by value and adds up equal values (saturating),
/// dropping zero counts: the canonical [`Counts`] of a bag of pairs.
pub fn counts_from_bag(mut bag: Vec<(u32, u64)>) -> Counts {
    if bag.len() > 1 {
        bag.sort_unstable_by_key(|e| e.0);
    }
    let mut w = 0usize;
    for r in 0..bag.len() {
        let Some(&(v, c)) = bag.get(r) else { break };
        if c == 0 {
            continue;
        }
        if w > 0
            && let Some(prev) = bag.get_mut(w - 1)
            && prev.0 == v
        {
            prev.1 = prev.1.saturating_add(c);
            continue;
        }
        if let Some(slot) = bag.get_mut(w) {
            *slot = (v, c);
        }
        w += 1;
    }
    bag.truncate(w);
    bag
}

/// The wire form of a count map.
pub fn counts_to_proto(m: &[(u32, u64)]) -> Vec<pb::CountEntry> {
    m.iter()
        .map(|&(value, count)| pb::CountEntry { value, count })
        .collect()
}

fn counts_from_proto(v: &[pb::CountEntry]) -> Result<Counts, AggregateError> {
    let mut out = Vec::with_capacity(v.len());
    let mut prev: Option<u32> = None;
    for e in v {
        if prev.is_some_and(|p| p >= e.value) {
            return Err(AggregateError::UnsortedCounts);
        }
        prev = Some(e.value);
        if e.count != 0 {
            out.push((e.value, e.count));
        }
    }
    Ok(out)
}

/// Top `TOP_K` entries by count descending, then value ascending.
pub fn top_k(m: &[(u32, u64)]) -> Vec<TopEntry> {
    let order = |a: &TopEntry, b: &TopEntry| b.count.cmp(&a.count).then(a.value.cmp(&b.value));
    let mut v: Vec<TopEntry> = m
        .iter()
        .filter(|e| e.1 > 0)
        .map(|&(value, count)| TopEntry { value, count })
        .collect();
    if v.len() > TOP_K {
        v.select_nth_unstable_by(TOP_K - 1, order);
        v.truncate(TOP_K);
    }
    v.sort_by(order);
    v
}

impl Aggregate {
    /// True when nothing was counted (no raw and no late event).
    pub fn is_empty(&self) -> bool {
        self.raw_events == 0 && self.late_events == 0
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Aggregate) {
        self.raw_events = self.raw_events.saturating_add(other.raw_events);
        self.unique_events = self.unique_events.saturating_add(other.unique_events);
        self.duplicates = self.duplicates.saturating_add(other.duplicates);
        self.packets = self.packets.saturating_add(other.packets);
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.late_events = self.late_events.saturating_add(other.late_events);
        self.sources.merge(&other.sources);
        add_counts(&mut self.dst_ports, &other.dst_ports);
        add_counts(&mut self.kinds, &other.kinds);
        add_counts(&mut self.rules, &other.rules);
        self.dst_ports_overflow = self
            .dst_ports_overflow
            .saturating_add(other.dst_ports_overflow);
        self.rules_overflow = self.rules_overflow.saturating_add(other.rules_overflow);
        self.seen = match (self.seen, other.seen) {
            (Some((f1, l1)), Some((f2, l2))) => Some((f1.min(f2), l1.max(l2))),
            (a, b) => a.or(b),
        };
    }

    /// The internal protobuf form.
    pub fn to_proto(&self) -> pb::Aggregate {
        let (first, last) = self.seen.unwrap_or((0, 0));
        pb::Aggregate {
            raw_events: self.raw_events,
            unique_events: self.unique_events,
            duplicates: self.duplicates,
            packets: self.packets,
            bytes: self.bytes,
            late_events: self.late_events,
            sources: Some(self.sources.to_proto()),
            dst_ports: counts_to_proto(&self.dst_ports),
            kinds: counts_to_proto(&self.kinds),
            rules: counts_to_proto(&self.rules),
            first_seen_ms: first,
            last_seen_ms: last,
            dst_ports_overflow: self.dst_ports_overflow,
            rules_overflow: self.rules_overflow,
        }
    }

    /// Parses the internal protobuf form, rejecting malformed content.
    pub fn from_proto(p: &pb::Aggregate) -> Result<Self, AggregateError> {
        if p.unique_events > p.raw_events {
            return Err(AggregateError::Inconsistent);
        }
        let sources = match &p.sources {
            Some(s) => SourceSketch::from_proto(s).map_err(AggregateError::BadSketch)?,
            None => SourceSketch::new(),
        };
        Ok(Aggregate {
            raw_events: p.raw_events,
            unique_events: p.unique_events,
            duplicates: p.duplicates,
            packets: p.packets,
            bytes: p.bytes,
            late_events: p.late_events,
            sources,
            dst_ports: counts_from_proto(&p.dst_ports)?,
            kinds: counts_from_proto(&p.kinds)?,
            rules: counts_from_proto(&p.rules)?,
            seen: (p.unique_events > 0).then_some((p.first_seen_ms, p.last_seen_ms)),
            dst_ports_overflow: p.dst_ports_overflow,
            rules_overflow: p.rules_overflow,
        })
    }

    /// The final, public rollup of this aggregate.
    pub fn to_rollup(
        &self,
        dimension: Dimension,
        key: &str,
        window_start_ms: i64,
        size_ms: i64,
    ) -> Rollup {
        let (first, last) = self.seen.unwrap_or((0, 0));
        Rollup {
            dimension: dimension as i32,
            key: key.to_owned(),
            window_start_ms,
            window_end_ms: window_start_ms.saturating_add(size_ms),
            raw_events: self.raw_events,
            unique_events: self.unique_events,
            duplicates: self.duplicates,
            packets: self.packets,
            bytes: self.bytes,
            late_events: self.late_events,
            distinct_sources: self.sources.estimate(),
            sources_sketch: self.sources.to_proto().encode_to_vec(),
            top_dst_ports: top_k(&self.dst_ports),
            top_kinds: top_k(&self.kinds),
            top_rules: top_k(&self.rules),
            first_seen_ms: first,
            last_seen_ms: last,
            dst_ports_overflow: self.dst_ports_overflow,
            rules_overflow: self.rules_overflow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_count_then_value() {
        let m: Counts = (0..20u32).map(|v| (v, u64::from(v % 3))).collect();
        let t = top_k(&m);
        assert_eq!(t.len(), TOP_K);
        assert_eq!((t[0].value, t[0].count), (2, 2));
        assert_eq!((t[1].value, t[1].count), (5, 2));
        assert!(t.iter().all(|e| e.count > 0));
    }

    #[test]
    fn counts_merge_and_bag_agree_with_a_tree() {
        use std::collections::BTreeMap;
        let a: Vec<(u32, u64)> = vec![(7, 1), (3, 2), (7, 4), (9, 0), (1, u64::MAX), (1, 5)];
        let mut tree: BTreeMap<u32, u64> = BTreeMap::new();
        for &(v, c) in &a {
            if c > 0 {
                let e = tree.entry(v).or_insert(0);
                *e = e.saturating_add(c);
            }
        }
        let bag = counts_from_bag(a.clone());
        assert_eq!(bag, tree.iter().map(|(&v, &c)| (v, c)).collect::<Vec<_>>());
        let mut merged = counts_from_bag(a[..3].to_vec());
        add_counts(&mut merged, &counts_from_bag(a[3..].to_vec()));
        assert_eq!(merged, bag);
    }

    #[test]
    fn unsorted_counts_rejected() {
        let p = pb::Aggregate {
            dst_ports: vec![
                pb::CountEntry { value: 5, count: 1 },
                pb::CountEntry { value: 5, count: 1 },
            ],
            ..Default::default()
        };
        assert_eq!(
            Aggregate::from_proto(&p),
            Err(AggregateError::UnsortedCounts)
        );
    }
}
