//! `protobuf` records: each record one message of the type the task names,
//! read dynamically (prost-reflect) from a compiled descriptor set (`file`:
//! `protoc --descriptor_set_out`; `inline`: the same bytes in base64), or
//! from a schema registry (`schema_registry`: Confluent's wire format, the
//! registry's .proto text compiled by protox, the message picked by the
//! record's message indexes).
//!
//! Values map as Druid's ProtobufConverter maps them: only fields that are
//! set (a proto3 field without presence holding its default is absent),
//! keyed by their JSON name (lowerCamelCase unless `json_name` says
//! otherwise); enums by their value's name; bytes as base64 (what Druid
//! makes of a `byte[]` dimension); nested messages and maps as nested
//! values for flattenSpec paths; repeated fields as lists;
//! google.protobuf.Timestamp as RFC 3339 text (Timestamps.toString),
//! Duration as seconds text ("1.5s"), the wrapper types as their value,
//! Struct/Value/ListValue as the JSON they stand for. Without a flattenSpec
//! path, a new field becomes a dimension unless it is a list or a nested
//! value (Druid's ProtobufFlattenerMaker).

use super::flatten::FlattenSpec;
use super::registry::{self, Registry};
use super::tree::{self, json_double};
use super::{FieldTable, ParseError, RowBuffer};
use base64::Engine;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, FileDescriptor, Kind, MapKey,
    MessageDescriptor, ReflectMessage, Value as Proto,
};
use serde_json::Value as Json;
use std::sync::Arc;

/// A compiled `protobuf` inputFormat.
#[derive(Debug, Clone)]
pub struct ProtobufFormat {
    /// The message type every record is (`file`, `inline`); None with
    /// `schema_registry`, where each record's schema id and message
    /// indexes say.
    pub message: Option<MessageDescriptor>,
    pub flatten: FlattenSpec,
    /// Set when the message shape allows reading it directly.
    direct: Option<super::protobuf_direct::DirectPlan>,
    /// `schema_registry`: the .proto files by schema id, compiled.
    registry: Option<Arc<Registry<FileDescriptor>>>,
    /// The protoBytesDecoder as written (for equality).
    source: Json,
}

impl PartialEq for ProtobufFormat {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
            && self.message == other.message
            && self.flatten == other.flatten
    }
}

/// An error at a JSON path of the task.
type SpecError = (String, String);

impl ProtobufFormat {
    /// Compile `protoBytesDecoder` (at `path`) and the flattenSpec; the
    /// descriptor file is read here, once.
    pub fn compile(
        decoder: Option<&Json>,
        flatten_spec: Option<&Json>,
        path: &str,
    ) -> Result<ProtobufFormat, SpecError> {
        let at = |k: &str| format!("{path}.{k}");
        let decoder = decoder
            .filter(|d| !d.is_null())
            .ok_or_else(|| (at("protoBytesDecoder"), "is required".to_string()))?;
        let kind = decoder.get("type").and_then(Json::as_str).unwrap_or("");
        let bytes = match kind {
            "file" => {
                let field = at("protoBytesDecoder.descriptor");
                let url = decoder
                    .get("descriptor")
                    .and_then(Json::as_str)
                    .ok_or_else(|| (field.clone(), "is required".to_string()))?;
                let file = tree::local_path(url).map_err(|m| (field.clone(), m))?;
                std::fs::read(&file)
                    .map_err(|e| (field.clone(), format!("{}: {e}", file.display())))?
            }
            "inline" => {
                let field = at("protoBytesDecoder.descriptorString");
                let text = decoder
                    .get("descriptorString")
                    .and_then(Json::as_str)
                    .ok_or_else(|| (field.clone(), "is required".to_string()))?;
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|e| (field.clone(), format!("is not base64: {e}")))?
            }
            "schema_registry" => {
                let registry = Registry::from_spec(decoder, &at("protoBytesDecoder"))?;
                return Ok(ProtobufFormat {
                    message: None,
                    flatten: compile_flatten(flatten_spec, path)?,
                    direct: None,
                    registry: Some(Arc::new(registry)),
                    source: decoder.clone(),
                });
            }
            other => {
                return Err((
                    at("protoBytesDecoder.type"),
                    format!(
                        "{other:?} is not a protoBytesDecoder type (file, inline, schema_registry)"
                    ),
                ));
            }
        };
        let descriptor_at = if kind == "file" {
            at("protoBytesDecoder.descriptor")
        } else {
            at("protoBytesDecoder.descriptorString")
        };
        let pool = DescriptorPool::decode(bytes.as_slice()).map_err(|e| {
            (
                descriptor_at.clone(),
                format!("is not a compiled descriptor set (protoc --descriptor_set_out): {e}"),
            )
        })?;
        let message = pick_message(
            &pool,
            decoder.get("protoMessageType").and_then(Json::as_str),
        )
        .map_err(|m| (at("protoBytesDecoder.protoMessageType"), m))?;
        let flatten = compile_flatten(flatten_spec, path)?;
        let direct = if flatten.is_discovery_only() {
            super::protobuf_direct::DirectPlan::for_message(&message)
        } else {
            None
        };
        Ok(ProtobufFormat {
            message: Some(message),
            flatten,
            direct,
            registry: None,
            source: decoder.clone(),
        })
    }

    /// The row of one record.
    pub fn parse<'a>(
        &self,
        data: &'a [u8],
        fields: &mut FieldTable,
        slots: &mut super::protobuf_direct::DirectSlots,
        rows: &mut RowBuffer<'a>,
    ) -> Result<(), ParseError> {
        rows.clear();
        if let Some(plan) = &self.direct {
            if plan.parse(data, fields, slots, rows).is_ok() {
                return Ok(());
            }
            rows.clear();
        }
        let (descriptor, data) = match (&self.message, &self.registry) {
            (Some(m), _) => (m.clone(), data),
            (None, Some(registry)) => registry_message(registry, data)?,
            (None, None) => unreachable!("a protobuf format has a message or a registry"),
        };
        let message = DynamicMessage::decode(descriptor, data)
            .map_err(|e| ParseError::new(format!("Fail to decode protobuf message: {e}")))?;
        let record = message_to_json(&message)
            .map_err(|e| ParseError::new(format!("Protobuf message could not be parsed: {e}")))?;
        let discoverable = |_: &str, v: &Json| !v.is_array() && !v.is_object();
        tree::fill_row(&record, &self.flatten, discoverable, false, fields, rows);
        Ok(())
    }
}

fn compile_flatten(spec: Option<&Json>, path: &str) -> Result<FlattenSpec, SpecError> {
    match spec.filter(|s| !s.is_null()) {
        None => Ok(tree::default_flatten()),
        Some(spec) => FlattenSpec::compile(spec, &format!("{path}.flattenSpec")),
    }
}

/// The name the registry's schema text is compiled under.
const REGISTRY_FILE: &str = "schema-registry.proto";

/// A record in Confluent's wire format: its message type (the schema id's
/// .proto, fetched once, and the message indexes after the id) and the
/// message's bytes.
fn registry_message<'a>(
    registry: &Registry<FileDescriptor>,
    data: &'a [u8],
) -> Result<(MessageDescriptor, &'a [u8]), ParseError> {
    let (id, rest) = registry::split_wire(data, "protobuf")?;
    let (indexes, body) = message_indexes(rest).ok_or_else(|| {
        ParseError::new(
            "Fail to decode protobuf message: bad message indexes after the schema id".into(),
        )
    })?;
    let file = registry.get(id, "Protobuf", |reply| {
        if reply.schema_type != Some("PROTOBUF") {
            return Err(format!(
                "schema id[{id}] is a {} schema, not a Protobuf one",
                reply.schema_type.unwrap_or("AVRO")
            ));
        }
        compile_proto(reply.schema)
    })?;
    let mut message = file.messages().nth(indexes[0]);
    for &i in &indexes[1..] {
        message = message.and_then(|m| m.child_messages().nth(i));
    }
    let message = message.ok_or_else(|| {
        ParseError::new(format!(
            "Fail to decode protobuf message: schema id[{id}] has no message at indexes {indexes:?}"
        ))
    })?;
    Ok((message, body))
}

/// Confluent's message indexes: a zigzag varint count, then that many
/// zigzag varint indexes (the first into the file's messages, the others
/// into nested ones); a count of 0 means the first message, [0].
fn message_indexes(data: &[u8]) -> Option<(Vec<usize>, &[u8])> {
    fn zigzag(data: &mut &[u8]) -> Option<i64> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = data.split_first()?;
            *data = rest;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some((n >> 1) as i64 ^ -((n & 1) as i64));
            }
        }
        None
    }
    let mut rest = data;
    let count = zigzag(&mut rest)?;
    if count == 0 {
        return Some((vec![0], rest));
    }
    // A message can be nested only so deep; a large count is garbage.
    if !(1..=100).contains(&count) {
        return None;
    }
    let mut indexes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        indexes.push(usize::try_from(zigzag(&mut rest)?).ok()?);
    }
    Some((indexes, rest))
}

/// The registry's .proto text compiled (its imports may be only the
/// well-known google/protobuf ones).
fn compile_proto(text: &str) -> Result<FileDescriptor, String> {
    use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
    struct Text(File);
    impl FileResolver for Text {
        fn open_file(&self, name: &str) -> Result<File, protox::Error> {
            if name == REGISTRY_FILE {
                Ok(File::from_file_descriptor_proto(
                    self.0.file_descriptor_proto().clone(),
                ))
            } else {
                Err(protox::Error::file_not_found(name))
            }
        }
    }
    let file = File::from_source(REGISTRY_FILE, text)
        .map_err(|e| format!("the .proto text does not parse: {e}"))?;
    let mut resolver = ChainFileResolver::new();
    resolver.add(Text(file));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler
        .open_file(REGISTRY_FILE)
        .map_err(|e| format!("the .proto text does not compile: {e}"))?;
    compiler
        .descriptor_pool()
        .get_file_by_name(REGISTRY_FILE)
        .ok_or_else(|| "the .proto text compiled to nothing".to_string())
}

/// The message type by its full name or, when unambiguous, its short
/// name; without one, the first message of the set (as Druid does).
fn pick_message(pool: &DescriptorPool, name: Option<&str>) -> Result<MessageDescriptor, String> {
    let Some(name) = name else {
        return pool
            .all_messages()
            .next()
            .ok_or_else(|| "the descriptor set holds no message type".to_string());
    };
    let name = name.trim_start_matches('.');
    if let Some(m) = pool.get_message_by_name(name) {
        return Ok(m);
    }
    let short: Vec<MessageDescriptor> = pool.all_messages().filter(|m| m.name() == name).collect();
    match short.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "message type {name:?} is not in the descriptor set (it has: {})",
            pool.all_messages()
                .map(|m| m.full_name().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Err(format!(
            "message type {name:?} names several messages: give the full name"
        )),
    }
}

fn message_to_json(message: &DynamicMessage) -> Result<Json, String> {
    if let Some(special) = well_known(message)? {
        return Ok(special);
    }
    let mut out = serde_json::Map::new();
    for (field, value) in message.fields() {
        out.insert(field.json_name().to_string(), field_to_json(&field, value)?);
    }
    Ok(Json::Object(out))
}

fn field_to_json(field: &FieldDescriptor, value: &Proto) -> Result<Json, String> {
    match value {
        Proto::List(items) => items
            .iter()
            .map(|v| single_to_json(field, v))
            .collect::<Result<Vec<_>, _>>()
            .map(Json::Array),
        Proto::Map(entries) => {
            let Kind::Message(entry) = field.kind() else {
                return Err(format!("map field {} has no entry type", field.name()));
            };
            let value_field = entry.map_entry_value_field();
            // Sorted by key: the decoder's map has no order of its own.
            let mut sorted: Vec<(&MapKey, &Proto)> = entries.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            let mut out = serde_json::Map::new();
            for (k, v) in sorted {
                out.insert(map_key(k), single_to_json(&value_field, v)?);
            }
            Ok(Json::Object(out))
        }
        single => single_to_json(field, single),
    }
}

fn map_key(k: &MapKey) -> String {
    match k {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn single_to_json(field: &FieldDescriptor, value: &Proto) -> Result<Json, String> {
    Ok(match value {
        Proto::Bool(b) => Json::Bool(*b),
        Proto::I32(n) => Json::from(*n),
        Proto::I64(n) => Json::from(*n),
        // Java has no unsigned types: Druid sees the same bits signed.
        Proto::U32(n) => Json::from(*n as i32),
        Proto::U64(n) => Json::from(*n as i64),
        Proto::F32(x) => json_double(f64::from(*x)),
        Proto::F64(x) => json_double(*x),
        Proto::String(s) => Json::String(s.clone()),
        Proto::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Proto::EnumNumber(n) => match field.kind() {
            Kind::Enum(e) if e.full_name() == "google.protobuf.NullValue" => Json::Null,
            Kind::Enum(e) => match e.get_value(*n) {
                Some(v) => Json::String(v.name().to_string()),
                // What Java's DynamicMessage names a value its enum lacks.
                None => Json::String(format!("UNKNOWN_ENUM_VALUE_{}_{n}", e.name())),
            },
            _ => Json::from(*n),
        },
        Proto::Message(m) => message_to_json(m)?,
        Proto::List(_) | Proto::Map(_) => field_to_json(field, value)?,
    })
}

/// Druid's special cases for the well-known types, None for any other
/// message.
fn well_known(message: &DynamicMessage) -> Result<Option<Json>, String> {
    let desc = message.descriptor();
    let name = desc.full_name();
    let field = |n: &str| desc.get_field_by_name(n);
    let get = |n: &str| -> Option<(FieldDescriptor, Proto)> {
        let f = field(n)?;
        let v = message.get_field(&f).into_owned();
        Some((f, v))
    };
    let number = |n: &str| -> i64 {
        match get(n).map(|(_, v)| v) {
            Some(Proto::I64(x)) => x,
            Some(Proto::I32(x)) => i64::from(x),
            _ => 0,
        }
    };
    Ok(Some(match name {
        "google.protobuf.BoolValue"
        | "google.protobuf.Int32Value"
        | "google.protobuf.UInt32Value"
        | "google.protobuf.Int64Value"
        | "google.protobuf.UInt64Value"
        | "google.protobuf.StringValue"
        | "google.protobuf.BytesValue"
        | "google.protobuf.FloatValue"
        | "google.protobuf.DoubleValue" => {
            let (f, v) = get("value").ok_or("Invalid Wrapper type.")?;
            single_to_json(&f, &v)?
        }
        "google.protobuf.Timestamp" => {
            Json::String(timestamp_text(number("seconds"), number("nanos"))?)
        }
        "google.protobuf.Duration" => {
            Json::String(duration_text(number("seconds"), number("nanos"))?)
        }
        "google.protobuf.Struct" => {
            let (f, v) = get("fields").ok_or("Invalid Struct type.")?;
            field_to_json(&f, &v)?
        }
        "google.protobuf.ListValue" => {
            let (f, v) = get("values").ok_or("Invalid ListValue type.")?;
            field_to_json(&f, &v)?
        }
        "google.protobuf.Value" => {
            let mut set = message.fields();
            match (set.next(), set.next()) {
                (None, _) => Json::Null,
                (Some((f, v)), None) => single_to_json(&f, v)?,
                _ => return Err("Invalid Value type.".into()),
            }
        }
        "google.protobuf.Any" | "google.protobuf.FieldMask" => {
            return Err(format!("{name} fields are not supported yet"));
        }
        _ => return Ok(None),
    }))
}

/// Timestamps.toString: RFC 3339 in UTC with 0, 3, 6 or 9 fraction digits.
pub(super) fn timestamp_text(seconds: i64, nanos: i64) -> Result<String, String> {
    const MIN: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if !(MIN..=MAX).contains(&seconds) || !(0..1_000_000_000).contains(&nanos) {
        return Err(format!(
            "Timestamp is not valid: seconds {seconds}, nanos {nanos}"
        ));
    }
    // By hand, not chrono's strftime: this runs once per record on the
    // direct path, where strftime was ~15% of a flights replay (perf).
    let (year, month, day) = crate::spec::time::civil_from_days(seconds.div_euclid(86_400));
    let second_of_day = seconds.rem_euclid(86_400);
    let mut out = String::with_capacity(30);
    let mut digits = |n: i64, width: u32, then: char| {
        for place in (0..width).rev() {
            out.push(char::from(b'0' + (n / 10i64.pow(place) % 10) as u8));
        }
        out.push(then);
    };
    digits(year, 4, '-');
    digits(i64::from(month), 2, '-');
    digits(i64::from(day), 2, 'T');
    digits(second_of_day / 3600, 2, ':');
    digits(second_of_day / 60 % 60, 2, ':');
    digits(second_of_day % 60, 2, '.');
    out.pop(); // the '.' goes back in with a fraction
    out.push_str(&fraction(nanos));
    out.push('Z');
    Ok(out)
}

/// Durations.toString: signed seconds with 0, 3, 6 or 9 fraction digits
/// and "s".
fn duration_text(seconds: i64, nanos: i64) -> Result<String, String> {
    const MAX: i64 = 315_576_000_000;
    let mixed = (seconds < 0 && nanos > 0) || (seconds > 0 && nanos < 0);
    if !(-MAX..=MAX).contains(&seconds) || nanos.abs() >= 1_000_000_000 || mixed {
        return Err(format!(
            "Duration is not valid: seconds {seconds}, nanos {nanos}"
        ));
    }
    let sign = if seconds < 0 || nanos < 0 { "-" } else { "" };
    Ok(format!(
        "{sign}{}{}s",
        seconds.unsigned_abs(),
        fraction(nanos.abs())
    ))
}

fn fraction(nanos: i64) -> String {
    if nanos == 0 {
        String::new()
    } else if nanos % 1_000_000 == 0 {
        format!(".{:03}", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!(".{:06}", nanos / 1_000)
    } else {
        format!(".{nanos:09}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Value;
    use prost_reflect::prost::Message;
    use prost_reflect::prost_types::{
        DescriptorProto, EnumDescriptorProto, EnumValueDescriptorProto, FieldDescriptorProto,
        FileDescriptorProto, FileDescriptorSet, field_descriptor_proto::Label,
        field_descriptor_proto::Type,
    };

    fn field(
        name: &str,
        number: i32,
        kind: Type,
        label: Label,
        type_name: &str,
    ) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            r#type: Some(kind as i32),
            label: Some(label as i32),
            type_name: (!type_name.is_empty()).then(|| type_name.into()),
            ..Default::default()
        }
    }

    /// A proto3 file: enum Color {RED, BLUE}; message Inner {string name};
    /// message Msg {int64 n; int64 zero; Color color; Inner inner;
    /// repeated string tags; bytes raw; string snake_case}.
    fn descriptor_set() -> Vec<u8> {
        let one = Label::Optional;
        let file = FileDescriptorProto {
            name: Some("t.proto".into()),
            package: Some("t".into()),
            syntax: Some("proto3".into()),
            enum_type: vec![EnumDescriptorProto {
                name: Some("Color".into()),
                value: vec![
                    EnumValueDescriptorProto {
                        name: Some("RED".into()),
                        number: Some(0),
                        ..Default::default()
                    },
                    EnumValueDescriptorProto {
                        name: Some("BLUE".into()),
                        number: Some(1),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            message_type: vec![
                DescriptorProto {
                    name: Some("Inner".into()),
                    field: vec![field("name", 1, Type::String, one, "")],
                    ..Default::default()
                },
                DescriptorProto {
                    name: Some("Msg".into()),
                    field: vec![
                        field("n", 1, Type::Int64, one, ""),
                        field("zero", 2, Type::Int64, one, ""),
                        field("color", 3, Type::Enum, one, ".t.Color"),
                        field("inner", 4, Type::Message, one, ".t.Inner"),
                        field("tags", 5, Type::String, Label::Repeated, ""),
                        field("raw", 6, Type::Bytes, one, ""),
                        field("snake_case", 7, Type::String, one, ""),
                    ],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        FileDescriptorSet { file: vec![file] }.encode_to_vec()
    }

    /// Druid's ProtobufConverter mapping: set fields only, JSON names,
    /// enum names, nested messages for paths, bytes as base64; discovery
    /// skips lists and nested values.
    #[test]
    fn messages_map_as_druid_maps_them() {
        let set = descriptor_set();
        let decoder = serde_json::json!({"type": "inline",
            "descriptorString": base64::engine::general_purpose::STANDARD.encode(&set),
            "protoMessageType": "Msg"});
        let flatten = serde_json::json!({"fields": [
            {"type": "path", "name": "inner_name", "expr": "$.inner.name"},
            {"type": "jq", "name": "tag1", "expr": ".tags[1]"}
        ]});
        let f = ProtobufFormat::compile(Some(&decoder), Some(&flatten), "f").unwrap();
        let message = f.message.clone().unwrap();
        assert_eq!(message.full_name(), "t.Msg");
        let mut m = DynamicMessage::new(message.clone());
        m.set_field_by_name("n", Proto::I64(-5));
        m.set_field_by_name("zero", Proto::I64(0));
        m.set_field_by_name("color", Proto::EnumNumber(1));
        let mut inner = DynamicMessage::new(
            message
                .parent_pool()
                .get_message_by_name("t.Inner")
                .unwrap(),
        );
        inner.set_field_by_name("name", Proto::String("x".into()));
        m.set_field_by_name("inner", Proto::Message(inner));
        m.set_field_by_name(
            "tags",
            Proto::List(vec![Proto::String("a".into()), Proto::String("b".into())]),
        );
        m.set_field_by_name("raw", Proto::Bytes(vec![1, 2, 3].into()));
        m.set_field_by_name("snake_case", Proto::String("s".into()));
        let data = m.encode_to_vec();

        let mut fields = FieldTable::new(true, false, &[]);
        let zero = fields.slot("zero");
        let tags = fields.slot("tags");
        let mut rows = RowBuffer::new();
        f.parse(&data, &mut fields, &mut Vec::new(), &mut rows)
            .unwrap();
        let discovered: Vec<String> = fields
            .discovered_since(0)
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        assert_eq!(
            discovered,
            ["inner_name", "tag1", "n", "color", "raw", "snakeCase"]
        );
        let row = rows.rows()[0].clone();
        let mut get = |n: &str| {
            let s = fields.column_slot(n).unwrap();
            row.get(s).cloned().unwrap_or(Value::Null)
        };
        assert_eq!(get("n"), Value::Long(-5));
        assert_eq!(get("color"), Value::Str("BLUE".into()));
        assert_eq!(get("raw"), Value::Str("AQID".into()));
        assert_eq!(get("snakeCase"), Value::Str("s".into()));
        assert_eq!(get("inner_name"), Value::Str("x".into()));
        assert_eq!(get("tag1"), Value::Str("b".into()));
        // A proto3 field without presence holding its default is absent.
        assert_eq!(row[zero], Value::Null);
        assert_eq!(
            row[tags],
            Value::List(vec![Value::Str("a".into()), Value::Str("b".into())])
        );

        for (bad, why) in [
            (vec![0x08], "Fail to decode protobuf message"),
            (vec![0x0A, 0x05, 0x01], "Fail to decode protobuf message"),
        ] {
            let mut rows = RowBuffer::new();
            let err = f
                .parse(&bad, &mut fields, &mut Vec::new(), &mut rows)
                .unwrap_err();
            assert!(err.0.contains(why), "{}", err.0);
        }
        let err = ProtobufFormat::compile(
            Some(&serde_json::json!({"type": "inline",
                "descriptorString": base64::engine::general_purpose::STANDARD.encode(&set),
                "protoMessageType": "Nope"})),
            None,
            "f",
        )
        .unwrap_err();
        assert_eq!(err.0, "f.protoBytesDecoder.protoMessageType");
        assert!(err.1.contains("t.Msg"), "{}", err.1);
    }

    /// Timestamps.toString and Durations.toString, as protobuf-java's
    /// documentation gives them.
    #[test]
    fn well_known_times_print_as_java_prints_them() {
        assert_eq!(timestamp_text(0, 0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(
            timestamp_text(1_357_035_300, 500_000_000).unwrap(),
            "2013-01-01T10:15:00.500Z"
        );
        assert_eq!(
            timestamp_text(1, 1_000).unwrap(),
            "1970-01-01T00:00:01.000001Z"
        );
        assert_eq!(
            timestamp_text(1, 1).unwrap(),
            "1970-01-01T00:00:01.000000001Z"
        );
        assert!(timestamp_text(253_402_300_800, 0).is_err());
        assert!(timestamp_text(0, -1).is_err());
        assert_eq!(duration_text(1, 500_000_000).unwrap(), "1.500s");
        assert_eq!(duration_text(0, -1_000).unwrap(), "-0.000001s");
        assert_eq!(duration_text(-3, 0).unwrap(), "-3s");
        assert!(duration_text(1, -1).is_err());
    }

    /// The direct path gives the general path's row for every scalar kind
    /// (unsigned as the same bits signed, proto3 defaults unset, NaN null).
    #[test]
    fn the_direct_path_reads_every_scalar_as_the_general_path() {
        let one = Label::Optional;
        let kinds = [
            ("i32", Type::Int32),
            ("i64", Type::Int64),
            ("u32", Type::Uint32),
            ("u64", Type::Uint64),
            ("s32", Type::Sint32),
            ("s64", Type::Sint64),
            ("f32", Type::Fixed32),
            ("f64", Type::Fixed64),
            ("sf32", Type::Sfixed32),
            ("sf64", Type::Sfixed64),
            ("b", Type::Bool),
            ("fl", Type::Float),
            ("d", Type::Double),
            ("s", Type::String),
            ("zero", Type::Int64),
            ("nan", Type::Double),
        ];
        let file = FileDescriptorProto {
            name: Some("k.proto".into()),
            syntax: Some("proto3".into()),
            message_type: vec![DescriptorProto {
                name: Some("K".into()),
                field: kinds
                    .iter()
                    .enumerate()
                    .map(|(i, (name, kind))| field(name, 20 - i as i32, *kind, one, ""))
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let set = FileDescriptorSet { file: vec![file] }.encode_to_vec();
        let decoder = serde_json::json!({"type": "inline",
            "descriptorString": base64::engine::general_purpose::STANDARD.encode(&set)});
        let direct = ProtobufFormat::compile(Some(&decoder), None, "f").unwrap();
        assert!(direct.direct.is_some());
        let general = ProtobufFormat::compile(
            Some(&decoder),
            Some(&serde_json::json!({"fields": [{"type": "root", "name": "s"}]})),
            "f",
        )
        .unwrap();
        assert!(general.direct.is_none());
        let mut m = DynamicMessage::new(direct.message.clone().unwrap());
        for (name, value) in [
            ("i32", Proto::I32(-7)),
            ("i64", Proto::I64(-1 << 40)),
            ("u32", Proto::U32(u32::MAX)),
            ("u64", Proto::U64(u64::MAX - 1)),
            ("s32", Proto::I32(-9)),
            ("s64", Proto::I64(i64::MIN)),
            ("f32", Proto::U32(3_000_000_000)),
            ("f64", Proto::U64(5)),
            ("sf32", Proto::I32(-2)),
            ("sf64", Proto::I64(-3)),
            ("b", Proto::Bool(true)),
            ("fl", Proto::F32(1.5)),
            ("d", Proto::F64(-0.25)),
            ("s", Proto::String("é".into())),
            ("zero", Proto::I64(0)),
            ("nan", Proto::F64(f64::NAN)),
        ] {
            m.set_field_by_name(name, value);
        }
        let data = m.encode_to_vec();
        let row = |f: &ProtobufFormat| {
            let mut fields = FieldTable::new(true, false, &[]);
            let mut rows = RowBuffer::new();
            f.parse(&data, &mut fields, &mut Vec::new(), &mut rows)
                .unwrap();
            // Name → value: the general path here takes its flattenSpec
            // field first, so only the discovery order differs.
            let mut pairs: Vec<(String, String)> = fields
                .discovered_since(0)
                .iter()
                .map(|(n, slot)| (n.clone(), format!("{:?}", rows.rows()[0][*slot])))
                .collect();
            pairs.sort();
            pairs
        };
        let pairs = row(&direct);
        assert_eq!(pairs, row(&general));
        assert!(!pairs.iter().any(|(n, _)| n == "zero"), "{pairs:?}");
        assert!(
            pairs.contains(&("u32".into(), format!("{:?}", Value::Long(-1)))),
            "u32::MAX as -1: {pairs:?}"
        );
    }

    /// Confluent's message indexes: a lone 0 is the first message, else a
    /// count and the indexes (zigzag varints); a registry's .proto text
    /// compiles and the indexes pick nested messages.
    #[test]
    fn registry_message_indexes_pick_the_message() {
        assert_eq!(message_indexes(&[0, 7]), Some((vec![0], &[7u8][..])));
        // count 2 (zigzag 4), indexes 1 (2) and 0 (0)
        assert_eq!(
            message_indexes(&[4, 2, 0, 9]),
            Some((vec![1, 0], &[9u8][..]))
        );
        assert_eq!(message_indexes(&[4, 2]), None, "cut short");
        assert_eq!(message_indexes(&[1]), None, "a negative count");
        assert_eq!(message_indexes(&[]), None);
        let file = compile_proto(
            "syntax = \"proto3\"; package p; import \"google/protobuf/timestamp.proto\";\n\
             message A { int64 a = 1; }\n\
             message B { message C { string c = 1; } google.protobuf.Timestamp t = 1; }",
        )
        .unwrap();
        let b = file.messages().nth(1).unwrap();
        assert_eq!(b.full_name(), "p.B");
        assert_eq!(b.child_messages().next().unwrap().full_name(), "p.B.C");
        let err = compile_proto("message A { nope }").unwrap_err();
        assert!(err.contains("does not"), "{err}");
    }
}
