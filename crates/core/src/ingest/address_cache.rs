//! The cell keys of an event: its source's origin (interned) and its target's
//! sector, looked up through the enricher behind caches keyed by IPv4 /24 or
//! address.
//!
//! An IPv4 source whose /24 is in the enricher's table of shared /24 origins
//! ([`Enricher::prefix24_origins`]) takes its origin from there: one load, and
//! the table's origin index maps to the interned one through a small array.
//! Other IPv4 answers are cached per /24 when the enricher says the whole /24
//! shares them ([`Enricher::origin_of_prefix24`]), else per address, so the
//! `Enricher` must be a pure function of the address. A cached origin carries
//! its country, so neither the interning map nor the interned origins are
//! read on a hit. IPv6 lookups always go to the enricher.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::cells::{OriginKey, V6_TAG, sector_key};
use crate::enrich::{Enricher, LookupCounts, Origin, Prefix24Origins};
use crate::event::EventView;
use crate::prefix_cache::{PrefixCache, PrefixKey};

/// Slots of each cache (each slot 16 bytes: 1 MiB per cache).
const ADDRESS_CACHE_SLOTS: usize = 1 << 16;

/// A cached origin: its interned id and (a copy of) its country.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CachedOrigin {
    id: u32,
    country: [u8; 2],
}

impl CachedOrigin {
    /// A slot of `AddressCache::table_ids` whose origin is not interned yet.
    const ABSENT: CachedOrigin = CachedOrigin {
        id: u32::MAX,
        country: [0; 2],
    };
}

/// Interned origins and the caches of origins and sectors.
#[derive(Debug)]
pub(super) struct AddressCache {
    /// Every origin seen, indexed by its interned id.
    origins: Vec<Origin>,
    origin_ids: FxHashMap<Origin, u32>,
    /// IPv4 source /24 (when shared) or address → interned origin.
    source_origins: PrefixCache<CachedOrigin>,
    /// IPv4 target /24 (when shared) or address → sector id.
    target_sectors: PrefixCache<u16>,
    /// The enricher's table of shared /24 origins, if it has one.
    table: Option<Arc<Prefix24Origins>>,
    /// Per origin of `table`: its interned origin ([`CachedOrigin::ABSENT`]
    /// until first seen).
    table_ids: Vec<CachedOrigin>,
    /// Per interned origin: sources the table answered with it since the
    /// last [`AddressCache::take_table_lookups`].
    table_answers: Vec<u64>,
    /// Lookups a table answered before it was replaced, not yet taken.
    replaced_lookups: LookupCounts,
}

fn ipv4(address: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(address).ok().map(u32::from_be_bytes)
}

/// The cached value under the /24 key of `address`, else under its address key.
#[inline]
fn cached<V: Copy>(cache: &PrefixCache<V>, address: u32) -> Option<V> {
    cache
        .get(PrefixKey::ipv4_prefix24(address))
        .or_else(|| cache.get(PrefixKey::ipv4_address(address)))
}

/// Caches `value` under the /24 key of `address` when the whole /24 shares it,
/// else under the address key.
#[inline]
fn remember<V: Copy>(cache: &mut PrefixCache<V>, address: u32, value: V, whole_prefix24: bool) {
    let key = if whole_prefix24 {
        PrefixKey::ipv4_prefix24(address)
    } else {
        PrefixKey::ipv4_address(address)
    };
    cache.insert(key, value);
}

impl AddressCache {
    pub(super) fn new() -> Self {
        AddressCache {
            origins: Vec::new(),
            origin_ids: FxHashMap::default(),
            source_origins: PrefixCache::new(ADDRESS_CACHE_SLOTS),
            target_sectors: PrefixCache::new(ADDRESS_CACHE_SLOTS),
            table: None,
            table_ids: Vec::new(),
            table_answers: Vec::new(),
            replaced_lookups: LookupCounts::default(),
        }
    }

    /// The lookups the table answered since the last call, counted as the
    /// enricher counts its own ([`Enricher::lookup_counts`]).
    pub(super) fn take_table_lookups(&mut self) -> LookupCounts {
        let mut counts = std::mem::take(&mut self.replaced_lookups);
        if let Some(table) = &self.table {
            for (origin, answers) in self.origins.iter().zip(&mut self.table_answers) {
                if *answers > 0 {
                    table.count(*origin, std::mem::take(answers), &mut counts);
                }
            }
        }
        counts
    }

    /// Takes the enricher's table of shared /24 origins (once per message:
    /// a different table, or none, replaces the one held).
    #[inline]
    pub(super) fn use_table(&mut self, table: Option<&Arc<Prefix24Origins>>) {
        let same = match (&self.table, table) {
            (Some(held), Some(new)) => Arc::ptr_eq(held, new),
            (None, None) => true,
            _ => false,
        };
        if !same {
            // Answers of the table held so far are counted with it.
            self.replaced_lookups = self.take_table_lookups();
            self.table_ids.clear();
            if let Some(t) = table {
                self.table_ids
                    .resize(t.origins().len(), CachedOrigin::ABSENT);
            }
            self.table = table.cloned();
        }
    }

    /// The origin of IPv4 `address` from the table, when its /24 is there.
    #[inline]
    fn table_origin(&mut self, address: u32) -> Option<CachedOrigin> {
        let table = self.table.as_ref()?;
        let index = table.get(address)? as usize;
        let mut held = *self.table_ids.get(index)?;
        if held == CachedOrigin::ABSENT {
            let origin = *table.origins().get(index)?;
            held = self.intern(normalize(origin));
            if let Some(slot) = self.table_ids.get_mut(index) {
                *slot = held;
            }
        }
        let id = held.id as usize;
        if id >= self.table_answers.len() {
            self.table_answers.resize(id + 1, 0);
        }
        if let Some(answers) = self.table_answers.get_mut(id) {
            *answers += 1;
        }
        Some(held)
    }

    /// Interned origins, indexed by id.
    pub(super) fn origins(&self) -> &[Origin] {
        &self.origins
    }

    /// Loads the /24 cache slots of every event's addresses, so that their
    /// misses overlap instead of stalling each event's key in turn.
    #[inline]
    pub(super) fn touch_all(&self, views: &[EventView<'_>]) {
        let mut touched = 0u64;
        for event in views {
            if let Some(address) = ipv4(event.src_ip) {
                touched ^= match &self.table {
                    Some(table) => u64::from(table.touch(address)),
                    None => self.source_origins.touch(PrefixKey::ipv4_prefix24(address)),
                };
            }
            if let Some(address) = ipv4(event.dst_ip) {
                touched ^= self.target_sectors.touch(PrefixKey::ipv4_prefix24(address));
            }
        }
        std::hint::black_box(touched);
    }

    /// The interned id of a normalised origin, with its country.
    #[inline]
    fn intern(&mut self, origin: Origin) -> CachedOrigin {
        let id = match self.origin_ids.get(&origin) {
            Some(&id) => id,
            None => {
                let id = self.origins.len() as u32;
                self.origins.push(origin);
                self.origin_ids.insert(origin, id);
                id
            }
        };
        CachedOrigin {
            id,
            country: origin.country,
        }
    }

    /// The keys of the origin cell and the sector cell `event` counts into.
    #[inline]
    pub(super) fn cell_key<E: Enricher + ?Sized>(
        &mut self,
        event: &EventView<'_>,
        enricher: &mut E,
    ) -> (OriginKey, u32) {
        let (prefix, origin) = match ipv4(event.src_ip) {
            Some(address) => {
                let origin = match self
                    .table_origin(address)
                    .or_else(|| cached(&self.source_origins, address))
                {
                    Some(origin) => origin,
                    None => {
                        let (origin, whole_prefix24) = enricher.origin_of_prefix24(event.src_ip);
                        let origin = self.intern(normalize(origin));
                        remember(&mut self.source_origins, address, origin, whole_prefix24);
                        origin
                    }
                };
                (u64::from(address >> 8), origin)
            }
            None => {
                let mut prefix48 = [0u8; 8];
                if let Some(first_six) = event.src_ip.get(..6) {
                    prefix48[2..8].copy_from_slice(first_six);
                }
                let origin = self.intern(normalize(enricher.origin(event.src_ip)));
                (u64::from_be_bytes(prefix48) | V6_TAG, origin)
            }
        };
        let sector = match ipv4(event.dst_ip) {
            Some(address) => match cached(&self.target_sectors, address) {
                Some(sector) => sector,
                None => {
                    let (sector, whole_prefix24) = enricher.sector_of_prefix24(event.dst_ip);
                    remember(&mut self.target_sectors, address, sector.0, whole_prefix24);
                    sector.0
                }
            },
            None => enricher.sector(event.dst_ip).0,
        };
        (
            OriginKey {
                prefix,
                origin: origin.id,
            },
            sector_key(origin.country, sector),
        )
    }
}

/// Country bytes normalised to what `country_str` returns, so the compact key
/// maps one-to-one onto the key string.
fn normalize(origin: Origin) -> Origin {
    let country = match origin.country_str().as_bytes() {
        &[a, b] => [a, b],
        _ => *b"ZZ",
    };
    Origin {
        country,
        asn: origin.asn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::SectorId;

    /// Origin by the address's second octet, except that the /24s with third
    /// octet 7 split by the last octet (and say so: not shared); sector by
    /// the third octet of the target, shared unless the third octet is 7.
    /// Counts the lookups.
    #[derive(Default)]
    struct Splitting {
        origin_calls: usize,
        sector_calls: usize,
        table: Option<Arc<Prefix24Origins>>,
    }

    fn expected_origin(src: &[u8]) -> Origin {
        match *src {
            [_, _, 7, d] => Origin {
                country: [b'A' + d % 26, b'B'],
                asn: u32::from(d),
            },
            [_, b, _, _] => Origin {
                country: [b'A' + b % 26, b'A'],
                asn: 1000 + u32::from(b),
            },
            _ => Origin::UNKNOWN,
        }
    }

    fn expected_sector(dst: &[u8]) -> u16 {
        match *dst {
            [_, _, 7, d] => u16::from(d % 5) + 1,
            [_, _, c, _] => u16::from(c % 3) + 1,
            _ => 0,
        }
    }

    impl Enricher for Splitting {
        fn origin(&mut self, src: &[u8]) -> Origin {
            self.origin_calls += 1;
            expected_origin(src)
        }
        fn sector(&mut self, dst: &[u8]) -> SectorId {
            self.sector_calls += 1;
            SectorId(expected_sector(dst))
        }
        fn origin_of_prefix24(&mut self, src: &[u8]) -> (Origin, bool) {
            (self.origin(src), src.len() == 4 && src.get(2) != Some(&7))
        }
        fn sector_of_prefix24(&mut self, dst: &[u8]) -> (SectorId, bool) {
            (self.sector(dst), dst.len() == 4 && dst.get(2) != Some(&7))
        }
        fn sector_name(&self, _: SectorId) -> &str {
            "x"
        }
        fn prefix24_origins(&self) -> Option<&Arc<Prefix24Origins>> {
            self.table.as_ref()
        }
    }

    /// A table of `Splitting`'s shared /24s under 10.0.0.0/14 (third octet
    /// not 7), its origins listed in reverse order of first use so table
    /// indices differ from interned ids; and one /24 of 11.0.0.0 whose
    /// country is not two letters (normalised like any lookup).
    fn splitting_table() -> Prefix24Origins {
        let mut slots = vec![0u32; Prefix24Origins::PREFIXES];
        let mut origins: Vec<Origin> = (0..4u8)
            .rev()
            .map(|b| expected_origin(&[10, b, 0, 0]))
            .collect();
        for b in 0..4u32 {
            for c in (0..256u32).filter(|&c| c != 7) {
                if let Some(slot) = slots.get_mut(((10 << 16) | (b << 8) | c) as usize) {
                    *slot = 4 - b;
                }
            }
        }
        origins.push(Origin {
            country: *b"x1",
            asn: 7,
        });
        if let Some(slot) = slots.get_mut(11 << 16) {
            *slot = 5;
        }
        Prefix24Origins::new(slots, origins).expect("a valid table")
    }

    /// With a table, the keys are those of direct lookups, and the enricher
    /// is asked only for the addresses of /24s the table leaves out.
    #[test]
    fn a_table_answers_its_prefixes_and_lookups_answer_the_rest() {
        let mut cache = AddressCache::new();
        let mut enricher = Splitting {
            table: Some(Arc::new(splitting_table())),
            ..Splitting::default()
        };
        let mut asked = 0;
        for round in 0..2u8 {
            for src in (0..4u8)
                .flat_map(|b| [1u8, 7, 200].map(|c| [10, b, c, round]))
                .chain([[11, 0, 0, round]])
            {
                cache.use_table(enricher.prefix24_origins());
                let event = EventView {
                    src_ip: &src,
                    dst_ip: &[192, 0, 1, 1],
                    ..EventView::default()
                };
                let (origin_key, _) = cache.cell_key(&event, &mut enricher);
                let want = match src {
                    [11, ..] => Origin {
                        country: *b"ZZ",
                        asn: 7,
                    },
                    _ => normalize(expected_origin(&src)),
                };
                assert_eq!(
                    cache.origins().get(origin_key.origin as usize),
                    Some(&want),
                    "{src:?}"
                );
                asked += usize::from(src[2] == 7);
                assert_eq!(enricher.origin_calls, asked, "{src:?}");
            }
        }
        // Counted as the enricher counts: 16 answers of known countries and
        // ASNs, 2 of 11.0.0.0/24 with a country that normalises to ZZ; taken
        // once, even across a change of table.
        let want = LookupCounts {
            country_hits: 16,
            country_misses: 2,
            asn_hits: 18,
            ..LookupCounts::default()
        };
        // Dropping the table sends every /24 to the enricher (and its cache).
        enricher.table = None;
        cache.use_table(None);
        assert_eq!(cache.take_table_lookups(), want);
        assert_eq!(cache.take_table_lookups(), LookupCounts::default());
        let event = EventView {
            src_ip: &[10, 3, 200, 9],
            dst_ip: &[192, 0, 1, 1],
            ..EventView::default()
        };
        let (origin_key, _) = cache.cell_key(&event, &mut enricher);
        assert_eq!(enricher.origin_calls, asked + 1);
        assert_eq!(
            cache.origins().get(origin_key.origin as usize),
            Some(&normalize(expected_origin(&[10, 3, 0, 0])))
        );
    }

    #[test]
    fn a_table_needs_a_slot_per_prefix_and_valid_indices() {
        assert!(Prefix24Origins::new(vec![0; 10], vec![]).is_none());
        let mut slots = vec![0u32; Prefix24Origins::PREFIXES];
        if let Some(s) = slots.last_mut() {
            *s = 2;
        }
        assert!(Prefix24Origins::new(slots.clone(), vec![Origin::UNKNOWN]).is_none());
        let table = Prefix24Origins::new(slots, vec![Origin::UNKNOWN; 2]).expect("valid");
        assert_eq!(table.get(u32::MAX), Some(1));
        assert_eq!(table.get(0), None);
    }

    #[test]
    fn keys_equal_direct_lookups_and_shared_prefixes_are_looked_up_once() {
        let mut cache = AddressCache::new();
        let mut enricher = Splitting::default();
        let mut sources = Vec::new();
        for round in 0..3u8 {
            for b in 0..4u8 {
                for c in [1u8, 7] {
                    for d in 0..50u8 {
                        sources.push([10, b, c, d.wrapping_mul(5).wrapping_add(round)]);
                    }
                }
            }
        }
        for (i, src) in sources.iter().enumerate() {
            let dst = [192, 0, src[2], (i % 256) as u8];
            let event = EventView {
                src_ip: src,
                dst_ip: &dst,
                ..EventView::default()
            };
            let (origin_key, sector) = cache.cell_key(&event, &mut enricher);
            let want = normalize(expected_origin(src));
            assert_eq!(
                cache.origins().get(origin_key.origin as usize),
                Some(&want),
                "{src:?}"
            );
            assert_eq!(origin_key.prefix, u64::from(u32::from_be_bytes(*src) >> 8));
            assert_eq!(sector, sector_key(want.country, expected_sector(&dst)));
        }
        // Shared /24s (third octet 1): one origin lookup each (4 of them).
        // Split /24s: one per distinct address (4 × 150 addresses).
        let split_addresses: std::collections::HashSet<_> =
            sources.iter().filter(|s| s[2] == 7).collect();
        assert_eq!(enricher.origin_calls, 4 + split_addresses.len());
        // Targets 192.0.1.x share one /24; 192.0.7.x split by address.
        let split_targets: std::collections::HashSet<_> = sources
            .iter()
            .enumerate()
            .filter(|(_, s)| s[2] == 7)
            .map(|(i, _)| i % 256)
            .collect();
        assert_eq!(enricher.sector_calls, 1 + split_targets.len());
    }
}
