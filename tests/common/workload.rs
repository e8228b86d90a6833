//! A seeded loadgen workload: its records (ground truth computable from them),
//! the world's MMDB/sector files, unique topic and group names, and the
//! `rampart.toml` that points at all of it.

use std::path::PathBuf;
use std::sync::Arc;

use rampart_core::ingest::IngestConfig;
use rampart_core::model::ModelOutput;
use rampart_loadgen::{
    GenConfig, Generator, Limit, Record, RecordConfig, RecordStream, World, WorldConfig,
};
use rampart_testkit::{KafkaBroker, KafkaCluster, unique_name};

/// Shape of a workload and the settings of its config.
#[derive(Clone, Debug)]
pub struct Spec {
    pub events: u64,
    pub partitions: u32,
    pub events_per_batch: usize,
    pub malformed_share: f64,
    pub seed: u64,
    /// Event-time rate of the generator (events per second of event time).
    pub rate: u64,
    /// `[window] idle_timeout`: must exceed every stall the test injects
    /// (broker outage, SIGSTOP), or an idle advance legitimately changes output.
    pub idle_timeout: String,
    /// `[processing] checkpoint_interval`.
    pub checkpoint_interval: String,
    /// TOML appended to the generated config (e.g. a `[dedup]` section).
    pub extra_config: String,
    /// Input partitions left without records (the last ones; loadgen's
    /// `--empty-partitions`).
    pub empty_partitions: u32,
}

impl Default for Spec {
    /// A small workload that a single `rampart run` finishes in seconds.
    fn default() -> Self {
        Spec {
            events: 20_000,
            partitions: 4,
            events_per_batch: 100,
            malformed_share: 0.01,
            seed: 7,
            rate: 2_000,
            idle_timeout: "1s".into(),
            checkpoint_interval: "300ms".into(),
            extra_config: String::new(),
            empty_partitions: 0,
        }
    }
}

impl Spec {
    /// The exactly-once tests' workload: long enough for faults to land
    /// mid-run, an idle timeout longer than any stall they inject.
    pub fn chaos() -> Self {
        Spec {
            events: 300_000,
            partitions: 6,
            events_per_batch: 50,
            malformed_share: 0.005,
            seed: 5,
            rate: 2_000,
            idle_timeout: "25s".into(),
            checkpoint_interval: "1s".into(),
            extra_config: String::new(),
            empty_partitions: 0,
        }
    }
}

/// Topic and consumer-group names of one workload.
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
    /// Fresh random names, so tests sharing a broker never collide.
    pub fn unique() -> Self {
        Topics {
            input: unique_name("raw"),
            partials: unique_name("partials"),
            rollups: unique_name("rollups"),
            dlq: unique_name("dlq"),
            ingest_group: unique_name("ingest"),
            merge_group: unique_name("merge"),
        }
    }

    /// Every topic rampart writes transactionally.
    pub fn outputs(&self) -> [&str; 3] {
        [&self.partials, &self.rollups, &self.dlq]
    }
}

/// Where a workload's topics live: the one broker of most tests, or a
/// replicated cluster.
pub trait Kafka {
    fn bootstrap(&self) -> &str;
    /// Creates the (empty) input topic, kept forever.
    fn create_input(&self, topic: &str, partitions: i32);
    /// Lines for the config's `[topics]` section (replication).
    fn topics_config(&self) -> String;
}

impl Kafka for KafkaBroker {
    fn bootstrap(&self) -> &str {
        KafkaBroker::bootstrap(self)
    }
    fn create_input(&self, topic: &str, partitions: i32) {
        self.create_topic_with(topic, partitions, &[("retention.ms", "-1")])
            .unwrap();
    }
    fn topics_config(&self) -> String {
        String::new()
    }
}

/// Three replicas, two in sync for a write, as a production cluster would.
impl Kafka for KafkaCluster {
    fn bootstrap(&self) -> &str {
        KafkaCluster::bootstrap(self)
    }
    fn create_input(&self, topic: &str, partitions: i32) {
        self.create_topic_with(
            topic,
            partitions,
            3,
            &[("retention.ms", "-1"), ("min.insync.replicas", "2")],
        )
        .unwrap();
    }
    fn topics_config(&self) -> String {
        "replication_factor = 3
min_insync_replicas = 2
"
        .into()
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
/// input topic (empty: see [`produce_all`](super::produce_all) and
/// [`produce_paced`](super::produce_paced)).
pub fn workload(broker: &impl Kafka, spec: &Spec) -> Workload {
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
            empty_partitions: spec.empty_partitions,
            ..RecordConfig::default()
        },
        Limit::Events(spec.events),
    )
    .unwrap()
    .collect();
    let topics = Topics::unique();
    broker.create_input(&topics.input, spec.partitions as i32);
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
{replication}
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
# Tests run at once and some leave --instance to its default (the host
# name): a prefix of the workload's own keeps their transactional ids apart.
transactional_id_prefix = "rampart-{input}"
{extra}
"#,
        bootstrap = broker.bootstrap(),
        replication = broker.topics_config(),
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
