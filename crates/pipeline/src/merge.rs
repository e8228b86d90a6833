//! The merge stage: partials and window-close markers in; final rollups out.
//!
//! One `rampart_core::merge::Merger` per partials partition. A window is final
//! when every input partition has closed it; its rollups go to the compacted
//! rollup topic keyed `dimension/key/window_start_ms`.
//!
//! Partials are never dead-lettered: a batch that does not decode, that the
//! merger refuses, or that was routed with another partials partition count
//! than the topic has stops the stage (going past it would lose its counts
//! or publish a key twice).

use std::sync::Arc;
use std::time::Instant;

use prost::Message as _;
use rampart_core::merge::{MergeResumePoint, Merger};
use rampart_core::proto::v1::Rollup;
use rampart_core::proto::v1::internal::PartialBatch;
use rdkafka::message::{BorrowedMessage, Message};
use rustc_hash::FxHashMap;

use crate::checkpoint::{self, CheckpointError, PartitionCheckpoint, Replaying, RestorePolicy};
use crate::records::{OutRecord, rollup_key};
use crate::stage::{Handler, Refused, Start};
use crate::telemetry::MergeMetrics;

/// Static wiring of the merge stage.
#[derive(Clone, Debug)]
pub(crate) struct MergeWiring {
    pub(crate) rollups_topic: Arc<str>,
    /// The partition counts routed by, and what a refused checkpoint does.
    pub(crate) restore: RestorePolicy,
    pub(crate) window_size_ms: i64,
}

pub(crate) struct MergeHandler {
    wiring: MergeWiring,
    partitions: FxHashMap<i32, Replaying<Merger>>,
    rollups: Vec<Rollup>,
    metrics: MergeMetrics,
}

impl MergeHandler {
    pub(crate) fn new(wiring: MergeWiring, metrics: MergeMetrics) -> Self {
        MergeHandler {
            wiring,
            partitions: FxHashMap::default(),
            rollups: Vec::new(),
            metrics,
        }
    }
}

impl Handler for MergeHandler {
    fn assign(
        &mut self,
        partition: i32,
        committed: Option<(i64, &str)>,
    ) -> Result<Start, CheckpointError> {
        let restored =
            checkpoint::restore::<MergeResumePoint>(partition, committed, &self.wiring.restore)?;
        let window_size_ms = self.wiring.window_size_ms;
        let part = Replaying::new(restored, |resume| match resume {
            Some(resume) => Merger::resume(window_size_ms, resume),
            None => Merger::new(window_size_ms),
        });
        let fetch_from = part.next_offset();
        self.partitions.insert(partition, part);
        Ok(Start { fetch_from })
    }

    fn revoke(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    fn process(
        &mut self,
        msg: &BorrowedMessage<'_>,
        out: &mut Vec<OutRecord>,
    ) -> Result<(), Refused> {
        let partition = msg.partition();
        let offset = msg.offset();
        let Some(part) = self.partitions.get_mut(&partition) else {
            return Ok(());
        };
        let replaying = part.note(offset);
        if !replaying {
            self.metrics.received(msg.payload_len());
        }
        let mut batch = PartialBatch::decode(msg.payload().unwrap_or_default()).map_err(|e| {
            self.metrics.malformed();
            Refused(format!("partials message does not decode: {e}"))
        })?;
        let routing = self.wiring.restore.topology.partials_partitions;
        // 0: written by a rampart that did not record its routing.
        if batch.partials_partitions != 0 && batch.partials_partitions != routing {
            return Err(Refused(format!(
                "partials routed for {} partitions, but topic {} has {routing}; {}",
                batch.partials_partitions,
                self.wiring.restore.topology.partials_topic,
                crate::topology::DRAIN_HINT
            )));
        }
        if self.wiring.restore.reset_state {
            // After a drain and a partition count change, markers the ingest
            // wrote under the old count can follow the committed offset; the
            // windows they close are final already.
            let input_partitions = self.wiring.restore.topology.input_partitions;
            batch
                .closed
                .retain(|marker| marker.input_partitions == input_partitions);
        }
        let before = part.state.stats();
        part.state.apply(&batch, offset).map_err(|e| {
            self.metrics.malformed();
            Refused(format!("partials refused by the merger: {e}"))
        })?;
        if !replaying {
            let after = part.state.stats();
            self.metrics.partials_dropped(
                after.duplicate_partials - before.duplicate_partials,
                after.partials_after_close - before.partials_after_close,
                after.partials_after_final - before.partials_after_final,
            );
        }
        self.rollups.clear();
        part.state.take_final(&mut self.rollups);
        if self.rollups.is_empty() {
            return Ok(());
        }
        let sent_from = out.len();
        for r in &self.rollups {
            out.push(OutRecord {
                topic: self.wiring.rollups_topic.clone(),
                partition: None,
                key: Some(rollup_key(r).into_bytes()),
                payload: Some(r.encode_to_vec()),
                headers: None,
            });
        }
        let bytes = out
            .get(sent_from..)
            .unwrap_or_default()
            .iter()
            .map(|o| o.payload.as_ref().map_or(0, Vec::len))
            .sum();
        // The message that made these windows final carries the last close marker.
        let closable_at = (!replaying).then(|| msg.timestamp().to_millis()).flatten();
        self.metrics.published(&self.rollups, bytes, closable_at);
        self.rollups.clear();
        Ok(())
    }

    fn tick(&mut self, _now: Instant, _out: &mut Vec<OutRecord>) {
        let replaying = self
            .partitions
            .values()
            .filter(|p| p.is_replaying())
            .count();
        let final_before = self
            .partitions
            .values()
            .filter_map(|p| p.state.final_before())
            .min();
        self.metrics.flush(replaying, final_before);
    }

    fn checkpoint(&mut self) -> Result<Vec<PartitionCheckpoint>, CheckpointError> {
        let mut checkpoints = Vec::new();
        let topology = &self.wiring.restore.topology;
        for (&partition, part) in &mut self.partitions {
            if let Some(c) = part.take_checkpoint(partition, topology, Merger::resume_point)? {
                checkpoints.push(c);
            }
        }
        Ok(checkpoints)
    }

    fn reset(&mut self) {
        self.partitions.clear();
    }
}
