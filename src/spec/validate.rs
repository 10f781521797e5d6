//! The `index_kinesis` task JSON as Rust types: Druid's defaults for every
//! field, both the Overlord-normalised and the sparse hand-written forms,
//! unknown fields reported once each, and validation that names the JSON
//! path of every bad value.

use super::granularity::Granularity;
use super::period::Period;
use super::sequence::SequenceNumber;
use super::time;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// One problem with a task file: where, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

// ---------------------------------------------------------------------------
// The task file
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    #[serde(rename = "type", default = "default_task_type")]
    pub task_type: String,
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Value>,
    #[serde(default)]
    pub data_source: String,
    pub data_schema: DataSchema,
    #[serde(default)]
    pub tuning_config: TuningConfig,
    pub io_config: IoConfig,
    #[serde(default)]
    pub context: serde_json::Map<String, Value>,
    // Newer Druid top-level fields: known, not used by the peon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor_id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_perpetually_running: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor_spec_version: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_list_shards: Option<Value>,

    /// Everything derived by validation, ready for the runner.
    #[serde(skip)]
    pub resolved: Resolved,
}

fn default_task_type() -> String {
    "index_kinesis".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataSchema {
    #[serde(default)]
    pub data_source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_spec: Option<TimestampSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions_spec: Option<DimensionsSpec>,
    #[serde(default)]
    pub metrics_spec: Vec<AggregatorSpec>,
    #[serde(default)]
    pub granularity_spec: GranularitySpec,
    #[serde(default)]
    pub transform_spec: TransformSpec,
    /// The legacy `parser` (`{"type":"string","parseSpec":{...}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parser: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TimestampSpec {
    #[serde(default = "default_ts_column")]
    pub column: String,
    #[serde(default = "default_ts_format")]
    pub format: String,
    #[serde(default)]
    pub missing_value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl Default for TimestampSpec {
    fn default() -> Self {
        TimestampSpec {
            column: default_ts_column(),
            format: default_ts_format(),
            missing_value: None,
            time_zone: None,
        }
    }
}

fn default_ts_column() -> String {
    "timestamp".into()
}
fn default_ts_format() -> String {
    "auto".into()
}

/// The time column of every segment.
pub const TIME_COLUMN: &str = "__time";

/// Why a smoosh file cannot list an entry named `name`, if it cannot: its
/// meta file is one `name,file,start,end` line per entry.
pub fn unlistable_smoosh_name(name: &str) -> Option<&'static str> {
    if name.contains(',') {
        Some("a column name cannot hold a comma (smoosh files list columns comma-separated)")
    } else if name.contains('\n') {
        Some("a column name cannot hold a line break (smoosh files list a column per line)")
    } else {
        None
    }
}

/// Why `name` cannot name a dimension or metric column of a segment, if it
/// cannot. A smoosh file lists its entries one per line as
/// `name,file,start,end` (Druid's FileSmoosher refuses a comma in a name),
/// and `index.drd`, `metadata.drd` and `__time` are entries of every
/// segment already.
pub fn unstorable_column_name(name: &str) -> Option<&'static str> {
    if let Some(why) = unlistable_smoosh_name(name) {
        Some(why)
    } else if name == "index.drd" || name == "metadata.drd" {
        Some("every segment has a part of that name already")
    } else if name == TIME_COLUMN {
        Some("__time is the time column")
    } else {
        None
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DimensionsSpec {
    #[serde(default)]
    pub dimensions: Vec<DimensionSchema>,
    #[serde(default)]
    pub dimension_exclusions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spatial_dimensions: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_all_dimensions: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_schema_discovery: Option<bool>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DimensionSchema {
    #[serde(rename = "type", default = "default_dim_type")]
    pub kind: String,
    pub name: String,
    #[serde(default = "default_mvh")]
    pub multi_value_handling: String,
    #[serde(default = "default_true")]
    pub create_bitmap_index: bool,
}

fn default_dim_type() -> String {
    "string".into()
}
fn default_mvh() -> String {
    "SORTED_ARRAY".into()
}
fn default_true() -> bool {
    true
}

impl DimensionSchema {
    pub fn string(name: &str) -> DimensionSchema {
        DimensionSchema {
            kind: default_dim_type(),
            name: name.to_string(),
            multi_value_handling: default_mvh(),
            create_bitmap_index: true,
        }
    }
}

impl<'de> Deserialize<'de> for DimensionSchema {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_dimension(d)
    }
}

/// A dimension is written either as a bare name or as an object.
pub fn deserialize_dimension<'de, D: Deserializer<'de>>(d: D) -> Result<DimensionSchema, D::Error> {
    struct DimVisitor;
    impl<'de> Visitor<'de> for DimVisitor {
        type Value = DimensionSchema;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a dimension name or a dimension object")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<DimensionSchema, E> {
            Ok(DimensionSchema::string(v))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DimensionSchema, A::Error> {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Full {
                #[serde(rename = "type", default = "default_dim_type")]
                kind: String,
                name: String,
                #[serde(default = "default_mvh")]
                multi_value_handling: String,
                #[serde(default = "default_true")]
                create_bitmap_index: bool,
            }
            let f = Full::deserialize(de::value::MapAccessDeserializer::new(map))?;
            Ok(DimensionSchema {
                kind: f.kind,
                name: f.name,
                multi_value_handling: f.multi_value_handling,
                create_bitmap_index: f.create_bitmap_index,
            })
        }
    }
    d.deserialize_any(DimVisitor)
}

/// One entry of `metricsSpec`, kept as Druid writes it; [`Aggregator`] is
/// the checked form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AggregatorSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_names: Option<Vec<String>>,
    /// cardinality's inputs: names or dimension specs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_input_hyper_unique: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_row: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_string_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregator: Option<Box<AggregatorSpec>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GranularitySpec {
    #[serde(rename = "type", default = "default_uniform")]
    pub kind: String,
    #[serde(default = "default_segment_granularity")]
    pub segment_granularity: Value,
    #[serde(default = "default_query_granularity")]
    pub query_granularity: Value,
    #[serde(default = "default_true")]
    pub rollup: bool,
    #[serde(default)]
    pub intervals: Option<Vec<String>>,
}

fn default_uniform() -> String {
    "uniform".into()
}
fn default_segment_granularity() -> Value {
    Value::String("DAY".into())
}
fn default_query_granularity() -> Value {
    serde_json::json!({"type": "none"})
}

impl Default for GranularitySpec {
    fn default() -> Self {
        GranularitySpec {
            kind: default_uniform(),
            segment_granularity: default_segment_granularity(),
            query_granularity: default_query_granularity(),
            rollup: true,
            intervals: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TransformSpec {
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub transforms: Vec<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IoConfig {
    #[serde(rename = "type", default = "default_kinesis")]
    pub kind: String,
    #[serde(default)]
    pub task_group_id: Option<i64>,
    #[serde(default)]
    pub base_sequence_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_sequence_numbers: Option<SequenceNumbersSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_sequence_numbers: Option<SequenceNumbersSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_partitions: Option<SequenceNumbersSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_partitions: Option<SequenceNumbersSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive_start_sequence_number_partitions: Option<Vec<String>>,
    #[serde(default = "default_true")]
    pub use_transaction: bool,
    #[serde(default)]
    pub minimum_message_time: Option<String>,
    #[serde(default)]
    pub maximum_message_time: Option<String>,
    #[serde(default)]
    pub input_format: Option<InputFormatSpec>,
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    #[serde(default = "default_records_per_fetch")]
    pub records_per_fetch: i64,
    #[serde(default)]
    pub fetch_delay_millis: i64,
    #[serde(default)]
    pub aws_assumed_role_arn: Option<String>,
    #[serde(default)]
    pub aws_external_id: Option<String>,
    #[serde(default)]
    pub deaggregate: bool,
    /// Newer Druid: known, not used by the peon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_duration: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_rejection_periods_in_minutes: Option<Value>,
}

fn default_kinesis() -> String {
    "kinesis".into()
}
fn default_endpoint() -> String {
    "kinesis.us-east-1.amazonaws.com".into()
}
fn default_records_per_fetch() -> i64 {
    4000
}

/// A start or end map (`SeekableStream{Start,End}SequenceNumbers`).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SequenceNumbersSpec {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_sequence_number_map: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_offset_map: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive_partitions: Option<Vec<String>>,
}

/// `inputFormat` of any type; which fields matter depends on `type`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InputFormatSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flatten_spec: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_spec: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_null_columns: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_newline_delimited: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_json_node_reader: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_delimiter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub find_columns_from_header: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_header_row: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_header_rows: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub try_parse_numbers: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TuningConfig {
    #[serde(rename = "type", default = "default_tuning_type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appendable_index_spec: Option<Value>,
    #[serde(default = "default_max_rows_in_memory")]
    pub max_rows_in_memory: i64,
    #[serde(default)]
    pub max_bytes_in_memory: i64,
    #[serde(default)]
    pub skip_bytes_in_memory_overhead_check: bool,
    #[serde(default = "default_max_rows_per_segment")]
    pub max_rows_per_segment: i64,
    #[serde(default)]
    pub max_total_rows: Option<i64>,
    #[serde(default = "default_persist_period")]
    pub intermediate_persist_period: String,
    #[serde(default)]
    pub max_pending_persists: i64,
    #[serde(default)]
    pub index_spec: IndexSpec,
    #[serde(default)]
    pub index_spec_for_intermediate_persists: Option<IndexSpec>,
    #[serde(default)]
    pub report_parse_exceptions: bool,
    #[serde(default)]
    pub handoff_condition_timeout: i64,
    #[serde(default)]
    pub reset_offset_automatically: bool,
    #[serde(default)]
    pub skip_sequence_number_availability_check: bool,
    #[serde(default = "default_record_buffer_size")]
    pub record_buffer_size: i64,
    #[serde(default = "default_5000")]
    pub record_buffer_offer_timeout: i64,
    #[serde(default = "default_5000")]
    pub record_buffer_full_wait: i64,
    #[serde(default = "default_fetch_seq_timeout")]
    pub fetch_sequence_number_timeout: i64,
    #[serde(default)]
    pub fetch_threads: Option<i64>,
    #[serde(default)]
    pub segment_write_out_medium_factory: Option<Value>,
    #[serde(default = "default_handoff_period")]
    pub intermediate_handoff_period: String,
    #[serde(default)]
    pub log_parse_exceptions: bool,
    #[serde(default = "default_max_parse_exceptions")]
    pub max_parse_exceptions: i64,
    #[serde(default)]
    pub max_saved_parse_exceptions: i64,
    #[serde(default = "default_max_records_per_poll")]
    pub max_records_per_poll: i64,
    #[serde(default = "default_minus_one")]
    pub max_columns_to_merge: i64,
    // Newer Druid and supervisor-only fields: known, not used by the peon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_buffer_size_bytes: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes_per_poll: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_persist_threads: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_gap_stats_enabled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_persist_directory: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_v9_directly: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_threads: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_threads: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_retries: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_timeout: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repartition_transition_duration: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_fetch_period: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_list_shards: Option<Value>,
}

fn default_tuning_type() -> String {
    "KinesisTuningConfig".into()
}
fn default_max_rows_in_memory() -> i64 {
    1_000_000
}
fn default_max_rows_per_segment() -> i64 {
    5_000_000
}
fn default_persist_period() -> String {
    "PT10M".into()
}
fn default_record_buffer_size() -> i64 {
    10_000
}
fn default_5000() -> i64 {
    5000
}
fn default_fetch_seq_timeout() -> i64 {
    20_000
}
fn default_handoff_period() -> String {
    "P2147483647D".into()
}
fn default_max_parse_exceptions() -> i64 {
    i32::MAX as i64
}
fn default_max_records_per_poll() -> i64 {
    100
}
fn default_minus_one() -> i64 {
    -1
}

impl Default for TuningConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all tuning fields have defaults")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IndexSpec {
    #[serde(default)]
    pub bitmap: BitmapSpec,
    #[serde(default = "default_lz4")]
    pub dimension_compression: String,
    #[serde(default = "default_lz4")]
    pub metric_compression: String,
    #[serde(default = "default_longs")]
    pub long_encoding: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_dictionary_encoding: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complex_metric_compression: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_compression: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_loader: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BitmapSpec {
    #[serde(rename = "type", default = "default_roaring")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress_run_on_serialization: Option<bool>,
}

fn default_lz4() -> String {
    "lz4".into()
}
fn default_longs() -> String {
    "longs".into()
}
fn default_roaring() -> String {
    "roaring".into()
}

impl Default for BitmapSpec {
    fn default() -> Self {
        BitmapSpec {
            kind: default_roaring(),
            compress_run_on_serialization: Some(true),
        }
    }
}

impl Default for IndexSpec {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all index spec fields have defaults")
    }
}

// ---------------------------------------------------------------------------
// The resolved (checked) form
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Lz4,
    Lzf,
    Uncompressed,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongEncoding {
    Longs,
    Auto,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedIndexSpec {
    pub dimension_compression: Compression,
    pub metric_compression: Compression,
    pub long_encoding: LongEncoding,
    /// bitmap.compressRunOnSerialization (Druid's default: true): value
    /// bitmaps use run containers where those are smaller.
    pub run_compression: bool,
}

impl Default for ResolvedIndexSpec {
    fn default() -> Self {
        ResolvedIndexSpec {
            dimension_compression: Compression::Lz4,
            metric_compression: Compression::Lz4,
            long_encoding: LongEncoding::Longs,
            run_compression: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DimensionType {
    String,
    Long,
    Float,
    Double,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultiValueHandling {
    SortedArray,
    SortedSet,
    Array,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    pub name: String,
    pub kind: DimensionType,
    pub multi_value_handling: MultiValueHandling,
    pub create_bitmap_index: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumType {
    Long,
    Float,
    Double,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AggregatorKind {
    Count,
    Numeric {
        op: AggOp,
        ty: NumType,
    },
    /// longFirst / longLast and the double and float ones: the value at the
    /// earliest (latest) event time, stored as a (time, value) pair.
    FirstLast {
        last: bool,
        ty: NumType,
    },
    /// hyperUnique (UTF-8 bytes hashed), or cardinality with byRow false
    /// (UTF-16 code units hashed, over every field); both stored as
    /// hyperUnique collectors.
    HyperUnique {
        cardinality: bool,
    },
    /// Parsed and validated, but not computed by this build yet.
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Aggregator {
    pub name: String,
    pub kind: AggregatorKind,
    pub field_name: Option<String>,
    /// The input fields (cardinality's fieldNames, else fieldName).
    pub fields: Vec<String>,
    /// An expression input instead of a field.
    pub expression: Option<String>,
    /// A `filtered` wrapper's filter: rows it rejects are not aggregated.
    pub filter: Option<Value>,
    /// The spec of the aggregator that computes (a filtered one's inner).
    pub spec: AggregatorSpec,
}

impl Aggregator {
    /// The combining form Druid stores in metadata.drd.
    pub fn combining_json(&self) -> Value {
        match &self.kind {
            AggregatorKind::FirstLast { .. } => serde_json::json!({
                "type": self.spec.kind,
                "name": self.name,
                "fieldName": self.name,
                "timeColumn": "__time",
            }),
            AggregatorKind::HyperUnique { .. } => serde_json::json!({
                "type": "hyperUnique",
                "name": self.name,
                "fieldName": self.name,
                "isInputHyperUnique": false,
                "round": self.spec.round.unwrap_or(false),
            }),
            _ => {
                let type_name = match &self.kind {
                    AggregatorKind::Count => "longSum",
                    _ => self.spec.kind.as_str(),
                };
                serde_json::json!({
                    "type": type_name,
                    "name": self.name,
                    "fieldName": self.name,
                    "expression": Value::Null,
                })
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum TimestampFormat {
    Auto,
    Iso,
    Millis,
    Posix,
    Micro,
    Nano,
    Ruby,
    /// A Joda-Time pattern, compiled at validation.
    Joda(crate::input::joda::JodaPattern),
}

#[derive(Debug, Clone, PartialEq)]
pub enum InputFormat {
    Json {
        keep_null_columns: bool,
        flatten: Option<crate::input::flatten::FlattenSpec>,
        /// featureSpec ALLOW_COMMENTS (`//`, `/* */`) and
        /// ALLOW_YAML_COMMENTS (`#`): comments are stripped before parsing.
        comments: JsonComments,
    },
    /// csv, tsv and delimited rows.
    Delimited {
        delimiter: String,
        list_delimiter: Option<String>,
        columns: Vec<String>,
        skip_header_rows: usize,
        csv: bool,
        /// Each record's first line (after skipHeaderRows) names its columns.
        find_columns_from_header: bool,
    },
}

/// Which comments a JSON record may hold (Jackson's ALLOW_COMMENTS and
/// ALLOW_YAML_COMMENTS features).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonComments {
    pub c_style: bool,
    pub yaml: bool,
}

/// One sequence of the task: a span of offsets published as one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceSpan {
    pub name: String,
    pub start: BTreeMap<String, SequenceNumber>,
    pub exclusive: Vec<String>,
    pub end: BTreeMap<String, SequenceNumber>,
}

#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub stream: String,
    pub timestamp: TimestampSpec,
    pub timestamp_format: Option<TimestampFormat>,
    pub missing_timestamp: Option<i64>,
    pub dimensions: Vec<Dimension>,
    /// No dimension listed (`__time` alone counts as one): dimensions are
    /// discovered from the rows.
    pub discover_dimensions: bool,
    /// Schemaless discovery excludes these names.
    pub exclusions: Vec<String>,
    pub aggregators: Vec<Aggregator>,
    pub segment_granularity: Option<Granularity>,
    pub query_granularity: Option<Granularity>,
    pub input_format: Option<InputFormat>,
    pub index_spec: ResolvedIndexSpec,
    pub persist_index_spec: ResolvedIndexSpec,
    pub start: BTreeMap<String, SequenceNumber>,
    pub exclusive_start: Vec<String>,
    pub end: BTreeMap<String, SequenceNumber>,
    pub sequences: Vec<SequenceSpan>,
    pub minimum_message_time: Option<i64>,
    pub maximum_message_time: Option<i64>,
    pub intermediate_persist_period: Option<Period>,
    pub max_parse_exceptions: i64,
    pub max_saved_parse_exceptions: i64,
}

impl Task {
    pub fn segment_granularity(&self) -> &Granularity {
        self.resolved
            .segment_granularity
            .as_ref()
            .expect("validated task")
    }

    pub fn query_granularity(&self) -> &Granularity {
        self.resolved
            .query_granularity
            .as_ref()
            .expect("validated task")
    }

    pub fn base_sequence_name(&self) -> &str {
        self.io_config
            .base_sequence_name
            .as_deref()
            .unwrap_or(&self.id)
    }
}

/// A parsed and checked task, with the warnings (unknown fields) met on the way.
pub struct LoadedTask {
    pub task: Task,
    pub warnings: Vec<String>,
}

/// Parse and validate a task file's bytes.
pub fn load_task(bytes: &[u8]) -> Result<LoadedTask, SpecErrors> {
    let mut unknown = Vec::new();
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<Task, _> = {
        let mut note = |path: serde_ignored::Path| unknown.push(path.to_string());
        let ignoring = serde_ignored::Deserializer::new(&mut json, &mut note);
        serde_path_to_error::deserialize(ignoring)
    };
    let mut task = parsed.map_err(|e| {
        let path = e.path().to_string();
        SpecErrors(vec![SpecError {
            path: if path == "." { "(task)".into() } else { path },
            message: e.inner().to_string(),
        }])
    })?;
    json.end().map_err(|e| {
        SpecErrors(vec![SpecError {
            path: "(task)".into(),
            message: e.to_string(),
        }])
    })?;
    let warnings = unknown
        .into_iter()
        .map(|p| format!("unknown field {p} ignored"))
        .collect();
    validate(&mut task)?;
    Ok(LoadedTask { task, warnings })
}

struct Checker {
    errors: Vec<SpecError>,
}

impl Checker {
    fn fail(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(SpecError {
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn positive(&mut self, path: &str, value: i64) {
        if value <= 0 {
            self.fail(path, format!("must be positive, got {value}"));
        }
    }

    fn non_negative(&mut self, path: &str, value: i64) {
        if value < 0 {
            self.fail(path, format!("must not be negative, got {value}"));
        }
    }
}

fn validate(task: &mut Task) -> Result<(), SpecErrors> {
    let mut c = Checker { errors: Vec::new() };
    let mut r = Resolved::default();

    if task.task_type != "index_kinesis" {
        c.fail(
            "type",
            format!("must be \"index_kinesis\", got {:?}", task.task_type),
        );
    }

    // dataSource: the envelope and the schema must agree; either may be absent.
    match (
        task.data_source.is_empty(),
        task.data_schema.data_source.is_empty(),
    ) {
        (true, true) => c.fail("dataSchema.dataSource", "is required"),
        (true, false) => task.data_source = task.data_schema.data_source.clone(),
        (false, true) => task.data_schema.data_source = task.data_source.clone(),
        (false, false) if task.data_source != task.data_schema.data_source => c.fail(
            "dataSource",
            format!(
                "{:?} differs from dataSchema.dataSource {:?}",
                task.data_source, task.data_schema.data_source
            ),
        ),
        _ => {}
    }
    let ds = task.data_source.clone();
    if !ds.is_empty()
        && (ds.starts_with('.')
            || ds.contains('/')
            || ds.chars().any(|ch| ch.is_whitespace() && ch != ' '))
    {
        c.fail(
            "dataSchema.dataSource",
            format!("{ds:?} is not a valid data source name (no '/', no leading '.', no tabs or newlines)"),
        );
    }
    if task.id.is_empty() {
        task.id = format!("index_kinesis_{ds}");
    }

    resolve_legacy_parser(task, &mut c);
    resolve_schema(task, &mut r, &mut c);
    resolve_io(task, &mut r, &mut c);
    resolve_tuning(task, &mut r, &mut c);

    if !c.errors.is_empty() {
        return Err(SpecErrors(c.errors));
    }
    task.resolved = r;
    Ok(())
}

/// Map a legacy `parser.parseSpec` onto timestampSpec/dimensionsSpec/inputFormat.
fn resolve_legacy_parser(task: &mut Task, c: &mut Checker) {
    let Some(parser) = task.data_schema.parser.clone() else {
        return;
    };
    let Some(parse_spec) = parser.get("parseSpec") else {
        c.fail("dataSchema.parser.parseSpec", "is required with a parser");
        return;
    };
    if task.data_schema.timestamp_spec.is_none()
        && let Some(ts) = parse_spec.get("timestampSpec")
    {
        match serde_json::from_value(ts.clone()) {
            Ok(ts) => task.data_schema.timestamp_spec = Some(ts),
            Err(e) => c.fail("dataSchema.parser.parseSpec.timestampSpec", e.to_string()),
        }
    }
    if task.data_schema.dimensions_spec.is_none()
        && let Some(dims) = parse_spec.get("dimensionsSpec")
    {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Dims {
            #[serde(default)]
            dimensions: Vec<Value>,
            #[serde(default)]
            dimension_exclusions: Vec<String>,
        }
        match serde_json::from_value::<Dims>(dims.clone()) {
            Ok(d) => {
                let mut out = Vec::new();
                for (i, v) in d.dimensions.into_iter().enumerate() {
                    match deserialize_dimension(v) {
                        Ok(dim) => out.push(dim),
                        Err(e) => c.fail(
                            &format!("dataSchema.parser.parseSpec.dimensionsSpec.dimensions[{i}]"),
                            e.to_string(),
                        ),
                    }
                }
                task.data_schema.dimensions_spec = Some(DimensionsSpec {
                    dimensions: out,
                    dimension_exclusions: d.dimension_exclusions,
                    ..Default::default()
                });
            }
            Err(e) => c.fail("dataSchema.parser.parseSpec.dimensionsSpec", e.to_string()),
        }
    }
    if task.io_config.input_format.is_none() {
        let format = parse_spec
            .get("format")
            .and_then(Value::as_str)
            .unwrap_or("json");
        let get_str = |k: &str| {
            parse_spec
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let columns = parse_spec.get("columns").and_then(|v| {
            v.as_array().map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
        });
        let kind = match format {
            "json" => "json",
            "csv" => "csv",
            "tsv" => "tsv",
            other => {
                c.fail(
                    "dataSchema.parser.parseSpec.format",
                    format!("{other:?} is not supported (json, csv, tsv)"),
                );
                return;
            }
        };
        task.io_config.input_format = Some(InputFormatSpec {
            kind: kind.into(),
            flatten_spec: parse_spec.get("flattenSpec").cloned(),
            feature_spec: parse_spec.get("featureSpec").cloned(),
            keep_null_columns: None,
            assume_newline_delimited: None,
            use_json_node_reader: None,
            columns,
            list_delimiter: get_str("listDelimiter"),
            delimiter: get_str("delimiter"),
            find_columns_from_header: None,
            has_header_row: parse_spec.get("hasHeaderRow").and_then(Value::as_bool),
            skip_header_rows: parse_spec.get("skipHeaderRows").and_then(Value::as_i64),
            try_parse_numbers: None,
        });
    }
}

fn resolve_schema(task: &mut Task, r: &mut Resolved, c: &mut Checker) {
    let schema = &task.data_schema;
    let ts = schema.timestamp_spec.clone().unwrap_or_default();
    r.timestamp_format = match ts.format.to_ascii_lowercase().as_str() {
        "auto" => Some(TimestampFormat::Auto),
        "iso" => Some(TimestampFormat::Iso),
        "millis" => Some(TimestampFormat::Millis),
        "posix" => Some(TimestampFormat::Posix),
        "micro" => Some(TimestampFormat::Micro),
        "nano" => Some(TimestampFormat::Nano),
        "ruby" => Some(TimestampFormat::Ruby),
        _ => match crate::input::joda::JodaPattern::compile(&ts.format) {
            Ok(p) => Some(TimestampFormat::Joda(p)),
            Err(e) => {
                c.fail("dataSchema.timestampSpec.format", e);
                None
            }
        },
    };
    r.missing_timestamp = match &ts.missing_value {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => match time::parse_iso(s) {
            Some(t) => Some(t),
            None => {
                c.fail(
                    "dataSchema.timestampSpec.missingValue",
                    format!("not an ISO-8601 time: {s:?}"),
                );
                None
            }
        },
        Some(other) => {
            c.fail(
                "dataSchema.timestampSpec.missingValue",
                format!("must be a time, got {other}"),
            );
            None
        }
    };
    r.timestamp = ts;

    let dims_spec = schema.dimensions_spec.clone().unwrap_or_default();
    r.discover_dimensions = dims_spec.dimensions.is_empty();
    let mut seen = std::collections::HashSet::new();
    for (i, d) in dims_spec.dimensions.iter().enumerate() {
        let path = format!("dataSchema.dimensionsSpec.dimensions[{i}]");
        if d.name.is_empty() {
            c.fail(&format!("{path}.name"), "must not be empty");
        }
        if !seen.insert(d.name.clone()) {
            c.fail(
                &format!("{path}.name"),
                format!("duplicate dimension {:?}", d.name),
            );
        }
        let kind = match d.kind.to_ascii_lowercase().as_str() {
            "string" => DimensionType::String,
            "long" => DimensionType::Long,
            "float" => DimensionType::Float,
            "double" => DimensionType::Double,
            other => {
                c.fail(
                    &format!("{path}.type"),
                    format!("{other:?} is not supported (string, long, float, double)"),
                );
                DimensionType::String
            }
        };
        let mvh = match d.multi_value_handling.to_ascii_uppercase().as_str() {
            "SORTED_ARRAY" => MultiValueHandling::SortedArray,
            "SORTED_SET" => MultiValueHandling::SortedSet,
            "ARRAY" => MultiValueHandling::Array,
            other => {
                c.fail(
                    &format!("{path}.multiValueHandling"),
                    format!("{other:?} is not one of SORTED_ARRAY, SORTED_SET, ARRAY"),
                );
                MultiValueHandling::SortedArray
            }
        };
        if d.name == TIME_COLUMN {
            // Druid lets __time be listed once, long-typed, and (segments
            // sorted by time, the default) only first: it then names the
            // time column's own place, so it is not a dimension here.
            if kind != DimensionType::Long {
                c.fail(
                    &format!("{path}.type"),
                    "__time can only be listed as a long dimension (it is the time column)",
                );
            } else if i > 0 {
                c.fail(
                    &format!("{path}.name"),
                    "__time can only be the first dimension (segments are sorted by time first)",
                );
            }
            continue;
        }
        if let Some(why) = unstorable_column_name(&d.name) {
            c.fail(&format!("{path}.name"), format!("{:?}: {why}", d.name));
        }
        r.dimensions.push(Dimension {
            name: d.name.clone(),
            kind,
            multi_value_handling: mvh,
            create_bitmap_index: d.create_bitmap_index,
        });
    }

    let mut names = std::collections::HashSet::new();
    for (i, spec) in schema.metrics_spec.iter().enumerate() {
        let path = format!("dataSchema.metricsSpec[{i}]");
        let Some(a) = resolve_aggregator(spec, &path, c) else {
            continue;
        };
        // A filtered aggregator without a name takes its inner one's.
        let name = a.name.clone();
        if name.is_empty() {
            c.fail(&format!("{path}.name"), "must not be empty");
        }
        if !names.insert(name.clone()) {
            c.fail(
                &format!("{path}.name"),
                format!("duplicate metric {name:?}"),
            );
        }
        if seen.contains(&name) {
            c.fail(
                &format!("{path}.name"),
                format!("{name:?} is also a dimension"),
            );
        }
        if let Some(why) = unstorable_column_name(&name) {
            c.fail(&format!("{path}.name"), format!("{name:?}: {why}"));
        }
        r.aggregators.push(a);
    }

    // Schemaless discovery excludes the timestamp column and every metric's
    // name and input, as Druid's DataSchema computes it.
    let mut exclusions: Vec<String> = dims_spec.dimension_exclusions.clone();
    exclusions.push(r.timestamp.column.clone());
    for spec in &schema.metrics_spec {
        exclusions.push(spec.name.clone());
        if let Some(f) = &spec.field_name {
            exclusions.push(f.clone());
        }
        exclusions.extend(spec.field_names.iter().flatten().cloned());
        exclusions.extend(spec.fields.iter().flatten().filter_map(field_spec_name));
        if let Some(inner) = &spec.aggregator
            && let Some(f) = &inner.field_name
        {
            exclusions.push(f.clone());
        }
    }
    exclusions.sort();
    exclusions.dedup();
    r.exclusions = exclusions;

    let g = &schema.granularity_spec;
    if g.kind != "uniform" && g.kind != "arbitrary" {
        c.fail(
            "dataSchema.granularitySpec.type",
            format!("{:?} is not supported (uniform)", g.kind),
        );
    }
    match Granularity::from_json(&g.segment_granularity) {
        Ok(Granularity::None) => c.fail(
            "dataSchema.granularitySpec.segmentGranularity",
            "NONE is not a valid segment granularity",
        ),
        Ok(gran) => r.segment_granularity = Some(gran),
        Err(e) => c.fail("dataSchema.granularitySpec.segmentGranularity", e),
    }
    match Granularity::from_json(&g.query_granularity) {
        Ok(gran) => r.query_granularity = Some(gran),
        Err(e) => c.fail("dataSchema.granularitySpec.queryGranularity", e),
    }
    if g.intervals.as_ref().is_some_and(|v| !v.is_empty()) {
        c.fail(
            "dataSchema.granularitySpec.intervals",
            "intervals are not supported by this build yet; leave them empty for streaming",
        );
    }
    // Checked here for the messages; the pipeline compiles them again
    // against its own field table.
    let mut scratch = crate::input::FieldTable::new(false, false, &[]);
    if let Err((path, message)) = crate::input::transform::Transforms::compile(
        &task.data_schema.transform_spec.transforms,
        "dataSchema.transformSpec.transforms",
        &mut scratch,
    ) {
        c.fail(&path, message);
    }
    if let Some(filter) = task
        .data_schema
        .transform_spec
        .filter
        .as_ref()
        .filter(|f| !f.is_null())
        && let Err((path, message)) =
            crate::input::filter::compile(filter, "dataSchema.transformSpec.filter", &mut scratch)
    {
        c.fail(&path, message);
    }
}

/// One metricsSpec entry; a `filtered` one unwraps to its inner aggregator
/// (named by the wrapper when it has a name), keeping its filter.
fn resolve_aggregator(spec: &AggregatorSpec, path: &str, c: &mut Checker) -> Option<Aggregator> {
    if spec.kind == "filtered" {
        let Some(inner) = &spec.aggregator else {
            c.fail(&format!("{path}.aggregator"), "is required");
            return None;
        };
        let Some(filter) = spec.filter.clone().filter(|f| !f.is_null()) else {
            c.fail(&format!("{path}.filter"), "is required");
            return None;
        };
        let mut scratch = crate::input::FieldTable::new(false, false, &[]);
        if let Err((at, message)) =
            crate::input::filter::compile(&filter, &format!("{path}.filter"), &mut scratch)
        {
            c.fail(&at, message);
        }
        if inner.kind == "filtered" {
            c.fail(
                &format!("{path}.aggregator.type"),
                "a filtered aggregator inside another is not supported",
            );
            return None;
        }
        let mut a = resolve_aggregator(inner, &format!("{path}.aggregator"), c)?;
        if !spec.name.is_empty() {
            a.name = spec.name.clone();
        }
        a.filter = Some(filter);
        return Some(a);
    }
    let kind = aggregator_kind(&spec.kind);
    let fields: Vec<String> = match (&spec.fields, &spec.field_names, &spec.field_name) {
        (Some(list), _, _) => list.iter().filter_map(field_spec_name).collect(),
        (None, Some(names), _) => names.clone(),
        (None, None, Some(name)) => vec![name.clone()],
        (None, None, None) => Vec::new(),
    };
    match &kind {
        None => c.fail(
            &format!("{path}.type"),
            format!("unknown aggregator type {:?}", spec.kind),
        ),
        Some(AggregatorKind::Numeric { .. }) if fields.is_empty() && spec.expression.is_none() => {
            c.fail(
                &format!("{path}.fieldName"),
                "is required (or an expression)",
            );
        }
        Some(
            AggregatorKind::FirstLast { .. } | AggregatorKind::HyperUnique { cardinality: false },
        ) if spec.field_name.is_none() => {
            c.fail(&format!("{path}.fieldName"), "is required");
        }
        Some(AggregatorKind::HyperUnique { cardinality: true }) => {
            if fields.is_empty() {
                c.fail(&format!("{path}.fields"), "is required");
            }
            if spec.by_row == Some(true) {
                c.fail(
                    &format!("{path}.byRow"),
                    "byRow cardinality is not supported by this build yet",
                );
            }
        }
        Some(AggregatorKind::FirstLast { .. })
            if spec.time_column.as_deref().is_some_and(|t| t != "__time") =>
        {
            c.fail(
                &format!("{path}.timeColumn"),
                "only __time is supported as the time column",
            );
        }
        Some(AggregatorKind::HyperUnique { cardinality: false })
            if spec.is_input_hyper_unique == Some(true) =>
        {
            c.fail(
                &format!("{path}.isInputHyperUnique"),
                "pre-built collectors as input are not supported by this build yet",
            );
        }
        _ => {}
    }
    if let Some(expression) = &spec.expression {
        let mut scratch = crate::input::FieldTable::new(false, false, &[]);
        if let Err(e) = crate::input::expr::Expr::compile(expression, &mut scratch) {
            c.fail(&format!("{path}.expression"), e);
        }
    }
    Some(Aggregator {
        name: spec.name.clone(),
        kind: kind?,
        field_name: spec.field_name.clone(),
        fields,
        expression: spec.expression.clone(),
        filter: None,
        spec: spec.clone(),
    })
}

/// A cardinality field: a column name or a `default` dimension spec.
fn field_spec_name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o
            .get("dimension")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

fn aggregator_kind(kind: &str) -> Option<AggregatorKind> {
    use AggOp::*;
    use NumType::*;
    let numeric = |op, ty| Some(AggregatorKind::Numeric { op, ty });
    match kind {
        "count" => Some(AggregatorKind::Count),
        "longSum" => numeric(Sum, Long),
        "longMin" => numeric(Min, Long),
        "longMax" => numeric(Max, Long),
        "doubleSum" => numeric(Sum, Double),
        "doubleMin" => numeric(Min, Double),
        "doubleMax" => numeric(Max, Double),
        "floatSum" => numeric(Sum, Float),
        "floatMin" => numeric(Min, Float),
        "floatMax" => numeric(Max, Float),
        "longFirst" => Some(AggregatorKind::FirstLast {
            last: false,
            ty: Long,
        }),
        "longLast" => Some(AggregatorKind::FirstLast {
            last: true,
            ty: Long,
        }),
        "doubleFirst" => Some(AggregatorKind::FirstLast {
            last: false,
            ty: Double,
        }),
        "doubleLast" => Some(AggregatorKind::FirstLast {
            last: true,
            ty: Double,
        }),
        "floatFirst" => Some(AggregatorKind::FirstLast {
            last: false,
            ty: Float,
        }),
        "floatLast" => Some(AggregatorKind::FirstLast {
            last: true,
            ty: Float,
        }),
        "hyperUnique" => Some(AggregatorKind::HyperUnique { cardinality: false }),
        "cardinality" => Some(AggregatorKind::HyperUnique { cardinality: true }),
        "stringFirst" | "stringLast" => Some(AggregatorKind::Unsupported(kind.to_string())),
        _ => None,
    }
}

fn parse_compression(value: &str, path: &str, metrics: bool, c: &mut Checker) -> Compression {
    match value.to_ascii_lowercase().as_str() {
        "lz4" => Compression::Lz4,
        "lzf" => Compression::Lzf,
        "uncompressed" => Compression::Uncompressed,
        "none" if metrics => Compression::None,
        other => {
            c.fail(
                path,
                format!(
                    "{other:?} is not one of lz4, lzf, uncompressed{}",
                    if metrics { ", none" } else { "" }
                ),
            );
            Compression::Lz4
        }
    }
}

fn resolve_index_spec(spec: &IndexSpec, path: &str, c: &mut Checker) -> ResolvedIndexSpec {
    if !spec.bitmap.kind.eq_ignore_ascii_case("roaring") {
        c.fail(
            &format!("{path}.bitmap.type"),
            format!("{:?} is not supported (roaring)", spec.bitmap.kind),
        );
    }
    let long_encoding = match spec.long_encoding.to_ascii_lowercase().as_str() {
        "longs" => LongEncoding::Longs,
        "auto" => LongEncoding::Auto,
        other => {
            c.fail(
                &format!("{path}.longEncoding"),
                format!("{other:?} is not one of longs, auto"),
            );
            LongEncoding::Longs
        }
    };
    ResolvedIndexSpec {
        dimension_compression: parse_compression(
            &spec.dimension_compression,
            &format!("{path}.dimensionCompression"),
            false,
            c,
        ),
        metric_compression: parse_compression(
            &spec.metric_compression,
            &format!("{path}.metricCompression"),
            true,
            c,
        ),
        long_encoding,
        run_compression: spec.bitmap.compress_run_on_serialization.unwrap_or(true),
    }
}

fn parse_sequence_map(
    spec: &SequenceNumbersSpec,
    path: &str,
    c: &mut Checker,
) -> BTreeMap<String, SequenceNumber> {
    let map = spec
        .partition_sequence_number_map
        .as_ref()
        .or(spec.partition_offset_map.as_ref());
    let mut out = BTreeMap::new();
    let Some(map) = map else {
        c.fail(&format!("{path}.partitionSequenceNumberMap"), "is required");
        return out;
    };
    for (shard, seq) in map {
        match SequenceNumber::parse(seq) {
            Ok(s) => {
                out.insert(shard.clone(), s);
            }
            Err(e) => c.fail(&format!("{path}.partitionSequenceNumberMap.{shard}"), e),
        }
    }
    out
}

fn resolve_io(task: &mut Task, r: &mut Resolved, c: &mut Checker) {
    let io = &task.io_config;
    if io.kind != "kinesis" {
        c.fail(
            "ioConfig.type",
            format!("must be \"kinesis\", got {:?}", io.kind),
        );
    }
    let (start_spec, start_path) = match (&io.start_sequence_numbers, &io.start_partitions) {
        (Some(s), _) => (s.clone(), "ioConfig.startSequenceNumbers"),
        (None, Some(s)) => (s.clone(), "ioConfig.startPartitions"),
        (None, None) => {
            c.fail("ioConfig.startSequenceNumbers", "is required");
            return;
        }
    };
    let end_spec = io
        .end_sequence_numbers
        .clone()
        .or_else(|| io.end_partitions.clone());
    r.start = parse_sequence_map(&start_spec, start_path, c);
    r.exclusive_start = start_spec
        .exclusive_partitions
        .clone()
        .or_else(|| io.exclusive_start_sequence_number_partitions.clone())
        .unwrap_or_default();
    r.stream = start_spec
        .stream
        .clone()
        .or_else(|| start_spec.topic.clone())
        .unwrap_or_default();
    if r.stream.is_empty() {
        c.fail(&format!("{start_path}.stream"), "is required");
    }
    for (shard, seq) in &r.start {
        if !seq.is_number()
            && !matches!(
                seq,
                SequenceNumber::UnreadTrimHorizon | SequenceNumber::UnreadLatest
            )
        {
            c.fail(
                &format!("{start_path}.partitionSequenceNumberMap.{shard}"),
                format!("{seq} is not a valid start"),
            );
        }
    }
    r.end = match &end_spec {
        Some(end) => {
            let end_path = if io.end_sequence_numbers.is_some() {
                "ioConfig.endSequenceNumbers"
            } else {
                "ioConfig.endPartitions"
            };
            let map = parse_sequence_map(end, end_path, c);
            let end_stream = end.stream.clone().or_else(|| end.topic.clone());
            if let Some(s) = end_stream
                && s != r.stream
            {
                c.fail(
                    &format!("{end_path}.stream"),
                    format!("{s:?} differs from the start stream {:?}", r.stream),
                );
            }
            for (shard, seq) in &map {
                if matches!(seq, SequenceNumber::EndOfShard) {
                    c.fail(
                        &format!("{end_path}.partitionSequenceNumberMap.{shard}"),
                        "EOS is not allowed as an end",
                    );
                }
            }
            if map.keys().ne(r.start.keys()) {
                c.fail(
                    end_path,
                    "the end map must name exactly the shards of the start map",
                );
            }
            map
        }
        // The sparse hand-written form: no end means read on without end.
        None => r
            .start
            .keys()
            .map(|k| (k.clone(), SequenceNumber::NoEnd))
            .collect(),
    };
    if task.io_config.base_sequence_name.is_none() {
        task.io_config.base_sequence_name = Some(task.id.clone());
    }
    let io = &task.io_config;
    for (field, value) in [
        ("ioConfig.minimumMessageTime", &io.minimum_message_time),
        ("ioConfig.maximumMessageTime", &io.maximum_message_time),
    ] {
        if let Some(text) = value {
            match time::parse_iso(text) {
                Some(t) if field.contains("minimum") => r.minimum_message_time = Some(t),
                Some(t) => r.maximum_message_time = Some(t),
                None => c.fail(field, format!("not an ISO-8601 time: {text:?}")),
            }
        }
    }
    c.positive("ioConfig.recordsPerFetch", io.records_per_fetch);
    c.non_negative("ioConfig.fetchDelayMillis", io.fetch_delay_millis);
    if io.endpoint.is_empty() {
        c.fail("ioConfig.endpoint", "must not be empty");
    }

    r.input_format = match &io.input_format {
        None => {
            c.fail(
                "ioConfig.inputFormat",
                "is required (or a legacy dataSchema.parser)",
            );
            None
        }
        Some(f) => resolve_input_format(f, c),
    };

    r.sequences = resolve_sequences(task, r, c);
}

/// featureSpec: Jackson parser features. ALLOW_COMMENTS and
/// ALLOW_YAML_COMMENTS are honoured; otherwise records are parsed as strict
/// JSON (Jackson's defaults), so a feature that relaxes or tightens that
/// grammar when switched on is refused by name rather than ignored; those
/// that do not change what parses are accepted.
fn check_feature_spec(spec: Option<&Value>, c: &mut Checker) -> JsonComments {
    let mut comments = JsonComments::default();
    const NO_EFFECT: [&str; 5] = [
        "AUTO_CLOSE_SOURCE",
        "IGNORE_UNDEFINED",
        "INCLUDE_SOURCE_IN_LOCATION",
        "USE_FAST_DOUBLE_PARSER",
        "USE_FAST_BIG_NUMBER_PARSER",
    ];
    const GRAMMAR: [&str; 11] = [
        "ALLOW_UNQUOTED_FIELD_NAMES",
        "ALLOW_SINGLE_QUOTES",
        "ALLOW_UNQUOTED_CONTROL_CHARS",
        "ALLOW_BACKSLASH_ESCAPING_ANY_CHARACTER",
        "ALLOW_NUMERIC_LEADING_ZEROS",
        "ALLOW_LEADING_DECIMAL_POINT_FOR_NUMBERS",
        "ALLOW_NON_NUMERIC_NUMBERS",
        "ALLOW_MISSING_VALUES",
        "ALLOW_TRAILING_COMMA",
        "STRICT_DUPLICATE_DETECTION",
        "ALLOW_TRAILING_DECIMAL_POINT_FOR_NUMBERS",
    ];
    let Some(spec) = spec.filter(|v| !v.is_null()) else {
        return comments;
    };
    let Some(map) = spec.as_object() else {
        c.fail(
            "ioConfig.inputFormat.featureSpec",
            "must be an object of Jackson parser features",
        );
        return comments;
    };
    for (name, on) in map {
        let path = format!("ioConfig.inputFormat.featureSpec.{name}");
        let Some(on) = on.as_bool() else {
            c.fail(&path, "must be true or false");
            continue;
        };
        match name.as_str() {
            "ALLOW_COMMENTS" => comments.c_style = on,
            "ALLOW_YAML_COMMENTS" => comments.yaml = on,
            n if NO_EFFECT.contains(&n) => {}
            n if !GRAMMAR.contains(&n) => c.fail(&path, "is not a Jackson JsonParser feature"),
            _ if on => c.fail(
                &path,
                "is not supported: records are parsed as strict JSON (Jackson's defaults)",
            ),
            _ => {}
        }
    }
    comments
}

fn resolve_input_format(f: &InputFormatSpec, c: &mut Checker) -> Option<InputFormat> {
    match f.kind.as_str() {
        "json" => {
            let flatten = match f.flatten_spec.as_ref().filter(|v| !v.is_null()) {
                None => None,
                Some(spec) => match crate::input::flatten::FlattenSpec::compile(
                    spec,
                    "ioConfig.inputFormat.flattenSpec",
                ) {
                    Ok(spec) => Some(spec),
                    Err((path, message)) => {
                        c.fail(&path, message);
                        None
                    }
                },
            };
            let comments = check_feature_spec(f.feature_spec.as_ref(), c);
            Some(InputFormat::Json {
                keep_null_columns: f.keep_null_columns.unwrap_or(false),
                flatten,
                comments,
            })
        }
        "csv" | "tsv" | "delimited" => {
            let csv = f.kind == "csv";
            let delimiter = if csv {
                ",".to_string()
            } else {
                f.delimiter.clone().unwrap_or_else(|| "\t".into())
            };
            if delimiter.is_empty() {
                c.fail("ioConfig.inputFormat.delimiter", "must not be empty");
            }
            let from_header = f
                .find_columns_from_header
                .or(f.has_header_row)
                .unwrap_or(false);
            let columns = f.columns.clone().unwrap_or_default();
            if columns.is_empty() && !from_header {
                c.fail(
                    "ioConfig.inputFormat.columns",
                    "is required unless findColumnsFromHeader is true",
                );
            }
            let skip = f.skip_header_rows.unwrap_or(0);
            c.non_negative("ioConfig.inputFormat.skipHeaderRows", skip);
            Some(InputFormat::Delimited {
                delimiter,
                list_delimiter: f.list_delimiter.clone(),
                columns,
                skip_header_rows: skip.max(0) as usize,
                csv,
                find_columns_from_header: from_header,
            })
        }
        other => {
            c.fail(
                "ioConfig.inputFormat.type",
                format!("{other:?} is not supported (json, csv, tsv, delimited)"),
            );
            None
        }
    }
}

/// Split the task into sequences from `context.checkpoints` (a JSON string
/// holding sequenceId → {shard → start}); without it, one sequence.
fn resolve_sequences(task: &Task, r: &Resolved, c: &mut Checker) -> Vec<SequenceSpan> {
    let base = task.base_sequence_name().to_string();
    let single = || {
        vec![SequenceSpan {
            name: format!("{base}_0"),
            start: r.start.clone(),
            exclusive: r.exclusive_start.clone(),
            end: r.end.clone(),
        }]
    };
    let Some(raw) = task.context.get("checkpoints") else {
        return single();
    };
    let text = match raw {
        Value::String(s) => s.clone(),
        Value::Null => return single(),
        other => other.to_string(),
    };
    let parsed: BTreeMap<String, BTreeMap<String, String>> = match serde_json::from_str(&text) {
        Ok(p) => p,
        Err(e) => {
            c.fail("context.checkpoints", format!("not a checkpoint map: {e}"));
            return single();
        }
    };
    let mut checkpoints: Vec<(i64, BTreeMap<String, SequenceNumber>)> = Vec::new();
    for (id, map) in parsed {
        let Ok(n) = id.parse::<i64>() else {
            c.fail(
                "context.checkpoints",
                format!("sequence id {id:?} is not a number"),
            );
            continue;
        };
        let mut seqs = BTreeMap::new();
        for (shard, seq) in map {
            match SequenceNumber::parse(&seq) {
                Ok(s) => {
                    seqs.insert(shard, s);
                }
                Err(e) => c.fail(&format!("context.checkpoints.{id}.{shard}"), e),
            }
        }
        checkpoints.push((n, seqs));
    }
    checkpoints.sort_by_key(|(n, _)| *n);
    if checkpoints.is_empty() {
        return single();
    }
    let mut spans = Vec::new();
    for (i, (id, start)) in checkpoints.iter().enumerate() {
        let end = match checkpoints.get(i + 1) {
            Some((_, next)) => next.clone(),
            None => r.end.clone(),
        };
        // The first sequence keeps the task's exclusivity; later ones start
        // after the previous sequence's inclusive end.
        let exclusive = if i == 0 {
            r.exclusive_start.clone()
        } else {
            start.keys().cloned().collect()
        };
        spans.push(SequenceSpan {
            name: format!("{base}_{id}"),
            start: start.clone(),
            exclusive,
            end,
        });
    }
    spans
}

fn resolve_tuning(task: &Task, r: &mut Resolved, c: &mut Checker) {
    let t = &task.tuning_config;
    if t.kind != "KinesisTuningConfig" && t.kind != "kinesis" {
        c.fail(
            "tuningConfig.type",
            format!(
                "must be \"KinesisTuningConfig\" or \"kinesis\", got {:?}",
                t.kind
            ),
        );
    }
    c.positive("tuningConfig.maxRowsInMemory", t.max_rows_in_memory);
    if t.max_bytes_in_memory < -1 {
        c.fail(
            "tuningConfig.maxBytesInMemory",
            format!(
                "must be -1 (unlimited), 0 (default) or positive, got {}",
                t.max_bytes_in_memory
            ),
        );
    }
    c.positive("tuningConfig.maxRowsPerSegment", t.max_rows_per_segment);
    if let Some(n) = t.max_total_rows {
        c.positive("tuningConfig.maxTotalRows", n);
    }
    c.non_negative("tuningConfig.maxPendingPersists", t.max_pending_persists);
    c.non_negative(
        "tuningConfig.handoffConditionTimeout",
        t.handoff_condition_timeout,
    );
    c.positive("tuningConfig.recordBufferSize", t.record_buffer_size);
    c.positive(
        "tuningConfig.recordBufferOfferTimeout",
        t.record_buffer_offer_timeout,
    );
    c.non_negative(
        "tuningConfig.recordBufferFullWait",
        t.record_buffer_full_wait,
    );
    c.positive(
        "tuningConfig.fetchSequenceNumberTimeout",
        t.fetch_sequence_number_timeout,
    );
    if let Some(n) = t.fetch_threads {
        c.positive("tuningConfig.fetchThreads", n);
    }
    c.non_negative("tuningConfig.maxParseExceptions", t.max_parse_exceptions);
    c.non_negative(
        "tuningConfig.maxSavedParseExceptions",
        t.max_saved_parse_exceptions,
    );
    c.positive("tuningConfig.maxRecordsPerPoll", t.max_records_per_poll);
    if t.reset_offset_automatically && t.skip_sequence_number_availability_check {
        c.fail(
            "tuningConfig.skipSequenceNumberAvailabilityCheck",
            "cannot be true together with resetOffsetAutomatically",
        );
    }
    for (path, text) in [
        (
            "tuningConfig.intermediatePersistPeriod",
            &t.intermediate_persist_period,
        ),
        (
            "tuningConfig.intermediateHandoffPeriod",
            &t.intermediate_handoff_period,
        ),
    ] {
        match Period::parse(text) {
            Ok(p) if !p.is_fixed() => {
                c.fail(path, "must be a fixed-length period (no months or years)")
            }
            Ok(p) if path.ends_with("PersistPeriod") => r.intermediate_persist_period = Some(p),
            Ok(_) => {}
            Err(e) => c.fail(path, e),
        }
    }
    r.index_spec = resolve_index_spec(&t.index_spec, "tuningConfig.indexSpec", c);
    r.persist_index_spec = match &t.index_spec_for_intermediate_persists {
        Some(s) => resolve_index_spec(s, "tuningConfig.indexSpecForIntermediatePersists", c),
        None => r.index_spec.clone(),
    };
    // reportParseExceptions=true means the first parse error fails the task.
    if t.report_parse_exceptions {
        r.max_parse_exceptions = 0;
        r.max_saved_parse_exceptions = t.max_saved_parse_exceptions.min(1);
    } else {
        r.max_parse_exceptions = t.max_parse_exceptions;
        r.max_saved_parse_exceptions = t.max_saved_parse_exceptions;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sparse(extra_tuning: &str) -> String {
        format!(
            r#"{{
              "type": "index_kinesis",
              "dataSchema": {{
                "dataSource": "flights",
                "timestampSpec": {{"column": "timestamp", "format": "iso"}},
                "dimensionsSpec": {{"dimensions": ["carrier", {{"type": "string", "name": "origin"}}]}},
                "metricsSpec": [{{"type": "count", "name": "count"}}],
                "granularitySpec": {{"segmentGranularity": "day", "queryGranularity": "hour"}}
              }},
              "ioConfig": {{
                "startSequenceNumbers": {{"stream": "s", "partitionSequenceNumberMap": {{"shardId-000000000000": "1"}}}},
                "inputFormat": {{"type": "json"}}
              }},
              "tuningConfig": {{"type": "KinesisTuningConfig" {extra_tuning}}}
            }}"#
        )
    }

    #[test]
    fn sparse_form_gets_druid_defaults() {
        let loaded = load_task(sparse("").as_bytes()).unwrap();
        let t = loaded.task;
        assert!(loaded.warnings.is_empty());
        assert_eq!(t.data_source, "flights");
        assert_eq!(t.id, "index_kinesis_flights");
        assert_eq!(t.tuning_config.max_rows_in_memory, 1_000_000);
        assert_eq!(t.tuning_config.max_records_per_poll, 100);
        assert_eq!(t.io_config.records_per_fetch, 4000);
        assert_eq!(t.resolved.dimensions.len(), 2);
        assert_eq!(
            t.resolved.end["shardId-000000000000"],
            SequenceNumber::NoEnd
        );
        assert_eq!(t.resolved.sequences.len(), 1);
        assert_eq!(t.resolved.sequences[0].name, "index_kinesis_flights_0");
        assert_eq!(t.query_granularity(), &Granularity::named("HOUR").unwrap());
    }

    /// featureSpec: features that do not change what parses are accepted;
    /// ones that change the grammar, switched on, are refused by name.
    #[test]
    fn feature_spec_is_checked_not_ignored() {
        let with = |features: &str| {
            sparse("").replace(
                r#""inputFormat": {"type": "json"}"#,
                &format!(r#""inputFormat": {{"type": "json", "featureSpec": {features}}}"#),
            )
        };
        assert!(
            load_task(with(r#"{"ALLOW_COMMENTS": false, "AUTO_CLOSE_SOURCE": true}"#).as_bytes())
                .is_ok()
        );
        let t = load_task(with(r#"{"ALLOW_COMMENTS": true}"#).as_bytes())
            .unwrap()
            .task;
        assert!(matches!(
            t.resolved.input_format,
            Some(InputFormat::Json {
                comments: JsonComments {
                    c_style: true,
                    yaml: false
                },
                ..
            })
        ));
        let err = load_task(with(r#"{"ALLOW_SINGLE_QUOTES": true}"#).as_bytes())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with(
                "ioConfig.inputFormat.featureSpec.ALLOW_SINGLE_QUOTES: is not supported"
            ),
            "{err}"
        );
        let err = load_task(with(r#"{"ALLOW_EVERYTHING": false}"#).as_bytes())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("is not a Jackson JsonParser feature"), "{err}");
    }

    #[test]
    fn bad_values_name_their_path() {
        let err = load_task(sparse(r#", "maxRowsInMemory": -5"#).as_bytes())
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "tuningConfig.maxRowsInMemory: must be positive, got -5"
        );
        let err = load_task(sparse(r#", "maxRowsInMemory": "lots""#).as_bytes())
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("tuningConfig.maxRowsInMemory: "),
            "{err}"
        );
    }

    /// Names no segment column can have are refused before anything is
    /// read (Druid's FileSmoosher would fail the persist on a comma);
    /// `__time` may only be listed first and long-typed, as Druid's
    /// DataSchema allows, and is then no dimension of its own.
    #[test]
    fn column_names_a_segment_cannot_hold_are_refused() {
        let with = |dims: &str, metric: &str| {
            sparse("")
                .replace(r#"["carrier", {"type": "string", "name": "origin"}]"#, dims)
                .replace(r#""name": "count""#, &format!(r#""name": {metric}"#))
        };
        let refused = |dims: &str, metric: &str| {
            load_task(with(dims, metric).as_bytes())
                .err()
                .expect("refused")
                .to_string()
        };
        let err = refused(r#"["a,b", "index.drd"]"#, r#""c\nd""#);
        for expected in [
            r#"dimensions[0].name: "a,b": a column name cannot hold a comma"#,
            r#"dimensions[1].name: "index.drd": every segment has a part of that name"#,
            r#"metricsSpec[0].name: "c\nd": a column name cannot hold a line break"#,
        ] {
            assert!(err.contains(expected), "{expected} in {err}");
        }
        let long_time = r#"{"type": "long", "name": "__time"}"#;
        for (dims, metric, expected) in [
            (
                r#"["carrier", "__time"]"#.to_string(),
                r#""count""#,
                "__time can only be listed as a long dimension",
            ),
            (
                format!(r#"["carrier", {long_time}]"#),
                r#""count""#,
                "__time can only be the first dimension",
            ),
            (
                r#"["carrier"]"#.to_string(),
                r#""__time""#,
                "__time is the time column",
            ),
        ] {
            let err = refused(&dims, metric);
            assert!(err.contains(expected), "{expected} in {err}");
        }
        let accepted = |dims: &str| load_task(with(dims, r#""count""#).as_bytes()).unwrap().task;
        let t = accepted(&format!(r#"[{long_time}, "carrier"]"#));
        let names: Vec<&str> = t
            .resolved
            .dimensions
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(names, ["carrier"]);
        assert!(!t.resolved.discover_dimensions);
        let t = accepted(&format!("[{long_time}]"));
        assert!(t.resolved.dimensions.is_empty() && !t.resolved.discover_dimensions);
    }

    #[test]
    fn unknown_fields_warn_once_each() {
        let loaded =
            load_task(sparse(r#", "fancyKnob": 3, "otherKnob": true"#).as_bytes()).unwrap();
        assert_eq!(
            loaded.warnings,
            vec![
                "unknown field tuningConfig.fancyKnob ignored",
                "unknown field tuningConfig.otherKnob ignored"
            ]
        );
    }

    /// The checkout, read when the test runs (a binary from a shared build
    /// cache may have been compiled in another clone).
    fn fixture_root() -> std::path::PathBuf {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
    }

    #[test]
    fn all_fixture_tasks_parse() {
        let dir = fixture_root().join("../shared/fixtures/tasks");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            panic!("fixtures missing at {}", dir.display());
        };
        let mut parsed = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&path).unwrap();
                let mut json = serde_json::Deserializer::from_slice(&bytes);
                let task: Result<Task, _> = serde_path_to_error::deserialize(&mut json);
                assert!(task.is_ok(), "{}: {:?}", path.display(), task.err());
                parsed += 1;
            }
        }
        assert_eq!(parsed, 5);
    }

    #[test]
    fn checkpoints_make_sequences() {
        let bytes = std::fs::read(
            fixture_root().join("../shared/fixtures/tasks/03-tsv-typed-dimensions.json"),
        )
        .unwrap();
        let mut task: Task = serde_json::from_slice(&bytes).unwrap();
        let mut c = Checker { errors: vec![] };
        let mut r = Resolved::default();
        resolve_io(&mut task, &mut r, &mut c);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(r.sequences.len(), 2);
        assert_eq!(r.sequences[0].end, r.sequences[1].start);
        assert_eq!(
            r.sequences[1].end["shardId-000000000001"],
            SequenceNumber::NoEnd
        );
        assert_eq!(r.sequences[1].exclusive.len(), 2);
    }
}
