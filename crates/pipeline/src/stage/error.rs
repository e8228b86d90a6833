//! The errors that stop a stage; `rampart run` exits non-zero with them.

use rdkafka::error::KafkaError;

use crate::checkpoint::CheckpointError;

/// Errors that stop a stage.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("kafka client setup failed: {0}")]
    Setup(#[source] KafkaError),
    #[error("fatal kafka error (this instance may have been fenced by a newer one): {0}")]
    Fatal(#[source] KafkaError),
    /// Kafka's authorizer refuses an operation the stage needs; no retry can succeed.
    #[error("refused by Kafka's ACLs: {0}")]
    Denied(#[source] KafkaError),
    #[error("{0}")]
    Checkpoint(#[from] CheckpointError),
    /// A consumer error that skips input records; rampart stops rather than
    /// lose them silently (see `consumer_error`).
    #[error(
        "{stage}: consumer error that would skip input records: {error} ({report}); stopping \
         instead of skipping them (README, \"Consumer errors\")"
    )]
    RecordsSkipped {
        stage: &'static str,
        #[source]
        error: KafkaError,
        report: String,
    },
    /// The consumer's position could not be set or read, so the rebuilt state
    /// and the records fetched next would not match.
    #[error("{stage}: {what} failed: {error}; stopping for a restart")]
    Recovery {
        stage: &'static str,
        what: &'static str,
        #[source]
        error: KafkaError,
    },
    #[error(
        "the {stage} stage cannot start partition {partition} of topic {topic} (consumer group \
         {group}): {source}"
    )]
    Start {
        stage: &'static str,
        topic: String,
        group: String,
        partition: i32,
        #[source]
        source: Box<CheckpointError>,
    },
    #[error(
        "the {stage} stage stopped at offset {offset} of partition {partition} of topic {topic}: \
         {reason}"
    )]
    Refused {
        stage: &'static str,
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
    /// A record over the producer's `message.max.bytes`, which would fail on
    /// every retry.
    #[error(
        "the {stage} stage made a {size} byte record for topic {topic}, over the producer's \
         message.max.bytes ({limit}); it would fail on every retry, so the stage stops (a \
         partial that large: lower keys.count_entries or raise message.max.bytes)"
    )]
    RecordTooLarge {
        stage: &'static str,
        topic: String,
        size: usize,
        limit: usize,
    },
    /// The same input failed again after every abort and replay.
    #[error(
        "the {stage} stage failed {rewinds} times in a row at the same input position of topic \
         {topic} (partition@committed offset: {positions}), each time after an abort and a \
         replay; last failure: {last_failure}. A record rampart cannot write (too large for the \
         producer's or the topic's message size limit, or a topic it may not write to) fails the \
         same way on every retry; stopping (README, \"When something fails\")"
    )]
    NoProgress {
        stage: &'static str,
        topic: String,
        rewinds: u32,
        positions: String,
        last_failure: String,
    },
    #[error(
        "topic {topic} has {now} partitions now; the {stage} stage started with {built}; \
         {}",
        crate::topology::DRAIN_HINT
    )]
    TopicResized {
        stage: &'static str,
        topic: String,
        built: u32,
        now: u32,
    },
}
