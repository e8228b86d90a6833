//! The partition's recorded ingest clock: entries `(from_offset, wall_ms)`
//! saying that messages from `from_offset` on (up to the next entry) are
//! judged against `wall_ms` (module doc of `ingest`, "Trusted time").

use super::MAX_CLOCK_ENTRIES;

/// Entries in ascending offsets, and a cursor at the one in force at the
/// last processed offset.
#[derive(Debug, Default)]
pub(super) struct IngestClock {
    entries: Vec<(i64, i64)>,
    /// Index of the entry in force at the last processed offset.
    cursor: usize,
}

impl IngestClock {
    /// A clock holding `entries` (from a resume point), cursor at the first.
    pub(super) fn from_entries(entries: Vec<(i64, i64)>) -> Self {
        IngestClock { entries, cursor: 0 }
    }

    /// Messages from `from_offset` on are judged against `wall_ms`. An entry
    /// at the offset of the last one replaces it (no message was judged by
    /// it yet); one below it is a caller bug and ignored.
    /// Returns false, changing nothing, when [`MAX_CLOCK_ENTRIES`] are held.
    pub(super) fn record(&mut self, from_offset: i64, wall_ms: i64) -> bool {
        let full = self.entries.len() >= MAX_CLOCK_ENTRIES;
        match self.entries.last_mut() {
            Some(last) if last.0 == from_offset => last.1 = wall_ms,
            Some(last) if last.0 > from_offset => {
                debug_assert!(false, "clock entry below the last one");
            }
            _ if full => return false,
            _ => self.entries.push((from_offset, wall_ms)),
        }
        true
    }

    /// The entry in force at `offset`, if any.
    pub(super) fn at(&self, offset: i64) -> Option<i64> {
        let recorded = self.entries.partition_point(|&(from, _)| from <= offset);
        recorded
            .checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .map(|&(_, wall_ms)| wall_ms)
    }

    /// The entry in force at `offset`, moving the cursor (offsets only grow,
    /// so it only moves forward).
    #[inline]
    pub(super) fn advance_to(&mut self, offset: i64) -> Option<i64> {
        while self
            .entries
            .get(self.cursor + 1)
            .is_some_and(|&(from, _)| from <= offset)
        {
            self.cursor += 1;
        }
        self.entries
            .get(self.cursor)
            .filter(|&&(from, _)| from <= offset)
            .map(|&(_, wall_ms)| wall_ms)
    }

    /// Forgets the entries no replay from `replay_from` needs, keeping the
    /// one in force there as the base (and never one still ahead of the
    /// cursor).
    pub(super) fn prune(&mut self, replay_from: i64) {
        let in_force = self
            .entries
            .partition_point(|&(from, _)| from <= replay_from);
        let drop = in_force.saturating_sub(1).min(self.cursor);
        self.entries.drain(..drop);
        self.cursor -= drop;
    }

    /// The entries a replay from `replay_from` needs: the base in force there
    /// and every later one.
    pub(super) fn for_replay_from(&self, replay_from: i64) -> Vec<(i64, i64)> {
        let base = self
            .entries
            .partition_point(|&(from, _)| from <= replay_from)
            .saturating_sub(1);
        self.entries.get(base..).unwrap_or_default().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{MAX_IDLE_ADVANCES, ResumePoint};

    #[test]
    fn a_full_clock_refuses_new_entries_but_still_replaces_the_last() {
        let mut clock = IngestClock::default();
        for i in 0..MAX_CLOCK_ENTRIES as i64 {
            assert!(clock.record(i * 10, 1_000 * i));
        }
        assert!(!clock.record(10_000, 9_999_999), "one more than the cap");
        assert_eq!(
            clock.at(10_000),
            Some(1_000 * (MAX_CLOCK_ENTRIES as i64 - 1))
        );
        let last = (MAX_CLOCK_ENTRIES as i64 - 1) * 10;
        assert!(clock.record(last, 42), "same offset as the last: replaced");
        assert_eq!(clock.at(last), Some(42));
        clock.advance_to(last);
        clock.prune(last);
        assert!(clock.record(last + 1, 43), "room again once pruned");
    }

    #[test]
    fn full_clock_and_idle_records_fit_kafkas_metadata_budget() {
        // Worst case the caps allow, with far-apart offsets and wall times.
        let base_offset = 9_000_000_000_000_i64;
        let base_ms = 4_102_444_800_000_i64; // year 2100
        let resume = ResumePoint {
            replay_from_offset: base_offset,
            head_before: Some(base_ms),
            emitted_before: Some(base_ms - 60_000),
            idle_advances: (0..MAX_IDLE_ADVANCES as i64)
                .map(|i| (base_offset + i * 1_000_003, base_ms + i * 7_200_017))
                .collect(),
            clock: (0..MAX_CLOCK_ENTRIES as i64)
                .map(|i| (base_offset + i * 1_000_003, base_ms + i * 86_400_017))
                .collect(),
        };
        let text = resume.to_metadata();
        // 4096 bytes (`offset.metadata.max.bytes`) leave room for the
        // pipeline's partition-count suffix.
        assert!(text.len() <= 3_900, "{} bytes: {text}", text.len());
        assert_eq!(ResumePoint::from_metadata(&text), Ok(resume));
    }
}
