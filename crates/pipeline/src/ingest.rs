//! The ingest stage: raw `AttackEventBatch` messages in; partials, window-close
//! markers and dead letters out.
//!
//! Per input partition it keeps one `rampart_core::ingest::PartitionIngest`
//! (plain per-partition state, single owner: no locks on the hot path). Partials
//! go to the partials partition chosen by a stable hash of `dimension/key`, so
//! every partial of one key meets in one merge instance; window-close markers
//! are broadcast to every partials partition after the partials they cover.

use std::sync::Arc;
use std::time::Instant;

use prost::Message as _;
use rampart_core::enrich::Enricher;
use rampart_core::ingest::{IngestConfig, PartitionIngest, ResumePoint};
use rampart_core::proto::v1::internal::{Partial, PartialBatch, WindowClosed};
use rampart_core::validate::Rejection;
use rdkafka::message::{BorrowedMessage, Message};
use rustc_hash::FxHashMap;
use tracing::{debug, warn};

use crate::metrics::IngestMetrics;
use crate::stage::{Handler, OutRecord, Start};

/// Largest partials message the stage writes (bytes, before compression).
const MAX_PARTIALS_MESSAGE: usize = 512 * 1024;

struct Part {
    core: PartitionIngest,
    /// Offsets below this were processed before the last restart: replaying
    /// them rebuilds state; their dead letters were already written.
    replay_until: i64,
    /// Next offset to read (last processed + 1), `None` before the first message.
    next_offset: Option<i64>,
    last_input: Instant,
    /// A message arrived since the last tick (the tick stamps `last_input`,
    /// so the hot path reads no clock).
    input_since_tick: bool,
    last_idle_advance: Instant,
    /// Something changed since the last checkpoint.
    dirty: bool,
    /// Everything the partition held was read (end-of-partition seen and no
    /// message since). Only such a partition may advance by idleness: one that
    /// is merely slow (a stalled fetch, a busy machine) must not, or its own
    /// pending events would turn late.
    at_end: bool,
}

/// Static wiring of the ingest stage.
#[derive(Clone, Debug)]
pub struct IngestWiring {
    pub input_topic: String,
    pub partials_topic: Arc<str>,
    pub dlq_topic: Arc<str>,
    pub input_partitions: u32,
    pub partials_partitions: u32,
    pub idle_timeout_ms: i64,
}

pub struct IngestHandler<E: Enricher + Send + 'static> {
    cfg: IngestConfig,
    wiring: IngestWiring,
    enricher: E,
    parts: FxHashMap<i32, Part>,
    partials: Vec<Partial>,
    /// Per partials partition: the batch being filled.
    batches: Vec<PartialBatch>,
    metrics: IngestMetrics,
}

impl<E: Enricher + Send + 'static> IngestHandler<E> {
    pub fn new(
        cfg: IngestConfig,
        wiring: IngestWiring,
        enricher: E,
        metrics: IngestMetrics,
    ) -> Self {
        let batches = (0..wiring.partials_partitions.max(1))
            .map(|_| PartialBatch::default())
            .collect();
        IngestHandler {
            cfg,
            wiring,
            enricher,
            parts: FxHashMap::default(),
            partials: Vec::new(),
            batches,
            metrics,
        }
    }

    fn new_part(&self, partition: i32, rp: Option<&ResumePoint>) -> PartitionIngest {
        let p = partition as u32;
        match rp {
            Some(rp) => {
                PartitionIngest::resume(self.cfg.clone(), p, self.wiring.input_partitions, rp)
            }
            None => PartitionIngest::new(self.cfg.clone(), p, self.wiring.input_partitions),
        }
    }

    /// Moves closed windows of `partition` into the outgoing batches.
    fn drain_closed(&mut self, partition: i32, out: &mut Vec<OutRecord>) {
        let Some(part) = self.parts.get_mut(&partition) else {
            return;
        };
        self.partials.clear();
        let marker = part.core.take_closed(&self.enricher, &mut self.partials);
        if self.partials.is_empty() && marker.is_none() {
            return;
        }
        let n = self.batches.len() as u64;
        for p in self.partials.drain(..) {
            let target = (partials_hash(p.dimension, &p.key) % n) as usize;
            if let Some(batch) = self.batches.get_mut(target) {
                batch.partials.push(p);
            }
        }
        self.metrics
            .partials_emitted(self.batches.iter().map(|b| b.partials.len() as u64).sum());
        if let Some(m) = marker {
            self.broadcast(m);
        }
        let sent_from = out.len();
        self.flush_batches(out);
        self.metrics.sent(out.get(sent_from..).unwrap_or_default());
    }

    fn broadcast(&mut self, marker: WindowClosed) {
        for b in &mut self.batches {
            b.closed.push(marker);
        }
    }

    fn flush_batches(&mut self, out: &mut Vec<OutRecord>) {
        for (i, batch) in self.batches.iter_mut().enumerate() {
            if batch.partials.is_empty() && batch.closed.is_empty() {
                continue;
            }
            // Split oversized batches; partials keep their order and markers
            // travel with the last piece, after every partial they cover.
            let pending = std::mem::take(batch);
            let mut piece = PartialBatch::default();
            let mut size = 0;
            for p in pending.partials {
                let len = p.encoded_len();
                if size > 0 && size + len > MAX_PARTIALS_MESSAGE {
                    out.push(partials_record(&self.wiring.partials_topic, i, &piece));
                    piece.partials.clear();
                    size = 0;
                }
                size += len;
                piece.partials.push(p);
            }
            piece.closed = pending.closed;
            out.push(partials_record(&self.wiring.partials_topic, i, &piece));
        }
    }
}

fn partials_record(topic: &Arc<str>, partition: usize, batch: &PartialBatch) -> OutRecord {
    OutRecord {
        topic: topic.clone(),
        partition: Some(partition as i32),
        key: None,
        payload: batch.encode_to_vec(),
        headers: None,
    }
}

/// Stable hash routing a `dimension/key` to a partials partition.
pub fn partials_hash(dimension: i32, key: &str) -> u64 {
    let mut buf = Vec::with_capacity(key.len() + 4);
    buf.extend_from_slice(&dimension.to_le_bytes());
    buf.extend_from_slice(key.as_bytes());
    xxhash_rust::xxh3::xxh3_64(&buf)
}

/// A dead letter: the original key, payload and headers, plus `rampart.*`
/// headers saying why and where from.
pub fn dead_letter(
    topic: &Arc<str>,
    msg: &BorrowedMessage<'_>,
    reason: &str,
    detail: &str,
) -> OutRecord {
    let rec = rampart_kafka::DlqRecord::new(msg, reason, detail);
    OutRecord {
        topic: topic.clone(),
        partition: None,
        key: rec.key,
        payload: rec.payload.unwrap_or_default(),
        headers: Some(rec.headers),
    }
}

impl<E: Enricher + Send + 'static> Handler for IngestHandler<E> {
    fn assign(&mut self, partition: i32, committed: Option<(i64, &str)>) -> Start {
        let (rp, replay_until) = match committed {
            Some((offset, meta)) if !meta.is_empty() => match ResumePoint::from_metadata(meta) {
                Ok(rp) => (Some(rp), offset),
                Err(e) => {
                    warn!(partition, error = %e, "unreadable checkpoint metadata; starting from the committed offset with empty state");
                    (None, offset)
                }
            },
            Some((offset, _)) => (None, offset),
            None => (None, 0),
        };
        let fetch_from = match (&rp, committed) {
            (Some(rp), _) => Some(rp.replay_from_offset),
            (None, Some((offset, _))) => Some(offset),
            (None, None) => None,
        };
        debug!(
            partition,
            ?fetch_from,
            replay_until,
            "ingest partition assigned"
        );
        let core = self.new_part(partition, rp.as_ref());
        let now = Instant::now();
        self.parts.insert(
            partition,
            Part {
                core,
                replay_until,
                next_offset: fetch_from,
                last_input: now,
                input_since_tick: false,
                last_idle_advance: now,
                dirty: false,
                at_end: false,
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
            warn!(
                partition,
                offset, "message for a partition that is not assigned; ignored"
            );
            return;
        };
        part.input_since_tick = true;
        part.at_end = false;
        part.next_offset = Some(offset + 1);
        part.dirty = true;
        let replaying = offset < part.replay_until;
        let payload = msg.payload().unwrap_or_default();
        let ts = msg.timestamp().to_millis();
        match part
            .core
            .process_batch(payload, ts, offset, &mut self.enricher)
        {
            Ok(stats) => {
                if !replaying {
                    self.metrics.batch(payload.len(), &stats);
                }
            }
            Err(rejection) => {
                if !replaying {
                    self.metrics.rejected(rejection);
                    out.push(dead_letter(
                        &self.wiring.dlq_topic,
                        msg,
                        rejection.as_str(),
                        describe(rejection),
                    ));
                }
            }
        }
        self.drain_closed(partition, out);
    }

    fn at_end(&mut self, partition: i32) {
        if let Some(part) = self.parts.get_mut(&partition) {
            part.at_end = true;
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<OutRecord>) {
        let idle = self.wiring.idle_timeout_ms.max(1) as u128;
        for p in self.parts.values_mut().filter(|p| p.input_since_tick) {
            p.input_since_tick = false;
            p.last_input = now;
            p.last_idle_advance = now;
        }
        let is_idle = |p: &Part| p.at_end && now.duration_since(p.last_input).as_millis() >= idle;
        let frontier = self.parts.values().filter_map(|p| p.core.head()).max();
        let all_idle = self.parts.values().all(is_idle);
        let mut advanced = Vec::new();
        for (&partition, part) in &mut self.parts {
            let replaying = part.next_offset.is_some_and(|o| o < part.replay_until);
            if replaying || !is_idle(part) {
                continue;
            }
            let elapsed = now.duration_since(part.last_idle_advance).as_millis() as i64;
            let own = part.core.head();
            let target = match (own, frontier) {
                (Some(h), Some(f)) if f > h => Some(f),
                (Some(h), _) if all_idle && elapsed > 0 => Some(h.saturating_add(elapsed)),
                (None, Some(f)) => Some(f),
                _ => None,
            };
            if let Some(t) = target {
                let at = part.next_offset.unwrap_or(0);
                part.core.advance_idle(t, at);
                part.last_idle_advance = now;
                part.dirty = true;
                advanced.push(partition);
            }
        }
        for p in advanced {
            self.drain_closed(p, out);
        }
        self.metrics.flush_counts();
        let replaying = self
            .parts
            .values()
            .filter(|p| p.next_offset.is_some_and(|o| o < p.replay_until))
            .count();
        self.metrics.flush(
            &self.parts.values().map(|p| &p.core).collect::<Vec<_>>(),
            replaying,
        );
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
            v.push((partition, next, part.core.resume_point().to_metadata()));
        }
        v
    }

    fn reset(&mut self) {
        self.parts.clear();
        for b in &mut self.batches {
            *b = PartialBatch::default();
        }
    }
}

fn describe(r: Rejection) -> &'static str {
    match r {
        Rejection::MalformedProtobuf => "payload is not a valid rampart.v1.AttackEventBatch",
        Rejection::BatchTooLarge => "batch holds more events than validate.max_batch_events",
        Rejection::EmptyBatch => "batch holds no events",
        Rejection::MissingTime => "an event has no time_ms",
        Rejection::TimeInFuture => "an event's time is too far ahead of the message timestamp",
        Rejection::TimeTooOld => "an event's time is too far behind the message timestamp",
        Rejection::MissingSrcIp => "an event has no src_ip",
        Rejection::BadSrcIpLength => "an event's src_ip is neither 4 nor 16 bytes",
        Rejection::MissingDstIp => "an event has no dst_ip",
        Rejection::BadDstIpLength => "an event's dst_ip is neither 4 nor 16 bytes",
        Rejection::PortOutOfRange => "an event's port is above 65535",
        Rejection::ProtocolOutOfRange => "an event's protocol is above 255",
        Rejection::UnknownKind => "an event's kind is not a known AttackKind",
        Rejection::FieldTooLong => "an event's event_id or sensor_id is too long",
    }
}
