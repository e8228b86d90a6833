//! The demo's live view: what the rollup reader has seen per window, the
//! counters read from the in-process exposition, and the frame built from both.
//! Lines are short enough for 80 columns where they can be; the live view
//! cuts what does not fit.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prost::Message as _;
use rampart_core::proto::v1::{Dimension, Rollup};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::util;

/// What the rollup reader has seen, per window start.
#[derive(Default)]
pub(crate) struct Windows {
    pub(crate) by_start: BTreeMap<i64, WindowView>,
    pub(crate) rollups: u64,
}

#[derive(Default, Clone)]
pub(crate) struct WindowView {
    end: i64,
    raw: u64,
    unique: u64,
    duplicates: u64,
    late: u64,
    countries: BTreeMap<String, u64>,
    sectors: BTreeMap<String, u64>,
}

pub(crate) fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

/// The counters the view shows, read from the Prometheus exposition.
#[derive(Default, Debug)]
pub(crate) struct MetricValues {
    pub(crate) received: u64,
    pub(crate) duplicates: u64,
    pub(crate) late: u64,
    pub(crate) dlq: u64,
}

impl MetricValues {
    pub(crate) fn read(text: &str) -> MetricValues {
        let sum = |name: &str, labels: &[&str]| -> u64 {
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter(|l| l.split(['{', ' ']).next() == Some(name))
                .filter(|l| labels.iter().all(|x| l.contains(x)))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        };
        MetricValues {
            received: sum("rampart_received_events_total", &["stage=\"ingest\""]),
            duplicates: sum("rampart_discarded_events_total", &["reason=\"duplicate\""]),
            late: sum("rampart_discarded_events_total", &["reason=\"late\""]),
            dlq: sum("rampart_dlq_messages_total", &["stage=\"ingest\""]),
        }
    }
}

fn top(map: &BTreeMap<String, u64>, total: u64, n: usize, strip: &str) -> String {
    let mut v: Vec<(&String, &u64)> = map.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .take(n)
        .map(|(k, c)| {
            format!(
                "{} {:.1}%",
                k.strip_prefix(strip).unwrap_or(k),
                pct(**c, total)
            )
        })
        .collect::<Vec<_>>()
        .join("  ")
}

pub(crate) fn view(
    elapsed: Duration,
    duration: Duration,
    kafka: &str,
    metrics_url: &str,
    (rate_in, produced, messages): (f64, u64, u64),
    (rate_out, m): (f64, &MetricValues),
    w: &Windows,
) -> Vec<String> {
    let mut lines = vec![
        format!(
            "rampart demo  {:>3} s / {} s  (Ctrl-C ends it)",
            elapsed.as_secs(),
            duration.as_secs()
        ),
        format!("  {kafka}"),
        format!("  metrics {metrics_url}"),
        format!(
            "  in   loadgen  {:>9} events/s {:>13} events {:>10} messages",
            util::rate(rate_in).trim_end_matches("/s").trim(),
            util::thousands(produced),
            util::thousands(messages)
        ),
        format!(
            "  out  ingest   {:>9} events/s {:>13} events",
            util::rate(rate_out).trim_end_matches("/s").trim(),
            util::thousands(m.received),
        ),
        format!(
            "       dedup {:.2} % duplicates   late {}   DLQ {} messages",
            pct(m.duplicates, m.received),
            util::thousands(m.late),
            util::thousands(m.dlq)
        ),
    ];
    match w.by_start.iter().next_back() {
        Some((start, v)) => {
            lines.push(format!(
                "  last closed window {}-{} UTC  ({} rollups so far)",
                util::utc(*start).get(11..19).unwrap_or("?"),
                util::utc(v.end).get(11..19).unwrap_or("?"),
                util::thousands(w.rollups)
            ));
            lines.push(format!(
                "    {} events, {} unique, {} duplicates, {} late",
                util::thousands(v.raw + v.late),
                util::thousands(v.unique),
                util::thousands(v.duplicates),
                util::thousands(v.late),
            ));
            lines.push(format!(
                "    top origin countries: {}",
                top(&v.countries, v.raw, 5, "")
            ));
            lines.push(format!(
                "    top target sectors:   {}",
                top(&v.sectors, v.raw, 4, "cisa:")
            ));
        }
        None => lines.push(
            "  no window closed yet (a window is final a few seconds after it ends)".to_string(),
        ),
    }
    lines
}

pub(crate) fn read_rollups(
    brokers: &str,
    client: &rampart_kafka::Overrides,
    topic: &str,
    windows: &Mutex<Windows>,
    stop: &AtomicBool,
) {
    let mut config = ClientConfig::new();
    for (key, value) in client {
        config.set(key.as_str(), value.as_str());
    }
    let consumer: BaseConsumer = match config
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-view"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("demo: cannot read rollups: {e}");
            return;
        }
    };
    // The pipeline creates the topic when it starts.
    let mut assigned = false;
    while !stop.load(Ordering::Relaxed) {
        if !assigned {
            let parts = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(2))
                .ok()
                .and_then(|md| {
                    md.topics()
                        .iter()
                        .find(|t| t.name() == topic && t.error().is_none())
                        .map(|t| t.partitions().len())
                })
                .unwrap_or(0);
            if parts == 0 {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            let mut tpl = TopicPartitionList::new();
            for p in 0..parts {
                let _ = tpl.add_partition_offset(topic, p as i32, Offset::Beginning);
            }
            if consumer.assign(&tpl).is_err() {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            assigned = true;
        }
        let Some(Ok(msg)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let Ok(r) = Rollup::decode(rdkafka::Message::payload(&msg).unwrap_or_default()) else {
            continue;
        };
        let mut w = windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        w.rollups += 1;
        let v = w.by_start.entry(r.window_start_ms).or_default();
        v.end = r.window_end_ms;
        match Dimension::try_from(r.dimension) {
            Ok(Dimension::OriginCountry) => {
                *v.countries.entry(r.key).or_default() += r.raw_events;
            }
            Ok(Dimension::TargetSector) => {
                v.raw += r.raw_events;
                v.unique += r.unique_events;
                v.duplicates += r.duplicates;
                v.late += r.late_events;
                *v.sectors.entry(r.key).or_default() += r.raw_events;
            }
            _ => {}
        }
    }
}
