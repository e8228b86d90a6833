//! Prometheus metrics of the stages, Vector-style names with the `rampart_`
//! prefix (`rampart_<subsystem>_<name>_<unit>`, counters end in `_total`).
//!
//! Cost model: every handle is registered once, when a handler is built; hot
//! loops keep their counts in the core's per-batch `BatchStats` and flush them
//! here once per Kafka message (one batch of events), never once per event.
//! State gauges (dedup table, watermark lag, replay) are refreshed per tick
//! (~100 ms); consumer lag comes from librdkafka's statistics callback (once a
//! second); stage counters (checkpoints, rebalances) are copied at scrape time.
//!
//! Domain metrics (attack events by sector, origin country and kind) are
//! counted from the merge stage's *final* rollups, so the hot path pays nothing
//! for them: they advance when windows close, not when events arrive.
//! Labels are bounded whatever the input: sectors come from the sector table
//! (capped at [`MAX_SECTORS`]), kinds from the `AttackKind` enum, countries
//! are the top [`TOP_COUNTRIES`] by volume (once admitted a country keeps its
//! label so series do not flap), everything else is `other`. IPs, prefixes
//! and ASNs are never labels.
//!
//! Readiness (`/ready`) is computed from the same shared per-stage state
//! ([`StageHealth`]), see [`readiness`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use rampart_core::ingest::{BatchStats, PartitionIngest};
use rampart_core::proto::v1::{AttackKind, Dimension, Rollup};
use rampart_core::validate::Rejection;
use rustc_hash::FxHashMap;

use crate::stage::StageCounters;

/// Name of the window close latency histogram.
pub const WINDOW_CLOSE_LATENCY: &str = "rampart_window_close_latency_seconds";
/// Buckets of [`WINDOW_CLOSE_LATENCY`] (seconds). The design target is p99 ≤ 1 s.
pub const WINDOW_CLOSE_LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Countries with their own `origin_country` label; the rest count as `other`.
pub const TOP_COUNTRIES: usize = 20;
/// Distinct sector labels; sectors beyond this count as `other`.
pub const MAX_SECTORS: usize = 64;
/// A stage is "caught up" for `/ready` when its consumer lag (messages,
/// summed over its partitions) is at most this.
pub const READY_MAX_LAG_MESSAGES: i64 = 1_000;

/// Errors of metrics setup.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot install the Prometheus recorder: {0}")]
    Install(#[from] BuildError),
}

/// Installs the global Prometheus recorder (histogram buckets set, every
/// metric described) and returns the handle that renders the exposition text.
/// Call once per process, before any stage starts.
pub fn install_recorder() -> Result<PrometheusHandle, MetricsError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(WINDOW_CLOSE_LATENCY.into()),
            WINDOW_CLOSE_LATENCY_BUCKETS,
        )?
        .install_recorder()?;
    describe_all();
    Ok(handle)
}

/// HELP texts of every metric rampart exports.
pub fn describe_all() {
    describe_counter!(
        "rampart_received_events_total",
        Unit::Count,
        "Attack events received in valid input batches (before dedup), by stage."
    );
    describe_counter!(
        "rampart_received_bytes_total",
        Unit::Bytes,
        "Payload bytes of input messages read, by stage."
    );
    describe_counter!(
        "rampart_received_messages_total",
        Unit::Count,
        "Kafka messages read from the stage's input topic (replayed ones excluded), by stage."
    );
    describe_counter!(
        "rampart_sent_events_total",
        Unit::Count,
        "Records handed to the producer: partials (ingest) or final rollups (merge)."
    );
    describe_counter!(
        "rampart_sent_bytes_total",
        Unit::Bytes,
        "Payload bytes of the records the stage produced (DLQ excluded), by stage."
    );
    describe_counter!(
        "rampart_unique_events_total",
        Unit::Count,
        "Events not seen before within the dedup horizon (aggregated once)."
    );
    describe_counter!(
        "rampart_discarded_events_total",
        Unit::Count,
        "Events not aggregated, by reason: duplicate (dedup) or late (window already final; counted as late_events)."
    );
    describe_counter!(
        "rampart_discarded_messages_total",
        Unit::Count,
        "Whole input messages rejected and dead-lettered, by stage and validation reason."
    );
    describe_counter!(
        "rampart_errors_total",
        Unit::Count,
        "Errors by stage and error_type (invalid_input, malformed_partials, delivery_failed, checkpoint_aborted)."
    );
    describe_counter!(
        "rampart_dlq_messages_total",
        Unit::Count,
        "Messages written to the dead-letter topic, by stage."
    );
    describe_gauge!(
        "rampart_consumer_lag_messages",
        Unit::Count,
        "Messages between the stage's position and the partition's last stable offset (librdkafka statistics, 1 s)."
    );
    describe_gauge!(
        "rampart_watermark_lag_seconds",
        Unit::Seconds,
        "Wall clock minus the stage's event-time watermark (ingest: lowest partition watermark; merge: start of the oldest non-final window)."
    );
    describe_histogram!(
        WINDOW_CLOSE_LATENCY,
        Unit::Seconds,
        "Per window: from the moment it became closable (the Kafka timestamp of the partials message carrying the last input partition's window-close marker, written when that partition's watermark passed window end + allowed lateness) to its final rollups being handed to the producer (the transaction commit follows within processing.checkpoint_interval)."
    );
    describe_counter!(
        "rampart_windows_closed_total",
        Unit::Count,
        "Windows made final by the merge stage."
    );
    describe_counter!(
        "rampart_rollups_published_total",
        Unit::Count,
        "Final rollups produced to the rollup topic, by dimension."
    );
    describe_gauge!(
        "rampart_dedup_entries",
        Unit::Count,
        "Fingerprints remembered by the ingest dedup tables."
    );
    describe_gauge!(
        "rampart_dedup_table_bytes",
        Unit::Bytes,
        "Memory of the ingest dedup tables."
    );
    describe_gauge!(
        "rampart_dedup_evicted_early_entries",
        Unit::Count,
        "Dedup entries evicted before their horizon because the memory budget was reached."
    );
    describe_gauge!(
        "rampart_assigned_partitions",
        Unit::Count,
        "Input partitions assigned to the stage."
    );
    describe_gauge!(
        "rampart_replaying_partitions",
        Unit::Count,
        "Assigned partitions still replaying input to rebuild state after a restart or rebalance."
    );
    describe_counter!(
        "rampart_checkpoint_commits_total",
        Unit::Count,
        "Checkpoints committed (a Kafka transaction with exactly-once, an offset commit with at-least-once)."
    );
    describe_counter!(
        "rampart_checkpoint_aborts_total",
        Unit::Count,
        "Checkpoints that failed and were aborted and rewound."
    );
    describe_counter!(
        "rampart_rebalances_total",
        Unit::Count,
        "Consumer group rebalance callbacks (assign and revoke), by stage."
    );
    describe_gauge!(
        "rampart_ready",
        Unit::Count,
        "1 when /ready answers 200 (every stage assigned, not replaying, consumer lag small), else 0."
    );
    describe_gauge!(
        "rampart_process_resident_memory_bytes",
        Unit::Bytes,
        "Resident set size of the process (/proc/self/statm)."
    );
    describe_counter!(
        "rampart_attack_sector_events_total",
        Unit::Count,
        "Unique attack events by target sector, from final TARGET_SECTOR rollups (advances when windows close)."
    );
    describe_counter!(
        "rampart_attack_origin_events_total",
        Unit::Count,
        "Unique attack events by origin country (top 20 by volume, the rest `other`), from final ORIGIN_COUNTRY rollups (advances when windows close)."
    );
    describe_counter!(
        "rampart_attack_sector_origin_events_total",
        Unit::Count,
        "Unique attack events by target sector and origin country (same country labels as rampart_attack_origin_events_total), from final COUNTRY_SECTOR rollups."
    );
    describe_counter!(
        "rampart_attack_kind_events_total",
        Unit::Count,
        "Unique attack events by attack kind, from the top_kinds of final TARGET_SECTOR rollups (advances when windows close)."
    );
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------- stage state

/// Shared state of one stage, read by `/ready` and at scrape time.
#[derive(Debug)]
pub struct StageHealth {
    name: &'static str,
    /// One slot per handler (a stage may run several threads, each its own
    /// group member); gauges are their sum (or minimum) at scrape time.
    slots: Mutex<Vec<Arc<Slot>>>,
    inner: Mutex<HealthInner>,
}

/// State one handler reports per tick.
#[derive(Debug, Default)]
struct Slot {
    replaying: AtomicU64,
    dedup_entries: AtomicU64,
    dedup_bytes: AtomicU64,
    dedup_evicted: AtomicU64,
    /// Lowest watermark (ms) of the handler's partitions; `i64::MIN`: none.
    watermark: std::sync::atomic::AtomicI64,
}

impl StageHealth {
    fn new_slot(&self) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            watermark: std::sync::atomic::AtomicI64::new(i64::MIN),
            ..Slot::default()
        });
        lock(&self.slots).push(slot.clone());
        slot
    }

    fn replaying(&self) -> u64 {
        lock(&self.slots)
            .iter()
            .map(|s| s.replaying.load(Ordering::Relaxed))
            .sum()
    }
}

#[derive(Debug, Default)]
struct HealthInner {
    input_topic: String,
    counters: Option<Arc<StageCounters>>,
    /// Consumer lag per assigned partition (`-1`: unknown yet), from the last statistics.
    lag: Option<BTreeMap<i32, i64>>,
    lag_gauges: BTreeMap<i32, Gauge>,
}

fn stages() -> &'static Mutex<Vec<Arc<StageHealth>>> {
    static STAGES: OnceLock<Mutex<Vec<Arc<StageHealth>>>> = OnceLock::new();
    STAGES.get_or_init(|| Mutex::new(Vec::new()))
}

/// The shared state of stage `name`, created on first use.
pub fn stage_health(name: &'static str) -> Arc<StageHealth> {
    let mut all = lock(stages());
    if let Some(s) = all.iter().find(|s| s.name == name) {
        return s.clone();
    }
    let s = Arc::new(StageHealth {
        name,
        slots: Mutex::new(Vec::new()),
        inner: Mutex::new(HealthInner::default()),
    });
    all.push(s.clone());
    s
}

/// Connects a started stage to metrics and readiness: its input topic (to
/// attribute librdkafka statistics) and its counters (copied at scrape time).
pub fn attach_stage(name: &'static str, input_topic: &str, counters: Arc<StageCounters>) {
    let h = stage_health(name);
    let mut inner = lock(&h.inner);
    inner.input_topic = input_topic.to_string();
    inner.counters = Some(counters);
    inner.lag = None;
}

/// Consumer lag of one partition from librdkafka statistics; `-1` when unknown.
fn partition_lag(p: &rdkafka::statistics::Partition) -> i64 {
    if p.consumer_lag >= 0 {
        return p.consumer_lag;
    }
    // Nothing consumed or committed yet: everything readable is lag.
    let end = if p.ls_offset >= 0 {
        p.ls_offset
    } else {
        p.hi_offset
    };
    if end >= 0 && p.lo_offset >= 0 {
        (end - p.lo_offset).max(0)
    } else {
        -1
    }
}

/// Records consumer lag per partition from librdkafka statistics (called by
/// the consumers' statistics callback, about once a second).
pub fn consumer_stats(stats: &rdkafka::Statistics) {
    let all: Vec<Arc<StageHealth>> = lock(stages()).clone();
    for topic in stats.topics.values() {
        for h in &all {
            let mut inner = lock(&h.inner);
            if inner.input_topic != topic.topic {
                continue;
            }
            // Several members of one stage (threads) each report their own
            // partitions: update those, drop the ones this client no longer wants.
            let mut lag = inner.lag.take().unwrap_or_default();
            for p in topic.partitions.values() {
                if p.partition < 0 {
                    continue;
                }
                if p.desired {
                    let l = partition_lag(p);
                    lag.insert(p.partition, l);
                    let g = inner.lag_gauges.entry(p.partition).or_insert_with(|| {
                        gauge!("rampart_consumer_lag_messages", "stage" => h.name, "partition" => p.partition.to_string())
                    });
                    g.set(l.max(0) as f64);
                } else if lag.remove(&p.partition).is_some()
                    && let Some(g) = inner.lag_gauges.get(&p.partition)
                {
                    g.set(0.0);
                }
            }
            inner.lag = Some(lag);
        }
    }
}

/// `Ok` when every started stage has partitions, is not replaying and its
/// consumer lag is known and at most [`READY_MAX_LAG_MESSAGES`]; otherwise a
/// short reason.
pub fn readiness() -> Result<(), String> {
    let all: Vec<Arc<StageHealth>> = lock(stages()).clone();
    let mut started = 0;
    for h in &all {
        let inner = lock(&h.inner);
        let Some(counters) = &inner.counters else {
            continue;
        };
        started += 1;
        let name = h.name;
        if counters.assigned.load(Ordering::Relaxed) == 0 {
            return Err(format!("{name}: no partitions assigned"));
        }
        let replaying = h.replaying();
        if replaying > 0 {
            return Err(format!("{name}: replaying {replaying} partitions"));
        }
        let Some(lag) = &inner.lag else {
            return Err(format!("{name}: consumer lag not known yet"));
        };
        if lag.is_empty() || lag.values().any(|&l| l < 0) {
            return Err(format!("{name}: consumer lag not known yet"));
        }
        let total: i64 = lag.values().sum();
        if total > READY_MAX_LAG_MESSAGES {
            return Err(format!("{name}: consumer lag {total} messages"));
        }
    }
    if started == 0 {
        return Err("no stage started yet".into());
    }
    Ok(())
}

/// Refreshes what is sampled at scrape time: process memory and the stages'
/// own counters (checkpoints, rebalances, delivery failures).
pub fn refresh() {
    gauge!("rampart_ready").set(if readiness().is_ok() { 1.0 } else { 0.0 });
    if let Some(rss) = resident_memory_bytes() {
        gauge!("rampart_process_resident_memory_bytes").set(rss as f64);
    }
    let all: Vec<Arc<StageHealth>> = lock(stages()).clone();
    for h in &all {
        let inner = lock(&h.inner);
        let Some(c) = &inner.counters else {
            continue;
        };
        let s = h.name;
        gauge!("rampart_assigned_partitions", "stage" => s)
            .set(c.assigned.load(Ordering::Relaxed) as f64);
        let slots = lock(&h.slots);
        let sum = |f: fn(&Slot) -> &AtomicU64| -> f64 {
            slots
                .iter()
                .map(|x| f(x).load(Ordering::Relaxed))
                .sum::<u64>() as f64
        };
        gauge!("rampart_replaying_partitions", "stage" => s).set(sum(|x| &x.replaying));
        if s == "ingest" {
            gauge!("rampart_dedup_entries").set(sum(|x| &x.dedup_entries));
            gauge!("rampart_dedup_table_bytes").set(sum(|x| &x.dedup_bytes));
            gauge!("rampart_dedup_evicted_early_entries").set(sum(|x| &x.dedup_evicted));
        }
        let low = slots
            .iter()
            .map(|x| x.watermark.load(Ordering::Relaxed))
            .filter(|&w| w != i64::MIN)
            .min();
        drop(slots);
        if let Some(w) = low {
            gauge!("rampart_watermark_lag_seconds", "stage" => s)
                .set(now_ms().saturating_sub(w) as f64 / 1000.0);
        }
        counter!("rampart_checkpoint_commits_total", "stage" => s)
            .absolute(c.commits.load(Ordering::Relaxed));
        counter!("rampart_checkpoint_aborts_total", "stage" => s)
            .absolute(c.aborts.load(Ordering::Relaxed));
        counter!("rampart_rebalances_total", "stage" => s)
            .absolute(c.rebalances.load(Ordering::Relaxed));
        counter!("rampart_errors_total", "stage" => s, "error_type" => "delivery_failed")
            .absolute(c.delivery_failures.load(Ordering::Relaxed));
        counter!("rampart_errors_total", "stage" => s, "error_type" => "checkpoint_aborted")
            .absolute(c.aborts.load(Ordering::Relaxed));
    }
}

/// Resident set size from `/proc/self/statm` (pages × page size), Linux only.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // The page size is 4 KiB on the platforms rampart targets (x86-64, aarch64 Linux defaults).
    Some(pages * 4096)
}

// ---------------------------------------------------------------- ingest

/// Metrics of the ingest stage.
#[derive(Clone)]
pub struct IngestMetrics {
    received_events: Counter,
    received_bytes: Counter,
    received_messages: Counter,
    unique_events: Counter,
    duplicate_events: Counter,
    late_events: Counter,
    partials: Counter,
    sent_bytes: Counter,
    discarded: Vec<(Rejection, Counter)>,
    invalid_input: Counter,
    dlq_messages: Counter,
    slot: Arc<Slot>,
    /// Counts of messages since the last flush: messages, bytes, events,
    /// unique, duplicates, late. Kept here so the per-message cost is a few
    /// additions, whatever the message size (one event per message included).
    pending: [u64; 6],
}

impl Default for IngestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl IngestMetrics {
    /// Registers every handle of the ingest stage (once).
    pub fn new() -> Self {
        const S: &str = "ingest";
        IngestMetrics {
            received_events: counter!("rampart_received_events_total", "stage" => S),
            received_bytes: counter!("rampart_received_bytes_total", "stage" => S),
            received_messages: counter!("rampart_received_messages_total", "stage" => S),
            unique_events: counter!("rampart_unique_events_total"),
            duplicate_events: counter!("rampart_discarded_events_total", "stage" => S, "reason" => "duplicate"),
            late_events: counter!("rampart_discarded_events_total", "stage" => S, "reason" => "late"),
            partials: counter!("rampart_sent_events_total", "stage" => S, "output" => "partials"),
            sent_bytes: counter!("rampart_sent_bytes_total", "stage" => S),
            discarded: Rejection::ALL
                .iter()
                .map(|r| {
                    (
                        *r,
                        counter!("rampart_discarded_messages_total", "stage" => S, "reason" => r.as_str()),
                    )
                })
                .collect(),
            invalid_input: counter!("rampart_errors_total", "stage" => S, "error_type" => "invalid_input"),
            dlq_messages: counter!("rampart_dlq_messages_total", "stage" => S),
            slot: stage_health(S).new_slot(),
            pending: [0; 6],
        }
    }

    /// One valid input message (a batch of events): a few additions; the
    /// counts reach the registry at the next `flush_counts` (every tick).
    #[inline]
    pub fn batch(&mut self, bytes: usize, s: &BatchStats) {
        let p = &mut self.pending;
        p[0] += 1;
        p[1] += bytes as u64;
        p[2] += s.events;
        p[3] += s.unique;
        p[4] += s.duplicates;
        p[5] += s.late;
    }

    /// Hands the counts kept since the last call to the registry.
    pub fn flush_counts(&mut self) {
        let [messages, bytes, events, unique, duplicates, late] = std::mem::take(&mut self.pending);
        if messages == 0 {
            return;
        }
        self.received_messages.increment(messages);
        self.received_bytes.increment(bytes);
        self.received_events.increment(events);
        self.unique_events.increment(unique);
        self.duplicate_events.increment(duplicates);
        self.late_events.increment(late);
    }

    /// One input message rejected and dead-lettered.
    pub fn rejected(&self, r: Rejection) {
        self.received_messages.increment(1);
        self.dlq_messages.increment(1);
        self.invalid_input.increment(1);
        if let Some((_, c)) = self.discarded.iter().find(|(x, _)| *x == r) {
            c.increment(1);
        }
    }

    /// `n` partials handed to the producer.
    pub fn partials_emitted(&self, n: u64) {
        self.partials.increment(n);
    }

    /// Output records produced (their payload bytes are counted).
    pub fn sent(&self, records: &[crate::stage::OutRecord]) {
        let bytes: usize = records.iter().map(|r| r.payload.len()).sum();
        self.sent_bytes.increment(bytes as u64);
    }

    /// Partitions are counted by the stage itself (`rampart_assigned_partitions`
    /// is set from its counters at scrape time); kept for the handler's calls.
    pub fn set_partitions(&self, _n: usize) {}

    /// Gauges that describe state, refreshed per tick: dedup tables, the
    /// lowest watermark, and how many partitions are still replaying.
    pub fn flush(&self, parts: &[&PartitionIngest], replaying: usize) {
        let (mut entries, mut bytes, mut evicted) = (0u64, 0u64, 0u64);
        let mut low: Option<i64> = None;
        for p in parts {
            let d = p.dedup_stats();
            entries += d.entries;
            bytes += d.bytes;
            evicted += d.evicted_early_entries;
            if let Some(w) = p.watermark() {
                low = Some(low.map_or(w, |l| l.min(w)));
            }
        }
        let slot = &self.slot;
        slot.dedup_entries.store(entries, Ordering::Relaxed);
        slot.dedup_bytes.store(bytes, Ordering::Relaxed);
        slot.dedup_evicted.store(evicted, Ordering::Relaxed);
        slot.watermark
            .store(low.unwrap_or(i64::MIN), Ordering::Relaxed);
        slot.replaying.store(replaying as u64, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------- merge

/// Label values for a bounded, volume-ranked key space (origin countries):
/// the top `n` keys by cumulative volume get their own label, admitted once
/// and kept; the rest is `other`. At most `2 n` labels ever exist.
struct TopN {
    n: usize,
    volume: FxHashMap<String, u64>,
    labels: FxHashMap<String, Counter>,
    other: Counter,
}

/// Keys whose volume is tracked for ranking; beyond this, keys go to `other`.
const MAX_TRACKED_KEYS: usize = 4096;

impl TopN {
    fn new(n: usize) -> Self {
        TopN {
            n,
            volume: FxHashMap::default(),
            labels: FxHashMap::default(),
            other: counter!("rampart_attack_origin_events_total", "origin_country" => "other"),
        }
    }

    fn is_labelled(&self, key: &str) -> bool {
        self.labels.contains_key(key)
    }

    fn add(&mut self, key: &str, v: u64) {
        if let Some(c) = self.labels.get(key) {
            c.increment(v);
            return;
        }
        let vol = if let Some(x) = self.volume.get_mut(key) {
            *x += v;
            *x
        } else if self.volume.len() < MAX_TRACKED_KEYS {
            self.volume.insert(key.to_string(), v);
            v
        } else {
            self.other.increment(v);
            return;
        };
        let rank = self.volume.values().filter(|&&x| x > vol).count();
        let admissible = key.len() <= 16 && key != "other";
        if admissible && rank < self.n && self.labels.len() < 2 * self.n {
            let c =
                counter!("rampart_attack_origin_events_total", "origin_country" => key.to_string());
            c.increment(v);
            self.labels.insert(key.to_string(), c);
        } else {
            self.other.increment(v);
        }
    }
}

/// Domain counters from final rollups (see the module docs).
struct Domain {
    countries: TopN,
    sectors: FxHashMap<String, Counter>,
    sector_other: Counter,
    sector_country: FxHashMap<(String, String), Counter>,
    kinds: FxHashMap<i32, Counter>,
}

fn kind_label(k: i32) -> &'static str {
    match AttackKind::try_from(k) {
        Ok(AttackKind::Scan) => "scan",
        Ok(AttackKind::Backscatter) => "backscatter",
        Ok(AttackKind::BruteForce) => "brute_force",
        Ok(AttackKind::IdsAlert) => "ids_alert",
        Ok(AttackKind::Exploit) => "exploit",
        _ => "unspecified",
    }
}

impl Domain {
    fn new(top: usize) -> Self {
        Domain {
            countries: TopN::new(top),
            sectors: FxHashMap::default(),
            sector_other: counter!("rampart_attack_sector_events_total", "sector" => "other"),
            sector_country: FxHashMap::default(),
            kinds: FxHashMap::default(),
        }
    }

    fn sector_label(&mut self, sector: &str) -> Option<String> {
        if self.sectors.contains_key(sector) {
            return Some(sector.to_string());
        }
        if self.sectors.len() < MAX_SECTORS && sector.len() <= 64 && sector != "other" {
            self.sectors.insert(
                sector.to_string(),
                counter!("rampart_attack_sector_events_total", "sector" => sector.to_string()),
            );
            return Some(sector.to_string());
        }
        None
    }

    fn rollup(&mut self, r: &Rollup) {
        let v = r.unique_events;
        match Dimension::try_from(r.dimension) {
            Ok(Dimension::TargetSector) => {
                match self.sector_label(&r.key) {
                    Some(s) => {
                        if let Some(c) = self.sectors.get(&s) {
                            c.increment(v);
                        }
                    }
                    None => self.sector_other.increment(v),
                }
                for t in &r.top_kinds {
                    let k = t.value as i32;
                    self.kinds
                        .entry(k)
                        .or_insert_with(|| {
                            counter!("rampart_attack_kind_events_total", "kind" => kind_label(k))
                        })
                        .increment(t.count);
                }
            }
            Ok(Dimension::OriginCountry) => self.countries.add(&r.key, v),
            Ok(Dimension::CountrySector) => {
                let Some((country, sector)) = r.key.split_once('|') else {
                    return;
                };
                let country = if self.countries.is_labelled(country) {
                    country
                } else {
                    "other"
                };
                let sector = self.sector_label(sector).unwrap_or_else(|| "other".into());
                let key = (sector, country.to_string());
                if let Some(c) = self.sector_country.get(&key) {
                    c.increment(v);
                    return;
                }
                let c = counter!(
                    "rampart_attack_sector_origin_events_total",
                    "sector" => key.0.clone(),
                    "origin_country" => key.1.clone()
                );
                c.increment(v);
                self.sector_country.insert(key, c);
            }
            _ => {}
        }
    }
}

/// Metrics of the merge stage.
pub struct MergeMetrics {
    received_messages: Counter,
    received_bytes: Counter,
    sent_events: Counter,
    sent_bytes: Counter,
    rollups: FxHashMap<i32, Counter>,
    malformed: Counter,
    malformed_discarded: Counter,
    dlq_messages: Counter,
    windows: Counter,
    close_latency: Histogram,
    domain: Domain,
    slot: Arc<Slot>,
}

impl Default for MergeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl MergeMetrics {
    /// Registers the merge stage's handles, [`TOP_COUNTRIES`] country labels.
    pub fn new() -> Self {
        Self::with_top_countries(TOP_COUNTRIES)
    }

    /// As [`MergeMetrics::new`] with `top` country labels.
    pub fn with_top_countries(top: usize) -> Self {
        const S: &str = "merge";
        let rollups = [
            Dimension::OriginCountry,
            Dimension::OriginAsn,
            Dimension::OriginPrefix,
            Dimension::TargetSector,
            Dimension::CountrySector,
        ]
        .iter()
        .map(|&d| {
            (
                d as i32,
                counter!("rampart_rollups_published_total", "dimension" => crate::merge::dimension_name(d as i32)),
            )
        })
        .collect();
        MergeMetrics {
            received_messages: counter!("rampart_received_messages_total", "stage" => S),
            received_bytes: counter!("rampart_received_bytes_total", "stage" => S),
            sent_events: counter!("rampart_sent_events_total", "stage" => S, "output" => "rollups"),
            sent_bytes: counter!("rampart_sent_bytes_total", "stage" => S),
            rollups,
            malformed: counter!("rampart_errors_total", "stage" => S, "error_type" => "malformed_partials"),
            malformed_discarded: counter!("rampart_discarded_messages_total", "stage" => S, "reason" => "malformed_partials"),
            dlq_messages: counter!("rampart_dlq_messages_total", "stage" => S),
            windows: counter!("rampart_windows_closed_total"),
            close_latency: histogram!(WINDOW_CLOSE_LATENCY),
            domain: Domain::new(top),
            slot: stage_health(S).new_slot(),
        }
    }

    /// One partials message read (not replayed).
    pub fn received(&self, bytes: usize) {
        self.received_messages.increment(1);
        self.received_bytes.increment(bytes as u64);
    }

    /// A partials message that could not be decoded or applied, dead-lettered.
    pub fn malformed(&self) {
        self.malformed.increment(1);
        self.malformed_discarded.increment(1);
        self.dlq_messages.increment(1);
    }

    /// Final rollups produced from one message. `closable_at_ms` is the Kafka
    /// timestamp of the message that made their windows final; `None` skips
    /// the latency (e.g. while replaying).
    pub fn published(
        &mut self,
        rollups: &[Rollup],
        payload_bytes: usize,
        closable_at_ms: Option<i64>,
    ) {
        let mut windows = 0u64;
        let mut last = None;
        for r in rollups {
            if last != Some(r.window_start_ms) {
                windows += 1;
                last = Some(r.window_start_ms);
            }
            if let Some(c) = self.rollups.get(&r.dimension) {
                c.increment(1);
            }
            self.domain.rollup(r);
        }
        self.windows.increment(windows);
        self.sent_events.increment(rollups.len() as u64);
        self.sent_bytes.increment(payload_bytes as u64);
        if let Some(t) = closable_at_ms {
            let secs = (now_ms().saturating_sub(t)).max(0) as f64 / 1000.0;
            for _ in 0..windows {
                self.close_latency.record(secs);
            }
        }
    }

    /// Partitions are counted by the stage itself (see [`IngestMetrics::set_partitions`]).
    pub fn set_partitions(&self, _n: usize) {}

    /// Per tick: partitions replaying and the oldest non-final window start.
    pub fn flush(&self, replaying: usize, final_before: Option<i64>) {
        self.slot
            .replaying
            .store(replaying as u64, Ordering::Relaxed);
        self.slot
            .watermark
            .store(final_before.unwrap_or(i64::MIN), Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn top_n_keeps_labels_bounded_and_sticky() {
        let mut t = TopN::new(3);
        for i in 0..10_000u64 {
            t.add(&format!("K{}", i % 500), 1 + i % 7);
        }
        assert!(t.labels.len() <= 6, "{} labels", t.labels.len());
        assert!(t.labels.len() >= 3);
        let before: Vec<String> = t.labels.keys().cloned().collect();
        for i in 0..1000u64 {
            t.add(&format!("Z{i}"), 1_000_000);
        }
        for k in &before {
            assert!(t.is_labelled(k), "{k} lost its label");
        }
        assert!(t.labels.len() <= 6);
        assert!(t.volume.len() <= MAX_TRACKED_KEYS);
    }

    #[test]
    fn partition_lag_falls_back_to_offsets() {
        let p = rdkafka::statistics::Partition {
            partition: 0,
            desired: true,
            consumer_lag: -1,
            lo_offset: 10,
            hi_offset: 50,
            ls_offset: 40,
            ..Default::default()
        };
        assert_eq!(partition_lag(&p), 30);
        let known = rdkafka::statistics::Partition {
            consumer_lag: 7,
            ..p.clone()
        };
        assert_eq!(partition_lag(&known), 7);
        let unknown = rdkafka::statistics::Partition {
            lo_offset: -1,
            hi_offset: -1,
            ls_offset: -1,
            ..p
        };
        assert_eq!(partition_lag(&unknown), -1);
    }

    #[test]
    fn memory_is_read() {
        let rss = resident_memory_bytes().unwrap();
        assert!(rss > 1 << 20, "{rss}");
    }
}
