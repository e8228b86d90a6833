//! The scanning botnet of `GenConfig::source_spread`.

use crate::rng::Rng;
use crate::world::World;

/// A walk over every IPv4 /24 of the world in a fixed pseudo-random order
/// (`position * step mod total`, `step` coprime with `total`, so each /24
/// comes once per pass).
#[derive(Debug)]
pub(super) struct PrefixScan {
    /// First global /24 index of each country (cumulative `v4` lengths).
    starts: Vec<u64>,
    total: u64,
    step: u64,
    position: u64,
}

impl PrefixScan {
    pub(super) fn new(world: &World) -> Self {
        let mut starts = Vec::with_capacity(world.countries().len());
        let mut total = 0u64;
        for c in world.countries() {
            starts.push(total);
            total += c.v4.len() as u64;
        }
        let gcd = |mut a: u64, mut b: u64| {
            while b != 0 {
                (a, b) = (b, a % b);
            }
            a
        };
        // Near the golden ratio of the total: consecutive events land far apart.
        let mut step = (total as f64 * 0.618_033_988_75) as u64 | 1;
        while total > 1 && gcd(step, total) != 1 {
            step += 2;
        }
        PrefixScan {
            starts,
            total,
            step: step.max(1),
            position: 0,
        }
    }

    /// The next source: a random host of the next /24.
    pub(super) fn next_source(&mut self, world: &World, rng: &mut Rng) -> [u8; 4] {
        let global = (u128::from(self.position) * u128::from(self.step)
            % u128::from(self.total.max(1))) as u64;
        self.position += 1;
        let ci = self
            .starts
            .partition_point(|&s| s <= global)
            .saturating_sub(1);
        let prefix = world
            .countries()
            .get(ci)
            .and_then(|c| {
                let i = global - self.starts.get(ci).copied().unwrap_or(0);
                c.v4.get(i as usize)
            })
            .copied()
            .unwrap_or(0);
        (prefix | (1 + rng.below(254)) as u32).to_be_bytes()
    }
}
