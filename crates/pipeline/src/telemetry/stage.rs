//! Stage-level telemetry: [`StageTelemetry`] turns the runtime's
//! [`StageEvent`]s into counters, consumer-lag gauges and readiness state;
//! [`HandlerGauges`] carry what each handler reports per tick; and
//! [`refresh_stages`] samples the per-stage gauges at scrape time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use super::{CHECKPOINT_DURATION, lock, now_ms};
use crate::health::{self, StageStatus};
use crate::observer::{StageEvent, StageObserver};

/// The observer of one stage (shared by the threads of one role).
#[derive(Debug)]
pub(crate) struct StageTelemetry {
    status: Arc<StageStatus>,
    /// The topics the stage reads (an ingest stage per input shares one).
    input_topics: Vec<Arc<str>>,
    lag_gauges: Mutex<BTreeMap<(Arc<str>, i32), Gauge>>,
    commits: Counter,
    commit_duration: Histogram,
    aborts: Counter,
    rebalances: Counter,
    delivery_failed_errors: Counter,
    consumer_retried_errors: Counter,
    checkpoint_aborted_errors: Counter,
}

impl StageTelemetry {
    /// Telemetry of stage `name` reading `input_topics` (to attribute
    /// librdkafka statistics; the ingest stages of several inputs share one).
    /// Starts a new run of the stage: what an earlier run in this process
    /// left in its readiness state and gauges is dropped, so build it once,
    /// before any of the stage's handlers.
    pub(crate) fn new(name: &'static str, input_topics: &[&str]) -> Self {
        let status = health::stage_status(name);
        status.reset();
        lock(&stage_gauges(name)).clear();
        StageTelemetry {
            status,
            input_topics: input_topics.iter().map(|&t| t.into()).collect(),
            lag_gauges: Mutex::new(BTreeMap::new()),
            commits: counter!("rampart_checkpoint_commits_total", "stage" => name),
            commit_duration: histogram!(CHECKPOINT_DURATION, "stage" => name),
            aborts: counter!("rampart_checkpoint_aborts_total", "stage" => name),
            rebalances: counter!("rampart_rebalances_total", "stage" => name),
            delivery_failed_errors: counter!("rampart_errors_total", "stage" => name, "error_type" => "delivery_failed"),
            consumer_retried_errors: counter!("rampart_errors_total", "stage" => name, "error_type" => "consumer_retried"),
            checkpoint_aborted_errors: counter!("rampart_errors_total", "stage" => name, "error_type" => "checkpoint_aborted"),
        }
    }

    /// Records consumer lag per (topic, partition) from librdkafka statistics
    /// (about once a second per consumer).
    fn consumer_statistics(&self, stats: &rdkafka::Statistics) {
        let name = self.status.name();
        for topic in stats.topics.values() {
            let Some(input) = self.input_topics.iter().find(|t| ***t == *topic.topic) else {
                continue;
            };
            let mut lag_gauges = lock(&self.lag_gauges);
            // Several members of one stage (threads) each report their own
            // partitions: update those, drop the ones this client no longer wants.
            self.status.update_lag(|lag| {
                for p in topic.partitions.values() {
                    if p.partition < 0 {
                        continue;
                    }
                    let key = (input.clone(), p.partition);
                    if p.desired {
                        let partition_lag = partition_lag(p);
                        lag.insert(key.clone(), partition_lag);
                        lag_gauges
                            .entry(key)
                            .or_insert_with(|| {
                                gauge!(
                                    "rampart_consumer_lag_messages",
                                    "stage" => name,
                                    "topic" => input.to_string(),
                                    "partition" => p.partition.to_string()
                                )
                            })
                            .set(partition_lag.max(0) as f64);
                    } else if lag.remove(&key).is_some()
                        && let Some(g) = lag_gauges.get(&key)
                    {
                        g.set(0.0);
                    }
                }
            });
        }
    }
}

impl StageObserver for StageTelemetry {
    fn observe(&self, event: StageEvent<'_>) {
        match event {
            StageEvent::Started => self.status.mark_started(),
            StageEvent::ConsumerStatistics(stats) => self.consumer_statistics(stats),
            StageEvent::Rebalance => self.rebalances.increment(1),
            StageEvent::PartitionsAssigned { count } => self.status.partitions_assigned(count),
            StageEvent::PartitionsRevoked { count } => self.status.partitions_revoked(count),
            StageEvent::CheckpointCommitted { took } => {
                self.commits.increment(1);
                self.commit_duration.record(took.as_secs_f64());
            }
            StageEvent::CheckpointAborted => {
                self.aborts.increment(1);
                self.checkpoint_aborted_errors.increment(1);
            }
            StageEvent::DeliveryFailed => self.delivery_failed_errors.increment(1),
            StageEvent::ConsumerErrorRetried => self.consumer_retried_errors.increment(1),
        }
    }
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

/// State one handler reports per tick, summed (or the minimum taken) over a
/// stage's handlers at scrape time.
#[derive(Debug)]
pub(super) struct HandlerGauges {
    /// Shared with readiness ([`StageStatus::replaying`]).
    replaying: Arc<AtomicU64>,
    dedup_entries: AtomicU64,
    dedup_bytes: AtomicU64,
    dedup_evicted: AtomicU64,
    /// Lowest watermark (ms) of the handler's partitions; `i64::MIN`: none.
    watermark: AtomicI64,
}

/// The dedup table figures an ingest handler reports.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct DedupFigures {
    pub(super) entries: u64,
    pub(super) bytes: u64,
    pub(super) evicted_early: u64,
}

impl HandlerGauges {
    /// Registers a new handler of stage `name`.
    pub(super) fn register(name: &'static str) -> Arc<Self> {
        let gauges = Arc::new(HandlerGauges {
            replaying: health::stage_status(name).replaying_count(),
            dedup_entries: AtomicU64::new(0),
            dedup_bytes: AtomicU64::new(0),
            dedup_evicted: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
        });
        lock(&stage_gauges(name)).push(gauges.clone());
        gauges
    }

    pub(super) fn set_replaying(&self, partitions: usize) {
        self.replaying.store(partitions as u64, Ordering::Relaxed);
    }

    /// `None`: no partition has a watermark yet.
    pub(super) fn set_watermark(&self, watermark_ms: Option<i64>) {
        self.watermark
            .store(watermark_ms.unwrap_or(i64::MIN), Ordering::Relaxed);
    }

    pub(super) fn set_dedup(&self, figures: DedupFigures) {
        self.dedup_entries.store(figures.entries, Ordering::Relaxed);
        self.dedup_bytes.store(figures.bytes, Ordering::Relaxed);
        self.dedup_evicted
            .store(figures.evicted_early, Ordering::Relaxed);
    }
}

type GaugesOfStage = Arc<Mutex<Vec<Arc<HandlerGauges>>>>;

/// The handler gauges of stage `name`, created on first use.
fn stage_gauges(name: &'static str) -> GaugesOfStage {
    static STAGES: OnceLock<Mutex<Vec<(&'static str, GaugesOfStage)>>> = OnceLock::new();
    let mut all = lock(STAGES.get_or_init(|| Mutex::new(Vec::new())));
    if let Some((_, gauges)) = all.iter().find(|(n, _)| *n == name) {
        return gauges.clone();
    }
    let gauges = GaugesOfStage::default();
    all.push((name, gauges.clone()));
    gauges
}

/// Sets the gauges sampled at scrape time for every started stage.
pub(super) fn refresh_stages() {
    for status in health::started_stages() {
        let name = status.name();
        gauge!("rampart_assigned_partitions", "stage" => name).set(status.assigned() as f64);
        gauge!("rampart_replaying_partitions", "stage" => name).set(status.replaying() as f64);
        let gauges = stage_gauges(name);
        let handlers = lock(&gauges);
        let sum = |field: fn(&HandlerGauges) -> &AtomicU64| -> f64 {
            handlers
                .iter()
                .map(|h| field(h).load(Ordering::Relaxed))
                .sum::<u64>() as f64
        };
        if name == "ingest" {
            gauge!("rampart_dedup_entries").set(sum(|h| &h.dedup_entries));
            gauge!("rampart_dedup_table_bytes").set(sum(|h| &h.dedup_bytes));
            gauge!("rampart_dedup_evicted_early_entries").set(sum(|h| &h.dedup_evicted));
        }
        let lowest_watermark = handlers
            .iter()
            .map(|h| h.watermark.load(Ordering::Relaxed))
            .filter(|&w| w != i64::MIN)
            .min();
        drop(handlers);
        if let Some(w) = lowest_watermark {
            gauge!("rampart_watermark_lag_seconds", "stage" => name)
                .set(now_ms().saturating_sub(w) as f64 / 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic_statistics(topic: &str, lags: &[(i32, i64)]) -> rdkafka::statistics::Topic {
        rdkafka::statistics::Topic {
            topic: topic.to_string(),
            partitions: lags
                .iter()
                .map(|&(partition, consumer_lag)| {
                    let p = rdkafka::statistics::Partition {
                        partition,
                        desired: true,
                        consumer_lag,
                        ..Default::default()
                    };
                    (partition, p)
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn lag_of_two_inputs_is_kept_per_topic_and_partition() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // A stage name no other test uses: readiness state is process-wide.
        let name = "lag-test";
        metrics::with_local_recorder(&recorder, || {
            let telemetry = StageTelemetry::new(name, &["eve", "zeek"]);
            let stats = rdkafka::Statistics {
                topics: [
                    (
                        "eve".to_string(),
                        topic_statistics("eve", &[(0, 7), (1, 3)]),
                    ),
                    ("zeek".to_string(), topic_statistics("zeek", &[(0, 1200)])),
                    // Not an input of this stage: ignored.
                    (
                        "partials".to_string(),
                        topic_statistics("partials", &[(0, 99)]),
                    ),
                ]
                .into_iter()
                .collect(),
                ..Default::default()
            };
            telemetry.consumer_statistics(&stats);
        });
        let status = health::stage_status(name);
        let lag = status.update_lag(|lag| lag.clone());
        let want: BTreeMap<(Arc<str>, i32), i64> = [
            (("eve".into(), 0), 7),
            (("eve".into(), 1), 3),
            (("zeek".into(), 0), 1200),
        ]
        .into_iter()
        .collect();
        assert_eq!(lag, want, "partition 0 of each topic keeps its own lag");
        let rendered = handle.render();
        for line in [
            r#"rampart_consumer_lag_messages{stage="lag-test",topic="eve",partition="0"} 7"#,
            r#"rampart_consumer_lag_messages{stage="lag-test",topic="eve",partition="1"} 3"#,
            r#"rampart_consumer_lag_messages{stage="lag-test",topic="zeek",partition="0"} 1200"#,
        ] {
            assert!(rendered.contains(line), "{line} missing from:\n{rendered}");
        }
        assert!(!rendered.contains("partials"), "{rendered}");
        status.reset();
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
}
