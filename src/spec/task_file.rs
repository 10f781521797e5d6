//! The task file as Druid writes it: every field with Druid's default, the
//! Overlord-normalised and the sparse hand-written forms alike.

use super::*;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// avro_stream: avroBytesDecoder, binaryAsString, extractUnionsByType.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avro_bytes_decoder: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_as_string: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract_unions_by_type: Option<bool>,
    /// protobuf: protoBytesDecoder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto_bytes_decoder: Option<Value>,
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
