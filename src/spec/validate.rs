//! Validation of the task: the envelope and dataSchema here, ioConfig in
//! `validate_io`, tuningConfig in `validate_tuning`; every bad value named
//! by its JSON path, and the checked form written into `Resolved`.

use super::validate_io::resolve_io;
use super::validate_tuning::resolve_tuning;
use super::*;
use serde::Deserialize;
use serde_json::Value;

pub(super) struct Checker {
    pub(super) errors: Vec<SpecError>,
}

impl Checker {
    pub(super) fn fail(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(SpecError {
            path: path.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn positive(&mut self, path: &str, value: i64) {
        if value <= 0 {
            self.fail(path, format!("must be positive, got {value}"));
        }
    }

    pub(super) fn non_negative(&mut self, path: &str, value: i64) {
        if value < 0 {
            self.fail(path, format!("must not be negative, got {value}"));
        }
    }
}

pub(super) fn validate(task: &mut Task) -> Result<(), SpecErrors> {
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
    // Both name directories (deep storage, the task directory).
    if let Some(why) = invalid_id(&ds) {
        c.fail(
            "dataSchema.dataSource",
            format!("{ds:?} is not a valid data source name: {why}"),
        );
    }
    if let Some(why) = invalid_id(&task.id) {
        c.fail("id", format!("{:?} is not a valid task id: {why}", task.id));
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
/// Why `id` cannot name a data source or task, as Druid's IdUtils.validateId
/// decides (empty is handled by the caller): it becomes a directory name, so
/// no `/`, no leading `.` (`..` included), no whitespace but the space, and
/// no control characters (NUL included).
pub fn invalid_id(id: &str) -> Option<String> {
    if id.starts_with('.') {
        return Some("cannot start with '.'".into());
    }
    if id.contains('/') {
        return Some("cannot contain '/'".into());
    }
    for (at, ch) in id.chars().enumerate() {
        if ch.is_whitespace() && ch != ' ' {
            return Some(format!(
                "cannot contain whitespace other than space (at {at})"
            ));
        }
        if ch.is_control() {
            return Some(format!("cannot contain character #{} (at {at})", ch as u32));
        }
    }
    None
}

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
        // Druid's avro_stream and protobuf parsers carry their decoder on
        // the parser itself (protobuf's oldest form: descriptor and
        // protoMessageType there).
        let parser_type = parser.get("type").and_then(Value::as_str).unwrap_or("");
        let mut proto_bytes_decoder = parser.get("protoBytesDecoder").cloned();
        if parser_type == "protobuf" && proto_bytes_decoder.is_none() {
            proto_bytes_decoder = Some(serde_json::json!({"type": "file",
                "descriptor": parser.get("descriptor"),
                "protoMessageType": parser.get("protoMessageType")}));
        }
        let kind = match (parser_type, format) {
            ("avro_stream", _) => "avro_stream",
            ("protobuf", _) => "protobuf",
            ("thrift", _) => {
                c.fail(
                    "dataSchema.parser.type",
                    "\"thrift\" is not supported: Thrift records are not supported yet",
                );
                return;
            }
            (_, "json") => "json",
            (_, "csv") => "csv",
            (_, "tsv") => "tsv",
            (_, other) => {
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
            avro_bytes_decoder: parser.get("avroBytesDecoder").cloned(),
            binary_as_string: parser.get("binaryAsString").and_then(Value::as_bool),
            extract_unions_by_type: None,
            proto_bytes_decoder,
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

    /// A data source or task id names directories (deep storage, the task
    /// directory): one that could step outside them is refused, naming the
    /// field.
    #[test]
    fn ids_that_could_leave_their_directory_are_refused() {
        for (field, bad) in [
            ("dataSchema.dataSource", "../etc"),
            ("dataSchema.dataSource", "a/b"),
            ("dataSchema.dataSource", ".hidden"),
            ("dataSchema.dataSource", "nul\\u0000here"),
            ("dataSchema.dataSource", "tab\\there"),
            ("id", ".."),
            ("id", "../../tmp/x"),
            ("id", "x/y"),
            ("id", "nul\\u0000"),
        ] {
            let json = sparse("");
            let json = if field == "id" {
                json.replacen('{', &format!(r#"{{"id": "{bad}","#), 1)
            } else {
                json.replace(
                    r#""dataSource": "flights""#,
                    &format!(r#""dataSource": "{bad}""#),
                )
            };
            let errors = load_task(json.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            let error = errors.0.iter().find(|e| e.path == field);
            assert!(error.is_some(), "{field} {bad}: {errors}");
        }
        // Druid's own rules allow dots and spaces inside.
        let ok = sparse("").replace(
            r#""dataSource": "flights""#,
            r#""dataSource": "my flights.v2""#,
        );
        assert!(load_task(ok.as_bytes()).is_ok());
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
