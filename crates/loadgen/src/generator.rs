//! The event generator: realistic attack events in event-time order at a
//! logical rate, with duplicates, jitter, late events and bursts on purpose.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use rampart_proto::v1::AttackKind;

use crate::data::{self, ICMP, TCP, UDP};
use crate::error::LoadgenError;
use crate::event::{Event, IpBytes};
use crate::rng::{Alias, Prob, Rng, mix64};
use crate::world::World;

mod config;
mod scan;
pub use config::{BurstConfig, FUTURE_SKEW_MS, GenConfig};
use scan::PrefixScan;

/// What a burst spikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BurstTarget {
    /// Index into `World::countries`.
    Country(usize),
    /// Index into [`SECTORS`](crate::SECTORS).
    Sector(usize),
}

/// The deliberate fault an emitted event carries, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// A normal event (possibly jittered, within `jitter_ms`).
    None,
    /// An event far older than the clock (see `late_min_ms`).
    Late,
    /// The same event again, byte for byte.
    ExactDuplicate,
    /// The same event fields from another sensor (different sensor_id, no
    /// event_id). rampart's default (Auto) fingerprint ignores sensor_id, so
    /// these ARE duplicates for the pipeline.
    SensorCopy,
    /// An event from a clock-skewed sensor, far in the future (see
    /// `GenConfig::future_share`); rejected per event by rampart.
    FutureTime,
    /// An event with an event_id seen again later from another sensor, with a
    /// later time (see `GenConfig::resight_share`).
    Resighting,
}

/// One emitted event with its fault annotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generated {
    pub event: Event,
    pub fault: Fault,
}

/// Counters of what was emitted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenStats {
    /// Every emitted event (originals + duplicates).
    pub events: u64,
    pub originals: u64,
    pub exact_duplicates: u64,
    pub sensor_copies: u64,
    /// Re-sightings of an event_id at a later time.
    pub resightings: u64,
    /// Events far in the future (clock-skewed sensors).
    pub future_time: u64,
    pub late: u64,
    pub with_event_id: u64,
    pub ipv6: u64,
    /// Originals redirected by a burst.
    pub burst_events: u64,
}

#[derive(Debug)]
struct Pending {
    due: i64,
    seq: u64,
    item: Generated,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    // Reversed: BinaryHeap is a max-heap, we want the earliest due first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.due, o.seq).cmp(&(self.due, self.seq))
    }
}

/// Deterministic attack-event generator over a [`World`]. Iterate it (it never
/// ends) or call [`Generator::next_event`].
#[derive(Debug)]
pub struct Generator {
    world: Arc<World>,
    cfg: GenConfig,
    rng: Rng,
    emitted: u64,
    originals: u64,
    now_ms: i64,
    pending: BinaryHeap<Pending>,
    stats: GenStats,
    id_salt: u64,
    kind_alias: Alias,
    scan_alias: Alias,
    brute_alias: Alias,
    back_alias: Alias,
    ids_alias: Alias,
    p_event_id: Prob,
    p_dup: Prob,
    p_overlap: Prob,
    p_late: Prob,
    p_v6: Prob,
    p_burst: Prob,
    p_future: Prob,
    p_resight: Prob,
    p_spread: Prob,
    /// The scanning botnet's sources (`GenConfig::source_spread`).
    scan: PrefixScan,
}

const KINDS: [AttackKind; 4] = [
    AttackKind::Scan,
    AttackKind::Backscatter,
    AttackKind::BruteForce,
    AttackKind::IdsAlert,
];

fn svc_weights(t: &[(u16, u8, f64)]) -> Vec<f64> {
    t.iter().map(|s| s.2).collect()
}

impl Generator {
    /// A generator over `world` with `cfg` (checked).
    pub fn new(world: Arc<World>, cfg: GenConfig) -> Result<Generator, LoadgenError> {
        cfg.check()?;
        let mut scan_w = svc_weights(data::SCAN_SERVICES);
        scan_w.push(data::SCAN_TAIL_WEIGHT);
        let d = cfg.duplicate_rate;
        Ok(Generator {
            rng: Rng::new(cfg.seed, 0x0047_454e),
            emitted: 0,
            originals: 0,
            now_ms: cfg.epoch_ms,
            pending: BinaryHeap::new(),
            stats: GenStats::default(),
            id_salt: mix64(cfg.seed ^ 0x001d_5a17),
            kind_alias: Alias::new(&data::KIND_WEIGHTS),
            scan_alias: Alias::new(&scan_w),
            brute_alias: Alias::new(&svc_weights(data::BRUTE_FORCE_SERVICES)),
            back_alias: Alias::new(&svc_weights(data::BACKSCATTER_SERVICES)),
            ids_alias: Alias::new(&data::IDS_RULES.iter().map(|r| r.3).collect::<Vec<_>>()),
            p_event_id: Prob::new(cfg.event_id_share),
            // duplicates/emitted = d  <=>  copies per original = d / (1 - d)
            p_dup: Prob::new(d / (1.0 - d)),
            p_overlap: Prob::new(cfg.overlap_share),
            p_late: Prob::new(cfg.late_fraction),
            p_v6: Prob::new(cfg.ipv6_share),
            p_burst: Prob::new(cfg.bursts.as_ref().map(|b| b.share).unwrap_or(0.0)),
            p_future: Prob::new(cfg.future_share),
            p_resight: Prob::new(cfg.resight_share),
            p_spread: Prob::new(cfg.source_spread),
            scan: PrefixScan::new(&world),
            world,
            cfg,
        })
    }

    /// The world events are drawn from.
    pub fn world(&self) -> &Arc<World> {
        &self.world
    }

    /// The configuration.
    pub fn config(&self) -> &GenConfig {
        &self.cfg
    }

    /// Counters so far.
    pub fn stats(&self) -> &GenStats {
        &self.stats
    }

    /// The logical clock: the nominal (un-jittered) time of the last emitted event.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// The nominal time of the next event to be emitted.
    pub fn next_clock_ms(&self) -> i64 {
        self.clock_at(self.emitted)
    }

    fn clock_at(&self, i: u64) -> i64 {
        self.cfg.epoch_ms + (u128::from(i) * 1000 / u128::from(self.cfg.rate)) as i64
    }

    /// The burst active at event time `t_ms`, if any.
    pub fn burst_at(&self, t_ms: i64) -> Option<BurstTarget> {
        let b = self.cfg.bursts.as_ref()?;
        let rel = t_ms.checked_sub(self.cfg.epoch_ms)?;
        if rel < 0 || rel % b.period_ms < b.period_ms - b.duration_ms {
            return None;
        }
        let k = (rel / b.period_ms) as u64;
        let h = mix64(self.cfg.seed ^ mix64(k ^ 0xb0_0057));
        if h & 1 == 0 {
            // Mid-size countries, so the spike stands out.
            let n = self.world.countries().len();
            let lo = 3.min(n.saturating_sub(1));
            let hi = 40.min(n).max(lo + 1);
            Some(BurstTarget::Country(
                lo + ((h >> 1) % (hi - lo) as u64) as usize,
            ))
        } else {
            Some(BurstTarget::Sector(
                ((h >> 1) % data::SECTORS.len() as u64) as usize,
            ))
        }
    }

    /// The next event in emission order.
    pub fn next_event(&mut self) -> Generated {
        let clock = self.clock_at(self.emitted);
        self.emitted += 1;
        self.now_ms = clock;
        self.stats.events += 1;
        if self.pending.peek().is_some_and(|p| p.due <= clock)
            && let Some(p) = self.pending.pop()
        {
            match p.item.fault {
                Fault::SensorCopy => self.stats.sensor_copies += 1,
                Fault::Resighting => self.stats.resightings += 1,
                _ => self.stats.exact_duplicates += 1,
            }
            if p.item.event.src_ip.as_slice().len() == 16 {
                self.stats.ipv6 += 1;
            }
            if p.item.event.event_id.is_some() {
                self.stats.with_event_id += 1;
            }
            return p.item;
        }
        let g = self.original(clock);
        if self.rng.chance(self.p_dup) {
            let mut copy = Generated {
                event: g.event,
                fault: Fault::ExactDuplicate,
            };
            if g.event.event_id.is_none() && self.rng.chance(self.p_overlap) {
                copy.event.sensor = g.event.sensor + self.world.sensors();
                copy.fault = Fault::SensorCopy;
            }
            let due = clock + self.rng.range_i64(1, self.cfg.duplicate_delay_ms);
            self.pending.push(Pending {
                due,
                seq: self.originals,
                item: copy,
            });
        }
        if g.event.event_id.is_some()
            && g.fault != Fault::FutureTime
            && self.rng.chance(self.p_resight)
        {
            // Seen again later by another sensor: a later time, due then.
            let delay = self.rng.range_i64(1, self.cfg.resight_delay_ms);
            let mut again = g.event;
            again.time_ms = g.event.time_ms.saturating_add(delay);
            again.sensor = g.event.sensor + self.world.sensors();
            self.pending.push(Pending {
                due: clock + delay,
                // After every duplicate of the same original (seq orders ties).
                seq: self.originals | 1 << 63,
                item: Generated {
                    event: again,
                    fault: Fault::Resighting,
                },
            });
        }
        g
    }

    fn original(&mut self, clock: i64) -> Generated {
        self.originals += 1;
        self.stats.originals += 1;
        let world = Arc::clone(&self.world);
        let burst = if self.cfg.bursts.is_some() {
            self.burst_at(clock)
        } else {
            None
        };
        let rng = &mut self.rng;
        let burst = match burst {
            Some(b) if rng.chance(self.p_burst) => {
                self.stats.burst_events += 1;
                Some(b)
            }
            _ => None,
        };
        let ci = match burst {
            Some(BurstTarget::Country(c)) => c,
            _ => world.country_alias.sample(rng),
        };
        let countries = world.countries();
        let Some(country) = countries.get(ci).or_else(|| countries.first()) else {
            unreachable_world()
        };
        let src_ip = if rng.chance(self.p_spread) {
            IpBytes::v4(self.scan.next_source(&world, rng))
        } else {
            let rank = country.sample_rank(rng);
            let v6 = rng.chance(self.p_v6) && !country.v6.is_empty();
            match country.v6_source(rank) {
                Some(a) if v6 => IpBytes::v6(a),
                _ => IpBytes::v4(country.v4_source(rank)),
            }
        };

        let kind_i = self.kind_alias.sample(rng);
        let kind = KINDS.get(kind_i).copied().unwrap_or(AttackKind::Scan);
        let ephemeral = |rng: &mut Rng| 1024 + rng.below(64_512) as u16;
        let (src_port, dst_port, protocol, rule_id, packets, bytes);
        match kind {
            AttackKind::Backscatter => {
                let (port, proto, _) =
                    pick(data::BACKSCATTER_SERVICES, self.back_alias.sample(rng));
                protocol = proto;
                if proto == ICMP {
                    (src_port, dst_port) = (0, 0);
                } else {
                    (src_port, dst_port) = (port, ephemeral(rng));
                }
                rule_id = 0;
                packets = rng.range_u64(1, 8);
                bytes = packets * rng.range_u64(40, 1500);
            }
            AttackKind::BruteForce => {
                let (port, proto, _) =
                    pick(data::BRUTE_FORCE_SERVICES, self.brute_alias.sample(rng));
                (src_port, dst_port, protocol, rule_id) = (ephemeral(rng), port, proto, 0);
                packets = rng.range_u64(8, 200);
                bytes = packets * rng.range_u64(60, 140);
            }
            AttackKind::IdsAlert => {
                let i = self.ids_alias.sample(rng);
                let (rid, port, proto, _) =
                    data::IDS_RULES.get(i).copied().unwrap_or((0, 23, TCP, 1.0));
                (src_port, dst_port, protocol, rule_id) = (ephemeral(rng), port, proto, rid);
                packets = rng.range_u64(1, 40);
                bytes = packets * rng.range_u64(60, 1500);
            }
            _ => {
                let i = self.scan_alias.sample(rng);
                let (port, proto) = match data::SCAN_SERVICES.get(i) {
                    Some((p, pr, _)) => (*p, *pr),
                    None => {
                        let proto = if rng.below(100) < 85 { TCP } else { UDP };
                        (1 + rng.below(65_535) as u16, proto)
                    }
                };
                protocol = proto;
                rule_id = 0;
                match proto {
                    ICMP => {
                        (src_port, dst_port) = (0, 0);
                        packets = 1;
                        bytes = rng.range_u64(28, 84);
                    }
                    UDP => {
                        (src_port, dst_port) = (ephemeral(rng), port);
                        packets = 1;
                        bytes = 28 + rng.below(485);
                    }
                    _ => {
                        (src_port, dst_port) = (ephemeral(rng), port);
                        packets = if rng.below(10) == 0 {
                            rng.range_u64(2, 3)
                        } else {
                            1
                        };
                        bytes = packets * rng.range_u64(40, 74);
                    }
                }
            }
        }

        let class = match burst {
            Some(BurstTarget::Sector(s)) => s,
            _ => world.class_alias.sample(rng),
        };
        let (dst_ip, sensor) = world.pick_target(class, src_ip.as_slice().len() == 16, rng);

        let late = rng.chance(self.p_late);
        let future = !late && rng.chance(self.p_future);
        let time_ms = if late {
            self.stats.late += 1;
            clock - rng.range_i64(self.cfg.late_min_ms, self.cfg.late_max_ms)
        } else if future {
            self.stats.future_time += 1;
            clock.saturating_add(rng.range_i64(FUTURE_SKEW_MS.0, FUTURE_SKEW_MS.1))
        } else {
            clock - rng.range_i64(0, self.cfg.jitter_ms)
        }
        .max(1);
        let event_id = (kind == AttackKind::IdsAlert || rng.chance(self.p_event_id))
            .then(|| mix64(self.id_salt ^ self.originals));
        if event_id.is_some() {
            self.stats.with_event_id += 1;
        }
        if src_ip.as_slice().len() == 16 {
            self.stats.ipv6 += 1;
        }
        Generated {
            event: Event {
                time_ms,
                src_ip,
                dst_ip,
                src_port,
                dst_port,
                protocol,
                kind,
                rule_id,
                event_id,
                packets,
                bytes,
                sensor,
            },
            fault: if late {
                Fault::Late
            } else if future {
                Fault::FutureTime
            } else {
                Fault::None
            },
        }
    }
}

#[cold]
fn unreachable_world() -> ! {
    // World::new always creates the country list from static, non-empty tables.
    panic!("loadgen world has no countries")
}

fn pick(t: &[(u16, u8, f64)], i: usize) -> (u16, u8, f64) {
    t.get(i)
        .or_else(|| t.first())
        .copied()
        .unwrap_or((23, TCP, 1.0))
}

impl Iterator for Generator {
    type Item = Generated;

    fn next(&mut self) -> Option<Generated> {
        Some(self.next_event())
    }
}
