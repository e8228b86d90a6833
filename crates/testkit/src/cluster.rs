//! A private three-node (or N-node) Kafka cluster for failover tests: kill, stop and restart
//! single nodes, and find which node leads which partition or coordinates which group or
//! transactional id.

use std::collections::BTreeMap;
use std::time::Duration;

use rampart_localkafka::LocalCluster;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use crate::{TestkitError, block_on};

/// Kafka's internal topic holding consumer-group offsets; the leader of partition
/// `abs(hash(group)) % partitions` is the group's coordinator.
const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's internal topic of transaction state, partitioned by transactional id the same way.
const TRANSACTIONS_TOPIC: &str = "__transaction_state";

/// A Kafka cluster this process runs on loopback. Nodes are named by their KRaft `node.id`
/// (`1..=len`), as metadata reports leaders. Dropped (or when the process ends): every node
/// killed, the directory deleted.
#[derive(Debug)]
pub struct KafkaCluster {
    local: LocalCluster,
}

impl KafkaCluster {
    /// Starts `nodes` combined controller+broker nodes (see `scripts/kafka start DIR --nodes N`):
    /// internal topics replicated `nodes` times with min ISR `nodes - 1`.
    pub fn start(nodes: usize) -> Result<KafkaCluster, TestkitError> {
        Ok(KafkaCluster {
            local: LocalCluster::start(nodes)?,
        })
    }

    /// Every node's listener, comma-separated.
    pub fn bootstrap(&self) -> &str {
        self.local.bootstrap()
    }

    /// Node ids, `1..=len`.
    pub fn node_ids(&self) -> Vec<i32> {
        (1..=self.local.len() as i32).collect()
    }

    /// PID of node `id`'s java process while it runs.
    pub fn pid(&self, id: i32) -> Option<u32> {
        self.local.pid(index(id))
    }

    /// SIGKILL node `id` and reap it; its data stays for [`restart`](Self::restart).
    pub fn kill(&self, id: i32) -> Result<(), TestkitError> {
        Ok(self.local.kill(index(id))?)
    }

    /// Graceful shutdown of node `id`.
    pub fn stop(&self, id: i32) -> Result<(), TestkitError> {
        Ok(self.local.stop(index(id))?)
    }

    /// Starts node `id` again with its ports and data.
    pub fn restart(&self, id: i32) -> Result<(), TestkitError> {
        Ok(self.local.restart(index(id))?)
    }

    /// Creates a topic with `replication` replicas and `configs`.
    pub fn create_topic_with(
        &self,
        name: &str,
        partitions: i32,
        replication: i32,
        configs: &[(&str, &str)],
    ) -> Result<(), TestkitError> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()?;
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
        for (key, value) in configs {
            topic = topic.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for result in block_on(admin.create_topics([&topic], &options))? {
            if let Err((topic, code)) = result {
                return Err(TestkitError::CreateTopic { topic, code });
            }
        }
        Ok(())
    }

    /// Leader node of each partition of `topic` (`-1`: none right now), by partition.
    pub fn leaders(&self, topic: &str) -> Result<BTreeMap<i32, i32>, TestkitError> {
        Ok(self
            .partitions(topic)?
            .into_iter()
            .map(|(p, leader, _)| (p, leader))
            .collect())
    }

    /// Per partition of `topic`: `(partition, leader, in-sync replicas)`.
    pub fn partitions(&self, topic: &str) -> Result<Vec<(i32, i32, Vec<i32>)>, TestkitError> {
        let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()?;
        let metadata = rdkafka::consumer::Consumer::fetch_metadata(
            &consumer,
            Some(topic),
            Duration::from_secs(10),
        )?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions())
            .map(|p| (p.id(), p.leader(), p.isr().to_vec()))
            .collect())
    }

    /// The node leading the most partitions of `topics` (ties: the lowest id).
    pub fn node_leading_most(&self, topics: &[&str]) -> Result<i32, TestkitError> {
        let mut led: BTreeMap<i32, usize> = self.node_ids().into_iter().map(|n| (n, 0)).collect();
        for topic in topics {
            for leader in self.leaders(topic)?.into_values() {
                *led.entry(leader).or_default() += 1;
            }
        }
        led.remove(&-1);
        let most = led.values().copied().max().unwrap_or(0);
        Ok(led
            .into_iter()
            .find(|(_, n)| *n == most)
            .map_or(1, |(node, _)| node))
    }

    /// The node coordinating consumer group `group` (leader of its `__consumer_offsets`
    /// partition), `-1` if that partition has no leader now or no group was used yet (Kafka
    /// creates the topic on first use).
    pub fn group_coordinator(&self, group: &str) -> Result<i32, TestkitError> {
        self.coordinator(OFFSETS_TOPIC, group)
    }

    /// The node coordinating `transactional_id` (leader of its `__transaction_state` partition).
    pub fn transaction_coordinator(&self, transactional_id: &str) -> Result<i32, TestkitError> {
        self.coordinator(TRANSACTIONS_TOPIC, transactional_id)
    }

    fn coordinator(&self, topic: &str, key: &str) -> Result<i32, TestkitError> {
        let leaders = self.leaders(topic)?;
        let partition = coordinator_partition(key, leaders.len() as i32);
        Ok(leaders.get(&partition).copied().unwrap_or(-1))
    }
}

fn index(id: i32) -> usize {
    usize::try_from(id - 1).unwrap_or(usize::MAX)
}

/// Kafka's `Utils.abs(key.hashCode()) % partitions`: the partition of an internal topic
/// that holds a group's offsets or a transactional id's state.
pub(crate) fn coordinator_partition(key: &str, partitions: i32) -> i32 {
    // Java's String.hashCode over UTF-16 code units, with 32-bit wrap-around.
    let hash = key
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_partition_matches_javas_string_hash() {
        // Values of Java's String.hashCode: "hello" 99162322, "Hello World" -862545276,
        // "polygenelubricants" Integer.MIN_VALUE (Kafka's Utils.abs makes that 0).
        assert_eq!(coordinator_partition("hello", 50), 99162322 % 50);
        assert_eq!(coordinator_partition("Hello World", 50), 862545276 % 50);
        assert_eq!(coordinator_partition("polygenelubricants", 7), 0);
    }

    /// Kill the node leading the most partitions: leadership moves to the others, writes
    /// with acks=all keep working (2 of 3 in sync), and the node rejoins after restart.
    #[test]
    fn cluster_survives_the_loss_of_its_busiest_node() {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let cluster = KafkaCluster::start(3).unwrap();
        let topic = crate::unique_name("testkit-cluster");
        cluster
            .create_topic_with(&topic, 6, 3, &[("min.insync.replicas", "2")])
            .unwrap();
        let busiest = cluster.node_leading_most(&[&topic]).unwrap();
        let pid = cluster.pid(busiest).unwrap();
        cluster.kill(busiest).unwrap();
        assert!(cluster.pid(busiest).is_none());
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        // Fencing takes the 3 s broker session; then no partition is led by the dead node.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let leaders = cluster.leaders(&topic).unwrap();
            if leaders.values().all(|l| *l != busiest && *l > 0) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{leaders:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap())
            .set("acks", "all")
            .create()
            .unwrap();
        for p in 0..6 {
            producer
                .send(BaseRecord::<(), _>::to(&topic).partition(p).payload("x"))
                .unwrap();
        }
        producer.flush(Duration::from_secs(30)).unwrap();
        cluster.restart(busiest).unwrap();
        // Back in every ISR once it caught up.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !cluster
            .partitions(&topic)
            .unwrap()
            .iter()
            .all(|(_, _, isr)| isr.contains(&busiest))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "never rejoined the ISR"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // No group has been used yet: no __consumer_offsets, no coordinator.
        assert_eq!(cluster.group_coordinator("some-group").unwrap(), -1);
    }
}
