//! OCSF (1.x) events: Network Activity (`class_uid` 4001) and Detection
//! Finding (2004) are events; every other class is skipped. Mapping:
//! `docs/formats.md`.

use std::borrow::Cow;
use std::fmt::Write as _;

use rampart_core::proto::v1::{AttackEvent, AttackKind};
use rampart_core::validate::Rejection;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::fields::{
    Addr, Builder, json_str, kind_of_technique, numeric_rule_id, opt_ip, protocol_number,
    saturate_u32, technique_of_kind,
};
use crate::time::{parse_decimal, parse_rfc3339};
use crate::{JsonEvent, parse};

const NETWORK_ACTIVITY: u64 = 4001;
const DETECTION_FINDING: u64 = 2004;

#[derive(Deserialize)]
struct Doc<'a> {
    class_uid: Option<u64>,
    #[serde(borrow)]
    time: Option<&'a RawValue>,
    #[serde(borrow)]
    metadata: Option<Metadata<'a>>,
    #[serde(borrow)]
    device: Option<Device<'a>>,
    #[serde(borrow)]
    src_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow)]
    dst_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow)]
    connection_info: Option<ConnectionInfo<'a>>,
    traffic: Option<Traffic>,
    #[serde(borrow)]
    finding_info: Option<FindingInfo<'a>>,
    #[serde(borrow)]
    attacks: Option<Vec<Attack<'a>>>,
    #[serde(borrow)]
    evidences: Option<Vec<Net<'a>>>,
}

/// Where endpoints live: at the top of Network Activity, in `evidences[]`
/// of a Detection Finding.
#[derive(Deserialize)]
struct Net<'a> {
    #[serde(borrow)]
    src_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow)]
    dst_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow)]
    connection_info: Option<ConnectionInfo<'a>>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow)]
    uid: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Device<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    hostname: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Endpoint<'a> {
    #[serde(borrow)]
    ip: Option<Cow<'a, str>>,
    port: Option<u64>,
}

#[derive(Deserialize)]
struct ConnectionInfo<'a> {
    protocol_num: Option<u64>,
    #[serde(borrow)]
    protocol_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Traffic {
    packets: Option<u64>,
    bytes: Option<u64>,
}

#[derive(Deserialize)]
struct FindingInfo<'a> {
    #[serde(borrow)]
    analytic: Option<Analytic<'a>>,
    #[serde(borrow)]
    attacks: Option<Vec<Attack<'a>>>,
}

#[derive(Deserialize)]
struct Analytic<'a> {
    #[serde(borrow)]
    uid: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Attack<'a> {
    #[serde(borrow)]
    technique: Option<Technique<'a>>,
}

#[derive(Deserialize)]
struct Technique<'a> {
    #[serde(borrow)]
    uid: Option<Cow<'a, str>>,
}

/// OCSF `time`: epoch ms as a number (its type, `timestamp_t`), or RFC 3339
/// text as some producers write it.
fn time_of(raw: &RawValue) -> Result<i64, Rejection> {
    let text = raw.get();
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(iso) => parse_rfc3339(iso),
        None => parse_decimal(text, 0),
    }
}

/// Maps one OCSF event: `Ok(None)` for a class that is skipped.
pub(crate) fn map(doc: &[u8], b: &mut Builder<'_>) -> Result<Option<JsonEvent>, Rejection> {
    let d: Doc<'_> = parse(doc)?;
    let class = d.class_uid.ok_or(Rejection::MissingField)?;
    if class != NETWORK_ACTIVITY && class != DETECTION_FINDING {
        return Ok(None);
    }
    let time_ms = match d.time {
        Some(raw) => time_of(raw)?,
        None => 0,
    };
    let first_evidence = d
        .evidences
        .as_ref()
        .and_then(|e| e.first())
        .filter(|_| d.src_endpoint.is_none());
    let (src, dst, connection_info) = match first_evidence {
        Some(n) => (
            n.src_endpoint.as_ref(),
            n.dst_endpoint.as_ref(),
            n.connection_info.as_ref(),
        ),
        None => (
            d.src_endpoint.as_ref(),
            d.dst_endpoint.as_ref(),
            d.connection_info.as_ref(),
        ),
    };
    let src_ip = opt_ip(src.and_then(|e| e.ip.as_ref()))?;
    let dst_ip = opt_ip(dst.and_then(|e| e.ip.as_ref()))?;
    let v6 = src_ip.is_v6() || dst_ip.is_v6();
    let protocol = match connection_info {
        Some(ConnectionInfo {
            protocol_num: Some(n),
            ..
        }) => saturate_u32(*n),
        Some(ConnectionInfo {
            protocol_name: Some(name),
            ..
        }) => protocol_number(name, v6)?,
        _ => 0,
    };
    let finding = d.finding_info.as_ref();
    let techniques = finding
        .and_then(|f| f.attacks.as_ref())
        .into_iter()
        .chain(d.attacks.as_ref())
        .flatten()
        .filter_map(|a| a.technique.as_ref()?.uid.as_deref());
    let kind =
        techniques
            .filter_map(kind_of_technique)
            .next()
            .unwrap_or(if class == DETECTION_FINDING {
                AttackKind::IdsAlert
            } else {
                AttackKind::Scan
            });
    let rule_id = finding
        .and_then(|f| f.analytic.as_ref()?.uid.as_deref())
        .map_or(0, numeric_rule_id);
    let (packets, bytes) = d
        .traffic
        .as_ref()
        .map_or((0, 0), |t| (t.packets.unwrap_or(0), t.bytes.unwrap_or(0)));
    let sensor = d
        .device
        .as_ref()
        .and_then(|d| d.name.as_ref().or(d.hostname.as_ref()));
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
        event_id: b.opt(d.metadata.as_ref().and_then(|m| m.uid.as_ref())),
        sensor_id: b.opt(sensor),
    }))
}

/// A scan without a rule as Network Activity (4001, endpoints at the top);
/// anything else as a Detection Finding (2004, endpoints in `evidences[0]`,
/// the kind as a MITRE technique, the rule as `finding_info.analytic.uid`).
pub fn encode(e: &AttackEvent) -> String {
    let mut s = String::with_capacity(640);
    let ip = |a: &[u8]| {
        Addr::from_bytes(a)
            .to_ip()
            .map_or_else(String::new, |ip| ip.to_string())
    };
    let net = format!(
        "\"src_endpoint\":{{\"ip\":\"{}\",\"port\":{}}},\"dst_endpoint\":{{\"ip\":\"{}\",\"port\":{}}},\
         \"connection_info\":{{\"protocol_num\":{},\"direction_id\":1}}",
        ip(&e.src_ip),
        e.src_port,
        ip(&e.dst_ip),
        e.dst_port,
        e.protocol
    );
    let activity = e.kind == AttackKind::Scan as i32 && e.rule_id == 0;
    let class = if activity {
        NETWORK_ACTIVITY
    } else {
        DETECTION_FINDING
    };
    let _ = write!(
        s,
        "{{\"class_uid\":{class},\"category_uid\":{},\"activity_id\":{},\"severity_id\":3,\
         \"time\":{},\"metadata\":{{\"version\":\"1.3.0\",\"product\":{{\"name\":\"rampart loadgen\"}}",
        class / 1000,
        if activity { 6 } else { 1 },
        e.time_ms
    );
    if !e.event_id.is_empty() {
        let _ = write!(s, ",\"uid\":{}", json_str(&e.event_id));
    }
    s.push('}');
    if !e.sensor_id.is_empty() {
        let _ = write!(s, ",\"device\":{{\"name\":{}}}", json_str(&e.sensor_id));
    }
    if activity {
        let _ = write!(s, ",{net}");
    } else {
        let _ = write!(
            s,
            ",\"evidences\":[{{{net}}}],\"finding_info\":{{\"title\":\"rampart loadgen\""
        );
        if e.rule_id != 0 {
            let _ = write!(
                s,
                ",\"analytic\":{{\"uid\":\"{}\",\"type_id\":1}}",
                e.rule_id
            );
        }
        if let Some(t) = technique_of_kind(e.kind) {
            let _ = write!(s, ",\"attacks\":[{{\"technique\":{{\"uid\":\"{t}\"}}}}]");
        }
        s.push('}');
    }
    let _ = write!(
        s,
        ",\"traffic\":{{\"packets\":{},\"bytes\":{}}}}}",
        e.packets, e.bytes
    );
    s
}
