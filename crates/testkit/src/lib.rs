//! rampart-testkit (test-only): the Kafka broker tests share, plus random topic and group names.
//!
//! [`KafkaBroker::start`] uses the broker named by `RAMPART_TEST_BOOTSTRAP` when that variable is
//! set (`scripts/test` starts one broker for the whole run and sets it); otherwise it starts a
//! private broker with `rampart-localkafka` (Kafka from Maven Central on loopback, killed when
//! the test process ends). [`KafkaBroker::shared`] gives every test in a binary the same broker,
//! so a test binary starts at most one.
//!
//! A broker that cannot start is a loud error (and a panic in [`KafkaBroker::shared`]), never
//! a skipped test.
//!
//! [`KafkaCluster`] runs a private multi-node cluster for failover tests (kill one node, find
//! partition leaders and coordinators).
//!
//! This crate knows nothing about rampart's own crates or topics; it only runs Kafka.

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

mod cluster;

pub use cluster::KafkaCluster;

use rampart_localkafka::{LocalKafka, LocalKafkaError};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

pub use rampart_localkafka::{Listener, Options};

/// Environment variable naming an already running broker (`host:port`) that tests should use.
pub const BOOTSTRAP_ENV: &str = "RAMPART_TEST_BOOTSTRAP";

/// Errors from starting, stopping or talking to the test broker.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// Starting, stopping or administering a private broker failed.
    #[error(transparent)]
    Local(#[from] LocalKafkaError),
    /// Stopping, killing or restarting is impossible for a broker this process did not start.
    #[error(
        "the broker at {0} comes from {BOOTSTRAP_ENV}; use KafkaBroker::start_private to control it"
    )]
    External(String),
    /// A Kafka client error (metadata, admin request).
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The admin API refused to create a topic.
    #[error("create topic {topic}: {code}")]
    CreateTopic {
        /// Topic name.
        topic: String,
        /// Broker error code.
        code: RDKafkaErrorCode,
    },
}

/// A Kafka broker for tests: either external (from [`BOOTSTRAP_ENV`]) or private to this process.
///
/// Methods take `&self` so the [`shared`](KafkaBroker::shared) broker can be used from many tests.
/// Tests that stop, kill or restart a broker should use their own
/// [`start_private`](KafkaBroker::start_private) broker, not the shared one.
#[derive(Debug)]
pub struct KafkaBroker {
    bootstrap: String,
    local: Option<LocalKafka>,
}

impl KafkaBroker {
    /// The broker from [`BOOTSTRAP_ENV`] if set, else a new private broker (see
    /// [`start_private`](Self::start_private)).
    pub fn start() -> Result<KafkaBroker, TestkitError> {
        match std::env::var(BOOTSTRAP_ENV) {
            Ok(bootstrap) if !bootstrap.trim().is_empty() => {
                let bootstrap = bootstrap.trim().to_owned();
                rampart_localkafka::wait_ready(&bootstrap, Duration::from_secs(30))?;
                Ok(KafkaBroker {
                    bootstrap,
                    local: None,
                })
            }
            _ => Self::start_private(),
        }
    }

    /// A new private broker with one PLAINTEXT listener, ignoring [`BOOTSTRAP_ENV`].
    pub fn start_private() -> Result<KafkaBroker, TestkitError> {
        Self::start_private_with(&Options::default())
    }

    /// A new private broker with the listeners and security of `options`.
    pub fn start_private_with(options: &Options) -> Result<KafkaBroker, TestkitError> {
        let local = LocalKafka::start(options)?;
        Ok(KafkaBroker {
            bootstrap: local.bootstrap().to_owned(),
            local: Some(local),
        })
    }

    /// One broker per test binary, started on first use by [`start`](Self::start).
    ///
    /// # Panics
    /// If the broker cannot be started: a test that needs Kafka must fail loudly, never skip.
    pub fn shared() -> &'static KafkaBroker {
        static SHARED: OnceLock<KafkaBroker> = OnceLock::new();
        SHARED.get_or_init(|| match KafkaBroker::start() {
            Ok(broker) => broker,
            Err(e) => panic!("rampart-testkit: cannot start the shared Kafka broker: {e}"),
        })
    }

    /// Bootstrap servers (`127.0.0.1:PORT`).
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The private broker, if this process started it.
    pub fn local(&self) -> Option<&LocalKafka> {
        self.local.as_ref()
    }

    /// Whether this process started (and therefore controls) the broker.
    pub fn is_private(&self) -> bool {
        self.local.is_some()
    }

    /// PID of the broker's java process, if this process runs it and it is up.
    pub fn pid(&self) -> Option<u32> {
        self.local.as_ref()?.pid()
    }

    /// Directory holding `server.properties`, `data/` and `logs/server.log` of a private broker.
    pub fn dir(&self) -> Option<PathBuf> {
        self.local.as_ref().map(LocalKafka::dir)
    }

    /// Graceful shutdown (SIGTERM, SIGKILL after 30 s); waits until the process is gone.
    /// Does nothing if already stopped.
    pub fn stop(&self) -> Result<(), TestkitError> {
        Ok(self.local_or_err()?.stop()?)
    }

    /// Hard crash: SIGKILL the broker and wait until it is gone. Data stays for
    /// [`restart`](Self::restart).
    pub fn kill(&self) -> Result<(), TestkitError> {
        Ok(self.local_or_err()?.kill()?)
    }

    /// Starts the broker again on the same ports with the same data.
    pub fn restart(&self) -> Result<(), TestkitError> {
        Ok(self.local_or_err()?.restart()?)
    }

    /// Creates a topic with replication factor 1; an existing topic is an error.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), TestkitError> {
        self.create_topic_with(name, partitions, &[])
    }

    /// Creates a topic with replication factor 1 and the given topic configs.
    pub fn create_topic_with(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<(), TestkitError> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()?;
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
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

    /// Deletes the records of `topic`'s `partition` before `offset` (Kafka's
    /// DeleteRecords, as retention would), so its first offset becomes `offset`.
    pub fn delete_records_before(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), TestkitError> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()?;
        let mut offsets = rdkafka::TopicPartitionList::new();
        offsets.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset))?;
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let result = block_on(admin.delete_records(&offsets, &options))?;
        for e in result.elements() {
            e.error()?;
        }
        Ok(())
    }

    fn local_or_err(&self) -> Result<&LocalKafka, TestkitError> {
        self.local
            .as_ref()
            .ok_or_else(|| TestkitError::External(self.bootstrap.clone()))
    }
}

/// A random name `prefix-<16 hex digits>` for topics and consumer groups, so tests sharing a
/// broker never collide.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// Minimal executor for rdkafka's admin futures (they are completed by librdkafka's own thread,
/// so blocking here is safe even inside a tokio test).
fn block_on<F: Future>(future: F) -> F::Output {
    struct ThreadWaker(Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use std::time::Instant;

    fn produce_one(bootstrap: &str, topic: &str, payload: &str) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .unwrap();
        producer
            .send(BaseRecord::<(), _>::to(topic).payload(payload))
            .unwrap();
        producer.flush(Duration::from_secs(30)).unwrap();
    }

    fn read_all(bootstrap: &str, topic: &str, expected: usize) -> Vec<String> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", unique_name("testkit"))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut out = Vec::new();
        while out.len() < expected && Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                let m = m.unwrap();
                out.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            }
        }
        out
    }

    #[test]
    fn unique_names_differ() {
        let a = unique_name("t");
        assert!(a.starts_with("t-") && a.len() == 18, "{a}");
        assert_ne!(a, unique_name("t"));
    }

    #[test]
    fn shared_broker_creates_topics() {
        let broker = KafkaBroker::shared();
        let topic = unique_name("testkit-shared");
        broker.create_topic(&topic, 3).unwrap();
        let err = broker.create_topic(&topic, 3).unwrap_err();
        assert!(
            matches!(
                err,
                TestkitError::CreateTopic {
                    code: RDKafkaErrorCode::TopicAlreadyExists,
                    ..
                }
            ),
            "{err}"
        );
        produce_one(broker.bootstrap(), &topic, "hello");
        assert_eq!(read_all(broker.bootstrap(), &topic, 1), ["hello"]);
    }

    /// Kill -9 and restart keep the data and the address; the java process is gone after kill.
    #[test]
    fn private_broker_survives_kill_and_restart() {
        let broker = KafkaBroker::start_private().unwrap();
        let pid = broker.pid().unwrap();
        let topic = unique_name("testkit-restart");
        broker.create_topic(&topic, 1).unwrap();
        produce_one(broker.bootstrap(), &topic, "before");

        broker.kill().unwrap();
        assert!(broker.pid().is_none());
        assert!(
            !PathBuf::from(format!("/proc/{pid}")).exists(),
            "java {pid} still alive"
        );

        broker.restart().unwrap();
        assert_ne!(broker.pid(), Some(pid));
        produce_one(broker.bootstrap(), &topic, "after");
        assert_eq!(read_all(broker.bootstrap(), &topic, 2), ["before", "after"]);

        broker.stop().unwrap();
        broker.stop().unwrap();
        let dir = broker.dir().unwrap();
        drop(broker);
        assert!(!dir.exists(), "temp dir {} left behind", dir.display());
    }
}
