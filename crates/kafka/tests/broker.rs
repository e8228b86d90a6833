//! rampart-kafka against a real broker (`rampart-testkit`: `RAMPART_TEST_BOOTSTRAP` or a private
//! broker started for this test binary).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rampart_kafka::{
    DlqHeaders, DlqRecord, Error, Overrides, TopicSpec, admin_config, bare_consume_rate,
    consumer_config, ensure_topics, producer_config, transactional_producer_config,
};
use rampart_testkit::{KafkaBroker, unique_name};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    admin_config(bootstrap, &Overrides::new())
        .unwrap()
        .create()
        .unwrap()
}

fn overrides(pairs: &[(&str, &str)]) -> Overrides {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Reads `topic` (all partitions, from the beginning) until `expected` messages arrived or the
/// timeout passed; then waits a little longer to catch unexpected extra messages.
fn read_topic(bootstrap: &str, topic: &str, isolation: &str, expected: usize) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer =
        consumer_config(bootstrap, &unique_name("read"), &Overrides::new())
            .unwrap()
            .set("isolation.level", isolation)
            .create()
            .unwrap();
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT).unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        assignment
            .add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut extra_until = None;
    loop {
        let now = Instant::now();
        if now > deadline || extra_until.is_some_and(|t| now > t) {
            return out;
        }
        if out.len() >= expected && extra_until.is_none() {
            extra_until = Some(now + Duration::from_millis(500));
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            out.push(m.unwrap().detach());
        }
    }
}

fn payloads(messages: &[OwnedMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| String::from_utf8(m.payload().unwrap().to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn ensure_topics_is_idempotent_and_configs_read_back() {
    let broker = KafkaBroker::shared();
    let admin = admin(broker.bootstrap());
    let rollups = unique_name("rollups");
    let dlq = unique_name("dlq");
    let specs = [
        TopicSpec::rollups(&rollups, 3, 2_592_000_000).replication(1),
        TopicSpec::dlq(&dlq, 1),
    ];

    let first = ensure_topics(&admin, &specs).await.unwrap();
    assert_eq!(first.created, [rollups.clone(), dlq.clone()]);
    assert!(first.existing.is_empty());
    let second = ensure_topics(&admin, &specs).await.unwrap();
    assert!(second.created.is_empty());
    assert_eq!(second.existing, [rollups.clone(), dlq.clone()]);

    let configs = admin
        .describe_configs(
            [
                &ResourceSpecifier::Topic(&rollups),
                &ResourceSpecifier::Topic(&dlq),
            ],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let value = |i: usize, key: &str| {
        configs[i]
            .as_ref()
            .unwrap()
            .get(key)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(
        value(0, "cleanup.policy").as_deref(),
        Some("compact,delete")
    );
    assert_eq!(value(0, "retention.ms").as_deref(), Some("2592000000"));
    assert_eq!(value(1, "cleanup.policy").as_deref(), Some("delete"));
    assert_eq!(value(1, "retention.ms").as_deref(), Some("1209600000"));
    assert_eq!(rampart_kafka::partition_count(&admin, &rollups).unwrap(), 3);

    let wrong = ensure_topics(&admin, &[TopicSpec::rollups(&rollups, 5, 2_592_000_000)]).await;
    let Err(Error::TopicRefused(problems)) = wrong else {
        panic!("{wrong:?}");
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        (
            problems[0].setting.as_str(),
            problems[0].expected.as_str(),
            problems[0].actual.as_str()
        ),
        ("partitions", "5", "3")
    );
}

#[tokio::test]
async fn produce_consume_roundtrip_through_a_consumer_group() {
    let broker = KafkaBroker::shared();
    let topic = unique_name("roundtrip");
    ensure_topics(&admin(broker.bootstrap()), &[TopicSpec::new(&topic, 2)])
        .await
        .unwrap();
    let producer: FutureProducer = producer_config(broker.bootstrap(), &Overrides::new())
        .unwrap()
        .create()
        .unwrap();
    for i in 0..100 {
        let (key, payload) = (format!("k{}", i % 7), format!("m{i}"));
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&payload),
                TIMEOUT,
            )
            .await
            .unwrap();
    }

    let consumer: BaseConsumer =
        consumer_config(broker.bootstrap(), &unique_name("group"), &Overrides::new())
            .unwrap()
            .create()
            .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut got = BTreeMap::<String, Vec<u32>>::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut count = 0;
    while count < 100 && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            let n: u32 = std::str::from_utf8(m.payload().unwrap()).unwrap()[1..]
                .parse()
                .unwrap();
            got.entry(key).or_default().push(n);
            count += 1;
        }
    }
    assert_eq!(count, 100);
    for (key, values) in &got {
        let k: u32 = key[1..].parse().unwrap();
        let expected: Vec<u32> = (0..100).filter(|i| i % 7 == k).collect();
        assert_eq!(values, &expected, "per-key order for {key}");
    }
    assert_eq!(got.len(), 7);
}

#[tokio::test]
async fn dlq_record_headers_survive_the_broker() {
    let broker = KafkaBroker::shared();
    let (input, dlq) = (unique_name("input"), unique_name("dlq"));
    ensure_topics(
        &admin(broker.bootstrap()),
        &[TopicSpec::new(&input, 1), TopicSpec::dlq(&dlq, 1)],
    )
    .await
    .unwrap();
    let producer: FutureProducer = producer_config(broker.bootstrap(), &Overrides::new())
        .unwrap()
        .create()
        .unwrap();
    let headers = OwnedHeaders::new().insert(Header {
        key: "trace",
        value: Some("t-1"),
    });
    for payload in ["ok", "garbage"] {
        producer
            .send(
                FutureRecord::to(&input)
                    .key("sensor-9")
                    .payload(payload)
                    .headers(headers.clone()),
                TIMEOUT,
            )
            .await
            .unwrap();
    }
    let read = read_topic(broker.bootstrap(), &input, "read_committed", 2);
    let bad = &read[1];
    let record = DlqRecord::new(bad, "decode", "invalid protobuf: wire type 7");
    producer
        .send(record.to_future_record(&dlq), TIMEOUT)
        .await
        .unwrap();

    let dead = read_topic(broker.bootstrap(), &dlq, "read_committed", 1);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key(), Some(&b"sensor-9"[..]));
    assert_eq!(dead[0].payload(), Some(&b"garbage"[..]));
    assert_eq!(
        DlqHeaders::from_message(&dead[0]),
        DlqHeaders {
            reason: Some("decode".into()),
            source_topic: Some(input.clone()),
            source_partition: Some(0),
            source_offset: Some(1),
            error: Some("invalid protobuf: wire type 7".into()),
            ..DlqHeaders::default()
        }
    );
    use rdkafka::message::Headers;
    let kept = dead[0].headers().unwrap().iter().next().unwrap();
    assert_eq!((kept.key, kept.value), ("trace", Some(&b"t-1"[..])));
}

#[test]
fn aborted_transactions_are_invisible_to_read_committed() {
    let broker = KafkaBroker::shared();
    let topic = unique_name("txn");
    KafkaBroker::shared().create_topic(&topic, 2).unwrap();
    let producer: BaseProducer = transactional_producer_config(
        broker.bootstrap(),
        &unique_name("txn-id"),
        &Overrides::new(),
    )
    .unwrap()
    .create()
    .unwrap();
    producer.init_transactions(TIMEOUT).unwrap();
    let send = |payload: &str| {
        producer
            .send(
                rdkafka::producer::BaseRecord::<str, str>::to(&topic)
                    .key(payload)
                    .payload(payload),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    };
    producer.begin_transaction().unwrap();
    for i in 0..5 {
        send(&format!("aborted-{i}"));
    }
    producer.flush(TIMEOUT).unwrap();
    producer.abort_transaction(TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    for i in 0..5 {
        send(&format!("committed-{i}"));
    }
    producer.commit_transaction(TIMEOUT).unwrap();

    let mut committed = payloads(&read_topic(broker.bootstrap(), &topic, "read_committed", 5));
    committed.sort();
    let expected: Vec<String> = (0..5).map(|i| format!("committed-{i}")).collect();
    assert_eq!(committed, expected);
    // The aborted records really are in the log: a read_uncommitted reader sees them.
    let all = payloads(&read_topic(
        broker.bootstrap(),
        &topic,
        "read_uncommitted",
        10,
    ));
    assert_eq!(all.len(), 10);
    assert_eq!(all.iter().filter(|p| p.starts_with("aborted-")).count(), 5);

    // The bare consumer stops at the end even though both partitions end with a commit marker.
    let rate = bare_consume_rate(broker.bootstrap(), &topic, &Overrides::new(), TIMEOUT).unwrap();
    assert_eq!(rate.messages, 5);
    let key_and_payload: u64 = expected.iter().map(|p| 2 * p.len() as u64).sum();
    assert_eq!(rate.bytes, key_and_payload);
    assert!(rate.seconds > 0.0 && rate.messages_per_second() > 0.0);
}

#[test]
fn bare_consume_rate_rejects_a_missing_topic() {
    let broker = KafkaBroker::shared();
    let err = bare_consume_rate(
        broker.bootstrap(),
        &unique_name("missing"),
        &overrides(&[("client.id", "bare-test")]),
        TIMEOUT,
    )
    .unwrap_err();
    assert!(matches!(err, Error::UnknownTopic(_)), "{err}");
    assert!(!err.is_retryable());
}
