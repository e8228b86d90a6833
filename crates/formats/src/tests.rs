//! Fixtures written by hand after each sensor's documented output (Suricata
//! 4.x–7.x, Zeek 5.x–7.x, OCSF 1.x, ECS 8.x); expected values computed by
//! hand (times with `date -u -d … +%s`), never copied from the mapper.

#![allow(clippy::unwrap_used)]

use rampart_core::proto::v1::{AttackEvent, AttackKind};
use rampart_core::validate::Rejection;

use super::*;

struct Decoded {
    events: Vec<AttackEvent>,
    skipped: u64,
    failures: Vec<(u32, Rejection)>,
}

fn decode(format: Format, payload: &[u8]) -> Decoded {
    let mut d = JsonDecoder::default();
    d.decode(format, payload, 1000).unwrap();
    Decoded {
        events: d.events().map(|v| to_attack_event(&v)).collect(),
        skipped: d.skipped(),
        failures: d.failures().iter().map(|f| (f.line, f.reason)).collect(),
    }
}

fn ip(text: &str) -> Vec<u8> {
    match text.parse::<std::net::IpAddr>().unwrap() {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    }
}

#[allow(clippy::too_many_arguments)]
fn ev(
    time_ms: i64,
    (src, src_port): (&str, u32),
    (dst, dst_port): (&str, u32),
    protocol: u32,
    kind: AttackKind,
    rule_id: u32,
    (packets, bytes): (u64, u64),
    event_id: &str,
    sensor_id: &str,
) -> AttackEvent {
    AttackEvent {
        time_ms,
        src_ip: ip(src),
        dst_ip: ip(dst),
        src_port,
        dst_port,
        protocol,
        kind: kind as i32,
        rule_id,
        event_id: event_id.into(),
        packets,
        bytes,
        sensor_id: sensor_id.into(),
    }
}

use AttackKind::{Backscatter, BruteForce, Exploit, IdsAlert, Scan};

#[test]
fn suricata_4_alert_flow_and_skipped_records() {
    let d = decode(
        Format::SuricataEve,
        include_bytes!("../fixtures/eve-4.x.json"),
    );
    assert_eq!(d.skipped, 2, "stats and dns");
    assert!(d.failures.is_empty());
    assert_eq!(
        d.events,
        vec![
            // 09:12:44.308515-0400 = 13:12:44.308Z
            ev(
                1_551_445_964_308,
                ("203.0.113.9", 51234),
                ("198.51.100.20", 23),
                6,
                Exploit,
                2_023_452,
                (0, 0),
                "1160429934380311::2023452",
                ""
            ),
            ev(
                1_551_445_966_500,
                ("2001:db8:1::5", 443),
                ("2001:db8:ffff::1", 40000),
                6,
                Scan,
                0,
                (3, 180),
                "99:flow",
                ""
            ),
        ]
    );
}

#[test]
fn suricata_5_6_tx_ids_icmp_anomaly_and_drop() {
    let d = decode(
        Format::SuricataEve,
        include_bytes!("../fixtures/eve-5.x-6.x.json"),
    );
    assert_eq!((d.skipped, d.failures.len()), (1, 0), "tls skipped");
    // 10:00:01.25+0200 = 08:00:01.25Z
    let t = 1_623_744_001_000;
    assert_eq!(
        d.events,
        vec![
            ev(
                t + 250,
                ("192.0.2.77", 50211),
                ("198.51.100.8", 80),
                6,
                Exploit,
                2_024_897,
                (7, 1836),
                "2056391520436787:2:2024897",
                ""
            ),
            ev(
                t + 300,
                ("192.0.2.78", 8),
                ("198.51.100.9", 0),
                1,
                IdsAlert,
                2_100_384,
                (1, 98),
                "77::2100384",
                ""
            ),
            ev(
                t + 400,
                ("192.0.2.79", 0),
                ("198.51.100.10", 0),
                17,
                IdsAlert,
                0,
                (0, 0),
                "",
                ""
            ),
            ev(
                t + 500,
                ("192.0.2.80", 44444),
                ("198.51.100.11", 22),
                6,
                Scan,
                2_001_219,
                (0, 0),
                "78::2001219",
                ""
            ),
        ]
    );
}

#[test]
fn suricata_7_ipv6_sensor_name_and_icmpv6() {
    let d = decode(
        Format::SuricataEve,
        include_bytes!("../fixtures/eve-7.x.json"),
    );
    assert_eq!((d.skipped, d.failures.len()), (2, 0), "stats and fileinfo");
    let t = 1_700_502_330_000;
    assert_eq!(
        d.events,
        vec![
            ev(
                t + 123,
                ("2001:db8:bad::7", 37513),
                ("2001:db8:c0de::22", 22),
                6,
                BruteForce,
                2_006_546,
                (11, 1810),
                "1718264620716549::2006546",
                "sensor-tokyo-1"
            ),
            ev(
                t + 200,
                ("2001:db8:bad::8", 128),
                ("2001:db8:c0de::23", 0),
                58,
                IdsAlert,
                2_200_094,
                (0, 0),
                "5::2200094",
                "sensor-tokyo-1"
            ),
        ]
    );
}

#[test]
fn zeek_5_epoch_seconds_backscatter_icmp_and_missing_counters() {
    let d = decode(
        Format::ZeekConn,
        include_bytes!("../fixtures/zeek-5.x.json"),
    );
    assert_eq!((d.skipped, d.failures.len()), (0, 0));
    let t = 1_591_367_999_000;
    assert_eq!(
        d.events,
        vec![
            ev(
                t + 305,
                ("192.0.2.76", 36844),
                ("198.51.100.1", 23),
                6,
                Scan,
                0,
                (1, 44),
                "CMdzit1AMNsmfAIiQc",
                ""
            ),
            ev(
                t + 500,
                ("192.0.2.77", 80),
                ("198.51.100.2", 61000),
                6,
                Backscatter,
                0,
                (2, 88),
                "CQ3ZAq1YhDz4Vd8CHi",
                ""
            ),
            ev(
                t + 1000,
                ("192.0.2.78", 8),
                ("198.51.100.3", 0),
                1,
                Scan,
                0,
                (1, 84),
                "C5bLoo1hQyDktGTq9",
                ""
            ),
            ev(
                t + 2250,
                ("192.0.2.79", 5060),
                ("198.51.100.4", 5060),
                17,
                Scan,
                0,
                (0, 0),
                "CaZrRs2fO7hsTk6ehh",
                ""
            ),
        ]
    );
}

#[test]
fn zeek_6_7_iso_times_ip_proto_flipped_and_bad_documents() {
    let d = decode(
        Format::ZeekConn,
        include_bytes!("../fixtures/zeek-6.x-7.x.json"),
    );
    let t = 1_719_792_005_000;
    assert_eq!(
        d.events,
        vec![
            ev(
                t + 123,
                ("2001:db8:bad::1", 51515),
                ("2001:db8:c0de::80", 443),
                6,
                Scan,
                0,
                (2, 140),
                "CHhAvVGS1DHFjwGM9",
                "worker-2"
            ),
            // `^hA`: Zeek flipped it; the SYN-ACK came from 2001:db8:bad::2:80.
            ev(
                t + 1000,
                ("2001:db8:bad::2", 80),
                ("2001:db8:c0de::81", 33000),
                6,
                Backscatter,
                0,
                (3, 180),
                "CdrfXZ1Csh0HDbZs5b",
                ""
            ),
            ev(
                t + 2000,
                ("2001:db8:bad::3", 128),
                ("2001:db8:c0de::82", 0),
                58,
                Scan,
                0,
                (1, 104),
                "CpgsKe3rcX2N9cFMb1",
                ""
            ),
        ]
    );
    assert_eq!(
        d.failures,
        vec![
            (3, Rejection::WrongFieldType),
            (4, Rejection::MalformedJson)
        ]
    );
}

#[test]
fn ocsf_network_activity_detection_finding_and_other_classes() {
    let d = decode(Format::Ocsf, include_bytes!("../fixtures/ocsf.json"));
    assert_eq!(d.skipped, 1, "class 3002 (authentication)");
    assert_eq!(d.failures, vec![(3, Rejection::BadTimestamp)]);
    assert_eq!(
        d.events,
        vec![
            ev(
                1_700_502_330_123,
                ("203.0.113.50", 40123),
                ("198.51.100.60", 3389),
                6,
                Scan,
                0,
                (3, 180),
                "net-0001",
                "darknet-7"
            ),
            ev(
                1_700_502_331_000,
                ("2001:db8::bad", 50000),
                ("2001:db8::22", 22),
                6,
                BruteForce,
                2_006_546,
                (0, 0),
                "find-0002",
                "ids-a"
            ),
        ]
    );
}

#[test]
fn ecs_alerts_network_events_and_other_categories() {
    let d = decode(Format::Ecs, include_bytes!("../fixtures/ecs.json"));
    assert_eq!(d.skipped, 1, "a process event");
    assert_eq!(
        d.failures,
        vec![(3, Rejection::MissingField), (4, Rejection::BadAddress)]
    );
    assert_eq!(
        d.events,
        vec![
            ev(
                1_700_502_330_123,
                ("203.0.113.70", 41000),
                ("198.51.100.70", 8080),
                6,
                Exploit,
                2_024_897,
                (9, 700),
                "ecs-0001",
                "edge-ids"
            ),
            // 12:45:31-05:00 = 17:45:31Z
            ev(
                1_700_502_331_000,
                ("2001:db8::70", 123),
                ("2001:db8::71", 123),
                17,
                Scan,
                0,
                (1, 76),
                "",
                "ntp-trap"
            ),
        ]
    );
}

#[test]
fn messages_split_into_documents_and_reject_whole_only_when_empty_or_too_large() {
    let mut d = JsonDecoder::default();
    let eve = |t: &str| format!(r#"{{"event_type":"stats","timestamp":"{t}"}}"#);
    let crlf = format!("\r\n{}\r\n\r\n{}\r\n", eve("a"), eve("b"));
    d.decode(Format::SuricataEve, crlf.as_bytes(), 2).unwrap();
    assert_eq!(
        (d.documents(), d.skipped()),
        (2, 2),
        "blank lines are no documents"
    );
    assert_eq!(
        d.decode(Format::SuricataEve, crlf.as_bytes(), 1),
        Err(Rejection::BatchTooLarge)
    );
    assert_eq!(
        d.decode(Format::Ocsf, b" \n\n", 10),
        Err(Rejection::EmptyBatch)
    );
    // One pretty-printed document.
    let pretty = b"{\n  \"class_uid\": 4001,\n  \"time\": 1700000000000,\n  \"src_endpoint\": {\"ip\": \"192.0.2.1\"},\n  \"dst_endpoint\": {\"ip\": \"192.0.2.2\"}\n}\n";
    d.decode(Format::Ocsf, pretty, 10).unwrap();
    assert_eq!((d.documents(), d.events().count()), (1, 1));
    // Not an object, not UTF-8 where read, not JSON, null: one failure each.
    let mixed =
        b"42\n{\"class_uid\":4001,\"src_endpoint\":{\"ip\":\"\xff\"}}\n{\"class_uid\":\nnull\n";
    d.decode(Format::Ocsf, mixed, 10).unwrap();
    let failures: Vec<_> = d.failures().iter().map(|f| (f.line, f.reason)).collect();
    assert_eq!(
        failures,
        vec![
            (0, Rejection::WrongFieldType),
            (1, Rejection::MalformedJson),
            (2, Rejection::MalformedJson),
            (3, Rejection::WrongFieldType),
        ]
    );
}

#[test]
fn dead_letters_hold_the_original_documents_in_line_order() {
    let payload = include_bytes!("../fixtures/zeek-6.x-7.x.json");
    let mut d = JsonDecoder::default();
    d.decode(Format::ZeekConn, payload, 100).unwrap();
    // Validation rejected the second event (index 1, line 1).
    let (lines, bytes) = d.dead_letters(payload, &[(1, Rejection::TimeTooOld)]);
    assert_eq!(
        lines,
        vec![
            (1, Rejection::TimeTooOld),
            (3, Rejection::WrongFieldType),
            (4, Rejection::MalformedJson),
        ]
    );
    let text = std::str::from_utf8(payload).unwrap();
    let original: Vec<&str> = text.lines().collect();
    let want = [original[1], original[3], original[4]].join("\n");
    assert_eq!(std::str::from_utf8(&bytes).unwrap(), want);
}

mod round_trip {
    use proptest::prelude::*;

    use super::*;

    fn address() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|a| a.to_vec()),
            any::<[u8; 16]>().prop_map(|a| a.to_vec()),
        ]
    }

    prop_compose! {
        fn event()(
            time_ms in 1i64..4_102_444_800_000,
            src_ip in address(),
            v6 in any::<bool>(),
            src_port in 0u32..=65535,
            dst_port in 0u32..=65535,
            protocol in prop_oneof![Just(6u32), Just(17), Just(1), Just(47), Just(132), 0u32..=255],
            kind in 1i32..=5,
            rule_id in any::<u32>(),
            event_id in prop_oneof![
                Just(String::new()),
                any::<u64>().prop_map(|n| format!("{n:016x}")),
                "[ -~é\"\\\\]{1,40}",
            ],
            packets in any::<u64>(),
            bytes in any::<u64>(),
            sensor_id in prop_oneof![Just(String::new()), "[ -~é\"\\\\]{1,30}"],
        ) -> AttackEvent {
            let dst_ip = if v6 { [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7].to_vec() } else { vec![198, 51, 100, 7] };
            // ICMP is ICMPv6 (58) between IPv6 addresses.
            let protocol = if protocol == 1 && (v6 || src_ip.len() == 16) { 58 } else { protocol };
            AttackEvent { time_ms, src_ip, dst_ip, src_port, dst_port, protocol, kind, rule_id,
                          event_id, packets, bytes, sensor_id }
        }
    }

    fn map_one(format: Format, doc: &str) -> Result<AttackEvent, String> {
        let mut d = JsonDecoder::default();
        d.decode(format, doc.as_bytes(), 1)
            .map_err(|r| r.to_string())?;
        if let Some(f) = d.failures().first() {
            return Err(format!("{}: {doc}", f.reason));
        }
        d.events()
            .next()
            .map(|v| to_attack_event(&v))
            .ok_or_else(|| "skipped".into())
    }

    /// What each format carries of an event (the rest is its documented loss).
    fn carried(format: Format, e: &AttackEvent) -> AttackEvent {
        let mut want = e.clone();
        if format == Format::ZeekConn {
            want.rule_id = 0;
            if want.kind != AttackKind::Backscatter as i32 {
                want.kind = AttackKind::Scan as i32;
            }
        }
        want
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// encode → decode → map keeps every field the format carries; the
        /// event id stays present or absent; re-encoding the mapped event
        /// maps to the same event again (ids reshaped by EVE and Zeek keep
        /// their presence).
        #[test]
        fn encode_map_reencode(e in event()) {
            for format in Format::JSON {
                let mapped = map_one(format, &format.encode(&e).unwrap_or_default())
                    .map_err(TestCaseError::fail)?;
                let mut want = carried(format, &e);
                prop_assert_eq!(mapped.event_id.is_empty(), e.event_id.is_empty(), "{:?}", format);
                want.event_id.clone_from(&mapped.event_id);
                prop_assert_eq!(&mapped, &want, "{:?}", format);
                let again = map_one(format, &format.encode(&mapped).unwrap_or_default())
                    .map_err(TestCaseError::fail)?;
                let mut mapped_again = mapped.clone();
                if matches!(format, Format::Ocsf | Format::Ecs) {
                    prop_assert_eq!(&again, &mapped, "{:?}", format);
                } else {
                    mapped_again.event_id.clone_from(&again.event_id);
                    prop_assert_eq!(&again, &mapped_again, "{:?}", format);
                }
                prop_assert_eq!(format.project(&e), mapped);
            }
        }

        /// Different ids stay different (dedup decides the same on either side).
        #[test]
        fn distinct_ids_stay_distinct(e in event(), a in any::<u64>(), b in any::<u64>()) {
            prop_assume!(a != b);
            for format in Format::JSON {
                let with = |id: u64| AttackEvent { event_id: format!("{id:016x}"), ..e.clone() };
                prop_assert_ne!(format.project(&with(a)).event_id, format.project(&with(b)).event_id);
            }
        }

        /// No input makes the decoder panic; every document is counted once.
        #[test]
        fn arbitrary_bytes_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..400)) {
            for format in Format::JSON {
                let mut d = JsonDecoder::default();
                if d.decode(format, &payload, 50).is_ok() {
                    let outcomes = d.events().count() + d.skipped() as usize + d.failures().len();
                    prop_assert_eq!(outcomes, d.documents());
                }
            }
        }
    }
}
