//! The per-window pre-aggregation cells of the ingest stage and their roll-up
//! into partials.
//!
//! Every event counted into a window updates exactly two cells:
//! - an **origin cell** keyed by (source prefix, interned origin). It rolls up
//!   into the origin prefix, ASN dimensions. Its sources are a 256-bit bitmap
//!   of the last octet (IPv4) or a list of source hashes (IPv6).
//! - a **sector cell** keyed by (origin country, target sector). It rolls up
//!   into the country, target sector and country × sector dimensions. Its
//!   sources are a `SourceSet` (hash set, then HLL registers) fed per unique event.
//!
//! Both cells see the same events, so a dimension may be rolled up from either;
//! each uses the one with fewer cells to merge. At realistic rates (tens of
//! thousands of events per second of event time, 60 s windows) an origin cell
//! receives tens to thousands of events per window and a sector cell thousands,
//! so a window close costs a small fraction of the per-event work.
//!
//! Count maps are open-addressing tables (`CountTable`); the roll-up gathers
//! their entries into bags and sorts each bag once per output row.

use rustc_hash::FxHashMap;

use crate::aggregate::counts_from_bag;
use crate::enrich::Origin;
use crate::proto::v1::Dimension;
use crate::proto::v1::internal as pb;
use crate::sketch::{SourceSet, SourceSketch, source_hash};

/// Tag bit of an IPv6 prefix in `OriginKey::prefix`.
pub(super) const V6_TAG: u64 = 1 << 63;

/// Key of an origin cell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct OriginKey {
    /// IPv4: the /24 as `a<<16 | b<<8 | c`; IPv6: the first 6 bytes | `V6_TAG`.
    pub prefix: u64,
    /// Index into the interned origins.
    pub origin: u32,
}

/// Key of a sector cell: `country[0] << 24 | country[1] << 16 | sector`.
pub(super) fn sector_key(country: [u8; 2], sector: u16) -> u32 {
    (u32::from(country[0]) << 24) | (u32::from(country[1]) << 16) | u32::from(sector)
}

fn sector_key_parts(k: u32) -> ([u8; 2], u16) {
    let [c0, c1, s0, s1] = k.to_be_bytes();
    ([c0, c1], u16::from_be_bytes([s0, s1]))
}

/// Exact count map `u32 -> u64`: linear probing in a power-of-two table,
/// a zero count marks an empty slot.
#[derive(Debug, Default)]
pub(super) struct CountTable {
    slots: Vec<(u32, u64)>,
    len: usize,
    /// `32 - log2(capacity)`.
    shift: u32,
}

impl CountTable {
    const FIRST_BITS: u32 = 3;

    #[inline]
    pub fn add(&mut self, v: u32) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = (v.wrapping_mul(0x9E37_79B1) >> self.shift) as usize;
        loop {
            match self.slots.get_mut(i) {
                Some(s) if s.1 == 0 => {
                    *s = (v, 1);
                    self.len += 1;
                    return;
                }
                Some(s) if s.0 == v => {
                    s.1 += 1;
                    return;
                }
                Some(_) => i = (i + 1) & mask,
                None => return,
            }
        }
    }

    #[cold]
    fn grow(&mut self) {
        let bits = if self.slots.is_empty() {
            Self::FIRST_BITS
        } else {
            32 - self.shift + 1
        };
        let old = std::mem::replace(&mut self.slots, vec![(0, 0); 1 << bits]);
        self.shift = 32 - bits;
        self.len = 0;
        let mask = self.slots.len() - 1;
        for (v, c) in old.into_iter().filter(|e| e.1 != 0) {
            let mut i = (v.wrapping_mul(0x9E37_79B1) >> self.shift) as usize;
            while let Some(s) = self.slots.get_mut(i) {
                if s.1 == 0 {
                    *s = (v, c);
                    self.len += 1;
                    break;
                }
                i = (i + 1) & mask;
            }
        }
    }

    /// Loads the home slot of `v` (see `WindowCells::touch`).
    #[inline]
    fn peek(&self, v: u32) -> u64 {
        let i = (v.wrapping_mul(0x9E37_79B1) >> self.shift) as usize;
        self.slots.get(i).map_or(0, |e| e.1)
    }

    /// Empties the table, keeping its capacity for the next window.
    fn clear(&mut self) {
        if self.len > 0 {
            self.slots.fill((0, 0));
            self.len = 0;
        }
    }

    fn extend_bag(&self, bag: &mut Vec<(u32, u64)>) {
        bag.extend(self.slots.iter().copied().filter(|e| e.1 != 0));
    }
}

/// Known `AttackKind` numbers are counted in an array (validation admits no
/// others; anything else goes to a table).
const KINDS: usize = 8;

/// What both kinds of cell count.
#[derive(Debug, Default)]
pub(super) struct Core {
    raw: u64,
    unique: u64,
    dups: u64,
    packets: u64,
    bytes: u64,
    late: u64,
    first: i64,
    last: i64,
    ports: CountTable,
    kinds: [u64; KINDS],
    other_kinds: CountTable,
    rules: CountTable,
}

/// The fields of a unique event that cells count.
#[derive(Clone, Copy, Debug)]
pub(super) struct Unique {
    pub time_ms: i64,
    pub packets: u64,
    pub bytes: u64,
    pub dst_port: u32,
    pub kind: u32,
    pub rule_id: u32,
}

impl Core {
    /// True when no event (raw or late) was counted.
    fn is_empty(&self) -> bool {
        self.raw == 0 && self.late == 0
    }

    /// Resets every counter, keeping the count tables' capacity.
    fn clear(&mut self) {
        let Core {
            raw,
            unique,
            dups,
            packets,
            bytes,
            late,
            first,
            last,
            ports,
            kinds,
            other_kinds,
            rules,
        } = self;
        *raw = 0;
        *unique = 0;
        *dups = 0;
        *packets = 0;
        *bytes = 0;
        *late = 0;
        *first = 0;
        *last = 0;
        ports.clear();
        *kinds = [0; KINDS];
        other_kinds.clear();
        rules.clear();
    }

    #[inline]
    pub fn add_late(&mut self) {
        self.late += 1;
    }

    #[inline]
    pub fn add_duplicate(&mut self) {
        self.raw += 1;
        self.dups += 1;
    }

    #[inline]
    pub fn add_unique(&mut self, u: &Unique) {
        let t = u.time_ms;
        if self.unique == 0 {
            self.first = t;
            self.last = t;
        } else {
            self.first = self.first.min(t);
            self.last = self.last.max(t);
        }
        self.raw += 1;
        self.unique += 1;
        self.packets = self.packets.saturating_add(u.packets.max(1));
        self.bytes = self.bytes.saturating_add(u.bytes);
        self.ports.add(u.dst_port);
        match self.kinds.get_mut(u.kind as usize) {
            Some(c) => *c += 1,
            None => self.other_kinds.add(u.kind),
        }
        self.rules.add(u.rule_id);
    }
}

/// Origin cell: see the module doc.
#[derive(Debug, Default)]
pub(super) struct OriginCell {
    pub core: Core,
    v4_bits: [u64; 4],
    v6_sources: Vec<u64>,
}

impl OriginCell {
    /// Records the source of a unique event (`src` is 4 or 16 bytes).
    #[inline]
    pub fn add_source(&mut self, src: &[u8], v6_hash: u64) {
        if let [_, _, _, last] = *src {
            if let Some(w) = self.v4_bits.get_mut(usize::from(last >> 6)) {
                *w |= 1u64 << (last & 63);
            }
        } else {
            self.v6_sources.push(v6_hash);
            if self.v6_sources.len() >= 64 && self.v6_sources.len().is_power_of_two() {
                self.v6_sources.sort_unstable();
                self.v6_sources.dedup();
            }
        }
    }

    fn clear(&mut self) {
        self.core.clear();
        self.v4_bits = [0; 4];
        self.v6_sources.clear();
    }

    fn sketch(&self, prefix: u64) -> SourceSketch {
        let mut hashes: Vec<u64> = if prefix & V6_TAG == 0 {
            let [_, p0, p1, p2] = (prefix as u32).to_be_bytes();
            let mut v =
                Vec::with_capacity(self.v4_bits.iter().map(|w| w.count_ones() as usize).sum());
            for (wi, word) in self.v4_bits.iter().enumerate() {
                let mut bits = *word;
                while bits != 0 {
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    let last = (wi as u32 * 64 + b) as u8;
                    v.push(source_hash(&[p0, p1, p2, last]));
                }
            }
            v
        } else {
            self.v6_sources.clone()
        };
        hashes.sort_unstable();
        hashes.dedup();
        let mut sk = SourceSketch::new();
        for h in hashes {
            sk.insert_hash(h);
        }
        sk
    }
}

/// Sector cell: see the module doc.
#[derive(Debug, Default)]
pub(super) struct SectorCell {
    pub core: Core,
    pub sources: SourceSet,
}

/// The cells of one open window: two slabs of cells, each with a map from
/// key to slab index.
///
/// The maps hold only indices, so they stay small enough to be mostly cached,
/// and the ingest loop can resolve every event's cells first, then touch
/// them a group at a time so their cache misses overlap ([`WindowCells::touch`]),
/// then update them.
///
/// After its roll-up a window's cells are recycled for a later window
/// ([`WindowCells::recycle`]): consecutive windows see mostly the same keys,
/// so the maps and count tables keep their capacity instead of being grown
/// again from empty, one allocation at a time, every window.
#[derive(Debug, Default)]
pub(super) struct WindowCells {
    origin_ids: FxHashMap<OriginKey, u32>,
    origin: Vec<(OriginKey, OriginCell)>,
    sector_ids: FxHashMap<u32, u32>,
    sector: Vec<(u32, SectorCell)>,
}

/// Slab indices of an event's origin and sector cells in one window.
pub(super) type CellIds = (u32, u32);

impl WindowCells {
    /// Empties every cell for reuse by another window. Cells that counted
    /// nothing in the window just rolled up are dropped, so the key set stays
    /// that of the last window.
    pub fn recycle(&mut self) {
        self.origin.retain_mut(|(_, c)| {
            let used = !c.core.is_empty();
            c.clear();
            used
        });
        self.sector.retain_mut(|(_, c)| {
            let used = !c.core.is_empty();
            c.core.clear();
            c.sources.clear();
            used
        });
        self.origin_ids.clear();
        self.origin_ids
            .extend(self.origin.iter().enumerate().map(|(i, e)| (e.0, i as u32)));
        self.sector_ids.clear();
        self.sector_ids
            .extend(self.sector.iter().enumerate().map(|(i, e)| (e.0, i as u32)));
    }

    /// The slab indices of the cells with these keys, created when missing.
    #[inline]
    pub fn ids(&mut self, ok: OriginKey, sk: u32) -> CellIds {
        let n = self.origin.len() as u32;
        let o = *self.origin_ids.entry(ok).or_insert(n);
        if o == n {
            self.origin.push((ok, OriginCell::default()));
        }
        let n = self.sector.len() as u32;
        let s = *self.sector_ids.entry(sk).or_insert(n);
        if s == n {
            self.sector.push((sk, SectorCell::default()));
        }
        (o, s)
    }

    /// The two cells at `ids` (from [`WindowCells::ids`]).
    #[inline]
    pub fn at(&mut self, ids: CellIds) -> Option<(&mut OriginCell, &mut SectorCell)> {
        let o = self.origin.get_mut(ids.0 as usize)?;
        let s = self.sector.get_mut(ids.1 as usize)?;
        Some((&mut o.1, &mut s.1))
    }

    /// The two cells an event with these keys updates.
    #[inline]
    pub fn cells_mut(
        &mut self,
        ok: OriginKey,
        sk: u32,
    ) -> Option<(&mut OriginCell, &mut SectorCell)> {
        let ids = self.ids(ok, sk);
        self.at(ids)
    }

    /// Loads the cells at `ids`: the first of two touch passes over a group
    /// of events before updating them (the cells hold the count tables'
    /// addresses, so tables are touched in a second pass, `touch_tables`),
    /// so the group's cache misses overlap. Returns a value only to keep the
    /// loads.
    #[inline]
    pub fn touch_cells(&self, ids: CellIds) -> u64 {
        let o = self.origin.get(ids.0 as usize).map_or(0, |c| c.1.core.raw);
        let s = self.sector.get(ids.1 as usize).map_or(0, |c| c.1.core.raw);
        o ^ s
    }

    /// Second touch pass: the home slots of the port and rule tables and the
    /// sketch word that counting `u` with source hash `h` will read.
    #[inline]
    pub fn touch_tables(&self, ids: CellIds, u: &Unique, h: u64) -> u64 {
        let mut acc = 0u64;
        if let Some((_, c)) = self.origin.get(ids.0 as usize) {
            acc ^= c.core.ports.peek(u.dst_port) ^ c.core.rules.peek(u.rule_id);
        }
        if let Some((_, c)) = self.sector.get(ids.1 as usize) {
            acc ^= c.core.ports.peek(u.dst_port) ^ c.core.rules.peek(u.rule_id) ^ c.sources.peek(h);
        }
        acc
    }
}

/// A row being rolled up: counters plus bags of count entries, sorted once
/// at the end.
#[derive(Debug, Default)]
struct Acc {
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

    fn into_proto(self) -> pb::Aggregate {
        let (first, last) = self.seen.unwrap_or((0, 0));
        let entries = |bag| {
            counts_from_bag(bag)
                .into_iter()
                .map(|(value, count)| pb::CountEntry { value, count })
                .collect()
        };
        pb::Aggregate {
            raw_events: self.raw,
            unique_events: self.unique,
            duplicates: self.dups,
            packets: self.packets,
            bytes: self.bytes,
            late_events: self.late,
            sources: Some(self.sources.to_proto()),
            dst_ports: entries(self.ports),
            kinds: entries(self.kinds),
            rules: entries(self.rules),
            first_seen_ms: first,
            last_seen_ms: last,
        }
    }
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

/// Rolls the cells of the window starting at `start` up into partials,
/// appended to `out` in (dimension, key) order.
pub(super) fn roll_up<'n>(
    cells: &WindowCells,
    start: i64,
    origins: &[Origin],
    sector_name: impl Fn(u16) -> &'n str,
    out: &mut Vec<pb::Partial>,
) {
    let mut asn: FxHashMap<u32, Acc> = FxHashMap::default();
    let mut prefix: FxHashMap<u64, Acc> = FxHashMap::default();
    for (k, c) in cells.origin.iter().filter(|(_, c)| !c.core.is_empty()) {
        let origin = origins
            .get(k.origin as usize)
            .copied()
            .unwrap_or(Origin::UNKNOWN);
        let sk = c.sketch(k.prefix);
        asn.entry(origin.asn).or_default().add(&c.core, &sk);
        prefix.entry(k.prefix).or_default().add(&c.core, &sk);
    }
    let mut country: FxHashMap<[u8; 2], Acc> = FxHashMap::default();
    let mut sector: FxHashMap<u16, Acc> = FxHashMap::default();
    let mut cs: Vec<(u32, Acc)> = Vec::with_capacity(cells.sector.len());
    for &(k, ref c) in cells.sector.iter().filter(|(_, c)| !c.core.is_empty()) {
        let (ctry, sec) = sector_key_parts(k);
        let sources = c.sources.to_sketch();
        country.entry(ctry).or_default().add(&c.core, &sources);
        sector.entry(sec).or_default().add(&c.core, &sources);
        let mut a = Acc::default();
        a.add(&c.core, &sources);
        cs.push((k, a));
    }

    let mut rows: Vec<(Dimension, String, Acc)> =
        Vec::with_capacity(country.len() + asn.len() + prefix.len() + sector.len() + cs.len());
    rows.extend(
        country
            .into_iter()
            .map(|(c, a)| (Dimension::OriginCountry, country_str(c), a)),
    );
    rows.extend(
        asn.into_iter()
            .map(|(n, a)| (Dimension::OriginAsn, format!("AS{n}"), a)),
    );
    rows.extend(
        prefix
            .into_iter()
            .map(|(p, a)| (Dimension::OriginPrefix, prefix_key(p), a)),
    );
    rows.extend(
        sector
            .into_iter()
            .map(|(s, a)| (Dimension::TargetSector, sector_name(s).to_owned(), a)),
    );
    rows.extend(cs.into_iter().map(|(k, a)| {
        let (c, s) = sector_key_parts(k);
        (
            Dimension::CountrySector,
            format!("{}|{}", country_str(c), sector_name(s)),
            a,
        )
    }));
    rows.sort_unstable_by(|a, b| (a.0 as i32, &a.1).cmp(&(b.0 as i32, &b.1)));
    // Distinct sector ids may share a name: merge equal (dimension, key) rows.
    let mut merged: Vec<(Dimension, String, Acc)> = Vec::with_capacity(rows.len());
    for r in rows {
        match merged.last_mut() {
            Some(last) if last.0 == r.0 && last.1 == r.1 => last.2.merge(r.2),
            _ => merged.push(r),
        }
    }
    out.reserve(merged.len());
    out.extend(
        merged
            .into_iter()
            .filter(|r| !r.2.is_empty())
            .map(|(d, key, a)| pb::Partial {
                dimension: d as i32,
                key,
                window_start_ms: start,
                aggregate: Some(a.into_proto()),
                // Set by the partition's ingest (`PartitionIngest::roll_up`).
                input_partition: 0,
            }),
    );
}
