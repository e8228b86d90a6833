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

/// ECS: nested objects, keyword fields that are a string or a list, ids
/// that are a string or a number.
#[test]
fn ecs_fixture_lists_and_string_or_number_ids_agree_with_serde() {
    let ecs_agrees = |text: &str| match ecs::scan_doc(text) {
        None => false,
        Some(scanned) => {
            let reference: ecs::Doc<'_> = serde_json::from_str(text).unwrap();
            assert_eq!(scanned, reference, "{text}");
            true
        }
    };
    let payload = include_bytes!("../fixtures/ecs.json");
    let text = std::str::from_utf8(payload).unwrap();
    let taken: Vec<bool> = text.lines().map(ecs_agrees).collect();
    assert!(taken.iter().filter(|t| **t).count() >= 3, "{taken:?}");
    assert_eq!(
        outcome_of(Format::Ecs, JsonParser::ScanFirst, payload),
        outcome_of(Format::Ecs, JsonParser::SerdeOnly, payload)
    );
    let doc = |category: &str, rule: &str, iana: &str, technique: &str| {
        format!(
            r#"{{"event":{{"kind":"alert","category":{category}}},"source":{{"ip":"192.0.2.1"}},"destination":{{"ip":"192.0.2.2"}},"network":{{"iana_number":{iana}}},"rule":{{"id":{rule}}},"threat":{{"technique":{{"id":{technique}}}}}}}"#
        )
    };
    let cases = [
        // (document, does the scanner take it)
        (doc(r#""network""#, "7", r#""6""#, r#""T1046""#), true),
        (
            doc(r#"[ "network" , "x" ]"#, r#""2024897""#, "17", "[]"),
            true,
        ),
        (doc("[]", "null", "null", r#"["T1110.001","T1046"]"#), true),
        (doc("null", r#""r-1""#, "6", "null"), true),
        // serde_json reads these; the scanner leaves them to it.
        (doc(r#"["net\u0077ork"]"#, "7", "6", "[]"), false),
        (doc(r#""network""#, "7", "6", r#"["T\u0031046"]"#), false),
        (doc(r#""network""#, r#""\u0037""#, "6", "[]"), false),
        // Refused by serde_json (`wrong_field_type`), left to it.
        (doc(r#"["network",1]"#, "7", "6", "[]"), false),
        (doc(r#""network""#, "-7", "6", "[]"), false),
        (doc(r#""network""#, "7", "6.0", "[]"), false),
        (doc(r#""network""#, "7", "6", r#"{"a":1}"#), false),
        (doc("true", "7", "6", "[]"), false),
    ];
    for (doc, taken) in &cases {
        assert_eq!(ecs_agrees(doc), *taken, "{doc}");
        assert_eq!(
            outcome_of(Format::Ecs, JsonParser::ScanFirst, doc.as_bytes()),
            outcome_of(Format::Ecs, JsonParser::SerdeOnly, doc.as_bytes()),
            "{doc}"
        );
    }
    // Each refused one is a wrong_field_type from serde_json.
    for (doc, _) in cases.iter().skip(7) {
        let (_, _, failures) =
            outcome_of(Format::Ecs, JsonParser::SerdeOnly, doc.as_bytes()).unwrap();
        assert_eq!(failures, vec![(0, Rejection::WrongFieldType)], "{doc}");
    }
}

mod generated;
