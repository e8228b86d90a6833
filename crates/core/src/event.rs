//! Zero-copy decoding of `AttackEventBatch` payloads.
//!
//! The hot path never allocates per event: `decode_batch` fills a reusable
//! `Vec<EventView>` whose byte fields borrow from the payload. Its result equals
//! prost's decoding of the same bytes (a property test holds it to that), and it
//! never panics on any input.
//!
//! Wire rules followed, exactly as prost 0.14 applies them to these messages:
//! - a field key is a varint `<= u32::MAX`, tag `>= 1`, wire type 0..=5;
//! - varints are at most 10 bytes and the 10th byte must be `< 2` (no u64
//!   overflow); non-canonical (padded) varints are accepted;
//! - integer fields truncate the varint like prost (`as u32`, `as i32`);
//! - a known field with the wrong wire type is an error;
//! - a scalar or bytes field seen twice: the last occurrence wins; `string`
//!   fields (`event_id`, `sensor_id`) must be valid UTF-8 at every occurrence;
//! - unknown fields of every wire type are skipped, groups included (nested
//!   groups must close with their own tag; prost's recursion limit of 100 is
//!   mirrored); a stray end-group is an error;
//! - a length that runs past its enclosing message or the payload is an error.

/// One event, borrowing its byte fields from the Kafka payload.
/// Fields mirror `rampart.v1.AttackEvent`; absent fields are 0 / empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventView<'a> {
    pub time_ms: i64,
    pub src_ip: &'a [u8],
    pub dst_ip: &'a [u8],
    pub src_port: u32,
    pub dst_port: u32,
    pub protocol: u32,
    /// Raw enum number of `AttackKind` (validation rejects unknown values).
    pub kind: i32,
    pub rule_id: u32,
    pub event_id: &'a [u8],
    pub packets: u64,
    pub bytes: u64,
    pub sensor_id: &'a [u8],
}

/// Why a payload could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed protobuf: {0}")]
    Malformed(&'static str),
    #[error("batch holds more than {limit} events")]
    TooManyEvents { limit: usize },
}

/// prost's `RECURSION_LIMIT`: the decode context depth at the top level.
const RECURSION_LIMIT: u32 = 100;

const WT_VARINT: u64 = 0;
const WT_I64: u64 = 1;
const WT_LEN: u64 = 2;
const WT_SGROUP: u64 = 3;
const WT_EGROUP: u64 = 4;
const WT_I32: u64 = 5;

const fn key(tag: u64, wt: u64) -> u64 {
    (tag << 3) | wt
}

const K_TIME: u64 = key(1, WT_VARINT);
const K_SRC_IP: u64 = key(2, WT_LEN);
const K_DST_IP: u64 = key(3, WT_LEN);
const K_SRC_PORT: u64 = key(4, WT_VARINT);
const K_DST_PORT: u64 = key(5, WT_VARINT);
const K_PROTOCOL: u64 = key(6, WT_VARINT);
const K_KIND: u64 = key(7, WT_VARINT);
const K_RULE_ID: u64 = key(8, WT_VARINT);
const K_EVENT_ID: u64 = key(9, WT_LEN);
const K_PACKETS: u64 = key(10, WT_VARINT);
const K_BYTES: u64 = key(11, WT_VARINT);
const K_SENSOR_ID: u64 = key(12, WT_LEN);

fn malformed(what: &'static str) -> DecodeError {
    DecodeError::Malformed(what)
}

/// Decodes an `AttackEventBatch` into `out` (cleared first). Stops with
/// `TooManyEvents` as soon as more than `max_events` events are seen.
///
/// On error `out` holds the events decoded so far; callers must discard it.
pub fn decode_batch<'a>(
    payload: &'a [u8],
    max_events: usize,
    out: &mut Vec<EventView<'a>>,
) -> Result<(), DecodeError> {
    out.clear();
    let mut s = payload;
    while !s.is_empty() {
        let k = read_varint(&mut s)?;
        if k == key(1, WT_LEN) {
            let body = read_len(&mut s)?;
            if out.len() >= max_events {
                return Err(DecodeError::TooManyEvents { limit: max_events });
            }
            out.push(decode_event(body)?);
        } else {
            let (tag, wt) = check_key(k)?;
            if tag == 1 {
                return Err(malformed("invalid wire type"));
            }
            skip_field(wt, tag, &mut s, RECURSION_LIMIT)?;
        }
    }
    Ok(())
}

/// An `AttackEventBatch` holding exactly the events of `payload` at `indexes`
/// (ascending positions in its batch), each with its original encoded bytes:
/// the dead-letter payload of a message's rejected events. Fields of the
/// batch other than its events are not kept. `payload` must have decoded with
/// [`decode_batch`]; indexes past its events are ignored.
pub fn select_events(payload: &[u8], indexes: &[u32]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut s = payload;
    let mut index = 0u32;
    let mut wanted = indexes.iter().peekable();
    while !s.is_empty() && wanted.peek().is_some() {
        let k = read_varint(&mut s)?;
        if k == key(1, WT_LEN) {
            let body = read_len(&mut s)?;
            if wanted.peek() == Some(&&index) {
                wanted.next();
                out.push(0x0A);
                let mut len = body.len() as u64;
                while len >= 0x80 {
                    out.push((len as u8) | 0x80);
                    len >>= 7;
                }
                out.push(len as u8);
                out.extend_from_slice(body);
            }
            index += 1;
        } else {
            let (tag, wt) = check_key(k)?;
            skip_field(wt, tag, &mut s, RECURSION_LIMIT)?;
        }
    }
    Ok(out)
}

/// Decodes one `AttackEvent` message body (already delimited).
#[inline]
fn decode_event(mut s: &[u8]) -> Result<EventView<'_>, DecodeError> {
    let mut ev = EventView::default();
    while !s.is_empty() {
        let k = read_varint(&mut s)?;
        match k {
            K_TIME => ev.time_ms = read_varint(&mut s)? as i64,
            K_SRC_IP => ev.src_ip = read_len(&mut s)?,
            K_DST_IP => ev.dst_ip = read_len(&mut s)?,
            K_SRC_PORT => ev.src_port = read_varint(&mut s)? as u32,
            K_DST_PORT => ev.dst_port = read_varint(&mut s)? as u32,
            K_PROTOCOL => ev.protocol = read_varint(&mut s)? as u32,
            K_KIND => ev.kind = read_varint(&mut s)? as i32,
            K_RULE_ID => ev.rule_id = read_varint(&mut s)? as u32,
            K_EVENT_ID => ev.event_id = read_str(&mut s)?,
            K_PACKETS => ev.packets = read_varint(&mut s)?,
            K_BYTES => ev.bytes = read_varint(&mut s)?,
            K_SENSOR_ID => ev.sensor_id = read_str(&mut s)?,
            _ => {
                let (tag, wt) = check_key(k)?;
                if (1..=12).contains(&tag) {
                    return Err(malformed("invalid wire type"));
                }
                // prost decodes the event one recursion level below the batch.
                skip_field(wt, tag, &mut s, RECURSION_LIMIT - 1)?;
            }
        }
    }
    Ok(ev)
}

/// Validates a field key as prost's `decode_key` does; returns (tag, wire type).
#[inline]
fn check_key(k: u64) -> Result<(u64, u64), DecodeError> {
    if k > u64::from(u32::MAX) {
        return Err(malformed("invalid key value"));
    }
    let wt = k & 7;
    if wt > WT_I32 {
        return Err(malformed("invalid wire type value"));
    }
    let tag = k >> 3;
    if tag == 0 {
        return Err(malformed("invalid tag value: 0"));
    }
    Ok((tag, wt))
}

/// Skips one unknown field whose key was already read; `depth` is prost's
/// remaining recursion budget (`DecodeContext::recurse_count`).
fn skip_field(wt: u64, tag: u64, s: &mut &[u8], depth: u32) -> Result<(), DecodeError> {
    if depth == 0 {
        return Err(malformed("recursion limit reached"));
    }
    let len = match wt {
        WT_VARINT => {
            read_varint(s)?;
            0
        }
        WT_I64 => 8,
        WT_LEN => read_varint(s)?,
        WT_SGROUP => loop {
            let k = read_varint(s)?;
            let (inner_tag, inner_wt) = check_key(k)?;
            if inner_wt == WT_EGROUP {
                if inner_tag != tag {
                    return Err(malformed("unexpected end group tag"));
                }
                break 0;
            }
            skip_field(inner_wt, inner_tag, s, depth - 1)?;
        },
        WT_EGROUP => return Err(malformed("unexpected end group tag")),
        WT_I32 => 4,
        _ => return Err(malformed("invalid wire type value")),
    };
    advance(s, len)
}

#[inline]
fn advance(s: &mut &[u8], len: u64) -> Result<(), DecodeError> {
    let n = usize::try_from(len).map_err(|_| malformed("buffer underflow"))?;
    match s.get(n..) {
        Some(rest) => {
            *s = rest;
            Ok(())
        }
        None => Err(malformed("buffer underflow")),
    }
}

/// Reads a length-delimited payload.
#[inline(always)]
fn read_len<'a>(s: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let len = read_varint(s)?;
    let n = usize::try_from(len).map_err(|_| malformed("buffer underflow"))?;
    match s.split_at_checked(n) {
        Some((body, rest)) => {
            *s = rest;
            Ok(body)
        }
        None => Err(malformed("buffer underflow")),
    }
}

/// Reads a length-delimited `string` field: must be UTF-8, as prost demands.
#[inline]
fn read_str<'a>(s: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let b = read_len(s)?;
    if b.is_ascii() || std::str::from_utf8(b).is_ok() {
        Ok(b)
    } else {
        Err(malformed("invalid string value: data is not UTF-8 encoded"))
    }
}

#[inline(always)]
fn read_varint(s: &mut &[u8]) -> Result<u64, DecodeError> {
    if let Some((&b, rest)) = s.split_first()
        && b < 0x80
    {
        *s = rest;
        return Ok(u64::from(b));
    }
    if let Some(arr) = s.first_chunk::<10>() {
        // Unrolled, bounds-check-free decode when 10 bytes are available.
        let mut v: u64 = 0;
        for (i, &b) in arr.iter().enumerate() {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if i == 9 && b >= 2 {
                    return Err(malformed("invalid varint"));
                }
                *s = s.get(i + 1..).unwrap_or_default();
                return Ok(v);
            }
        }
        return Err(malformed("invalid varint"));
    }
    read_varint_slow(s)
}

#[inline(never)]
fn read_varint_slow(s: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut v: u64 = 0;
    for (i, &b) in s.iter().take(10).enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            if i == 9 && b >= 2 {
                return Err(malformed("invalid varint"));
            }
            *s = s.get(i + 1..).unwrap_or_default();
            return Ok(v);
        }
    }
    Err(malformed("invalid varint"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dec(p: &[u8]) -> Result<Vec<EventView<'_>>, DecodeError> {
        let mut out = Vec::new();
        decode_batch(p, usize::MAX, &mut out).map(|()| out)
    }

    #[test]
    fn empty_payload_is_empty_batch() {
        assert_eq!(dec(&[]).unwrap(), vec![]);
    }

    #[test]
    fn simple_event() {
        // event { time_ms: 5, src_ip: [1,2,3,4], kind: 2, event_id: "ab" }
        let ev = [0x08, 5, 0x12, 4, 1, 2, 3, 4, 0x38, 2, 0x4a, 2, b'a', b'b'];
        let mut p = vec![0x0a, ev.len() as u8];
        p.extend_from_slice(&ev);
        let got = dec(&p).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].time_ms, 5);
        assert_eq!(got[0].src_ip, &[1, 2, 3, 4]);
        assert_eq!(got[0].kind, 2);
        assert_eq!(got[0].event_id, b"ab");
    }

    #[test]
    fn errors() {
        assert!(dec(&[0x0a, 5, 0x08]).is_err(), "truncated length");
        assert!(dec(&[0x08, 1]).is_err(), "events with varint wire type");
        assert!(dec(&[0x0c]).is_err(), "stray end group");
        assert!(dec(&[0x0a, 3, 0x4a, 1, 0xff]).is_err(), "invalid utf8");
        let overflow = [
            0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ];
        assert!(dec(&overflow).is_err(), "varint overflow");
        let ok = [
            0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(dec(&ok).is_ok());
        // unknown group with nested field, closed properly
        assert!(dec(&[0x13, 0x08, 0x01, 0x14]).is_ok());
        assert!(
            dec(&[0x13, 0x08, 0x01, 0x1c]).is_err(),
            "mismatched end group"
        );
    }

    #[test]
    fn too_many_events() {
        let p = [0x0a, 0, 0x0a, 0, 0x0a, 0];
        let mut out = Vec::new();
        assert_eq!(
            decode_batch(&p, 2, &mut out),
            Err(DecodeError::TooManyEvents { limit: 2 })
        );
        assert!(decode_batch(&p, 3, &mut out).is_ok());
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn recursion_limit_matches_prost() {
        use prost::Message;
        for depth in [98usize, 99, 100, 101] {
            let mut p = Vec::new();
            p.extend(std::iter::repeat_n(0x13u8, depth)); // start group, tag 2
            p.extend(std::iter::repeat_n(0x14u8, depth));
            let prost_ok = crate::proto::v1::AttackEventBatch::decode(&p[..]).is_ok();
            assert_eq!(dec(&p).is_ok(), prost_ok, "depth {depth}");
        }
    }

    #[test]
    fn select_events_keeps_original_bytes() {
        use crate::proto::v1::{AttackEvent, AttackEventBatch};
        use prost::Message as _;
        let ev = |t: i64, n: usize| AttackEvent {
            time_ms: t,
            src_ip: vec![1, 2, 3, 4],
            dst_ip: vec![5; 16],
            event_id: "x".repeat(n),
            ..AttackEvent::default()
        };
        let batch = AttackEventBatch {
            events: vec![ev(1, 0), ev(2, 200), ev(3, 1), ev(4, 2)],
        };
        let mut payload = batch.encode_to_vec();
        payload.extend_from_slice(&[0x10, 0x07]); // an unknown varint field
        let picked = select_events(&payload, &[1, 3]).unwrap();
        let back = AttackEventBatch::decode(picked.as_slice()).unwrap();
        assert_eq!(back.events, vec![ev(2, 200), ev(4, 2)]);
        assert_eq!(
            picked,
            AttackEventBatch {
                events: back.events.clone()
            }
            .encode_to_vec()
        );
        assert!(select_events(&payload, &[]).unwrap().is_empty());
        assert!(select_events(&payload, &[9]).unwrap().is_empty());
    }
}
