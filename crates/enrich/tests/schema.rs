#![allow(clippy::unwrap_used)]
//! Databases that do not fit are refused at open with the file, its
//! `database_type` and what was expected; other schemas work through
//! configured field paths; hits and misses are counted. Files written by
//! `rampart-mmdb`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rampart_core::enrich::Origin;
use rampart_enrich::{EnrichError, Enrichment, MmdbOrigin, OriginFields};
use rampart_mmdb::{MmdbWriter, Value, asn_record, country_record};

fn write(dir: &Path, name: &str, w: &MmdbWriter) -> PathBuf {
    let p = dir.join(name);
    w.write_to_path(&p).unwrap();
    p
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// IPinfo-lite-shaped: top-level `country_code` and `asn` = "AS…" text.
fn ipinfo_like(dir: &Path) -> PathBuf {
    let mut w = MmdbWriter::new("ipinfo lite.mmdb");
    for (net, cc, asn) in [
        ("1.2.3.0/24", "JP", "AS2497"),
        ("8.8.8.0/24", "us", "AS15169"),
    ] {
        w.insert(
            net.parse().unwrap(),
            Value::map([
                ("country_code", Value::from(cc)),
                ("asn", Value::from(asn)),
                ("as_name", Value::from("x")),
            ]),
        )
        .unwrap();
    }
    write(dir, "ipinfo.mmdb", &w)
}

#[test]
fn a_country_code_database_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = ipinfo_like(dir.path());
    let err = MmdbOrigin::open(Some(&file), None).unwrap_err();
    assert!(
        matches!(
            err,
            EnrichError::Schema {
                key: "country_db",
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    for needle in [
        "ipinfo.mmdb",
        "\"ipinfo lite.mmdb\"",
        "GeoLite2 Country",
        "country_field",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in: {text}");
    }
    // The same file as an ASN database: also refused.
    let err = MmdbOrigin::open(None, Some(&file)).unwrap_err().to_string();
    assert!(err.contains("asn_db") && err.contains("asn_field"), "{err}");
}

#[test]
fn a_geolite_typed_database_without_the_field_is_refused() {
    // The type says Country, but the records keep `country_code`.
    let dir = tempfile::tempdir().unwrap();
    let mut w = MmdbWriter::new("GeoLite2-Country");
    w.insert(
        "1.2.3.0/24".parse().unwrap(),
        Value::map([("country_code", Value::from("JP"))]),
    )
    .unwrap();
    let file = write(dir.path(), "fake-geolite.mmdb", &w);
    let err = MmdbOrigin::open(Some(&file), None).unwrap_err().to_string();
    assert!(
        err.contains("fake-geolite.mmdb") && err.contains("no usable `country.iso_code`"),
        "{err}"
    );
}

#[test]
fn maxmind_and_dbip_shapes_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, asn_kind) in [
        ("GeoLite2-Country", "GeoLite2-ASN"),
        ("GeoIP2-City", "GeoIP2-ISP"),
        ("DBIP-Country-Lite", "DBIP-ASN-Lite"),
    ] {
        let mut c = MmdbWriter::new(kind);
        c.insert("1.2.3.0/24".parse().unwrap(), country_record("JP", "Japan"))
            .unwrap();
        let mut a = MmdbWriter::new(asn_kind);
        a.insert("1.2.3.0/24".parse().unwrap(), asn_record(2497, "IIJ"))
            .unwrap();
        let c = write(dir.path(), &format!("{kind}.mmdb"), &c);
        let a = write(dir.path(), &format!("{asn_kind}.mmdb"), &a);
        let mut o = MmdbOrigin::open(Some(&c), Some(&a)).unwrap();
        assert_eq!(
            o.lookup(ip("1.2.3.4")),
            Origin {
                country: *b"JP",
                asn: 2497
            },
            "{kind}"
        );
    }
}

#[test]
fn configured_fields_read_another_schema_and_count_hits_and_misses() {
    let dir = tempfile::tempdir().unwrap();
    let file = ipinfo_like(dir.path());
    let fields = OriginFields {
        country: "country_code".into(),
        asn: "asn".into(),
    };
    let e = Enrichment::open_with(Some(&file), Some(&file), None, &fields).unwrap();
    let mut o = e.origin;
    assert_eq!(
        o.lookup(ip("1.2.3.4")),
        Origin {
            country: *b"JP",
            asn: 2497
        }
    );
    assert_eq!(
        o.lookup(ip("8.8.8.8")),
        Origin {
            country: *b"US",
            asn: 15169
        }
    );
    // Cached: same answer, counted again.
    assert_eq!(o.lookup(ip("8.8.8.9")).asn, 15169);
    assert_eq!(o.lookup(ip("9.9.9.9")), Origin::UNKNOWN);
    let stats = o.stats();
    assert_eq!((stats.country_hits, stats.country_misses), (3, 1));
    assert_eq!((stats.asn_hits, stats.asn_misses), (3, 1));
    // A configured field that no record holds is refused too.
    let wrong = OriginFields {
        country: "country.iso_code.x".into(),
        asn: "asn".into(),
    };
    let err = MmdbOrigin::open_with(Some(&file), None, &wrong)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no usable `country.iso_code.x`"), "{err}");
}
