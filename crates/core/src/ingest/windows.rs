//! The windows a partition holds open and the dedup buckets that still matter
//! for them: where each started in the input, so the resume point can say
//! where a replay must begin (module doc of `ingest` for why that is exact).

use rustc_hash::FxHashMap;

use super::cells::WindowCells;
use crate::fingerprint::{Field, FingerprintSpec};

/// Most recycled `WindowCells` kept (more than the windows open at once).
const CELL_POOL: usize = 4;

/// A window not yet emitted.
#[derive(Debug)]
pub(super) struct OpenWindow {
    pub(super) start: i64,
    /// First input offset that put anything into this window.
    first_offset: i64,
    /// Head just before that offset.
    head_before: Option<i64>,
    pub(super) cells: WindowCells,
}

/// Where a window or dedup bucket started in the input: replaying from
/// `offset` with the head set to `head_before` rebuilds it.
#[derive(Clone, Copy, Debug)]
pub(super) struct InputStart {
    pub(super) offset: i64,
    pub(super) head_before: Option<i64>,
}

/// Whether the fingerprints under `spec` of events *without* an event_id
/// determine their dedup bucket. (Under `Auto` an event_id fingerprint never
/// does: the same id may come again with any later time.)
pub(super) fn time_bound(spec: &FingerprintSpec, dedup_bucket_ms: i64) -> bool {
    let divides = |time_bucket_ms: i64| {
        time_bucket_ms > 0 && dedup_bucket_ms > 0 && dedup_bucket_ms % time_bucket_ms == 0
    };
    match spec {
        FingerprintSpec::Auto { time_bucket_ms } => divides(*time_bucket_ms),
        FingerprintSpec::Fields {
            fields,
            time_bucket_ms,
        } => {
            fields.contains(&Field::Time)
                || (fields.contains(&Field::TimeBucket) && divides(*time_bucket_ms))
        }
    }
}

/// A dedup bucket that can still influence an open window or a later dedup
/// decision.
#[derive(Clone, Copy, Debug)]
struct BucketRecord {
    /// Where its first event was read.
    start: InputStart,
    /// The bucket remembers a fingerprint that does not determine its bucket
    /// (an event_id under `Auto`, or any under a spec that is not
    /// time-bound): a later sighting in another bucket is judged against it.
    holds_unbound: bool,
}

/// The open windows (sorted by start; few) and the first input position of
/// every dedup bucket that can still influence one of them.
#[derive(Debug)]
pub(super) struct WindowSet {
    windows: Vec<OpenWindow>,
    /// Index of the window used last (events mostly hit the same one).
    last_used: usize,
    /// Cells of rolled-up windows, emptied, for the next windows to reuse.
    cell_pool: Vec<WindowCells>,
    dedup_bucket_ms: i64,
    /// Dedup bucket number → where its first event was read.
    buckets: FxHashMap<i64, BucketRecord>,
    /// The bucket noted last (skips the map for runs in one bucket).
    last_bucket: Option<i64>,
}

impl WindowSet {
    pub(super) fn new(dedup_bucket_ms: i64) -> Self {
        WindowSet {
            windows: Vec::new(),
            last_used: 0,
            cell_pool: Vec::new(),
            dedup_bucket_ms: dedup_bucket_ms.max(1),
            buckets: FxHashMap::default(),
            last_bucket: None,
        }
    }

    /// Number of windows held open.
    pub(super) fn len(&self) -> usize {
        self.windows.len()
    }

    /// The cells of the window starting at `start`, opened (as first read at
    /// `offset` with head `head_before`) when missing.
    #[inline]
    pub(super) fn open(
        &mut self,
        start: i64,
        offset: i64,
        head_before: Option<i64>,
    ) -> Option<&mut WindowCells> {
        let index = match self.windows.get(self.last_used) {
            Some(window) if window.start == start => self.last_used,
            _ => {
                let index = match self.windows.binary_search_by_key(&start, |w| w.start) {
                    Ok(found) => found,
                    Err(insert_at) => {
                        let window = OpenWindow {
                            start,
                            first_offset: offset,
                            head_before,
                            cells: self.cell_pool.pop().unwrap_or_default(),
                        };
                        self.windows.insert(insert_at, window);
                        insert_at
                    }
                };
                self.last_used = index;
                index
            }
        };
        self.windows.get_mut(index).map(|w| &mut w.cells)
    }

    /// The cells of the open window starting at `start` (never opens one).
    #[inline]
    pub(super) fn cells(&mut self, start: i64) -> Option<&mut WindowCells> {
        let index = match self.windows.get(self.last_used) {
            Some(window) if window.start == start => self.last_used,
            _ => {
                let found = self
                    .windows
                    .binary_search_by_key(&start, |w| w.start)
                    .ok()?;
                self.last_used = found;
                found
            }
        };
        self.windows.get_mut(index).map(|w| &mut w.cells)
    }

    /// Records where the dedup bucket of event time `time_ms` was first read,
    /// and that it holds an unbound fingerprint when `unbound`.
    #[inline]
    pub(super) fn note_bucket(
        &mut self,
        time_ms: i64,
        offset: i64,
        head_before: Option<i64>,
        unbound: bool,
    ) {
        let bucket = time_ms.div_euclid(self.dedup_bucket_ms);
        if self.last_bucket == Some(bucket) && !unbound {
            return;
        }
        self.last_bucket = Some(bucket);
        let record = self.buckets.entry(bucket).or_insert(BucketRecord {
            start: InputStart {
                offset,
                head_before,
            },
            holds_unbound: false,
        });
        record.holds_unbound |= unbound;
    }

    /// The end (exclusive) of dedup bucket `bucket`, in event time.
    fn bucket_end(&self, bucket: i64) -> i64 {
        bucket
            .saturating_add(1)
            .saturating_mul(self.dedup_bucket_ms)
    }

    /// Removes and returns the windows starting before `closed_before`, in
    /// start order.
    pub(super) fn take_before(&mut self, closed_before: i64) -> Vec<OpenWindow> {
        let closed = self.windows.partition_point(|w| w.start < closed_before);
        self.last_used = 0;
        self.windows.drain(..closed).collect()
    }

    /// Removes and returns every open window, in start order.
    pub(super) fn take_all(&mut self) -> Vec<OpenWindow> {
        self.last_used = 0;
        std::mem::take(&mut self.windows)
    }

    /// Keeps the cells of a rolled-up window for a later window to reuse.
    pub(super) fn recycle(&mut self, mut cells: WindowCells) {
        if self.cell_pool.len() < CELL_POOL {
            cells.recycle();
            self.cell_pool.push(cells);
        }
    }

    /// Forgets the buckets of time-bound fingerprints ending at or before
    /// `emitted_before`: they only hold events of emitted windows.
    pub(super) fn prune_bound_buckets(&mut self, emitted_before: i64) {
        let bucket_ms = self.dedup_bucket_ms;
        self.buckets.retain(|&bucket, record| {
            record.holds_unbound
                || bucket.saturating_add(1).saturating_mul(bucket_ms) > emitted_before
        });
        self.last_bucket = None;
    }

    /// Forgets the buckets with unbound fingerprints that end at or before
    /// `live_from` (expired at the watermark a replay starts from, which only
    /// rises).
    pub(super) fn prune_unbound_buckets(&mut self, live_from: i64) {
        let bucket_ms = self.dedup_bucket_ms;
        self.buckets.retain(|&bucket, record| {
            !record.holds_unbound || bucket.saturating_add(1).saturating_mul(bucket_ms) > live_from
        });
        self.last_bucket = None;
    }

    /// Forgets every bucket (end of input).
    pub(super) fn clear_buckets(&mut self) {
        self.buckets.clear();
        self.last_bucket = None;
    }

    /// The replay start, a fixpoint (module doc of `ingest`): the earliest of
    /// `next`, the first position of every open window and of every bucket
    /// of time-bound fingerprints ending after `emitted_before`; then lowered
    /// to the first position of every bucket with unbound fingerprints still
    /// live at the start's head (`live_from(head_before)`: the first event
    /// time not expired at its watermark), until it stops moving.
    pub(super) fn replay_start(
        &self,
        next: InputStart,
        emitted_before: i64,
        live_from: impl Fn(Option<i64>) -> i64,
    ) -> InputStart {
        let window_starts = self.windows.iter().map(|w| InputStart {
            offset: w.first_offset,
            head_before: w.head_before,
        });
        let bound_bucket_starts = self
            .buckets
            .iter()
            .filter(|(bucket, record)| {
                !record.holds_unbound && self.bucket_end(**bucket) > emitted_before
            })
            .map(|(_, record)| record.start);
        let mut earliest = next;
        for start in window_starts.chain(bound_bucket_starts) {
            if start.offset < earliest.offset {
                earliest = start;
            }
        }
        loop {
            let floor = live_from(earliest.head_before);
            let lower = self
                .buckets
                .iter()
                .filter(|(bucket, record)| {
                    record.holds_unbound
                        && record.start.offset < earliest.offset
                        && self.bucket_end(**bucket) > floor
                })
                .map(|(_, record)| record.start)
                .min_by_key(|start| start.offset);
            match lower {
                Some(start) => earliest = start,
                None => return earliest,
            }
        }
    }
}
