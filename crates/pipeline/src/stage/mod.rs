//! The loop every stage runs: consume → process → produce → checkpoint.
//!
//! One OS thread per stage owns a `BaseConsumer`, a `ThreadedProducer` and the
//! stage's [`Handler`]. Transactional calls block in librdkafka, so they run
//! here, never on an async worker. Backpressure is Kafka's own: librdkafka's
//! prefetch is capped (`queued.max.messages.kbytes`), and when the producer's
//! queue is full `send` waits, so a slow output slows consumption instead of
//! growing memory.
//!
//! Checkpoints:
//! - exactly-once: the outputs and the input offsets (with the handler's replay
//!   metadata) commit in one Kafka transaction (`send_offsets_to_transaction`).
//!   A failed commit aborts and rewinds every partition to its committed state.
//! - at-least-once: the producer is flushed, every delivery checked, then the
//!   offsets are committed; any failed delivery rewinds instead of committing.
//!
//! Failures (exactly-once): an error librdkafka marks *abortable* (a failed
//! produce, a fenced offset commit of a zombie whose generation is gone) is
//! handled in place: abort, forget all state, rebuild every owned partition
//! from its committed offset and metadata. Anything else ends the stage with
//! [`StageError::Fatal`] and `rampart run` exits non-zero: a fenced producer
//! (a newer instance with the same transactional id, or the broker timed the
//! transaction out), a commit that timed out (its outcome is unknown, so the
//! in-memory state cannot be trusted), an abort that fails. Recovery is the
//! process supervisor's restart (Kubernetes, systemd): the new producer's
//! `init_transactions` fences the old epoch and completes or aborts whatever
//! was in flight, and the stage resumes from what actually committed. A
//! transactional call that never returns (librdkafka ignores its timeout when
//! the group coordinator's broker dies mid-call) ends the process the same
//! way, from a watchdog (`overdue`). No
//! in-process rebuild loop: restarting the process is the one recovery path,
//! and the chaos tests (tests/chaos*.rs) exercise it.
//!
//! Rebalances (cooperative): on revoke the stage checkpoints first, so the next
//! owner resumes exactly where this one stopped; on assign it reads the
//! committed offsets and metadata, lets the handler build its state and starts
//! fetching from the handler's replay offset.
//!
//! Layering: this module knows the [`Handler`] trait and the
//! [`StageObserver`] it reports [`StageEvent`]s to, never a handler or a
//! metric (the handlers import this module; `telemetry` implements the
//! observer).
//!
//! Files: this one holds the [`Handler`] contract, the loop ([`Stage::run`])
//! and producing; `rebalance` the consumer context (assign, revoke, lost
//! partitions); `commit` checkpoints, aborts and rewinds, and what their
//! errors mean; `overdue` the watchdog of calls that outlive their timeout;
//! `member` leaving the group on a clean stop; `error` the [`StageError`]s
//! that stop a stage.

mod commit;
mod error;
mod member;
mod overdue;
mod rebalance;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers as _, Message as _};
use rdkafka::producer::{BaseRecord, Producer};
use tracing::{info, warn};

use crate::checkpoint::{CheckpointError, PartitionCheckpoint};
use crate::config::Guarantee;
use crate::consumer_error::{self, ConsumerErrorClass};
use crate::log_budget;
use crate::observer::{StageEvent, StageObserver};
use crate::records::OutRecord;

use commit::{DeliveryCtx, StageProducer};
pub use error::StageError;
use rebalance::StageCtx;

/// Where a newly assigned partition starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Start {
    /// First offset to fetch (`None`: the beginning of the partition).
    pub fetch_from: Option<i64>,
}

/// What a stage does with its partitions. All calls happen on the stage thread.
pub(crate) trait Handler: Send + 'static {
    /// `partition` was assigned; `committed` is its committed offset and
    /// metadata, if any. Builds the partition's state and says where to
    /// fetch; an error stops the stage.
    fn assign(
        &mut self,
        partition: i32,
        committed: Option<(i64, &str)>,
    ) -> Result<Start, CheckpointError>;
    /// `partition` is no longer ours (after a checkpoint, or after an abort).
    fn revoke(&mut self, partition: i32);
    /// One input message. An error stops the stage before anything of the
    /// message is committed: the input must not be skipped, and processing
    /// it would count or publish something twice.
    fn process(
        &mut self,
        msg: &BorrowedMessage<'_>,
        out: &mut Vec<OutRecord>,
    ) -> Result<(), Refused>;
    /// The consumer has read everything `partition` holds right now (a
    /// message for it clears this). Only such partitions are idle.
    /// `start_offset` asks the broker where the partition begins (its low
    /// watermark), for a partition that never got a message.
    fn at_end(&mut self, _partition: i32, _start_offset: &mut dyn FnMut() -> Option<i64>) {}
    /// Called about every 100 ms of processing time (idle watermark advance).
    fn tick(&mut self, now: Instant, out: &mut Vec<OutRecord>);
    /// What to commit for every partition that has something new to commit;
    /// an error (metadata over Kafka's budget) stops the stage.
    fn checkpoint(&mut self) -> Result<Vec<PartitionCheckpoint>, CheckpointError>;
    /// Everything since the last checkpoint was discarded (abort): forget the
    /// state of every partition; `assign` follows for each one still owned.
    fn reset(&mut self);
}

/// Why a handler refuses an input message (see [`Handler::process`]).
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) String);

/// Static settings of one stage.
#[derive(Clone, Debug)]
pub(crate) struct StageSettings {
    /// "ingest" or "merge", for logs and transactional ids.
    pub name: &'static str,
    pub input_topic: String,
    pub consumer: ClientConfig,
    pub producer: ClientConfig,
    pub guarantee: Guarantee,
    pub checkpoint_interval: Duration,
    /// With output pending and nothing to read, the stage checkpoints this
    /// long after its last checkpoint (at most `checkpoint_interval`): a
    /// window's partials and rollups reach their read_committed readers
    /// without waiting out the interval twice, while under load (always
    /// something to read) the interval alone decides.
    pub caught_up_checkpoint: Duration,
    /// Topics whose partition count the stage was built with (its input,
    /// and the partials topic it routes to or reads): checked every
    /// [`TOPOLOGY_CHECK_INTERVAL`]; a change stops the stage.
    pub watched_topics: Vec<(String, u32)>,
}

/// How often a running stage compares its topics' partition counts with
/// those it was built with.
const TOPOLOGY_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Aborts in a row without a committed checkpoint between them after which
/// a stage stops: the same input fails each time (abort → replay → the same
/// failure), so retrying is a loop, not a recovery.
pub(crate) const MAX_REWINDS_WITHOUT_PROGRESS: u32 = 5;

/// Progress a stage keeps about itself, readable from any thread (progress
/// displays, tests). Everything else it reports as [`StageEvent`]s.
#[derive(Debug, Default)]
pub struct StageCounters {
    /// Input messages the handler has processed (and whose output records
    /// went to the producer).
    pub messages: AtomicU64,
    /// Records handed to the producer.
    pub produced: AtomicU64,
    /// Input partitions assigned now.
    pub assigned: AtomicU64,
    /// Partitions revoked since the start (handed over in a rebalance, lost,
    /// or given up on stopping).
    pub revoked: AtomicU64,
    /// Rewinds to the last committed checkpoint (after a failed checkpoint
    /// or produce): `messages` then counts the replayed input again.
    pub rewinds: AtomicU64,
    /// Of `messages`, those below the offset committed when their partition
    /// was last started: input read again to rebuild state (after a restart,
    /// a handover, or a rewind), not new input.
    pub replayed: AtomicU64,
}

struct Inner<H: Handler> {
    handler: H,
    producer: StageProducer,
    settings: StageSettings,
    counters: Arc<StageCounters>,
    observer: Arc<dyn StageObserver>,
    dirty: bool,
    /// Set when a checkpoint failed in a rebalance callback; the loop rewinds.
    needs_rewind: bool,
    /// Set when the stage must stop; the loop returns it.
    fatal: Option<StageError>,
    /// Where each assigned partition was last started (assign or rewind).
    starts: BTreeMap<i32, i64>,
    /// The committed offset each assigned partition was last started from:
    /// input below it is a replay (`StageCounters::replayed`).
    replay_until: BTreeMap<i32, i64>,
    /// Rewinds since the last committed checkpoint, and why the last one came.
    rewinds_without_progress: u32,
    last_failure: Option<String>,
    /// The producer's `message.max.bytes`: a larger record is never sent
    /// (it would fail on every retry) and stops the stage.
    message_max_bytes: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<H: Handler> Inner<H> {
    fn send(&mut self, records: &mut Vec<OutRecord>) {
        for r in records.drain(..) {
            let size = r.key.as_ref().map_or(0, Vec::len)
                + r.payload.as_ref().map_or(0, Vec::len)
                + r.headers.as_ref().map_or(0, |h| {
                    h.iter()
                        .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len))
                        .sum()
                });
            if size > self.message_max_bytes {
                if self.fatal.is_none() {
                    let error = StageError::RecordTooLarge {
                        stage: self.settings.name,
                        topic: r.topic.to_string(),
                        size,
                        limit: self.message_max_bytes,
                    };
                    warn!(%error, "stopping");
                    self.fatal = Some(error);
                }
                continue;
            }
            let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&r.topic);
            if let Some(p) = &r.payload {
                rec = rec.payload(&p[..]);
            }
            if let Some(k) = &r.key {
                rec = rec.key(&k[..]);
            }
            if let Some(h) = r.headers {
                rec = rec.headers(h);
            }
            if let Some(p) = r.partition {
                rec = rec.partition(p);
            }
            loop {
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // Backpressure: wait for the producer to drain.
                        rec = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => {
                        if let Some(suppressed) = log_budget::PRODUCE_FAILED.admit() {
                            warn!(error = %e, topic = %r.topic, suppressed, "produce failed; aborting and rewinding");
                        }
                        if !self.needs_rewind && self.fatal.is_none() {
                            self.fatal = self.denied_transaction(&e).map(StageError::Denied);
                            self.observer.observe(StageEvent::CheckpointAborted);
                            self.last_failure = Some(format!(
                                "producing a {size} byte record to {}: {e}",
                                r.topic
                            ));
                        }
                        self.needs_rewind = true;
                        break;
                    }
                }
            }
            self.counters.produced.fetch_add(1, Ordering::Relaxed);
            self.dirty = true;
        }
    }

    /// The consumer's position cannot be trusted: the stage stops (the first
    /// error wins) and the process restarts from what committed.
    fn stop_for_recovery(&mut self, what: &'static str, error: KafkaError) {
        warn!(stage = self.settings.name, what, error = %error, "recovery step failed; stopping");
        self.fatal.get_or_insert(StageError::Recovery {
            stage: self.settings.name,
            what,
            error,
        });
    }
}

/// A running stage: poll it from one thread with [`Stage::run`].
pub(crate) struct Stage<H: Handler> {
    consumer: BaseConsumer<StageCtx<H>>,
    inner: Arc<Mutex<Inner<H>>>,
    counters: Arc<StageCounters>,
}

impl<H: Handler> Stage<H> {
    /// Builds a stage that adds to `counters` (several stages, the threads of
    /// one role, may share them: they then hold their sums) and reports its
    /// events to `observer`.
    pub(crate) fn new(
        settings: StageSettings,
        handler: H,
        counters: Arc<StageCounters>,
        observer: Arc<dyn StageObserver>,
    ) -> Result<Self, StageError> {
        let ctx = DeliveryCtx {
            observer: observer.clone(),
            failed_since_checkpoint: AtomicU64::new(0),
            denied: Mutex::new(None),
        };
        let producer: StageProducer = settings
            .producer
            .create_with_context(ctx)
            .map_err(StageError::Setup)?;
        if settings.guarantee == Guarantee::ExactlyOnce {
            producer
                .init_transactions(Duration::from_secs(60))
                .map_err(StageError::Setup)?;
            producer.begin_transaction().map_err(StageError::Setup)?;
        }
        let inner = Arc::new(Mutex::new(Inner {
            handler,
            producer,
            settings: settings.clone(),
            counters: counters.clone(),
            observer: observer.clone(),
            dirty: false,
            needs_rewind: false,
            fatal: None,
            starts: BTreeMap::new(),
            replay_until: BTreeMap::new(),
            rewinds_without_progress: 0,
            last_failure: None,
            message_max_bytes: settings
                .producer
                .get("message.max.bytes")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1_000_000),
        }));
        let consumer: BaseConsumer<StageCtx<H>> = settings
            .consumer
            .create_with_context(StageCtx {
                inner: inner.clone(),
                observer: observer.clone(),
            })
            .map_err(StageError::Setup)?;
        observer.observe(StageEvent::Started);
        Ok(Stage {
            consumer,
            inner,
            counters,
        })
    }

    /// Joins the group and runs until `shutdown` is set; then checkpoints,
    /// leaves the group and returns. The group is joined here, not in
    /// [`Stage::new`]: `run` builds every stage (the slow part, each
    /// producer's `init_transactions`) before starting any, so the threads
    /// of one role join together and get their partitions in one rebalance
    /// (one joining alone would take every partition, start replaying them,
    /// and hand half back a moment later).
    pub(crate) fn run(self, shutdown: &AtomicBool) -> Result<(), StageError> {
        let name = lock(&self.inner).settings.name;
        let topic = lock(&self.inner).settings.input_topic.clone();
        self.consumer
            .subscribe(&[topic.as_str()])
            .map_err(StageError::Setup)?;
        let interval = lock(&self.inner).settings.checkpoint_interval;
        let caught_up_gap = lock(&self.inner)
            .settings
            .caught_up_checkpoint
            .min(interval);
        let mut next_checkpoint = Instant::now() + interval;
        let mut next_tick = Instant::now();
        let mut next_topology_check = Instant::now() + TOPOLOGY_CHECK_INTERVAL;
        let mut out = Vec::new();
        info!(stage = name, "stage started");
        let mut last_checkpoint = Instant::now();
        while !shutdown.load(Ordering::Relaxed) {
            let polled = self.consumer.poll(Duration::from_millis(50));
            // Nothing more to read for now (no message, or a partition's
            // end): output need not wait for the interval
            // (`StageSettings::caught_up_checkpoint`).
            let mut caught_up = false;
            let mut inner = lock(&self.inner);
            if let Some(e) = inner.fatal.take() {
                return Err(e);
            }
            match polled {
                Some(Ok(msg)) => {
                    if let Err(Refused(reason)) = inner.handler.process(&msg, &mut out) {
                        let error = StageError::Refused {
                            stage: name,
                            topic: inner.settings.input_topic.clone(),
                            partition: msg.partition(),
                            offset: msg.offset(),
                            reason,
                        };
                        warn!(stage = name, %error, "refusing input; stopping");
                        return Err(error);
                    }
                    inner.send(&mut out);
                    // After the work (a closing message closes its window in
                    // `process`), so a drain timed by it includes the work.
                    if inner
                        .replay_until
                        .get(&msg.partition())
                        .is_some_and(|&until| msg.offset() < until)
                    {
                        inner.counters.replayed.fetch_add(1, Ordering::Relaxed);
                    }
                    inner.counters.messages.fetch_add(1, Ordering::Relaxed);
                }
                Some(Err(e)) => match consumer_error::classify(&e) {
                    ConsumerErrorClass::EndOfPartition(p) => {
                        caught_up = true;
                        let topic = inner.settings.input_topic.clone();
                        let consumer = &self.consumer;
                        let mut start_offset = || {
                            consumer
                                .fetch_watermarks(&topic, p, Duration::from_secs(10))
                                .map_err(|e| warn!(error = %e, partition = p, "cannot read the low watermark"))
                                .ok()
                                .map(|(low, _)| low)
                        };
                        inner.handler.at_end(p, &mut start_offset);
                    }
                    ConsumerErrorClass::Retried => {
                        if let Some(suppressed) = log_budget::CONSUMER_RETRIED.admit() {
                            warn!(stage = name, error = %e, suppressed, "consumer error; librdkafka retries");
                        }
                        inner.observer.observe(StageEvent::ConsumerErrorRetried);
                    }
                    ConsumerErrorClass::RecordsSkipped => {
                        let topic = &inner.settings.input_topic;
                        let report =
                            consumer_error::lost_input_report(&self.consumer, topic, &inner.starts);
                        return Err(StageError::RecordsSkipped {
                            stage: name,
                            error: e,
                            report,
                        });
                    }
                    ConsumerErrorClass::Fatal => return Err(StageError::Fatal(e)),
                },
                None => caught_up = true,
            }
            let now = Instant::now();
            if now >= next_tick {
                inner.handler.tick(now, &mut out);
                inner.send(&mut out);
                next_tick = now + Duration::from_millis(100);
            }
            let early = caught_up && inner.dirty && now >= last_checkpoint + caught_up_gap;
            if now >= next_checkpoint || early {
                inner.checkpoint(&self.consumer);
                next_checkpoint = now + interval;
                last_checkpoint = now;
            }
            if now >= next_topology_check {
                if let Some((topic, built, now)) =
                    crate::topology::resized_topic(&self.consumer, &inner.settings.watched_topics)
                {
                    let error = StageError::TopicResized {
                        stage: name,
                        topic,
                        built,
                        now,
                    };
                    warn!(stage = name, %error, "stopping");
                    return Err(error);
                }
                next_topology_check = now + TOPOLOGY_CHECK_INTERVAL;
            }
            if inner.needs_rewind {
                inner.rewind(&self.consumer);
            }
        }
        info!(stage = name, "stopping: final checkpoint");
        {
            let mut inner = lock(&self.inner);
            inner.checkpoint(&self.consumer);
            if let Some(e) = inner.fatal.take() {
                return Err(e);
            }
        }
        // librdkafka leaves only a group it has joined (`member`).
        if !member::await_join(&self.consumer) {
            warn!(
                stage = name,
                "stopping before the group join finished: this member may stay listed until session.timeout.ms"
            );
        }
        // Leaving the group revokes our partitions (the callback checkpoints again, a no-op now).
        self.consumer.unsubscribe();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.counters.assigned.load(Ordering::Relaxed) > 0 {
            let _ = self.consumer.poll(Duration::from_millis(50));
        }
        {
            let inner = lock(&self.inner);
            if inner.settings.guarantee == Guarantee::ExactlyOnce {
                // Nothing is pending after the last checkpoint; end the empty transaction.
                let _ = inner.producer.abort_transaction(Duration::from_secs(10));
            } else {
                let _ = commit::flush_promptly(&inner.producer, Duration::from_secs(30))
                    .and_then(|()| inner.producer.flush(Duration::from_secs(30)));
            }
        }
        if !member::await_leave(&self.consumer) {
            warn!(
                stage = name,
                "no LeaveGroup sent: this member may stay listed until session.timeout.ms"
            );
        }
        info!(stage = name, "stage stopped");
        Ok(())
    }
}
