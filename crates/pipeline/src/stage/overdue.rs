//! A blocking librdkafka call that overstays its own timeout ends the process.
//!
//! `send_offsets_to_transaction` can block far past its timeout when the
//! group coordinator's broker goes down during the call (librdkafka issues
//! #5456 and #5511, open): the stage thread then never returns, its
//! partitions stop, and a SIGTERM cannot stop it either. Every guarded call
//! registers its deadline (its timeout plus [`GRACE`]); one watchdog thread
//! checks them each second and, when one passed, turns `/health` to 503, logs
//! which call of which stage hung and exits the process with status 1. The
//! transaction's outcome is unknown then, as after any fatal commit error:
//! the supervisor's restart fences the old producer and resolves it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::error;

/// How long past its own timeout a call may still return.
pub(crate) const GRACE: Duration = Duration::from_secs(5);

/// A guarded call in progress: `(stage, call, deadline)` by guard id.
type Calls = BTreeMap<u64, (&'static str, &'static str, Instant)>;

fn calls() -> &'static Mutex<Calls> {
    static CALLS: OnceLock<Mutex<Calls>> = OnceLock::new();
    CALLS.get_or_init(|| Mutex::new(BTreeMap::new()))
}

fn lock(calls: &Mutex<Calls>) -> std::sync::MutexGuard<'_, Calls> {
    calls
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Registered while a blocking call runs; dropping it unregisters the call.
pub(crate) struct CallGuard {
    id: u64,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        lock(calls()).remove(&self.id);
    }
}

/// Guards one blocking call of `stage` that librdkafka should end within `timeout`.
pub(crate) fn guard(stage: &'static str, call: &'static str, timeout: Duration) -> CallGuard {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static WATCHDOG: OnceLock<()> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("overdue-calls".into())
            .spawn(watch);
        if let Err(e) = spawned {
            error!(error = %e, "cannot start the watchdog of overdue Kafka calls");
        }
    });
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    lock(calls()).insert(id, (stage, call, Instant::now() + timeout + GRACE));
    CallGuard { id }
}

/// The first call whose deadline passed by `now`: `(stage, call, overdue by)`.
fn overdue(calls: &Calls, now: Instant) -> Option<(&'static str, &'static str, Duration)> {
    calls
        .values()
        .find(|(_, _, deadline)| now > *deadline)
        .map(|(stage, call, deadline)| (*stage, *call, now - *deadline + GRACE))
}

fn watch() {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let found = overdue(&lock(calls()), Instant::now());
        if let Some((stage, call, overdue)) = found {
            let reason = format!(
                "{call} hung {overdue:?} past its timeout (librdkafka #5456); exiting for a restart"
            );
            error!(
                stage,
                call,
                overdue_s = overdue.as_secs_f64(),
                "kafka call overdue: {reason}"
            );
            crate::health::mark_failed(format!("{stage}: {reason}"));
            // The hung thread cannot be joined or interrupted: only the
            // process can end. Give /health a moment to be scraped as 503.
            std::thread::sleep(Duration::from_millis(500));
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_call_past_its_timeout_and_grace_is_overdue() {
        let t0 = Instant::now();
        let mut running = Calls::new();
        // A 60 s call registered at t0: deadline t0 + 60 s + GRACE (5 s).
        running.insert(
            1,
            ("merge", "commit_transaction", t0 + Duration::from_secs(65)),
        );
        assert_eq!(overdue(&running, t0 + Duration::from_secs(64)), None);
        // At t0 + 67 s it is 7 s past its own timeout.
        assert_eq!(
            overdue(&running, t0 + Duration::from_secs(67)),
            Some(("merge", "commit_transaction", Duration::from_secs(7)))
        );
        // A registered guard is gone once dropped.
        let g = guard(
            "ingest",
            "send_offsets_to_transaction",
            Duration::from_secs(60),
        );
        assert!(lock(calls()).contains_key(&g.id));
        let id = g.id;
        drop(g);
        assert!(!lock(calls()).contains_key(&id));
    }
}
