//! Validation of decoded events, with a bounded set of rejection reasons.
//!
//! Accounting is per event: a message that does not decode, holds no event or
//! too many is rejected whole (`MalformedProtobuf`, `EmptyBatch`,
//! `BatchTooLarge`); otherwise each event is judged on its own and only the
//! invalid ones are rejected, the valid ones are aggregated.
//!
//! "Now" is a *trusted* time, never a timestamp the producer chose: the
//! broker's LogAppendTime when the topic uses it, otherwise the partition's
//! ingest clock recorded in the checkpoint (see `ingest`), so a replay judges
//! every event against the same "now".

use crate::event::{DecodeError, EventView};
use crate::proto::v1::AttackKind;

/// Every reason an input message can be rejected. `as_str()` values are the
/// `reason` label of `rampart_discarded_events_total` and the DLQ header; the
/// set is closed so label cardinality stays bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rejection {
    MalformedProtobuf,
    BatchTooLarge,
    EmptyBatch,
    MissingTime,
    TimeInFuture,
    TimeTooOld,
    MissingSrcIp,
    BadSrcIpLength,
    MissingDstIp,
    BadDstIpLength,
    PortOutOfRange,
    ProtocolOutOfRange,
    UnknownKind,
    FieldTooLong,
    // Reasons of one JSON document (`rampart-formats`), judged before the
    // event exists; the document alone is dead-lettered.
    /// Not valid JSON (or not UTF-8).
    MalformedJson,
    /// A field the mapping reads has another JSON type (a port as a string,
    /// the document not an object).
    WrongFieldType,
    /// A field the mapping needs is absent (e.g. EVE's `event_type`).
    MissingField,
    /// A time that does not parse (or has no time zone).
    BadTimestamp,
    /// An address that is not IPv4 or IPv6 text.
    BadAddress,
    /// A protocol name that is not known and not a number.
    UnknownProtocol,
}

impl Rejection {
    pub const ALL: [Rejection; 20] = [
        Rejection::MalformedProtobuf,
        Rejection::BatchTooLarge,
        Rejection::EmptyBatch,
        Rejection::MissingTime,
        Rejection::TimeInFuture,
        Rejection::TimeTooOld,
        Rejection::MissingSrcIp,
        Rejection::BadSrcIpLength,
        Rejection::MissingDstIp,
        Rejection::BadDstIpLength,
        Rejection::PortOutOfRange,
        Rejection::ProtocolOutOfRange,
        Rejection::UnknownKind,
        Rejection::FieldTooLong,
        Rejection::MalformedJson,
        Rejection::WrongFieldType,
        Rejection::MissingField,
        Rejection::BadTimestamp,
        Rejection::BadAddress,
        Rejection::UnknownProtocol,
    ];

    /// snake_case name, stable: used as metric label and DLQ header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::MalformedProtobuf => "malformed_protobuf",
            Rejection::BatchTooLarge => "batch_too_large",
            Rejection::EmptyBatch => "empty_batch",
            Rejection::MissingTime => "missing_time",
            Rejection::TimeInFuture => "time_in_future",
            Rejection::TimeTooOld => "time_too_old",
            Rejection::MissingSrcIp => "missing_src_ip",
            Rejection::BadSrcIpLength => "bad_src_ip_length",
            Rejection::MissingDstIp => "missing_dst_ip",
            Rejection::BadDstIpLength => "bad_dst_ip_length",
            Rejection::PortOutOfRange => "port_out_of_range",
            Rejection::ProtocolOutOfRange => "protocol_out_of_range",
            Rejection::UnknownKind => "unknown_kind",
            Rejection::FieldTooLong => "field_too_long",
            Rejection::MalformedJson => "malformed_json",
            Rejection::WrongFieldType => "wrong_field_type",
            Rejection::MissingField => "missing_field",
            Rejection::BadTimestamp => "bad_timestamp",
            Rejection::BadAddress => "bad_address",
            Rejection::UnknownProtocol => "unknown_protocol",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&DecodeError> for Rejection {
    /// `Malformed` -> `MalformedProtobuf`, `TooManyEvents` -> `BatchTooLarge`.
    fn from(e: &DecodeError) -> Self {
        match e {
            DecodeError::Malformed(_) => Rejection::MalformedProtobuf,
            DecodeError::TooManyEvents { .. } => Rejection::BatchTooLarge,
        }
    }
}

/// Limits applied by `validate`. Defaults are documented on each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Max events in one batch (default 100_000).
    pub max_batch_events: usize,
    /// Max event time ahead of the trusted now (default 5 min).
    pub max_future_ms: i64,
    /// Max event time behind the trusted now (default 7 days).
    pub max_past_ms: i64,
    /// Max length of event_id / sensor_id (default 256 bytes).
    pub max_id_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch_events: 100_000,
            max_future_ms: 5 * 60 * 1000,
            max_past_ms: 7 * 24 * 3600 * 1000,
            max_id_len: 256,
        }
    }
}

/// Checks one event. `trusted_now_ms` is the trusted time of its message (see
/// the module doc); when it is `None` the future/past checks are skipped.
///
/// Checks run in this order and the first failure is returned: time present
/// (`> 0`), not more than `max_future_ms` ahead of / `max_past_ms` behind the
/// trusted now, source and destination IP present and 4 or 16 bytes, ports
/// `<= 65535`, protocol `<= 255`, `kind` a known `AttackKind` (0, unspecified,
/// is accepted), `event_id` / `sensor_id` at most `max_id_len` bytes.
#[inline]
pub fn validate(
    ev: &EventView<'_>,
    trusted_now_ms: Option<i64>,
    limits: &Limits,
) -> Result<(), Rejection> {
    if ev.time_ms <= 0 {
        return Err(Rejection::MissingTime);
    }
    if let Some(now) = trusted_now_ms {
        if ev.time_ms > now.saturating_add(limits.max_future_ms) {
            return Err(Rejection::TimeInFuture);
        }
        if ev.time_ms < now.saturating_sub(limits.max_past_ms) {
            return Err(Rejection::TimeTooOld);
        }
    }
    match ev.src_ip.len() {
        4 | 16 => {}
        0 => return Err(Rejection::MissingSrcIp),
        _ => return Err(Rejection::BadSrcIpLength),
    }
    match ev.dst_ip.len() {
        4 | 16 => {}
        0 => return Err(Rejection::MissingDstIp),
        _ => return Err(Rejection::BadDstIpLength),
    }
    if ev.src_port > 65535 || ev.dst_port > 65535 {
        return Err(Rejection::PortOutOfRange);
    }
    if ev.protocol > 255 {
        return Err(Rejection::ProtocolOutOfRange);
    }
    if AttackKind::try_from(ev.kind).is_err() {
        return Err(Rejection::UnknownKind);
    }
    if ev.event_id.len() > limits.max_id_len || ev.sensor_id.len() > limits.max_id_len {
        return Err(Rejection::FieldTooLong);
    }
    Ok(())
}

/// The whole-message checks of a decoded batch: an empty batch
/// (`EmptyBatch`) or more than `max_batch_events` events (`BatchTooLarge`).
#[inline]
pub fn validate_message(events: &[EventView<'_>], limits: &Limits) -> Result<(), Rejection> {
    if events.is_empty() {
        return Err(Rejection::EmptyBatch);
    }
    if events.len() > limits.max_batch_events {
        return Err(Rejection::BatchTooLarge);
    }
    Ok(())
}

/// `validate_message`, then the reason of the first invalid event: whether
/// a message is accepted *whole* (the rejection a one-event message gets).
pub fn validate_batch(
    events: &[EventView<'_>],
    trusted_now_ms: Option<i64>,
    limits: &Limits,
) -> Result<(), Rejection> {
    validate_message(events, limits)?;
    events
        .iter()
        .try_for_each(|ev| validate(ev, trusted_now_ms, limits))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn good() -> EventView<'static> {
        EventView {
            time_ms: NOW,
            src_ip: &[192, 0, 2, 1],
            dst_ip: &[0u8; 16],
            src_port: 65535,
            dst_port: 22,
            protocol: 255,
            kind: 5,
            rule_id: 7,
            event_id: b"e1",
            packets: 1,
            bytes: 60,
            sensor_id: b"s1",
        }
    }

    fn check(ev: EventView<'_>) -> Result<(), Rejection> {
        validate(&ev, Some(NOW), &Limits::default())
    }

    #[test]
    fn good_event_passes() {
        assert_eq!(check(good()), Ok(()));
        assert_eq!(
            check(EventView { kind: 0, ..good() }),
            Ok(()),
            "unspecified kind is accepted"
        );
        let l = Limits::default();
        assert_eq!(
            check(EventView {
                time_ms: NOW + l.max_future_ms,
                ..good()
            }),
            Ok(())
        );
        assert_eq!(
            check(EventView {
                time_ms: NOW - l.max_past_ms,
                ..good()
            }),
            Ok(())
        );
        let long = [b'x'; 256];
        assert_eq!(
            check(EventView {
                event_id: &long,
                sensor_id: &long,
                ..good()
            }),
            Ok(())
        );
    }

    #[test]
    fn every_reason() {
        use Rejection::*;
        let l = Limits::default();
        let long = [b'x'; 257];
        let cases: Vec<(EventView<'_>, Rejection)> = vec![
            (
                EventView {
                    time_ms: 0,
                    ..good()
                },
                MissingTime,
            ),
            (
                EventView {
                    time_ms: -5,
                    ..good()
                },
                MissingTime,
            ),
            (
                EventView {
                    time_ms: NOW + l.max_future_ms + 1,
                    ..good()
                },
                TimeInFuture,
            ),
            (
                EventView {
                    time_ms: NOW - l.max_past_ms - 1,
                    ..good()
                },
                TimeTooOld,
            ),
            (
                EventView {
                    src_ip: &[],
                    ..good()
                },
                MissingSrcIp,
            ),
            (
                EventView {
                    src_ip: &[1, 2, 3],
                    ..good()
                },
                BadSrcIpLength,
            ),
            (
                EventView {
                    src_ip: &[0; 17],
                    ..good()
                },
                BadSrcIpLength,
            ),
            (
                EventView {
                    dst_ip: &[],
                    ..good()
                },
                MissingDstIp,
            ),
            (
                EventView {
                    dst_ip: &[1; 5],
                    ..good()
                },
                BadDstIpLength,
            ),
            (
                EventView {
                    src_port: 65536,
                    ..good()
                },
                PortOutOfRange,
            ),
            (
                EventView {
                    dst_port: u32::MAX,
                    ..good()
                },
                PortOutOfRange,
            ),
            (
                EventView {
                    protocol: 256,
                    ..good()
                },
                ProtocolOutOfRange,
            ),
            (EventView { kind: 6, ..good() }, UnknownKind),
            (EventView { kind: -1, ..good() }, UnknownKind),
            (
                EventView {
                    event_id: &long,
                    ..good()
                },
                FieldTooLong,
            ),
            (
                EventView {
                    sensor_id: &long,
                    ..good()
                },
                FieldTooLong,
            ),
        ];
        for (ev, want) in cases {
            assert_eq!(check(ev), Err(want), "{ev:?}");
        }
        assert_eq!(validate_batch(&[], Some(NOW), &l), Err(EmptyBatch));
        let small = Limits {
            max_batch_events: 1,
            ..Limits::default()
        };
        assert_eq!(
            validate_batch(&[good(), good()], Some(NOW), &small),
            Err(BatchTooLarge)
        );
        let bad = EventView {
            protocol: 300,
            ..good()
        };
        assert_eq!(
            validate_batch(
                &[good(), bad, EventView { kind: 9, ..good() }],
                Some(NOW),
                &l
            ),
            Err(ProtocolOutOfRange)
        );
        assert_eq!(validate_batch(&[good()], Some(NOW), &l), Ok(()));
        assert_eq!(
            Rejection::from(&DecodeError::Malformed("x")),
            MalformedProtobuf
        );
        assert_eq!(
            Rejection::from(&DecodeError::TooManyEvents { limit: 1 }),
            BatchTooLarge
        );
    }

    #[test]
    fn no_time_checks_without_message_time() {
        let ev = EventView {
            time_ms: 1,
            ..good()
        };
        assert_eq!(validate(&ev, None, &Limits::default()), Ok(()));
        assert_eq!(
            validate(&ev, Some(NOW), &Limits::default()),
            Err(Rejection::TimeTooOld)
        );
        // extreme message times do not overflow
        assert_eq!(
            validate(&good(), Some(i64::MAX), &Limits::default()),
            Err(Rejection::TimeTooOld)
        );
        assert_eq!(
            validate(&good(), Some(i64::MIN), &Limits::default()),
            Err(Rejection::TimeInFuture)
        );
    }

    #[test]
    fn labels_are_distinct_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Rejection::ALL {
            let s = r.as_str();
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
            assert!(seen.insert(s), "duplicate label {s}");
        }
        assert_eq!(seen.len(), Rejection::ALL.len());
    }
}
