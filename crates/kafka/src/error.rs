//! The crate's error type, tagged retryable or not.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// Errors from rampart's Kafka I/O. [`Error::is_retryable`] says whether trying the same
/// operation again (after a backoff, with the same client) can succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A librdkafka call failed.
    #[error("kafka {op}: {source}")]
    Client {
        /// What rampart was doing (`"create consumer"`, `"commit transaction"`, ...).
        op: &'static str,
        /// The rdkafka error.
        source: KafkaError,
    },
    /// A user setting conflicts with a setting rampart's guarantees depend on.
    #[error("librdkafka setting {key}={value} is not allowed here: {reason}")]
    Config {
        /// The librdkafka property.
        key: String,
        /// The rejected value.
        value: String,
        /// Why rampart needs its own value.
        reason: &'static str,
    },
    /// The broker refused to create a topic.
    #[error("create topic {topic}: {code}")]
    CreateTopic {
        /// Topic name.
        topic: String,
        /// Broker error code.
        code: RDKafkaErrorCode,
    },
    /// Existing topics have settings rampart refuses to run with (see `topic_check`).
    #[error("{}", refused_text(.0))]
    TopicRefused(Vec<crate::topic_check::TopicProblem>),
    /// The cluster refused this client: a failed login or TLS handshake (see `connect`).
    #[error("kafka at {brokers} refused the connection: {cause}")]
    Refused {
        /// Bootstrap servers.
        brokers: String,
        /// What failed and librdkafka's reason, one line.
        cause: String,
    },
    /// A topic that must exist does not.
    #[error("topic {0} does not exist")]
    UnknownTopic(String),
    /// An operation did not finish in time.
    #[error("{op} timed out after {seconds:.1} s")]
    Timeout {
        /// What timed out.
        op: &'static str,
        /// How long we waited.
        seconds: f64,
    },
}

fn refused_text(problems: &[crate::topic_check::TopicProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("; ")
}

impl Error {
    /// Wraps an rdkafka error with what rampart was doing. A configuration error about a
    /// secret setting loses its value (rdkafka's message would print it).
    pub fn client(op: &'static str, source: KafkaError) -> Self {
        let source = match source {
            KafkaError::ClientConfig(res, desc, key, _) if crate::overrides::is_secret(&key) => {
                KafkaError::ClientConfig(res, desc, key, crate::overrides::REDACTED.into())
            }
            other => other,
        };
        Error::Client { op, source }
    }

    /// Whether the same operation may succeed if retried: broker or network trouble,
    /// leadership moves, timeouts. Configuration mistakes, fencing and fatal producer
    /// errors are not retryable (the client must be rebuilt or the operator must act).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Client { source, .. } => kafka_error_is_retryable(source),
            Error::CreateTopic { code, .. } => code_is_retryable(*code),
            Error::Timeout { .. } => true,
            Error::Config { .. }
            | Error::TopicRefused(_)
            | Error::UnknownTopic(_)
            | Error::Refused { .. } => false,
        }
    }
}

/// Classifies an rdkafka error; transactional errors carry librdkafka's own verdict.
pub fn kafka_error_is_retryable(error: &KafkaError) -> bool {
    match error {
        KafkaError::Transaction(e) => e.is_retriable() && !e.is_fatal(),
        KafkaError::ClientConfig(..)
        | KafkaError::ClientCreation(_)
        | KafkaError::AdminOpCreation(_)
        | KafkaError::Nul(_)
        | KafkaError::Subscription(_)
        | KafkaError::MessageConsumptionFatal(_)
        | KafkaError::Canceled => false,
        KafkaError::NoMessageReceived | KafkaError::PartitionEOF(_) => true,
        other => other.rdkafka_error_code().is_some_and(code_is_retryable),
    }
}

/// Error codes that describe a transient condition.
pub fn code_is_retryable(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::OperationTimedOut
            | C::RequestTimedOut
            | C::MessageTimedOut
            | C::TimedOutQueue
            | C::QueueFull
            | C::NetworkException
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::NotCoordinator
            | C::CoordinatorNotAvailable
            | C::CoordinatorLoadInProgress
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::UnknownTopicOrPartition
            | C::UnknownLeaderEpoch
            | C::FencedLeaderEpoch
            | C::RebalanceInProgress
            | C::ConcurrentTransactions
            | C::KafkaStorageError
            | C::PreferredLeaderNotAvailable
            | C::ThrottlingQuotaExceeded
            | C::Retry
            | C::PurgeQueue
            | C::PurgeInflight
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_are_retryable_and_config_errors_are_not() {
        let transient = Error::client(
            "produce",
            KafkaError::MessageProduction(RDKafkaErrorCode::NotLeaderForPartition),
        );
        assert!(transient.is_retryable());
        let fenced = Error::client(
            "produce",
            KafkaError::MessageProduction(RDKafkaErrorCode::ProducerFenced),
        );
        assert!(!fenced.is_retryable());
        let config = Error::client("create consumer", KafkaError::ClientCreation("x".into()));
        assert!(!config.is_retryable());
        assert!(
            Error::Timeout {
                op: "x",
                seconds: 1.0
            }
            .is_retryable()
        );
        assert!(!Error::UnknownTopic("t".into()).is_retryable());
    }

    #[test]
    fn config_errors_about_secrets_do_not_print_them() {
        let e = Error::client(
            "create producer",
            KafkaError::ClientConfig(
                rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
                "bad".into(),
                "ssl.key.password".into(),
                "pa55word-xyz".into(),
            ),
        );
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("pa55word-xyz"), "{shown}");
        assert!(shown.contains("ssl.key.password"), "{shown}");
    }
}
