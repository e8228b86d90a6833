//! Checkpoints, aborts and rewinds (see the parent module's "Checkpoints" and
//! "Failures"): committing outputs and offsets in one transaction
//! (exactly-once) or after a checked flush (at-least-once), deciding whether a
//! failed commit is handled in place or stops the stage, and rebuilding every
//! owned partition from its committed state after an abort. Also the
//! producer's context, which counts failed deliveries and keeps an ACL
//! refusal reported only to its error callback.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use super::{Handler, Inner, MAX_REWINDS_WITHOUT_PROGRESS, StageError, lock, overdue};
use crate::config::Guarantee;
use crate::consumer_error;
use crate::observer::{StageEvent, StageObserver};

/// How long offsets may take to join a transaction (a group coordinator
/// failover takes a few seconds); past it the process exits for a restart.
const SEND_OFFSETS_TIMEOUT: Duration = Duration::from_secs(15);

pub(super) struct DeliveryCtx {
    pub(super) observer: Arc<dyn StageObserver>,
    pub(super) failed_since_checkpoint: AtomicU64,
    /// An ACL refusal librdkafka reported only to the error callback (AddPartitionsToTxn
    /// refused: the transaction then fails with a bare "invalid state").
    pub(super) denied: Mutex<Option<KafkaError>>,
}

impl ClientContext for DeliveryCtx {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(suppressed) = crate::log_budget::CLIENT_ERROR.admit() {
            warn!(error = %error, reason, suppressed, "kafka producer error");
        }
        if rampart_kafka::denied(&error).is_some() {
            lock(&self.denied).get_or_insert(error);
        }
    }
}

impl ProducerContext for DeliveryCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            if let Some(suppressed) = crate::log_budget::DELIVERY_FAILED.admit() {
                warn!(error = %e, suppressed, "delivery failed");
            }
            self.observer.observe(StageEvent::DeliveryFailed);
            self.failed_since_checkpoint.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub(super) type StageProducer = ThreadedProducer<DeliveryCtx>;

/// Flushes `producer`: returns once every message handed to it is delivered
/// (or failed) and its report served, or fails after `timeout`.
///
/// Call it before rdkafka's own `flush` and `commit_transaction` (which
/// flushes first): those wait in polls of up to 100 ms that race the
/// `ThreadedProducer`'s polling thread for the delivery reports and nearly
/// always lose: a checkpoint with output in flight blocked its stage thread
/// for the delivery rounded up to 100 ms. Polled here in 1 ms steps, rdkafka's
/// flush then finds nothing to wait for.
pub(super) fn flush_promptly(producer: &StageProducer, timeout: Duration) -> KafkaResult<()> {
    let deadline = Instant::now() + timeout;
    while producer.in_flight_count() > 0 {
        if Instant::now() >= deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
        }
        producer.poll(Duration::from_millis(1));
    }
    Ok(())
}

impl<H: Handler> Inner<H> {
    /// Commits outputs and offsets. On failure the partitions must be rewound.
    pub(super) fn checkpoint<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
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
        let started = Instant::now();
        let res = match self.settings.guarantee {
            Guarantee::ExactlyOnce => self.commit_transaction(consumer, &tpl, timeout),
            Guarantee::AtLeastOnce => self.commit_flushed(consumer, &tpl, timeout),
        };
        match res {
            Ok(()) => {
                self.dirty = false;
                self.rewinds_without_progress = 0;
                let took = started.elapsed();
                self.observer
                    .observe(StageEvent::CheckpointCommitted { took });
                debug!(
                    stage = self.settings.name,
                    partitions = offsets.len(),
                    took_ms = took.as_millis() as u64,
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
                self.last_failure = Some(format!("checkpoint: {e}"));
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
        let stage = self.settings.name;
        if tpl.count() > 0 {
            let gm = consumer
                .group_metadata()
                .ok_or(KafkaError::Global(RDKafkaErrorCode::State))?;
            // Milliseconds when healthy; bounded tighter than the commit: this is
            // the call librdkafka can hang in past its timeout (see `overdue`).
            let timeout = timeout.min(SEND_OFFSETS_TIMEOUT);
            let _overdue = overdue::guard(stage, "send_offsets_to_transaction", timeout);
            self.producer
                .send_offsets_to_transaction(tpl, &gm, timeout)?;
        }
        let _overdue = overdue::guard(stage, "commit_transaction", timeout);
        flush_promptly(&self.producer, timeout)?;
        self.producer.commit_transaction(timeout)?;
        self.producer.begin_transaction()
    }

    fn commit_flushed<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        tpl: &TopicPartitionList,
        timeout: Duration,
    ) -> KafkaResult<()> {
        flush_promptly(&self.producer, timeout)?;
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
    pub(super) fn denied_transaction(&self, error: &KafkaError) -> Option<KafkaError> {
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
        // The refusal reaches the error callback on the producer's own polling
        // thread and can trail the failed commit: give it up to a second.
        let context = self.producer.context();
        for _ in 0..20 {
            if lock(&context.denied).is_some() || rampart_kafka::denied(&e).is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        match lock(&context.denied).take() {
            Some(denied) => StageError::Denied(denied),
            None if rampart_kafka::denied(&e).is_some() => StageError::Denied(e),
            None => StageError::Fatal(e),
        }
    }

    /// After an abort: rebuild every owned partition from its committed state.
    pub(super) fn rewind<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        if self.fatal.is_some() {
            // The stage stops; its successor starts from the committed state.
            return;
        }
        self.counters.rewinds.fetch_add(1, Ordering::Relaxed);
        if self.settings.guarantee == Guarantee::ExactlyOnce {
            let timeout = Duration::from_secs(60);
            let _overdue = overdue::guard(self.settings.name, "abort_transaction", timeout);
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
        self.rewinds_without_progress += 1;
        if self.rewinds_without_progress >= MAX_REWINDS_WITHOUT_PROGRESS {
            let positions: Vec<String> = committed
                .elements_for_topic(&topic)
                .iter()
                .map(|e| format!("{}@{:?}", e.partition(), e.offset()))
                .collect();
            let error = StageError::NoProgress {
                stage: self.settings.name,
                topic,
                rewinds: self.rewinds_without_progress,
                positions: positions.join(", "),
                last_failure: self.last_failure.take().unwrap_or_default(),
            };
            warn!(stage = self.settings.name, %error, "stopping");
            self.fatal = Some(error);
            return;
        }
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
