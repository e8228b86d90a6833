//! The enrichment interface the core needs. Implemented by `rampart-enrich`
//! (MMDB + CIDR table) and by simple in-memory tables in tests.

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
    /// "taxonomy:code", e.g. "cisa:energy"; "unknown" for `SectorId::UNKNOWN`.
    fn sector_name(&self, id: SectorId) -> &str;
    /// Lookups answered so far by this value (cumulative); zero when the
    /// implementation does not count.
    fn lookup_counts(&self) -> LookupCounts {
        LookupCounts::default()
    }
}
