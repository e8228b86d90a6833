//! The deterministic random source and the samplers built on it.
//!
//! Everything random in loadgen goes through [`Rng`] (PCG-64 MCG, seeded from a
//! `u64` through SplitMix64) with integer-only mappings (`below`, `chance`,
//! alias tables with integer thresholds), so the same seed and settings give the
//! same bytes on every run. Floating point appears only when tables are built.

use rand::{RngCore, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// SplitMix64 finaliser: a bijective mix of 64 bits.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seeded PCG-64 generator; `stream` separates independent uses of one seed.
#[derive(Clone, Debug)]
pub(crate) struct Rng(Pcg64Mcg);

impl Rng {
    pub(crate) fn new(seed: u64, stream: u64) -> Rng {
        let s = mix64(seed ^ mix64(stream));
        Rng(Pcg64Mcg::seed_from_u64(s))
    }

    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n > 0`; returns 0 when `n == 0`).
    #[inline]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi` (returns `lo` when `hi <= lo`).
    #[inline]
    pub(crate) fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo) as u64 + 1;
        lo + self.below(span) as i64
    }

    /// Uniform in `lo..=hi` for u64.
    #[inline]
    pub(crate) fn range_u64(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// True with the probability encoded in `p` (see [`Prob`]).
    #[inline]
    pub(crate) fn chance(&mut self, p: Prob) -> bool {
        match p {
            Prob::Never => false,
            Prob::Always => true,
            Prob::Below(t) => self.next_u64() < t,
        }
    }
}

/// A probability turned into an integer threshold once, so draws are exact
/// integer comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prob {
    Never,
    Always,
    Below(u64),
}

impl Prob {
    pub(crate) fn new(p: f64) -> Prob {
        if p.is_nan() || p <= 0.0 {
            Prob::Never
        } else if p >= 1.0 {
            Prob::Always
        } else {
            // 2^64 as f64; p < 1 so the product is < 2^64.
            Prob::Below((p * 18_446_744_073_709_551_616.0) as u64)
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Keep this slot when the 32-bit fraction is below `keep`.
    keep: u32,
    alias: u32,
}

/// Walker/Vose alias table: O(1) weighted sampling with one 64-bit draw.
#[derive(Clone, Debug)]
pub(crate) struct Alias {
    slots: Vec<Slot>,
}

impl Alias {
    /// Builds a table over `weights` (non-negative, not all zero; an all-zero
    /// or empty input gives a table that always returns 0).
    pub(crate) fn new(weights: &[f64]) -> Alias {
        let n = weights.len();
        let total: f64 = weights.iter().filter(|w| w.is_finite() && **w > 0.0).sum();
        if n == 0 || total <= 0.0 {
            return Alias {
                slots: vec![Slot {
                    keep: u32::MAX,
                    alias: 0,
                }],
            };
        }
        let scale = n as f64 / total;
        let mut p: Vec<f64> = weights
            .iter()
            .map(|w| {
                if w.is_finite() && *w > 0.0 {
                    w * scale
                } else {
                    0.0
                }
            })
            .collect();
        let mut slots = vec![
            Slot {
                keep: u32::MAX,
                alias: 0
            };
            n
        ];
        let mut small: Vec<usize> = Vec::new();
        let mut large: Vec<usize> = Vec::new();
        for (i, pi) in p.iter().enumerate() {
            if *pi < 1.0 {
                small.push(i);
            } else {
                large.push(i);
            }
        }
        while let (Some(s), Some(l)) = (small.pop(), large.last().copied()) {
            let ps = p.get(s).copied().unwrap_or(1.0);
            if let Some(slot) = slots.get_mut(s) {
                *slot = Slot {
                    keep: to_u32_fraction(ps),
                    alias: l as u32,
                };
            }
            if let Some(pl) = p.get_mut(l) {
                *pl = (*pl + ps) - 1.0;
                if *pl < 1.0 {
                    large.pop();
                    small.push(l);
                }
            }
        }
        // Leftovers (numerical residue) keep themselves.
        for i in small.into_iter().chain(large) {
            if let Some(slot) = slots.get_mut(i) {
                *slot = Slot {
                    keep: u32::MAX,
                    alias: i as u32,
                };
            }
        }
        Alias { slots }
    }

    #[inline]
    pub(crate) fn sample(&self, rng: &mut Rng) -> usize {
        let r = u128::from(rng.next_u64()) * self.slots.len() as u128;
        let i = (r >> 64) as usize;
        let frac = ((r as u64) >> 32) as u32;
        match self.slots.get(i) {
            Some(s) if frac < s.keep || s.keep == u32::MAX => i,
            Some(s) => s.alias as usize,
            None => 0,
        }
    }
}

fn to_u32_fraction(p: f64) -> u32 {
    if p >= 1.0 {
        u32::MAX
    } else if p <= 0.0 {
        0
    } else {
        (p * 4_294_967_296.0) as u32
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn alias_follows_weights() {
        let a = Alias::new(&[1.0, 2.0, 7.0, 0.0]);
        let mut rng = Rng::new(1, 2);
        let mut c = [0u32; 4];
        for _ in 0..100_000 {
            c[a.sample(&mut rng)] += 1;
        }
        assert_eq!(c[3], 0);
        assert!((c[0] as f64 / 1e5 - 0.1).abs() < 0.01, "{c:?}");
        assert!((c[1] as f64 / 1e5 - 0.2).abs() < 0.01, "{c:?}");
        assert!((c[2] as f64 / 1e5 - 0.7).abs() < 0.01, "{c:?}");
    }

    #[test]
    fn prob_extremes() {
        let mut rng = Rng::new(3, 0);
        assert!(!rng.chance(Prob::new(0.0)));
        assert!(rng.chance(Prob::new(1.0)));
        let n = (0..100_000).filter(|_| rng.chance(Prob::new(0.25))).count();
        assert!((n as f64 / 1e5 - 0.25).abs() < 0.01);
    }
}
