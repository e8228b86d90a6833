//! The cell keys of an event: its source's origin (interned) and its target's
//! sector, looked up through the enricher behind per-address caches.
//!
//! IPv4 answers are cached per address, so the `Enricher` must be a pure
//! function of the address; IPv6 lookups always go to the enricher.

use rustc_hash::FxHashMap;

use super::cells::{OriginKey, V6_TAG, sector_key};
use crate::enrich::{Enricher, Origin};
use crate::event::EventView;
use crate::prefix_cache::{PrefixCache, PrefixKey};

/// Slots of each per-address cache.
const ADDRESS_CACHE_SLOTS: usize = 1 << 16;

/// Interned origins and the per-address caches of origin ids and sectors.
#[derive(Debug)]
pub(super) struct AddressCache {
    /// Every origin seen, indexed by its interned id.
    origins: Vec<Origin>,
    origin_ids: FxHashMap<Origin, u32>,
    /// IPv4 source address → interned origin id.
    source_origins: PrefixCache<u32>,
    /// IPv4 target address → sector id.
    target_sectors: PrefixCache<u16>,
}

fn ipv4(address: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(address).ok().map(u32::from_be_bytes)
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

    /// Loads the cache slots of every event's addresses, so that their misses
    /// overlap instead of stalling each event's key in turn.
    #[inline]
    pub(super) fn touch_all(&self, views: &[EventView<'_>]) {
        let mut touched = 0u64;
        for event in views {
            if let Some(address) = ipv4(event.src_ip) {
                touched ^= self.source_origins.touch(PrefixKey::ipv4_address(address));
            }
            if let Some(address) = ipv4(event.dst_ip) {
                touched ^= self.target_sectors.touch(PrefixKey::ipv4_address(address));
            }
        }
        std::hint::black_box(touched);
    }

    #[inline]
    fn intern(&mut self, origin: Origin) -> u32 {
        if let Some(&id) = self.origin_ids.get(&origin) {
            return id;
        }
        let id = self.origins.len() as u32;
        self.origins.push(origin);
        self.origin_ids.insert(origin, id);
        id
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
                let key = PrefixKey::ipv4_address(address);
                let origin = match self.source_origins.get(key) {
                    Some(id) => id,
                    None => {
                        let id = self.intern(normalize(enricher.origin(event.src_ip)));
                        self.source_origins.insert(key, id);
                        id
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
            Some(address) => {
                let key = PrefixKey::ipv4_address(address);
                match self.target_sectors.get(key) {
                    Some(sector) => sector,
                    None => {
                        let sector = enricher.sector(event.dst_ip).0;
                        self.target_sectors.insert(key, sector);
                        sector
                    }
                }
            }
            None => enricher.sector(event.dst_ip).0,
        };
        let country = self
            .origins
            .get(origin as usize)
            .map_or(Origin::UNKNOWN.country, |o| o.country);
        (OriginKey { prefix, origin }, sector_key(country, sector))
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
