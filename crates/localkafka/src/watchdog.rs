//! Running `scripts/kafka start DIR --watch --rm` (compiled in) and waiting for the broker.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

use crate::{LocalKafkaError, Options};

/// `scripts/kafka`, compiled in: the binary (`rampart demo`, `rampart throughput`) must not
/// depend on the checkout it was built from. It runs as `bash -c SCRIPT scripts/kafka ARGS...`.
const KAFKA_SCRIPT: &str = include_str!("../../../scripts/kafka");

/// The watchdog process of a running broker.
pub(crate) struct Watchdog {
    pub(crate) child: Child,
    /// Write end of the watchdog's stdin: dropping it makes the watchdog kill java.
    pub(crate) stdin: Option<ChildStdin>,
    /// PID of the java process.
    pub(crate) java_pid: u32,
}

/// `bash -c SCRIPT scripts/kafka ARGS...` with the listener options in its environment.
pub(crate) fn script(options: &Options) -> Command {
    let scram: Vec<String> = options
        .scram_users
        .iter()
        .map(|(user, password)| format!("{user}:{password}"))
        .collect();
    let mut command = Command::new("bash");
    command
        .env("KAFKA_SCRAM_USERS", scram.join(" "))
        .env("KAFKA_TLS", if options.tls { "1" } else { "" })
        .env(
            "KAFKA_TLS_CLIENT_KEY_PASSWORD",
            options.client_key_password.as_deref().unwrap_or(""),
        )
        .env(
            "KAFKA_SUPER_USERS",
            options.super_users.as_deref().unwrap_or_default().join(";"),
        )
        .arg("-c")
        .arg(KAFKA_SCRIPT)
        .arg("scripts/kafka");
    command
}

/// Runs `scripts/kafka start DIR --watch --rm` and reads `bootstrap=` / `pid=` from its stdout.
pub(crate) fn spawn(dir: &Path, options: &Options) -> Result<(Watchdog, String), LocalKafkaError> {
    let mut child = script(options)
        .arg("start")
        .arg(dir)
        .arg("--watch")
        .arg("--rm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LocalKafkaError::Spawn {
            script: PathBuf::from("scripts/kafka"),
            source,
        })?;
    // Drain stderr on a thread so a chatty first `mvn` run cannot block the script.
    let stderr_text = Arc::new(Mutex::new(String::new()));
    let stderr_thread = child.stderr.take().map(|mut stderr| {
        let sink = Arc::clone(&stderr_text);
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&text);
        })
    });
    let mut bootstrap = None;
    let mut java_pid = None;
    let mut stdout_text = String::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(b) = line.strip_prefix("bootstrap=") {
                bootstrap = Some(b.to_owned());
            } else if let Some(p) = line.strip_prefix("pid=") {
                java_pid = p.trim().parse::<u32>().ok();
                break;
            }
            stdout_text.push_str(&line);
            stdout_text.push('\n');
        }
    }
    match (bootstrap, java_pid) {
        (Some(bootstrap), Some(java_pid)) => {
            let stdin = child.stdin.take();
            Ok((
                Watchdog {
                    child,
                    stdin,
                    java_pid,
                },
                bootstrap,
            ))
        }
        _ => {
            child.stdin.take();
            let status = child.wait()?;
            if let Some(t) = stderr_thread {
                let _ = t.join();
            }
            let stderr = stderr_text
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            Err(LocalKafkaError::StartFailed {
                status: status.to_string(),
                output: format!("{stderr}{stdout_text}"),
            })
        }
    }
}

/// Sends `signal` to the java process of `watchdog` (if it runs) and waits until the watchdog
/// exited; after `grace`, closes its stdin so it SIGKILLs java. `None` afterwards.
pub(crate) fn signal_and_reap(
    watchdog: &mut Option<Watchdog>,
    signal: &str,
    grace: Duration,
) -> Result<(), LocalKafkaError> {
    let Some(mut watchdog) = watchdog.take() else {
        return Ok(());
    };
    send_signal(signal, watchdog.java_pid)?;
    // The watchdog exits (and reaps java) once java is gone.
    let deadline = Instant::now() + grace;
    loop {
        if watchdog.child.try_wait()?.is_some() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            watchdog.stdin.take();
            watchdog.child.wait()?;
            return Ok(());
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Closes the watchdog's stdin (it SIGKILLs java and deletes the directory) and reaps it.
pub(crate) fn abandon(watchdog: &mut Option<Watchdog>) {
    if let Some(mut watchdog) = watchdog.take() {
        watchdog.stdin.take();
        let _ = watchdog.child.wait();
    }
}

pub(crate) fn send_signal(signal: &str, pid: u32) -> Result<(), LocalKafkaError> {
    // `kill` fails if the process is already gone, which is fine: the watchdog then exits.
    Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()?;
    Ok(())
}

/// Polls a metadata request until the broker answers or `timeout` passes.
pub fn wait_ready(bootstrap: &str, timeout: Duration) -> Result<(), LocalKafkaError> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let deadline = Instant::now() + timeout;
    loop {
        let last = match producer
            .client()
            .fetch_metadata(None, Duration::from_secs(2))
        {
            Ok(metadata) if !metadata.brokers().is_empty() => return Ok(()),
            Ok(_) => "no brokers in metadata".to_owned(),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(LocalKafkaError::NotReady {
                bootstrap: bootstrap.to_owned(),
                timeout,
                last,
            });
        }
        thread::sleep(Duration::from_millis(100));
    }
}
