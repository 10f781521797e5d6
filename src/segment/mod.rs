//! The Druid v9 segment format, both ways (spec/segment-format.md): column
//! files, index.drd, metadata.drd, the smoosh, and index.zip.

pub mod bytes;
pub mod complex;
pub mod cursor;
pub mod reader;
mod unzip;
pub mod writer;

use roaring::RoaringBitmap;

pub const VERSION_BIN: [u8; 4] = [0, 0, 0, 9];
pub const FACTORY_JSON: &str = r#"{"type":"mMapSegmentFactory"}"#;
pub const BITMAP_SERDE: &str = r#"{"type":"roaring"}"#;
pub const MAX_CHUNK_SIZE: i64 = i32::MAX as i64;

pub const LONG_DESCRIPTOR: &str = r#"{"valueType":"LONG","hasMultipleValues":false,"parts":[{"type":"longV2","byteOrder":"LITTLE_ENDIAN","bitmapSerdeFactory":{"type":"roaring"}}]}"#;
pub const DOUBLE_DESCRIPTOR: &str = r#"{"valueType":"DOUBLE","hasMultipleValues":false,"parts":[{"type":"doubleV2","byteOrder":"LITTLE_ENDIAN","bitmapSerdeFactory":{"type":"roaring"}}]}"#;
pub const FLOAT_DESCRIPTOR: &str = r#"{"valueType":"FLOAT","hasMultipleValues":false,"parts":[{"type":"floatV2","byteOrder":"LITTLE_ENDIAN","bitmapSerdeFactory":{"type":"roaring"}}]}"#;
pub const STRING_DESCRIPTOR: &str = r#"{"valueType":"STRING","hasMultipleValues":false,"parts":[{"type":"stringDictionary","bitmapSerdeFactory":{"type":"roaring"},"byteOrder":"LITTLE_ENDIAN"}]}"#;
pub const MULTI_STRING_DESCRIPTOR: &str = r#"{"valueType":"STRING","hasMultipleValues":true,"parts":[{"type":"stringDictionary","bitmapSerdeFactory":{"type":"roaring"},"byteOrder":"LITTLE_ENDIAN"}]}"#;

/// Rows of one segment, sorted and ready to write (or as read back).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentData {
    /// The segment's time chunk [start, end).
    pub interval: (i64, i64),
    pub times: Vec<i64>,
    /// String dimensions, in dimension order.
    pub dimensions: Vec<StringColumn>,
    /// Long, float and double dimensions (stored like metrics, listed as
    /// dimensions), each with its place in the full dimension order.
    pub numeric_dimensions: Vec<NumericDimension>,
    pub metrics: Vec<MetricColumn>,
    /// metadata.drd (JSON), when there is one.
    pub metadata: Option<serde_json::Value>,
}

/// A string column: a sorted dictionary (null first if any row is null) and
/// one id per row, or, for a multi-value column, a list of ids per row.
#[derive(Debug, Clone, PartialEq)]
pub struct StringColumn {
    pub name: String,
    pub dictionary: Vec<Option<String>>,
    /// Single-value: one id per row. Multi-value: every row's ids, concatenated.
    pub ids: Vec<u32>,
    /// Multi-value only: rows + 1 offsets into `ids` (row r holds
    /// `ids[offsets[r]..offsets[r + 1]]`; an empty row is a null row).
    pub offsets: Option<Vec<u32>>,
}

impl StringColumn {
    pub fn single(name: &str, dictionary: Vec<Option<String>>, ids: Vec<u32>) -> StringColumn {
        StringColumn {
            name: name.to_string(),
            dictionary,
            ids,
            offsets: None,
        }
    }

    pub fn num_rows(&self) -> usize {
        match &self.offsets {
            Some(o) => o.len().saturating_sub(1),
            None => self.ids.len(),
        }
    }

    /// The ids of one row.
    pub fn row(&self, row: usize) -> &[u32] {
        match &self.offsets {
            Some(o) => &self.ids[o[row] as usize..o[row + 1] as usize],
            None => std::slice::from_ref(&self.ids[row]),
        }
    }

    /// Row `row` as JSON: a string or null, or a list for a multi-value row
    /// of two or more values (Druid shows one-element rows as the value).
    pub fn json(&self, row: usize) -> serde_json::Value {
        let value = |id: &u32| {
            self.dictionary[*id as usize]
                .clone()
                .map_or(serde_json::Value::Null, Into::into)
        };
        match self.row(row) {
            [] => serde_json::Value::Null,
            [one] => value(one),
            many => many.iter().map(value).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NumericDimension {
    /// Index in the segment's dimension order (string and numeric together).
    pub position: usize,
    pub column: MetricColumn,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricColumn {
    pub name: String,
    pub values: NumericValues,
    /// Rows whose value is null (their slot holds 0).
    pub nulls: RoaringBitmap,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NumericValues {
    Long(Vec<i64>),
    Float(Vec<f32>),
    Double(Vec<f64>),
    /// A complex metric: one cell per row (see `complex`).
    Complex(complex::ComplexKind, Vec<Vec<u8>>),
}

impl NumericValues {
    pub fn len(&self) -> usize {
        match self {
            NumericValues::Long(v) => v.len(),
            NumericValues::Float(v) => v.len(),
            NumericValues::Double(v) => v.len(),
            NumericValues::Complex(_, v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i` as JSON (integers stay integers).
    pub fn json(&self, i: usize) -> serde_json::Value {
        match self {
            NumericValues::Long(v) => v[i].into(),
            NumericValues::Float(v) => complex::float_json(v[i]),
            NumericValues::Double(v) => serde_json::Number::from_f64(v[i])
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            NumericValues::Complex(kind, cells) => complex::cell_json(*kind, &cells[i]),
        }
    }
}

impl SegmentData {
    pub fn num_rows(&self) -> usize {
        self.times.len()
    }

    /// Every dimension name in dimension order: numeric dimensions at their
    /// positions, string dimensions filling the other places in order.
    /// None when the positions do not fit together.
    pub fn dimension_names(&self) -> Option<Vec<&str>> {
        let total = self.dimensions.len() + self.numeric_dimensions.len();
        let mut names: Vec<Option<&str>> = vec![None; total];
        for n in &self.numeric_dimensions {
            let slot = names.get_mut(n.position)?;
            if slot.is_some() {
                return None;
            }
            *slot = Some(&n.column.name);
        }
        let mut strings = self.dimensions.iter();
        for slot in names.iter_mut().filter(|s| s.is_none()) {
            *slot = Some(&strings.next()?.name);
        }
        names.into_iter().collect()
    }

    /// Row `row` as a JSON object of the columns `wanted` accepts: `__time`
    /// in ISO form, dimensions, numeric dimensions, metrics (null as null).
    pub fn row_json(
        &self,
        row: usize,
        wanted: impl Fn(&str) -> bool,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut obj = serde_json::Map::new();
        if wanted("__time") {
            obj.insert(
                "__time".into(),
                crate::spec::time::format_iso(self.times[row]).into(),
            );
        }
        for d in self.dimensions.iter().filter(|d| wanted(&d.name)) {
            obj.insert(d.name.clone(), d.json(row));
        }
        let numeric = self.numeric_dimensions.iter().map(|n| &n.column);
        for m in numeric.chain(&self.metrics).filter(|m| wanted(&m.name)) {
            let v = if m.nulls.contains(row as u32) {
                serde_json::Value::Null
            } else {
                m.values.json(row)
            };
            obj.insert(m.name.clone(), v);
        }
        obj
    }

    /// Metric names in the order Druid stores them (Java-sorted).
    pub fn sorted_metrics(&self) -> Vec<&MetricColumn> {
        let mut m: Vec<&MetricColumn> = self.metrics.iter().collect();
        m.sort_by(|a, b| crate::java::java_cmp(&a.name, &b.name));
        m
    }
}
