//! Prometheus metrics of the stages, Vector-style names with the `rampart_`
//! prefix (`rampart_<subsystem>_<name>_<unit>`, counters end in `_total`).
//! This module owns every metric name, label and the recorder; nothing else
//! in the crate touches the registry.
//!
//! - [`describe`]: names, units and HELP texts; [`install_recorder`].
//! - [`stage`]: [`StageTelemetry`], the stage runtime's observer (checkpoints,
//!   rebalances, deliveries, consumer lag from librdkafka statistics), and
//!   the per-stage gauges sampled at scrape time ([`refresh`]).
//! - [`ingest`], [`merge`]: the handlers' metrics ([`IngestMetrics`],
//!   [`MergeMetrics`]); [`domain`]: attack counters with bounded labels.
//!
//! Layering: telemetry knows neither the stage runtime nor the handlers. It
//! implements [`crate::observer::StageObserver`] and offers the handlers
//! typed calls; it fills [`crate::health`] for readiness.
//!
//! Cost model: every handle is registered once, when a handler is built; hot
//! loops keep their counts in the core's per-batch `BatchStats`, added up
//! locally and handed to the registry once per tick, never once per event.
//! State gauges (dedup table, watermark lag, replay) are refreshed per tick
//! (~100 ms); consumer lag comes from librdkafka's statistics callback (once a
//! second); stage gauges (assigned partitions) are sampled at scrape time.
//!
//! Domain metrics (attack events by sector, origin country and kind) are
//! counted from the merge stage's *final* rollups, so the hot path pays nothing
//! for them: they advance when windows close, not when events arrive.
//! Labels are bounded whatever the input: sectors come from the sector table
//! (capped at [`MAX_SECTORS`]), kinds from the `AttackKind` enum, countries
//! are the top [`TOP_COUNTRIES`] by volume (once admitted a country keeps its
//! label so series do not flap), everything else is `other`. IPs, prefixes
//! and ASNs are never labels.

mod describe;
mod domain;
mod ingest;
mod merge;
mod stage;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{counter, gauge};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

pub use ingest::IngestMetrics;
pub(crate) use merge::MergeMetrics;
pub(crate) use stage::StageTelemetry;

/// Name of the window close latency histogram.
pub const WINDOW_CLOSE_LATENCY: &str = "rampart_window_close_latency_seconds";
/// Buckets of [`WINDOW_CLOSE_LATENCY`] (seconds). The design target is p99 ≤ 1 s.
const WINDOW_CLOSE_LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Name of the histogram of committed checkpoints' durations, by stage.
pub const CHECKPOINT_DURATION: &str = "rampart_checkpoint_duration_seconds";
/// Buckets of [`CHECKPOINT_DURATION`] (seconds): a commit takes milliseconds,
/// its output's delivery tens to hundreds.
const CHECKPOINT_DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Countries with their own `origin_country` label; the rest count as `other`.
pub const TOP_COUNTRIES: usize = 20;
/// Distinct sector labels; sectors beyond this count as `other`.
pub(crate) const MAX_SECTORS: usize = 64;

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
        .set_buckets_for_metric(
            Matcher::Full(CHECKPOINT_DURATION.into()),
            CHECKPOINT_DURATION_BUCKETS,
        )?
        .install_recorder()?;
    describe::describe_all();
    Ok(handle)
}

/// Why the endpoint server (`crate::http`) closed a connection before
/// answering it normally.
#[derive(Clone, Copy, Debug)]
pub(crate) enum HttpDrop {
    /// Every slot was taken: the oldest connection still waiting for its
    /// request head gave its slot to a new one.
    Evicted,
    /// Every slot was writing a response: the new connection got a 503.
    Busy,
    /// The request head did not arrive in time (answered 408).
    HeadTimeout,
    /// The client did not take the response in time.
    WriteTimeout,
}

impl HttpDrop {
    fn label(self) -> &'static str {
        match self {
            HttpDrop::Evicted => "evicted",
            HttpDrop::Busy => "busy",
            HttpDrop::HeadTimeout => "head_timeout",
            HttpDrop::WriteTimeout => "write_timeout",
        }
    }
}

/// Counts a connection the endpoint server closed early.
pub(crate) fn http_connection_dropped(reason: HttpDrop) {
    counter!("rampart_http_connections_dropped_total", "reason" => reason.label()).increment(1);
}

/// Refreshes what is sampled at scrape time: readiness, process memory and
/// the stages' gauges.
pub(crate) fn refresh() {
    let ready = crate::health::readiness().is_ok();
    gauge!("rampart_ready").set(if ready { 1.0 } else { 0.0 });
    if let Some(rss) = resident_memory_bytes() {
        gauge!("rampart_process_resident_memory_bytes").set(rss as f64);
    }
    stage::refresh_stages();
    for site in crate::log_budget::all() {
        counter!("rampart_log_lines_suppressed_total", "site" => site.site())
            .absolute(site.suppressed_total());
    }
}

/// Resident set size from `/proc/self/statm` (pages × page size), Linux only.
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // The page size is 4 KiB on the platforms rampart targets (x86-64, aarch64 Linux defaults).
    Some(pages * 4096)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_read() {
        let rss = resident_memory_bytes().unwrap();
        assert!(rss > 1 << 20, "{rss}");
    }
}
