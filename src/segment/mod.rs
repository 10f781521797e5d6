//! The Druid v9 segment format, both ways (spec/segment-format.md): column
//! files, index.drd, metadata.drd, the smoosh, and index.zip.

pub mod bytes;
pub mod reader;
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

/// Rows of one segment, sorted and ready to write (or as read back).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentData {
    /// The segment's time chunk [start, end).
    pub interval: (i64, i64),
    pub times: Vec<i64>,
    pub dimensions: Vec<StringColumn>,
    pub metrics: Vec<MetricColumn>,
    /// metadata.drd (JSON), when there is one.
    pub metadata: Option<serde_json::Value>,
}

/// A single-value string column: a sorted dictionary (null first if any row
/// is null) and one id per row.
#[derive(Debug, Clone, PartialEq)]
pub struct StringColumn {
    pub name: String,
    pub dictionary: Vec<Option<String>>,
    pub ids: Vec<u32>,
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
}

impl NumericValues {
    pub fn len(&self) -> usize {
        match self {
            NumericValues::Long(v) => v.len(),
            NumericValues::Float(v) => v.len(),
            NumericValues::Double(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i` as JSON (integers stay integers).
    pub fn json(&self, i: usize) -> serde_json::Value {
        match self {
            NumericValues::Long(v) => v[i].into(),
            NumericValues::Float(v) => serde_json::Number::from_f64(v[i] as f64)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            NumericValues::Double(v) => serde_json::Number::from_f64(v[i])
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
        }
    }
}

impl SegmentData {
    pub fn num_rows(&self) -> usize {
        self.times.len()
    }

    /// Metric names in the order Druid stores them (Java-sorted).
    pub fn sorted_metrics(&self) -> Vec<&MetricColumn> {
        let mut m: Vec<&MetricColumn> = self.metrics.iter().collect();
        m.sort_by(|a, b| bytes::java_cmp(&a.name, &b.name));
        m
    }
}
