//! The ingest checkpoint metadata stays within Kafka's 4096-byte
//! `offset.metadata.max.bytes` however many idle advances a partition takes.

use rampart_core::ingest::{IngestConfig, MAX_IDLE_ADVANCES, PartitionIngest, ResumePoint};

#[test]
fn idle_advances_beyond_the_cap_are_refused_and_change_nothing() {
    let mut ingest = PartitionIngest::new(IngestConfig::default(), 0, 4);
    let mut taken = 0;
    let mut last_taken = None;
    for i in 0..(MAX_IDLE_ADVANCES as i64 + 20) {
        let head = 1_000_000 + i * 60_000;
        if ingest.advance_idle(head, 10 + i) {
            taken += 1;
            last_taken = Some(head);
        }
        assert_eq!(
            ingest.head(),
            last_taken,
            "a refused advance changes nothing"
        );
    }
    assert_eq!(taken, MAX_IDLE_ADVANCES);
    // At the offset of the last recorded entry an advance still works (it
    // raises that entry, adding none); at a new offset it is refused.
    let last_offset = 10 + MAX_IDLE_ADVANCES as i64 - 1;
    let head = ingest.head().unwrap_or_default();
    assert!(ingest.advance_idle(head + 1, last_offset));
    assert!(!ingest.advance_idle(head + 2, last_offset + 1));
    assert_eq!(
        ingest.resume_point().idle_advances.len(),
        1,
        "the replay starts at the last"
    );
}

#[test]
fn a_full_worst_case_resume_point_fits_the_budget() {
    let worst = ResumePoint {
        replay_from_offset: i64::MIN,
        head_before: Some(i64::MIN),
        emitted_before: Some(i64::MIN),
        idle_advances: vec![(i64::MIN, i64::MIN); MAX_IDLE_ADVANCES],
        // The ingest clock is not bounded here (see ARCHITECTURE.md).
        clock: Vec::new(),
    };
    // Plus the partition counts the pipeline appends (`;n=<u32>;p=<u32>`).
    let counts = format!(";n={};p={}", u32::MAX, u32::MAX);
    let text = worst.to_metadata() + &counts;
    assert!(text.len() <= 4096, "{} bytes", text.len());
}
