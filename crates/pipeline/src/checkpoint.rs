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
mod tests {
    use super::*;

    /// A resume point whose metadata is `len` bytes of `x`.
    struct FixedLength(usize);

    impl ResumeMetadata for FixedLength {
        fn to_metadata(&self, _budget: usize) -> String {
            "x".repeat(self.0)
        }
        fn from_metadata(text: &str) -> Result<Self, ResumeError> {
            Ok(FixedLength(text.len()))
        }
        fn replay_from_offset(&self) -> i64 {
            0
        }
        fn starting_at(_offset: i64) -> Self {
            FixedLength(0)
        }
    }

    fn topology() -> Topology {
        Topology {
            input_topic: "raw".into(),
            input_partitions: 4,
            input_base: 0,
            input_total: 4,
            partials_topic: "partials".into(),
            partials_partitions: 3,
        }
    }

    fn policy(reset_state: bool) -> RestorePolicy {
        RestorePolicy {
            topology: topology(),
            consumes_partials: false,
            reset_state,
        }
    }

    const COUNTS: &str = ";n=4;p=3";

    #[test]
    fn metadata_over_kafkas_budget_is_refused_not_truncated() {
        let fits = 4096 - COUNTS.len();
        let text = encode_metadata(3, &FixedLength(fits), &topology()).unwrap();
        assert_eq!(text.len(), 4096);
        match encode_metadata(3, &FixedLength(fits + 1), &topology()) {
            Err(CheckpointError::MetadataTooLarge {
                partition: 3,
                bytes: 4097,
                budget: 4096,
            }) => {}
            other => panic!("expected MetadataTooLarge, got {other:?}"),
        }
    }

    #[test]
    fn ingest_resume_point_round_trips_with_the_partition_counts() {
        let resume = ResumePoint {
            replay_from_offset: 40,
            head_before: Some(1_000),
            emitted_before: None,
            idle_advances: vec![(41, 2_000)],
            clock: vec![(40, 1_700_000_000_000), (45, 1_700_000_010_000)],
        };
        let text = encode_metadata(0, &resume, &topology()).unwrap();
        // The clock after its first entry as differences: +5 offsets, +10 s.
        assert_eq!(
            text,
            "v1;r=40;h=1000;e=-;i=41:2000;c=40:1700000000000,+5:+10000;n=4;p=3"
        );
        let (decoded, counts) = decode_metadata::<ResumePoint>(&text).unwrap();
        assert_eq!(decoded, resume);
        assert_eq!(
            counts,
            RecordedCounts {
                input: Some(4),
                partials: Some(3),
                ..RecordedCounts::default()
            }
        );
    }

    #[test]
    fn several_inputs_record_their_numbering_and_refuse_another() {
        // The second of two inputs: 3 partitions numbered 4..7 of 7.
        let second = Topology {
            input_topic: "zeek".into(),
            input_partitions: 3,
            input_base: 4,
            input_total: 7,
            ..topology()
        };
        let resume = ResumePoint {
            replay_from_offset: 1,
            ..ResumePoint::default()
        };
        let text = encode_metadata(0, &resume, &second).unwrap();
        assert!(text.ends_with(";n=3;p=3;b=4;t=7"), "{text}");
        let (_, counts) = decode_metadata::<ResumePoint>(&text).unwrap();
        assert_eq!(second.changed(counts), None);
        // Inputs reordered (same counts, another base), or one more input.
        let reordered = Topology {
            input_base: 0,
            ..second.clone()
        };
        assert_eq!(reordered.changed(counts).map(|c| (c.1, c.2)), Some((4, 0)));
        let grown = Topology {
            input_total: 9,
            ..second.clone()
        };
        assert_eq!(grown.changed(counts).map(|c| (c.1, c.2)), Some((7, 9)));
        // A single input's checkpoint (no b/t) under two inputs: its total was n.
        let single = encode_metadata(0, &resume, &topology()).unwrap();
        assert!(single.ends_with(";n=4;p=3"), "{single}");
        let (_, counts) = decode_metadata::<ResumePoint>(&single).unwrap();
        let first_of_two = Topology {
            input_total: 7,
            ..topology()
        };
        assert_eq!(
            first_of_two.changed(counts).map(|c| (c.1, c.2)),
            Some((4, 7))
        );
        assert_eq!(topology().changed(counts), None);
    }

    #[test]
    fn merge_markers_of_any_partition_count_fit_the_budget() {
        // 100 000 input partitions, every marker different: the exact text
        // would be ~1.4 MB.
        let resume = MergeResumePoint {
            replay_from_offset: i64::MAX / 2,
            checkpoint_offset: i64::MAX / 2,
            finalized_before: Some(1_700_000_000_000),
            closed: (0..100_000).map(|i| Some(1_700_000_000_000 + i)).collect(),
        };
        let text = encode_metadata(0, &resume, &topology()).unwrap();
        assert!(text.len() <= 4096, "{}", text.len());
        let (decoded, _) = decode_metadata::<MergeResumePoint>(&text).unwrap();
        assert_eq!(decoded.finalized_before, resume.finalized_before);
        assert!(
            decoded.closed.iter().all(|c| *c == Some(1_700_000_000_000)),
            "coarsened to the lowest marker"
        );
    }

    #[test]
    fn nothing_committed_starts_at_the_beginning() {
        let restored = restore::<ResumePoint>(0, None, &policy(false)).unwrap();
        assert!(restored.resume.is_none());
        assert_eq!((restored.replay_until, restored.fetch_from), (0, None));
    }

    #[test]
    fn resume_point_replays_from_its_offset_up_to_the_committed_one() {
        let text = format!("v1;r=30;h=-;e=-;i={COUNTS}");
        let restored = restore::<ResumePoint>(0, Some((50, &text)), &policy(false)).unwrap();
        assert_eq!(
            restored.resume.as_ref().map(|r| r.replay_from_offset),
            Some(30)
        );
        assert_eq!((restored.replay_until, restored.fetch_from), (50, Some(30)));
        let mut part = Replaying::new(restored, |_| ());
        assert!(part.is_replaying());
        assert!(part.note(30), "offset 30 < 50 is a replay");
        let fixed = |_: &()| FixedLength(1);
        assert_eq!(part.take_checkpoint(0, &topology(), fixed).unwrap(), None);
        assert!(!part.note(50), "offset 50 is new input");
        assert!(!part.is_replaying());
        let checkpoint = part
            .take_checkpoint(0, &topology(), fixed)
            .unwrap()
            .unwrap();
        assert_eq!(
            (checkpoint.next_offset, checkpoint.metadata.as_str()),
            (51, "x;n=4;p=3")
        );
        assert_eq!(
            part.take_checkpoint(0, &topology(), fixed).unwrap(),
            None,
            "clean now"
        );
    }

    #[test]
    fn metadata_written_before_counts_were_recorded_resumes() {
        let restored =
            restore::<ResumePoint>(0, Some((50, "v1;r=30;h=-;e=-;i=")), &policy(false)).unwrap();
        assert!(restored.resume.is_some());
    }

    #[test]
    fn missing_unreadable_or_newer_metadata_is_refused_with_what_to_do() {
        let cases = [
            ("", "missing"),
            ("garbage", "unreadable"),
            ("v1;r=x;h=-;e=-;i=", "unreadable"),
            ("v2;r=30;h=-;e=-;i=", "newer"),
        ];
        for (text, what) in cases {
            let error = restore::<ResumePoint>(0, Some((50, text)), &policy(false)).unwrap_err();
            let message = error.to_string();
            assert!(message.contains(what), "{text:?}: {message}");
            assert!(message.contains("--reset-state"), "{message}");
        }
    }

    #[test]
    fn reset_state_starts_a_refused_partition_empty_and_rewrites_its_checkpoint() {
        for text in ["", "garbage", "v2;r=30", "v1;r=30;h=-;e=-;i=;n=2;p=3"] {
            let restored = restore::<ResumePoint>(0, Some((50, text)), &policy(true)).unwrap();
            assert_eq!(
                restored.resume,
                Some(ResumePoint {
                    replay_from_offset: 50,
                    ..ResumePoint::default()
                }),
                "empty state that never replays below the committed offset: {text}"
            );
            assert_eq!((restored.replay_until, restored.fetch_from), (50, Some(50)));
            let mut part = Replaying::new(restored, |resume| resume.cloned());
            let checkpoint = part
                .take_checkpoint(0, &topology(), |state| state.clone().unwrap_or_default())
                .unwrap()
                .unwrap();
            assert_eq!(
                (checkpoint.next_offset, checkpoint.metadata.as_str()),
                (50, "v1;r=50;h=-;e=-;i=;n=4;p=3"),
                "nothing arrived, yet a valid checkpoint is written"
            );
        }
    }

    #[test]
    fn changed_partition_counts_are_refused_naming_the_topic() {
        for (text, topic, recorded) in [
            ("v1;r=30;h=-;e=-;i=;n=2;p=3", "raw", "2"),
            ("v1;r=30;h=-;e=-;i=;n=4;p=5", "partials", "5"),
        ] {
            let message = restore::<ResumePoint>(0, Some((50, text)), &policy(false))
                .unwrap_err()
                .to_string();
            for needle in [topic, recorded, "drain", "--reset-state"] {
                assert!(message.contains(needle), "{needle}: {message}");
            }
        }
    }

    #[test]
    fn a_partition_beyond_the_stage_count_is_refused_even_under_reset_state() {
        let error = restore::<ResumePoint>(4, None, &policy(true)).unwrap_err();
        assert!(matches!(
            error,
            CheckpointError::PartitionBeyondCount { count: 4, .. }
        ));
        let mut merge = policy(false);
        merge.consumes_partials = true;
        assert!(restore::<MergeResumePoint>(3, None, &merge).is_err());
        assert!(restore::<MergeResumePoint>(2, None, &merge).is_ok());
    }
}
