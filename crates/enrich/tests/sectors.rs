#![allow(clippy::unwrap_used)]
//! SectorTable: file formats, longest-prefix match against a brute-force
//! model, and error reporting.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use proptest::prelude::*;
use rampart_core::enrich::SectorId;
use rampart_enrich::sectors::{CISA_SECTORS, parse_sector};
use rampart_enrich::{EnrichError, SectorTable};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const CSV: &str = "\
# asset inventory
cidr , sector
10.0.0.0/8,information-technology
10.1.0.0/16,cisa:energy      # more specific
10.1.2.0/24,nisc:electric-power
10.1.2.128/25,naics:2211
192.0.2.7,Water-Wastewater
2001:db8::/32,communications
2001:db8:1::/48,healthcare-public-health
2001:db8:1:2::/64,dams
::ffff:198.51.100.0/120,nuclear

";

#[test]
fn csv_longest_prefix_match() {
    let mut t = SectorTable::from_csv_str(CSV, "assets.csv").unwrap();
    assert_eq!(t.len(), 9);
    let cases = [
        ("10.9.9.9", "cisa:information-technology"),
        ("10.1.9.9", "cisa:energy"),
        ("10.1.2.3", "nisc:electric-power"),
        ("10.1.2.200", "naics:2211"),
        ("192.0.2.7", "cisa:water-wastewater"),
        ("192.0.2.8", "unknown"),
        ("11.0.0.1", "unknown"),
        ("2001:db8:9::1", "cisa:communications"),
        ("2001:db8:1:9::1", "cisa:healthcare-public-health"),
        ("2001:db8:1:2::99", "cisa:dams"),
        ("2001:db9::1", "unknown"),
        ("198.51.100.5", "cisa:nuclear"),
        ("::ffff:10.1.2.200", "naics:2211"),
    ];
    for round in 0..3 {
        for (a, want) in cases {
            let id = t.lookup(ip(a));
            assert_eq!(t.name(id), want, "{a} round {round}");
            assert_eq!(t.lookup_uncached(ip(a)), id);
        }
    }
    let s = t.stats();
    assert_eq!(s.lookups, 3 * cases.len() as u64);
    assert_eq!(t.unknown_lookups(), 3 * 3);
    assert!(s.cache_hits > 0);
    assert_eq!(t.names()[0], "unknown");
    assert_eq!(t.id("energy"), t.id("cisa:energy"));
    assert!(t.id("energy").is_some());
    assert_eq!(t.name(SectorId(999)), "unknown");
    assert_eq!(t.lookup_bytes(&[10, 1, 0, 1]), t.id("energy").unwrap());
    assert_eq!(t.lookup_bytes(&[10, 1, 0]), SectorId::UNKNOWN);
}

#[test]
fn toml_and_load_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("assets.toml");
    std::fs::write(
        &p,
        "[[asset]]\ncidr = \"10.0.0.0/8\"\nsector = \"energy\"\n\n[[asset]]\ncidr = \"2001:db8::/32\"\nsector = \"nisc:finance\"\n",
    )
    .unwrap();
    let mut t = SectorTable::load(&p).unwrap();
    let id = t.lookup(ip("10.2.3.4"));
    assert_eq!(t.name(id), "cisa:energy");
    let id = t.lookup(ip("2001:db8::1"));
    assert_eq!(t.name(id), "nisc:finance");
    let other = dir.path().join("assets.txt");
    std::fs::write(&other, "").unwrap();
    assert!(matches!(
        SectorTable::load(&other),
        Err(EnrichError::UnknownFormat(_))
    ));
}

#[test]
fn csv_reports_every_error_with_its_line() {
    let bad = "\
cidr,sector
10.0.0.0/8,energy
10.0.0.1/8,energy
not-an-ip,energy
10.2.0.0/16,farming
10.3.0.0/16,cisa:
10.4.0.0/16
10.0.0.0/8,dams
300.1.1.1/8,BAD_TAX:x
";
    let err = SectorTable::from_csv_str(bad, "bad.csv").unwrap_err();
    let lines: Vec<usize> = err.issues.iter().map(|i| i.line).collect();
    assert_eq!(lines, vec![3, 4, 5, 6, 7, 8, 9, 9], "{err}");
    let text = err.to_string();
    assert!(text.starts_with("bad.csv: 8 error(s)"), "{text}");
    for needle in [
        "line 3 (cidr): 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)",
        "line 4 (cidr)",
        "line 5 (sector): \"farming\" is not a CISA sector",
        "line 6 (sector)",
        "line 7: expected `cidr,sector`, found 1 field(s)",
        "line 8 (cidr): 10.0.0.0/8 is listed twice (first on line 2)",
        "line 9 (cidr)",
        "line 9 (sector)",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn toml_reports_every_error_with_line_and_key() {
    let bad = "\
[[asset]]
cidr = \"10.0.0.0/8\"
sector = \"energy\"

[[asset]]
cidr = \"10.0.0.0/33\"
sector = \"energy\"

[[asset]]
cidr = \"10.1.0.0/16\"
sector = \"cisa:mining\"
";
    let err = SectorTable::from_toml_str(bad, "bad.toml").unwrap_err();
    let got: Vec<(usize, Option<&str>)> = err
        .issues
        .iter()
        .map(|i| (i.line, i.key.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![(6, Some("asset[1].cidr")), (11, Some("asset[2].sector"))],
        "{err}"
    );
    // A syntax / schema error is reported with its line too.
    let err = SectorTable::from_toml_str(
        "[[asset]]\ncidr = \"10.0.0.0/8\"\nsectr = \"x\"\n",
        "s.toml",
    )
    .unwrap_err();
    assert_eq!(err.issues.len(), 1);
    assert_eq!(err.issues[0].line, 3, "{err}");
}

/// 30 000 entries (~1 MB): with a newline count per entry (quadratic) this
/// took minutes; the line of the one bad entry, the last, is still exact.
#[test]
fn a_large_toml_table_loads_and_names_the_line_of_its_last_entry() {
    let n = 30_000u32;
    let mut text = String::new();
    for i in 0..n {
        let cidr = if i + 1 == n {
            "10.0.0.0/33".to_owned()
        } else {
            format!("{}.{}.{}.0/24", 11 + i / 65_536, (i / 256) % 256, i % 256)
        };
        text.push_str(&format!(
            "[[asset]]\ncidr = \"{cidr}\"\nsector = \"energy\"\n\n"
        ));
    }
    let err = SectorTable::from_toml_str(&text, "big.toml").unwrap_err();
    let last = (n as usize - 1) * 4 + 2;
    let got: Vec<(usize, Option<&str>)> = err
        .issues
        .iter()
        .map(|i| (i.line, i.key.as_deref()))
        .collect();
    let key = format!("asset[{}].cidr", n - 1);
    assert_eq!(got, vec![(last, Some(key.as_str()))], "{err}");
    // Without the bad entry the whole table loads.
    let good = text.replace("10.0.0.0/33", "10.0.0.0/8");
    let table = SectorTable::from_toml_str(&good, "big.toml").unwrap();
    assert_eq!(table.names(), ["unknown", "cisa:energy"]);
    assert_eq!(table.len(), n as usize);
}

#[test]
fn sector_names() {
    assert_eq!(CISA_SECTORS.len(), 16);
    for s in CISA_SECTORS {
        assert_eq!(parse_sector(s).unwrap(), format!("cisa:{s}"));
    }
    assert_eq!(parse_sector(" NAICS:2211 ").unwrap(), "naics:2211");
    assert!(parse_sector("unknown").is_err());
    assert!(parse_sector("nisc:").is_err());
    assert!(parse_sector("a b:c").is_err());
    assert!(parse_sector("x:y:z").is_err());
}

// ---- property: LPM == brute force, cached == uncached -------------------

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..3, 0u8..4, any::<u8>(), any::<u8>()).prop_map(|(a, b, c, d)| IpAddr::from([
            10,
            a,
            b,
            c ^ (d & 7)
        ])),
        (0u16..3, 0u16..3, any::<u16>(), any::<u16>()).prop_map(|(a, b, c, d)| {
            let v = (0x2001_0db8u128 << 96)
                | (u128::from(a) << 80)
                | (u128::from(b) << 64)
                | (u128::from(c) << 48)
                | u128::from(d & 0xf);
            IpAddr::V6(v.into())
        }),
    ]
}

fn arb_entry() -> impl Strategy<Value = (IpNetwork, usize)> {
    (arb_ip(), any::<u8>(), 0usize..6).prop_map(|(a, l, s)| {
        let len = match a {
            IpAddr::V4(_) => 8 + l % 25,
            IpAddr::V6(_) => 24 + l % 105,
        };
        let n = IpNetwork::new(a, len).unwrap();
        (IpNetwork::new(n.network(), len).unwrap(), s)
    })
}

const SECTORS: [&str; 6] = [
    "energy", "dams", "nisc:a", "naics:51", "chemical", "nuclear",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn lpm_matches_brute_force(
        raw in proptest::collection::vec(arb_entry(), 0..60),
        ips in proptest::collection::vec(arb_ip(), 1..300),
    ) {
        // Unique networks (duplicates are an error, tested elsewhere).
        let mut entries: Vec<(IpNetwork, usize)> = Vec::new();
        for (n, s) in raw {
            if !entries.iter().any(|(m, _)| *m == n) {
                entries.push((n, s));
            }
        }
        let mut t = SectorTable::from_entries(entries.iter().map(|(n, s)| (n.to_string(), SECTORS[*s])))
            .unwrap()
            .with_cache_slots(32);
        for a in ips.iter().chain(ips.iter().rev()) {
            let best = entries
                .iter()
                .filter(|(n, _)| n.contains(*a))
                .max_by_key(|(n, _)| n.prefix());
            let want = best.map_or("unknown".to_owned(), |(_, s)| parse_sector(SECTORS[*s]).unwrap());
            let id = t.lookup(*a);
            prop_assert_eq!(t.name(id), want.as_str(), "cached {}", a);
            prop_assert_eq!(t.lookup_uncached(*a), id);
            // A claim that the whole /24 shares the sector (the ingest stage
            // then caches it per /24) holds for all 256 addresses.
            if let IpAddr::V4(v4) = a {
                let (shared_id, shared) = t.lookup_bytes_prefix24(&v4.octets());
                prop_assert_eq!(shared_id, id);
                let [p0, p1, p2, _] = v4.octets();
                let brute = |x: IpAddr| {
                    entries
                        .iter()
                        .filter(|(n, _)| n.contains(x))
                        .max_by_key(|(n, _)| n.prefix())
                        .map(|(_, s)| *s)
                };
                let whole = (0..=255u8).all(|last| brute(IpAddr::from([p0, p1, p2, last])) == brute(*a));
                prop_assert!(!shared || whole, "{} claimed shared but its /24 differs", a);
            } else {
                let bytes = match a { IpAddr::V6(v6) => v6.octets(), IpAddr::V4(_) => [0; 16] };
                prop_assert!(!t.lookup_bytes_prefix24(&bytes).1, "only 4-byte addresses are shared");
            }
        }
    }
}
