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
