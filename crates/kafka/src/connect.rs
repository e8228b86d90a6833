//! A fast, clear answer to "can these settings talk to this cluster?" before any real work.
//!
//! librdkafka retries a failed login or TLS handshake forever and reports it only through the
//! client's `error` callback; the calls that wait on the broker then end in a timeout
//! (`BrokerTransportFailure`, `OperationTimedOut`) that names no cause. [`check_connection`]
//! keeps the first authentication or TLS error the callback sees and returns it at once, as
//! one line that names the cause, so a wrong password or an untrusted certificate fails every
//! rampart command within a second instead of after a timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use tracing::warn;

use crate::{Error, Overrides};

/// How long one metadata request may wait before the captured errors are looked at again.
const POLL: Duration = Duration::from_millis(250);

/// Why the cluster refused this client, as librdkafka reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefusedBy {
    /// SASL login failed: wrong user name, password or mechanism.
    Authentication,
    /// The TLS handshake failed: certificate not trusted, for another host, expired, or a
    /// client certificate the broker requires is missing or not trusted.
    Tls,
}

/// A client context that keeps the first login or TLS failure librdkafka reports.
#[derive(Debug, Default)]
pub struct SecurityErrors {
    first: Mutex<Option<(RefusedBy, String)>>,
}

impl SecurityErrors {
    /// The first authentication or TLS failure seen, with librdkafka's reason.
    pub fn first(&self) -> Option<(RefusedBy, String)> {
        self.first.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records `error` if it is a login or TLS failure; returns whether it was.
    pub fn record(&self, error: &KafkaError, reason: &str) -> bool {
        let Some(kind) = refused_by(error, reason) else {
            return false;
        };
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some((kind, reason.to_owned()));
        }
        true
    }
}

impl ClientContext for SecurityErrors {
    fn error(&self, error: KafkaError, reason: &str) {
        if !self.record(&error, reason) {
            warn!(error = %error, reason, "kafka client error");
        }
    }
}

impl ProducerContext for SecurityErrors {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// Whether `error` (with librdkafka's `reason`) is the cluster refusing this client's identity
/// or TLS settings. A certificate the client rejects after the handshake started (wrong host
/// name) or a TLS alert from the broker (client certificate missing) arrive as a transport
/// failure whose reason comes from OpenSSL.
pub fn refused_by(error: &KafkaError, reason: &str) -> Option<RefusedBy> {
    match error.rdkafka_error_code()? {
        RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed => {
            Some(RefusedBy::Authentication)
        }
        RDKafkaErrorCode::SSL => Some(RefusedBy::Tls),
        RDKafkaErrorCode::BrokerTransportFailure if reason.contains("SSL routines") => {
            Some(RefusedBy::Tls)
        }
        _ => None,
    }
}

/// One line for a refused connection: what failed, the likely cause, librdkafka's reason.
pub fn describe_refusal(kind: &RefusedBy, reason: &str) -> String {
    let hint = match kind {
        RefusedBy::Authentication => {
            "authentication failed (check sasl.username, sasl.password and sasl.mechanism)"
        }
        RefusedBy::Tls if reason.contains("certificate verify failed") => {
            "the broker's TLS certificate was rejected (not signed by a CA in ssl.ca.location, \
             issued for another host name, or expired)"
        }
        RefusedBy::Tls => {
            "the TLS handshake failed (a client certificate the broker requires is missing or \
             untrusted, or the listener does not speak TLS)"
        }
    };
    // librdkafka's reason is one line; keep it so even if a future version adds more.
    let reason = reason.lines().next().unwrap_or_default().trim();
    format!("{hint}: {reason}")
}

/// What [`check_connection`] found out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reached {
    /// A broker answered a metadata request.
    Answered,
    /// No broker answered within the wait, and none refused: unreachable or still starting.
    NoAnswerYet,
}

/// Connects to `brokers` with `client` settings and asks for cluster metadata. Returns as soon
/// as a broker answers, or with [`Error::Refused`] as soon as a login or TLS handshake fails.
/// A cluster that neither answers nor refuses within `wait` gives [`Reached::NoAnswerYet`]:
/// the caller's own retries and timeouts then take over, as before this check.
pub fn check_connection(
    brokers: &str,
    client: &Overrides,
    wait: Duration,
) -> Result<Reached, Error> {
    let config = crate::admin_config(brokers, client)?;
    let producer: BaseProducer<SecurityErrors> = config
        .create_with_context(SecurityErrors::default())
        .map_err(|e| Error::client("create client", e))?;
    let deadline = Instant::now() + wait;
    loop {
        let answer = producer.client().fetch_metadata(None, POLL);
        // Serves the error callback (librdkafka queues errors until the client is polled).
        producer.poll(Duration::ZERO);
        if let Some((kind, reason)) = producer.context().first() {
            return Err(Error::Refused {
                brokers: brokers.to_owned(),
                cause: describe_refusal(&kind, &reason),
            });
        }
        if matches!(&answer, Ok(metadata) if !metadata.brokers().is_empty()) {
            return Ok(Reached::Answered);
        }
        if Instant::now() >= deadline {
            return Ok(Reached::NoAnswerYet);
        }
    }
}

/// What Kafka's authorizer (ACLs) refused, found anywhere in an error's chain of sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// Reading, writing or describing a topic.
    Topic,
    /// Using a transactional id (InitProducerId, AddPartitionsToTxn, EndTxn).
    TransactionalId,
    /// Joining or committing a consumer group.
    Group,
    /// A cluster-level operation (creating topics without a topic ACL, idempotent writes).
    Cluster,
}

/// The first authorization failure in `error` or its sources.
pub fn denied(error: &(dyn std::error::Error + 'static)) -> Option<Denied> {
    let mut next = Some(error);
    while let Some(e) = next {
        let code = e
            .downcast_ref::<KafkaError>()
            .and_then(KafkaError::rdkafka_error_code)
            .or_else(|| match e.downcast_ref::<Error>() {
                Some(Error::CreateTopic { code, .. }) => Some(*code),
                _ => None,
            });
        match code {
            Some(RDKafkaErrorCode::TopicAuthorizationFailed) => return Some(Denied::Topic),
            Some(RDKafkaErrorCode::TransactionalIdAuthorizationFailed) => {
                return Some(Denied::TransactionalId);
            }
            Some(RDKafkaErrorCode::GroupAuthorizationFailed) => return Some(Denied::Group),
            Some(RDKafkaErrorCode::ClusterAuthorizationFailed) => return Some(Denied::Cluster),
            _ => next = e.source(),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_apart_from_network_trouble() {
        let auth = KafkaError::Global(RDKafkaErrorCode::Authentication);
        assert_eq!(refused_by(&auth, "x"), Some(RefusedBy::Authentication));
        let transport = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        let refused = "ssl://h:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused";
        assert_eq!(refused_by(&transport, refused), None);
        let alert = "Receive failed: error:0A000412:SSL routines::sslv3 alert bad certificate";
        assert_eq!(refused_by(&transport, alert), Some(RefusedBy::Tls));
        let line = describe_refusal(&RefusedBy::Tls, "x: certificate verify failed\nmore");
        assert!(
            line.starts_with("the broker's TLS certificate was rejected"),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn denials_are_found_through_wrapping_errors() {
        let produce = KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed);
        let wrapped = Error::client("produce", produce);
        assert_eq!(denied(&wrapped), Some(Denied::Topic));
        let create = Error::CreateTopic {
            topic: "t".into(),
            code: RDKafkaErrorCode::ClusterAuthorizationFailed,
        };
        assert_eq!(denied(&create), Some(Denied::Cluster));
        let timeout = Error::client("x", KafkaError::Global(RDKafkaErrorCode::OperationTimedOut));
        assert_eq!(denied(&timeout), None);
    }
}
