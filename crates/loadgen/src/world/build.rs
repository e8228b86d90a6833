//! Building the synthetic internet: countries and their ASNs and prefixes,
//! source populations, target ranges by sector, sensors. Deterministic per seed.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::data;
use crate::error::LoadgenError;
use crate::rng::{Alias, Rng};

fn public_slash20(block: u32) -> bool {
    let addr = block << 12;
    let [a, b, c, _] = addr.to_be_bytes();
    !(a == 0
        || a == 10
        || a == 127
        || a >= 224
        || (a == 100 && (b & 0xC0) == 64)
        || (a == 169 && b == 254)
        || (a == 172 && (b & 0xF0) == 16)
        || (a == 192 && (b == 0 || b == 88 || b == 168))
        || (a == 198 && (b == 18 || b == 19 || b == 51))
        || (a == 203 && b == 0)
        || (a == 233 && c == 0))
}

impl World {
    /// Builds the world for `config`. Deterministic: the same config gives the same world.
    pub fn new(config: WorldConfig) -> Result<World, LoadgenError> {
        config.check()?;
        let mut rng = Rng::new(config.seed, 0x0057_4f52_4c44);

        // Country weights: explicit top shares, the rest Zipf-like over the tail.
        let top_sum: f64 = data::TOP_COUNTRIES.iter().map(|(_, w)| w).sum();
        let tail_raw: Vec<f64> = (0..data::TAIL_COUNTRIES.len())
            .map(|k| 1.0 / ((k as f64) + 8.0).powf(1.1))
            .collect();
        let tail_sum: f64 = tail_raw.iter().sum();
        let tail_mass = (100.0 - top_sum).max(0.0);
        let mut codes_weights: Vec<([u8; 2], f64)> = Vec::new();
        for (c, w) in data::TOP_COUNTRIES {
            codes_weights.push((code2(c), w / 100.0));
        }
        for (c, w) in data::TAIL_COUNTRIES.iter().zip(&tail_raw) {
            codes_weights.push((code2(c), tail_mass * w / tail_sum / 100.0));
        }

        // Reserve the target /16s first.
        let mut used20: HashSet<u32> = HashSet::new();
        let mut target16: Vec<u32> = Vec::new();
        while target16.len() < config.target_slash16s as usize {
            let b16 = (rng.next_u64() >> 48) as u32;
            let all_public = (0..16).all(|i| public_slash20((b16 << 4) | i));
            if all_public && !target16.contains(&b16) {
                target16.push(b16);
                for i in 0..16 {
                    used20.insert((b16 << 4) | i);
                }
            }
        }

        // ASNs and prefixes per country.
        let pow_sum = |e: f64| codes_weights.iter().map(|(_, w)| w.powf(e)).sum::<f64>();
        let asn_norm = pow_sum(0.6);
        let pfx_norm = pow_sum(0.8);
        let mut used_asn: HashSet<u32> = data::KNOWN_ASNS.iter().map(|(_, n, _)| *n).collect();
        let mut used_v6: HashSet<[u8; 6]> = HashSet::new();
        let mut countries = Vec::with_capacity(codes_weights.len());
        let mut asns: Vec<Asn> = Vec::with_capacity(config.asns as usize + 256);
        let v6_prob = crate::rng::Prob::new(config.ipv6_asn_share);
        for (ci, (code, w)) in codes_weights.iter().enumerate() {
            let n_asn = ((f64::from(config.asns) * w.powf(0.6) / asn_norm).round() as usize).max(2);
            let n_pfx =
                ((f64::from(config.prefixes) * w.powf(0.8) / pfx_norm).round() as usize).max(n_asn);
            let first = asns.len();
            let known: Vec<&(&str, u32, &str)> = data::KNOWN_ASNS
                .iter()
                .filter(|(c, _, _)| code2(c) == *code)
                .collect();
            // Prefix counts: one each, the rest Zipf 1/(j+1) over the ASNs.
            let hsum: f64 = (0..n_asn).map(|j| 1.0 / (j as f64 + 1.0)).sum();
            let extra = n_pfx - n_asn;
            let mut counts: Vec<usize> = (0..n_asn)
                .map(|j| 1 + (extra as f64 / (j as f64 + 1.0) / hsum) as usize)
                .collect();
            let assigned: usize = counts.iter().sum();
            if let Some(c0) = counts.first_mut() {
                *c0 += n_pfx.saturating_sub(assigned);
            }
            for (j, count) in counts.iter().enumerate() {
                let (number, org) = match known.get(j) {
                    Some((_, n, o)) => (*n, (*o).to_string()),
                    None => {
                        let n = loop {
                            let n = if rng.below(10) < 3 {
                                rng.range_u64(1, 64_495) as u32
                            } else {
                                rng.range_u64(131_072, 401_308) as u32
                            };
                            if n != 23_456 && used_asn.insert(n) {
                                break n;
                            }
                        };
                        let cs = std::str::from_utf8(code).unwrap_or("ZZ");
                        (n, format!("{cs}-NET-AS{n}"))
                    }
                };
                let mut v4 = Vec::with_capacity(*count);
                while v4.len() < *count {
                    let block = loop {
                        let b = (rng.next_u64() >> 44) as u32;
                        if public_slash20(b) && used20.insert(b) {
                            break b;
                        }
                    };
                    let take = (*count - v4.len()).min(16) as u32;
                    for i in 0..take {
                        v4.push((block << 12) | (i << 8));
                    }
                }
                let mut v6 = Vec::new();
                if j == 0 || rng.chance(v6_prob) {
                    let p = loop {
                        let hextets = data::V6_SOURCE_HEXTETS;
                        let h = hextets
                            .get(rng.below(hextets.len() as u64) as usize)
                            .copied()
                            .unwrap_or(0x2400);
                        let r = rng.next_u64();
                        let mut p = [0u8; 6];
                        p[..2].copy_from_slice(&h.to_be_bytes());
                        p[2..].copy_from_slice(&(r as u32).to_be_bytes());
                        if used_v6.insert(p) {
                            break p;
                        }
                    };
                    v6.push(p);
                }
                asns.push(Asn {
                    number,
                    org,
                    country: ci,
                    v4,
                    v6,
                });
            }
            let range = first..asns.len();
            let mut v4: Vec<u32> = asns[range.clone()]
                .iter()
                .flat_map(|a| a.v4.iter().copied())
                .collect();
            let mut v6: Vec<[u8; 6]> = asns[range.clone()]
                .iter()
                .flat_map(|a| a.v6.iter().copied())
                .collect();
            shuffle(&mut v4, &mut rng);
            shuffle(&mut v6, &mut rng);
            let n_src =
                ((f64::from(config.sources) * w).round() as usize).clamp(64, v4.len() * 254);
            let weight =
                |rank: usize| 1.0 / (rank as f64 + 1.0 + config.zipf_q).powf(config.zipf_s);
            let head = n_src.min(ZIPF_HEAD as usize);
            let mut zw: Vec<f64> = (0..head).map(weight).collect();
            let mut zipf_starts = Vec::new();
            let mut start = head;
            while start < n_src {
                let end = (start + (start / 16).max(1)).min(n_src);
                zipf_starts.push(start as u32);
                zw.push((start..end).map(weight).sum());
                start = end;
            }
            countries.push(Country {
                code: *code,
                weight: *w,
                asns: range,
                v4,
                v6,
                zipf: Alias::new(&zw),
                n_sources: n_src as u64,
                zipf_starts,
                host_off: rng.below(254) as u32,
                salt: rng.next_u64(),
            });
        }
        let country_alias = Alias::new(&countries.iter().map(|c| c.weight).collect::<Vec<_>>());

        let mut v4_owner = HashMap::new();
        let mut v6_owner = HashMap::new();
        for (i, a) in asns.iter().enumerate() {
            for p in &a.v4 {
                v4_owner.insert(p >> 8, i as u32);
            }
            for p in &a.v6 {
                v6_owner.insert(*p, i as u32);
            }
        }

        // Target ranges: carve each reserved /16 into /20../24 blocks.
        let sensors = config.sensors;
        let mut targets = Vec::new();
        let mut class_w: Vec<f64> = data::SECTORS.iter().map(|(_, w)| *w).collect();
        class_w.push(data::UNKNOWN_SECTOR_WEIGHT);
        let block_class_alias = Alias::new(&class_w);
        let len_alias = Alias::new(&[0.3, 0.2, 0.2, 0.15, 0.15]);
        target16.sort_unstable();
        for b16 in &target16 {
            let base = b16 << 16;
            let mut off: u32 = 0;
            while off < 65_536 {
                let mut len = 20 + len_alias.sample(&mut rng) as u32;
                while !off.is_multiple_of(1u32 << (32 - len)) {
                    len += 1;
                }
                let class = if targets.len() < CLASSES {
                    targets.len()
                } else {
                    block_class_alias.sample(&mut rng)
                };
                let sensor = (targets.len() % usize::from(sensors)) as u16;
                targets.push(TargetRange {
                    addr: IpAddr::V4(Ipv4Addr::from(base + off)),
                    prefix_len: len as u8,
                    sector: (class != UNKNOWN_CLASS).then_some(class),
                    sensor,
                });
                off += 1u32 << (32 - len);
            }
        }
        let mut v4_targets: Vec<(u32, u32, usize)> = targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t.addr {
                IpAddr::V4(a) => Some((u32::from(a), 1u32 << (32 - u32::from(t.prefix_len)), i)),
                IpAddr::V6(_) => None,
            })
            .collect();
        v4_targets.sort_unstable();
        let mut class_blocks = Vec::with_capacity(CLASSES);
        for class in 0..CLASSES {
            let idx: Vec<usize> = v4_targets
                .iter()
                .enumerate()
                .filter(|(_, (_, _, ti))| class_of(&targets[*ti]) == class)
                .map(|(i, _)| i)
                .collect();
            let w: Vec<f64> = idx.iter().map(|i| f64::from(v4_targets[*i].1)).collect();
            class_blocks.push((idx, Alias::new(&w)));
        }
        let mut class_v6 = Vec::with_capacity(CLASSES);
        for class in 0..CLASSES {
            let mut p = [0u8; 6];
            p[..4].copy_from_slice(&data::V6_TARGET_32);
            p[4..].copy_from_slice(&(class as u16 + 1).to_be_bytes());
            let sensor = (class % usize::from(sensors)) as u16;
            let mut a = [0u8; 16];
            a[..6].copy_from_slice(&p);
            targets.push(TargetRange {
                addr: IpAddr::V6(Ipv6Addr::from(a)),
                prefix_len: 48,
                sector: (class != UNKNOWN_CLASS).then_some(class),
                sensor,
            });
            class_v6.push((p, sensor));
        }
        let sensor_names = (1..=2 * u32::from(sensors))
            .map(|i| format!("sensor-{i:02}"))
            .collect();

        Ok(World {
            config,
            countries,
            asns,
            country_alias,
            targets,
            v4_targets,
            class_blocks,
            class_alias: Alias::new(&class_w),
            class_v6,
            v4_owner,
            v6_owner,
            sensor_names,
        })
    }
}

fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}
