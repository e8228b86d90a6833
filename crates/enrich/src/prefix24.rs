//! The table of shared /24 origins ([`Prefix24Origins`]) built once from the
//! origin databases' search trees, so the ingest stage finds the origin of a
//! source it has never seen with one load instead of two tree walks.
//!
//! Every leaf of each database's IPv4 tree (with or without data) is visited
//! once: a leaf of /24 or shorter gives all its /24s its answer, a longer one
//! splits its /24. A /24 gets a slot value only when no database splits it and
//! its records decode; everything else (splits, records that do not decode, a
//! tree that cannot be walked as IPv4) is left to the per-address lookup, so
//! the table never answers differently from [`crate::MmdbOrigin`]'s lookups.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network};
use maxminddb::{LookupResult, Reader, WithinOptions};
use rampart_core::enrich::{Origin, Prefix24Origins};
use rustc_hash::FxHashMap;

use crate::origin::{decode_asn, decode_country};
use crate::schema::OriginFields;

/// A country code as a nonzero `u16` (0 marks a split /24).
fn code(country: [u8; 2]) -> u16 {
    u16::from_be_bytes(country)
}

/// The table for these databases; `None` without any database or when a tree
/// cannot be walked as IPv4 (every lookup then goes through the reader).
pub(crate) fn build(
    country_db: Option<&Reader<Vec<u8>>>,
    asn_db: Option<&Reader<Vec<u8>>>,
    fields: &OriginFields,
) -> Option<Prefix24Origins> {
    if country_db.is_none() && asn_db.is_none() {
        return None;
    }
    let n = Prefix24Origins::PREFIXES;
    // Countries by /24; 0 = split (also where no leaf was seen).
    let countries = match country_db {
        Some(db) => {
            let mut countries = vec![0u16; n];
            walk(
                db,
                code(Origin::UNKNOWN.country),
                |leaf| decode_country(fields, leaf).map(code),
                |first, count, value| {
                    if let Some(run) = countries.get_mut(first..first + count) {
                        run.fill(value.unwrap_or(0));
                    }
                },
            )?;
            Some(countries)
        }
        None => None,
    };
    // AS numbers by /24, and a bit per /24 that is split (set until a leaf
    // gives the /24 a value).
    let mut asns = vec![0u32; n];
    let mut asn_split = vec![u64::from(asn_db.is_some()).wrapping_neg(); n / 64];
    if let Some(db) = asn_db {
        walk(
            db,
            Origin::UNKNOWN.asn,
            |leaf| decode_asn(fields, leaf),
            |first, count, value| {
                for i in first..first + count {
                    if let Some(asn) = asns.get_mut(i) {
                        *asn = value.unwrap_or(0);
                    }
                    if let Some(word) = asn_split.get_mut(i / 64) {
                        let bit = 1u64 << (i % 64);
                        match value {
                            Some(_) => *word &= !bit,
                            None => *word |= bit,
                        }
                    }
                }
            },
        )?;
    }
    // Combine in place: `asns` becomes the slots.
    let mut origins: Vec<Origin> = Vec::new();
    let mut ids: FxHashMap<Origin, u32> = FxHashMap::default();
    let mut last: Option<(Origin, u32)> = None;
    for (i, slot) in asns.iter_mut().enumerate() {
        let country = countries
            .as_ref()
            .map_or(code(Origin::UNKNOWN.country), |c| {
                c.get(i).copied().unwrap_or(0)
            });
        let split = asn_split
            .get(i / 64)
            .is_none_or(|word| word & (1 << (i % 64)) != 0);
        if country == 0 || split {
            *slot = 0;
            continue;
        }
        let origin = Origin {
            country: country.to_be_bytes(),
            asn: *slot,
        };
        let id = match last {
            Some((o, id)) if o == origin => id,
            _ => *ids.entry(origin).or_insert_with(|| {
                origins.push(origin);
                origins.len() as u32
            }),
        };
        last = Some((origin, id));
        *slot = id;
    }
    Prefix24Origins::new(asns, origins)
        .map(|table| table.from_databases(country_db.is_some(), asn_db.is_some()))
}

/// Calls `fill(first, count, value)` for every leaf of `db`'s IPv4 tree, in
/// address order: the `count` /24s from /24 number `first` have `value`
/// (`absent` where the leaf has no record; `None` for a leaf longer than /24,
/// which splits its /24, or a record that does not decode). `None` when the
/// tree cannot be walked as IPv4.
fn walk<T: Copy>(
    db: &Reader<Vec<u8>>,
    absent: T,
    mut decode: impl FnMut(&LookupResult<'_, Vec<u8>>) -> Option<T>,
    mut fill: impl FnMut(usize, usize, Option<T>),
) -> Option<()> {
    let all = IpNetwork::V4(Ipv4Network::new(Ipv4Addr::UNSPECIFIED, 0).ok()?);
    let options = WithinOptions::default().include_networks_without_data();
    let mut memo: FxHashMap<usize, Option<T>> = FxHashMap::default();
    let mut next = 0usize;
    for leaf in db.within(all, options).ok()? {
        let leaf = leaf.ok()?;
        let (first, prefix) = match leaf.network().ok()? {
            IpNetwork::V4(network) => (
                (u32::from(network.network()) >> 8) as usize,
                network.prefix(),
            ),
            // An IPv6 database without an IPv4 subtree: one leaf above it
            // covers all of IPv4 (as `coarse` judges a lookup's leaf).
            IpNetwork::V6(network)
                if network.prefix() <= 96 && network.contains(Ipv6Addr::UNSPECIFIED) =>
            {
                (0, 0)
            }
            IpNetwork::V6(_) => return None,
        };
        let value = match leaf.offset() {
            None => Some(absent),
            Some(offset) => *memo.entry(offset).or_insert_with(|| decode(&leaf)),
        };
        match 24u8.checked_sub(prefix) {
            Some(bits) => {
                let count = 1usize << bits;
                // Leaves come in address order and cover IPv4 once.
                if first != next {
                    return None;
                }
                fill(first, count, value);
                next = first + count;
            }
            None => {
                if first + 1 != next && first != next {
                    return None;
                }
                fill(first, 1, None);
                next = first + 1;
            }
        }
    }
    (next == Prefix24Origins::PREFIXES).then_some(())
}
