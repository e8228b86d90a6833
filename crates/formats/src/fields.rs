//! Field conversions every format shares: address text, protocol names,
//! attack kinds from MITRE ATT&CK techniques, numeric rule ids, and the
//! `Builder` that writes a mapped event's id strings into the decoder's arena.

use std::borrow::Cow;
use std::net::IpAddr;

use rampart_core::proto::v1::AttackKind;
use rampart_core::validate::Rejection;
use serde::Deserialize;

/// An address as the bytes `AttackEvent` carries (4 or 16; 0 = absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Addr {
    len: u8,
    bytes: [u8; 16],
}

impl Addr {
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    pub fn is_v6(&self) -> bool {
        self.len == 16
    }

    /// From `AttackEvent` bytes (any length up to 16 is kept as it is, so
    /// an encoder test can show what a wrong length becomes).
    pub fn from_bytes(b: &[u8]) -> Addr {
        let mut a = Addr::default();
        let n = b.len().min(16);
        a.bytes[..n].copy_from_slice(&b[..n]);
        a.len = n as u8;
        a
    }

    /// As text (`None` when not 4 or 16 bytes).
    pub fn to_ip(self) -> Option<IpAddr> {
        match self.len {
            4 => Some(IpAddr::from([
                self.bytes[0],
                self.bytes[1],
                self.bytes[2],
                self.bytes[3],
            ])),
            16 => Some(IpAddr::from(self.bytes)),
            _ => None,
        }
    }
}

/// IPv4 or IPv6 text (IPv4-mapped IPv6 stays 16 bytes, as written).
pub fn parse_ip(text: &str) -> Result<Addr, Rejection> {
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Ok(Addr::from_bytes(&a.octets())),
        Ok(IpAddr::V6(a)) => Ok(Addr::from_bytes(&a.octets())),
        Err(_) => Err(Rejection::BadAddress),
    }
}

/// An optional address field: absent stays empty (validation then says
/// `missing_src_ip` / `missing_dst_ip`).
pub fn opt_ip(text: Option<&Cow<'_, str>>) -> Result<Addr, Rejection> {
    text.map_or(Ok(Addr::default()), |t| parse_ip(t))
}

/// A protocol as the formats write it: a name (case-insensitive: `TCP`,
/// `udp`, `ICMP`, `IPv6-ICMP`, `icmpv6`, `SCTP`, `GRE`, `ESP`, `AH`, `IGMP`,
/// `IPIP`), or its IANA number as text. `icmp` on IPv6 addresses is ICMPv6
/// (58): Zeek writes `icmp` for both. Zeek's `unknown_transport` is 0.
pub fn protocol_number(name: &str, v6: bool) -> Result<u32, Rejection> {
    if !name.is_empty() && name.len() <= 3 && name.bytes().all(|b| b.is_ascii_digit()) {
        return name.parse().map_err(|_| Rejection::UnknownProtocol);
    }
    let known: &[(&str, u32)] = &[
        ("tcp", 6),
        ("udp", 17),
        ("icmp", 1),
        ("ipv6-icmp", 58),
        ("icmpv6", 58),
        ("icmp6", 58),
        ("sctp", 132),
        ("gre", 47),
        ("esp", 50),
        ("ah", 51),
        ("igmp", 2),
        ("ipip", 4),
        ("unknown_transport", 0),
    ];
    match known.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
        Some((_, 1)) if v6 => Ok(58),
        Some(&(_, number)) => Ok(number),
        None => Err(Rejection::UnknownProtocol),
    }
}

/// The name the encoders write for a protocol number (Suricata's spelling;
/// Zeek's is the lower case of the first three). Unnamed numbers are
/// written as numbers.
pub fn protocol_name(number: u32) -> Cow<'static, str> {
    match number {
        6 => "TCP".into(),
        17 => "UDP".into(),
        1 => "ICMP".into(),
        58 => "IPv6-ICMP".into(),
        132 => "SCTP".into(),
        47 => "GRE".into(),
        n => n.to_string().into(),
    }
}

/// MITRE ATT&CK techniques (OCSF `attacks[].technique.uid`, ECS
/// `threat.technique.id`) that name an attack kind; sub-techniques
/// (`T1110.001`) count as their technique. Others give `None`.
pub fn kind_of_technique(id: &str) -> Option<AttackKind> {
    let base = id.split('.').next().unwrap_or(id);
    match base.to_ascii_uppercase().as_str() {
        "T1046" | "T1595" => Some(AttackKind::Scan),
        "T1498" | "T1499" => Some(AttackKind::Backscatter),
        "T1110" => Some(AttackKind::BruteForce),
        "T1190" | "T1203" | "T1210" => Some(AttackKind::Exploit),
        _ => None,
    }
}

/// The technique the encoders write for a kind (none for IDS alerts).
pub fn technique_of_kind(kind: i32) -> Option<&'static str> {
    match AttackKind::try_from(kind) {
        Ok(AttackKind::Scan) => Some("T1046"),
        Ok(AttackKind::Backscatter) => Some("T1498"),
        Ok(AttackKind::BruteForce) => Some("T1110"),
        Ok(AttackKind::Exploit) => Some("T1190"),
        _ => None,
    }
}

/// A rule id written as text (OCSF `analytic.uid`, ECS `rule.id`): its
/// value when it is a decimal `u32`, else 0 (UUIDs and names are no number).
pub fn numeric_rule_id(text: &str) -> u32 {
    text.parse().unwrap_or(0)
}

/// A JSON counter as a `u32` field; values past `u32::MAX` saturate so
/// validation refuses them (`port_out_of_range`) instead of wrapping.
pub fn saturate_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// A string or a number, as some formats write ids and protocol numbers.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum StrOrNum<'a> {
    Num(u64),
    Str(#[serde(borrow)] Cow<'a, str>),
}

/// A string or a list of strings (ECS keyword fields may be either).
#[derive(Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

impl OneOrMany<'_> {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many): (Option<&str>, &[Cow<'_, str>]) = match self {
            OneOrMany::One(s) => (Some(s), &[]),
            OneOrMany::Many(v) => (None, v),
        };
        one.into_iter().chain(many.iter().map(|s| s.as_ref()))
    }
}

/// Where a mapped event's strings live in the decoder's arena.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    pub fn get<'t>(&self, text: &'t [u8]) -> &'t [u8] {
        text.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// Writes id strings into the arena of the message being decoded.
#[derive(Debug)]
pub struct Builder<'t> {
    pub(crate) text: &'t mut Vec<u8>,
}

impl Builder<'_> {
    /// `s` copied into the arena.
    pub fn str(&mut self, s: &str) -> Span {
        let start = self.text.len() as u32;
        self.text.extend_from_slice(s.as_bytes());
        Span {
            start,
            end: self.text.len() as u32,
        }
    }

    /// Parts joined without the formatting machinery (the EVE hot path).
    pub fn join(&mut self, parts: &[IdPart<'_>]) -> Span {
        let start = self.text.len() as u32;
        for part in parts {
            match part {
                IdPart::Str(s) => self.text.extend_from_slice(s.as_bytes()),
                IdPart::Num(n) => push_u64(self.text, *n),
                IdPart::OptNum(Some(n)) => push_u64(self.text, *n),
                IdPart::OptNum(None) => {}
            }
        }
        Span {
            start,
            end: self.text.len() as u32,
        }
    }

    /// `s` when present (absent: empty).
    pub fn opt(&mut self, s: Option<&Cow<'_, str>>) -> Span {
        s.map_or(Span::default(), |s| self.str(s))
    }
}

/// A piece of an id [`Builder::join`] writes.
#[derive(Clone, Copy, Debug)]
pub enum IdPart<'s> {
    Str(&'s str),
    Num(u64),
    /// A number, or nothing.
    OptNum(Option<u64>),
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A JSON string literal of `s` (quotes included), for the encoders.
pub fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_ip("192.0.2.1").unwrap().as_slice(), &[192, 0, 2, 1]);
        let v6 = parse_ip("2001:db8::1").unwrap();
        assert_eq!(v6.as_slice().len(), 16);
        assert_eq!(v6.as_slice()[..4], [0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(v6.as_slice()[15], 1);
        assert_eq!(parse_ip("::ffff:192.0.2.1").unwrap().as_slice().len(), 16);
        for bad in [
            "",
            "192.0.2",
            "192.0.2.256",
            "fe80::1%eth0",
            "host.example",
            " 1.2.3.4",
        ] {
            assert_eq!(parse_ip(bad), Err(Rejection::BadAddress), "{bad}");
        }
    }

    #[test]
    fn protocols() {
        assert_eq!(protocol_number("TCP", false), Ok(6));
        assert_eq!(protocol_number("udp", true), Ok(17));
        assert_eq!(protocol_number("icmp", false), Ok(1));
        assert_eq!(protocol_number("icmp", true), Ok(58));
        assert_eq!(protocol_number("IPv6-ICMP", true), Ok(58));
        assert_eq!(protocol_number("047", false), Ok(47));
        assert_eq!(protocol_number("unknown_transport", false), Ok(0));
        assert_eq!(
            protocol_number("carrier-pigeon", false),
            Err(Rejection::UnknownProtocol)
        );
        assert_eq!(protocol_number("", false), Err(Rejection::UnknownProtocol));
        for n in [1, 6, 17, 47, 58, 132, 0, 255] {
            let v6 = n == 58;
            assert_eq!(protocol_number(&protocol_name(n), v6), Ok(n), "{n}");
        }
    }

    #[test]
    fn techniques_name_kinds_both_ways() {
        assert_eq!(kind_of_technique("T1110.001"), Some(AttackKind::BruteForce));
        assert_eq!(kind_of_technique("t1046"), Some(AttackKind::Scan));
        assert_eq!(kind_of_technique("T1059"), None);
        for kind in 1..=5 {
            let back = technique_of_kind(kind).and_then(kind_of_technique);
            if kind == AttackKind::IdsAlert as i32 {
                assert_eq!(back, None);
            } else {
                assert_eq!(back.map(|k| k as i32), Some(kind));
            }
        }
    }
}
