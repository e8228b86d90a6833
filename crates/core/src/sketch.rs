//! Distinct-source sketch: exact while small, HyperLogLog (p = 12) above.
//!
//! The representation is a function of the set alone (exact iff it holds at
//! most `EXACT_LIMIT` distinct hashes; registers are a max over hashes), so
//! merges in any order and any split of the input give identical bytes.

use crate::proto::v1::internal as pb;

/// Largest set kept exactly.
pub const EXACT_LIMIT: usize = 256;
/// HyperLogLog precision: 2^12 one-byte registers.
pub const HLL_PRECISION: u32 = 12;

/// Number of HyperLogLog registers (2^p).
pub const HLL_REGISTERS: usize = 1 << HLL_PRECISION;
/// Largest register value: 64 - p remaining bits, rank is 1-based.
const MAX_RANK: u8 = (64 - HLL_PRECISION + 1) as u8;
/// Fixed seed of `source_hash` (changing it changes every stored sketch).
const SOURCE_SEED: u64 = 0x7261_6d70_6172_7431; // "rampart1"

/// A mergeable distinct-count sketch of source addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSketch {
    repr: Repr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Repr {
    /// Sorted, distinct hashes; at most `EXACT_LIMIT`.
    Exact(Vec<u64>),
    /// `HLL_REGISTERS` registers, each the max rank seen for its index.
    Dense(Box<[u8]>),
}

impl Default for SourceSketch {
    fn default() -> Self {
        SourceSketch {
            repr: Repr::Exact(Vec::new()),
        }
    }
}

/// 64-bit hash of a source address (4 or 16 bytes) as the sketch uses it.
pub fn source_hash(ip: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(ip, SOURCE_SEED)
}

#[inline]
fn hll_update(regs: &mut [u8], h: u64) {
    let idx = (h >> (64 - HLL_PRECISION)) as usize;
    let w = h << HLL_PRECISION;
    let rank = (w.leading_zeros().min(64 - HLL_PRECISION) + 1) as u8;
    if let Some(r) = regs.get_mut(idx)
        && *r < rank
    {
        *r = rank;
    }
}

fn dense_from(hashes: &[u64]) -> Box<[u8]> {
    let mut regs = vec![0u8; HLL_REGISTERS].into_boxed_slice();
    for &h in hashes {
        hll_update(&mut regs, h);
    }
    regs
}

impl SourceSketch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Empties the sketch (keeping an exact sketch's allocation).
    pub fn clear(&mut self) {
        match &mut self.repr {
            Repr::Exact(v) => v.clear(),
            Repr::Dense(_) => self.repr = Repr::Exact(Vec::new()),
        }
    }

    /// Loads the word `insert_hash(h)` will touch first (a cache hint for
    /// batched callers); the value means nothing.
    #[inline]
    pub fn peek(&self, h: u64) -> u64 {
        match &self.repr {
            Repr::Exact(v) => v.get(v.len() / 2).copied().unwrap_or(0),
            Repr::Dense(regs) => regs
                .get((h >> (64 - HLL_PRECISION)) as usize)
                .copied()
                .map_or(0, u64::from),
        }
    }

    /// The sketch of a set of hashes (any order, repeats allowed): the same
    /// as inserting each, without the per-insert work.
    pub fn from_hashes(mut hashes: Vec<u64>) -> Self {
        hashes.sort_unstable();
        hashes.dedup();
        let repr = if hashes.len() <= EXACT_LIMIT {
            Repr::Exact(hashes)
        } else {
            Repr::Dense(dense_from(&hashes))
        };
        SourceSketch { repr }
    }

    /// Adds one hash (see `source_hash`).
    pub fn insert_hash(&mut self, h: u64) {
        match &mut self.repr {
            Repr::Exact(v) => {
                if let Err(pos) = v.binary_search(&h) {
                    if v.len() < EXACT_LIMIT {
                        v.insert(pos, h);
                    } else {
                        let mut regs = dense_from(v);
                        hll_update(&mut regs, h);
                        self.repr = Repr::Dense(regs);
                    }
                }
            }
            Repr::Dense(regs) => hll_update(regs, h),
        }
    }

    /// Adds every hash of `other`; the result depends only on the union.
    pub fn merge(&mut self, other: &SourceSketch) {
        match (&mut self.repr, &other.repr) {
            (_, Repr::Exact(o)) if o.is_empty() => {}
            (Repr::Exact(a), Repr::Exact(b)) => {
                let mut out = Vec::with_capacity(a.len() + b.len());
                let (mut i, mut j) = (0, 0);
                while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
                    if x < y {
                        out.push(x);
                        i += 1;
                    } else if y < x {
                        out.push(y);
                        j += 1;
                    } else {
                        out.push(x);
                        i += 1;
                        j += 1;
                    }
                }
                out.extend_from_slice(a.get(i..).unwrap_or_default());
                out.extend_from_slice(b.get(j..).unwrap_or_default());
                if out.len() <= EXACT_LIMIT {
                    self.repr = Repr::Exact(out);
                } else {
                    self.repr = Repr::Dense(dense_from(&out));
                }
            }
            (Repr::Dense(regs), Repr::Exact(b)) => {
                for &h in b {
                    hll_update(regs, h);
                }
            }
            (Repr::Exact(a), Repr::Dense(o)) => {
                let mut regs = o.clone();
                for &h in a.iter() {
                    hll_update(&mut regs, h);
                }
                self.repr = Repr::Dense(regs);
            }
            (Repr::Dense(regs), Repr::Dense(o)) => {
                for (r, &x) in regs.iter_mut().zip(o.iter()) {
                    *r = (*r).max(x);
                }
            }
        }
    }

    /// Exact count while exact, HLL estimate (rounded) otherwise.
    ///
    /// The dense estimate is Ertl's improved HyperLogLog estimator ("New
    /// cardinality estimation algorithms for HyperLogLog sketches", 2017): it
    /// needs no empirical bias tables and, unlike the raw estimate with a
    /// linear-counting switch, has no bias bump around 2.5 * m.
    pub fn estimate(&self) -> u64 {
        match &self.repr {
            Repr::Exact(v) => v.len() as u64,
            Repr::Dense(regs) => {
                let q = (64 - HLL_PRECISION) as usize;
                let mut counts = [0u32; 64 - HLL_PRECISION as usize + 2];
                for &r in regs.iter() {
                    if let Some(c) = counts.get_mut(usize::from(r)) {
                        *c += 1;
                    }
                }
                let m = HLL_REGISTERS as f64;
                let mut z = m * tau(1.0 - f64::from(counts[q + 1]) / m);
                for k in (1..=q).rev() {
                    z = 0.5 * (z + f64::from(counts[k]));
                }
                z += m * sigma(f64::from(counts[0]) / m);
                let alpha_inf = 0.5 / std::f64::consts::LN_2;
                (alpha_inf * m * m / z).round() as u64
            }
        }
    }

    pub fn is_exact(&self) -> bool {
        matches!(self.repr, Repr::Exact(_))
    }

    /// Exact sketches fill `exact` (sorted); dense ones fill `registers` (4096 bytes).
    pub fn to_proto(&self) -> pb::SourceSketch {
        match &self.repr {
            Repr::Exact(v) => pb::SourceSketch {
                exact: v.clone(),
                registers: Vec::new(),
            },
            Repr::Dense(r) => pb::SourceSketch {
                exact: Vec::new(),
                registers: r.to_vec(),
            },
        }
    }

    /// Rejects malformed sketches (unsorted/duplicate hashes, wrong register count, both set).
    pub fn from_proto(p: &pb::SourceSketch) -> Result<Self, &'static str> {
        match (p.exact.is_empty(), p.registers.is_empty()) {
            (false, false) => Err("source sketch has both exact hashes and registers"),
            (_, true) => {
                if p.exact.len() > EXACT_LIMIT {
                    return Err("source sketch holds more exact hashes than the limit");
                }
                if p.exact.windows(2).any(|w| matches!(w, [a, b] if a >= b)) {
                    return Err("source sketch hashes are not sorted and distinct");
                }
                Ok(SourceSketch {
                    repr: Repr::Exact(p.exact.clone()),
                })
            }
            (true, false) => {
                if p.registers.len() != HLL_REGISTERS {
                    return Err("source sketch has a wrong register count");
                }
                if p.registers.iter().any(|&r| r > MAX_RANK) {
                    return Err("source sketch register out of range");
                }
                Ok(SourceSketch {
                    repr: Repr::Dense(p.registers.clone().into_boxed_slice()),
                })
            }
        }
    }
}

/// A write-optimised builder of a [`SourceSketch`]: while small, an unsorted
/// open-addressing set (one probe per insert instead of a binary search and
/// a shift of a sorted vector); dense registers above [`EXACT_LIMIT`]
/// distinct hashes. [`SourceSet::to_sketch`] gives the same sketch as
/// inserting the same hashes into a `SourceSketch` in any order.
#[derive(Clone, Debug, Default)]
pub struct SourceSet {
    /// Power-of-two slots, 0 = empty (hash 0 is `has_zero`); empty when dense.
    slots: Vec<u64>,
    len: usize,
    has_zero: bool,
    dense: Option<Box<[u8]>>,
}

impl SourceSet {
    const FIRST_SLOTS: usize = 16;

    #[inline]
    fn slot_of(h: u64, slots: usize) -> usize {
        // Low bits: the dense index uses the top ones.
        (h as usize) & (slots - 1)
    }

    /// Adds one hash (see `source_hash`).
    #[inline]
    pub fn insert_hash(&mut self, h: u64) {
        if let Some(regs) = &mut self.dense {
            hll_update(regs, h);
            return;
        }
        if h == 0 {
            if !self.has_zero {
                self.has_zero = true;
                self.len += 1;
                self.spill_if_full();
            }
            return;
        }
        if self.slots.is_empty() {
            self.slots = vec![0; Self::FIRST_SLOTS];
        }
        let mask = self.slots.len() - 1;
        let mut i = Self::slot_of(h, self.slots.len());
        loop {
            match self.slots.get_mut(i) {
                Some(s) if *s == h => return,
                Some(s) if *s == 0 => {
                    *s = h;
                    self.len += 1;
                    break;
                }
                Some(_) => i = (i + 1) & mask,
                None => return,
            }
        }
        if self.len * 2 > self.slots.len() {
            self.grow();
        }
        self.spill_if_full();
    }

    fn hashes(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots
            .iter()
            .copied()
            .filter(|&h| h != 0)
            .chain(self.has_zero.then_some(0))
    }

    #[cold]
    fn spill_if_full(&mut self) {
        if self.len > EXACT_LIMIT {
            let mut regs = vec![0u8; HLL_REGISTERS].into_boxed_slice();
            for h in self.hashes() {
                hll_update(&mut regs, h);
            }
            self.dense = Some(regs);
            self.slots = Vec::new();
            self.has_zero = false;
        }
    }

    #[cold]
    fn grow(&mut self) {
        let doubled = vec![0; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        let mask = self.slots.len() - 1;
        for h in old.into_iter().filter(|&h| h != 0) {
            let mut i = Self::slot_of(h, self.slots.len());
            while let Some(s) = self.slots.get_mut(i) {
                if *s == 0 {
                    *s = h;
                    break;
                }
                i = (i + 1) & mask;
            }
        }
    }

    /// Loads the word `insert_hash(h)` will touch first (a cache hint for
    /// batched callers); the value means nothing.
    #[inline]
    pub fn peek(&self, h: u64) -> u64 {
        match &self.dense {
            Some(regs) => regs
                .get((h >> (64 - HLL_PRECISION)) as usize)
                .copied()
                .map_or(0, u64::from),
            None if self.slots.is_empty() => 0,
            None => self
                .slots
                .get(Self::slot_of(h, self.slots.len()))
                .copied()
                .unwrap_or(0),
        }
    }

    /// Empties the set, keeping a small set's allocation.
    pub fn clear(&mut self) {
        if self.dense.take().is_none() {
            self.slots.fill(0);
        }
        self.len = 0;
        self.has_zero = false;
    }

    /// The sketch of the hashes inserted.
    pub fn to_sketch(&self) -> SourceSketch {
        match &self.dense {
            Some(regs) => SourceSketch {
                repr: Repr::Dense(regs.clone()),
            },
            None => {
                let mut v: Vec<u64> = self.hashes().collect();
                v.sort_unstable();
                SourceSketch {
                    repr: Repr::Exact(v),
                }
            }
        }
    }
}

/// Ertl's sigma function (for the count of zero registers).
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let z_old = z;
        z += x * y;
        y += y;
        if z_old == z {
            return z;
        }
    }
}

/// Ertl's tau function (for the count of saturated registers).
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let z_old = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z_old == z {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn exact_then_dense() {
        let mut s = SourceSketch::new();
        assert_eq!(s.estimate(), 0);
        for i in 0..EXACT_LIMIT as u64 {
            s.insert_hash(source_hash(&i.to_be_bytes()));
            s.insert_hash(source_hash(&i.to_be_bytes()));
        }
        assert!(s.is_exact());
        assert_eq!(s.estimate(), EXACT_LIMIT as u64);
        s.insert_hash(source_hash(b"one more"));
        assert!(!s.is_exact());
        let e = s.estimate();
        assert!((240..=275).contains(&e), "{e}");
        let p = s.to_proto();
        assert_eq!(p.registers.len(), HLL_REGISTERS);
        assert!(p.exact.is_empty());
        assert_eq!(SourceSketch::from_proto(&p).unwrap(), s);
    }

    #[test]
    fn source_set_equals_sketch() {
        for n in [0u64, 1, 5, 200, 256, 257, 300, 5000] {
            let mut set = SourceSet::default();
            let mut sk = SourceSketch::new();
            for i in 0..n {
                // Repeats and a zero hash included.
                let h = if i == 3 {
                    0
                } else {
                    source_hash(&(i % 997).to_be_bytes())
                };
                set.insert_hash(h);
                sk.insert_hash(h);
            }
            assert_eq!(set.to_sketch(), sk, "n = {n}");
            set.clear();
            assert_eq!(set.to_sketch(), SourceSketch::new());
        }
    }

    #[test]
    fn from_proto_rejects_malformed() {
        let bad = [
            pb::SourceSketch {
                exact: vec![2, 1],
                registers: vec![],
            },
            pb::SourceSketch {
                exact: vec![1, 1],
                registers: vec![],
            },
            pb::SourceSketch {
                exact: vec![1],
                registers: vec![0; HLL_REGISTERS],
            },
            pb::SourceSketch {
                exact: vec![],
                registers: vec![0; 10],
            },
            pb::SourceSketch {
                exact: vec![],
                registers: vec![MAX_RANK + 1; HLL_REGISTERS],
            },
            pb::SourceSketch {
                exact: (0..=EXACT_LIMIT as u64).collect(),
                registers: vec![],
            },
        ];
        for p in bad {
            assert!(SourceSketch::from_proto(&p).is_err(), "{p:?}");
        }
        assert_eq!(
            SourceSketch::from_proto(&pb::SourceSketch::default()).unwrap(),
            SourceSketch::new()
        );
    }
}
