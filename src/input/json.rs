//! JSON entities → slot values, through serde visitors that borrow strings
//! from the record and skip fields no column reads.

use super::flatten::{self, FlattenSpec};
use super::{FieldTable, FieldUse, ParseError, RowBuffer, Value, utf8};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use wide::u8x16;

/// Parse every JSON value of an entity (one or more concatenated objects).
pub fn parse_entity<'a>(
    data: &'a [u8],
    fields: &mut FieldTable,
    rows: &mut RowBuffer<'a>,
) -> Result<(), ParseError> {
    rows.clear();
    let text = utf8(data)?;
    let width = fields.len();
    // Most records are one object: read in one pass below. Anything else
    // (escaped keys, several objects, deep nesting, any error) comes back
    // None and is read again from the start the serde way.
    if parse_object_in_one_pass(text, fields, rows.next_row(width)).is_some() {
        return Ok(());
    }
    rows.clear();
    parse_serde(data, text, fields, rows)
}

/// An entity the serde way: sonic-rs for one object, serde_json for the
/// rest and for the messages.
fn parse_serde<'a>(
    data: &'a [u8],
    text: &'a str,
    fields: &mut FieldTable,
    rows: &mut RowBuffer<'a>,
) -> Result<(), ParseError> {
    // One object through sonic-rs's SIMD scanner; several objects or any
    // error take serde_json's path, whose messages are the ones reported.
    // sonic-rs recurses once per nesting level while skipping, so records
    // that could nest deeply go to serde_json, whose recursion limit turns
    // hostile nesting into an error.
    if memchr::memchr2_iter(b'[', b'{', data)
        .nth(MAX_FAST_BRACKETS)
        .is_some()
    {
        return parse_general(text, fields, rows);
    }
    let width = fields.len();
    let mut fast = sonic_rs::Deserializer::from_slice(data);
    let parsed = RowSeed {
        fields: &mut *fields,
        row: rows.next_row(width),
    }
    .deserialize(&mut fast);
    if parsed.is_ok() && fast.end().is_ok() {
        return Ok(());
    }
    rows.clear();
    parse_general(text, fields, rows)
}

/// An entity under a flattenSpec: each JSON object's named fields taken by
/// their paths, then (with useFieldDiscovery) its other top-level scalars
/// and lists of scalars by their own names.
pub fn parse_flattened<'a>(
    data: &'a [u8],
    spec: &FlattenSpec,
    fields: &mut FieldTable,
    rows: &mut RowBuffer<'a>,
) -> Result<(), ParseError> {
    rows.clear();
    let text = utf8(data)?;
    let mut objects = Vec::new();
    for value in serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>() {
        let value = value.map_err(|e| ParseError::new(format!("Unable to parse row: {e}")))?;
        if !value.is_object() {
            return Err(ParseError::new(format!(
                "Unable to parse row: expected a JSON object, found {value}"
            )));
        }
        objects.push(value);
    }
    if objects.is_empty() {
        return Err(ParseError::new("record holds no JSON object".into()));
    }
    for object in &objects {
        let mut values: Vec<(usize, Value<'static>)> = Vec::new();
        for f in &spec.fields {
            if let Some(slot) = fields.column_slot(&f.name)
                && let Some(v) = flatten::follow(object, &f.steps)
            {
                values.push((slot, flatten::to_value(v)));
            }
        }
        if spec.use_field_discovery
            && let Some(map) = object.as_object()
        {
            for (key, v) in map {
                if spec.fields.iter().any(|f| f.name == *key) || v.is_object() {
                    continue;
                }
                let value = flatten::to_value(v);
                if value == Value::Nested {
                    continue;
                }
                if let Some(slot) = fields.column_slot(key) {
                    values.push((slot, value));
                }
            }
        }
        let width = fields.len();
        let row = rows.next_row(width);
        for (slot, v) in values {
            if slot >= row.len() {
                row.resize(slot + 1, Value::Null);
            }
            row[slot].set(v);
        }
    }
    Ok(())
}

/// One JSON object filling `row` as the serde visitors below would, in
/// one pass without the serde layers (their per-key and per-value calls
/// were most of a json replay's instructions, callgrind). Values are
/// checked as strictly as JSON's grammar asks; what this reader does not
/// take on itself (escaped strings, numbers other than short integers,
/// arrays and objects) goes through sonic-rs one value at a time, so every
/// value comes out as the whole-object path gives it. None for anything
/// else (escaped keys, several objects, deep nesting), errors included:
/// the caller then reads the entity again from its start.
fn parse_object_in_one_pass<'a>(
    text: &'a str,
    fields: &mut FieldTable,
    row: &mut Vec<Value<'a>>,
) -> Option<()> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        let mut position = 0;
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let key_at = i + 1;
            let (found, key_end) = match fields.recent_key_at(position, b, key_at) {
                Some((known, end)) => (Some(known), end),
                None => {
                    let end = plain_string_end(b, key_at)?;
                    (fields.lookup_at(position, &text[key_at..end]), end)
                }
            };
            i = skip_ws(b, key_end + 1);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(b, i + 1);
            position += 1;
            let end = match found {
                Some(FieldUse::Ignore) => skip_value_at(text, i)?,
                Some(FieldUse::Slot(s)) => {
                    let (value, end) = value_at(text, i)?;
                    store(row, s, value);
                    end
                }
                None => {
                    let (value, end) = value_at(text, i)?;
                    if let FieldUse::Slot(s) = fields.meet(&text[key_at..key_end], &value) {
                        store(row, s, value);
                    }
                    end
                }
            };
            i = skip_ws(b, end);
            match b.get(i) {
                Some(b',') => i = skip_ws(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_ws(b, i) == b.len()).then_some(())
}

/// A field's value into its slot of the row (both readers store this way).
fn store<'a>(row: &mut Vec<Value<'a>>, slot: usize, value: Value<'a>) {
    if slot >= row.len() {
        row.resize(slot + 1, Value::Null);
    }
    row[slot].set(value);
}

/// The position after any JSON whitespace from `i`.
#[inline(always)]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    // Most records have none: one compare for that case.
    if b.get(i).is_some_and(|&c| c > b' ') {
        return i;
    }
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The position after the value at `i`, checked as `value_at`
/// checks it; the usual shapes (a plain string, a short integer) are not
/// built (a field no column reads).
#[inline(always)]
fn skip_value_at(text: &str, i: usize) -> Option<usize> {
    let b = text.as_bytes();
    match b.get(i) {
        Some(b'"') => {
            if let Some(end) = plain_string_end(b, i + 1) {
                return Some(end + 1);
            }
        }
        Some(b'-' | b'0'..=b'9') => {
            if let Ok((_, end)) = short_integer_at(b, i) {
                return Some(end);
            }
        }
        _ => {}
    }
    value_at(text, i).map(|(_, end)| end)
}

/// Where the string whose text starts at `i` (after its opening quote)
/// closes, if it holds no escape and no control character (which JSON
/// forbids raw); found 16 bytes at a time.
#[inline(always)]
fn plain_string_end(b: &[u8], mut i: usize) -> Option<usize> {
    let (quote, backslash, controls) =
        (u8x16::splat(b'"'), u8x16::splat(b'\\'), u8x16::splat(0x1f));
    while i < b.len() {
        let (chunk, valid) = super::chunk_at(b, i);
        // Unsigned `<= 0x1f` as `min(chunk, 0x1f) == chunk`.
        let special =
            chunk.simd_eq(quote) | chunk.simd_eq(backslash) | chunk.min(controls).simd_eq(chunk);
        let hits = special.to_bitmask() & valid;
        if hits != 0 {
            let at = i + hits.trailing_zeros() as usize;
            return (b[at] == b'"').then_some(at);
        }
        i += super::CHUNK;
    }
    None
}

/// The value starting at `i` and the position after it; None for a
/// malformed one, one nesting deeper than the sonic-rs path takes, or the
/// end of the text.
#[inline(always)]
fn value_at(text: &str, i: usize) -> Option<(Value<'_>, usize)> {
    let b = text.as_bytes();
    match *b.get(i)? {
        b'"' => match plain_string_end(b, i + 1) {
            Some(end) => Some((Value::Str(Cow::Borrowed(&text[i + 1..end])), end + 1)),
            None => {
                // Escapes (or a forbidden byte): the string's extent here,
                // its value from sonic-rs.
                let close = string_close(b, i)?;
                Some((through_sonic(&b[i..=close])?, close + 1))
            }
        },
        b'-' | b'0'..=b'9' => match short_integer_at(b, i) {
            Ok((n, end)) => Some((Value::Long(n), end)),
            Err(end) => Some((through_sonic(&b[i..end])?, end)),
        },
        b'[' | b'{' => nested_at(b, i),
        b't' if b[i..].starts_with(b"true") => Some((Value::Bool(true), i + 4)),
        b'f' if b[i..].starts_with(b"false") => Some((Value::Bool(false), i + 5)),
        b'n' if b[i..].starts_with(b"null") => Some((Value::Null, i + 4)),
        _ => None,
    }
}

/// The number at `i` (a `-` or a digit there) when it is a short integer
/// in JSON's own form (at most 18 digits, no leading zero, not -0, no
/// fraction or exponent), with the position after it; otherwise Err with
/// the end of the bytes a number can hold, for sonic-rs to read or refuse.
#[inline(always)]
fn short_integer_at(b: &[u8], i: usize) -> Result<(i64, usize), usize> {
    let negative = b[i] == b'-';
    let digits_at = i + usize::from(negative);
    let mut j = digits_at;
    let mut n: i64 = 0;
    while let Some(&d) = b.get(j)
        && d.is_ascii_digit()
    {
        n = n.wrapping_mul(10).wrapping_add(i64::from(d - b'0'));
        j += 1;
    }
    let digits = j - digits_at;
    if (1..=18).contains(&digits)
        && (b[digits_at] != b'0' || (digits == 1 && !negative))
        && !matches!(b.get(j), Some(b'.' | b'e' | b'E'))
    {
        return Ok((if negative { -n } else { n }, j));
    }
    while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = b.get(j) {
        j += 1;
    }
    Err(j)
}

/// An array or object value and the position after it, read by sonic-rs.
/// Out of line: most records hold none.
#[cold]
#[inline(never)]
fn nested_at(b: &[u8], i: usize) -> Option<(Value<'_>, usize)> {
    let end = nested_end(b, i)?;
    Some((through_sonic(&b[i..end])?, end))
}

/// Where the array or object opening at `i` closes (exclusive), by its
/// brackets outside strings; None if it does not, or holds more brackets
/// than the sonic-rs path takes (sonic-rs recurses per level). Whether the
/// brackets pair and what lies between them is sonic-rs's to check.
fn nested_end(b: &[u8], i: usize) -> Option<usize> {
    let (mut depth, mut brackets, mut j) = (0usize, 0usize, i);
    loop {
        match *b.get(j)? {
            b'[' | b'{' => {
                depth += 1;
                brackets += 1;
                if brackets > MAX_FAST_BRACKETS {
                    return None;
                }
            }
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            b'"' => j = string_close(b, j)?,
            _ => {}
        }
        j += 1;
    }
}

/// The closing quote of the string opening at `i`, stepping over each
/// escaped byte; whether the escapes are valid is sonic-rs's to check.
fn string_close(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match *b.get(j)? {
            b'"' => return Some(j),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

/// One JSON value read by sonic-rs, as the whole-object path reads it.
fn through_sonic(raw: &[u8]) -> Option<Value<'_>> {
    let mut de = sonic_rs::Deserializer::from_slice(raw);
    let value = ValueSeed::default().deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(value)
}

/// Records with more brackets than this skip the sonic-rs path, and a
/// value holding more is not read in one pass (sonic-rs recurses per level).
const MAX_FAST_BRACKETS: usize = 64;

/// Any number of concatenated JSON values, through serde_json.
fn parse_general<'a>(
    text: &'a str,
    fields: &mut FieldTable,
    rows: &mut RowBuffer<'a>,
) -> Result<(), ParseError> {
    let mut de = serde_json::Deserializer::from_str(text);
    loop {
        // Skip whitespace between values; stop at the end of the entity.
        match de.end() {
            Ok(()) => break,
            Err(_) => {
                let width = fields.len();
                RowSeed {
                    fields: &mut *fields,
                    row: rows.next_row(width),
                }
                .deserialize(&mut de)
                .map_err(|e| ParseError::new(format!("Unable to parse row: {e}")))?;
            }
        }
    }
    if rows.is_empty() {
        return Err(ParseError::new("record holds no JSON object".into()));
    }
    Ok(())
}

struct RowSeed<'t, 'r, 'a> {
    fields: &'t mut FieldTable,
    row: &'r mut Vec<Value<'a>>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut position = 0;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            position += 1;
            match self.fields.lookup_at(position - 1, &key) {
                Some(FieldUse::Ignore) => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(FieldUse::Slot(s)) => {
                    let v = map.next_value_seed(ValueSeed::default())?;
                    store(self.row, s, v);
                }
                None => {
                    let v = map.next_value_seed(ValueSeed::default())?;
                    if let FieldUse::Slot(s) = self.fields.meet(&key, &v) {
                        store(self.row, s, v);
                    }
                }
            }
        }
        Ok(())
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

/// A field's value. `nested` is set for the elements of a list: a list of
/// scalars is a multi-value, anything deeper is skipped whole (so hostile
/// nesting never recurses through this visitor).
#[derive(Clone, Copy, Default)]
struct ValueSeed {
    nested: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Value::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Value::Str(Cow::Owned(v.to_string())))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Value::Long(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(match i64::try_from(v) {
            Ok(n) => Value::Long(n),
            Err(_) => Value::Double(v as f64),
        })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Value::Double(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if self.nested {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Value::Nested);
        }
        let mut items = Vec::new();
        let mut nested = false;
        while let Some(v) = seq.next_element_seed(ValueSeed { nested: true })? {
            nested |= matches!(v, Value::Nested);
            items.push(v);
        }
        Ok(if nested {
            Value::Nested
        } else {
            Value::List(items)
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value::Nested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_known_fields_and_skips_the_rest() {
        let mut fields = FieldTable::new(false, false, &[]);
        let carrier = fields.slot("carrier");
        let delay = fields.slot("dep_delay");
        let data =
            br#"{"carrier":"UA","flight":"1545","dep_delay":-4,"nested":{"a":[1,2]},"x":null}"#;
        let mut rows = RowBuffer::new();
        parse_entity(data, &mut fields, &mut rows).unwrap();
        assert_eq!(rows.len(), 1);
        let rows = rows.rows();
        assert!(matches!(&rows[0][carrier], Value::Str(Cow::Borrowed("UA"))));
        assert_eq!(rows[0][delay], Value::Long(-4));
        assert_eq!(fields.discovered_count(), 0);
    }

    #[test]
    fn discovers_scalar_fields_in_order() {
        let mut fields = FieldTable::new(true, false, &["timestamp".to_string()]);
        let data = br#"{"timestamp":"2013-01-01T00:00:00Z","b":"x","a":1,"n":null,"o":{"k":1},"l":["p","q"]}"#;
        let mut rows = RowBuffer::new();
        parse_entity(data, &mut fields, &mut rows).unwrap();
        assert_eq!(discovered(&fields), ["b", "a", "l"]);
    }

    fn discovered(fields: &FieldTable) -> Vec<&str> {
        fields
            .discovered_since(0)
            .iter()
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// A field whose name no segment column can have is not discovered
    /// (nor later, when it comes again); the row keeps its other fields.
    #[test]
    fn names_a_segment_cannot_hold_are_not_discovered() {
        let mut fields = FieldTable::new(true, false, &[]);
        let data = br#"{"a,b":"x","__time":1,"index.drd":"d","c\nd":"y","e":"z"}
{"a,b":"x2","e":"z2"}"#;
        let mut rows = RowBuffer::new();
        parse_entity(data, &mut fields, &mut rows).unwrap();
        assert_eq!(discovered(&fields), ["e"]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.rows()[1][0], Value::Str(Cow::Borrowed("z2")));
    }

    #[test]
    fn several_objects_in_one_record() {
        let mut fields = FieldTable::new(false, false, &[]);
        let s = fields.slot("v");
        let mut rows = RowBuffer::new();
        parse_entity(
            br#"{"v":1} {"v":2}
{"v":"three"}"#,
            &mut fields,
            &mut rows,
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.rows()[2][s], Value::Str(Cow::Borrowed("three")));
    }

    #[test]
    fn one_bad_value_spoils_the_entity() {
        let mut fields = FieldTable::new(false, false, &[]);
        fields.slot("v");
        let mut rows = RowBuffer::new();
        assert!(parse_entity(br#"{"v":1} {"v":"#, &mut fields, &mut rows).is_err());
        assert!(parse_entity(b"[1,2]", &mut fields, &mut rows).is_err());
        assert!(parse_entity(b"", &mut fields, &mut rows).is_err());
        assert!(parse_entity(b"\xff\xfe", &mut fields, &mut rows).is_err());
    }

    #[test]
    fn escaped_strings_are_owned_and_correct() {
        let mut fields = FieldTable::new(false, false, &[]);
        let s = fields.slot("k\"ey");
        let mut rows = RowBuffer::new();
        parse_entity(br#"{"k\"ey":"a\u00e9b"}"#, &mut fields, &mut rows).unwrap();
        assert_eq!(rows.rows()[0][s], Value::Str(Cow::Owned("a\u{e9}b".into())));
    }
}

#[cfg(test)]
mod hostile_tests {
    use super::*;

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut fields = FieldTable::new(true, false, &[]);
        for depth in [200usize, 100_000] {
            let mut rows = RowBuffer::new();
            let value = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let record = format!(r#"{{"a":{value}}}"#);
            let _ = parse_entity(record.as_bytes(), &mut fields, &mut rows);
            let mut rows = RowBuffer::new();
            let open = format!(r#"{{"a":{}"#, "[".repeat(depth));
            assert!(parse_entity(open.as_bytes(), &mut fields, &mut rows).is_err());
            let mut rows = RowBuffer::new();
            let objects = format!("{}{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
            let _ = parse_entity(objects.as_bytes(), &mut fields, &mut rows);
        }
    }
}

#[cfg(test)]
mod one_pass_tests {
    use super::*;
    use proptest::prelude::*;

    /// Fields as a task with those four columns has them, or discovering.
    fn table(discover: bool) -> FieldTable {
        let mut fields = FieldTable::new(discover, false, &["skipped".to_string()]);
        if !discover {
            for name in ["a", "b", "timestamp", "ключ"] {
                fields.slot(name);
            }
        }
        fields
    }

    /// The one-pass reader against the serde path on the same record:
    /// whenever it takes a record, the serde path reads the same row and
    /// discovers the same fields in the same order.
    /// `prime` is read first by each path with the same table, so the
    /// record under test meets the keys a previous object left behind.
    fn check(prime: &str, data: &[u8], discover: bool) -> Result<(), TestCaseError> {
        let Ok(text) = std::str::from_utf8(data) else {
            return Ok(());
        };
        let mut fast_fields = table(discover);
        let _ = parse_entity(prime.as_bytes(), &mut fast_fields, &mut RowBuffer::new());
        let mut fast_rows = RowBuffer::new();
        let width = fast_fields.len();
        let fast = parse_object_in_one_pass(text, &mut fast_fields, fast_rows.next_row(width));
        let mut serde_fields = table(discover);
        let _ = parse_serde(
            prime.as_bytes(),
            prime,
            &mut serde_fields,
            &mut RowBuffer::new(),
        );
        let mut serde_rows = RowBuffer::new();
        let serde = parse_serde(data, text, &mut serde_fields, &mut serde_rows);
        if fast.is_none() {
            return Ok(());
        }
        prop_assert!(
            serde.is_ok(),
            "taken by the one-pass reader, refused by serde: {text:?} ({serde:?})"
        );
        prop_assert_eq!(serde_rows.len(), 1, "{:?}", text);
        let (a, b) = (&fast_rows.rows()[0], &serde_rows.rows()[0]);
        for slot in 0..a.len().max(b.len()) {
            let null = Value::Null;
            prop_assert_eq!(
                a.get(slot).unwrap_or(&null),
                b.get(slot).unwrap_or(&null),
                "{:?}",
                text
            );
        }
        prop_assert_eq!(
            fast_fields.discovered_since(0),
            serde_fields.discovered_since(0)
        );
        Ok(())
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("timestamp".to_string()),
            Just("ключ".to_string()),
            Just("skipped".to_string()),
            Just("new_field".to_string()),
            Just("k\\\"q".to_string()),
            Just("\\u0061".to_string()),
            "[a-z]{0,20}",
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| f.to_string()),
            "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{0,5})?([eE][+-]?[0-9]{0,3})?",
            "[-+]?0[0-9]{1,3}|-|-0|1\\.|\\.5|1e|\\+1|0x10|1_000",
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
            "\"[a-zé\\x00-\\x1f\\\\\"]{0,8}\"",
            "\"a\\\\[qu]b\"|\"\\\\u12\"|\"\\\\ud800\"|\"unterminated",
            "true|false|null|tru|nul|True|NULL",
            "\\[1,2\\]|\\{\"x\":1\\}|\\[\\]|\\{\\}|\\[\"a\",\"b\"\\]|\\[1,\\[2\\]\\]",
            "\\{\"k\":\\[1,\\{\"z\":null\\}\\]\\}|\\[1,2|\\[1,\\]|\\[\"\\]\"\\]|\\{\"a\"\\}|\\[\\}",
            "\\[{1,70}\\]{1,70}",
        ]
    }

    fn space() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "", "", "", " ", "\t", "\n", "\r\n", "  ", "\u{a0}", "\u{c}",
        ])
    }

    fn record() -> impl Strategy<Value = String> {
        (
            prop::collection::vec((key(), value(), space(), space()), 0..8),
            space(),
            prop::sample::select(vec!["", "", "", " ", "x", "}", ",", "{\"a\":1}", "\n{}"]),
        )
            .prop_map(|(pairs, around, tail)| {
                let body: Vec<String> = pairs
                    .iter()
                    .map(|(k, v, s1, s2)| format!("{s1}\"{k}\"{s2}:{s1}{v}{s2}"))
                    .collect();
                format!("{around}{{{}}}{around}{tail}", body.join(","))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn the_one_pass_reader_agrees_with_serde(
            prime in record(),
            record in record(),
            discover in any::<bool>(),
        ) {
            check(&prime, record.as_bytes(), discover)?;
            // The same keys again, as consecutive rows of a stream have them.
            check(&record, record.as_bytes(), discover)?;
        }

        #[test]
        fn and_on_any_single_byte_change(
            record in record(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            delete in any::<bool>(),
            discover in any::<bool>(),
        ) {
            let record_before = record.clone();
            let mut data = record.into_bytes();
            if !data.is_empty() {
                let i = at.index(data.len());
                if delete {
                    data.remove(i);
                } else {
                    data[i] = byte;
                }
            }
            check(&record_before, &data, discover)?;
        }
    }

    #[test]
    fn flights_rows_take_the_one_pass_reader() {
        let mut fields = table(false);
        let mut rows = RowBuffer::new();
        let record = r#"{"timestamp":"2013-01-01T10:15:00Z","year":2013,"dep_delay":-2,"a":"UA","b":1400,"air_time":null,"x":1.5,"e":"N\u00e9"}"#;
        let width = fields.len();
        assert!(parse_object_in_one_pass(record, &mut fields, rows.next_row(width)).is_some());
        let row = &rows.rows()[0];
        assert_eq!(row[2], Value::Str(Cow::Borrowed("2013-01-01T10:15:00Z")));
        assert_eq!(row[0], Value::Str(Cow::Borrowed("UA")));
        assert_eq!(row[1], Value::Long(1400));
        // Arrays and objects are read through sonic-rs.
        let mut rows = RowBuffer::new();
        assert!(
            parse_object_in_one_pass(
                r#"{"a":["x","y"],"b":{"c":1}}"#,
                &mut fields,
                rows.next_row(width)
            )
            .is_some()
        );
        assert_eq!(
            rows.rows()[0][0],
            Value::List(vec![
                Value::Str(Cow::Borrowed("x")),
                Value::Str(Cow::Borrowed("y"))
            ])
        );
        assert_eq!(rows.rows()[0][1], Value::Nested);
        // Not taken: deep nesting, several objects, escaped keys, bad values.
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(65), "]".repeat(65));
        for record in [
            deep.as_str(),
            r#"{"a":1} {"a":2}"#,
            r#"{"k\"q":1}"#,
            r#"{"a":01}"#,
            r#"{"a":"x"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"a":1,}"#,
        ] {
            let mut rows = RowBuffer::new();
            assert!(
                parse_object_in_one_pass(record, &mut fields, rows.next_row(width)).is_none(),
                "{record}"
            );
        }
    }
}
