//! Topic specifications and idempotent creation.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::Error;

/// A topic rampart needs: name, partitions, replication factor and topic configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor; `-1` lets the broker use `default.replication.factor`.
    pub replication: i32,
    /// Topic configs (`cleanup.policy`, `retention.ms`, ...).
    pub configs: BTreeMap<String, String>,
}

impl TopicSpec {
    /// A topic with the broker's default replication factor and no configs.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        TopicSpec {
            name: name.into(),
            partitions,
            replication: -1,
            configs: BTreeMap::new(),
        }
    }

    /// Output rollups: compacted, so the latest rollup per window/dimension/key survives.
    pub fn rollups(name: impl Into<String>, partitions: i32) -> Self {
        TopicSpec::new(name, partitions).config("cleanup.policy", "compact")
    }

    /// Internal partial aggregates between rampart's stages: kept one day, then deleted.
    pub fn partials(name: impl Into<String>, partitions: i32) -> Self {
        TopicSpec::new(name, partitions)
            .config("cleanup.policy", "delete")
            .config("retention.ms", "86400000")
    }

    /// Dead-letter queue: records rampart could not process, kept 14 days for inspection.
    pub fn dlq(name: impl Into<String>, partitions: i32) -> Self {
        TopicSpec::new(name, partitions)
            .config("cleanup.policy", "delete")
            .config("retention.ms", "1209600000")
    }

    /// Sets the replication factor.
    pub fn replication(mut self, replication: i32) -> Self {
        self.replication = replication;
        self
    }

    /// Adds a topic config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }
}

/// What [`ensure_topics`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnsureReport {
    /// Topics created now.
    pub created: Vec<String>,
    /// Topics that already existed with the expected partition count (their configs are left
    /// as they are).
    pub existing: Vec<String>,
}

/// Creates the topics that do not exist yet; safe to call on every start and concurrently from
/// several instances. An existing topic with another partition count is an error (rampart's
/// keyed state depends on it); configs of existing topics are not altered.
pub async fn ensure_topics<C: ClientContext + 'static>(
    admin: &AdminClient<C>,
    specs: &[TopicSpec],
) -> Result<EnsureReport, Error> {
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|spec| {
            let replication = TopicReplication::Fixed(spec.replication);
            spec.configs.iter().fold(
                NewTopic::new(&spec.name, spec.partitions, replication),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|e| Error::client("create topics", e))?;
    let mut report = EnsureReport::default();
    for result in results {
        match result {
            Ok(name) => report.created.push(name),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => report.existing.push(name),
            Err((topic, code)) => return Err(Error::CreateTopic { topic, code }),
        }
    }
    for name in &report.existing {
        let expected = specs
            .iter()
            .find(|s| &s.name == name)
            .map_or(0, |s| s.partitions);
        let actual = partition_count(admin, name)?;
        if actual != expected {
            return Err(Error::TopicMismatch {
                topic: name.clone(),
                expected,
                actual,
            });
        }
    }
    Ok(report)
}

/// Number of partitions of `topic` from a metadata request.
pub fn partition_count<C: ClientContext>(
    admin: &AdminClient<C>,
    topic: &str,
) -> Result<i32, Error> {
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| Error::client("fetch metadata", e))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(Error::UnknownTopic(topic.to_owned()));
    };
    if t.error().is_some() || t.partitions().is_empty() {
        return Err(Error::UnknownTopic(topic.to_owned()));
    }
    Ok(i32::try_from(t.partitions().len()).unwrap_or(i32::MAX))
}
