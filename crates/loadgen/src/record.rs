//! Batching generated events into Kafka-ready records, partitioned by source IP,
//! with malformed messages mixed in on purpose.

use std::collections::VecDeque;

use prost::Message;
use rampart_core::ingest::IngestConfig;
use rampart_core::model::{ModelInput, ModelOutput};
use rampart_core::validate::Rejection;
use rampart_proto::v1::AttackEventBatch;

use crate::error::LoadgenError;
use crate::event::{Event, IpBytes, MAX_EVENT_LEN, put_varint};
use crate::generator::Generator;
use crate::rng::{Prob, Rng, mix64};
use crate::world::World;

/// One Kafka message: what a producer sends to the raw topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Target partition, `partition_for_key(key, partitions - empty_partitions)`.
    pub partition: i32,
    /// Source IP bytes (of the batch's first event when batched).
    pub key: Vec<u8>,
    /// An encoded `AttackEventBatch` (or deliberately malformed bytes).
    pub payload: Vec<u8>,
    /// Kafka CreateTime: max(clock at flush, max event time in the batch) +
    /// `record_delay_ms`. Never the wall clock. A batch holding a
    /// clock-skewed event therefore carries a far-future CreateTime too.
    pub timestamp_ms: i64,
    /// What a correct clock reads when the record is sent: the clock at flush
    /// plus `record_delay_ms`. Not sent; the ground truth's trusted now
    /// (rampart uses its own ingest clock, which the default `--epoch` keeps
    /// close to it).
    pub clock_ms: i64,
}

/// The stable partitioner: every event of one source IP (so every duplicate)
/// lands on one partition. The hash folds the key in 8-byte big-endian chunks
/// (the last one zero-padded) through the SplitMix64 finaliser, seeded with the
/// key length, then takes it modulo `partitions`. Producers must set the
/// partition explicitly (Kafka's own partitioners hash differently).
#[inline]
pub fn partition_for_key(key: &[u8], partitions: u32) -> i32 {
    let mut h = mix64(key.len() as u64);
    for chunk in key.chunks(8) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        h = mix64(h ^ u64::from_be_bytes(b));
    }
    (h % u64::from(partitions.max(1))) as i32
}

/// How events become records. Defaults are documented per field.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordConfig {
    /// Partitions of the raw topic (default 12).
    pub partitions: u32,
    /// Events per batch per partition; 1 = one event per message (default 1000).
    pub events_per_batch: usize,
    /// Mixed message sizes: when set (`1..=events_per_batch`), each batch
    /// holds a number of events drawn uniformly from `min..=events_per_batch`
    /// (deterministic per seed), as from many producers with different
    /// lingers. `None` (default): every batch holds `events_per_batch`.
    pub min_events_per_batch: Option<usize>,
    /// A partition's open batch is flushed once its first event is this old in
    /// event time (clock), like a producer's linger (default 100).
    pub linger_ms: i64,
    /// Added to a record's timestamp (default 5).
    pub record_delay_ms: i64,
    /// Share of records that are malformed (default 0.001). Malformed records
    /// carry no generated event: valid events are never lost to them.
    pub malformed_share: f64,
    /// The last this many partitions receive nothing (default 0): records are
    /// spread over the first `partitions - empty_partitions` only, as by a
    /// producer whose keys never hash to the others. rampart must still
    /// finalise every window.
    pub empty_partitions: u32,
}

impl Default for RecordConfig {
    fn default() -> Self {
        RecordConfig {
            partitions: 12,
            events_per_batch: 1000,
            min_events_per_batch: None,
            linger_ms: 100,
            record_delay_ms: 5,
            malformed_share: 0.001,
            empty_partitions: 0,
        }
    }
}

impl RecordConfig {
    /// Partitions that receive records (the first ones).
    pub fn used_partitions(&self) -> u32 {
        self.partitions.saturating_sub(self.empty_partitions).max(1)
    }

    /// Checks every setting; the error names all the bad ones.
    pub fn check(&self) -> Result<(), LoadgenError> {
        let mut bad = Vec::new();
        if self.partitions == 0 || self.partitions > 1 << 20 {
            bad.push("partitions must be within 1..=1048576");
        }
        if self.events_per_batch == 0 || self.events_per_batch > 100_000 {
            bad.push("events_per_batch must be within 1..=100000");
        }
        if self
            .min_events_per_batch
            .is_some_and(|min| min == 0 || min > self.events_per_batch)
        {
            bad.push("min_events_per_batch must be within 1..=events_per_batch");
        }
        if self.linger_ms < 0 || self.record_delay_ms < 0 {
            bad.push("linger_ms and record_delay_ms must be >= 0");
        }
        if self.empty_partitions >= self.partitions {
            bad.push("empty_partitions must be below partitions");
        }
        if !(0.0..0.5).contains(&self.malformed_share) {
            bad.push("malformed_share must be within 0..0.5");
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(LoadgenError::Config(bad.join("; ")))
        }
    }
}

/// When a record stream ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// After this many events (duplicates included; malformed records are extra).
    Events(u64),
    /// When the clock reaches `epoch + this` (ms of event time).
    DurationMs(i64),
    /// Never.
    Unbounded,
}

/// The kinds of malformed message mixed in, each rejected by rampart for a
/// different reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MalformedKind {
    /// A batch cut inside its first event: not decodable.
    Truncated,
    /// src_ip of 5 (IPv4 + 1) or 17 bytes.
    BadSrcIpLength,
    /// dst_ip of 3 bytes.
    BadDstIpLength,
    /// time_ms = 0 (absent).
    ZeroTime,
    /// time_ms one day after the record timestamp.
    FutureTime,
    /// kind = 42.
    UnknownKind,
    /// dst_port = 70 000.
    PortOutOfRange,
    /// protocol = 300.
    ProtocolOutOfRange,
    /// A batch with no events (empty payload).
    EmptyBatch,
}

impl MalformedKind {
    /// All kinds; a malformed record is one of them, uniformly.
    pub const ALL: [MalformedKind; 9] = [
        MalformedKind::Truncated,
        MalformedKind::BadSrcIpLength,
        MalformedKind::BadDstIpLength,
        MalformedKind::ZeroTime,
        MalformedKind::FutureTime,
        MalformedKind::UnknownKind,
        MalformedKind::PortOutOfRange,
        MalformedKind::ProtocolOutOfRange,
        MalformedKind::EmptyBatch,
    ];

    /// The reason rampart's validation gives for this kind of message.
    pub fn rejection(self) -> Rejection {
        match self {
            MalformedKind::Truncated => Rejection::MalformedProtobuf,
            MalformedKind::BadSrcIpLength => Rejection::BadSrcIpLength,
            MalformedKind::BadDstIpLength => Rejection::BadDstIpLength,
            MalformedKind::ZeroTime => Rejection::MissingTime,
            MalformedKind::FutureTime => Rejection::TimeInFuture,
            MalformedKind::UnknownKind => Rejection::UnknownKind,
            MalformedKind::PortOutOfRange => Rejection::PortOutOfRange,
            MalformedKind::ProtocolOutOfRange => Rejection::ProtocolOutOfRange,
            MalformedKind::EmptyBatch => Rejection::EmptyBatch,
        }
    }
}

/// Counters of the records emitted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordStats {
    /// All records (valid + malformed).
    pub records: u64,
    /// Valid events placed in records.
    pub events: u64,
    pub malformed: u64,
    /// Per `MalformedKind::ALL` index.
    pub malformed_by_kind: [u64; 9],
    pub payload_bytes: u64,
}

#[derive(Debug, Default)]
struct PartBuf {
    buf: Vec<u8>,
    count: usize,
    /// Events this batch holds when full.
    target: usize,
    key: Vec<u8>,
    first_clock: i64,
    max_time: i64,
}

/// Kafka-ready records from a [`Generator`]: an iterator that ends at its [`Limit`].
#[derive(Debug)]
pub struct RecordStream {
    generator: Generator,
    cfg: RecordConfig,
    limit: Limit,
    parts: Vec<PartBuf>,
    ready: VecDeque<(Record, Option<MalformedKind>)>,
    rng: Rng,
    /// Draws batch sizes (`min_events_per_batch`); its own stream, so fixed
    /// sizes leave every other draw as it was.
    size_rng: Rng,
    p_malformed: Prob,
    scratch: Vec<u8>,
    next_linger_check: i64,
    done: bool,
    last: Option<Event>,
    stats: RecordStats,
}

impl RecordStream {
    /// Records from `generator` under `cfg` (checked) until `limit`.
    pub fn new(
        generator: Generator,
        cfg: RecordConfig,
        limit: Limit,
    ) -> Result<RecordStream, LoadgenError> {
        cfg.check()?;
        let m = cfg.malformed_share;
        let parts = (0..cfg.partitions).map(|_| PartBuf::default()).collect();
        Ok(RecordStream {
            rng: Rng::new(generator.config().seed, 0x0052_4543),
            size_rng: Rng::new(generator.config().seed, 0x0053_495a),
            // malformed / all records = m  <=>  malformed per valid record = m / (1 - m)
            p_malformed: Prob::new(m / (1.0 - m)),
            next_linger_check: generator.next_clock_ms(),
            generator,
            cfg,
            limit,
            parts,
            ready: VecDeque::new(),
            scratch: Vec::with_capacity(MAX_EVENT_LEN),
            done: false,
            last: None,
            stats: RecordStats::default(),
        })
    }

    /// The generator (its stats, world and clock).
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// Record counters so far.
    pub fn stats(&self) -> &RecordStats {
        &self.stats
    }

    /// The record config.
    pub fn config(&self) -> &RecordConfig {
        &self.cfg
    }

    /// The limit the stream ends at.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// Replaces the limit. `Limit::Events(self.generator().stats().events)`
    /// ends the stream now: the open batches are flushed and the records equal
    /// those of a stream created with that limit (so a run stopped early, e.g.
    /// by a wall-clock deadline, is regenerated exactly from its event count).
    pub fn set_limit(&mut self, limit: Limit) {
        self.limit = limit;
    }

    /// Like `next`, but also says whether the record is a deliberately
    /// malformed one and of which kind.
    pub fn next_annotated(&mut self) -> Option<(Record, Option<MalformedKind>)> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(r);
            }
            if self.done {
                return None;
            }
            if self.limit_reached() {
                for p in 0..self.parts.len() {
                    self.flush(p);
                }
                self.done = true;
                continue;
            }
            self.step();
        }
    }

    fn limit_reached(&self) -> bool {
        match self.limit {
            Limit::Events(n) => self.generator.stats().events >= n,
            Limit::DurationMs(d) => {
                self.generator.next_clock_ms() >= self.generator.config().epoch_ms.saturating_add(d)
            }
            Limit::Unbounded => false,
        }
    }

    fn step(&mut self) {
        let g = self.generator.next_event();
        let clock = self.generator.now_ms();
        let ev = g.event;
        let p = partition_for_key(ev.src_ip.as_slice(), self.cfg.used_partitions()) as usize;
        let world = self.generator.world();
        let sensor = world.sensor_name(ev.sensor);
        if let Some(pb) = self.parts.get_mut(p) {
            if pb.count == 0 {
                pb.first_clock = clock;
                pb.max_time = i64::MIN;
                pb.key.clear();
                pb.key.extend_from_slice(ev.src_ip.as_slice());
                let max = self.cfg.events_per_batch;
                pb.target = match self.cfg.min_events_per_batch {
                    Some(min) => self.size_rng.range_u64(min as u64, max as u64) as usize,
                    None => max,
                };
                if pb.buf.capacity() == 0 {
                    pb.buf.reserve(self.cfg.events_per_batch.min(16_384) * 64);
                }
            }
            ev.encode_batch_entry(sensor, &mut self.scratch, &mut pb.buf);
            pb.count += 1;
            pb.max_time = pb.max_time.max(ev.time_ms);
            self.stats.events += 1;
            self.last = Some(ev);
            if pb.count >= pb.target {
                self.flush(p);
            }
        }
        if clock >= self.next_linger_check {
            for q in 0..self.parts.len() {
                let due = self
                    .parts
                    .get(q)
                    .is_some_and(|pb| pb.count > 0 && clock - pb.first_clock >= self.cfg.linger_ms);
                if due {
                    self.flush(q);
                }
            }
            self.next_linger_check = clock + (self.cfg.linger_ms / 4).max(1);
        }
    }

    fn flush(&mut self, p: usize) {
        let clock = self.generator.now_ms();
        let cap = self.cfg.events_per_batch.min(16_384) * 64;
        let Some(pb) = self.parts.get_mut(p) else {
            return;
        };
        if pb.count == 0 {
            return;
        }
        let payload = std::mem::replace(&mut pb.buf, Vec::with_capacity(cap));
        let key = std::mem::take(&mut pb.key);
        let timestamp_ms = clock.max(pb.max_time) + self.cfg.record_delay_ms;
        let clock_ms = clock + self.cfg.record_delay_ms;
        pb.count = 0;
        self.stats.records += 1;
        self.stats.payload_bytes += payload.len() as u64;
        self.ready.push_back((
            Record {
                partition: p as i32,
                key,
                payload,
                timestamp_ms,
                clock_ms,
            },
            None,
        ));
        if self.rng.chance(self.p_malformed) {
            let (r, kind) = self.malformed(clock);
            self.stats.records += 1;
            self.stats.malformed += 1;
            if let Some(i) = MalformedKind::ALL.iter().position(|k| *k == kind)
                && let Some(c) = self.stats.malformed_by_kind.get_mut(i)
            {
                *c += 1;
            }
            self.stats.payload_bytes += r.payload.len() as u64;
            self.ready.push_back((r, Some(kind)));
        }
    }

    fn malformed(&mut self, clock: i64) -> (Record, MalformedKind) {
        let kind = MalformedKind::ALL
            .get(self.rng.below(MalformedKind::ALL.len() as u64) as usize)
            .copied()
            .unwrap_or(MalformedKind::Truncated);
        let timestamp_ms = clock + self.cfg.record_delay_ms;
        let template = self.last.unwrap_or(Event {
            time_ms: clock,
            src_ip: IpBytes::v4([192, 0, 2, 1]),
            dst_ip: IpBytes::v4([198, 51, 100, 1]),
            src_port: 40_000,
            dst_port: 23,
            protocol: 6,
            kind: rampart_proto::v1::AttackKind::Scan,
            rule_id: 0,
            event_id: None,
            packets: 1,
            bytes: 60,
            sensor: 0,
        });
        let sensor = self
            .generator
            .world()
            .sensor_name(template.sensor)
            .to_string();
        let mut ev = template.to_proto(&sensor);
        let mut key = ev.src_ip.clone();
        let payload = match kind {
            MalformedKind::Truncated => {
                let mut body = Vec::with_capacity(MAX_EVENT_LEN);
                template.encode(&sensor, &mut body);
                let mut out = vec![0x0A];
                put_varint(&mut out, body.len() as u64);
                let keep = self.rng.below(body.len() as u64) as usize;
                out.extend_from_slice(body.get(..keep).unwrap_or(&[]));
                out
            }
            MalformedKind::EmptyBatch => Vec::new(),
            _ => {
                match kind {
                    MalformedKind::BadSrcIpLength => {
                        ev.src_ip.push(0);
                        key = ev.src_ip.clone();
                    }
                    MalformedKind::BadDstIpLength => ev.dst_ip.truncate(3),
                    MalformedKind::ZeroTime => ev.time_ms = 0,
                    MalformedKind::FutureTime => ev.time_ms = timestamp_ms + 86_400_000,
                    MalformedKind::UnknownKind => ev.kind = 42,
                    MalformedKind::PortOutOfRange => ev.dst_port = 70_000,
                    _ => ev.protocol = 300,
                }
                AttackEventBatch { events: vec![ev] }.encode_to_vec()
            }
        };
        let partition = partition_for_key(&key, self.cfg.used_partitions());
        (
            Record {
                partition,
                key,
                payload,
                timestamp_ms,
                clock_ms: timestamp_ms,
            },
            kind,
        )
    }
}

impl Iterator for RecordStream {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        self.next_annotated().map(|(r, _)| r)
    }
}

/// The exact per-partition input sequences `(payload, clock_ms)` of a run,
/// index = partition: what the pipeline's partitions will read, in order, with
/// the trusted now each is judged against. The ground truth is the reference
/// model run over these.
pub fn partition_sequences(
    records: impl IntoIterator<Item = Record>,
    partitions: u32,
) -> Vec<Vec<(Vec<u8>, i64)>> {
    let mut out: Vec<Vec<(Vec<u8>, i64)>> = (0..partitions.max(1)).map(|_| Vec::new()).collect();
    for r in records {
        if let Some(seq) = usize::try_from(r.partition)
            .ok()
            .and_then(|p| out.get_mut(p))
        {
            seq.push((r.payload, r.clock_ms));
        }
    }
    out
}

/// The per-partition input of rampart's reference model: each partition's
/// records in order, offsets from 0, trusted now = the record's `clock_ms`
/// (never its CreateTime, which a skewed sensor clock may have set).
pub fn model_inputs(
    records: impl IntoIterator<Item = Record>,
    partitions: u32,
) -> Vec<Vec<ModelInput>> {
    partition_sequences(records, partitions)
        .into_iter()
        .map(|seq| {
            seq.into_iter()
                .enumerate()
                .map(|(i, (payload, now))| ModelInput::Message {
                    offset: i as i64,
                    payload,
                    trusted_now_ms: Some(now),
                })
                .collect()
        })
        .collect()
}

/// The expected rollups of a run: `rampart_core::model` over the exact
/// per-partition sequences, enriched from the [`World`]'s own tables (not
/// from the MMDB/CSV files, so a bug in either path shows as a mismatch).
/// `flush_all` closes every window at the end (as after an idle advance).
pub fn ground_truth(
    records: impl IntoIterator<Item = Record>,
    partitions: u32,
    cfg: &IngestConfig,
    world: &World,
    flush_all: bool,
) -> ModelOutput {
    let inputs = model_inputs(records, partitions);
    rampart_core::model::run(cfg, &inputs, &mut world.enricher(), flush_all)
}
