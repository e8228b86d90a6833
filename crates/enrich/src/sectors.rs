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
use std::path::Path;
use std::sync::Arc;

use ipnetwork::IpNetwork;
use rampart_core::enrich::SectorId;
use rampart_core::prefix_cache::{PrefixCache, PrefixKey};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Deserialize;

use crate::EnrichError;
use crate::origin::{canonical, ip_from_bytes};

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

/// One problem in a sector table source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectorIssue {
    /// 1-based line (for entries given in code: the 1-based entry number).
    pub line: usize,
    /// The field or key at fault, e.g. `cidr` or `asset[2].sector`.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SectorIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "line {} ({k}): {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// All problems found while loading a sector table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {} error(s) in sector table:\n  {}", issues.len(), join(issues))]
pub struct SectorTableError {
    /// File path or other name of the source.
    pub source_name: String,
    /// Every problem, in source order.
    pub issues: Vec<SectorIssue>,
}

fn join(issues: &[SectorIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

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

/// Validates and canonicalises a sector string (`energy` -> `cisa:energy`).
pub fn parse_sector(s: &str) -> Result<String, String> {
    let s = s.trim().to_ascii_lowercase();
    let (taxonomy, code) = s.split_once(':').unwrap_or(("cisa", s.as_str()));
    let slug = |what: &str, v: &str| -> Result<(), String> {
        if !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            Ok(())
        } else {
            Err(format!("{what} {v:?} must be non-empty [a-z0-9-]+"))
        }
    };
    slug("taxonomy", taxonomy)?;
    slug("code", code)?;
    if taxonomy == "cisa" && !CISA_SECTORS.contains(&code) {
        return Err(format!(
            "{code:?} is not a CISA sector (one of: {})",
            CISA_SECTORS.join(", ")
        ));
    }
    Ok(format!("{taxonomy}:{code}"))
}

/// Parses a CIDR (or bare address), rejecting host bits; IPv4-mapped IPv6
/// networks become IPv4.
pub(crate) fn parse_cidr(s: &str) -> Result<IpNetwork, String> {
    let s = s.trim();
    let net = if s.contains('/') {
        s.parse::<IpNetwork>()
            .map_err(|e| format!("{s:?} is not a CIDR: {e}"))?
    } else {
        let ip: IpAddr = s
            .parse()
            .map_err(|_| format!("{s:?} is not a CIDR or an IP address"))?;
        IpNetwork::from(ip)
    };
    if net.network() != net.ip() {
        return Err(format!(
            "{s} has host bits set (did you mean {}/{}?)",
            net.network(),
            net.prefix()
        ));
    }
    Ok(normalize(net))
}

fn normalize(net: IpNetwork) -> IpNetwork {
    if let IpNetwork::V6(v6) = net
        && let Some(v4) = v6.ip().to_ipv4_mapped()
        && v6.prefix() >= 96
        && let Ok(n) = ipnetwork::Ipv4Network::new(v4, v6.prefix() - 96)
    {
        return IpNetwork::V4(n);
    }
    net
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

    /// Loads a `.csv` or `.toml` file (chosen by extension).
    pub fn load(path: &Path) -> Result<Self, EnrichError> {
        let text = std::fs::read_to_string(path).map_err(|source| EnrichError::Io {
            path: path.to_owned(),
            source,
        })?;
        let name = path.display().to_string();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok(Self::from_csv_str(&text, &name)?),
            Some("toml") => Ok(Self::from_toml_str(&text, &name)?),
            _ => Err(EnrichError::UnknownFormat(path.to_owned())),
        }
    }

    /// Parses CSV text; `source_name` names it in errors.
    pub fn from_csv_str(text: &str, source_name: &str) -> Result<Self, SectorTableError> {
        let mut entries = Vec::new();
        let mut issues = Vec::new();
        let mut seen_content = false;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let first = !seen_content;
            seen_content = true;
            let fields: Vec<&str> = content.split(',').map(str::trim).collect();
            if first && fields.len() == 2 && fields[0].eq_ignore_ascii_case("cidr") {
                continue; // header
            }
            let &[cidr, sector] = fields.as_slice() else {
                issues.push(SectorIssue {
                    line,
                    key: None,
                    message: format!("expected `cidr,sector`, found {} field(s)", fields.len()),
                });
                continue;
            };
            let entry = check(line, cidr, "cidr", sector, "sector", &mut issues);
            entries.extend(entry);
        }
        Self::finish(source_name, entries, issues)
    }

    /// Parses TOML text (`[[asset]] cidr = "..." sector = "..."`).
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Self, SectorTableError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            #[serde(default)]
            asset: Vec<Asset>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Asset {
            cidr: toml::Spanned<String>,
            sector: toml::Spanned<String>,
        }
        let line_of = |offset: usize| {
            text.get(..offset)
                .map_or(1, |s| s.matches('\n').count() + 1)
        };
        let file: File = match toml::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                return Err(SectorTableError {
                    source_name: source_name.to_owned(),
                    issues: vec![SectorIssue {
                        line: e.span().map_or(1, |s| line_of(s.start)),
                        key: None,
                        message: e.message().to_owned(),
                    }],
                });
            }
        };
        let mut entries = Vec::new();
        let mut issues = Vec::new();
        for (i, a) in file.asset.iter().enumerate() {
            let cidr_line = line_of(a.cidr.span().start);
            let sector_line = line_of(a.sector.span().start);
            let cidr_key = format!("asset[{i}].cidr");
            let sector_key = format!("asset[{i}].sector");
            let net = parse_cidr(a.cidr.get_ref()).map_err(|message| SectorIssue {
                line: cidr_line,
                key: Some(cidr_key),
                message,
            });
            let sector = parse_sector(a.sector.get_ref()).map_err(|message| SectorIssue {
                line: sector_line,
                key: Some(sector_key),
                message,
            });
            match (net, sector) {
                (Ok(n), Ok(s)) => entries.push((cidr_line, n, s)),
                (n, s) => issues.extend(n.err().into_iter().chain(s.err())),
            }
        }
        Self::finish(source_name, entries, issues)
    }

    /// Builds a table from entries given in code (e.g. by loadgen); errors
    /// name the 1-based entry number as the line.
    pub fn from_entries<C, S>(
        entries: impl IntoIterator<Item = (C, S)>,
    ) -> Result<Self, SectorTableError>
    where
        C: AsRef<str>,
        S: AsRef<str>,
    {
        let mut good = Vec::new();
        let mut issues = Vec::new();
        for (i, (c, s)) in entries.into_iter().enumerate() {
            good.extend(check(
                i + 1,
                c.as_ref(),
                "cidr",
                s.as_ref(),
                "sector",
                &mut issues,
            ));
        }
        Self::finish("entries", good, issues)
    }

    fn finish(
        source_name: &str,
        entries: Vec<(usize, IpNetwork, String)>,
        mut issues: Vec<SectorIssue>,
    ) -> Result<Self, SectorTableError> {
        let built = Self::build(entries);
        match built {
            Ok(t) if issues.is_empty() => Ok(t),
            Ok(_) => {
                issues.sort_by_key(|i| i.line);
                Err(SectorTableError {
                    source_name: source_name.to_owned(),
                    issues,
                })
            }
            Err(more) => {
                issues.extend(more);
                issues.sort_by_key(|i| i.line);
                Err(SectorTableError {
                    source_name: source_name.to_owned(),
                    issues,
                })
            }
        }
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
        let ip = canonical(ip);
        self.stats.lookups += 1;
        let key = PrefixKey::prefix24_or_48(ip);
        let id = match self.cache.get(key) {
            Some(id) => {
                self.stats.cache_hits += 1;
                id
            }
            None => {
                let id = self.tables.lookup(ip);
                if !self.cache.is_disabled() && self.tables.cacheable(ip) {
                    self.cache.insert(key, id);
                }
                id
            }
        };
        if id == SectorId::UNKNOWN {
            self.stats.unknown += 1;
        }
        id
    }

    /// Longest-prefix match without the cache or counters.
    pub fn lookup_uncached(&self, ip: IpAddr) -> SectorId {
        self.tables.lookup(canonical(ip))
    }
}

/// Parses one entry, recording every problem with its line and key.
fn check(
    line: usize,
    cidr: &str,
    cidr_key: &str,
    sector: &str,
    sector_key: &str,
    issues: &mut Vec<SectorIssue>,
) -> Option<(usize, IpNetwork, String)> {
    let net = parse_cidr(cidr).map_err(|message| SectorIssue {
        line,
        key: Some(cidr_key.to_owned()),
        message,
    });
    let sector = parse_sector(sector).map_err(|message| SectorIssue {
        line,
        key: Some(sector_key.to_owned()),
        message,
    });
    match (net, sector) {
        (Ok(n), Ok(s)) => Some((line, n, s)),
        (n, s) => {
            issues.extend(n.err().into_iter().chain(s.err()));
            None
        }
    }
}
