//! Comparing existing topics with what rampart needs ([`TopicSpec`]): partitions, replication
//! factor and every config the spec sets (`cleanup.policy`, `retention.ms`,
//! `min.insync.replicas`). Each difference is a [`TopicProblem`] that either warns (rampart
//! stays correct, but not as configured) or refuses (running would lose or corrupt data, or
//! could never write).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::ClientContext;

use crate::{Error, TopicSpec};

/// What a difference between an existing topic and its spec means for starting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Logged at start and reported by `check-config`; rampart runs.
    Warn,
    /// rampart does not start (and `check-config` fails).
    Refuse,
}

/// One setting of an existing topic that is not what rampart needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicProblem {
    /// Topic name.
    pub topic: String,
    /// `partitions`, `replication.factor` or a topic config name.
    pub setting: String,
    /// What rampart needs.
    pub expected: String,
    /// What the topic has.
    pub actual: String,
    /// Warn or refuse.
    pub severity: Severity,
    /// What the difference does, for the operator.
    pub consequence: String,
}

impl fmt::Display for TopicProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "topic {} has {}={}, rampart needs {}: {}",
            self.topic, self.setting, self.actual, self.expected, self.consequence
        )
    }
}

/// What an existing topic has: partition count, the smallest replica count of its
/// partitions, and its effective configs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicState {
    /// Number of partitions.
    pub partitions: i32,
    /// Replicas of its least replicated partition.
    pub replication: i32,
    /// Effective topic configs (defaults included).
    pub configs: BTreeMap<String, String>,
}

/// The differences between `actual` and `spec`, each with its severity.
pub fn judge(spec: &TopicSpec, actual: &TopicState) -> Vec<TopicProblem> {
    let mut problems = Vec::new();
    let mut problem = |setting: &str, expected: String, actual: String, severity, why: &str| {
        problems.push(TopicProblem {
            topic: spec.name.clone(),
            setting: setting.to_owned(),
            expected,
            actual,
            severity,
            consequence: why.to_owned(),
        })
    };
    if actual.partitions != spec.partitions {
        problem(
            "partitions",
            spec.partitions.to_string(),
            actual.partitions.to_string(),
            spec.severity_of("partitions"),
            spec.consequence_of("partitions"),
        );
    }
    if spec.replication > 0 && actual.replication < spec.replication {
        problem(
            "replication.factor",
            spec.replication.to_string(),
            actual.replication.to_string(),
            spec.severity_of("replication.factor"),
            "fewer copies than configured: losing a broker can lose data or stop rampart",
        );
    }
    for (key, expected) in &spec.configs {
        let have = actual.configs.get(key).map_or("", String::as_str);
        match key.as_str() {
            "cleanup.policy" if policies(have) != policies(expected) => problem(
                key,
                expected.clone(),
                have.to_owned(),
                spec.severity_of(key),
                spec.consequence_of(key),
            ),
            "min.insync.replicas" => {
                let have_n: i32 = have.parse().unwrap_or(0);
                if have_n > actual.replication {
                    problem(
                        key,
                        expected.clone(),
                        have.to_owned(),
                        Severity::Refuse,
                        &format!(
                            "more than its {} replicas: every write fails with NOT_ENOUGH_REPLICAS",
                            actual.replication
                        ),
                    );
                } else if have != expected {
                    problem(
                        key,
                        expected.clone(),
                        have.to_owned(),
                        spec.severity_of(key),
                        if have_n < expected.parse().unwrap_or(0) {
                            "acknowledged writes survive fewer broker losses than configured"
                        } else {
                            "writes stop with fewer brokers down than configured"
                        },
                    );
                }
            }
            "cleanup.policy" => {}
            _ if have != expected => problem(
                key,
                expected.clone(),
                have.to_owned(),
                spec.severity_of(key),
                spec.consequence_of(key),
            ),
            _ => {}
        }
    }
    problems
}

fn policies(value: &str) -> BTreeSet<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// The state of each topic of `names` that exists (missing ones are absent from the map).
pub async fn describe_topics<C: ClientContext + 'static>(
    admin: &AdminClient<C>,
    names: &[&str],
) -> Result<BTreeMap<String, TopicState>, Error> {
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(|e| Error::client("fetch metadata", e))?;
    let mut states = BTreeMap::new();
    for t in metadata.topics() {
        if !names.contains(&t.name()) || t.error().is_some() || t.partitions().is_empty() {
            continue;
        }
        let replication = t
            .partitions()
            .iter()
            .map(|p| p.replicas().len())
            .min()
            .unwrap_or(0);
        states.insert(
            t.name().to_owned(),
            TopicState {
                partitions: i32::try_from(t.partitions().len()).unwrap_or(i32::MAX),
                replication: i32::try_from(replication).unwrap_or(i32::MAX),
                configs: BTreeMap::new(),
            },
        );
    }
    let resources: Vec<ResourceSpecifier<'_>> = states
        .keys()
        .map(|name| ResourceSpecifier::Topic(name))
        .collect();
    if resources.is_empty() {
        return Ok(states);
    }
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = admin
        .describe_configs(&resources, &options)
        .await
        .map_err(|e| Error::client("describe topic configs", e))?;
    let names: Vec<String> = states.keys().cloned().collect();
    for (name, result) in names.iter().zip(described) {
        let resource = result.map_err(|code| Error::Client {
            op: "describe topic configs",
            source: rdkafka::error::KafkaError::AdminOp(code),
        })?;
        if let Some(state) = states.get_mut(name) {
            state.configs = resource
                .entries
                .into_iter()
                .filter_map(|e| Some((e.name, e.value?)))
                .collect();
        }
    }
    Ok(states)
}

/// Every problem of the existing topics among `specs` (missing topics have none).
///
/// A topic another process has just created can be described before the
/// broker answering knows its configs (seen on a three-node cluster: an
/// empty `cleanup.policy`, which would refuse a correct topic): while a
/// config the spec sets comes back empty, it is described again, for up to
/// 5 s, before it is judged.
pub async fn check_topics<C: ClientContext + 'static>(
    admin: &AdminClient<C>,
    specs: &[TopicSpec],
) -> Result<Vec<TopicProblem>, Error> {
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let unsettled = |states: &BTreeMap<String, TopicState>| {
        specs.iter().any(|spec| {
            states.get(&spec.name).is_some_and(|state| {
                spec.configs
                    .keys()
                    .any(|k| state.configs.get(k).is_none_or(String::is_empty))
            })
        })
    };
    let mut states = describe_topics(admin, &names).await?;
    for _ in 0..20 {
        if !unsettled(&states) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        states = describe_topics(admin, &names).await?;
    }
    Ok(specs
        .iter()
        .filter_map(|spec| Some(judge(spec, states.get(&spec.name)?)))
        .flatten()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(partitions: i32, replication: i32, configs: &[(&str, &str)]) -> TopicState {
        TopicState {
            partitions,
            replication,
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn settings(problems: &[TopicProblem]) -> Vec<(&str, Severity)> {
        problems
            .iter()
            .map(|p| (p.setting.as_str(), p.severity))
            .collect()
    }

    #[test]
    fn a_matching_topic_has_no_problem_and_policy_order_does_not_matter() {
        let spec = TopicSpec::rollups("r", 4, 2_592_000_000)
            .replication(3)
            .min_insync(2);
        let actual = state(
            4,
            3,
            &[
                ("cleanup.policy", "delete,compact"),
                ("retention.ms", "2592000000"),
                ("min.insync.replicas", "2"),
                ("segment.bytes", "1073741824"),
            ],
        );
        assert_eq!(judge(&spec, &actual), vec![]);
    }

    #[test]
    fn differences_warn_or_refuse_per_setting() {
        let spec = TopicSpec::partials("p", 4).replication(3).min_insync(2);
        // An old compacted partials topic with one replica and min ISR 1.
        let actual = state(
            6,
            1,
            &[
                ("cleanup.policy", "compact"),
                ("retention.ms", "86400000"),
                ("min.insync.replicas", "1"),
            ],
        );
        assert_eq!(
            settings(&judge(&spec, &actual)),
            [
                ("partitions", Severity::Refuse),
                ("replication.factor", Severity::Warn),
                ("cleanup.policy", Severity::Refuse),
                ("min.insync.replicas", Severity::Warn),
            ]
        );
        let lenient = TopicSpec::partials("p", 4).lenient("partitions", "routes by the topic's");
        assert_eq!(
            settings(&judge(
                &lenient,
                &state(
                    6,
                    1,
                    &[("cleanup.policy", "delete"), ("retention.ms", "86400000")]
                )
            )),
            [("partitions", Severity::Warn)]
        );
    }

    #[test]
    fn a_min_isr_above_the_replica_count_refuses_and_says_why() {
        let spec = TopicSpec::dlq("d", 1).replication(1).min_insync(1);
        let actual = state(
            1,
            1,
            &[
                ("cleanup.policy", "delete"),
                ("retention.ms", "1209600000"),
                ("min.insync.replicas", "2"),
            ],
        );
        let problems = judge(&spec, &actual);
        assert_eq!(
            settings(&problems),
            [("min.insync.replicas", Severity::Refuse)]
        );
        assert!(
            problems[0].to_string().contains("NOT_ENOUGH_REPLICAS"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn a_rollups_topic_compacted_only_warns_that_it_grows_forever() {
        let spec = TopicSpec::rollups("r", 2, 1_000);
        let problems = judge(
            &spec,
            &state(
                2,
                1,
                &[("cleanup.policy", "compact"), ("retention.ms", "1000")],
            ),
        );
        assert_eq!(settings(&problems), [("cleanup.policy", Severity::Warn)]);
        assert!(problems[0].consequence.contains("forever"), "{problems:?}");
    }
}
