//! Checks of the fixtures other tests build on: records made by the plain
//! producer arrive as written, whatever the compression.

use std::time::Duration;

use rampart_testkit::unique_name;

use crate::common::*;

#[test]
fn plain_producer_writes_partition_timestamp_key_payload_and_headers_as_given() {
    let bootstrap = broker().bootstrap();
    for compression in Compression::ALL {
        let topic = unique_name("plain");
        // Timestamps of 2020-2023 are past the broker's default 7-day retention: its check
        // (every 5 min) would delete them between produce and read.
        broker()
            .create_topic_with(&topic, 3, &[("retention.ms", "-1")])
            .unwrap();
        // Timestamps out of order and far apart, partitions not in key order.
        let records: Vec<PlainRecord> = [
            (2, 1_700_000_000_000_i64),
            (0, 1_600_000_000_123),
            (2, 1_650_000_000_000),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (partition, timestamp_ms))| PlainRecord {
            partition,
            timestamp_ms,
            key: Some(format!("key-{i}").into_bytes()),
            // Repetitive, so the codecs really compress it.
            payload: Some(format!("payload-{i} ").repeat(200).into_bytes()),
            headers: vec![("origin".into(), format!("plain-{i}").into_bytes())],
        })
        .collect();
        let positions = produce_plain(bootstrap, &topic, compression, &records);
        // Per partition, offsets count from 0 in the order written.
        assert_eq!(positions, vec![(2, 0), (0, 0), (2, 1)], "{compression:?}");
        let reads = read_until(bootstrap, &topic, Duration::from_secs(30), |all| {
            all.len() >= 3
        });
        assert_eq!(reads.len(), 3, "{compression:?}: {reads:?}");
        for (record, position) in records.iter().zip(&positions) {
            let read = reads
                .iter()
                .find(|r| (r.partition, r.offset) == *position)
                .unwrap_or_else(|| panic!("{compression:?}: nothing at {position:?}"));
            assert_eq!(
                read.timestamp_ms,
                Some(record.timestamp_ms),
                "{compression:?}"
            );
            assert_eq!(Some(&read.key), record.key.as_ref(), "{compression:?}");
            assert_eq!(
                Some(&read.payload),
                record.payload.as_ref(),
                "{compression:?}"
            );
            let origin = String::from_utf8(record.headers[0].1.clone()).unwrap();
            assert_eq!(read.headers.get("origin"), Some(&origin), "{compression:?}");
        }
    }
}
