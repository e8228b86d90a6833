//! A bare consumer that reads a topic start to end as fast as it can: the yardstick rampart's
//! own throughput is compared with.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::warn;

use crate::Error;
use crate::config::{Overrides, consumer_config};

/// What [`bare_consume_rate`] read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConsumeRate {
    /// Messages read (transaction markers and aborted records are not messages).
    pub messages: u64,
    /// Key plus payload bytes read.
    pub bytes: u64,
    /// Seconds from assignment until every partition reached its end.
    pub seconds: f64,
}

impl ConsumeRate {
    /// Messages per second.
    pub fn messages_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.messages as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Bytes per second.
    pub fn bytes_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// The bare consumer's client context: a partition's end is how it knows it
/// is done, not an error to log (librdkafka also reports it as a client
/// error, which the default context logs at ERROR).
struct QuietEof;

impl ClientContext for QuietEof {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF) {
            warn!(error = %error, reason, "kafka client error");
        }
    }
}

impl ConsumerContext for QuietEof {}

/// Reads every partition of `topic` from the beginning to its current end with one
/// `BaseConsumer` and no processing, using rampart's consumer settings (`read_committed`, the
/// same prefetch caps) plus `overrides`, and no group membership or commits. Blocking; fails
/// with [`Error::Timeout`] after `timeout`.
pub fn bare_consume_rate(
    bootstrap: &str,
    topic: &str,
    overrides: &Overrides,
    timeout: Duration,
) -> Result<ConsumeRate, Error> {
    let group = format!("rampart-bare-{}", std::process::id());
    let mut config = consumer_config(bootstrap, &group, overrides)?;
    config.set("enable.partition.eof", "true");
    let consumer: BaseConsumer<QuietEof> = config
        .create_with_context(QuietEof)
        .map_err(|e| Error::client("create consumer", e))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| Error::client("fetch metadata", e))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(Error::UnknownTopic(topic.to_owned()));
    }
    let mut assignment = TopicPartitionList::new();
    for &p in &partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| Error::client("assign", e))?;
    }
    let started = Instant::now();
    consumer
        .assign(&assignment)
        .map_err(|e| Error::client("assign", e))?;
    let mut pending: BTreeSet<i32> = partitions.into_iter().collect();
    let mut rate = ConsumeRate {
        messages: 0,
        bytes: 0,
        seconds: 0.0,
    };
    while !pending.is_empty() {
        if started.elapsed() > timeout {
            return Err(Error::Timeout {
                op: "bare consume",
                seconds: timeout.as_secs_f64(),
            });
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                rate.messages += 1;
                rate.bytes += (message.key_len() + message.payload_len()) as u64;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                pending.remove(&p);
            }
            Some(Err(e)) => return Err(Error::client("consume", e)),
        }
    }
    rate.seconds = started.elapsed().as_secs_f64();
    Ok(rate)
}
