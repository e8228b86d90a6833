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
//! lookups of IPv4 addresses go through small direct-mapped caches; the
//! `Enricher` must therefore be a pure function of the address.
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

use std::fmt::Write as _;

use rustc_hash::FxHashMap;

use crate::dedup::{Dedup, DedupConfig, DedupStats};
use crate::enrich::{Enricher, Origin, SectorId};
use crate::event::{DecodeError, EventView, decode_batch};
use crate::fingerprint::{Field, FingerprintSpec, Fingerprinter};
use crate::proto::v1::internal as pb;
use crate::sketch::source_hash;
use crate::validate::{Limits, Rejection, validate_batch};
use crate::window::{WindowConfig, window_start};

/// Everything the ingest stage's semantics depend on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestConfig {
    pub window: WindowConfig,
    pub dedup: DedupConfig,
    pub fingerprint: FingerprintSpec,
    pub limits: Limits,
}

/// Counts of one processed message, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Events in the message.
    pub events: u64,
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

/// Where and how to resume a partition after a restart; carried in the
/// committed offset's metadata (see [`ResumePoint::to_metadata`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResumePoint {
    /// Re-read the input partition from this offset.
    pub replay_from_offset: i64,
    /// The partition's head just before `replay_from_offset`.
    pub head_before: Option<i64>,
    /// Every window starting before this was already emitted.
    pub emitted_before: Option<i64>,
    /// Recorded idle advances `(at_offset, head_ms)` with `at_offset >= replay_from_offset`:
    /// applied before processing the message at `at_offset`.
    pub idle_advances: Vec<(i64, i64)>,
}

/// Why resume metadata could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    #[error("unsupported resume metadata version")]
    Version,
    #[error("malformed resume metadata field `{0}`")]
    Malformed(&'static str),
}

fn fmt_opt(o: Option<i64>) -> String {
    o.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn parse_i64(s: &str, field: &'static str) -> Result<i64, ResumeError> {
    s.parse().map_err(|_| ResumeError::Malformed(field))
}

fn parse_opt(s: &str, field: &'static str) -> Result<Option<i64>, ResumeError> {
    if s == "-" {
        Ok(None)
    } else {
        parse_i64(s, field).map(Some)
    }
}

/// Splits "v1;k=v;k=v" into its fields after checking the version.
pub(crate) fn metadata_fields(s: &str) -> Result<FxHashMap<&str, &str>, ResumeError> {
    let mut parts = s.split(';');
    if parts.next() != Some("v1") {
        return Err(ResumeError::Version);
    }
    let mut m = FxHashMap::default();
    for p in parts {
        let (k, v) = p.split_once('=').ok_or(ResumeError::Malformed("field"))?;
        m.insert(k, v);
    }
    Ok(m)
}

impl ResumePoint {
    /// Compact, versioned text: `v1;r=<offset>;h=<head|->;e=<emitted|->;i=<off>:<head>,...`.
    pub fn to_metadata(&self) -> String {
        let mut s = format!(
            "v1;r={};h={};e={};i=",
            self.replay_from_offset,
            fmt_opt(self.head_before),
            fmt_opt(self.emitted_before)
        );
        for (i, (o, h)) in self.idle_advances.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "{o}:{h}");
        }
        s
    }

    /// Parses [`ResumePoint::to_metadata`] output.
    pub fn from_metadata(s: &str) -> Result<Self, ResumeError> {
        let m = metadata_fields(s)?;
        let get = |k: &'static str| m.get(k).copied().ok_or(ResumeError::Malformed(k));
        let mut idle_advances = Vec::new();
        let i = get("i")?;
        if !i.is_empty() {
            for pair in i.split(',') {
                let (o, h) = pair.split_once(':').ok_or(ResumeError::Malformed("i"))?;
                idle_advances.push((parse_i64(o, "i")?, parse_i64(h, "i")?));
            }
        }
        Ok(ResumePoint {
            replay_from_offset: parse_i64(get("r")?, "r")?,
            head_before: parse_opt(get("h")?, "h")?,
            emitted_before: parse_opt(get("e")?, "e")?,
            idle_advances,
        })
    }
}

// ---------------------------------------------------------------------------
// cells

mod cells;

use cells::{OriginKey, Unique, V6_TAG, WindowCells, sector_key};

#[derive(Debug)]
struct OpenWindow {
    start: i64,
    /// First input offset that put anything into this window.
    first_offset: i64,
    /// Head just before that offset.
    head_before: Option<i64>,
    cells: WindowCells,
}

#[derive(Clone, Copy, Debug)]
struct BucketRec {
    first_offset: i64,
    head_before: Option<i64>,
}

const CACHE_BITS: u32 = 16;
const EMPTY: u32 = u32::MAX;

/// Direct-mapped cache IPv4 address → id.
#[derive(Debug)]
struct V4Cache {
    slots: Vec<(u32, u32)>,
}

impl V4Cache {
    fn new() -> Self {
        V4Cache {
            slots: vec![(0, EMPTY); 1 << CACHE_BITS],
        }
    }
    #[inline]
    fn slot(ip: u32) -> usize {
        (ip.wrapping_mul(0x9E37_79B1) >> (32 - CACHE_BITS)) as usize
    }
    #[inline]
    fn get(&self, ip: u32) -> Option<u32> {
        match self.slots.get(Self::slot(ip)) {
            Some(&(k, v)) if k == ip && v != EMPTY => Some(v),
            _ => None,
        }
    }
    /// Loads the slot of `ip` (a cache hint; the value means nothing).
    #[inline]
    fn peek(&self, ip: u32) -> u32 {
        self.slots.get(Self::slot(ip)).map_or(0, |s| s.0)
    }
    #[inline]
    fn put(&mut self, ip: u32, v: u32) {
        if let Some(s) = self.slots.get_mut(Self::slot(ip)) {
            *s = (ip, v);
        }
    }
}

fn v4(b: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(b).ok().map(u32::from_be_bytes)
}

/// Whether every fingerprint under `spec` determines its dedup bucket.
fn time_bound(spec: &FingerprintSpec, dedup_bucket_ms: i64) -> bool {
    let divides = |tb: i64| tb > 0 && dedup_bucket_ms > 0 && dedup_bucket_ms % tb == 0;
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

/// The ingest processor of one input partition. Single owner, no locking.
#[derive(Debug)]
pub struct PartitionIngest {
    cfg: IngestConfig,
    partition: u32,
    partitions: u32,
    fingerprinter: Fingerprinter,
    dedup: Dedup,
    time_bound: bool,
    head: Option<i64>,
    /// Watermark of the last `dedup.expire` call.
    expired_at: Option<i64>,
    /// Windows starting before this are emitted (i64::MIN: none).
    emitted_before: i64,
    last_marker: Option<i64>,
    /// Open windows, sorted by start; few.
    windows: Vec<OpenWindow>,
    last_window: usize,
    buckets: FxHashMap<i64, BucketRec>,
    last_bucket: Option<i64>,
    idle_log: Vec<(i64, i64)>,
    idle_applied: usize,
    next_offset: i64,
    origins: Vec<Origin>,
    origin_ids: FxHashMap<Origin, u32>,
    src_cache: V4Cache,
    dst_cache: V4Cache,
    views: Vec<EventView<'static>>,
    scratch: Scratch,
    /// Cells of rolled-up windows, emptied, for the next windows to reuse.
    cell_pool: Vec<WindowCells>,
}

/// Most recycled `WindowCells` kept (more than the windows open at once).
const CELL_POOL: usize = 4;

/// Per-batch buffers of the phased hot loop, reused across batches.
#[derive(Debug, Default)]
struct Scratch {
    /// Cell keys of every event of the batch.
    keys: Vec<(OriginKey, u32)>,
    /// Per non-late event: its index in the batch, fingerprint, time, outcome.
    idx: Vec<u32>,
    fps: Vec<u128>,
    times: Vec<i64>,
    dups: Vec<bool>,
    /// Runs of non-late events `[start..)` sharing one dedup expiry state:
    /// `(start, watermark to expire at before the run)`.
    runs: Vec<(usize, Option<i64>)>,
    /// Counted events with their resolved cells, in event order.
    pending: Vec<Pending>,
}

/// A counted event whose cells are resolved but not yet updated.
#[derive(Clone, Copy, Debug)]
struct Pending {
    event: u32,
    dup: bool,
    window: i64,
    ids: cells::CellIds,
    source_hash: u64,
}

/// Events whose cell cache misses are taken together.
const CELL_GROUP: usize = 32;

#[inline]
fn unique_of(ev: &EventView<'_>) -> Unique {
    Unique {
        time_ms: ev.time_ms,
        packets: ev.packets,
        bytes: ev.bytes,
        dst_port: ev.dst_port,
        kind: ev.kind as u32,
        rule_id: ev.rule_id,
    }
}

impl PartitionIngest {
    /// A fresh processor for input partition `partition` of `partitions`.
    pub fn new(cfg: IngestConfig, partition: u32, partitions: u32) -> Self {
        PartitionIngest {
            fingerprinter: Fingerprinter::new(cfg.fingerprint.clone()),
            dedup: Dedup::new(cfg.dedup.clone()),
            time_bound: time_bound(&cfg.fingerprint, cfg.dedup.bucket_ms),
            cfg,
            partition,
            partitions,
            head: None,
            expired_at: None,
            emitted_before: i64::MIN,
            last_marker: None,
            windows: Vec::new(),
            last_window: 0,
            buckets: FxHashMap::default(),
            last_bucket: None,
            idle_log: Vec::new(),
            idle_applied: 0,
            next_offset: 0,
            origins: Vec::new(),
            origin_ids: FxHashMap::default(),
            src_cache: V4Cache::new(),
            dst_cache: V4Cache::new(),
            views: Vec::new(),
            scratch: Scratch::default(),
            cell_pool: Vec::new(),
        }
    }

    /// A processor that resumes from `rp`: the caller re-reads the partition
    /// from `rp.replay_from_offset` and feeds every message to `process_batch`.
    pub fn resume(cfg: IngestConfig, partition: u32, partitions: u32, rp: &ResumePoint) -> Self {
        let mut p = Self::new(cfg, partition, partitions);
        p.head = rp.head_before;
        p.emitted_before = rp.emitted_before.unwrap_or(i64::MIN);
        p.last_marker = rp.emitted_before;
        p.idle_log = rp.idle_advances.clone();
        p.next_offset = rp.replay_from_offset;
        p
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
    pub fn apply_recorded_idle(&mut self, offset: i64) {
        while let Some(&(at, h)) = self.idle_log.get(self.idle_applied) {
            if at > offset {
                break;
            }
            self.head = Some(self.head.map_or(h, |x| x.max(h)));
            self.idle_applied += 1;
        }
    }

    #[inline]
    fn intern(&mut self, o: Origin) -> u32 {
        if let Some(&id) = self.origin_ids.get(&o) {
            return id;
        }
        let id = self.origins.len() as u32;
        self.origins.push(o);
        self.origin_ids.insert(o, id);
        id
    }

    #[inline]
    fn cell_key<E: Enricher + ?Sized>(
        &mut self,
        ev: &EventView<'_>,
        enricher: &mut E,
    ) -> (OriginKey, u32) {
        let (prefix, origin) = match v4(ev.src_ip) {
            Some(ip) => {
                let origin = match self.src_cache.get(ip) {
                    Some(id) => id,
                    None => {
                        let o = normalize(enricher.origin(ev.src_ip));
                        let id = self.intern(o);
                        self.src_cache.put(ip, id);
                        id
                    }
                };
                (u64::from(ip >> 8), origin)
            }
            None => {
                let mut p = [0u8; 8];
                if let Some(s) = ev.src_ip.get(..6) {
                    p[2..8].copy_from_slice(s);
                }
                let o = normalize(enricher.origin(ev.src_ip));
                (u64::from_be_bytes(p) | V6_TAG, self.intern(o))
            }
        };
        let sector = match v4(ev.dst_ip) {
            Some(ip) => match self.dst_cache.get(ip) {
                Some(s) => s as u16,
                None => {
                    let s = enricher.sector(ev.dst_ip).0;
                    self.dst_cache.put(ip, u32::from(s));
                    s
                }
            },
            None => enricher.sector(ev.dst_ip).0,
        };
        let country = self
            .origins
            .get(origin as usize)
            .map_or(Origin::UNKNOWN.country, |o| o.country);
        (OriginKey { prefix, origin }, sector_key(country, sector))
    }

    /// Index of the open window starting at `start`, opened when missing.
    #[inline]
    fn window_idx(&mut self, start: i64, offset: i64, head_before: Option<i64>) -> usize {
        match self.windows.get(self.last_window) {
            Some(w) if w.start == start => self.last_window,
            _ => {
                let idx = match self.windows.binary_search_by_key(&start, |w| w.start) {
                    Ok(i) => i,
                    Err(i) => {
                        let w = OpenWindow {
                            start,
                            first_offset: offset,
                            head_before,
                            cells: self.cell_pool.pop().unwrap_or_default(),
                        };
                        self.windows.insert(i, w);
                        i
                    }
                };
                self.last_window = idx;
                idx
            }
        }
    }

    /// The cells of the open window starting at `start` (never opens one).
    #[inline]
    fn window_cells(&mut self, start: i64) -> Option<&mut WindowCells> {
        let idx = match self.windows.get(self.last_window) {
            Some(w) if w.start == start => self.last_window,
            _ => {
                let i = self
                    .windows
                    .binary_search_by_key(&start, |w| w.start)
                    .ok()?;
                self.last_window = i;
                i
            }
        };
        self.windows.get_mut(idx).map(|w| &mut w.cells)
    }

    #[inline]
    fn note_bucket(&mut self, t: i64, offset: i64, head_before: Option<i64>) {
        let b = t.div_euclid(self.cfg.dedup.bucket_ms.max(1));
        if self.last_bucket == Some(b) {
            return;
        }
        self.last_bucket = Some(b);
        self.buckets.entry(b).or_insert(BucketRec {
            first_offset: offset,
            head_before,
        });
    }

    /// Processes one input message (an `AttackEventBatch` payload) at `offset`.
    /// A rejected message leaves all state untouched.
    pub fn process_batch<E: Enricher + ?Sized>(
        &mut self,
        payload: &[u8],
        msg_time_ms: Option<i64>,
        offset: i64,
        enricher: &mut E,
    ) -> Result<BatchStats, Rejection> {
        // Reuse the allocation of the view buffer across payload lifetimes.
        let mut views: Vec<EventView<'_>> = std::mem::take(&mut self.views);
        let res = self.process_views(payload, msg_time_ms, offset, enricher, &mut views);
        views.clear();
        // Empty, so `map` never runs; in-place collect keeps the allocation.
        self.views = views.into_iter().map(|_| EventView::default()).collect();
        res
    }

    fn process_views<'a, E: Enricher + ?Sized>(
        &mut self,
        payload: &'a [u8],
        msg_time_ms: Option<i64>,
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
        validate_batch(views, msg_time_ms, &self.cfg.limits)?;
        self.apply_recorded_idle(offset);

        let size = self.cfg.window.size();
        let lateness = self.cfg.window.allowed_lateness_ms;
        let ooo = self.cfg.window.out_of_orderness_ms;
        let head_start = self.head;
        let mut st = BatchStats {
            events: views.len() as u64,
            ..BatchStats::default()
        };
        // Phase 1: keys, lateness and head progression (neither depends on
        // dedup outcomes), fingerprints of the non-late events.
        let mut sc = std::mem::take(&mut self.scratch);
        sc.keys.clear();
        sc.idx.clear();
        sc.fps.clear();
        sc.times.clear();
        sc.runs.clear();
        let horizon = self.cfg.dedup.horizon_ms.max(0);
        let bucket = self.cfg.dedup.bucket_ms.max(1);
        // Dedup expiry depends on the watermark only through the first live
        // bucket (dedup module doc): a new run starts when that changes.
        let first_live = |wm: i64| wm.saturating_sub(horizon).div_euclid(bucket);
        let mut run_live: Option<i64> = None;
        // Load the enrichment cache slots of the whole batch first, so their
        // misses overlap instead of stalling each event's key in turn.
        let mut touch = 0u32;
        for ev in views.iter() {
            if let Some(ip) = v4(ev.src_ip) {
                touch ^= self.src_cache.peek(ip);
            }
            if let Some(ip) = v4(ev.dst_ip) {
                touch ^= self.dst_cache.peek(ip);
            }
        }
        std::hint::black_box(touch);
        for (i, ev) in views.iter().enumerate() {
            let t = ev.time_ms;
            let ws = window_start(t, size);
            let key = self.cell_key(ev, enricher);
            sc.keys.push(key);
            let mut wm = None;
            if let Some(h) = self.head {
                let w = h.saturating_sub(ooo);
                if ws.saturating_add(size).saturating_add(lateness) <= w {
                    st.late += 1;
                    let cur = window_start(h, size);
                    if cur >= self.emitted_before {
                        let wi = self.window_idx(cur, offset, head_start);
                        if let Some((oc, sc)) = self
                            .windows
                            .get_mut(wi)
                            .and_then(|w| w.cells.cells_mut(key.0, key.1))
                        {
                            oc.core.add_late();
                            sc.core.add_late();
                        }
                    } else {
                        st.replayed_into_emitted += 1;
                    }
                    continue;
                }
                wm = Some(w);
            }
            let live = wm.map(first_live);
            if sc.runs.is_empty() || (live.is_some() && live != run_live) {
                sc.runs.push((sc.fps.len(), wm));
                run_live = live;
            }
            sc.idx.push(i as u32);
            sc.fps.push(self.fingerprinter.fingerprint(ev));
            sc.times.push(t);
            self.head = Some(self.head.map_or(t, |h| h.max(t)));
        }
        // Phase 2: dedup, a run at a time (cache misses overlap within a run).
        sc.dups.clear();
        sc.dups.resize(sc.fps.len(), false);
        for (r, &(a, wm)) in sc.runs.iter().enumerate() {
            let b = sc.runs.get(r + 1).map_or(sc.fps.len(), |n| n.0);
            if let Some(wm) = wm
                && self.expired_at != Some(wm)
            {
                self.dedup.expire(wm);
                self.expired_at = Some(wm);
            }
            if let (Some(f), Some(t), Some(d)) =
                (sc.fps.get(a..b), sc.times.get(a..b), sc.dups.get_mut(a..b))
            {
                self.dedup.check_insert_batch(f, t, d);
            }
        }
        // Phase 3a: the cells of every counted event (windows and cells are
        // created in event order), and source hashes.
        sc.pending.clear();
        for (&i, &dup) in sc.idx.iter().zip(&sc.dups) {
            let (Some(ev), Some(&key)) = (views.get(i as usize), sc.keys.get(i as usize)) else {
                continue;
            };
            let t = ev.time_ms;
            let ws = window_start(t, size);
            self.note_bucket(t, offset, head_start);
            if dup {
                st.duplicates += 1;
            } else {
                st.unique += 1;
            }
            if ws >= self.emitted_before {
                let wi = self.window_idx(ws, offset, head_start);
                let Some(w) = self.windows.get_mut(wi) else {
                    continue;
                };
                let ids = w.cells.ids(key.0, key.1);
                let h = if dup { 0 } else { source_hash(ev.src_ip) };
                sc.pending.push(Pending {
                    event: i,
                    dup,
                    window: ws,
                    ids,
                    source_hash: h,
                });
            } else {
                st.replayed_into_emitted += 1;
            }
        }
        // Phase 3b: a group at a time, load what the updates read (misses
        // overlap), then update.
        for group in sc.pending.chunks(CELL_GROUP) {
            let mut touch = 0u64;
            for p in group {
                if let Some(cells) = self.window_cells(p.window) {
                    touch ^= cells.touch_cells(p.ids);
                }
            }
            for p in group.iter().filter(|p| !p.dup) {
                let (Some(ev), Some(cells)) =
                    (views.get(p.event as usize), self.window_cells(p.window))
                else {
                    continue;
                };
                touch ^= cells.touch_tables(p.ids, &unique_of(ev), p.source_hash);
            }
            std::hint::black_box(touch);
            for p in group {
                let Some(ev) = views.get(p.event as usize) else {
                    continue;
                };
                let Some((oc, sc)) = self.window_cells(p.window).and_then(|c| c.at(p.ids)) else {
                    continue;
                };
                if p.dup {
                    oc.core.add_duplicate();
                    sc.core.add_duplicate();
                } else {
                    let u = unique_of(ev);
                    oc.core.add_unique(&u);
                    sc.core.add_unique(&u);
                    oc.add_source(ev.src_ip, p.source_hash);
                    sc.sources.insert_hash(p.source_hash);
                }
            }
        }
        self.scratch = sc;
        Ok(st)
    }

    /// Emits the partials of every newly closed window (window order, then
    /// dimension, then key) into `out`, and the marker when `closed_before`
    /// increased. `enricher` only names sectors.
    pub fn take_closed<E: Enricher + ?Sized>(
        &mut self,
        enricher: &E,
        out: &mut Vec<pb::Partial>,
    ) -> Option<pb::WindowClosed> {
        let wm = self.watermark()?;
        let cb = self.cfg.window.closed_before(wm);
        if self.last_marker.is_some_and(|m| cb <= m) {
            return None;
        }
        let n = self.windows.partition_point(|w| w.start < cb);
        let closed: Vec<OpenWindow> = self.windows.drain(..n).collect();
        for w in closed {
            self.roll_up(w, enricher, out);
        }
        self.last_window = 0;
        self.emitted_before = self.emitted_before.max(cb);
        self.last_marker = Some(cb);
        self.prune(wm);
        Some(pb::WindowClosed {
            input_partition: self.partition,
            input_partitions: self.partitions,
            closed_before_ms: cb,
            watermark_ms: wm,
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
        let closed: Vec<OpenWindow> = self.windows.drain(..).collect();
        for w in closed {
            self.roll_up(w, enricher, out);
        }
        self.last_window = 0;
        self.emitted_before = i64::MAX;
        self.last_marker = Some(i64::MAX);
        self.buckets.clear();
        self.last_bucket = None;
        pb::WindowClosed {
            input_partition: self.partition,
            input_partitions: self.partitions,
            closed_before_ms: i64::MAX,
            watermark_ms: i64::MAX,
        }
    }

    fn prune(&mut self, wm: i64) {
        let bm = self.cfg.dedup.bucket_ms.max(1);
        let horizon = self.cfg.dedup.horizon_ms;
        let e = self.emitted_before;
        let tb = self.time_bound;
        self.buckets.retain(|&b, _| {
            let end = b.saturating_add(1).saturating_mul(bm);
            let irrelevant = end <= e;
            let expired = end <= wm.saturating_sub(horizon);
            !(irrelevant && (tb || expired))
        });
        self.last_bucket = None;
        let r = self.resume_point_inner().0;
        let drop = self
            .idle_log
            .iter()
            .take(self.idle_applied)
            .take_while(|(o, _)| *o < r)
            .count();
        self.idle_log.drain(..drop);
        self.idle_applied -= drop;
    }

    fn resume_point_inner(&self) -> (i64, Option<i64>) {
        let mut best = (self.next_offset, self.head);
        for w in &self.windows {
            if w.first_offset < best.0 {
                best = (w.first_offset, w.head_before);
            }
        }
        for b in self.buckets.values() {
            if b.first_offset < best.0 {
                best = (b.first_offset, b.head_before);
            }
        }
        best
    }

    /// What to commit as offset metadata with the outputs emitted so far
    /// (see the module doc for why replaying from it is exact).
    pub fn resume_point(&self) -> ResumePoint {
        let (r, head_before) = self.resume_point_inner();
        ResumePoint {
            replay_from_offset: r,
            head_before,
            emitted_before: self.last_marker,
            idle_advances: self
                .idle_log
                .iter()
                .copied()
                .filter(|(o, _)| *o >= r)
                .collect(),
        }
    }

    fn roll_up<E: Enricher + ?Sized>(
        &mut self,
        w: OpenWindow,
        enricher: &E,
        out: &mut Vec<pb::Partial>,
    ) {
        let mut cells = w.cells;
        cells::roll_up(
            &cells,
            w.start,
            &self.origins,
            |s| enricher.sector_name(SectorId(s)),
            out,
        );
        if self.cell_pool.len() < CELL_POOL {
            cells.recycle();
            self.cell_pool.push(cells);
        }
    }
}

/// Country bytes normalised to what `country_str` returns, so the compact key
/// maps one-to-one onto the key string.
fn normalize(o: Origin) -> Origin {
    let country = match o.country_str().as_bytes() {
        &[a, b] => [a, b],
        _ => *b"ZZ",
    };
    Origin {
        country,
        asn: o.asn,
    }
}
