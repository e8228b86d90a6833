//! SourceSketch: merges are order-free and equal to inserting the union.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use rampart_core::proto::v1::internal as pb;
use rampart_core::sketch::{EXACT_LIMIT, SourceSketch, source_hash};

fn sketch_of(hs: &[u64]) -> SourceSketch {
    let mut s = SourceSketch::new();
    for &h in hs {
        s.insert_hash(h);
    }
    s
}

/// Hash sets straddling the exact limit, with overlap between sets.
fn hashes() -> impl Strategy<Value = Vec<u64>> {
    prop_oneof![
        prop::collection::vec(0u64..400, 0..300).prop_map(|v| v
            .into_iter()
            .map(|i| source_hash(&i.to_be_bytes()))
            .collect()),
        prop::collection::vec(any::<u64>(), 0..600),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn merge_commutative_associative_union(a in hashes(), b in hashes(), c in hashes()) {
        let (sa, sb, sc) = (sketch_of(&a), sketch_of(&b), sketch_of(&c));
        let mut ab = sa.clone();
        ab.merge(&sb);
        let mut ba = sb.clone();
        ba.merge(&sa);
        prop_assert_eq!(ab.to_proto(), ba.to_proto());
        let mut ab_c = ab.clone();
        ab_c.merge(&sc);
        let mut bc = sb.clone();
        bc.merge(&sc);
        let mut a_bc = sa.clone();
        a_bc.merge(&bc);
        prop_assert_eq!(ab_c.to_proto(), a_bc.to_proto());
        let union: Vec<u64> = a.iter().chain(&b).chain(&c).copied().collect();
        prop_assert_eq!(sketch_of(&union).to_proto(), ab_c.to_proto());
        prop_assert_eq!(&ab_c, &sketch_of(&union));
    }

    #[test]
    fn exact_below_limit_and_roundtrip(a in hashes()) {
        let s = sketch_of(&a);
        let mut distinct = a.clone();
        distinct.sort_unstable();
        distinct.dedup();
        prop_assert_eq!(s.is_exact(), distinct.len() <= EXACT_LIMIT);
        if s.is_exact() {
            prop_assert_eq!(s.estimate(), distinct.len() as u64);
            prop_assert_eq!(&s.to_proto().exact, &distinct);
        }
        prop_assert_eq!(SourceSketch::from_proto(&s.to_proto()).unwrap(), s);
    }

    #[test]
    fn from_proto_never_panics(exact in prop::collection::vec(any::<u64>(), 0..300),
                               registers in prop_oneof![Just(vec![]), prop::collection::vec(any::<u8>(), 4096..=4096), prop::collection::vec(0u8..60, 4090..4100)]) {
        let p = pb::SourceSketch { exact: exact.clone(), registers: registers.clone() };
        if let Ok(s) = SourceSketch::from_proto(&p) {
            prop_assert!(exact.is_empty() || registers.is_empty());
            prop_assert_eq!(s.to_proto(), p);
            let _ = s.estimate();
        }
    }
}

#[test]
fn estimate_within_5_percent() {
    for (n, seed) in [(10_000u64, 1u64), (100_000, 2), (1_000_000, 3)] {
        let mut s = SourceSketch::new();
        for i in 0..n {
            // distinct 16-byte "addresses" derived from the seed
            let mut ip = [0u8; 16];
            ip[..8].copy_from_slice(&seed.to_be_bytes());
            ip[8..].copy_from_slice(&i.to_be_bytes());
            s.insert_hash(source_hash(&ip));
        }
        let e = s.estimate() as f64;
        let err = (e - n as f64).abs() / n as f64;
        assert!(err < 0.05, "n={n} estimate={e} err={err:.4}");
        eprintln!("n={n} estimate={e} err={err:.4}");
    }
}
