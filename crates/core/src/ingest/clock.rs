//! The partition's recorded ingest clock: entries `(from_offset, wall_ms)`
//! saying that messages from `from_offset` on (up to the next entry) are
//! judged against `wall_ms` (module doc of `ingest`, "Trusted time").

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
    pub(super) fn record(&mut self, from_offset: i64, wall_ms: i64) {
        match self.entries.last_mut() {
            Some(last) if last.0 == from_offset => last.1 = wall_ms,
            Some(last) if last.0 > from_offset => {
                debug_assert!(false, "clock entry below the last one");
            }
            _ => self.entries.push((from_offset, wall_ms)),
        }
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
