//! Per-partition checkpoint state shared by both handlers: restoring a
//! partition from its committed offset and metadata, knowing whether it is
//! still replaying, and producing the next checkpoint.
//!
//! - [`Replaying<S>`] wraps a handler's per-partition state `S` with the
//!   offsets that decide replay and checkpoints.
//! - [`encode_metadata`] / [`decode_metadata`] are the one metadata codec
//!   entry point. The text formats are `rampart-core`'s versioned resume
//!   points (`v1;...`; another version is unreadable); the codec enforces
//!   Kafka's offset metadata budget instead of letting the broker reject, or
//!   us truncate, a checkpoint.
//! - [`restore`] refuses a checkpoint it cannot resume exactly (metadata
//!   missing, unreadable or of a newer version; written with other partition
//!   counts, see [`Topology`]); [`on_refused_checkpoint`] is the one policy:
//!   stop the stage, or with `--reset-state` start the partition from its
//!   committed offset with empty state and rewrite its checkpoint.
//!
//! Depends on `rampart-core` only; the runtime and the handlers use it.

use std::sync::Arc;

use rampart_core::ingest::{ResumeError, ResumePoint};
use rampart_core::merge::MergeResumePoint;
use tracing::warn;

use crate::topology::{DRAIN_HINT, RecordedCounts, Topology, recorded_counts};

/// Kafka's default `offset.metadata.max.bytes`: the broker rejects a commit
/// whose metadata is longer.
pub(crate) const METADATA_MAX_BYTES: usize = 4096;

/// What a refused checkpoint's error tells the operator to do.
const RESET_HINT: &str = "to discard this partition's state and go on from its committed offset \
     (events of windows it held open are then missing from their rollups), restart once with \
     `rampart run --reset-state`";

/// Why a partition cannot be checkpointed or restored.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "checkpoint metadata of partition {partition} is {bytes} bytes, over the {budget}-byte \
         budget of Kafka's offset.metadata.max.bytes"
    )]
    MetadataTooLarge {
        partition: i32,
        bytes: usize,
        budget: usize,
    },
    #[error(
        "checkpoint metadata is missing: committed offset {committed_offset} carries none, so \
         the partition's open windows and dedup state cannot be rebuilt; {RESET_HINT}"
    )]
    MissingMetadata { committed_offset: i64 },
    #[error("checkpoint metadata is unreadable ({source}): {text:?}; {RESET_HINT}")]
    UnreadableMetadata {
        text: String,
        #[source]
        source: ResumeError,
    },
    #[error(
        "the checkpoint was written when topic {topic} had {recorded} partitions; it has {now} \
         now; {DRAIN_HINT}"
    )]
    PartitionCountChanged {
        topic: Arc<str>,
        recorded: u32,
        now: u32,
    },
    #[error(
        "topic {topic} has more partitions than the {count} this stage started with; \
         {DRAIN_HINT}"
    )]
    PartitionBeyondCount { topic: Arc<str>, count: u32 },
}

/// How a stage restores its partitions.
#[derive(Clone, Debug)]
pub(crate) struct RestorePolicy {
    pub(crate) topology: Topology,
    /// The stage's own input topic is the partials topic (the merge).
    pub(crate) consumes_partials: bool,
    /// `rampart run --reset-state`.
    pub(crate) reset_state: bool,
}

impl RestorePolicy {
    fn consumed(&self) -> (&Arc<str>, u32) {
        let t = &self.topology;
        if self.consumes_partials {
            (&t.partials_topic, t.partials_partitions)
        } else {
            (&t.input_topic, t.input_partitions)
        }
    }
}

/// What one partition commits: the next offset to read and its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartitionCheckpoint {
    pub(crate) partition: i32,
    pub(crate) next_offset: i64,
    pub(crate) metadata: String,
}

/// A resume point that travels in commit metadata.
pub(crate) trait ResumeMetadata: Sized {
    /// The metadata text, within `budget` bytes if the format can coarsen
    /// itself to fit (longer text is refused by [`encode_metadata`]).
    fn to_metadata(&self, budget: usize) -> String;
    fn from_metadata(text: &str) -> Result<Self, ResumeError>;
    /// The offset a restored partition re-reads from.
    fn replay_from_offset(&self) -> i64;
    /// Empty state that starts reading at `offset` (`--reset-state`): its
    /// next checkpoint must not point a replay below `offset`.
    fn starting_at(offset: i64) -> Self;
}

impl ResumeMetadata for ResumePoint {
    /// Bounded by construction (`rampart_core::ingest::MAX_IDLE_ADVANCES`).
    fn to_metadata(&self, _budget: usize) -> String {
        ResumePoint::to_metadata(self)
    }
    fn from_metadata(text: &str) -> Result<Self, ResumeError> {
        ResumePoint::from_metadata(text)
    }
    fn replay_from_offset(&self) -> i64 {
        self.replay_from_offset
    }
    fn starting_at(offset: i64) -> Self {
        ResumePoint {
            replay_from_offset: offset,
            ..ResumePoint::default()
        }
    }
}

impl ResumeMetadata for MergeResumePoint {
    /// Coarsens the per-input-partition markers when they do not fit.
    fn to_metadata(&self, budget: usize) -> String {
        self.to_metadata_within(budget)
            .unwrap_or_else(|| MergeResumePoint::to_metadata(self))
    }
    fn from_metadata(text: &str) -> Result<Self, ResumeError> {
        MergeResumePoint::from_metadata(text)
    }
    fn replay_from_offset(&self) -> i64 {
        self.replay_from_offset
    }
    fn starting_at(offset: i64) -> Self {
        MergeResumePoint {
            replay_from_offset: offset,
            checkpoint_offset: offset,
            ..MergeResumePoint::default()
        }
    }
}

/// Encodes `resume` and the partition counts for partition `partition`'s
/// commit, refusing text over [`METADATA_MAX_BYTES`].
pub(crate) fn encode_metadata<R: ResumeMetadata>(
    partition: i32,
    resume: &R,
    topology: &Topology,
) -> Result<String, CheckpointError> {
    let suffix = topology.metadata_suffix();
    let mut text = resume.to_metadata(METADATA_MAX_BYTES.saturating_sub(suffix.len()));
    text.push_str(&suffix);
    if text.len() > METADATA_MAX_BYTES {
        return Err(CheckpointError::MetadataTooLarge {
            partition,
            bytes: text.len(),
            budget: METADATA_MAX_BYTES,
        });
    }
    Ok(text)
}

/// Decodes committed metadata written by [`encode_metadata`].
fn decode_metadata<R: ResumeMetadata>(text: &str) -> Result<(R, RecordedCounts), ResumeError> {
    Ok((R::from_metadata(text)?, recorded_counts(text)?))
}

/// Where an assigned partition starts, decided from its committed offset and
/// metadata.
#[derive(Debug)]
pub(crate) struct Restored<R> {
    /// State to rebuild from, if the metadata carried one.
    pub(crate) resume: Option<R>,
    /// Offsets below this were processed before: replay them without output.
    pub(crate) replay_until: i64,
    /// First offset to fetch (`None`: the beginning of the partition).
    pub(crate) fetch_from: Option<i64>,
    /// The committed checkpoint was discarded (`--reset-state`): write a
    /// valid one at the next checkpoint even if nothing arrives.
    pub(crate) rewrite: bool,
}

/// Decides how partition `partition` restarts from what was committed for it:
/// nothing (start at the beginning, empty state) or an offset with a resume
/// point (replay from the resume point up to the offset). A checkpoint that
/// cannot be resumed exactly goes to [`on_refused_checkpoint`]; a partition
/// the stage's partition count does not cover is refused always.
pub(crate) fn restore<R: ResumeMetadata>(
    partition: i32,
    committed: Option<(i64, &str)>,
    policy: &RestorePolicy,
) -> Result<Restored<R>, CheckpointError> {
    let (topic, count) = policy.consumed();
    if u32::try_from(partition).map_or(true, |p| p >= count) {
        return Err(CheckpointError::PartitionBeyondCount {
            topic: topic.clone(),
            count,
        });
    }
    let (offset, refused) = match committed {
        None => {
            return Ok(Restored {
                resume: None,
                replay_until: 0,
                fetch_from: None,
                rewrite: false,
            });
        }
        Some((offset, "")) => (
            offset,
            CheckpointError::MissingMetadata {
                committed_offset: offset,
            },
        ),
        Some((offset, text)) => match decode_metadata::<R>(text) {
            Ok((resume, recorded)) => {
                match policy
                    .topology
                    .changed(recorded)
                    .map(
                        |(topic, recorded, now)| CheckpointError::PartitionCountChanged {
                            topic,
                            recorded,
                            now,
                        },
                    ) {
                    None => {
                        return Ok(Restored {
                            fetch_from: Some(resume.replay_from_offset()),
                            resume: Some(resume),
                            replay_until: offset,
                            rewrite: false,
                        });
                    }
                    Some(changed) => (offset, changed),
                }
            }
            Err(source) => (
                offset,
                CheckpointError::UnreadableMetadata {
                    text: text.chars().take(80).collect(),
                    source,
                },
            ),
        },
    };
    on_refused_checkpoint(partition, offset, refused, policy.reset_state)
}

/// The one policy for a committed checkpoint that cannot be resumed exactly:
/// stop the stage with `error` (it says what to do), or, under
/// `--reset-state`, start the partition from its committed offset with empty
/// state and rewrite its checkpoint.
fn on_refused_checkpoint<R: ResumeMetadata>(
    partition: i32,
    committed_offset: i64,
    error: CheckpointError,
    reset_state: bool,
) -> Result<Restored<R>, CheckpointError> {
    if !reset_state {
        return Err(error);
    }
    warn!(
        partition,
        committed_offset,
        %error,
        "--reset-state: starting the partition from its committed offset with empty state"
    );
    Ok(Restored {
        resume: Some(R::starting_at(committed_offset)),
        replay_until: committed_offset,
        fetch_from: Some(committed_offset),
        rewrite: true,
    })
}

/// A handler's state for one input partition plus the offsets that decide
/// replay and checkpoints.
#[derive(Debug)]
pub(crate) struct Replaying<S> {
    pub(crate) state: S,
    /// Offsets below this were processed before the last restart: replaying
    /// them rebuilds state; their outputs were already written.
    replay_until: i64,
    /// Next offset to read (last processed + 1), `None` before the first message.
    next_offset: Option<i64>,
    /// Something changed since the last checkpoint.
    dirty: bool,
}

impl<S> Replaying<S> {
    /// A restored partition whose state `build` makes from the resume point.
    pub(crate) fn new<R>(restored: Restored<R>, build: impl FnOnce(Option<&R>) -> S) -> Self {
        Replaying {
            state: build(restored.resume.as_ref()),
            replay_until: restored.replay_until,
            next_offset: restored.fetch_from,
            dirty: restored.rewrite,
        }
    }

    /// The next offset to read; before the first message, where fetching starts.
    pub(crate) fn next_offset(&self) -> Option<i64> {
        self.next_offset
    }

    /// Still re-reading input processed before the restart.
    pub(crate) fn is_replaying(&self) -> bool {
        self.next_offset.is_some_and(|o| o < self.replay_until)
    }

    /// The message at `offset` is being processed; returns whether it is a
    /// replay (its outputs were written before and must not be again).
    pub(crate) fn note(&mut self, offset: i64) -> bool {
        self.next_offset = Some(offset + 1);
        self.dirty = true;
        offset < self.replay_until
    }

    /// The state changed without a message (an idle advance).
    pub(crate) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// The consumer reached the end of a partition it never got a message
    /// from, fetching from its beginning; `start` is where that is (the low
    /// watermark), so the partition can commit it with its state.
    pub(crate) fn note_start(&mut self, start: i64) {
        if self.next_offset.is_none() {
            self.next_offset = Some(start);
        }
    }

    /// Where fetching started has yet to be learned (see [`Self::note_start`]).
    pub(crate) fn start_unknown(&self) -> bool {
        self.next_offset.is_none()
    }

    /// The checkpoint to commit, if anything changed and replay is over;
    /// `resume_point` reads the state's resume point.
    pub(crate) fn take_checkpoint<R: ResumeMetadata>(
        &mut self,
        partition: i32,
        topology: &Topology,
        resume_point: impl FnOnce(&S) -> R,
    ) -> Result<Option<PartitionCheckpoint>, CheckpointError> {
        let Some(next_offset) = self.next_offset else {
            return Ok(None);
        };
        if !self.dirty || next_offset < self.replay_until {
            return Ok(None);
        }
        let metadata = encode_metadata(partition, &resume_point(&self.state), topology)?;
        self.dirty = false;
        Ok(Some(PartitionCheckpoint {
            partition,
            next_offset,
            metadata,
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
