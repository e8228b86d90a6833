//! Input compressed with each codec Kafka producers use (gzip, snappy, lz4, zstd) is aggregated
//! exactly: each input partition is written by a plain rdkafka producer with its own
//! `compression.type`, and the rollups of one `rampart run` equal the reference model's ground
//! truth. A codec rampart's librdkafka could not decompress would leave its partition's events
//! out of the rollups (or stall their windows), so the comparison fails.

use std::time::Duration;

use rampart_core::proto::v1::Dimension;

use crate::common::*;

const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

#[test]
fn input_in_every_compression_codec_is_aggregated_exactly() {
    let _machine = machine_shared();
    let w = workload(
        broker(),
        &Spec {
            events: 12_000,
            partitions: CODECS.len() as u32,
            malformed_share: 0.0,
            seed: 23,
            ..Spec::default()
        },
    );
    for (partition, codec) in CODECS.iter().enumerate() {
        let records: Vec<PlainRecord> = w
            .records
            .iter()
            .filter(|r| r.partition as usize == partition)
            .map(|r| PlainRecord {
                partition: r.partition,
                timestamp_ms: r.timestamp_ms,
                key: Some(r.key.clone()),
                payload: Some(r.payload.clone()),
                headers: Vec::new(),
            })
            .collect();
        assert!(records.len() > 10, "partition {partition}: too few records");
        produce_plain(&w.bootstrap, &w.topics.input, *codec, &records);
    }
    let truth = w.truth();
    assert!(truth.rollups.len() > 50, "{}", truth.rollups.len());

    let mut child = w.rampart(&["--instance", "codecs"]);
    let want = truth.rollups.len();
    let reads = read_until(
        &w.bootstrap,
        &w.topics.rollups,
        Duration::from_secs(180),
        |all| all.len() >= want,
    );
    let status = terminate(&mut child);
    assert!(status.success(), "rampart exited with {status}");

    let got = decode_rollups(&reads);
    let d = diff(&truth.rollups, &got);
    assert!(
        d.is_empty(),
        "{} differences, first ones:\n{}",
        d.len(),
        d.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
    let (raw, _, _, late) = sum_raw(&got, Dimension::TargetSector);
    assert_eq!(raw + late, truth.totals.events);
    // Nothing was dead-lettered: every compressed message was decompressed and decoded.
    let dlq = read_all(&w.bootstrap, &w.topics.dlq, Duration::from_secs(2));
    assert!(dlq.is_empty(), "{} messages dead-lettered", dlq.len());
}
