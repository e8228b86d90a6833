//! Processing of one input message, in phases over the whole batch so that
//! the cache misses of many events overlap instead of stalling one at a time:
//!
//! 1. decode and validate: a message that fails as a whole leaves all state
//!    untouched; events invalid against the trusted now are rejected one by
//!    one and skipped by the later phases;
//! 2. cell keys, lateness and head progression (none depends on dedup
//!    outcomes); late events are noted with their window, the others
//!    fingerprinted;
//! 3. dedup, one run of events sharing a dedup expiry state at a time;
//! 4. resolve the cells of every late and counted event (windows and cells
//!    are created, and the key budget taken, in event order), after loading
//!    the key maps' entries of the whole batch;
//! 5. update the cells, `CELL_GROUP` events at a time: first load what the
//!    updates read, then update.

use super::PartitionIngest;
use super::cells::{CellIds, OriginKey, Unique};
use crate::enrich::Enricher;
use crate::event::{DecodeError, EventView, decode_batch};
use crate::sketch::source_hash;
use crate::validate::{Rejection, validate, validate_message};
use crate::window::window_start;

/// Counts of one processed message, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Valid events of the message (aggregated: unique, duplicate or late).
    pub events: u64,
    /// Events of the message rejected one by one (see
    /// [`PartitionIngest::rejected_events`]).
    pub rejected: u64,
    /// Non-late events seen for the first time within the dedup horizon.
    pub unique: u64,
    /// Non-late events whose fingerprint was remembered.
    pub duplicates: u64,
    /// Late events (counted in the current window's `late_events`).
    pub late: u64,
    /// During a resume replay: events (late or not) that belonged to an
    /// already emitted window and were therefore not aggregated again.
    pub replayed_into_emitted: u64,
}

/// Events whose cell cache misses are taken together.
const CELL_GROUP: usize = 32;

/// Per-batch buffers of the phases, reused across batches.
#[derive(Debug, Default)]
pub(super) struct BatchScratch {
    /// Cell keys (origin cell, sector cell) of every event of the batch.
    cell_keys: Vec<(OriginKey, u32)>,
    /// Per non-late ("counted") event: its index in the batch, fingerprint,
    /// event time and whether dedup found it a duplicate.
    counted: Vec<u32>,
    fingerprints: Vec<u128>,
    event_times: Vec<i64>,
    duplicates: Vec<bool>,
    /// Runs of counted events sharing one dedup expiry state.
    expiry_runs: Vec<ExpiryRun>,
    /// Late events: index in the batch and the window they count in.
    late: Vec<(u32, i64)>,
    /// Late and counted events with their resolved cells, in event order.
    pending: Vec<Pending>,
}

/// Counted events from `first` (an index into the counted events) up to the
/// next run, to be deduplicated after expiring the table at `watermark`.
#[derive(Clone, Copy, Debug)]
struct ExpiryRun {
    first: usize,
    watermark: Option<i64>,
}

/// How an event counts in its cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counted {
    Unique,
    Duplicate,
    Late,
}

/// An event whose cells are resolved but not yet updated.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// Index in the batch.
    event: u32,
    counted: Counted,
    window: i64,
    ids: CellIds,
    /// `source_hash` of the source address (0 when not unique: unused).
    source_hash: u64,
}

#[inline]
fn unique_of(event: &EventView<'_>) -> Unique {
    Unique {
        time_ms: event.time_ms,
        packets: event.packets,
        bytes: event.bytes,
        dst_port: event.dst_port,
        kind: event.kind as u32,
        rule_id: event.rule_id,
    }
}

impl PartitionIngest {
    /// Processes one input message (an `AttackEventBatch` payload) at `offset`.
    ///
    /// Events are judged against a trusted now: `log_append_time_ms` (the
    /// broker's LogAppendTime) when the message carries one, else the ingest
    /// clock recorded for `offset` ([`PartitionIngest::record_clock`]); with
    /// neither, the future/past checks are skipped. A message that does not
    /// decode, or holds no or too many events, is rejected whole (`Err`) and
    /// changes nothing; otherwise its invalid events are rejected one by one
    /// ([`PartitionIngest::rejected_events`]) without touching head, dedup or
    /// windows, and the valid ones are aggregated.
    pub fn process_batch<E: Enricher + ?Sized>(
        &mut self,
        payload: &[u8],
        log_append_time_ms: Option<i64>,
        offset: i64,
        enricher: &mut E,
    ) -> Result<BatchStats, Rejection> {
        // Reuse the allocation of the view buffer across payload lifetimes.
        let mut views: Vec<EventView<'_>> = std::mem::take(&mut self.views);
        self.rejected.clear();
        let trusted_now = log_append_time_ms.or_else(|| self.clock.advance_to(offset));
        let result = self.process_views(payload, trusted_now, offset, enricher, &mut views);
        views.clear();
        // Empty, so `map` never runs; in-place collect keeps the allocation.
        self.views = views.into_iter().map(|_| EventView::default()).collect();
        result
    }

    fn process_views<'a, E: Enricher + ?Sized>(
        &mut self,
        payload: &'a [u8],
        trusted_now: Option<i64>,
        offset: i64,
        enricher: &mut E,
        views: &mut Vec<EventView<'a>>,
    ) -> Result<BatchStats, Rejection> {
        self.next_offset = self.next_offset.max(offset.saturating_add(1));
        match decode_batch(payload, self.cfg.limits.max_batch_events, views) {
            Ok(()) => {}
            Err(DecodeError::Malformed(_)) => return Err(Rejection::MalformedProtobuf),
            Err(DecodeError::TooManyEvents { .. }) => return Err(Rejection::BatchTooLarge),
        }
        validate_message(views, &self.cfg.limits)?;
        Ok(self.process_decoded(views, trusted_now, offset, enricher))
    }

    /// Processes the events of one input message at `offset` that another
    /// decoder produced (a JSON format, `rampart-formats`): the same
    /// per-event validation, dedup and cells as [`Self::process_batch`], but no
    /// whole-message checks, so `views` may be empty (a message whose
    /// documents were all skipped or failed to map still moves the partition's
    /// position and recorded idle advances). Rejected events are listed by
    /// [`PartitionIngest::rejected_events`] with indexes into `views`.
    pub fn process_events<E: Enricher + ?Sized>(
        &mut self,
        views: &[EventView<'_>],
        log_append_time_ms: Option<i64>,
        offset: i64,
        enricher: &mut E,
    ) -> BatchStats {
        self.rejected.clear();
        let trusted_now = log_append_time_ms.or_else(|| self.clock.advance_to(offset));
        self.next_offset = self.next_offset.max(offset.saturating_add(1));
        self.process_decoded(views, trusted_now, offset, enricher)
    }

    fn process_decoded<E: Enricher + ?Sized>(
        &mut self,
        views: &[EventView<'_>],
        trusted_now: Option<i64>,
        offset: i64,
        enricher: &mut E,
    ) -> BatchStats {
        for (index, event) in views.iter().enumerate() {
            if let Err(rejection) = validate(event, trusted_now, &self.cfg.limits) {
                self.rejected.push((index as u32, rejection));
            }
        }
        self.apply_recorded_idle(offset);

        let head_before = self.head;
        let mut stats = BatchStats {
            events: (views.len() - self.rejected.len()) as u64,
            rejected: self.rejected.len() as u64,
            ..BatchStats::default()
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        self.addresses.use_table(enricher.prefix24_origins());
        self.addresses.touch_all(views);
        self.key_and_fingerprint(views, enricher, &mut scratch, &mut stats);
        self.deduplicate(&mut scratch);
        self.resolve_cells(views, offset, head_before, &mut scratch, &mut stats);
        self.update_cells(views, &scratch.pending);
        self.scratch = scratch;
        stats
    }

    /// Phase 2: every valid event's cell keys; late events counted into the
    /// current window; the others fingerprinted, grouped into expiry runs, and
    /// the head advanced over them. Rejected events are skipped.
    fn key_and_fingerprint<E: Enricher + ?Sized>(
        &mut self,
        views: &[EventView<'_>],
        enricher: &mut E,
        scratch: &mut BatchScratch,
        stats: &mut BatchStats,
    ) {
        scratch.cell_keys.clear();
        scratch.late.clear();
        scratch.counted.clear();
        scratch.fingerprints.clear();
        scratch.event_times.clear();
        scratch.expiry_runs.clear();
        let size = self.cfg.window.size();
        let lateness = self.cfg.window.allowed_lateness_ms;
        let out_of_orderness = self.cfg.window.out_of_orderness_ms;
        let horizon = self.cfg.dedup.horizon_ms.max(0);
        let bucket_ms = self.cfg.dedup.bucket_ms.max(1);
        // Dedup expiry depends on the watermark only through the first live
        // bucket (dedup module doc): a new run starts when that changes.
        let first_live_bucket =
            |watermark: i64| watermark.saturating_sub(horizon).div_euclid(bucket_ms);
        let mut run_first_live: Option<i64> = None;
        let mut next_rejected = 0;
        for (index, event) in views.iter().enumerate() {
            if self
                .rejected
                .get(next_rejected)
                .is_some_and(|&(rejected, _)| rejected as usize == index)
            {
                next_rejected += 1;
                // Never enriched, never touches head, dedup or windows; its
                // key slot keeps `cell_keys` indexed by event.
                let placeholder = scratch.cell_keys.last().copied().unwrap_or_default();
                scratch.cell_keys.push(placeholder);
                continue;
            }
            let time_ms = event.time_ms;
            let window = window_start(time_ms, size);
            let cell_key = self.addresses.cell_key(event, enricher);
            scratch.cell_keys.push(cell_key);
            let mut watermark = None;
            if let Some(head) = self.head {
                let current_watermark = head.saturating_sub(out_of_orderness);
                if window.saturating_add(size).saturating_add(lateness) <= current_watermark {
                    // Counts in the partition's current window (the window
                    // of `head`), unless that was emitted before a resume.
                    stats.late += 1;
                    let current = window_start(head, size);
                    if current < self.emitted_before {
                        stats.replayed_into_emitted += 1;
                    } else {
                        scratch.late.push((index as u32, current));
                    }
                    continue;
                }
                watermark = Some(current_watermark);
            }
            let first_live = watermark.map(first_live_bucket);
            if scratch.expiry_runs.is_empty()
                || (first_live.is_some() && first_live != run_first_live)
            {
                scratch.expiry_runs.push(ExpiryRun {
                    first: scratch.fingerprints.len(),
                    watermark,
                });
                run_first_live = first_live;
            }
            scratch.counted.push(index as u32);
            scratch
                .fingerprints
                .push(self.fingerprinter.fingerprint(event));
            scratch.event_times.push(time_ms);
            self.head = Some(self.head.map_or(time_ms, |h| h.max(time_ms)));
        }
    }

    /// Phase 3: dedup of the counted events, a run at a time (cache misses
    /// overlap within a run).
    fn deduplicate(&mut self, scratch: &mut BatchScratch) {
        let counted = scratch.fingerprints.len();
        scratch.duplicates.clear();
        scratch.duplicates.resize(counted, false);
        for (run_index, run) in scratch.expiry_runs.iter().enumerate() {
            let end = scratch
                .expiry_runs
                .get(run_index + 1)
                .map_or(counted, |next| next.first);
            if let Some(watermark) = run.watermark
                && self.expired_at != Some(watermark)
            {
                self.dedup.expire(watermark);
                self.expired_at = Some(watermark);
            }
            if let (Some(fingerprints), Some(times), Some(duplicates)) = (
                scratch.fingerprints.get(run.first..end),
                scratch.event_times.get(run.first..end),
                scratch.duplicates.get_mut(run.first..end),
            ) {
                self.dedup
                    .check_insert_batch(fingerprints, times, duplicates);
            }
        }
    }

    /// Phase 4: the cells of every late and counted event, in event order,
    /// and the source hash of unique ones; notes dedup buckets and counts
    /// unique and duplicate events.
    fn resolve_cells(
        &mut self,
        views: &[EventView<'_>],
        offset: i64,
        head_before: Option<i64>,
        scratch: &mut BatchScratch,
        stats: &mut BatchStats,
    ) {
        scratch.pending.clear();
        let size = self.cfg.window.size();
        let prefix_cells = self.cfg.keys.prefix_cells;
        // Load the key maps' entries of the batch's counted events first (in
        // open windows), so their cache misses overlap: resolving below takes
        // one event at a time.
        let mut touched = 0u32;
        for &index in &scratch.counted {
            if let (Some(event), Some(&(origin_key, sector_key))) = (
                views.get(index as usize),
                scratch.cell_keys.get(index as usize),
            ) && let Some(cells) = self.windows.cells(window_start(event.time_ms, size))
            {
                touched ^= cells.touch_ids(origin_key, sector_key);
            }
        }
        std::hint::black_box(touched);
        let late_events = std::mem::take(&mut scratch.late);
        let mut late = late_events.iter().copied().peekable();
        for (&index, &duplicate) in scratch.counted.iter().zip(&scratch.duplicates) {
            while let Some((late_index, window)) = late.next_if(|l| l.0 < index) {
                self.resolve_late(
                    late_index,
                    window,
                    offset,
                    head_before,
                    &mut scratch.pending,
                    &scratch.cell_keys,
                );
            }
            let (Some(event), Some(&(origin_key, sector_key))) = (
                views.get(index as usize),
                scratch.cell_keys.get(index as usize),
            ) else {
                continue;
            };
            let time_ms = event.time_ms;
            let window = window_start(time_ms, size);
            let unbound = !duplicate
                && (!self.time_bound || (self.ids_unbound && !event.event_id.is_empty()));
            self.windows
                .note_bucket(time_ms, offset, head_before, unbound);
            if duplicate {
                stats.duplicates += 1;
            } else {
                stats.unique += 1;
            }
            if window < self.emitted_before {
                stats.replayed_into_emitted += 1;
                continue;
            }
            let Some(cells) = self.windows.open(window, offset, head_before) else {
                continue;
            };
            let ids = cells.ids(origin_key, sector_key, prefix_cells);
            let source_hash = if duplicate {
                0
            } else {
                source_hash(event.src_ip)
            };
            scratch.pending.push(Pending {
                event: index,
                counted: if duplicate {
                    Counted::Duplicate
                } else {
                    Counted::Unique
                },
                window,
                ids,
                source_hash,
            });
        }
        for (late_index, window) in late {
            self.resolve_late(
                late_index,
                window,
                offset,
                head_before,
                &mut scratch.pending,
                &scratch.cell_keys,
            );
        }
        scratch.late = late_events;
    }

    /// The cells of late event `index`, counting in `window`.
    fn resolve_late(
        &mut self,
        index: u32,
        window: i64,
        offset: i64,
        head_before: Option<i64>,
        pending: &mut Vec<Pending>,
        cell_keys: &[(OriginKey, u32)],
    ) {
        let Some(&(origin_key, sector_key)) = cell_keys.get(index as usize) else {
            return;
        };
        let prefix_cells = self.cfg.keys.prefix_cells;
        if let Some(cells) = self.windows.open(window, offset, head_before) {
            let ids = cells.ids(origin_key, sector_key, prefix_cells);
            pending.push(Pending {
                event: index,
                counted: Counted::Late,
                window,
                ids,
                source_hash: 0,
            });
        }
    }

    /// Phase 5: a group at a time, load what the updates read (misses
    /// overlap), then update.
    fn update_cells(&mut self, views: &[EventView<'_>], pending: &[Pending]) {
        for group in pending.chunks(CELL_GROUP) {
            let mut touched = 0u64;
            for event in group {
                if let Some(cells) = self.windows.cells(event.window) {
                    touched ^= cells.touch_cells(event.ids);
                }
            }
            for event in group.iter().filter(|p| p.counted == Counted::Unique) {
                let (Some(view), Some(cells)) = (
                    views.get(event.event as usize),
                    self.windows.cells(event.window),
                ) else {
                    continue;
                };
                touched ^= cells.touch_tables(event.ids, &unique_of(view), event.source_hash);
            }
            std::hint::black_box(touched);
            for event in group {
                let Some(view) = views.get(event.event as usize) else {
                    continue;
                };
                let Some((origin_cell, sector_cell)) = self
                    .windows
                    .cells(event.window)
                    .and_then(|cells| cells.at(event.ids))
                else {
                    continue;
                };
                match event.counted {
                    Counted::Late => {
                        origin_cell.core.add_late();
                        sector_cell.core.add_late();
                    }
                    Counted::Duplicate => {
                        origin_cell.core.add_duplicate();
                        sector_cell.core.add_duplicate();
                    }
                    Counted::Unique => {
                        let unique = unique_of(view);
                        origin_cell.core.add_unique(&unique);
                        sector_cell.core.add_unique(&unique);
                        origin_cell.add_source(view.src_ip, event.source_hash);
                        sector_cell.sources.insert_hash(event.source_hash);
                    }
                }
            }
        }
    }
}
