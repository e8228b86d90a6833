//! Existing topics that differ from the configuration: `check-config` and
//! `rampart run` agree on what refuses (a compacted partials topic, a
//! `min.insync.replicas` above the replica count) and what only warns (a
//! rollups topic from before `compact,delete`); a topic rampart creates gets
//! the configured retention and policy.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rampart_testkit::unique_name;

use crate::common::*;

fn config(dir: &std::path::Path, partials: &str, rollups: &str) -> std::path::PathBuf {
    let path = dir.join("rampart.toml");
    let text = format!(
        "[kafka]\nbrokers = \"{}\"\ningest_group = \"{}\"\nmerge_group = \"{}\"\n\n\
         [topics]\ninput = \"{}\"\npartials = \"{partials}\"\nrollups = \"{rollups}\"\n\
         dlq = \"{}\"\nrollups_retention = \"2d\"\n\n[metrics]\nlisten = \"\"\n",
        broker().bootstrap(),
        unique_name("ingest"),
        unique_name("merge"),
        unique_name("raw"),
        unique_name("dlq"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn rampart(args: &[&str], config: &std::path::Path) -> (Output, String) {
    let out = Command::new(RAMPART_BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RAMPART_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out, text)
}

#[test]
fn differing_topics_are_refused_or_warned_alike_by_check_config_and_run() {
    let _machine = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let (partials, rollups) = (unique_name("partials"), unique_name("rollups"));
    broker()
        .create_topic_with(&partials, 4, &[("cleanup.policy", "compact")])
        .unwrap();
    broker()
        .create_topic_with(&rollups, 4, &[("cleanup.policy", "compact")])
        .unwrap();
    let refused = config(dir.path(), &partials, &rollups);

    let (check, text) = rampart(&["check-config"], &refused);
    assert_eq!(check.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!("topic {partials} has cleanup.policy=compact")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "warning: topic {rollups} has cleanup.policy=compact, rampart needs compact,delete"
        )),
        "{text}"
    );
    let started = Instant::now();
    let (run, text) = rampart(&["run"], &refused);
    assert!(!run.status.success(), "run accepted it:\n{text}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        text.contains(&partials) && text.contains("merge read them"),
        "{text}"
    );

    // A fresh partials topic: run starts, warns about the old rollups topic,
    // and creates the partials topic with rampart's settings.
    let fresh = unique_name("partials");
    let ok = config(dir.path(), &fresh, &rollups);
    let (check, text) = rampart(&["check-config"], &ok);
    assert!(check.status.success(), "{text}");
    let mut run = LoggedRampart::start(&ok, &[], &[("RAMPART_LOG", "info")]);
    let line = run.wait_for_line("existing topic differs", Duration::from_secs(60));
    let line = line.unwrap_or_else(|| panic!("no warning:\n{}", run.log()));
    assert!(
        line.contains(&rollups) && line.contains("compact,delete"),
        "{line}"
    );
    assert!(
        run.wait_for_line("created topics", Duration::from_secs(30))
            .is_some(),
        "{}",
        run.log()
    );
    assert!(terminate(&mut run.child).success());
}

/// The rollups topic rampart creates is `compact,delete` with the configured
/// retention, and check-config then has nothing to say about it.
#[test]
fn created_rollups_topic_is_compact_delete_with_the_configured_retention() {
    let _machine = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let (partials, rollups) = (unique_name("partials"), unique_name("rollups"));
    let cfg = config(dir.path(), &partials, &rollups);
    let mut run = LoggedRampart::start(&cfg, &[], &[("RAMPART_LOG", "info")]);
    assert!(
        run.wait_for_line("created topics", Duration::from_secs(60))
            .is_some(),
        "{}",
        run.log()
    );
    assert!(terminate(&mut run.child).success());
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", broker().bootstrap())
            .create()
            .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let states = rt
        .block_on(rampart_kafka::describe_topics(
            &admin,
            &[&rollups, &partials],
        ))
        .unwrap();
    let rollups_configs = &states[&rollups].configs;
    assert_eq!(rollups_configs["cleanup.policy"], "compact,delete");
    // 2d as configured, in ms: 2 * 24 * 3600 * 1000.
    assert_eq!(rollups_configs["retention.ms"], "172800000");
    assert_eq!(states[&partials].configs["cleanup.policy"], "delete");
    let (check, text) = rampart(&["check-config"], &cfg);
    assert!(check.status.success(), "{text}");
    assert!(!text.contains("warning"), "{text}");
}
