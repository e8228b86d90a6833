//! The ingest stage: raw `AttackEventBatch` messages in; partials, window-close
//! markers and dead letters out.
//!
//! Per input partition it keeps one `rampart_core::ingest::PartitionIngest`
//! (plain per-partition state, single owner: no locks on the hot path). Partials
//! go to the partials partition chosen by a stable hash of `dimension/key`, so
//! every partial of one key meets in one merge instance; window-close markers
//! are broadcast to every partials partition after the partials they cover.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use rampart_core::enrich::{Enricher, LookupCounts};
use rampart_core::event::EventView;
use rampart_core::ingest::{IngestConfig, MAX_CLOCK_ENTRIES, PartitionIngest, ResumePoint};
use rampart_core::proto::v1::internal::{Partial, PartialBatch, WindowClosed};
use rampart_core::validate::Rejection;
use rampart_formats::{Format, JsonDecoder};
use rdkafka::Timestamp;
use rdkafka::message::{BorrowedMessage, Message};
use rustc_hash::FxHashMap;
use tracing::{debug, warn};

use crate::checkpoint::{self, CheckpointError, PartitionCheckpoint, Replaying, RestorePolicy};
use crate::memory::MemoryShare;
use crate::records::{
    OutRecord, dead_letter, documents_dead_letter, events_dead_letter, partials_hash,
};
use crate::stage::{Handler, Refused, Start};
use crate::telemetry::IngestMetrics;

/// Largest partials message the stage writes (bytes, before compression).
const MAX_PARTIALS_MESSAGE: usize = 512 * 1024;

/// One input partition: the core's state plus what idleness is judged by.
struct IngestPartition {
    core: PartitionIngest,
    last_input: Instant,
    /// A message arrived since the last tick (the tick stamps `last_input`,
    /// so the hot path reads no clock).
    input_since_tick: bool,
    last_idle_advance: Instant,
    /// Everything the partition held was read (end-of-partition seen and no
    /// message since). Only such a partition may advance by idleness: one that
    /// is merely slow (a stalled fetch, a busy machine) must not, or its own
    /// pending events would turn late.
    at_end: bool,
    /// Wall ms of the partition's last ingest clock entry.
    clock_ms: i64,
}

/// The partition's ingest clock moves in steps of this (ms), so the clock
/// lags the wall clock by at most that: a tenth of `max_future`, within
/// 1..=10 s; longer when the dedup horizon (about how far back a replay
/// reaches, hence how long entries are kept) would need more than half of
/// [`MAX_CLOCK_ENTRIES`] such steps (18.75 s at the default 10 min horizon,
/// 112.5 s at 1 h), but never more than half of `max_future`.
fn clock_step_ms(max_future_ms: i64, dedup_horizon_ms: i64) -> i64 {
    let for_future = (max_future_ms / 10).clamp(1_000, 10_000);
    let for_horizon = dedup_horizon_ms / (MAX_CLOCK_ENTRIES as i64 / 2);
    for_future
        .max(for_horizon)
        .min((max_future_ms / 2).max(1_000))
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Static wiring of the ingest stage.
#[derive(Clone, Debug)]
pub(crate) struct IngestWiring {
    pub(crate) partials_topic: Arc<str>,
    pub(crate) dlq_topic: Arc<str>,
    /// The largest record the producer writes (`records::max_record_bytes`).
    pub(crate) max_record_bytes: usize,
    /// The partition counts routed by, and what a refused checkpoint does.
    pub(crate) restore: RestorePolicy,
    pub(crate) idle_timeout_ms: i64,
    /// The format of the input topic's messages.
    pub(crate) format: Format,
}

pub(crate) struct IngestHandler<E: Enricher + Send + 'static> {
    config: IngestConfig,
    wiring: IngestWiring,
    enricher: E,
    partitions: FxHashMap<i32, Replaying<IngestPartition>>,
    partials: Vec<Partial>,
    /// Per partials partition: the batch being filled.
    batches: Vec<PartialBatch>,
    metrics: IngestMetrics,
    /// The process memory budget and this thread's index in it, if set.
    memory: Option<(Arc<MemoryShare>, usize)>,
    /// The per-partition dedup budget last applied.
    dedup_budget: Option<usize>,
    /// The JSON formats' decoder and its event views, reused across messages.
    json: JsonDecoder,
    views: Vec<EventView<'static>>,
    /// Source lookups the enricher's origin table answered (cumulative; the
    /// enricher's own counts do not see them).
    table_lookups: LookupCounts,
}

impl<E: Enricher + Send + 'static> IngestHandler<E> {
    pub(crate) fn new(
        config: IngestConfig,
        wiring: IngestWiring,
        enricher: E,
        metrics: IngestMetrics,
        memory: Option<(Arc<MemoryShare>, usize)>,
    ) -> Self {
        let batches = (0..wiring.restore.topology.partials_partitions.max(1))
            .map(|_| PartialBatch::default())
            .collect();
        IngestHandler {
            config,
            wiring,
            enricher,
            partitions: FxHashMap::default(),
            partials: Vec::new(),
            batches,
            metrics,
            memory,
            dedup_budget: None,
            json: JsonDecoder::default(),
            views: Vec::new(),
            table_lookups: LookupCounts::default(),
        }
    }

    /// Tells the process budget how many partitions this thread owns now.
    fn note_owned(&self) {
        if let Some((share, thread)) = &self.memory {
            share.set_owned(*thread, self.partitions.len());
        }
    }

    /// Applies the process budget's current dedup share to every partition
    /// when it changed (partitions moved in this or another thread).
    fn apply_memory_share(&mut self) {
        let Some((share, _)) = &self.memory else {
            return;
        };
        let budget = share.dedup_budget();
        if self.dedup_budget == Some(budget) {
            return;
        }
        for part in self.partitions.values_mut() {
            part.state.core.set_dedup_budget(budget);
        }
        self.dedup_budget = Some(budget);
        self.metrics.memory_share(budget, share.owned());
    }

    fn new_core(&self, partition: i32, resume: Option<&ResumePoint>) -> PartitionIngest {
        // Numbered across every input topic (`Topology`), as markers carry it.
        let topology = &self.wiring.restore.topology;
        let (mut config, index, count) = (
            self.config.clone(),
            topology.input_base + partition as u32,
            topology.input_total,
        );
        if let Some((share, _)) = &self.memory {
            config.dedup.budget_bytes = share.dedup_budget();
        }
        match resume {
            Some(resume) => PartitionIngest::resume(config, index, count, resume),
            None => PartitionIngest::new(config, index, count),
        }
    }

    /// Moves closed windows of `partition` into the outgoing batches.
    fn drain_closed(&mut self, partition: i32, out: &mut Vec<OutRecord>) {
        let Some(part) = self.partitions.get_mut(&partition) else {
            return;
        };
        self.partials.clear();
        let budget_before = part.state.core.budget_stats();
        let marker = part
            .state
            .core
            .take_closed(&self.enricher, &mut self.partials);
        self.metrics
            .budget(budget_before, part.state.core.budget_stats());
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
        let sent = out.get(sent_from..).unwrap_or_default();
        self.metrics.sent(
            sent.iter()
                .map(|r| r.payload.as_ref().map_or(0, Vec::len))
                .sum(),
        );
    }

    fn broadcast(&mut self, marker: WindowClosed) {
        for b in &mut self.batches {
            b.closed.push(marker);
        }
    }

    fn flush_batches(&mut self, out: &mut Vec<OutRecord>) {
        // Every batch names the partials partition count it was routed with,
        // so a merge reading a topic of another count stops instead of
        // publishing a key twice.
        let routing = self.wiring.restore.topology.partials_partitions;
        for (i, batch) in self.batches.iter_mut().enumerate() {
            if batch.partials.is_empty() && batch.closed.is_empty() {
                continue;
            }
            // Split oversized batches; partials keep their order and markers
            // travel with the last piece, after every partial they cover.
            let pending = std::mem::take(batch);
            let mut piece = PartialBatch {
                partials_partitions: routing,
                ..PartialBatch::default()
            };
            let mut size = 0;
            for p in pending.partials {
                let len = p.encoded_len();
                if size > 0 && size + len > self.wiring.max_record_bytes.min(MAX_PARTIALS_MESSAGE) {
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
        payload: Some(batch.encode_to_vec()),
        headers: None,
    }
}

impl<E: Enricher + Send + 'static> Handler for IngestHandler<E> {
    fn assign(
        &mut self,
        partition: i32,
        committed: Option<(i64, &str)>,
    ) -> Result<Start, CheckpointError> {
        let restored =
            checkpoint::restore::<ResumePoint>(partition, committed, &self.wiring.restore)?;
        debug!(
            partition,
            fetch_from = ?restored.fetch_from,
            replay_until = restored.replay_until,
            "ingest partition assigned"
        );
        let now = Instant::now();
        // Messages from the committed offset on are new: judged by the clock
        // from now. Those below it replay under the recorded clock.
        let clock_ms = wall_ms();
        let replay_until = restored.replay_until;
        let part = Replaying::new(restored, |resume| {
            let mut core = self.new_core(partition, resume);
            core.record_clock(replay_until, clock_ms);
            IngestPartition {
                core,
                last_input: now,
                input_since_tick: false,
                last_idle_advance: now,
                at_end: false,
                clock_ms,
            }
        });
        let fetch_from = part.next_offset();
        self.partitions.insert(partition, part);
        self.note_owned();
        Ok(Start { fetch_from })
    }

    fn revoke(&mut self, partition: i32) {
        if let Some(mut part) = self.partitions.remove(&partition) {
            self.table_lookups += part.state.core.take_table_lookups();
        }
        self.note_owned();
    }

    fn process(
        &mut self,
        msg: &BorrowedMessage<'_>,
        out: &mut Vec<OutRecord>,
    ) -> Result<(), Refused> {
        let partition = msg.partition();
        let offset = msg.offset();
        let Some(part) = self.partitions.get_mut(&partition) else {
            if let Some(suppressed) = crate::log_budget::UNASSIGNED_MESSAGE.admit() {
                warn!(
                    partition,
                    offset, suppressed, "message for a partition that is not assigned; ignored"
                );
            }
            return Ok(());
        };
        let replaying = part.note(offset);
        let state = &mut part.state;
        state.input_since_tick = true;
        state.at_end = false;
        let payload = msg.payload().unwrap_or_default();
        // The broker's append time is trusted; a CreateTime never is (the
        // partition's ingest clock judges then).
        let append_time = match msg.timestamp() {
            Timestamp::LogAppendTime(ms) => Some(ms),
            _ => None,
        };
        if self.wiring.format != Format::Protobuf {
            let format = self.wiring.format;
            let json = &mut self.json;
            let decoded = json.decode(format, payload, self.config.limits.max_batch_events);
            if let Err(rejection) = decoded {
                // Nothing of the message counts; its position still moves.
                state
                    .core
                    .process_events(&[], append_time, offset, &mut self.enricher);
                if !replaying {
                    self.metrics.rejected(rejection);
                    out.push(dead_letter(
                        &self.wiring.dlq_topic,
                        msg,
                        rejection.as_str(),
                        describe(rejection),
                        self.wiring.max_record_bytes,
                    ));
                }
            } else {
                // Empty, so `map` never runs; in-place collect keeps the allocation.
                let mut scoped: Vec<EventView<'_>> = std::mem::take(&mut self.views)
                    .into_iter()
                    .map(|_| EventView::default())
                    .collect();
                json.fill_views(&mut scoped);
                let stats =
                    state
                        .core
                        .process_events(&scoped, append_time, offset, &mut self.enricher);
                scoped.clear();
                self.views = scoped.into_iter().map(|_| EventView::default()).collect();
                if !replaying {
                    self.metrics.batch(payload.len(), &stats);
                    self.metrics.documents_skipped(format, json.skipped());
                    let (rejected, bytes) =
                        json.dead_letters(payload, state.core.rejected_events());
                    if let Some(&(_, first)) = rejected.first() {
                        self.metrics.events_rejected(first, rejected.len() as u64);
                        out.push(documents_dead_letter(
                            &self.wiring.dlq_topic,
                            msg,
                            bytes,
                            &rejected,
                            describe(first),
                            self.wiring.max_record_bytes,
                        ));
                    }
                }
            }
            self.drain_closed(partition, out);
            return Ok(());
        }
        match state
            .core
            .process_batch(payload, append_time, offset, &mut self.enricher)
        {
            Ok(stats) => {
                if !replaying {
                    self.metrics.batch(payload.len(), &stats);
                    let rejected = state.core.rejected_events();
                    if let Some(&(_, first)) = rejected.first() {
                        self.metrics.events_rejected(first, stats.rejected);
                        out.push(events_dead_letter(
                            &self.wiring.dlq_topic,
                            msg,
                            rejected,
                            describe(first),
                            self.wiring.max_record_bytes,
                        ));
                    }
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
                        self.wiring.max_record_bytes,
                    ));
                }
            }
        }
        self.drain_closed(partition, out);
        Ok(())
    }

    fn at_end(&mut self, partition: i32, start_offset: &mut dyn FnMut() -> Option<i64>) {
        if let Some(part) = self.partitions.get_mut(&partition) {
            part.state.at_end = true;
            // A partition that never got a message commits where it starts,
            // so the markers its idle advances emit and its checkpoint agree
            // after a restart.
            if part.start_unknown()
                && let Some(start) = start_offset()
            {
                part.note_start(start);
            }
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<OutRecord>) {
        self.apply_memory_share();
        let idle_timeout = self.wiring.idle_timeout_ms.max(1) as u128;
        // The ingest clock: a new entry per partition once the wall clock is a
        // step ahead of the last one, from the next offset on (never while the
        // partition replays: replayed messages keep their recorded clock).
        let wall = wall_ms();
        let step = clock_step_ms(
            self.config.limits.max_future_ms,
            self.config.dedup.horizon_ms,
        );
        for part in self.partitions.values_mut() {
            if !part.is_replaying() && wall >= part.state.clock_ms.saturating_add(step) {
                let next = part.next_offset().unwrap_or(0);
                if part.state.core.record_clock(next, wall) {
                    part.state.clock_ms = wall;
                } else {
                    self.metrics.clock_entry_refused();
                }
            }
        }
        for part in self.partitions.values_mut() {
            let state = &mut part.state;
            if state.input_since_tick {
                state.input_since_tick = false;
                state.last_input = now;
                state.last_idle_advance = now;
            }
        }
        let is_idle = |p: &IngestPartition| {
            p.at_end && now.duration_since(p.last_input).as_millis() >= idle_timeout
        };
        let frontier = self
            .partitions
            .values()
            .filter_map(|p| p.state.core.head())
            .max();
        let all_idle = self.partitions.values().all(|p| is_idle(&p.state));
        let mut advanced = Vec::new();
        for (&partition, part) in &mut self.partitions {
            if part.is_replaying() || !is_idle(&part.state) {
                continue;
            }
            // Where the advance applies; unknown until the partition's start
            // offset is (see `at_end`).
            let Some(at_offset) = part.next_offset() else {
                continue;
            };
            let state = &mut part.state;
            let elapsed = now.duration_since(state.last_idle_advance).as_millis() as i64;
            // Caught up and idle: follow the thread's newest head; with no
            // head anywhere in the thread (partitions that never got a valid
            // event), the partition's ingest clock.
            let target = match (state.core.head(), frontier) {
                (Some(head), Some(f)) if f > head => Some(f),
                (Some(head), _) if all_idle && elapsed > 0 => Some(head.saturating_add(elapsed)),
                (None, Some(f)) => Some(f),
                (None, None) => Some(state.core.trusted_now(at_offset).unwrap_or(state.clock_ms)),
                _ => None,
            };
            // Only an advance that closes a window is recorded (the record
            // is bounded, `MAX_IDLE_ADVANCES`); until then time accumulates.
            let Some(target) = target.filter(|t| state.core.idle_advance_closes(*t)) else {
                continue;
            };
            if state.core.advance_idle(target, at_offset) {
                state.last_idle_advance = now;
                part.mark_dirty();
                advanced.push(partition);
            } else {
                self.metrics.idle_advance_refused();
            }
        }
        for partition in advanced {
            self.drain_closed(partition, out);
        }
        self.metrics.flush_counts();
        for part in self.partitions.values_mut() {
            self.table_lookups += part.state.core.take_table_lookups();
        }
        let mut lookups = self.enricher.lookup_counts();
        lookups += self.table_lookups;
        self.metrics.enrich_lookups(lookups);
        let replaying = self
            .partitions
            .values()
            .filter(|p| p.is_replaying())
            .count();
        self.metrics
            .flush(self.partitions.values().map(|p| &p.state.core), replaying);
    }

    fn checkpoint(&mut self) -> Result<Vec<PartitionCheckpoint>, CheckpointError> {
        let mut checkpoints = Vec::new();
        let topology = &self.wiring.restore.topology;
        for (&partition, part) in &mut self.partitions {
            if let Some(c) = part.take_checkpoint(partition, topology, |s| s.core.resume_point())? {
                checkpoints.push(c);
            }
        }
        Ok(checkpoints)
    }

    fn reset(&mut self) {
        self.partitions.clear();
        self.note_owned();
        for b in &mut self.batches {
            *b = PartialBatch::default();
        }
    }
}

fn describe(r: Rejection) -> &'static str {
    match r {
        Rejection::MalformedProtobuf => "payload is not a valid rampart.v1.AttackEventBatch",
        Rejection::BatchTooLarge => {
            "batch holds more events (JSON: documents) than validate.max_batch_events"
        }
        Rejection::EmptyBatch => "batch holds no events (JSON: no document)",
        Rejection::MissingTime => "an event has no time_ms",
        Rejection::TimeInFuture => {
            "an event's time is more than validate.max_future ahead of the trusted now (broker append time or ingest clock)"
        }
        Rejection::TimeTooOld => {
            "an event's time is more than validate.max_past behind the trusted now (broker append time or ingest clock)"
        }
        Rejection::MissingSrcIp => "an event has no src_ip",
        Rejection::BadSrcIpLength => "an event's src_ip is neither 4 nor 16 bytes",
        Rejection::MissingDstIp => "an event has no dst_ip",
        Rejection::BadDstIpLength => "an event's dst_ip is neither 4 nor 16 bytes",
        Rejection::PortOutOfRange => "an event's port is above 65535",
        Rejection::ProtocolOutOfRange => "an event's protocol is above 255",
        Rejection::UnknownKind => "an event's kind is not a known AttackKind",
        Rejection::FieldTooLong => "an event's event_id or sensor_id is too long",
        Rejection::MalformedJson => "a document is not valid JSON",
        Rejection::WrongFieldType => "a document field the mapping reads has another JSON type",
        Rejection::MissingField => "a document lacks a field its format's mapping needs",
        Rejection::BadTimestamp => "a document's time does not parse or has no time zone",
        Rejection::BadAddress => "a document's address is not IPv4 or IPv6 text",
        Rejection::UnknownProtocol => "a document's protocol is neither a known name nor a number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_step_keeps_a_horizon_within_half_the_entries_and_below_max_future() {
        const MIN: i64 = 60_000;
        // Defaults (5 min max_future, 10 min horizon): 10 s steps would need
        // 60 entries for the horizon, more than half the cap (32), so the
        // horizon rule lengthens the step to 10 min / 32 = 18.75 s.
        assert_eq!(clock_step_ms(5 * MIN, 10 * MIN), 18_750);
        assert!(10 * MIN / clock_step_ms(5 * MIN, 10 * MIN) <= MAX_CLOCK_ENTRIES as i64 / 2);
        // A short horizon keeps the max_future rule (a tenth, at most 10 s).
        assert_eq!(clock_step_ms(5 * MIN, MIN), 10_000);
        assert_eq!(clock_step_ms(20_000, MIN), 2_000);
        // 1 h horizon: 112.5 s, still below half of max_future.
        assert_eq!(clock_step_ms(5 * MIN, 60 * MIN), 112_500);
        // Never more than half of max_future, whatever the horizon.
        assert_eq!(clock_step_ms(5 * MIN, 24 * 60 * MIN), 150_000);
    }
}
