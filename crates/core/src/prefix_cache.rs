//! A small direct-mapped cache keyed by an IPv4 address, an IPv4 /24 or an
//! IPv6 /48: the one cache in front of every per-address lookup (the ingest
//! processor's origin and sector ids, `rampart-enrich`'s MMDB and asset-table
//! answers).
//!
//! A slot holds one key and its value; a colliding insert replaces it. The
//! cache never decides *whether* an answer may be shared by a whole prefix:
//! its owner does, and only inserts under a prefix key when every address of
//! that prefix has the same answer, so a hit is always exactly the answer a
//! lookup would give.

use std::net::IpAddr;
use std::num::NonZeroU64;

/// The key of a cache slot: what kind of key it is (high marker bit) and the
/// address bits it covers. Never zero, so an empty slot matches no key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PrefixKey(NonZeroU64);

const fn marker(bit: u32) -> NonZeroU64 {
    match NonZeroU64::new(1 << bit) {
        Some(m) => m,
        None => NonZeroU64::MAX,
    }
}

const IPV4_PREFIX24: NonZeroU64 = marker(63);
const IPV6_PREFIX48: NonZeroU64 = marker(62);
const IPV4_ADDRESS: NonZeroU64 = marker(61);

impl PrefixKey {
    /// One IPv4 address.
    #[inline]
    pub fn ipv4_address(address: u32) -> Self {
        PrefixKey(IPV4_ADDRESS | u64::from(address))
    }

    /// The /24 containing an IPv4 address.
    #[inline]
    pub(crate) fn ipv4_prefix24(address: u32) -> Self {
        PrefixKey(IPV4_PREFIX24 | u64::from(address >> 8))
    }

    /// The /48 containing an IPv6 address.
    #[inline]
    pub(crate) fn ipv6_prefix48(address: u128) -> Self {
        PrefixKey(IPV6_PREFIX48 | (address >> 80) as u64)
    }

    /// The /24 (IPv4) or /48 (IPv6) containing `ip`.
    #[inline]
    pub fn prefix24_or_48(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::ipv4_prefix24(u32::from(v4)),
            IpAddr::V6(v6) => Self::ipv6_prefix48(u128::from(v6)),
        }
    }
}

/// Direct-mapped cache [`PrefixKey`] → `V` with a power-of-two number of
/// slots (none: every lookup misses, inserts are dropped).
#[derive(Clone, Debug)]
pub struct PrefixCache<V> {
    /// `None` is an empty slot (the key's niche keeps a slot key-sized + `V`).
    slots: Box<[Option<(PrefixKey, V)>]>,
    /// 64 − log2(slots): the index is the top bits of the key's hash.
    index_shift: u32,
}

impl<V: Copy> PrefixCache<V> {
    /// A cache of `slots` slots rounded up to a power of two; 0 disables it.
    pub fn new(slots: usize) -> Self {
        if slots == 0 {
            return PrefixCache {
                slots: Box::new([]),
                index_shift: 64,
            };
        }
        let slots = slots.next_power_of_two();
        PrefixCache {
            slots: vec![None; slots].into_boxed_slice(),
            index_shift: 64 - slots.trailing_zeros(),
        }
    }

    /// Number of slots (0 when disabled).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Whether the cache has no slots.
    pub fn is_disabled(&self) -> bool {
        self.slots.is_empty()
    }

    #[inline]
    fn index(&self, key: PrefixKey) -> usize {
        let hash = key.0.get().wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // A single slot has shift 64: every key maps to slot 0.
        hash.checked_shr(self.index_shift).unwrap_or(0) as usize
    }

    /// The value cached under `key`, if that slot holds it.
    #[inline]
    pub fn get(&self, key: PrefixKey) -> Option<V> {
        match self.slots.get(self.index(key)) {
            Some(Some((slot_key, value))) if *slot_key == key => Some(*value),
            _ => None,
        }
    }

    /// Caches `value` under `key`, replacing whatever its slot held.
    #[inline]
    pub fn insert(&mut self, key: PrefixKey, value: V) {
        let index = self.index(key);
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = Some((key, value));
        }
    }

    /// Loads the slot of `key` into the CPU cache ahead of a `get` (feed the
    /// result to `std::hint::black_box`; the value means nothing).
    #[inline]
    pub fn touch(&self, key: PrefixKey) -> u64 {
        match self.slots.get(self.index(key)) {
            Some(Some((slot_key, _))) => slot_key.0.get(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_different_kinds_never_collide() {
        // The same low bits under each kind.
        let address = 0x0A00_0001_u32;
        let keys = [
            PrefixKey::ipv4_address(address),
            PrefixKey::ipv4_prefix24(address << 8),
            PrefixKey::ipv6_prefix48(u128::from(address) << 80),
        ];
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[0], keys[2]);
        assert_ne!(keys[1], keys[2]);
    }

    #[test]
    fn prefix_keys_cover_exactly_their_prefix() {
        let v4 = |s: &str| s.parse::<IpAddr>().ok();
        let key = |s: &str| v4(s).map(PrefixKey::prefix24_or_48);
        assert_eq!(key("192.0.2.1"), key("192.0.2.255"));
        assert_ne!(key("192.0.2.1"), key("192.0.3.1"));
        assert_eq!(key("2001:db8:1::1"), key("2001:db8:1:ffff::1"));
        assert_ne!(key("2001:db8:1::1"), key("2001:db8:2::1"));
        assert_ne!(
            PrefixKey::ipv4_address(0xC000_0201),
            PrefixKey::ipv4_address(0xC000_0202)
        );
        // Address 0 is a key like any other (not the empty slot).
        let mut cache = PrefixCache::new(4);
        cache.insert(PrefixKey::ipv4_address(0), 7u32);
        assert_eq!(cache.get(PrefixKey::ipv4_address(0)), Some(7));
    }

    #[test]
    fn get_returns_what_was_inserted_until_replaced() {
        let mut cache = PrefixCache::new(1 << 10);
        assert_eq!(cache.slots(), 1024);
        assert_eq!(cache.get(PrefixKey::ipv4_address(1)), None);
        for address in 0..100u32 {
            cache.insert(PrefixKey::ipv4_address(address), address * 3);
        }
        // Every hit is the value inserted under that key (a miss is allowed:
        // a later key may have taken the slot).
        let mut hits = 0;
        for address in 0..100u32 {
            if let Some(value) = cache.get(PrefixKey::ipv4_address(address)) {
                assert_eq!(value, address * 3);
                hits += 1;
            }
        }
        assert!(hits > 50, "only {hits} of 100 keys kept in 1024 slots");
        cache.insert(PrefixKey::ipv4_address(5), 0);
        assert_eq!(cache.get(PrefixKey::ipv4_address(5)), Some(0));
    }

    #[test]
    fn a_colliding_key_replaces_the_slot_and_never_reads_the_other_value() {
        let mut cache = PrefixCache::new(1);
        assert_eq!(cache.slots(), 1);
        let first = PrefixKey::ipv4_prefix24(0xC000_0200);
        let second = PrefixKey::ipv4_prefix24(0xC000_0300);
        cache.insert(first, 'a');
        assert_eq!(cache.get(first), Some('a'));
        assert_eq!(cache.get(second), None);
        cache.insert(second, 'b');
        assert_eq!(cache.get(second), Some('b'));
        assert_eq!(cache.get(first), None);
        assert_ne!(cache.touch(first), 0);
    }

    #[test]
    fn slots_round_up_and_zero_disables() {
        assert_eq!(PrefixCache::<u8>::new(1000).slots(), 1024);
        let mut disabled = PrefixCache::new(0);
        assert!(disabled.is_disabled());
        disabled.insert(PrefixKey::ipv4_address(1), 1u8);
        assert_eq!(disabled.get(PrefixKey::ipv4_address(1)), None);
        assert_eq!(disabled.touch(PrefixKey::ipv4_address(1)), 0);
    }

    #[test]
    fn a_slot_is_no_larger_than_key_plus_value() {
        assert_eq!(std::mem::size_of::<Option<(PrefixKey, u32)>>(), 16);
    }
}
