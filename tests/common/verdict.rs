//! Judging what rampart published: decoded rollups against the ground truth,
//! dead letters against the rejected input, and the exactly-once verdict of
//! the fault-injection tests.

use std::collections::BTreeMap;

use prost::Message as _;
use rampart_core::model::ModelOutput;
use rampart_core::proto::v1::{Dimension, Rollup};

use super::{EndOffsets, Read, Workload};

pub fn rollup_key(r: &Rollup) -> String {
    rampart_pipeline::records::rollup_key(r)
}

pub fn decode_rollups(reads: &[Read]) -> Vec<Rollup> {
    reads
        .iter()
        .map(|r| Rollup::decode(&r.payload[..]).expect("rollup decodes"))
        .collect()
}

/// Differences between expected rollups and the ones read (missing, extra,
/// different bytes, published more than once), as readable lines.
pub fn diff(expected: &[Rollup], got: &[Rollup]) -> Vec<String> {
    let mut exp: BTreeMap<String, &Rollup> = BTreeMap::new();
    for r in expected {
        exp.insert(rollup_key(r), r);
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for r in got {
        let k = rollup_key(r);
        *seen.entry(k.clone()).or_default() += 1;
        match exp.get(&k) {
            None => out.push(format!("extra rollup {k}")),
            Some(e) if e.encode_to_vec() != r.encode_to_vec() => {
                out.push(format!("differs {k}:\n  expected {e:?}\n  got      {r:?}"))
            }
            _ => {}
        }
    }
    for (k, n) in &seen {
        if *n > 1 {
            out.push(format!("published {n} times: {k}"));
        }
    }
    for k in exp.keys() {
        if !seen.contains_key(k) {
            out.push(format!("missing rollup {k}"));
        }
    }
    out
}

/// `(raw, unique, duplicates, late)` events summed over the rollups of `dim`.
pub fn sum_raw(rollups: &[Rollup], dim: Dimension) -> (u64, u64, u64, u64) {
    rollups
        .iter()
        .filter(|r| r.dimension == dim as i32)
        .fold((0, 0, 0, 0), |a, r| {
            (
                a.0 + r.raw_events,
                a.1 + r.unique_events,
                a.2 + r.duplicates,
                a.3 + r.late_events,
            )
        })
}

/// Source positions `(partition, offset)` of dead letters, with how often each was read.
pub fn dlq_positions(reads: &[Read], input: &str) -> BTreeMap<(u32, i64), usize> {
    let mut m = BTreeMap::new();
    for r in reads {
        assert_eq!(r.headers["rampart.source.topic"], input);
        let p: u32 = r.headers["rampart.source.partition"].parse().unwrap();
        let o: i64 = r.headers["rampart.source.offset"].parse().unwrap();
        *m.entry((p, o)).or_default() += 1;
    }
    m
}

/// Everything the exactly-once verdict needs, gathered by a fault-injection run.
pub struct Outcome {
    pub truth: ModelOutput,
    /// read_committed observer that ran during the faults.
    pub during: Vec<Read>,
    /// Fresh read_committed read after every instance stopped.
    pub after: Vec<Read>,
    pub dlq: Vec<Read>,
    pub end_offsets: Vec<(String, EndOffsets)>,
}

/// Asserts the exactly-once properties: rollups byte-equal to the ground
/// truth both after the run and for the reader that ran during it, every
/// dead letter exactly once, no hanging transaction. Panics with a readable
/// report.
pub fn verify(w: &Workload, o: &Outcome, context: &str) {
    let mut problems = Vec::new();
    let d = diff(&o.truth.rollups, &decode_rollups(&o.after));
    if !d.is_empty() {
        problems.push(format!(
            "final read_committed rollups vs ground truth: {} differences, first:\n{}",
            d.len(),
            d.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
        ));
    }
    let d = diff(&o.truth.rollups, &decode_rollups(&o.during));
    if !d.is_empty() {
        problems.push(format!(
            "read_committed observer during the faults: {} differences (duplicates = replayed or aborted reads), first:\n{}",
            d.len(),
            d.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
        ));
    }
    let want: BTreeMap<(u32, i64), usize> = o
        .truth
        .rejected
        .iter()
        .map(|r| ((r.partition, r.offset), 1))
        .collect();
    let got = dlq_positions(&o.dlq, &w.topics.input);
    if got != want {
        let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(k)).collect();
        let extra: Vec<_> = got
            .iter()
            .filter(|(k, n)| !want.contains_key(k) || **n > 1)
            .collect();
        problems.push(format!(
            "DLQ: want {} dead letters once each; missing {missing:?}, extra or repeated {extra:?}",
            want.len()
        ));
    }
    for (topic, parts) in &o.end_offsets {
        for (p, lso, hw) in parts {
            if lso != hw {
                problems.push(format!(
                    "hanging transaction on {topic}[{p}]: read_committed end {lso} != read_uncommitted end {hw}"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{context}: exactly-once violated:\n{}",
        problems.join("\n")
    );
}
