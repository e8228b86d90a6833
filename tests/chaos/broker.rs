//! Exactly-once through a broker crash: two `rampart run` processes on a
//! private Apache Kafka that is SIGKILLed and restarted (same ports, same data)
//! in the middle of the run, plus one process SIGKILL. After a broker bounce a
//! transactional producer may hit errors librdkafka calls fatal (fenced, a
//! commit of unknown outcome); rampart then exits non-zero and is restarted by
//! its supervisor — here the driver, as Kubernetes would (see the stage module
//! docs). Same verdict as `processes`.

use std::time::{Duration, Instant};

use rampart_testkit::KafkaBroker;

use crate::Rng;
use crate::common::*;

#[test]
fn broker_kill9_and_restart_mid_run_keeps_exactly_once() {
    let _machine = machine_alone();
    let started = Instant::now();
    let broker = KafkaBroker::start_private().unwrap();
    let w = workload(
        &broker,
        &Spec {
            events: 200_000,
            seed: 77,
            // Longer than the outage: an idle advance during it would be a
            // legitimate (recorded) decision that the ground truth does not model.
            idle_timeout: "45s".into(),
            ..Spec::chaos()
        },
    );
    let truth = w.truth();
    assert!(truth.rollups.len() > 1_000 && !truth.rejected.is_empty());
    let b = w.bootstrap.clone();
    let during = Observer::start(&b, &w.topics.rollups, Isolation::Committed);
    let input = produce_paced(&w, Duration::from_secs(50));
    let mut rng = Rng::new(0xB0B_0077);
    let mut fleet = Fleet::new(&w);
    fleet.start("a");
    fleet.start("b");

    fleet.sleep(rng.ms(8_000, 12_000));
    let victim = rng.pick(&fleet.names()).clone();
    fleet.kill9(&victim);
    fleet.sleep(rng.ms(500, 2_000));
    fleet.start(&victim);

    fleet.sleep(rng.ms(8_000, 12_000));
    let before = during.len();
    eprintln!("[driver] kill -9 broker ({} rollups read so far)", before);
    let t = Instant::now();
    broker.kill().unwrap();
    std::thread::sleep(rng.ms(1_000, 3_000));
    broker.restart().unwrap();
    eprintln!("[driver] broker back after {:?}", t.elapsed());
    // Progress resumes within a bounded time after the fault.
    let resumed = Instant::now();
    while during.len() == before && resumed.elapsed() < Duration::from_secs(90) {
        fleet.sleep(Duration::from_millis(200));
    }
    eprintln!(
        "[driver] first rollup after the broker came back: {:?}",
        resumed.elapsed()
    );

    while !input.is_finished() {
        fleet.sleep(Duration::from_millis(500));
    }
    input.join().unwrap();
    let want = truth.rollups.len();
    let deadline = started + Duration::from_secs(230);
    while during.len() < want && Instant::now() < deadline {
        fleet.sleep(Duration::from_millis(500));
    }
    fleet.sleep(Duration::from_secs(3));
    let statuses = fleet.shutdown();
    let during = during.finish();
    let after = read_all(&b, &w.topics.rollups, Duration::from_secs(3));
    let dlq = read_all(&b, &w.topics.dlq, Duration::from_secs(2));
    let end_offsets = w
        .topics
        .outputs()
        .iter()
        .map(|t| (t.to_string(), end_offsets(&b, t)))
        .collect();
    eprintln!(
        "[driver] done in {:?}; exits after the bounce (restarted): {:?}",
        started.elapsed(),
        fleet.unexpected_exits
    );
    for l in fleet
        .grep("fatal")
        .iter()
        .chain(&fleet.grep("aborting and rewinding"))
    {
        eprintln!("[log] {}", &l[..l.len().min(300)]);
    }
    let outcome = Outcome {
        truth,
        during,
        after,
        dlq,
        end_offsets,
    };
    if std::panic::catch_unwind(|| verify(&w, &outcome, "broker bounce")).is_err() {
        eprintln!("{}", fleet.log_tails(30));
        panic!("exactly-once violated (see above)");
    }
    for (name, status) in statuses {
        assert!(status.success(), "{name} exited with {status} on SIGTERM");
    }
}
