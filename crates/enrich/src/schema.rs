//! Which MMDB files rampart accepts, checked when they are opened, so a
//! database of another schema is refused with a clear error instead of
//! answering `ZZ` / `AS0` for every address.
//!
//! Accepted without configuration (the field paths default to MaxMind's):
//! - country: GeoIP2/GeoLite2 Country, City or Enterprise and DB-IP's lite
//!   country/city files (`database_type` containing `Country`, `City` or
//!   `Enterprise`), read at `country.iso_code` (else
//!   `registered_country.iso_code`);
//! - ASN: GeoLite2-ASN, GeoIP2-ISP and DB-IP's ASN lite
//!   (`database_type` containing `ASN` or `ISP`), read at
//!   `autonomous_system_number`.
//!
//! Any other database (e.g. IPinfo lite, which stores top-level
//! `country_code` and `asn` = `"AS13335"`) is accepted when `[enrich]
//! country_field` / `asn_field` name where it keeps them; its
//! `database_type` is then not checked. In every case the field must be
//! present in at least one of the first [`SAMPLED_NETWORKS`] networks with
//! data, or the file is refused (a file without any record is accepted).

use std::path::Path;

use maxminddb::{PathElement, Reader};
use serde::Deserialize;

use crate::EnrichError;

/// Networks with data inspected for the configured field at start.
pub(crate) const SAMPLED_NETWORKS: usize = 4_096;

/// Default country field path.
pub const DEFAULT_COUNTRY_FIELD: &str = "country.iso_code";
/// Default ASN field path.
pub const DEFAULT_ASN_FIELD: &str = "autonomous_system_number";

/// Where the databases keep the country code and the ASN (dotted paths of
/// map keys, e.g. `country.iso_code` or `country_code`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginFields {
    pub country: String,
    pub asn: String,
}

impl Default for OriginFields {
    fn default() -> Self {
        OriginFields {
            country: DEFAULT_COUNTRY_FIELD.into(),
            asn: DEFAULT_ASN_FIELD.into(),
        }
    }
}

/// Which of the two databases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Database {
    Country,
    Asn,
}

impl Database {
    fn name(self) -> &'static str {
        match self {
            Database::Country => "country_db",
            Database::Asn => "asn_db",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Database::Country => {
                "a GeoIP2/GeoLite2 Country or City database or a DB-IP lite country/city \
                 database; for another schema set [enrich] country_field to where it keeps \
                 the two-letter country code (e.g. \"country_code\")"
            }
            Database::Asn => {
                "a GeoLite2-ASN, GeoIP2-ISP or DB-IP ASN lite database; for another schema \
                 set [enrich] asn_field to where it keeps the AS number (e.g. \"asn\")"
            }
        }
    }

    fn default_field(self) -> &'static str {
        match self {
            Database::Country => DEFAULT_COUNTRY_FIELD,
            Database::Asn => DEFAULT_ASN_FIELD,
        }
    }

    fn type_fits(self, database_type: &str) -> bool {
        let t = database_type.to_ascii_lowercase();
        match self {
            Database::Country => ["country", "city", "enterprise"]
                .iter()
                .any(|k| t.contains(k)),
            Database::Asn => t.contains("asn") || t.contains("isp"),
        }
    }
}

/// A dotted field path as maxminddb path elements.
pub(crate) fn path_elements(field: &str) -> Vec<PathElement<'_>> {
    field.split('.').map(PathElement::Key).collect()
}

/// An AS number as databases store it: a number, or text like `AS13335`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum AsnValue<'a> {
    Number(u32),
    Text(&'a str),
}

impl AsnValue<'_> {
    pub(crate) fn number(&self) -> Option<u32> {
        match self {
            AsnValue::Number(n) => Some(*n),
            AsnValue::Text(t) => {
                let digits = t
                    .strip_prefix("AS")
                    .or_else(|| t.strip_prefix("as"))
                    .unwrap_or(t);
                digits.parse().ok()
            }
        }
    }
}

/// A two-letter country code, upper-cased; anything else is absent.
pub(crate) fn country_code(text: &str) -> Option<[u8; 2]> {
    match text.as_bytes() {
        &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

/// Refuses `reader` (opened from `path`) unless it fits `database` with
/// `field`: the type check applies to the default field only; the field must
/// hold a usable value in one of the first networks.
pub(crate) fn check(
    reader: &Reader<Vec<u8>>,
    path: &Path,
    database: Database,
    field: &str,
) -> Result<(), EnrichError> {
    let database_type = reader.metadata().database_type.clone();
    let refuse = |found: String| EnrichError::Schema {
        key: database.name(),
        path: path.to_owned(),
        database_type: database_type.clone(),
        found,
        expected: database.expected(),
    };
    if field == database.default_field() && !database.type_fits(&database_type) {
        return Err(refuse("a database of another type".into()));
    }
    let elements = path_elements(field);
    let networks = reader
        .networks(Default::default())
        .map_err(|e| refuse(format!("networks cannot be listed ({e})")))?;
    let mut sampled = 0;
    for result in networks {
        let Ok(lookup) = result else { continue };
        if !lookup.has_data() {
            continue;
        }
        sampled += 1;
        let usable = match database {
            Database::Country => matches!(
                lookup.decode_path::<&str>(&elements),
                Ok(Some(code)) if country_code(code).is_some()
            ),
            Database::Asn => matches!(
                lookup.decode_path::<AsnValue<'_>>(&elements),
                Ok(Some(asn)) if asn.number().is_some()
            ),
        };
        if usable {
            return Ok(());
        }
        if sampled >= SAMPLED_NETWORKS {
            break;
        }
    }
    if sampled == 0 {
        // No record at all: nothing of another schema to misread.
        return Ok(());
    }
    Err(refuse(format!(
        "no usable `{field}` in the first {sampled} networks with data"
    )))
}
