//! Dead-letter records: the original key and payload plus headers saying where the record came
//! from and why rampart could not process it.

use rdkafka::Message;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, FutureRecord};

/// Header: why the record was dead-lettered (a short, bounded reason such as `decode`).
pub const HEADER_REASON: &str = "rampart.reason";
/// Header: topic the record was read from.
pub const HEADER_SOURCE_TOPIC: &str = "rampart.source.topic";
/// Header: partition it was read from (decimal).
pub const HEADER_SOURCE_PARTITION: &str = "rampart.source.partition";
/// Header: its offset there (decimal).
pub const HEADER_SOURCE_OFFSET: &str = "rampart.source.offset";
/// Header: the error detail (free text).
pub const HEADER_ERROR: &str = "rampart.error";
/// Header (per-event dead letters): the rejected events as `index:reason,...`,
/// indexes into the original message's batch, ascending; cut after
/// [`MAX_REJECTED_HEADER`] bytes with a final `,...`.
pub const HEADER_REJECTED: &str = "rampart.rejected";
/// Header (per-event dead letters): how many events the payload holds (decimal).
pub const HEADER_EVENTS: &str = "rampart.events";
/// `rampart.reason` of a dead letter written as coordinates only: the
/// original record with rampart's headers would exceed the producer's
/// `message.max.bytes`.
pub const REASON_PAYLOAD_TOO_LARGE: &str = "payload_too_large";
/// Longest `rampart.rejected` value written (bytes).
pub const MAX_REJECTED_HEADER: usize = 1024;

/// A record for the dead-letter topic. The original record's headers are kept, followed by
/// rampart's.
#[derive(Debug)]
pub struct DlqRecord {
    /// Original key.
    pub key: Option<Vec<u8>>,
    /// Original payload.
    pub payload: Option<Vec<u8>>,
    /// Original headers plus the `rampart.*` headers.
    pub headers: OwnedHeaders,
}

/// `headers` followed by rampart's reason, provenance (topic, partition,
/// offset) and error headers.
fn provenance<M: Message>(
    headers: OwnedHeaders,
    message: &M,
    reason: &str,
    error: &str,
) -> OwnedHeaders {
    let partition = message.partition().to_string();
    let offset = message.offset().to_string();
    headers
        .insert(Header {
            key: HEADER_REASON,
            value: Some(reason),
        })
        .insert(Header {
            key: HEADER_SOURCE_TOPIC,
            value: Some(message.topic()),
        })
        .insert(Header {
            key: HEADER_SOURCE_PARTITION,
            value: Some(&partition),
        })
        .insert(Header {
            key: HEADER_SOURCE_OFFSET,
            value: Some(&offset),
        })
        .insert(Header {
            key: HEADER_ERROR,
            value: Some(error),
        })
}

impl DlqRecord {
    /// Builds the dead-letter record for `message`, which failed with `reason` (bounded set of
    /// values) and `error` (detail).
    pub fn new<M: Message>(message: &M, reason: &str, error: &str) -> Self {
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for header in original.iter() {
                headers = headers.insert(header);
            }
        }
        let headers = provenance(headers, message, reason, error);
        DlqRecord {
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    /// The dead letter of the rejected events of `message`, whose other events
    /// were processed: `payload` holds only the rejected events (the caller
    /// builds it from their original bytes), the original key and headers are
    /// kept, and `rampart.reason` (the first rejected event's reason),
    /// `rampart.rejected`, `rampart.events` and the provenance headers are added.
    pub fn for_events<M: Message>(
        message: &M,
        payload: Vec<u8>,
        rejected: &[(u32, &str)],
        error: &str,
    ) -> Self {
        let reason = rejected.first().map_or("", |r| r.1);
        let mut list = String::new();
        for (i, (index, r)) in rejected.iter().enumerate() {
            let item = format!("{}{index}:{r}", if i > 0 { "," } else { "" });
            if list.len() + item.len() > MAX_REJECTED_HEADER - 4 {
                list.push_str(",...");
                break;
            }
            list.push_str(&item);
        }
        let count = rejected.len().to_string();
        let mut record = DlqRecord::new(message, reason, error);
        record.headers = record
            .headers
            .insert(Header {
                key: HEADER_REJECTED,
                value: Some(&list),
            })
            .insert(Header {
                key: HEADER_EVENTS,
                value: Some(&count),
            });
        record.payload = Some(payload);
        record
    }

    /// The dead letter of `message` as coordinates only: no key, no payload,
    /// none of its headers; `rampart.reason` = [`REASON_PAYLOAD_TOO_LARGE`],
    /// the provenance headers and `error`. For a dead letter that would not
    /// fit the producer's `message.max.bytes`.
    pub fn coordinates_only<M: Message>(message: &M, error: &str) -> Self {
        let headers = provenance(
            OwnedHeaders::new(),
            message,
            REASON_PAYLOAD_TOO_LARGE,
            error,
        );
        DlqRecord {
            key: None,
            payload: None,
            headers,
        }
    }

    /// What librdkafka counts against `message.max.bytes` for this record:
    /// key, payload and every header's name and value.
    pub fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len))
            .sum();
        self.key.as_ref().map_or(0, Vec::len) + self.payload.as_ref().map_or(0, Vec::len) + headers
    }

    /// A record for a `BaseProducer` (or the `ThreadedProducer`) to `topic`.
    pub fn to_base_record<'a>(&'a self, topic: &'a str) -> BaseRecord<'a, [u8], [u8]> {
        let mut record = BaseRecord::to(topic).headers(self.headers.clone());
        if let Some(key) = &self.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &self.payload {
            record = record.payload(payload.as_slice());
        }
        record
    }

    /// A record for a `FutureProducer` to `topic`.
    pub fn to_future_record<'a>(&'a self, topic: &'a str) -> FutureRecord<'a, [u8], [u8]> {
        let mut record = FutureRecord::to(topic).headers(self.headers.clone());
        if let Some(key) = &self.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &self.payload {
            record = record.payload(payload.as_slice());
        }
        record
    }
}

/// The `rampart.*` headers read back from a dead-lettered message (for replay tools and tests).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DlqHeaders {
    /// `rampart.reason`.
    pub reason: Option<String>,
    /// `rampart.source.topic`.
    pub source_topic: Option<String>,
    /// `rampart.source.partition`.
    pub source_partition: Option<i32>,
    /// `rampart.source.offset`.
    pub source_offset: Option<i64>,
    /// `rampart.error`.
    pub error: Option<String>,
    /// `rampart.rejected` (per-event dead letters only).
    pub rejected: Option<String>,
    /// `rampart.events` (per-event dead letters only).
    pub events: Option<u64>,
}

impl DlqHeaders {
    /// Reads the headers of `message`; missing or malformed ones are `None`.
    pub fn from_message<M: Message>(message: &M) -> Self {
        let mut out = DlqHeaders::default();
        let Some(headers) = message.headers() else {
            return out;
        };
        for header in headers.iter() {
            let Some(value) = header.value.and_then(|v| std::str::from_utf8(v).ok()) else {
                continue;
            };
            match header.key {
                HEADER_REASON => out.reason = Some(value.to_owned()),
                HEADER_SOURCE_TOPIC => out.source_topic = Some(value.to_owned()),
                HEADER_SOURCE_PARTITION => out.source_partition = value.parse().ok(),
                HEADER_SOURCE_OFFSET => out.source_offset = value.parse().ok(),
                HEADER_ERROR => out.error = Some(value.to_owned()),
                HEADER_REJECTED => out.rejected = Some(value.to_owned()),
                HEADER_EVENTS => out.events = value.parse().ok(),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;
    use rdkafka::message::OwnedMessage;

    #[test]
    fn dlq_record_keeps_key_payload_and_headers_and_adds_provenance() {
        let original_headers = OwnedHeaders::new().insert(Header {
            key: "trace",
            value: Some("abc"),
        });
        let message = OwnedMessage::new(
            Some(b"bad".to_vec()),
            Some(b"k".to_vec()),
            "events".to_owned(),
            Timestamp::NotAvailable,
            3,
            42,
            Some(original_headers),
        );
        let record = DlqRecord::new(&message, "decode", "invalid wire type");
        assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(record.payload.as_deref(), Some(&b"bad"[..]));
        let as_message = message
            .clone()
            .replace_headers(Some(record.headers.clone()));
        assert_eq!(
            DlqHeaders::from_message(&as_message),
            DlqHeaders {
                reason: Some("decode".into()),
                source_topic: Some("events".into()),
                source_partition: Some(3),
                source_offset: Some(42),
                error: Some("invalid wire type".into()),
                ..DlqHeaders::default()
            }
        );
        let first = record.headers.iter().next().unwrap();
        assert_eq!((first.key, first.value), ("trace", Some(&b"abc"[..])));
    }

    #[test]
    fn coordinates_only_dead_letter_keeps_no_record_bytes() {
        let msg = OwnedMessage::new(
            Some(vec![0xff; 5000]),
            Some(b"key".to_vec()),
            "attacks.raw".into(),
            Timestamp::CreateTime(1),
            3,
            42,
            Some(OwnedHeaders::new().insert(Header {
                key: "trace",
                value: Some("abc"),
            })),
        );
        let whole = DlqRecord::new(&msg, "malformed_protobuf", "bad");
        // Hand count: key, payload, "trace"+"abc", then rampart's five headers.
        let rampart_headers = "rampart.reason".len()
            + "malformed_protobuf".len()
            + "rampart.source.topic".len()
            + "attacks.raw".len()
            + "rampart.source.partition".len()
            + 1
            + "rampart.source.offset".len()
            + 2
            + "rampart.error".len()
            + 3;
        assert_eq!(whole.size(), 3 + 5000 + 8 + rampart_headers);
        let rec = DlqRecord::coordinates_only(&msg, "too large");
        assert!(rec.key.is_none() && rec.payload.is_none());
        let h = DlqHeaders::from_message(&msg.clone().replace_headers(Some(rec.headers.clone())));
        assert_eq!(h.reason.as_deref(), Some(REASON_PAYLOAD_TOO_LARGE));
        assert_eq!((h.source_partition, h.source_offset), (Some(3), Some(42)));
        assert_eq!(h.source_topic.as_deref(), Some("attacks.raw"));
        assert!(rec.headers.iter().all(|x| x.key.starts_with("rampart.")));
        assert!(rec.size() < 200, "{}", rec.size());
    }

    #[test]
    fn per_event_dead_letter_lists_rejected_events_within_bounds() {
        let message = OwnedMessage::new(
            Some(b"whole".to_vec()),
            Some(b"k".to_vec()),
            "events".to_owned(),
            Timestamp::NotAvailable,
            1,
            7,
            None,
        );
        let record = DlqRecord::for_events(
            &message,
            b"only-bad".to_vec(),
            &[(3, "port_out_of_range"), (9, "time_in_future")],
            "2 of the message's events are invalid",
        );
        assert_eq!(record.payload.as_deref(), Some(&b"only-bad"[..]));
        let back = DlqHeaders::from_message(&message.clone().replace_headers(Some(record.headers)));
        assert_eq!(back.reason.as_deref(), Some("port_out_of_range"));
        assert_eq!(
            back.rejected.as_deref(),
            Some("3:port_out_of_range,9:time_in_future")
        );
        assert_eq!((back.events, back.source_offset), (Some(2), Some(7)));
        let many: Vec<(u32, &str)> = (0..10_000).map(|i| (i, "unknown_kind")).collect();
        let record = DlqRecord::for_events(&message, Vec::new(), &many, "");
        let back = DlqHeaders::from_message(&message.replace_headers(Some(record.headers)));
        let list = back.rejected.unwrap();
        assert!(
            list.len() <= MAX_REJECTED_HEADER && list.ends_with(",..."),
            "{}",
            list.len()
        );
        assert_eq!(back.events, Some(10_000));
    }
}
