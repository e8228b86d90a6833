//! Reading rampart's output topics back: one-shot reads (until a condition or
//! a quiet period), [`Observer`]s that keep reading on a thread while a test
//! injects faults, end offsets of both isolation levels, and dead letters with
//! every header.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rampart_kafka::dlq::DlqHeaders;
use rampart_testkit::unique_name;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};

use super::Topics;

/// Which records a reader sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Only records of committed transactions (what rampart promises).
    Committed,
    /// Also records of open and aborted transactions.
    Uncommitted,
}

/// One message read back from a topic.
#[derive(Clone, Debug)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    /// Header values as (lossy) UTF-8; the last one wins for a repeated key.
    pub headers: BTreeMap<String, String>,
    /// When this reader received it.
    pub received: Instant,
}

/// A consumer of a fresh group reading from the earliest offset.
fn reader(bootstrap: &str, isolation: Isolation) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("observer"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "isolation.level",
            match isolation {
                Isolation::Committed => "read_committed",
                Isolation::Uncommitted => "read_uncommitted",
            },
        )
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .unwrap()
}

fn to_read(m: &BorrowedMessage<'_>) -> Read {
    let mut headers = BTreeMap::new();
    if let Some(h) = m.headers() {
        for x in h.iter() {
            headers.insert(
                x.key.to_string(),
                String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
            );
        }
    }
    Read {
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis(),
        key: m.key().unwrap_or_default().to_vec(),
        payload: m.payload().unwrap_or_default().to_vec(),
        headers,
        received: Instant::now(),
    }
}

/// Reads `topic` from the beginning until `done(&all_so_far)` or `limit`.
fn poll_until<T>(
    bootstrap: &str,
    topic: &str,
    isolation: Isolation,
    limit: Duration,
    convert: impl Fn(&BorrowedMessage<'_>) -> T,
    mut done: impl FnMut(&[T]) -> bool,
) -> Vec<T> {
    let c = reader(bootstrap, isolation);
    c.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + limit;
    let mut all = Vec::new();
    while Instant::now() < deadline && !done(&all) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            all.push(convert(&m));
        }
    }
    all
}

/// A `done` condition: nothing new arrived for `quiet`.
fn quiet_for<T>(quiet: Duration) -> impl FnMut(&[T]) -> bool {
    let mut last_len = 0;
    let mut last_change = Instant::now();
    move |all| {
        if all.len() != last_len {
            last_len = all.len();
            last_change = Instant::now();
        }
        last_change.elapsed() >= quiet
    }
}

/// Reads `topic` (read_committed) until `done(&all_so_far)` or `limit`.
pub fn read_until(
    bootstrap: &str,
    topic: &str,
    limit: Duration,
    done: impl FnMut(&[Read]) -> bool,
) -> Vec<Read> {
    poll_until(bootstrap, topic, Isolation::Committed, limit, to_read, done)
}

/// Reads all of `topic` (read_committed, from the beginning) until nothing
/// new arrived for `quiet` (at most 120 s).
pub fn read_all(bootstrap: &str, topic: &str, quiet: Duration) -> Vec<Read> {
    read_until(bootstrap, topic, Duration::from_secs(120), quiet_for(quiet))
}

/// A consumer running on its own thread for the whole test, keeping (or only
/// counting) every message it sees: the "during the chaos" observer.
pub struct Observer {
    pub reads: Arc<Mutex<Vec<Read>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    pub count: Arc<AtomicUsize>,
}

impl Observer {
    pub fn start(bootstrap: &str, topic: &str, isolation: Isolation) -> Self {
        Self::spawn(bootstrap, topic, isolation, true)
    }

    /// Counts messages without keeping them.
    pub fn counting(bootstrap: &str, topic: &str, isolation: Isolation) -> Self {
        Self::spawn(bootstrap, topic, isolation, false)
    }

    fn spawn(bootstrap: &str, topic: &str, isolation: Isolation, keep: bool) -> Self {
        let reads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicUsize::new(0));
        let c = reader(bootstrap, isolation);
        c.subscribe(&[topic]).unwrap();
        let (r, s, n) = (reads.clone(), stop.clone(), count.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                    if keep {
                        r.lock().unwrap().push(to_read(&m));
                    }
                    n.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Observer {
            reads,
            stop,
            handle: Some(handle),
            count,
        }
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Stops the thread; returns how many messages it read.
    pub fn finish_count(mut self) -> usize {
        self.halt();
        self.len()
    }

    /// Stops the thread and returns everything read.
    pub fn finish(mut self) -> Vec<Read> {
        self.halt();
        std::mem::take(&mut *self.reads.lock().unwrap())
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// `(partition, read_committed end, read_uncommitted end)`.
pub type EndOffsets = Vec<(i32, i64, i64)>;

/// Per partition of `topic`: (read_committed end offset = last stable offset,
/// read_uncommitted end offset = high watermark).
pub fn end_offsets(bootstrap: &str, topic: &str) -> EndOffsets {
    let rc = reader(bootstrap, Isolation::Committed);
    let ru = reader(bootstrap, Isolation::Uncommitted);
    let md = ru
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    parts
        .into_iter()
        .map(|p| {
            let (_, lso) = rc
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap();
            let (_, hw) = ru
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap();
            (p, lso, hw)
        })
        .collect()
}

/// Whether some output partition has a transaction open right now.
pub fn open_transaction(bootstrap: &str, topics: &Topics) -> bool {
    topics.outputs().iter().any(|t| {
        end_offsets(bootstrap, t)
            .iter()
            .any(|(_, lso, hw)| lso < hw)
    })
}

/// One record of the dead-letter topic, headers intact.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// Position in the DLQ topic.
    pub partition: i32,
    pub offset: i64,
    /// The original record's key and payload.
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// Every header in order: the original record's, then rampart's.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// rampart's `rampart.*` headers, parsed.
    pub rampart: DlqHeaders,
}

fn to_dead_letter(m: &BorrowedMessage<'_>) -> DeadLetter {
    DeadLetter {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec),
        headers: m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x| (x.key.to_owned(), x.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default(),
        rampart: DlqHeaders::from_message(m),
    }
}

/// Reads the dead-letter topic `dlq` (read_committed) until `done(&all_so_far)`
/// or `limit`.
pub fn read_dead_letters(
    bootstrap: &str,
    dlq: &str,
    limit: Duration,
    done: impl FnMut(&[DeadLetter]) -> bool,
) -> Vec<DeadLetter> {
    poll_until(
        bootstrap,
        dlq,
        Isolation::Committed,
        limit,
        to_dead_letter,
        done,
    )
}

/// Reads every dead letter of `dlq` until nothing new arrived for `quiet`.
pub fn read_all_dead_letters(bootstrap: &str, dlq: &str, quiet: Duration) -> Vec<DeadLetter> {
    read_dead_letters(bootstrap, dlq, Duration::from_secs(120), quiet_for(quiet))
}
