//! JSON entities → slot values, through serde visitors that borrow strings
//! from the record and skip fields no column reads.

use super::flatten::{self, FlattenSpec};
use super::{FieldTable, FieldUse, ParseError, RowBuffer, Value, utf8};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Parse every JSON value of an entity (one or more concatenated objects).
pub fn parse_entity<'a>(
    data: &'a [u8],
    fields: &mut FieldTable,
    rows: &mut RowBuffer<'a>,
) -> Result<(), ParseError> {
    rows.clear();
    let text = utf8(data)?;
    // The common case, one object per record, through sonic-rs's SIMD
    // scanner; several objects or any error take serde_json's path, whose
    // messages are the ones reported.
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
        let value = value.map_err(|e| ParseError(format!("Unable to parse row: {e}")))?;
        if !value.is_object() {
            return Err(ParseError(format!(
                "Unable to parse row: expected a JSON object, found {value}"
            )));
        }
        objects.push(value);
    }
    if objects.is_empty() {
        return Err(ParseError("record holds no JSON object".into()));
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

/// Records with more brackets than this skip the sonic-rs path.
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
                .map_err(|e| ParseError(format!("Unable to parse row: {e}")))?;
            }
        }
    }
    if rows.is_empty() {
        return Err(ParseError("record holds no JSON object".into()));
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
                    if s >= self.row.len() {
                        self.row.resize(s + 1, Value::Null);
                    }
                    self.row[s] = v;
                }
                None => {
                    let v = map.next_value_seed(ValueSeed::default())?;
                    if let FieldUse::Slot(s) = self.fields.meet(&key, &v) {
                        if s >= self.row.len() {
                            self.row.resize(s + 1, Value::Null);
                        }
                        self.row[s] = v;
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
        let names: Vec<&str> = fields
            .discovered_since(0)
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, ["b", "a", "l"]);
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
