#![allow(clippy::unwrap_used)]
//! MmdbOrigin against MMDB files written by `rampart-mmdb` and read back both
//! by the `maxminddb` crate directly and through `MmdbOrigin`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnetwork::IpNetwork;
use maxminddb::{Reader, geoip2};
use proptest::prelude::*;
use rampart_core::enrich::{Enricher, Origin};
use rampart_enrich::{Enrichment, MmdbOrigin};
use rampart_mmdb::{MmdbWriter, Value, asn_record, country_record};

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn write(dir: &Path, name: &str, w: &MmdbWriter) -> PathBuf {
    let p = dir.join(name);
    w.write_to_path(&p).unwrap();
    p
}

/// Country DB: CN /16 with a JP /24 inside, a US IPv6 /32 with a DE /48 inside,
/// a record with only registered_country, and one with no country at all.
fn fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let mut c = MmdbWriter::new("GeoLite2-Country");
    c.insert(net("1.2.0.0/16"), country_record("CN", "China"))
        .unwrap();
    c.insert(net("1.2.3.0/24"), country_record("JP", "Japan"))
        .unwrap();
    c.insert(net("2001:db8::/32"), country_record("US", "United States"))
        .unwrap();
    c.insert(net("2001:db8:5::/48"), country_record("DE", "Germany"))
        .unwrap();
    c.insert(
        net("5.6.7.0/24"),
        Value::map([(
            "registered_country",
            Value::map([("iso_code", Value::from("fr"))]),
        )]),
    )
    .unwrap();
    c.insert(
        net("9.9.9.0/24"),
        Value::map([("continent", Value::map([("code", Value::from("EU"))]))]),
    )
    .unwrap();
    let mut a = MmdbWriter::new("GeoLite2-ASN");
    a.insert(net("1.2.0.0/15"), asn_record(4134, "Chinanet"))
        .unwrap();
    a.insert(net("1.2.3.128/25"), asn_record(2497, "IIJ"))
        .unwrap();
    a.insert(net("2001:db8::/32"), asn_record(64496, "Doc"))
        .unwrap();
    (write(dir, "country.mmdb", &c), write(dir, "asn.mmdb", &a))
}

#[test]
fn independent_reader_sees_the_written_records() {
    let dir = tempfile::tempdir().unwrap();
    let (country, asn) = fixture(dir.path());
    let r = Reader::open_readfile(&country).unwrap();
    r.verify().unwrap();
    assert_eq!(r.metadata().database_type, "GeoLite2-Country");
    let c: geoip2::Country = r.lookup(ip("1.2.3.4")).unwrap().decode().unwrap().unwrap();
    assert_eq!(c.country.iso_code, Some("JP"));
    assert_eq!(c.country.names.english, Some("Japan"));
    let c: geoip2::Country = r
        .lookup(ip("2001:db8:5::1"))
        .unwrap()
        .decode()
        .unwrap()
        .unwrap();
    assert_eq!(c.country.iso_code, Some("DE"));
    let r = Reader::open_readfile(&asn).unwrap();
    r.verify().unwrap();
    let a: geoip2::Asn = r.lookup(ip("1.3.0.1")).unwrap().decode().unwrap().unwrap();
    assert_eq!(a.autonomous_system_number, Some(4134));
    assert_eq!(a.autonomous_system_organization, Some("Chinanet"));
}

#[test]
fn origin_lookups_ipv4_ipv6_nested_and_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let (country, asn) = fixture(dir.path());
    let mut o = MmdbOrigin::open(Some(&country), Some(&asn)).unwrap();
    let cases = [
        ("1.2.3.4", *b"JP", 4134),
        ("1.2.3.200", *b"JP", 2497),
        ("1.2.4.4", *b"CN", 4134),
        ("1.3.0.1", *b"ZZ", 4134),
        ("::ffff:1.2.3.4", *b"JP", 4134),
        ("2001:db8:1::1", *b"US", 64496),
        ("2001:db8:5:ffff::1", *b"DE", 64496),
        ("5.6.7.8", *b"FR", 0),
        ("9.9.9.9", *b"ZZ", 0),
        ("8.8.8.8", *b"ZZ", 0),
        ("2a00::1", *b"ZZ", 0),
    ];
    for round in 0..2 {
        for (a, country, asn) in cases {
            let want = Origin { country, asn };
            assert_eq!(o.lookup(ip(a)), want, "{a} round {round}");
            assert_eq!(o.lookup_uncached(ip(a)), want, "{a} uncached");
        }
    }
    let s = o.stats();
    assert_eq!(s.lookups, 2 * cases.len() as u64);
    assert!(s.cache_hits > 0, "{s:?}");
    assert_eq!(
        s.unknown,
        2 * 3,
        "9.9.9.9, 8.8.8.8 and 2a00::1, twice: {s:?}"
    );
    // Malformed lengths are unknown, never a panic.
    assert_eq!(o.lookup_bytes(&[1, 2, 3]), Origin::UNKNOWN);
    assert_eq!(
        o.lookup_bytes(&[1, 2, 3, 4]),
        Origin {
            country: *b"JP",
            asn: 4134
        }
    );
}

#[test]
fn either_database_alone_and_none() {
    let dir = tempfile::tempdir().unwrap();
    let (country, asn) = fixture(dir.path());
    let mut o = MmdbOrigin::open(Some(&country), None).unwrap();
    assert_eq!(
        o.lookup(ip("1.2.3.4")),
        Origin {
            country: *b"JP",
            asn: 0
        }
    );
    let mut o = MmdbOrigin::open(None, Some(&asn)).unwrap();
    assert_eq!(
        o.lookup(ip("1.2.3.4")),
        Origin {
            country: *b"ZZ",
            asn: 4134
        }
    );
    assert_eq!(MmdbOrigin::none().lookup(ip("1.2.3.4")), Origin::UNKNOWN);
}

#[test]
fn open_reports_the_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.mmdb");
    std::fs::write(&bad, b"not an mmdb").unwrap();
    let err = MmdbOrigin::open(Some(&bad), None).unwrap_err().to_string();
    assert!(err.contains("bad.mmdb"), "{err}");
    let missing = dir.path().join("missing.mmdb");
    assert!(Enrichment::open(None, Some(&missing), None).is_err());
}

#[test]
fn enrichment_implements_enricher() {
    let dir = tempfile::tempdir().unwrap();
    let (country, asn) = fixture(dir.path());
    let sectors = dir.path().join("assets.csv");
    std::fs::write(&sectors, "cidr,sector\n198.51.100.0/24,energy\n").unwrap();
    let mut e = Enrichment::open(Some(&country), Some(&asn), Some(&sectors)).unwrap();
    assert_eq!(
        e.origin(&[1, 2, 3, 4]),
        Origin {
            country: *b"JP",
            asn: 4134
        }
    );
    let id = e.sector(&[198, 51, 100, 7]);
    assert_eq!(e.sector_name(id), "cisa:energy");
    let unknown = e.sector(&[198, 51, 101, 7]);
    assert_eq!(e.sector_name(unknown), "unknown");
    // A clone shares the data but has its own cache and counters.
    let mut c = e.clone();
    assert_eq!(
        c.origin(&[1, 2, 3, 4]),
        Origin {
            country: *b"JP",
            asn: 4134
        }
    );
    assert_eq!(c.origin.stats().lookups, 1);
    assert_eq!(e.sectors.unknown_lookups(), 1);
}

// ---- property: cached == uncached == brute-force model ------------------

#[derive(Clone, Debug)]
struct Net {
    addr: IpAddr,
    len: u8,
    country: [u8; 2],
    asn: u32,
}

fn contains(n: &Net, a: IpAddr) -> bool {
    match (n.addr, a) {
        (IpAddr::V4(x), IpAddr::V4(y)) => {
            let m = u32::MAX.checked_shl(32 - u32::from(n.len)).unwrap_or(0);
            u32::from(x) & m == u32::from(y) & m
        }
        (IpAddr::V6(x), IpAddr::V6(y)) => {
            let m = u128::MAX.checked_shl(128 - u32::from(n.len)).unwrap_or(0);
            u128::from(x) & m == u128::from(y) & m
        }
        _ => false,
    }
}

/// Most specific containing network; among equals, the last inserted.
fn model(nets: &[Net], a: IpAddr) -> Option<&Net> {
    let mut best: Option<&Net> = None;
    for n in nets {
        if contains(n, a) && best.is_none_or(|b| n.len >= b.len) {
            best = Some(n);
        }
    }
    best
}

/// Addresses in a small space so networks nest and collide.
fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u32..4, any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(a, b, c, d)| IpAddr::from([
            10,
            a as u8,
            b & 0x0f,
            c ^ (d & 3)
        ])),
        (0u16..4, 0u16..4, any::<u16>(), any::<u64>()).prop_map(|(a, b, c, d)| {
            let v = (0x2001_0db8u128 << 96)
                | (u128::from(a) << 80)
                | (u128::from(b) << 64)
                | (u128::from(c) << 48)
                | u128::from(d & 0xff);
            IpAddr::V6(v.into())
        }),
    ]
}

fn arb_net() -> impl Strategy<Value = Net> {
    (arb_ip(), 0u8..=40, 0usize..5, 0u32..4).prop_map(|(addr, l, c, asn)| {
        let len = match addr {
            IpAddr::V4(_) => 8 + (l % 25),         // /8 .. /32
            IpAddr::V6(_) => 24 + ((l * 3) % 105), // /24 .. /128
        };
        let country = [*b"CN", *b"JP", *b"US", *b"DE", *b"RU"][c];
        Net {
            addr,
            len,
            country,
            asn: 64_500 + asn,
        }
    })
}

fn build(dir: &Path, nets: &[Net], asn_nets: &[Net]) -> MmdbOrigin {
    // A small cache so slots are also evicted and reused.
    build_layout(dir, nets, asn_nets, 0).with_cache_slots(64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn cache_and_reader_agree_with_brute_force(
        nets in proptest::collection::vec(arb_net(), 0..40),
        asn_nets in proptest::collection::vec(arb_net(), 0..40),
        ips in proptest::collection::vec(arb_ip(), 1..300),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut o = build(dir.path(), &nets, &asn_nets);
        // Each address twice, interleaved, so cache hits happen.
        for a in ips.iter().chain(ips.iter().rev()) {
            let want = Origin {
                country: model(&nets, *a).map_or(*b"ZZ", |n| n.country),
                asn: model(&asn_nets, *a).map_or(0, |n| n.asn),
            };
            prop_assert_eq!(o.lookup(*a), want, "cached {}", a);
            prop_assert_eq!(o.lookup_uncached(*a), want, "uncached {}", a);
        }
    }

    /// A claim that the whole /24 shares an answer (the ingest stage then
    /// caches it per /24) holds for all 256 addresses by brute force, and is
    /// made where it holds (except under a network that is itself finer).
    #[test]
    fn a_shared_prefix24_claim_holds_for_every_address(
        nets in proptest::collection::vec(arb_net(), 0..40),
        asn_nets in proptest::collection::vec(arb_net(), 0..40),
        ips in proptest::collection::vec(arb_ip(), 1..100),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut o = build(dir.path(), &nets, &asn_nets);
        let answer = |a: IpAddr| (model(&nets, a).map(|n| n.country), model(&asn_nets, a).map(|n| n.asn));
        for a in ips.iter().chain(ips.iter().rev()) {
            let IpAddr::V4(v4) = a else {
                let (origin, shared) = o.lookup_bytes_prefix24(&ip_bytes(*a));
                prop_assert_eq!(origin, o.lookup_uncached(*a));
                prop_assert!(!shared, "only 4-byte addresses are shared per /24");
                continue;
            };
            let (origin, shared) = o.lookup_bytes_prefix24(&v4.octets());
            prop_assert_eq!(origin, o.lookup_uncached(*a));
            let [p0, p1, p2, _] = v4.octets();
            let whole = (0..=255u8).all(|last| answer(IpAddr::from([p0, p1, p2, last])) == answer(*a));
            if shared {
                prop_assert!(whole, "{} claimed shared but its /24 differs", a);
            }
            // A network longer than /24 inside this /24 splits it in the
            // database's tree, even when its answer is the same.
            let finer = nets.iter().chain(&asn_nets).any(|n| {
                n.len > 24 && matches!(n.addr, IpAddr::V4(x) if x.octets()[..3] == v4.octets()[..3])
            });
            if whole && !finer {
                prop_assert!(shared, "{}: its /24 shares one answer", a);
            }
        }
    }
}

/// The databases of `nets` and `asn_nets`, by `layout`: 0 IPv6 with the
/// `::ffff:0:0/96` alias (the writer's default), 1 IPv4-only (IPv6 networks
/// left out), 2 IPv6 without the alias.
fn build_layout(dir: &Path, nets: &[Net], asn_nets: &[Net], layout: u8) -> MmdbOrigin {
    let writer = |kind: &str| match layout {
        0 => MmdbWriter::new(kind),
        1 => MmdbWriter::new(kind).ipv4_only(),
        _ => MmdbWriter::new(kind).ipv4_mapped_alias(false),
    };
    let keep = |n: &&Net| layout != 1 || n.addr.is_ipv4();
    let mut c = writer("GeoLite2-Country");
    for n in nets.iter().filter(keep) {
        let iso = std::str::from_utf8(&n.country).unwrap();
        c.insert_prefix(n.addr, n.len, country_record(iso, iso))
            .unwrap();
    }
    let mut a = writer("GeoLite2-ASN");
    for n in asn_nets.iter().filter(keep) {
        a.insert_prefix(n.addr, n.len, asn_record(n.asn, "x"))
            .unwrap();
    }
    let cp = write(dir, "c.mmdb", &c);
    let ap = write(dir, "a.mmdb", &a);
    MmdbOrigin::open(Some(&cp), Some(&ap)).unwrap()
}

/// The table is there by default, shared by clones, and left out when asked
/// (`[enrich] origin_table = false`): lookups answer the same either way.
#[test]
fn the_prefix24_table_is_shared_by_clones_and_can_be_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let (cp, ap) = fixture(dir.path());
    let with = MmdbOrigin::open(Some(&cp), Some(&ap)).unwrap();
    let clone = with.clone();
    let (a, b) = (with.prefix24_origins(), clone.prefix24_origins());
    assert!(a.is_some() && b.is_some_and(|b| Arc::ptr_eq(b, a.unwrap())));
    let mut without = MmdbOrigin::open(Some(&cp), Some(&ap))
        .unwrap()
        .with_prefix24_table(false);
    assert!(without.prefix24_origins().is_none());
    assert!(without.clone().prefix24_origins().is_none());
    let table = a.unwrap();
    let cn = table.get(u32::from_be_bytes([1, 2, 4, 9]));
    assert_eq!(
        cn.and_then(|i| table.origins().get(i as usize)).copied(),
        Some(without.lookup(ip("1.2.4.9")))
    );
    assert_eq!(
        without.lookup(ip("1.2.4.9")),
        Origin {
            country: *b"CN",
            asn: 4134,
        }
    );
    // 1.2.3.0/24 holds the ASN database's 1.2.3.128/25: split, so not in
    // the table (its addresses differ: AS4134 below .128, AS2497 above).
    assert_eq!(table.get(u32::from_be_bytes([1, 2, 3, 9])), None);
    assert_ne!(
        without.lookup(ip("1.2.3.9")),
        without.lookup(ip("1.2.3.200"))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    /// The table of shared /24 origins answers a /24 only where all 256 of
    /// its addresses have that answer by brute force, and answers wherever a
    /// lookup says the whole /24 shares its answer (so the ingest never walks
    /// a tree for such a /24), in each database layout.
    #[test]
    fn the_prefix24_table_answers_as_every_address_of_its_prefix(
        nets in proptest::collection::vec(arb_net(), 0..40),
        asn_nets in proptest::collection::vec(arb_net(), 0..40),
        ips in proptest::collection::vec(arb_ip(), 1..60),
        layout in 0u8..3,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut o = build_layout(dir.path(), &nets, &asn_nets, layout);
        let table = o.prefix24_origins().cloned().expect("a table for generated databases");
        let v4 = |n: &Net| layout != 1 || n.addr.is_ipv4();
        let nets: Vec<Net> = nets.into_iter().filter(v4).collect();
        let asn_nets: Vec<Net> = asn_nets.into_iter().filter(v4).collect();
        let answer = |a: IpAddr| Origin {
            country: model(&nets, a).map_or(*b"ZZ", |n| n.country),
            asn: model(&asn_nets, a).map_or(0, |n| n.asn),
        };
        let probes = ips
            .iter()
            .chain(nets.iter().chain(&asn_nets).map(|n| &n.addr))
            .filter_map(|a| match a {
                IpAddr::V4(v4) => Some(u32::from(*v4)),
                IpAddr::V6(_) => None,
            })
            .flat_map(|a| [a, a.wrapping_add(256), a.wrapping_sub(256)])
            .chain([0, u32::MAX, 0x0a00_0000]);
        for address in probes {
            let ip = IpAddr::from(address.to_be_bytes());
            let (looked_up, shared) = o.lookup_bytes_prefix24(&address.to_be_bytes());
            match table.get(address) {
                Some(index) => {
                    let origin = table.origins().get(index as usize).copied();
                    for last in 0..=255u32 {
                        let a = IpAddr::from(((address & !0xff) | last).to_be_bytes());
                        prop_assert_eq!(origin, Some(answer(a)), "table at {} vs {}", ip, a);
                    }
                    prop_assert_eq!(origin, Some(looked_up), "table vs lookup at {}", ip);
                }
                None => prop_assert!(!shared, "{}: shared by lookup, not in the table", ip),
            }
        }
    }
}

fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}
