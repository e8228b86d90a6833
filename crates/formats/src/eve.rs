//! Suricata EVE JSON (4.x–7.x): `alert`, `drop`, `anomaly` and `flow` records
//! are events; every other `event_type` (`stats`, `dns`, `http`, `tls`,
//! `fileinfo`, `netflow`, ...) is skipped. Mapping: `docs/formats.md`.

use std::borrow::Cow;
use std::fmt::Write as _;

use rampart_core::proto::v1::{AttackEvent, AttackKind};
use rampart_core::validate::Rejection;
use serde::Deserialize;

use crate::fields::IdPart::{Num, OptNum, Str};
use crate::fields::{
    Addr, Builder, json_str, opt_ip, protocol_name, protocol_number, saturate_u32,
};
use crate::time::{format_rfc3339, parse_rfc3339};
use crate::{JsonEvent, parse};

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    src_ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dest_ip: Option<Cow<'a, str>>,
    src_port: Option<u64>,
    dest_port: Option<u64>,
    #[serde(borrow)]
    proto: Option<Cow<'a, str>>,
    flow_id: Option<u64>,
    tx_id: Option<u64>,
    icmp_type: Option<u64>,
    icmp_code: Option<u64>,
    #[serde(borrow)]
    host: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alert: Option<Alert<'a>>,
    flow: Option<Flow>,
    #[serde(borrow)]
    anomaly: Option<Anomaly<'a>>,
}

#[derive(Deserialize)]
struct Alert<'a> {
    signature_id: Option<u64>,
    #[serde(borrow)]
    category: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Flow {
    pkts_toserver: Option<u64>,
    pkts_toclient: Option<u64>,
    bytes_toserver: Option<u64>,
    bytes_toclient: Option<u64>,
}

#[derive(Deserialize)]
struct Anomaly<'a> {
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
}

/// Suricata classification descriptions (`classification.config`) that name
/// a kind; any other category is an IDS alert.
const CATEGORY_KINDS: &[(&str, AttackKind)] = &[
    ("Detection of a Network Scan", AttackKind::Scan),
    ("Attempted Information Leak", AttackKind::Scan),
    (
        "Detection of a Denial of Service Attack",
        AttackKind::Backscatter,
    ),
    ("Attempted Denial of Service", AttackKind::Backscatter),
    (
        "Attempt to login by a default username and password",
        AttackKind::BruteForce,
    ),
    (
        "An attempted login using a suspicious username was detected",
        AttackKind::BruteForce,
    ),
    (
        "Attempted Administrator Privilege Gain",
        AttackKind::Exploit,
    ),
    ("Attempted User Privilege Gain", AttackKind::Exploit),
    ("Web Application Attack", AttackKind::Exploit),
    ("Executable code was detected", AttackKind::Exploit),
];

fn kind_of_category(category: Option<&str>) -> AttackKind {
    category
        .and_then(|c| CATEGORY_KINDS.iter().find(|(name, _)| *name == c))
        .map_or(AttackKind::IdsAlert, |&(_, kind)| kind)
}

fn category_of_kind(kind: i32) -> &'static str {
    CATEGORY_KINDS
        .iter()
        .find(|(_, k)| *k as i32 == kind)
        .map_or("Misc Attack", |(name, _)| name)
}

/// Maps one EVE record: `Ok(None)` for a record type that is skipped.
pub(crate) fn map(doc: &[u8], b: &mut Builder<'_>) -> Result<Option<JsonEvent>, Rejection> {
    let d: Doc<'_> = parse(doc)?;
    let event_type = d.event_type.as_deref().ok_or(Rejection::MissingField)?;
    let (kind, rule_id) = match event_type {
        "alert" | "drop" => match &d.alert {
            Some(a) => (
                kind_of_category(a.category.as_deref()),
                saturate_u32(a.signature_id.unwrap_or(0)),
            ),
            None => (AttackKind::IdsAlert, 0),
        },
        "anomaly" => (AttackKind::IdsAlert, 0),
        "flow" => (AttackKind::Scan, 0),
        _ => return Ok(None),
    };
    let time_ms = match d.timestamp.as_deref() {
        Some(t) => parse_rfc3339(t)?,
        None => 0,
    };
    let src_ip = opt_ip(d.src_ip.as_ref())?;
    let dst_ip = opt_ip(d.dest_ip.as_ref())?;
    let v6 = src_ip.is_v6() || dst_ip.is_v6();
    let protocol = match d.proto.as_deref() {
        Some(p) => protocol_number(p, v6)?,
        None => 0,
    };
    let (src_port, dst_port) = match (d.src_port, d.dest_port) {
        (None, None) => (d.icmp_type.unwrap_or(0), d.icmp_code.unwrap_or(0)),
        (s, t) => (s.unwrap_or(0), t.unwrap_or(0)),
    };
    let (packets, bytes) = d.flow.as_ref().map_or((0, 0), |f| {
        (
            f.pkts_toserver
                .unwrap_or(0)
                .saturating_add(f.pkts_toclient.unwrap_or(0)),
            f.bytes_toserver
                .unwrap_or(0)
                .saturating_add(f.bytes_toclient.unwrap_or(0)),
        )
    });
    let tx = OptNum(d.tx_id);
    let event_id = match (d.flow_id, event_type) {
        (None, _) => Default::default(),
        (Some(flow), "flow") => b.join(&[Num(flow), Str(":flow")]),
        (Some(flow), "anomaly") => {
            let what = d.anomaly.as_ref().and_then(|a| a.event.as_deref());
            b.join(&[
                Num(flow),
                Str(":"),
                tx,
                Str(":anomaly:"),
                Str(what.unwrap_or("")),
            ])
        }
        (Some(flow), _) => b.join(&[Num(flow), Str(":"), tx, Str(":"), Num(rule_id.into())]),
    };
    Ok(Some(JsonEvent {
        time_ms,
        src_ip,
        dst_ip,
        src_port: saturate_u32(src_port),
        dst_port: saturate_u32(dst_port),
        protocol,
        kind: kind as i32,
        rule_id,
        packets,
        bytes,
        event_id,
        sensor_id: b.opt(d.host.as_ref()),
    }))
}

/// The `flow_id` an encoder writes for an event id: the id itself when it
/// is up to 16 hex digits (loadgen's ids), else its FNV-1a hash.
pub(crate) fn numeric_id(event_id: &str) -> u64 {
    if !event_id.is_empty()
        && event_id.len() <= 16
        && let Ok(n) = u64::from_str_radix(event_id, 16)
    {
        return n;
    }
    event_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn is_icmp(protocol: u32) -> bool {
    protocol == 1 || protocol == 58
}

/// An `alert` record as Suricata 7 writes it (times in `+0000`): the rule
/// id is `signature_id`, the kind a classification of `CATEGORY_KINDS`,
/// packets and bytes the flow's `toserver` counters, an event id the
/// `flow_id`.
pub fn encode(e: &AttackEvent) -> String {
    let mut s = String::with_capacity(512);
    let ip = |a: &[u8]| {
        Addr::from_bytes(a)
            .to_ip()
            .map_or_else(String::new, |ip| ip.to_string())
    };
    let _ = write!(
        s,
        "{{\"timestamp\":\"{}\"",
        format_rfc3339(e.time_ms, Some(0))
    );
    if !e.event_id.is_empty() {
        let _ = write!(s, ",\"flow_id\":{}", numeric_id(&e.event_id));
    }
    let _ = write!(
        s,
        ",\"in_iface\":\"eth0\",\"event_type\":\"alert\",\"src_ip\":\"{}\"",
        ip(&e.src_ip)
    );
    if !is_icmp(e.protocol) {
        let _ = write!(s, ",\"src_port\":{}", e.src_port);
    }
    let _ = write!(s, ",\"dest_ip\":\"{}\"", ip(&e.dst_ip));
    if is_icmp(e.protocol) {
        let _ = write!(
            s,
            ",\"proto\":\"{}\",\"icmp_type\":{},\"icmp_code\":{}",
            protocol_name(e.protocol),
            e.src_port,
            e.dst_port
        );
    } else {
        let _ = write!(
            s,
            ",\"dest_port\":{},\"proto\":\"{}\"",
            e.dst_port,
            protocol_name(e.protocol)
        );
    }
    if !e.sensor_id.is_empty() {
        let _ = write!(s, ",\"host\":{}", json_str(&e.sensor_id));
    }
    let _ = write!(
        s,
        ",\"alert\":{{\"action\":\"allowed\",\"gid\":1,\"signature_id\":{},\"rev\":1,\
         \"signature\":\"rampart loadgen\",\"category\":\"{}\",\"severity\":2}}",
        e.rule_id,
        category_of_kind(e.kind)
    );
    let _ = write!(
        s,
        ",\"flow\":{{\"pkts_toserver\":{},\"pkts_toclient\":0,\"bytes_toserver\":{},\
         \"bytes_toclient\":0,\"start\":\"{}\"}}}}",
        e.packets,
        e.bytes,
        format_rfc3339(e.time_ms, Some(0))
    );
    s
}
