//! Validation of decoded events, with a bounded set of rejection reasons.
//!
//! A message is processed whole or dead-lettered whole: if any event of a batch
//! is invalid, the message goes to the DLQ with the first reason found.
//! "Now" is the Kafka message timestamp, so a replay judges the same way.

use crate::event::EventView;

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
}

impl Rejection {
    pub const ALL: [Rejection; 14] = [
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
    ];

    /// snake_case name, stable: used as metric label and DLQ header value.
    pub fn as_str(self) -> &'static str {
        todo!("helper core-hot")
    }
}

/// Limits applied by `validate`. Defaults are documented on each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Max events in one batch (default 100_000).
    pub max_batch_events: usize,
    /// Max event time ahead of the message timestamp (default 5 min).
    pub max_future_ms: i64,
    /// Max event time behind the message timestamp (default 7 days).
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

/// Checks one event. `msg_time_ms` is the Kafka message timestamp; when it is
/// `None` the future/past checks are skipped.
pub fn validate(ev: &EventView<'_>, msg_time_ms: Option<i64>, limits: &Limits) -> Result<(), Rejection> {
    let _ = (ev, msg_time_ms, limits);
    todo!("helper core-hot")
}
