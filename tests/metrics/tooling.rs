//! Checks of `deploy/` with real tooling and of the operator endpoints without
//! a broker: `promtool check rules` / `test rules` / `check config`, the
//! compose and Kubernetes YAML parse and embed a configuration that passes
//! `rampart check-config`, and `rampart run --log-format json` logs JSON lines
//! including the bound metrics address, serving `/health`, `/ready` (503 with
//! a reason) and `/metrics` (passing `promtool check metrics`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{RAMPART_BIN, http_get, machine_shared};
use crate::deploy;

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: install Debian's `prometheus` package (see scripts/setup)");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn shipped_rules_pass_promtool_check_and_unit_tests() {
    let rules = deploy().join("prometheus/rules.yml");
    let (ok, out) = promtool(&["check", "rules", rules.to_str().unwrap()], None);
    assert!(ok, "promtool check rules:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    let tests = deploy().join("prometheus/rules.test.yml");
    let (ok, out) = promtool(&["test", "rules", tests.to_str().unwrap()], None);
    assert!(ok, "promtool test rules:\n{out}");
}

#[test]
fn scrape_config_passes_promtool_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(deploy().join("prometheus/prometheus.yml")).unwrap();
    let rules = deploy().join("prometheus/rules.yml");
    // The container path of the rules file, pointed at the repository's copy.
    let text = text.replace("/etc/prometheus/rules.yml", rules.to_str().unwrap());
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, text).unwrap();
    let (ok, out) = promtool(&["check", "config", cfg.to_str().unwrap()], None);
    assert!(ok, "promtool check config:\n{out}");
}

pub(crate) fn yaml_docs(path: &Path) -> Vec<serde_norway::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut docs = Vec::new();
    for d in serde_norway::Deserializer::from_str(&text) {
        let v = serde::Deserialize::deserialize(d)
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        docs.push(v);
    }
    docs
}

/// Runs `rampart check-config` on `toml` with `env`, the enrichment paths
/// under /var/lib/rampart pointed at a small generated world's files.
fn check_config(toml: &str, env: &[(String, String)]) {
    check_config_moved(toml, env, &[]);
}

/// [`check_config`], each `(from, to)` prefix replaced in the environment's values (secrets
/// mounted at `from` in a container are files under `to` here).
pub(crate) fn check_config_moved(toml: &str, env: &[(String, String)], moved: &[(&str, &Path)]) {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| {
            let v = moved.iter().fold(v.clone(), |v, (from, to)| {
                v.replace(from, to.to_str().unwrap())
            });
            (k.clone(), v)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // check-config opens the MMDB files (and refuses other schemas): small real ones.
    let world = rampart_loadgen::World::new(rampart_loadgen::WorldConfig {
        sources: 200,
        asns: 20,
        prefixes: 40,
        ..rampart_loadgen::WorldConfig::default()
    })
    .unwrap();
    world
        .write_mmdb(
            &data.join("GeoLite2-Country.mmdb"),
            &data.join("GeoLite2-ASN.mmdb"),
        )
        .unwrap();
    world.write_sector_table(&data.join("sectors.csv")).unwrap();
    let text = toml.replace("/var/lib/rampart", data.to_str().unwrap());
    let path = dir.path().join("rampart.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(RAMPART_BIN)
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "embedded config rejected: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration ok"));
}

#[test]
fn compose_file_parses_and_embeds_a_valid_config() {
    let docs = yaml_docs(&deploy().join("compose.yaml"));
    assert_eq!(docs.len(), 1);
    let c = &docs[0];
    for svc in ["kafka", "rampart", "prometheus", "grafana"] {
        assert!(c["services"][svc].is_mapping(), "service {svc} missing");
    }
    let toml = c["configs"]["rampart_toml"]["content"].as_str().unwrap();
    let env: Vec<(String, String)> = c["services"]["rampart"]["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_string(),
                v.as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(env.iter().any(|(k, _)| k == "RAMPART_KAFKA__BROKERS"));
    check_config(toml, &env);
    // The mounted files exist in the repository.
    for v in c["services"]["prometheus"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .chain(c["services"]["grafana"]["volumes"].as_sequence().unwrap())
    {
        let src = v.as_str().unwrap().split(':').next().unwrap();
        assert!(deploy().join(src).exists(), "compose mounts missing {src}");
    }
}

#[test]
fn kubernetes_manifests_parse_and_embed_valid_copies() {
    let k8s = deploy().join("k8s");
    let mut kinds = Vec::new();
    let mut rampart_toml = None;
    let mut rules_copy = None;
    let mut dashboard_copy = None;
    for f in [
        "kafka.yaml",
        "rampart.yaml",
        "prometheus.yaml",
        "grafana.yaml",
    ] {
        for d in yaml_docs(&k8s.join(f)) {
            let kind = d["kind"].as_str().unwrap().to_string();
            assert!(
                d["apiVersion"].is_string(),
                "{f}: {kind} without apiVersion"
            );
            if kind == "ConfigMap" {
                let data = &d["data"];
                if let Some(t) = data["rampart.toml"].as_str() {
                    rampart_toml = Some(t.to_string());
                }
                if let Some(t) = data["rules.yml"].as_str() {
                    rules_copy = Some(t.to_string());
                }
                if let Some(t) = data["rampart.json"].as_str() {
                    dashboard_copy = Some(t.to_string());
                }
            }
            if kind == "StatefulSet" && d["metadata"]["name"] == "rampart" {
                let c = &d["spec"]["template"]["spec"]["containers"][0];
                assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
                assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health");
            }
            kinds.push(kind);
        }
    }
    for k in [
        "Namespace",
        "StatefulSet",
        "Deployment",
        "Service",
        "ConfigMap",
    ] {
        assert!(kinds.iter().any(|x| x == k), "no {k} in k8s/");
    }
    check_config(&rampart_toml.expect("rampart-config ConfigMap"), &[]);
    let rules = std::fs::read_to_string(deploy().join("prometheus/rules.yml")).unwrap();
    assert_eq!(
        rules_copy.expect("rules.yml in k8s"),
        rules,
        "k8s/prometheus.yaml rules differ from prometheus/rules.yml"
    );
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/dashboards/rampart.json")).unwrap(),
    )
    .unwrap();
    let copy: serde_json::Value =
        serde_json::from_str(&dashboard_copy.expect("dashboard in k8s")).unwrap();
    assert_eq!(copy, dash, "k8s/grafana.yaml dashboard differs");
}

#[test]
fn json_logs_and_endpoints_without_a_broker() {
    let _machine = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("rampart.toml");
    // No broker listens on port 1: the stages never start, the endpoints do.
    std::fs::write(
        &cfg,
        "[kafka]\nbrokers = \"127.0.0.1:1\"\n[topics]\ncreate = false\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut child = Command::new(RAMPART_BIN)
        .args(["--log-format", "json", "run", "--config"])
        .arg(&cfg)
        .env("RAMPART_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut addr = None;
    let mut lines = Vec::new();
    while addr.is_none() && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{v}");
        if let Some(a) = v["fields"]["addr"].as_str() {
            assert!(
                v["fields"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("metrics listening on http://")
            );
            addr = Some(a.to_string());
        }
        lines.push(line);
    }
    let addr = addr.unwrap_or_else(|| panic!("no metrics address logged; got {lines:?}"));
    assert!(!addr.ends_with(":0"), "port 0 not resolved: {addr}");
    let (code, body) = http_get(&addr, "/health");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, body) = http_get(&addr, "/ready");
    assert_eq!(code, 503, "{body}");
    assert!(body.starts_with("not ready: "), "{body}");
    let (code, _) = http_get(&addr, "/nope");
    assert_eq!(code, 404);
    let (code, body) = http_get(&addr, "/metrics");
    assert_eq!(code, 200);
    assert!(
        body.contains("rampart_process_resident_memory_bytes"),
        "{body}"
    );
    assert!(body.contains("rampart_ready 0"), "{body}");
    let (ok, out) = promtool(&["check", "metrics"], Some(&body));
    assert!(ok, "promtool check metrics:\n{out}\n{body}");
    let _ = child.kill();
    let _ = child.wait();
}
