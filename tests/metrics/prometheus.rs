//! End to end: a real Prometheus server (Debian's package) on loopback
//! scrapes a running `rampart run` fed by a loadgen workload on a real Kafka;
//! its HTTP API then shows the expected series with values equal to the
//! ground truth, a (test-only, short-window) spike alert fires, every
//! dashboard query names exported metrics and evaluates, and the live scrape
//! passes `promtool check metrics`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rampart_core::proto::v1::Dimension;

use crate::common::*;
use crate::deploy;

/// Kills the child (by its PID, through `Child`) when dropped.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Instant query; returns the result vector.
fn query(prom: &str, q: &str) -> Result<Vec<serde_json::Value>, String> {
    let (code, body) = http_get(prom, &format!("/api/v1/query?query={}", encode(q)));
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("{code} {e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("query {q} failed: {body}"));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

fn scalar(prom: &str, q: &str) -> Option<f64> {
    let r = query(prom, q).ok()?;
    r.first()?["value"][1].as_str()?.parse().ok()
}

/// Polls `q` until it equals `want` or `limit` passes; returns the last value.
fn wait_value(prom: &str, q: &str, want: f64, limit: Duration) -> Option<f64> {
    let deadline = Instant::now() + limit;
    let mut last = None;
    while Instant::now() < deadline {
        last = scalar(prom, q);
        if last == Some(want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    last
}

/// Starts `rampart run` with stderr piped; returns it and its metrics address.
fn start_rampart(config: &Path) -> (Guard, String) {
    let mut child = Command::new(RAMPART_BIN)
        .args(["run", "--instance", "metrics-e2e", "--config"])
        .arg(config)
        .env("RAMPART_LOG", "info,rdkafka=warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let guard = Guard(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[rampart] {line}");
            if let Some(i) = line.find("metrics listening on http://") {
                let rest = &line[i + "metrics listening on http://".len()..];
                let addr: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("rampart did not log its metrics address");
    (guard, addr)
}

const TEST_RULES: &str = r#"
groups:
  - name: rampart-e2e
    interval: 1s
    rules:
      # Short-window form of RampartSectorAttackSpike: events of the last 30 s
      # against the 30 s before, a series absent then counting from zero (a
      # counter's first sample is invisible to rate(), and the whole workload
      # closes its windows within seconds).
      - record: e2e:sector_events
        expr: sum by (sector) (rampart_attack_sector_events_total)
      - alert: RampartTestSectorSpike
        expr: |
          (e2e:sector_events - (e2e:sector_events offset 30s or e2e:sector_events * 0))
            > 3 * ((e2e:sector_events offset 30s or e2e:sector_events * 0)
                   - (e2e:sector_events offset 1m or e2e:sector_events * 0))
          and (e2e:sector_events - (e2e:sector_events offset 30s or e2e:sector_events * 0)) > 100
"#;

fn start_prometheus(dir: &Path, target: &str) -> (Guard, String) {
    let port = free_port();
    let rules = dir.join("e2e.rules.yml");
    std::fs::write(&rules, TEST_RULES).unwrap();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: rampart\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rules.display()
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus not found: install Debian's `prometheus` package (see scripts/setup)");
    let guard = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect(&addr).is_ok() && http_get(&addr, "/-/ready").0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "prometheus did not become ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    (guard, addr)
}

/// Metric family names in a text exposition.
fn exported_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[test]
fn prometheus_scrapes_rampart_and_sees_the_ground_truth() {
    // A real Prometheus and rampart with time bounds: alone on the machine.
    let _machine = machine_alone();
    let w = workload(broker(), &Spec::default());
    produce_all(&w);
    let truth = w.truth();
    let unique: u64 = truth
        .rollups
        .iter()
        .filter(|r| r.dimension == Dimension::TargetSector as i32)
        .map(|r| r.unique_events)
        .sum();
    assert!(unique > 1000, "workload too small: {unique}");
    // Serve metrics on a free port chosen by rampart.
    let text = std::fs::read_to_string(&w.config_path).unwrap();
    assert!(text.contains("listen = \"\""));
    std::fs::write(
        &w.config_path,
        text.replace("listen = \"\"", "listen = \"127.0.0.1:0\""),
    )
    .unwrap();

    let (mut rampart, metrics_addr) = start_rampart(&w.config_path);
    let prom_dir = tempfile::tempdir().unwrap();
    let (_prom, prom) = start_prometheus(prom_dir.path(), &metrics_addr);

    let want = truth.rollups.len();
    let reads = read_until(
        &w.bootstrap,
        &w.topics.rollups,
        Duration::from_secs(300),
        |all| all.len() >= want,
    );
    assert_eq!(reads.len(), want, "rollups published");

    // Domain series equal the ground truth once the last scrape saw the final state.
    let limit = Duration::from_secs(30);
    let u = unique as f64;
    assert_eq!(
        wait_value(&prom, "sum(rampart_attack_sector_events_total)", u, limit),
        Some(u),
        "attack events by sector vs ground-truth unique events"
    );
    assert_eq!(
        wait_value(&prom, "sum(rampart_attack_origin_events_total)", u, limit),
        Some(u),
        "by origin country"
    );
    assert_eq!(
        wait_value(&prom, "sum(rampart_attack_kind_events_total)", u, limit),
        Some(u),
        "by kind"
    );
    assert_eq!(
        wait_value(
            &prom,
            "sum(rampart_attack_sector_origin_events_total)",
            u,
            limit
        ),
        Some(u),
        "by sector and origin"
    );
    let dlq = truth.rejected.len() as f64;
    assert_eq!(
        wait_value(&prom, "sum(rampart_dlq_messages_total)", dlq, limit),
        Some(dlq),
        "DLQ messages"
    );
    let sectors = query(&prom, "rampart_attack_sector_events_total").unwrap();
    assert!(sectors.len() > 3, "sector series: {sectors:?}");
    let countries = query(&prom, "rampart_attack_origin_events_total").unwrap();
    assert!(
        countries.len() <= rampart_pipeline::telemetry::TOP_COUNTRIES * 2 + 1,
        "{} country series",
        countries.len()
    );
    for s in &countries {
        let c = s["metric"]["origin_country"].as_str().unwrap();
        assert!(c == "other" || c.len() == 2, "country label {c}");
    }
    let windows = scalar(&prom, "sum(rampart_windows_closed_total)").unwrap();
    assert!(windows >= 1.0);
    let lat_count = scalar(&prom, "sum(rampart_window_close_latency_seconds_count)").unwrap();
    assert!(lat_count >= 1.0, "no window close latency observed");
    let buckets = query(&prom, "rampart_window_close_latency_seconds_bucket").unwrap();
    assert!(buckets.len() >= 10, "histogram buckets: {}", buckets.len());
    let lag = query(&prom, "rampart_consumer_lag_messages{stage=\"ingest\"}").unwrap();
    assert_eq!(lag.len(), w.partitions as usize, "lag series per partition");
    for series in &lag {
        assert_eq!(
            series["metric"]["topic"].as_str(),
            Some(w.topics.input.as_str()),
            "lag series labelled with the input topic: {series}"
        );
    }
    assert!(scalar(&prom, "sum(rampart_checkpoint_commits_total)").unwrap() >= 1.0);
    // Every stage commits, and each commit is timed.
    for stage in ["ingest", "merge"] {
        let timed = scalar(
            &prom,
            &format!("sum(rampart_checkpoint_duration_seconds_count{{stage=\"{stage}\"}})"),
        );
        assert!(
            timed.is_some_and(|n| n >= 1.0),
            "{stage}: {timed:?} checkpoints timed"
        );
    }
    let buckets = query(&prom, "rampart_checkpoint_duration_seconds_bucket").unwrap();
    assert!(
        buckets.len() >= 2 * 16,
        "checkpoint duration buckets: {}",
        buckets.len()
    );
    assert!(scalar(&prom, "sum(rampart_dedup_entries)").unwrap() > 0.0);
    assert!(scalar(&prom, "sum(rampart_process_resident_memory_bytes)").unwrap() > 1e6);
    // Enrichment lookups: every database answers; misses exactly when the
    // ground truth (enriched from the world's own tables) has unknown keys.
    let lookups = |database: &str, result: &str| {
        scalar(
            &prom,
            &format!(
                "sum(rampart_enrich_lookups_total{{database=\"{database}\",result=\"{result}\"}})"
            ),
        )
        .unwrap_or(0.0)
    };
    let has_key = |dimension: Dimension, key: &str| {
        truth
            .rollups
            .iter()
            .any(|r| r.dimension == dimension as i32 && r.key == key)
    };
    for database in ["country", "asn", "sector"] {
        assert!(lookups(database, "hit") > 0.0, "{database} lookups hit");
    }
    assert_eq!(
        lookups("country", "miss") > 0.0,
        has_key(Dimension::OriginCountry, "ZZ"),
        "country misses vs ZZ in the ground truth"
    );
    assert_eq!(
        lookups("sector", "miss") > 0.0,
        has_key(Dimension::TargetSector, "unknown"),
        "sector misses vs unknown in the ground truth"
    );

    // The spike alert fires on the workload's arrival (checked through the
    // ALERTS series, so a spike that already resolved still counts).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut firing = false;
    while !firing && Instant::now() < deadline {
        firing = scalar(
            &prom,
            r#"count(max_over_time(ALERTS{alertname="RampartTestSectorSpike", alertstate="firing"}[10m]))"#,
        )
        .is_some_and(|n| n >= 1.0);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(firing, "RampartTestSectorSpike never fired");

    // Caught up: /ready turns 200.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ready = http_get(&metrics_addr, "/ready");
    while ready.0 != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        ready = http_get(&metrics_addr, "/ready");
    }
    assert_eq!(ready.0, 200, "/ready: {}", ready.1);

    // The live scrape passes promtool and carries every metric the dashboard names.
    let (code, scrape) = http_get(&metrics_addr, "/metrics");
    assert_eq!(code, 200);
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let names = exported_names(&scrape);
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/dashboards/rampart.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let e = t["expr"].as_str().unwrap();
            exprs += 1;
            let mut found = 0;
            for (i, _) in e.match_indices("rampart_") {
                let name: String = e[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                found += 1;
                assert!(
                    names.contains(&name),
                    "dashboard query {e:?} names {name}, which rampart does not export"
                );
            }
            assert!(found > 0, "query names no rampart metric: {e}");
            let q = e.replace("$__rate_interval", "1m");
            query(&prom, &q).unwrap_or_else(|err| panic!("dashboard query fails: {err}"));
        }
    }
    assert!(exprs >= 12, "{exprs} dashboard queries");

    let status = terminate(&mut rampart.0);
    assert!(status.success(), "rampart exited with {status}");
}
