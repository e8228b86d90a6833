//! Input for rampart: a workload's loadgen records (all at once or paced over
//! time), and records made by a plain Kafka client with an explicit
//! partition, timestamp and `compression.type`.

use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rampart_loadgen::Record;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DefaultProducerContext, DeliveryResult, Producer, ProducerContext,
    ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;

use super::Workload;

fn input_producer(bootstrap: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // Survive a broker bounce: keep retrying for as long as a test runs.
        .set("message.timeout.ms", "600000")
        .create()
        .unwrap()
}

fn send_all(producer: &ThreadedProducer<DefaultProducerContext>, topic: &str, records: &[Record]) {
    for r in records {
        let mut rec = BaseRecord::to(topic)
            .partition(r.partition)
            .key(&r.key)
            .payload(&r.payload)
            .timestamp(r.timestamp_ms);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
}

/// Produces every record of `w` at once and waits until all are acknowledged.
pub fn produce_all(w: &Workload) {
    let producer = input_producer(&w.bootstrap);
    send_all(&producer, &w.topics.input, &w.records);
    producer
        .flush(Timeout::After(Duration::from_secs(120)))
        .unwrap();
}

/// Produces the records in order, spread evenly over `over`, on a thread
/// (input keeps arriving while the test injects faults). Join to wait.
pub fn produce_paced(w: &Workload, over: Duration) -> JoinHandle<()> {
    let bootstrap = w.bootstrap.clone();
    let topic = w.topics.input.clone();
    let records = w.records.clone();
    std::thread::spawn(move || {
        let producer = input_producer(&bootstrap);
        let start = Instant::now();
        let n = records.len().max(1);
        let chunk = 20;
        for (i, part) in records.chunks(chunk).enumerate() {
            let due = start + over.mul_f64((i * chunk) as f64 / n as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            send_all(&producer, &topic, part);
        }
        producer
            .flush(Timeout::After(Duration::from_secs(300)))
            .unwrap();
    })
}

/// `compression.type` of a plain producer: every codec Kafka has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    pub fn config_value(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// One record as any Kafka client could write it (not loadgen's framing).
#[derive(Clone, Debug, Default)]
pub struct PlainRecord {
    pub partition: i32,
    /// CreateTime in milliseconds since the epoch.
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Where a record landed, `(partition, offset)`, or why it did not.
type Delivery = Result<(i32, i64), KafkaError>;

/// Collects each record's delivery report by its index in the batch.
struct Deliveries(Mutex<Vec<(usize, Delivery)>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, index: Box<usize>) {
        let outcome = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.clone()),
        };
        self.0.lock().unwrap().push((*index, outcome));
    }
}

/// Produces `records` to `topic` with a plain, idempotent rdkafka producer
/// using `compression`, in order, and returns where each landed:
/// `(partition, offset)`, in the order of `records`. Panics if one was not
/// delivered within 60 s.
pub fn produce_plain(
    bootstrap: &str,
    topic: &str,
    compression: Compression,
    records: &[PlainRecord],
) -> Vec<(i32, i64)> {
    let producer: BaseProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.type", compression.config_value())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create_with_context(Deliveries(Mutex::new(Vec::new())))
        .unwrap();
    for (index, r) in records.iter().enumerate() {
        let mut headers = OwnedHeaders::new();
        for (key, value) in &r.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut rec = BaseRecord::with_opaque_to(topic, Box::new(index))
            .partition(r.partition)
            .timestamp(r.timestamp_ms)
            .headers(headers);
        if let Some(key) = &r.key {
            rec = rec.key(key.as_slice());
        }
        if let Some(payload) = &r.payload {
            rec = rec.payload(payload.as_slice());
        }
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("produce to {topic}: {e}"),
            }
        }
    }
    producer
        .flush(Timeout::After(Duration::from_secs(60)))
        .unwrap();
    let mut reports = std::mem::take(&mut *producer.context().0.lock().unwrap());
    reports.sort_by_key(|(index, _)| *index);
    assert_eq!(reports.len(), records.len(), "delivery reports missing");
    reports
        .into_iter()
        .map(|(index, outcome)| {
            outcome.unwrap_or_else(|e| panic!("record {index} to {topic} not delivered: {e}"))
        })
        .collect()
}
