//! Zeek `conn.log` as JSON (5.x–7.x, the default flat field names such as
//! `id.orig_h`): every record is an event. Mapping: `docs/formats.md`.

use std::borrow::Cow;
use std::fmt::Write as _;

use rampart_core::proto::v1::{AttackEvent, AttackKind};
use rampart_core::validate::Rejection;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::eve::numeric_id;
use crate::fields::{Addr, Builder, json_str, opt_ip, protocol_number, saturate_u32};
use crate::scan::{Fields, Picked, Want, field};
use crate::time::{parse_decimal, parse_rfc3339};
use crate::{JsonEvent, JsonParser, parse_scanned};

/// The fields read; serde_json's struct, which the scanner's [`scan_doc`]
/// fills the same way.
#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct Doc<'a> {
    #[serde(borrow)]
    ts: Option<RawText<'a>>,
    #[serde(borrow)]
    uid: Option<Cow<'a, str>>,
    #[serde(rename = "id.orig_h", borrow)]
    orig_h: Option<Cow<'a, str>>,
    #[serde(rename = "id.orig_p")]
    orig_p: Option<u64>,
    #[serde(rename = "id.resp_h", borrow)]
    resp_h: Option<Cow<'a, str>>,
    #[serde(rename = "id.resp_p")]
    resp_p: Option<u64>,
    #[serde(borrow)]
    proto: Option<Cow<'a, str>>,
    ip_proto: Option<u64>,
    #[serde(borrow)]
    history: Option<Cow<'a, str>>,
    orig_pkts: Option<u64>,
    resp_pkts: Option<u64>,
    orig_ip_bytes: Option<u64>,
    resp_ip_bytes: Option<u64>,
    #[serde(rename = "_node_name", borrow)]
    node_name: Option<Cow<'a, str>>,
}

/// A value's JSON text as written (serde_json's borrowed `RawValue`).
#[derive(Debug, PartialEq)]
struct RawText<'a>(&'a str);

impl<'de: 'a, 'a> Deserialize<'de> for RawText<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(|raw| RawText(raw.get()))
    }
}

/// The scanner's slots of [`Doc`]'s fields.
mod slot {
    pub(super) const TS: usize = 0;
    pub(super) const UID: usize = 1;
    pub(super) const ORIG_H: usize = 2;
    pub(super) const ORIG_P: usize = 3;
    pub(super) const RESP_H: usize = 4;
    pub(super) const RESP_P: usize = 5;
    pub(super) const PROTO: usize = 6;
    pub(super) const IP_PROTO: usize = 7;
    pub(super) const HISTORY: usize = 8;
    pub(super) const ORIG_PKTS: usize = 9;
    pub(super) const ORIG_IP_BYTES: usize = 10;
    pub(super) const RESP_PKTS: usize = 11;
    pub(super) const RESP_IP_BYTES: usize = 12;
    pub(super) const NODE_NAME: usize = 13;
    pub(super) const COUNT: usize = 14;
}

/// [`Doc`]'s fields for the scanner, in the order Zeek writes them.
const FIELDS: Fields = Fields::new(&[
    field("ts", Want::Raw, slot::TS),
    field("uid", Want::Str, slot::UID),
    field("id.orig_h", Want::Str, slot::ORIG_H),
    field("id.orig_p", Want::U64, slot::ORIG_P),
    field("id.resp_h", Want::Str, slot::RESP_H),
    field("id.resp_p", Want::U64, slot::RESP_P),
    field("proto", Want::Str, slot::PROTO),
    field("ip_proto", Want::U64, slot::IP_PROTO),
    field("history", Want::Str, slot::HISTORY),
    field("orig_pkts", Want::U64, slot::ORIG_PKTS),
    field("orig_ip_bytes", Want::U64, slot::ORIG_IP_BYTES),
    field("resp_pkts", Want::U64, slot::RESP_PKTS),
    field("resp_ip_bytes", Want::U64, slot::RESP_IP_BYTES),
    field("_node_name", Want::Str, slot::NODE_NAME),
]);

/// [`Doc`] by the scanner, `None` when it is not sure (serde_json decides).
pub(crate) fn scan_doc(text: &str) -> Option<Doc<'_>> {
    use slot::*;
    let p: [Picked<'_>; COUNT] = crate::scan::pick(text, &FIELDS)?;
    Some(Doc {
        ts: p[TS].raw().map(RawText),
        uid: p[UID].str(),
        orig_h: p[ORIG_H].str(),
        orig_p: p[ORIG_P].u64(),
        resp_h: p[RESP_H].str(),
        resp_p: p[RESP_P].u64(),
        proto: p[PROTO].str(),
        ip_proto: p[IP_PROTO].u64(),
        history: p[HISTORY].str(),
        orig_pkts: p[ORIG_PKTS].u64(),
        resp_pkts: p[RESP_PKTS].u64(),
        orig_ip_bytes: p[ORIG_IP_BYTES].u64(),
        resp_ip_bytes: p[RESP_IP_BYTES].u64(),
        node_name: p[NODE_NAME].str(),
    })
}

/// `ts`: epoch seconds as a JSON number (Zeek's default) or ISO 8601 text
/// (`LogAscii::json_timestamps = JSON::TS_ISO8601`).
fn time_of(raw: &RawText<'_>) -> Result<i64, Rejection> {
    let text = raw.0;
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(iso) => parse_rfc3339(iso),
        None => parse_decimal(text, 3),
    }
}

/// Maps one conn record (none is skipped).
pub(crate) fn map(
    doc: &[u8],
    parser: JsonParser,
    b: &mut Builder<'_>,
) -> Result<Option<JsonEvent>, Rejection> {
    let d: Doc<'_> = parse_scanned(doc, parser, scan_doc)?;
    let time_ms = match &d.ts {
        Some(raw) => time_of(raw)?,
        None => 0,
    };
    let history = d.history.as_deref().unwrap_or("");
    // Zeek flips a connection whose first packet was a SYN-ACK so that its
    // originator is the presumed SYN sender, and marks it `^`: the real
    // sender of the backscatter is then the responder.
    let flipped = history.starts_with('^');
    let kind = if flipped || history.starts_with(['H', 'R']) {
        AttackKind::Backscatter
    } else {
        AttackKind::Scan
    };
    let orig = (opt_ip(d.orig_h.as_ref())?, d.orig_p.unwrap_or(0));
    let resp = (opt_ip(d.resp_h.as_ref())?, d.resp_p.unwrap_or(0));
    let ((src_ip, src_port), (dst_ip, dst_port)) =
        if flipped { (resp, orig) } else { (orig, resp) };
    let v6 = src_ip.is_v6() || dst_ip.is_v6();
    let protocol = match (d.ip_proto, d.proto.as_deref()) {
        (Some(n), _) => saturate_u32(n),
        (None, Some(name)) => protocol_number(name, v6)?,
        (None, None) => 0,
    };
    let packets = d
        .orig_pkts
        .unwrap_or(0)
        .saturating_add(d.resp_pkts.unwrap_or(0));
    let bytes = d
        .orig_ip_bytes
        .unwrap_or(0)
        .saturating_add(d.resp_ip_bytes.unwrap_or(0));
    Ok(Some(JsonEvent {
        time_ms,
        src_ip,
        dst_ip,
        src_port: saturate_u32(src_port),
        dst_port: saturate_u32(dst_port),
        protocol,
        kind: kind as i32,
        rule_id: 0,
        packets,
        bytes,
        event_id: b.opt(d.uid.as_ref()),
        sensor_id: b.opt(d.node_name.as_ref()),
    }))
}

/// A conn record as Zeek 7 writes it: `history` `H` (backscatter) or `S`
/// (everything else: conn.log has no rule id and no other kinds), packets
/// and bytes on the originator's side, `uid` from the event id.
pub fn encode(e: &AttackEvent) -> String {
    let mut s = String::with_capacity(384);
    let ip = |a: &[u8]| {
        Addr::from_bytes(a)
            .to_ip()
            .map_or_else(String::new, |ip| ip.to_string())
    };
    let sign = if e.time_ms < 0 { "-" } else { "" };
    let abs = e.time_ms.unsigned_abs();
    let _ = write!(s, "{{\"ts\":{sign}{}.{:03}000", abs / 1000, abs % 1000);
    if !e.event_id.is_empty() {
        let _ = write!(s, ",\"uid\":\"C{:016x}\"", numeric_id(&e.event_id));
    }
    let proto = match e.protocol {
        6 => "tcp",
        17 => "udp",
        1 | 58 => "icmp",
        _ => "unknown_transport",
    };
    let backscatter = e.kind == AttackKind::Backscatter as i32;
    let _ = write!(
        s,
        ",\"id.orig_h\":\"{}\",\"id.orig_p\":{},\"id.resp_h\":\"{}\",\"id.resp_p\":{},\
         \"proto\":\"{proto}\",\"ip_proto\":{},\"conn_state\":\"{}\",\"local_orig\":false,\
         \"local_resp\":true,\"missed_bytes\":0,\"history\":\"{}\",\"orig_pkts\":{},\
         \"orig_ip_bytes\":{},\"resp_pkts\":0,\"resp_ip_bytes\":0",
        ip(&e.src_ip),
        e.src_port,
        ip(&e.dst_ip),
        e.dst_port,
        e.protocol,
        if backscatter { "OTH" } else { "S0" },
        if backscatter { "H" } else { "S" },
        e.packets,
        e.bytes
    );
    if !e.sensor_id.is_empty() {
        let _ = write!(s, ",\"_node_name\":{}", json_str(&e.sensor_id));
    }
    s.push('}');
    s
}
