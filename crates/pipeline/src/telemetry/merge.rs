//! The merge handler's metrics: partials read, rollups and windows
//! published, window close latency, malformed partials, and the attack
//! counters of [`super::domain`].

use std::sync::{Arc, Mutex};

use metrics::{Counter, Histogram, counter, histogram};
use rampart_core::proto::v1::{Dimension, Rollup};
use rustc_hash::FxHashMap;

use super::domain::Domain;
use super::stage::HandlerGauges;
use super::{TOP_COUNTRIES, WINDOW_CLOSE_LATENCY, now_ms};
use crate::records::dimension_name;

/// Metrics of the merge stage.
pub(crate) struct MergeMetrics {
    received_messages: Counter,
    received_bytes: Counter,
    sent_events: Counter,
    sent_bytes: Counter,
    rollups: FxHashMap<i32, Counter>,
    malformed: Counter,
    duplicate_partials: Counter,
    partials_after_close: Counter,
    partials_after_final: Counter,
    windows: Counter,
    close_latency: Histogram,
    /// One per process: every merge thread ranks countries in the same
    /// [`Domain`], so the label bound holds however many threads there are.
    domain: Arc<Mutex<Domain>>,
    gauges: Arc<HandlerGauges>,
}

impl MergeMetrics {
    /// Registers the handles of a process's first merge thread,
    /// [`TOP_COUNTRIES`] country labels; [`Self::sibling`] gives the others.
    pub(crate) fn new() -> Self {
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
                counter!("rampart_rollups_published_total", "dimension" => dimension_name(d as i32)),
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
            duplicate_partials: counter!("rampart_merge_partials_dropped_total", "reason" => "duplicate"),
            partials_after_close: counter!("rampart_merge_partials_dropped_total", "reason" => "after_close"),
            partials_after_final: counter!("rampart_merge_partials_dropped_total", "reason" => "after_final"),
            windows: counter!("rampart_windows_closed_total"),
            close_latency: histogram!(WINDOW_CLOSE_LATENCY),
            domain: Arc::new(Mutex::new(Domain::new(TOP_COUNTRIES))),
            gauges: HandlerGauges::register(S),
        }
    }

    /// The metrics of another merge thread of the same process: its own
    /// gauges, the same domain counters.
    pub(crate) fn sibling(&self) -> Self {
        MergeMetrics {
            domain: self.domain.clone(),
            ..MergeMetrics::new()
        }
    }

    /// One partials message read (not replayed).
    pub(crate) fn received(&self, bytes: usize) {
        self.received_messages.increment(1);
        self.received_bytes.increment(bytes as u64);
    }

    /// A partials message that could not be decoded or applied (the stage
    /// stops on it; partials are never dead-lettered).
    pub(crate) fn malformed(&self) {
        self.malformed.increment(1);
    }

    /// Final rollups produced from one message. `closable_at_ms` is the Kafka
    /// timestamp of the message that made their windows final; `None` skips
    /// the latency (e.g. while replaying).
    pub(crate) fn published(
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
        }
        self.domain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .rollups(rollups);
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

    /// Partials (not replayed) the merger did not merge because their input
    /// partition's contribution was merged already (`duplicate`), that
    /// partition had closed the window (`after_close`) or the window was final
    /// (`after_final`): rewrites after an at-least-once crash.
    pub(crate) fn partials_dropped(&self, duplicate: u64, after_close: u64, after_final: u64) {
        self.duplicate_partials.increment(duplicate);
        self.partials_after_close.increment(after_close);
        self.partials_after_final.increment(after_final);
    }

    /// Per tick: partitions replaying and the oldest non-final window start.
    pub(crate) fn flush(&self, replaying: usize, final_before: Option<i64>) {
        self.gauges.set_replaying(replaying);
        self.gauges.set_watermark(final_before);
    }
}
