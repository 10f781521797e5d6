//! The task files of ../shared/fixtures/tasks, as a MiddleManager would
//! hand them over, run on dumps made from ../shared/data. Only the stream
//! positions are rewritten (the fixtures' sequence numbers are synthetic);
//! every schema, format and tuning setting is the fixture's own. Published
//! totals are checked against a naive reading of the same rows.

mod common;

use common::*;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const ROWS: usize = 20_000;

/// The fixture with its stream positions pointed at `dump`: inclusive
/// starts at each shard's first record; ends kept open, or (where the
/// fixture has explicit ends) set to each shard's last record.
fn adapt(fixture: &str, dump: &Path, dir: &Path) -> PathBuf {
    let mut task: Value = serde_json::from_slice(
        &std::fs::read(shared().join("fixtures/tasks").join(fixture)).unwrap(),
    )
    .unwrap();
    let io = task["ioConfig"].as_object_mut().unwrap();
    let explicit_end = io["endSequenceNumbers"]["partitionSequenceNumberMap"]
        .as_object()
        .unwrap()
        .values()
        .any(|v| v != "NO_END_SEQUENCE_NUMBER");
    let shards: Value =
        serde_json::from_slice(&std::fs::read(dump.join("shards.json")).unwrap()).unwrap();
    let (mut start, mut end) = (Map::new(), Map::new());
    for shard in shards["Shards"].as_array().unwrap() {
        let id = shard["ShardId"].as_str().unwrap();
        let text = std::fs::read_to_string(dump.join(format!("{id}.jsonl"))).unwrap();
        let seq = |line: &str| -> Value {
            serde_json::from_str::<Value>(line).unwrap()["SequenceNumber"].clone()
        };
        start.insert(id.into(), seq(text.lines().next().unwrap()));
        end.insert(
            id.into(),
            if explicit_end {
                seq(text.lines().last().unwrap())
            } else {
                "NO_END_SEQUENCE_NUMBER".into()
            },
        );
    }
    for legacy in [
        "startPartitions",
        "endPartitions",
        "exclusiveStartSequenceNumberPartitions",
    ] {
        io.remove(legacy);
    }
    io.insert(
        "startSequenceNumbers".into(),
        json!({"type": "start", "stream": "flights", "partitionSequenceNumberMap": start, "exclusivePartitions": []}),
    );
    io.insert(
        "endSequenceNumbers".into(),
        json!({"type": "end", "stream": "flights", "partitionSequenceNumberMap": end}),
    );
    task.as_object_mut().unwrap().remove("context");
    let path = dir.join(fixture);
    std::fs::write(&path, serde_json::to_vec_pretty(&task).unwrap()).unwrap();
    path
}

/// Every published row, as dump-segment --rows shows it.
fn published_rows(base: &Path, data_source: &str) -> Vec<Map<String, Value>> {
    published_segments(base, data_source)
        .iter()
        .flat_map(|(_, seg)| (0..seg.num_rows()).map(move |r| seg.row_json(r, |_| true)))
        .collect()
}

fn sum_long(rows: &[Map<String, Value>], column: &str) -> i64 {
    rows.iter().filter_map(|r| r[column].as_i64()).sum()
}

fn run_fixture(fixture: &str, flavour: &str) -> (PathBuf, kinesis_peon::task::RunSummary) {
    let dump = flights_dump_of(
        flavour,
        &format!("fixture-{flavour}-20k"),
        2,
        Some(ROWS as u64),
    );
    let base = fresh_dir(fixture);
    let task = adapt(fixture, &dump, &base);
    let summary = run_task(&task, &dump, &base);
    assert_eq!(summary.error, None, "{fixture}");
    (base, summary)
}

fn hour(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap()
        .timestamp_millis()
        / 3_600_000
        * 3_600_000
}

/// 01: the seeds' schemaless metrics spec on flights rows: every column but
/// the excluded ones becomes a dimension; `value` is absent, so its
/// double aggregators are null; no two rows share all their columns.
#[test]
fn fixture_01_schemaless_json_rollup() {
    let (base, s) = run_fixture("01-json-rollup-metrics.json", "ndjson");
    assert_eq!(s.stats.processed, ROWS as u64);
    let rows = published_rows(&base, "metrics-kinesis");
    let naive: std::collections::BTreeSet<String> = flights_rows(ROWS)
        .iter()
        .map(|r| {
            let mut m = r.as_object().unwrap().clone();
            m.retain(|_, v| !v.is_null());
            serde_json::to_string(&m).unwrap()
        })
        .collect();
    assert_eq!(rows.len(), naive.len());
    assert_eq!(sum_long(&rows, "count"), ROWS as i64);
    assert!(
        rows.iter()
            .all(|r| r["value_sum"].is_null() && r["value_max"].is_null())
    );
    // Discovered in first-seen order, timestamp excluded.
    let first = &rows[0];
    assert!(first.contains_key("carrier") && first.contains_key("time_hour"));
    assert!(!first.contains_key("timestamp"));
}

/// 04: flattenSpec (root/path/jq), three expression transforms, an
/// and/not/in/bound filter over flattened names, message-time bounds.
#[test]
fn fixture_04_flatten_transform_filter() {
    let (base, s) = run_fixture("04-json-flatten-transform.json", "ndjson");
    type Key = (i64, String, String, String, String, String, String);
    let mut naive: BTreeMap<Key, (i64, i64, i64, f64, Option<i64>)> = BTreeMap::new();
    let mut kept = 0;
    for r in flights_rows(ROWS) {
        let (carrier, origin, dest) = (
            r["carrier"].as_str().unwrap(),
            r["origin"].as_str().unwrap(),
            r["dest"].as_str().unwrap(),
        );
        let distance = r["distance"].as_i64().unwrap();
        if carrier == "HA" || !["EWR", "JFK", "LGA"].contains(&origin) || distance < 100 {
            continue;
        }
        kept += 1;
        let arr = r["arr_delay"].as_i64();
        let class = match arr {
            Some(a) if a > 60 => "severe",
            Some(a) if a > 15 => "late",
            _ => "on_time",
        };
        let haul = if distance >= 1500 { "long" } else { "short" };
        let key = (
            hour(r["timestamp"].as_str().unwrap()),
            carrier.to_string(),
            origin.to_string(),
            dest.to_string(),
            format!("{origin}-{dest}"),
            class.to_string(),
            haul.to_string(),
        );
        let e = naive.entry(key).or_insert((0, 0, 0, 0.0, None));
        e.0 += 1;
        e.1 += r["dep_delay"].as_i64().unwrap_or(0);
        e.2 += arr.unwrap_or(0);
        e.3 += distance as f64;
        e.4 = match (e.4, arr) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    assert_eq!(s.stats.processed, kept);
    assert_eq!(s.stats.thrown_away, ROWS as u64 - kept);
    let mut published: BTreeMap<Key, (i64, i64, i64, f64, Option<i64>)> = BTreeMap::new();
    for r in published_rows(&base, "flights_routes") {
        let text = |c: &str| r[c].as_str().unwrap().to_string();
        let key = (
            kinesis_peon::spec::time::parse_iso(r["__time"].as_str().unwrap()).unwrap(),
            text("airline"),
            text("origin_airport"),
            text("dest_airport"),
            text("route"),
            text("delay_class"),
            text("haul"),
        );
        let value = (
            r["count"].as_i64().unwrap(),
            r["dep_delay_sum"].as_i64().unwrap_or(0),
            r["arr_delay_sum"].as_i64().unwrap_or(0),
            r["miles"].as_f64().unwrap(),
            r["max_arr_delay"].as_i64(),
        );
        assert!(published.insert(key, value).is_none(), "one row per group");
    }
    assert_eq!(published, naive);
    let classes: std::collections::BTreeSet<_> = published.keys().map(|k| k.5.clone()).collect();
    assert_eq!(
        classes.into_iter().collect::<Vec<_>>(),
        ["late", "on_time", "severe"]
    );
}
