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
//! - [`on_unreadable_metadata`] is the one policy for committed metadata that
//!   cannot be decoded.
//!
//! Depends on `rampart-core` only; the runtime and the handlers use it.

use rampart_core::ingest::{ResumeError, ResumePoint};
use rampart_core::merge::MergeResumePoint;
use tracing::warn;

/// Kafka's default `offset.metadata.max.bytes`: the broker rejects a commit
/// whose metadata is longer.
pub(crate) const METADATA_MAX_BYTES: usize = 4096;

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
    #[error("committed checkpoint metadata of partition {partition} is unreadable: {source}")]
    UnreadableMetadata {
        partition: i32,
        #[source]
        source: ResumeError,
    },
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
    fn to_metadata(&self) -> String;
    fn from_metadata(text: &str) -> Result<Self, ResumeError>;
    /// The offset a restored partition re-reads from.
    fn replay_from_offset(&self) -> i64;
}

impl ResumeMetadata for ResumePoint {
    fn to_metadata(&self) -> String {
        ResumePoint::to_metadata(self)
    }
    fn from_metadata(text: &str) -> Result<Self, ResumeError> {
        ResumePoint::from_metadata(text)
    }
    fn replay_from_offset(&self) -> i64 {
        self.replay_from_offset
    }
}

impl ResumeMetadata for MergeResumePoint {
    fn to_metadata(&self) -> String {
        MergeResumePoint::to_metadata(self)
    }
    fn from_metadata(text: &str) -> Result<Self, ResumeError> {
        MergeResumePoint::from_metadata(text)
    }
    fn replay_from_offset(&self) -> i64 {
        self.replay_from_offset
    }
}

/// Encodes `resume` for partition `partition`'s commit, refusing text over
/// [`METADATA_MAX_BYTES`].
pub(crate) fn encode_metadata<R: ResumeMetadata>(
    partition: i32,
    resume: &R,
) -> Result<String, CheckpointError> {
    let text = resume.to_metadata();
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
pub(crate) fn decode_metadata<R: ResumeMetadata>(text: &str) -> Result<R, ResumeError> {
    R::from_metadata(text)
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
}

impl<R> Restored<R> {
    /// Empty state, reading on from `committed_offset`.
    fn empty_from(committed_offset: i64) -> Self {
        Restored {
            resume: None,
            replay_until: committed_offset,
            fetch_from: Some(committed_offset),
        }
    }
}

/// Decides how partition `partition` restarts from what was committed for it:
/// nothing (start at the beginning, empty state), an offset without metadata
/// (start there, empty state) or an offset with a resume point (replay from
/// the resume point up to the offset).
pub(crate) fn restore<R: ResumeMetadata>(
    partition: i32,
    committed: Option<(i64, &str)>,
) -> Result<Restored<R>, CheckpointError> {
    match committed {
        None => Ok(Restored {
            resume: None,
            replay_until: 0,
            fetch_from: None,
        }),
        Some((offset, "")) => Ok(Restored::empty_from(offset)),
        Some((offset, metadata)) => match decode_metadata::<R>(metadata) {
            Ok(resume) => Ok(Restored {
                fetch_from: Some(resume.replay_from_offset()),
                resume: Some(resume),
                replay_until: offset,
            }),
            Err(source) => on_unreadable_metadata(partition, offset, source),
        },
    }
}

/// The one policy for committed metadata that cannot be decoded: the
/// partition starts from its committed offset with empty state, and a warning
/// names the error. (Refusing to start instead is a matter of returning
/// `Err(error)` here.)
fn on_unreadable_metadata<R>(
    partition: i32,
    committed_offset: i64,
    source: ResumeError,
) -> Result<Restored<R>, CheckpointError> {
    let error = CheckpointError::UnreadableMetadata { partition, source };
    warn!(
        partition,
        committed_offset,
        %error,
        "starting the partition from its committed offset with empty state"
    );
    Ok(Restored::empty_from(committed_offset))
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
            dirty: false,
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

    /// The checkpoint to commit, if anything changed and replay is over;
    /// `resume_point` reads the state's resume point.
    pub(crate) fn take_checkpoint<R: ResumeMetadata>(
        &mut self,
        partition: i32,
        resume_point: impl FnOnce(&S) -> R,
    ) -> Result<Option<PartitionCheckpoint>, CheckpointError> {
        let Some(next_offset) = self.next_offset else {
            return Ok(None);
        };
        if !self.dirty || next_offset < self.replay_until {
            return Ok(None);
        }
        let metadata = encode_metadata(partition, &resume_point(&self.state))?;
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
        fn to_metadata(&self) -> String {
            "x".repeat(self.0)
        }
        fn from_metadata(text: &str) -> Result<Self, ResumeError> {
            Ok(FixedLength(text.len()))
        }
        fn replay_from_offset(&self) -> i64 {
            0
        }
    }

    #[test]
    fn metadata_over_kafkas_budget_is_refused_not_truncated() {
        assert_eq!(encode_metadata(3, &FixedLength(4096)).unwrap().len(), 4096);
        match encode_metadata(3, &FixedLength(4097)) {
            Err(CheckpointError::MetadataTooLarge {
                partition: 3,
                bytes: 4097,
                budget: 4096,
            }) => {}
            other => panic!("expected MetadataTooLarge, got {other:?}"),
        }
    }

    #[test]
    fn ingest_resume_point_round_trips() {
        let resume = ResumePoint {
            replay_from_offset: 40,
            head_before: Some(1_000),
            emitted_before: None,
            idle_advances: vec![(41, 2_000)],
            clock: vec![(40, 1_700_000_000_000), (45, 1_700_000_010_000)],
        };
        let text = encode_metadata(0, &resume).unwrap();
        // The clock after its first entry as differences: +5 offsets, +10 s.
        assert_eq!(
            text,
            "v1;r=40;h=1000;e=-;i=41:2000;c=40:1700000000000,+5:+10000"
        );
        assert_eq!(decode_metadata::<ResumePoint>(&text).unwrap(), resume);
    }

    #[test]
    fn nothing_committed_starts_at_the_beginning() {
        let restored = restore::<ResumePoint>(0, None).unwrap();
        assert!(restored.resume.is_none());
        assert_eq!((restored.replay_until, restored.fetch_from), (0, None));
    }

    #[test]
    fn offset_without_metadata_starts_there_with_empty_state() {
        let restored = restore::<MergeResumePoint>(0, Some((17, ""))).unwrap();
        assert!(restored.resume.is_none());
        assert_eq!((restored.replay_until, restored.fetch_from), (17, Some(17)));
    }

    #[test]
    fn resume_point_replays_from_its_offset_up_to_the_committed_one() {
        let restored = restore::<ResumePoint>(0, Some((50, "v1;r=30;h=-;e=-;i="))).unwrap();
        assert_eq!(
            restored.resume.as_ref().map(|r| r.replay_from_offset),
            Some(30)
        );
        assert_eq!((restored.replay_until, restored.fetch_from), (50, Some(30)));
        let mut part = Replaying::new(restored, |_| ());
        assert!(part.is_replaying());
        assert!(part.note(30), "offset 30 < 50 is a replay");
        assert_eq!(part.take_checkpoint(0, |_| FixedLength(1)).unwrap(), None);
        assert!(!part.note(50), "offset 50 is new input");
        assert!(!part.is_replaying());
        let checkpoint = part
            .take_checkpoint(0, |_| FixedLength(1))
            .unwrap()
            .unwrap();
        assert_eq!(
            (checkpoint.next_offset, checkpoint.metadata.as_str()),
            (51, "x")
        );
        assert_eq!(
            part.take_checkpoint(0, |_| FixedLength(1)).unwrap(),
            None,
            "clean now"
        );
    }

    #[test]
    fn unreadable_or_other_version_metadata_starts_empty_from_the_committed_offset() {
        for text in ["garbage", "v2;r=30;h=-;e=-;i=", "v1;r=x;h=-;e=-;i="] {
            let restored = restore::<ResumePoint>(0, Some((50, text))).unwrap();
            assert!(restored.resume.is_none(), "{text}");
            assert_eq!((restored.replay_until, restored.fetch_from), (50, Some(50)));
        }
    }
}
