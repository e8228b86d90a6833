//! The serde structs of each TOML section and their defaults (the documented
//! example, `config/rampart.toml`, is exactly these defaults).

use std::path::PathBuf;

use serde::Deserialize;

/// Where a stage's guarantees come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guarantee {
    /// Kafka transactions: outputs and input offsets commit atomically; no
    /// duplicate and no loss through crashes (the default).
    ExactlyOnce,
    /// No transactions: outputs are flushed, then offsets committed. A crash
    /// between the two re-publishes the same rollups (same key, same bytes).
    AtLeastOnce,
}

/// The whole configuration. Every section and key has a default.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub kafka: KafkaSection,
    /// `[[inputs]]`: the input topics and their formats. Empty: one input,
    /// `topics.input` in protobuf (what rampart read before inputs had formats).
    pub inputs: Vec<InputSection>,
    pub topics: TopicsSection,
    pub window: WindowSection,
    pub dedup: DedupSection,
    pub keys: KeysSection,
    pub validate: ValidateSection,
    pub enrich: EnrichSection,
    pub processing: ProcessingSection,
    pub metrics: MetricsSection,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSection {
    /// `bootstrap.servers` (default `127.0.0.1:9092`).
    pub brokers: String,
    /// Consumer group of the ingest stage (default `rampart-ingest`).
    pub ingest_group: String,
    /// Consumer group of the merge stage (default `rampart-merge`).
    pub merge_group: String,
    /// Extra librdkafka settings for every client (security, tuning); `KEY_file` reads KEY
    /// from a file; secret values never print (see `rampart_kafka::overrides`).
    pub client: rampart_kafka::Overrides,
}

impl Default for KafkaSection {
    fn default() -> Self {
        KafkaSection {
            brokers: "127.0.0.1:9092".into(),
            ingest_group: "rampart-ingest".into(),
            merge_group: "rampart-merge".into(),
            client: rampart_kafka::Overrides::new(),
        }
    }
}

/// One `[[inputs]]` entry: a topic and the format of its messages.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSection {
    pub topic: String,
    /// `protobuf` (default), `suricata-eve`, `zeek-conn`, `ocsf` or `ecs`.
    #[serde(default)]
    pub format: rampart_formats::Format,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsSection {
    pub input: String,
    pub partials: String,
    pub rollups: String,
    pub dlq: String,
    /// Create missing topics at start (default true). Existing topics are never altered, but
    /// checked against these settings (README "Topics": what warns, what refuses).
    pub create: bool,
    /// Partitions used when creating topics that are missing.
    pub input_partitions: i32,
    pub partials_partitions: i32,
    pub rollups_partitions: i32,
    pub dlq_partitions: i32,
    /// Replicas of every topic rampart creates (default 1; 3 on a production cluster).
    pub replication_factor: i32,
    /// `min.insync.replicas` of the topics rampart writes (partials, rollups, DLQ); default
    /// `replication_factor - 1`, at least 1.
    pub min_insync_replicas: Option<i32>,
    /// How long the rollups topic keeps a window (`retention.ms` beside `cleanup.policy =
    /// compact,delete`; default 30d).
    pub rollups_retention: String,
}

impl TopicsSection {
    /// The configured `min.insync.replicas`, or `replication_factor - 1` (at least 1).
    pub fn min_insync(&self) -> i32 {
        self.min_insync_replicas
            .unwrap_or((self.replication_factor - 1).max(1))
    }
}

impl Default for TopicsSection {
    fn default() -> Self {
        TopicsSection {
            input: "attacks.raw".into(),
            partials: "rampart.partials".into(),
            rollups: "attacks.rollups".into(),
            dlq: "attacks.dlq".into(),
            create: true,
            input_partitions: 4,
            partials_partitions: 4,
            rollups_partitions: 4,
            dlq_partitions: 1,
            replication_factor: 1,
            min_insync_replicas: None,
            rollups_retention: "30d".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowSection {
    /// Tumbling window length (default 60s).
    pub size: String,
    /// Bounded out-of-orderness of the watermark (default 5s).
    pub out_of_orderness: String,
    /// How long after its end a window still takes events (default 10s).
    pub allowed_lateness: String,
    /// After this much processing time without input, a partition's watermark
    /// advances by processing time (default 30s).
    pub idle_timeout: String,
}

impl Default for WindowSection {
    fn default() -> Self {
        WindowSection {
            size: "60s".into(),
            out_of_orderness: "5s".into(),
            allowed_lateness: "10s".into(),
            idle_timeout: "30s".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupSection {
    /// How long (event time) a fingerprint is remembered (default 10m).
    pub horizon: String,
    /// Width of one dedup time bucket (default 1m).
    pub bucket: String,
    /// Memory budget of one partition's dedup table (default 1GiB).
    pub budget: String,
    /// Fingerprint fields: "auto" (event_id when present, else the 5-tuple,
    /// kind, rule id and time bucket) or a list such as
    /// ["src_ip", "dst_ip", "dst_port", "time_bucket"].
    pub fields: FieldsSetting,
    /// Time bucket used by the `time_bucket` fingerprint field (default 1s).
    pub time_bucket: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FieldsSetting {
    Auto(String),
    List(Vec<String>),
}

impl Default for DedupSection {
    fn default() -> Self {
        DedupSection {
            horizon: "10m".into(),
            bucket: "1m".into(),
            budget: "1GiB".into(),
            fields: FieldsSetting::Auto("auto".into()),
            time_bucket: "1s".into(),
        }
    }
}

/// Per-window key budgets of one input partition (`rampart_core::budget`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysSection {
    /// Memory for one input partition's origin cells, which sizes
    /// `prefix_cells` when that is 0 (default 64MiB).
    pub memory: String,
    /// Origin cells (source prefix × origin) per window and input partition;
    /// further prefixes count in `other:<country>` (0 = from `memory`).
    pub prefix_cells: usize,
    /// Origin prefixes and ASNs published per window and input partition, the
    /// largest by events; the rest in `other:<country>` (0 = all, default).
    pub publish_top: usize,
    /// Entries of a partial's port and rule count maps, the largest counts;
    /// the rest in `*_overflow` (0 = all; default 1024).
    pub count_entries: usize,
}

impl Default for KeysSection {
    fn default() -> Self {
        KeysSection {
            memory: "64MiB".into(),
            prefix_cells: 0,
            publish_top: 0,
            count_entries: 1024,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidateSection {
    /// Most events one Kafka message may carry (default 100000).
    pub max_batch_events: usize,
    /// Largest event time ahead of the Kafka message timestamp (default 5m).
    pub max_future: String,
    /// Largest event time behind the Kafka message timestamp (default 7d).
    pub max_past: String,
}

impl Default for ValidateSection {
    fn default() -> Self {
        ValidateSection {
            max_batch_events: 100_000,
            max_future: "5m".into(),
            max_past: "7d".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichSection {
    /// GeoLite2-Country (or City) shaped MMDB; without it every origin country is `ZZ`.
    pub country_db: Option<PathBuf>,
    /// GeoLite2-ASN shaped MMDB; without it every ASN is 0.
    pub asn_db: Option<PathBuf>,
    /// Asset inventory, CSV (`cidr,sector`) or TOML (`[[asset]]`); without it every sector is `unknown`.
    pub sectors: Option<PathBuf>,
    /// Dotted path of the two-letter country code in `country_db`'s records for a database
    /// that is not GeoIP2/GeoLite2/DB-IP shaped (e.g. `country_code`); default `country.iso_code`.
    pub country_field: Option<String>,
    /// Dotted path of the AS number (a number, or text like `AS13335`) in `asn_db`'s records;
    /// default `autonomous_system_number`.
    pub asn_field: Option<String>,
    /// Build the table of every IPv4 /24's origin from the MMDB files at
    /// start (64 MiB; one load per event however scattered the sources).
    /// `false`: every source /24 the ingest has not cached walks the files.
    pub origin_table: bool,
}

impl Default for EnrichSection {
    fn default() -> Self {
        EnrichSection {
            country_db: None,
            asn_db: None,
            sectors: None,
            country_field: None,
            asn_field: None,
            origin_table: true,
        }
    }
}

impl EnrichSection {
    /// Where the MMDB files keep country and ASN.
    pub fn origin_fields(&self) -> rampart_enrich::OriginFields {
        let defaults = rampart_enrich::OriginFields::default();
        rampart_enrich::OriginFields {
            country: self.country_field.clone().unwrap_or(defaults.country),
            asn: self.asn_field.clone().unwrap_or(defaults.asn),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessingSection {
    /// `exactly-once` (default) or `at-least-once`.
    pub guarantee: Guarantee,
    /// How often outputs and offsets are committed (default 1s).
    pub checkpoint_interval: String,
    /// A stage with output pending and nothing left to read checkpoints this
    /// long after its last checkpoint instead of at the next interval
    /// (default 100ms; `checkpoint_interval` or more: only the interval).
    pub caught_up_checkpoint_after: String,
    /// Prefix of transactional ids; each stage instance appends role and a
    /// stable instance id (default `rampart`).
    pub transactional_id_prefix: String,
    /// Ingest threads in this process, each its own consumer-group member
    /// with its own partitions (0 = one per CPU core, at most one per input
    /// partition).
    pub ingest_threads: usize,
    /// Merge threads in this process, each its own consumer-group member
    /// with its own partials partitions (0 = one per CPU core, at most one
    /// per partials partition).
    pub merge_threads: usize,
    /// Memory of the whole process, divided among the input partitions it
    /// owns (each gets `keys.memory` for cells, the rest of its share for
    /// dedup, replacing `dedup.budget`), after librdkafka's queues. Empty
    /// (default): no process budget, `dedup.budget` per partition.
    pub memory_budget: String,
}

impl ProcessingSection {
    /// Ingest threads `ingest_threads` asks for (0: one per core).
    pub fn threads(&self) -> usize {
        match self.ingest_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }

    /// Merge threads `merge_threads` asks for with `partials_partitions`
    /// partials partitions (0: one per core, at most one per partition).
    pub fn merge_threads_for(&self, partials_partitions: u32) -> usize {
        match self.merge_threads {
            0 => std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(partials_partitions.max(1) as usize),
            n => n,
        }
    }
}

impl Default for ProcessingSection {
    fn default() -> Self {
        ProcessingSection {
            guarantee: Guarantee::ExactlyOnce,
            checkpoint_interval: "1s".into(),
            caught_up_checkpoint_after: "100ms".into(),
            transactional_id_prefix: "rampart".into(),
            ingest_threads: 0,
            merge_threads: 0,
            memory_budget: String::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Address of the `/metrics`, `/health` and `/ready` endpoints
    /// (default `127.0.0.1:9898`; port 0 picks a free one; empty disables).
    pub listen: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: "127.0.0.1:9898".into(),
        }
    }
}
