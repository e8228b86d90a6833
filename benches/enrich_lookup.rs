//! Origin + sector lookups for Zipf-skewed addresses (a few sources and
//! targets are hit very often, as in real attack traffic), cached and not.
//!
//! Data: a GeoLite2-Country-shaped MMDB with 20k IPv4 networks (/12../24) plus
//! 2k IPv6 (/32../48), an ASN MMDB with the same shape, and a 2k-entry sector
//! table (/16../28), all written to a tempdir by `rampart-mmdb`.
//!
//! `origin/scattered/*`: sources as scattered as a scanning botnet (1 M random
//! IPv4 addresses, nearly each in a /24 of its own), answered by the table of
//! shared /24 origins the ingest uses, or by walking the search trees; and
//! the table's one-off build.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_core::enrich::Enricher;
use rampart_enrich::{Enrichment, MmdbOrigin, SectorTable};
use rampart_mmdb::{MmdbWriter, asn_record, country_record};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BATCH: usize = 4096;
const DISTINCT: usize = 50_000;

/// Zipf(s) ranks 0..n by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut StdRng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
}

fn random_v4_net(rng: &mut StdRng, min: u8, max: u8) -> (IpAddr, u8) {
    let len = rng.random_range(min..=max);
    let a: u32 = rng.random::<u32>() & u32::MAX << (32 - len);
    (IpAddr::V4(Ipv4Addr::from(a)), len)
}

fn random_v6_net(rng: &mut StdRng) -> (IpAddr, u8) {
    let len = rng.random_range(32..=48u8);
    let a: u128 = ((0x2000u128 | rng.random_range(0..0x400u128)) << 112)
        | (u128::from(rng.random::<u64>()) << 48);
    let a = a & u128::MAX << (128 - u32::from(len));
    (IpAddr::V6(Ipv6Addr::from(a)), len)
}

struct Setup {
    /// Holds the MMDB files (`country.mmdb`, `asn.mmdb`).
    dir: tempfile::TempDir,
    enrichment: Enrichment,
    /// (source, destination) pairs, Zipf-skewed.
    batch: Vec<(Vec<u8>, Vec<u8>)>,
}

fn setup() -> Setup {
    let mut rng = StdRng::seed_from_u64(7);
    let dir = tempfile::tempdir().unwrap();
    let countries = ["CN", "US", "RU", "BR", "IN", "DE", "NL", "KR", "VN", "JP"];
    let mut c = MmdbWriter::new("GeoLite2-Country");
    let mut a = MmdbWriter::new("GeoLite2-ASN");
    for i in 0..22_000u32 {
        let (ip, len) = if i < 20_000 {
            random_v4_net(&mut rng, 12, 24)
        } else {
            random_v6_net(&mut rng)
        };
        let cc = countries[i as usize % countries.len()];
        c.insert_prefix(ip, len, country_record(cc, cc)).unwrap();
        a.insert_prefix(ip, len, asn_record(1000 + i % 5000, "org"))
            .unwrap();
    }
    let cp = dir.path().join("country.mmdb");
    let ap = dir.path().join("asn.mmdb");
    c.write_to_path(&cp).unwrap();
    a.write_to_path(&ap).unwrap();

    let sectors = [
        "energy",
        "dams",
        "financial-services",
        "nisc:telecom",
        "naics:2211",
    ];
    let mut csv = String::from("cidr,sector\n");
    let mut seen = std::collections::HashSet::new();
    for i in 0..2_000 {
        let (ip, len) = random_v4_net(&mut rng, 16, 28);
        if seen.insert((ip, len)) {
            csv.push_str(&format!("{ip}/{len},{}\n", sectors[i % sectors.len()]));
        }
    }
    let sp = dir.path().join("assets.csv");
    std::fs::write(&sp, csv).unwrap();
    let enrichment = Enrichment::open(Some(&cp), Some(&ap), Some(&sp)).unwrap();

    // Distinct addresses (90% IPv4), then a Zipf(1.1) stream over them.
    let addrs: Vec<Vec<u8>> = (0..DISTINCT)
        .map(|i| {
            if i % 10 == 9 {
                let (ip, _) = random_v6_net(&mut rng);
                let IpAddr::V6(v6) = ip else { unreachable!() };
                let bits = u128::from(v6) | u128::from(rng.random::<u64>());
                Ipv6Addr::from(bits).octets().to_vec()
            } else {
                rng.random::<[u8; 4]>().to_vec()
            }
        })
        .collect();
    let z = Zipf::new(DISTINCT, 1.1);
    let batch = (0..BATCH)
        .map(|_| {
            (
                addrs[z.sample(&mut rng)].clone(),
                addrs[z.sample(&mut rng)].clone(),
            )
        })
        .collect();
    Setup {
        dir,
        enrichment,
        batch,
    }
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let mut g = c.benchmark_group("enrich");
    g.throughput(Throughput::Elements(BATCH as u64));

    let mut e = s.enrichment.clone();
    g.bench_function("origin+sector/cached", |b| {
        b.iter(|| {
            for (src, dst) in &s.batch {
                black_box(e.origin(src));
                black_box(e.sector(dst));
            }
        })
    });
    let mut e = Enrichment {
        origin: s.enrichment.origin.clone().with_cache_slots(0),
        sectors: s.enrichment.sectors.clone().with_cache_slots(0),
    };
    g.bench_function("origin+sector/uncached", |b| {
        b.iter(|| {
            for (src, dst) in &s.batch {
                black_box(e.origin(src));
                black_box(e.sector(dst));
            }
        })
    });
    let mut o: MmdbOrigin = s.enrichment.origin.clone();
    g.bench_function("origin/cached", |b| {
        b.iter(|| {
            for (src, _) in &s.batch {
                black_box(o.lookup_bytes(src));
            }
        })
    });
    let mut t: SectorTable = s.enrichment.sectors.clone();
    g.bench_function("sector/cached", |b| {
        b.iter(|| {
            for (_, dst) in &s.batch {
                black_box(t.lookup_bytes(dst));
            }
        })
    });
    let mut rng = StdRng::seed_from_u64(11);
    let scattered: Vec<u32> = (0..1_000_000).map(|_| rng.random()).collect();
    g.throughput(Throughput::Elements(scattered.len() as u64));
    let table = s.enrichment.origin.prefix24_origins().unwrap();
    g.bench_function("origin/scattered/table", |b| {
        b.iter(|| {
            for &a in &scattered {
                black_box(table.get(a).and_then(|i| table.origins().get(i as usize)));
            }
        })
    });
    let mut tree = s.enrichment.origin.clone().with_cache_slots(0);
    g.bench_function("origin/scattered/tree", |b| {
        b.iter(|| {
            for &a in &scattered {
                black_box(tree.lookup_bytes(&a.to_be_bytes()));
            }
        })
    });
    let shared = scattered
        .iter()
        .filter(|&&a| table.get(a).is_some())
        .count();
    eprintln!(
        "table: {} origins; {shared} of {} scattered sources in a shared /24",
        table.origins().len(),
        scattered.len()
    );
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    let (cp, ap) = (
        s.dir.path().join("country.mmdb"),
        s.dir.path().join("asn.mmdb"),
    );
    g.bench_function("origin/prefix24-table-build", |b| {
        b.iter_batched(
            || MmdbOrigin::open(Some(&cp), Some(&ap)).unwrap(),
            |o| o.prefix24_origins().cloned(),
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
    let st = o.stats();
    eprintln!(
        "origin cache hit rate {:.1}% ({} lookups); sector cache hit rate {:.1}%",
        100.0 * st.cache_hits as f64 / st.lookups.max(1) as f64,
        st.lookups,
        100.0 * t.stats().cache_hits as f64 / t.stats().lookups.max(1) as f64,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
