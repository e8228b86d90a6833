//! Prometheus metrics of the stages, Vector-style names with the `rampart_`
//! prefix. Handles are registered once; hot loops count locally and flush per
//! batch or per tick, never a registry look-up per event.

use metrics::{Counter, Gauge, counter, gauge};
use rampart_core::ingest::{BatchStats, PartitionIngest};
use rampart_core::validate::Rejection;

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
    discarded: Vec<(Rejection, Counter)>,
    dlq_messages: Counter,
    partitions: Gauge,
    dedup_entries: Gauge,
    dedup_bytes: Gauge,
    dedup_evicted: Gauge,
}

impl Default for IngestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl IngestMetrics {
    pub fn new() -> Self {
        IngestMetrics {
            received_events: counter!("rampart_received_events_total", "stage" => "ingest"),
            received_bytes: counter!("rampart_received_bytes_total", "stage" => "ingest"),
            received_messages: counter!("rampart_received_messages_total", "stage" => "ingest"),
            unique_events: counter!("rampart_unique_events_total"),
            duplicate_events: counter!("rampart_duplicate_events_total"),
            late_events: counter!("rampart_late_events_total"),
            partials: counter!("rampart_sent_events_total", "stage" => "ingest", "output" => "partials"),
            discarded: Rejection::ALL
                .iter()
                .map(|r| {
                    (
                        *r,
                        counter!("rampart_discarded_events_total", "reason" => r.as_str()),
                    )
                })
                .collect(),
            dlq_messages: counter!("rampart_dlq_messages_total", "stage" => "ingest"),
            partitions: gauge!("rampart_assigned_partitions", "stage" => "ingest"),
            dedup_entries: gauge!("rampart_dedup_entries"),
            dedup_bytes: gauge!("rampart_dedup_table_bytes"),
            dedup_evicted: gauge!("rampart_dedup_evicted_early_entries"),
        }
    }

    pub fn batch(&self, bytes: usize, s: &BatchStats) {
        self.received_messages.increment(1);
        self.received_bytes.increment(bytes as u64);
        self.received_events.increment(s.events);
        self.unique_events.increment(s.unique);
        self.duplicate_events.increment(s.duplicates);
        self.late_events.increment(s.late);
    }

    pub fn rejected(&self, r: Rejection) {
        self.received_messages.increment(1);
        self.dlq_messages.increment(1);
        if let Some((_, c)) = self.discarded.iter().find(|(x, _)| *x == r) {
            c.increment(1);
        }
    }

    pub fn partials_emitted(&self, n: u64) {
        self.partials.increment(n);
    }

    pub fn set_partitions(&self, n: usize) {
        self.partitions.set(n as f64);
    }

    /// Gauges that describe state, refreshed per tick.
    pub fn flush(&self, parts: &[&PartitionIngest]) {
        let (mut entries, mut bytes, mut evicted) = (0u64, 0u64, 0u64);
        for p in parts {
            let d = p.dedup_stats();
            entries += d.entries;
            bytes += d.bytes;
            evicted += d.evicted_early_entries;
        }
        self.dedup_entries.set(entries as f64);
        self.dedup_bytes.set(bytes as f64);
        self.dedup_evicted.set(evicted as f64);
    }
}

/// Metrics of the merge stage.
#[derive(Clone)]
pub struct MergeMetrics {
    pub received_messages: Counter,
    pub rollups: Counter,
    pub malformed: Counter,
    pub windows: Counter,
    pub partitions: Gauge,
}

impl Default for MergeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl MergeMetrics {
    pub fn new() -> Self {
        MergeMetrics {
            received_messages: counter!("rampart_received_messages_total", "stage" => "merge"),
            rollups: counter!("rampart_rollups_published_total"),
            malformed: counter!("rampart_errors_total", "stage" => "merge", "error_type" => "malformed_partials"),
            windows: counter!("rampart_windows_closed_total"),
            partitions: gauge!("rampart_assigned_partitions", "stage" => "merge"),
        }
    }
}
