//! Validation of ioConfig: the stream, its shards' start and end sequence
//! numbers, the sequences they make, and the inputFormat.

use super::validate::Checker;
use super::*;
use serde_json::Value;

pub(super) fn resolve_io(task: &mut Task, r: &mut Resolved, c: &mut Checker) {
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
        "avro_stream" => crate::input::avro::AvroFormat::compile(
            f.avro_bytes_decoder.as_ref(),
            f.flatten_spec.as_ref(),
            f.binary_as_string.unwrap_or(false),
            f.extract_unions_by_type.unwrap_or(false),
            "ioConfig.inputFormat",
        )
        .map(InputFormat::Avro)
        .map_err(|(path, message)| c.fail(&path, message))
        .ok(),
        "protobuf" => crate::input::protobuf::ProtobufFormat::compile(
            f.proto_bytes_decoder.as_ref(),
            f.flatten_spec.as_ref(),
            "ioConfig.inputFormat",
        )
        .map(InputFormat::Protobuf)
        .map_err(|(path, message)| c.fail(&path, message))
        .ok(),
        other => {
            let why = match other {
                "thrift" => "Thrift records are not supported yet",
                "avro_ocf" | "parquet" | "orc" => "a file format, not a stream format",
                _ => "not an inputFormat type",
            };
            c.fail(
                "ioConfig.inputFormat.type",
                format!(
                    "{other:?} is not supported: {why} (json, csv, tsv, delimited, \
                     avro_stream, protobuf)"
                ),
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
