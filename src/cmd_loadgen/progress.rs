//! Loadgen's progress display on stderr.

use std::time::{Duration, Instant};

use clap::ValueEnum;

use super::driver::Tick;
use crate::util;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    Auto,
    Bar,
    Plain,
    None,
}

/// Progress on stderr: an indicatif bar, plain lines every 2 s, or nothing.
pub(super) struct Progress {
    mode: ProgressMode,
    /// The bar and whether its position counts events (else seconds).
    bar: Option<(indicatif::ProgressBar, bool)>,
    last_line: Instant,
    last: (Duration, u64),
}

impl Progress {
    pub(super) fn new(
        mode: ProgressMode,
        events: Option<u64>,
        duration: Option<Duration>,
    ) -> Progress {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let (bar, template, counts_events) = match (events, duration) {
                (Some(n), _) => (
                    indicatif::ProgressBar::new(n),
                    "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events  {msg}",
                    true,
                ),
                (None, Some(d)) => (
                    indicatif::ProgressBar::new(d.as_secs().max(1)),
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} s  {msg}",
                    false,
                ),
                (None, None) => (
                    indicatif::ProgressBar::new_spinner(),
                    "{spinner} [{elapsed_precise}] {msg}",
                    true,
                ),
            };
            let style = indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            (bar.with_style(style), counts_events)
        });
        Progress {
            mode,
            bar,
            last_line: Instant::now(),
            last: (Duration::ZERO, 0),
        }
    }

    pub(super) fn tick(&mut self, t: Tick) {
        let dt = t.elapsed.saturating_sub(self.last.0).as_secs_f64();
        let now_rate = t.events.saturating_sub(self.last.1) as f64 / dt.max(1e-9);
        match &self.bar {
            Some((bar, counts_events)) => {
                if dt >= 0.5 {
                    bar.set_message(format!(
                        "{} events  {} messages  now {} events",
                        util::thousands(t.events),
                        util::thousands(t.records),
                        util::rate(now_rate)
                    ));
                    self.last = (t.elapsed, t.events);
                }
                bar.set_position(if *counts_events {
                    t.events
                } else {
                    t.elapsed.as_secs()
                });
            }
            None if self.mode == ProgressMode::Plain
                && self.last_line.elapsed() >= Duration::from_secs(2) =>
            {
                eprintln!(
                    "loadgen: {:>6.1} s  {} events  {} messages  now {} events",
                    t.elapsed.as_secs_f64(),
                    util::thousands(t.events),
                    util::thousands(t.records),
                    util::rate(now_rate)
                );
                self.last_line = Instant::now();
                self.last = (t.elapsed, t.events);
            }
            None => {}
        }
    }

    pub(super) fn finish(&mut self) {
        if let Some((bar, _)) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
