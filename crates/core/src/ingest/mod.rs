//! The per-partition ingest processor: decode → validate → enrich → dedup →
//! pre-aggregate per event-time window, and emission of partials plus
//! window-close markers.
//!
//! # Hot path
//! Per event, one lookup in a per-window *cell* map keyed by a compact key
//! (source /24 or /48 prefix, interned origin, sector). A cell keeps counters,
//! first/last seen, the exact set of sources (a 256-bit bitmap of the last
//! octet for IPv4, hashes for IPv6) and small count maps. Cells are rolled up
//! into the five dimensions only when the window closes. Origin and sector
//! lookups of IPv4 addresses go through small direct-mapped caches
//! (`address_cache`); the `Enricher` must therefore be a pure function of the
//! address.
//!
//! # Modules
//! `batch` processes one message in phases; `address_cache` turns an event
//! into its cell keys; `cells` holds and rolls up a window's cells; `windows`
//! keeps the open windows and the dedup buckets that matter for replay;
//! `clock` is the recorded ingest clock; `resume` is the codec of
//! [`ResumePoint`].
//!
//! # Trusted time
//! Events are judged (`validate`) against a trusted now per message: the
//! broker's LogAppendTime when the message carries one, else the partition's
//! *ingest clock*, a stepped wall clock the stage records with
//! [`PartitionIngest::record_clock`] `(from offset, wall ms)` (`clock`). The
//! entries are part of the resume point (pruned below the replay offset,
//! keeping the one in force there as the base), so a replay judges every
//! message against the same clock. The producer's CreateTime is never a
//! bound.
//!
//! # Resume (exactly-once by source replay)
//! [`PartitionIngest::resume_point`] says where a restarted stage must re-read
//! from and what replay cannot reproduce (head before that offset, the last
//! emitted window, the recorded idle advances and ingest clock).
//!
//! A dedup decision depends on the fingerprints remembered in the buckets live
//! at that moment. A *time-bound* fingerprint (no event_id under the default
//! `Auto` spec, whose time bucket divides the dedup bucket) determines its
//! bucket, so its bucket only matters to events of the same bucket; an
//! *unbound* one (an event_id under `Auto`, or any fingerprint of a spec
//! that is not time-bound) can be sighted again in any later bucket while
//! its first bucket is live. Each dedup bucket records its first offset, the
//! head before it and whether it holds an unbound fingerprint. The replay
//! offset `R` is a fixpoint:
//! 1. `R` = the minimum of the next offset, the first offset of every window
//!    still held (not yet emitted), and of every bucket of time-bound
//!    fingerprints that ends after `emitted_before` (older ones only hold
//!    events of emitted windows);
//! 2. lower `R` to the first offset of every bucket holding an unbound
//!    fingerprint that is still live at the watermark implied by the head
//!    before `R`; repeat until `R` stops moving.
//!
//! Then every sighting before `R` lies in a bucket that has expired when the
//! replay starts (or is time-bound and only reaches emitted windows), and the
//! replay rebuilds every live bucket from its first insertion, with the same
//! watermarks (head before `R` and the idle advances), so every dedup decision
//! after `R` is reproduced exactly: no chain of re-sightings is broken. `R`
//! only grows over time, so bucket records are pruned once they are expired at
//! the watermark of `R`. The cost: with event ids present, replay reaches back
//! up to the dedup horizon (plus a bucket) instead of about one window plus
//! lateness. Buckets evicted early for the byte budget are not reproduced
//! (dedup is lossy there anyway, and counted).
//!
//! On resume, windows below `emitted_before` are never emitted again: events
//! replayed into them only feed dedup, late events counted into them are
//! skipped.

mod address_cache;
mod batch;
mod cells;
mod clock;
mod resume;
mod rollup;
mod windows;

pub use batch::BatchStats;
pub(crate) use resume::metadata_fields;
pub use resume::{ResumeError, ResumePoint};

use crate::budget::KeyBudget;
use crate::dedup::{Dedup, DedupConfig, DedupStats};
use crate::enrich::{Enricher, LookupCounts, SectorId};
use crate::event::EventView;
use crate::fingerprint::{FingerprintSpec, Fingerprinter};
use crate::proto::v1::internal as pb;
use crate::validate::{Limits, Rejection};
use crate::window::WindowConfig;
use address_cache::AddressCache;
use batch::BatchScratch;
use clock::IngestClock;
use windows::{InputStart, OpenWindow, WindowSet, time_bound};

/// Everything the ingest stage's semantics depend on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestConfig {
    pub window: WindowConfig,
    pub dedup: DedupConfig,
    pub fingerprint: FingerprintSpec,
    pub limits: Limits,
    /// Per-window key budgets ([`crate::budget`]).
    pub keys: KeyBudget,
}

/// Most idle advances a resume point carries. An entry is at most 41 bytes
/// (`<offset>:<head>,`), so 80 of them and the other fields stay well within
/// Kafka's 4096-byte `offset.metadata.max.bytes`. Only advances that close a
/// window are worth taking ([`PartitionIngest::idle_advance_closes`]), so a
/// replay span holds more than 80 only when the partition went idle and
/// resumed within 80 different windows of it; further advances then wait
/// (are refused) until closing windows prune the log.
pub const MAX_IDLE_ADVANCES: usize = 80;

/// Most ingest clock entries a partition keeps (and its checkpoint metadata
/// carries, ~13 bytes each). The stage sizes its clock step so a replay span
/// of the dedup horizon needs at most half of them; when a replay point stays
/// put for longer (a window held open for hours), further entries are refused
/// and the clock lags until closing windows prune the log.
pub const MAX_CLOCK_ENTRIES: usize = 64;

/// What the key budgets ([`crate::budget`]) changed so far, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BudgetStats {
    /// Events counted in an `other` cell because their window's
    /// `prefix_cells` were all taken.
    pub over_budget_events: u64,
    /// Windows rolled up that had such events.
    pub over_budget_windows: u64,
    /// Origin prefixes and ASNs folded into `other:<country>` at roll-up by
    /// `publish_top_keys`.
    pub folded_keys: u64,
    /// Port or rule count maps cut to `count_entries`.
    pub capped_count_maps: u64,
}

/// The ingest processor of one input partition. Single owner, no locking.
#[derive(Debug)]
pub struct PartitionIngest {
    cfg: IngestConfig,
    partition: u32,
    partitions: u32,
    fingerprinter: Fingerprinter,
    dedup: Dedup,
    /// Whether the fingerprints of events without an event_id determine
    /// their dedup bucket (`windows::time_bound`).
    time_bound: bool,
    /// Under `Auto`, an event with an event_id has an unbound fingerprint.
    ids_unbound: bool,
    head: Option<i64>,
    /// Watermark of the last `dedup.expire` call.
    expired_at: Option<i64>,
    /// Windows starting before this are emitted (i64::MIN: none).
    emitted_before: i64,
    last_marker: Option<i64>,
    windows: WindowSet,
    /// Idle advances `(at_offset, head_ms)`, recorded or to be replayed.
    idle_log: Vec<(i64, i64)>,
    /// How many of `idle_log` are applied.
    idle_applied: usize,
    clock: IngestClock,
    /// Rejected events `(index, reason)` of the last processed message.
    rejected: Vec<(u32, Rejection)>,
    next_offset: i64,
    addresses: AddressCache,
    /// The decoded events of the current batch (empty between batches; kept
    /// for its allocation).
    views: Vec<EventView<'static>>,
    scratch: BatchScratch,
    budget: BudgetStats,
}

impl PartitionIngest {
    /// A fresh processor for input partition `partition` of `partitions`.
    pub fn new(cfg: IngestConfig, partition: u32, partitions: u32) -> Self {
        PartitionIngest {
            fingerprinter: Fingerprinter::new(cfg.fingerprint.clone()),
            dedup: Dedup::new(cfg.dedup.clone()),
            time_bound: time_bound(&cfg.fingerprint, cfg.dedup.bucket_ms),
            ids_unbound: matches!(cfg.fingerprint, FingerprintSpec::Auto { .. }),
            windows: WindowSet::new(cfg.dedup.bucket_ms),
            cfg,
            partition,
            partitions,
            head: None,
            expired_at: None,
            emitted_before: i64::MIN,
            last_marker: None,
            idle_log: Vec::new(),
            idle_applied: 0,
            clock: IngestClock::default(),
            rejected: Vec::new(),
            next_offset: 0,
            addresses: AddressCache::new(),
            views: Vec::new(),
            scratch: BatchScratch::default(),
            budget: BudgetStats::default(),
        }
    }

    /// A processor that resumes from `resume_point`: the caller re-reads the
    /// partition from `replay_from_offset` and feeds every message to
    /// `process_batch`.
    pub fn resume(
        cfg: IngestConfig,
        partition: u32,
        partitions: u32,
        resume_point: &ResumePoint,
    ) -> Self {
        let mut ingest = Self::new(cfg, partition, partitions);
        ingest.head = resume_point.head_before;
        ingest.emitted_before = resume_point.emitted_before.unwrap_or(i64::MIN);
        ingest.last_marker = resume_point.emitted_before;
        ingest.idle_log = resume_point.idle_advances.clone();
        ingest.clock = IngestClock::from_entries(resume_point.clock.clone());
        ingest.next_offset = resume_point.replay_from_offset;
        ingest
    }

    /// Records the ingest clock: messages from `from_offset` on are judged
    /// against `wall_ms` (until the next entry). `from_offset` must not lie
    /// below a message already processed; an entry at the same offset as the
    /// last one replaces it (no message was judged by it yet).
    /// Returns false, changing nothing, when the record is full
    /// ([`MAX_CLOCK_ENTRIES`]).
    pub fn record_clock(&mut self, from_offset: i64, wall_ms: i64) -> bool {
        self.clock.record(from_offset, wall_ms)
    }

    /// The recorded ingest clock in force at `offset`, if any.
    pub fn trusted_now(&self, offset: i64) -> Option<i64> {
        self.clock.at(offset)
    }

    /// The events of the last processed message that were rejected, as
    /// `(index in its batch, reason)`, ascending indexes. The others were
    /// aggregated.
    pub fn rejected_events(&self) -> &[(u32, Rejection)] {
        &self.rejected
    }

    pub fn config(&self) -> &IngestConfig {
        &self.cfg
    }

    /// Max event time seen / idle advance, if any.
    pub fn head(&self) -> Option<i64> {
        self.head
    }

    /// Current watermark, if any.
    pub fn watermark(&self) -> Option<i64> {
        self.cfg.window.watermark(self.head)
    }

    /// Dedup table figures, for metrics.
    pub fn dedup_stats(&self) -> DedupStats {
        self.dedup.stats()
    }

    /// Changes the dedup table's byte budget (see `Dedup::set_budget`: a
    /// smaller one evicts the oldest buckets early, counted).
    pub fn set_dedup_budget(&mut self, budget_bytes: usize) {
        self.dedup.set_budget(budget_bytes);
    }

    /// What the key budgets changed so far (cumulative).
    pub fn budget_stats(&self) -> BudgetStats {
        self.budget
    }

    /// Source lookups the enricher's table of shared /24 origins answered
    /// since the last call ([`Enricher::prefix24_origins`]; the enricher's
    /// own [`Enricher::lookup_counts`] does not see them).
    pub fn take_table_lookups(&mut self) -> LookupCounts {
        self.addresses.take_table_lookups()
    }

    /// Number of windows held open (not yet emitted).
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    /// Whether moving the head to `head_ms` would close a window: an idle
    /// advance that does not changes nothing worth recording.
    pub fn idle_advance_closes(&self, head_ms: i64) -> bool {
        let Some(watermark) = self.cfg.window.watermark(Some(head_ms)) else {
            return false;
        };
        let closed_before = self.cfg.window.closed_before(watermark);
        self.last_marker.is_none_or(|marker| closed_before > marker)
    }

    /// Advances the head by processing time while the partition is idle.
    /// `at_offset` is the next offset to be consumed; the advance is recorded
    /// so that a replay applies it at the same point. Returns false, changing
    /// nothing, when the record is full ([`MAX_IDLE_ADVANCES`]).
    pub fn advance_idle(&mut self, head_ms: i64, at_offset: i64) -> bool {
        self.apply_recorded_idle(at_offset);
        if self.head.is_some_and(|h| h >= head_ms) {
            return true;
        }
        let all_applied = self.idle_applied == self.idle_log.len();
        let full = self.idle_log.len() >= MAX_IDLE_ADVANCES;
        match self.idle_log.last_mut() {
            Some(last) if last.0 == at_offset && all_applied => {
                last.1 = last.1.max(head_ms);
            }
            _ if full => return false,
            _ => {
                self.idle_log.push((at_offset, head_ms));
                self.idle_applied = self.idle_log.len();
            }
        }
        self.head = Some(head_ms);
        self.next_offset = self.next_offset.max(at_offset);
        true
    }

    /// Applies recorded idle advances (from a resume point) due at or before
    /// `offset`. `process_batch` calls it; call it when a replay ends at
    /// `offset` without reaching a message there.
    pub(crate) fn apply_recorded_idle(&mut self, offset: i64) {
        while let Some(&(at, head_ms)) = self.idle_log.get(self.idle_applied) {
            if at > offset {
                break;
            }
            self.head = Some(self.head.map_or(head_ms, |h| h.max(head_ms)));
            self.idle_applied += 1;
        }
    }

    /// Emits the partials of every newly closed window (window order, then
    /// dimension, then key) into `out`, and the marker when `closed_before`
    /// increased. `enricher` only names sectors.
    pub fn take_closed<E: Enricher + ?Sized>(
        &mut self,
        enricher: &E,
        out: &mut Vec<pb::Partial>,
    ) -> Option<pb::WindowClosed> {
        let watermark = self.watermark()?;
        let closed_before = self.cfg.window.closed_before(watermark);
        if self.last_marker.is_some_and(|m| closed_before <= m) {
            return None;
        }
        for window in self.windows.take_before(closed_before) {
            self.roll_up(window, enricher, out);
        }
        self.emitted_before = self.emitted_before.max(closed_before);
        self.last_marker = Some(closed_before);
        self.prune();
        Some(pb::WindowClosed {
            input_partition: self.partition,
            input_partitions: self.partitions,
            closed_before_ms: closed_before,
            watermark_ms: watermark,
        })
    }

    /// End of input: emits every open window and a final marker
    /// (`closed_before_ms = i64::MAX`), as if the watermark went to +inf.
    /// Nothing processed afterwards is ever emitted.
    pub fn flush<E: Enricher + ?Sized>(
        &mut self,
        enricher: &E,
        out: &mut Vec<pb::Partial>,
    ) -> pb::WindowClosed {
        for window in self.windows.take_all() {
            self.roll_up(window, enricher, out);
        }
        self.emitted_before = i64::MAX;
        self.last_marker = Some(i64::MAX);
        self.windows.clear_buckets();
        pb::WindowClosed {
            input_partition: self.partition,
            input_partitions: self.partitions,
            closed_before_ms: i64::MAX,
            watermark_ms: i64::MAX,
        }
    }

    /// After a close: forgets the buckets, applied idle advances and clock
    /// entries no replay needs any more.
    fn prune(&mut self) {
        self.windows.prune_bound_buckets(self.emitted_before);
        let replay_start = self.replay_start();
        if let Some(watermark) = self.cfg.window.watermark(replay_start.head_before) {
            self.windows
                .prune_unbound_buckets(watermark.saturating_sub(self.cfg.dedup.horizon_ms));
        }
        let replay_from = replay_start.offset;
        let before_replay = self
            .idle_log
            .iter()
            .take(self.idle_applied)
            .take_while(|(at, _)| *at < replay_from)
            .count();
        self.idle_log.drain(..before_replay);
        self.idle_applied -= before_replay;
        self.clock.prune(replay_from);
    }

    /// The replay point (module doc): a fixpoint over the open windows and
    /// the dedup buckets.
    fn replay_start(&self) -> InputStart {
        let horizon = self.cfg.dedup.horizon_ms;
        self.windows.replay_start(
            InputStart {
                offset: self.next_offset,
                head_before: self.head,
            },
            self.emitted_before,
            |head_before| {
                self.cfg
                    .window
                    .watermark(head_before)
                    .map_or(i64::MIN, |watermark| watermark.saturating_sub(horizon))
            },
        )
    }

    /// What to commit as offset metadata with the outputs emitted so far
    /// (see the module doc for why replaying from it is exact).
    pub fn resume_point(&self) -> ResumePoint {
        let replay_start = self.replay_start();
        ResumePoint {
            replay_from_offset: replay_start.offset,
            head_before: replay_start.head_before,
            emitted_before: self.last_marker,
            idle_advances: self
                .idle_log
                .iter()
                .copied()
                .filter(|(at, _)| *at >= replay_start.offset)
                .collect(),
            clock: self.clock.for_replay_from(replay_start.offset),
        }
    }

    fn roll_up<E: Enricher + ?Sized>(
        &mut self,
        window: OpenWindow,
        enricher: &E,
        out: &mut Vec<pb::Partial>,
    ) {
        let from = out.len();
        let stats = rollup::roll_up(
            &window.cells,
            window.start,
            self.addresses.origins(),
            |sector| enricher.sector_name(SectorId(sector)),
            &self.cfg.keys,
            out,
        );
        let over_budget = window.cells.over_budget_events;
        self.budget.over_budget_events += over_budget;
        self.budget.over_budget_windows += u64::from(over_budget > 0);
        self.budget.folded_keys += stats.folded_keys;
        self.budget.capped_count_maps += stats.capped_count_maps;
        for partial in &mut out[from..] {
            partial.input_partition = self.partition;
        }
        self.windows.recycle(window.cells);
    }
}
