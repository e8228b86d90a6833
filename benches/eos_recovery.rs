//! Recovery time after a SIGKILL, as a function of the dedup horizon and the
//! input rate (a measurement driver, not a test).
//!
//! For each setting and each way of stopping: a seeded workload is produced in
//! real time (event time advances like the wall clock) to a fresh topic; one
//! `rampart run` (the binary cargo built for this bench) processes it; after
//! `kill_at` seconds it is stopped (SIGKILL, or SIGTERM and waited for) and
//! started again at once under the same instance name. Reported: the replay
//! distance read from the committed checkpoint metadata (messages between each
//! partition's replay offset and its committed offset), how long the SIGTERM
//! took, and the time from the start of the new process until the ingest
//! group's committed offsets reach the input's end offsets as of the restart
//! (replay done and backlog caught up).
//!
//! `RAMPART_RECOVERY_SETTINGS=0,2` runs only those settings (indices into
//! the list below; all by default), `RAMPART_RECOVERY_STOPS=kill` or `term`
//! only that way of stopping (both by default); `RAMPART_RECOVERY_LOGS=1`
//! prints the tails of the instances' logs after each run.
//!
//! ```text
//! scripts/kafka start /tmp/k
//! RAMPART_TEST_BOOTSTRAP=$(cat /tmp/k/bootstrap) cargo bench --bench eos_recovery
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use rampart_testkit::KafkaBroker;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

struct Setting {
    name: &'static str,
    rate: u64,
    dedup: &'static str,
}

#[derive(Clone, Copy)]
enum Stop {
    Kill,
    Term,
}

impl Stop {
    fn name(self) -> &'static str {
        match self {
            Stop::Kill => "SIGKILL",
            Stop::Term => "SIGTERM",
        }
    }
}

fn committed(c: &BaseConsumer, topic: &str, parts: u32) -> Vec<(i64, String)> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..parts {
        tpl.add_partition(topic, p as i32);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap_or_default();
    (0..parts)
        .map(|p| {
            got.find_partition(topic, p as i32)
                .map(|e| match e.offset() {
                    Offset::Offset(o) => (o, e.metadata().to_owned()),
                    _ => (-1, String::new()),
                })
                .unwrap_or((-1, String::new()))
        })
        .collect()
}

fn main() {
    let broker = KafkaBroker::start().expect("broker (set RAMPART_TEST_BOOTSTRAP)");
    let produce_for = Duration::from_secs(45);
    let kill_at = Duration::from_secs(35);
    let settings = [
        Setting {
            name: "5k ev/s, horizon 1m (auto fingerprint)",
            rate: 5_000,
            dedup: "[dedup]\nhorizon = \"1m\"\nbucket = \"10s\"\n",
        },
        Setting {
            name: "5k ev/s, horizon 10m (auto fingerprint)",
            rate: 5_000,
            dedup: "[dedup]\nhorizon = \"10m\"\n",
        },
        Setting {
            name: "20k ev/s, horizon 10m (auto fingerprint)",
            rate: 20_000,
            dedup: "[dedup]\nhorizon = \"10m\"\n",
        },
        Setting {
            name: "5k ev/s, horizon 10m, fields without time bucket",
            rate: 5_000,
            dedup: "[dedup]\nhorizon = \"10m\"\nfields = [\"src_ip\", \"dst_ip\", \"dst_port\", \"protocol\"]\n",
        },
    ];
    let chosen: Vec<usize> = std::env::var("RAMPART_RECOVERY_SETTINGS")
        .map(|v| v.split(',').map(|i| i.trim().parse().unwrap()).collect())
        .unwrap_or_else(|_| (0..settings.len()).collect());
    let stops: Vec<Stop> = match std::env::var("RAMPART_RECOVERY_STOPS").as_deref() {
        Ok("kill") => vec![Stop::Kill],
        Ok("term") => vec![Stop::Term],
        _ => vec![Stop::Kill, Stop::Term],
    };
    println!(
        "window 20 s, 6 input partitions, 50 events per message, checkpoint 1 s, stop at {kill_at:?}"
    );
    let runs: Vec<(&Setting, Stop)> = chosen
        .iter()
        .flat_map(|&i| {
            let s = &settings[i];
            stops.iter().map(move |&stop| (s, stop))
        })
        .collect();
    for (s, stop) in runs {
        let spec = Spec {
            events: s.rate * produce_for.as_secs(),
            rate: s.rate,
            extra_config: s.dedup.to_owned(),
            idle_timeout: "30s".into(),
            ..Spec::chaos()
        };
        let w = workload(&broker, &spec);
        let input = produce_paced(&w, produce_for);
        let mut fleet = Fleet::new(&w);
        fleet.env = vec![("RAMPART_WINDOW__SIZE".into(), "20s".into())];
        let started = Instant::now();
        fleet.start("r");
        let probe: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &w.bootstrap)
            .set("group.id", &w.topics.ingest_group)
            .set("isolation.level", "read_committed")
            .create()
            .unwrap();
        fleet.sleep(kill_at.saturating_sub(started.elapsed()));
        let stopping = Instant::now();
        match stop {
            Stop::Kill => fleet.kill9("r"),
            Stop::Term => assert!(fleet.terminate("r").success()),
        }
        let stopped_in = stopping.elapsed();
        let before = committed(&probe, &w.topics.input, w.partitions);
        let replay: i64 = before
            .iter()
            .map(|(o, m)| {
                let r = rampart_core::ingest::ResumePoint::from_metadata(m)
                    .map(|rp| rp.replay_from_offset)
                    .unwrap_or(*o);
                (o - r).max(0)
            })
            .sum();
        let restart = Instant::now();
        fleet.start("r");
        let ends: Vec<i64> = (0..w.partitions)
            .map(|p| {
                probe
                    .fetch_watermarks(&w.topics.input, p as i32, Duration::from_secs(10))
                    .unwrap()
                    .1
            })
            .collect();
        let backlog: i64 = ends
            .iter()
            .zip(&before)
            .map(|(e, (o, _))| e - o.max(&0))
            .sum();
        let log = fleet.live["r"].log.clone();
        let mut assigned = None;
        let mut caught_up = None;
        while restart.elapsed() < Duration::from_secs(120) {
            if assigned.is_none()
                && std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.contains("partitions assigned") && l.contains("ingest"))
            {
                assigned = Some(restart.elapsed());
            }
            let now = committed(&probe, &w.topics.input, w.partitions);
            if now.iter().zip(&ends).all(|((o, _), e)| o >= e) {
                caught_up = Some(restart.elapsed());
                break;
            }
            fleet.sleep(Duration::from_millis(100));
        }
        println!(
            "{:<52} {:<7} (stopped in {:.2} s) replay {:>6} msgs ({:>7} events) + backlog {:>5} msgs -> assigned after {}, caught up after {}",
            s.name,
            stop.name(),
            stopped_in.as_secs_f64(),
            replay,
            replay * 50,
            backlog,
            assigned.map_or_else(|| "?".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
            caught_up.map_or_else(
                || "> 120 s".to_owned(),
                |d| format!("{:.2} s", d.as_secs_f64())
            )
        );
        if std::env::var_os("RAMPART_RECOVERY_LOGS").is_some() {
            println!("{}", fleet.log_tails(40));
        }
        fleet.shutdown();
        input.join().unwrap();
    }
}
