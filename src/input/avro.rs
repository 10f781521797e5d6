//! `avro_stream` records: Avro binary encoding without a container header,
//! decoded by the Apache Avro crate against the schema the task gives
//! (`schema_inline`), or against one of several chosen by a five-byte
//! prefix (`multiple_schemas_inline`: the byte 1, then the schema id as a
//! big-endian int, as Druid's InlineSchemasAvroBytesDecoder reads it), or
//! fetched by the id of Confluent's wire format from a schema registry
//! (`schema_registry`: the registry module).
//!
//! Values map as Druid's AvroFlattenerMaker and AvroLogicalTypeConverter
//! map them: strings and enums as strings, unions as the branch's value,
//! arrays as lists (a field's value without its nulls), records and maps as nested values
//! for flattenSpec paths, bytes and fixed as their UTF-8 text with
//! `binaryAsString` or else as base64 (what Druid makes of a `byte[]`
//! dimension), decimal as a double, date as epoch milliseconds, the other
//! logical types as their underlying number or string. Without a
//! flattenSpec path, a new field becomes a dimension only if its schema is
//! string, bytes, int, long, float or double, an array of one of those, or
//! a union of null and one of those (Druid's discoverRootFields).

use super::flatten::FlattenSpec;
use super::registry::{self, Registry};
use super::tree::{self, json_double};
use super::{FieldTable, ParseError, RowBuffer};
use apache_avro::Schema;
use apache_avro::schema::{NamesRef, ResolvedSchema};
use apache_avro::types::Value as Avro;
use base64::Engine;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// The largest allocation one record's decoding may ask for (a length
/// prefix past it is an error before anything is allocated). Kinesis
/// records are at most 10 MiB.
const MAX_ALLOCATION: usize = 10 << 20;

/// How a record's bytes find their schema.
#[derive(Debug, Clone)]
pub enum Schemas {
    /// `schema_inline`: every record is written with this schema.
    Inline(Box<Schema>),
    /// `multiple_schemas_inline`: schema id → schema.
    ById(BTreeMap<i32, Schema>),
    /// `schema_registry`: the Confluent wire format, schemas fetched by id.
    Registry(std::sync::Arc<Registry<Schema>>),
}

/// A compiled `avro_stream` inputFormat.
#[derive(Debug, Clone)]
pub struct AvroFormat {
    pub schemas: Schemas,
    pub flatten: FlattenSpec,
    pub binary_as_string: bool,
    /// The avroBytesDecoder as written (for equality).
    source: Json,
    /// Set when the record shape allows reading it directly.
    direct: Option<super::avro_direct::DirectPlan>,
}

impl PartialEq for AvroFormat {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
            && self.flatten == other.flatten
            && self.binary_as_string == other.binary_as_string
    }
}

/// An error at a JSON path of the task.
type SpecError = (String, String);

impl AvroFormat {
    /// Compile `avroBytesDecoder` (at `path`), flattenSpec and options.
    pub fn compile(
        decoder: Option<&Json>,
        flatten_spec: Option<&Json>,
        binary_as_string: bool,
        extract_unions_by_type: bool,
        path: &str,
    ) -> Result<AvroFormat, SpecError> {
        let at = |k: &str| format!("{path}.{k}");
        if extract_unions_by_type {
            return Err((
                at("extractUnionsByType"),
                "is not supported yet: union values are taken as the value of their branch".into(),
            ));
        }
        let decoder = decoder
            .filter(|d| !d.is_null())
            .ok_or_else(|| (at("avroBytesDecoder"), "is required".to_string()))?;
        let kind = decoder.get("type").and_then(Json::as_str).unwrap_or("");
        let schemas = match kind {
            "schema_inline" => {
                let schema = decoder
                    .get("schema")
                    .ok_or_else(|| (at("avroBytesDecoder.schema"), "is required".to_string()))?;
                Schemas::Inline(Box::new(parse_schema(
                    schema,
                    &at("avroBytesDecoder.schema"),
                )?))
            }
            "multiple_schemas_inline" => {
                let field = at("avroBytesDecoder.schemas");
                let list = decoder
                    .get("schemas")
                    .and_then(Json::as_object)
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| {
                        (
                            field.clone(),
                            "is required: an object of schema id → schema, at least one".into(),
                        )
                    })?;
                let mut by_id = BTreeMap::new();
                for (id, schema) in list {
                    let here = format!("{field}.{id}");
                    let n: i32 = id
                        .parse()
                        .map_err(|_| (here.clone(), "the schema id must be an int".to_string()))?;
                    by_id.insert(n, parse_schema(schema, &here)?);
                }
                Schemas::ById(by_id)
            }
            "schema_registry" => Schemas::Registry(std::sync::Arc::new(Registry::from_spec(
                decoder,
                &at("avroBytesDecoder"),
            )?)),
            "schema_repo" => {
                return Err((
                    at("avroBytesDecoder.type"),
                    "\"schema_repo\" is not supported yet (schema_inline, \
                     multiple_schemas_inline and schema_registry are)"
                        .to_string(),
                ));
            }
            other => {
                return Err((
                    at("avroBytesDecoder.type"),
                    format!(
                        "{other:?} is not an avroBytesDecoder type (schema_inline, \
                         multiple_schemas_inline, schema_repo, schema_registry)"
                    ),
                ));
            }
        };
        let flatten = compile_flatten(flatten_spec, &at("flattenSpec"))?;
        let direct = match &schemas {
            Schemas::Inline(schema) if flatten.is_discovery_only() => {
                let names = ResolvedSchema::try_from(schema.as_ref())
                    .map_err(|e| (at("avroBytesDecoder.schema"), e.to_string()))?;
                super::avro_direct::DirectPlan::for_schema(schema, |s| {
                    discoverable(s, names.get_names())
                })
            }
            _ => None,
        };
        Ok(AvroFormat {
            schemas,
            flatten,
            binary_as_string,
            source: decoder.clone(),
            direct,
        })
    }

    /// The row of one record.
    pub fn parse<'a>(
        &self,
        data: &'a [u8],
        fields: &mut FieldTable,
        slots: &mut super::avro_direct::DirectSlots,
        rows: &mut RowBuffer<'a>,
    ) -> Result<(), ParseError> {
        rows.clear();
        if let Some(plan) = &self.direct {
            return plan.parse(data, fields, slots, rows);
        }
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION);
        let fetched: std::sync::Arc<Schema>;
        let (schema, body) = match &self.schemas {
            Schemas::Inline(schema) => (schema.as_ref(), data),
            Schemas::ById(by_id) => {
                let Some((&version, rest)) = data.split_first() else {
                    return Err(ParseError::new(
                        "record must have at least 5 bytes carrying version and schemaId".into(),
                    ));
                };
                if rest.len() < 4 {
                    return Err(ParseError::new(
                        "record must have at least 5 bytes carrying version and schemaId".into(),
                    ));
                }
                if version != 1 {
                    return Err(ParseError::new(format!(
                        "found record of arbitrary version [{version}]"
                    )));
                }
                let id = i32::from_be_bytes(rest[..4].try_into().expect("four bytes"));
                let schema = by_id.get(&id).ok_or_else(|| {
                    ParseError::new(format!("Failed to find schema for id [{id}]"))
                })?;
                (schema, &rest[4..])
            }
            Schemas::Registry(registry) => {
                let (id, body) = registry::split_wire(data, "avro")?;
                fetched = registry.get(id, "Avro", |reply| {
                    if reply.schema_type.is_some_and(|t| t != "AVRO") {
                        return Err(format!(
                            "schema id[{id}] is a {} schema, not an Avro one",
                            reply.schema_type.unwrap_or_default()
                        ));
                    }
                    Schema::parse_str(reply.schema)
                        .map_err(|e| format!("not a valid Avro schema: {e}"))
                })?;
                (fetched.as_ref(), body)
            }
        };
        let resolved = ResolvedSchema::try_from(schema)
            .map_err(|e| ParseError::new(format!("Avro schema: {e}")))?;
        let mut input = EofWatch {
            rest: body,
            short: false,
        };
        let value = apache_avro::reader::datum::GenericDatumReader::builder(schema)
            .resolved_writer_schemata(resolved.clone())
            .build()
            .and_then(|reader| reader.read_value(&mut input))
            .map_err(|e| ParseError::new(format!("Fail to decode avro message: {e}")))?;
        if input.short {
            // The crate decodes a string cut short by the record's end as
            // null; Java's decoder (and so Druid) fails on it.
            return Err(ParseError::new(
                "Fail to decode avro message: the record ends inside a value".into(),
            ));
        }
        let names = resolved.get_names();
        let record = to_json(value, schema, names, self.binary_as_string)
            .map_err(|e| ParseError::new(format!("Fail to decode avro message: {e}")))?;
        if !record.is_object() {
            return Err(ParseError::new(
                "Fail to decode avro message: the schema is not a record".into(),
            ));
        }
        let root = resolve(schema, names);
        let may_discover = |name: &str, _: &Json| match root {
            Schema::Record(r) => r
                .fields
                .iter()
                .find(|f| f.name == name)
                .is_some_and(|f| discoverable(&f.schema, names)),
            _ => false,
        };
        tree::fill_row(&record, &self.flatten, may_discover, true, fields, rows);
        Ok(())
    }
}

/// The record's bytes as a reader that notes whether any read asked for
/// more than was left.
struct EofWatch<'a> {
    rest: &'a [u8],
    short: bool,
}

impl std::io::Read for EofWatch<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.len() > self.rest.len() {
            self.short = true;
        }
        self.rest.read(buf)
    }
}

fn parse_schema(schema: &Json, path: &str) -> Result<Schema, SpecError> {
    let parsed = match schema {
        Json::String(text) => Schema::parse_str(text),
        other => Schema::parse(other),
    };
    parsed.map_err(|e| (path.to_string(), format!("is not a valid Avro schema: {e}")))
}

/// A flattenSpec for Avro: JSONPath and root fields (Druid's Avro
/// flattener has no jq).
pub(crate) fn compile_flatten(spec: Option<&Json>, path: &str) -> Result<FlattenSpec, SpecError> {
    let Some(spec) = spec.filter(|s| !s.is_null()) else {
        return Ok(tree::default_flatten());
    };
    if let Some(list) = spec.get("fields").and_then(Json::as_array) {
        for (i, f) in list.iter().enumerate() {
            if f.get("type").and_then(Json::as_str) == Some("jq") {
                return Err((
                    format!("{path}.fields[{i}].type"),
                    "jq is not supported for Avro records (as in Druid): use a path".into(),
                ));
            }
        }
    }
    FlattenSpec::compile(spec, path)
}

/// A named-type reference followed to its schema.
fn resolve<'s>(schema: &'s Schema, names: &'s NamesRef<'s>) -> &'s Schema {
    match schema {
        Schema::Ref { name } => names.get(name).copied().unwrap_or(schema),
        other => other,
    }
}

/// Druid's discoverRootFields: a primitive (by its Avro type, logical
/// types by their underlying one), an array of primitives, or a union of
/// null and either.
fn discoverable(schema: &Schema, names: &NamesRef<'_>) -> bool {
    let schema = resolve(schema, names);
    if primitive(schema) || primitive_array(schema, names) {
        return true;
    }
    match schema {
        Schema::Union(u) => match u.variants() {
            [a, b] => {
                let (a, b) = (resolve(a, names), resolve(b, names));
                (matches!(a, Schema::Null) && (primitive(b) || primitive_array(b, names)))
                    || (matches!(b, Schema::Null) && (primitive(a) || primitive_array(a, names)))
            }
            _ => false,
        },
        _ => false,
    }
}

fn primitive(schema: &Schema) -> bool {
    use apache_avro::schema::{InnerDecimalSchema, UuidSchema};
    match schema {
        Schema::String
        | Schema::Bytes
        | Schema::Int
        | Schema::Long
        | Schema::Float
        | Schema::Double
        | Schema::BigDecimal
        | Schema::Date
        | Schema::TimeMillis
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => true,
        Schema::Decimal(d) => matches!(d.inner, InnerDecimalSchema::Bytes),
        Schema::Uuid(u) => matches!(u, UuidSchema::String | UuidSchema::Bytes),
        _ => false,
    }
}

fn primitive_array(schema: &Schema, names: &NamesRef<'_>) -> bool {
    matches!(schema, Schema::Array(a) if primitive(resolve(&a.items, names)))
}

/// An Avro value as the JSON-shaped tree the flattenSpec reads, walked
/// with its schema (a decimal's scale is in the schema only).
fn to_json(
    value: Avro,
    schema: &Schema,
    names: &NamesRef<'_>,
    binary_as_string: bool,
) -> Result<Json, String> {
    let schema = resolve(schema, names);
    let bytes = |b: Vec<u8>| {
        if binary_as_string {
            Json::String(String::from_utf8_lossy(&b).into_owned())
        } else {
            Json::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
    };
    Ok(match value {
        Avro::Null => Json::Null,
        Avro::Boolean(b) => Json::Bool(b),
        Avro::Int(n) | Avro::TimeMillis(n) => Json::from(n),
        Avro::Date(days) => Json::from(i64::from(days) * 86_400_000),
        Avro::Long(n)
        | Avro::TimeMicros(n)
        | Avro::TimestampMillis(n)
        | Avro::TimestampMicros(n)
        | Avro::TimestampNanos(n)
        | Avro::LocalTimestampMillis(n)
        | Avro::LocalTimestampMicros(n)
        | Avro::LocalTimestampNanos(n) => Json::from(n),
        Avro::Float(x) => json_double(f64::from(x)),
        Avro::Double(x) => json_double(x),
        Avro::Bytes(b) | Avro::Fixed(_, b) => bytes(b),
        Avro::String(s) | Avro::Enum(_, s) => Json::String(s),
        Avro::Uuid(u) => Json::String(u.as_hyphenated().to_string()),
        Avro::Duration(d) => bytes(<[u8; 12]>::from(d).to_vec()),
        Avro::Decimal(d) => {
            let Schema::Decimal(ds) = schema else {
                return Err("a decimal value without a decimal schema".into());
            };
            let unscaled: Vec<u8> = Vec::try_from(&d).map_err(|e| format!("decimal: {e}"))?;
            decimal_to_double(&unscaled, ds.scale)?
        }
        Avro::BigDecimal(d) => {
            json_double(d.to_string().parse::<f64>().map_err(|e| e.to_string())?)
        }
        Avro::Union(branch, inner) => {
            let Schema::Union(u) = schema else {
                return Err("a union value without a union schema".into());
            };
            let branch_schema = u
                .variants()
                .get(branch as usize)
                .ok_or_else(|| format!("union branch {branch} is not in the schema"))?;
            to_json(*inner, branch_schema, names, binary_as_string)?
        }
        Avro::Array(items) => {
            let Schema::Array(a) = schema else {
                return Err("an array value without an array schema".into());
            };
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(to_json(item, &a.items, names, binary_as_string)?);
            }
            Json::Array(out)
        }
        Avro::Map(entries) => {
            let Schema::Map(m) = schema else {
                return Err("a map value without a map schema".into());
            };
            // Sorted: the decoder's hash map has no order of its own.
            let sorted: BTreeMap<String, Avro> = entries.into_iter().collect();
            let mut out = serde_json::Map::new();
            for (k, v) in sorted {
                out.insert(k, to_json(v, &m.types, names, binary_as_string)?);
            }
            Json::Object(out)
        }
        Avro::Record(entries) => {
            let Schema::Record(r) = schema else {
                return Err("a record value without a record schema".into());
            };
            let mut out = serde_json::Map::new();
            for ((name, v), field) in entries.into_iter().zip(&r.fields) {
                out.insert(name, to_json(v, &field.schema, names, binary_as_string)?);
            }
            Json::Object(out)
        }
    })
}

/// A decimal's two's-complement big-endian unscaled value over 10^scale,
/// rounded once to the nearest double (BigDecimal.doubleValue).
fn decimal_to_double(unscaled: &[u8], scale: usize) -> Result<Json, String> {
    if unscaled.len() > 16 {
        return Err(format!(
            "a decimal of {} bytes is wider than 128 bits",
            unscaled.len()
        ));
    }
    if unscaled.is_empty() {
        return Ok(json_double(0.0));
    }
    let fill = if unscaled[0] & 0x80 != 0 { 0xFF } else { 0 };
    let mut wide = [fill; 16];
    wide[16 - unscaled.len()..].copy_from_slice(unscaled);
    let n = i128::from_be_bytes(wide);
    let x: f64 = format!("{n}e-{scale}")
        .parse()
        .map_err(|e| format!("decimal: {e}"))?;
    Ok(json_double(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Value;
    use serde_json::json;

    fn format(schema: Json, flatten: Option<Json>, binary_as_string: bool) -> AvroFormat {
        AvroFormat::compile(
            Some(&json!({"type": "schema_inline", "schema": schema})),
            flatten.as_ref(),
            binary_as_string,
            false,
            "ioConfig.inputFormat",
        )
        .unwrap()
    }

    /// Encode with the crate's own writer (the integration tests use
    /// fastavro's).
    fn encode(schema: &Schema, value: Avro) -> Vec<u8> {
        apache_avro::writer::datum::GenericDatumWriter::builder(schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap()
    }

    fn schema_of(f: &AvroFormat) -> &Schema {
        match &f.schemas {
            Schemas::Inline(s) => s,
            _ => unreachable!(),
        }
    }

    #[test]
    fn values_map_as_druid_maps_them() {
        let f = format(
            json!({"type": "record", "name": "R", "fields": [
                {"name": "s", "type": "string"},
                {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
                {"name": "u", "type": ["null", "long"]},
                {"name": "b", "type": "bytes"},
                {"name": "d", "type": {"type": "int", "logicalType": "date"}},
                {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
                {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                {"name": "arr", "type": {"type": "array", "items": ["null", "string"]}},
                {"name": "m", "type": {"type": "map", "values": "int"}},
                {"name": "f", "type": "float"},
                {"name": "flag", "type": "boolean"}
            ]}),
            Some(json!({"fields": [
                {"type": "path", "name": "mx", "expr": "$.m.x"},
                {"type": "path", "name": "arr1", "expr": "$.arr[1]"}
            ]})),
            false,
        );
        let record = Avro::Record(vec![
            ("s".into(), Avro::String("hé".into())),
            ("e".into(), Avro::Enum(1, "B".into())),
            ("u".into(), Avro::Union(1, Box::new(Avro::Long(7)))),
            ("b".into(), Avro::Bytes(vec![1, 2, 3])),
            ("d".into(), Avro::Date(1)),
            ("dec".into(), Avro::Decimal(vec![0xFF, 0x85].into())),
            ("ts".into(), Avro::TimestampMillis(1_000)),
            (
                "arr".into(),
                Avro::Array(vec![
                    Avro::Union(1, Box::new(Avro::String("a".into()))),
                    Avro::Union(0, Box::new(Avro::Null)),
                    Avro::Union(1, Box::new(Avro::String("c".into()))),
                ]),
            ),
            (
                "m".into(),
                Avro::Map([("x".to_string(), Avro::Int(5))].into_iter().collect()),
            ),
            ("f".into(), Avro::Float(1.5)),
            ("flag".into(), Avro::Boolean(true)),
        ]);
        let data = encode(schema_of(&f), record);
        let mut fields = FieldTable::new(true, false, &[]);
        // Named by the task: read whatever their type.
        let flag = fields.slot("flag");
        let e = fields.slot("e");
        let arr = fields.slot("arr");
        let mut rows = RowBuffer::new();
        f.parse(&data, &mut fields, &mut None, &mut rows).unwrap();
        // Discovery takes only Druid's primitive field types: not the
        // array of a union, the map, the enum or the boolean.
        let discovered: Vec<String> = fields
            .discovered_since(0)
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        assert_eq!(
            discovered,
            ["mx", "arr1", "s", "u", "b", "d", "dec", "ts", "f"]
        );
        let row = rows.rows()[0].clone();
        let mut get = |n: &str| {
            let s = fields.column_slot(n).unwrap();
            row.get(s).cloned().unwrap_or(Value::Null)
        };
        assert_eq!(get("s"), Value::Str("hé".into()));
        assert_eq!(get("u"), Value::Long(7));
        assert_eq!(get("b"), Value::Str("AQID".into()));
        assert_eq!(get("d"), Value::Long(86_400_000));
        assert_eq!(get("dec"), Value::Double(-1.23));
        assert_eq!(get("ts"), Value::Long(1_000));
        // A path indexes the array as written, nulls included.
        assert_eq!(get("arr1"), Value::Null);
        assert_eq!(get("mx"), Value::Long(5));
        assert_eq!(get("f"), Value::Double(1.5));
        assert_eq!(row[e], Value::Str("B".into()));
        assert_eq!(row[flag], Value::Bool(true));
        // Nulls are dropped from lists, as Druid's transformValue does.
        assert_eq!(
            row[arr],
            Value::List(vec![Value::Str("a".into()), Value::Str("c".into())])
        );
    }

    #[test]
    fn binary_as_string_reads_bytes_as_text() {
        let f = format(
            json!({"type": "record", "name": "R", "fields": [
                {"name": "b", "type": "bytes"},
                {"name": "x", "type": {"type": "fixed", "name": "F", "size": 2}}
            ]}),
            None,
            true,
        );
        let data = encode(
            schema_of(&f),
            Avro::Record(vec![
                ("b".into(), Avro::Bytes(b"abc".to_vec())),
                ("x".into(), Avro::Fixed(2, b"hi".to_vec())),
            ]),
        );
        let mut fields = FieldTable::new(false, false, &[]);
        let (b, x) = (fields.slot("b"), fields.slot("x"));
        let mut rows = RowBuffer::new();
        f.parse(&data, &mut fields, &mut None, &mut rows).unwrap();
        assert_eq!(rows.rows()[0][b], Value::Str("abc".into()));
        assert_eq!(rows.rows()[0][x], Value::Str("hi".into()));
    }

    /// multiple_schemas_inline: byte 1, a big-endian schema id, the datum.
    #[test]
    fn several_schemas_are_chosen_by_the_prefix() {
        let f = AvroFormat::compile(
            Some(&json!({"type": "multiple_schemas_inline", "schemas": {
                "7": {"type": "record", "name": "A", "fields": [{"name": "a", "type": "string"}]},
                "300": {"type": "record", "name": "B", "fields": [{"name": "a", "type": "long"}]}
            }})),
            None,
            false,
            false,
            "ioConfig.inputFormat",
        )
        .unwrap();
        let Schemas::ById(by_id) = &f.schemas else {
            panic!("by id")
        };
        let mut fields = FieldTable::new(false, false, &[]);
        let a = fields.slot("a");
        let mut rows = RowBuffer::new();
        let mut data = vec![1, 0, 0, 1, 44];
        data.extend(encode(
            &by_id[&300],
            Avro::Record(vec![("a".into(), Avro::Long(-3))]),
        ));
        f.parse(&data, &mut fields, &mut None, &mut rows).unwrap();
        assert_eq!(rows.rows()[0][a], Value::Long(-3));
        let mut data = vec![1, 0, 0, 0, 7];
        data.extend(encode(
            &by_id[&7],
            Avro::Record(vec![("a".into(), Avro::String("x".into()))]),
        ));
        f.parse(&data, &mut fields, &mut None, &mut rows).unwrap();
        assert_eq!(rows.rows()[0][a], Value::Str("x".into()));
        for (bad, why) in [
            (vec![1, 0, 0], "at least 5 bytes"),
            (vec![2, 0, 0, 0, 7, 0], "arbitrary version [2]"),
            (vec![1, 0, 0, 0, 8, 0], "schema for id [8]"),
        ] {
            let mut rows = RowBuffer::new();
            let err = f
                .parse(&bad, &mut fields, &mut None, &mut rows)
                .unwrap_err();
            assert!(err.0.contains(why), "{}", err.0);
        }
    }

    #[test]
    fn unsupported_decoders_and_options_are_refused_by_name() {
        let refuse = |decoder: Json, flatten: Option<Json>, unions: bool| {
            AvroFormat::compile(Some(&decoder), flatten.as_ref(), false, unions, "f").unwrap_err()
        };
        let (path, msg) = refuse(json!({"type": "schema_registry", "url": "x"}), None, false);
        assert_eq!(path, "f.avroBytesDecoder.url");
        assert!(msg.contains("is not a URL"), "{msg}");
        let (path, msg) = refuse(json!({"type": "schema_repo"}), None, false);
        assert_eq!(path, "f.avroBytesDecoder.type");
        assert!(msg.contains("schema_repo"), "{msg}");
        let inline = json!({"type": "schema_inline", "schema": {"type": "record", "name": "R", "fields": []}});
        let (path, _) = refuse(inline.clone(), None, true);
        assert_eq!(path, "f.extractUnionsByType");
        let (path, msg) = refuse(
            inline,
            Some(json!({"fields": [{"type": "jq", "name": "x", "expr": ".a"}]})),
            false,
        );
        assert_eq!(path, "f.flattenSpec.fields[0].type");
        assert!(msg.contains("jq"), "{msg}");
        let (path, msg) = refuse(
            json!({"type": "schema_inline", "schema": {"type": "nope"}}),
            None,
            false,
        );
        assert_eq!(path, "f.avroBytesDecoder.schema");
        assert!(msg.contains("not a valid Avro schema"), "{msg}");
    }

    #[test]
    fn decimals_round_once() {
        assert_eq!(decimal_to_double(&[0x04, 0xD2], 2).unwrap(), json!(12.34));
        assert_eq!(decimal_to_double(&[0xFF], 0).unwrap(), json!(-1.0));
        assert_eq!(decimal_to_double(&[], 3).unwrap(), json!(0.0));
        assert!(decimal_to_double(&[1; 17], 0).is_err());
    }
}
