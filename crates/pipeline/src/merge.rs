//! The merge stage: partials and window-close markers in; final rollups out.
//!
//! One `rampart_core::merge::Merger` per partials partition. A window is final
//! when every input partition has closed it; its rollups go to the compacted
//! rollup topic keyed `dimension/key/window_start_ms`.

use std::sync::Arc;
use std::time::Instant;

use prost::Message as _;
use rampart_core::merge::{MergeResumePoint, Merger};
use rampart_core::proto::v1::internal::PartialBatch;
use rampart_core::proto::v1::{Dimension, Rollup};
use rdkafka::message::{BorrowedMessage, Message};
use rustc_hash::FxHashMap;
use tracing::warn;

use crate::ingest::dead_letter;
use crate::metrics::MergeMetrics;
use crate::stage::{Handler, OutRecord, Start};

struct Part {
    merger: Merger,
    replay_until: i64,
    next_offset: Option<i64>,
    dirty: bool,
}

#[derive(Clone, Debug)]
pub struct MergeWiring {
    pub rollups_topic: Arc<str>,
    pub dlq_topic: Arc<str>,
    pub window_size_ms: i64,
}

pub struct MergeHandler {
    wiring: MergeWiring,
    parts: FxHashMap<i32, Part>,
    rollups: Vec<Rollup>,
    metrics: MergeMetrics,
}

impl MergeHandler {
    pub fn new(wiring: MergeWiring, metrics: MergeMetrics) -> Self {
        MergeHandler {
            wiring,
            parts: FxHashMap::default(),
            rollups: Vec::new(),
            metrics,
        }
    }
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

pub fn dimension_name(d: i32) -> &'static str {
    match Dimension::try_from(d) {
        Ok(Dimension::OriginCountry) => "origin_country",
        Ok(Dimension::OriginAsn) => "origin_asn",
        Ok(Dimension::OriginPrefix) => "origin_prefix",
        Ok(Dimension::TargetSector) => "target_sector",
        Ok(Dimension::CountrySector) => "country_sector",
        _ => "unspecified",
    }
}

impl Handler for MergeHandler {
    fn assign(&mut self, partition: i32, committed: Option<(i64, &str)>) -> Start {
        let (merger, replay_until, fetch_from) = match committed {
            Some((offset, meta)) if !meta.is_empty() => match MergeResumePoint::from_metadata(meta)
            {
                Ok(rp) => {
                    let from = rp.replay_from_offset;
                    (
                        Merger::resume(self.wiring.window_size_ms, &rp),
                        offset,
                        Some(from),
                    )
                }
                Err(e) => {
                    warn!(partition, error = %e, "unreadable merge checkpoint metadata; starting from the committed offset");
                    (
                        Merger::new(self.wiring.window_size_ms),
                        offset,
                        Some(offset),
                    )
                }
            },
            Some((offset, _)) => (
                Merger::new(self.wiring.window_size_ms),
                offset,
                Some(offset),
            ),
            None => (Merger::new(self.wiring.window_size_ms), 0, None),
        };
        self.parts.insert(
            partition,
            Part {
                merger,
                replay_until,
                next_offset: fetch_from,
                dirty: false,
            },
        );
        self.metrics.set_partitions(self.parts.len());
        Start { fetch_from }
    }

    fn revoke(&mut self, partition: i32) {
        self.parts.remove(&partition);
        self.metrics.set_partitions(self.parts.len());
    }

    fn process(&mut self, msg: &BorrowedMessage<'_>, out: &mut Vec<OutRecord>) {
        let partition = msg.partition();
        let offset = msg.offset();
        let Some(part) = self.parts.get_mut(&partition) else {
            return;
        };
        part.next_offset = Some(offset + 1);
        part.dirty = true;
        let replaying = offset < part.replay_until;
        if !replaying {
            self.metrics.received(msg.payload_len());
        }
        let batch = match PartialBatch::decode(msg.payload().unwrap_or_default()) {
            Ok(b) => b,
            Err(e) => {
                if !replaying {
                    self.metrics.malformed();
                    out.push(dead_letter(
                        &self.wiring.dlq_topic,
                        msg,
                        "malformed_partials",
                        &e.to_string(),
                    ));
                }
                return;
            }
        };
        if let Err(e) = part.merger.apply(&batch, offset) {
            if !replaying {
                self.metrics.malformed();
                out.push(dead_letter(
                    &self.wiring.dlq_topic,
                    msg,
                    "malformed_partials",
                    &e.to_string(),
                ));
            }
            return;
        }
        self.rollups.clear();
        part.merger.take_final(&mut self.rollups);
        if self.rollups.is_empty() {
            return;
        }
        let sent_from = out.len();
        for r in &self.rollups {
            out.push(OutRecord {
                topic: self.wiring.rollups_topic.clone(),
                partition: None,
                key: Some(rollup_key(r).into_bytes()),
                payload: r.encode_to_vec(),
                headers: None,
            });
        }
        let bytes = out
            .get(sent_from..)
            .unwrap_or_default()
            .iter()
            .map(|o| o.payload.len())
            .sum();
        // The message that made these windows final carries the last close marker.
        let closable_at = (!replaying).then(|| msg.timestamp().to_millis()).flatten();
        self.metrics.published(&self.rollups, bytes, closable_at);
        self.rollups.clear();
    }

    fn tick(&mut self, _now: Instant, _out: &mut Vec<OutRecord>) {
        let replaying = self
            .parts
            .values()
            .filter(|p| p.next_offset.is_some_and(|o| o < p.replay_until))
            .count();
        let final_before = self
            .parts
            .values()
            .filter_map(|p| p.merger.final_before())
            .min();
        self.metrics.flush(replaying, final_before);
    }

    fn checkpoint(&mut self) -> Vec<(i32, i64, String)> {
        let mut v = Vec::new();
        for (&partition, part) in &mut self.parts {
            let Some(next) = part.next_offset else {
                continue;
            };
            if !part.dirty || next < part.replay_until {
                continue;
            }
            part.dirty = false;
            v.push((partition, next, part.merger.resume_point().to_metadata()));
        }
        v
    }

    fn reset(&mut self) {
        self.parts.clear();
    }
}
