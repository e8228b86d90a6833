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
use crate::scan::{Fields, Picked, Want, field};
use crate::time::{format_rfc3339, parse_rfc3339};
use crate::{JsonEvent, JsonParser, parse_scanned};

/// The fields read; serde_json's struct, which the scanner's [`scan_doc`]
/// fills the same way.
#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct Doc<'a> {
    #[serde(borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    src_ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dest_ip: Option<Cow<'a, str>>,
    pub(crate) src_port: Option<u64>,
    dest_port: Option<u64>,
    #[serde(borrow)]
    proto: Option<Cow<'a, str>>,
    pub(crate) flow_id: Option<u64>,
    tx_id: Option<u64>,
    icmp_type: Option<u64>,
    icmp_code: Option<u64>,
    #[serde(borrow)]
    host: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alert: Option<Alert<'a>>,
    pub(crate) flow: Option<Flow>,
    #[serde(borrow)]
    anomaly: Option<Anomaly<'a>>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct Alert<'a> {
    signature_id: Option<u64>,
    #[serde(borrow)]
    category: Option<Cow<'a, str>>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct Flow {
    pkts_toserver: Option<u64>,
    pkts_toclient: Option<u64>,
    bytes_toserver: Option<u64>,
    bytes_toclient: Option<u64>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct Anomaly<'a> {
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
}

/// The scanner's slots of [`Doc`]'s fields.
mod slot {
    pub(super) const TIMESTAMP: usize = 0;
    pub(super) const FLOW_ID: usize = 1;
    pub(super) const EVENT_TYPE: usize = 2;
    pub(super) const SRC_IP: usize = 3;
    pub(super) const SRC_PORT: usize = 4;
    pub(super) const DEST_IP: usize = 5;
    pub(super) const DEST_PORT: usize = 6;
    pub(super) const PROTO: usize = 7;
    pub(super) const TX_ID: usize = 8;
    pub(super) const ICMP_TYPE: usize = 9;
    pub(super) const ICMP_CODE: usize = 10;
    pub(super) const HOST: usize = 11;
    pub(super) const ALERT: usize = 12;
    pub(super) const SIGNATURE_ID: usize = 13;
    pub(super) const CATEGORY: usize = 14;
    pub(super) const FLOW: usize = 15;
    pub(super) const PKTS_TOSERVER: usize = 16;
    pub(super) const PKTS_TOCLIENT: usize = 17;
    pub(super) const BYTES_TOSERVER: usize = 18;
    pub(super) const BYTES_TOCLIENT: usize = 19;
    pub(super) const ANOMALY: usize = 20;
    pub(super) const ANOMALY_EVENT: usize = 21;
    pub(super) const COUNT: usize = 22;
}

const ALERT: Fields = Fields::new(&[
    field("signature_id", Want::U64, slot::SIGNATURE_ID),
    field("category", Want::Str, slot::CATEGORY),
]);

const FLOW: Fields = Fields::new(&[
    field("pkts_toserver", Want::U64, slot::PKTS_TOSERVER),
    field("pkts_toclient", Want::U64, slot::PKTS_TOCLIENT),
    field("bytes_toserver", Want::U64, slot::BYTES_TOSERVER),
    field("bytes_toclient", Want::U64, slot::BYTES_TOCLIENT),
]);

const ANOMALY: Fields = Fields::new(&[field("event", Want::Str, slot::ANOMALY_EVENT)]);

/// [`Doc`]'s fields for the scanner, in the order Suricata writes them.
const FIELDS: Fields = Fields::new(&[
    field("timestamp", Want::Str, slot::TIMESTAMP),
    field("flow_id", Want::U64, slot::FLOW_ID),
    field("event_type", Want::Str, slot::EVENT_TYPE),
    field("src_ip", Want::Str, slot::SRC_IP),
    field("src_port", Want::U64, slot::SRC_PORT),
    field("dest_ip", Want::Str, slot::DEST_IP),
    field("dest_port", Want::U64, slot::DEST_PORT),
    field("proto", Want::Str, slot::PROTO),
    field("tx_id", Want::U64, slot::TX_ID),
    field("icmp_type", Want::U64, slot::ICMP_TYPE),
    field("icmp_code", Want::U64, slot::ICMP_CODE),
    field("host", Want::Str, slot::HOST),
    field("alert", Want::Object(&ALERT), slot::ALERT),
    field("flow", Want::Object(&FLOW), slot::FLOW),
    field("anomaly", Want::Object(&ANOMALY), slot::ANOMALY),
]);

/// [`Doc`] by the scanner, `None` when it is not sure (serde_json decides).
pub(crate) fn scan_doc(text: &str) -> Option<Doc<'_>> {
    use slot::*;
    let p: [Picked<'_>; COUNT] = crate::scan::pick(text, &FIELDS)?;
    Some(Doc {
        event_type: p[EVENT_TYPE].str(),
        timestamp: p[TIMESTAMP].str(),
        src_ip: p[SRC_IP].str(),
        dest_ip: p[DEST_IP].str(),
        src_port: p[SRC_PORT].u64(),
        dest_port: p[DEST_PORT].u64(),
        proto: p[PROTO].str(),
        flow_id: p[FLOW_ID].u64(),
        tx_id: p[TX_ID].u64(),
        icmp_type: p[ICMP_TYPE].u64(),
        icmp_code: p[ICMP_CODE].u64(),
        host: p[HOST].str(),
        alert: p[ALERT].is_object().then(|| Alert {
            signature_id: p[SIGNATURE_ID].u64(),
            category: p[CATEGORY].str(),
        }),
        flow: p[FLOW].is_object().then(|| Flow {
            pkts_toserver: p[PKTS_TOSERVER].u64(),
            pkts_toclient: p[PKTS_TOCLIENT].u64(),
            bytes_toserver: p[BYTES_TOSERVER].u64(),
            bytes_toclient: p[BYTES_TOCLIENT].u64(),
        }),
        anomaly: p[ANOMALY].is_object().then(|| Anomaly {
            event: p[ANOMALY_EVENT].str(),
        }),
    })
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
pub(crate) fn map(
    doc: &[u8],
    parser: JsonParser,
    b: &mut Builder<'_>,
) -> Result<Option<JsonEvent>, Rejection> {
    let d: Doc<'_> = parse_scanned(doc, parser, scan_doc)?;
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
