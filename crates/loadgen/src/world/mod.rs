//! The synthetic internet a run draws from: countries, their ASNs and prefixes,
//! the source populations inside each country, and the sensors' target ranges
//! split into sectors.
//!
//! The `World` is the single source of truth: the MMDB files and the sector
//! table a run writes, the enricher the ground truth uses ([`WorldEnricher`]) and
//! the events the generator draws are all read from the same tables, so the
//! rollups computed from them agree.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use rampart_core::enrich::{Enricher, Origin, SectorId};

use crate::data;
use crate::error::LoadgenError;
use crate::event::IpBytes;
use crate::rng::{Alias, Rng, mix64};

mod build;

/// Sizes and shape of the synthetic internet. Defaults are documented per field.
#[derive(Clone, Debug, PartialEq)]
pub struct WorldConfig {
    /// Seed of everything in the world (default 1).
    pub seed: u64,
    /// ASNs over all countries (default 20 000; every country gets at least 2).
    pub asns: u32,
    /// IPv4 /24 prefixes over all ASNs (default 60 000; every ASN gets at least 1).
    pub prefixes: u32,
    /// Distinct potential source addresses over all countries (default 1 000 000).
    pub sources: u32,
    /// Share of ASNs (besides each country's first) that also announce an IPv6 /48 (default 0.15).
    pub ipv6_asn_share: f64,
    /// Zipf–Mandelbrot exponent `s` of source activity inside a country (default 1.4).
    pub zipf_s: f64,
    /// Zipf–Mandelbrot offset `q` (default 3.0): weight of rank k is 1/(k+q)^s.
    pub zipf_q: f64,
    /// IPv4 /16 blocks reserved for the sensors' target ranges (default 8).
    pub target_slash16s: u32,
    /// Number of sensors; each target range belongs to one (default 8).
    pub sensors: u16,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            seed: 1,
            asns: 20_000,
            prefixes: 60_000,
            sources: 1_000_000,
            ipv6_asn_share: 0.15,
            zipf_s: 1.4,
            zipf_q: 3.0,
            target_slash16s: 8,
            sensors: 8,
        }
    }
}

impl WorldConfig {
    fn check(&self) -> Result<(), LoadgenError> {
        let bad = |what: &str| Err(LoadgenError::Config(what.to_string()));
        if self.asns == 0 || self.prefixes == 0 || self.sources == 0 {
            return bad("world: asns, prefixes and sources must be > 0");
        }
        if !(0.0..=1.0).contains(&self.ipv6_asn_share) {
            return bad("world: ipv6_asn_share must be within 0..=1");
        }
        if !(self.zipf_s.is_finite()
            && self.zipf_s > 0.0
            && self.zipf_q.is_finite()
            && self.zipf_q >= 0.0)
        {
            return bad("world: zipf_s must be > 0 and zipf_q >= 0");
        }
        if self.target_slash16s < 2 || self.target_slash16s > 64 {
            return bad("world: target_slash16s must be within 2..=64");
        }
        if self.sensors == 0 || self.sensors > 99 {
            return bad("world: sensors must be within 1..=99");
        }
        Ok(())
    }
}

/// One origin country.
#[derive(Clone, Debug)]
pub struct Country {
    /// ISO 3166-1 alpha-2 code, upper case.
    pub code: [u8; 2],
    /// Share of generated traffic (fractions over all countries sum to 1).
    pub weight: f64,
    /// Indices of its ASNs in [`World::asns`].
    pub asns: std::ops::Range<usize>,
    /// Its /24 prefixes (network address as u32), shuffled: source rank r lives in `v4[r % len]`.
    pub(crate) v4: Vec<u32>,
    /// Its IPv6 /48s (first 6 bytes).
    pub(crate) v6: Vec<[u8; 6]>,
    /// Zipf–Mandelbrot over source ranks, compact so it stays in cache: the
    /// first `ZIPF_HEAD` ranks one entry each, then buckets of consecutive
    /// ranks growing by ~6 % each (uniform inside a bucket, whose weights differ
    /// by < 10 %). A few hundred entries per country whatever its size.
    pub(crate) zipf: Alias,
    /// First rank of each tail bucket.
    pub(crate) zipf_starts: Vec<u32>,
    /// Number of ranks (potential sources).
    pub(crate) n_sources: u64,
    /// Host permutation offset (so rank 0 is not always `.1`).
    pub(crate) host_off: u32,
    pub(crate) salt: u64,
}

impl Country {
    /// The code as `&str`.
    pub fn code_str(&self) -> &str {
        std::str::from_utf8(&self.code).unwrap_or("ZZ")
    }

    /// Number of potential sources (ranks) in this country.
    pub fn sources(&self) -> usize {
        self.n_sources as usize
    }

    /// Draws a source rank (0 = most active).
    #[inline]
    pub(crate) fn sample_rank(&self, rng: &mut Rng) -> u64 {
        let i = self.zipf.sample(rng) as u64;
        if i < ZIPF_HEAD {
            return i;
        }
        let b = (i - ZIPF_HEAD) as usize;
        let start = self.zipf_starts.get(b).map_or(0, |s| u64::from(*s));
        let end = self
            .zipf_starts
            .get(b + 1)
            .map_or(self.n_sources, |s| u64::from(*s));
        start + rng.below(end.saturating_sub(start).max(1))
    }

    /// IPv4 source address of the source ranked `rank` (0 = most active).
    #[inline]
    pub(crate) fn v4_source(&self, rank: u64) -> [u8; 4] {
        let p = self.v4.len().max(1) as u64;
        // Most ranks are below the prefix count: skip the division then.
        let (idx, round) = if rank < p {
            (rank, 0)
        } else {
            (rank % p, rank / p)
        };
        let prefix = self.v4.get(idx as usize).copied().unwrap_or(0);
        let host = 1 + (round * 79 + u64::from(self.host_off)) % 254;
        (prefix | host as u32).to_be_bytes()
    }

    /// IPv6 source address of the source ranked `rank`, if the country has IPv6.
    #[inline]
    pub(crate) fn v6_source(&self, rank: u64) -> Option<[u8; 16]> {
        let p = self.v6.len() as u64;
        let prefix = self.v6.get((rank % p.max(1)) as usize)?;
        let mut a = [0u8; 16];
        a[..6].copy_from_slice(prefix);
        a[8..].copy_from_slice(&mix64(rank ^ self.salt).to_be_bytes());
        Some(a)
    }
}

/// One autonomous system.
#[derive(Clone, Debug)]
pub struct Asn {
    /// AS number.
    pub number: u32,
    /// Organisation name (MMDB `autonomous_system_organization`).
    pub org: String,
    /// Index of its country in [`World::countries`].
    pub country: usize,
    /// Its /24 prefixes (network address as u32).
    pub v4: Vec<u32>,
    /// Its IPv6 /48s (first 6 bytes).
    pub v6: Vec<[u8; 6]>,
}

/// One target range of the sensor side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetRange {
    /// Network address.
    pub addr: IpAddr,
    /// CIDR prefix length.
    pub prefix_len: u8,
    /// Index into [`SECTORS`](crate::SECTORS), `None` for unmatched space ("unknown").
    pub sector: Option<usize>,
    /// Index of the sensor watching it (into [`World::sensor_name`]).
    pub sensor: u16,
}

/// One network of the origin MMDB files.
#[derive(Clone, Copy, Debug)]
pub struct OriginNetwork<'a> {
    /// Network address.
    pub addr: IpAddr,
    /// CIDR prefix length (24 for IPv4, 48 for IPv6).
    pub prefix_len: u8,
    /// ISO country code.
    pub country: &'a str,
    /// AS number.
    pub asn: u32,
    /// AS organisation.
    pub as_org: &'a str,
}

/// `build_epoch` of the MMDB files (2025-01-01T00:00:00Z), fixed for reproducible bytes.
const MMDB_BUILD_EPOCH: u64 = 1_735_689_600;

/// Ranks sampled individually (the head of the Zipf–Mandelbrot law).
const ZIPF_HEAD: u64 = 256;

/// Number of destination classes: the 16 sectors plus "unknown" (index 16).
pub(crate) const CLASSES: usize = 17;
pub(crate) const UNKNOWN_CLASS: usize = 16;

/// The synthetic internet. Build once per run with [`World::new`]; share it (it is read-only).
#[derive(Debug)]
pub struct World {
    config: WorldConfig,
    countries: Vec<Country>,
    asns: Vec<Asn>,
    pub(crate) country_alias: Alias,
    targets: Vec<TargetRange>,
    /// IPv4 target ranges sorted by start: (start, size, index into `targets`).
    v4_targets: Vec<(u32, u32, usize)>,
    /// Per class: IPv4 target indices (into `v4_targets`) and an alias by size.
    pub(crate) class_blocks: Vec<(Vec<usize>, Alias)>,
    pub(crate) class_alias: Alias,
    /// Per class: its IPv6 /48 and sensor.
    pub(crate) class_v6: Vec<([u8; 6], u16)>,
    v4_owner: HashMap<u32, u32>,
    v6_owner: HashMap<[u8; 6], u32>,
    sensor_names: Vec<String>,
}

impl World {
    /// The configuration the world was built from.
    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    /// All countries, in weight order (top countries first).
    pub fn countries(&self) -> &[Country] {
        &self.countries
    }

    /// All ASNs.
    pub fn asns(&self) -> &[Asn] {
        &self.asns
    }

    /// All target ranges (IPv4 and IPv6), including unmatched ones (`sector: None`).
    pub fn targets(&self) -> &[TargetRange] {
        &self.targets
    }

    /// Name of sensor `i`; sensors `n..2n` are the peers that send overlapping copies.
    pub fn sensor_name(&self, i: u16) -> &str {
        self.sensor_names
            .get(usize::from(i))
            .map(String::as_str)
            .unwrap_or("sensor-00")
    }

    /// Number of primary sensors.
    pub fn sensors(&self) -> u16 {
        self.config.sensors
    }

    /// Every origin network (one /24 or /48 each) with its country and ASN:
    /// exactly what the MMDB files hold.
    pub fn origin_networks(&self) -> impl Iterator<Item = OriginNetwork<'_>> + '_ {
        self.asns.iter().flat_map(move |a| {
            let country = self
                .countries
                .get(a.country)
                .map(Country::code_str)
                .unwrap_or("ZZ");
            let v4 = a.v4.iter().map(move |p| OriginNetwork {
                addr: IpAddr::V4(Ipv4Addr::from(*p)),
                prefix_len: 24,
                country,
                asn: a.number,
                as_org: &a.org,
            });
            let v6 = a.v6.iter().map(move |p| {
                let mut b = [0u8; 16];
                b[..6].copy_from_slice(p);
                OriginNetwork {
                    addr: IpAddr::V6(Ipv6Addr::from(b)),
                    prefix_len: 48,
                    country,
                    asn: a.number,
                    as_org: &a.org,
                }
            });
            v4.chain(v6)
        })
    }

    /// Origin (country, ASN) of a source address, `Origin::UNKNOWN` outside the world.
    pub fn origin(&self, ip: &[u8]) -> Origin {
        let owner = match ip.len() {
            4 => {
                let a = u32::from_be_bytes([ip[0], ip[1], ip[2], ip[3]]);
                self.v4_owner.get(&(a >> 8))
            }
            16 => {
                let mut p = [0u8; 6];
                p.copy_from_slice(&ip[..6]);
                self.v6_owner.get(&p)
            }
            _ => None,
        };
        owner
            .and_then(|i| self.asns.get(*i as usize))
            .and_then(|a| {
                Some(Origin {
                    country: self.countries.get(a.country)?.code,
                    asn: a.number,
                })
            })
            .unwrap_or(Origin::UNKNOWN)
    }

    /// Sector index (into [`SECTORS`](crate::SECTORS)) of a destination, `None` = "unknown".
    pub fn sector(&self, ip: &[u8]) -> Option<usize> {
        match ip.len() {
            4 => {
                let a = u32::from_be_bytes([ip[0], ip[1], ip[2], ip[3]]);
                let i = self.v4_targets.partition_point(|(s, _, _)| *s <= a);
                let (s, size, ti) = *self.v4_targets.get(i.checked_sub(1)?)?;
                if u64::from(a) < u64::from(s) + u64::from(size) {
                    self.targets.get(ti)?.sector
                } else {
                    None
                }
            }
            16 => {
                if ip[..4] != data::V6_TARGET_32 || ip[4] != 0 {
                    return None;
                }
                let class = usize::from(ip[5]).checked_sub(1)?;
                (class < UNKNOWN_CLASS && ip[5] as usize == class + 1).then_some(class)
            }
            _ => None,
        }
    }

    /// A destination of destination class `class` (sector index, or 16 for
    /// unmatched space) and the sensor that sees it.
    #[inline]
    pub(crate) fn pick_target(&self, class: usize, v6: bool, rng: &mut Rng) -> (IpBytes, u16) {
        if v6 && let Some((p, sensor)) = self.class_v6.get(class) {
            let mut a = [0u8; 16];
            a[..6].copy_from_slice(p);
            a[6..14].copy_from_slice(&rng.next_u64().to_be_bytes());
            a[14..].copy_from_slice(&(1 + rng.below(0xFFFE) as u16).to_be_bytes());
            return (IpBytes::v6(a), *sensor);
        }
        let block = match self.class_blocks.get(class) {
            Some((idx, alias)) if !idx.is_empty() => {
                idx.get(alias.sample(rng)).copied().unwrap_or(0)
            }
            _ => rng.below(self.v4_targets.len() as u64) as usize,
        };
        match self.v4_targets.get(block) {
            Some((start, size, ti)) => {
                let host = start + rng.below(u64::from(*size)) as u32;
                let sensor = self.targets.get(*ti).map(|t| t.sensor).unwrap_or(0);
                (IpBytes::v4(host.to_be_bytes()), sensor)
            }
            None => (IpBytes::v4([192, 0, 2, 1]), 0),
        }
    }

    /// Writes the sector table: CSV `cidr,sector` with a header line, one row
    /// per sector range (unmatched ranges are absent, so they stay "unknown").
    pub fn write_sector_table(&self, path: &Path) -> Result<(), LoadgenError> {
        let io = |e| LoadgenError::Io {
            path: path.display().to_string(),
            source: e,
        };
        let f = std::fs::File::create(path).map_err(io)?;
        let mut w = std::io::BufWriter::new(f);
        writeln!(w, "cidr,sector").map_err(io)?;
        for t in &self.targets {
            if let Some(s) = t.sector {
                let slug = data::SECTORS.get(s).map(|(n, _)| *n).unwrap_or("unknown");
                writeln!(w, "{}/{},cisa:{}", t.addr, t.prefix_len, slug).map_err(io)?;
            }
        }
        w.flush().map_err(io)
    }

    /// Writes the origin databases: a GeoLite2-Country shaped MMDB at
    /// `country_path` and a GeoLite2-ASN shaped one at `asn_path`, one record
    /// per world network (the country's English name is its ISO code). The
    /// build epoch is fixed, so the same world gives the same file bytes.
    pub fn write_mmdb(&self, country_path: &Path, asn_path: &Path) -> Result<(), LoadgenError> {
        use rampart_mmdb::{MmdbWriter, asn_record, country_record};
        let err = |e: rampart_mmdb::MmdbWriteError| LoadgenError::Mmdb(e.to_string());
        let mut country = MmdbWriter::new("GeoLite2-Country").build_epoch(MMDB_BUILD_EPOCH);
        let mut asn = MmdbWriter::new("GeoLite2-ASN").build_epoch(MMDB_BUILD_EPOCH);
        for n in self.origin_networks() {
            country
                .insert_prefix(n.addr, n.prefix_len, country_record(n.country, n.country))
                .map_err(err)?;
            asn.insert_prefix(n.addr, n.prefix_len, asn_record(n.asn, n.as_org))
                .map_err(err)?;
        }
        country.write_to_path(country_path).map_err(err)?;
        asn.write_to_path(asn_path).map_err(err)
    }

    /// An [`Enricher`] answering from the world's own tables (no MMDB, no CSV):
    /// the ground truth's independent view of origin and sector.
    pub fn enricher(&self) -> WorldEnricher<'_> {
        WorldEnricher { world: self }
    }
}

fn class_of(t: &TargetRange) -> usize {
    t.sector.unwrap_or(UNKNOWN_CLASS)
}

fn code2(c: &str) -> [u8; 2] {
    let b = c.as_bytes();
    [
        b.first().copied().unwrap_or(b'Z'),
        b.get(1).copied().unwrap_or(b'Z'),
    ]
}

/// [`Enricher`] over a [`World`]. Sector ids: `SectorId(i + 1)` for `SECTORS[i]`,
/// `SectorId::UNKNOWN` otherwise.
#[derive(Clone, Copy, Debug)]
pub struct WorldEnricher<'a> {
    world: &'a World,
}

/// Sector names as `taxonomy:code`, index = `SectorId.0` (0 is "unknown").
pub(crate) static SECTOR_NAMES: [&str; 17] = [
    "unknown",
    "cisa:information-technology",
    "cisa:communications",
    "cisa:financial-services",
    "cisa:government-facilities",
    "cisa:healthcare-public-health",
    "cisa:energy",
    "cisa:commercial-facilities",
    "cisa:critical-manufacturing",
    "cisa:transportation-systems",
    "cisa:water-wastewater",
    "cisa:chemical",
    "cisa:food-agriculture",
    "cisa:defense-industrial-base",
    "cisa:emergency-services",
    "cisa:nuclear",
    "cisa:dams",
];

impl Enricher for WorldEnricher<'_> {
    fn origin(&mut self, src: &[u8]) -> Origin {
        self.world.origin(src)
    }

    /// The world's IPv4 origins are owned per /24 (`World::origin`).
    fn origin_of_prefix24(&mut self, src: &[u8]) -> (Origin, bool) {
        (self.world.origin(src), src.len() == 4)
    }

    fn sector(&mut self, dst: &[u8]) -> SectorId {
        match self.world.sector(dst) {
            Some(i) => SectorId(i as u16 + 1),
            None => SectorId::UNKNOWN,
        }
    }

    fn sector_name(&self, id: SectorId) -> &str {
        SECTOR_NAMES
            .get(usize::from(id.0))
            .copied()
            .unwrap_or("unknown")
    }
}
