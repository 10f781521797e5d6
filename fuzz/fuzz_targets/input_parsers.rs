//! The input parsers on arbitrary record bytes: json (schemaless, with a
//! flattenSpec, with comments allowed), csv and tsv (given columns, and
//! columns from a header), each also behind KPL deaggregation. Every record
//! must parse or give a parse error, never panic. The first byte picks the
//! parser; the rest is one record's data.
#![no_main]

use kinesis_peon::input::{RowBuffer, RowParser};
use kinesis_peon::source::kpl::deaggregate;
use kinesis_peon::spec::load_task;
use libfuzzer_sys::fuzz_target;
use std::sync::{Mutex, OnceLock};

const FORMATS: [&str; 5] = [
    r#"{"type": "json"}"#,
    r#"{"type": "json", "featureSpec": {"ALLOW_COMMENTS": true, "ALLOW_YAML_COMMENTS": true},
        "flattenSpec": {"useFieldDiscovery": true, "fields": [
          {"type": "path", "name": "deep", "expr": "$.a.b[1].c"},
          {"type": "jq", "name": "jq", "expr": ".x.y"},
          {"type": "root", "name": "carrier"}]}}"#,
    r#"{"type": "csv", "columns": ["timestamp", "carrier", "origin", "n"], "listDelimiter": "|"}"#,
    r#"{"type": "tsv", "columns": ["timestamp", "carrier", "origin", "n"]}"#,
    r#"{"type": "csv", "findColumnsFromHeader": true, "skipHeaderRows": 1}"#,
];

fn task(format: &str) -> String {
    format!(
        r#"{{"type": "index_kinesis",
            "dataSchema": {{"dataSource": "fuzz",
              "timestampSpec": {{"column": "timestamp", "format": "auto"}},
              "dimensionsSpec": {{"dimensions": []}},
              "metricsSpec": [{{"type": "count", "name": "count"}}],
              "granularitySpec": {{"segmentGranularity": "day", "queryGranularity": "none"}}}},
            "ioConfig": {{"stream": "s",
              "startSequenceNumbers": {{"stream": "s", "partitionSequenceNumberMap": {{"shardId-000000000000": "1"}}}},
              "inputFormat": {format}}},
            "tuningConfig": {{"type": "KinesisTuningConfig"}}}}"#
    )
}

/// One parser per format, built once (they learn columns as they go, as
/// in a task).
fn parsers() -> &'static [Mutex<RowParser>] {
    static P: OnceLock<Vec<Mutex<RowParser>>> = OnceLock::new();
    P.get_or_init(|| {
        FORMATS
            .iter()
            .map(|f| {
                let loaded = load_task(task(f).as_bytes())
                    .unwrap_or_else(|e| panic!("fuzz task for {f}: {e}"));
                Mutex::new(RowParser::new(&loaded.task))
            })
            .collect()
    })
}

fn parse(parser: &mut RowParser, data: &[u8]) {
    let mut rows = RowBuffer::new();
    let _ = parser.parse(data, &mut rows);
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let parsers = parsers();
    let mut parser = parsers[which as usize % parsers.len()]
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if which >= 128 {
        // A KPL aggregate: each record it holds, or the bytes as they are.
        match deaggregate(bytes) {
            Ok(Some(records)) => {
                for r in &records {
                    parse(&mut parser, r);
                }
            }
            _ => parse(&mut parser, bytes),
        }
    } else {
        if let Some(settings) = parser.comments() {
            let _ = kinesis_peon::input::strip_json_comments(bytes, settings);
        }
        parse(&mut parser, bytes);
    }
});
