//! Logging of the binary: `tracing` to stderr (human or JSON), with two
//! additions for the terminal views:
//!
//! - **Broker warm-up notices.** librdkafka logs some conditions it retries by
//!   itself as warnings, e.g. `Failed to acquire idempotence PID from broker
//!   ...: Coordinator load in progress: retrying` while a fresh broker loads its
//!   coordinators. They are not problems, so they are hidden (shown again with
//!   `RAMPART_LOG=debug` or `librdkafka=debug`), counted, and summarised once
//!   by the demo ([`warmup_summary`]). Every other warning still shows.
//! - **Capture while a full-screen view is drawn.** Lines written to stderr
//!   would scribble over the view; while [`capture`] is on, log lines go to a
//!   small buffer that the view shows ([`recent`]) and that is written to
//!   stderr when the view ends ([`release`]).

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::LogFormat;

/// Installs the global subscriber: `RAMPART_LOG` (EnvFilter syntax) or
/// `default_filter`, the warm-up layer, and the capturing stderr writer.
pub(crate) fn init(format: LogFormat, default_filter: &str) {
    let spec = std::env::var("RAMPART_LOG").ok();
    let filter = spec
        .as_deref()
        .and_then(|s| tracing_subscriber::EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default_filter));
    let show_warmup = spec.as_deref().is_some_and(asks_for_debug);
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(|| LogWriter);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(BrokerWarmup { show: show_warmup });
    let _ = match format {
        LogFormat::Human => registry.with(fmt).try_init(),
        LogFormat::Json => registry.with(fmt.json()).try_init(),
    };
}

/// Whether an EnvFilter spec turns on debug for librdkafka (globally or by target).
fn asks_for_debug(spec: &str) -> bool {
    spec.split(',').any(|d| {
        let d = d.trim();
        let level = d.rsplit('=').next().unwrap_or(d);
        let target_ok = !d.contains('=') || d.starts_with("librdkafka");
        target_ok && matches!(level, "debug" | "trace")
    })
}

// ------------------------------------------------------------ warm-up notices

static WARMUP_NOTICES: AtomicU64 = AtomicU64::new(0);
static FIRST_WARMUP_NOTICE: OnceLock<String> = OnceLock::new();

/// Conditions a client retries by itself while a broker starts or moves a
/// coordinator or leader. Only these, and only when the line says it retries.
const TRANSIENT: &[&str] = &[
    "coordinator load in progress",
    "coordinator not available",
    "not coordinator",
    "leader not available",
];

/// Whether a librdkafka log line is a transient condition it retries by itself.
pub(crate) fn is_transient_broker_notice(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("retrying") && TRANSIENT.iter().any(|t| m.contains(t))
}

/// `N transient broker notices while it warmed up (e.g. "...")`, once any were hidden.
pub(crate) fn warmup_summary() -> Option<String> {
    let n = WARMUP_NOTICES.load(Ordering::Relaxed);
    let first = FIRST_WARMUP_NOTICE.get()?;
    Some(format!(
        "Kafka was still warming up: {n} transient notice(s), retried by the client (e.g. {first:?})"
    ))
}

struct BrokerWarmup {
    show: bool,
}

/// The message and, for lines bridged from the `log` crate (librdkafka's, via
/// rust-rdkafka), their real target: such events carry it in a `log.target`
/// field while their metadata's target is `log`.
#[derive(Default)]
struct MessageText {
    message: String,
    log_target: String,
}

impl Visit for MessageText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "log.target" => self.log_target = format!("{value:?}"),
            _ => {}
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "log.target" => self.log_target = value.to_string(),
            _ => {}
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for BrokerWarmup {
    fn event_enabled(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) -> bool {
        let target = event.metadata().target();
        if self.show || !(target == "log" || target.contains("rdkafka")) {
            return true;
        }
        let mut text = MessageText::default();
        event.record(&mut text);
        let from_kafka = target.contains("rdkafka") || text.log_target.contains("rdkafka");
        if !from_kafka || !is_transient_broker_notice(&text.message) {
            return true;
        }
        WARMUP_NOTICES.fetch_add(1, Ordering::Relaxed);
        let _ =
            FIRST_WARMUP_NOTICE.set(text.message.trim_start_matches("librdkafka: ").to_string());
        false
    }
}

// ------------------------------------------------------------ capture

/// Lines kept while capturing (the view shows the last few).
const CAPTURE_LINES: usize = 200;

static CAPTURED: Mutex<Option<VecDeque<String>>> = Mutex::new(None);

fn captured() -> std::sync::MutexGuard<'static, Option<VecDeque<String>>> {
    CAPTURED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// From now on, log lines go to the capture buffer instead of stderr.
pub(crate) fn capture() {
    let mut c = captured();
    if c.is_none() {
        *c = Some(VecDeque::new());
    }
}

/// The last `n` captured lines (oldest first).
pub(crate) fn recent(n: usize) -> Vec<String> {
    captured()
        .as_ref()
        .map(|q| q.iter().skip(q.len().saturating_sub(n)).cloned().collect())
        .unwrap_or_default()
}

/// Stops capturing and writes what was captured to stderr.
pub(crate) fn release() {
    let lines = captured().take();
    if let Some(lines) = lines {
        let mut err = std::io::stderr().lock();
        for l in lines {
            let _ = writeln!(err, "{l}");
        }
    }
}

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut c = captured();
        match c.as_mut() {
            Some(q) => {
                for line in String::from_utf8_lossy(buf).lines() {
                    if q.len() == CAPTURE_LINES {
                        q.pop_front();
                    }
                    q.push_back(strip_ansi(line));
                }
                Ok(buf.len())
            }
            None => {
                drop(c);
                std::io::stderr().write_all(buf)?;
                Ok(buf.len())
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Removes `ESC [ ... letter` sequences (the colours of the human format).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_notices_are_told_from_real_problems() {
        assert!(is_transient_broker_notice(
            "librdkafka: GETPID [thrd:main]: Failed to acquire idempotence PID from broker \
             127.0.0.1:9092/1: Broker: Coordinator load in progress: retrying"
        ));
        assert!(is_transient_broker_notice(
            "FAILED: Broker: Not coordinator: retrying"
        ));
        // Same facility, a real problem: shown.
        assert!(!is_transient_broker_notice(
            "Failed to acquire idempotence PID from broker: Broker: Cluster authorization failed"
        ));
        // A transient code the client does not retry: shown.
        assert!(!is_transient_broker_notice(
            "Broker: Coordinator load in progress"
        ));
        assert!(!is_transient_broker_notice(
            "Connect to ipv4#127.0.0.1:9 failed: Connection refused"
        ));
    }

    /// Counts the events that reach the layers after `BrokerWarmup`.
    struct Seen(std::sync::Arc<AtomicU64>);
    impl<S: Subscriber> tracing_subscriber::Layer<S> for Seen {
        fn on_event(&self, _e: &tracing::Event<'_>, _c: Context<'_, S>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn the_layer_hides_only_transient_kafka_lines() {
        let seen = std::sync::Arc::new(AtomicU64::new(0));
        let subscriber = tracing_subscriber::registry()
            .with(BrokerWarmup { show: false })
            .with(Seen(seen.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "librdkafka", "librdkafka: GETPID [thrd:main]: Broker: Coordinator load in progress: retrying");
            assert_eq!(seen.load(Ordering::Relaxed), 0);
            tracing::warn!(target: "librdkafka", "librdkafka: FAIL [thrd:main]: Connection refused");
            assert_eq!(seen.load(Ordering::Relaxed), 1);
            // Our own warnings that quote such a text are not librdkafka's.
            tracing::warn!("tail: Coordinator load in progress: retrying");
            assert_eq!(seen.load(Ordering::Relaxed), 2);
        });
        assert!(warmup_summary().is_some_and(|s| s.contains("Coordinator load")));
    }

    #[test]
    fn debug_specs() {
        assert!(asks_for_debug("debug"));
        assert!(asks_for_debug("info,librdkafka=debug"));
        assert!(!asks_for_debug("info,rampart_pipeline=debug"));
        assert!(!asks_for_debug("warn"));
    }

    #[test]
    fn ansi_is_stripped() {
        assert_eq!(strip_ansi("\x1b[33mWARN\x1b[0m x"), "WARN x");
    }
}
