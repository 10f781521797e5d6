//! Bytes → rows. A record's bytes are parsed straight into a slot per known
//! input field (borrowing strings from the record where JSON allows), the
//! timestamp is taken from its slot, and the row goes on to the index. No
//! `serde_json::Value` is built per row.

pub mod avro;
mod avro_direct;
mod delimited;
pub mod expr;
pub mod filter;
pub mod flatten;
pub mod joda;
mod json;
pub mod protobuf;
mod protobuf_direct;
pub mod registry;
pub mod timestamp;
pub mod transform;
mod tree;

use crate::spec::{InputFormat, Task};
use hashbrown::HashMap;
use std::borrow::Cow;
use wide::u8x16;

/// One input field's value, borrowed from the record where possible.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// Absent or null.
    Null,
    Str(Cow<'a, str>),
    Long(i64),
    Double(f64),
    Bool(bool),
    List(Vec<Value<'a>>),
    /// A nested object or another shape no column can hold.
    Nested,
}

impl Value<'_> {
    /// Whether dropping the value frees nothing.
    fn owns_nothing(&self) -> bool {
        !matches!(self, Value::Str(Cow::Owned(_)) | Value::List(_))
    }

    /// Make it null (`set` to null).
    pub fn clear(&mut self) {
        self.set(Value::Null);
    }

    /// Store `value` here. An old value that owns nothing (always so in a
    /// freshly reset row) is overwritten without a call to its drop glue:
    /// those calls, two per cell (the reset and the store), were ~3% of a
    /// csv replay's instructions (callgrind).
    pub fn set(&mut self, value: Self) {
        if self.owns_nothing() {
            std::mem::forget(std::mem::replace(self, value));
        } else {
            *self = value;
        }
    }
}

/// What a field name means to this task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldUse {
    Ignore,
    Slot(usize),
}

/// Field names → slots, growing as schemaless discovery meets new fields.
pub struct FieldTable {
    fields: HashMap<Box<str>, FieldUse, foldhash::fast::FixedState>,
    names: Vec<String>,
    discover: bool,
    keep_nulls: bool,
    /// Discovered field names, in first-seen order (they become dimensions).
    discovered: Vec<(String, usize)>,
    /// The previous object's keys by position: rows of one stream mostly
    /// repeat their keys in the same order, and comparing a short key is
    /// cheaper than hashing it. The flag: JSON writes the key as it is (no
    /// quote, backslash or control byte), so its raw bytes can be compared.
    recent: Vec<(Box<str>, FieldUse, bool)>,
}

impl FieldTable {
    pub fn new(discover: bool, keep_nulls: bool, exclusions: &[String]) -> FieldTable {
        let mut t = FieldTable {
            fields: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(7)),
            names: Vec::new(),
            discover,
            keep_nulls,
            discovered: Vec::new(),
            recent: Vec::new(),
        };
        for e in exclusions {
            t.fields.insert(e.as_str().into(), FieldUse::Ignore);
        }
        t
    }

    /// The slot of a field the task reads (registered once at start).
    pub fn slot(&mut self, name: &str) -> usize {
        if let Some(FieldUse::Slot(s)) = self.fields.get(name) {
            return *s;
        }
        let s = self.names.len();
        self.names.push(name.to_string());
        self.fields.insert(name.into(), FieldUse::Slot(s));
        s
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn name(&self, slot: usize) -> &str {
        &self.names[slot]
    }

    /// The slot a delimited column fills: a field the task reads, a newly
    /// discovered dimension when discovering, or None.
    pub fn column_slot(&mut self, name: &str) -> Option<usize> {
        match self.fields.get(name).copied() {
            Some(FieldUse::Slot(s)) => Some(s),
            Some(FieldUse::Ignore) => None,
            None if self.discover && self.discoverable(name) => {
                let s = self.slot(name);
                self.discovered.push((name.to_string(), s));
                Some(s)
            }
            None => None,
        }
    }

    /// The slot of a field of a decoded record (Avro, Protobuf): one the
    /// task reads, or a new dimension where the format's own rule says the
    /// field may be discovered; None for the rest.
    pub(crate) fn record_field_slot(&mut self, name: &str, discoverable: bool) -> Option<usize> {
        match self.fields.get(name).copied() {
            Some(FieldUse::Slot(s)) => Some(s),
            Some(FieldUse::Ignore) => None,
            None if discoverable => self.column_slot(name),
            None => None,
        }
    }

    /// Whether a field met while discovering can become a dimension. One
    /// whose name no segment column can have (a comma, a line break,
    /// `__time`, ...) is ignored from then on, with a warning: Druid fails
    /// the task when it persists such a column, and every retry would meet
    /// the same record again.
    fn discoverable(&mut self, name: &str) -> bool {
        let Some(why) = crate::spec::unstorable_column_name(name) else {
            return true;
        };
        log::warn!("field {name:?} is not made a dimension: {why}");
        self.fields.insert(name.into(), FieldUse::Ignore);
        false
    }

    /// Discovered fields from position `from` on.
    pub fn discovered_since(&self, from: usize) -> &[(String, usize)] {
        &self.discovered[from.min(self.discovered.len())..]
    }

    pub fn discovered_count(&self) -> usize {
        self.discovered.len()
    }

    /// When the JSON text at `b[at..]` holds the previous object's key at
    /// `position` and its closing quote: that key's use and where the
    /// quote is, found without scanning for it. Only keys JSON writes as
    /// they are (no quote, backslash or control byte) qualify.
    #[inline(always)]
    fn recent_key_at(&self, position: usize, b: &[u8], at: usize) -> Option<(FieldUse, usize)> {
        let (key, known, plain) = self.recent.get(position)?;
        let key = key.as_bytes();
        let end = at + key.len();
        (*plain && b.get(end) == Some(&b'"') && same_text(key, &b[at..end]))
            .then_some((*known, end))
    }

    /// What the key at `position` of an object means, if known.
    fn lookup_at(&mut self, position: usize, name: &str) -> Option<FieldUse> {
        if let Some((key, known, _)) = self.recent.get(position)
            && same_text(key.as_bytes(), name.as_bytes())
        {
            return Some(*known);
        }
        let found = self.fields.get(name).copied()?;
        self.remember(position, name, found);
        Some(found)
    }

    fn remember(&mut self, position: usize, name: &str, known: FieldUse) {
        let plain = !name.bytes().any(|c| c == b'"' || c == b'\\' || c < 0x20);
        if position < self.recent.len() {
            self.recent[position] = (name.into(), known, plain);
        } else if position == self.recent.len() {
            self.recent.push((name.into(), known, plain));
        }
    }

    /// A field seen for the first time: a new dimension when discovering
    /// (and the value is one a dimension can hold), otherwise ignored.
    fn meet(&mut self, name: &str, value: &Value) -> FieldUse {
        let storable = match value {
            Value::Nested => false,
            Value::Null => self.keep_nulls,
            _ => true,
        };
        if !self.discover {
            self.fields.insert(name.into(), FieldUse::Ignore);
            return FieldUse::Ignore;
        }
        if !storable {
            // Not remembered: a later row may hold a storable value here.
            return FieldUse::Ignore;
        }
        if !self.discoverable(name) {
            return FieldUse::Ignore;
        }
        let s = self.slot(name);
        self.discovered.push((name.to_string(), s));
        FieldUse::Slot(s)
    }
}

/// The rows parsed from one record. Slot vectors are reused from record to
/// record, so parsing allocates nothing per row in the steady state.
#[derive(Default)]
pub struct RowBuffer<'a> {
    rows: Vec<Vec<Value<'a>>>,
    len: usize,
}

impl<'a> RowBuffer<'a> {
    pub fn new() -> Self {
        RowBuffer {
            rows: Vec::new(),
            len: 0,
        }
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// A new all-null row of `width` slots.
    #[inline(always)]
    pub fn next_row(&mut self, width: usize) -> &mut Vec<Value<'a>> {
        if self.len == self.rows.len() {
            self.rows.push(Vec::with_capacity(width));
        }
        let row = &mut self.rows[self.len];
        self.len += 1;
        if row.len() == width {
            // Reset in place: most slots hold a borrowed string or null.
            for v in row.iter_mut() {
                v.clear();
            }
        } else {
            row.clear();
            row.resize_with(width, || Value::Null);
        }
        row
    }

    /// The row being filled (the last one started).
    pub fn current(&mut self) -> &mut Vec<Value<'a>> {
        &mut self.rows[self.len - 1]
    }

    pub fn rows(&self) -> &[Vec<Value<'a>>] {
        &self.rows[..self.len]
    }

    /// The rows, for transforms to write into.
    pub fn rows_mut(&mut self) -> &mut [Vec<Value<'a>>] {
        &mut self.rows[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Why a record or row could not become a row: the reason, and whether
/// it is fatal to the task (a schema registry that cannot be reached)
/// rather than to this record alone.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError(pub String, bool);

impl ParseError {
    /// This record is unparseable.
    pub fn new(reason: String) -> ParseError {
        ParseError(reason, false)
    }

    /// No record can be parsed: the task fails instead of counting it.
    pub fn fatal(reason: String) -> ParseError {
        ParseError(reason, true)
    }

    pub fn is_fatal(&self) -> bool {
        self.1
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Bytes the 16-byte searches look at a time (csv cells, JSON strings).
pub(crate) const CHUNK: usize = 16;

/// The 16 bytes of `bytes` from `at` (zeros past the end) and the mask of
/// those that are in `bytes`.
#[inline(always)]
pub(crate) fn chunk_at(bytes: &[u8], at: usize) -> (u8x16, u32) {
    match bytes.get(at..at + CHUNK) {
        Some(full) => (
            u8x16::new(full.try_into().expect("CHUNK bytes")),
            u32::from(u16::MAX),
        ),
        None => {
            let rest = &bytes[at..];
            let mut padded = [0u8; CHUNK];
            padded[..rest.len()].copy_from_slice(rest);
            (u8x16::new(padded), (1u32 << rest.len()) - 1)
        }
    }
}

/// A record's bytes as text. Most records are short and all ASCII: eight
/// bytes at a time settles those (~90 instructions for a ~110-byte flights
/// csv record, all told; std's `is_ascii` measured ~285 on the same
/// records, callgrind); anything else takes the SIMD check (~3x cheaper
/// than std's), and std's, run only on failure, says where the bad byte is.
pub fn utf8(data: &[u8]) -> Result<&str, ParseError> {
    utf8_noting::<false>(data).map(|(text, _)| text)
}

/// `utf8`, and whether the record may hold a line feed: a short ASCII
/// record is looked through for one in the same pass (so a one-line csv
/// record needs no search for its end); any other record may.
pub fn utf8_noting_line_feeds(data: &[u8]) -> Result<(&str, bool), ParseError> {
    utf8_noting::<true>(data)
}

#[inline(always)]
fn utf8_noting<const LINE_FEEDS: bool>(data: &[u8]) -> Result<(&str, bool), ParseError> {
    if let Some(line_feeds) = short_ascii::<LINE_FEEDS>(data) {
        // SAFETY: all bytes are ASCII, so valid UTF-8. Validating again
        // would cost what the ASCII check saved (~1% of a csv replay).
        return Ok((unsafe { std::str::from_utf8_unchecked(data) }, line_feeds));
    }
    simdutf8::basic::from_utf8(data)
        .or_else(|_| {
            std::str::from_utf8(data)
                .map_err(|e| ParseError::new(format!("record is not valid UTF-8: {e}")))
        })
        .map(|text| (text, true))
}

/// Some(whether it holds a line feed, when asked; else true) if `data` is
/// at most 1 KiB and all ASCII; None otherwise.
#[inline(always)]
fn short_ascii<const LINE_FEEDS: bool>(data: &[u8]) -> Option<bool> {
    if data.len() > 1024 {
        return None;
    }
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let (mut high, mut feeds) = (0u64, 0u64);
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("eight bytes"));
        high |= w;
        if LINE_FEEDS {
            // A zero byte of `w ^ "\n\n.."` sets its high bit here (exact
            // for ASCII words, which are all that count).
            let x = w ^ (ONES * u64::from(b'\n'));
            feeds |= x.wrapping_sub(ONES) & !x;
        }
    }
    for &b in words.remainder() {
        high |= u64::from(b);
        if LINE_FEEDS {
            feeds |= u64::from(b == b'\n') << 7;
        }
    }
    (high & HIGH == 0).then_some(!LINE_FEEDS || feeds & HIGH != 0)
}

/// Byte equality of two strings, short ones (field names) compared as
/// overlapping words: a `memcmp` call per key of a JSON object was ~3% of a
/// json replay's instructions (callgrind; for 20-byte timestamps `memcmp`
/// was as cheap).
#[inline(always)]
fn same_text(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

/// Parses records of one input format into slot values.
pub struct RowParser {
    pub fields: FieldTable,
    format: InputFormat,
    delimited: Option<delimited::Layout>,
    avro_slots: avro_direct::DirectSlots,
    protobuf_slots: protobuf_direct::DirectSlots,
}

impl RowParser {
    pub fn new(task: &Task) -> RowParser {
        let r = &task.resolved;
        let format = r.input_format.clone().expect("validated task");
        let discover = r.discover_dimensions;
        let keep_nulls = matches!(
            format,
            InputFormat::Json {
                keep_null_columns: true,
                ..
            }
        );
        let fields = FieldTable::new(
            discover,
            keep_nulls,
            if discover { &r.exclusions } else { &[] },
        );
        let delimited = match &format {
            InputFormat::Delimited {
                delimiter,
                list_delimiter,
                columns,
                skip_header_rows,
                csv,
                find_columns_from_header,
            } => Some(delimited::Layout::new(
                delimiter,
                list_delimiter.as_deref(),
                columns,
                *skip_header_rows,
                *csv,
                *find_columns_from_header,
            )),
            _ => None,
        };
        RowParser {
            fields,
            format,
            delimited,
            avro_slots: None,
            protobuf_slots: Vec::new(),
        }
    }

    /// The comments a JSON record may hold (featureSpec), if any.
    pub fn comments(&self) -> Option<json_comments::CommentSettings> {
        match &self.format {
            InputFormat::Json { comments, .. } => match (comments.c_style, comments.yaml) {
                (true, true) => Some(json_comments::CommentSettings::all()),
                (true, false) => Some(json_comments::CommentSettings::c_style()),
                (false, true) => Some(json_comments::CommentSettings::hash_only()),
                (false, false) => None,
            },
            _ => None,
        }
    }

    /// Parse one entity (a record's data) into rows of slot values. Rows are
    /// handed over only if the whole entity parses, as Druid's stream JSON
    /// reader does.
    pub fn parse<'a>(
        &mut self,
        data: &'a [u8],
        rows: &mut RowBuffer<'a>,
    ) -> Result<(), ParseError> {
        rows.clear();
        match &self.format {
            InputFormat::Json {
                flatten: Some(spec),
                ..
            } => json::parse_flattened(data, spec, &mut self.fields, rows),
            InputFormat::Json { .. } => json::parse_entity(data, &mut self.fields, rows),
            InputFormat::Delimited { .. } => {
                let layout = self.delimited.as_mut().expect("delimited layout");
                layout.parse_entity(data, &mut self.fields, rows)
            }
            InputFormat::Avro(avro) => {
                avro.parse(data, &mut self.fields, &mut self.avro_slots, rows)
            }
            InputFormat::Protobuf(proto) => {
                proto.parse(data, &mut self.fields, &mut self.protobuf_slots, rows)
            }
        }
    }
}

/// A JSON entity with its comments blanked out (a copy), or None when it
/// holds no character that could start one. Strings are left alone.
pub fn strip_json_comments(
    data: &[u8],
    settings: json_comments::CommentSettings,
) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    if memchr::memchr2(b'/', b'#', data).is_none() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(data.len());
    settings
        .strip_comments(data)
        .read_to_end(&mut out)
        .map_err(|e| format!("comment: {e}"))?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair of strings up to 30 bytes long that differ in one byte
    /// (at any position), or in length, compare unequal; equal ones equal.
    #[test]
    fn same_text_agrees_with_byte_equality() {
        for n in 0..=30usize {
            let a: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(same_text(&a, &a.clone()), "{n}");
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x20;
                assert!(!same_text(&a, &b), "{n} {i}");
            }
            let mut longer = a.clone();
            longer.push(b'a');
            assert!(!same_text(&a, &longer), "{n}");
        }
    }

    /// featureSpec ALLOW_COMMENTS: `//` and `/* */` comments are blanked
    /// out, the same characters inside strings are kept, and the record
    /// then parses as strict JSON.
    #[test]
    fn comments_are_stripped_outside_strings() {
        let record = br#"{"url": "http://x/*y*/" /* note */, "n": 1 // end
        }"#;
        let c_style = json_comments::CommentSettings::c_style();
        let stripped = strip_json_comments(record, c_style).unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&stripped).unwrap();
        assert_eq!(v, serde_json::json!({"url": "http://x/*y*/", "n": 1}));
        // Nothing to strip: no copy.
        assert_eq!(strip_json_comments(br#"{"a": 1}"#, c_style).unwrap(), None);
        // `#` is a comment only under ALLOW_YAML_COMMENTS.
        let yaml = strip_json_comments(
            b"{\"a\": 1} # x",
            json_comments::CommentSettings::hash_only(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&yaml).unwrap()["a"],
            1
        );
        // An unterminated block comment is an error, not a panic.
        assert!(strip_json_comments(br#"{"a": 1} /* open"#, c_style).is_err());
    }

    /// The ASCII fast path agrees with std on every length around the
    /// eight-byte words and the 1 KiB cut, with a non-ASCII or invalid
    /// byte at every position.
    #[test]
    fn record_text_checks_agree_with_std() {
        for len in (0..40).chain(1016..1032) {
            let ascii = vec![b'a'; len];
            assert_eq!(utf8(&ascii).unwrap().len(), len);
            for at in 0..len {
                let mut bad = ascii.clone();
                bad[at] = 0xFF;
                assert!(utf8(&bad).is_err(), "0xFF at {at} of {len}");
                let mut bad = ascii.clone();
                bad[at] = 0x80;
                assert!(utf8(&bad).is_err(), "0x80 at {at} of {len}");
                if at + 1 < len {
                    let mut accented = ascii.clone();
                    accented[at..at + 2].copy_from_slice("é".as_bytes());
                    assert_eq!(
                        utf8(&accented).unwrap(),
                        std::str::from_utf8(&accented).unwrap()
                    );
                }
            }
        }
        let err = utf8(b"ab\xC3(").unwrap_err();
        assert!(err.0.contains("not valid UTF-8"), "{}", err.0);
    }

    /// A record said to hold no line feed holds none: every position of
    /// one (and of its neighbours 0x0B and 0x09, one bit away) in every
    /// length around the words and the 1 KiB cut; non-ASCII and long
    /// records are always said to may hold one.
    #[test]
    fn line_feeds_are_noted_wherever_they_are() {
        for len in (0..40).chain(1016..1032) {
            let plain = vec![b'a'; len];
            let (_, feeds) = utf8_noting_line_feeds(&plain).unwrap();
            assert_eq!(feeds, len > 1024, "{len}");
            for at in 0..len {
                for (byte, is_feed) in [(b'\n', true), (0x0B, false), (0x09, false), (0x8A, true)] {
                    let mut record = plain.clone();
                    record[at] = byte;
                    if byte >= 0x80 {
                        assert!(utf8_noting_line_feeds(&record).is_err());
                        continue;
                    }
                    let (_, feeds) = utf8_noting_line_feeds(&record).unwrap();
                    assert_eq!(feeds, is_feed || len > 1024, "{byte:#x} at {at} of {len}");
                }
            }
        }
        let (_, feeds) = utf8_noting_line_feeds("é, no feed".as_bytes()).unwrap();
        assert!(feeds, "a non-ASCII record is searched as before");
    }
}
