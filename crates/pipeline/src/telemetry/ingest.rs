//! The ingest handler's metrics: input counted per message and handed to
//! the registry once per tick, rejections (of messages and of events),
//! partials sent, and the dedup and watermark gauges.

use std::sync::Arc;

use metrics::{Counter, counter};
use rampart_core::enrich::LookupCounts;
use rampart_core::ingest::{BatchStats, BudgetStats, PartitionIngest};
use rampart_core::validate::Rejection;
use rampart_formats::Format;

use super::stage::{DedupFigures, HandlerGauges};

/// Counts of valid messages since the last flush. Kept here so the
/// per-message cost is a few additions, whatever the message size (one event
/// per message included).
#[derive(Clone, Copy, Debug, Default)]
struct PendingCounts {
    messages: u64,
    bytes: u64,
    events: u64,
    unique: u64,
    duplicates: u64,
    late: u64,
}

/// Metrics of the ingest stage.
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
    /// `rampart_skipped_documents_total{format}` per JSON format.
    skipped_documents: Vec<(Format, Counter)>,
    invalid_input: Counter,
    dlq_messages: Counter,
    idle_advances_refused: Counter,
    clock_entries_refused: Counter,
    over_budget_events: Counter,
    dedup_budget: metrics::Gauge,
    owned_partitions: metrics::Gauge,
    over_budget_windows: Counter,
    folded_keys: Counter,
    capped_count_maps: Counter,
    gauges: Arc<HandlerGauges>,
    pending: PendingCounts,
    /// `rampart_enrich_lookups_total{database, result}`, in the order of
    /// [`lookup_fields`], and the enricher's cumulative counts last reported.
    enrich_lookups: Vec<Counter>,
    enrich_reported: LookupCounts,
}

/// `(database, result, count)` of every field of [`LookupCounts`].
fn lookup_fields(counts: &LookupCounts) -> [(&'static str, &'static str, u64); 6] {
    [
        ("country", "hit", counts.country_hits),
        ("country", "miss", counts.country_misses),
        ("asn", "hit", counts.asn_hits),
        ("asn", "miss", counts.asn_misses),
        ("sector", "hit", counts.sector_hits),
        ("sector", "miss", counts.sector_misses),
    ]
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
            skipped_documents: Format::JSON
                .iter()
                .map(|f| {
                    (
                        *f,
                        counter!("rampart_skipped_documents_total", "format" => f.as_str()),
                    )
                })
                .collect(),
            invalid_input: counter!("rampart_errors_total", "stage" => S, "error_type" => "invalid_input"),
            dlq_messages: counter!("rampart_dlq_messages_total", "stage" => S),
            idle_advances_refused: counter!("rampart_ingest_idle_advances_refused_total"),
            clock_entries_refused: counter!("rampart_ingest_clock_entries_refused_total"),
            over_budget_events: counter!("rampart_ingest_over_budget_events_total"),
            dedup_budget: metrics::gauge!("rampart_memory_dedup_budget_bytes"),
            owned_partitions: metrics::gauge!("rampart_memory_owned_partitions"),
            over_budget_windows: counter!("rampart_ingest_over_budget_windows_total"),
            folded_keys: counter!("rampart_ingest_folded_keys_total"),
            capped_count_maps: counter!("rampart_ingest_capped_count_maps_total"),
            gauges: HandlerGauges::register(S),
            pending: PendingCounts::default(),
            enrich_lookups: lookup_fields(&LookupCounts::default())
                .iter()
                .map(|&(database, result, _)| {
                    counter!("rampart_enrich_lookups_total", "database" => database, "result" => result)
                })
                .collect(),
            enrich_reported: LookupCounts::default(),
        }
    }

    /// An idle advance was not taken: the partition's record of them is full
    /// (`rampart_core::ingest::MAX_IDLE_ADVANCES`).
    pub(crate) fn idle_advance_refused(&self) {
        self.idle_advances_refused.increment(1);
    }

    /// An ingest clock step was not recorded: the partition's record of them is
    /// full (`rampart_core::ingest::MAX_CLOCK_ENTRIES`); its clock lags.
    pub(crate) fn clock_entry_refused(&self) {
        self.clock_entries_refused.increment(1);
    }

    /// The process memory budget's share now: each partition's dedup budget
    /// and the input partitions the process owns.
    pub(crate) fn memory_share(&self, dedup_budget: usize, owned: usize) {
        self.dedup_budget.set(dedup_budget as f64);
        self.owned_partitions.set(owned as f64);
    }

    /// What the key budgets changed while a partition rolled windows up
    /// (its cumulative figures before and after).
    pub(crate) fn budget(&self, before: BudgetStats, after: BudgetStats) {
        let delta = |f: fn(&BudgetStats) -> u64| f(&after).saturating_sub(f(&before));
        self.over_budget_events
            .increment(delta(|s| s.over_budget_events));
        self.over_budget_windows
            .increment(delta(|s| s.over_budget_windows));
        self.folded_keys.increment(delta(|s| s.folded_keys));
        self.capped_count_maps
            .increment(delta(|s| s.capped_count_maps));
    }

    /// One valid input message (a batch of events): a few additions; the
    /// counts reach the registry at the next `flush_counts` (every tick).
    #[inline]
    pub fn batch(&mut self, bytes: usize, stats: &BatchStats) {
        let pending = &mut self.pending;
        pending.messages += 1;
        pending.bytes += bytes as u64;
        pending.events += stats.events;
        pending.unique += stats.unique;
        pending.duplicates += stats.duplicates;
        pending.late += stats.late;
    }

    /// Hands the counts kept since the last call to the registry.
    pub(crate) fn flush_counts(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        if pending.messages == 0 {
            return;
        }
        self.received_messages.increment(pending.messages);
        self.received_bytes.increment(pending.bytes);
        self.received_events.increment(pending.events);
        self.unique_events.increment(pending.unique);
        self.duplicate_events.increment(pending.duplicates);
        self.late_events.increment(pending.late);
    }

    /// The enricher's cumulative lookup counts: what is new since the last
    /// call reaches the registry (each ingest thread has its own enricher).
    pub(crate) fn enrich_lookups(&mut self, now: LookupCounts) {
        let before = lookup_fields(&self.enrich_reported);
        for ((counter, (_, _, now)), (_, _, before)) in self
            .enrich_lookups
            .iter()
            .zip(lookup_fields(&now))
            .zip(before)
        {
            counter.increment(now.saturating_sub(before));
        }
        self.enrich_reported = now;
    }

    /// One input message rejected and dead-lettered.
    pub(crate) fn rejected(&self, rejection: Rejection) {
        self.received_messages.increment(1);
        self.dlq_messages.increment(1);
        self.invalid_input.increment(1);
        if let Some((_, counter)) = self.discarded.iter().find(|(r, _)| *r == rejection) {
            counter.increment(1);
        }
    }

    /// `n` events of a processed message rejected, dead-lettered in one
    /// record under the reason of the first.
    pub(crate) fn events_rejected(&self, first: Rejection, n: u64) {
        self.dlq_messages.increment(1);
        self.invalid_input.increment(n);
        if let Some((_, counter)) = self.discarded.iter().find(|(r, _)| *r == first) {
            counter.increment(1);
        }
    }

    /// `n` documents of a JSON message skipped by their format's rule (records
    /// that are no attack events, such as EVE `stats`): counted, not dead-lettered.
    pub(crate) fn documents_skipped(&self, format: Format, n: u64) {
        if n > 0
            && let Some((_, counter)) = self.skipped_documents.iter().find(|(f, _)| *f == format)
        {
            counter.increment(n);
        }
    }

    /// `n` partials handed to the producer.
    pub(crate) fn partials_emitted(&self, n: u64) {
        self.partials.increment(n);
    }

    /// Output records produced, `payload_bytes` in all.
    pub(crate) fn sent(&self, payload_bytes: usize) {
        self.sent_bytes.increment(payload_bytes as u64);
    }

    /// Gauges that describe state, refreshed per tick: dedup tables, the
    /// lowest watermark, and how many partitions are still replaying.
    pub(crate) fn flush<'a>(
        &self,
        partitions: impl IntoIterator<Item = &'a PartitionIngest>,
        replaying: usize,
    ) {
        let mut dedup = DedupFigures::default();
        let mut lowest_watermark: Option<i64> = None;
        for partition in partitions {
            let stats = partition.dedup_stats();
            dedup.entries += stats.entries;
            dedup.bytes += stats.bytes;
            dedup.evicted_early += stats.evicted_early_entries;
            if let Some(w) = partition.watermark() {
                lowest_watermark = Some(lowest_watermark.map_or(w, |l| l.min(w)));
            }
        }
        self.gauges.set_dedup(dedup);
        self.gauges.set_watermark(lowest_watermark);
        self.gauges.set_replaying(replaying);
    }
}
