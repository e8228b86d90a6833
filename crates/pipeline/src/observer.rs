//! What the stage runtime reports about itself: typed [`StageEvent`]s handed
//! to a [`StageObserver`].
//!
//! The runtime (`stage/`) emits events and never touches a metric;
//! `telemetry` implements the observer and owns every metric name, label and
//! the registry (the shape of Vector's `internal_events`). This module sits
//! below both and imports nothing from this crate, so neither has to import
//! the other.

/// Something that happened in a stage's consumer, producer or checkpoint loop.
#[derive(Debug)]
pub(crate) enum StageEvent<'a> {
    /// The stage is built (producer initialised, consumer subscribed).
    Started,
    /// librdkafka's periodic consumer statistics (`statistics.interval.ms`).
    ConsumerStatistics(&'a rdkafka::Statistics),
    /// A rebalance callback ran (assign, revoke or error).
    Rebalance,
    /// `count` input partitions were assigned to this member.
    PartitionsAssigned { count: u64 },
    /// `count` input partitions were taken from this member.
    PartitionsRevoked { count: u64 },
    /// A checkpoint committed (a transaction, or an offset commit); `took`
    /// is the whole commit, the delivery of the output in flight included.
    CheckpointCommitted { took: std::time::Duration },
    /// A checkpoint failed; the stage aborts and rewinds (or stops).
    CheckpointAborted,
    /// The producer reported a record it could not deliver.
    DeliveryFailed,
    /// A consumer error librdkafka retries in place (nothing skipped).
    ConsumerErrorRetried,
}

/// Receives a stage's events. Called from the stage thread and from
/// librdkafka's producer thread (deliveries), so it must be cheap and `Sync`.
pub(crate) trait StageObserver: Send + Sync {
    fn observe(&self, event: StageEvent<'_>);
}
