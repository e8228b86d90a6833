//! rampart-testkit: a real Apache Kafka broker for tests, plus random topic and group names.
//!
//! [`KafkaBroker::start`] uses the broker named by `RAMPART_TEST_BOOTSTRAP` when that variable is
//! set (`scripts/test` starts one broker for the whole run and sets it); otherwise it provisions
//! Kafka from Maven Central with `scripts/kafka fetch` and starts a private single-node KRaft
//! broker in a temporary directory. [`KafkaBroker::shared`] gives every test in a binary the same
//! broker, so a test binary starts at most one.
//!
//! **The broker never outlives the test process.** Java is started by `scripts/kafka start DIR
//! --watch`, a small bash watchdog whose stdin is a pipe held only by this process (the write
//! end is close-on-exec, so no other child inherits it). When this process exits for any reason,
//! including a panic, `SIGKILL` of the test runner or an abort, the kernel closes the pipe, the
//! watchdog reads EOF, `SIGKILL`s that one java PID and deletes the broker's directory. This needs no `unsafe` and, unlike
//! `PR_SET_PDEATHSIG`, does not fire when the thread that spawned the broker ends.
//!
//! A broker that cannot start is a loud error (and a panic in [`KafkaBroker::shared`]), never
//! a skipped test.
//!
//! This crate knows nothing about rampart's own crates or topics; it only runs Kafka.

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::pin::pin;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;

/// Environment variable naming an already running broker (`host:port`) that tests should use.
pub const BOOTSTRAP_ENV: &str = "RAMPART_TEST_BOOTSTRAP";

/// How long a graceful [`KafkaBroker::stop`] may take before the broker is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Errors from starting, stopping or talking to the test broker.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// `scripts/kafka` could not be run at all.
    #[error("cannot run {script}: {source}")]
    Spawn {
        /// Path of the script.
        script: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// `scripts/kafka start` failed; `output` holds what it printed (including the broker log tail).
    #[error("kafka broker failed to start ({status}):\n{output}")]
    StartFailed {
        /// Exit status of the script.
        status: String,
        /// Its stderr and stdout.
        output: String,
    },
    /// Stopping, killing or restarting is impossible for a broker this process did not start.
    #[error(
        "the broker at {0} comes from {BOOTSTRAP_ENV}; use KafkaBroker::start_private to control it"
    )]
    External(String),
    /// An I/O error while waiting for or signalling the broker.
    #[error("broker process: {0}")]
    Io(#[from] std::io::Error),
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
    /// The broker did not answer a metadata request in time.
    #[error("broker at {bootstrap} did not answer a metadata request within {timeout:?}: {last}")]
    NotReady {
        /// Bootstrap address.
        bootstrap: String,
        /// How long we waited.
        timeout: Duration,
        /// Last client error.
        last: String,
    },
}

/// A Kafka broker for tests: either external (from [`BOOTSTRAP_ENV`]) or private to this process.
///
/// Methods take `&self` so the [`shared`](KafkaBroker::shared) broker can be used from many tests.
/// Tests that stop, kill or restart a broker should use their own
/// [`start_private`](KafkaBroker::start_private) broker, not the shared one.
pub struct KafkaBroker {
    bootstrap: String,
    private: Option<Mutex<Private>>,
}

impl std::fmt::Debug for KafkaBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBroker")
            .field("bootstrap", &self.bootstrap)
            .field("private", &self.private.is_some())
            .finish()
    }
}

/// A broker this process runs: its directory (config, data, logs) and its watchdog.
struct Private {
    dir: tempfile::TempDir,
    /// `scripts/kafka start DIR --watch`; `None` while the broker is stopped.
    watchdog: Option<Watchdog>,
}

struct Watchdog {
    child: Child,
    /// Write end of the watchdog's stdin: dropping it makes the watchdog kill java.
    stdin: Option<ChildStdin>,
    /// PID of the java process.
    java_pid: u32,
}

impl KafkaBroker {
    /// The broker from [`BOOTSTRAP_ENV`] if set, else a new private broker (see
    /// [`start_private`](Self::start_private)).
    pub fn start() -> Result<KafkaBroker, TestkitError> {
        match std::env::var(BOOTSTRAP_ENV) {
            Ok(bootstrap) if !bootstrap.trim().is_empty() => {
                let bootstrap = bootstrap.trim().to_owned();
                wait_ready(&bootstrap, Duration::from_secs(30))?;
                Ok(KafkaBroker {
                    bootstrap,
                    private: None,
                })
            }
            _ => Self::start_private(),
        }
    }

    /// Provisions Kafka if needed and starts a single-node KRaft broker in a fresh temporary
    /// directory on free loopback ports, ignoring [`BOOTSTRAP_ENV`]. Returns once the broker
    /// answers a metadata request. The broker is killed when this value drops or the process ends.
    pub fn start_private() -> Result<KafkaBroker, TestkitError> {
        Self::start_private_with_scram(&[])
    }

    /// [`start_private`](Self::start_private) with a second listener, SASL_PLAINTEXT, that
    /// takes SCRAM-SHA-512 and SCRAM-SHA-256 logins of `users` (`(name, password)`, created
    /// when the storage is formatted); its address is [`sasl_bootstrap`](Self::sasl_bootstrap).
    /// Names and passwords must not contain spaces, `,`, `=` or `]`.
    pub fn start_private_with_scram(users: &[(&str, &str)]) -> Result<KafkaBroker, TestkitError> {
        let dir = tempfile::Builder::new()
            .prefix("rampart-kafka-")
            .tempdir()?;
        let scram: Vec<String> = users.iter().map(|(u, p)| format!("{u}:{p}")).collect();
        let (watchdog, bootstrap) = spawn_watchdog(dir.path(), &scram.join(" "))?;
        let broker = KafkaBroker {
            bootstrap,
            private: Some(Mutex::new(Private {
                dir,
                watchdog: Some(watchdog),
            })),
        };
        wait_ready(&broker.bootstrap, Duration::from_secs(30))?;
        Ok(broker)
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

    /// The SASL_PLAINTEXT (SCRAM) listener of a broker from
    /// [`start_private_with_scram`](Self::start_private_with_scram).
    pub fn sasl_bootstrap(&self) -> Option<String> {
        let dir = self.dir()?;
        let text = std::fs::read_to_string(dir.join("bootstrap_sasl")).ok()?;
        Some(text.trim().to_owned())
    }

    /// Whether this process started (and therefore controls) the broker.
    pub fn is_private(&self) -> bool {
        self.private.is_some()
    }

    /// PID of the broker's java process, if this process runs it and it is up.
    pub fn pid(&self) -> Option<u32> {
        let private = self.private.as_ref()?;
        lock(private).watchdog.as_ref().map(|w| w.java_pid)
    }

    /// Directory holding `server.properties`, `data/` and `logs/server.log` of a private broker.
    pub fn dir(&self) -> Option<PathBuf> {
        self.private.as_ref().map(|p| lock(p).dir.path().to_owned())
    }

    /// Graceful shutdown (SIGTERM, SIGKILL after 30 s); waits until the process is gone.
    /// Does nothing if already stopped.
    pub fn stop(&self) -> Result<(), TestkitError> {
        self.signal_and_reap("-TERM")
    }

    /// Hard crash: SIGKILL the broker and wait until it is gone. Data stays for
    /// [`restart`](Self::restart).
    pub fn kill(&self) -> Result<(), TestkitError> {
        self.signal_and_reap("-KILL")
    }

    /// Starts the broker again on the same ports with the same data (stopping it first if it
    /// runs) and waits until it answers metadata requests.
    pub fn restart(&self) -> Result<(), TestkitError> {
        self.stop()?;
        let private = self.private_or_err()?;
        let mut guard = lock(private);
        let (watchdog, bootstrap) = spawn_watchdog(guard.dir.path(), "")?;
        guard.watchdog = Some(watchdog);
        drop(guard);
        debug_assert_eq!(bootstrap, self.bootstrap);
        wait_ready(&self.bootstrap, Duration::from_secs(30))
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

    fn private_or_err(&self) -> Result<&Mutex<Private>, TestkitError> {
        self.private
            .as_ref()
            .ok_or_else(|| TestkitError::External(self.bootstrap.clone()))
    }

    fn signal_and_reap(&self, signal: &str) -> Result<(), TestkitError> {
        let private = self.private_or_err()?;
        let mut guard = lock(private);
        let Some(mut watchdog) = guard.watchdog.take() else {
            return Ok(());
        };
        send_signal(signal, watchdog.java_pid)?;
        // The watchdog exits (and reaps java) once java is gone.
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            if watchdog.child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                // Closing stdin makes the watchdog SIGKILL java.
                watchdog.stdin.take();
                watchdog.child.wait()?;
                return Ok(());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        let Some(private) = self.private.as_mut() else {
            return;
        };
        let private = private.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(mut watchdog) = private.watchdog.take() {
            watchdog.stdin.take();
            let _ = watchdog.child.wait();
        }
    }
}

/// A random name `prefix-<16 hex digits>` for topics and consumer groups, so tests sharing a
/// broker never collide.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

fn lock(m: &Mutex<Private>) -> MutexGuard<'_, Private> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `scripts/kafka`, compiled in: the binary (`rampart demo`) must not depend on the
/// checkout it was built from. It runs as `bash -c SCRIPT scripts/kafka ARGS...`.
const KAFKA_SCRIPT: &str = include_str!("../../../scripts/kafka");

/// Runs `scripts/kafka start DIR --watch` and reads `bootstrap=` / `pid=` from its stdout.
fn spawn_watchdog(
    dir: &std::path::Path,
    scram_users: &str,
) -> Result<(Watchdog, String), TestkitError> {
    let script = PathBuf::from("scripts/kafka");
    let mut child = Command::new("bash")
        .env("KAFKA_SCRAM_USERS", scram_users)
        .arg("-c")
        .arg(KAFKA_SCRIPT)
        .arg(&script)
        .arg("start")
        .arg(dir)
        .arg("--watch")
        .arg("--rm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| TestkitError::Spawn {
            script: script.clone(),
            source,
        })?;
    // Drain stderr on a thread so a chatty first `mvn` run cannot block the script.
    let stderr_text = Arc::new(Mutex::new(String::new()));
    let stderr_thread = child.stderr.take().map(|mut stderr| {
        let sink = Arc::clone(&stderr_text);
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&text);
        })
    });
    let mut bootstrap = None;
    let mut java_pid = None;
    let mut stdout_text = String::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(b) = line.strip_prefix("bootstrap=") {
                bootstrap = Some(b.to_owned());
            } else if let Some(p) = line.strip_prefix("pid=") {
                java_pid = p.trim().parse::<u32>().ok();
                break;
            }
            stdout_text.push_str(&line);
            stdout_text.push('\n');
        }
    }
    match (bootstrap, java_pid) {
        (Some(bootstrap), Some(java_pid)) => {
            let stdin = child.stdin.take();
            Ok((
                Watchdog {
                    child,
                    stdin,
                    java_pid,
                },
                bootstrap,
            ))
        }
        _ => {
            child.stdin.take();
            let status = child.wait()?;
            if let Some(t) = stderr_thread {
                let _ = t.join();
            }
            let stderr = stderr_text
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            Err(TestkitError::StartFailed {
                status: status.to_string(),
                output: format!("{stderr}{stdout_text}"),
            })
        }
    }
}

fn send_signal(signal: &str, pid: u32) -> Result<(), TestkitError> {
    // `kill` fails if the process is already gone, which is fine: the watchdog then exits.
    Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()?;
    Ok(())
}

/// Polls a metadata request until the broker answers or `timeout` passes.
fn wait_ready(bootstrap: &str, timeout: Duration) -> Result<(), TestkitError> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let deadline = Instant::now() + timeout;
    loop {
        match producer
            .client()
            .fetch_metadata(None, Duration::from_secs(2))
        {
            Ok(metadata) if !metadata.brokers().is_empty() => return Ok(()),
            Ok(_) => {}
            Err(e) if Instant::now() >= deadline => {
                return Err(TestkitError::NotReady {
                    bootstrap: bootstrap.to_owned(),
                    timeout,
                    last: e.to_string(),
                });
            }
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            return Err(TestkitError::NotReady {
                bootstrap: bootstrap.to_owned(),
                timeout,
                last: "no brokers in metadata".to_owned(),
            });
        }
        thread::sleep(Duration::from_millis(100));
    }
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
    use rdkafka::producer::BaseRecord;

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
