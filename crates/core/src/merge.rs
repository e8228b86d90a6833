//! The merge stage's engine: merges partials from every input partition and
//! finalises a window once every input partition has closed it.
//!
//! One `Merger` consumes one offset sequence (one partials partition). Markers
//! carry the number of input partitions; a window is final when every input
//! partition `0..n` has sent a marker with `closed_before_ms > window_start`.
//! Partials for an already finalised window are counted, never merged into a
//! published rollup.
//!
//! At-least-once: after a crash between producing and committing, an ingest
//! writes some partials again. Each partial names its input partition, and a
//! merger merges each (input partition, window, dimension, key) at most once:
//! a second partial for it is dropped (`duplicate_partials`), and so is any
//! partial of a window its input partition has already closed (its marker
//! passed: `partials_after_close`). Under exactly-once neither happens.
//!
//! Resume: [`Merger::resume_point`] gives the first offset of every open window
//! (a replay from there re-reads all their partials), the finalisation frontier
//! (windows below it are never published again; their replayed partials are
//! skipped) and the markers seen so far. A replay re-reading markers only ever
//! raises them to values already held, so it may at worst delay finalisation,
//! never change a rollup.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rustc_hash::FxHashMap;

use crate::aggregate::{Aggregate, AggregateError};
use crate::ingest::{ResumeError, metadata_fields};
use crate::proto::v1::internal as pb;
use crate::proto::v1::{Dimension, Rollup};

/// Why a `PartialBatch` was refused (the whole batch; state untouched).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("bad aggregate: {0}")]
    BadAggregate(#[from] AggregateError),
    #[error("partial without aggregate")]
    MissingAggregate,
    #[error("unknown dimension {0}")]
    UnknownDimension(i32),
    #[error("marker says {got} input partitions, expected {expected}")]
    PartitionCount { expected: u32, got: u32 },
    #[error("marker or partial for input partition {partition} of {partitions}")]
    PartitionOutOfRange { partition: u32, partitions: u32 },
    #[error("marker claims {0} input partitions, more than any topic holds")]
    AbsurdPartitionCount(u32),
}

/// Counters of a merger, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Partials merged into open windows.
    pub partials: u64,
    /// Markers applied.
    pub markers: u64,
    /// Partials that arrived for an already finalised window (not merged).
    pub partials_after_final: u64,
    /// Of those, partials re-read by a resume replay (expected, harmless).
    pub replayed_partials_skipped: u64,
    /// Partials for an (input partition, window, dimension, key) already
    /// merged (written again after an at-least-once crash; not merged).
    pub duplicate_partials: u64,
    /// Partials of a window their input partition had already closed
    /// (written again after an at-least-once crash; not merged).
    pub partials_after_close: u64,
    /// Rollups produced.
    pub rollups: u64,
}

/// More input partitions than any Kafka topic holds (metadata sanity bound).
const MAX_INPUT_PARTITIONS: usize = 1 << 20;

/// Resume state of a merger; see [`MergeResumePoint::to_metadata`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeResumePoint {
    /// Re-read the partials partition from here.
    pub replay_from_offset: i64,
    /// The offset after the last applied batch (replayed partials below it
    /// for finalised windows are expected).
    pub checkpoint_offset: i64,
    /// Windows starting before this were finalised and published.
    pub finalized_before: Option<i64>,
    /// Latest `closed_before_ms` per input partition (`None`: no marker yet).
    pub closed: Vec<Option<i64>>,
}

impl MergeResumePoint {
    /// `v1;r=<offset>;k=<checkpoint>;f=<finalized|->;c=<closed,...>`; a closed value is `-`
    /// (none), `x` (i64::MAX) or the number, and `V*K` stands for `K` partitions
    /// in a row closed at `V` (markers of busy partitions mostly agree).
    pub fn to_metadata(&self) -> String {
        let f = self
            .finalized_before
            .map_or_else(|| "-".to_owned(), |v| v.to_string());
        let mut s = format!(
            "v1;r={};k={};f={f};c=",
            self.replay_from_offset, self.checkpoint_offset
        );
        let mut runs = self.closed.chunk_by(|a, b| a == b).peekable();
        while let Some(run) = runs.next() {
            match run.first().copied().flatten() {
                None => s.push('-'),
                Some(i64::MAX) => s.push('x'),
                Some(v) => {
                    let _ = write!(s, "{v}");
                }
            }
            if run.len() > 1 {
                let _ = write!(s, "*{}", run.len());
            }
            if runs.peek().is_some() {
                s.push(',');
            }
        }
        s
    }

    /// [`MergeResumePoint::to_metadata`] within `budget` bytes: when the
    /// per-partition markers do not fit, every partition is recorded at the
    /// lowest of them (`-` if one has none). That keeps the finalisation
    /// frontier (their minimum) and only lowers what a resumed merger believes
    /// the others closed; their next markers raise it again. Nothing is
    /// published twice (`finalized_before` is kept) and no rollup changes.
    /// `None` if even that does not fit.
    pub fn to_metadata_within(&self, budget: usize) -> Option<String> {
        let exact = self.to_metadata();
        if exact.len() <= budget {
            return Some(exact);
        }
        let lowest = self
            .closed
            .iter()
            .copied()
            .try_fold(i64::MAX, |m, c| c.map(|c| m.min(c)));
        let coarse = MergeResumePoint {
            closed: vec![lowest; self.closed.len()],
            ..self.clone()
        }
        .to_metadata();
        (coarse.len() <= budget).then_some(coarse)
    }

    /// Parses [`MergeResumePoint::to_metadata`] output.
    pub fn from_metadata(s: &str) -> Result<Self, ResumeError> {
        let m = metadata_fields(s)?;
        let get = |k: &'static str| m.get(k).copied().ok_or(ResumeError::Malformed(k));
        let num =
            |v: &str, k: &'static str| v.parse::<i64>().map_err(|_| ResumeError::Malformed(k));
        let f = get("f")?;
        let c = get("c")?;
        let mut closed = Vec::new();
        if !c.is_empty() {
            for run in c.split(',') {
                let (v, count) = match run.split_once('*') {
                    Some((v, k)) => (
                        v,
                        k.parse::<usize>()
                            .map_err(|_| ResumeError::Malformed("c"))?,
                    ),
                    None => (run, 1),
                };
                let value = match v {
                    "-" => None,
                    "x" => Some(i64::MAX),
                    v => Some(num(v, "c")?),
                };
                // A count beyond any topic's partitions is corrupt, not a reason to allocate.
                if count == 0 || closed.len() + count > MAX_INPUT_PARTITIONS {
                    return Err(ResumeError::Malformed("c"));
                }
                closed.extend(std::iter::repeat_n(value, count));
            }
        }
        Ok(MergeResumePoint {
            replay_from_offset: num(get("r")?, "r")?,
            checkpoint_offset: num(get("k")?, "k")?,
            finalized_before: if f == "-" { None } else { Some(num(f, "f")?) },
            closed,
        })
    }
}

#[derive(Debug)]
struct OpenEntry {
    agg: Aggregate,
    /// Input partitions merged into `agg` (bit `p` of word `p / 64`).
    from: Vec<u64>,
}

/// The open entries of one window: per dimension, key → entry, and the
/// offset of the window's first partial (entries leave only with their
/// window, so the minimum over the window's entries is this).
#[derive(Debug, Default)]
struct OpenWindow {
    first_offset: i64,
    /// Indexed by dimension number. Hash maps: a partial is one hash and
    /// probe instead of a B-tree descent comparing strings; the keys are
    /// sorted once, when the window is final.
    dimensions: Vec<FxHashMap<String, Box<OpenEntry>>>,
}

impl OpenWindow {
    fn entries(&self) -> usize {
        self.dimensions.iter().map(|d| d.len()).sum()
    }
}

impl OpenEntry {
    /// Marks `partition` as merged; false when it already was.
    fn insert_source(&mut self, partition: u32) -> bool {
        let (word, bit) = ((partition / 64) as usize, 1u64 << (partition % 64));
        if self.from.len() <= word {
            self.from.resize(word + 1, 0);
        }
        match self.from.get_mut(word) {
            Some(w) if *w & bit == 0 => {
                *w |= bit;
                true
            }
            _ => false,
        }
    }
}

/// Merges partials into final rollups.
#[derive(Debug)]
pub struct Merger {
    size_ms: i64,
    /// By window start. Entries are boxed: a growing map moves its values,
    /// and an entry is ~230 bytes.
    open: BTreeMap<i64, OpenWindow>,
    closed: Vec<Option<i64>>,
    /// Markers applied by this instance (a resumed merger starts without the
    /// ones before its replay offset): partials of a window below a
    /// partition's entry here are dropped. Those the replay cannot know about
    /// are of finalised windows or re-read with their first copy, so the
    /// duplicate rule drops them just the same.
    closed_seen: Vec<Option<i64>>,
    finalized_before: Option<i64>,
    next_offset: i64,
    replay_until: i64,
    stats: MergeStats,
}

impl Merger {
    /// A merger for windows of `window_size_ms`.
    pub fn new(window_size_ms: i64) -> Self {
        Merger {
            size_ms: window_size_ms.max(1),
            open: BTreeMap::new(),
            closed: Vec::new(),
            closed_seen: Vec::new(),
            finalized_before: None,
            next_offset: 0,
            replay_until: i64::MIN,
            stats: MergeStats::default(),
        }
    }

    /// A merger resuming from `rp`; re-read the partials from `rp.replay_from_offset`.
    pub fn resume(window_size_ms: i64, rp: &MergeResumePoint) -> Self {
        let mut m = Self::new(window_size_ms);
        m.closed = rp.closed.clone();
        m.finalized_before = rp.finalized_before;
        m.next_offset = rp.replay_from_offset;
        m.replay_until = rp.checkpoint_offset;
        m
    }

    pub fn stats(&self) -> MergeStats {
        self.stats
    }

    /// Number of (window, dimension, key) entries held open.
    pub fn open_entries(&self) -> usize {
        self.open.values().map(OpenWindow::entries).sum()
    }

    /// Merges one partials message read at `offset`. A malformed batch is
    /// refused whole and leaves the state untouched.
    pub fn apply(&mut self, batch: &pb::PartialBatch, offset: i64) -> Result<(), MergeError> {
        let mut parsed = Vec::with_capacity(batch.partials.len());
        for p in &batch.partials {
            if Dimension::try_from(p.dimension).is_err() || p.dimension == 0 {
                return Err(MergeError::UnknownDimension(p.dimension));
            }
            let a = p.aggregate.as_ref().ok_or(MergeError::MissingAggregate)?;
            parsed.push(Aggregate::from_proto(a)?);
        }
        let mut n = (!self.closed.is_empty()).then_some(self.closed.len() as u32);
        let known = n;
        for m in &batch.closed {
            // The state sizes per-partition tables by this count: a corrupt
            // marker must not make it allocate gigabytes.
            if m.input_partitions as usize > MAX_INPUT_PARTITIONS {
                return Err(MergeError::AbsurdPartitionCount(m.input_partitions));
            }
            match n {
                Some(e) if e != m.input_partitions => {
                    return Err(MergeError::PartitionCount {
                        expected: e,
                        got: m.input_partitions,
                    });
                }
                _ => n = Some(m.input_partitions),
            }
            if m.input_partition >= m.input_partitions {
                return Err(MergeError::PartitionOutOfRange {
                    partition: m.input_partition,
                    partitions: m.input_partitions,
                });
            }
        }
        if let Some(partitions) = n.or(known)
            && let Some(p) = batch
                .partials
                .iter()
                .find(|p| p.input_partition >= partitions)
        {
            return Err(MergeError::PartitionOutOfRange {
                partition: p.input_partition,
                partitions,
            });
        }
        // Valid: apply.
        self.next_offset = self.next_offset.max(offset.saturating_add(1));
        for (p, agg) in batch.partials.iter().zip(parsed) {
            self.merge_partial(p, agg, offset);
        }
        for m in &batch.closed {
            let n = m.input_partitions as usize;
            for closed in [&mut self.closed, &mut self.closed_seen] {
                if closed.is_empty() {
                    *closed = vec![None; n];
                }
                if let Some(c) = closed.get_mut(m.input_partition as usize) {
                    *c = Some(c.map_or(m.closed_before_ms, |v| v.max(m.closed_before_ms)));
                }
            }
            self.stats.markers += 1;
        }
        Ok(())
    }

    fn merge_partial(&mut self, p: &pb::Partial, agg: Aggregate, offset: i64) {
        if self.finalized_before.is_some_and(|f| p.window_start_ms < f) {
            self.stats.partials_after_final += 1;
            if offset < self.replay_until {
                self.stats.replayed_partials_skipped += 1;
            }
            return;
        }
        let closed_by_its_partition = self
            .closed_seen
            .get(p.input_partition as usize)
            .copied()
            .flatten()
            .is_some_and(|c| p.window_start_ms < c);
        if closed_by_its_partition {
            self.stats.partials_after_close += 1;
            return;
        }
        let window = self
            .open
            .entry(p.window_start_ms)
            .or_insert_with(|| OpenWindow {
                first_offset: offset,
                dimensions: Vec::new(),
            });
        let dimension = usize::try_from(p.dimension).unwrap_or(0);
        if window.dimensions.len() <= dimension {
            window
                .dimensions
                .resize_with(dimension + 1, FxHashMap::default);
        }
        let Some(keys) = window.dimensions.get_mut(dimension) else {
            return;
        };
        match keys.get_mut(p.key.as_str()) {
            Some(e) => {
                if !e.insert_source(p.input_partition) {
                    self.stats.duplicate_partials += 1;
                    return;
                }
                e.agg.merge(&agg);
            }
            None => {
                let mut e = OpenEntry {
                    agg,
                    from: Vec::new(),
                };
                e.insert_source(p.input_partition);
                keys.insert(p.key.clone(), Box::new(e));
            }
        }
        self.stats.partials += 1;
    }

    /// Windows starting before this are final (every partition closed them).
    pub fn final_before(&self) -> Option<i64> {
        if self.closed.is_empty() {
            return None;
        }
        self.closed
            .iter()
            .copied()
            .try_fold(i64::MAX, |m, c| c.map(|c| m.min(c)))
    }

    /// Appends the rollups of every newly final window, in (window_start,
    /// dimension, key) order, and forgets them. Returns how many were added.
    pub fn take_final(&mut self, out: &mut Vec<Rollup>) -> usize {
        let Some(fb) = self.final_before() else {
            return 0;
        };
        if self.finalized_before.is_some_and(|f| fb <= f) {
            return 0;
        }
        let rest = self.open.split_off(&fb);
        let done = std::mem::replace(&mut self.open, rest);
        let before = out.len();
        let mut keys: Vec<(String, Box<OpenEntry>)> = Vec::new();
        for (start, window) in done {
            for (dim, entries) in window.dimensions.into_iter().enumerate() {
                let d = i32::try_from(dim)
                    .ok()
                    .and_then(|d| Dimension::try_from(d).ok())
                    .unwrap_or(Dimension::Unspecified);
                keys.clear();
                keys.extend(entries);
                keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                for (key, e) in keys.drain(..) {
                    out.push(e.agg.to_rollup(d, &key, start, self.size_ms));
                }
            }
        }
        self.finalized_before = Some(fb);
        let n = out.len() - before;
        self.stats.rollups += n as u64;
        n
    }

    /// What to commit as offset metadata with the rollups published so far.
    pub fn resume_point(&self) -> MergeResumePoint {
        let r = self
            .open
            .values()
            .map(|w| w.first_offset)
            .min()
            .unwrap_or(self.next_offset);
        MergeResumePoint {
            replay_from_offset: r.min(self.next_offset),
            checkpoint_offset: self.next_offset,
            finalized_before: self.finalized_before,
            closed: self.closed.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn point(closed: Vec<Option<i64>>) -> MergeResumePoint {
        MergeResumePoint {
            replay_from_offset: 1_234_567,
            checkpoint_offset: 1_234_999,
            finalized_before: Some(1_700_000_040_000),
            closed,
        }
    }

    fn marker(input_partition: u32, input_partitions: u32) -> pb::WindowClosed {
        pb::WindowClosed {
            input_partition,
            input_partitions,
            closed_before_ms: 60_000,
            watermark_ms: 60_000,
        }
    }

    #[test]
    fn a_marker_claiming_absurd_partition_counts_is_refused_before_any_table_grows() {
        let mut m = Merger::new(60_000);
        for absurd in [u32::MAX, (MAX_INPUT_PARTITIONS + 1) as u32] {
            let batch = pb::PartialBatch {
                closed: vec![marker(0, absurd)],
                ..Default::default()
            };
            assert_eq!(
                m.apply(&batch, 7),
                Err(MergeError::AbsurdPartitionCount(absurd))
            );
        }
        assert!(m.closed.is_empty() && m.closed_seen.is_empty());
        assert_eq!(m.stats().markers, 0);
        // A sane count is taken.
        let batch = pb::PartialBatch {
            closed: vec![marker(1, 3)],
            ..Default::default()
        };
        m.apply(&batch, 8).unwrap();
        assert_eq!(m.closed, vec![None, Some(60_000), None]);
    }

    #[test]
    fn markers_run_length_encode_and_round_trip() {
        let mut closed = vec![Some(1_700_000_060_000); 500];
        closed.extend([None, None, Some(i64::MAX), Some(1_700_000_120_000)]);
        let rp = point(closed);
        let text = rp.to_metadata();
        assert!(
            text.ends_with("c=1700000060000*500,-*2,x,1700000120000"),
            "{text}"
        );
        assert_eq!(MergeResumePoint::from_metadata(&text).unwrap(), rp);
        // The format before run lengths reads the same.
        let old = "v1;r=1;k=2;f=-;c=5,5,-,x";
        assert_eq!(
            MergeResumePoint::from_metadata(old).unwrap().closed,
            vec![Some(5), Some(5), None, Some(i64::MAX)]
        );
        for bad in [
            "v1;r=1;k=2;f=-;c=5*0",
            "v1;r=1;k=2;f=-;c=5*99999999999",
            "v1;r=1;k=2;f=-;c=5*",
        ] {
            assert!(MergeResumePoint::from_metadata(bad).is_err(), "{bad}");
        }
    }

    /// Kafka's offset.metadata.max.bytes (4096) holds the merge's metadata for
    /// any partition count, even when every partition's marker differs.
    #[test]
    fn metadata_fits_kafkas_budget_for_any_partition_count() {
        for n in [1usize, 64, 1_000, 100_000, MAX_INPUT_PARTITIONS] {
            let closed: Vec<Option<i64>> = (0..n)
                .map(|p| Some(1_700_000_000_000 + (p as i64 % 7) * 60_000))
                .collect();
            let rp = point(closed);
            let text = rp.to_metadata_within(4096).unwrap();
            assert!(text.len() <= 4096, "{n}: {}", text.len());
            let back = MergeResumePoint::from_metadata(&text).unwrap();
            assert_eq!(back.closed.len(), n);
            // Coarsening keeps the frontier (the minimum) exactly.
            let min = |c: &[Option<i64>]| {
                c.iter()
                    .copied()
                    .try_fold(i64::MAX, |m, c| c.map(|c| m.min(c)))
            };
            assert_eq!(min(&back.closed), min(&rp.closed));
            assert!(back.closed.iter().zip(&rp.closed).all(|(b, r)| b <= r));
        }
        let small = point(vec![Some(5), Some(6)]);
        assert_eq!(small.to_metadata_within(4096).unwrap(), small.to_metadata());
    }

    #[test]
    fn a_newer_metadata_version_is_named() {
        assert_eq!(
            MergeResumePoint::from_metadata("v9;r=0"),
            Err(ResumeError::NewerVersion(9))
        );
        assert_eq!(
            MergeResumePoint::from_metadata("garbage"),
            Err(ResumeError::Version)
        );
    }

    /// Partials arriving in scrambled order (two windows, three dimensions,
    /// keys out of order, split over messages and input partitions) come out
    /// final in (window, dimension, key) order, each once with both
    /// partitions' events; the replay offset is the first partial of the
    /// oldest open window.
    #[test]
    fn final_rollups_come_in_window_dimension_key_order() {
        let partial =
            |window: i64, dimension: Dimension, key: &str, input_partition: u32| pb::Partial {
                dimension: dimension as i32,
                key: key.to_owned(),
                window_start_ms: window,
                aggregate: Some(
                    Aggregate {
                        raw_events: 1,
                        ..Aggregate::default()
                    }
                    .to_proto(),
                ),
                input_partition,
            };
        let dimensions = [
            Dimension::TargetSector,
            Dimension::OriginCountry,
            Dimension::OriginPrefix,
        ];
        let keys = ["b", "aa", "c", "a", "ab"];
        let mut m = Merger::new(60_000);
        let mut offset = 10;
        for window in [60_000, 0] {
            for input_partition in [1, 0] {
                for dimension in dimensions {
                    let batch = pb::PartialBatch {
                        partials: keys
                            .iter()
                            .map(|k| partial(window, dimension, k, input_partition))
                            .collect(),
                        ..Default::default()
                    };
                    m.apply(&batch, offset).unwrap();
                    offset += 1;
                }
            }
        }
        assert_eq!(m.open_entries(), 2 * 3 * 5);
        assert_eq!(m.resume_point().replay_from_offset, 10);
        let close = |p| pb::PartialBatch {
            closed: vec![pb::WindowClosed {
                input_partition: p,
                input_partitions: 2,
                closed_before_ms: 60_000,
                watermark_ms: 60_000,
            }],
            ..Default::default()
        };
        m.apply(&close(0), offset).unwrap();
        m.apply(&close(1), offset + 1).unwrap();
        let mut got = Vec::new();
        m.take_final(&mut got);
        // Window 0 (first partial at offset 16) is final; 60 000 stays open.
        let order: Vec<(i64, i32, &str, u64)> = got
            .iter()
            .map(|r| (r.window_start_ms, r.dimension, r.key.as_str(), r.raw_events))
            .collect();
        let mut want: Vec<(i64, i32, &str, u64)> = dimensions
            .iter()
            .flat_map(|d| keys.iter().map(move |k| (0, *d as i32, *k, 2)))
            .collect();
        want.sort();
        assert_eq!(order, want);
        assert_eq!(m.open_entries(), 3 * 5);
        assert_eq!(m.resume_point().replay_from_offset, 10);
    }
}
