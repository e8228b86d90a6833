//! Topic specifications and idempotent creation; existing topics are checked against their
//! spec (`topic_check`).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::Error;
use crate::topic_check::{Severity, TopicProblem, check_topics};

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
    /// How an existing topic that differs in a setting (`partitions`, `replication.factor`, a
    /// config name) is treated, and why; settings not listed warn.
    pub rules: BTreeMap<String, (Severity, &'static str)>,
}

impl TopicSpec {
    /// A topic with the broker's default replication factor and no configs. An existing topic
    /// with another partition count is refused (keyed state depends on it).
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        TopicSpec {
            name: name.into(),
            partitions,
            replication: -1,
            configs: BTreeMap::new(),
            rules: BTreeMap::new(),
        }
        .rule(
            "partitions",
            Severity::Refuse,
            "keyed state and routing depend on the partition count",
        )
    }

    /// Output rollups: `compact,delete`, so the latest rollup per window/dimension/key survives
    /// and windows older than `retention_ms` go (every window's keys are new: compaction alone
    /// would keep them forever).
    pub fn rollups(name: impl Into<String>, partitions: i32, retention_ms: i64) -> Self {
        TopicSpec::new(name, partitions)
            .config("cleanup.policy", "compact,delete")
            .config("retention.ms", retention_ms.to_string())
            .rule(
                "cleanup.policy",
                Severity::Warn,
                "compact alone keeps every window's rollups forever; delete alone keeps superseded ones until retention",
            )
            .rule(
                "retention.ms",
                Severity::Warn,
                "windows are kept for another time than configured",
            )
    }

    /// Internal partial aggregates between rampart's stages: kept one day, then deleted. A
    /// compacted partials topic is refused: compaction would drop partials of a key before the
    /// merge read them.
    pub fn partials(name: impl Into<String>, partitions: i32) -> Self {
        TopicSpec::new(name, partitions)
            .config("cleanup.policy", "delete")
            .config("retention.ms", "86400000")
            .rule(
                "cleanup.policy",
                Severity::Refuse,
                "compaction drops partials of a key before the merge read them: rollups would be wrong",
            )
            .rule(
                "retention.ms",
                Severity::Warn,
                "partials older than retention are gone: a merge that falls this far behind loses them",
            )
    }

    /// Dead-letter queue: records rampart could not process, kept 14 days for inspection.
    pub fn dlq(name: impl Into<String>, partitions: i32) -> Self {
        TopicSpec::new(name, partitions)
            .config("cleanup.policy", "delete")
            .config("retention.ms", "1209600000")
            .rule(
                "cleanup.policy",
                Severity::Warn,
                "compaction drops dead letters that share a key",
            )
            .rule(
                "retention.ms",
                Severity::Warn,
                "dead letters are kept for another time than configured",
            )
    }

    /// Sets the replication factor.
    pub fn replication(mut self, replication: i32) -> Self {
        self.replication = replication;
        self
    }

    /// Sets `min.insync.replicas`: with `acks=all` (rampart's producers), a write is
    /// acknowledged once this many replicas have it.
    pub fn min_insync(self, replicas: i32) -> Self {
        self.config("min.insync.replicas", replicas.to_string())
    }

    /// How a difference in `setting` is treated, and why.
    pub fn rule(mut self, setting: &str, severity: Severity, why: &'static str) -> Self {
        self.rules.insert(setting.to_owned(), (severity, why));
        self
    }

    /// A difference in `setting` only warns, for the reason `why`.
    pub fn lenient(self, setting: &str, why: &'static str) -> Self {
        self.rule(setting, Severity::Warn, why)
    }

    pub(crate) fn severity_of(&self, setting: &str) -> Severity {
        self.rules.get(setting).map_or(Severity::Warn, |r| r.0)
    }

    pub(crate) fn consequence_of(&self, setting: &str) -> &'static str {
        self.rules
            .get(setting)
            .map_or("the topic differs from rampart's configuration", |r| r.1)
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
    /// Topics that already existed (their settings are left as they are).
    pub existing: Vec<String>,
    /// Settings of existing topics that differ from their spec but only warn.
    pub warnings: Vec<TopicProblem>,
}

/// Creates the topics that do not exist yet; safe to call on every start and concurrently from
/// several instances. Existing topics are checked against their spec and never altered: a
/// difference whose rule refuses is [`Error::TopicRefused`] (with every problem found), the
/// others are returned as [`EnsureReport::warnings`].
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
    let existing: Vec<TopicSpec> = specs
        .iter()
        .filter(|s| report.existing.contains(&s.name))
        .cloned()
        .collect();
    if !existing.is_empty() {
        let (refusals, warnings): (Vec<_>, Vec<_>) = check_topics(admin, &existing)
            .await?
            .into_iter()
            .partition(|p| p.severity == Severity::Refuse);
        if !refusals.is_empty() {
            return Err(Error::TopicRefused(refusals));
        }
        report.warnings = warnings;
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
