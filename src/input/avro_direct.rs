//! The direct path for the usual shape of `avro_stream` records: one
//! schema (`schema_inline`), a record whose fields are primitives or unions
//! of primitives, and no flattenSpec paths. Values go straight from the
//! record's bytes into the row, strings borrowed, instead of through the
//! Avro crate's value tree and a JSON tree: flights decode ~5x faster
//! (docs/performance.md). The values are those the general path gives
//! (tests/formats.rs compares the segments); any other schema takes it.

use super::tree::finite_double;
use super::{FieldTable, ParseError, RowBuffer, Value};
use apache_avro::Schema;
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Prim {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    String,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Prim(Prim),
    Union(Vec<Prim>),
}

/// The record's fields in schema order, each with whether schemaless
/// discovery may make it a dimension.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DirectPlan {
    fields: Vec<(String, Kind, bool)>,
}

/// Field slots of one parser, resolved at its first record: a field's
/// slot never changes once known, and a field discovery passed over stays
/// passed over.
pub type DirectSlots = Option<Vec<Option<usize>>>;

fn prim(schema: &Schema) -> Option<Prim> {
    Some(match schema {
        Schema::Null => Prim::Null,
        Schema::Boolean => Prim::Boolean,
        Schema::Int => Prim::Int,
        Schema::Long => Prim::Long,
        Schema::Float => Prim::Float,
        Schema::Double => Prim::Double,
        Schema::String => Prim::String,
        _ => return None,
    })
}

impl DirectPlan {
    /// A plan when the schema has the shape this path reads, else None.
    pub(super) fn for_schema(
        schema: &Schema,
        discoverable: impl Fn(&Schema) -> bool,
    ) -> Option<DirectPlan> {
        let Schema::Record(record) = schema else {
            return None;
        };
        let mut fields = Vec::with_capacity(record.fields.len());
        for f in &record.fields {
            let kind = match &f.schema {
                Schema::Union(u) => Kind::Union(
                    u.variants()
                        .iter()
                        .map(prim)
                        .collect::<Option<Vec<Prim>>>()?,
                ),
                other => Kind::Prim(prim(other)?),
            };
            fields.push((f.name.clone(), kind, discoverable(&f.schema)));
        }
        Some(DirectPlan { fields })
    }

    /// One row from `data`, as `tree::fill_row` would make it from the
    /// general path's tree with the default flattenSpec.
    pub(super) fn parse<'a>(
        &self,
        data: &'a [u8],
        fields: &mut FieldTable,
        slots: &mut DirectSlots,
        rows: &mut RowBuffer<'a>,
    ) -> Result<(), ParseError> {
        let slots = slots.get_or_insert_with(|| {
            self.fields
                .iter()
                .map(|(name, _, discoverable)| fields.record_field_slot(name, *discoverable))
                .collect()
        });
        let width = fields.len();
        let row = rows.next_row(width);
        let mut input = Input { data, at: 0 };
        for ((_, kind, _), slot) in self.fields.iter().zip(slots.iter()) {
            let value = match kind {
                Kind::Prim(p) => input.prim(*p),
                Kind::Union(branches) => {
                    let branch = input.long()?;
                    let p = usize::try_from(branch)
                        .ok()
                        .and_then(|b| branches.get(b))
                        .ok_or_else(|| {
                            decode_error(format!(
                                "Union index {branch} out of bounds: {}",
                                branches.len()
                            ))
                        })?;
                    input.prim(*p)
                }
            }?;
            if let Some(slot) = *slot {
                row[slot].set(value);
            }
        }
        Ok(())
    }
}

fn decode_error(reason: impl std::fmt::Display) -> ParseError {
    ParseError::new(format!("Fail to decode avro message: {reason}"))
}

struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| decode_error("the record ends inside a value"))?;
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    /// A zig-zag varint of at most ten bytes.
    fn long(&mut self) -> Result<i64, ParseError> {
        let mut raw: u64 = 0;
        for i in 0..10 {
            let b = self.take(1)?[0];
            if i == 9 && b > 1 {
                return Err(decode_error("Overflow when decoding integer value"));
            }
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err(decode_error("Overflow when decoding integer value"))
    }

    fn prim(&mut self, p: Prim) -> Result<Value<'a>, ParseError> {
        Ok(match p {
            Prim::Null => Value::Null,
            Prim::Boolean => match self.take(1)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(decode_error(format!("Invalid u8 for bool: {b}"))),
            },
            Prim::Int => {
                let n = self.long()?;
                if i32::try_from(n).is_err() {
                    return Err(decode_error(format!("Int out of range: {n}")));
                }
                Value::Long(n)
            }
            Prim::Long => Value::Long(self.long()?),
            Prim::Float => {
                let b = self.take(4)?;
                finite_double(f64::from(f32::from_le_bytes(
                    b.try_into().expect("4 bytes"),
                )))
            }
            Prim::Double => {
                let b = self.take(8)?;
                finite_double(f64::from_le_bytes(b.try_into().expect("8 bytes")))
            }
            Prim::String => {
                let len = self.long()?;
                let len = usize::try_from(len)
                    .map_err(|_| decode_error(format!("Cannot convert i64 to usize: {len}")))?;
                let bytes = self.take(len)?;
                let s =
                    std::str::from_utf8(bytes).map_err(|_| decode_error("Invalid utf-8 string"))?;
                Value::Str(Cow::Borrowed(s))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(schema: &str) -> Option<DirectPlan> {
        DirectPlan::for_schema(&Schema::parse_str(schema).unwrap(), |_| true)
    }

    #[test]
    fn flat_records_have_a_plan_others_do_not() {
        let flat = r#"{"type":"record","name":"r","fields":[
            {"name":"s","type":"string"},{"name":"n","type":["null","long"]}]}"#;
        assert!(plan(flat).is_some());
        let nested = r#"{"type":"record","name":"r","fields":[
            {"name":"a","type":{"type":"array","items":"long"}}]}"#;
        assert!(plan(nested).is_none());
        let date = r#"{"type":"record","name":"r","fields":[
            {"name":"d","type":{"type":"int","logicalType":"date"}}]}"#;
        assert!(plan(date).is_none());
    }

    #[test]
    fn values_are_read_from_the_bytes_and_faults_are_errors() {
        let schema = r#"{"type":"record","name":"r","fields":[
            {"name":"s","type":"string"},{"name":"n","type":["null","long"]},
            {"name":"i","type":"int"},{"name":"d","type":"double"},{"name":"b","type":"boolean"}]}"#;
        let plan = plan(schema).unwrap();
        // "hé", branch 1 → -3, 150, 2.5, true
        let mut record = vec![6, b'h', 0xc3, 0xa9, 2, 5, 0xac, 0x02];
        record.extend_from_slice(&2.5f64.to_le_bytes());
        record.push(1);
        let mut fields = FieldTable::new(true, false, &[]);
        let mut slots = None;
        let mut rows = RowBuffer::new();
        plan.parse(&record, &mut fields, &mut slots, &mut rows)
            .unwrap();
        let row = &rows.rows()[0];
        assert_eq!(
            row[..5],
            [
                Value::Str("hé".into()),
                Value::Long(-3),
                Value::Long(150),
                Value::Double(2.5),
                Value::Bool(true)
            ]
        );
        for (bad, why) in [
            (&record[..record.len() - 1], "ends inside"),
            (&record[..3], "ends inside"),
            (&[7u8][..], "usize"),
            (&[0, 9][..], "Union index -5"),
            (
                &[
                    0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
                ][..],
                "Overflow",
            ),
        ] {
            rows.clear();
            let err = plan
                .parse(bad, &mut fields, &mut slots, &mut rows)
                .unwrap_err();
            assert!(err.0.contains(why), "{bad:?}: {}", err.0);
        }
    }
}
