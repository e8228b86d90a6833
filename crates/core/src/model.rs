//! An obviously-correct, slow reference of rampart's whole semantics, used by
//! property tests and by the load generator's ground truth.
//!
//! It shares no code with the hot path except `validate::validate` (tested on
//! its own) and `SourceSketch` (to encode the exact set of sources): payloads
//! are decoded with prost, duplicates are found by the exact identity the
//! fingerprint would hash, and aggregates live in `BTreeMap`s.
//!
//! ```
//! use rampart_core::model::{ModelInput, run};
//! # use rampart_core::enrich::{Enricher, Origin, SectorId};
//! # struct E; impl Enricher for E {
//! #   fn origin(&mut self, _: &[u8]) -> Origin { Origin::UNKNOWN }
//! #   fn sector(&mut self, _: &[u8]) -> SectorId { SectorId::UNKNOWN }
//! #   fn sector_name(&self, _: SectorId) -> &str { "unknown" } }
//! let partitions: Vec<Vec<ModelInput>> = vec![vec![]];
//! let out = run(&Default::default(), &partitions, &mut E, true);
//! assert!(out.rollups.is_empty());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use prost::Message;

use crate::budget::{KeyBudget, OTHER_KEY_PREFIX, other_key};
use crate::enrich::Enricher;
use crate::event::EventView;
use crate::fingerprint::{Field, FingerprintSpec};
use crate::ingest::IngestConfig;
use crate::proto::v1::{AttackEvent, AttackEventBatch, Dimension, Rollup, TopEntry};
use crate::sketch::{SourceSketch, source_hash};
use crate::validate::{Rejection, validate};

/// One item of an input partition, in offset order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelInput {
    /// A Kafka message carrying an `AttackEventBatch` payload.
    /// `trusted_now_ms` is the clock its events are judged against (the
    /// broker's LogAppendTime, or the partition's recorded ingest clock);
    /// `None` skips the future/past checks.
    Message {
        offset: i64,
        payload: Vec<u8>,
        trusted_now_ms: Option<i64>,
    },
    /// The partition was idle and its head advanced to `head_ms`.
    IdleAdvance { head_ms: i64 },
}

/// A dead-lettered message (`index: None`: the whole message did not decode
/// or was not an acceptable batch) or one rejected event of a message
/// (`index`: its position in the message's batch; the other events of that
/// message are aggregated).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rejected {
    pub partition: u32,
    pub offset: i64,
    pub index: Option<u32>,
    pub reason: Rejection,
}

/// Totals over the whole input (every partition).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelTotals {
    pub messages: u64,
    /// Valid events (aggregated: unique + duplicates + late).
    pub events: u64,
    /// Events rejected one by one (not counting whole rejected messages).
    pub rejected_events: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub late: u64,
}

/// What the model computes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelOutput {
    /// Final rollups in (window_start, dimension, key) order.
    pub rollups: Vec<Rollup>,
    /// Dead letters, in (partition, offset, index) order.
    pub rejected: Vec<Rejected>,
    pub totals: ModelTotals,
    /// Windows starting before this are final (`None`: some partition never
    /// got a watermark).
    pub final_before: Option<i64>,
}

/// Everything the fingerprint may hash, kept exactly.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Bytes(Vec<u8>),
    Int(i64),
}

fn identity(spec: &FingerprintSpec, e: &AttackEvent) -> Vec<Value> {
    use Value::{Bytes, Int};
    let tb = |tb: i64| Int(e.time_ms.div_euclid(tb.max(1)));
    match spec {
        FingerprintSpec::Auto { time_bucket_ms } => {
            if e.event_id.is_empty() {
                vec![
                    Int(2),
                    Bytes(e.src_ip.clone()),
                    Bytes(e.dst_ip.clone()),
                    Int(e.src_port.into()),
                    Int(e.dst_port.into()),
                    Int(e.protocol.into()),
                    Int(e.kind.into()),
                    Int(e.rule_id.into()),
                    tb(*time_bucket_ms),
                ]
            } else {
                vec![Int(1), Bytes(e.event_id.as_bytes().to_vec())]
            }
        }
        FingerprintSpec::Fields {
            fields,
            time_bucket_ms,
        } => {
            let mut v = vec![Int(3)];
            for f in fields {
                v.push(match f {
                    Field::EventId => Bytes(e.event_id.as_bytes().to_vec()),
                    Field::SrcIp => Bytes(e.src_ip.clone()),
                    Field::DstIp => Bytes(e.dst_ip.clone()),
                    Field::SrcPort => Int(e.src_port.into()),
                    Field::DstPort => Int(e.dst_port.into()),
                    Field::Protocol => Int(e.protocol.into()),
                    Field::Kind => Int(e.kind.into()),
                    Field::RuleId => Int(e.rule_id.into()),
                    Field::TimeBucket => tb(*time_bucket_ms),
                    Field::Time => Int(e.time_ms),
                    Field::SensorId => Bytes(e.sensor_id.as_bytes().to_vec()),
                });
            }
            v
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Agg {
    raw: u64,
    unique: u64,
    dups: u64,
    packets: u64,
    bytes: u64,
    late: u64,
    sources: BTreeSet<u64>,
    ports: BTreeMap<u32, u64>,
    kinds: BTreeMap<u32, u64>,
    rules: BTreeMap<u32, u64>,
    first: Option<i64>,
    last: Option<i64>,
    ports_overflow: u64,
    rules_overflow: u64,
}

impl Agg {
    fn merge(&mut self, o: &Agg) {
        self.raw += o.raw;
        self.unique += o.unique;
        self.dups += o.dups;
        self.packets = self.packets.saturating_add(o.packets);
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.late += o.late;
        self.sources.extend(o.sources.iter().copied());
        for (m, from) in [
            (&mut self.ports, &o.ports),
            (&mut self.kinds, &o.kinds),
            (&mut self.rules, &o.rules),
        ] {
            for (v, c) in from {
                let e = m.entry(*v).or_default();
                *e = e.saturating_add(*c);
            }
        }
        self.first = match (self.first, o.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = self.last.max(o.last);
        self.ports_overflow = self.ports_overflow.saturating_add(o.ports_overflow);
        self.rules_overflow = self.rules_overflow.saturating_add(o.rules_overflow);
    }
}

/// Keeps the `keep` largest counts of `m` (ties: smaller value) and returns
/// the sum of the others (the partial's count-entry cap).
fn cap(m: &mut BTreeMap<u32, u64>, keep: usize) -> u64 {
    let mut v: Vec<(u32, u64)> = m.iter().map(|(a, b)| (*a, *b)).collect();
    v.sort_by_key(|&(value, count)| (std::cmp::Reverse(count), value));
    let mut overflow = 0u64;
    for &(value, count) in v.iter().skip(keep) {
        overflow = overflow.saturating_add(count);
        m.remove(&value);
    }
    overflow
}

/// Identity of an origin cell: (prefix key, country, ASN).
type CellIdentity = (String, String, u32);

/// One input partition's rows: (window, dimension, key) → origin country
/// (empty outside the origin prefix and ASN dimensions) → aggregate.
type PartitionRows = BTreeMap<(i64, i32, String), BTreeMap<String, Agg>>;

/// Applies the roll-up budgets of one partition (`crate::budget`) and adds
/// its rows into `aggs`: the top `publish_top_keys` prefixes and ASNs per
/// window keep their key, the others go to `other:<country>`; every row's
/// port and rule counts are capped at `count_entries`.
fn publish_partition(
    keys_budget: &KeyBudget,
    rows: PartitionRows,
    aggs: &mut BTreeMap<(i64, i32, String), Agg>,
) {
    let origin_dims = [Dimension::OriginAsn as i32, Dimension::OriginPrefix as i32];
    // (window, dimension) → ranked keys kept.
    let mut kept: BTreeMap<(i64, i32), BTreeSet<String>> = BTreeMap::new();
    let mut totals: BTreeMap<(i64, i32), Vec<(u64, String)>> = BTreeMap::new();
    for ((w, d, k), by_country) in &rows {
        if origin_dims.contains(d) && !k.starts_with(OTHER_KEY_PREFIX) {
            let n = by_country.values().map(|a| a.raw + a.late).sum();
            totals.entry((*w, *d)).or_default().push((n, k.clone()));
        }
    }
    for (wd, mut v) in totals {
        v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        kept.insert(
            wd,
            v.into_iter()
                .take(keys_budget.publish_top_keys)
                .map(|e| e.1)
                .collect(),
        );
    }
    let mut published: BTreeMap<(i64, i32, String), Agg> = BTreeMap::new();
    for ((w, d, k), by_country) in rows {
        for (country, a) in by_country {
            let folded = origin_dims.contains(&d)
                && !k.starts_with(OTHER_KEY_PREFIX)
                && kept.get(&(w, d)).is_some_and(|set| !set.contains(&k));
            let key = if folded {
                other_key(&country)
            } else {
                k.clone()
            };
            published.entry((w, d, key)).or_default().merge(&a);
        }
    }
    for (row, mut a) in published {
        a.ports_overflow = cap(&mut a.ports, keys_budget.count_entries);
        a.rules_overflow = cap(&mut a.rules, keys_budget.count_entries);
        aggs.entry(row).or_default().merge(&a);
    }
}

fn top(m: &BTreeMap<u32, u64>) -> Vec<TopEntry> {
    let mut v: Vec<(u32, u64)> = m.iter().map(|(a, b)| (*a, *b)).collect();
    v.sort_by_key(|&(value, count)| (std::cmp::Reverse(count), value));
    v.into_iter()
        .take(10)
        .map(|(value, count)| TopEntry { value, count })
        .collect()
}

/// An event's (dimension, key) rows and its origin cell identity.
fn keys<E: Enricher + ?Sized>(
    e: &AttackEvent,
    enricher: &mut E,
) -> (Vec<(Dimension, String)>, CellIdentity) {
    let origin = enricher.origin(&e.src_ip);
    let country = origin.country_str().to_owned();
    let prefix = if e.src_ip.len() == 4 {
        format!("{}.{}.{}.0/24", e.src_ip[0], e.src_ip[1], e.src_ip[2])
    } else {
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&e.src_ip[..6]);
        format!("{}/48", Ipv6Addr::from(b))
    };
    let sector_id = enricher.sector(&e.dst_ip);
    let sector = enricher.sector_name(sector_id).to_owned();
    let cell = (prefix.clone(), country.clone(), origin.asn);
    let rows = vec![
        (Dimension::OriginCountry, country.clone()),
        (Dimension::OriginAsn, format!("AS{}", origin.asn)),
        (Dimension::OriginPrefix, prefix),
        (Dimension::TargetSector, sector.clone()),
        (Dimension::CountrySector, format!("{country}|{sector}")),
    ];
    (rows, cell)
}

/// The rows of an event counted in window `w` of its partition: its origin
/// prefix becomes `other:<country>` when its cell is not among the first
/// `prefix_cells` of the window; each row carries the origin country where
/// the roll-up budget splits by it.
fn budgeted(
    rows: Vec<(Dimension, String)>,
    cell: CellIdentity,
    admitted: &mut BTreeSet<CellIdentity>,
    prefix_cells: usize,
) -> Vec<(Dimension, String, String)> {
    let country = cell.1.clone();
    let fits = admitted.contains(&cell) || admitted.len() < prefix_cells;
    if fits {
        admitted.insert(cell);
    }
    rows.into_iter()
        .map(|(d, k)| match d {
            Dimension::OriginPrefix if !fits => (d, other_key(&country), country.clone()),
            Dimension::OriginPrefix | Dimension::OriginAsn => (d, k, country.clone()),
            _ => (d, k, String::new()),
        })
        .collect()
}

fn view(e: &AttackEvent) -> EventView<'_> {
    EventView {
        time_ms: e.time_ms,
        src_ip: &e.src_ip,
        dst_ip: &e.dst_ip,
        src_port: e.src_port,
        dst_port: e.dst_port,
        protocol: e.protocol,
        kind: e.kind,
        rule_id: e.rule_id,
        event_id: e.event_id.as_bytes(),
        packets: e.packets,
        bytes: e.bytes,
        sensor_id: e.sensor_id.as_bytes(),
    }
}

/// Runs the reference semantics over `partitions` (partition `i` = `partitions[i]`,
/// items in offset order). With `flush_all`, every watermark finally goes to
/// +inf and every window is final; otherwise only windows every partition has
/// closed are.
///
/// Event payloads are trusted to be small enough to index (this is a test
/// model): IPs are validated to 4 or 16 bytes before use.
pub fn run<E: Enricher + ?Sized>(
    cfg: &IngestConfig,
    partitions: &[Vec<ModelInput>],
    enricher: &mut E,
    flush_all: bool,
) -> ModelOutput {
    let size = cfg.window.size_ms.max(1);
    let win = |t: i64| t.div_euclid(size) * size;
    let bucket_ms = cfg.dedup.bucket_ms.max(1);
    let mut aggs: BTreeMap<(i64, i32, String), Agg> = BTreeMap::new();
    let mut out = ModelOutput::default();
    let mut final_before: Option<i64> = Some(i64::MAX);

    for (pi, items) in partitions.iter().enumerate() {
        let mut rows: PartitionRows = BTreeMap::new();
        // window → origin cells admitted (in event order).
        let mut admitted: BTreeMap<i64, BTreeSet<CellIdentity>> = BTreeMap::new();
        let prefix_cells = cfg.keys.prefix_cells;
        let mut head: Option<i64> = None;
        // identity -> bucket of first sighting; bucket -> identities
        let mut remembered: BTreeMap<Vec<Value>, i64> = BTreeMap::new();
        let mut by_bucket: BTreeMap<i64, Vec<Vec<Value>>> = BTreeMap::new();
        for item in items {
            let (offset, payload, trusted_now) = match item {
                ModelInput::IdleAdvance { head_ms } => {
                    head = Some(head.map_or(*head_ms, |h| h.max(*head_ms)));
                    continue;
                }
                ModelInput::Message {
                    offset,
                    payload,
                    trusted_now_ms,
                } => (*offset, payload, *trusted_now_ms),
            };
            out.totals.messages += 1;
            let reject = |reason| Rejected {
                partition: pi as u32,
                offset,
                index: None,
                reason,
            };
            let Ok(batch) = AttackEventBatch::decode(payload.as_slice()) else {
                out.rejected.push(reject(Rejection::MalformedProtobuf));
                continue;
            };
            if batch.events.len() > cfg.limits.max_batch_events {
                out.rejected.push(reject(Rejection::BatchTooLarge));
                continue;
            }
            if batch.events.is_empty() {
                out.rejected.push(reject(Rejection::EmptyBatch));
                continue;
            }
            for (index, e) in batch.events.iter().enumerate() {
                // Per event: a rejected event touches neither head nor dedup.
                if let Err(reason) = validate(&view(e), trusted_now, &cfg.limits) {
                    out.totals.rejected_events += 1;
                    out.rejected.push(Rejected {
                        partition: pi as u32,
                        offset,
                        index: Some(index as u32),
                        reason,
                    });
                    continue;
                }
                out.totals.events += 1;
                let t = e.time_ms;
                let (ks, cell) = keys(e, enricher);
                let watermark = head.map(|h| h - cfg.window.out_of_orderness_ms);
                let late =
                    watermark.is_some_and(|w| win(t) + size + cfg.window.allowed_lateness_ms <= w);
                if let (true, Some(h)) = (late, head) {
                    out.totals.late += 1;
                    let w = win(h);
                    let cells = admitted.entry(w).or_default();
                    for (d, k, c) in budgeted(ks, cell, cells, prefix_cells) {
                        let row = rows.entry((w, d as i32, k)).or_default();
                        row.entry(c).or_default().late += 1;
                    }
                    continue;
                }
                if let Some(w) = watermark {
                    // forget every bucket b with (b+1)*bucket_ms <= w - horizon
                    while let Some((&b, _)) = by_bucket.first_key_value() {
                        if (b + 1) * bucket_ms > w - cfg.dedup.horizon_ms {
                            break;
                        }
                        for id in by_bucket.remove(&b).unwrap_or_default() {
                            remembered.remove(&id);
                        }
                    }
                }
                let id = identity(&cfg.fingerprint, e);
                let b = t.div_euclid(bucket_ms);
                // An event whose own bucket already expired is never remembered.
                let expired =
                    watermark.is_some_and(|w| (b + 1) * bucket_ms <= w - cfg.dedup.horizon_ms);
                let dup = !expired && remembered.contains_key(&id);
                if !dup && !expired {
                    remembered.insert(id.clone(), b);
                    by_bucket.entry(b).or_default().push(id);
                }
                if dup {
                    out.totals.duplicates += 1;
                } else {
                    out.totals.unique += 1;
                }
                let cells = admitted.entry(win(t)).or_default();
                for (d, k, c) in budgeted(ks, cell, cells, prefix_cells) {
                    let row = rows.entry((win(t), d as i32, k)).or_default();
                    let a = row.entry(c).or_default();
                    a.raw += 1;
                    if dup {
                        a.dups += 1;
                    } else {
                        a.unique += 1;
                        a.packets = a.packets.saturating_add(e.packets.max(1));
                        a.bytes = a.bytes.saturating_add(e.bytes);
                        a.sources.insert(source_hash(&e.src_ip));
                        *a.ports.entry(e.dst_port).or_default() += 1;
                        *a.kinds.entry(e.kind as u32).or_default() += 1;
                        *a.rules.entry(e.rule_id).or_default() += 1;
                        a.first = Some(a.first.map_or(t, |f| f.min(t)));
                        a.last = Some(a.last.map_or(t, |l| l.max(t)));
                    }
                }
                head = Some(head.map_or(t, |h| h.max(t)));
            }
        }
        publish_partition(&cfg.keys, rows, &mut aggs);
        // This partition's closed_before at the end of its input.
        let closed_before = if flush_all {
            Some(i64::MAX)
        } else {
            head.map(|h| win(h - cfg.window.out_of_orderness_ms - cfg.window.allowed_lateness_ms))
        };
        final_before = match (final_before, closed_before) {
            (Some(a), Some(b)) => Some(a.min(b)),
            _ => None,
        };
    }
    if partitions.is_empty() {
        final_before = None;
    }
    out.final_before = final_before;
    out.rejected.sort();

    for ((start, dim, key), a) in aggs {
        if final_before.is_none_or(|f| start >= f) {
            continue;
        }
        let mut sk = SourceSketch::new();
        for h in &a.sources {
            sk.insert_hash(*h);
        }
        out.rollups.push(Rollup {
            dimension: dim,
            key,
            window_start_ms: start,
            window_end_ms: start + size,
            raw_events: a.raw,
            unique_events: a.unique,
            duplicates: a.dups,
            packets: a.packets,
            bytes: a.bytes,
            late_events: a.late,
            distinct_sources: sk.estimate(),
            sources_sketch: sk.to_proto().encode_to_vec(),
            top_dst_ports: top(&a.ports),
            top_kinds: top(&a.kinds),
            top_rules: top(&a.rules),
            first_seen_ms: a.first.unwrap_or(0),
            last_seen_ms: a.last.unwrap_or(0),
            dst_ports_overflow: a.ports_overflow,
            rules_overflow: a.rules_overflow,
        });
    }
    out
}
