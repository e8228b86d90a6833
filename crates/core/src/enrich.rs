//! The enrichment interface the core needs. Implemented by `rampart-enrich`
//! (MMDB + CIDR table) and by simple in-memory tables in tests.

use std::sync::Arc;

/// Origin of a source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// ISO 3166-1 alpha-2, upper case; `*b"ZZ"` when unknown.
    pub country: [u8; 2],
    /// Autonomous system number; 0 when unknown.
    pub asn: u32,
}

impl Origin {
    pub const UNKNOWN: Origin = Origin {
        country: *b"ZZ",
        asn: 0,
    };

    /// The country as a `&str` ("ZZ" if the bytes are not ASCII letters).
    pub fn country_str(&self) -> &str {
        match std::str::from_utf8(&self.country) {
            Ok(s) if self.country.iter().all(u8::is_ascii_uppercase) => s,
            _ => "ZZ",
        }
    }
}

/// Interned sector id; `SectorId::UNKNOWN` (0) is "unknown".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SectorId(pub u16);

impl SectorId {
    pub const UNKNOWN: SectorId = SectorId(0);
}

/// How many lookups an enricher answered and how many it could not (for
/// metrics: a database of the wrong kind shows up as all misses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupCounts {
    pub country_hits: u64,
    pub country_misses: u64,
    pub asn_hits: u64,
    pub asn_misses: u64,
    pub sector_hits: u64,
    pub sector_misses: u64,
}

/// The origin of every IPv4 /24 that lies whole in one network of the
/// enricher's database(s): one array slot per /24 (2^24 slots of 4 bytes,
/// 64 MiB), so the ingest stage finds a source's origin with one load instead
/// of walking a search tree per /24 it has not cached (sources as scattered as
/// a scanning botnet miss any cache). A /24 the databases split (a network
/// longer than /24 inside it) has no slot value: its addresses are looked up
/// one by one through [`Enricher::origin_of_prefix24`], so the table changes
/// no answer.
pub struct Prefix24Origins {
    /// Per /24 (`address >> 8`): 0 = not shared by the whole /24, else
    /// 1 + index into `origins`.
    slots: Box<[u32]>,
    origins: Vec<Origin>,
    /// Which databases answered (for [`Self::count`]).
    country_db: bool,
    asn_db: bool,
}

impl std::fmt::Debug for Prefix24Origins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefix24Origins")
            .field("origins", &self.origins.len())
            .finish_non_exhaustive()
    }
}

impl Prefix24Origins {
    /// Number of /24s in IPv4.
    pub const PREFIXES: usize = 1 << 24;
    /// Memory the slots take (the origins are few).
    pub const BYTES: usize = Self::PREFIXES * std::mem::size_of::<u32>();

    /// A table from one slot per /24 (0 = not shared, else 1 + index into
    /// `origins`); `None` unless there are [`Self::PREFIXES`] slots, each 0 or
    /// a valid index + 1.
    pub fn new(slots: Vec<u32>, origins: Vec<Origin>) -> Option<Self> {
        let valid =
            slots.len() == Self::PREFIXES && slots.iter().all(|&s| s as usize <= origins.len());
        valid.then(|| Prefix24Origins {
            slots: slots.into_boxed_slice(),
            origins,
            country_db: true,
            asn_db: true,
        })
    }

    /// Says which databases the table was built from (both by default), so
    /// [`Self::count`] counts only their lookups.
    pub fn from_databases(mut self, country: bool, asn: bool) -> Self {
        self.country_db = country;
        self.asn_db = asn;
        self
    }

    /// Adds `answers` lookups answered `origin` from the table to `counts`,
    /// as the enricher counts its own (per database consulted: a hit when
    /// it knew the field).
    pub fn count(&self, origin: Origin, answers: u64, counts: &mut LookupCounts) {
        if self.country_db {
            if origin.country == Origin::UNKNOWN.country {
                counts.country_misses += answers;
            } else {
                counts.country_hits += answers;
            }
        }
        if self.asn_db {
            if origin.asn == Origin::UNKNOWN.asn {
                counts.asn_misses += answers;
            } else {
                counts.asn_hits += answers;
            }
        }
    }

    /// The distinct origins of the table; [`Self::get`] gives indices into it.
    pub fn origins(&self) -> &[Origin] {
        &self.origins
    }

    /// The index (into [`Self::origins`]) of the origin every address of the
    /// /24 of IPv4 `address` has, if the whole /24 shares one.
    #[inline]
    pub fn get(&self, address: u32) -> Option<u32> {
        match self.slots.get((address >> 8) as usize) {
            Some(&slot) if slot != 0 => Some(slot - 1),
            _ => None,
        }
    }

    /// Loads the slot of `address` (a touch pass: see the ingest stage).
    #[inline]
    pub fn touch(&self, address: u32) -> u32 {
        self.slots
            .get((address >> 8) as usize)
            .copied()
            .unwrap_or(0)
    }
}

impl std::ops::AddAssign for LookupCounts {
    fn add_assign(&mut self, other: LookupCounts) {
        let LookupCounts {
            country_hits,
            country_misses,
            asn_hits,
            asn_misses,
            sector_hits,
            sector_misses,
        } = other;
        self.country_hits += country_hits;
        self.country_misses += country_misses;
        self.asn_hits += asn_hits;
        self.asn_misses += asn_misses;
        self.sector_hits += sector_hits;
        self.sector_misses += sector_misses;
    }
}

/// Looks up origin and sector. `&mut self` so implementations can keep caches.
/// Lookups never fail: what cannot be resolved is unknown.
pub trait Enricher {
    /// `src` is 4 or 16 bytes (validated before this is called).
    fn origin(&mut self, src: &[u8]) -> Origin;
    /// `dst` is 4 or 16 bytes.
    fn sector(&mut self, dst: &[u8]) -> SectorId;
    /// [`Enricher::origin`], and whether every address of the /24 of `src`
    /// has that origin: `true` only for a 4-byte `src` whose whole /24 lies
    /// in one network of the database(s). The ingest stage then caches the
    /// answer per /24 rather than per address. The default claims nothing.
    fn origin_of_prefix24(&mut self, src: &[u8]) -> (Origin, bool) {
        (self.origin(src), false)
    }
    /// [`Enricher::sector`], and whether every address of the /24 of `dst`
    /// has that sector (as [`Enricher::origin_of_prefix24`]).
    fn sector_of_prefix24(&mut self, dst: &[u8]) -> (SectorId, bool) {
        (self.sector(dst), false)
    }
    /// The enricher's table of shared /24 origins, if it has one: its every
    /// value must equal what [`Enricher::origin_of_prefix24`] answers (with
    /// `true`) for every address of that /24. The default has none.
    /// Borrowed, so asking per message costs no reference count.
    fn prefix24_origins(&self) -> Option<&Arc<Prefix24Origins>> {
        None
    }
    /// "taxonomy:code", e.g. "cisa:energy"; "unknown" for `SectorId::UNKNOWN`.
    fn sector_name(&self, id: SectorId) -> &str;
    /// Lookups answered so far by this value (cumulative); zero when the
    /// implementation does not count.
    fn lookup_counts(&self) -> LookupCounts {
        LookupCounts::default()
    }
}
