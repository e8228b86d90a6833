//! Origin (country, ASN) lookups in MaxMind-format MMDB files.
//!
//! The readers are shared (`Arc`); each [`MmdbOrigin`] value (one per owner,
//! e.g. per partition) has its own exact cache, so clones are cheap and never
//! contend.
//!
//! ## The cache is exact
//! The reader reports the network of the tree leaf an address ends in; every
//! address of that network has the same answer. When that network is at most
//! a /24 (IPv4) or a /48 (IPv6) long, for *every* database consulted, the
//! address's whole /24 (or /48) shares the answer, so it is cached under that
//! key in a small direct-mapped table. Longer leaves are never cached. Decoded
//! records are also memoised by their data-section offset (equal offset means
//! equal record). So the cache only makes lookups faster, never different.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use ipnetwork::IpNetwork;
use maxminddb::{LookupResult, Reader};
use rampart_core::enrich::{Origin, Prefix24Origins};
use rampart_core::prefix_cache::{PrefixCache, PrefixKey};
use rustc_hash::FxHashMap;
use serde::Deserialize;

use crate::EnrichError;
use crate::schema::{self, AsnValue, Database, OriginFields};

/// Default number of cache slots (a power of two; 16 bytes each).
pub(crate) const DEFAULT_CACHE_SLOTS: usize = 1 << 16;

/// Counters of one [`MmdbOrigin`] value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OriginStats {
    /// Lookups served (cached or not).
    pub lookups: u64,
    /// Lookups answered from the /24 or /48 cache.
    pub cache_hits: u64,
    /// Lookups whose answer was [`Origin::UNKNOWN`] in both fields.
    pub unknown: u64,
    /// Addresses that were not 4 or 16 bytes, or reader errors (answered unknown).
    pub errors: u64,
    /// Lookups the country database answered with a country code / without one.
    pub country_hits: u64,
    pub country_misses: u64,
    /// Lookups the ASN database answered with an AS number / without one.
    pub asn_hits: u64,
    pub asn_misses: u64,
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

/// The fields rampart reads from a GeoLite2-Country/City or GeoLite2-ASN record.
#[derive(Deserialize)]
struct OriginRecord<'a> {
    #[serde(borrow)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow)]
    registered_country: Option<IsoCode<'a>>,
}

/// Country and ASN lookups from a country database (GeoLite2-Country or
/// -City shape) and/or an ASN database (GeoLite2-ASN shape).
///
/// Country = `country.iso_code`, else `registered_country.iso_code`, else
/// `"ZZ"`; ASN = `autonomous_system_number`, else 0. IPv4-mapped IPv6
/// addresses are looked up as IPv4.
pub struct MmdbOrigin {
    country_db: Option<Arc<Reader<Vec<u8>>>>,
    asn_db: Option<Arc<Reader<Vec<u8>>>>,
    /// Where the databases keep country and ASN (shared by clones).
    fields: Arc<OriginFields>,
    /// /24 (/48) → origin, only for prefixes whose every address shares it.
    cache: PrefixCache<Origin>,
    country_memo: FxHashMap<usize, [u8; 2]>,
    asn_memo: FxHashMap<usize, u32>,
    stats: OriginStats,
    /// Every shared IPv4 /24's origin, built on first use and shared by
    /// clones (the ingest asks for it; other users never pay for it).
    table: Arc<OnceLock<Option<Arc<Prefix24Origins>>>>,
}

impl std::fmt::Debug for MmdbOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmdbOrigin")
            .field(
                "country_db",
                &self
                    .country_db
                    .as_ref()
                    .map(|r| &r.metadata().database_type),
            )
            .field(
                "asn_db",
                &self.asn_db.as_ref().map(|r| &r.metadata().database_type),
            )
            .field("cache_slots", &self.cache.slots())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Clone for MmdbOrigin {
    /// Shares the databases; the clone starts with an empty cache and zero stats.
    fn clone(&self) -> Self {
        let mut clone = Self::from_shared(
            self.country_db.clone(),
            self.asn_db.clone(),
            self.cache.slots(),
        );
        clone.fields = self.fields.clone();
        clone.table = self.table.clone();
        clone
    }
}

impl MmdbOrigin {
    /// No databases: every lookup is [`Origin::UNKNOWN`].
    pub fn none() -> Self {
        Self::from_shared(None, None, 0)
    }

    /// Opens the given MMDB files (either may be absent) with the default
    /// (MaxMind) field paths; refuses files of another schema (see [`schema`]).
    pub fn open(country_db: Option<&Path>, asn_db: Option<&Path>) -> Result<Self, EnrichError> {
        Self::open_with(country_db, asn_db, &OriginFields::default())
    }

    /// [`Self::open`] reading country and ASN at `fields`.
    pub fn open_with(
        country_db: Option<&Path>,
        asn_db: Option<&Path>,
        fields: &OriginFields,
    ) -> Result<Self, EnrichError> {
        let open = |p: &Path, database: Database, field: &str| {
            let reader = Reader::open_readfile(p).map_err(|source| EnrichError::Mmdb {
                path: p.to_owned(),
                source,
            })?;
            schema::check(&reader, p, database, field)?;
            Ok::<_, EnrichError>(reader)
        };
        let country = country_db
            .map(|p| open(p, Database::Country, &fields.country))
            .transpose()?;
        let asn = asn_db
            .map(|p| open(p, Database::Asn, &fields.asn))
            .transpose()?;
        let mut origin = Self::from_readers(country, asn);
        origin.fields = Arc::new(fields.clone());
        Ok(origin)
    }

    /// Wraps already opened readers.
    fn from_readers(country_db: Option<Reader<Vec<u8>>>, asn_db: Option<Reader<Vec<u8>>>) -> Self {
        Self::from_shared(
            country_db.map(Arc::new),
            asn_db.map(Arc::new),
            DEFAULT_CACHE_SLOTS,
        )
    }

    fn from_shared(
        country_db: Option<Arc<Reader<Vec<u8>>>>,
        asn_db: Option<Arc<Reader<Vec<u8>>>>,
        slots: usize,
    ) -> Self {
        MmdbOrigin {
            country_db,
            asn_db,
            fields: Arc::new(OriginFields::default()),
            cache: PrefixCache::new(slots),
            country_memo: FxHashMap::default(),
            asn_memo: FxHashMap::default(),
            stats: OriginStats::default(),
            table: Arc::default(),
        }
    }

    /// Without the table of shared /24 origins (`on` false): every caller
    /// then looks sources up through the readers and caches. Clones share the
    /// choice.
    pub fn with_prefix24_table(mut self, on: bool) -> Self {
        if !on {
            self.table = Arc::new(OnceLock::from(None));
        }
        self
    }

    /// The origin of every IPv4 /24 that lies whole in one network of each
    /// database (built on the first call, 64 MiB shared by all clones; `None`
    /// without databases). Its answers are the lookups' answers
    /// ([`crate::prefix24`]).
    pub fn prefix24_origins(&self) -> Option<&Arc<Prefix24Origins>> {
        self.table
            .get_or_init(|| {
                crate::prefix24::build(
                    self.country_db.as_deref(),
                    self.asn_db.as_deref(),
                    &self.fields,
                )
                .map(Arc::new)
            })
            .as_ref()
    }

    /// Resizes (and clears) the cache: `slots` is rounded up to a power of
    /// two; 0 disables it.
    pub fn with_cache_slots(mut self, slots: usize) -> Self {
        self.cache = PrefixCache::new(slots);
        self
    }

    /// Counters since creation.
    pub fn stats(&self) -> OriginStats {
        self.stats
    }

    /// Looks up a 4- or 16-byte address; any other length is unknown.
    pub fn lookup_bytes(&mut self, addr: &[u8]) -> Origin {
        match ip_from_bytes(addr) {
            Some(ip) => self.lookup(ip),
            None => {
                self.stats.lookups += 1;
                self.stats.errors += 1;
                self.stats.unknown += 1;
                Origin::UNKNOWN
            }
        }
    }

    /// Looks up an address, through the cache.
    pub fn lookup(&mut self, ip: IpAddr) -> Origin {
        self.lookup_scoped(ip).0
    }

    /// [`Self::lookup_bytes`], and whether every address of the /24 of a
    /// 4-byte `addr` has that origin (always `false` for other lengths).
    pub fn lookup_bytes_prefix24(&mut self, addr: &[u8]) -> (Origin, bool) {
        match <[u8; 4]>::try_from(addr) {
            Ok(v4) => self.lookup_scoped(IpAddr::from(v4)),
            Err(_) => (self.lookup_bytes(addr), false),
        }
    }

    /// The origin of `ip` and whether its whole /24 (IPv4) or /48 (IPv6,
    /// after canonicalisation) shares it.
    fn lookup_scoped(&mut self, ip: IpAddr) -> (Origin, bool) {
        let ip = canonical(ip);
        self.stats.lookups += 1;
        let key = PrefixKey::prefix24_or_48(ip);
        let (origin, whole_prefix_shares_it) = match self.cache.get(key) {
            Some(origin) => {
                self.stats.cache_hits += 1;
                (origin, true)
            }
            None => {
                let (origin, whole_prefix_shares_it) = self.resolve(ip);
                if whole_prefix_shares_it {
                    self.cache.insert(key, origin);
                }
                (origin, whole_prefix_shares_it)
            }
        };
        if origin == Origin::UNKNOWN {
            self.stats.unknown += 1;
        }
        if self.country_db.is_some() {
            if origin.country == Origin::UNKNOWN.country {
                self.stats.country_misses += 1;
            } else {
                self.stats.country_hits += 1;
            }
        }
        if self.asn_db.is_some() {
            if origin.asn == Origin::UNKNOWN.asn {
                self.stats.asn_misses += 1;
            } else {
                self.stats.asn_hits += 1;
            }
        }
        (origin, whole_prefix_shares_it)
    }

    /// Looks up an address without the /24-/48 cache (for tests and checks).
    pub fn lookup_uncached(&mut self, ip: IpAddr) -> Origin {
        self.resolve(canonical(ip)).0
    }

    /// The answer and whether the whole /24 or /48 of `ip` shares it.
    fn resolve(&mut self, ip: IpAddr) -> (Origin, bool) {
        let mut origin = Origin::UNKNOWN;
        let mut cacheable = true;
        if let Some(db) = &self.country_db {
            match db.lookup(ip) {
                Ok(res) => {
                    cacheable &= coarse(res.network().ok(), ip);
                    if let Some(off) = res.offset() {
                        origin.country = match self.country_memo.get(&off) {
                            Some(c) => *c,
                            None => {
                                let c = decode_country(&self.fields, &res).unwrap_or_else(|| {
                                    self.stats.errors += 1;
                                    Origin::UNKNOWN.country
                                });
                                self.country_memo.insert(off, c);
                                c
                            }
                        };
                    }
                }
                Err(_) => {
                    self.stats.errors += 1;
                    cacheable = false;
                }
            }
        }
        if let Some(db) = &self.asn_db {
            match db.lookup(ip) {
                Ok(res) => {
                    cacheable &= coarse(res.network().ok(), ip);
                    if let Some(off) = res.offset() {
                        origin.asn = match self.asn_memo.get(&off) {
                            Some(a) => *a,
                            None => {
                                let a = decode_asn(&self.fields, &res).unwrap_or_else(|| {
                                    self.stats.errors += 1;
                                    0
                                });
                                self.asn_memo.insert(off, a);
                                a
                            }
                        };
                    }
                }
                Err(_) => {
                    self.stats.errors += 1;
                    cacheable = false;
                }
            }
        }
        (origin, cacheable)
    }
}

/// The country of a found record at `fields.country`; `None` when the record
/// does not decode.
pub(crate) fn decode_country(
    fields: &OriginFields,
    res: &LookupResult<'_, Vec<u8>>,
) -> Option<[u8; 2]> {
    let decoded = if fields.country == schema::DEFAULT_COUNTRY_FIELD {
        res.decode::<OriginRecord<'_>>()
            .map(|r| r.map(|r| country_of(&r)))
    } else {
        res.decode_path::<&str>(&schema::path_elements(&fields.country))
            .map(|c| {
                Some(
                    c.and_then(schema::country_code)
                        .unwrap_or(Origin::UNKNOWN.country),
                )
            })
    };
    decoded.ok().flatten()
}

/// The AS number of a found record at `fields.asn` (0 when absent); `None`
/// when the record does not decode.
pub(crate) fn decode_asn(fields: &OriginFields, res: &LookupResult<'_, Vec<u8>>) -> Option<u32> {
    res.decode_path::<AsnValue<'_>>(&schema::path_elements(&fields.asn))
        .map(|a| a.and_then(|a| a.number()).unwrap_or(0))
        .ok()
}

/// `country.iso_code`, else `registered_country.iso_code`, else "ZZ";
/// anything but two ASCII letters counts as absent.
fn country_of(rec: &OriginRecord<'_>) -> [u8; 2] {
    let code = |c: &Option<IsoCode<'_>>| schema::country_code(c.as_ref()?.iso_code?);
    code(&rec.country)
        .or_else(|| code(&rec.registered_country))
        .unwrap_or(Origin::UNKNOWN.country)
}

/// Whether the leaf network covers the whole /24 (IPv4) or /48 (IPv6) of `ip`.
fn coarse(network: Option<IpNetwork>, ip: IpAddr) -> bool {
    match (network, ip) {
        (Some(IpNetwork::V4(n)), IpAddr::V4(_)) => n.prefix() <= 24,
        // An IPv4 lookup that ended above the IPv4 subtree covers all of IPv4.
        (Some(IpNetwork::V6(n)), IpAddr::V4(_)) => n.prefix() <= 96,
        (Some(IpNetwork::V6(n)), IpAddr::V6(_)) => n.prefix() <= 48,
        _ => false,
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) becomes IPv4.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// A 4- or 16-byte address, canonicalised; `None` for any other length.
pub(crate) fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        Some(IpAddr::V4(Ipv4Addr::from(a)))
    } else if let Ok(a) = <[u8; 16]>::try_from(b) {
        Some(canonical(IpAddr::V6(Ipv6Addr::from(a))))
    } else {
        None
    }
}
