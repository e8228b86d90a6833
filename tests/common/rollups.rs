//! Rollup comparison shared by the end-to-end (`common`) and exactly-once
//! (`chaos_support`) test fixtures.

use std::collections::BTreeMap;

use prost::Message as _;
use rampart_core::proto::v1::Rollup;

pub fn rollup_key(r: &Rollup) -> String {
    rampart_pipeline::merge::rollup_key(r)
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
