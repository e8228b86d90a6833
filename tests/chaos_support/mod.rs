//! Shared machinery of the exactly-once tests (`chaos*.rs`, `eos*.rs`) and of
//! the recovery-time example: a seeded loadgen workload on a given broker
//! (shared or private), `rampart run` processes with stable instance names and
//! per-incarnation logs, paced input production, read_committed and
//! read_uncommitted observers that run while faults happen, and the final
//! exactly-once verdict (ground truth, exactly-once per rollup key, DLQ,
//! no hanging transaction).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/rollups.rs"]
mod rollups;
#[allow(unused_imports)] // not every test binary compares rollups
pub use rollups::diff;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prost::Message as _;
use rampart_core::ingest::IngestConfig;
use rampart_core::model::ModelOutput;
use rampart_core::proto::v1::Rollup;
use rampart_loadgen::{
    GenConfig, Generator, Limit, Record, RecordConfig, RecordStream, World, WorldConfig,
};
use rampart_testkit::{KafkaBroker, unique_name};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::util::Timeout;

/// SplitMix64: the chaos schedule's seeded RNG.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi` (milliseconds).
    pub fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next_u64() % (hi - lo).max(1))
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }
}

/// Shape of a workload.
#[derive(Clone, Debug)]
pub struct Spec {
    pub events: u64,
    pub partitions: u32,
    pub events_per_batch: usize,
    pub malformed_share: f64,
    pub seed: u64,
    /// Event-time rate of the generator (events per second of event time).
    pub rate: u64,
    /// TOML appended to the generated config (e.g. `[processing]` overrides).
    pub extra_config: String,
    /// `[window] idle_timeout`: must exceed every stall the test injects
    /// (broker outage, SIGSTOP), or an idle advance legitimately changes output.
    pub idle_timeout: String,
    pub checkpoint_interval: String,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            events: 300_000,
            partitions: 6,
            events_per_batch: 50,
            malformed_share: 0.005,
            seed: 5,
            rate: 2_000,
            extra_config: String::new(),
            idle_timeout: "25s".into(),
            checkpoint_interval: "1s".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Topics {
    pub input: String,
    pub partials: String,
    pub rollups: String,
    pub dlq: String,
    pub ingest_group: String,
    pub merge_group: String,
}

impl Topics {
    /// Every topic rampart writes transactionally.
    pub fn outputs(&self) -> [&str; 3] {
        [&self.partials, &self.rollups, &self.dlq]
    }
}

/// A seeded workload: its records (not yet produced), world files and config.
pub struct Workload {
    pub dir: tempfile::TempDir,
    pub bootstrap: String,
    pub world: Arc<World>,
    pub records: Vec<Record>,
    pub partitions: u32,
    pub topics: Topics,
    pub config_path: PathBuf,
    pub ingest: IngestConfig,
}

/// Builds the workload, writes MMDB/sector files and the config, creates the
/// input topic (empty; see [`produce_all`] and [`Producer_::paced`]).
pub fn workload(broker: &KafkaBroker, spec: &Spec) -> Workload {
    let dir = tempfile::tempdir().unwrap();
    let world = Arc::new(
        World::new(WorldConfig {
            seed: spec.seed,
            asns: 2_000,
            prefixes: 6_000,
            sources: 60_000,
            ..WorldConfig::default()
        })
        .unwrap(),
    );
    let country = dir.path().join("country.mmdb");
    let asn = dir.path().join("asn.mmdb");
    let sectors = dir.path().join("sectors.csv");
    world.write_mmdb(&country, &asn).unwrap();
    world.write_sector_table(&sectors).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let epoch_ms = (now - 3_600_000) / 60_000 * 60_000;
    let generator = Generator::new(
        world.clone(),
        GenConfig {
            seed: spec.seed,
            rate: spec.rate,
            epoch_ms,
            late_min_ms: 20_000,
            late_max_ms: 60_000,
            late_fraction: 0.002,
            ..GenConfig::default()
        },
    )
    .unwrap();
    let records: Vec<Record> = RecordStream::new(
        generator,
        RecordConfig {
            partitions: spec.partitions,
            events_per_batch: spec.events_per_batch,
            malformed_share: spec.malformed_share,
            ..RecordConfig::default()
        },
        Limit::Events(spec.events),
    )
    .unwrap()
    .collect();
    let topics = Topics {
        input: unique_name("raw"),
        partials: unique_name("partials"),
        rollups: unique_name("rollups"),
        dlq: unique_name("dlq"),
        ingest_group: unique_name("ingest"),
        merge_group: unique_name("merge"),
    };
    broker
        .create_topic_with(
            &topics.input,
            spec.partitions as i32,
            &[("retention.ms", "-1")],
        )
        .unwrap();
    let config_path = dir.path().join("rampart.toml");
    let text = format!(
        r#"
[kafka]
brokers = "{bootstrap}"
ingest_group = "{ig}"
merge_group = "{mg}"

[topics]
input = "{input}"
partials = "{partials}"
rollups = "{rollups}"
dlq = "{dlq}"
input_partitions = {parts}
partials_partitions = 3
rollups_partitions = 2

[window]
size = "5s"
out_of_orderness = "1s"
allowed_lateness = "1s"
idle_timeout = "{idle}"

[enrich]
country_db = "{country}"
asn_db = "{asn}"
sectors = "{sectors}"

[metrics]
listen = ""

[processing]
checkpoint_interval = "{ckpt}"
{extra}
"#,
        bootstrap = broker.bootstrap(),
        ig = topics.ingest_group,
        mg = topics.merge_group,
        input = topics.input,
        partials = topics.partials,
        rollups = topics.rollups,
        dlq = topics.dlq,
        parts = spec.partitions,
        idle = spec.idle_timeout,
        ckpt = spec.checkpoint_interval,
        country = country.display(),
        asn = asn.display(),
        sectors = sectors.display(),
        extra = spec.extra_config,
    );
    std::fs::write(&config_path, text).unwrap();
    let settings = rampart_pipeline::config::load(Some(&config_path), std::iter::empty()).unwrap();
    Workload {
        dir,
        bootstrap: broker.bootstrap().to_owned(),
        world,
        records,
        partitions: spec.partitions,
        topics,
        config_path,
        ingest: settings.ingest,
    }
}

impl Workload {
    /// The exact expected rollups once every window is closed.
    pub fn truth(&self) -> ModelOutput {
        rampart_loadgen::ground_truth(
            self.records.iter().cloned(),
            self.partitions,
            &self.ingest,
            &self.world,
            true,
        )
    }
}

fn input_producer(bootstrap: &str) -> ThreadedProducer<rdkafka::producer::DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // Survive a broker bounce: keep retrying for as long as a test runs.
        .set("message.timeout.ms", "600000")
        .create()
        .unwrap()
}

fn send_all(
    producer: &ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    topic: &str,
    records: &[Record],
) {
    for r in records {
        let mut rec = BaseRecord::to(topic)
            .partition(r.partition)
            .key(&r.key)
            .payload(&r.payload)
            .timestamp(r.timestamp_ms);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
}

/// Produces every record at once and waits until all are acknowledged.
pub fn produce_all(w: &Workload) {
    let producer = input_producer(&w.bootstrap);
    send_all(&producer, &w.topics.input, &w.records);
    producer
        .flush(Timeout::After(Duration::from_secs(120)))
        .unwrap();
}

/// Produces the records in order, spread evenly over `over`, on a thread
/// (input keeps arriving while the test injects faults). Join to wait.
pub fn produce_paced(w: &Workload, over: Duration) -> JoinHandle<()> {
    let bootstrap = w.bootstrap.clone();
    let topic = w.topics.input.clone();
    let records = w.records.clone();
    std::thread::spawn(move || {
        let producer = input_producer(&bootstrap);
        let start = Instant::now();
        let n = records.len().max(1);
        let chunk = 20;
        for (i, part) in records.chunks(chunk).enumerate() {
            let due = start + over.mul_f64((i * chunk) as f64 / n as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            send_all(&producer, &topic, part);
        }
        producer
            .flush(Timeout::After(Duration::from_secs(300)))
            .unwrap();
    })
}

/// One `rampart run` process with a stable instance name.
pub struct Instance {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
    pub incarnation: u32,
    pub started: Instant,
}

/// Starts and restarts `rampart run` processes for one workload.
pub struct Fleet {
    pub bin: PathBuf,
    pub config: PathBuf,
    pub dir: PathBuf,
    pub extra_args: Vec<String>,
    /// Extra arguments of one instance (e.g. `--role ingest`), kept across restarts.
    pub instance_args: BTreeMap<String, Vec<String>>,
    /// Extra environment of the next starts (e.g. `RAMPART_PROCESSING__CHECKPOINT_INTERVAL`).
    pub env: Vec<(String, String)>,
    pub live: BTreeMap<String, Instance>,
    incarnations: BTreeMap<String, u32>,
    /// Processes that exited on their own (not by the driver) and were restarted.
    pub unexpected_exits: Vec<(String, String)>,
    pub logs: Vec<PathBuf>,
}

impl Fleet {
    pub fn new(bin: &Path, w: &Workload) -> Self {
        Fleet {
            bin: bin.to_owned(),
            config: w.config_path.clone(),
            dir: w.dir.path().to_owned(),
            extra_args: Vec::new(),
            env: Vec::new(),
            instance_args: BTreeMap::new(),
            live: BTreeMap::new(),
            incarnations: BTreeMap::new(),
            unexpected_exits: Vec::new(),
            logs: Vec::new(),
        }
    }

    /// Starts instance `name` (again), its stderr in `<name>.<incarnation>.log`.
    pub fn start(&mut self, name: &str) {
        assert!(!self.live.contains_key(name), "{name} already runs");
        let n = self.incarnations.entry(name.to_owned()).or_default();
        *n += 1;
        let log = self.dir.join(format!("{name}.{n}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(&self.bin)
            .args(["run", "--config"])
            .arg(&self.config)
            .args(["--instance", name])
            .args(&self.extra_args)
            .args(self.instance_args.get(name).into_iter().flatten())
            .env("RAMPART_LOG", "info,rdkafka=warn")
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn rampart");
        eprintln!("[driver] started {name}#{n} pid {}", child.id());
        self.logs.push(log.clone());
        self.live.insert(
            name.to_owned(),
            Instance {
                name: name.to_owned(),
                child,
                log,
                incarnation: *n,
                started: Instant::now(),
            },
        );
    }

    pub fn names(&self) -> Vec<String> {
        self.live.keys().cloned().collect()
    }

    fn signal(&self, name: &str, sig: &str) {
        let pid = self.live[name].child.id();
        let ok = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid} failed");
    }

    /// SIGKILL, reaped; the instance is no longer live.
    pub fn kill9(&mut self, name: &str) {
        let mut inst = self.live.remove(name).unwrap();
        eprintln!("[driver] SIGKILL {name} pid {}", inst.child.id());
        let _ = inst.child.kill();
        let _ = inst.child.wait();
    }

    /// SIGTERM and a bounded wait; returns the exit status.
    pub fn terminate(&mut self, name: &str) -> ExitStatus {
        self.signal(name, "-TERM");
        let mut inst = self.live.remove(name).unwrap();
        eprintln!("[driver] SIGTERM {name} pid {}", inst.child.id());
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(s) = inst.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = inst.child.kill();
                let _ = inst.child.wait();
                panic!("{name} did not exit within 90 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&self, name: &str) {
        eprintln!("[driver] SIGSTOP {name}");
        self.signal(name, "-STOP");
    }

    pub fn cont(&self, name: &str) {
        eprintln!("[driver] SIGCONT {name}");
        self.signal(name, "-CONT");
    }

    /// Restarts processes that exited on their own (as a process supervisor
    /// would); returns how many.
    pub fn supervise(&mut self) -> usize {
        let mut exited = Vec::new();
        for (name, inst) in &mut self.live {
            if let Some(status) = inst.child.try_wait().unwrap() {
                exited.push((name.clone(), format!("{status}")));
            }
        }
        for (name, status) in &exited {
            let log = std::fs::read_to_string(&self.live[name].log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            eprintln!(
                "[driver] {name} exited on its own ({status}); restarting. Log tail: {tail:?}"
            );
            self.live.remove(name);
            self.unexpected_exits.push((name.clone(), status.clone()));
            assert!(
                self.unexpected_exits.len() <= 20,
                "crash loop: {:?}",
                self.unexpected_exits
            );
            // A supervisor's restart back-off.
            std::thread::sleep(Duration::from_millis(500));
            self.start(name);
        }
        exited.len()
    }

    /// Sleeps `d` while supervising.
    pub fn sleep(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.supervise();
            std::thread::sleep(Duration::from_millis(100).min(end - Instant::now().min(end)));
        }
    }

    /// SIGTERMs every live instance; returns the statuses.
    pub fn shutdown(&mut self) -> Vec<(String, ExitStatus)> {
        self.names()
            .into_iter()
            .map(|n| {
                let s = self.terminate(&n);
                (n, s)
            })
            .collect()
    }

    /// The last lines of every log, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut s = String::new();
        for log in &self.logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            s.push_str(&format!("==== {}\n", log.display()));
            for l in &all[all.len().saturating_sub(lines)..] {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    /// Log lines (all incarnations) containing `needle`.
    pub fn grep(&self, needle: &str) -> Vec<String> {
        let mut v = Vec::new();
        for log in &self.logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            for l in text.lines().filter(|l| l.contains(needle)) {
                v.push(format!(
                    "{}: {l}",
                    log.file_name().unwrap().to_string_lossy()
                ));
            }
        }
        v
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for inst in self.live.values_mut() {
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(inst.child.id().to_string())
                .status();
            let _ = inst.child.kill();
            let _ = inst.child.wait();
        }
    }
}

/// One message read back from an output topic.
#[derive(Clone, Debug)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

fn reader(bootstrap: &str, committed: bool) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("observer"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "isolation.level",
            if committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .unwrap()
}

fn to_read(m: &rdkafka::message::BorrowedMessage<'_>) -> Read {
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
        key: m.key().unwrap_or_default().to_vec(),
        payload: m.payload().unwrap_or_default().to_vec(),
        headers,
    }
}

/// A consumer running on its own thread for the whole test, keeping every
/// message it sees (the "during the chaos" observer).
pub struct Observer {
    pub reads: Arc<Mutex<Vec<Read>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    pub count: Arc<AtomicUsize>,
}

impl Observer {
    pub fn start(bootstrap: &str, topic: &str, committed: bool) -> Self {
        Self::spawn(bootstrap, topic, committed, true)
    }

    /// Counts messages without keeping them.
    pub fn counting(bootstrap: &str, topic: &str, committed: bool) -> Self {
        Self::spawn(bootstrap, topic, committed, false)
    }

    fn spawn(bootstrap: &str, topic: &str, committed: bool, keep: bool) -> Self {
        let reads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicUsize::new(0));
        let c = reader(bootstrap, committed);
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
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        self.len()
    }

    /// Stops the thread and returns everything read.
    pub fn finish(mut self) -> Vec<Read> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        std::mem::take(&mut *self.reads.lock().unwrap())
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

/// Reads all of `topic` from the beginning (fresh group) until nothing new
/// arrived for `quiet`.
pub fn read_all(bootstrap: &str, topic: &str, committed: bool, quiet: Duration) -> Vec<Read> {
    let c = reader(bootstrap, committed);
    c.subscribe(&[topic]).unwrap();
    let mut all = Vec::new();
    let mut last = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    while last.elapsed() < quiet && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            all.push(to_read(&m));
            last = Instant::now();
        }
    }
    all
}

/// `(partition, read_committed end, read_uncommitted end)`.
pub type EndOffsets = Vec<(i32, i64, i64)>;

/// Per partition of `topic`: (read_committed end offset = last stable offset,
/// read_uncommitted end offset = high watermark).
pub fn end_offsets(bootstrap: &str, topic: &str) -> EndOffsets {
    let rc = reader(bootstrap, true);
    let ru = reader(bootstrap, false);
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

pub fn decode_rollups(reads: &[Read]) -> Vec<Rollup> {
    reads
        .iter()
        .map(|r| Rollup::decode(&r.payload[..]).expect("rollup decodes"))
        .collect()
}

/// Source positions `(partition, offset)` of dead letters, with how often each was read.
pub fn dlq_positions(reads: &[Read], input: &str) -> BTreeMap<(u32, i64), usize> {
    let mut m = BTreeMap::new();
    for r in reads {
        assert_eq!(r.headers["rampart.source.topic"], input);
        let p: u32 = r.headers["rampart.source.partition"].parse().unwrap();
        let o: i64 = r.headers["rampart.source.offset"].parse().unwrap();
        *m.entry((p, o)).or_default() += 1;
    }
    m
}

/// Everything the exactly-once verdict needs, gathered by a chaos run.
pub struct Outcome {
    pub truth: ModelOutput,
    /// read_committed observer that ran during the faults.
    pub during: Vec<Read>,
    /// Fresh read_committed read after every instance stopped.
    pub after: Vec<Read>,
    pub dlq: Vec<Read>,
    pub end_offsets: Vec<(String, EndOffsets)>,
}

/// Asserts the exactly-once properties; panics with a readable report.
pub fn verify(w: &Workload, o: &Outcome, context: &str) {
    let mut problems = Vec::new();
    let d = diff(&o.truth.rollups, &decode_rollups(&o.after));
    if !d.is_empty() {
        problems.push(format!(
            "final read_committed rollups vs ground truth: {} differences, first:\n{}",
            d.len(),
            d.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
        ));
    }
    let d = diff(&o.truth.rollups, &decode_rollups(&o.during));
    if !d.is_empty() {
        problems.push(format!(
            "read_committed observer during the faults: {} differences (duplicates = replayed or aborted reads), first:\n{}",
            d.len(),
            d.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
        ));
    }
    let want: BTreeMap<(u32, i64), usize> = o
        .truth
        .rejected
        .iter()
        .map(|r| ((r.partition, r.offset), 1))
        .collect();
    let got = dlq_positions(&o.dlq, &w.topics.input);
    if got != want {
        let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(k)).collect();
        let extra: Vec<_> = got
            .iter()
            .filter(|(k, n)| !want.contains_key(k) || **n > 1)
            .collect();
        problems.push(format!(
            "DLQ: want {} dead letters once each; missing {missing:?}, extra or repeated {extra:?}",
            want.len()
        ));
    }
    for (topic, parts) in &o.end_offsets {
        for (p, lso, hw) in parts {
            if lso != hw {
                problems.push(format!(
                    "hanging transaction on {topic}[{p}]: read_committed end {lso} != read_uncommitted end {hw}"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{context}: exactly-once violated:\n{}",
        problems.join("\n")
    );
}
