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
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let headers = headers
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
            });
        DlqRecord {
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
        }
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
            }
        );
        let first = record.headers.iter().next().unwrap();
        assert_eq!((first.key, first.value), ("trace", Some(&b"abc"[..])));
    }
}
