//! Small helpers shared by the loadgen, verify and demo commands: signals,
//! durations, wall clock, number and time formatting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Parses `500ms`, `30s`, `5m`, `2h` (clap value parser).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let ms = rampart_pipeline::config::parse_duration_ms(s)?;
    u64::try_from(ms)
        .map(Duration::from_millis)
        .map_err(|_| format!("duration {s:?} must not be negative"))
}

/// Parses `key=value` (clap value parser for librdkafka passthrough settings).
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

/// librdkafka settings for every Kafka client a command creates (`-X key=value`, repeatable).
/// They win over the config file's `[kafka.client]` and `RAMPART_KAFKA__CLIENT__*`.
#[derive(clap::Args, Clone, Default)]
pub struct ClientArgs {
    /// librdkafka setting for every Kafka client, e.g. -X security.protocol=SSL
    /// -X ssl.ca.location=ca.pem (repeatable; wins over the config file). KEY_file=PATH reads
    /// KEY from a file, e.g. -X sasl.password_file=/run/secrets/kafka-password.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_kv)]
    pub settings: Vec<(String, String)>,
}

impl std::fmt::Debug for ClientArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let overrides: rampart_kafka::Overrides = self.settings.iter().cloned().collect();
        f.debug_tuple("ClientArgs").field(&overrides).finish()
    }
}

impl ClientArgs {
    /// The configuration from `config` (if any), `RAMPART_*` variables and these settings.
    pub fn load(
        &self,
        config: Option<&std::path::Path>,
    ) -> anyhow::Result<rampart_pipeline::config::Settings> {
        rampart_pipeline::config::load_with_client(config, std::env::vars(), &self.settings)
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The client settings alone, for a command without a config file: `RAMPART_KAFKA__CLIENT__*`
    /// variables and these settings, `KEY_file`s read.
    pub fn overrides(&self) -> anyhow::Result<rampart_kafka::Overrides> {
        let env = std::env::vars().filter(|(k, _)| k.starts_with("RAMPART_KAFKA__CLIENT__"));
        rampart_pipeline::config::load_with_client(None, env, &self.settings)
            .map(|s| s.raw.kafka.client)
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// SIGINT and SIGTERM set `flag`; a second signal exits at once (status 130).
/// Only signals count: a first signal while the process already stops on
/// its own (a stage failed and set `flag`) lets it finish with its error.
pub fn install_signal_handlers(flag: Arc<AtomicBool>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) else {
                    return;
                };
                let mut signalled = false;
                loop {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    flag.store(true, Ordering::SeqCst);
                    if std::mem::replace(&mut signalled, true) {
                        eprintln!("second signal: exiting now, without a final checkpoint");
                        std::process::exit(130);
                    }
                    tracing::info!("signal received: draining and committing");
                }
            });
        })?;
    Ok(())
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate with a k/M suffix: `1.23 M/s`, `45.6 k/s`, `789 /s`.
pub fn rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2} M/s", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1} k/s", per_s / 1e3)
    } else {
        format!("{per_s:.0} /s")
    }
}

/// UTC `YYYY-MM-DDTHH:MM:SSZ` (milliseconds shown when not whole seconds).
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if milli == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{milli:03}Z")
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// How long a command waits for a first answer from Kafka before going on with its own
/// retries; a refused login or TLS handshake ends the wait at once.
const KAFKA_FIRST_ANSWER_WAIT: Duration = Duration::from_secs(5);

/// Fails at once, naming the cause in one line, when the cluster refuses these client settings
/// (wrong password, untrusted or wrong-host certificate, missing client certificate), instead of
/// a timeout later. A cluster that does not answer yet is only a warning: the command's own
/// retries and timeouts take over.
pub fn check_kafka(brokers: &str, client: &rampart_kafka::Overrides) -> anyhow::Result<()> {
    match rampart_kafka::check_connection(brokers, client, KAFKA_FIRST_ANSWER_WAIT)? {
        rampart_kafka::Reached::Answered => {}
        rampart_kafka::Reached::NoAnswerYet => tracing::warn!(
            brokers,
            "no Kafka broker answered within {} s; still trying",
            KAFKA_FIRST_ANSWER_WAIT.as_secs()
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(utc(1_735_689_600_000), "2025-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_500), "2000-02-29T00:00:00.500Z");
        assert_eq!(rate(1_500_000.0), "1.50 M/s");
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert!(parse_kv("a").is_err());
    }
}
