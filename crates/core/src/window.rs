//! Tumbling event-time windows, per-partition heads and watermarks.
//!
//! Per input partition, the *head* is the maximum of every event time seen and
//! every recorded idle advance ("none" before the first). The watermark is
//! `head - out_of_orderness`; with no head, nothing is late and nothing closes.
//! The window of `t` is `[floor(t/size)*size, +size)`. Window `W` is closed once
//! `W.end + allowed_lateness <= watermark`; every window starting before
//! [`WindowConfig::closed_before`] is then closed.

/// Window and watermark settings of the ingest stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// Width of a tumbling window (default 60 s).
    pub size_ms: i64,
    /// Bounded out-of-orderness: watermark = head - this (default 5 s).
    pub out_of_orderness_ms: i64,
    /// How long after its end a window still accepts events (default 10 s).
    pub allowed_lateness_ms: i64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            size_ms: 60_000,
            out_of_orderness_ms: 5_000,
            allowed_lateness_ms: 10_000,
        }
    }
}

impl WindowConfig {
    /// Size clamped to at least 1 ms, so a bad config cannot divide by zero.
    pub fn size(&self) -> i64 {
        self.size_ms.max(1)
    }

    /// Start of the window holding `t`.
    pub fn window_start(&self, t: i64) -> i64 {
        window_start(t, self.size())
    }

    /// Watermark for a head (`None` while no head exists).
    pub fn watermark(&self, head: Option<i64>) -> Option<i64> {
        head.map(|h| h.saturating_sub(self.out_of_orderness_ms))
    }

    /// Whether the window starting at `start` is closed at `watermark`.
    pub fn is_closed(&self, start: i64, watermark: Option<i64>) -> bool {
        match watermark {
            Some(w) => {
                start
                    .saturating_add(self.size())
                    .saturating_add(self.allowed_lateness_ms)
                    <= w
            }
            None => false,
        }
    }

    /// Every window starting before the returned value is closed at `watermark`
    /// (`floor((watermark - allowed_lateness) / size) * size`).
    pub fn closed_before(&self, watermark: i64) -> i64 {
        window_start(
            watermark.saturating_sub(self.allowed_lateness_ms),
            self.size(),
        )
    }
}

/// `floor(t / size) * size` (saturating; `size` must be > 0).
pub fn window_start(t: i64, size: i64) -> i64 {
    let size = size.max(1);
    t.div_euclid(size).saturating_mul(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_closing() {
        let c = WindowConfig::default();
        assert_eq!(c.window_start(59_999), 0);
        assert_eq!(c.window_start(60_000), 60_000);
        assert_eq!(c.window_start(-1), -60_000);
        // window [0, 60s) closes at watermark 70s
        assert!(!c.is_closed(0, Some(69_999)));
        assert!(c.is_closed(0, Some(70_000)));
        assert!(!c.is_closed(0, None));
        assert_eq!(c.closed_before(69_999), 0);
        assert_eq!(c.closed_before(70_000), 60_000);
        assert_eq!(c.watermark(Some(10_000)), Some(5_000));
    }
}
