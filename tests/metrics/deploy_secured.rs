//! The secured-Kafka examples in `deploy/`: the compose override (SASL_SSL with SCRAM) and the
//! Kubernetes patch (mTLS) mount the CA, the client certificate and the secret the settings
//! name, and those settings pass `rampart check-config` (librdkafka's parser and an offline
//! client that loads the CA, certificate and encrypted key) with real PEM files made here.

use std::path::Path;
use std::process::Command;

use crate::deploy;
use crate::tooling::{check_config_moved, yaml_docs};

const KEY_PASSWORD: &str = "deploy-example-key-password";

/// `ca.pem`, `client.pem` and `client.key` (encrypted with [`KEY_PASSWORD`]) in `dir`.
fn make_pems(dir: &Path) {
    let script = format!(
        "set -e; cd '{}'
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
           -keyout ca.key -out ca.pem -days 2 -subj /CN=deploy-test-ca
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
           -keyout plain.key -out client.csr -subj /CN=rampart
         openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
           -out client.pem
         openssl pkcs8 -topk8 -v2 aes-256-cbc -in plain.key -out client.key -passout pass:{KEY_PASSWORD}",
        dir.display()
    );
    let out = Command::new("bash").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn env_pairs(env: &serde_norway::Value) -> Vec<(String, String)> {
    match env {
        // compose: a mapping NAME: value
        serde_norway::Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| (k.as_str().unwrap().into(), v.as_str().unwrap().into()))
            .collect(),
        // Kubernetes: a list of {name, value}
        serde_norway::Value::Sequence(s) => s
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().into(),
                    e["value"].as_str().unwrap().into(),
                )
            })
            .collect(),
        other => panic!("unexpected environment {other:?}"),
    }
}

/// The client settings that name files: each must lie in `mounted`.
fn assert_files_mounted(env: &[(String, String)], mounted: &[String]) -> usize {
    let files: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| k.ends_with("_FILE") || k.ends_with("_LOCATION"))
        .collect();
    for (k, v) in &files {
        assert!(
            mounted.contains(v),
            "{k}={v} is not a mounted secret: {mounted:?}"
        );
    }
    files.len()
}

#[test]
fn compose_override_mounts_the_ca_and_password_it_names() {
    let base = &yaml_docs(&deploy().join("compose.yaml"))[0];
    let secured = &yaml_docs(&deploy().join("compose.secured.yaml"))[0];
    let service = &secured["services"]["rampart"];
    // Compose mounts a service's secret at /run/secrets/<target>.
    let mounted: Vec<String> = service["secrets"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| {
            let source = s["source"].as_str().unwrap();
            assert!(
                secured["secrets"][source]["file"].is_string(),
                "secret {source} is not declared"
            );
            format!("/run/secrets/{}", s["target"].as_str().unwrap())
        })
        .collect();
    let mut env = env_pairs(&base["services"]["rampart"]["environment"]);
    let overlay = env_pairs(&service["environment"]);
    assert_eq!(assert_files_mounted(&overlay, &mounted), 2);
    // The override wins over the base, as `docker compose -f a -f b` merges.
    env.retain(|(k, _)| !overlay.iter().any(|(o, _)| o == k));
    env.extend(overlay);

    let secrets = tempfile::tempdir().unwrap();
    make_pems(secrets.path());
    std::fs::rename(
        secrets.path().join("ca.pem"),
        secrets.path().join("kafka-ca.pem"),
    )
    .unwrap();
    std::fs::write(secrets.path().join("kafka-password"), "scram-password\n").unwrap();
    let toml = base["configs"]["rampart_toml"]["content"].as_str().unwrap();
    check_config_moved(toml, &env, &[("/run/secrets", secrets.path())]);
}

#[test]
fn kubernetes_mtls_patch_mounts_the_certificate_key_and_password_it_names() {
    let patch = &yaml_docs(&deploy().join("k8s/rampart-mtls.patch.yaml"))[0];
    let pod = &patch["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["name"], "rampart",
        "the patch must merge into the rampart container"
    );
    let mut mounted = Vec::new();
    let mut mount_dir = None;
    for m in container["volumeMounts"].as_sequence().unwrap() {
        let volume = pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap_or_else(|| panic!("no volume {:?}", m["name"]));
        assert!(
            volume["secret"]["secretName"].is_string(),
            "{volume:?} is not a Secret"
        );
        assert_eq!(m["readOnly"].as_bool(), Some(true));
        let dir = m["mountPath"].as_str().unwrap().to_owned();
        // The keys of the Secret that `kubectl create secret` in the header makes.
        for key in ["ca.crt", "tls.crt", "tls.key", "key-password"] {
            mounted.push(format!("{dir}/{key}"));
        }
        mount_dir = Some(dir);
    }
    let env = env_pairs(&container["env"]);
    assert_eq!(assert_files_mounted(&env, &mounted), 4);

    let secrets = tempfile::tempdir().unwrap();
    let s = secrets.path();
    make_pems(s);
    std::fs::rename(s.join("ca.pem"), s.join("ca.crt")).unwrap();
    std::fs::rename(s.join("client.pem"), s.join("tls.crt")).unwrap();
    std::fs::rename(s.join("client.key"), s.join("tls.key")).unwrap();
    std::fs::write(s.join("key-password"), format!("{KEY_PASSWORD}\n")).unwrap();
    let mut toml = None;
    for d in yaml_docs(&deploy().join("k8s/rampart.yaml")) {
        if let Some(t) = d["data"]["rampart.toml"].as_str() {
            toml = Some(t.to_owned());
        }
    }
    let mount_dir = mount_dir.unwrap();
    check_config_moved(&toml.unwrap(), &env, &[(mount_dir.as_str(), s)]);
}
