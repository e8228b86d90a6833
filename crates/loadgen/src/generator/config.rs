//! The generator's settings and their checks.

use crate::error::LoadgenError;

/// Periodic bursts: the last `duration_ms` of every `period_ms` of event time
/// (counted from the epoch), a share `share` of all events is redirected to
/// one country or one sector (chosen from the seed and the period's index, see
/// [`Generator::burst_at`](super::Generator::burst_at)). With the defaults, the first burst runs from
/// 9 to 10 minutes after the epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct BurstConfig {
    /// Default 600 000 (10 min).
    pub period_ms: i64,
    /// Default 60 000 (1 min); must be <= period_ms.
    pub duration_ms: i64,
    /// Default 0.3.
    pub share: f64,
}

impl Default for BurstConfig {
    fn default() -> Self {
        BurstConfig {
            period_ms: 600_000,
            duration_ms: 60_000,
            share: 0.3,
        }
    }
}

/// What the generator produces and how. Defaults are documented per field.
#[derive(Clone, Debug, PartialEq)]
pub struct GenConfig {
    /// Seed of the event stream (default 1). The world has its own seed.
    pub seed: u64,
    /// Events per second of event time (default 100 000). Event `i` (counting
    /// every emitted event, duplicates included) is at `epoch_ms + i*1000/rate`
    /// before jitter, so N events span N/rate seconds.
    pub rate: u64,
    /// Event time of the first event (default 1 735 689 600 000 = 2025-01-01T00:00:00Z).
    pub epoch_ms: i64,
    /// Share of non-IDS events that carry an `event_id` (default 0.3). IDS alerts always do.
    pub event_id_share: f64,
    /// Share of emitted events that are duplicates of an earlier one (default 0.02, < 0.5).
    pub duplicate_rate: f64,
    /// Of the duplicates of events without event_id, the share that are
    /// overlapping-sensor copies (same fields, another sensor_id) rather than
    /// exact redeliveries (default 0.3). Events with an event_id are always
    /// redelivered exactly.
    pub overlap_share: f64,
    /// A duplicate follows its original within 1..=this ms of event time (default 1000).
    pub duplicate_delay_ms: i64,
    /// Bounded out-of-order jitter: event time = clock − U[0, jitter_ms] (default 2000).
    pub jitter_ms: i64,
    /// Share of original events that are late (default 0.001).
    pub late_fraction: f64,
    /// A late event is U[late_min_ms, late_max_ms] older than the clock
    /// (defaults 600 000 and 1 800 000: beyond any sane out-of-orderness + allowed lateness).
    pub late_min_ms: i64,
    /// See `late_min_ms`.
    pub late_max_ms: i64,
    /// Share of events from IPv6 sources (default 0.03).
    pub ipv6_share: f64,
    /// Periodic bursts (default on, see [`BurstConfig`]); `None` disables them.
    pub bursts: Option<BurstConfig>,
    /// Share of original events from clock-skewed sensors (default 0): their
    /// time is 1 day to 80 years ahead of the clock, and so is the CreateTime
    /// of the record that carries them. rampart judges them against a clock
    /// it trusts and dead-letters them `time_in_future`.
    pub future_share: f64,
    /// Share of original events with an event_id that are seen again later
    /// (default 0): the same event, same event_id, another sensor, with a
    /// later `time_ms` (1..=`resight_delay_ms` after the original's). Within
    /// the dedup horizon of the original's bucket it is a duplicate.
    pub resight_share: f64,
    /// See `resight_share` (default 150 000: past the next dedup bucket or two
    /// at rampart's defaults, within its 10 min horizon).
    pub resight_delay_ms: i64,
    /// Share of original events from a scanning botnet (default 0: today's
    /// Zipf-concentrated sources): each takes the next IPv4 /24 of a
    /// permutation of all the world's /24s (any country), a random host in
    /// it. At 1 every /24 of the world is used once before any is used
    /// again, so when a window holds fewer events than the world has /24s
    /// (`--prefixes`), each /24 has at most one event per window.
    pub source_spread: f64,
}

/// How far ahead of the clock a clock-skewed sensor stamps its events.
pub const FUTURE_SKEW_MS: (i64, i64) = (86_400_000, 80 * 365 * 86_400_000);

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 1,
            rate: 100_000,
            epoch_ms: 1_735_689_600_000,
            event_id_share: 0.3,
            duplicate_rate: 0.02,
            overlap_share: 0.3,
            duplicate_delay_ms: 1000,
            jitter_ms: 2000,
            late_fraction: 0.001,
            late_min_ms: 600_000,
            late_max_ms: 1_800_000,
            ipv6_share: 0.03,
            bursts: Some(BurstConfig::default()),
            future_share: 0.0,
            resight_share: 0.0,
            resight_delay_ms: 150_000,
            source_spread: 0.0,
        }
    }
}

impl GenConfig {
    /// Checks every setting; the error names all the bad ones at once.
    pub fn check(&self) -> Result<(), LoadgenError> {
        let mut bad = Vec::new();
        let share = |v: f64| (0.0..=1.0).contains(&v);
        if self.rate == 0 {
            bad.push("rate must be > 0");
        }
        if self.epoch_ms <= 0 {
            bad.push("epoch_ms must be > 0");
        }
        if !share(self.event_id_share) {
            bad.push("event_id_share must be within 0..=1");
        }
        if !(0.0..0.5).contains(&self.duplicate_rate) {
            bad.push("duplicate_rate must be within 0..0.5");
        }
        if !share(self.overlap_share) {
            bad.push("overlap_share must be within 0..=1");
        }
        if self.duplicate_delay_ms < 1 {
            bad.push("duplicate_delay_ms must be >= 1");
        }
        if self.jitter_ms < 0 {
            bad.push("jitter_ms must be >= 0");
        }
        if !share(self.late_fraction) {
            bad.push("late_fraction must be within 0..=1");
        }
        if self.late_min_ms < 0 || self.late_max_ms < self.late_min_ms {
            bad.push("late_min_ms must be >= 0 and <= late_max_ms");
        }
        if !share(self.ipv6_share) {
            bad.push("ipv6_share must be within 0..=1");
        }
        if !(0.0..0.5).contains(&self.future_share) {
            bad.push("future_share must be within 0..0.5");
        }
        if !share(self.resight_share) {
            bad.push("resight_share must be within 0..=1");
        }
        if !share(self.source_spread) {
            bad.push("source_spread must be within 0..=1");
        }
        if self.resight_delay_ms < 1 {
            bad.push("resight_delay_ms must be >= 1");
        }
        if let Some(b) = &self.bursts {
            if b.period_ms <= 0 || b.duration_ms < 0 || b.duration_ms > b.period_ms {
                bad.push("bursts: need 0 <= duration_ms <= period_ms and period_ms > 0");
            }
            if !share(b.share) {
                bad.push("bursts: share must be within 0..=1");
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(LoadgenError::Config(bad.join("; ")))
        }
    }
}
