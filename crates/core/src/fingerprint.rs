//! 128-bit event fingerprints over a configurable field list (xxh3-128).
//!
//! The chosen fields are written into a small stack buffer with an unambiguous
//! encoding (a leading form byte, integers at fixed width little-endian,
//! byte fields prefixed by their u32 length) and hashed with xxh3-128. Inputs
//! larger than the stack buffer (only possible with very long ids or a field
//! list repeating fields) are hashed by the streaming xxh3, which yields the
//! same value as the one-shot hash of the same bytes. No call allocates.

use xxhash_rust::xxh3::{Xxh3Default, xxh3_128};

use crate::event::EventView;

/// A field that can take part in the fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    EventId,
    SrcIp,
    DstIp,
    SrcPort,
    DstPort,
    Protocol,
    Kind,
    RuleId,
    /// time_ms rounded down to `time_bucket_ms`.
    TimeBucket,
    /// exact time_ms
    Time,
    SensorId,
}

/// Which fields identify an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FingerprintSpec {
    /// Default: event_id alone when it is present; otherwise src/dst address
    /// and port, protocol, kind, rule id and the time bucket.
    Auto { time_bucket_ms: i64 },
    /// Exactly these fields, in this order.
    Fields {
        fields: Vec<Field>,
        time_bucket_ms: i64,
    },
}

impl Default for FingerprintSpec {
    fn default() -> Self {
        FingerprintSpec::Auto {
            time_bucket_ms: 1000,
        }
    }
}

/// Computes fingerprints; cheap to call per event, never allocates.
#[derive(Clone, Debug)]
pub struct Fingerprinter {
    spec: FingerprintSpec,
}

impl Fingerprinter {
    /// A fingerprinter for `spec`; a `time_bucket_ms <= 0` is treated as 1.
    pub fn new(spec: FingerprintSpec) -> Self {
        let spec = match spec {
            FingerprintSpec::Auto { time_bucket_ms } => FingerprintSpec::Auto {
                time_bucket_ms: time_bucket_ms.max(1),
            },
            FingerprintSpec::Fields {
                fields,
                time_bucket_ms,
            } => FingerprintSpec::Fields {
                fields,
                time_bucket_ms: time_bucket_ms.max(1),
            },
        };
        Fingerprinter { spec }
    }

    /// The spec in use (with `time_bucket_ms` clamped to >= 1).
    pub fn spec(&self) -> &FingerprintSpec {
        &self.spec
    }

    /// The 128-bit fingerprint of `ev` under this spec.
    #[inline]
    pub fn fingerprint(&self, ev: &EventView<'_>) -> u128 {
        let len = self.encoded_len(ev);
        if len <= STACK {
            let mut b = StackBuf {
                buf: [0; STACK],
                len: 0,
            };
            self.encode(ev, &mut b);
            xxh3_128(b.buf.get(..b.len).unwrap_or_default())
        } else {
            let mut h = Xxh3Default::new();
            self.encode(ev, &mut h);
            h.digest128()
        }
    }

    /// Exact length of the encoding `encode` writes.
    #[inline(always)]
    fn encoded_len(&self, ev: &EventView<'_>) -> usize {
        match &self.spec {
            FingerprintSpec::Auto { .. } => {
                if ev.event_id.is_empty() {
                    1 + 4 + ev.src_ip.len() + 4 + ev.dst_ip.len() + 5 * 4 + 8
                } else {
                    1 + 4 + ev.event_id.len()
                }
            }
            FingerprintSpec::Fields { fields, .. } => {
                let mut len = 1;
                for f in fields {
                    len += match f {
                        Field::EventId => 4 + ev.event_id.len(),
                        Field::SrcIp => 4 + ev.src_ip.len(),
                        Field::DstIp => 4 + ev.dst_ip.len(),
                        Field::SensorId => 4 + ev.sensor_id.len(),
                        Field::TimeBucket | Field::Time => 8,
                        Field::SrcPort
                        | Field::DstPort
                        | Field::Protocol
                        | Field::Kind
                        | Field::RuleId => 4,
                    };
                }
                len
            }
        }
    }

    /// Writes the unambiguous encoding of the spec's fields.
    #[inline(always)]
    fn encode<S: Sink>(&self, ev: &EventView<'_>, w: &mut S) {
        match &self.spec {
            FingerprintSpec::Auto { time_bucket_ms } => {
                if ev.event_id.is_empty() {
                    w.put(&[FORM_AUTO_TUPLE]);
                    w.bytes(ev.src_ip);
                    w.bytes(ev.dst_ip);
                    w.put(&ev.src_port.to_le_bytes());
                    w.put(&ev.dst_port.to_le_bytes());
                    w.put(&ev.protocol.to_le_bytes());
                    w.put(&ev.kind.to_le_bytes());
                    w.put(&ev.rule_id.to_le_bytes());
                    w.put(&ev.time_ms.div_euclid(*time_bucket_ms).to_le_bytes());
                } else {
                    w.put(&[FORM_AUTO_EVENT_ID]);
                    w.bytes(ev.event_id);
                }
            }
            FingerprintSpec::Fields {
                fields,
                time_bucket_ms,
            } => {
                w.put(&[FORM_FIELDS]);
                for f in fields {
                    match f {
                        Field::EventId => w.bytes(ev.event_id),
                        Field::SrcIp => w.bytes(ev.src_ip),
                        Field::DstIp => w.bytes(ev.dst_ip),
                        Field::SrcPort => w.put(&ev.src_port.to_le_bytes()),
                        Field::DstPort => w.put(&ev.dst_port.to_le_bytes()),
                        Field::Protocol => w.put(&ev.protocol.to_le_bytes()),
                        Field::Kind => w.put(&ev.kind.to_le_bytes()),
                        Field::RuleId => w.put(&ev.rule_id.to_le_bytes()),
                        Field::TimeBucket => {
                            w.put(&ev.time_ms.div_euclid(*time_bucket_ms).to_le_bytes())
                        }
                        Field::Time => w.put(&ev.time_ms.to_le_bytes()),
                        Field::SensorId => w.bytes(ev.sensor_id),
                    }
                }
            }
        }
    }
}

/// Form bytes: keep the three encodings apart (domain separation).
const FORM_AUTO_EVENT_ID: u8 = 1;
const FORM_AUTO_TUPLE: u8 = 2;
const FORM_FIELDS: u8 = 3;

/// Stack buffer size; covers the IPv6 tuple (69 bytes) and ids up to 123 bytes.
const STACK: usize = 128;

trait Sink {
    fn put(&mut self, b: &[u8]);
    #[inline(always)]
    fn bytes(&mut self, b: &[u8]) {
        // Lengths above u32::MAX cannot come from a protobuf payload (< 4 GiB).
        self.put(&(b.len() as u32).to_le_bytes());
        self.put(b);
    }
}

struct StackBuf {
    buf: [u8; STACK],
    len: usize,
}

impl Sink for StackBuf {
    #[inline(always)]
    fn put(&mut self, b: &[u8]) {
        // `len` was sized beforehand; `get_mut` keeps this panic-free anyway.
        if let Some(dst) = self.buf.get_mut(self.len..self.len + b.len()) {
            dst.copy_from_slice(b);
            self.len += b.len();
        }
    }
}

impl Sink for Xxh3Default {
    fn put(&mut self, b: &[u8]) {
        self.update(b);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn base() -> EventView<'static> {
        EventView {
            time_ms: 1_700_000_000_123,
            src_ip: &[192, 0, 2, 1],
            dst_ip: &[198, 51, 100, 7],
            src_port: 40000,
            dst_port: 22,
            protocol: 6,
            kind: 1,
            rule_id: 9,
            event_id: b"",
            packets: 1,
            bytes: 60,
            sensor_id: b"s1",
        }
    }

    #[test]
    fn auto_tuple_fields_matter() {
        let f = Fingerprinter::new(FingerprintSpec::default());
        let b = base();
        let fp = f.fingerprint(&b);
        assert_eq!(fp, f.fingerprint(&base()));
        // Not part of the tuple: packets, bytes, sensor, time within the bucket.
        assert_eq!(
            fp,
            f.fingerprint(&EventView {
                packets: 9,
                bytes: 1,
                sensor_id: b"x",
                ..b
            })
        );
        assert_eq!(
            fp,
            f.fingerprint(&EventView {
                time_ms: 1_700_000_000_999,
                ..b
            })
        );
        let changed = [
            EventView {
                src_ip: &[192, 0, 2, 2],
                ..b
            },
            EventView {
                dst_ip: &[198, 51, 100, 8],
                ..b
            },
            EventView {
                src_port: 40001,
                ..b
            },
            EventView { dst_port: 23, ..b },
            EventView { protocol: 17, ..b },
            EventView { kind: 2, ..b },
            EventView { rule_id: 10, ..b },
            EventView {
                time_ms: 1_700_000_001_000,
                ..b
            },
            EventView {
                event_id: b"x",
                ..b
            },
        ];
        let mut seen = std::collections::HashSet::from([fp]);
        for ev in changed {
            assert!(seen.insert(f.fingerprint(&ev)), "{ev:?}");
        }
    }

    #[test]
    fn auto_event_id_alone() {
        let f = Fingerprinter::new(FingerprintSpec::default());
        let a = EventView {
            event_id: b"abc",
            ..base()
        };
        let b = EventView {
            event_id: b"abc",
            src_port: 1,
            time_ms: 5,
            ..base()
        };
        assert_eq!(f.fingerprint(&a), f.fingerprint(&b));
        assert_ne!(
            f.fingerprint(&a),
            f.fingerprint(&EventView {
                event_id: b"abd",
                ..a
            })
        );
    }

    #[test]
    fn ip_boundaries_are_unambiguous() {
        let f = Fingerprinter::new(FingerprintSpec::default());
        let a = EventView {
            src_ip: &[1, 2, 3, 4, 5],
            dst_ip: &[6, 7, 8],
            ..base()
        };
        let b = EventView {
            src_ip: &[1, 2, 3, 4],
            dst_ip: &[5, 6, 7, 8],
            ..base()
        };
        assert_ne!(f.fingerprint(&a), f.fingerprint(&b));
    }

    #[test]
    fn fields_spec_and_long_inputs() {
        let spec = FingerprintSpec::Fields {
            fields: vec![Field::SensorId, Field::Time],
            time_bucket_ms: 0,
        };
        let f = Fingerprinter::new(spec);
        let b = base();
        assert_eq!(
            f.fingerprint(&b),
            f.fingerprint(&EventView { src_port: 1, ..b })
        );
        assert_ne!(
            f.fingerprint(&b),
            f.fingerprint(&EventView {
                time_ms: b.time_ms + 1,
                ..b
            })
        );
        // A long id goes through the streaming path; equal to the one-shot hash.
        let long = vec![b'z'; 1000];
        let ev = EventView {
            event_id: &long,
            ..b
        };
        let auto = Fingerprinter::new(FingerprintSpec::default());
        let mut bytes = vec![FORM_AUTO_EVENT_ID];
        bytes.extend_from_slice(&1000u32.to_le_bytes());
        bytes.extend_from_slice(&long);
        assert_eq!(auto.fingerprint(&ev), xxh3_128(&bytes));
        // Bucket guard: time_bucket_ms 0 does not panic, acts as 1.
        let z = Fingerprinter::new(FingerprintSpec::Auto { time_bucket_ms: 0 });
        assert_ne!(
            z.fingerprint(&b),
            z.fingerprint(&EventView {
                time_ms: b.time_ms + 1,
                ..b
            })
        );
    }
}
