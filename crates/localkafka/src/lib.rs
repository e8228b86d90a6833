//! rampart-localkafka: provisions Apache Kafka from Maven Central and runs it on loopback, for
//! `rampart demo`, the throughput harness and tests.
//!
//! [`LocalKafka::start`] runs `scripts/kafka` (compiled in with `include_str!`, so the binary
//! does not depend on the checkout it was built from): the first use fetches Kafka's jars with
//! Maven into `~/.cache/rampart`, then a single-node KRaft broker starts in a fresh temporary
//! directory on free loopback ports. [`Options`] add secured listeners: SASL/SCRAM users,
//! TLS (a CA and certificates generated when the storage is formatted, an mTLS listener,
//! SASL_SSL) and KRaft's `StandardAuthorizer` with ACLs.
//!
//! **The broker never outlives this process.** Java is started by `scripts/kafka start DIR
//! --watch`, a small bash watchdog whose stdin is a pipe held only by this process (the write
//! end is close-on-exec, so no other child inherits it). When this process exits for any
//! reason, including a panic, `SIGKILL` or an abort, the kernel closes the pipe, the watchdog
//! reads EOF, `SIGKILL`s that one java PID and deletes the broker's directory. This needs no
//! `unsafe` and, unlike `PR_SET_PDEATHSIG`, does not fire when the thread that spawned the
//! broker ends.
//!
//! [`LocalCluster::start`] runs several such nodes (combined KRaft controller+broker each, one
//! watchdog each) as one cluster with replicated internal topics, for failover tests; any node
//! can be stopped, killed and restarted alone.
//!
//! This crate knows nothing about rampart's own crates or topics; it only runs Kafka.

mod cluster;
mod watchdog;

pub use cluster::LocalCluster;

pub use watchdog::wait_ready;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::error::KafkaError;

use crate::watchdog::Watchdog;

/// How long a graceful [`LocalKafka::stop`] may take before the broker is killed.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(30);

/// How long a started broker may take to answer its first metadata request.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors from starting, stopping or administering a local broker.
#[derive(Debug, thiserror::Error)]
pub enum LocalKafkaError {
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
    /// `scripts/kafka acl` failed.
    #[error("creating ACLs failed:\n{0}")]
    Acl(String),
    /// An I/O error while waiting for or signalling the broker.
    #[error("broker process: {0}")]
    Io(#[from] std::io::Error),
    /// A Kafka client error (the readiness probe).
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
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

/// Listeners and security of a new broker. The default is one PLAINTEXT listener, no
/// authorizer. Options apply when the storage is formatted (the first start of a directory).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// SCRAM-SHA-512 and SCRAM-SHA-256 logins `(name, password)`, created at format time; adds
    /// a SASL_PLAINTEXT listener (and SASL_SSL with [`tls`](Self::tls)). Names and passwords
    /// must not contain spaces, `,`, `=`, `;` or `]`.
    pub scram_users: Vec<(String, String)>,
    /// TLS listeners with certificates from a CA generated at format time (see
    /// [`LocalKafka::tls_dir`]): SSL, MTLS (client certificate required), SASL_SSL (with SCRAM
    /// users) and WRONG_HOST (a server certificate for another host name).
    pub tls: bool,
    /// Encrypts the generated client key (`client.key`) with this password.
    pub client_key_password: Option<String>,
    /// Turns on KRaft's `StandardAuthorizer`: these principals (`User:NAME`) are super users,
    /// everyone else needs ACLs ([`LocalKafka::create_acls`]). `User:ANONYMOUS` (the PLAINTEXT
    /// and controller listeners) always is one.
    pub super_users: Option<Vec<String>>,
}

/// A listener of a [`LocalKafka`] broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// No TLS, no login; principal `User:ANONYMOUS`.
    Plaintext,
    /// SASL/SCRAM without TLS.
    SaslPlaintext,
    /// TLS, no client certificate; principal `User:ANONYMOUS`.
    Ssl,
    /// TLS with a required client certificate; principal `User:CN=rampart-client`.
    Mtls,
    /// SASL/SCRAM over TLS.
    SaslSsl,
    /// TLS whose server certificate names `wrong-host.invalid`, not 127.0.0.1.
    WrongHost,
}

impl Listener {
    fn file(self) -> &'static str {
        match self {
            Listener::Plaintext => "bootstrap",
            Listener::SaslPlaintext => "bootstrap_sasl",
            Listener::Ssl => "bootstrap_ssl",
            Listener::Mtls => "bootstrap_mtls",
            Listener::SaslSsl => "bootstrap_sasl_ssl",
            Listener::WrongHost => "bootstrap_wrong_host",
        }
    }
}

/// A single-node KRaft broker this process runs on loopback. Methods take `&self` so one
/// broker can be shared by many threads. The broker is killed and its directory deleted when
/// this value drops or the process ends.
pub struct LocalKafka {
    bootstrap: String,
    options: Options,
    state: Mutex<State>,
}

impl std::fmt::Debug for LocalKafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKafka")
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

/// The broker's directory (config, data, logs, certificates) and its watchdog.
struct State {
    dir: tempfile::TempDir,
    /// `None` while the broker is stopped.
    watchdog: Option<Watchdog>,
}

impl LocalKafka {
    /// Provisions Kafka if needed and starts a broker with `options` in a fresh temporary
    /// directory on free loopback ports. Returns once the broker answers a metadata request.
    pub fn start(options: &Options) -> Result<LocalKafka, LocalKafkaError> {
        let dir = tempfile::Builder::new()
            .prefix("rampart-kafka-")
            .tempdir()?;
        let (watchdog, bootstrap) = watchdog::spawn(dir.path(), options)?;
        let broker = LocalKafka {
            bootstrap,
            options: options.clone(),
            state: Mutex::new(State {
                dir,
                watchdog: Some(watchdog),
            }),
        };
        watchdog::wait_ready(&broker.bootstrap, READY_TIMEOUT)?;
        Ok(broker)
    }

    /// The PLAINTEXT listener (`127.0.0.1:PORT`).
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The address of `listener`, if the broker has it.
    pub fn listener(&self, listener: Listener) -> Option<String> {
        let text = std::fs::read_to_string(self.dir().join(listener.file())).ok()?;
        Some(text.trim().to_owned())
    }

    /// With [`Options::tls`]: the directory holding `ca.pem` (the CA that signed the server and
    /// client certificates), `client.pem` and `client.key` (CN=rampart-client) and
    /// `untrusted-ca.pem` (a CA that signed nothing of this broker's).
    pub fn tls_dir(&self) -> Option<PathBuf> {
        let dir = self.dir().join("tls");
        (self.options.tls && dir.join("ca.pem").is_file()).then_some(dir)
    }

    /// Directory holding `server.properties`, `data/` and `logs/server.log`.
    pub fn dir(&self) -> PathBuf {
        lock(&self.state).dir.path().to_owned()
    }

    /// PID of the broker's java process while it runs.
    pub fn pid(&self) -> Option<u32> {
        lock(&self.state).watchdog.as_ref().map(|w| w.java_pid)
    }

    /// Adds ACLs with Kafka's `AclCommand` (fetched from Maven Central on first use) over the
    /// PLAINTEXT listener; `args` are its options after `--add`, for example
    /// `["--deny-principal", "User:app", "--operation", "Write", "--topic", "rollups"]`.
    pub fn create_acls(&self, args: &[&str]) -> Result<(), LocalKafkaError> {
        let output = watchdog::script(&self.options)
            .arg("acl")
            .arg(self.dir())
            .arg("--add")
            .arg("--force")
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        if output.status.success() {
            Ok(())
        } else {
            Err(LocalKafkaError::Acl(format!(
                "{}{}",
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            )))
        }
    }

    /// Graceful shutdown (SIGTERM, SIGKILL after 30 s); waits until the process is gone.
    /// Does nothing if already stopped.
    pub fn stop(&self) -> Result<(), LocalKafkaError> {
        self.signal_and_reap("-TERM")
    }

    /// Hard crash: SIGKILL the broker and wait until it is gone. Data stays for
    /// [`restart`](Self::restart).
    pub fn kill(&self) -> Result<(), LocalKafkaError> {
        self.signal_and_reap("-KILL")
    }

    /// Starts the broker again on the same ports with the same data (stopping it first if it
    /// runs) and waits until it answers metadata requests.
    pub fn restart(&self) -> Result<(), LocalKafkaError> {
        self.stop()?;
        let mut state = lock(&self.state);
        let (watchdog, bootstrap) = watchdog::spawn(state.dir.path(), &self.options)?;
        state.watchdog = Some(watchdog);
        drop(state);
        debug_assert_eq!(bootstrap, self.bootstrap);
        watchdog::wait_ready(&self.bootstrap, READY_TIMEOUT)
    }

    fn signal_and_reap(&self, signal: &str) -> Result<(), LocalKafkaError> {
        watchdog::signal_and_reap(&mut lock(&self.state).watchdog, signal, STOP_GRACE)
    }
}

impl Drop for LocalKafka {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        watchdog::abandon(&mut state.watchdog);
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
