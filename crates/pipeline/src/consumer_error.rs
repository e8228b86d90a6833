//! What a consumer error from `poll` means for the records behind it.
//!
//! librdkafka reports three kinds of trouble through the consumer queue:
//! - end of partition: a signal (the partition is caught up), not an error;
//! - connection and cluster trouble (a broker down, a leader moving, a
//!   coordinator loading): librdkafka retries the fetch from the same offset,
//!   so nothing is skipped — logged and counted, the stage goes on;
//! - errors about records: a message set it cannot decompress or parse, an
//!   unsupported codec or feature, an offset that no longer exists (deleted
//!   by retention before it was read; the stage consumers run with
//!   `auto.offset.reset = error`, so librdkafka reports it instead of jumping
//!   elsewhere). librdkafka moves past such records, and rdkafka hands the
//!   error over without its partition and offset, so the stage cannot
//!   dead-letter their coordinates: it stops with an error instead.
//!
//! Any code not known to be harmless stops the stage too: an error that can
//! skip records must never be logged and passed over. A leaf module.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tracing::warn;

/// Attempts at reading committed offsets before the stage gives up.
const COMMITTED_ATTEMPTS: u32 = 3;

/// What the stage does about one error from `poll`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConsumerErrorClass {
    /// The consumer has read everything the partition holds right now.
    EndOfPartition(i32),
    /// librdkafka retries from the same position; nothing was skipped.
    Retried,
    /// Records were (or would be) skipped: the stage stops.
    RecordsSkipped,
    /// Fatal for the client, or unknown: the stage stops.
    Fatal,
}

/// Classifies one error returned by the consumer's `poll`.
pub(crate) fn classify(error: &KafkaError) -> ConsumerErrorClass {
    use RDKafkaErrorCode as C;
    let code = match error {
        KafkaError::PartitionEOF(partition) => {
            return ConsumerErrorClass::EndOfPartition(*partition);
        }
        KafkaError::MessageConsumptionFatal(_) => return ConsumerErrorClass::Fatal,
        KafkaError::MessageConsumption(code) => *code,
        _ => return ConsumerErrorClass::Fatal,
    };
    match code {
        // Message sets librdkafka cannot read: it moves past them.
        C::BadMessage
        | C::BadCompression
        | C::InvalidMessage
        | C::InvalidMessageSize
        | C::InvalidRecord
        | C::UnsupportedCompressionType
        | C::UnsupportedForMessageFormat
        | C::NotImplemented
        | C::UnsupportedFeature
        | C::KeyDeserialization
        | C::ValueDeserialization
        // An offset that no longer exists (retention, DeleteRecords) or a
        // log that was truncated under us: records between the position and
        // where librdkafka could resume are gone.
        | C::AutoOffsetReset
        | C::OffsetOutOfRange
        | C::LogTruncation => ConsumerErrorClass::RecordsSkipped,
        // Connection, leadership and coordinator trouble: retried in place.
        C::BrokerTransportFailure
        | C::AllBrokersDown
        | C::Resolve
        | C::OperationTimedOut
        | C::TimedOutQueue
        | C::RequestTimedOut
        | C::NetworkException
        | C::LeaderNotAvailable
        | C::NotLeaderForPartition
        | C::BrokerNotAvailable
        | C::ReplicaNotAvailable
        | C::PreferredLeaderNotAvailable
        | C::FencedLeaderEpoch
        | C::UnknownLeaderEpoch
        | C::KafkaStorageError
        | C::NotEnoughReplicas
        | C::CoordinatorLoadInProgress
        | C::CoordinatorNotAvailable
        | C::NotCoordinator
        | C::WaitingForCoordinator
        | C::RebalanceInProgress
        | C::ThrottlingQuotaExceeded
        | C::FetchSessionIdNotFound
        | C::InvalidFetchSessionEpoch
        | C::UnknownTopicOrPartition
        | C::UnknownTopic
        | C::UnknownPartition
        // The member left the group after a long stall; librdkafka rejoins and
        // the partitions come back through a rebalance (assign rebuilds them).
        | C::PollExceeded => ConsumerErrorClass::Retried,
        _ => ConsumerErrorClass::Fatal,
    }
}

/// The committed offsets of `partitions`, retried a few times (a
/// coordinator may be moving); the last error when every attempt failed.
pub(crate) fn committed_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &TopicPartitionList,
) -> KafkaResult<TopicPartitionList> {
    let mut attempt = 1;
    loop {
        match consumer.committed_offsets(partitions.clone(), Duration::from_secs(30)) {
            Ok(committed) => return Ok(committed),
            Err(e) if attempt < COMMITTED_ATTEMPTS => {
                warn!(error = %e, attempt, "cannot read committed offsets; retrying");
                std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// For an error that skipped records: the assigned partitions of `topic`
/// whose position (or, before their first message, the offset the stage
/// started them from, `starts`) lies below the partition's first offset
/// (records deleted before they were read), as `partition P: offsets A..B`,
/// or a note that no partition is behind (a message set that could not be
/// read).
pub(crate) fn lost_input_report<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    starts: &BTreeMap<i32, i64>,
) -> String {
    let positions = match consumer.position() {
        Ok(p) => p,
        Err(e) => return format!("positions unknown ({e})"),
    };
    let mut lost = Vec::new();
    for e in positions.elements_for_topic(topic) {
        let position = match e.offset() {
            Offset::Offset(position) => position,
            _ => match starts.get(&e.partition()) {
                Some(&start) => start,
                None => continue,
            },
        };
        if let Ok((low, _)) =
            consumer.fetch_watermarks(topic, e.partition(), Duration::from_secs(5))
            && position < low
        {
            lost.push(format!(
                "{topic} partition {}: offsets {position}..{low} deleted before they were read",
                e.partition()
            ));
        }
    }
    if lost.is_empty() {
        format!("no assigned partition of {topic} is behind its first offset")
    } else {
        lost.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consume(code: RDKafkaErrorCode) -> ConsumerErrorClass {
        classify(&KafkaError::MessageConsumption(code))
    }

    #[test]
    fn end_of_partition_is_a_signal() {
        assert_eq!(
            classify(&KafkaError::PartitionEOF(3)),
            ConsumerErrorClass::EndOfPartition(3)
        );
    }

    #[test]
    fn errors_about_records_stop_the_stage() {
        for code in [
            RDKafkaErrorCode::BadCompression,
            RDKafkaErrorCode::BadMessage,
            RDKafkaErrorCode::InvalidMessage,
            RDKafkaErrorCode::UnsupportedCompressionType,
            RDKafkaErrorCode::NotImplemented,
            RDKafkaErrorCode::AutoOffsetReset,
            RDKafkaErrorCode::OffsetOutOfRange,
        ] {
            assert_eq!(
                consume(code),
                ConsumerErrorClass::RecordsSkipped,
                "{code:?}"
            );
        }
    }

    #[test]
    fn connection_trouble_is_retried_in_place() {
        for code in [
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::CoordinatorNotAvailable,
            RDKafkaErrorCode::PollExceeded,
        ] {
            assert_eq!(consume(code), ConsumerErrorClass::Retried, "{code:?}");
        }
    }

    #[test]
    fn fatal_and_unknown_errors_stop_the_stage() {
        assert_eq!(
            classify(&KafkaError::MessageConsumptionFatal(
                RDKafkaErrorCode::Fenced
            )),
            ConsumerErrorClass::Fatal
        );
        assert_eq!(
            consume(RDKafkaErrorCode::TopicAuthorizationFailed),
            ConsumerErrorClass::Fatal
        );
        assert_eq!(consume(RDKafkaErrorCode::Fail), ConsumerErrorClass::Fatal);
        assert_eq!(classify(&KafkaError::Canceled), ConsumerErrorClass::Fatal);
    }
}
