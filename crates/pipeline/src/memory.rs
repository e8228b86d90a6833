//! The process-wide memory budget (`processing.memory_budget`) and its
//! division among the input partitions this process owns.
//!
//! What a process holds, by owner:
//! - librdkafka's queues, fixed per stage thread: the consumer's prefetch
//!   (`queued.max.messages.kbytes`, rampart's default 32 MiB) and the
//!   producer's queue (`queue.buffering.max.kbytes`, rampart's default
//!   256 MiB; a full queue makes `send` wait, so consumption waits);
//! - per owned input partition: its window cells (`keys.memory`, bounded by
//!   `keys.prefix_cells`) and its dedup table (the rest of its share).
//!
//! So each partition's dedup budget is `(budget - queues) / owned -
//! keys.memory`, recomputed whenever the ingest threads' assignments change
//! (a failover that doubles the partitions halves every table). At the limit
//! a table evicts its oldest dedup bucket early, counted in
//! `rampart_dedup_evicted_early_entries`; the budget in force is the gauge
//! `rampart_memory_dedup_budget_bytes`. The merge stage's open windows are
//! bounded through the partials (key budgets), not by this budget.
//! Leaf module: imports nothing from this crate.

use std::sync::atomic::{AtomicUsize, Ordering};

use rampart_core::dedup::Dedup;

/// rampart's consumer prefetch cap (KiB), `rampart_kafka::CONSUMER_DEFAULTS`.
const CONSUMER_QUEUE_KIB: usize = 32_768;
/// rampart's producer queue cap (KiB), `rampart_kafka::PRODUCER_DEFAULTS`.
const PRODUCER_QUEUE_KIB: usize = 262_144;

/// Bytes of librdkafka queues of `stage_threads` stage threads (one consumer
/// and one producer each) under the client settings `client`.
pub(crate) fn queue_bytes(client: &rampart_kafka::Overrides, stage_threads: usize) -> usize {
    let kib = |key: &str, default: usize| {
        client
            .get(key)
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(default)
    };
    let per_thread = kib("queued.max.messages.kbytes", CONSUMER_QUEUE_KIB)
        + kib("queue.buffering.max.kbytes", PRODUCER_QUEUE_KIB);
    per_thread
        .saturating_mul(1024)
        .saturating_mul(stage_threads)
}

/// The smallest budget that holds the queues and one partition.
pub(crate) fn minimum_budget(queues: usize, cells_per_partition: usize) -> usize {
    queues + cells_per_partition + Dedup::MIN_BYTES
}

/// The budget shared by the ingest threads of one process.
#[derive(Debug)]
pub(crate) struct MemoryShare {
    /// Budget less the queues.
    for_partitions: usize,
    /// `keys.memory`: each partition's cells.
    cells_per_partition: usize,
    /// Partitions owned by each ingest thread.
    owned: Vec<AtomicUsize>,
}

impl MemoryShare {
    pub(crate) fn new(
        budget: usize,
        queues: usize,
        cells_per_partition: usize,
        threads: usize,
    ) -> Self {
        MemoryShare {
            for_partitions: budget.saturating_sub(queues),
            cells_per_partition,
            owned: (0..threads).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Ingest thread `thread` now owns `partitions` input partitions.
    pub(crate) fn set_owned(&self, thread: usize, partitions: usize) {
        if let Some(slot) = self.owned.get(thread) {
            slot.store(partitions, Ordering::Relaxed);
        }
    }

    /// Input partitions the process owns (at least 1).
    pub(crate) fn owned(&self) -> usize {
        self.owned
            .iter()
            .map(|o| o.load(Ordering::Relaxed))
            .sum::<usize>()
            .max(1)
    }

    /// The dedup budget of each owned partition now.
    pub(crate) fn dedup_budget(&self) -> usize {
        (self.for_partitions / self.owned())
            .saturating_sub(self.cells_per_partition)
            .max(Dedup::MIN_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_divided_anew_when_partitions_move() {
        let queues = queue_bytes(&rampart_kafka::Overrides::default(), 3);
        assert_eq!(queues, (3 * (32 + 256)) << 20);
        let share = MemoryShare::new(queues + (1 << 30), queues, 64 << 20, 2);
        share.set_owned(0, 3);
        share.set_owned(1, 3);
        // 1 GiB over 6 partitions, less 64 MiB of cells each.
        assert_eq!(share.dedup_budget(), (1 << 30) / 6 - (64 << 20));
        // A failover doubles the partitions: every table gets less.
        share.set_owned(1, 9);
        assert_eq!(share.dedup_budget(), (1 << 30) / 12 - (64 << 20));
        share.set_owned(0, 100);
        assert_eq!(share.dedup_budget(), Dedup::MIN_BYTES);
        let client: rampart_kafka::Overrides = [("queue.buffering.max.kbytes", "1024")]
            .into_iter()
            .collect();
        assert_eq!(queue_bytes(&client, 1), (32 << 20) + (1 << 20));
    }
}
