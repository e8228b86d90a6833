//! rampart-formats: JSON sensor formats read directly, each document mapped
//! onto the event the protobuf path decodes (`rampart_core::event::EventView`),
//! so validation, dedup and cells run unchanged.
//!
//! Owns: the [`Format`] names, splitting a Kafka message into documents
//! (newline-delimited JSON), one module per format (`eve`, `zeek`, `ocsf`,
//! `ecs`) with its mapping and its encoder, and the per-document outcome:
//! an event, *skipped* (a record the format writes that is no attack event,
//! e.g. EVE `stats`; counted, not dead-lettered), or *failed* with a
//! [`Rejection`] from the bounded set (dead-lettered alone with its original
//! bytes). Every document ends in exactly one of the three.
//!
//! Must not know about: Kafka, metrics, the pipeline. The field-by-field
//! mapping of each format is documented in `docs/formats.md`.

use rampart_core::event::EventView;
use rampart_core::proto::v1::AttackEvent;
use rampart_core::validate::Rejection;
use serde::{Deserialize, Serialize};

mod ecs;
mod eve;
mod fields;
mod ocsf;
mod scan;
mod time;
mod zeek;

use fields::{Addr, Builder, Span};

/// The format of an input topic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `rampart.v1.AttackEventBatch` (one batch per message).
    #[default]
    Protobuf,
    /// Suricata EVE JSON (`eve.json`).
    SuricataEve,
    /// Zeek `conn.log` written as JSON.
    ZeekConn,
    /// OCSF Network Activity (4001) and Detection Finding (2004).
    Ocsf,
    /// Elastic Common Schema documents.
    Ecs,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Protobuf,
        Format::SuricataEve,
        Format::ZeekConn,
        Format::Ocsf,
        Format::Ecs,
    ];
    pub const JSON: [Format; 4] = [
        Format::SuricataEve,
        Format::ZeekConn,
        Format::Ocsf,
        Format::Ecs,
    ];

    /// The config name (also the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Protobuf => "protobuf",
            Format::SuricataEve => "suricata-eve",
            Format::ZeekConn => "zeek-conn",
            Format::Ocsf => "ocsf",
            Format::Ecs => "ecs",
        }
    }

    /// From a config or command-line name (`eve` is short for `suricata-eve`).
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "eve" => Some(Format::SuricataEve),
            _ => Format::ALL.into_iter().find(|f| f.as_str() == name),
        }
    }

    /// One document as this format writes `event` (JSON formats; `None` for
    /// protobuf). What survives the trip is [`Format::project`].
    pub fn encode(self, event: &AttackEvent) -> Option<String> {
        match self {
            Format::Protobuf => None,
            Format::SuricataEve => Some(eve::encode(event)),
            Format::ZeekConn => Some(zeek::encode(event)),
            Format::Ocsf => Some(ocsf::encode(event)),
            Format::Ecs => Some(ecs::encode(event)),
        }
    }

    /// `event` as rampart reads it back after [`Format::encode`]: what a
    /// format cannot carry is lost (Zeek conn has no rule id, and only
    /// scans and backscatter as kinds) and ids take the format's own shape.
    /// Equal events project equally, so dedup decides the same on either.
    pub fn project(self, event: &AttackEvent) -> AttackEvent {
        let Some(doc) = self.encode(event) else {
            return event.clone();
        };
        let mut decoder = JsonDecoder::default();
        if decoder.decode(self, doc.as_bytes(), 1).is_err() {
            return AttackEvent::default();
        }
        decoder
            .events()
            .next()
            .map(|v| to_attack_event(&v))
            .unwrap_or_default()
    }

    fn map(
        self,
        doc: &[u8],
        parser: JsonParser,
        b: &mut Builder<'_>,
    ) -> Result<Option<JsonEvent>, Rejection> {
        match self {
            Format::Protobuf => Err(Rejection::MalformedJson),
            Format::SuricataEve => eve::map(doc, parser, b),
            Format::ZeekConn => zeek::map(doc, parser, b),
            Format::Ocsf => ocsf::map(doc, b),
            Format::Ecs => ecs::map(doc, parser, b),
        }
    }
}

/// One mapped document; its strings live in the decoder's arena.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct JsonEvent {
    pub(crate) time_ms: i64,
    pub(crate) src_ip: Addr,
    pub(crate) dst_ip: Addr,
    pub(crate) src_port: u32,
    pub(crate) dst_port: u32,
    pub(crate) protocol: u32,
    pub(crate) kind: i32,
    pub(crate) rule_id: u32,
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    pub(crate) event_id: Span,
    pub(crate) sensor_id: Span,
}

/// A document that failed: its line in the message, why, and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub line: u32,
    pub reason: Rejection,
    pub range: std::ops::Range<usize>,
}

/// How a [`JsonDecoder`] parses a document. Both give the same events and
/// the same rejections; the scanner is faster on the documents it is sure of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JsonParser {
    /// The field-picking scanner (`scan.rs`) first, serde_json for the
    /// documents it is not sure of (EVE, Zeek conn and ECS; OCSF parses
    /// with serde_json).
    #[default]
    ScanFirst,
    /// serde_json only (the reference the scanner is tested and measured
    /// against).
    SerdeOnly,
}

/// Decodes messages of a JSON format; its buffers are reused across messages.
#[derive(Debug, Default)]
pub struct JsonDecoder {
    parser: JsonParser,
    events: Vec<JsonEvent>,
    /// Per event: its line and byte range in the message.
    origins: Vec<(u32, std::ops::Range<usize>)>,
    failures: Vec<Failure>,
    skipped: u64,
    documents: usize,
    text: Vec<u8>,
}

/// serde_json's error as a document rejection: a value of another type is
/// `wrong_field_type`, anything else (syntax, truncation, bad UTF-8)
/// `malformed_json`.
pub(crate) fn json_error(e: &serde_json::Error) -> Rejection {
    match e.classify() {
        serde_json::error::Category::Data => Rejection::WrongFieldType,
        _ => Rejection::MalformedJson,
    }
}

/// One document deserialised: its UTF-8 checked once as a whole (JSON text
/// is UTF-8; this is cheaper than serde_json checking every string on its
/// own), then parsed borrowing from it.
pub(crate) fn parse<'a, T: Deserialize<'a>>(doc: &'a [u8]) -> Result<T, Rejection> {
    parse_scanned(doc, JsonParser::SerdeOnly, |_| None)
}

/// The document as text: JSON is UTF-8, checked once per document.
fn utf8(doc: &[u8]) -> Result<&str, Rejection> {
    std::str::from_utf8(doc).map_err(|_| Rejection::MalformedJson)
}

/// [`parse`] with the format's scanner first: `scan` gives the struct when
/// it is sure of the document, and serde_json parses the rest (so every
/// rejection is serde_json's).
pub(crate) fn parse_scanned<'a, T: Deserialize<'a>>(
    doc: &'a [u8],
    parser: JsonParser,
    scan: impl FnOnce(&'a str) -> Option<T>,
) -> Result<T, Rejection> {
    let text = utf8(doc)?;
    if parser == JsonParser::ScanFirst
        && let Some(fields) = scan(text)
    {
        return Ok(fields);
    }
    serde_json::from_str(text).map_err(|e| json_error(&e))
}

fn trim(line: &[u8]) -> &[u8] {
    line.trim_ascii()
}

impl JsonDecoder {
    /// A decoder parsing with `parser` (the default is [`JsonParser::ScanFirst`]).
    pub fn with_parser(parser: JsonParser) -> JsonDecoder {
        JsonDecoder {
            parser,
            ..JsonDecoder::default()
        }
    }

    /// Splits `payload` into documents (one per line; blank lines are no
    /// documents; a message whose first document does not end on its first
    /// line is one pretty-printed document) and maps each. `Err` rejects the
    /// message whole: no document (`empty_batch`) or more than
    /// `max_documents` (`batch_too_large`); nothing is kept then.
    pub fn decode(
        &mut self,
        format: Format,
        payload: &[u8],
        max_documents: usize,
    ) -> Result<(), Rejection> {
        self.events.clear();
        self.origins.clear();
        self.failures.clear();
        self.text.clear();
        self.skipped = 0;
        self.documents = 0;
        let first = payload
            .split(|&b| b == b'\n')
            .map(trim)
            .find(|l| !l.is_empty());
        let single = first.is_some_and(|l| l.first() == Some(&b'{') && l.last() != Some(&b'}'));
        let mut start = 0usize;
        let mut line_no = 0u32;
        while start <= payload.len() {
            let end = if single {
                payload.len()
            } else {
                payload
                    .get(start..)
                    .and_then(|rest| memchr::memchr(b'\n', rest))
                    .map_or(payload.len(), |p| start + p)
            };
            let line = payload.get(start..end).unwrap_or_default();
            if !trim(line).is_empty() {
                self.documents += 1;
                if self.documents > max_documents {
                    self.events.clear();
                    self.failures.clear();
                    return Err(Rejection::BatchTooLarge);
                }
                let mut b = Builder {
                    text: &mut self.text,
                };
                match format.map(line, self.parser, &mut b) {
                    Ok(Some(event)) => {
                        self.events.push(event);
                        self.origins.push((line_no, start..end));
                    }
                    Ok(None) => self.skipped += 1,
                    Err(reason) => self.failures.push(Failure {
                        line: line_no,
                        reason,
                        range: start..end,
                    }),
                }
            }
            start = end + 1;
            line_no += 1;
        }
        if self.documents == 0 {
            return Err(Rejection::EmptyBatch);
        }
        Ok(())
    }

    /// The mapped events of the last message, in document order.
    pub fn events(&self) -> impl Iterator<Item = EventView<'_>> {
        self.events.iter().map(|e| EventView {
            time_ms: e.time_ms,
            src_ip: self.addr(&e.src_ip),
            dst_ip: self.addr(&e.dst_ip),
            src_port: e.src_port,
            dst_port: e.dst_port,
            protocol: e.protocol,
            kind: e.kind,
            rule_id: e.rule_id,
            event_id: e.event_id.get(&self.text),
            packets: e.packets,
            bytes: e.bytes,
            sensor_id: e.sensor_id.get(&self.text),
        })
    }

    fn addr<'s>(&'s self, a: &'s Addr) -> &'s [u8] {
        a.as_slice()
    }

    /// The views of the last message's events, into `out` (cleared first).
    pub fn fill_views<'s>(&'s self, out: &mut Vec<EventView<'s>>) {
        out.clear();
        out.extend(self.events());
    }

    /// Documents of the last message (skipped and failed included).
    pub fn documents(&self) -> usize {
        self.documents
    }

    /// Documents of the last message skipped by the format's rule.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Documents of the last message that did not map.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// Everything of the last message to dead-letter: its failed documents
    /// and the events validation rejected (`rejected`: `(index into the
    /// events, reason)`, as `PartitionIngest::rejected_events` lists them),
    /// as `(line, reason)` in line order, and the payload: their original
    /// bytes, one document per line.
    pub fn dead_letters(
        &self,
        payload: &[u8],
        rejected: &[(u32, Rejection)],
    ) -> (Vec<(u32, Rejection)>, Vec<u8>) {
        let mut all: Vec<(u32, Rejection, std::ops::Range<usize>)> = self
            .failures
            .iter()
            .map(|f| (f.line, f.reason, f.range.clone()))
            .collect();
        for &(index, reason) in rejected {
            if let Some((line, range)) = self.origins.get(index as usize) {
                all.push((*line, reason, range.clone()));
            }
        }
        all.sort_by_key(|(line, _, _)| *line);
        let mut bytes = Vec::new();
        for (i, (_, _, range)) in all.iter().enumerate() {
            if i > 0 {
                bytes.push(b'\n');
            }
            bytes.extend_from_slice(payload.get(range.clone()).unwrap_or_default());
        }
        (all.into_iter().map(|(l, r, _)| (l, r)).collect(), bytes)
    }
}

/// The EVE fields rampart reads, picked by the scanner alone (UTF-8 checked
/// as the decoder checks it, no mapping): `Some(flow_id)` (0 when absent),
/// `None` when the scanner leaves the document to serde_json. For the
/// parser comparison in `benches/json_decode.rs`.
#[doc(hidden)]
pub fn scan_eve_only(doc: &[u8]) -> Option<u64> {
    let text = utf8(doc).ok()?;
    eve::scan_doc(text).map(|d| d.flow_id.unwrap_or(0))
}

/// An owned `AttackEvent` of a view (tests, projections).
pub fn to_attack_event(v: &EventView<'_>) -> AttackEvent {
    AttackEvent {
        time_ms: v.time_ms,
        src_ip: v.src_ip.to_vec(),
        dst_ip: v.dst_ip.to_vec(),
        src_port: v.src_port,
        dst_port: v.dst_port,
        protocol: v.protocol,
        kind: v.kind,
        rule_id: v.rule_id,
        event_id: String::from_utf8_lossy(v.event_id).into_owned(),
        packets: v.packets,
        bytes: v.bytes,
        sensor_id: String::from_utf8_lossy(v.sensor_id).into_owned(),
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_scan;
