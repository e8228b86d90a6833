//! A KRaft cluster of combined controller+broker nodes on loopback (`scripts/kafka
//! init-cluster`, then one watchdog per node), for failover tests.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Mutex, MutexGuard};
use std::thread;

use crate::watchdog::{self, Watchdog};
use crate::{LocalKafkaError, Options, READY_TIMEOUT, STOP_GRACE};

/// Several Kafka nodes this process runs as one cluster: node `i` (0-based) has KRaft
/// `node.id = i + 1`. Internal topics have replication factor `nodes` and min ISR `nodes - 1`,
/// as do topics created without explicit settings. Every node is killed and the directory
/// deleted when this value drops or the process ends (each node has its own watchdog).
pub struct LocalCluster {
    bootstrap: String,
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

struct Node {
    dir: PathBuf,
    bootstrap: String,
    /// `None` while the node is stopped.
    watchdog: Mutex<Option<Watchdog>>,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

impl LocalCluster {
    /// Provisions Kafka if needed, formats `nodes` nodes in a fresh temporary directory and
    /// starts them all (a node finishes starting once a majority of controllers runs). Returns
    /// once the cluster answers metadata requests.
    pub fn start(nodes: usize) -> Result<LocalCluster, LocalKafkaError> {
        let dir = tempfile::Builder::new()
            .prefix("rampart-kafka-cluster-")
            .tempdir()?;
        let output = watchdog::script(&Options::default())
            .arg("init-cluster")
            .arg(dir.path())
            .arg(nodes.to_string())
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(LocalKafkaError::StartFailed {
                status: output.status.to_string(),
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        let read = |path: PathBuf| -> Result<String, LocalKafkaError> {
            Ok(std::fs::read_to_string(path)?.trim().to_owned())
        };
        let nodes: Vec<Node> = (1..=nodes)
            .map(|i| {
                let node_dir = dir.path().join(format!("node{i}"));
                Ok(Node {
                    bootstrap: read(node_dir.join("bootstrap"))?,
                    dir: node_dir,
                    watchdog: Mutex::new(None),
                })
            })
            .collect::<Result<_, LocalKafkaError>>()?;
        let cluster = LocalCluster {
            bootstrap: read(dir.path().join("bootstrap"))?,
            dir,
            nodes,
        };
        // All at once: each start waits for the others' controllers.
        let this = &cluster;
        let started: Vec<Result<(), LocalKafkaError>> = thread::scope(|scope| {
            let handles: Vec<_> = (0..this.nodes.len())
                .map(|i| scope.spawn(move || this.spawn_node(i)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(LocalKafkaError::Io(std::io::Error::other(
                            "node start panicked",
                        )))
                    })
                })
                .collect()
        });
        started.into_iter().collect::<Result<Vec<()>, _>>()?;
        watchdog::wait_ready(&cluster.bootstrap, READY_TIMEOUT)?;
        Ok(cluster)
    }

    /// Every node's PLAINTEXT listener, comma-separated (`bootstrap.servers`).
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The cluster's directory (`bootstrap`, `node1/`, `node2/`, ...).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Node `i`'s own listener.
    pub fn node_bootstrap(&self, i: usize) -> &str {
        &self.nodes[i].bootstrap
    }

    /// PID of node `i`'s java process while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        lock(&self.nodes[i].watchdog).as_ref().map(|w| w.java_pid)
    }

    /// Graceful shutdown of node `i` (SIGTERM, SIGKILL after 30 s); waits until it is gone.
    pub fn stop(&self, i: usize) -> Result<(), LocalKafkaError> {
        watchdog::signal_and_reap(&mut lock(&self.nodes[i].watchdog), "-TERM", STOP_GRACE)
    }

    /// Hard crash of node `i`: SIGKILL, reaped. Its data stays for [`restart`](Self::restart).
    pub fn kill(&self, i: usize) -> Result<(), LocalKafkaError> {
        watchdog::signal_and_reap(&mut lock(&self.nodes[i].watchdog), "-KILL", STOP_GRACE)
    }

    /// Starts node `i` again (stopping it first if it runs) on the same ports with the same data;
    /// returns once it reported itself started (it then catches up with the others).
    pub fn restart(&self, i: usize) -> Result<(), LocalKafkaError> {
        self.stop(i)?;
        self.spawn_node(i)?;
        watchdog::wait_ready(&self.nodes[i].bootstrap, READY_TIMEOUT)
    }

    fn spawn_node(&self, i: usize) -> Result<(), LocalKafkaError> {
        let node = &self.nodes[i];
        let (watchdog, bootstrap) = watchdog::spawn(&node.dir, &Options::default())?;
        debug_assert_eq!(bootstrap, node.bootstrap);
        *lock(&node.watchdog) = Some(watchdog);
        Ok(())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let watchdog = node.watchdog.get_mut().unwrap_or_else(|e| e.into_inner());
            watchdog::abandon(watchdog);
        }
    }
}

fn lock(m: &Mutex<Option<Watchdog>>) -> MutexGuard<'_, Option<Watchdog>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
