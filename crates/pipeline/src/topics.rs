//! The four topics rampart needs, as [`TopicSpec`]s built from the configuration, created at
//! start when missing and checked when they exist: what differs either warns (logged) or
//! refuses (`run` does not start). `check-config` asks the same question of a reachable
//! cluster without creating anything.
//!
//! | setting            | warns when                      | refuses when                       |
//! |--------------------|---------------------------------|------------------------------------|
//! | partitions         | any difference (the topic's count is used; checkpoints refuse a change under state) | never |
//! | replication factor | fewer replicas than configured  | never                              |
//! | min.insync.replicas| differs from configured         | above the topic's replica count    |
//! | cleanup.policy     | rollups not `compact,delete`, DLQ not `delete` | partials not `delete` |
//! | retention.ms       | differs (rollups, partials, DLQ)| never                              |

use std::time::Duration;

use rampart_kafka::{Severity, TopicProblem, TopicSpec};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use tracing::{info, warn};

use crate::RunError;
use crate::config::Settings;

/// Why a different partition count only warns.
const PARTITIONS_FOLLOW_THE_TOPIC: &str = "rampart routes by the topic's partition count (the \
     configured one only creates topics); a change under existing state is refused by the \
     checkpoints";

/// The inputs (every `[[inputs]]` topic), partials, rollups and DLQ as
/// `settings` asks for them.
pub fn topic_specs(settings: &Settings) -> Vec<TopicSpec> {
    let t = &settings.raw.topics;
    let rf = t.replication_factor;
    let min_isr = t.min_insync();
    let inputs = settings
        .inputs
        .iter()
        .map(|input| TopicSpec::new(&input.topic, t.input_partitions).replication(rf));
    inputs
        .chain([
            TopicSpec::partials(&t.partials, t.partials_partitions)
                .replication(rf)
                .min_insync(min_isr),
            TopicSpec::rollups(
                &t.rollups,
                t.rollups_partitions,
                settings.rollups_retention_ms,
            )
            .replication(rf)
            .min_insync(min_isr),
            TopicSpec::dlq(&t.dlq, t.dlq_partitions)
                .replication(rf)
                .min_insync(min_isr),
        ])
        .map(|spec| spec.lenient("partitions", PARTITIONS_FOLLOW_THE_TOPIC))
        .collect()
}

/// Creates the missing topics (with `topics.create`) and checks the existing ones: logs every
/// difference that warns, returns every one that refuses as the error.
pub(crate) fn prepare_topics(
    settings: &Settings,
    admin: &AdminClient<DefaultClientContext>,
) -> Result<(), RunError> {
    let specs = topic_specs(settings);
    let rt = runtime()?;
    let warnings = if settings.raw.topics.create {
        let report = rt.block_on(rampart_kafka::ensure_topics(admin, &specs))?;
        if !report.created.is_empty() {
            info!(created = ?report.created, "created topics");
        }
        report.warnings
    } else {
        let (refusals, warnings) = split(rt.block_on(rampart_kafka::check_topics(admin, &specs))?);
        if !refusals.is_empty() {
            return Err(rampart_kafka::Error::TopicRefused(refusals).into());
        }
        warnings
    };
    for p in warnings {
        warn!(topic = %p.topic, setting = %p.setting, expected = %p.expected, actual = %p.actual,
            consequence = %p.consequence, "existing topic differs from the configuration");
    }
    Ok(())
}

/// `check-config`'s question: every problem of the existing topics, or `None` when the
/// cluster does not answer within `timeout` (nothing can be said then).
pub fn check_existing_topics(
    settings: &Settings,
    timeout: Duration,
) -> Result<Option<Vec<TopicProblem>>, RunError> {
    let admin = crate::admin(settings)?;
    if admin.inner().fetch_metadata(None, timeout).is_err() {
        return Ok(None);
    }
    let problems =
        runtime()?.block_on(rampart_kafka::check_topics(&admin, &topic_specs(settings)))?;
    Ok(Some(problems))
}

fn split(problems: Vec<TopicProblem>) -> (Vec<TopicProblem>, Vec<TopicProblem>) {
    problems
        .into_iter()
        .partition(|p| p.severity == Severity::Refuse)
}

fn runtime() -> Result<tokio::runtime::Runtime, RunError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Other(format!("cannot start runtime: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn specs_follow_the_configuration() {
        let mut settings = crate::config::load(None, []).unwrap();
        settings.raw.topics.replication_factor = 3;
        let specs = topic_specs(&settings);
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "attacks.raw",
                "rampart.partials",
                "attacks.rollups",
                "attacks.dlq"
            ]
        );
        assert!(specs.iter().all(|s| s.replication == 3));
        // Derived min ISR: replication factor - 1.
        for s in &specs[1..] {
            assert_eq!(s.configs["min.insync.replicas"], "2", "{}", s.name);
        }
        assert!(!specs[0].configs.contains_key("min.insync.replicas"));
        assert_eq!(specs[2].configs["cleanup.policy"], "compact,delete");
        assert_eq!(
            specs[2].configs["retention.ms"],
            (30 * 86_400_000i64).to_string()
        );
        assert!(
            specs
                .iter()
                .all(|s| s.rules["partitions"].0 == Severity::Warn)
        );
        assert_eq!(specs[1].rules["cleanup.policy"].0, Severity::Refuse);
    }
}
