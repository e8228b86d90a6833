//! Rate limits of the warnings that can repeat once per message or record
//! (a failed delivery, a produce error, a message of an unassigned partition,
//! a client error librdkafka repeats): each site logs at most
//! [`LINES_PER_WINDOW`] lines per [`WINDOW`]; the first line it logs after
//! holding some back says how many (`suppressed = N`). What was held back is
//! counted (`rampart_log_lines_suppressed_total{site}`, read by telemetry at
//! scrape time).
//!
//! A leaf module: it imports nothing from this crate, so the stage runtime
//! and the handlers use it without knowing telemetry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Lines one site logs per window.
pub(crate) const LINES_PER_WINDOW: u32 = 10;
/// The window.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// One rate-limited log site.
#[derive(Debug)]
pub(crate) struct LogBudget {
    site: &'static str,
    state: Mutex<Window>,
    suppressed_total: AtomicU64,
}

#[derive(Debug)]
struct Window {
    started: Option<Instant>,
    shown: u32,
    /// Held back since the last line shown.
    held_back: u64,
}

impl LogBudget {
    pub(crate) const fn new(site: &'static str) -> Self {
        LogBudget {
            site,
            state: Mutex::new(Window {
                started: None,
                shown: 0,
                held_back: 0,
            }),
            suppressed_total: AtomicU64::new(0),
        }
    }

    /// Whether a line may be logged now: `Some(n)` with the number of lines
    /// held back since the last one shown, `None` to hold this one back.
    pub(crate) fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now(), WINDOW)
    }

    fn admit_at(&self, now: Instant, window: Duration) -> Option<u64> {
        let mut w = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let expired = w
            .started
            .is_none_or(|started| now.saturating_duration_since(started) >= window);
        if expired {
            w.started = Some(now);
            w.shown = 0;
        }
        if w.shown < LINES_PER_WINDOW {
            w.shown += 1;
            Some(std::mem::take(&mut w.held_back))
        } else {
            w.held_back += 1;
            self.suppressed_total.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    pub(crate) fn site(&self) -> &'static str {
        self.site
    }

    /// Lines held back since the process started.
    pub(crate) fn suppressed_total(&self) -> u64 {
        self.suppressed_total.load(Ordering::Relaxed)
    }
}

/// `delivery failed` (a produced record's delivery report).
pub(crate) static DELIVERY_FAILED: LogBudget = LogBudget::new("delivery_failed");
/// `produce failed; rewinding` (a record librdkafka refused to queue).
pub(crate) static PRODUCE_FAILED: LogBudget = LogBudget::new("produce_failed");
/// `kafka producer error` / `kafka client error` (librdkafka's error callbacks).
pub(crate) static CLIENT_ERROR: LogBudget = LogBudget::new("client_error");
/// `consumer error; librdkafka retries`.
pub(crate) static CONSUMER_RETRIED: LogBudget = LogBudget::new("consumer_retried");
/// `message for a partition that is not assigned; ignored`.
pub(crate) static UNASSIGNED_MESSAGE: LogBudget = LogBudget::new("unassigned_message");

/// Every rate-limited site.
pub(crate) fn all() -> [&'static LogBudget; 5] {
    [
        &DELIVERY_FAILED,
        &PRODUCE_FAILED,
        &CLIENT_ERROR,
        &CONSUMER_RETRIED,
        &UNASSIGNED_MESSAGE,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_logs_ten_lines_a_window_and_then_says_how_many_it_held_back() {
        let budget = LogBudget::new("test");
        let t0 = Instant::now();
        let window = Duration::from_secs(60);
        let admitted: Vec<Option<u64>> = (0..1_000)
            .map(|i| budget.admit_at(t0 + Duration::from_millis(i), window))
            .collect();
        let shown: Vec<u64> = admitted.iter().flatten().copied().collect();
        assert_eq!(shown, vec![0; LINES_PER_WINDOW as usize]);
        assert_eq!(budget.suppressed_total(), 990);
        // Still inside the window: held back.
        assert_eq!(budget.admit_at(t0 + Duration::from_secs(59), window), None);
        // A new window: the first line says 991 were held back, then 9 more
        // lines pass with nothing held back.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(budget.admit_at(later, window), Some(991));
        for _ in 1..LINES_PER_WINDOW {
            assert_eq!(budget.admit_at(later, window), Some(0));
        }
        assert_eq!(budget.admit_at(later, window), None);
        assert_eq!(budget.suppressed_total(), 992);
    }
}
