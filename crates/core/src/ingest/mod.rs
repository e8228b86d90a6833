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
//! `resume` is the codec of [`ResumePoint`].
//!
//! # Resume (exactly-once by source replay)
//! [`PartitionIngest::resume_point`] says where a restarted stage must re-read
//! from and what replay cannot reproduce (head before that offset, the last
//! emitted window, the recorded idle advances). The replay offset `R` is the
//! minimum of: the first offset of every window still held (not yet emitted),
//! and the first offset of every dedup bucket (incarnation) that can still
//! influence an un-emitted window.
//!
//! Why that is enough: every event whose outcome reaches un-emitted output lies
//! in a window `>= emitted_before`, at or after that window's first offset. Its
//! dedup decision depends on the contents of the dedup buckets. When each
//! fingerprint determines its dedup bucket ("time-bound" fingerprints: the
//! default `Auto` spec, whose time bucket divides the dedup bucket, with
//! redeliveries of an `event_id` carrying the same `time_ms`), each bucket
//! evolves independently of the others, so only buckets ending after
//! `emitted_before` matter, and replaying from their first insertion rebuilds
//! them exactly (watermarks, hence expiry, are reproduced through `head_before`
//! and the idle advances). Buckets ending before `emitted_before` only hold
//! events of emitted windows and are ignored, so `R` trails the oldest open
//! window instead of the whole dedup horizon. For specs that are not
//! time-bound, buckets are additionally kept until they expire; that covers a
//! fingerprint recurring in a later bucket while its first bucket is live, but
//! not a chain of such recurrences across expiries (documented gap). Buckets
//! evicted early for the byte budget are not reproduced either (dedup is lossy
//! there anyway, and counted).
//!
//! On resume, windows below `emitted_before` are never emitted again: events
//! replayed into them only feed dedup, late events counted into them are
//! skipped.

mod address_cache;
mod batch;
mod cells;
mod resume;
mod windows;

pub use batch::BatchStats;
pub(crate) use resume::metadata_fields;
pub use resume::{ResumeError, ResumePoint};

use crate::dedup::{Dedup, DedupConfig, DedupStats};
use crate::enrich::{Enricher, SectorId};
use crate::event::EventView;
use crate::fingerprint::{FingerprintSpec, Fingerprinter};
use crate::proto::v1::internal as pb;
use crate::validate::Limits;
use crate::window::WindowConfig;
use address_cache::AddressCache;
use batch::BatchScratch;
use windows::{InputStart, OpenWindow, WindowSet, time_bound};

/// Everything the ingest stage's semantics depend on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestConfig {
    pub window: WindowConfig,
    pub dedup: DedupConfig,
    pub fingerprint: FingerprintSpec,
    pub limits: Limits,
}

/// The ingest processor of one input partition. Single owner, no locking.
#[derive(Debug)]
pub struct PartitionIngest {
    cfg: IngestConfig,
    partition: u32,
    partitions: u32,
    fingerprinter: Fingerprinter,
    dedup: Dedup,
    /// Whether every fingerprint determines its dedup bucket (`windows::time_bound`).
    time_bound: bool,
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
    next_offset: i64,
    addresses: AddressCache,
    /// The decoded events of the current batch (empty between batches; kept
    /// for its allocation).
    views: Vec<EventView<'static>>,
    scratch: BatchScratch,
}

impl PartitionIngest {
    /// A fresh processor for input partition `partition` of `partitions`.
    pub fn new(cfg: IngestConfig, partition: u32, partitions: u32) -> Self {
        PartitionIngest {
            fingerprinter: Fingerprinter::new(cfg.fingerprint.clone()),
            dedup: Dedup::new(cfg.dedup.clone()),
            time_bound: time_bound(&cfg.fingerprint, cfg.dedup.bucket_ms),
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
            next_offset: 0,
            addresses: AddressCache::new(),
            views: Vec::new(),
            scratch: BatchScratch::default(),
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
        ingest.next_offset = resume_point.replay_from_offset;
        ingest
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

    /// Number of windows held open (not yet emitted).
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    /// Advances the head by processing time while the partition is idle.
    /// `at_offset` is the next offset to be consumed; the advance is recorded
    /// so that a replay applies it at the same point.
    pub fn advance_idle(&mut self, head_ms: i64, at_offset: i64) {
        self.apply_recorded_idle(at_offset);
        if self.head.is_some_and(|h| h >= head_ms) {
            return;
        }
        self.head = Some(head_ms);
        let all_applied = self.idle_applied == self.idle_log.len();
        match self.idle_log.last_mut() {
            Some(last) if last.0 == at_offset && all_applied => {
                last.1 = last.1.max(head_ms);
            }
            _ => {
                self.idle_log.push((at_offset, head_ms));
                self.idle_applied = self.idle_log.len();
            }
        }
        self.next_offset = self.next_offset.max(at_offset);
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
        self.prune(watermark);
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

    /// After a close at `watermark`: forgets the buckets and the applied idle
    /// advances no replay needs any more.
    fn prune(&mut self, watermark: i64) {
        self.windows.prune_buckets(
            self.emitted_before,
            watermark.saturating_sub(self.cfg.dedup.horizon_ms),
            self.time_bound,
        );
        let replay_from = self.replay_start().offset;
        let before_replay = self
            .idle_log
            .iter()
            .take(self.idle_applied)
            .take_while(|(at, _)| *at < replay_from)
            .count();
        self.idle_log.drain(..before_replay);
        self.idle_applied -= before_replay;
    }

    fn replay_start(&self) -> InputStart {
        self.windows.replay_start(InputStart {
            offset: self.next_offset,
            head_before: self.head,
        })
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
        }
    }

    fn roll_up<E: Enricher + ?Sized>(
        &mut self,
        window: OpenWindow,
        enricher: &E,
        out: &mut Vec<pb::Partial>,
    ) {
        cells::roll_up(
            &window.cells,
            window.start,
            self.addresses.origins(),
            |sector| enricher.sector_name(SectorId(sector)),
            out,
        );
        self.windows.recycle(window.cells);
    }
}
