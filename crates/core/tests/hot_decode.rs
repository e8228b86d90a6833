//! `decode_batch` agrees with prost on every input: same ok-vs-error, same values.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use prost::Message;
use rampart_core::event::{DecodeError, EventView, decode_batch};
use rampart_proto::v1::{AttackEvent, AttackEventBatch};

fn same(v: &EventView<'_>, e: &AttackEvent) -> bool {
    v.time_ms == e.time_ms
        && v.src_ip == e.src_ip.as_slice()
        && v.dst_ip == e.dst_ip.as_slice()
        && v.src_port == e.src_port
        && v.dst_port == e.dst_port
        && v.protocol == e.protocol
        && v.kind == e.kind
        && v.rule_id == e.rule_id
        && v.event_id == e.event_id.as_bytes()
        && v.packets == e.packets
        && v.bytes == e.bytes
        && v.sensor_id == e.sensor_id.as_bytes()
}

/// Decodes with both and asserts agreement.
fn agree(payload: &[u8]) -> Result<(), TestCaseError> {
    let mut out = Vec::new();
    let ours = decode_batch(payload, usize::MAX, &mut out);
    let theirs = AttackEventBatch::decode(payload);
    match (&ours, &theirs) {
        (Ok(()), Ok(b)) => {
            prop_assert_eq!(out.len(), b.events.len());
            for (v, e) in out.iter().zip(&b.events) {
                prop_assert!(same(v, e), "{:?} != {:?}", v, e);
            }
        }
        (Err(DecodeError::Malformed(_)), Err(_)) => {}
        _ => prop_assert!(
            false,
            "ours {:?} vs prost {:?} on {:02x?}",
            ours,
            theirs,
            payload
        ),
    }
    Ok(())
}

fn event() -> impl Strategy<Value = AttackEvent> {
    (
        (
            any::<i64>(),
            prop::collection::vec(any::<u8>(), 0..20),
            prop::collection::vec(any::<u8>(), 0..20),
        ),
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<i32>(),
            any::<u32>(),
        ),
        (".{0,12}", any::<u64>(), any::<u64>(), ".{0,12}"),
    )
        .prop_map(
            |((t, s, d), (sp, dp, pr, k, r), (eid, p, b, sid))| AttackEvent {
                time_ms: t,
                src_ip: s,
                dst_ip: d,
                src_port: sp,
                dst_port: dp,
                protocol: pr,
                kind: k,
                rule_id: r,
                event_id: eid,
                packets: p,
                bytes: b,
                sensor_id: sid,
            },
        )
}

fn batch() -> impl Strategy<Value = AttackEventBatch> {
    prop::collection::vec(event(), 0..6).prop_map(|events| AttackEventBatch { events })
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A "token soup": keys with small tags and any wire type, then a payload
/// shaped for that wire type (sometimes wrong), nested in events or not.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let tok = (
        0u64..16,
        0u64..8,
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..12),
        any::<bool>(),
    );
    prop::collection::vec(tok, 0..12).prop_map(|toks| {
        let mut inner = Vec::new();
        let mut outer = Vec::new();
        for (tag, wt, v, bytes, nest) in toks {
            let out = if nest { &mut inner } else { &mut outer };
            varint((tag << 3) | wt, out);
            match wt {
                0 => varint(v, out),
                1 => out.extend_from_slice(&v.to_le_bytes()),
                2 => {
                    varint(bytes.len() as u64, out);
                    out.extend_from_slice(&bytes);
                }
                5 => out.extend_from_slice(&(v as u32).to_le_bytes()),
                _ => out.extend_from_slice(&bytes[..bytes.len() % 3]),
            }
        }
        let mut p = Vec::new();
        varint(0x0a, &mut p);
        varint(inner.len() as u64, &mut p);
        p.extend_from_slice(&inner);
        p.extend_from_slice(&outer);
        p
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn prost_encoded_batches_decode_equal(b in batch()) {
        let bytes = b.encode_to_vec();
        let mut out = Vec::new();
        decode_batch(&bytes, usize::MAX, &mut out).unwrap();
        prop_assert_eq!(out.len(), b.events.len());
        for (v, e) in out.iter().zip(&b.events) {
            prop_assert!(same(v, e));
        }
    }

    #[test]
    fn arbitrary_bytes_agree_with_prost(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        agree(&bytes)?;
    }

    #[test]
    fn mutated_encodings_agree_with_prost(
        b in batch(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let mut bytes = b.encode_to_vec();
        for (at, byte, op) in edits {
            if bytes.is_empty() {
                bytes.push(byte);
                continue;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => bytes.truncate(i),
            }
        }
        agree(&bytes)?;
    }

    #[test]
    fn token_soup_agrees_with_prost(p in soup()) {
        agree(&p)?;
    }

    #[test]
    fn too_many_events(b in batch(), max in 0usize..6) {
        let bytes = b.encode_to_vec();
        let mut out = Vec::new();
        let r = decode_batch(&bytes, max, &mut out);
        if b.events.len() > max {
            prop_assert_eq!(r, Err(DecodeError::TooManyEvents { limit: max }));
        } else {
            prop_assert_eq!(r, Ok(()));
            prop_assert_eq!(out.len(), b.events.len());
        }
    }
}

#[test]
fn repeated_fields_last_wins_and_each_string_checked() {
    // event { time_ms: 1, time_ms: 2, src_ip: [1], src_ip: [2,3], event_id: "a", event_id: "b" }
    let ev = [
        0x08, 1, 0x08, 2, 0x12, 1, 1, 0x12, 2, 2, 3, 0x4a, 1, b'a', 0x4a, 1, b'b',
    ];
    let mut p = vec![0x0a, ev.len() as u8];
    p.extend_from_slice(&ev);
    agree(&p).unwrap();
    let mut out = Vec::new();
    decode_batch(&p, 10, &mut out).unwrap();
    assert_eq!(
        (out[0].time_ms, out[0].src_ip, out[0].event_id),
        (2, &[2u8, 3][..], &b"b"[..])
    );
    // an invalid UTF-8 occurrence fails even when a later one is valid
    let ev = [0x4a, 1, 0xff, 0x4a, 1, b'b'];
    let mut p = vec![0x0a, ev.len() as u8];
    p.extend_from_slice(&ev);
    agree(&p).unwrap();
    assert!(decode_batch(&p, 10, &mut out).is_err());
    // truncation of 32-bit fields, and enum as any i32
    let ev = [
        0x20, 0x80, 0x80, 0x80, 0x80, 0x10, 0x38, 0xff, 0xff, 0xff, 0xff, 0x0f,
    ];
    let mut p = vec![0x0a, ev.len() as u8];
    p.extend_from_slice(&ev);
    agree(&p).unwrap();
}

#[test]
fn deep_groups_agree_with_prost() {
    for depth in 95..105 {
        for inside in [false, true] {
            let mut g = Vec::new();
            g.extend(std::iter::repeat_n(0x7bu8, depth)); // start group, tag 15
            g.extend([0x08, 0x01]); // a varint inside the innermost group
            g.extend(std::iter::repeat_n(0x7cu8, depth));
            let p = if inside {
                let mut p = vec![0x0a];
                varint(g.len() as u64, &mut p);
                p.extend_from_slice(&g);
                p
            } else {
                g
            };
            agree(&p).unwrap();
        }
    }
}
