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
//! A window admits at most `KeyBudget::prefix_cells` origin cells; an event
//! of a further prefix counts in its origin's `other` cell (key prefix
//! [`OTHER_PREFIX`]), so memory stays bounded and totals exact
//! (`crate::budget`).
//!
//! Count maps are open-addressing tables (`CountTable`); the roll-up
//! (`rollup.rs`) gathers their entries into bags and sorts each bag once per
//! output row.

use rustc_hash::FxHashMap;

use crate::sketch::{SourceSet, SourceSketch, source_hash};

/// Tag bit of an IPv6 prefix in `OriginKey::prefix`.
pub(super) const V6_TAG: u64 = 1 << 63;

/// `OriginKey::prefix` of an origin's `other` cell: the events of prefixes
/// beyond the window's budget.
pub(super) const OTHER_PREFIX: u64 = 1 << 62;

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

pub(super) fn sector_key_parts(k: u32) -> ([u8; 2], u16) {
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

    pub(super) fn extend_bag(&self, bag: &mut Vec<(u32, u64)>) {
        bag.extend(self.slots.iter().copied().filter(|e| e.1 != 0));
    }
}

/// Known `AttackKind` numbers are counted in an array (validation admits no
/// others; anything else goes to a table).
pub(super) const KINDS: usize = 8;

/// What both kinds of cell count.
#[derive(Debug, Default)]
pub(super) struct Core {
    pub(super) raw: u64,
    pub(super) unique: u64,
    pub(super) dups: u64,
    pub(super) packets: u64,
    pub(super) bytes: u64,
    pub(super) late: u64,
    pub(super) first: i64,
    pub(super) last: i64,
    pub(super) ports: CountTable,
    pub(super) kinds: [u64; KINDS],
    pub(super) other_kinds: CountTable,
    pub(super) rules: CountTable,
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
    pub(super) fn is_empty(&self) -> bool {
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
    /// The sources of an `other` cell (many prefixes): a bounded set.
    spread_sources: Option<Box<SourceSet>>,
}

impl OriginCell {
    /// Records the source of a unique event (`src` is 4 or 16 bytes, `hash`
    /// its `source_hash`).
    #[inline]
    pub fn add_source(&mut self, src: &[u8], hash: u64) {
        if let Some(sources) = &mut self.spread_sources {
            sources.insert_hash(hash);
        } else if let [_, _, _, last] = *src {
            if let Some(w) = self.v4_bits.get_mut(usize::from(last >> 6)) {
                *w |= 1u64 << (last & 63);
            }
        } else {
            self.v6_sources.push(hash);
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
        if let Some(sources) = &mut self.spread_sources {
            sources.clear();
        }
    }

    pub(super) fn sketch(&self, prefix: u64) -> SourceSketch {
        if let Some(sources) = &self.spread_sources {
            return sources.to_sketch();
        }
        let hashes: Vec<u64> = if prefix & V6_TAG == 0 {
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
        SourceSketch::from_hashes(hashes)
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
    pub(super) origin: Vec<(OriginKey, OriginCell)>,
    sector_ids: FxHashMap<u32, u32>,
    pub(super) sector: Vec<(u32, SectorCell)>,
    /// One bit per origin cell: counted into in the current window (a
    /// recycled cell starts clear and is admitted again only within the
    /// budget). Apart from the cells, so the check of an event's cell does
    /// not wait for the cell's cache line (`ids` runs one event at a time).
    touched: Vec<u64>,
    /// Origin cells (not `other`) counted into in this window.
    admitted: usize,
    /// Events of this window counted into an `other` cell because the
    /// budget was full.
    pub(super) over_budget_events: u64,
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
        self.touched.clear();
        self.touched.resize(self.origin.len().div_ceil(64), 0);
        self.admitted = 0;
        self.over_budget_events = 0;
    }

    /// The slab indices of the cells with these keys, created when missing.
    /// An origin cell not yet counted into in this window is admitted while
    /// fewer than `prefix_cells` are; beyond, the event counts in the `other`
    /// cell of its origin.
    #[inline]
    pub fn ids(&mut self, ok: OriginKey, sk: u32, prefix_cells: usize) -> CellIds {
        let o = match self.origin_ids.get(&ok) {
            Some(&o) if self.is_touched(o) => o,
            Some(&o) if self.admitted < prefix_cells => {
                self.touch(o);
                self.admitted += 1;
                o
            }
            None if self.admitted < prefix_cells => {
                let o = self.origin.len() as u32;
                self.origin_ids.insert(ok, o);
                self.origin.push((ok, OriginCell::default()));
                self.touch(o);
                self.admitted += 1;
                o
            }
            _ => self.other_id(ok.origin),
        };
        let n = self.sector.len() as u32;
        let s = *self.sector_ids.entry(sk).or_insert(n);
        if s == n {
            self.sector.push((sk, SectorCell::default()));
        }
        (o, s)
    }

    /// The `other` cell of `origin` (created when missing), for an event
    /// over the budget.
    #[cold]
    fn other_id(&mut self, origin: u32) -> u32 {
        self.over_budget_events += 1;
        let key = OriginKey {
            prefix: OTHER_PREFIX,
            origin,
        };
        let n = self.origin.len() as u32;
        let o = *self.origin_ids.entry(key).or_insert(n);
        if o == n {
            self.origin.push((
                key,
                OriginCell {
                    spread_sources: Some(Box::default()),
                    ..OriginCell::default()
                },
            ));
        }
        self.touch(o);
        o
    }

    #[inline]
    fn is_touched(&self, o: u32) -> bool {
        self.touched
            .get(o as usize / 64)
            .is_some_and(|w| w & (1 << (o % 64)) != 0)
    }

    /// Marks origin cell `o` counted into (growing the bits with the slab).
    #[inline]
    fn touch(&mut self, o: u32) {
        let word = o as usize / 64;
        if word >= self.touched.len() {
            self.touched.resize(word + 1, 0);
        }
        if let Some(w) = self.touched.get_mut(word) {
            *w |= 1 << (o % 64);
        }
    }

    /// Loads the map entries [`WindowCells::ids`] will read for these keys
    /// (a touch pass, see [`WindowCells::touch_cells`]).
    #[inline]
    pub fn touch_ids(&self, ok: OriginKey, sk: u32) -> u32 {
        self.origin_ids.get(&ok).copied().unwrap_or(0)
            ^ self.sector_ids.get(&sk).copied().unwrap_or(0)
    }

    /// The two cells at `ids` (from [`WindowCells::ids`]).
    #[inline]
    pub fn at(&mut self, ids: CellIds) -> Option<(&mut OriginCell, &mut SectorCell)> {
        let o = self.origin.get_mut(ids.0 as usize)?;
        let s = self.sector.get_mut(ids.1 as usize)?;
        Some((&mut o.1, &mut s.1))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Cells over the budget land in one `other` cell per origin: 1000
    /// prefixes of one origin and 10 of another with a budget of 8 keep 8
    /// cells plus two `other` cells, and every event lands in one of them.
    #[test]
    fn budget_bounds_origin_cells() {
        let mut cells = WindowCells::default();
        for p in 0..1000u64 {
            let (o, _) = cells.ids(
                OriginKey {
                    prefix: p,
                    origin: 0,
                },
                0,
                8,
            );
            assert!((o as usize) < 10, "cell {o} for prefix {p}");
        }
        for p in 0..10u64 {
            cells.ids(
                OriginKey {
                    prefix: p << 8,
                    origin: 1,
                },
                0,
                8,
            );
        }
        assert_eq!(cells.origin.len(), 10);
        assert_eq!(cells.over_budget_events, 1000 - 8 + 10);
        let others: Vec<OriginKey> = cells
            .origin
            .iter()
            .map(|e| e.0)
            .filter(|k| k.prefix == OTHER_PREFIX)
            .collect();
        assert_eq!(others.len(), 2);
        // A recycled window admits anew, in its own event order.
        for (_, c) in cells.origin.iter_mut() {
            c.core.add_late();
        }
        cells.recycle();
        let (o, _) = cells.ids(
            OriginKey {
                prefix: 5000,
                origin: 0,
            },
            0,
            8,
        );
        assert!(
            cells
                .origin
                .get(o as usize)
                .is_some_and(|e| e.0.prefix == 5000)
        );
    }

    #[test]
    fn cell_bytes_estimate_covers_the_types() {
        let slab = std::mem::size_of::<(OriginKey, OriginCell)>();
        let index = std::mem::size_of::<(OriginKey, u32)>() + 1;
        let tables = 2 * (1usize << CountTable::FIRST_BITS) * std::mem::size_of::<(u32, u64)>();
        assert!(
            slab + index + tables <= crate::budget::ORIGIN_CELL_BYTES,
            "{slab} + {index} + {tables}"
        );
    }
}
