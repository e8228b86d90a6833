//! The fast path in front of serde_json: one pass over a document that picks
//! the few fields a format reads and skips everything else while checking it
//! against the whole JSON grammar (strings closed and free of raw control
//! characters, escapes valid, numbers as the grammar writes them, literals,
//! brackets balanced, nothing but whitespace after the top-level object).
//!
//! It only ever answers "here are the fields" or "not sure": a string of
//! interest with an escape, a key with an escape, a number of interest that
//! is not a plain `u64`, a value of another type than the field's, a field
//! given twice, nesting deeper than [`MAX_DEPTH`], or anything the grammar
//! refuses all give `None`, and the caller parses the document with
//! serde_json as before, so every rejection keeps serde_json's reason.
//! **Invariant:** when [`pick`] returns fields, serde_json deserialising the
//! format's borrowed struct from the same text gives the same fields (the
//! property test in `tests_scan.rs` holds the two against each other).
//!
//! The text is UTF-8 already (checked once per document by the caller), so
//! the picked strings are `&str` slices of it.

/// Nesting (objects and arrays, the top-level object counting 1) beyond
/// which the scanner gives up; serde_json's own limit is 128.
pub(crate) const MAX_DEPTH: usize = 32;

/// What a field of interest holds, as the format's struct declares it
/// (every field is optional there: absent and `null` both read as `None`).
#[derive(Debug)]
pub(crate) enum Want {
    /// `Option<Cow<str>>`: a string without escapes.
    Str,
    /// `Option<u64>`: digits only, no sign, fraction or exponent, no overflow.
    U64,
    /// `Option<&RawValue>`: any value but `null`, as its JSON text.
    Raw,
    /// `Option<StrOrNum>`: a string without escapes or a plain `u64`.
    StrOrU64,
    /// `Option<OneOrMany>`: a string without escapes ([`Picked::Str`]) or an
    /// array ([`Picked::Raw`], its strings read by [`plain_strings`]).
    StrOrList,
    /// `Option<Struct>`: an object with its own fields of interest.
    Object(&'static Fields),
}

/// The fields of interest of one object, with a 64-bit summary of their
/// keys' hashes: most keys of a document are of no interest, and the
/// summary turns them away without comparing them to every field.
#[derive(Debug)]
pub(crate) struct Fields {
    list: &'static [Field],
    key_hashes: u64,
}

impl Fields {
    pub(crate) const fn new(list: &'static [Field]) -> Fields {
        let mut key_hashes = 0u64;
        let mut i = 0;
        while i < list.len() {
            key_hashes |= 1 << key_hash(list[i].key.as_bytes());
            i += 1;
        }
        Fields { list, key_hashes }
    }

    /// The field named `key`; `from` is where to start looking (the field
    /// after the last one found: documents write their fields in order).
    fn find(&self, key: &[u8], from: usize) -> Option<usize> {
        if self.key_hashes & (1 << key_hash(key)) == 0 {
            return None;
        }
        let is_key = |f: &Field| same_key(f.key.as_bytes(), key);
        let after = self.list.get(from..).unwrap_or_default();
        match after.iter().position(is_key) {
            Some(i) => Some(from + i),
            None => self.list.iter().position(is_key),
        }
    }
}

/// A 6-bit hash of a key (its length, first and last byte).
const fn key_hash(key: &[u8]) -> u32 {
    let (first, last) = match key {
        [] => (0, 0),
        [first, .., last] => (*first as u32, *last as u32),
        [only] => (*only as u32, *only as u32),
    };
    (first | (last << 8) | ((key.len() as u32) << 16)).wrapping_mul(0x9E37_79B1) >> 26
}

/// `a == b` for short keys without a `memcmp` call (two overlapping 8-byte
/// words up to 16 bytes).
fn same_key(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .and_then(|w| w.try_into().ok())
            .map(u64::from_le_bytes)
    };
    match a.len() {
        8..=16 => {
            let last = a.len() - 8;
            word(a, 0) == word(b, 0) && word(a, last) == word(b, last)
        }
        _ => a == b,
    }
}

/// A field of interest: its key, what it must hold, and the slot of the
/// output it is written to.
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) key: &'static str,
    pub(crate) want: Want,
    pub(crate) slot: usize,
}

/// A [`Field`] (short, for the formats' field tables).
pub(crate) const fn field(key: &'static str, want: Want, slot: usize) -> Field {
    Field { key, want, slot }
}

/// What the scan found for one field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Picked<'a> {
    #[default]
    Absent,
    Null,
    Str(&'a str),
    U64(u64),
    /// A [`Want::Raw`] value's text.
    Raw(&'a str),
    /// An object of interest was there (its fields have their own slots).
    Object,
}

impl<'a> Picked<'a> {
    /// A [`Want::Str`] field as serde reads it.
    pub(crate) fn str(self) -> Option<std::borrow::Cow<'a, str>> {
        debug_assert!(matches!(
            self,
            Picked::Absent | Picked::Null | Picked::Str(_)
        ));
        match self {
            Picked::Str(s) => Some(std::borrow::Cow::Borrowed(s)),
            _ => None,
        }
    }

    /// A [`Want::U64`] field as serde reads it.
    pub(crate) fn u64(self) -> Option<u64> {
        debug_assert!(matches!(
            self,
            Picked::Absent | Picked::Null | Picked::U64(_)
        ));
        match self {
            Picked::U64(n) => Some(n),
            _ => None,
        }
    }

    /// A [`Want::Raw`] field as serde reads it.
    pub(crate) fn raw(self) -> Option<&'a str> {
        debug_assert!(matches!(
            self,
            Picked::Absent | Picked::Null | Picked::Raw(_)
        ));
        match self {
            Picked::Raw(text) => Some(text),
            _ => None,
        }
    }

    /// Whether a [`Want::Object`] field held an object (not absent, not null).
    pub(crate) fn is_object(self) -> bool {
        debug_assert!(matches!(
            self,
            Picked::Absent | Picked::Null | Picked::Object
        ));
        self == Picked::Object
    }
}

/// The fields of interest of one top-level object, into `N` slots; `None`
/// when the scanner is not sure (see the module docs).
pub(crate) fn pick<'a, const N: usize>(text: &'a str, fields: &Fields) -> Option<[Picked<'a>; N]> {
    let mut out = [Picked::Absent; N];
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    s.skip_whitespace();
    s.expect(b'{')?;
    s.object_of_interest(fields, &mut out, 1)?;
    s.skip_whitespace();
    (s.pos == s.bytes.len()).then_some(out)
}

/// The strings of a JSON array the scanner has checked (a
/// [`Want::StrOrList`]'s [`Picked::Raw`]): `None` unless every element is a
/// string without escapes.
pub(crate) fn plain_strings(array: &str) -> Option<Vec<&str>> {
    let mut s = Scanner {
        text: array,
        bytes: array.as_bytes(),
        pos: 0,
    };
    let mut strings = Vec::new();
    s.expect(b'[')?;
    if s.closes_at_once(b']')? {
        return Some(strings);
    }
    loop {
        s.expect(b'"')?;
        strings.push(s.plain_string()?);
        if !s.more(b']')? {
            return Some(strings);
        }
    }
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that is zero (exact up to the first
/// zero byte, which is all the callers use).
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

/// The high bit of each byte of `word` that ends or escapes a JSON string or
/// is refused in one: `"`, `\`, or a control character below 0x20 (exact up
/// to the first such byte).
fn string_stops(word: u64) -> u64 {
    zero_bytes(word ^ (ONES * u64::from(b'"')))
        | zero_bytes(word ^ (ONES * u64::from(b'\\')))
        | (word.wrapping_sub(ONES * 0x20) & !word & HIGHS)
}

impl<'a> Scanner<'a> {
    /// Right after a container's opening bracket: whether it is empty
    /// (`close` follows, consumed).
    fn closes_at_once(&mut self, close: u8) -> Option<bool> {
        self.skip_whitespace();
        if self.peek()? == close {
            self.pos += 1;
            return Some(true);
        }
        Some(false)
    }

    /// After a container's element: `true` when `,` and another element
    /// follow, `false` when `close` ends the container (consumed), `None`
    /// for anything else.
    fn more(&mut self, close: u8) -> Option<bool> {
        self.skip_whitespace();
        match self.peek()? {
            b',' => {
                self.pos += 1;
                self.skip_whitespace();
                Some(true)
            }
            c if c == close => {
                self.pos += 1;
                Some(false)
            }
            _ => None,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// Moves to the next `"`, `\` or control character of a string (or the
    /// end of the text) and returns it.
    fn advance_to_string_stop(&mut self) -> Option<u8> {
        while let Some(chunk) = self.bytes.get(self.pos..self.pos + 8) {
            let word = u64::from_le_bytes(chunk.try_into().ok()?);
            let stops = string_stops(word);
            if stops != 0 {
                self.pos += (stops.trailing_zeros() / 8) as usize;
                return self.peek();
            }
            self.pos += 8;
        }
        while let Some(b) = self.peek() {
            if b == b'"' || b == b'\\' || b < 0x20 {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    /// A string without escapes (after its opening quote): its text.
    fn plain_string(&mut self) -> Option<&'a str> {
        let start = self.pos;
        match self.advance_to_string_stop()? {
            b'"' => {
                let text = self.text.get(start..self.pos)?;
                self.pos += 1;
                Some(text)
            }
            _ => None,
        }
    }

    /// Any string (after its opening quote), its escapes checked as
    /// serde_json checks an ignored string's (`\uXXXX` any four hex digits).
    fn skip_string(&mut self) -> Option<()> {
        loop {
            match self.advance_to_string_stop()? {
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                b'\\' => {
                    self.pos += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 1,
                        b'u' => {
                            let hex = self.bytes.get(self.pos + 1..self.pos + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.pos += 5;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number as the JSON grammar writes it.
    fn skip_number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// A number that serde_json reads as this `u64` (plain digits, no
    /// leading zero, no fraction or exponent, no overflow).
    fn plain_u64(&mut self) -> Option<u64> {
        let start = self.pos;
        let mut n = 0u64;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.pos += 1;
        }
        let len = self.pos - start;
        let leading_zero = len > 1 && self.bytes.get(start) == Some(&b'0');
        let more = matches!(self.peek(), Some(b'.' | b'e' | b'E'));
        (len > 0 && !leading_zero && !more).then_some(n)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// Consumes a `null` when the next value is one.
    fn null(&mut self) -> bool {
        self.literal(b"null").is_some()
    }

    /// Any value, checked; `depth` is the nesting of the container it is in.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.pos += 1;
                self.skip_string()
            }
            b'{' => {
                self.pos += 1;
                self.skip_object(depth + 1)
            }
            b'[' => {
                self.pos += 1;
                self.skip_array(depth + 1)
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.skip_number(),
        }
    }

    /// The rest of an object after `{`, `depth` its own nesting.
    fn skip_object(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        if self.closes_at_once(b'}')? {
            return Some(());
        }
        loop {
            self.expect(b'"')?;
            self.skip_string()?;
            self.skip_whitespace();
            self.expect(b':')?;
            self.skip_whitespace();
            self.skip_value(depth)?;
            if !self.more(b'}')? {
                return Some(());
            }
        }
    }

    /// The rest of an array after `[`, `depth` its own nesting.
    fn skip_array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        if self.closes_at_once(b']')? {
            return Some(());
        }
        loop {
            self.skip_value(depth)?;
            if !self.more(b']')? {
                return Some(());
            }
        }
    }

    /// The rest of an object of interest after `{`: its fields of interest
    /// into `out`, the others skipped.
    fn object_of_interest(
        &mut self,
        fields: &Fields,
        out: &mut [Picked<'a>],
        depth: usize,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        if self.closes_at_once(b'}')? {
            return Some(());
        }
        let mut next = 0;
        loop {
            self.expect(b'"')?;
            // A key with an escape could spell a field's name: not sure.
            let key = self.plain_string()?;
            self.skip_whitespace();
            self.expect(b':')?;
            self.skip_whitespace();
            let found = fields.find(key.as_bytes(), next);
            if let Some(i) = found {
                next = i + 1;
            }
            match found.and_then(|i| fields.list.get(i)) {
                Some(field) => {
                    let slot = out.get_mut(field.slot)?;
                    if *slot != Picked::Absent {
                        return None; // serde: duplicate field
                    }
                    *slot = Picked::Null;
                    if !self.null() {
                        match &field.want {
                            Want::Str => {
                                self.expect(b'"')?;
                                let text = self.plain_string()?;
                                *out.get_mut(field.slot)? = Picked::Str(text);
                            }
                            Want::U64 => {
                                let n = self.plain_u64()?;
                                *out.get_mut(field.slot)? = Picked::U64(n);
                            }
                            Want::Raw => {
                                let start = self.pos;
                                self.skip_value(depth)?;
                                let text = self.text.get(start..self.pos)?;
                                *out.get_mut(field.slot)? = Picked::Raw(text);
                            }
                            Want::StrOrU64 => {
                                let picked = if self.peek()? == b'"' {
                                    self.pos += 1;
                                    Picked::Str(self.plain_string()?)
                                } else {
                                    Picked::U64(self.plain_u64()?)
                                };
                                *out.get_mut(field.slot)? = picked;
                            }
                            Want::StrOrList => {
                                let picked = match self.peek()? {
                                    b'"' => {
                                        self.pos += 1;
                                        Picked::Str(self.plain_string()?)
                                    }
                                    b'[' => {
                                        let start = self.pos;
                                        self.skip_value(depth)?;
                                        Picked::Raw(self.text.get(start..self.pos)?)
                                    }
                                    _ => return None,
                                };
                                *out.get_mut(field.slot)? = picked;
                            }
                            Want::Object(inner) => {
                                self.expect(b'{')?;
                                *out.get_mut(field.slot)? = Picked::Object;
                                self.object_of_interest(inner, out, depth + 1)?;
                            }
                        }
                    }
                }
                None => self.skip_value(depth)?,
            }
            if !self.more(b'}')? {
                return Some(());
            }
        }
    }
}
