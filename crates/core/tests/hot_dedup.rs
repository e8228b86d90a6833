//! Dedup against a trivially correct model (no budget pressure).
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use rampart_core::dedup::{Dedup, DedupConfig};
use std::collections::HashMap;

/// The documented semantics: 120-bit keys (top 8 bits ignored, 0 folded to 1),
/// remembered under the bucket of the first sighting until it expires;
/// sightings in already-expired buckets are not remembered.
struct Model {
    cfg: DedupConfig,
    map: HashMap<u128, i64>,
    first_live: i64,
}

impl Model {
    fn key(fp: u128) -> u128 {
        let k = fp & ((1u128 << 120) - 1);
        if k == 0 { 1 } else { k }
    }
    fn check_insert(&mut self, fp: u128, t: i64) -> bool {
        let b = t.div_euclid(self.cfg.bucket_ms);
        if b < self.first_live {
            return false;
        }
        let k = Self::key(fp);
        if self.map.contains_key(&k) {
            return true;
        }
        self.map.insert(k, b);
        false
    }
    fn expire(&mut self, wm: i64) {
        let (h, bms) = (self.cfg.horizon_ms, self.cfg.bucket_ms);
        // the contract: bucket b expires once (b+1)*bucket_ms <= wm - horizon
        self.map
            .retain(|_, b| (i128::from(*b) + 1) * i128::from(bms) > i128::from(wm) - i128::from(h));
        self.first_live = self.first_live.max((wm - h).div_euclid(bms));
    }
    fn oldest(&self) -> Option<i64> {
        self.map.values().min().map(|b| b * self.cfg.bucket_ms)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(usize, i64),
    Expire(i64),
}

fn ops() -> impl Strategy<Value = (Vec<u128>, Vec<Op>)> {
    let pool = prop::collection::vec(
        prop_oneof![
            any::<u128>(),
            Just(0u128),
            Just(1u128),
            Just(1u128 << 120),
            0u128..4
        ],
        1..40,
    );
    let op = prop_oneof![
        8 => (any::<prop::sample::Index>().prop_map(|i| i.index(1 << 20)), -5_000i64..60_000)
            .prop_map(|(i, t)| Op::Insert(i, t)),
        1 => (-5_000i64..80_000).prop_map(Op::Expire),
    ];
    (pool, prop::collection::vec(op, 0..400))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn matches_model((pool, ops) in ops()) {
        let cfg = DedupConfig { horizon_ms: 10_000, bucket_ms: 1_000, budget_bytes: 64 << 20 };
        let mut d = Dedup::new(cfg.clone());
        let mut m = Model { cfg, map: HashMap::new(), first_live: i64::MIN };
        for op in ops {
            match op {
                Op::Insert(i, t) => {
                    let fp = pool[i % pool.len()];
                    prop_assert_eq!(d.check_insert(fp, t), m.check_insert(fp, t), "fp {:x} t {}", fp, t);
                }
                Op::Expire(wm) => {
                    d.expire(wm);
                    m.expire(wm);
                }
            }
            prop_assert_eq!(d.stats().entries, m.map.len() as u64);
            prop_assert_eq!(d.oldest_bucket_start(), m.oldest());
        }
        prop_assert_eq!(d.stats().evicted_early_entries, 0);
    }

    #[test]
    fn many_keys_match_model(seed in any::<u64>(), n in 1_000usize..20_000) {
        let cfg = DedupConfig { horizon_ms: 5_000, bucket_ms: 500, budget_bytes: 64 << 20 };
        let mut d = Dedup::new(cfg.clone());
        let mut m = Model { cfg, map: HashMap::new(), first_live: i64::MIN };
        let mut x = seed | 1;
        for i in 0..n {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            // ~3 % repeats of a recent fingerprint
            let fp = u128::from(x % (n as u64 * 30)).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
            let t = (i as i64) * 3;
            prop_assert_eq!(d.check_insert(fp, t), m.check_insert(fp, t));
            if i % 997 == 0 {
                d.expire(t);
                m.expire(t);
            }
        }
        prop_assert_eq!(d.stats().entries, m.map.len() as u64);
    }
}

/// `set_budget` below the table's size (a process budget re-divided after a
/// failover): the oldest buckets go first, counted, and the table shrinks
/// under the new budget.
#[test]
fn a_lowered_budget_evicts_oldest_first_and_shrinks_the_table() {
    let fp = |b: u64, i: u64| {
        (u128::from(xxhash_rust::xxh3::xxh3_64(
            &(b * 1_000_000 + i).to_le_bytes(),
        )) << 64)
            | 1
    };
    let mut d = Dedup::new(DedupConfig {
        horizon_ms: 1_000_000,
        bucket_ms: 1000,
        budget_bytes: 64 << 20,
    });
    // 20 buckets of 20 000 fingerprints each.
    for b in 0..20u64 {
        for i in 0..20_000u64 {
            d.check_insert(fp(b, i), b as i64 * 1000);
        }
    }
    let before = d.stats();
    assert_eq!(before.entries, 400_000);
    d.set_budget(2 << 20);
    let after = d.stats();
    assert!(after.bytes <= 2 << 20, "{after:?}");
    assert!(
        after.entries < before.entries && after.entries > 0,
        "{after:?}"
    );
    assert_eq!(after.evicted_early_entries, before.entries - after.entries);
    // What is left is the newest buckets: the newest fingerprint is still a
    // duplicate, the oldest is new again.
    assert!(d.check_insert(fp(19, 7), 19_000));
    assert!(!d.check_insert(fp(0, 7), 19_500));
}
