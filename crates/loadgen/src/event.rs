//! The generator's compact event and its protobuf encoding.
//!
//! [`Event`] holds fixed-size fields (no allocation per event); [`Event::encode`]
//! writes the exact bytes prost writes for the equivalent
//! `rampart_proto::v1::AttackEvent` (fields in tag order, defaults omitted), which
//! a test holds it to.

use std::net::IpAddr;

use rampart_proto::v1::{AttackEvent, AttackKind};

/// An IP address as the bytes that go on the wire (4 or 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpBytes {
    len: u8,
    bytes: [u8; 16],
}

impl IpBytes {
    /// An IPv4 address.
    pub fn v4(a: [u8; 4]) -> IpBytes {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&a);
        IpBytes { len: 4, bytes }
    }

    /// An IPv6 address.
    pub fn v6(a: [u8; 16]) -> IpBytes {
        IpBytes { len: 16, bytes: a }
    }

    /// The wire bytes (4 or 16 long).
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// As a std address.
    pub fn to_ip(&self) -> IpAddr {
        if self.len == 4 {
            IpAddr::from([self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]])
        } else {
            IpAddr::from(self.bytes)
        }
    }
}

/// One generated attack event (a valid `AttackEvent`, by construction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Event time, ms since the Unix epoch.
    pub time_ms: i64,
    pub src_ip: IpBytes,
    pub dst_ip: IpBytes,
    pub src_port: u16,
    pub dst_port: u16,
    /// IANA protocol number.
    pub protocol: u8,
    pub kind: AttackKind,
    /// 0 when none.
    pub rule_id: u32,
    /// Rendered as 16 lower-case hex digits when present.
    pub event_id: Option<u64>,
    pub packets: u64,
    pub bytes: u64,
    /// Index of the sensor name (see `World::sensor_name`).
    pub sensor: u16,
}

/// Upper bound of one encoded event (without the batch field header).
pub(crate) const MAX_EVENT_LEN: usize = 128;
/// Sensor names up to this length are encoded in the stack buffer (106 + 2 + 20 <= 128).
const SHORT_NAME: usize = 20;

#[inline]
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// A bounds-checked cursor over a stack buffer (no capacity checks per byte).
struct Enc {
    buf: [u8; MAX_EVENT_LEN],
    pos: usize,
}

impl Enc {
    #[inline]
    fn byte(&mut self, b: u8) {
        if let Some(x) = self.buf.get_mut(self.pos) {
            *x = b;
            self.pos += 1;
        }
    }

    #[inline]
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    #[inline]
    fn uint(&mut self, tag: u8, v: u64) {
        if v != 0 {
            self.byte(tag);
            self.varint(v);
        }
    }

    #[inline]
    fn bytes(&mut self, tag: u8, b: &[u8]) {
        if !b.is_empty() {
            self.byte(tag);
            self.varint(b.len() as u64);
            if let Some(dst) = self.buf.get_mut(self.pos..self.pos + b.len()) {
                dst.copy_from_slice(b);
                self.pos += b.len();
            }
        }
    }
}

pub(crate) fn hex16(v: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = HEX[((v >> (60 - 4 * i)) & 0xF) as usize];
    }
    out
}

impl Event {
    /// Appends the protobuf encoding of this event (an `AttackEvent` message body).
    /// `sensor_name` is the name of `self.sensor`.
    #[inline]
    pub fn encode(&self, sensor_name: &str, buf: &mut Vec<u8>) {
        let mut e = Enc {
            buf: [0; MAX_EVENT_LEN],
            pos: 0,
        };
        e.uint(0x08, self.time_ms as u64);
        e.bytes(0x12, self.src_ip.as_slice());
        e.bytes(0x1A, self.dst_ip.as_slice());
        e.uint(0x20, u64::from(self.src_port));
        e.uint(0x28, u64::from(self.dst_port));
        e.uint(0x30, u64::from(self.protocol));
        e.uint(0x38, self.kind as i32 as i64 as u64);
        e.uint(0x40, u64::from(self.rule_id));
        if let Some(id) = self.event_id {
            e.bytes(0x4A, &hex16(id));
        }
        e.uint(0x50, self.packets);
        e.uint(0x58, self.bytes);
        // Fields above take at most 106 bytes; short sensor names fit too.
        if sensor_name.len() <= SHORT_NAME {
            e.bytes(0x62, sensor_name.as_bytes());
            // A constant-size copy compiles to a few vector stores (no memmove call).
            let start = buf.len();
            buf.extend_from_slice(&e.buf);
            buf.truncate(start + e.pos);
        } else {
            buf.extend_from_slice(e.buf.get(..e.pos).unwrap_or(&[]));
            buf.push(0x62);
            put_varint(buf, sensor_name.len() as u64);
            buf.extend_from_slice(sensor_name.as_bytes());
        }
    }

    /// Appends this event as one `events` entry of an `AttackEventBatch`
    /// (field 1, length-delimited). `scratch` is only used for events of 128
    /// bytes or more (never the case for generated ones: one length byte).
    #[inline]
    pub fn encode_batch_entry(&self, sensor_name: &str, scratch: &mut Vec<u8>, buf: &mut Vec<u8>) {
        buf.push(0x0A);
        let len_at = buf.len();
        buf.push(0);
        self.encode(sensor_name, buf);
        let len = buf.len() - len_at - 1;
        if len < 0x80 {
            if let Some(b) = buf.get_mut(len_at) {
                *b = len as u8;
            }
        } else {
            scratch.clear();
            scratch.extend_from_slice(buf.get(len_at + 1..).unwrap_or(&[]));
            buf.truncate(len_at);
            put_varint(buf, scratch.len() as u64);
            buf.extend_from_slice(scratch);
        }
    }

    /// The equivalent prost message.
    pub fn to_proto(&self, sensor_name: &str) -> AttackEvent {
        AttackEvent {
            time_ms: self.time_ms,
            src_ip: self.src_ip.as_slice().to_vec(),
            dst_ip: self.dst_ip.as_slice().to_vec(),
            src_port: u32::from(self.src_port),
            dst_port: u32::from(self.dst_port),
            protocol: u32::from(self.protocol),
            kind: self.kind as i32,
            rule_id: self.rule_id,
            event_id: self
                .event_id
                .map(|id| String::from_utf8_lossy(&hex16(id)).into_owned())
                .unwrap_or_default(),
            packets: self.packets,
            bytes: self.bytes,
            sensor_id: sensor_name.to_string(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use prost::Message;
    use rampart_proto::v1::AttackEventBatch;

    fn sample(event_id: Option<u64>, v6: bool) -> Event {
        Event {
            time_ms: 1_735_689_600_123,
            src_ip: if v6 {
                IpBytes::v6([0x24, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
            } else {
                IpBytes::v4([1, 2, 3, 4])
            },
            dst_ip: IpBytes::v4([5, 6, 7, 8]),
            src_port: 40_000,
            dst_port: 23,
            protocol: 6,
            kind: AttackKind::IdsAlert,
            rule_id: 2_024_792,
            event_id,
            packets: 3,
            bytes: 180,
            sensor: 0,
        }
    }

    #[test]
    fn encoding_equals_prost() {
        for ev in [
            sample(Some(0xdead_beef), false),
            sample(None, true),
            Event {
                src_port: 0,
                rule_id: 0,
                ..sample(None, false)
            },
        ] {
            let mut buf = Vec::new();
            ev.encode("sensor-01", &mut buf);
            assert_eq!(buf, ev.to_proto("sensor-01").encode_to_vec());
            let mut batch = Vec::new();
            let mut scratch = Vec::new();
            ev.encode_batch_entry("sensor-01", &mut scratch, &mut batch);
            ev.encode_batch_entry("sensor-01", &mut scratch, &mut batch);
            let want = AttackEventBatch {
                events: vec![ev.to_proto("sensor-01"), ev.to_proto("sensor-01")],
            };
            assert_eq!(batch, want.encode_to_vec());
            assert!(buf.len() <= MAX_EVENT_LEN);
            // A long sensor name takes the two-byte length path.
            let long = "s".repeat(200);
            let mut batch = Vec::new();
            ev.encode_batch_entry(&long, &mut scratch, &mut batch);
            let want = AttackEventBatch {
                events: vec![ev.to_proto(&long)],
            };
            assert_eq!(batch, want.encode_to_vec());
        }
    }
}
