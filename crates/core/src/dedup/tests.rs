use super::*;

fn cfg() -> DedupConfig {
    DedupConfig {
        horizon_ms: 10_000,
        bucket_ms: 1_000,
        budget_bytes: 64 << 20,
    }
}

#[test]
fn duplicates_and_expiry_boundary() {
    let mut d = Dedup::new(cfg());
    assert!(!d.check_insert(1, 5_500));
    assert!(d.check_insert(1, 5_999));
    assert!(
        d.check_insert(1, 90_000),
        "duplicate regardless of its own time"
    );
    assert!(!d.check_insert(2, 6_000));
    assert_eq!(d.stats().entries, 2);
    assert_eq!(d.oldest_bucket_start(), Some(5_000));
    // bucket 5 covers [5000, 6000): expires once 6000 <= watermark - 10000.
    d.expire(15_999);
    assert!(d.check_insert(1, 5_500));
    d.expire(16_000);
    assert_eq!(d.stats().entries, 1);
    assert_eq!(d.oldest_bucket_start(), Some(6_000));
    assert!(d.check_insert(2, 6_000));
    assert!(!d.check_insert(1, 7_000), "forgotten after expiry");
    assert!(!d.check_insert(3, 5_999), "expired bucket: not remembered");
    assert!(!d.check_insert(3, 5_999));
}

#[test]
fn budget_evicts_oldest_and_is_never_exceeded() {
    let budget = 1 << 20;
    let mut d = Dedup::new(DedupConfig {
        horizon_ms: 1_000_000,
        bucket_ms: 1_000,
        budget_bytes: budget,
    });
    let mut fp = 0u128;
    for t in 0..200_000i64 {
        fp = fp.wrapping_add(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        assert!(!d.check_insert(fp, t / 4));
        assert!(d.stats().bytes as usize <= budget);
    }
    let st = d.stats();
    assert!(st.evicted_early_buckets > 0, "{st:?}");
    assert_eq!(st.entries + st.evicted_early_entries, 200_000, "{st:?}");
    // The oldest buckets went first.
    assert!(d.oldest_bucket_start().unwrap() > 0);
    // A single bucket larger than the budget: still bounded, still counted.
    let mut d = Dedup::new(DedupConfig {
        horizon_ms: 1_000_000,
        bucket_ms: 1_000_000,
        budget_bytes: budget,
    });
    for _ in 0..200_000 {
        fp = fp.wrapping_add(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        assert!(!d.check_insert(fp, 5));
    }
    let st = d.stats();
    assert!(st.bytes as usize <= budget);
    assert!(st.evicted_early_buckets > 0);
    assert_eq!(st.entries + st.evicted_early_entries, 200_000, "{st:?}");
}

#[test]
fn tag_span_is_bounded() {
    let mut d = Dedup::new(cfg());
    assert!(!d.check_insert(1, 0));
    assert!(!d.check_insert(2, 255_999)); // bucket 255: still fine
    assert!(d.check_insert(1, 0));
    // A re-sighting 256 buckets later is judged before the range moves.
    assert!(d.check_insert(1, 256_500));
    assert_eq!(d.stats().entries, 2);
    assert!(!d.check_insert(3, 256_000)); // bucket 256 evicts bucket 0
    assert_eq!(d.stats().entries, 2);
    // That sighting moved the watermark past bucket 0: not early.
    assert_eq!(d.stats().evicted_early_buckets, 0);
    assert!(!d.check_insert(1, 1_000), "1 was evicted");
    assert!(d.check_insert(2, 0));
    // too old for a tag: not remembered, counted
    let before = d.stats().evicted_early_entries;
    assert!(!d.check_insert(9, -1_000));
    assert!(!d.check_insert(9, -1_000));
    assert_eq!(d.stats().evicted_early_entries, before + 2);
}

#[test]
fn grows_and_survives_expiry_sweeps() {
    let mut d = Dedup::new(cfg());
    let n = 100_000u64;
    let fp = |i: u64| u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    for i in 0..n {
        assert!(!d.check_insert(fp(i), (i % 20) as i64 * 1000));
    }
    for i in 0..n {
        assert!(d.check_insert(fp(i), 0));
    }
    assert_eq!(d.stats().entries, n);
    d.expire(20_000); // buckets 0..=9 expire
    assert_eq!(d.stats().entries, n / 2);
    for i in 0..n {
        assert_eq!(d.check_insert(fp(i), 30_000), (i % 20) >= 10, "{i}");
    }
}

#[test]
fn batch_equals_sequential() {
    let mut a = Dedup::new(cfg());
    let mut b = Dedup::new(cfg());
    let fps: Vec<u128> = (0..5_000u128)
        .map(|i| (i % 3_000).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
        .collect();
    let times: Vec<i64> = (0..5_000i64).map(|i| i * 7).collect();
    let mut dup = vec![false; 5_000];
    a.check_insert_batch(&fps, &times, &mut dup);
    let want: Vec<bool> = fps
        .iter()
        .zip(&times)
        .map(|(&f, &t)| b.check_insert(f, t))
        .collect();
    assert_eq!(dup, want);
    assert_eq!(dup.iter().filter(|&&d| d).count(), 2_000);
    assert_eq!(a.stats(), b.stats());
}
