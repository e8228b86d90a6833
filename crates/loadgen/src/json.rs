//! The same traffic in a JSON input format (`rampart loadgen --format`).
//!
//! [`in_format`] turns a protobuf [`Record`] into the record loadgen sends
//! (one document per event, newline-delimited, written by the format's
//! encoder) and the record the ground truth reads: an `AttackEventBatch` of
//! the events as rampart maps those documents back (`Format::project`), so
//! what a format cannot carry (Zeek conn's rule ids) is lost on both sides
//! and `rampart verify` gives the same verdict whatever the format.
//! Deliberately malformed records stay malformed: a batch that does not
//! decode becomes a truncated document, an empty one stays empty, and an
//! invalid event is written as the format writes it (its projection is what
//! the truth judges).

use prost::Message as _;
use rampart_core::proto::v1::AttackEventBatch;
use rampart_formats::Format;

use crate::Record;

/// A document that is not JSON, for a record whose batch does not decode.
const TRUNCATED: &[u8] = br#"{"rampart_loadgen":"a truncated docum"#;

/// `(record to send, record of the ground truth)` of `record` in `format`.
pub fn in_format(record: &Record, format: Format) -> (Record, Record) {
    if format == Format::Protobuf || record.payload.is_empty() {
        return (record.clone(), record.clone());
    }
    let with = |payload: Vec<u8>| Record {
        payload,
        ..record.clone()
    };
    let Ok(batch) = AttackEventBatch::decode(record.payload.as_slice()) else {
        return (with(TRUNCATED.to_vec()), record.clone());
    };
    let mut docs = Vec::with_capacity(batch.events.len() * 512);
    let mut projected = Vec::with_capacity(batch.events.len());
    for (i, event) in batch.events.iter().enumerate() {
        if i > 0 {
            docs.push(b'\n');
        }
        docs.extend_from_slice(format.encode(event).unwrap_or_default().as_bytes());
        projected.push(format.project(event));
    }
    let truth = AttackEventBatch { events: projected }.encode_to_vec();
    (with(docs), with(truth))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rampart_core::proto::v1::{AttackEvent, AttackKind};

    fn record(events: Vec<AttackEvent>) -> Record {
        Record {
            partition: 1,
            key: vec![192, 0, 2, 1],
            payload: AttackEventBatch { events }.encode_to_vec(),
            timestamp_ms: 5,
            clock_ms: 4,
        }
    }

    #[test]
    fn one_document_per_event_and_the_truth_as_the_format_carries_it() {
        let event = AttackEvent {
            time_ms: 1_700_000_000_000,
            src_ip: vec![192, 0, 2, 1],
            dst_ip: vec![198, 51, 100, 2],
            src_port: 40_000,
            dst_port: 22,
            protocol: 6,
            kind: AttackKind::BruteForce as i32,
            rule_id: 7,
            packets: 3,
            bytes: 180,
            ..AttackEvent::default()
        };
        let r = record(vec![event.clone(), event.clone()]);
        let (sent, truth) = in_format(&r, Format::ZeekConn);
        assert_eq!((sent.partition, sent.key.clone()), (1, r.key.clone()));
        let text = String::from_utf8(sent.payload).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.lines().all(|l| l.contains(r#""id.resp_p":22"#)),
            "{text}"
        );
        // Zeek conn carries no rule and no brute force: a scan without rule.
        let back = AttackEventBatch::decode(truth.payload.as_slice()).unwrap();
        let want = AttackEvent {
            kind: AttackKind::Scan as i32,
            rule_id: 0,
            ..event.clone()
        };
        assert_eq!(back.events, vec![want.clone(), want]);
        // EVE carries it all.
        let (_, truth) = in_format(&r, Format::SuricataEve);
        let back = AttackEventBatch::decode(truth.payload.as_slice()).unwrap();
        assert_eq!(back.events, vec![event.clone(), event]);
    }

    #[test]
    fn malformed_records_stay_malformed() {
        let broken = Record {
            payload: vec![0x0A, 50, 1, 2],
            ..record(vec![])
        };
        let (sent, truth) = in_format(&broken, Format::Ecs);
        assert_eq!(sent.payload, TRUNCATED);
        assert_eq!(truth.payload, broken.payload);
        let empty = record(vec![]);
        assert!(empty.payload.is_empty());
        assert_eq!(in_format(&empty, Format::Ocsf).0.payload, Vec::<u8>::new());
    }
}
