//! librdkafka configurations with rampart's defaults.
//!
//! Every builder takes the bootstrap servers and a passthrough map of user librdkafka settings
//! (from rampart's config file). User settings are applied last and win, except for the few
//! settings rampart's exactly-once guarantee depends on: setting one of those to another value
//! is an [`Error::Config`].

use rdkafka::ClientConfig;

use crate::Error;
pub use crate::overrides::Overrides;

/// Consumer defaults. Offsets are committed by rampart only after the outputs they cover are
/// durable, so auto-commit and auto offset store are off; input is read `read_committed`.
/// Prefetch is capped so a backlog cannot grow the librdkafka queue without bound.
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("partition.assignment.strategy", "cooperative-sticky"),
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("isolation.level", "read_committed"),
    // For readers without a committed offset (tools, tests). rampart's stage
    // consumers override it with `error` (rampart-pipeline's consumer_config).
    ("auto.offset.reset", "earliest"),
    // One consumer queue for all partitions: at most 32 MiB prefetched (librdkafka: 64 MiB).
    ("queued.max.messages.kbytes", "32768"),
    ("queued.min.messages", "200000"),
    // When a partition's queue is over those thresholds librdkafka waits this long before
    // fetching it again (default 1 s): with small messages that capped reads near
    // queued.min.messages per partition per second.
    ("fetch.queue.backoff.ms", "20"),
    // At most 16 MiB per fetch response (librdkafka: 50 MiB).
    ("fetch.max.bytes", "16777216"),
];

/// Settings a consumer override may not change.
const CONSUMER_PROTECTED: &[(&str, &str, &str)] = &[
    (
        "enable.auto.commit",
        "false",
        "offsets are committed only after outputs are durable",
    ),
    (
        "isolation.level",
        "read_committed",
        "aborted input must never be read",
    ),
];

/// Idempotent producer defaults: no duplicates or reordering on retries, lz4 batches.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("compression.type", "lz4"),
    ("linger.ms", "5"),
    // At most 256 MiB queued (librdkafka: 1 GiB); when full, `send` waits.
    ("queue.buffering.max.kbytes", "262144"),
];

const PRODUCER_PROTECTED: &[(&str, &str, &str)] = &[
    (
        "enable.idempotence",
        "true",
        "retries must not duplicate or reorder output",
    ),
    ("acks", "all", "output must be durable before offsets move"),
];

/// Extra transactional producer defaults. `transaction.timeout.ms` must stay well above the
/// commit interval plus restart time, and below the broker's `transaction.max.timeout.ms`
/// (15 min by default).
pub const TRANSACTIONAL_DEFAULTS: &[(&str, &str)] = &[("transaction.timeout.ms", "60000")];

/// A consumer config: `group.id` plus [`CONSUMER_DEFAULTS`], then `overrides`.
pub fn consumer_config(
    bootstrap: &str,
    group_id: &str,
    overrides: &Overrides,
) -> Result<ClientConfig, Error> {
    let mut config = base(bootstrap, CONSUMER_DEFAULTS);
    config.set("group.id", group_id);
    apply(&mut config, overrides, CONSUMER_PROTECTED, &["group.id"])?;
    Ok(config)
}

/// An idempotent producer config: [`PRODUCER_DEFAULTS`], then `overrides`.
pub fn producer_config(bootstrap: &str, overrides: &Overrides) -> Result<ClientConfig, Error> {
    let mut config = base(bootstrap, PRODUCER_DEFAULTS);
    apply(&mut config, overrides, PRODUCER_PROTECTED, &[])?;
    Ok(config)
}

/// A transactional producer config: idempotent defaults, [`TRANSACTIONAL_DEFAULTS`] and
/// `transactional.id`, then `overrides`. One `transactional.id` per input partition set, stable
/// across restarts, so a restarted instance fences its zombie.
pub fn transactional_producer_config(
    bootstrap: &str,
    transactional_id: &str,
    overrides: &Overrides,
) -> Result<ClientConfig, Error> {
    let mut config = base(bootstrap, PRODUCER_DEFAULTS);
    for (key, value) in TRANSACTIONAL_DEFAULTS {
        config.set(*key, *value);
    }
    config.set("transactional.id", transactional_id);
    apply(
        &mut config,
        overrides,
        PRODUCER_PROTECTED,
        &["transactional.id"],
    )?;
    Ok(config)
}

/// An admin client config (topic creation).
pub fn admin_config(bootstrap: &str, overrides: &Overrides) -> Result<ClientConfig, Error> {
    let mut config = base(bootstrap, &[]);
    apply(&mut config, overrides, &[], &[])?;
    Ok(config)
}

fn base(bootstrap: &str, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    config
}

/// Applies user settings; rejects changes to `protected` values and to `fixed` keys, which
/// rampart sets from its own configuration.
fn apply(
    config: &mut ClientConfig,
    overrides: &Overrides,
    protected: &[(&str, &str, &'static str)],
    fixed: &[&str],
) -> Result<(), Error> {
    for (key, value) in overrides {
        let shown = || {
            if crate::overrides::is_secret(key) {
                crate::overrides::REDACTED.to_string()
            } else {
                value.clone()
            }
        };
        if let Some((_, required, reason)) = protected.iter().find(|(k, _, _)| k == key)
            && value != required
        {
            return Err(Error::Config {
                key: key.clone(),
                value: shown(),
                reason,
            });
        }
        if fixed.contains(&key.as_str()) {
            return Err(Error::Config {
                key: key.clone(),
                value: shown(),
                reason: "rampart sets it from its own configuration",
            });
        }
        config.set(key.as_str(), value.as_str());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &str)]) -> Overrides {
        pairs.iter().copied().collect()
    }

    #[test]
    fn consumer_has_defaults_and_user_settings_win() {
        let config = consumer_config(
            "127.0.0.1:1",
            "g",
            &overrides(&[("fetch.max.bytes", "1048576"), ("client.id", "me")]),
        )
        .unwrap();
        assert_eq!(config.get("group.id"), Some("g"));
        assert_eq!(
            config.get("partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
        assert_eq!(config.get("isolation.level"), Some("read_committed"));
        assert_eq!(config.get("queued.max.messages.kbytes"), Some("32768"));
        assert_eq!(config.get("fetch.max.bytes"), Some("1048576"));
        assert_eq!(config.get("client.id"), Some("me"));
    }

    #[test]
    fn protected_settings_are_rejected_unless_unchanged() {
        let err = consumer_config(
            "b",
            "g",
            &overrides(&[("isolation.level", "read_uncommitted")]),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Config { ref key, .. } if key == "isolation.level"));
        assert!(consumer_config("b", "g", &overrides(&[("enable.auto.commit", "false")])).is_ok());
        assert!(producer_config("b", &overrides(&[("acks", "1")])).is_err());
        assert!(consumer_config("b", "g", &overrides(&[("group.id", "other")])).is_err());
        assert!(
            transactional_producer_config("b", "t", &overrides(&[("transactional.id", "x")]))
                .is_err()
        );
    }

    #[test]
    fn transactional_producer_is_idempotent() {
        let config = transactional_producer_config("b", "rampart-0", &Overrides::new()).unwrap();
        assert_eq!(config.get("transactional.id"), Some("rampart-0"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("transaction.timeout.ms"), Some("60000"));
    }
}
