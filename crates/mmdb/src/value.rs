//! The values of an MMDB data section and their encoding (MaxMind DB spec
//! 2.0, "Output Data Section"): control byte(s), then the payload.

use std::collections::BTreeMap;

use crate::MmdbWriteError;

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

pub(crate) fn encode(v: &Value, out: &mut Vec<u8>) -> Result<(), MmdbWriteError> {
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
