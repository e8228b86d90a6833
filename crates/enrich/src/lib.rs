//! rampart-enrich: origin (country, ASN) from MaxMind-format MMDB files and
//! target sector from a CIDR asset table, behind
//! [`rampart_core::enrich::Enricher`].
//!
//! Owns: reading MMDB files ([`origin::MmdbOrigin`], via the `maxminddb`
//! crate), the asset inventory ([`sectors::SectorTable`]) and their exact
//! per-owner caches (each a [`rampart_core::prefix_cache::PrefixCache`]).
//! Must not know about Kafka, tokio, protobuf or the pipeline: lookups are
//! plain synchronous calls that never fail (unresolvable means unknown).
//! Writing MMDB files is not its job: tests and loadgen use `rampart-mmdb`.
//!
//! Every value here is single-owner (`&mut self` for the caches); clone an
//! [`Enrichment`] per partition/task: the databases and tables are shared
//! behind `Arc`, each clone gets its own cache.

pub mod origin;
mod prefix24;
pub mod schema;
pub mod sectors;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rampart_core::enrich::{Enricher, LookupCounts, Origin, Prefix24Origins, SectorId};

pub use origin::{MmdbOrigin, OriginStats};
pub use schema::OriginFields;
pub use sectors::{CISA_SECTORS, SectorIssue, SectorStats, SectorTable, SectorTableError};

/// Errors opening enrichment data.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An MMDB file could not be opened or is not a valid MaxMind DB.
    #[error("cannot open MMDB file {path}: {source}")]
    Mmdb {
        path: PathBuf,
        #[source]
        source: maxminddb::MaxMindDbError,
    },
    /// An MMDB file of a schema rampart cannot read origins from.
    #[error(
        "[enrich] {key} = {path}: database_type {database_type:?}, {found}; expected {expected}"
    )]
    Schema {
        key: &'static str,
        path: PathBuf,
        database_type: String,
        found: String,
        expected: &'static str,
    },
    /// The sector table has errors (all of them are listed).
    #[error(transparent)]
    SectorTable(#[from] SectorTableError),
    /// The sector table's extension is neither `.csv` nor `.toml`.
    #[error("sector table {0}: unknown format (expected a .csv or .toml file)")]
    UnknownFormat(PathBuf),
}

/// Origin and sector enrichment: the production [`Enricher`].
#[derive(Clone, Debug)]
pub struct Enrichment {
    /// Country / ASN lookups ([`MmdbOrigin::none`] when no database is given).
    pub origin: MmdbOrigin,
    /// Destination -> sector ([`SectorTable::empty`] when no table is given).
    pub sectors: SectorTable,
}

impl Enrichment {
    /// Opens whatever is given; what is absent answers unknown.
    pub fn open(
        country_db: Option<&Path>,
        asn_db: Option<&Path>,
        sectors: Option<&Path>,
    ) -> Result<Self, EnrichError> {
        Self::open_with(country_db, asn_db, sectors, &OriginFields::default())
    }

    /// [`Self::open`] reading origins at `fields` (see [`schema`]).
    pub fn open_with(
        country_db: Option<&Path>,
        asn_db: Option<&Path>,
        sectors: Option<&Path>,
        fields: &OriginFields,
    ) -> Result<Self, EnrichError> {
        let origin = if country_db.is_none() && asn_db.is_none() {
            MmdbOrigin::none()
        } else {
            MmdbOrigin::open_with(country_db, asn_db, fields)?
        };
        let sectors = match sectors {
            Some(p) => SectorTable::load(p)?,
            None => SectorTable::empty(),
        };
        Ok(Enrichment { origin, sectors })
    }

    /// Nothing loaded: every lookup is unknown.
    pub fn unknown() -> Self {
        Enrichment {
            origin: MmdbOrigin::none(),
            sectors: SectorTable::empty(),
        }
    }
}

impl Enricher for Enrichment {
    fn origin(&mut self, src: &[u8]) -> Origin {
        self.origin.lookup_bytes(src)
    }

    fn sector(&mut self, dst: &[u8]) -> SectorId {
        self.sectors.lookup_bytes(dst)
    }

    fn origin_of_prefix24(&mut self, src: &[u8]) -> (Origin, bool) {
        self.origin.lookup_bytes_prefix24(src)
    }

    fn sector_of_prefix24(&mut self, dst: &[u8]) -> (SectorId, bool) {
        self.sectors.lookup_bytes_prefix24(dst)
    }

    fn sector_name(&self, id: SectorId) -> &str {
        self.sectors.name(id)
    }

    fn prefix24_origins(&self) -> Option<&Arc<Prefix24Origins>> {
        self.origin.prefix24_origins()
    }

    fn lookup_counts(&self) -> LookupCounts {
        let origin = self.origin.stats();
        let sectors = self.sectors.stats();
        LookupCounts {
            country_hits: origin.country_hits,
            country_misses: origin.country_misses,
            asn_hits: origin.asn_hits,
            asn_misses: origin.asn_misses,
            sector_hits: sectors.lookups - sectors.unknown,
            sector_misses: sectors.unknown,
        }
    }
}
