//! Existing topics judged against rampart's specs on a real broker: what warns, what refuses,
//! and that nothing is altered.
#![allow(clippy::unwrap_used)]

use rampart_kafka::{
    Error, Overrides, Severity, TopicSpec, admin_config, check_topics, describe_topics,
    ensure_topics,
};
use rampart_testkit::{KafkaBroker, unique_name};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    admin_config(bootstrap, &Overrides::new())
        .unwrap()
        .create()
        .unwrap()
}

const THIRTY_DAYS_MS: i64 = 30 * 86_400_000;

/// A rollups topic from before `compact,delete` (compacted only, no retention set) and a DLQ
/// with a min ISR its single replica can never meet: the first warns, the second refuses; both
/// stay as they were.
#[tokio::test]
async fn old_rollups_topic_warns_and_impossible_min_isr_refuses() {
    let broker = KafkaBroker::shared();
    let admin = admin(broker.bootstrap());
    let rollups = unique_name("rollups");
    let dlq = unique_name("dlq");
    broker
        .create_topic_with(&rollups, 2, &[("cleanup.policy", "compact")])
        .unwrap();
    broker
        .create_topic_with(&dlq, 1, &[("min.insync.replicas", "2")])
        .unwrap();

    let rollups_spec = TopicSpec::rollups(&rollups, 2, THIRTY_DAYS_MS).replication(1);
    let report = ensure_topics(&admin, std::slice::from_ref(&rollups_spec))
        .await
        .unwrap();
    let warned: Vec<(&str, &str, &str)> = report
        .warnings
        .iter()
        .map(|p| (p.setting.as_str(), p.expected.as_str(), p.actual.as_str()))
        .collect();
    // Kafka's default retention is 7 days (604800000 ms).
    assert_eq!(
        warned,
        [
            ("cleanup.policy", "compact,delete", "compact"),
            ("retention.ms", "2592000000", "604800000"),
        ]
    );

    let dlq_spec = TopicSpec::dlq(&dlq, 1).replication(1).min_insync(1);
    let refused = ensure_topics(&admin, &[rollups_spec.clone(), dlq_spec.clone()]).await;
    let Err(Error::TopicRefused(problems)) = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].topic, dlq);
    assert_eq!(problems[0].setting, "min.insync.replicas");
    assert!(
        problems[0].to_string().contains("NOT_ENOUGH_REPLICAS"),
        "{}",
        problems[0]
    );

    // check_topics (check-config's path) finds the same without creating anything.
    let all = check_topics(&admin, &[rollups_spec, dlq_spec])
        .await
        .unwrap();
    let severities: Vec<(&str, Severity)> = all
        .iter()
        .map(|p| (p.setting.as_str(), p.severity))
        .collect();
    assert_eq!(
        severities,
        [
            ("cleanup.policy", Severity::Warn),
            ("retention.ms", Severity::Warn),
            ("min.insync.replicas", Severity::Refuse),
            // The DLQ was created with the broker's 7 days, not rampart's 14.
            ("retention.ms", Severity::Warn),
        ]
    );
    // Nothing was altered.
    let states = describe_topics(&admin, &[&rollups, &dlq]).await.unwrap();
    assert_eq!(states[&rollups].configs["cleanup.policy"], "compact");
    assert_eq!(states[&dlq].configs["min.insync.replicas"], "2");
    assert_eq!(states[&rollups].partitions, 2);
    assert_eq!(states[&rollups].replication, 1);
}

/// A compacted partials topic would lose partials before the merge reads them: refused. A
/// missing topic is no problem for the check (it will be created).
#[tokio::test]
async fn compacted_partials_are_refused_and_missing_topics_are_not_problems() {
    let broker = KafkaBroker::shared();
    let admin = admin(broker.bootstrap());
    let partials = unique_name("partials");
    broker
        .create_topic_with(&partials, 3, &[("cleanup.policy", "compact")])
        .unwrap();
    let problems = check_topics(
        &admin,
        &[
            TopicSpec::partials(&partials, 3),
            TopicSpec::dlq(unique_name("missing"), 1),
        ],
    )
    .await
    .unwrap();
    let found: Vec<(&str, Severity)> = problems
        .iter()
        .map(|p| (p.setting.as_str(), p.severity))
        .collect();
    assert_eq!(
        found,
        [
            ("cleanup.policy", Severity::Refuse),
            ("retention.ms", Severity::Warn)
        ]
    );
}
