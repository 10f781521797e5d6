//! Avro (`avro_stream`) and Protobuf (`protobuf`) records, encoded by the
//! real encoders (Python's fastavro, and protobuf with protoc from
//! grpcio-tools: tests/servers/encode_formats.py): flights rows in either
//! format publish the same segment files, byte for byte, as the JSON run
//! of the same task; malformed records are each counted unparseable with
//! their shard and sequence number.

mod common;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const ROWS: usize = 2000;

/// The encoder's output for the first `ROWS` flights rows, made once per
/// test binary.
fn encoded() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let out = scratch().join("formats-encoded");
        let status = std::process::Command::new("python3")
            .arg(repo().join("tests/servers/encode_formats.py"))
            .arg(flights_ndjson())
            .arg(ROWS.to_string())
            .arg(&out)
            .status()
            .expect("python3 runs (scripts/test installs fastavro and grpcio-tools)");
        assert!(status.success(), "encode_formats.py failed");
        out
    })
}

fn records(file: &str) -> Vec<Vec<u8>> {
    std::fs::read_to_string(encoded().join(file))
        .unwrap()
        .lines()
        .map(|l| base64::engine::general_purpose::STANDARD.decode(l).unwrap())
        .collect()
}

fn avro_format() -> Value {
    let schema: Value =
        serde_json::from_slice(&std::fs::read(encoded().join("flights.avsc")).unwrap()).unwrap();
    json!({"type": "avro_stream", "avroBytesDecoder": {"type": "schema_inline", "schema": schema}})
}

fn protobuf_format() -> Value {
    json!({"type": "protobuf", "protoBytesDecoder": {
        "type": "file",
        "descriptor": format!("file://{}", encoded().join("flights.desc").display()),
        "protoMessageType": "flights.Flight"
    }})
}

/// Run the flights task over `records` with `format` as its inputFormat;
/// the deep-storage base directory.
fn run_flights(name: &str, records: &[impl AsRef<[u8]>], format: Value) -> PathBuf {
    let base = fresh_dir(name);
    let dump = base.join("dump");
    write_one_shard_dump(&dump, records, 1);
    let task = flights_task(&base, name, 1, "formats", &[]);
    edit_task(&task, |t| t["ioConfig"]["inputFormat"] = format);
    let s = run_task(&task, &dump, &base);
    assert_eq!(s.error, None, "{name}");
    assert_eq!(
        (s.stats.processed, s.stats.unparseable),
        (ROWS as u64, 0),
        "{name}: {:?}",
        s.saved_errors
    );
    base
}

/// The strongest check: the same rows through Avro, through Protobuf and
/// through JSON give the same segment files.
#[test]
fn flights_as_avro_and_protobuf_publish_the_json_segments() {
    let json_base = run_flights(
        "formats-json",
        &flights_lines("ndjson", ROWS),
        json!({"type": "json"}),
    );
    let expected = pushed_by_interval(&json_base, "flights");
    assert!(!expected.is_empty());
    let avro = records("avro.b64");
    assert_eq!(avro.len(), ROWS);
    let avro_base = run_flights("formats-avro", &avro, avro_format());
    assert_eq!(pushed_by_interval(&avro_base, "flights"), expected, "avro");
    // A flattenSpec field takes the general path (the crate's value tree)
    // instead of the direct one: the same segments again.
    let mut general = avro_format();
    general["flattenSpec"] = json!({"fields": [{"type": "root", "name": "carrier"}]});
    let general_base = run_flights("formats-avro-general", &avro, general);
    assert_eq!(
        pushed_by_interval(&general_base, "flights"),
        expected,
        "avro, general path"
    );
    let proto = records("protobuf.b64");
    assert_eq!(proto.len(), ROWS);
    let proto_base = run_flights("formats-protobuf", &proto, protobuf_format());
    assert_eq!(
        pushed_by_interval(&proto_base, "flights"),
        expected,
        "protobuf"
    );
    let mut general = protobuf_format();
    general["flattenSpec"] = json!({"fields": [{"type": "root", "name": "carrier"}]});
    let general_base = run_flights("formats-protobuf-general", &proto, general);
    assert_eq!(
        pushed_by_interval(&general_base, "flights"),
        expected,
        "protobuf, general path"
    );
    // And the rows are the flights rows (not merely equal nothings).
    assert_eq!(
        groups_from_segments(&published_segments(&avro_base, "flights")),
        naive_groups(Some(ROWS))
    );
}

struct Entry {
    name: String,
    expect: String,
    data: Vec<u8>,
}

fn corpus(file: &str) -> Vec<Entry> {
    std::fs::read_to_string(encoded().join(file))
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            Entry {
                name: v["name"].as_str().unwrap().into(),
                expect: v["expect"].as_str().unwrap().into(),
                data: base64::engine::general_purpose::STANDARD
                    .decode(v["base64"].as_str().unwrap())
                    .unwrap(),
            }
        })
        .collect()
}

/// Every malformed record is unparseable, saved with its shard and
/// sequence number and a reason; the good ones between them are
/// processed; one error fewer allowed fails the task by name.
fn check_corpus(name: &str, entries: &[Entry], format: Value, reason: &str) {
    const FIRST: u64 = 100;
    let bad = entries.iter().filter(|e| e.expect == "unparseable").count() as u64;
    let good = entries.iter().filter(|e| e.expect == "processed").count() as u64;
    assert_eq!(bad + good, entries.len() as u64);
    assert!(bad >= 12, "{name}: {bad} malformed records");
    let base = fresh_dir(name);
    let dump = base.join("dump");
    let data: Vec<&[u8]> = entries.iter().map(|e| e.data.as_slice()).collect();
    write_one_shard_dump(&dump, &data, FIRST);
    let task = flights_task(&base, name, 1, "bad", &[]);
    edit_task(&task, |t| {
        t["ioConfig"]["inputFormat"] = format;
        t["tuningConfig"]["maxParseExceptions"] = bad.into();
        t["tuningConfig"]["maxSavedParseExceptions"] = 1000.into();
    });
    let s = run_task(&task, &dump, &base);
    assert_eq!(s.error, None, "{name}");
    assert_eq!(
        (s.stats.processed, s.stats.unparseable, s.stats.thrown_away),
        (good, bad, 0),
        "{name}: {:#?}",
        s.saved_errors
    );
    for (i, e) in entries.iter().enumerate() {
        let at = format!("shardId-000000000000, sequence number {}", FIRST + i as u64);
        let saved: Vec<&String> = s.saved_errors.iter().filter(|m| m.contains(&at)).collect();
        if e.expect == "unparseable" {
            assert_eq!(saved.len(), 1, "{name}: {}: {at}", e.name);
            // A decoding failure names the decoder; a record that decodes
            // but lacks its time says so.
            assert!(
                saved[0].contains(reason) || saved[0].contains("timestamp"),
                "{name}: {}: {}",
                e.name,
                saved[0]
            );
        } else {
            assert!(saved.is_empty(), "{name}: {}: {saved:?}", e.name);
        }
    }
    edit_task(&task, |t| {
        t["tuningConfig"]["maxParseExceptions"] = (bad - 1).into();
        t["dataSchema"]["dataSource"] = "bad2".into();
    });
    let s = run_task(&task, &dump, &base);
    let error = s.error.expect("the task fails");
    assert!(
        error.contains(&format!("Max parse exceptions[{}] exceeded", bad - 1)),
        "{error}"
    );
    assert!(published_segments(&base, "bad2").is_empty());
}

#[test]
fn every_malformed_avro_record_is_counted() {
    check_corpus(
        "formats-bad-avro",
        &corpus("avro-bad.jsonl"),
        avro_format(),
        "Fail to decode avro message",
    );
}

#[test]
fn every_malformed_protobuf_record_is_counted() {
    check_corpus(
        "formats-bad-protobuf",
        &corpus("protobuf-bad.jsonl"),
        protobuf_format(),
        "Fail to decode protobuf message",
    );
}

/// Types and decoders not supported are refused at validation, by name.
#[test]
fn unsupported_formats_are_refused_by_name() {
    let base = fresh_dir("formats-refused");
    for (format, path, words) in [
        (
            json!({"type": "thrift"}),
            "ioConfig.inputFormat.type",
            "\"thrift\" is not supported",
        ),
        (
            json!({"type": "avro_stream", "avroBytesDecoder": {"type": "schema_repo"}}),
            "ioConfig.inputFormat.avroBytesDecoder.type",
            "\"schema_repo\" is not supported",
        ),
        (
            json!({"type": "avro_stream", "avroBytesDecoder": {"type": "schema_registry"}}),
            "ioConfig.inputFormat.avroBytesDecoder.urls",
            "is required",
        ),
        (
            json!({"type": "protobuf", "protoBytesDecoder": {"type": "schema_registry", "url": "ftp://x"}}),
            "ioConfig.inputFormat.protoBytesDecoder.url",
            "must be an http or https URL",
        ),
        (
            json!({"type": "protobuf", "protoBytesDecoder": {"type": "file", "descriptor": "file:///nonexistent/x.desc", "protoMessageType": "X"}}),
            "ioConfig.inputFormat.protoBytesDecoder.descriptor",
            "/nonexistent/x.desc",
        ),
    ] {
        let task = flights_task(&base, "refused", 1, "r", &[]);
        let v = edit_task(&task, |t| t["ioConfig"]["inputFormat"] = format);
        let err = kinesis_peon::spec::load_task(v.to_string().as_bytes())
            .err()
            .unwrap_or_else(|| panic!("{v} was accepted"))
            .to_string();
        assert!(err.contains(path) && err.contains(words), "{err}");
    }
}

/// Druid's own stream-ingestion integration test (apache/druid,
/// integration-tests: `AbstractStreamIndexingTest` with the `avro` and
/// `protobuf` data specs): its supervisor template's dataSchema, its
/// parser and inputFormat snippets as they stand there (the descriptor
/// path put in), over the events its generator writes, serialized as its
/// serializers do. Druid's test expects 60 events, `added` summing to
/// 6·7/2·10 = 210, between 01:00:00 and 01:00:09.
#[test]
fn druids_stream_integration_test_data_gives_its_totals() {
    let desc = format!("file://{}", encoded().join("wikipedia.desc").display());
    let avro_decoder = json!({"type": "schema_inline", "schema": {
    "namespace": "org.apache.druid", "name": "wikipedia", "type": "record",
    "fields": [
        {"name": "timestamp", "type": "string"}, {"name": "page", "type": "string"},
        {"name": "language", "type": "string"}, {"name": "user", "type": "string"},
        {"name": "unpatrolled", "type": "string"}, {"name": "newPage", "type": "string"},
        {"name": "robot", "type": "string"}, {"name": "anonymous", "type": "string"},
        {"name": "namespace", "type": "string"}, {"name": "continent", "type": "string"},
        {"name": "country", "type": "string"}, {"name": "region", "type": "string"},
        {"name": "city", "type": "string"}, {"name": "added", "type": "long"},
        {"name": "deleted", "type": "long"}, {"name": "delta", "type": "long"}
    ]}});
    let dims = json!([
        "page",
        "language",
        "user",
        "unpatrolled",
        "newPage",
        "robot",
        "anonymous",
        "namespace",
        "continent",
        "country",
        "region",
        "city"
    ]);
    let parse_spec = |format: &str| {
        json!({"format": format,
               "timestampSpec": {"column": "timestamp", "format": "auto"},
               "dimensionsSpec": {"dimensions": dims}})
    };
    let proto_decoder =
        json!({"type": "file", "descriptor": desc, "protoMessageType": "Wikipedia"});
    let cases = [
        (
            "avro-parser",
            "wiki-avro.b64",
            json!({"type": "avro_stream", "avroBytesDecoder": avro_decoder,
                   "parseSpec": parse_spec("avro")}),
            Value::Null,
        ),
        (
            "avro-input-format",
            "wiki-avro.b64",
            Value::Null,
            json!({"type": "avro_stream", "avroBytesDecoder": avro_decoder}),
        ),
        (
            "protobuf-parser",
            "wiki-protobuf.b64",
            json!({"type": "protobuf", "protoBytesDecoder": proto_decoder,
                   "parseSpec": parse_spec("json")}),
            Value::Null,
        ),
        (
            "protobuf-input-format",
            "wiki-protobuf.b64",
            Value::Null,
            json!({"type": "protobuf", "protoBytesDecoder": proto_decoder,
                   "flattenSpec": {"useFieldDiscovery": true}, "binaryAsString": false}),
        ),
    ];
    for (name, file, parser, input_format) in cases {
        let base = fresh_dir(&format!("formats-druid-it-{name}"));
        let dump = base.join("dump");
        write_one_shard_dump(&dump, &records(file), 1);
        let task = json!({
            "type": "index_kinesis",
            "id": format!("index_kinesis_druid_it_{name}"),
            "dataSchema": {
                "dataSource": "wikipedia",
                "parser": parser,
                "timestampSpec": {"column": "timestamp", "format": "auto"},
                "dimensionsSpec": {"dimensions": dims, "dimensionExclusions": [],
                                   "spatialDimensions": []},
                "metricsSpec": [
                    {"type": "count", "name": "count"},
                    {"type": "doubleSum", "name": "added", "fieldName": "added"},
                    {"type": "doubleSum", "name": "deleted", "fieldName": "deleted"},
                    {"type": "doubleSum", "name": "delta", "fieldName": "delta"}
                ],
                "granularitySpec": {"type": "uniform", "segmentGranularity": "MINUTE",
                                    "queryGranularity": "NONE"}
            },
            "tuningConfig": {"type": "kinesis", "intermediatePersistPeriod": "PT30S",
                             "maxRowsPerSegment": 5000000, "maxRowsInMemory": 500000},
            "ioConfig": {
                "type": "kinesis",
                "startSequenceNumbers": {"type": "start", "stream": "flights",
                    "partitionSequenceNumberMap": {"shardId-000000000000": "UNREAD_TRIM_HORIZON"}},
                "endSequenceNumbers": {"type": "end", "stream": "flights",
                    "partitionSequenceNumberMap": {"shardId-000000000000": "NO_END_SEQUENCE_NUMBER"}},
                "inputFormat": input_format
            }
        });
        let path = base.join("task.json");
        std::fs::write(&path, task.to_string()).unwrap();
        let s = run_task(&path, &dump, &base);
        assert_eq!(s.error, None, "{name}");
        assert_eq!(
            (s.stats.processed, s.stats.unparseable),
            (60, 0),
            "{name}: {:?}",
            s.saved_errors
        );
        let segments = published_segments(&base, "wikipedia");
        assert_eq!(segments.len(), 1, "{name}: one MINUTE segment");
        let data = &segments[0].1;
        let first = 767_581_200_000; // 1994-04-29T01:00:00Z
        assert_eq!(data.interval, (first, first + 60_000), "{name}");
        // Equal dimensions within a second roll up: one row a second.
        let seconds: Vec<i64> = (0..10).map(|s| first + s * 1000).collect();
        assert_eq!(data.times, seconds, "{name}");
        let metric = |m: &str| -> f64 {
            let col = data.metrics.iter().find(|c| c.name == m).unwrap();
            match &col.values {
                kinesis_peon::segment::NumericValues::Long(v) => v.iter().sum::<i64>() as f64,
                kinesis_peon::segment::NumericValues::Double(v) => v.iter().sum(),
                other => panic!("{name}: {m}: {other:?}"),
            }
        };
        assert_eq!(
            [
                metric("count"),
                metric("added"),
                metric("deleted"),
                metric("delta")
            ],
            [60.0, 210.0, 0.0, 210.0],
            "{name}"
        );
        let page = data.dimensions.iter().find(|c| c.name == "page").unwrap();
        assert_eq!(
            page.dictionary,
            vec![Some("Gypsy Danger".to_string())],
            "{name}"
        );
        assert_eq!(data.dimensions.len(), 12, "{name}");
    }
}
