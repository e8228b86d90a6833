//! Generated documents for the scanner's property tests: EVE documents with
//! random fields, types, nesting, escapes, whitespace and order, the same
//! with a byte changed, and every format's encoded documents mutated.

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
    (eve_document(), any::<prop::sample::Index>(), 0..3u8, byte).prop_map(|(doc, at, how, b)| {
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
    })
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
