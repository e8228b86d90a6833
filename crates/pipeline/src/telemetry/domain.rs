//! Attack counters by target sector, origin country and kind, counted from
//! the merge stage's final rollups, with labels bounded whatever the input
//! (see the module docs of [`super`]).

use metrics::{Counter, counter};
use rampart_core::proto::v1::{AttackKind, Dimension, Rollup};
use rustc_hash::FxHashMap;

use super::MAX_SECTORS;

/// Label values for a bounded, volume-ranked key space (origin countries):
/// the top `n` keys by cumulative volume get their own label, admitted once
/// and kept; the rest is `other`. At most `2 n` labels ever exist.
struct TopN {
    n: usize,
    volume: FxHashMap<String, u64>,
    labels: FxHashMap<String, Counter>,
    other: Counter,
}

/// Keys whose volume is tracked for ranking; beyond this, keys go to `other`.
const MAX_TRACKED_KEYS: usize = 4096;

impl TopN {
    fn new(n: usize) -> Self {
        TopN {
            n,
            volume: FxHashMap::default(),
            labels: FxHashMap::default(),
            other: counter!("rampart_attack_origin_events_total", "origin_country" => "other"),
        }
    }

    fn is_labelled(&self, key: &str) -> bool {
        self.labels.contains_key(key)
    }

    fn add(&mut self, key: &str, v: u64) {
        if let Some(c) = self.labels.get(key) {
            c.increment(v);
            return;
        }
        let vol = if let Some(x) = self.volume.get_mut(key) {
            *x += v;
            *x
        } else if self.volume.len() < MAX_TRACKED_KEYS {
            self.volume.insert(key.to_string(), v);
            v
        } else {
            self.other.increment(v);
            return;
        };
        let rank = self.volume.values().filter(|&&x| x > vol).count();
        let admissible = key.len() <= 16 && key != "other";
        if admissible && rank < self.n && self.labels.len() < 2 * self.n {
            let c =
                counter!("rampart_attack_origin_events_total", "origin_country" => key.to_string());
            c.increment(v);
            self.labels.insert(key.to_string(), c);
        } else {
            self.other.increment(v);
        }
    }
}

/// Domain counters from final rollups (see the module docs).
pub(super) struct Domain {
    countries: TopN,
    sectors: FxHashMap<String, Counter>,
    sector_other: Counter,
    sector_country: FxHashMap<(String, String), Counter>,
    kinds: FxHashMap<i32, Counter>,
}

fn kind_label(k: i32) -> &'static str {
    match AttackKind::try_from(k) {
        Ok(AttackKind::Scan) => "scan",
        Ok(AttackKind::Backscatter) => "backscatter",
        Ok(AttackKind::BruteForce) => "brute_force",
        Ok(AttackKind::IdsAlert) => "ids_alert",
        Ok(AttackKind::Exploit) => "exploit",
        _ => "unspecified",
    }
}

impl Domain {
    pub(super) fn new(top: usize) -> Self {
        Domain {
            countries: TopN::new(top),
            sectors: FxHashMap::default(),
            sector_other: counter!("rampart_attack_sector_events_total", "sector" => "other"),
            sector_country: FxHashMap::default(),
            kinds: FxHashMap::default(),
        }
    }

    fn sector_label(&mut self, sector: &str) -> Option<String> {
        if self.sectors.contains_key(sector) {
            return Some(sector.to_string());
        }
        if self.sectors.len() < MAX_SECTORS && sector.len() <= 64 && sector != "other" {
            self.sectors.insert(
                sector.to_string(),
                counter!("rampart_attack_sector_events_total", "sector" => sector.to_string()),
            );
            return Some(sector.to_string());
        }
        None
    }

    /// Counts rollups made final together. Origin countries go first, the
    /// largest first, so the labels admitted are the top countries by volume
    /// (in key order the first countries alphabetically took them) and
    /// country × sector rollups see those labels.
    pub(super) fn rollups(&mut self, rollups: &[Rollup]) {
        let is_country = |r: &&Rollup| r.dimension == Dimension::OriginCountry as i32;
        let mut countries: Vec<&Rollup> = rollups.iter().filter(is_country).collect();
        countries.sort_by_key(|r| std::cmp::Reverse(r.unique_events));
        for r in countries {
            self.rollup(r);
        }
        for r in rollups.iter().filter(|r| !is_country(r)) {
            self.rollup(r);
        }
    }

    fn rollup(&mut self, r: &Rollup) {
        let v = r.unique_events;
        match Dimension::try_from(r.dimension) {
            Ok(Dimension::TargetSector) => {
                match self.sector_label(&r.key) {
                    Some(s) => {
                        if let Some(c) = self.sectors.get(&s) {
                            c.increment(v);
                        }
                    }
                    None => self.sector_other.increment(v),
                }
                for t in &r.top_kinds {
                    let k = t.value as i32;
                    self.kinds
                        .entry(k)
                        .or_insert_with(|| {
                            counter!("rampart_attack_kind_events_total", "kind" => kind_label(k))
                        })
                        .increment(t.count);
                }
            }
            Ok(Dimension::OriginCountry) => self.countries.add(&r.key, v),
            Ok(Dimension::CountrySector) => {
                let Some((country, sector)) = r.key.split_once('|') else {
                    return;
                };
                let country = if self.countries.is_labelled(country) {
                    country
                } else {
                    "other"
                };
                let sector = self.sector_label(sector).unwrap_or_else(|| "other".into());
                let key = (sector, country.to_string());
                if let Some(c) = self.sector_country.get(&key) {
                    c.increment(v);
                    return;
                }
                let c = counter!(
                    "rampart_attack_sector_origin_events_total",
                    "sector" => key.0.clone(),
                    "origin_country" => key.1.clone()
                );
                c.increment(v);
                self.sector_country.insert(key, c);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_countries_of_a_window_get_the_labels_whatever_their_key_order() {
        let country = |key: &str, unique_events: u64| Rollup {
            dimension: Dimension::OriginCountry as i32,
            key: key.to_string(),
            unique_events,
            ..Rollup::default()
        };
        // 30 small countries whose keys sort before the three large ones.
        let mut window: Vec<Rollup> = (0..30u8)
            .map(|i| country(&format!("A{}", (b'A' + i % 26) as char), 1))
            .collect();
        window.extend([
            country("CN", 3_800),
            country("IN", 1_000),
            country("US", 800),
        ]);
        let mut domain = Domain::new(3);
        domain.rollups(&window);
        for big in ["CN", "IN", "US"] {
            assert!(domain.countries.is_labelled(big), "{big} has no label");
        }
        assert_eq!(domain.countries.labels.len(), 3, "small countries labelled");
    }

    #[test]
    fn top_n_keeps_labels_bounded_and_sticky() {
        let mut t = TopN::new(3);
        for i in 0..10_000u64 {
            t.add(&format!("K{}", i % 500), 1 + i % 7);
        }
        assert!(t.labels.len() <= 6, "{} labels", t.labels.len());
        assert!(t.labels.len() >= 3);
        let before: Vec<String> = t.labels.keys().cloned().collect();
        for i in 0..1000u64 {
            t.add(&format!("Z{i}"), 1_000_000);
        }
        for k in &before {
            assert!(t.is_labelled(k), "{k} lost its label");
        }
        assert!(t.labels.len() <= 6);
        assert!(t.volume.len() <= MAX_TRACKED_KEYS);
    }
}
