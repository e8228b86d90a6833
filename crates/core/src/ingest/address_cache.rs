//! The cell keys of an event: its source's origin (interned) and its target's
//! sector, looked up through the enricher behind caches keyed by IPv4 /24 or
//! address.
//!
//! IPv4 answers are cached per /24 when the enricher says the whole /24 shares
//! them ([`Enricher::origin_of_prefix24`]), else per address, so the
//! `Enricher` must be a pure function of the address. A cached origin carries
//! its country, so neither the interning map nor the interned origins are
//! read on a hit. IPv6 lookups always go to the enricher.

use rustc_hash::FxHashMap;

use super::cells::{OriginKey, V6_TAG, sector_key};
use crate::enrich::{Enricher, Origin};
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
        }
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
                touched ^= self.source_origins.touch(PrefixKey::ipv4_prefix24(address));
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
                let origin = match cached(&self.source_origins, address) {
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
