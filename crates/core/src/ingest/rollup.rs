//! The roll-up of a closed window's cells into partials, one per
//! (dimension, key), with the published-key budget applied to the origin
//! prefix and ASN dimensions and the count-entry cap to every partial
//! (`crate::budget`).

use std::hash::Hash;

use rustc_hash::{FxHashMap, FxHashSet};

use super::cells::{Core, OTHER_PREFIX, OriginKey, V6_TAG, WindowCells, sector_key_parts};
use crate::aggregate::{counts_from_bag, counts_to_proto};
use crate::budget::{KeyBudget, cap_counts, other_key};
use crate::enrich::Origin;
use crate::proto::v1::Dimension;
use crate::proto::v1::internal as pb;
use crate::sketch::SourceSketch;

/// What the budgets changed in one roll-up (for metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct RollUpStats {
    /// Origin prefixes and ASNs folded into `other:<country>` by
    /// `publish_top_keys`.
    pub folded_keys: u64,
    /// Port or rule maps cut to `count_entries`.
    pub capped_count_maps: u64,
}

/// A row being rolled up: counters plus bags of count entries, sorted once
/// at the end.
#[derive(Debug, Default)]
pub(super) struct Acc {
    raw: u64,
    unique: u64,
    dups: u64,
    packets: u64,
    bytes: u64,
    late: u64,
    seen: Option<(i64, i64)>,
    sources: SourceSketch,
    ports: Vec<(u32, u64)>,
    kinds: Vec<(u32, u64)>,
    rules: Vec<(u32, u64)>,
}

impl Acc {
    /// [`Acc::add`] taking the sketch: a row's first cell hands its sketch
    /// over instead of copying it.
    fn add_owned(&mut self, c: &Core, sources: SourceSketch) {
        if self.sources.is_exact() && self.sources.estimate() == 0 {
            self.sources = sources;
            self.add(c, &SourceSketch::new());
        } else {
            self.add(c, &sources);
        }
    }

    fn add(&mut self, c: &Core, sources: &SourceSketch) {
        self.raw = self.raw.saturating_add(c.raw);
        self.unique = self.unique.saturating_add(c.unique);
        self.dups = self.dups.saturating_add(c.dups);
        self.packets = self.packets.saturating_add(c.packets);
        self.bytes = self.bytes.saturating_add(c.bytes);
        self.late = self.late.saturating_add(c.late);
        if c.unique > 0 {
            self.seen = Some(match self.seen {
                Some((f, l)) => (f.min(c.first), l.max(c.last)),
                None => (c.first, c.last),
            });
        }
        self.sources.merge(sources);
        c.ports.extend_bag(&mut self.ports);
        self.kinds.extend(
            c.kinds
                .iter()
                .enumerate()
                .filter(|e| *e.1 != 0)
                .map(|(k, &n)| (k as u32, n)),
        );
        c.other_kinds.extend_bag(&mut self.kinds);
        c.rules.extend_bag(&mut self.rules);
    }

    fn merge(&mut self, o: Acc) {
        self.raw = self.raw.saturating_add(o.raw);
        self.unique = self.unique.saturating_add(o.unique);
        self.dups = self.dups.saturating_add(o.dups);
        self.packets = self.packets.saturating_add(o.packets);
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.late = self.late.saturating_add(o.late);
        self.seen = match (self.seen, o.seen) {
            (Some((f1, l1)), Some((f2, l2))) => Some((f1.min(f2), l1.max(l2))),
            (a, b) => a.or(b),
        };
        self.sources.merge(&o.sources);
        self.ports.extend(o.ports);
        self.kinds.extend(o.kinds);
        self.rules.extend(o.rules);
    }

    fn is_empty(&self) -> bool {
        self.raw == 0 && self.late == 0
    }

    /// The partial's aggregate, its port and rule maps capped at
    /// `count_entries` (`budget::cap_counts`); counts in `stats` the maps
    /// that were cut.
    fn into_proto(self, count_entries: usize, stats: &mut RollUpStats) -> pb::Aggregate {
        let (first, last) = self.seen.unwrap_or((0, 0));
        let mut ports = counts_from_bag(self.ports);
        let mut rules = counts_from_bag(self.rules);
        let dst_ports_overflow = cap_counts(&mut ports, count_entries);
        let rules_overflow = cap_counts(&mut rules, count_entries);
        stats.capped_count_maps +=
            u64::from(dst_ports_overflow > 0) + u64::from(rules_overflow > 0);
        pb::Aggregate {
            raw_events: self.raw,
            unique_events: self.unique,
            duplicates: self.dups,
            packets: self.packets,
            bytes: self.bytes,
            late_events: self.late,
            sources: Some(self.sources.to_proto()),
            dst_ports: counts_to_proto(&ports),
            kinds: counts_to_proto(&counts_from_bag(self.kinds)),
            rules: counts_to_proto(&rules),
            first_seen_ms: first,
            last_seen_ms: last,
            dst_ports_overflow,
            rules_overflow,
        }
    }
}

/// The key string of an origin ASN.
fn asn_key(asn: u32) -> String {
    format!("AS{asn}")
}

/// The key string of an origin prefix.
fn prefix_key(prefix: u64) -> String {
    if prefix & V6_TAG != 0 {
        let mut b = [0u8; 16];
        let p = (prefix & !V6_TAG).to_be_bytes();
        b[..6].copy_from_slice(&p[2..8]);
        format!("{}/48", std::net::Ipv6Addr::from(b))
    } else {
        let [_, a, b, c] = (prefix as u32).to_be_bytes();
        format!("{a}.{b}.{c}.0/24")
    }
}

fn country_str(c: [u8; 2]) -> String {
    Origin { country: c, asn: 0 }.country_str().to_owned()
}

/// Parts of one origin dimension: the events of each published key split by
/// origin country (`None`: the keys folded by the published-key budget and
/// the `other` cells, one part per country), as an index into the roll-up's
/// `Acc` arena.
type CountryParts<K> = FxHashMap<(Option<K>, [u8; 2]), u32>;

/// A row of the roll-up: its dimension, key and `Acc` (an index into the
/// arena, so sorting rows moves 32 bytes, not a whole `Acc`).
type Row = (Dimension, String, u32);

/// The `Acc` of `key` in `parts`, created in `accs` when missing.
fn acc_of<'a, K: Eq + Hash>(
    parts: &mut FxHashMap<K, u32>,
    accs: &'a mut Vec<Acc>,
    key: K,
) -> Option<&'a mut Acc> {
    let i = *parts.entry(key).or_insert_with(|| {
        accs.push(Acc::default());
        (accs.len() - 1) as u32
    });
    accs.get_mut(i as usize)
}

/// The `top` keys with the most events (raw + late, summed over the key's
/// cells; ties by the smaller key string), or `None` when there are no more
/// than `top` keys (every key keeps its row). Counts the others in `stats`.
fn top_keys<K: Copy + Eq + Hash>(
    events: impl Iterator<Item = (K, u64)>,
    name: impl Fn(K) -> String,
    top: usize,
    stats: &mut RollUpStats,
) -> Option<FxHashSet<K>> {
    let mut totals: FxHashMap<K, u64> = FxHashMap::default();
    for (key, n) in events {
        let total = totals.entry(key).or_default();
        *total = total.saturating_add(n);
    }
    if totals.len() <= top {
        return None;
    }
    let mut ranked: Vec<(u64, String, K)> =
        totals.into_iter().map(|(k, n)| (n, name(k), k)).collect();
    ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    stats.folded_keys += ranked.len().saturating_sub(top) as u64;
    ranked.truncate(top);
    Some(ranked.into_iter().map(|(_, _, k)| k).collect())
}

/// Whether `key` keeps its row (`None`: every key does).
fn kept<K: Eq + Hash>(set: &Option<FxHashSet<K>>, key: K) -> bool {
    set.as_ref().is_none_or(|s| s.contains(&key))
}

/// The row key of a part: its own key, or `other:<country>` for the parts
/// of folded keys and of `other` cells (`None`).
fn row_key<K>(key: Option<K>, country: [u8; 2], name: impl Fn(K) -> String) -> String {
    match key {
        Some(key) => name(key),
        None => other_key(&country_str(country)),
    }
}

/// Rolls the cells of the window starting at `start` up into partials,
/// appended to `out` in (dimension, key) order.
pub(super) fn roll_up<'n>(
    cells: &WindowCells,
    start: i64,
    origins: &[Origin],
    sector_name: impl Fn(u16) -> &'n str,
    keys: &KeyBudget,
    out: &mut Vec<pb::Partial>,
) -> RollUpStats {
    let mut stats = RollUpStats::default();
    let origin_of = |k: &OriginKey| {
        origins
            .get(k.origin as usize)
            .copied()
            .unwrap_or(Origin::UNKNOWN)
    };
    let used = || cells.origin.iter().filter(|(_, c)| !c.core.is_empty());
    let events = |c: &Core| c.raw.saturating_add(c.late);
    // Which keys keep their row is decided first, from the cells' counts, so
    // the cells of folded keys go straight into their `other:<country>` row.
    let top = keys.publish_top_keys;
    let (kept_asns, kept_prefixes) = if used().count() > top {
        (
            top_keys(
                used().map(|(k, c)| (origin_of(k).asn, events(&c.core))),
                asn_key,
                top,
                &mut stats,
            ),
            top_keys(
                used()
                    .filter(|(k, _)| k.prefix != OTHER_PREFIX)
                    .map(|(k, c)| (k.prefix, events(&c.core))),
                prefix_key,
                top,
                &mut stats,
            ),
        )
    } else {
        (None, None)
    };
    let mut accs: Vec<Acc> = Vec::with_capacity(2 * cells.origin.len() + 3 * cells.sector.len());
    let mut asn: CountryParts<u32> = FxHashMap::default();
    let mut prefix: CountryParts<u64> = FxHashMap::default();
    for (k, c) in used() {
        let origin = origin_of(k);
        let sk = c.sketch(k.prefix);
        let asn_id = kept(&kept_asns, origin.asn).then_some(origin.asn);
        if let Some(a) = acc_of(&mut asn, &mut accs, (asn_id, origin.country)) {
            a.add(&c.core, &sk);
        }
        let prefix_id =
            (k.prefix != OTHER_PREFIX && kept(&kept_prefixes, k.prefix)).then_some(k.prefix);
        if let Some(a) = acc_of(&mut prefix, &mut accs, (prefix_id, origin.country)) {
            a.add_owned(&c.core, sk);
        }
    }
    let mut country: FxHashMap<[u8; 2], u32> = FxHashMap::default();
    let mut sector: FxHashMap<u16, u32> = FxHashMap::default();
    let mut rows: Vec<Row> = Vec::with_capacity(accs.len() + 3 * cells.sector.len());
    for &(k, ref c) in cells.sector.iter().filter(|(_, c)| !c.core.is_empty()) {
        let (ctry, sec) = sector_key_parts(k);
        let sources = c.sources.to_sketch();
        if let Some(a) = acc_of(&mut country, &mut accs, ctry) {
            a.add(&c.core, &sources);
        }
        if let Some(a) = acc_of(&mut sector, &mut accs, sec) {
            a.add(&c.core, &sources);
        }
        let mut a = Acc::default();
        a.add_owned(&c.core, sources);
        accs.push(a);
        rows.push((
            Dimension::CountrySector,
            format!("{}|{}", country_str(ctry), sector_name(sec)),
            (accs.len() - 1) as u32,
        ));
    }
    rows.extend(
        country
            .into_iter()
            .map(|(c, a)| (Dimension::OriginCountry, country_str(c), a)),
    );
    rows.extend(
        asn.into_iter()
            .map(|((key, country), a)| (Dimension::OriginAsn, row_key(key, country, asn_key), a)),
    );
    rows.extend(prefix.into_iter().map(|((key, country), a)| {
        (
            Dimension::OriginPrefix,
            row_key(key, country, prefix_key),
            a,
        )
    }));
    rows.extend(
        sector
            .into_iter()
            .map(|(s, a)| (Dimension::TargetSector, sector_name(s).to_owned(), a)),
    );
    rows.sort_unstable_by(|a, b| (a.0 as i32, &a.1).cmp(&(b.0 as i32, &b.1)));
    // Distinct sector ids may share a name, a key may span countries, folded
    // keys share their `other` key: merge equal (dimension, key) rows.
    let mut merged: Vec<Row> = Vec::with_capacity(rows.len());
    for r in rows {
        match merged.last_mut() {
            Some(last) if last.0 == r.0 && last.1 == r.1 => {
                let from = accs.get_mut(r.2 as usize).map(std::mem::take);
                if let (Some(from), Some(into)) = (from, accs.get_mut(last.2 as usize)) {
                    into.merge(from);
                }
            }
            _ => merged.push(r),
        }
    }
    out.reserve(merged.len());
    for (d, key, a) in merged {
        let Some(a) = accs.get_mut(a as usize).map(std::mem::take) else {
            continue;
        };
        if a.is_empty() {
            continue;
        }
        out.push(pb::Partial {
            dimension: d as i32,
            key,
            window_start_ms: start,
            aggregate: Some(a.into_proto(keys.count_entries, &mut stats)),
            // Set by the partition's ingest (`PartitionIngest::roll_up`).
            input_partition: 0,
        });
    }
    stats
}
