//! Checks a client configuration the way librdkafka will take it, without connecting, so a bad
//! setting fails `rampart check-config` instead of `rampart run`.
//!
//! Three passes: every property through librdkafka's own `rd_kafka_conf_set` (unknown names,
//! invalid values); rampart's consistency rules for security settings (a SASL setting with a
//! protocol that does not use SASL, a certificate without its key, a missing file, a mechanism
//! this build lacks); then a real client created with no bootstrap servers, which makes
//! librdkafka load the CA, certificate and key and validate the SASL setup, but opens no socket.

use std::path::Path;

use rdkafka::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::BaseProducer;

use crate::overrides::is_secret;

/// Which kind of librdkafka client a configuration is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    /// A consumer (has a `group.id`).
    Consumer,
    /// A producer or an admin client.
    Producer,
}

/// One problem with a client configuration: the librdkafka property and what is wrong.
/// The message never holds a secret value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientProblem {
    /// The librdkafka property (empty when the problem is the whole configuration).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem librdkafka or rampart's rules find in `config` (empty when it is usable).
pub fn check_client(config: &ClientConfig, kind: ClientKind) -> Vec<ClientProblem> {
    let mut problems = Vec::new();
    let problem = |key: &str, message: String| ClientProblem {
        key: key.to_string(),
        message,
    };
    // 1. librdkafka's own parser, one property at a time so every bad one is reported.
    for (key, value) in config.config_map() {
        let mut one = ClientConfig::new();
        // config_map() shows secrets as a placeholder; take the real value for the check.
        one.set(key, config.get(key).unwrap_or(value));
        if let Err(e) = one.create_native_config() {
            let message = match e {
                rdkafka::error::KafkaError::ClientConfig(_, desc, _, _) => desc,
                other => other.to_string(),
            };
            let shown = if is_secret(key) {
                String::new()
            } else {
                format!(" {value:?}")
            };
            problems.push(problem(
                key,
                format!("librdkafka rejects{shown}: {message}"),
            ));
        }
    }
    let unparsable = !problems.is_empty();
    // 2. Consistency of the security settings.
    let get = |key: &str| config.get(key).map(str::trim).filter(|v| !v.is_empty());
    let protocol = get("security.protocol")
        .unwrap_or("plaintext")
        .to_ascii_lowercase();
    let uses_tls = matches!(protocol.as_str(), "ssl" | "sasl_ssl");
    let uses_sasl = matches!(protocol.as_str(), "sasl_plaintext" | "sasl_ssl");
    let features = crate::features::builtin_features().unwrap_or_default();
    let has = |f: &str| features.iter().any(|h| h == f);
    if uses_tls && !has("ssl") {
        problems.push(problem(
            "security.protocol",
            format!(
                "{protocol} needs TLS, but this rampart's librdkafka was built without OpenSSL"
            ),
        ));
    }
    for (key, _) in config.config_map() {
        let sasl_only = key.starts_with("sasl.");
        let tls_only = key.starts_with("ssl.") || key == "enable.ssl.certificate.verification";
        if (sasl_only && !uses_sasl) || (tls_only && !uses_tls) {
            problems.push(problem(
                key,
                format!("has no effect with security.protocol={protocol}: set security.protocol to {} or remove it",
                    if sasl_only { "SASL_SSL (or SASL_PLAINTEXT)" } else { "SSL or SASL_SSL" }),
            ));
        }
    }
    if uses_sasl {
        let mechanism = get("sasl.mechanisms")
            .or(get("sasl.mechanism"))
            .unwrap_or("GSSAPI")
            .to_ascii_uppercase();
        let needs_password = match mechanism.as_str() {
            "PLAIN" => true,
            "SCRAM-SHA-256" | "SCRAM-SHA-512" => {
                if !has("sasl_scram") {
                    problems.push(problem(
                        "sasl.mechanism",
                        format!("{mechanism} is not built into this rampart's librdkafka"),
                    ));
                }
                true
            }
            "OAUTHBEARER" => false,
            "GSSAPI" => {
                if !has("sasl_gssapi") {
                    problems.push(problem(
                        "sasl.mechanism",
                        "GSSAPI (Kerberos, librdkafka's default mechanism) needs rampart built with `--features gssapi`; set sasl.mechanism to SCRAM-SHA-512, SCRAM-SHA-256, PLAIN or OAUTHBEARER otherwise".into(),
                    ));
                }
                false
            }
            other => {
                problems.push(problem(
                    "sasl.mechanism",
                    format!("unknown mechanism {other:?} (expected SCRAM-SHA-512, SCRAM-SHA-256, PLAIN, OAUTHBEARER or GSSAPI)"),
                ));
                false
            }
        };
        if needs_password {
            for key in ["sasl.username", "sasl.password"] {
                if get(key).is_none() {
                    problems.push(problem(key, format!("must be set for sasl.mechanism={mechanism} (sasl.password may come from sasl.password_file or RAMPART_KAFKA__CLIENT__SASL_PASSWORD)")));
                }
            }
        }
    }
    if get("ssl.certificate.location").is_some() != get("ssl.key.location").is_some() {
        problems.push(problem(
            "ssl.key.location",
            "a client certificate needs its key: set both ssl.certificate.location and ssl.key.location".into(),
        ));
    }
    for key in [
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.crl.location",
        "ssl.keystore.location",
    ] {
        if let Some(path) = get(key).filter(|p| *p != "probe")
            && !Path::new(path).exists()
        {
            problems.push(problem(key, format!("no such file: {path}")));
        }
    }
    if unparsable || !problems.is_empty() {
        return problems;
    }
    // 3. A client with no brokers: librdkafka loads the key material and checks SASL.
    let mut offline = config.clone();
    offline.remove("bootstrap.servers");
    let created = match kind {
        ClientKind::Consumer => offline.create::<BaseConsumer>().map(drop),
        ClientKind::Producer => offline.create::<BaseProducer>().map(drop),
    };
    if let Err(e) = created {
        let message = match e {
            rdkafka::error::KafkaError::ClientCreation(m) => m,
            other => crate::Error::client("create client", other).to_string(),
        };
        problems.push(problem("", message));
    }
    problems
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "127.0.0.1:1");
        for (k, v) in pairs {
            c.set(*k, *v);
        }
        c
    }

    fn keys(problems: &[ClientProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn a_plain_and_a_scram_config_are_fine() {
        assert_eq!(check_client(&config(&[]), ClientKind::Producer), vec![]);
        let scram = config(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "rampart"),
            ("sasl.password", "s3cret"),
            ("group.id", "g"),
        ]);
        assert_eq!(check_client(&scram, ClientKind::Consumer), vec![]);
    }

    #[test]
    fn unknown_and_invalid_properties_are_named_and_secrets_not_shown() {
        let p = check_client(
            &config(&[("no.such.property", "1"), ("compression.type", "brotli")]),
            ClientKind::Producer,
        );
        assert_eq!(keys(&p), ["compression.type", "no.such.property"], "{p:?}");
        assert!(p[0].message.contains("brotli"), "{p:?}");
    }

    #[test]
    fn conflicting_and_incomplete_security_settings_are_reported() {
        let p = check_client(
            &config(&[
                ("sasl.username", "u"),
                ("ssl.ca.location", "/nonexistent/ca.pem"),
            ]),
            ClientKind::Producer,
        );
        // The CA is both useless here and missing: both are said.
        assert_eq!(
            keys(&p),
            ["sasl.username", "ssl.ca.location", "ssl.ca.location"],
            "{p:?}"
        );
        let p = check_client(
            &config(&[
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "SCRAM-SHA-256"),
                ("ssl.certificate.location", "/nonexistent/cert.pem"),
            ]),
            ClientKind::Producer,
        );
        let k = keys(&p);
        for want in [
            "sasl.username",
            "sasl.password",
            "ssl.key.location",
            "ssl.certificate.location",
        ] {
            assert!(k.contains(&want), "{want} missing in {p:?}");
        }
        let p = check_client(
            &config(&[("security.protocol", "SASL_SSL")]),
            ClientKind::Producer,
        );
        assert_eq!(cfg!(feature = "gssapi"), p.is_empty(), "{p:?}");
    }

    #[test]
    fn unreadable_key_material_is_found_without_a_broker() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let p = check_client(
            &config(&[
                ("security.protocol", "SSL"),
                ("ssl.ca.location", ca.to_str().unwrap()),
            ]),
            ClientKind::Producer,
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].message.contains("ssl.ca.location"), "{p:?}");
    }
}
