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
//! was in flight, and the stage resumes from what actually committed. No
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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList, TopicPartitionListElem};
use rdkafka::types::RDKafkaRespErr;
use tracing::{debug, info, warn};

use crate::checkpoint::{CheckpointError, PartitionCheckpoint};
use crate::config::Guarantee;
use crate::consumer_error::{self, ConsumerErrorClass};
use crate::observer::{StageEvent, StageObserver};
use crate::records::OutRecord;

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
    /// Topics whose partition count the stage was built with (its input,
    /// and the partials topic it routes to or reads): checked every
    /// [`TOPOLOGY_CHECK_INTERVAL`]; a change stops the stage.
    pub watched_topics: Vec<(String, u32)>,
}

/// How often a running stage compares its topics' partition counts with
/// those it was built with.
const TOPOLOGY_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Progress a stage keeps about itself, readable from any thread (progress
/// displays, tests). Everything else it reports as [`StageEvent`]s.
#[derive(Debug, Default)]
pub struct StageCounters {
    /// Input messages handed to the handler.
    pub messages: AtomicU64,
    /// Records handed to the producer.
    pub produced: AtomicU64,
    /// Input partitions assigned now.
    pub assigned: AtomicU64,
}

/// Errors that stop a stage.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("kafka client setup failed: {0}")]
    Setup(#[source] KafkaError),
    #[error("fatal kafka error (this instance may have been fenced by a newer one): {0}")]
    Fatal(#[source] KafkaError),
    /// Kafka's authorizer refuses an operation the stage needs; no retry can succeed.
    #[error("refused by Kafka's ACLs: {0}")]
    Denied(#[source] KafkaError),
    #[error("{0}")]
    Checkpoint(#[from] CheckpointError),
    /// A consumer error that skips input records; rampart stops rather than
    /// lose them silently (see `consumer_error`).
    #[error(
        "{stage}: consumer error that would skip input records: {error} ({report}); stopping \
         instead of skipping them (README, \"Consumer errors\")"
    )]
    RecordsSkipped {
        stage: &'static str,
        #[source]
        error: KafkaError,
        report: String,
    },
    /// The consumer's position could not be set or read, so the rebuilt state
    /// and the records fetched next would not match.
    #[error("{stage}: {what} failed: {error}; stopping for a restart")]
    Recovery {
        stage: &'static str,
        what: &'static str,
        #[source]
        error: KafkaError,
    },
    #[error(
        "the {stage} stage cannot start partition {partition} of topic {topic} (consumer group \
         {group}): {source}"
    )]
    Start {
        stage: &'static str,
        topic: String,
        group: String,
        partition: i32,
        #[source]
        source: Box<CheckpointError>,
    },
    #[error(
        "the {stage} stage stopped at offset {offset} of partition {partition} of topic {topic}: \
         {reason}"
    )]
    Refused {
        stage: &'static str,
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error(
        "topic {topic} has {now} partitions now; the {stage} stage started with {built}; \
         {}",
        crate::topology::DRAIN_HINT
    )]
    TopicResized {
        stage: &'static str,
        topic: String,
        built: u32,
        now: u32,
    },
}

struct DeliveryCtx {
    observer: Arc<dyn StageObserver>,
    failed_since_checkpoint: AtomicU64,
    /// An ACL refusal librdkafka reported only to the error callback (AddPartitionsToTxn
    /// refused: the transaction then fails with a bare "invalid state").
    denied: Mutex<Option<KafkaError>>,
}

impl ClientContext for DeliveryCtx {
    fn error(&self, error: KafkaError, reason: &str) {
        warn!(error = %error, reason, "kafka producer error");
        if rampart_kafka::denied(&error).is_some() {
            lock(&self.denied).get_or_insert(error);
        }
    }
}

impl ProducerContext for DeliveryCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            warn!(error = %e, "delivery failed");
            self.observer.observe(StageEvent::DeliveryFailed);
            self.failed_since_checkpoint.fetch_add(1, Ordering::Relaxed);
        }
    }
}

type StageProducer = ThreadedProducer<DeliveryCtx>;

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
}

struct StageCtx<H: Handler> {
    inner: Arc<Mutex<Inner<H>>>,
    observer: Arc<dyn StageObserver>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<H: Handler> ClientContext for StageCtx<H> {
    fn stats(&self, statistics: rdkafka::Statistics) {
        // Not through `inner`: statistics must not wait for the stage's lock.
        self.observer
            .observe(StageEvent::ConsumerStatistics(&statistics));
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // End-of-partition events are signals (see `Handler::at_end`), not errors.
        let eof = matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF);
        if !eof {
            warn!(error = %error, reason, "kafka client error");
        }
    }
}

impl<H: Handler> ConsumerContext for StageCtx<H> {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let mut inner = lock(&self.inner);
        inner.observer.observe(StageEvent::Rebalance);
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            rdkafka::consumer::RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(stage = inner.settings.name, partitions = ?parts, "partitions assigned");
                let committed = match consumer_error::committed_offsets(consumer, tpl) {
                    Ok(c) => c,
                    Err(e) => {
                        inner.stop_for_recovery("reading committed offsets on assign", e);
                        return;
                    }
                };
                let topic = inner.settings.input_topic.clone();
                for p in parts {
                    let entry = committed.find_partition(&topic, p);
                    let Some(start) = inner.start_partition(p, entry.as_ref()) else {
                        return;
                    };
                    if let Err(e) = tpl.set_partition_offset(&topic, p, start) {
                        inner.stop_for_recovery("setting a start offset", e);
                        return;
                    }
                }
                let count = tpl.count() as u64;
                inner.counters.assigned.fetch_add(count, Ordering::Relaxed);
                inner
                    .observer
                    .observe(StageEvent::PartitionsAssigned { count });
                let res = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = res {
                    inner.stop_for_recovery("assign", e);
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(stage = inner.settings.name, partitions = ?parts, lost = consumer.assignment_lost(), "partitions revoked");
                if !consumer.assignment_lost() {
                    // Hand over cleanly: everything done so far commits now.
                    inner.checkpoint(consumer);
                } else {
                    inner.needs_rewind = true;
                }
                for p in &parts {
                    inner.handler.revoke(*p);
                    inner.starts.remove(p);
                }
                let count = tpl.count() as u64;
                inner.counters.assigned.fetch_sub(count, Ordering::Relaxed);
                inner
                    .observer
                    .observe(StageEvent::PartitionsRevoked { count });
                let res = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = res {
                    inner.stop_for_recovery("unassign", e);
                }
            }
            other => {
                warn!(error = ?other, "rebalance error");
                if let Err(e) = consumer.unassign() {
                    inner.stop_for_recovery("unassign after a rebalance error", e);
                }
            }
        }
    }
}

impl<H: Handler> Inner<H> {
    fn send(&mut self, records: &mut Vec<OutRecord>) {
        for r in records.drain(..) {
            let mut rec: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(&r.topic).payload(&r.payload[..]);
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
                        warn!(error = %e, topic = %r.topic, "produce failed; rewinding");
                        if !self.needs_rewind && self.fatal.is_none() {
                            self.fatal = self.denied_transaction(&e).map(StageError::Denied);
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

    /// Commits outputs and offsets. On failure the partitions must be rewound.
    fn checkpoint<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        if self.needs_rewind || self.fatal.is_some() {
            return;
        }
        let offsets = match self.handler.checkpoint() {
            Ok(offsets) => offsets,
            Err(e) => {
                warn!(stage = self.settings.name, error = %e, "cannot checkpoint; stopping");
                self.fatal = Some(e.into());
                return;
            }
        };
        if offsets.is_empty() && !self.dirty {
            return;
        }
        let mut tpl = TopicPartitionList::with_capacity(offsets.len());
        for checkpoint in &offsets {
            let mut e = tpl.add_partition(&self.settings.input_topic, checkpoint.partition);
            if let Err(err) = e.set_offset(Offset::Offset(checkpoint.next_offset)) {
                self.stop_for_recovery("setting a checkpoint offset", err);
                return;
            }
            e.set_metadata(checkpoint.metadata.as_str());
        }
        let timeout = Duration::from_secs(60);
        let res = match self.settings.guarantee {
            Guarantee::ExactlyOnce => self.commit_transaction(consumer, &tpl, timeout),
            Guarantee::AtLeastOnce => self.commit_flushed(consumer, &tpl, timeout),
        };
        match res {
            Ok(()) => {
                self.dirty = false;
                self.observer.observe(StageEvent::CheckpointCommitted);
                debug!(
                    stage = self.settings.name,
                    partitions = offsets.len(),
                    "checkpoint committed"
                );
            }
            Err(e) => {
                self.observer.observe(StageEvent::CheckpointAborted);
                // Only an error librdkafka says requires an abort is handled in
                // place. Fatal errors (fenced) and retriable ones (a timed-out
                // commit: its outcome is unknown, the broker may have committed
                // it) end the stage; the process exits non-zero and its
                // supervisor restarts it, which resolves the transaction.
                // An ACL refusal (Write on an output topic) would fail every retry.
                let fatal = matches!(&e, KafkaError::Transaction(t) if t.is_fatal() || !t.txn_requires_abort())
                    || rampart_kafka::denied(&e).is_some();
                if fatal {
                    warn!(stage = self.settings.name, error = %e, "fatal checkpoint error (fenced, or commit outcome unknown); exiting for a restart");
                    self.fatal = Some(self.stop_with(e));
                    return;
                }
                if let Some(denied) = self.denied_transaction(&e) {
                    warn!(stage = self.settings.name, error = %denied, "Kafka's ACLs refuse this transaction; stopping");
                    self.fatal = Some(StageError::Denied(denied));
                    return;
                }
                warn!(stage = self.settings.name, error = %e, "checkpoint failed; aborting and rewinding");
                self.needs_rewind = true;
            }
        }
    }

    fn commit_transaction<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        tpl: &TopicPartitionList,
        timeout: Duration,
    ) -> KafkaResult<()> {
        if tpl.count() > 0 {
            let gm = consumer
                .group_metadata()
                .ok_or(KafkaError::Global(RDKafkaErrorCode::State))?;
            self.producer
                .send_offsets_to_transaction(tpl, &gm, timeout)?;
        }
        self.producer.commit_transaction(timeout)?;
        self.producer.begin_transaction()
    }

    fn commit_flushed<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        tpl: &TopicPartitionList,
        timeout: Duration,
    ) -> KafkaResult<()> {
        self.producer.flush(timeout)?;
        let failed = self
            .producer
            .context()
            .failed_since_checkpoint
            .swap(0, Ordering::Relaxed);
        if failed > 0 {
            return Err(KafkaError::MessageProduction(RDKafkaErrorCode::Fail));
        }
        if tpl.count() > 0 {
            consumer.commit(tpl, CommitMode::Sync)?;
        }
        Ok(())
    }

    /// A transaction in an abortable state makes every produce (and offsets sent to it) fail
    /// with a bare `State`; its cause is what `commit_transaction` returns (it cannot commit
    /// such a transaction). That cause if it is an ACL refusal (AddPartitionsToTxn on a topic
    /// this principal may not write), which no retry can fix; anything else is left to the
    /// rewind.
    fn denied_transaction(&self, error: &KafkaError) -> Option<KafkaError> {
        let abortable = error.rdkafka_error_code() == Some(RDKafkaErrorCode::State)
            || matches!(error, KafkaError::Transaction(t) if t.txn_requires_abort());
        if self.settings.guarantee != Guarantee::ExactlyOnce || !abortable {
            return None;
        }
        let cause = self
            .producer
            .commit_transaction(Duration::from_secs(10))
            .err()?;
        rampart_kafka::denied(&cause).map(|_| cause)
    }

    /// The error that stops the stage after `e`: the ACL refusal behind it if the producer
    /// reported one (or `e` is one), else `e` as fatal.
    fn stop_with(&self, e: KafkaError) -> StageError {
        match lock(&self.producer.context().denied).take() {
            Some(denied) => StageError::Denied(denied),
            None if rampart_kafka::denied(&e).is_some() => StageError::Denied(e),
            None => StageError::Fatal(e),
        }
    }

    /// Lets the handler build `partition`'s state from its committed entry and
    /// returns where to fetch from; `None` when the handler refuses (the stage
    /// then stops with the handler's error).
    fn start_partition(
        &mut self,
        partition: i32,
        committed: Option<&TopicPartitionListElem<'_>>,
    ) -> Option<Offset> {
        let committed = committed.and_then(|e| match e.offset() {
            Offset::Offset(offset) => Some((offset, e.metadata())),
            _ => None,
        });
        match self.handler.assign(partition, committed) {
            Ok(start) => {
                if let Some(offset) = start.fetch_from {
                    self.starts.insert(partition, offset);
                }
                Some(start.fetch_from.map_or(Offset::Beginning, Offset::Offset))
            }
            Err(source) => {
                let error = StageError::Start {
                    stage: self.settings.name,
                    topic: self.settings.input_topic.clone(),
                    group: self
                        .settings
                        .consumer
                        .get("group.id")
                        .unwrap_or_default()
                        .to_owned(),
                    partition,
                    source: Box::new(source),
                };
                warn!(stage = self.settings.name, partition, %error, "cannot start partition; stopping");
                self.fatal.get_or_insert(error);
                None
            }
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

    /// After an abort: rebuild every owned partition from its committed state.
    fn rewind<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        if self.fatal.is_some() {
            // The stage stops; its successor starts from the committed state.
            return;
        }
        if self.settings.guarantee == Guarantee::ExactlyOnce {
            let timeout = Duration::from_secs(60);
            if let Err(e) = self
                .producer
                .abort_transaction(timeout)
                .and_then(|()| self.producer.begin_transaction())
            {
                warn!(error = %e, "abort failed");
                self.fatal = Some(self.stop_with(e));
                return;
            }
        }
        self.handler.reset();
        let assignment = match consumer.assignment() {
            Ok(a) => a,
            Err(e) => return self.stop_for_recovery("reading the assignment after an abort", e),
        };
        let committed = match consumer_error::committed_offsets(consumer, &assignment) {
            Ok(c) => c,
            Err(e) => return self.stop_for_recovery("reading committed offsets after an abort", e),
        };
        let topic = self.settings.input_topic.clone();
        for e in committed.elements_for_topic(&topic) {
            let Some(start) = self.start_partition(e.partition(), Some(&e)) else {
                return;
            };
            if let Err(err) = consumer.seek(&topic, e.partition(), start, Duration::from_secs(10)) {
                return self.stop_for_recovery("seek after an abort", err);
            }
        }
        self.needs_rewind = false;
        self.dirty = false;
        info!(
            stage = self.settings.name,
            "rewound to the last committed checkpoint"
        );
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
        }));
        let consumer: BaseConsumer<StageCtx<H>> = settings
            .consumer
            .create_with_context(StageCtx {
                inner: inner.clone(),
                observer: observer.clone(),
            })
            .map_err(StageError::Setup)?;
        consumer
            .subscribe(&[settings.input_topic.as_str()])
            .map_err(StageError::Setup)?;
        observer.observe(StageEvent::Started);
        Ok(Stage {
            consumer,
            inner,
            counters,
        })
    }

    /// Runs until `shutdown` is set; then checkpoints, leaves the group and returns.
    pub(crate) fn run(self, shutdown: &AtomicBool) -> Result<(), StageError> {
        let name = lock(&self.inner).settings.name;
        let interval = lock(&self.inner).settings.checkpoint_interval;
        let mut next_checkpoint = Instant::now() + interval;
        let mut next_tick = Instant::now();
        let mut next_topology_check = Instant::now() + TOPOLOGY_CHECK_INTERVAL;
        let mut out = Vec::new();
        info!(stage = name, "stage started");
        while !shutdown.load(Ordering::Relaxed) {
            let polled = self.consumer.poll(Duration::from_millis(50));
            let mut inner = lock(&self.inner);
            if let Some(e) = inner.fatal.take() {
                return Err(e);
            }
            match polled {
                Some(Ok(msg)) => {
                    inner.counters.messages.fetch_add(1, Ordering::Relaxed);
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
                }
                Some(Err(e)) => match consumer_error::classify(&e) {
                    ConsumerErrorClass::EndOfPartition(p) => {
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
                        warn!(stage = name, error = %e, "consumer error; librdkafka retries");
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
                None => {}
            }
            let now = Instant::now();
            if now >= next_tick {
                inner.handler.tick(now, &mut out);
                inner.send(&mut out);
                next_tick = now + Duration::from_millis(100);
            }
            if now >= next_checkpoint {
                inner.checkpoint(&self.consumer);
                next_checkpoint = now + interval;
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
        // Leaving the group revokes our partitions (the callback checkpoints again, a no-op now).
        self.consumer.unsubscribe();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.counters.assigned.load(Ordering::Relaxed) > 0 {
            let _ = self.consumer.poll(Duration::from_millis(50));
        }
        let inner = lock(&self.inner);
        if inner.settings.guarantee == Guarantee::ExactlyOnce {
            // Nothing is pending after the last checkpoint; end the empty transaction.
            let _ = inner.producer.abort_transaction(Duration::from_secs(10));
        } else {
            let _ = inner.producer.flush(Duration::from_secs(30));
        }
        info!(stage = name, "stage stopped");
        Ok(())
    }
}
