//! Shared fixtures of the end-to-end tests: a real broker (testkit), a
//! loadgen workload with its ground truth, the built `rampart` binary run as a
//! user would, and read_committed readers of its output topics.
#![allow(dead_code, clippy::unwrap_used)]

mod rollups;
#[allow(unused_imports)] // not every test binary compares rollups
pub use rollups::{diff, rollup_key};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use rampart_core::ingest::IngestConfig;
use rampart_core::model::ModelOutput;
use rampart_core::proto::v1::{Dimension, Rollup};
use rampart_loadgen::{
    GenConfig, Generator, Limit, Record, RecordConfig, RecordStream, World, WorldConfig,
};
use rampart_testkit::{KafkaBroker, unique_name};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::util::Timeout;

pub struct Workload {
    pub dir: tempfile::TempDir,
    pub world: Arc<World>,
    pub records: Vec<Record>,
    pub partitions: u32,
    pub topics: Topics,
    pub config_path: PathBuf,
    pub ingest: IngestConfig,
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

pub struct Spec {
    pub events: u64,
    pub partitions: u32,
    pub events_per_batch: usize,
    pub malformed_share: f64,
    pub seed: u64,
    pub extra_config: String,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            events: 20_000,
            partitions: 4,
            events_per_batch: 100,
            malformed_share: 0.01,
            seed: 7,
            extra_config: String::new(),
        }
    }
}

pub fn broker() -> &'static KafkaBroker {
    KafkaBroker::shared()
}

/// Builds a seeded workload, writes its MMDB/sector files and config, creates
/// the input topic and produces every record to it.
pub fn workload(spec: Spec) -> Workload {
    let broker = broker();
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
    // Event time near the wall clock, so the broker's retention never drops input.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let epoch_ms = (now - 3_600_000) / 60_000 * 60_000;
    let gen_cfg = GenConfig {
        seed: spec.seed,
        rate: 2_000,
        epoch_ms,
        late_min_ms: 20_000,
        late_max_ms: 60_000,
        late_fraction: 0.002,
        ..GenConfig::default()
    };
    let generator = Generator::new(world.clone(), gen_cfg).unwrap();
    let rec_cfg = RecordConfig {
        partitions: spec.partitions,
        events_per_batch: spec.events_per_batch,
        malformed_share: spec.malformed_share,
        ..RecordConfig::default()
    };
    let records: Vec<Record> = RecordStream::new(generator, rec_cfg, Limit::Events(spec.events))
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
    produce(broker.bootstrap(), &topics.input, &records);
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
partials_partitions = 3
rollups_partitions = 2

[window]
size = "5s"
out_of_orderness = "1s"
allowed_lateness = "1s"
idle_timeout = "1s"

[enrich]
country_db = "{country}"
asn_db = "{asn}"
sectors = "{sectors}"

[processing]
checkpoint_interval = "300ms"

[metrics]
listen = ""
{extra}
"#,
        bootstrap = broker.bootstrap(),
        ig = topics.ingest_group,
        mg = topics.merge_group,
        input = topics.input,
        partials = topics.partials,
        rollups = topics.rollups,
        dlq = topics.dlq,
        country = country.display(),
        asn = asn.display(),
        sectors = sectors.display(),
        extra = spec.extra_config,
    );
    std::fs::write(&config_path, text).unwrap();
    let settings = rampart_pipeline::config::load(Some(&config_path), std::iter::empty()).unwrap();
    Workload {
        dir,
        world,
        records,
        partitions: spec.partitions,
        topics,
        config_path,
        ingest: settings.ingest,
    }
}

pub fn produce(bootstrap: &str, topic: &str, records: &[Record]) {
    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
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
    producer
        .flush(Timeout::After(Duration::from_secs(60)))
        .unwrap();
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

    pub fn rampart(&self, args: &[&str]) -> Child {
        rampart_cmd(&self.config_path, args)
    }
}

pub fn rampart_cmd(config: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RAMPART_LOG", "info,rdkafka=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn rampart")
}

/// Sends SIGTERM and waits (bounded) for the exit status.
pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    wait_bounded(child, Duration::from_secs(60))
}

pub fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

pub fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rampart did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn reader(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap()
}

/// One message read back from an output topic.
#[derive(Clone, Debug)]
pub struct Read {
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// Reads `topic` (read_committed) until `done(&all_so_far)` or `limit`.
pub fn read_until(
    topic: &str,
    limit: Duration,
    mut done: impl FnMut(&[Read]) -> bool,
) -> Vec<Read> {
    let c = reader(broker().bootstrap());
    c.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + limit;
    let mut all = Vec::new();
    while Instant::now() < deadline && !done(&all) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let mut headers = BTreeMap::new();
            if let Some(h) = m.headers() {
                for x in h.iter() {
                    headers.insert(
                        x.key.to_string(),
                        String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                    );
                }
            }
            all.push(Read {
                key: m.key().unwrap_or_default().to_vec(),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
    }
    all
}

/// Reads whatever `topic` holds now (read_committed) after a quiet period.
pub fn read_all(topic: &str, quiet: Duration) -> Vec<Read> {
    let mut last_len = 0;
    let mut last_change = Instant::now();
    read_until(topic, Duration::from_secs(120), |all| {
        if all.len() != last_len {
            last_len = all.len();
            last_change = Instant::now();
        }
        last_change.elapsed() >= quiet
    })
}

pub fn decode_rollups(reads: &[Read]) -> Vec<Rollup> {
    reads
        .iter()
        .map(|r| Rollup::decode(&r.payload[..]).expect("rollup decodes"))
        .collect()
}

pub fn sum_raw(rollups: &[Rollup], dim: Dimension) -> (u64, u64, u64, u64) {
    rollups
        .iter()
        .filter(|r| r.dimension == dim as i32)
        .fold((0, 0, 0, 0), |a, r| {
            (
                a.0 + r.raw_events,
                a.1 + r.unique_events,
                a.2 + r.duplicates,
                a.3 + r.late_events,
            )
        })
}
