//! Local replay end to end (issue 2): dump → rollup → v9 segments → local
//! deep storage → embedded metadata store, checked against a naive rollup,
//! for determinism, exactly-once publishing, and bad dumps.

mod common;

use common::*;
use kinesis_peon::publish::MetadataStore;
use kinesis_peon::task::layout_for;
use std::path::Path;

const FLIGHT_ROWS: i64 = 336_776;

#[test]
fn flights_rollup_matches_a_naive_computation() {
    let dump = flights_dump("flights4", 4, None);
    let base = fresh_dir("rollup");
    let task = flights_task(&base, "rollup", 4, "rollup", &[]);
    let summary = run_task(&task, &dump, &base);
    assert_eq!(summary.error, None);
    assert_eq!(summary.stats.processed, FLIGHT_ROWS as u64);

    let segments = published_segments(&base, "flights");
    assert_eq!(segments.len(), 366, "one segment per UTC day");
    let got = groups_from_segments(&segments);
    let total: i64 = got.values().map(|g| g.0).sum();
    assert_eq!(total, FLIGHT_ROWS);

    let want = naive_groups(None);
    assert_eq!(got.len(), want.len(), "group count");
    assert_eq!(got.len(), 330_813);
    let nulls = got.values().filter(|g| g.1.is_none()).count();
    assert_eq!(nulls, 8_012, "groups with no dep_delay stay null");
    for (key, g) in &want {
        assert_eq!(got.get(key), Some(g), "group {key:?}");
    }

    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary.status_file).unwrap()).unwrap();
    assert_eq!(status["status"], "SUCCESS");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary.report_file).unwrap()).unwrap();
    let stats = &report["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"];
    assert_eq!(stats["processed"], FLIGHT_ROWS);
    assert_eq!(stats["unparseable"], 0);
}

#[test]
fn same_dump_and_task_give_identical_segments_zipped_or_not() {
    let dump = flights_dump("flights4", 4, None);
    let runs = [
        ("determinism-a", None),
        ("determinism-b", None),
        ("determinism-zip-a", Some("true")),
        ("determinism-zip-b", Some("true")),
    ];
    let mut pushed = Vec::new();
    for (name, zip) in runs {
        let base = fresh_dir(name);
        let task = flights_task(&base, "det", 4, "det", &[]);
        let props: Vec<(&str, &str)> = zip.map(|z| ("druid.storage.zip", z)).into_iter().collect();
        assert_eq!(run_task_with(&task, &dump, &base, &props).error, None);
        pushed.push(pushed_by_interval(&base, "flights"));
    }
    for (a, b, files) in [(0, 1, 4), (2, 3, 1)] {
        let (za, zb) = (&pushed[a], &pushed[b]);
        assert_eq!(za.len(), 366);
        assert_eq!(za.keys().collect::<Vec<_>>(), zb.keys().collect::<Vec<_>>());
        for (k, segment) in za {
            assert_eq!(segment.len(), files, "{k:?}: {:?}", segment.keys());
            assert!(
                segment == &zb[k],
                "the segment of {k:?} differs between runs"
            );
        }
    }
    // Druid's default for local deep storage keeps the files as they are;
    // the zip holds the very same files.
    let (plain, zipped) = (&pushed[0], &pushed[2]);
    for (k, files) in plain {
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            ["00000.smoosh", "factory.json", "meta.smoosh", "version.bin"]
        );
        let zip = &zipped[k]["index.zip"];
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        assert_eq!(archive.len(), files.len());
        for (name, bytes) in files {
            let mut entry = archive.by_name(name).unwrap();
            let mut unzipped = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut unzipped).unwrap();
            assert!(
                &unzipped == bytes,
                "{k:?} {name}: the zip holds other bytes"
            );
        }
    }
}

fn committed(base: &Path) -> Vec<(String, String)> {
    let store = MetadataStore::open(&layout_for(base).metadata_db()).unwrap();
    store
        .committed_offsets("flights")
        .unwrap()
        .unwrap()
        .offsets
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
}

#[test]
fn publishing_is_exactly_once() {
    let prefix = flights_dump("flights2-prefix", 2, Some(50_000));
    let full = flights_dump("flights2-full", 2, Some(80_000));
    let base = fresh_dir("exactly-once");

    let first = flights_task(&base, "first", 2, "first", &[]);
    let s1 = run_task(&first, &prefix, &base);
    assert_eq!(s1.error, None);
    let after_first = published_segments(&base, "flights");
    let count_first: i64 = groups_from_segments(&after_first)
        .values()
        .map(|g| g.0)
        .sum();
    assert_eq!(count_first, 50_000);

    // The same task again: the same segment ids are already there, so it
    // succeeds and adds nothing.
    let again = run_task(&first, &prefix, &base);
    assert_eq!(again.error, None);
    assert!(again.already_published);
    assert_eq!(
        published_segments(&base, "flights").len(),
        after_first.len()
    );

    // Another task starting inclusively where the first did: refused.
    let clash = flights_task(&base, "clash", 2, "clash", &[]);
    let s = run_task(&clash, &prefix, &base);
    let err = s.error.expect("a clashing start must fail");
    assert!(err.contains("do not match the task's start"), "{err}");
    assert_eq!(
        published_segments(&base, "flights").len(),
        after_first.len()
    );

    // A follow-on task starting exclusively from the stored end offsets of
    // the longer dump publishes exactly the new rows.
    let stored = committed(&base);
    let starts: Vec<(&str, bool)> = stored.iter().map(|(_, v)| (v.as_str(), true)).collect();
    let next = flights_task(&base, "next", 2, "next", &starts);
    let s2 = run_task(&next, &full, &base);
    assert_eq!(s2.error, None);
    assert_eq!(s2.stats.processed, 30_000);
    let all = published_segments(&base, "flights");
    let got = groups_from_segments(&all);
    assert_eq!(got.values().map(|g| g.0).sum::<i64>(), 80_000);
    assert_eq!(got, naive_groups(Some(80_000)));
}

fn write_dump(dir: &Path, shards: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    let list = serde_json::json!({
        "StreamName": "flights",
        "Shards": shards.iter().map(|(id, _)| serde_json::json!({
            "ShardId": id,
            "SequenceNumberRange": {"StartingSequenceNumber": "1"}
        })).collect::<Vec<_>>()
    });
    std::fs::write(dir.join("shards.json"), list.to_string()).unwrap();
    for (id, body) in shards {
        if !body.is_empty() {
            std::fs::write(dir.join(format!("{id}.jsonl")), body).unwrap();
        }
    }
}

fn record(seq: u64, data: &str) -> String {
    use base64::Engine;
    format!(
        "{{\"SequenceNumber\":\"{seq}\",\"ApproximateArrivalTimestamp\":1.0,\"Data\":\"{}\",\"PartitionKey\":\"k\"}}\n",
        base64::engine::general_purpose::STANDARD.encode(data)
    )
}

const ROW: &str = r#"{"timestamp":"2013-01-01T10:15:00Z","carrier":"UA","origin":"EWR","dest":"IAH","dep_delay":2,"distance":1400}"#;

#[test]
fn bad_dumps_fail_clearly_and_publish_nothing() {
    let good = format!("{}{}", record(2, ROW), record(3, ROW));
    let truncated = format!("{}{}", record(2, ROW), &record(3, ROW)[..40]);
    let not_base64 = format!(
        "{}{{\"SequenceNumber\":\"3\",\"Data\":\"!!not base64!!\"}}\n",
        record(2, ROW)
    );
    let cases = [
        ("truncated", truncated, "shardId-000000000001.jsonl:2"),
        ("not-base64", not_base64, "shardId-000000000001.jsonl:2"),
        (
            "missing",
            String::new(),
            "shardId-000000000001: no record file",
        ),
    ];
    for (name, body, expect) in cases {
        let base = fresh_dir(&format!("bad-{name}"));
        let dump = base.join("dump");
        write_dump(
            &dump,
            &[
                ("shardId-000000000000", &good),
                ("shardId-000000000001", &body),
            ],
        );
        let task = flights_task(&base, name, 2, name, &[]);
        let s = run_task(&task, &dump, &base);
        let err = s
            .error
            .unwrap_or_else(|| panic!("{name}: the task must fail"));
        assert!(err.contains(expect), "{name}: {err}");
        let store = MetadataStore::open(&layout_for(&base).metadata_db()).unwrap();
        assert!(
            store.used_segments("flights").unwrap().is_empty(),
            "{name}: nothing published"
        );
        assert!(
            store.committed_offsets("flights").unwrap().is_none(),
            "{name}: no offsets"
        );
        let status: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&s.status_file).unwrap()).unwrap();
        assert_eq!(status["status"], "FAILED");
        assert!(
            !layout_for(&base).deep_storage().join("flights").exists()
                || pushed_segments(&layout_for(&base).deep_storage()) == 0
        );
    }
}

/// Segments pushed under `dir`: index.zip files and index/ directories.
fn pushed_segments(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let pushed = p
                .file_name()
                .is_some_and(|f| f == "index.zip" || f == "index");
            if pushed {
                n += 1;
            } else if p.is_dir() {
                n += pushed_segments(&p);
            }
        }
    }
    n
}

#[test]
fn inclusive_and_exclusive_starts_and_explicit_ends() {
    let base = fresh_dir("bounds");
    let dump = base.join("dump");
    let body: String = (10..20).map(|s| record(s, ROW)).collect();
    write_dump(&dump, &[("shardId-000000000000", &body)]);
    let task_at = |name: &str, start: &str, exclusive: bool, end: &str| {
        let path = flights_task(&base, name, 1, name, &[(start, exclusive)]);
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["ioConfig"]["endSequenceNumbers"]["partitionSequenceNumberMap"]["shardId-000000000000"] =
            end.into();
        v["dataSchema"]["dataSource"] = name.into();
        std::fs::write(&path, v.to_string()).unwrap();
        path
    };
    let cases = [
        ("incl", "12", false, "15", 4u64),
        ("excl", "12", true, "15", 3),
        ("to-end", "12", true, "NO_END_SEQUENCE_NUMBER", 7),
    ];
    for (name, start, exclusive, end, rows) in cases {
        let s = run_task(&task_at(name, start, exclusive, end), &dump, &base);
        assert_eq!(s.error, None, "{name}");
        assert_eq!(s.stats.processed, rows, "{name}");
    }
    // An end beyond the dump cannot be reached: a clear failure.
    let s = run_task(&task_at("beyond", "12", false, "99"), &dump, &base);
    assert!(
        s.error
            .unwrap()
            .contains("before the task's end sequence number 99")
    );
}

#[test]
fn bad_rows_are_counted_not_fatal() {
    let base = fresh_dir("bad-rows");
    let dump = base.join("dump");
    let body = [
        record(2, ROW),
        record(3, "{not json"),
        record(4, r#"{"timestamp":"yesterday","carrier":"UA"}"#),
        record(5, ""),
        record(
            6,
            r#"{"timestamp":"2013-01-01T10:15:00Z","carrier":"UA","dep_delay":"late"}"#,
        ),
    ]
    .concat();
    write_dump(&dump, &[("shardId-000000000000", &body)]);
    let path = flights_task(&base, "badrows", 1, "badrows", &[]);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["tuningConfig"]["maxSavedParseExceptions"] = 10.into();
    std::fs::write(&path, v.to_string()).unwrap();
    let s = run_task(&path, &dump, &base);
    assert_eq!(s.error, None);
    assert_eq!(s.stats.processed, 1);
    assert_eq!(s.stats.unparseable, 2);
    assert_eq!(s.stats.thrown_away, 1);
    assert_eq!(s.stats.processed_with_error, 1);
    assert_eq!(s.saved_errors.len(), 3);
    assert!(
        s.saved_errors
            .iter()
            .any(|e| e.contains("shardId-000000000000, sequence number 3"))
    );

    // With maxParseExceptions 1 the same dump fails the task.
    v["tuningConfig"]["maxParseExceptions"] = 1.into();
    v["dataSchema"]["dataSource"] = "badrows2".into();
    std::fs::write(&path, v.to_string()).unwrap();
    let s = run_task(&path, &dump, &base);
    assert!(
        s.error
            .unwrap()
            .contains("Max parse exceptions[1] exceeded")
    );
}

#[test]
fn csv_and_tsv_give_the_json_results() {
    let want = naive_groups(Some(30_000));
    for flavour in ["csv", "tsv"] {
        let dump = flights_dump_of(flavour, &format!("flights2-{flavour}"), 2, Some(30_000));
        let base = fresh_dir(&format!("flavour-{flavour}"));
        let path = flights_task(&base, flavour, 2, flavour, &[]);
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["ioConfig"]["inputFormat"] =
            serde_json::json!({"type": flavour, "columns": FLIGHT_COLUMNS});
        std::fs::write(&path, v.to_string()).unwrap();
        let s = run_task(&path, &dump, &base);
        assert_eq!(s.error, None, "{flavour}");
        assert_eq!(s.stats.processed, 30_000, "{flavour}");
        let got = groups_from_segments(&published_segments(&base, "flights"));
        assert!(
            got == want,
            "{flavour}: groups differ from the naive json rollup"
        );
    }
}

#[test]
fn schemaless_tsv_discovers_every_column_but_the_excluded() {
    let dump = flights_dump_of("tsv", "flights1-tsv", 1, Some(2_000));
    let base = fresh_dir("schemaless-tsv");
    let path = flights_task(&base, "schemaless", 1, "schemaless", &[]);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["ioConfig"]["inputFormat"] = serde_json::json!({"type": "tsv", "columns": FLIGHT_COLUMNS});
    v["dataSchema"]["dimensionsSpec"] =
        serde_json::json!({"dimensions": [], "dimensionExclusions": ["time_hour"]});
    std::fs::write(&path, v.to_string()).unwrap();
    let s = run_task(&path, &dump, &base);
    assert_eq!(s.error, None);
    let segments = published_segments(&base, "flights");
    let (_, first) = &segments[0];
    let dims: Vec<&str> = first.dimensions.iter().map(|d| d.name.as_str()).collect();
    // Column order, minus the timestamp, metric inputs and the exclusion.
    let expected: Vec<&str> = FLIGHT_COLUMNS
        .into_iter()
        .filter(|c| !["timestamp", "dep_delay", "distance", "time_hour"].contains(c))
        .collect();
    assert_eq!(dims, expected);
}

/// A Joda pattern in timestampSpec reads the same times as "iso"; an
/// unusable pattern is refused at validation, naming the field.
#[test]
fn joda_timestamp_patterns() {
    let dump = flights_dump("flights2-small", 2, Some(5_000));
    let base = fresh_dir("joda");
    let task = flights_task(&base, "joda", 2, "joda", &[]);
    let mut json =
        edit_task(
            &task,
            |t| {
                t["dataSchema"]["timestampSpec"] =
                    serde_json::json!({"column": "timestamp", "format": "yyyy-MM-dd'T'HH:mm:ssZ"})
            },
        );
    let summary = run_task(&task, &dump, &base);
    assert_eq!(summary.error, None);
    assert_eq!(summary.stats.processed, 5_000);
    assert_eq!(
        groups_from_segments(&published_segments(&base, "flights")),
        naive_groups(Some(5_000))
    );

    json["dataSchema"]["timestampSpec"]["format"] = "yyyy-MM-dd HH:mm z".into();
    let Err(err) = kinesis_peon::spec::load_task(&serde_json::to_vec(&json).unwrap()) else {
        panic!("a z pattern must be refused");
    };
    assert!(
        err.to_string().contains("dataSchema.timestampSpec.format"),
        "{err}"
    );
}

/// A flattenSpec with root, path and jq fields (no discovery) gives the
/// rows of the plain JSON task; a field not named is not read.
#[test]
fn flatten_spec_fields_feed_the_same_rows() {
    let dump = flights_dump("flights2-small", 2, Some(5_000));
    let base = fresh_dir("flatten");
    let task = flights_task(&base, "flatten", 2, "flatten", &[]);
    let mut json = edit_task(&task, |t| {
        t["ioConfig"]["inputFormat"]["flattenSpec"] = serde_json::json!({
            "useFieldDiscovery": false,
            "fields": [
                {"type": "root", "name": "timestamp"},
                {"type": "path", "name": "carrier", "expr": "$.carrier"},
                {"type": "jq", "name": "origin", "expr": ".origin"},
                {"type": "path", "name": "dest", "expr": "$['dest']"},
                {"type": "root", "name": "dep_delay", "expr": "dep_delay"},
                {"type": "jq", "name": "distance", "expr": ".[\"distance\"]"}
            ]
        })
    });
    let summary = run_task(&task, &dump, &base);
    assert_eq!(summary.error, None);
    assert_eq!(summary.stats.processed, 5_000);
    assert_eq!(
        groups_from_segments(&published_segments(&base, "flights")),
        naive_groups(Some(5_000))
    );

    json["ioConfig"]["inputFormat"]["flattenSpec"]["fields"][1]["expr"] = "$.carrier[*]".into();
    let Err(err) = kinesis_peon::spec::load_task(&serde_json::to_vec(&json).unwrap()) else {
        panic!("a wildcard must be refused");
    };
    assert!(
        err.to_string()
            .contains("ioConfig.inputFormat.flattenSpec.fields[1].expr"),
        "{err}"
    );
}

/// transformSpec.filter (fixture task 04's filter): rejected rows count as
/// thrownAway; the kept rows are exactly those a naive reading keeps.
#[test]
fn transform_filter_throws_rows_away() {
    let rows = 30_000usize;
    let dump = flights_dump("flights3-30k", 3, Some(rows as u64));
    let base = fresh_dir("filter");
    let task = flights_task(&base, "filter", 3, "filter", &[]);
    edit_task(&task, |t| {
        t["dataSchema"]["transformSpec"] = serde_json::json!({"filter": {"type": "and", "fields": [
            {"type": "not", "field": {"type": "selector", "dimension": "carrier", "value": "HA"}},
            {"type": "in", "dimension": "origin", "values": ["EWR", "JFK"]},
            {"type": "bound", "dimension": "distance", "lower": "500", "ordering": {"type": "numeric"}}
        ]}});
    });
    let kept = flights_rows(rows)
        .iter()
        .filter(|v| {
            v["carrier"] != "HA"
                && (v["origin"] == "EWR" || v["origin"] == "JFK")
                && v["distance"].as_i64().unwrap() >= 500
        })
        .count() as u64;
    assert!(kept > 1000 && kept < rows as u64 - 1000);
    let s = run_task(&task, &dump, &base);
    assert_eq!(s.error, None);
    assert_eq!(s.stats.processed, kept);
    assert_eq!(s.stats.thrown_away, rows as u64 - kept);
    let groups = groups_from_segments(&published_segments(&base, "flights"));
    assert_eq!(groups.values().map(|g| g.0).sum::<i64>() as u64, kept);
    assert!(groups.keys().all(|k| k.1 != "HA" && k.2 != "LGA"));
}
