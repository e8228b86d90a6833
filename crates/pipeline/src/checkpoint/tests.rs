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
