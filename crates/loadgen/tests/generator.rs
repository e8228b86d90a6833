//! Distribution, determinism and validity tests of the generator.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use prost::Message;
use rampart_loadgen::*;
use rampart_proto::v1::{AttackEvent, AttackEventBatch, AttackKind};

fn world() -> Arc<World> {
    static W: OnceLock<Arc<World>> = OnceLock::new();
    W.get_or_init(|| Arc::new(World::new(WorldConfig::default()).unwrap()))
        .clone()
}

fn quiet() -> GenConfig {
    GenConfig {
        bursts: None,
        ..GenConfig::default()
    }
}

fn run(
    gen_cfg: GenConfig,
    rec_cfg: RecordConfig,
    n: u64,
) -> (Vec<(Record, Option<MalformedKind>)>, GenStats, RecordStats) {
    let g = Generator::new(world(), gen_cfg).unwrap();
    let mut s = RecordStream::new(g, rec_cfg, Limit::Events(n)).unwrap();
    let mut out = Vec::new();
    while let Some(r) = s.next_annotated() {
        out.push(r);
    }
    (out, s.generator().stats().clone(), s.stats().clone())
}

fn decode_all(recs: &[(Record, Option<MalformedKind>)]) -> Vec<(AttackEvent, i64)> {
    let mut evs = Vec::new();
    for (r, m) in recs {
        if m.is_none() {
            let b = AttackEventBatch::decode(&r.payload[..]).expect("valid record decodes");
            assert!(!b.events.is_empty());
            for e in b.events {
                evs.push((e, r.timestamp_ms));
            }
        }
    }
    evs
}

/// The Auto fingerprint's identity: event_id when present, else the tuple with a 1 s bucket.
fn auto_key(e: &AttackEvent) -> Vec<u8> {
    if !e.event_id.is_empty() {
        return [b"id:".as_slice(), e.event_id.as_bytes()].concat();
    }
    let mut k = Vec::new();
    k.extend_from_slice(&e.src_ip);
    k.extend_from_slice(&e.dst_ip);
    for v in [e.src_port, e.dst_port, e.protocol, e.kind as u32, e.rule_id] {
        k.extend_from_slice(&v.to_le_bytes());
    }
    k.extend_from_slice(&(e.time_ms / 1000).to_le_bytes());
    k
}

fn share(n: usize, total: usize) -> f64 {
    n as f64 / total as f64
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let cfg = RecordConfig {
        events_per_batch: 100,
        malformed_share: 0.01,
        ..RecordConfig::default()
    };
    let a = run(GenConfig::default(), cfg.clone(), 30_000).0;
    let b = run(GenConfig::default(), cfg.clone(), 30_000).0;
    assert_eq!(a, b);
    let c = run(
        GenConfig {
            seed: 2,
            ..GenConfig::default()
        },
        cfg,
        30_000,
    )
    .0;
    assert_ne!(a, c);
    // A fresh world from the same config is the same world.
    let w2 = World::new(WorldConfig::default()).unwrap();
    let n1: Vec<_> = world().origin_networks().map(|n| (n.addr, n.asn)).collect();
    let n2: Vec<_> = w2.origin_networks().map(|n| (n.addr, n.asn)).collect();
    assert_eq!(n1, n2);
}

#[test]
fn distributions_within_tolerance() {
    let n = 200_000u64;
    // 10 k/s: the run spans 20 s of event time, so the duplicates still pending
    // at the end (up to duplicate_delay_ms = 1 s) are a small fraction.
    let cfg = GenConfig {
        rate: 10_000,
        ..quiet()
    };
    let (recs, gs, rs) = run(
        cfg,
        RecordConfig {
            events_per_batch: 1,
            ..RecordConfig::default()
        },
        n,
    );
    let evs = decode_all(&recs);
    assert_eq!(evs.len() as u64, n);
    assert_eq!(gs.events, n);
    let w = world();

    // Countries.
    let mut by_country: HashMap<String, usize> = HashMap::new();
    for (e, _) in &evs {
        let o = w.origin(&e.src_ip);
        assert_ne!(o.country_str(), "ZZ", "every source belongs to the world");
        *by_country.entry(o.country_str().to_string()).or_default() += 1;
    }
    let total = evs.len();
    let cs = |c: &str| share(by_country.get(c).copied().unwrap_or(0), total);
    assert!((cs("CN") - 0.38).abs() < 0.01, "CN {}", cs("CN"));
    assert!((cs("IN") - 0.10).abs() < 0.006, "IN {}", cs("IN"));
    assert!((cs("US") - 0.08).abs() < 0.006, "US {}", cs("US"));
    assert!(
        by_country.len() >= 150,
        "long tail: {} countries",
        by_country.len()
    );

    // Ports, protocols, kinds.
    let port23 = evs
        .iter()
        .filter(|(e, _)| e.dst_port == 23 && e.protocol == 6)
        .count();
    assert!(
        (share(port23, total) - 0.25).abs() < 0.02,
        "23/tcp {}",
        share(port23, total)
    );
    let mut ports: HashMap<u32, usize> = HashMap::new();
    for (e, _) in &evs {
        *ports.entry(e.dst_port).or_default() += 1;
    }
    let mut ranked: Vec<_> = ports.iter().filter(|(p, _)| **p != 0).collect();
    ranked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top: Vec<u32> = ranked.iter().take(4).map(|(p, _)| **p).collect();
    assert_eq!(top[0], 23);
    assert_eq!(top[1], 445, "{top:?}");
    assert!(top[2..].contains(&22) && top[2..].contains(&80), "{top:?}");
    assert!(ports.len() > 20_000, "long port tail: {}", ports.len());
    let tcp = evs.iter().filter(|(e, _)| e.protocol == 6).count();
    let udp = evs.iter().filter(|(e, _)| e.protocol == 17).count();
    let icmp = evs.iter().filter(|(e, _)| e.protocol == 1).count();
    assert!(share(tcp, total) > 0.75 && share(udp, total) > 0.03 && share(icmp, total) > 0.02);
    let scans = evs
        .iter()
        .filter(|(e, _)| e.kind == AttackKind::Scan as i32)
        .count();
    assert!((share(scans, total) - 0.70).abs() < 0.01);
    for (e, _) in &evs {
        if e.kind == AttackKind::IdsAlert as i32 {
            assert!(e.rule_id != 0 && !e.event_id.is_empty());
        }
    }

    // Sectors.
    let mut by_sector: HashMap<Option<usize>, usize> = HashMap::new();
    for (e, _) in &evs {
        *by_sector.entry(w.sector(&e.dst_ip)).or_default() += 1;
    }
    let total_w: f64 = SECTORS.iter().map(|s| s.1).sum::<f64>() + UNKNOWN_SECTOR_WEIGHT;
    for (i, (name, wt)) in SECTORS.iter().enumerate() {
        let got = share(by_sector.get(&Some(i)).copied().unwrap_or(0), total);
        assert!((got - wt / total_w).abs() < 0.006, "{name}: {got}");
    }
    let unk = share(by_sector.get(&None).copied().unwrap_or(0), total);
    assert!(
        (unk - UNKNOWN_SECTOR_WEIGHT / total_w).abs() < 0.006,
        "unknown {unk}"
    );

    // IPv6.
    let v6 = evs.iter().filter(|(e, _)| e.src_ip.len() == 16).count();
    assert!(
        (share(v6, total) - 0.03).abs() < 0.005,
        "ipv6 {}",
        share(v6, total)
    );
    assert!(evs.iter().all(|(e, _)| e.src_ip.len() == e.dst_ip.len()));

    // Duplicates as the Auto fingerprint sees them: ~2 % of events.
    let mut seen = HashSet::new();
    let dups = evs
        .iter()
        .filter(|(e, _)| !seen.insert(auto_key(e)))
        .count();
    assert!(
        (share(dups, total) - 0.02).abs() < 0.0015,
        "dups {}",
        share(dups, total)
    );
    assert_eq!(
        gs.exact_duplicates + gs.sensor_copies,
        dups as u64,
        "every duplicate is an injected one"
    );
    assert!(gs.sensor_copies > 0 && gs.exact_duplicates > gs.sensor_copies);

    // Late: far older than the record timestamp.
    let late = evs
        .iter()
        .filter(|(e, ts)| ts - e.time_ms > 600_000)
        .count();
    assert!(
        (share(late, total) - 0.001).abs() < 0.0003,
        "late {}",
        share(late, total)
    );
    // Everything else within jitter + duplicate delay + record delay.
    assert!(evs.iter().all(|(e, ts)| ts - e.time_ms > 1_800_000 + 10
        || ts - e.time_ms <= 2000 + 1000 + 5
        || ts - e.time_ms > 600_000));

    // Event ids: IDS (8 %) + 30 % of the rest.
    let ids = evs.iter().filter(|(e, _)| !e.event_id.is_empty()).count();
    let want = 0.08 + 0.92 * 0.3;
    assert!(
        (share(ids, total) - want).abs() < 0.01,
        "event_id share {}",
        share(ids, total)
    );

    // Malformed records: 0.1 % of records.
    let m = recs.iter().filter(|(_, k)| k.is_some()).count();
    assert_eq!(m as u64, rs.malformed);
    assert!(
        (share(m, recs.len()) - 0.001).abs() < 0.0004,
        "malformed {}",
        share(m, recs.len())
    );

    // Time span: N events at 10 k/s span 20 s of event time.
    let min_t = evs
        .iter()
        .filter(|(e, ts)| ts - e.time_ms < 600_000)
        .map(|(e, _)| e.time_ms)
        .min()
        .unwrap();
    let max_t = evs.iter().map(|(e, _)| e.time_ms).max().unwrap();
    let epoch = GenConfig::default().epoch_ms;
    assert!(min_t >= epoch - 2_000 && min_t < epoch + 100, "{min_t}");
    assert!(max_t < epoch + 20_000 && max_t >= epoch + 19_900, "{max_t}");
}

#[test]
fn sources_are_zipf_concentrated() {
    let g = Generator::new(world(), quiet()).unwrap();
    let mut per_src: HashMap<Vec<u8>, u64> = HashMap::new();
    let n = 200_000;
    for x in g.take(n) {
        *per_src
            .entry(x.event.src_ip.as_slice().to_vec())
            .or_default() += 1;
    }
    let mut counts: Vec<u64> = per_src.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let top = (counts.len() / 100).max(1);
    let top_sum: u64 = counts[..top].iter().sum();
    let s = top_sum as f64 / n as f64;
    assert!(s > 0.5, "top 1% of {} sources send {s}", counts.len());
    assert!(
        counts.len() > 5_000,
        "many distinct sources: {}",
        counts.len()
    );
}

/// Structural validity as rampart's validator defines it (see rampart_core::validate).
fn structurally_valid(e: &AttackEvent, ts: i64) -> bool {
    e.time_ms > 0
        && e.time_ms <= ts + 300_000
        && ts - e.time_ms <= 7 * 24 * 3600 * 1000
        && matches!(e.src_ip.len(), 4 | 16)
        && matches!(e.dst_ip.len(), 4 | 16)
        && e.src_port <= 65_535
        && e.dst_port <= 65_535
        && e.protocol <= 255
        && AttackKind::try_from(e.kind).is_ok_and(|k| k != AttackKind::Unspecified)
        && e.event_id.len() <= 256
        && e.sensor_id.len() <= 256
}

#[test]
fn valid_records_valid_malformed_records_rejected() {
    let cfg = RecordConfig {
        events_per_batch: 50,
        malformed_share: 0.05,
        ..RecordConfig::default()
    };
    let (recs, _, rs) = run(GenConfig::default(), cfg, 100_000);
    let mut kinds = HashSet::new();
    for (r, m) in &recs {
        assert_eq!(r.partition, partition_for_key(&r.key, 12));
        let decoded = AttackEventBatch::decode(&r.payload[..]);
        match m {
            None => {
                let b = decoded.unwrap();
                assert!(!b.events.is_empty() && b.events.len() <= 50);
                for e in &b.events {
                    assert!(structurally_valid(e, r.timestamp_ms), "{e:?}");
                    assert_eq!(
                        partition_for_key(&e.src_ip, 12),
                        r.partition,
                        "batch mixes partitions"
                    );
                }
            }
            Some(k) => {
                kinds.insert(*k);
                let ok = match decoded {
                    Err(_) => false,
                    Ok(b) => {
                        !b.events.is_empty()
                            && b.events
                                .iter()
                                .all(|e| structurally_valid(e, r.timestamp_ms))
                    }
                };
                assert!(!ok, "malformed {k:?} record passes validation");
                assert_eq!(
                    *k == MalformedKind::Truncated,
                    decoded_is_err(&r.payload),
                    "{k:?}"
                );
            }
        }
    }
    assert_eq!(
        kinds.len(),
        MalformedKind::ALL.len(),
        "every malformed kind appears"
    );
    assert!(rs.malformed > 0);
}

fn decoded_is_err(p: &[u8]) -> bool {
    AttackEventBatch::decode(p).is_err()
}

#[test]
fn per_partition_timestamps_monotonic_and_sequences_exact() {
    let cfg = RecordConfig {
        events_per_batch: 200,
        ..RecordConfig::default()
    };
    let (recs, gs, _) = run(GenConfig::default(), cfg, 50_000);
    let mut last: HashMap<i32, i64> = HashMap::new();
    for (r, _) in &recs {
        let l = last.entry(r.partition).or_insert(i64::MIN);
        assert!(
            r.timestamp_ms >= *l,
            "partition {} goes back in time",
            r.partition
        );
        *l = r.timestamp_ms;
    }
    let seqs = partition_sequences(recs.iter().map(|(r, _)| r.clone()), 12);
    assert_eq!(seqs.len(), 12);
    assert_eq!(seqs.iter().map(Vec::len).sum::<usize>(), recs.len());
    assert!(seqs.iter().all(|s| !s.is_empty()));
    let evs = decode_all(&recs);
    assert_eq!(evs.len() as u64, gs.events);
}

#[test]
fn bursts_spike_their_target() {
    let cfg = GenConfig {
        rate: 1_000,
        bursts: Some(BurstConfig {
            period_ms: 60_000,
            duration_ms: 20_000,
            share: 0.5,
        }),
        ..GenConfig::default()
    };
    let g = Generator::new(world(), cfg).unwrap();
    let w = world();
    assert_eq!(g.burst_at(g.config().epoch_ms + 39_999), None);
    let target = g.burst_at(g.config().epoch_ms + 40_000).unwrap();
    assert_eq!(g.burst_at(g.config().epoch_ms + 59_999), Some(target));
    let mut in_burst = (0u64, 0u64);
    let mut outside = (0u64, 0u64);
    let epoch = g.config().epoch_ms;
    let mut g = g;
    for _ in 0..60_000 {
        let x = g.next_event();
        let clock = g.now_ms();
        let hit = match target {
            BurstTarget::Country(c) => {
                w.origin(x.event.src_ip.as_slice()).country == w.countries()[c].code
            }
            BurstTarget::Sector(s) => w.sector(x.event.dst_ip.as_slice()) == Some(s),
        };
        let slot = if (clock - epoch) < 40_000 {
            &mut outside
        } else if (clock - epoch) < 60_000 {
            &mut in_burst
        } else {
            continue;
        };
        slot.0 += u64::from(hit);
        slot.1 += 1;
    }
    let a = in_burst.0 as f64 / in_burst.1 as f64;
    let b = outside.0 as f64 / outside.1 as f64;
    assert!(a > b + 0.4, "burst {target:?}: {a} vs {b}");
    assert!(g.stats().burst_events > 0);
}

#[test]
fn world_shape_and_sector_table() {
    let w = world();
    let asns: HashSet<u32> = w.asns().iter().map(|a| a.number).collect();
    assert_eq!(asns.len(), w.asns().len(), "ASN numbers are unique");
    assert!(w.asns().len() >= 15_000, "{}", w.asns().len());
    assert!(asns.contains(&4134) && asns.contains(&7922));
    assert!(
        !asns
            .iter()
            .any(|n| *n == 0 || *n == 23_456 || (64_496..=131_071).contains(n))
    );
    let nets: Vec<_> = w.origin_networks().collect();
    assert!(nets.iter().filter(|n| n.prefix_len == 24).count() >= 50_000);
    assert!(nets.iter().any(|n| n.prefix_len == 48));
    assert!(
        (150..=200).contains(&w.countries().len()),
        "{}",
        w.countries().len()
    );
    let prefixes: HashSet<_> = nets.iter().map(|n| n.addr).collect();
    assert_eq!(prefixes.len(), nets.len(), "no network has two owners");
    for n in &nets {
        if let std::net::IpAddr::V4(a) = n.addr {
            let o = a.octets();
            assert!(
                !(o[0] == 10
                    || o[0] == 127
                    || o[0] >= 224
                    || o[0] == 0
                    || (o[0] == 192 && o[1] == 168)),
                "{a}"
            );
            assert_eq!(
                w.sector(&o),
                None,
                "source space and target space are disjoint"
            );
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sectors.csv");
    w.write_sector_table(&p).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("cidr,sector"));
    let mut slugs = HashSet::new();
    for l in lines {
        let (cidr, sector) = l.split_once(',').unwrap();
        assert!(sector.starts_with("cisa:"));
        slugs.insert(sector.to_string());
        let (addr, len) = cidr.split_once('/').unwrap();
        let ip: std::net::IpAddr = addr.parse().unwrap();
        let bytes = match ip {
            std::net::IpAddr::V4(a) => a.octets().to_vec(),
            std::net::IpAddr::V6(a) => a.octets().to_vec(),
        };
        let s = w.sector(&bytes).unwrap();
        assert_eq!(sector, format!("cisa:{}", SECTORS[s].0));
        assert!(len.parse::<u8>().unwrap() >= 20);
    }
    assert_eq!(slugs.len(), 16);
}

#[test]
fn enricher_matches_world() {
    use rampart_core::enrich::{Enricher, SectorId};
    let w = world();
    let mut e = w.enricher();
    assert_eq!(e.sector_name(SectorId::UNKNOWN), "unknown");
    for (i, (slug, _)) in SECTORS.iter().enumerate() {
        assert_eq!(
            e.sector_name(SectorId(i as u16 + 1)),
            format!("cisa:{slug}")
        );
    }
    let g = Generator::new(world(), quiet()).unwrap();
    for x in g.take(5_000) {
        let o = e.origin(x.event.src_ip.as_slice());
        assert_eq!(o, w.origin(x.event.src_ip.as_slice()));
        let s = e.sector(x.event.dst_ip.as_slice());
        assert_eq!(
            s.0 as usize,
            w.sector(x.event.dst_ip.as_slice()).map_or(0, |i| i + 1)
        );
    }
    assert_eq!(
        e.origin(&[10, 0, 0, 1]),
        rampart_core::enrich::Origin::UNKNOWN
    );
}

#[test]
fn record_file_roundtrip() {
    let (recs, _, _) = run(GenConfig::default(), RecordConfig::default(), 20_000);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("run.rec");
    let mut w =
        RecordWriter::new(std::io::BufWriter::new(std::fs::File::create(&p).unwrap())).unwrap();
    for (r, _) in &recs {
        w.write(r).unwrap();
    }
    w.finish().unwrap();
    let back: Vec<Record> =
        RecordReader::new(std::io::BufReader::new(std::fs::File::open(&p).unwrap()))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    assert_eq!(back, recs.into_iter().map(|(r, _)| r).collect::<Vec<_>>());
}

#[test]
fn bad_configs_are_rejected() {
    let w = world();
    assert!(
        Generator::new(
            w.clone(),
            GenConfig {
                rate: 0,
                duplicate_rate: 0.7,
                ..GenConfig::default()
            }
        )
        .unwrap_err()
        .to_string()
        .contains("duplicate_rate")
    );
    let g = Generator::new(w, GenConfig::default()).unwrap();
    assert!(
        RecordStream::new(
            g,
            RecordConfig {
                partitions: 0,
                ..RecordConfig::default()
            },
            Limit::Unbounded
        )
        .is_err()
    );
    assert!(
        World::new(WorldConfig {
            target_slash16s: 1,
            ..WorldConfig::default()
        })
        .is_err()
    );
}

#[test]
fn duration_limit_bounds_event_time() {
    let cfg = GenConfig {
        rate: 50_000,
        ..quiet()
    };
    let epoch = cfg.epoch_ms;
    let g = Generator::new(world(), cfg).unwrap();
    let rc = RecordConfig {
        events_per_batch: 500,
        malformed_share: 0.0,
        ..RecordConfig::default()
    };
    let mut s = RecordStream::new(g, rc, Limit::DurationMs(3_000)).unwrap();
    let recs: Vec<Record> = s.by_ref().collect();
    assert_eq!(s.generator().stats().events, 150_000, "3 s at 50 k/s");
    assert!(recs.iter().all(|r| r.timestamp_ms <= epoch + 3_000 + 5));
}

/// `source_spread = 1`: originals walk the world's /24s, so N originals with
/// N below the world's /24 count come from N distinct /24s, each a /24 of the
/// world (its enricher knows the country); the default Zipf mix repeats /24s.
#[test]
fn source_spread_walks_every_slash24_once() {
    use rampart_core::enrich::Enricher;
    let spread = GenConfig {
        source_spread: 1.0,
        duplicate_rate: 0.0,
        late_fraction: 0.0,
        ..quiet()
    };
    let n = 20_000u64;
    let slash24s = |cfg: GenConfig| {
        let (recs, _, _) = run(cfg, RecordConfig::default(), n);
        let evs = decode_all(&recs);
        assert_eq!(evs.len() as u64, n);
        let v4: Vec<Vec<u8>> = evs
            .iter()
            .filter(|(e, _)| e.src_ip.len() == 4)
            .map(|(e, _)| e.src_ip[..3].to_vec())
            .collect();
        (v4.len(), v4.into_iter().collect::<HashSet<_>>().len(), evs)
    };
    let (v4, distinct, evs) = slash24s(spread.clone());
    assert_eq!(v4 as u64, n, "a scanning botnet is IPv4");
    assert_eq!(distinct as u64, n, "each /24 once per pass");
    let w = world();
    let mut enricher = w.enricher();
    assert!(
        evs.iter()
            .all(|(e, _)| enricher.origin(&e.src_ip).country_str() != "ZZ"),
        "every scanned /24 belongs to a country of the world"
    );
    let (_, concentrated, _) = slash24s(GenConfig {
        duplicate_rate: 0.0,
        late_fraction: 0.0,
        ..quiet()
    });
    assert!(
        concentrated * 2 < distinct,
        "Zipf sources repeat /24s: {concentrated} distinct of {n}"
    );
    // Same seed, same stream.
    assert_eq!(slash24s(spread).2, evs);
    assert!(
        GenConfig {
            source_spread: 1.5,
            ..quiet()
        }
        .check()
        .is_err()
    );
}
