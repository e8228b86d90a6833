//! Zeek `conn.log` as JSON (5.x–7.x, the default flat field names such as
//! `id.orig_h`): every record is an event. Mapping: `docs/formats.md`.

use std::borrow::Cow;
use std::fmt::Write as _;

use rampart_core::proto::v1::{AttackEvent, AttackKind};
use rampart_core::validate::Rejection;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::eve::numeric_id;
use crate::fields::{Addr, Builder, json_str, opt_ip, protocol_number, saturate_u32};
use crate::time::{parse_decimal, parse_rfc3339};
use crate::{JsonEvent, parse};

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(borrow)]
    ts: Option<&'a RawValue>,
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

/// `ts`: epoch seconds as a JSON number (Zeek's default) or ISO 8601 text
/// (`LogAscii::json_timestamps = JSON::TS_ISO8601`).
fn time_of(raw: &RawValue) -> Result<i64, Rejection> {
    let text = raw.get();
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(iso) => parse_rfc3339(iso),
        None => parse_decimal(text, 3),
    }
}

/// Maps one conn record (none is skipped).
pub(crate) fn map(doc: &[u8], b: &mut Builder<'_>) -> Result<Option<JsonEvent>, Rejection> {
    let d: Doc<'_> = parse(doc)?;
    let time_ms = match d.ts {
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
