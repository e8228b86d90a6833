//! The send loop shared by `rampart loadgen` and `rampart demo`: records from
//! a `RecordStream` into a `Sink`, paced by wall clock, with live counters
//! and progress ticks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rampart_formats::Format;
use rampart_loadgen::{Limit, RecordStream};

use super::sink::Sink;
use crate::manifest::Digest;

/// Live counters of a running loadgen (read by the demo's view).
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub events: AtomicU64,
    pub records: AtomicU64,
}

/// A snapshot passed to the progress callback.
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    pub events: u64,
    pub records: u64,
    pub elapsed: Duration,
}

/// Wall-clock pacing and bound.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    /// Events/s; 0 = unpaced.
    pub rate: u64,
    pub deadline: Option<Instant>,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub events: u64,
    pub records: u64,
    pub malformed: u64,
    pub payload_bytes: u64,
    pub digest: String,
    pub last_clock_ms: i64,
}

/// Sends `stream` into `sink` until it ends, the deadline passes or `stop` is
/// set. An early end stops the stream at its current event count, so the
/// records sent equal those of `Limit::Events(outcome.events)`.
pub fn drive(
    stream: &mut RecordStream,
    sink: &mut Sink,
    format: Format,
    pacing: &Pacing,
    stop: &AtomicBool,
    live: &LiveCounters,
    on_tick: &mut dyn FnMut(Tick),
) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    let mut digest = Digest::default();
    let mut next_tick = start;
    let mut stopping = false;
    while let Some(r) = stream.next() {
        // The digest is of the protobuf records `verify` regenerates.
        if format == Format::Protobuf {
            sink.send(&r)?;
        } else {
            sink.send(&rampart_loadgen::in_format(&r, format).0)?;
        }
        digest.add(&r);
        let events = stream.stats().events;
        let records = stream.stats().records;
        live.events.store(events, Ordering::Relaxed);
        live.records.store(records, Ordering::Relaxed);
        let now = Instant::now();
        if now >= next_tick {
            on_tick(Tick {
                events,
                records,
                elapsed: now - start,
            });
            next_tick = now + Duration::from_millis(100);
        }
        if stopping {
            continue;
        }
        if stop.load(Ordering::Relaxed) || pacing.deadline.is_some_and(|d| now >= d) {
            // End here: the remaining open batches are flushed by the stream.
            stream.set_limit(Limit::Events(stream.generator().stats().events));
            stopping = true;
            continue;
        }
        if pacing.rate > 0 {
            // Sleep while ahead of the schedule (events / rate seconds after start).
            let due = Duration::from_secs_f64(events as f64 / pacing.rate as f64);
            let mut ahead = due.saturating_sub(now - start);
            while ahead > Duration::from_millis(1) && !stop.load(Ordering::Relaxed) {
                let mut nap = ahead.min(Duration::from_millis(50));
                if let Some(d) = pacing.deadline {
                    nap = nap.min(d.saturating_duration_since(Instant::now()));
                }
                if nap.is_zero() {
                    break;
                }
                std::thread::sleep(nap);
                ahead = ahead.saturating_sub(nap);
            }
        }
    }
    let s = stream.stats();
    on_tick(Tick {
        events: s.events,
        records: s.records,
        elapsed: start.elapsed(),
    });
    Ok(Outcome {
        events: s.events,
        records: s.records,
        malformed: s.malformed,
        payload_bytes: s.payload_bytes,
        digest: digest.hex(),
        last_clock_ms: stream.generator().now_ms(),
    })
}
