//! The records the stages write and the names they are keyed by: the
//! [`OutRecord`] a handler hands to the stage runtime, dead letters, the
//! partials routing hash, rollup keys and dimension names.
//!
//! A leaf module: it imports nothing from this crate, so the runtime, the
//! handlers, telemetry and the binary can all use it without a circle.

use std::sync::Arc;

use rampart_core::proto::v1::{Dimension, Rollup};
use rampart_core::validate::Rejection;
use rdkafka::message::{BorrowedMessage, Message, OwnedHeaders};

/// A record a handler wants published.
#[derive(Clone, Debug)]
pub struct OutRecord {
    pub topic: Arc<str>,
    /// Explicit partition, or `None` to let the key decide (murmur2, as Java does).
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    /// `None`: a null value (a dead letter of a tombstone stays one).
    pub payload: Option<Vec<u8>>,
    pub headers: Option<OwnedHeaders>,
}

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// Room left under `message.max.bytes` for the record batch and record
/// overhead the broker counts on top of what librdkafka checks.
const RECORD_OVERHEAD: usize = 1024;

/// The largest record (key + payload + headers) the stages write: the
/// producer's `message.max.bytes` (rampart's client settings, else
/// librdkafka's default) less the batch overhead.
pub(crate) fn max_record_bytes(client: &rampart_kafka::Overrides) -> usize {
    client
        .get("message.max.bytes")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES)
        .saturating_sub(RECORD_OVERHEAD)
}

/// `rec` as an output record, or, when it would exceed `limit` bytes, the
/// message's coordinates only (`payload_too_large`): the producer would
/// refuse the record on every retry.
fn fitted(
    topic: &Arc<str>,
    msg: &BorrowedMessage<'_>,
    rec: rampart_kafka::DlqRecord,
    reason: &str,
    limit: usize,
) -> OutRecord {
    let rec = if rec.size() > limit {
        let detail = format!(
            "the dead letter ({reason}) of this {} byte record would be {} bytes, over the \
             producer's limit of {limit}; the record stays in its topic at these coordinates",
            msg.payload_len(),
            rec.size()
        );
        rampart_kafka::DlqRecord::coordinates_only(msg, &detail)
    } else {
        rec
    };
    OutRecord {
        topic: topic.clone(),
        partition: None,
        key: rec.key,
        payload: rec.payload,
        headers: Some(rec.headers),
    }
}

/// A dead letter: the original key, payload and headers, plus `rampart.*`
/// headers saying why and where from (coordinates only when that would
/// exceed `limit`).
pub(crate) fn dead_letter(
    topic: &Arc<str>,
    msg: &BorrowedMessage<'_>,
    reason: &str,
    detail: &str,
    limit: usize,
) -> OutRecord {
    let rec = rampart_kafka::DlqRecord::new(msg, reason, detail);
    fitted(topic, msg, rec, reason, limit)
}

/// The dead letter of a message's rejected events (the others were
/// aggregated): their original bytes as an `AttackEventBatch`, the original
/// key and headers, `rampart.reason` (the first one's, explained by
/// `detail`), `rampart.rejected`, `rampart.events` and the provenance.
pub(crate) fn events_dead_letter(
    topic: &Arc<str>,
    msg: &BorrowedMessage<'_>,
    rejected: &[(u32, Rejection)],
    detail: &str,
    limit: usize,
) -> OutRecord {
    let indexes: Vec<u32> = rejected.iter().map(|&(index, _)| index).collect();
    // The payload decoded a moment ago, so selecting from it cannot fail.
    let payload = rampart_core::event::select_events(msg.payload().unwrap_or_default(), &indexes)
        .unwrap_or_default();
    let named: Vec<(u32, &str)> = rejected
        .iter()
        .map(|&(index, rejection)| (index, rejection.as_str()))
        .collect();
    let rec = rampart_kafka::DlqRecord::for_events(msg, payload, &named, detail);
    let reason = named.first().map_or("", |r| r.1);
    fitted(topic, msg, rec, reason, limit)
}

/// The dead letter of a JSON message's documents that did not count (failed
/// to map, or their event was rejected by validation; the others were
/// aggregated or skipped): `documents`, their original bytes one per line,
/// with `rampart.rejected` = `line:reason,...` (lines of the original
/// message, from 0), `rampart.events` their number, and the original key,
/// headers and provenance (coordinates only when over `limit`).
pub(crate) fn documents_dead_letter(
    topic: &Arc<str>,
    msg: &BorrowedMessage<'_>,
    documents: Vec<u8>,
    rejected: &[(u32, Rejection)],
    detail: &str,
    limit: usize,
) -> OutRecord {
    let named: Vec<(u32, &str)> = rejected
        .iter()
        .map(|&(line, rejection)| (line, rejection.as_str()))
        .collect();
    let rec = rampart_kafka::DlqRecord::for_events(msg, documents, &named, detail);
    let reason = named.first().map_or("", |r| r.1);
    fitted(topic, msg, rec, reason, limit)
}

/// Stable hash routing a `dimension/key` to a partials partition.
pub(crate) fn partials_hash(dimension: i32, key: &str) -> u64 {
    let mut buf = Vec::with_capacity(key.len() + 4);
    buf.extend_from_slice(&dimension.to_le_bytes());
    buf.extend_from_slice(key.as_bytes());
    xxhash_rust::xxh3::xxh3_64(&buf)
}

/// The Kafka key of a rollup: `dimension/key/window_start_ms`, with the
/// dimension in lower snake case (`origin_country`, `target_sector`, ...).
pub fn rollup_key(r: &Rollup) -> String {
    format!(
        "{}/{}/{}",
        dimension_name(r.dimension),
        r.key,
        r.window_start_ms
    )
}

/// Lower snake case name of a `Dimension` value (`unspecified` for unknown values).
pub fn dimension_name(dimension: i32) -> &'static str {
    match Dimension::try_from(dimension) {
        Ok(Dimension::OriginCountry) => "origin_country",
        Ok(Dimension::OriginAsn) => "origin_asn",
        Ok(Dimension::OriginPrefix) => "origin_prefix",
        Ok(Dimension::TargetSector) => "target_sector",
        Ok(Dimension::CountrySector) => "country_sector",
        _ => "unspecified",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollup_key_spells_dimension_key_and_window() {
        let rollup = Rollup {
            dimension: Dimension::CountrySector as i32,
            key: "JP|cisa:energy".into(),
            window_start_ms: 120_000,
            ..Rollup::default()
        };
        assert_eq!(rollup_key(&rollup), "country_sector/JP|cisa:energy/120000");
        assert_eq!(dimension_name(9999), "unspecified");
    }

    #[test]
    fn partials_hash_separates_dimensions_of_one_key() {
        // The layout is the dimension as 4 little-endian bytes, then the key.
        let spelled_out = xxhash_rust::xxh3::xxh3_64(&[1, 0, 0, 0, b'J', b'P']);
        assert_eq!(partials_hash(1, "JP"), spelled_out);
        assert_ne!(partials_hash(1, "JP"), partials_hash(2, "JP"));
    }
}
