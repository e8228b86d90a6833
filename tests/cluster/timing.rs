//! What the cluster test reports besides its verdict: how long after a
//! window could close its rollups were readable (read_committed), and the
//! longest time without a new rollup around each fault.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prost::Message as _;
use rampart_core::proto::v1::Rollup;
use rampart_loadgen::Record;

use crate::common::Read;

/// When the paced producer sent each record: record `i` of `n` goes out
/// with its chunk of 20 at `start + over * (chunk start) / n`
/// (`common::produce_paced`).
pub struct SendSchedule {
    pub start: Instant,
    pub over: Duration,
    pub records: usize,
}

impl SendSchedule {
    pub fn sent(&self, index: usize) -> Instant {
        let chunk_start = index / 20 * 20;
        self.start
            + self
                .over
                .mul_f64(chunk_start as f64 / self.records.max(1) as f64)
    }
}

/// The moment each window could close: once every input partition has been
/// sent a record stamped at or past `end + allowed_lateness + out_of_orderness`
/// (a record's CreateTime is at least its newest event time). Windows some
/// partition never passes close by the idle timeout instead and are left out.
pub fn close_times(
    records: &[Record],
    partitions: u32,
    window_ms: i64,
    wait_ms: i64,
    schedule: &SendSchedule,
) -> BTreeMap<i64, Instant> {
    // Per partition, the first record index at or past each timestamp: records
    // of one partition are in timestamp order up to late batches, so take the
    // running maximum.
    let mut per_partition: Vec<Vec<(i64, usize)>> = vec![Vec::new(); partitions as usize];
    for (i, r) in records.iter().enumerate() {
        let firsts = &mut per_partition[r.partition as usize];
        if firsts.last().is_none_or(|(ts, _)| r.timestamp_ms > *ts) {
            firsts.push((r.timestamp_ms, i));
        }
    }
    let first_at =
        |p: &Vec<(i64, usize)>, t: i64| p.iter().find(|(ts, _)| *ts >= t).map(|(_, i)| *i);
    let starts: std::collections::BTreeSet<i64> = records
        .iter()
        .map(|r| r.timestamp_ms.div_euclid(window_ms) * window_ms)
        .collect();
    starts
        .into_iter()
        .filter_map(|start| {
            let due = start + window_ms + wait_ms;
            let last = per_partition
                .iter()
                .map(|p| first_at(p, due))
                .collect::<Option<Vec<usize>>>()?
                .into_iter()
                .max()?;
            Some((start, schedule.sent(last)))
        })
        .collect()
}

/// Milliseconds from each rollup's window close to its first read_committed
/// arrival, for windows with a known close time.
pub fn latencies_ms(reads: &[Read], closes: &BTreeMap<i64, Instant>) -> Vec<i64> {
    let mut first: BTreeMap<String, (i64, Instant)> = BTreeMap::new();
    for r in reads {
        let Ok(rollup) = Rollup::decode(&r.payload[..]) else {
            continue;
        };
        first
            .entry(crate::common::rollup_key(&rollup))
            .or_insert((rollup.window_start_ms, r.received));
    }
    let mut out: Vec<i64> = first
        .values()
        .filter_map(|(start, received)| {
            let close = closes.get(start)?;
            Some(if received >= close {
                received.duration_since(*close).as_millis() as i64
            } else {
                -(close.duration_since(*received).as_millis() as i64)
            })
        })
        .collect();
    out.sort_unstable();
    out
}

/// The `q` quantile (0..=1) of sorted values.
pub fn quantile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The longest time without a new rollup arrival that overlaps `[from, to]`.
pub fn longest_stall(reads: &[Read], from: Instant, to: Instant) -> Duration {
    let mut arrivals: Vec<Instant> = reads.iter().map(|r| r.received).collect();
    arrivals.sort_unstable();
    arrivals
        .windows(2)
        .filter(|w| w[1] >= from && w[0] <= to)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_at(received: Instant) -> Read {
        Read {
            partition: 0,
            offset: 0,
            timestamp_ms: None,
            key: Vec::new(),
            payload: Vec::new(),
            headers: BTreeMap::new(),
            received,
        }
    }

    #[test]
    fn stalls_quantiles_and_close_times_by_hand() {
        let t0 = Instant::now();
        let at = |ms| read_at(t0 + Duration::from_millis(ms));
        let reads = [at(0), at(1_000), at(5_000), at(5_500), at(9_000)];
        // Gaps 1, 4, 0.5, 3.5 s; only those overlapping [4.8 s, 6 s]: 4 and 0.5.
        let stall = longest_stall(
            &reads,
            t0 + Duration::from_millis(4_800),
            t0 + Duration::from_millis(6_000),
        );
        assert_eq!(stall, Duration::from_secs(4));
        assert_eq!(quantile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5), 6);
        assert_eq!(quantile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.99), 10);

        // Two partitions, 40 records, 20 per partition alternating, 1 s apart per pair.
        let records: Vec<Record> = (0..40)
            .map(|i| Record {
                partition: i % 2,
                key: Vec::new(),
                payload: Vec::new(),
                timestamp_ms: (i / 2) as i64 * 1_000,
                clock_ms: 0,
            })
            .collect();
        let schedule = SendSchedule {
            start: t0,
            over: Duration::from_secs(40),
            records: 40,
        };
        let closes = close_times(&records, 2, 5_000, 2_000, &schedule);
        // Window [0, 5 s) closes at timestamp 7 s: record 15 (partition 1) is
        // the later of the two, sent with chunk 0 at t0.
        assert_eq!(closes[&0], t0);
        // Window [5, 10 s) closes at 12 s: record 25, chunk 20, sent at 20 s.
        assert_eq!(closes[&5_000], t0 + Duration::from_secs(20));
        // Window [15, 20 s) would close at 22 s: never reached.
        assert!(!closes.contains_key(&15_000));
    }
}
