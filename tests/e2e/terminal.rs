//! The terminal commands as a user sees them, against the shared real broker:
//! the demo's live view in a real pseudo-terminal (tmux), `rampart top`
//! against a live `rampart run` fed at a rate this test chooses, and
//! `rampart tail --format json` compared with the rollups topic read here.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use prost::Message as _;
use rampart_core::proto::v1::{AttackEventBatch, Dimension, Rollup, TopEntry};

use crate::common::*;

/// Kills the child (by its PID, through `Child`) when dropped.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ------------------------------------------------------------------ demo

/// A tmux server of its own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(session_cmd: &str, width: u16, height: u16) -> Tmux {
        let socket = rampart_testkit::unique_name("tmux");
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "t",
            ])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .arg(session_cmd)
            .status()
            .expect("tmux must be installed (scripts/setup installs it)");
        assert!(status.success());
        Tmux { socket }
    }

    /// The visible pane plus its scrollback, one string per row.
    fn capture(&self) -> Vec<String> {
        let out = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "capture-pane",
                "-p",
                "-S",
                "-",
                "-t",
                "t",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn keys(&self, keys: &str) {
        Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "t", keys])
            .status()
            .unwrap();
    }

    fn resize(&self, width: u16, height: u16) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "resize-window", "-t", "t"])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_for(&self, what: &str, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let rows = self.capture();
            if rows.iter().any(|r| r.contains(what)) {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "no {what:?} within {limit:?}:\n{}",
                rows.join("\n")
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn headers(rows: &[String]) -> usize {
    rows.iter()
        .filter(|r| r.starts_with("rampart demo ") && r.contains(" s / "))
        .count()
}

#[test]
fn demo_view_redraws_in_place_at_80x24_and_130x30() {
    let _machine = machine_shared();
    let bin = RAMPART_BIN;
    let brokers = broker().bootstrap();
    // `; sleep 600` keeps the pane (and what the demo left on it) after the demo exits.
    let cmd =
        format!("NO_COLOR=1 {bin} demo --brokers {brokers} --duration 90s --rate 500; sleep 600");
    let sizes = [(80u16, 24u16), (130, 30)];
    let panes: Vec<Tmux> = sizes.iter().map(|&(w, h)| Tmux::new(&cmd, w, h)).collect();
    for (pane, (width, _)) in panes.iter().zip(sizes) {
        pane.wait_for("in   loadgen", Duration::from_secs(90));
        // Several redraws (one a second) later, still exactly one header.
        std::thread::sleep(Duration::from_secs(6));
        let rows = pane.capture();
        let screen = rows.join("\n");
        assert_eq!(headers(&rows), 1, "at {width} columns:\n{screen}");
        assert!(
            rows.iter().all(|r| r.chars().count() <= width as usize),
            "{screen}"
        );
        // The frame is whole: every line of the view is on the screen once.
        for line in [
            "  in   loadgen",
            "  out  ingest",
            "metrics http://127.0.0.1:",
        ] {
            let n = rows.iter().filter(|r| r.contains(line)).count();
            assert_eq!(n, 1, "{line:?} at {width} columns:\n{screen}");
        }
    }
    // A resize redraws at the new size, still once.
    let pane = &panes[1];
    pane.resize(70, 20);
    std::thread::sleep(Duration::from_secs(3));
    let rows = pane.capture();
    assert_eq!(headers(&rows), 1, "after resize:\n{}", rows.join("\n"));
    assert!(rows.iter().all(|r| r.chars().count() <= 70));
    // Two demos are two pipelines: the other tests of this binary share the machine.
    pane.keys("q");
    // q ends it: the last frame and the summary stay on the terminal.
    let pane = &panes[0];
    pane.keys("q");
    let rows = pane.wait_for("not rampart's speed", Duration::from_secs(60));
    let screen = rows.join("\n");
    assert_eq!(headers(&rows), 1, "after the end:\n{screen}");
    assert!(screen.contains("summary ("), "{screen}");
    // librdkafka's retried warm-up notices are not shown as warnings.
    assert!(!screen.contains("Coordinator load in progress"), "{screen}");
}

// ------------------------------------------------------------------ top

fn events_in(payload: &[u8]) -> u64 {
    AttackEventBatch::decode(payload).unwrap().events.len() as u64
}

/// Lines of a child's stdout, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The `ingest` row's first two numbers of each frame: events in/s, messages in/s.
fn ingest_rates(lines: &[String]) -> Vec<(f64, f64)> {
    lines
        .iter()
        .filter(|l| l.starts_with("ingest "))
        .filter_map(|l| {
            let mut f = l
                .split_whitespace()
                .skip(1)
                .map(|x| x.replace(',', "").parse::<f64>());
            Some((f.next()?.ok()?, f.next()?.ok()?))
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn top_shows_the_rates_the_test_produced() {
    // Rates measured against wall time: alone on the machine.
    let _machine = machine_alone();
    // 80,000 events in messages of 100, produced evenly over 20 s: 4,000 events/s.
    let w = workload(
        broker(),
        &Spec {
            events: 80_000,
            malformed_share: 0.0,
            rate: 4_000,
            ..Spec::default()
        },
    );
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let _run = Guard(
        Command::new(RAMPART_BIN)
            .args(["run", "--config"])
            .arg(&w.config_path)
            .env("RAMPART_METRICS__LISTEN", format!("127.0.0.1:{port}"))
            .env("RAMPART_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let top = |args: &[&str]| {
        Command::new(RAMPART_BIN)
            .args(["top", "--metrics", &url])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Wait until the instance serves its metrics.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "rampart run never served {url}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut top_child = Guard(top(&["--interval", "1s", "--duration", "30s"]));
    let frames = lines_of(&mut top_child.0);
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    produce_paced(&w, Duration::from_secs(20)).join().unwrap();
    let producing = started.elapsed();
    // Counted here from the payloads, not from anything rampart reports.
    let sent_events: u64 = w.records.iter().map(|r| events_in(&r.payload)).sum();
    let produced_rate = sent_events as f64 / producing.as_secs_f64();

    // Frames printed while the test produced (skip the first 3 s of ramp-up).
    let mut lines: Vec<String> = Vec::new();
    let frame_deadline = Instant::now() + Duration::from_secs(40);
    while let Ok(l) = frames.recv_timeout(frame_deadline.saturating_duration_since(Instant::now()))
    {
        lines.push(l);
    }
    let rates = ingest_rates(&lines);
    let during: Vec<(f64, f64)> = rates
        .iter()
        .copied()
        .skip(2 + 3)
        .take((producing.as_secs() as usize).saturating_sub(4))
        .collect();
    assert!(during.len() >= 8, "{}", lines.join("\n"));
    let events_rate = median(during.iter().map(|r| r.0).collect());
    let messages_rate = median(during.iter().map(|r| r.1).collect());
    eprintln!(
        "top: median {events_rate} events/s and {messages_rate} messages/s over {} frames; \
         the test produced {produced_rate:.0} events/s",
        during.len()
    );
    assert!(
        (events_rate - produced_rate).abs() <= 0.2 * produced_rate,
        "top showed {events_rate} events/s, the test produced {produced_rate:.0}/s:\n{}",
        lines.join("\n")
    );
    assert!(
        (messages_rate - produced_rate / 100.0).abs() <= 0.2 * produced_rate / 100.0,
        "top showed {messages_rate} messages/s, the test produced {:.0}/s",
        produced_rate / 100.0
    );

    // Once drained, the total top shows is every event this test produced.
    let want = format!("events   {} received,", thousands(sent_events));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut once = Guard(top(&["--duration", "1500ms", "--plain"]));
        let out: Vec<String> = lines_of(&mut once.0).iter().collect();
        if out.iter().any(|l| l.starts_with(&want)) {
            assert!(out.iter().any(|l| l.starts_with("merge ")), "{out:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "top never showed {want:?}:\n{}",
            out.join("\n")
        );
    }

    // An endpoint nobody serves: one clear line, a failure status.
    let dead = Command::new(RAMPART_BIN)
        .args([
            "top",
            "--metrics",
            &format!("http://127.0.0.1:{}/metrics", free_port()),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&dead.stderr);
    assert!(!dead.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot read http://127.0.0.1:"), "{err}");
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ------------------------------------------------------------------ tail

/// Starts `rampart tail` and collects its stdout lines until `n` arrived (then
/// a quiet second more, so extra lines would show) or `limit`.
fn tail(config: &std::path::Path, args: &[&str], n: usize, limit: Duration) -> Vec<String> {
    let mut child = Guard(
        Command::new(RAMPART_BIN)
            .arg("tail")
            .arg("--config")
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let rx = lines_of(&mut child.0);
    let deadline = Instant::now() + limit;
    let mut lines = Vec::new();
    while lines.len() < n && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
    }
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(1)) {
        lines.push(l);
    }
    lines
}

fn dimension_name(d: i32) -> &'static str {
    match Dimension::try_from(d).unwrap() {
        Dimension::OriginCountry => "origin_country",
        Dimension::OriginAsn => "origin_asn",
        Dimension::OriginPrefix => "origin_prefix",
        Dimension::TargetSector => "target_sector",
        Dimension::CountrySector => "country_sector",
        Dimension::Unspecified => "unspecified",
    }
}

fn entries(v: &serde_json::Value) -> Vec<TopEntry> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| TopEntry {
            value: e["value"].as_u64().unwrap() as u32,
            count: e["count"].as_u64().unwrap(),
        })
        .collect()
}

/// The Rollup a JSON line describes (the sketch, which JSON leaves out, taken from `like`).
fn from_json(j: &serde_json::Value, like: &Rollup) -> Rollup {
    let n = |k: &str| j[k].as_u64().unwrap_or_else(|| panic!("{k} in {j}"));
    let i = |k: &str| j[k].as_i64().unwrap_or_else(|| panic!("{k} in {j}"));
    Rollup {
        dimension: like.dimension,
        key: j["key"].as_str().unwrap().to_string(),
        window_start_ms: i("window_start_ms"),
        window_end_ms: i("window_end_ms"),
        raw_events: n("raw_events"),
        unique_events: n("unique_events"),
        duplicates: n("duplicates"),
        packets: n("packets"),
        bytes: n("bytes"),
        late_events: n("late_events"),
        distinct_sources: n("distinct_sources"),
        sources_sketch: like.sources_sketch.clone(),
        top_dst_ports: entries(&j["top_dst_ports"]),
        top_kinds: entries(&j["top_kinds"]),
        top_rules: entries(&j["top_rules"]),
        first_seen_ms: i("first_seen_ms"),
        last_seen_ms: i("last_seen_ms"),
        dst_ports_overflow: n("dst_ports_overflow"),
        rules_overflow: n("rules_overflow"),
    }
}

#[test]
fn tail_json_equals_the_rollups_topic() {
    let _machine = machine_shared();
    let w = workload(broker(), &Spec::default());
    produce_all(&w);
    let want = w.truth().rollups.len();
    // Started before rampart: it follows the topic and prints rollups as they are published.
    let config = w.config_path.clone();
    let follower = std::thread::spawn(move || {
        tail(
            &config,
            &["--format", "json", "--from-beginning"],
            want,
            Duration::from_secs(240),
        )
    });
    std::thread::sleep(Duration::from_secs(2));
    let mut run = Guard(w.rampart(&["--instance", "tail-test"]));
    // The topic, read here with a consumer of this test.
    let reads = read_until(
        &w.bootstrap,
        &w.topics.rollups,
        Duration::from_secs(180),
        |all| all.len() >= want,
    );
    let topic = decode_rollups(&reads);
    assert_eq!(topic.len(), want);
    let lines = follower.join().unwrap();
    assert!(terminate(&mut run.0).success());

    let mut by_id: BTreeMap<(String, String, i64), &Rollup> = BTreeMap::new();
    for r in &topic {
        let id = (
            dimension_name(r.dimension).to_string(),
            r.key.clone(),
            r.window_start_ms,
        );
        assert!(
            by_id.insert(id, r).is_none(),
            "duplicate rollup in the topic"
        );
    }
    assert_eq!(lines.len(), topic.len(), "one JSON line per rollup");
    let mut seen = std::collections::BTreeSet::new();
    for line in &lines {
        let j: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let id = (
            j["dimension"].as_str().unwrap().to_string(),
            j["key"].as_str().unwrap().to_string(),
            j["window_start_ms"].as_i64().unwrap(),
        );
        let r = by_id
            .get(&id)
            .unwrap_or_else(|| panic!("not in the topic: {line}"));
        assert_eq!(from_json(&j, r), **r, "{line}");
        assert!(seen.insert(id), "printed twice: {line}");
    }

    // Filters: one dimension and one key; only those, all of those.
    let sector = topic
        .iter()
        .find(|r| r.dimension == Dimension::TargetSector as i32)
        .unwrap()
        .key
        .clone();
    let matching = topic
        .iter()
        .filter(|r| r.dimension == Dimension::TargetSector as i32 && r.key == sector)
        .count();
    let filtered = tail(
        &w.config_path,
        &[
            "--format",
            "json",
            "--from-beginning",
            "--dimension",
            "target_sector",
            "--key",
            &sector,
        ],
        matching,
        Duration::from_secs(60),
    );
    assert_eq!(filtered.len(), matching, "{filtered:?}");
    for l in &filtered {
        let j: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(j["dimension"], "target_sector");
        assert_eq!(j["key"], sector.as_str());
    }
    // The table: a header, then one row per rollup.
    let table = tail(
        &w.config_path,
        &[
            "--since",
            "3h",
            "--dimension",
            "target_sector",
            "--key",
            &sector,
        ],
        matching + 1,
        Duration::from_secs(60),
    );
    assert!(table[0].starts_with("window (UTC)"), "{table:?}");
    assert_eq!(table.len(), matching + 1, "{table:?}");
    assert!(table[1..].iter().all(|l| l.contains(&sector)), "{table:?}");
}
