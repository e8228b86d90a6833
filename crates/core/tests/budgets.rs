//! Key budgets (`rampart_core::budget`): the engine applies the same rules as
//! the reference model, and every total still adds up.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;

use proptest::prelude::*;
use rampart_core::budget::{KeyBudget, OTHER_KEY_PREFIX};
use rampart_core::enrich::Enricher;
use rampart_core::ingest::IngestConfig;
use rampart_core::model::{self, ModelInput};
use rampart_core::proto::v1::{Dimension, Rollup};
use support::*;

fn budget_strategy() -> impl Strategy<Value = KeyBudget> {
    (
        prop_oneof![1usize..12, Just(usize::MAX)],
        prop_oneof![1usize..6, Just(usize::MAX)],
        prop_oneof![1usize..5, Just(usize::MAX)],
    )
        .prop_map(
            |(prefix_cells, publish_top_keys, count_entries)| KeyBudget {
                prefix_cells,
                publish_top_keys,
                count_entries,
            },
        )
}

/// The origin country of a prefix key of the generated events (the
/// `TableEnricher` maps a source's first byte to its country).
fn prefix_country(key: &str) -> String {
    let first = if key.contains(':') {
        0x20 // 2001:db8::/32, the generator's IPv6 sources
    } else {
        key.split('.').next().unwrap().parse::<u8>().unwrap()
    };
    TableEnricher
        .origin(&[first, 0, 0, 0])
        .country_str()
        .to_owned()
}

fn of(rollups: &[Rollup], d: Dimension) -> impl Iterator<Item = &Rollup> {
    rollups.iter().filter(move |r| r.dimension == d as i32)
}

/// (raw, unique, duplicates, late, packets, bytes) per (window, country).
type Totals = BTreeMap<(i64, String), [u64; 6]>;

fn add(t: &mut Totals, window: i64, country: String, r: &Rollup) {
    let e = t.entry((window, country)).or_default();
    for (sum, v) in e.iter_mut().zip([
        r.raw_events,
        r.unique_events,
        r.duplicates,
        r.late_events,
        r.packets,
        r.bytes,
    ]) {
        *sum += v;
    }
}

fn run(cfg: &IngestConfig, parts: &[Vec<ModelInput>], flush: bool) -> (Vec<Rollup>, Vec<Rollup>) {
    let (outs, _) = ingest_all(cfg, parts, flush);
    let core = merge_all(cfg.window.size_ms, &outs);
    let m = model::run(cfg, parts, &mut TableEnricher, flush);
    (core, m.rollups)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// With any budgets, ingest + merge equals the model byte for byte, and
    /// against the unbounded model: the country and sector dimensions are
    /// untouched; per window and country, the origin prefix and ASN rows
    /// (their own keys plus `other:<country>`) add up to the exact totals;
    /// every row's port counts plus its overflow equal its unique events.
    #[test]
    fn budgets_match_model_and_totals_add_up(
        g in gen_strategy(),
        cfg in cfg_strategy(),
        keys in budget_strategy(),
        n in 1usize..4,
        flush in any::<bool>(),
    ) {
        let evs = events(&g, cfg.dedup.bucket_ms);
        let parts: Vec<Vec<ModelInput>> = split_partitions(&evs, n)
            .iter()
            .enumerate()
            .map(|(i, p)| messages(p, g.seed.wrapping_add(i as u64), g.bad_pct, true))
            .collect();
        let bounded_cfg = IngestConfig { keys, ..cfg.clone() };
        let (core, model_bounded) = run(&bounded_cfg, &parts, flush);
        assert_same(&core, &model_bounded);
        let exact = model::run(&cfg, &parts, &mut TableEnricher, flush).rollups;

        // Only the count-entry cap touches these dimensions, and only
        // their top lists.
        let uncapped = |r: &Rollup| Rollup {
            top_dst_ports: vec![],
            top_rules: vec![],
            dst_ports_overflow: 0,
            rules_overflow: 0,
            ..r.clone()
        };
        for d in [Dimension::OriginCountry, Dimension::TargetSector, Dimension::CountrySector] {
            let a: Vec<Rollup> = of(&core, d).map(uncapped).collect();
            let b: Vec<Rollup> = of(&exact, d).map(uncapped).collect();
            prop_assert_eq!(a, b, "{:?} must not change", d);
            if keys.count_entries == usize::MAX {
                prop_assert!(of(&core, d).eq(of(&exact, d)));
            }
        }
        let mut want = Totals::new();
        for r in of(&exact, Dimension::OriginCountry) {
            add(&mut want, r.window_start_ms, r.key.clone(), r);
        }
        for d in [Dimension::OriginPrefix, Dimension::OriginAsn] {
            let mut got = Totals::new();
            for r in of(&core, d) {
                let country = match r.key.strip_prefix(OTHER_KEY_PREFIX) {
                    Some(c) => c.to_owned(),
                    None if d == Dimension::OriginPrefix => prefix_country(&r.key),
                    // ASN 64500 + b % 7: one ASN may span countries, so
                    // compare ASN totals per window only (below).
                    None => String::new(),
                };
                add(&mut got, r.window_start_ms, country, r);
            }
            if d == Dimension::OriginPrefix {
                prop_assert_eq!(&got, &want, "prefix totals per window and country");
            }
            let per_window = |t: &Totals| {
                let mut w: BTreeMap<i64, [u64; 6]> = BTreeMap::new();
                for ((window, _), v) in t {
                    let e = w.entry(*window).or_default();
                    for (s, x) in e.iter_mut().zip(v) { *s += x; }
                }
                w
            };
            prop_assert_eq!(per_window(&got), per_window(&want), "{:?} totals per window", d);
        }
        for r in &core {
            // 7 distinct ports < TOP_K: the top list holds every kept value.
            let ports: u64 = r.top_dst_ports.iter().map(|e| e.count).sum();
            prop_assert_eq!(ports + r.dst_ports_overflow, r.unique_events);
            let rules: u64 = r.top_rules.iter().map(|e| e.count).sum();
            prop_assert_eq!(rules + r.rules_overflow, r.unique_events);
            if keys.count_entries == usize::MAX {
                prop_assert_eq!(r.dst_ports_overflow + r.rules_overflow, 0);
            }
        }
    }
}

/// One event per /24 for 400 /24s of four countries in one window, one partition: with a
/// budget of 10 prefix cells and 3 published keys, the window publishes 10
/// prefixes at most plus one `other:<country>` per country, and the totals
/// are those of 400 events (hand count).
#[test]
fn scattered_sources_fold_into_other() {
    use prost::Message;
    use rampart_core::proto::v1::{AttackEvent, AttackEventBatch};
    let events: Vec<AttackEvent> = (0..400u32)
        .map(|i| AttackEvent {
            time_ms: T0 + i64::from(i),
            src_ip: vec![[1, 2, 4, 5][(i % 4) as usize], (i / 4) as u8, 0, 9],
            dst_ip: vec![1, 0, 0, 1],
            dst_port: 22,
            protocol: 6,
            kind: 1,
            rule_id: i,
            packets: 1,
            ..AttackEvent::default()
        })
        .collect();
    let payload = AttackEventBatch { events }.encode_to_vec();
    let parts = vec![vec![ModelInput::Message {
        offset: 0,
        payload,
        trusted_now_ms: None,
    }]];
    for keys in [
        KeyBudget {
            prefix_cells: 10,
            ..KeyBudget::UNBOUNDED
        },
        KeyBudget {
            prefix_cells: 10,
            publish_top_keys: 3,
            count_entries: 4,
        },
    ] {
        let cfg = IngestConfig {
            keys,
            ..IngestConfig::default()
        };
        let (core, model) = run(&cfg, &parts, true);
        assert_same(&core, &model);
        let prefixes: Vec<&Rollup> = of(&core, Dimension::OriginPrefix).collect();
        let others = prefixes
            .iter()
            .filter(|r| r.key.starts_with(OTHER_KEY_PREFIX))
            .count();
        // First bytes 1, 2, 4, 5: US, RU, ZZ, CN.
        assert_eq!(others, 4, "one other key per country: {prefixes:?}");
        let own = prefixes.len() - others;
        assert_eq!(own, keys.publish_top_keys.min(10));
        let raw: u64 = prefixes.iter().map(|r| r.raw_events).sum();
        assert_eq!(raw, 400);
        let asns: Vec<&Rollup> = of(&core, Dimension::OriginAsn).collect();
        assert_eq!(asns.iter().map(|r| r.raw_events).sum::<u64>(), 400);
        let other_sources: u64 = prefixes
            .iter()
            .filter(|r| r.key.starts_with(OTHER_KEY_PREFIX))
            .map(|r| r.distinct_sources)
            .sum();
        assert_eq!(
            other_sources,
            400 - own as u64,
            "each folded event is its own source"
        );
        if keys.count_entries == 4 {
            let country_rules: u64 = of(&core, Dimension::OriginCountry)
                .map(|r| r.rules_overflow)
                .sum();
            // 100 events and 100 rule ids per country, 4 kept.
            assert_eq!(country_rules, 4 * 96);
        }
    }
}
