//! Target sector from an asset inventory: CIDR -> sector, longest-prefix match.
//!
//! ## Files
//! CSV (`.csv`): one `cidr,sector` per line; an optional `cidr,sector` header;
//! `#` starts a comment; blank lines are skipped.
//! ```text
//! cidr,sector
//! 192.0.2.0/24,energy          # a bare code is a CISA sector
//! 2001:db8:1::/48,nisc:finance
//! ```
//! TOML (`.toml`):
//! ```toml
//! [[asset]]
//! cidr = "192.0.2.0/24"
//! sector = "cisa:energy"
//! ```
//!
//! ## Sectors
//! `taxonomy:code`, both `[a-z0-9-]+` (input is lower-cased). A bare code means
//! taxonomy `cisa`, whose codes must be one of [`CISA_SECTORS`], the slugs of
//! CISA's 16 critical infrastructure sectors. Other taxonomies (`nisc:...`,
//! `naics:...`) are free-form. A CIDR must have no host bits set; a bare
//! address is a /32 or /128; IPv4-mapped IPv6 networks are stored as IPv4.
//! Every error of a file is reported at once, each with its line and key.
//!
//! ## Lookup
//! One hash map per prefix length present, probed from longest to shortest.
//! An exact cache by /24 (IPv4) or /48 (IPv6) sits in front: a /24 (/48) is
//! cached only when no entry longer than /24 (/48) lies inside it, so all its
//! addresses share one answer.

use std::collections::hash_map::Entry;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnetwork::IpNetwork;
use rampart_core::enrich::SectorId;
use rampart_core::prefix_cache::{PrefixCache, PrefixKey};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::origin::{canonical, ip_from_bytes};

mod source;

pub use source::{SectorIssue, SectorTableError, parse_sector};

/// CISA's 16 critical infrastructure sectors, as the slugs this table uses:
/// Chemical; Commercial Facilities; Communications; Critical Manufacturing;
/// Dams; Defense Industrial Base; Emergency Services; Energy; Financial
/// Services; Food and Agriculture; Government Facilities; Healthcare and
/// Public Health; Information Technology; Nuclear Reactors, Materials, and
/// Waste; Transportation Systems; Water and Wastewater Systems.
pub const CISA_SECTORS: [&str; 16] = [
    "chemical",
    "commercial-facilities",
    "communications",
    "critical-manufacturing",
    "dams",
    "defense-industrial-base",
    "emergency-services",
    "energy",
    "financial-services",
    "food-agriculture",
    "government-facilities",
    "healthcare-public-health",
    "information-technology",
    "nuclear",
    "transportation-systems",
    "water-wastewater",
];

/// The name of [`SectorId::UNKNOWN`].
pub(crate) const UNKNOWN_SECTOR: &str = "unknown";

/// Default number of cache slots (a power of two).
pub(crate) const DEFAULT_CACHE_SLOTS: usize = 1 << 16;

/// Lookup counters of one [`SectorTable`] value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SectorStats {
    /// Lookups served.
    pub lookups: u64,
    /// Lookups answered from the cache.
    pub cache_hits: u64,
    /// Lookups answered [`SectorId::UNKNOWN`] (including malformed addresses).
    pub unknown: u64,
}

struct Tables {
    names: Vec<String>,
    by_name: FxHashMap<String, SectorId>,
    /// (prefix length, masked network -> sector), longest first.
    v4: Vec<(u8, FxHashMap<u32, SectorId>)>,
    v6: Vec<(u8, FxHashMap<u128, SectorId>)>,
    /// /24s (/48s) containing an entry longer than /24 (/48): not cacheable.
    v4_fine: FxHashSet<u32>,
    v6_fine: FxHashSet<u64>,
}

impl Tables {
    fn lookup(&self, ip: IpAddr) -> SectorId {
        match ip {
            IpAddr::V4(v4) => {
                let a = u32::from(v4);
                for (len, map) in &self.v4 {
                    let key = a & mask32(*len);
                    if let Some(id) = map.get(&key) {
                        return *id;
                    }
                }
            }
            IpAddr::V6(v6) => {
                let a = u128::from(v6);
                for (len, map) in &self.v6 {
                    let key = a & mask128(*len);
                    if let Some(id) = map.get(&key) {
                        return *id;
                    }
                }
            }
        }
        SectorId::UNKNOWN
    }

    fn cacheable(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => {
                self.v4_fine.is_empty() || !self.v4_fine.contains(&(u32::from(v4) >> 8))
            }
            IpAddr::V6(v6) => {
                self.v6_fine.is_empty() || !self.v6_fine.contains(&((u128::from(v6) >> 80) as u64))
            }
        }
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// The asset inventory: longest-prefix match of a destination address to a
/// sector. Clones share the table and start with an empty cache.
pub struct SectorTable {
    tables: Arc<Tables>,
    /// /24 (/48) → sector, only for prefixes with no longer entry inside.
    cache: PrefixCache<SectorId>,
    stats: SectorStats,
}

impl fmt::Debug for SectorTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SectorTable")
            .field("sectors", &(self.tables.names.len() - 1))
            .field("v4_lengths", &self.tables.v4.len())
            .field("v6_lengths", &self.tables.v6.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Clone for SectorTable {
    fn clone(&self) -> Self {
        Self::with_tables(self.tables.clone(), self.cache.slots())
    }
}

impl Default for SectorTable {
    fn default() -> Self {
        Self::empty()
    }
}

impl SectorTable {
    /// A table with no entries: every lookup is unknown.
    pub fn empty() -> Self {
        let tables = Tables {
            names: vec![UNKNOWN_SECTOR.to_owned()],
            by_name: FxHashMap::default(),
            v4: Vec::new(),
            v6: Vec::new(),
            v4_fine: FxHashSet::default(),
            v6_fine: FxHashSet::default(),
        };
        Self::with_tables(Arc::new(tables), DEFAULT_CACHE_SLOTS)
    }

    fn build(entries: Vec<(usize, IpNetwork, String)>) -> Result<Self, Vec<SectorIssue>> {
        let mut issues = Vec::new();
        let mut names = vec![UNKNOWN_SECTOR.to_owned()];
        let mut by_name: FxHashMap<String, SectorId> = FxHashMap::default();
        let mut v4: FxHashMap<u8, FxHashMap<u32, SectorId>> = FxHashMap::default();
        let mut v6: FxHashMap<u8, FxHashMap<u128, SectorId>> = FxHashMap::default();
        let mut v4_fine = FxHashSet::default();
        let mut v6_fine = FxHashSet::default();
        let mut first_line: FxHashMap<IpNetwork, usize> = FxHashMap::default();
        for (line, net, sector) in entries {
            match first_line.entry(net) {
                Entry::Occupied(e) => {
                    issues.push(SectorIssue {
                        line,
                        key: Some("cidr".to_owned()),
                        message: format!("{net} is listed twice (first on line {})", e.get()),
                    });
                    continue;
                }
                Entry::Vacant(e) => {
                    e.insert(line);
                }
            }
            let id = match by_name.get(&sector) {
                Some(id) => *id,
                None => {
                    let Ok(n) = u16::try_from(names.len()) else {
                        issues.push(SectorIssue {
                            line,
                            key: Some("sector".to_owned()),
                            message: "more than 65535 distinct sectors".to_owned(),
                        });
                        continue;
                    };
                    names.push(sector.clone());
                    by_name.insert(sector, SectorId(n));
                    SectorId(n)
                }
            };
            match net {
                IpNetwork::V4(n) => {
                    let len = n.prefix();
                    let key = u32::from(n.network());
                    v4.entry(len).or_default().insert(key, id);
                    if len > 24 {
                        v4_fine.insert(key >> 8);
                    }
                }
                IpNetwork::V6(n) => {
                    let len = n.prefix();
                    let key = u128::from(n.network());
                    v6.entry(len).or_default().insert(key, id);
                    if len > 48 {
                        v6_fine.insert((key >> 80) as u64);
                    }
                }
            }
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        let mut v4: Vec<_> = v4.into_iter().collect();
        v4.sort_by_key(|e| std::cmp::Reverse(e.0));
        let mut v6: Vec<_> = v6.into_iter().collect();
        v6.sort_by_key(|e| std::cmp::Reverse(e.0));
        let tables = Tables {
            names,
            by_name,
            v4,
            v6,
            v4_fine,
            v6_fine,
        };
        Ok(Self::with_tables(Arc::new(tables), DEFAULT_CACHE_SLOTS))
    }

    fn with_tables(tables: Arc<Tables>, slots: usize) -> Self {
        SectorTable {
            tables,
            cache: PrefixCache::new(slots),
            stats: SectorStats::default(),
        }
    }

    /// Resizes (and clears) the cache: rounded up to a power of two; 0 disables it.
    pub fn with_cache_slots(mut self, slots: usize) -> Self {
        self.cache = PrefixCache::new(slots);
        self
    }

    /// Number of CIDR entries.
    pub fn len(&self) -> usize {
        let t = &self.tables;
        t.v4.iter().map(|(_, m)| m.len()).sum::<usize>()
            + t.v6.iter().map(|(_, m)| m.len()).sum::<usize>()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `taxonomy:code` name of `id`; `"unknown"` for unknown or foreign ids.
    pub fn name(&self, id: SectorId) -> &str {
        self.tables
            .names
            .get(usize::from(id.0))
            .map_or(UNKNOWN_SECTOR, String::as_str)
    }

    /// The id of a sector name (canonicalised first, so `energy` works).
    pub fn id(&self, sector: &str) -> Option<SectorId> {
        let name = parse_sector(sector).ok()?;
        self.tables.by_name.get(&name).copied()
    }

    /// All sector names, indexed by `SectorId` (index 0 is `"unknown"`).
    pub fn names(&self) -> &[String] {
        &self.tables.names
    }

    /// Counters since creation.
    pub fn stats(&self) -> SectorStats {
        self.stats
    }

    /// Lookups answered unknown so far.
    pub fn unknown_lookups(&self) -> u64 {
        self.stats.unknown
    }

    /// Looks up a 4- or 16-byte address; any other length is unknown.
    pub fn lookup_bytes(&mut self, addr: &[u8]) -> SectorId {
        match ip_from_bytes(addr) {
            Some(ip) => self.lookup(ip),
            None => {
                self.stats.lookups += 1;
                self.stats.unknown += 1;
                SectorId::UNKNOWN
            }
        }
    }

    /// Longest-prefix match through the cache.
    pub fn lookup(&mut self, ip: IpAddr) -> SectorId {
        self.lookup_scoped(ip).0
    }

    /// [`Self::lookup_bytes`], and whether every address of the /24 of a
    /// 4-byte `addr` has that sector (always `false` for other lengths).
    pub fn lookup_bytes_prefix24(&mut self, addr: &[u8]) -> (SectorId, bool) {
        match <[u8; 4]>::try_from(addr) {
            Ok(v4) => self.lookup_scoped(IpAddr::from(v4)),
            Err(_) => (self.lookup_bytes(addr), false),
        }
    }

    /// The sector of `ip` and whether its whole /24 (IPv4) or /48 (IPv6,
    /// after canonicalisation) shares it.
    fn lookup_scoped(&mut self, ip: IpAddr) -> (SectorId, bool) {
        let ip = canonical(ip);
        self.stats.lookups += 1;
        let key = PrefixKey::prefix24_or_48(ip);
        let (id, whole_prefix_shares_it) = match self.cache.get(key) {
            Some(id) => {
                self.stats.cache_hits += 1;
                (id, true)
            }
            None => {
                let id = self.tables.lookup(ip);
                let whole_prefix_shares_it = self.tables.cacheable(ip);
                if !self.cache.is_disabled() && whole_prefix_shares_it {
                    self.cache.insert(key, id);
                }
                (id, whole_prefix_shares_it)
            }
        };
        if id == SectorId::UNKNOWN {
            self.stats.unknown += 1;
        }
        (id, whole_prefix_shares_it)
    }

    /// Longest-prefix match without the cache or counters.
    pub fn lookup_uncached(&self, ip: IpAddr) -> SectorId {
        self.tables.lookup(canonical(ip))
    }
}
