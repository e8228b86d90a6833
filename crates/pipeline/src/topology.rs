//! The partition counts rampart routes by, how checkpoints record them and
//! how a running stage notices that a topic's count changed. Partials are
//! routed by `hash(dimension/key) % partials partitions` and the merge waits
//! for every input partition, so a changed count cannot be applied to
//! existing state: it is detected and refused with [`DRAIN_HINT`].
//!
//! A leaf: depends on rdkafka only; `checkpoint` and `stage` use it.

use std::sync::Arc;
use std::time::Duration;

use rampart_core::ingest::ResumeError;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use tracing::warn;

/// What a changed partition count's error tells the operator to do.
pub(crate) const DRAIN_HINT: &str = "a changed partition count re-routes keys and input \
     partitions, so state cannot carry over: drain first (stop the producers, wait until every \
     window is final), then restart once with `rampart run --reset-state`";

/// The partition counts rampart routes by: input partitions (each closes
/// windows, the merge waits for all) and partials partitions (`dimension/key`
/// hash modulo the count). Every checkpoint records both (`;n=<input>;p=<partials>`
/// after the resume point's fields); a checkpoint written with other counts is
/// refused.
///
/// With several input topics (`[[inputs]]`), their partitions are numbered
/// one after another in config order: partition `p` of an input is input
/// partition `input_base + p` of `input_total`, the numbers the window-close
/// markers carry and the merge waits for. An ingest checkpoint of such a
/// topology also records both (`;b=<base>;t=<total>`), so a changed list of
/// inputs is refused like a changed count; with one input they equal `0` and
/// `input_partitions` and are not written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Topology {
    /// The stage's input topic (ingest), or the first input (merge).
    pub(crate) input_topic: Arc<str>,
    /// Partitions of `input_topic` (ingest); of every input together (merge).
    pub(crate) input_partitions: u32,
    pub(crate) input_base: u32,
    pub(crate) input_total: u32,
    pub(crate) partials_topic: Arc<str>,
    pub(crate) partials_partitions: u32,
}

/// What a changed list of inputs is reported as, in place of one topic.
const ALL_INPUTS: &str = "[[inputs]] (every input topic's partitions together)";

impl Topology {
    pub(crate) fn metadata_suffix(&self) -> String {
        let mut suffix = format!(
            ";n={};p={}",
            self.input_partitions, self.partials_partitions
        );
        if self.input_base != 0 || self.input_total != self.input_partitions {
            suffix.push_str(&format!(";b={};t={}", self.input_base, self.input_total));
        }
        suffix
    }

    /// The first count `recorded` (from a checkpoint) disagrees on:
    /// `(topic, recorded, now)`.
    pub(crate) fn changed(&self, recorded: RecordedCounts) -> Option<(Arc<str>, u32, u32)> {
        let pairs = [
            (&self.input_topic, recorded.input, self.input_partitions),
            (
                &self.partials_topic,
                recorded.partials,
                self.partials_partitions,
            ),
        ];
        let changed_count = pairs.into_iter().find_map(|(topic, recorded, now)| {
            recorded
                .filter(|r| *r != now)
                .map(|recorded| (topic.clone(), recorded, now))
        });
        // Metadata of a single input holds no base and total: 0 and its count.
        let (base, total) = match recorded.input {
            Some(n) => (recorded.base.unwrap_or(0), recorded.total.unwrap_or(n)),
            None => return changed_count,
        };
        changed_count.or_else(|| {
            let all: Arc<str> = ALL_INPUTS.into();
            if total != self.input_total {
                Some((all, total, self.input_total))
            } else if base != self.input_base {
                Some((all, base, self.input_base))
            } else {
                None
            }
        })
    }
}

/// Partition counts read back from a checkpoint (`None`: written before they
/// were recorded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecordedCounts {
    pub(crate) input: Option<u32>,
    pub(crate) partials: Option<u32>,
    pub(crate) base: Option<u32>,
    pub(crate) total: Option<u32>,
}

pub(crate) fn recorded_counts(text: &str) -> Result<RecordedCounts, ResumeError> {
    let mut counts = RecordedCounts::default();
    for field in text.split(';').skip(1) {
        let (slot, name) = match field.split_at_checked(2) {
            Some(("n=", value)) => (&mut counts.input, value),
            Some(("p=", value)) => (&mut counts.partials, value),
            Some(("b=", value)) => (&mut counts.base, value),
            Some(("t=", value)) => (&mut counts.total, value),
            _ => continue,
        };
        *slot = Some(
            name.parse()
                .map_err(|_| ResumeError::Malformed("n/p/b/t"))?,
        );
    }
    Ok(counts)
}

/// The first watched topic whose partition count differs from the one the
/// stage was built with (a failed metadata request is retried next time).
/// `(topic, built, now)`.
pub(crate) fn resized_topic<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    watched_topics: &[(String, u32)],
) -> Option<(String, u32, u32)> {
    watched_topics.iter().find_map(|(topic, built)| {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .map_err(|e| warn!(%topic, error = %e, "cannot read topic metadata"))
            .ok()?;
        let now = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len() as u32)?;
        (now != *built).then(|| (topic.clone(), *built, now))
    })
}
