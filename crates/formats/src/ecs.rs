//! Elastic Common Schema documents (nested objects, as Elastic agents and
//! Logstash's ECS mode write them): network events and alerts are events;
//! documents of other categories are skipped. Mapping: `docs/formats.md`.

use std::borrow::Cow;
use std::fmt::Write as _;

use rampart_core::proto::v1::{AttackEvent, AttackKind};
use rampart_core::validate::Rejection;
use serde::Deserialize;

use crate::fields::{
    Addr, Builder, OneOrMany, StrOrNum, json_str, kind_of_technique, numeric_rule_id, opt_ip,
    protocol_name, protocol_number, saturate_u32, technique_of_kind,
};
use crate::scan::{Fields, Picked, Want, field};
use crate::time::parse_rfc3339;
use crate::{JsonEvent, JsonParser, parse_scanned};

/// The fields read; serde_json's struct, which the scanner's [`scan_doc`]
/// fills the same way.
#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct Doc<'a> {
    #[serde(rename = "@timestamp", borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event: Option<Event<'a>>,
    #[serde(borrow)]
    source: Option<Endpoint<'a>>,
    #[serde(borrow)]
    destination: Option<Endpoint<'a>>,
    #[serde(borrow)]
    network: Option<Network<'a>>,
    #[serde(borrow)]
    rule: Option<Rule<'a>>,
    #[serde(borrow)]
    threat: Option<Threat<'a>>,
    #[serde(borrow)]
    observer: Option<Observer<'a>>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct Event<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    category: Option<OneOrMany<'a>>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct Endpoint<'a> {
    #[serde(borrow)]
    ip: Option<Cow<'a, str>>,
    port: Option<u64>,
    packets: Option<u64>,
    bytes: Option<u64>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct Network<'a> {
    #[serde(borrow)]
    iana_number: Option<StrOrNum<'a>>,
    #[serde(borrow)]
    transport: Option<Cow<'a, str>>,
    packets: Option<u64>,
    bytes: Option<u64>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct Rule<'a> {
    #[serde(borrow)]
    id: Option<StrOrNum<'a>>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct Threat<'a> {
    #[serde(borrow)]
    technique: Option<Technique<'a>>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct Technique<'a> {
    #[serde(borrow)]
    id: Option<OneOrMany<'a>>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct Observer<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    hostname: Option<Cow<'a, str>>,
}

/// The scanner's slots of [`Doc`]'s fields.
mod slot {
    pub(super) const TIMESTAMP: usize = 0;
    pub(super) const EVENT: usize = 1;
    pub(super) const EVENT_ID: usize = 2;
    pub(super) const EVENT_KIND: usize = 3;
    pub(super) const EVENT_CATEGORY: usize = 4;
    pub(super) const SOURCE: usize = 5;
    pub(super) const SOURCE_IP: usize = 6;
    pub(super) const SOURCE_PORT: usize = 7;
    pub(super) const SOURCE_PACKETS: usize = 8;
    pub(super) const SOURCE_BYTES: usize = 9;
    pub(super) const DESTINATION: usize = 10;
    pub(super) const DESTINATION_IP: usize = 11;
    pub(super) const DESTINATION_PORT: usize = 12;
    pub(super) const DESTINATION_PACKETS: usize = 13;
    pub(super) const DESTINATION_BYTES: usize = 14;
    pub(super) const NETWORK: usize = 15;
    pub(super) const IANA_NUMBER: usize = 16;
    pub(super) const TRANSPORT: usize = 17;
    pub(super) const NETWORK_PACKETS: usize = 18;
    pub(super) const NETWORK_BYTES: usize = 19;
    pub(super) const RULE: usize = 20;
    pub(super) const RULE_ID: usize = 21;
    pub(super) const THREAT: usize = 22;
    pub(super) const TECHNIQUE: usize = 23;
    pub(super) const TECHNIQUE_ID: usize = 24;
    pub(super) const OBSERVER: usize = 25;
    pub(super) const OBSERVER_NAME: usize = 26;
    pub(super) const OBSERVER_HOSTNAME: usize = 27;
    pub(super) const COUNT: usize = 28;
}

const EVENT: Fields = Fields::new(&[
    field("kind", Want::Str, slot::EVENT_KIND),
    field("category", Want::StrOrList, slot::EVENT_CATEGORY),
    field("id", Want::Str, slot::EVENT_ID),
]);

const SOURCE: Fields = Fields::new(&[
    field("ip", Want::Str, slot::SOURCE_IP),
    field("port", Want::U64, slot::SOURCE_PORT),
    field("packets", Want::U64, slot::SOURCE_PACKETS),
    field("bytes", Want::U64, slot::SOURCE_BYTES),
]);

const DESTINATION: Fields = Fields::new(&[
    field("ip", Want::Str, slot::DESTINATION_IP),
    field("port", Want::U64, slot::DESTINATION_PORT),
    field("packets", Want::U64, slot::DESTINATION_PACKETS),
    field("bytes", Want::U64, slot::DESTINATION_BYTES),
]);

const NETWORK: Fields = Fields::new(&[
    field("iana_number", Want::StrOrU64, slot::IANA_NUMBER),
    field("transport", Want::Str, slot::TRANSPORT),
    field("packets", Want::U64, slot::NETWORK_PACKETS),
    field("bytes", Want::U64, slot::NETWORK_BYTES),
]);

const RULE: Fields = Fields::new(&[field("id", Want::StrOrU64, slot::RULE_ID)]);

const TECHNIQUE: Fields = Fields::new(&[field("id", Want::StrOrList, slot::TECHNIQUE_ID)]);

const THREAT: Fields = Fields::new(&[field(
    "technique",
    Want::Object(&TECHNIQUE),
    slot::TECHNIQUE,
)]);

const OBSERVER: Fields = Fields::new(&[
    field("name", Want::Str, slot::OBSERVER_NAME),
    field("hostname", Want::Str, slot::OBSERVER_HOSTNAME),
]);

/// [`Doc`]'s fields for the scanner, in the order Elastic writes them.
const FIELDS: Fields = Fields::new(&[
    field("@timestamp", Want::Str, slot::TIMESTAMP),
    field("event", Want::Object(&EVENT), slot::EVENT),
    field("source", Want::Object(&SOURCE), slot::SOURCE),
    field("destination", Want::Object(&DESTINATION), slot::DESTINATION),
    field("network", Want::Object(&NETWORK), slot::NETWORK),
    field("rule", Want::Object(&RULE), slot::RULE),
    field("threat", Want::Object(&THREAT), slot::THREAT),
    field("observer", Want::Object(&OBSERVER), slot::OBSERVER),
]);

fn str_or_num(p: Picked<'_>) -> Option<StrOrNum<'_>> {
    match p {
        Picked::U64(n) => Some(StrOrNum::Num(n)),
        other => other.str().map(StrOrNum::Str),
    }
}

/// `None` when the list is not only strings without escapes (serde_json
/// decides); `Some(None)` when absent or null.
fn one_or_many(p: Picked<'_>) -> Option<Option<OneOrMany<'_>>> {
    match p {
        Picked::Raw(array) => {
            let strings = crate::scan::plain_strings(array)?;
            Some(Some(OneOrMany::Many(
                strings.into_iter().map(Cow::Borrowed).collect(),
            )))
        }
        other => Some(other.str().map(OneOrMany::One)),
    }
}

/// [`Doc`] by the scanner, `None` when it is not sure (serde_json decides).
pub(crate) fn scan_doc(text: &str) -> Option<Doc<'_>> {
    use slot::*;
    let p: [Picked<'_>; COUNT] = crate::scan::pick(text, &FIELDS)?;
    let endpoint = |at: usize, ip: usize, port: usize, packets: usize, bytes: usize| {
        p[at].is_object().then(|| Endpoint {
            ip: p[ip].str(),
            port: p[port].u64(),
            packets: p[packets].u64(),
            bytes: p[bytes].u64(),
        })
    };
    let event = if p[EVENT].is_object() {
        Some(Event {
            id: p[EVENT_ID].str(),
            kind: p[EVENT_KIND].str(),
            category: one_or_many(p[EVENT_CATEGORY])?,
        })
    } else {
        None
    };
    let technique = if p[TECHNIQUE].is_object() {
        Some(Technique {
            id: one_or_many(p[TECHNIQUE_ID])?,
        })
    } else {
        None
    };
    Some(Doc {
        timestamp: p[TIMESTAMP].str(),
        event,
        source: endpoint(SOURCE, SOURCE_IP, SOURCE_PORT, SOURCE_PACKETS, SOURCE_BYTES),
        destination: endpoint(
            DESTINATION,
            DESTINATION_IP,
            DESTINATION_PORT,
            DESTINATION_PACKETS,
            DESTINATION_BYTES,
        ),
        network: p[NETWORK].is_object().then(|| Network {
            iana_number: str_or_num(p[IANA_NUMBER]),
            transport: p[TRANSPORT].str(),
            packets: p[NETWORK_PACKETS].u64(),
            bytes: p[NETWORK_BYTES].u64(),
        }),
        rule: p[RULE].is_object().then(|| Rule {
            id: str_or_num(p[RULE_ID]),
        }),
        threat: p[THREAT].is_object().then_some(Threat { technique }),
        observer: p[OBSERVER].is_object().then(|| Observer {
            name: p[OBSERVER_NAME].str(),
            hostname: p[OBSERVER_HOSTNAME].str(),
        }),
    })
}

/// Maps one ECS document: `Ok(None)` for a document that is neither an
/// alert nor of category `network` / `intrusion_detection`.
pub(crate) fn map(
    doc: &[u8],
    parser: JsonParser,
    b: &mut Builder<'_>,
) -> Result<Option<JsonEvent>, Rejection> {
    let d: Doc<'_> = parse_scanned(doc, parser, scan_doc)?;
    let event = d.event.as_ref();
    let event_kind = event.and_then(|e| e.kind.as_deref());
    let category = event.and_then(|e| e.category.as_ref());
    if event_kind.is_none() && category.is_none() {
        return Err(Rejection::MissingField);
    }
    let alert = event_kind == Some("alert");
    let network = category.is_some_and(|c| {
        c.iter()
            .any(|c| c == "network" || c == "intrusion_detection")
    });
    if !alert && !network {
        return Ok(None);
    }
    let technique_kind = d
        .threat
        .as_ref()
        .and_then(|t| t.technique.as_ref()?.id.as_ref())
        .and_then(|ids| ids.iter().find_map(kind_of_technique));
    let kind = technique_kind.unwrap_or(if alert {
        AttackKind::IdsAlert
    } else {
        AttackKind::Scan
    });
    let time_ms = match d.timestamp.as_deref() {
        Some(t) => parse_rfc3339(t)?,
        None => 0,
    };
    let (src, dst) = (d.source.as_ref(), d.destination.as_ref());
    let src_ip = opt_ip(src.and_then(|e| e.ip.as_ref()))?;
    let dst_ip = opt_ip(dst.and_then(|e| e.ip.as_ref()))?;
    let v6 = src_ip.is_v6() || dst_ip.is_v6();
    let net = d.network.as_ref();
    let protocol = match (
        net.and_then(|n| n.iana_number.as_ref()),
        net.and_then(|n| n.transport.as_deref()),
    ) {
        (Some(StrOrNum::Num(n)), _) => saturate_u32(*n),
        (Some(StrOrNum::Str(s)), _) => protocol_number(s, v6)?,
        (None, Some(name)) => protocol_number(name, v6)?,
        (None, None) => 0,
    };
    let sum = |f: fn(&Endpoint<'_>) -> Option<u64>| {
        src.and_then(f)
            .unwrap_or(0)
            .saturating_add(dst.and_then(f).unwrap_or(0))
    };
    let packets = net
        .and_then(|n| n.packets)
        .unwrap_or_else(|| sum(|e| e.packets));
    let bytes = net
        .and_then(|n| n.bytes)
        .unwrap_or_else(|| sum(|e| e.bytes));
    let rule_id = match d.rule.as_ref().and_then(|r| r.id.as_ref()) {
        Some(StrOrNum::Num(n)) => u32::try_from(*n).unwrap_or(0),
        Some(StrOrNum::Str(s)) => numeric_rule_id(s),
        None => 0,
    };
    let sensor = d
        .observer
        .as_ref()
        .and_then(|o| o.name.as_ref().or(o.hostname.as_ref()));
    Ok(Some(JsonEvent {
        time_ms,
        src_ip,
        dst_ip,
        src_port: saturate_u32(src.and_then(|e| e.port).unwrap_or(0)),
        dst_port: saturate_u32(dst.and_then(|e| e.port).unwrap_or(0)),
        protocol,
        kind: kind as i32,
        rule_id,
        packets,
        bytes,
        event_id: b.opt(event.and_then(|e| e.id.as_ref())),
        sensor_id: b.opt(sensor),
    }))
}

/// A scan as a network event (`event.kind: event`); anything else as an
/// alert with `rule.id` and the kind as `threat.technique.id`.
pub fn encode(e: &AttackEvent) -> String {
    let mut s = String::with_capacity(640);
    let ip = |a: &[u8]| {
        Addr::from_bytes(a)
            .to_ip()
            .map_or_else(String::new, |ip| ip.to_string())
    };
    let scan = e.kind == AttackKind::Scan as i32;
    let _ = write!(
        s,
        "{{\"@timestamp\":\"{}\",\"ecs\":{{\"version\":\"8.11.0\"}},\"event\":{{\"kind\":\"{}\",\
         \"category\":[{}],\"type\":[\"connection\"]",
        crate::time::format_rfc3339(e.time_ms, None),
        if scan { "event" } else { "alert" },
        if scan {
            "\"network\""
        } else {
            "\"network\",\"intrusion_detection\""
        }
    );
    if !e.event_id.is_empty() {
        let _ = write!(s, ",\"id\":{}", json_str(&e.event_id));
    }
    let transport = protocol_name(e.protocol).to_ascii_lowercase();
    let _ = write!(
        s,
        "}},\"source\":{{\"ip\":\"{}\",\"port\":{}}},\"destination\":{{\"ip\":\"{}\",\"port\":{}}},\
         \"network\":{{\"iana_number\":\"{}\",\"transport\":\"{transport}\",\"packets\":{},\"bytes\":{}}}",
        ip(&e.src_ip),
        e.src_port,
        ip(&e.dst_ip),
        e.dst_port,
        e.protocol,
        e.packets,
        e.bytes
    );
    if e.rule_id != 0 {
        let _ = write!(s, ",\"rule\":{{\"id\":\"{}\"}}", e.rule_id);
    }
    if let Some(t) = technique_of_kind(e.kind).filter(|_| !scan) {
        let _ = write!(s, ",\"threat\":{{\"technique\":{{\"id\":[\"{t}\"]}}}}");
    }
    if !e.sensor_id.is_empty() {
        let _ = write!(s, ",\"observer\":{{\"name\":{}}}", json_str(&e.sensor_id));
    }
    s.push('}');
    s
}
