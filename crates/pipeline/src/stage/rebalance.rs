//! The consumer's context: statistics and client errors, and the rebalance
//! callback (see the parent module's "Rebalances"): assign starts each
//! partition from its committed offset and metadata; revoke checkpoints first
//! so the next owner resumes exactly here; a lost assignment rewinds.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList, TopicPartitionListElem};
use rdkafka::types::RDKafkaRespErr;
use tracing::{info, warn};

use super::{Handler, Inner, StageError, lock};
use crate::consumer_error;
use crate::observer::{StageEvent, StageObserver};

pub(super) struct StageCtx<H: Handler> {
    pub(super) inner: Arc<Mutex<Inner<H>>>,
    pub(super) observer: Arc<dyn StageObserver>,
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
        if !eof && let Some(suppressed) = crate::log_budget::CLIENT_ERROR.admit() {
            warn!(error = %error, reason, suppressed, "kafka client error");
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
                    inner.replay_until.remove(p);
                }
                let count = tpl.count() as u64;
                inner.counters.assigned.fetch_sub(count, Ordering::Relaxed);
                inner.counters.revoked.fetch_add(count, Ordering::Relaxed);
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
    /// Lets the handler build `partition`'s state from its committed entry and
    /// returns where to fetch from; `None` when the handler refuses (the stage
    /// then stops with the handler's error).
    pub(super) fn start_partition(
        &mut self,
        partition: i32,
        committed: Option<&TopicPartitionListElem<'_>>,
    ) -> Option<Offset> {
        let committed = committed.and_then(|e| match e.offset() {
            Offset::Offset(offset) => Some((offset, e.metadata())),
            _ => None,
        });
        match committed {
            Some((offset, _)) => self.replay_until.insert(partition, offset),
            None => self.replay_until.remove(&partition),
        };
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
}
