//! The loadgen manifest: every setting a `rampart loadgen` run used plus the
//! number of events it actually produced, so `rampart verify` (or anyone)
//! regenerates exactly the same records and computes their ground truth.
//!
//! The manifest is JSON. Floats round-trip exactly through serde_json, and the
//! digest of the records (xxh3-64 over partition, timestamp, key and payload of
//! every record in order) lets a regeneration prove it produced the same bytes.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rampart_loadgen::{
    BurstConfig, GenConfig, Generator, Limit, Record, RecordConfig, RecordStream, World,
    WorldConfig,
};
use serde::{Deserialize, Serialize};

/// Version of the manifest format.
pub const FORMAT: u32 = 1;

/// The shape of the synthetic internet (mirrors [`WorldConfig`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldSpec {
    pub seed: u64,
    pub asns: u32,
    pub prefixes: u32,
    pub sources: u32,
    pub ipv6_asn_share: f64,
    pub zipf_s: f64,
    pub zipf_q: f64,
    pub target_slash16s: u32,
    pub sensors: u16,
}

impl From<&WorldConfig> for WorldSpec {
    fn from(c: &WorldConfig) -> Self {
        WorldSpec {
            seed: c.seed,
            asns: c.asns,
            prefixes: c.prefixes,
            sources: c.sources,
            ipv6_asn_share: c.ipv6_asn_share,
            zipf_s: c.zipf_s,
            zipf_q: c.zipf_q,
            target_slash16s: c.target_slash16s,
            sensors: c.sensors,
        }
    }
}

impl WorldSpec {
    /// The world configuration.
    pub fn config(&self) -> WorldConfig {
        WorldConfig {
            seed: self.seed,
            asns: self.asns,
            prefixes: self.prefixes,
            sources: self.sources,
            ipv6_asn_share: self.ipv6_asn_share,
            zipf_s: self.zipf_s,
            zipf_q: self.zipf_q,
            target_slash16s: self.target_slash16s,
            sensors: self.sensors,
        }
    }
}

/// Periodic bursts (mirrors [`BurstConfig`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstSpec {
    pub period_ms: i64,
    pub duration_ms: i64,
    pub share: f64,
}

/// The event generator's settings (mirrors [`GenConfig`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenSpec {
    pub seed: u64,
    /// Events per second of event time.
    pub event_rate: u64,
    pub epoch_ms: i64,
    pub event_id_share: f64,
    pub duplicate_rate: f64,
    pub overlap_share: f64,
    pub duplicate_delay_ms: i64,
    pub jitter_ms: i64,
    pub late_fraction: f64,
    pub late_min_ms: i64,
    pub late_max_ms: i64,
    pub ipv6_share: f64,
    pub bursts: Option<BurstSpec>,
    #[serde(default)]
    pub future_share: f64,
    #[serde(default)]
    pub resight_share: f64,
    #[serde(default = "default_resight_delay_ms")]
    pub resight_delay_ms: i64,
    #[serde(default)]
    pub source_spread: f64,
}

fn default_resight_delay_ms() -> i64 {
    GenConfig::default().resight_delay_ms
}

impl From<&GenConfig> for GenSpec {
    fn from(c: &GenConfig) -> Self {
        GenSpec {
            seed: c.seed,
            event_rate: c.rate,
            epoch_ms: c.epoch_ms,
            event_id_share: c.event_id_share,
            duplicate_rate: c.duplicate_rate,
            overlap_share: c.overlap_share,
            duplicate_delay_ms: c.duplicate_delay_ms,
            jitter_ms: c.jitter_ms,
            late_fraction: c.late_fraction,
            late_min_ms: c.late_min_ms,
            late_max_ms: c.late_max_ms,
            ipv6_share: c.ipv6_share,
            future_share: c.future_share,
            resight_share: c.resight_share,
            resight_delay_ms: c.resight_delay_ms,
            source_spread: c.source_spread,
            bursts: c.bursts.as_ref().map(|b| BurstSpec {
                period_ms: b.period_ms,
                duration_ms: b.duration_ms,
                share: b.share,
            }),
        }
    }
}

impl GenSpec {
    /// The generator configuration.
    pub fn config(&self) -> GenConfig {
        GenConfig {
            seed: self.seed,
            rate: self.event_rate,
            epoch_ms: self.epoch_ms,
            event_id_share: self.event_id_share,
            duplicate_rate: self.duplicate_rate,
            overlap_share: self.overlap_share,
            duplicate_delay_ms: self.duplicate_delay_ms,
            jitter_ms: self.jitter_ms,
            late_fraction: self.late_fraction,
            late_min_ms: self.late_min_ms,
            late_max_ms: self.late_max_ms,
            ipv6_share: self.ipv6_share,
            future_share: self.future_share,
            resight_share: self.resight_share,
            resight_delay_ms: self.resight_delay_ms,
            source_spread: self.source_spread,
            bursts: self.bursts.as_ref().map(|b| BurstConfig {
                period_ms: b.period_ms,
                duration_ms: b.duration_ms,
                share: b.share,
            }),
        }
    }
}

/// How events became records (mirrors [`RecordConfig`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    pub partitions: u32,
    pub events_per_batch: usize,
    pub linger_ms: i64,
    pub record_delay_ms: i64,
    pub malformed_share: f64,
    /// Absent in manifests written before the fault existed.
    #[serde(default)]
    pub empty_partitions: u32,
}

impl From<&RecordConfig> for RecordSpec {
    fn from(c: &RecordConfig) -> Self {
        RecordSpec {
            partitions: c.partitions,
            events_per_batch: c.events_per_batch,
            linger_ms: c.linger_ms,
            record_delay_ms: c.record_delay_ms,
            malformed_share: c.malformed_share,
            empty_partitions: c.empty_partitions,
        }
    }
}

impl RecordSpec {
    /// The record configuration.
    pub fn config(&self) -> RecordConfig {
        RecordConfig {
            partitions: self.partitions,
            events_per_batch: self.events_per_batch,
            // `rampart loadgen` writes fixed-size batches; mixed sizes are the
            // throughput command's (`--batch-mix`).
            min_events_per_batch: None,
            linger_ms: self.linger_ms,
            record_delay_ms: self.record_delay_ms,
            malformed_share: self.malformed_share,
            empty_partitions: self.empty_partitions,
        }
    }
}

/// Where the records went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum OutputSpec {
    Kafka { brokers: String, topic: String },
    File { path: String },
}

/// What the run produced, and how fast (wall clock; not needed to regenerate).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Produced {
    /// Valid events (duplicates included) = the `Limit::Events` of the regeneration.
    pub events: u64,
    /// Kafka messages (valid batches + malformed).
    pub records: u64,
    pub malformed: u64,
    pub payload_bytes: u64,
    /// xxh3-64 of the record sequence, hex (see [`Digest`]).
    pub digest: String,
    /// Event time span [first nominal clock, last nominal clock] in ms.
    pub first_clock_ms: i64,
    pub last_clock_ms: i64,
    pub wall_seconds: f64,
}

/// Everything needed to regenerate a loadgen run exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub rampart_version: String,
    pub world: WorldSpec,
    pub generator: GenSpec,
    pub records: RecordSpec,
    /// The format the records were sent in (`loadgen --format`; absent in
    /// manifests written before formats: protobuf). The ground truth reads
    /// each event as that format carries it (`rampart_loadgen::in_format`).
    #[serde(default)]
    pub input_format: rampart_formats::Format,
    pub output: OutputSpec,
    pub produced: Produced,
}

impl Manifest {
    /// Reads and checks a manifest file.
    pub fn read(path: &Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let m: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a loadgen manifest", path.display()))?;
        if m.format != FORMAT {
            anyhow::bail!(
                "{}: manifest format {} (this rampart reads format {FORMAT})",
                path.display(),
                m.format
            );
        }
        Ok(m)
    }

    /// Writes the manifest as pretty JSON.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write manifest {}", path.display()))
    }

    /// Builds the world the run drew from.
    pub fn world(&self) -> anyhow::Result<Arc<World>> {
        Ok(Arc::new(World::new(self.world.config())?))
    }

    /// The exact record stream of the run.
    pub fn stream(&self, world: Arc<World>) -> anyhow::Result<RecordStream> {
        let generator = Generator::new(world, self.generator.config())?;
        Ok(RecordStream::new(
            generator,
            self.records.config(),
            Limit::Events(self.produced.events),
        )?)
    }
}

/// Running xxh3-64 digest of a record sequence.
pub struct Digest(xxhash_rust::xxh3::Xxh3);

impl Default for Digest {
    fn default() -> Self {
        Digest(xxhash_rust::xxh3::Xxh3::new())
    }
}

impl Digest {
    /// Adds one record.
    pub fn add(&mut self, r: &Record) {
        self.0.update(&r.partition.to_le_bytes());
        self.0.update(&r.timestamp_ms.to_le_bytes());
        self.0.update(&(r.key.len() as u64).to_le_bytes());
        self.0.update(&r.key);
        self.0.update(&(r.payload.len() as u64).to_le_bytes());
        self.0.update(&r.payload);
    }

    /// The digest as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0.digest())
    }
}
