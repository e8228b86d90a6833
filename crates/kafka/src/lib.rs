//! rampart-kafka: rampart's Kafka I/O on rdkafka (librdkafka).
//!
//! Owns: client configurations with rampart's defaults ([`config`]), topic specs and idempotent
//! creation ([`topics`]), existing topics judged against their spec ([`topic_check`]), dead-letter records ([`dlq`]), the bare-consumer throughput yardstick
//! ([`bare`]), a connection check that names a refused login or TLS handshake at once
//! ([`connect`]) and the error type with its retryable tag ([`Error`]).
//!
//! Must not know: rampart's event schema, windows or rollups (payloads are bytes here), nor how
//! Kafka is provisioned for tests (that is `rampart-localkafka`).

pub mod bare;
pub mod check;
pub mod config;
pub mod connect;
pub mod dlq;
mod error;
pub mod features;
pub mod overrides;
pub mod topic_check;
pub mod topics;

pub use bare::{ConsumeRate, bare_consume_rate};
pub use check::{ClientKind, ClientProblem, check_client};
pub use config::{admin_config, consumer_config, producer_config, transactional_producer_config};
pub use connect::{
    Denied, Reached, RefusedBy, SecurityErrors, check_connection, denied, refused_by,
};
pub use dlq::{DlqHeaders, DlqRecord};
pub use error::{Error, code_is_retryable, kafka_error_is_retryable};
pub use features::{builtin_features, librdkafka_version, missing_features};
pub use overrides::Overrides;
pub use topic_check::{Severity, TopicProblem, TopicState, check_topics, describe_topics};
pub use topics::{EnsureReport, TopicSpec, ensure_topics, partition_count};
