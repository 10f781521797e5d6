//! The direct path for the usual shape of `protobuf` records: a message
//! of singular scalar and string fields (and google.protobuf.Timestamp)
//! with no flattenSpec paths. Fields go straight from the wire into the
//! row, strings borrowed, instead of through a DynamicMessage and a JSON
//! tree (docs/performance.md). A record this path is unsure of (any
//! decoding fault, a group, a repeated sub-message) is handed back, and
//! the general path decides it: so the rows and the errors are the general
//! path's (tests/formats.rs compares the segments).

use super::tree::finite_double;
use super::{FieldTable, RowBuffer, Value};
use prost_reflect::{Kind, MessageDescriptor};
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Scalar {
    Int32,
    Int64,
    UInt32,
    UInt64,
    SInt32,
    SInt64,
    Fixed32,
    Fixed64,
    SFixed32,
    SFixed64,
    Bool,
    Float,
    Double,
    String,
    Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
struct Field {
    number: u32,
    json_name: String,
    scalar: Scalar,
    /// Without presence (proto3 plain fields), a default value is unset.
    presence: bool,
}

/// The message's fields in field-number order (the order the general
/// path's message lists them, and so the order discovery meets them).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DirectPlan {
    fields: Vec<Field>,
}

/// Each field's slot, resolved when the field is first set (discovery
/// meets a field first where the general path would).
pub type DirectSlots = Vec<Option<Option<usize>>>;

/// The record is for the general path to decide.
pub(super) struct Undecided;

impl DirectPlan {
    /// A plan when the message has the shape this path reads, else None.
    pub(super) fn for_message(message: &MessageDescriptor) -> Option<DirectPlan> {
        let mut fields = Vec::new();
        for f in message.fields() {
            if f.is_list() || f.is_map() || f.is_group() {
                return None;
            }
            if f.containing_oneof().is_some_and(|o| !o.is_synthetic()) {
                return None;
            }
            let scalar = match f.kind() {
                Kind::Int32 => Scalar::Int32,
                Kind::Int64 => Scalar::Int64,
                Kind::Uint32 => Scalar::UInt32,
                Kind::Uint64 => Scalar::UInt64,
                Kind::Sint32 => Scalar::SInt32,
                Kind::Sint64 => Scalar::SInt64,
                Kind::Fixed32 => Scalar::Fixed32,
                Kind::Fixed64 => Scalar::Fixed64,
                Kind::Sfixed32 => Scalar::SFixed32,
                Kind::Sfixed64 => Scalar::SFixed64,
                Kind::Bool => Scalar::Bool,
                Kind::Float => Scalar::Float,
                Kind::Double => Scalar::Double,
                Kind::String => Scalar::String,
                Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => {
                    Scalar::Timestamp
                }
                _ => return None,
            };
            fields.push(Field {
                number: f.number(),
                json_name: f.json_name().to_string(),
                scalar,
                presence: f.supports_presence(),
            });
        }
        fields.sort_by_key(|f| f.number);
        Some(DirectPlan { fields })
    }

    /// One row from `data`, or Undecided.
    pub(super) fn parse<'a>(
        &self,
        data: &'a [u8],
        fields: &mut FieldTable,
        slots: &mut DirectSlots,
        rows: &mut RowBuffer<'a>,
    ) -> Result<(), Undecided> {
        let mut values: Vec<Option<Value<'a>>> = vec![None; self.fields.len()];
        let mut input = Wire { data, at: 0 };
        while !input.done() {
            let key = input.varint()?;
            let (number, wire) = (key >> 3, (key & 7) as u8);
            if number == 0 || number >= 1 << 29 {
                return Err(Undecided);
            }
            let Some(i) = self
                .fields
                .binary_search_by_key(&(number as u32), |f| f.number)
                .ok()
            else {
                input.skip(wire)?;
                continue;
            };
            let field = &self.fields[i];
            let value = input.value(field.scalar, wire)?;
            if field.scalar == Scalar::Timestamp && values[i].is_some() {
                // A repeated sub-message merges with the first: rare enough
                // to leave to the general path.
                return Err(Undecided);
            }
            values[i] = Some(value);
        }
        if slots.len() != self.fields.len() {
            *slots = vec![None; self.fields.len()];
        }
        for (i, field) in self.fields.iter().enumerate() {
            let set = match &values[i] {
                None => false,
                Some(v) => field.presence || !is_default(v),
            };
            if !set {
                values[i] = None;
            } else if slots[i].is_none() {
                // Every scalar may be discovered (ProtobufFlattenerMaker).
                slots[i] = Some(fields.record_field_slot(&field.json_name, true));
            }
        }
        let row = rows.next_row(fields.len());
        for (value, slot) in values.into_iter().zip(slots.iter()) {
            if let (Some(value), Some(Some(slot))) = (value, slot) {
                row[*slot].set(value);
            }
        }
        Ok(())
    }
}

/// Proto3's defaults (a field without presence holding one is unset).
fn is_default(v: &Value<'_>) -> bool {
    match v {
        Value::Long(n) => *n == 0,
        Value::Double(x) => *x == 0.0,
        Value::Bool(b) => !*b,
        Value::Str(s) => s.is_empty(),
        _ => false,
    }
}

struct Wire<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Wire<'a> {
    fn done(&self) -> bool {
        self.at >= self.data.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Undecided> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or(Undecided)?;
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn varint(&mut self) -> Result<u64, Undecided> {
        let mut out: u64 = 0;
        for i in 0..10 {
            let b = self.take(1)?[0];
            if i == 9 && b > 1 {
                return Err(Undecided);
            }
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(Undecided)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Undecided> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn length_delimited(&mut self) -> Result<&'a [u8], Undecided> {
        let len = usize::try_from(self.varint()?).map_err(|_| Undecided)?;
        self.take(len)
    }

    /// Past a field this path does not read (groups are left to the
    /// general path).
    fn skip(&mut self, wire: u8) -> Result<(), Undecided> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            2 => self.length_delimited().map(drop),
            5 => self.take(4).map(drop),
            _ => Err(Undecided),
        }
    }

    /// A field's value as the general path maps it (Java has no unsigned
    /// types: the same bits signed; NaN and infinities are null).
    fn value(&mut self, scalar: Scalar, wire: u8) -> Result<Value<'a>, Undecided> {
        let expected = match scalar {
            Scalar::Fixed64 | Scalar::SFixed64 | Scalar::Double => 1,
            Scalar::Fixed32 | Scalar::SFixed32 | Scalar::Float => 5,
            Scalar::String | Scalar::Timestamp => 2,
            _ => 0,
        };
        if wire != expected {
            return Err(Undecided);
        }
        Ok(match scalar {
            Scalar::Int32 | Scalar::UInt32 => Value::Long(i64::from(self.varint()? as i32)),
            Scalar::Int64 | Scalar::UInt64 => Value::Long(self.varint()? as i64),
            Scalar::SInt32 => {
                let n = self.varint()? as u32;
                Value::Long(i64::from((n >> 1) as i32 ^ -((n & 1) as i32)))
            }
            Scalar::SInt64 => {
                let n = self.varint()?;
                Value::Long((n >> 1) as i64 ^ -((n & 1) as i64))
            }
            Scalar::Fixed32 | Scalar::SFixed32 => {
                Value::Long(i64::from(i32::from_le_bytes(self.fixed()?)))
            }
            Scalar::Fixed64 | Scalar::SFixed64 => Value::Long(i64::from_le_bytes(self.fixed()?)),
            Scalar::Bool => Value::Bool(self.varint()? != 0),
            Scalar::Float => finite_double(f64::from(f32::from_le_bytes(self.fixed()?))),
            Scalar::Double => finite_double(f64::from_le_bytes(self.fixed()?)),
            Scalar::String => {
                let bytes = self.length_delimited()?;
                Value::Str(Cow::Borrowed(
                    std::str::from_utf8(bytes).map_err(|_| Undecided)?,
                ))
            }
            Scalar::Timestamp => {
                let mut inner = Wire {
                    data: self.length_delimited()?,
                    at: 0,
                };
                let (mut seconds, mut nanos) = (0i64, 0i64);
                while !inner.done() {
                    let key = inner.varint()?;
                    match (key >> 3, key & 7) {
                        (1, 0) => seconds = inner.varint()? as i64,
                        (2, 0) => nanos = i64::from(inner.varint()? as i32),
                        (0, _) => return Err(Undecided),
                        (_, wire) => inner.skip(wire as u8)?,
                    }
                }
                let text =
                    super::protobuf::timestamp_text(seconds, nanos).map_err(|_| Undecided)?;
                Value::Str(Cow::Owned(text))
            }
        })
    }
}
