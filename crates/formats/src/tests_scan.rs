//! The scanner against serde_json: whenever it picks fields they are the
//! ones serde_json deserialises, and the decoder's output (events, skipped,
//! failures with their reasons) is the same with the scanner first as with
//! serde_json only. serde_json is the reference; no expected value here
//! comes from the scanner.

#![allow(clippy::unwrap_used)]

use rampart_core::proto::v1::AttackEvent;
use rampart_core::validate::Rejection;

use super::*;

/// What a decoder made of `payload`: its events, skipped count, failures.
type Outcome = Result<(Vec<AttackEvent>, u64, Vec<(u32, Rejection)>), Rejection>;

fn outcome(parser: JsonParser, payload: &[u8]) -> Outcome {
    outcome_of(Format::SuricataEve, parser, payload)
}

fn outcome_of(format: Format, parser: JsonParser, payload: &[u8]) -> Outcome {
    let mut d = JsonDecoder::with_parser(parser);
    d.decode(format, payload, 1000)?;
    Ok((
        d.events().map(|v| to_attack_event(&v)).collect(),
        d.skipped(),
        d.failures().iter().map(|f| (f.line, f.reason)).collect(),
    ))
}

/// serde_json's reading of `text` as the EVE struct.
fn serde_doc(text: &str) -> Result<eve::Doc<'_>, Rejection> {
    serde_json::from_str(text).map_err(|e| json_error(&e))
}

/// The scanner's result for `text`, held against serde_json's: when the
/// scanner gives fields, serde_json gives the same. Returns whether the
/// scanner gave them.
fn scanner_agrees(text: &str) -> Result<bool, String> {
    match eve::scan_doc(text) {
        None => Ok(false),
        Some(scanned) => match serde_doc(text) {
            Ok(reference) if reference == scanned => Ok(true),
            other => Err(format!(
                "scanner {scanned:?}\nserde {other:?}\ndocument {text}"
            )),
        },
    }
}

fn same_outcome(payload: &[u8]) {
    assert_eq!(
        outcome(JsonParser::ScanFirst, payload),
        outcome(JsonParser::SerdeOnly, payload),
        "{}",
        String::from_utf8_lossy(payload)
    );
}

const ALERT: &str = r#"{"timestamp":"2023-11-20T18:05:30.123456+0000","flow_id":42,"in_iface":"eth0","event_type":"alert","src_ip":"192.0.2.1","src_port":4242,"dest_ip":"198.51.100.2","dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2024897,"rev":2,"signature":"ET x","category":"Web Application Attack","severity":1},"http":{"url":"/a?b=c%20d","length":0},"flow":{"pkts_toserver":4,"pkts_toclient":3,"bytes_toserver":1424,"bytes_toclient":412}}"#;

#[test]
fn fixtures_take_the_fast_path_and_agree_with_serde() {
    for payload in [
        &include_bytes!("../fixtures/eve-4.x.json")[..],
        include_bytes!("../fixtures/eve-5.x-6.x.json"),
        include_bytes!("../fixtures/eve-7.x.json"),
    ] {
        let text = std::str::from_utf8(payload).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            assert_eq!(scanner_agrees(line), Ok(true), "{line}");
        }
        same_outcome(payload);
    }
    assert_eq!(scanner_agrees(ALERT), Ok(true));
}

#[test]
fn whitespace_nulls_and_empty_objects_are_read_as_serde_reads_them() {
    let spaced = " \t{ \"event_type\" :\r\n\"alert\" , \"alert\" : { } ,\"flow\":null,\"src_port\" : null ,\"x\":[ 1 , -2.5e+3 , { \"y\" : [ ] } , true,false,null,\"\\u00e9\\n\" ] }\r\n ";
    assert_eq!(scanner_agrees(spaced), Ok(true));
    let doc = eve::scan_doc(spaced).unwrap();
    assert_eq!(doc.src_port, None);
    assert!(doc.flow.is_none());
    same_outcome(spaced.as_bytes());
    for empty in ["{}", "{ }", " {\"flow\":{}} "] {
        assert_eq!(scanner_agrees(empty), Ok(true), "{empty}");
    }
}

/// Documents the scanner leaves to serde_json, and what serde_json makes
/// of each (the decoder's outcome is the same either way).
#[test]
fn each_doubt_falls_back_to_serde_with_its_reason() {
    let with = |from: &str, to: &str| {
        assert!(ALERT.contains(from), "{from}");
        ALERT.replacen(from, to, 1)
    };
    let cases: Vec<(String, Option<Rejection>)> = vec![
        // An escape in a string of interest: serde reads it (an event).
        (with(r#""192.0.2.1""#, r#""192.0.2.\u0031""#), None),
        (
            with(
                r#""Web Application Attack""#,
                r#""Web Application\u0020Attack""#,
            ),
            None,
        ),
        // An escape in a key: it may spell a field's name.
        (with(r#""event_type""#, r#""event\u005ftype""#), None),
        // Numbers of interest that are no plain u64.
        (
            with(r#""src_port":4242"#, r#""src_port":4242.0"#),
            Some(Rejection::WrongFieldType),
        ),
        (
            with(r#""src_port":4242"#, r#""src_port":-1"#),
            Some(Rejection::WrongFieldType),
        ),
        (
            with(r#""flow_id":42"#, r#""flow_id":1e3"#),
            Some(Rejection::WrongFieldType),
        ),
        (
            with(r#""flow_id":42"#, r#""flow_id":18446744073709551616"#),
            Some(Rejection::WrongFieldType),
        ),
        (
            with(r#""src_port":4242"#, r#""src_port":04242"#),
            Some(Rejection::MalformedJson),
        ),
        // A value of another type.
        (
            with(r#""src_port":4242"#, r#""src_port":"4242""#),
            Some(Rejection::WrongFieldType),
        ),
        (
            with(r#""proto":"TCP""#, r#""proto":6"#),
            Some(Rejection::WrongFieldType),
        ),
        (
            with(r#""flow":{"#, r#""flow":7,"f":{"#),
            Some(Rejection::WrongFieldType),
        ),
        // serde reads a struct from an array too: the scanner leaves it.
        (
            with(
                r#""alert":{"action":"allowed","gid":1,"signature_id":2024897,"rev":2,"signature":"ET x","category":"Web Application Attack","severity":1}"#,
                r#""alert":[2024897,"Web Application Attack"]"#,
            ),
            None,
        ),
        // A field of interest given twice (null counts).
        (
            with(r#""in_iface""#, r#""event_type":"flow","in_iface""#),
            Some(Rejection::WrongFieldType),
        ),
        (
            with(r#""in_iface""#, r#""src_port":null,"in_iface""#),
            Some(Rejection::WrongFieldType),
        ),
        (
            with(r#""rev""#, r#""category":null,"rev""#),
            Some(Rejection::WrongFieldType),
        ),
        // Nesting deeper than the scanner's limit in an ignored field.
        (
            with(
                r#""in_iface":"eth0""#,
                &format!(r#""in_iface":{}{}"#, "[".repeat(40), "]".repeat(40)),
            ),
            None,
        ),
        // Not an object.
        ("[1]".into(), Some(Rejection::WrongFieldType)),
        ("null".into(), Some(Rejection::WrongFieldType)),
    ];
    for (doc, reason) in &cases {
        assert_eq!(scanner_agrees(doc), Ok(false), "scanner took {doc}");
        let serde = outcome(JsonParser::SerdeOnly, doc.as_bytes()).unwrap();
        let want_failures: Vec<_> = reason.iter().map(|r| (0, *r)).collect();
        assert_eq!(serde.2, want_failures, "{doc}");
        assert_eq!(serde.0.len(), usize::from(reason.is_none()), "{doc}");
        same_outcome(doc.as_bytes());
    }
}

/// Invalid JSON in fields rampart ignores is refused as serde_json refuses
/// it (`malformed_json`), never accepted by the fast path.
#[test]
fn invalid_json_in_ignored_fields_is_malformed() {
    let url = r#""url":"/a?b=c%20d""#;
    let bad_urls = [
        r#""url":"/a\x""#,
        r#""url":"/a\u12G4""#,
        r#""url":"/a\u12""#,
        "\"url\":\"/a\tb\"",
        "\"url\":\"/a\u{1}b\"",
        r#""url":01"#,
        r#""url":1."#,
        r#""url":1e"#,
        r#""url":-"#,
        r#""url":.5"#,
        r#""url":+1"#,
        r#""url":tru"#,
        r#""url":nul"#,
        r#""url":[1,]"#,
        r#""url":[1 2]"#,
        r#""url":{"a":1,}"#,
        r#""url":{"a" 1}"#,
        r#""url":{1:1}"#,
        r#""url":[}"#,
        r#""url":NaN"#,
        r#""url":"#,
    ];
    for bad in bad_urls {
        let doc = ALERT.replacen(url, bad, 1);
        assert_ne!(doc, ALERT);
        assert_eq!(eve::scan_doc(&doc), None, "{doc}");
        assert_eq!(
            outcome(JsonParser::ScanFirst, doc.as_bytes()).unwrap().2,
            vec![(0, Rejection::MalformedJson)],
            "{doc}"
        );
    }
    for tail in ["}", " x", ",", "{}", "\u{0}"] {
        let doc = format!("{ALERT}{tail}");
        assert_eq!(eve::scan_doc(&doc), None, "{doc}");
        assert_eq!(
            outcome(JsonParser::ScanFirst, doc.as_bytes()).unwrap().2,
            vec![(0, Rejection::MalformedJson)],
            "{doc}"
        );
    }
    // Cut anywhere: never a document.
    for end in 1..ALERT.len() {
        let cut = ALERT.get(..end).unwrap();
        assert_eq!(eve::scan_doc(cut), None, "{cut}");
    }
}

/// Zeek conn: the scanner's `ts` is the value's text as serde_json's
/// `RawValue` gives it, whatever the value.
#[test]
fn zeek_fixtures_and_raw_times_agree_with_serde() {
    let zeek_agrees = |text: &str| match zeek::scan_doc(text) {
        None => false,
        Some(scanned) => {
            let reference: zeek::Doc<'_> = serde_json::from_str(text).unwrap();
            assert_eq!(scanned, reference, "{text}");
            true
        }
    };
    for payload in [
        &include_bytes!("../fixtures/zeek-5.x.json")[..],
        include_bytes!("../fixtures/zeek-6.x-7.x.json"),
    ] {
        let text = std::str::from_utf8(payload).unwrap();
        for line in text.lines() {
            zeek_agrees(line);
        }
        assert_eq!(
            outcome_of(Format::ZeekConn, JsonParser::ScanFirst, payload),
            outcome_of(Format::ZeekConn, JsonParser::SerdeOnly, payload)
        );
    }
    let six = std::str::from_utf8(include_bytes!("../fixtures/zeek-6.x-7.x.json")).unwrap();
    // The wrong-typed port and the malformed line go to serde_json.
    let taken: Vec<bool> = six.lines().map(zeek_agrees).collect();
    assert_eq!(taken, [true, true, true, false, false]);
    for ts in [
        "1591367999.305988",
        " 1591367999 ",
        "\"2024-07-01T00:00:05Z\"",
        "\"2024-07-01T00:00:05\\u005a\"",
        "-1.5e3",
        "null",
        "[1, {\"a\": \"b\"}]",
        "true",
    ] {
        let doc = format!(r#"{{"ts":{ts},"id.orig_h":"192.0.2.1","id.resp_h":"192.0.2.2"}}"#);
        assert!(zeek_agrees(&doc), "{doc}");
        assert_eq!(
            outcome_of(Format::ZeekConn, JsonParser::ScanFirst, doc.as_bytes()),
            outcome_of(Format::ZeekConn, JsonParser::SerdeOnly, doc.as_bytes()),
            "{doc}"
        );
    }
}

mod generated {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    use super::*;

    fn ws() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => Just(String::new()),
            1 => "[ \t\r\n]{1,3}",
        ]
    }

    fn json_string() -> impl Strategy<Value = String> {
        r#""([a-zA-Z0-9 /:.%-]|é|日|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4}){0,12}""#
    }

    fn json_number() -> impl Strategy<Value = String> {
        "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,3})?"
    }

    /// Any JSON value, whitespace between its tokens.
    fn json_value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            json_number(),
            json_string(),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec((ws(), inner.clone(), ws()), 0..4).prop_map(|items| {
                    let items: Vec<String> = items
                        .into_iter()
                        .map(|(a, v, b)| format!("{a}{v}{b}"))
                        .collect();
                    format!("[{}]", items.join(","))
                }),
                proptest::collection::vec((json_string(), ws(), inner), 0..4).prop_map(|members| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(k, w, v)| format!("{k}{w}:{w}{v}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    /// A value for a `u64` field: mostly plain, sometimes what serde refuses.
    fn u64_value() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => (0u64..70_000).prop_map(|n| n.to_string()),
            1 => any::<u64>().prop_map(|n| n.to_string()),
            1 => Just("null".to_owned()),
            1 => json_value(),
        ]
    }

    fn str_value(plain: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
        prop_oneof![
            8 => plain.prop_map(|s| format!("\"{s}\"")),
            1 => Just("null".to_owned()),
            1 => json_value(),
        ]
    }

    fn object_value(
        members: impl Strategy<Value = Vec<(String, String)>>,
    ) -> impl Strategy<Value = String> {
        prop_oneof![
            8 => members.prop_map(|m| object(&m)),
            1 => Just("null".to_owned()),
            1 => json_value(),
        ]
    }

    fn object(members: &[(String, String)]) -> String {
        let m: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        format!("{{{}}}", m.join(","))
    }

    /// Extra members of no interest.
    fn extras() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(("[a-z_]{1,10}", json_value()), 0..4)
    }

    /// `fixed` fields (some left out), extra members, in a random order.
    fn members(
        fixed: Vec<BoxedStrategy<(String, String)>>,
    ) -> impl Strategy<Value = Vec<(String, String)>> {
        let n = fixed.len();
        (fixed, proptest::collection::vec(any::<bool>(), n), extras()).prop_flat_map(
            |(fixed, keep, extra)| {
                let all: Vec<(String, String)> = fixed
                    .into_iter()
                    .zip(keep)
                    .filter(|(_, k)| *k)
                    .map(|(f, _)| f)
                    .chain(extra)
                    .collect();
                Just(all).prop_shuffle()
            },
        )
    }

    fn field<S: Strategy<Value = String> + 'static>(
        key: &'static str,
        value: S,
    ) -> BoxedStrategy<(String, String)> {
        value.prop_map(move |v| (key.to_owned(), v)).boxed()
    }

    /// An EVE document: the fields rampart reads (mostly valid, sometimes of
    /// another type or escaped), extra fields, random order and whitespace.
    fn eve_document() -> impl Strategy<Value = String> {
        let ip = prop_oneof![
            "192\\.0\\.2\\.[0-9]{1,2}",
            "2001:db8::[0-9a-f]{1,4}",
            "192\\.0\\.2\\.\\\\u0031",
        ];
        let alert = members(vec![
            field("signature_id", u64_value()),
            field(
                "category",
                str_value(prop_oneof![
                    Just("Web Application Attack".to_owned()),
                    Just("Misc activity".to_owned()),
                    Just("Attempted\\u0020User Privilege Gain".to_owned()),
                ]),
            ),
        ]);
        let flow = members(vec![
            field("pkts_toserver", u64_value()),
            field("pkts_toclient", u64_value()),
            field("bytes_toserver", u64_value()),
            field("bytes_toclient", u64_value()),
        ]);
        let anomaly = members(vec![field("event", str_value("[a-z_.]{1,20}"))]);
        let top = members(vec![
            field(
                "event_type",
                str_value(prop_oneof!["alert", "drop", "anomaly", "flow", "stats"]),
            ),
            field(
                "timestamp",
                str_value(prop_oneof![
                    "2023-11-20T18:05:[0-5][0-9]\\.[0-9]{1,6}[+-]0[0-9]00",
                    "2023-11-20T18:05:30Z",
                ]),
            ),
            field("src_ip", str_value(ip.clone())),
            field("dest_ip", str_value(ip)),
            field("src_port", u64_value()),
            field("dest_port", u64_value()),
            field(
                "proto",
                str_value(prop_oneof!["TCP", "UDP", "ICMP", "IPv6-ICMP"]),
            ),
            field("flow_id", u64_value()),
            field("tx_id", u64_value()),
            field("icmp_type", u64_value()),
            field("icmp_code", u64_value()),
            field("host", str_value("[a-z-]{1,12}")),
            field("alert", object_value(alert)),
            field("flow", object_value(flow)),
            field("anomaly", object_value(anomaly)),
        ]);
        // Sometimes a field twice.
        (top, any::<bool>(), ws(), ws()).prop_map(|(mut m, twice, a, b)| {
            if twice && let Some(first) = m.first().cloned() {
                m.push(first);
            }
            format!("{a}{}{b}", object(&m))
        })
    }

    /// One byte inserted, removed or replaced (bytes JSON cares about).
    fn mutated() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            Just(b'"'),
            Just(b'\\'),
            Just(b'{'),
            Just(b'}'),
            Just(b'['),
            Just(b']'),
            Just(b','),
            Just(b':'),
            Just(b'-'),
            Just(b'.'),
            Just(b'e'),
            Just(b'0'),
            Just(b'7'),
            Just(b'n'),
            Just(b' '),
            Just(0x01u8),
            Just(0x1f),
            Just(0xff),
            Just(0xc3),
            any::<u8>(),
        ];
        (eve_document(), any::<prop::sample::Index>(), 0..3u8, byte).prop_map(
            |(doc, at, how, b)| {
                let mut bytes = doc.into_bytes();
                let i = at.index(bytes.len() + 1);
                match how {
                    0 => bytes.insert(i, b),
                    1 if i < bytes.len() => {
                        bytes.remove(i);
                    }
                    _ if i < bytes.len() => bytes[i] = b,
                    _ => bytes.push(b),
                }
                bytes
            },
        )
    }

    /// A document of `format` as its encoder writes one, then mutated.
    fn encoded_and_mutated() -> impl Strategy<Value = (Format, Vec<u8>)> {
        (
            prop::sample::select(Format::JSON.to_vec()),
            any::<[u8; 4]>(),
            any::<u16>(),
            any::<u64>(),
            "[ -~é\"\\\\]{0,12}",
            any::<prop::sample::Index>(),
            0..4u8,
            any::<u8>(),
        )
            .prop_map(|(format, ip, port, n, id, at, how, b)| {
                let event = AttackEvent {
                    time_ms: 1_700_000_000_000 + (n % 1_000_000) as i64,
                    src_ip: ip.to_vec(),
                    dst_ip: vec![198, 51, 100, 7],
                    src_port: u32::from(port),
                    dst_port: 443,
                    protocol: [6, 17, 1][(n % 3) as usize],
                    kind: (n % 5 + 1) as i32,
                    rule_id: (n >> 8) as u32,
                    event_id: id,
                    packets: n % 100,
                    bytes: n % 10_000,
                    sensor_id: "s-1".into(),
                };
                let mut bytes = format.encode(&event).unwrap_or_default().into_bytes();
                let i = at.index(bytes.len() + 1);
                match how {
                    0 => bytes.insert(i, b),
                    1 if i < bytes.len() => {
                        bytes.remove(i);
                    }
                    2 if i < bytes.len() => bytes[i] = b,
                    _ => {} // unchanged
                }
                (format, bytes)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every format's documents, as written and with a byte changed,
        /// decode the same with the scanner first as with serde_json only.
        #[test]
        fn every_format_decodes_the_same_either_way((format, bytes) in encoded_and_mutated()) {
            prop_assert_eq!(
                outcome_of(format, JsonParser::ScanFirst, &bytes),
                outcome_of(format, JsonParser::SerdeOnly, &bytes)
            );
        }

        #[test]
        fn scanner_gives_serdes_fields_or_nothing(doc in eve_document()) {
            scanner_agrees(&doc).map_err(TestCaseError::fail)?;
            prop_assert_eq!(
                outcome(JsonParser::ScanFirst, doc.as_bytes()),
                outcome(JsonParser::SerdeOnly, doc.as_bytes())
            );
        }

        #[test]
        fn mutated_documents_decode_the_same(bytes in mutated()) {
            if let Ok(text) = std::str::from_utf8(&bytes) {
                scanner_agrees(text).map_err(TestCaseError::fail)?;
            }
            prop_assert_eq!(
                outcome(JsonParser::ScanFirst, &bytes),
                outcome(JsonParser::SerdeOnly, &bytes)
            );
        }

        /// Any JSON value in an ignored field: accepted exactly when valid.
        #[test]
        fn any_ignored_value_is_skipped_as_serde_skips_it(v in json_value(), cut in 0usize..8) {
            let doc = ALERT.replacen("\"eth0\"", &v, 1);
            prop_assert_eq!(scanner_agrees(&doc), Ok(true));
            let broken = v.get(..v.len().saturating_sub(cut)).unwrap_or_default();
            let doc = ALERT.replacen("\"eth0\"", broken, 1);
            scanner_agrees(&doc).map_err(TestCaseError::fail)?;
        }
    }

    /// The generators are no vacuous test: most generated documents take
    /// the fast path, and some do not.
    #[test]
    fn most_generated_documents_take_the_fast_path() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = eve_document();
        let (mut fast, mut total) = (0, 0);
        for _ in 0..500 {
            let doc = strategy.new_tree(&mut runner).unwrap().current();
            total += 1;
            if scanner_agrees(&doc).unwrap() {
                fast += 1;
            }
        }
        assert!(fast * 10 > total, "{fast} of {total}");
        assert!(fast < total, "{fast} of {total}");
    }
}
