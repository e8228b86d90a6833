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
use crate::time::parse_rfc3339;
use crate::{JsonEvent, parse};

#[derive(Deserialize)]
struct Doc<'a> {
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

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    category: Option<OneOrMany<'a>>,
}

#[derive(Deserialize)]
struct Endpoint<'a> {
    #[serde(borrow)]
    ip: Option<Cow<'a, str>>,
    port: Option<u64>,
    packets: Option<u64>,
    bytes: Option<u64>,
}

#[derive(Deserialize)]
struct Network<'a> {
    #[serde(borrow)]
    iana_number: Option<StrOrNum<'a>>,
    #[serde(borrow)]
    transport: Option<Cow<'a, str>>,
    packets: Option<u64>,
    bytes: Option<u64>,
}

#[derive(Deserialize)]
struct Rule<'a> {
    #[serde(borrow)]
    id: Option<StrOrNum<'a>>,
}

#[derive(Deserialize)]
struct Threat<'a> {
    #[serde(borrow)]
    technique: Option<Technique<'a>>,
}

#[derive(Deserialize)]
struct Technique<'a> {
    #[serde(borrow)]
    id: Option<OneOrMany<'a>>,
}

#[derive(Deserialize)]
struct Observer<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    hostname: Option<Cow<'a, str>>,
}

/// Maps one ECS document: `Ok(None)` for a document that is neither an
/// alert nor of category `network` / `intrusion_detection`.
pub(crate) fn map(doc: &[u8], b: &mut Builder<'_>) -> Result<Option<JsonEvent>, Rejection> {
    let d: Doc<'_> = parse(doc)?;
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
