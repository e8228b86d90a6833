//! Every file the writer produces is read back by the independent `maxminddb`
//! reader, including its `verify()` of the whole file.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use maxminddb::Reader;
use rampart_mmdb::{MmdbWriteError, MmdbWriter, RecordSize, Value, asn_record, country_record};
use serde::Deserialize;

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

#[derive(Deserialize, Debug, PartialEq)]
struct Asn {
    autonomous_system_number: u32,
    autonomous_system_organization: String,
}

#[test]
fn every_record_size_reads_back_and_verifies() {
    for rs in [RecordSize::Bits24, RecordSize::Bits28, RecordSize::Bits32] {
        let mut w = MmdbWriter::new("GeoLite2-ASN").record_size(rs);
        w.insert(net("10.0.0.0/8"), asn_record(64500, "Ten"))
            .unwrap();
        w.insert(net("2001:db8::/32"), asn_record(64501, "Doc"))
            .unwrap();
        let r = Reader::from_source(w.to_bytes().unwrap()).unwrap();
        r.verify().unwrap();
        let m = r.metadata();
        assert_eq!(
            (m.ip_version, m.binary_format_major_version),
            (6, 2),
            "{rs:?}"
        );
        assert_eq!(
            m.record_size,
            match rs {
                RecordSize::Bits24 => 24,
                RecordSize::Bits28 => 28,
                _ => 32,
            }
        );
        let a: Asn = r
            .lookup("10.1.2.3".parse().unwrap())
            .unwrap()
            .decode()
            .unwrap()
            .unwrap();
        assert_eq!(a.autonomous_system_number, 64500);
        let a: Asn = r
            .lookup("2001:db8::1".parse().unwrap())
            .unwrap()
            .decode()
            .unwrap()
            .unwrap();
        assert_eq!(a.autonomous_system_organization, "Doc");
        assert!(!r.lookup("11.0.0.1".parse().unwrap()).unwrap().has_data());
    }
}

#[test]
fn record_size_28_with_high_nibbles() {
    // Enough nodes + data that records exceed 2^24 and use the shared nibble byte.
    let mut w = MmdbWriter::new("t").record_size(RecordSize::Bits28);
    let big = "x".repeat(70_000);
    for i in 0..300u32 {
        w.insert_prefix(
            IpAddr::V4((i << 20).into()),
            12,
            Value::map([
                ("n", Value::U32(i)),
                ("pad", Value::from(format!("{big}{i}"))),
            ]),
        )
        .unwrap();
    }
    let bytes = w.to_bytes().unwrap();
    assert!(bytes.len() > 1 << 24);
    let auto = {
        let w2 = w.clone().record_size(RecordSize::Auto);
        Reader::from_source(w2.to_bytes().unwrap())
            .unwrap()
            .metadata()
            .record_size
    };
    assert_eq!(auto, 28);
    let r = Reader::from_source(bytes).unwrap();
    for i in [0u32, 1, 150, 299] {
        let n: Option<u32> = r
            .lookup(IpAddr::V4(((i << 20) | 5).into()))
            .unwrap()
            .decode_path(&maxminddb::path!["n"])
            .unwrap();
        assert_eq!(n, Some(i));
    }
    assert!(matches!(
        w.clone().record_size(RecordSize::Bits24).to_bytes(),
        Err(MmdbWriteError::RecordSizeTooSmall { needed: 28, .. })
    ));
}

#[test]
fn all_value_types_round_trip() {
    #[derive(Deserialize, Debug, PartialEq)]
    struct All<'a> {
        s: String,
        long: String,
        d: f64,
        f: f32,
        b: &'a [u8],
        u16_: u16,
        u32_: u32,
        u64_: u64,
        u128_: u128,
        neg: i32,
        pos: i32,
        t: bool,
        no: bool,
        arr: Vec<u32>,
        zero: u32,
    }
    let long = "y".repeat(70_000);
    let v = Value::map([
        ("s", Value::from("héllo")),
        ("long", Value::from(long.as_str())),
        ("d", Value::Double(-1.5)),
        ("f", Value::Float(2.25)),
        ("b", Value::Bytes(vec![0, 1, 255])),
        ("u16_", Value::U16(513)),
        ("u32_", Value::U32(u32::MAX)),
        ("u64_", Value::U64(1 << 40)),
        ("u128_", Value::U128(u128::MAX - 7)),
        ("neg", Value::I32(-2)),
        ("pos", Value::I32(70_000)),
        ("t", Value::Bool(true)),
        ("no", Value::Bool(false)),
        ("arr", Value::Array(vec![Value::U32(1), Value::U32(300)])),
        ("zero", Value::U32(0)),
    ]);
    let mut w = MmdbWriter::new("t");
    w.insert(net("::/0"), v).unwrap();
    let r = Reader::from_source(w.to_bytes().unwrap()).unwrap();
    r.verify().unwrap();
    let all: All = r
        .lookup("1.2.3.4".parse().unwrap())
        .unwrap()
        .decode()
        .unwrap()
        .unwrap();
    assert_eq!(all.s, "héllo");
    assert_eq!(all.long, long);
    assert_eq!((all.d, all.f), (-1.5, 2.25));
    assert_eq!(all.b, &[0, 1, 255]);
    assert_eq!((all.u16_, all.u32_, all.u64_), (513, u32::MAX, 1 << 40));
    assert_eq!(all.u128_, u128::MAX - 7);
    assert_eq!((all.neg, all.pos, all.t, all.no), (-2, 70_000, true, false));
    assert_eq!((all.arr, all.zero), (vec![1, 300], 0));
}

#[test]
fn more_specific_wins_in_any_order_and_networks_are_reported() {
    for reversed in [false, true] {
        let mut inserts = vec![
            (net("10.0.0.0/16"), asn_record(1, "wide")),
            (net("10.0.5.0/24"), asn_record(2, "narrow")),
        ];
        if reversed {
            inserts.reverse();
        }
        let mut w = MmdbWriter::new("GeoLite2-ASN");
        for (n, v) in inserts {
            w.insert(n, v).unwrap();
        }
        let r = Reader::from_source(w.to_bytes().unwrap()).unwrap();
        r.verify().unwrap();
        let asn = |ip: &str| -> Option<u32> {
            r.lookup(ip.parse().unwrap())
                .unwrap()
                .decode_path(&maxminddb::path!["autonomous_system_number"])
                .unwrap()
        };
        assert_eq!(asn("10.0.5.9"), Some(2));
        assert_eq!(asn("10.0.4.9"), Some(1));
        assert_eq!(asn("10.0.255.1"), Some(1));
        assert_eq!(asn("10.1.0.1"), None);
        let n = r
            .lookup("10.0.5.9".parse().unwrap())
            .unwrap()
            .network()
            .unwrap();
        assert_eq!(n, net("10.0.5.0/24"));
        let n = r
            .lookup("10.0.128.1".parse().unwrap())
            .unwrap()
            .network()
            .unwrap();
        assert_eq!(n, net("10.0.128.0/17"));
    }
}

#[test]
fn ipv4_mapped_addresses_alias_the_ipv4_subtree() {
    let mut w = MmdbWriter::new("GeoLite2-Country");
    w.insert(net("::ffff:192.0.2.0/120"), country_record("JP", "Japan"))
        .unwrap();
    let r = Reader::from_source(w.to_bytes().unwrap()).unwrap();
    r.verify().unwrap();
    for ip in ["192.0.2.1", "::ffff:192.0.2.1", "::192.0.2.1"] {
        let iso: Option<String> = r
            .lookup(ip.parse().unwrap())
            .unwrap()
            .decode_path(&maxminddb::path!["country", "iso_code"])
            .unwrap();
        assert_eq!(iso.as_deref(), Some("JP"), "{ip}");
    }
    assert!(
        !r.lookup("::ffff:192.0.3.1".parse().unwrap())
            .unwrap()
            .has_data()
    );
}

#[test]
fn empty_and_ipv4_only_databases() {
    let r = Reader::from_source(MmdbWriter::new("empty").to_bytes().unwrap()).unwrap();
    r.verify().unwrap();
    assert!(!r.lookup("1.1.1.1".parse().unwrap()).unwrap().has_data());

    let mut w = MmdbWriter::new("v4").ipv4_only().build_epoch(42);
    w.insert(net("0.0.0.0/0"), Value::U16(7)).unwrap();
    assert!(matches!(
        w.insert(net("2001:db8::/32"), Value::U16(1)),
        Err(MmdbWriteError::Ipv6InIpv4Database(_))
    ));
    let r = Reader::from_source(w.to_bytes().unwrap()).unwrap();
    r.verify().unwrap();
    assert_eq!((r.metadata().ip_version, r.metadata().build_epoch), (4, 42));
    let v: Option<u16> = r
        .lookup("8.8.8.8".parse().unwrap())
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(v, Some(7));
}

#[test]
fn bad_prefix_is_an_error() {
    let mut w = MmdbWriter::new("t");
    assert!(matches!(
        w.insert_prefix("1.2.3.4".parse().unwrap(), 33, Value::U16(1)),
        Err(MmdbWriteError::BadPrefix { prefix_len: 33, .. })
    ));
    assert!(
        w.insert_prefix("::".parse().unwrap(), 129, Value::U16(1))
            .is_err()
    );
}

#[test]
fn identical_records_are_stored_once() {
    let mut w = MmdbWriter::new("t");
    for i in 0..100u32 {
        w.insert_prefix(
            IpAddr::V4((i << 24).into()),
            8,
            country_record("CN", "China"),
        )
        .unwrap();
    }
    let r = Reader::from_source(w.to_bytes().unwrap()).unwrap();
    let a = r.lookup("0.0.0.1".parse().unwrap()).unwrap().offset();
    let b = r.lookup("99.0.0.1".parse().unwrap()).unwrap().offset();
    assert!(a.is_some());
    assert_eq!(a, b);
}
