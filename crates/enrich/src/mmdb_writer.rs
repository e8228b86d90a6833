//! A small writer for MaxMind DB (MMDB) format v2 files.
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
//! use rampart_enrich::mmdb_writer::{MmdbWriter, country_record};
//! let mut w = MmdbWriter::new("GeoLite2-Country");
//! w.insert_prefix("192.0.2.0".parse().unwrap(), 24, country_record("JP", "Japan")).unwrap();
//! let bytes = w.to_bytes().unwrap();
//! let reader = maxminddb::Reader::from_source(bytes).unwrap();
//! assert!(reader.lookup("192.0.2.7".parse().unwrap()).unwrap().has_data());
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;

/// Size of the data-section separator that follows the search tree.
const DATA_SECTION_SEPARATOR: usize = 16;
/// Start of the metadata section.
const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";

/// A value in the MMDB data section (the spec's data types, minus pointers
/// and the internal container/end-marker types).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `map` (type 7): keys are UTF-8 strings.
    Map(BTreeMap<String, Value>),
    /// `array` (type 11).
    Array(Vec<Value>),
    /// `utf8_string` (type 2).
    String(String),
    /// `bytes` (type 4).
    Bytes(Vec<u8>),
    /// `double` (type 3).
    Double(f64),
    /// `float` (type 15).
    Float(f32),
    /// `uint16` (type 5).
    U16(u16),
    /// `uint32` (type 6).
    U32(u32),
    /// `uint64` (type 9).
    U64(u64),
    /// `uint128` (type 10).
    U128(u128),
    /// `int32` (type 8).
    I32(i32),
    /// `boolean` (type 14).
    Bool(bool),
}

impl Value {
    /// A map from `(key, value)` pairs.
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}
impl From<u16> for Value {
    fn from(v: u16) -> Self {
        Value::U16(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::U32(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::U64(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

/// A GeoLite2-Country shaped record:
/// `{"country": {"iso_code": iso_code, "names": {"en": english_name}}}`.
pub fn country_record(iso_code: &str, english_name: &str) -> Value {
    Value::map([(
        "country",
        Value::map([
            ("iso_code", Value::from(iso_code)),
            ("names", Value::map([("en", Value::from(english_name))])),
        ]),
    )])
}

/// A GeoLite2-ASN shaped record:
/// `{"autonomous_system_number": asn, "autonomous_system_organization": org}`.
pub fn asn_record(asn: u32, organization: &str) -> Value {
    Value::map([
        ("autonomous_system_number", Value::U32(asn)),
        ("autonomous_system_organization", Value::from(organization)),
    ])
}

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

/// Writes a control byte (plus extended type and size bytes).
fn control(type_num: u8, size: usize, out: &mut Vec<u8>) -> Result<(), MmdbWriteError> {
    let (size_bits, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, Vec::new())
    } else if size < 29 + 256 {
        (29, vec![(size - 29) as u8])
    } else if size < 285 + 65_536 {
        (30, ((size - 285) as u16).to_be_bytes().to_vec())
    } else if size < 65_821 + (1 << 24) {
        (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec())
    } else {
        return Err(MmdbWriteError::TooLarge("a value longer than 16 MiB"));
    };
    if type_num <= 7 {
        out.push((type_num << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(type_num - 7);
    }
    out.extend_from_slice(&extra);
    Ok(())
}

/// Big-endian bytes without leading zeros.
fn minimal(bytes: &[u8]) -> &[u8] {
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    &bytes[skip..]
}

fn encode(v: &Value, out: &mut Vec<u8>) -> Result<(), MmdbWriteError> {
    match v {
        Value::String(s) => {
            control(2, s.len(), out)?;
            out.extend_from_slice(s.as_bytes());
        }
        Value::Double(d) => {
            control(3, 8, out)?;
            out.extend_from_slice(&d.to_be_bytes());
        }
        Value::Bytes(b) => {
            control(4, b.len(), out)?;
            out.extend_from_slice(b);
        }
        Value::U16(n) => uint(5, &n.to_be_bytes(), out)?,
        Value::U32(n) => uint(6, &n.to_be_bytes(), out)?,
        Value::Map(m) => {
            control(7, m.len(), out)?;
            for (k, v) in m {
                control(2, k.len(), out)?;
                out.extend_from_slice(k.as_bytes());
                encode(v, out)?;
            }
        }
        Value::I32(n) => {
            // Negative values need all four bytes (two's complement).
            let bytes = n.to_be_bytes();
            let b: &[u8] = if *n < 0 { &bytes } else { minimal(&bytes) };
            control(8, b.len(), out)?;
            out.extend_from_slice(b);
        }
        Value::U64(n) => uint(9, &n.to_be_bytes(), out)?,
        Value::U128(n) => uint(10, &n.to_be_bytes(), out)?,
        Value::Array(a) => {
            control(11, a.len(), out)?;
            for v in a {
                encode(v, out)?;
            }
        }
        Value::Bool(b) => control(14, usize::from(*b), out)?,
        Value::Float(f) => {
            control(15, 4, out)?;
            out.extend_from_slice(&f.to_be_bytes());
        }
    }
    Ok(())
}

fn uint(type_num: u8, be: &[u8], out: &mut Vec<u8>) -> Result<(), MmdbWriteError> {
    let b = minimal(be);
    control(type_num, b.len(), out)?;
    out.extend_from_slice(b);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use maxminddb::Reader;
    use serde::Deserialize;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Asn {
        autonomous_system_number: u32,
        autonomous_system_organization: String,
    }

    #[test]
    fn every_record_size_reads_back_and_verifies() {
        for rs in [RecordSize::Bits24, RecordSize::Bits28, RecordSize::Bits32] {
            let mut w = MmdbWriter::new("GeoLite2-ASN").record_size(rs);
            w.insert(net("10.0.0.0/8"), asn_record(64500, "Ten"))
                .unwrap();
            w.insert(net("2001:db8::/32"), asn_record(64501, "Doc"))
                .unwrap();
            let r = Reader::from_source(w.to_bytes().unwrap()).unwrap();
            r.verify().unwrap();
            let m = r.metadata();
            assert_eq!(
                (m.ip_version, m.binary_format_major_version),
                (6, 2),
                "{rs:?}"
            );
            assert_eq!(
                m.record_size,
                match rs {
                    RecordSize::Bits24 => 24,
                    RecordSize::Bits28 => 28,
                    _ => 32,
                }
            );
            let a: Asn = r
                .lookup("10.1.2.3".parse().unwrap())
                .unwrap()
                .decode()
                .unwrap()
                .unwrap();
            assert_eq!(a.autonomous_system_number, 64500);
            let a: Asn = r
                .lookup("2001:db8::1".parse().unwrap())
                .unwrap()
                .decode()
                .unwrap()
                .unwrap();
            assert_eq!(a.autonomous_system_organization, "Doc");
            assert!(!r.lookup("11.0.0.1".parse().unwrap()).unwrap().has_data());
        }
    }

    #[test]
    fn record_size_28_with_high_nibbles() {
        // Enough nodes + data that records exceed 2^24 and use the shared nibble byte.
        let mut w = MmdbWriter::new("t").record_size(RecordSize::Bits28);
        let big = "x".repeat(70_000);
        for i in 0..300u32 {
            w.insert_prefix(
                IpAddr::V4((i << 20).into()),
                12,
                Value::map([
                    ("n", Value::U32(i)),
                    ("pad", Value::from(format!("{big}{i}"))),
                ]),
            )
            .unwrap();
        }
        let bytes = w.to_bytes().unwrap();
        assert!(bytes.len() > 1 << 24);
        let auto = {
            let mut w2 = w.clone();
            w2.record_size = RecordSize::Auto;
            Reader::from_source(w2.to_bytes().unwrap())
                .unwrap()
                .metadata()
                .record_size
        };
        assert_eq!(auto, 28);
        let r = Reader::from_source(bytes).unwrap();
        for i in [0u32, 1, 150, 299] {
            let n: Option<u32> = r
                .lookup(IpAddr::V4(((i << 20) | 5).into()))
                .unwrap()
                .decode_path(&maxminddb::path!["n"])
                .unwrap();
            assert_eq!(n, Some(i));
        }
        assert!(matches!(
            w.clone().record_size(RecordSize::Bits24).to_bytes(),
            Err(MmdbWriteError::RecordSizeTooSmall { needed: 28, .. })
        ));
    }

    #[test]
    fn all_value_types_round_trip() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct All<'a> {
            s: String,
            long: String,
            d: f64,
            f: f32,
            b: &'a [u8],
            u16_: u16,
            u32_: u32,
            u64_: u64,
            u128_: u128,
            neg: i32,
            pos: i32,
            t: bool,
            no: bool,
            arr: Vec<u32>,
            zero: u32,
        }
        let long = "y".repeat(70_000);
        let v = Value::map([
            ("s", Value::from("héllo")),
            ("long", Value::from(long.as_str())),
            ("d", Value::Double(-1.5)),
            ("f", Value::Float(2.25)),
            ("b", Value::Bytes(vec![0, 1, 255])),
            ("u16_", Value::U16(513)),
            ("u32_", Value::U32(u32::MAX)),
            ("u64_", Value::U64(1 << 40)),
            ("u128_", Value::U128(u128::MAX - 7)),
            ("neg", Value::I32(-2)),
            ("pos", Value::I32(70_000)),
            ("t", Value::Bool(true)),
            ("no", Value::Bool(false)),
            ("arr", Value::Array(vec![Value::U32(1), Value::U32(300)])),
            ("zero", Value::U32(0)),
        ]);
        let mut w = MmdbWriter::new("t");
        w.insert(net("::/0"), v).unwrap();
        let r = Reader::from_source(w.to_bytes().unwrap()).unwrap();
        r.verify().unwrap();
        let all: All = r
            .lookup("1.2.3.4".parse().unwrap())
            .unwrap()
            .decode()
            .unwrap()
            .unwrap();
        assert_eq!(all.s, "héllo");
        assert_eq!(all.long, long);
        assert_eq!((all.d, all.f), (-1.5, 2.25));
        assert_eq!(all.b, &[0, 1, 255]);
        assert_eq!((all.u16_, all.u32_, all.u64_), (513, u32::MAX, 1 << 40));
        assert_eq!(all.u128_, u128::MAX - 7);
        assert_eq!((all.neg, all.pos, all.t, all.no), (-2, 70_000, true, false));
        assert_eq!((all.arr, all.zero), (vec![1, 300], 0));
    }

    #[test]
    fn more_specific_wins_in_any_order_and_networks_are_reported() {
        for reversed in [false, true] {
            let mut inserts = vec![
                (net("10.0.0.0/16"), asn_record(1, "wide")),
                (net("10.0.5.0/24"), asn_record(2, "narrow")),
            ];
            if reversed {
                inserts.reverse();
            }
            let mut w = MmdbWriter::new("GeoLite2-ASN");
            for (n, v) in inserts {
                w.insert(n, v).unwrap();
            }
            let r = Reader::from_source(w.to_bytes().unwrap()).unwrap();
            r.verify().unwrap();
            let asn = |ip: &str| -> Option<u32> {
                r.lookup(ip.parse().unwrap())
                    .unwrap()
                    .decode_path(&maxminddb::path!["autonomous_system_number"])
                    .unwrap()
            };
            assert_eq!(asn("10.0.5.9"), Some(2));
            assert_eq!(asn("10.0.4.9"), Some(1));
            assert_eq!(asn("10.0.255.1"), Some(1));
            assert_eq!(asn("10.1.0.1"), None);
            let n = r
                .lookup("10.0.5.9".parse().unwrap())
                .unwrap()
                .network()
                .unwrap();
            assert_eq!(n, net("10.0.5.0/24"));
            let n = r
                .lookup("10.0.128.1".parse().unwrap())
                .unwrap()
                .network()
                .unwrap();
            assert_eq!(n, net("10.0.128.0/17"));
        }
    }

    #[test]
    fn ipv4_mapped_addresses_alias_the_ipv4_subtree() {
        let mut w = MmdbWriter::new("GeoLite2-Country");
        w.insert(net("::ffff:192.0.2.0/120"), country_record("JP", "Japan"))
            .unwrap();
        let r = Reader::from_source(w.to_bytes().unwrap()).unwrap();
        r.verify().unwrap();
        for ip in ["192.0.2.1", "::ffff:192.0.2.1", "::192.0.2.1"] {
            let iso: Option<String> = r
                .lookup(ip.parse().unwrap())
                .unwrap()
                .decode_path(&maxminddb::path!["country", "iso_code"])
                .unwrap();
            assert_eq!(iso.as_deref(), Some("JP"), "{ip}");
        }
        assert!(
            !r.lookup("::ffff:192.0.3.1".parse().unwrap())
                .unwrap()
                .has_data()
        );
    }

    #[test]
    fn empty_and_ipv4_only_databases() {
        let r = Reader::from_source(MmdbWriter::new("empty").to_bytes().unwrap()).unwrap();
        r.verify().unwrap();
        assert!(!r.lookup("1.1.1.1".parse().unwrap()).unwrap().has_data());

        let mut w = MmdbWriter::new("v4").ipv4_only().build_epoch(42);
        w.insert(net("0.0.0.0/0"), Value::U16(7)).unwrap();
        assert!(matches!(
            w.insert(net("2001:db8::/32"), Value::U16(1)),
            Err(MmdbWriteError::Ipv6InIpv4Database(_))
        ));
        let r = Reader::from_source(w.to_bytes().unwrap()).unwrap();
        r.verify().unwrap();
        assert_eq!((r.metadata().ip_version, r.metadata().build_epoch), (4, 42));
        let v: Option<u16> = r
            .lookup("8.8.8.8".parse().unwrap())
            .unwrap()
            .decode()
            .unwrap();
        assert_eq!(v, Some(7));
    }

    #[test]
    fn bad_prefix_is_an_error() {
        let mut w = MmdbWriter::new("t");
        assert!(matches!(
            w.insert_prefix("1.2.3.4".parse().unwrap(), 33, Value::U16(1)),
            Err(MmdbWriteError::BadPrefix { prefix_len: 33, .. })
        ));
        assert!(
            w.insert_prefix("::".parse().unwrap(), 129, Value::U16(1))
                .is_err()
        );
    }

    #[test]
    fn identical_records_are_stored_once() {
        let mut w = MmdbWriter::new("t");
        for i in 0..100u32 {
            w.insert_prefix(
                IpAddr::V4((i << 24).into()),
                8,
                country_record("CN", "China"),
            )
            .unwrap();
        }
        let r = Reader::from_source(w.to_bytes().unwrap()).unwrap();
        let a = r.lookup("0.0.0.1".parse().unwrap()).unwrap().offset();
        let b = r.lookup("99.0.0.1".parse().unwrap()).unwrap().offset();
        assert!(a.is_some());
        assert_eq!(a, b);
    }
}
