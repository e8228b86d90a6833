//! Where loadgen's records go: a file, or an idempotent Kafka producer that
//! counts the broker's delivery reports.

use std::io::BufWriter;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use rampart_loadgen::{Record, RecordWriter};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

/// Where records go.
pub enum Sink {
    Kafka(KafkaSink),
    File(RecordWriter<BufWriter<std::fs::File>>),
}

impl Sink {
    pub(super) fn send(&mut self, r: &Record) -> anyhow::Result<()> {
        match self {
            Sink::Kafka(k) => k.send(r),
            Sink::File(w) => Ok(w.write(r)?),
        }
    }

    /// Flushes; for Kafka, waits for every delivery and returns how many the
    /// broker acknowledged (an error if any failed).
    pub fn finish(self) -> anyhow::Result<Option<u64>> {
        match self {
            Sink::Kafka(k) => k.finish().map(Some),
            Sink::File(w) => {
                w.finish()?;
                Ok(None)
            }
        }
    }
}

/// Counts deliveries; keeps the first failure.
#[derive(Default)]
pub struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self
                    .first_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// An idempotent producer that sends each record to its explicit partition
/// with its own timestamp (idempotence keeps each partition's order through retries).
pub struct KafkaSink {
    producer: ThreadedProducer<Deliveries>,
    topic: String,
}

impl KafkaSink {
    /// A producer for `topic` with throughput-oriented defaults; `overrides` win.
    pub fn new(
        brokers: &str,
        topic: &str,
        overrides: &rampart_kafka::Overrides,
    ) -> anyhow::Result<KafkaSink> {
        let mut all = rampart_kafka::Overrides::new();
        for (k, v) in [
            ("linger.ms", "20"),
            ("batch.size", "1000000"),
            ("batch.num.messages", "100000"),
            ("queue.buffering.max.messages", "1000000"),
            ("queue.buffering.max.kbytes", "1048576"),
            ("message.timeout.ms", "120000"),
        ] {
            all.insert(k, v);
        }
        all.extend(overrides.iter());
        let cfg: ClientConfig = rampart_kafka::producer_config(brokers, &all)?;
        let producer = cfg
            .create_with_context(Deliveries::default())
            .with_context(|| format!("cannot create a Kafka producer for {brokers}"))?;
        Ok(KafkaSink {
            producer,
            topic: topic.to_string(),
        })
    }

    fn send(&mut self, r: &Record) -> anyhow::Result<()> {
        let mut rec = BaseRecord::to(&self.topic)
            .partition(r.partition)
            .key(&r.key[..])
            .payload(&r.payload[..])
            .timestamp(r.timestamp_ms);
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_micros(500));
                }
                Err((e, _)) => return Err(e).context("cannot produce"),
            }
            if let Some(e) = self.first_error() {
                bail!("delivery failed: {e}");
            }
        }
    }

    fn first_error(&self) -> Option<String> {
        self.producer
            .context()
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn finish(self) -> anyhow::Result<u64> {
        self.producer
            .flush(Duration::from_secs(120))
            .context("not every message was delivered within 120 s")?;
        let ctx = self.producer.context();
        let failed = ctx.failed.load(Ordering::Relaxed);
        if failed > 0 {
            bail!(
                "{failed} messages were not delivered (first error: {}); the manifest would not match the topic",
                self.first_error().unwrap_or_default()
            );
        }
        Ok(ctx.ok.load(Ordering::Relaxed))
    }
}
