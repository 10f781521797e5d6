//! The `index_kinesis` task JSON as Rust types: Druid's defaults for every
//! field, both the Overlord-normalised and the sparse hand-written forms,
//! unknown fields reported once each, and validation that names the JSON
//! path of every bad value.
//!
//! `task_file` holds the JSON types as Druid writes them, `validate` (with
//! `validate_io` and `validate_tuning`) checks them and fills `Resolved`,
//! the checked form the pipeline reads.

pub mod granularity;
pub mod period;
pub mod properties;
pub mod sequence;
mod task_file;
pub mod time;
mod validate;
mod validate_io;
mod validate_tuning;

pub use task_file::*;

use granularity::Granularity;
use period::Period;
use sequence::SequenceNumber;
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
    /// avro_stream: binary Avro records against inline schemas.
    Avro(crate::input::avro::AvroFormat),
    /// protobuf: messages read through a compiled descriptor set.
    Protobuf(crate::input::protobuf::ProtobufFormat),
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
    pub intermediate_handoff_period: Option<Period>,
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
    validate::validate(&mut task)?;
    Ok(LoadedTask { task, warnings })
}
