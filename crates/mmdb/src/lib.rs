//! rampart-mmdb: writes MaxMind DB files for tests, loadgen and the demo.
//!
//! Owns: a small writer for MaxMind DB (MMDB) format v2 files
//! ([`MmdbWriter`], the data-section [`Value`]s, GeoLite2-shaped records).
//! Must not know about rampart's events, enrichment or pipeline, and is not a
//! dependency of the production path: `rampart-enrich` only reads MMDB files
//! (through the `maxminddb` crate) and uses this crate in its tests alone.
//!
//! It exists so that loadgen and the tests can build real MMDB files that
//! match their synthetic traffic; the reading side uses the `maxminddb` crate,
//! so every file written here is checked by an independent reader.
//!
//! Layout (MaxMind DB spec, version 2.0):
//! `search tree | 16 zero bytes | data section | "\xAB\xCD\xEFMaxMind.com" | metadata map`.
//!
//! * IPv6 databases (the default, as GeoLite2) keep IPv4 networks under
//!   `::/96`; `::ffff:0:0/96` is an alias of that subtree, so IPv4-mapped IPv6
//!   addresses give the IPv4 answer. IPv4 networks passed as IPv4-mapped IPv6
//!   (`::ffff:a.b.c.d/len >= 96`) are stored as IPv4.
//! * A more specific network always wins over a less specific one, whatever
//!   the insertion order; inserting the same network twice keeps the last value.
//! * Identical records are stored once in the data section.
//!
//! ```
//! use rampart_mmdb::{MmdbWriter, country_record};
//! let mut w = MmdbWriter::new("GeoLite2-Country");
//! w.insert_prefix("192.0.2.0".parse().unwrap(), 24, country_record("JP", "Japan")).unwrap();
//! let bytes = w.to_bytes().unwrap();
//! let reader = maxminddb::Reader::from_source(bytes).unwrap();
//! assert!(reader.lookup("192.0.2.7".parse().unwrap()).unwrap().has_data());
//! ```

mod value;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;

use value::encode;
pub use value::{Value, asn_record, country_record};

/// Size of the data-section separator that follows the search tree.
const DATA_SECTION_SEPARATOR: usize = 16;
/// Start of the metadata section.
const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";

/// Bits per search-tree record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordSize {
    /// The smallest of 24, 28 and 32 that fits the file (the default).
    Auto,
    /// 24-bit records (files up to 16 M nodes + data).
    Bits24,
    /// 28-bit records.
    Bits28,
    /// 32-bit records.
    Bits32,
}

/// Errors from building or writing an MMDB file.
#[derive(Debug, thiserror::Error)]
pub enum MmdbWriteError {
    /// The prefix length does not fit the address family.
    #[error("prefix length /{prefix_len} is out of range for {addr}")]
    BadPrefix { addr: IpAddr, prefix_len: u8 },
    /// An IPv6 network was inserted into an IPv4-only database.
    #[error("IPv6 network {0} cannot be stored in an IPv4-only (ip_version 4) database")]
    Ipv6InIpv4Database(IpNetwork),
    /// The requested record size cannot address the file's nodes and data.
    #[error("the database needs {needed}-bit records but {requested}-bit records were requested")]
    RecordSizeTooSmall { needed: u16, requested: u16 },
    /// A value or the whole file is larger than the format allows.
    #[error("too large for the MMDB format: {0}")]
    TooLarge(&'static str),
    /// Writing the file failed.
    #[error("cannot write MMDB file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One record of a tree node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Child {
    Empty,
    /// Value index and the prefix length of the network it was inserted for.
    Data {
        value: u32,
        prefix: u8,
    },
    /// Arena index of a child node.
    Node(u32),
    /// Points at whatever sits at `::/96` (serialisation only).
    Alias,
}

/// Builds an MMDB file in memory; see the module docs.
#[derive(Clone, Debug)]
pub struct MmdbWriter {
    database_type: String,
    description: BTreeMap<String, String>,
    languages: Vec<String>,
    ip_version: u16,
    record_size: RecordSize,
    build_epoch: u64,
    ipv4_mapped_alias: bool,
    /// Arena of nodes; node 0 is the root.
    nodes: Vec<[Child; 2]>,
    values: Vec<Value>,
}

impl MmdbWriter {
    /// An empty IPv6 database (IPv4 under `::/96`) of the given `database_type`
    /// (e.g. `"GeoLite2-Country"`), English description, automatic record size,
    /// `build_epoch` = now.
    pub fn new(database_type: &str) -> Self {
        let build_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        MmdbWriter {
            database_type: database_type.to_owned(),
            description: BTreeMap::from([(
                "en".to_owned(),
                format!("{database_type} built by rampart"),
            )]),
            languages: vec!["en".to_owned()],
            ip_version: 6,
            record_size: RecordSize::Auto,
            build_epoch,
            ipv4_mapped_alias: true,
            nodes: vec![[Child::Empty; 2]],
            values: Vec::new(),
        }
    }

    /// Makes an IPv4-only database (`ip_version` 4). Call before inserting.
    pub fn ipv4_only(mut self) -> Self {
        self.ip_version = 4;
        self.ipv4_mapped_alias = false;
        self
    }

    /// Sets the record size (default [`RecordSize::Auto`]).
    pub fn record_size(mut self, record_size: RecordSize) -> Self {
        self.record_size = record_size;
        self
    }

    /// Sets `build_epoch` (seconds since the Unix epoch).
    pub fn build_epoch(mut self, epoch: u64) -> Self {
        self.build_epoch = epoch;
        self
    }

    /// Adds or replaces the description for `language`.
    pub fn description(mut self, language: &str, text: &str) -> Self {
        self.description
            .insert(language.to_owned(), text.to_owned());
        self
    }

    /// Sets the `languages` list.
    pub fn languages(mut self, languages: &[&str]) -> Self {
        self.languages = languages.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Whether `::ffff:0:0/96` aliases the IPv4 subtree (default true for IPv6).
    pub fn ipv4_mapped_alias(mut self, on: bool) -> Self {
        self.ipv4_mapped_alias = on && self.ip_version == 6;
        self
    }

    /// Inserts `value` for `network` (host bits are ignored).
    pub fn insert(&mut self, network: IpNetwork, value: Value) -> Result<(), MmdbWriteError> {
        self.insert_prefix(network.ip(), network.prefix(), value)
    }

    /// Inserts `value` for `addr/prefix_len` (host bits are ignored).
    pub fn insert_prefix(
        &mut self,
        addr: IpAddr,
        prefix_len: u8,
        value: Value,
    ) -> Result<(), MmdbWriteError> {
        let bad = || MmdbWriteError::BadPrefix { addr, prefix_len };
        // (key in tree coordinates: MSB first, depth)
        let (key, depth) = match addr {
            IpAddr::V4(v4) => {
                if prefix_len > 32 {
                    return Err(bad());
                }
                let bits = u128::from(u32::from(v4));
                if self.ip_version == 4 {
                    (bits << 96, prefix_len)
                } else {
                    (bits, prefix_len + 96)
                }
            }
            IpAddr::V6(v6) => {
                if prefix_len > 128 {
                    return Err(bad());
                }
                if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix_len >= 96) {
                    return self.insert_prefix(IpAddr::V4(v4), prefix_len - 96, value);
                }
                if self.ip_version == 4 {
                    let net = IpNetwork::new(addr, prefix_len).map_err(|_| bad())?;
                    return Err(MmdbWriteError::Ipv6InIpv4Database(net));
                }
                (u128::from(v6), prefix_len)
            }
        };
        let index = u32::try_from(self.values.len())
            .map_err(|_| MmdbWriteError::TooLarge("more than 2^32 values"))?;
        self.values.push(value);
        let leaf = Child::Data {
            value: index,
            prefix: depth,
        };
        if depth == 0 {
            self.set(0, 0, leaf);
            self.set(0, 1, leaf);
            return Ok(());
        }
        let mut node = 0usize;
        for d in 0..depth - 1 {
            let side = bit(key, d);
            node = self.descend(node, side);
        }
        self.set(node, bit(key, depth - 1), leaf);
        Ok(())
    }

    /// The child node on `side` of `node`, splitting a leaf into a node whose
    /// two records both keep the leaf's value.
    fn descend(&mut self, node: usize, side: usize) -> usize {
        match self.nodes[node][side] {
            Child::Node(n) => n as usize,
            leaf => {
                let n = self.nodes.len();
                self.nodes.push([leaf, leaf]);
                self.nodes[node][side] = Child::Node(n as u32);
                n
            }
        }
    }

    /// Sets a record; if it holds a subtree, every leaf of that subtree that
    /// came from a less (or equally) specific network takes the new value.
    fn set(&mut self, node: usize, side: usize, leaf: Child) {
        let Child::Data { prefix: p, .. } = leaf else {
            return;
        };
        let mut stack = vec![(node, side)];
        while let Some((n, s)) = stack.pop() {
            match self.nodes[n][s] {
                Child::Node(c) => {
                    stack.push((c as usize, 0));
                    stack.push((c as usize, 1));
                }
                Child::Data { prefix, .. } if prefix > p => {}
                _ => self.nodes[n][s] = leaf,
            }
        }
    }

    /// Serialises the database.
    pub fn to_bytes(&self) -> Result<Vec<u8>, MmdbWriteError> {
        let mut nodes = self.nodes.clone();
        let mut alias_target = Child::Empty;
        if self.ipv4_mapped_alias {
            // ::ffff:0:0/96 -> whatever is at ::/96.
            let mapped: u128 = 0xffff << 32;
            let mut node = 0usize;
            for d in 0..95u8 {
                let side = bit(mapped, d);
                node = match nodes[node][side] {
                    Child::Node(n) => n as usize,
                    leaf => {
                        let n = nodes.len();
                        nodes.push([leaf, leaf]);
                        nodes[node][side] = Child::Node(n as u32);
                        n
                    }
                };
            }
            nodes[node][1] = Child::Alias;
            let mut node = 0usize;
            alias_target = Child::Node(0);
            for _ in 0..96 {
                alias_target = nodes[node][0];
                match alias_target {
                    Child::Node(n) => node = n as usize,
                    _ => break,
                }
            }
        }

        // Number the reachable nodes breadth first (root = 0).
        let mut ids = vec![u32::MAX; nodes.len()];
        let mut order = Vec::with_capacity(nodes.len());
        let mut queue = VecDeque::from([0usize]);
        ids[0] = 0;
        while let Some(n) = queue.pop_front() {
            order.push(n);
            for child in nodes[n] {
                if let Child::Node(c) = child {
                    let c = c as usize;
                    if ids[c] == u32::MAX {
                        ids[c] = u32::try_from(order.len() + queue.len())
                            .map_err(|_| MmdbWriteError::TooLarge("more than 2^32 nodes"))?;
                        queue.push_back(c);
                    }
                }
            }
        }
        let node_count = order.len() as u64;

        // Data section: each distinct record once.
        let mut data = Vec::new();
        let mut offsets = vec![0u64; self.values.len()];
        let mut seen: HashMap<Vec<u8>, u64> = HashMap::new();
        for (i, v) in self.values.iter().enumerate() {
            let mut buf = Vec::new();
            encode(v, &mut buf)?;
            let off = *seen.entry(buf).or_insert_with_key(|buf| {
                let off = data.len() as u64;
                data.extend_from_slice(buf);
                off
            });
            offsets[i] = off;
        }

        let record = |c: Child| -> u64 {
            match c {
                Child::Empty => node_count,
                Child::Data { value, .. } => {
                    node_count + DATA_SECTION_SEPARATOR as u64 + offsets[value as usize]
                }
                Child::Node(n) => u64::from(ids[n as usize]),
                Child::Alias => 0, // resolved below
            }
        };
        let alias_record = match alias_target {
            Child::Alias => node_count,
            c => record(c),
        };
        let max_record = node_count + DATA_SECTION_SEPARATOR as u64 + data.len() as u64;
        let needed: u16 = if max_record < 1 << 24 {
            24
        } else if max_record < 1 << 28 {
            28
        } else if max_record < 1 << 32 {
            32
        } else {
            return Err(MmdbWriteError::TooLarge(
                "more than 2^32 nodes + data bytes",
            ));
        };
        let bits = match self.record_size {
            RecordSize::Auto => needed,
            RecordSize::Bits24 => 24,
            RecordSize::Bits28 => 28,
            RecordSize::Bits32 => 32,
        };
        if bits < needed {
            return Err(MmdbWriteError::RecordSizeTooSmall {
                needed,
                requested: bits,
            });
        }

        let mut out = Vec::with_capacity(order.len() * usize::from(bits) / 4 + data.len() + 512);
        for &n in &order {
            let [l, r] = nodes[n].map(|c| match c {
                Child::Alias => alias_record,
                c => record(c),
            });
            // Values fit `bits` (checked above), so the truncating casts are exact.
            match bits {
                24 => {
                    out.extend_from_slice(&(l as u32).to_be_bytes()[1..]);
                    out.extend_from_slice(&(r as u32).to_be_bytes()[1..]);
                }
                28 => {
                    out.extend_from_slice(&(l as u32).to_be_bytes()[1..]);
                    out.push((((l >> 24) as u8 & 0x0f) << 4) | ((r >> 24) as u8 & 0x0f));
                    out.extend_from_slice(&(r as u32).to_be_bytes()[1..]);
                }
                _ => {
                    out.extend_from_slice(&(l as u32).to_be_bytes());
                    out.extend_from_slice(&(r as u32).to_be_bytes());
                }
            }
        }
        out.extend_from_slice(&[0u8; DATA_SECTION_SEPARATOR]);
        out.extend_from_slice(&data);
        out.extend_from_slice(METADATA_MARKER);

        let node_count = u32::try_from(node_count)
            .map_err(|_| MmdbWriteError::TooLarge("more than 2^32 nodes"))?;
        let metadata = Value::map([
            ("binary_format_major_version", Value::U16(2)),
            ("binary_format_minor_version", Value::U16(0)),
            ("build_epoch", Value::U64(self.build_epoch)),
            ("database_type", Value::from(self.database_type.as_str())),
            (
                "description",
                Value::Map(
                    self.description
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                        .collect(),
                ),
            ),
            ("ip_version", Value::U16(self.ip_version)),
            (
                "languages",
                Value::Array(
                    self.languages
                        .iter()
                        .map(|l| Value::from(l.as_str()))
                        .collect(),
                ),
            ),
            ("node_count", Value::U32(node_count)),
            ("record_size", Value::U16(bits)),
        ]);
        encode(&metadata, &mut out)?;
        Ok(out)
    }

    /// Serialises the database into `path`.
    pub fn write_to_path(&self, path: &Path) -> Result<(), MmdbWriteError> {
        let bytes = self.to_bytes()?;
        std::fs::write(path, bytes).map_err(|source| MmdbWriteError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

/// Bit `depth` (0 = most significant) of a 128-bit key, as a record side.
fn bit(key: u128, depth: u8) -> usize {
    ((key >> (127 - u32::from(depth))) & 1) as usize
}
