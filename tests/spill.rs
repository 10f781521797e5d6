//! Intermediate persists and merge: segments written through spills equal,
//! byte for byte, the segments written straight from memory; memory stays
//! bounded on the 10x flights input.

mod common;

use common::*;
use kinesis_peon::source::make_dump::{DumpCompression, MakeDumpOptions, make_dump};
use serde_json::json;
use std::process::Command;

fn assert_same_segments(a: &std::path::Path, b: &std::path::Path) -> usize {
    let za = pushed_by_interval(a, "flights");
    let zb = pushed_by_interval(b, "flights");
    assert_eq!(za.keys().collect::<Vec<_>>(), zb.keys().collect::<Vec<_>>());
    for (k, bytes) in &za {
        assert!(bytes == &zb[k], "the segment of {k:?} differs");
    }
    za.len()
}

/// Run `spilling` into `spilled` and `direct_task` into `direct` on `dump`:
/// both succeed, the first persists at least `min_persists` times, the
/// second never.
fn run_spilled_and_direct(
    (spilling, spilled): (&std::path::Path, &std::path::Path),
    (direct_task, direct): (&std::path::Path, &std::path::Path),
    dump: &std::path::Path,
    min_persists: usize,
) {
    let sa = run_task(spilling, dump, spilled);
    let sb = run_task(direct_task, dump, direct);
    assert_eq!(sa.error, None);
    assert_eq!(sb.error, None);
    assert!(sa.persists >= min_persists, "{} persists", sa.persists);
    assert_eq!(sb.persists, 0);
}

#[test]
fn many_small_persists_and_partitions_match_a_run_without_persists() {
    let dump = flights_dump("flights3-60k", 3, Some(60_000));
    let spilled = fresh_dir("spill-small-a");
    let direct = fresh_dir("spill-small-b");
    // 700 rows per persist: many spills per day; 300 rows per segment:
    // several partitions per day, cut after the merge.
    // Persists in other layouts than the final segments: the merge reads
    // uncompressed ids, raw values and table/delta-encoded longs from disk.
    let tuned = |max_rows_in_memory: i64| {
        json!({"type": "KinesisTuningConfig", "maxRowsInMemory": max_rows_in_memory,
               "maxRowsPerSegment": 300, "maxPendingPersists": 1,
               "indexSpecForIntermediatePersists": {"dimensionCompression": "uncompressed",
                   "metricCompression": "none", "longEncoding": "auto"}})
    };
    let a = flights_task_tuned(&spilled, "spill-a", 3, "spill", tuned(700));
    let b = flights_task_tuned(&direct, "spill-b", 3, "spill", tuned(10_000_000));
    run_spilled_and_direct((&a, &spilled), (&b, &direct), &dump, 50);
    let segments = assert_same_segments(&spilled, &direct);
    assert!(segments > 2 * 60, "{segments} segments");
    // Every partition holds at most maxRowsPerSegment rows; the rollup
    // equals the naive one.
    let published = published_segments(&spilled, "flights");
    assert!(published.iter().all(|(_, d)| d.num_rows() <= 300));
    assert!(published.iter().any(|(_, d)| d.num_rows() == 300));
    assert_eq!(groups_from_segments(&published), naive_groups(Some(60_000)));
    // Persist directories are gone after publishing.
    let task_dir = kinesis_peon::task::layout_for(&spilled).task_dir("index_kinesis_spill-a");
    assert!(!task_dir.join("persist").join("0").exists());
}

/// Issue 3's scale check: 3.4 M rows with maxBytesInMemory = 64 MiB spill
/// several times, stay under 300 MiB, and merge into the segments of a run
/// that never spills.
#[test]
fn ten_times_flights_spills_under_64_mib_and_merges_to_the_same_bytes() {
    let dump = scratch().join("flights4-x10");
    make_dump(&MakeDumpOptions {
        input: flights_ndjson(),
        format: None,
        shards: 4,
        out: dump.clone(),
        stream: "flights".into(),
        partition_key: Some("flight".into()),
        compression: DumpCompression::Zstd,
        limit: None,
        copies: 10,
        header: None,
    })
    .expect("make-dump --copies 10");

    let spilled = fresh_dir("x10-spilled");
    let direct = fresh_dir("x10-direct");
    let a = flights_task_tuned(
        &spilled,
        "x10-a",
        4,
        "x10",
        json!({"type": "KinesisTuningConfig", "maxRowsInMemory": 100_000_000,
               "maxBytesInMemory": 64 << 20}),
    );
    let b = flights_task_tuned(
        &direct,
        "x10-b",
        4,
        "x10",
        json!({"type": "KinesisTuningConfig", "maxRowsInMemory": 100_000_000,
               "maxBytesInMemory": -1}),
    );
    // The spilling run in its own process, so its peak RSS is its own.
    let out = Command::new(env!("CARGO_BIN_EXE_kinesis-peon"))
        .args(["run", "--task"])
        .arg(&a)
        .arg("--dump")
        .arg(&dump)
        .arg("--base-dir")
        .arg(&spilled)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> f64 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in\n{stdout}"));
        line[name.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let persists = field("persists");
    let rss = field("peak RSS");
    println!("10x flights, maxBytesInMemory 64 MiB: {persists} persists, peak RSS {rss} MiB");
    assert!(persists >= 3.0, "{persists} persists");
    assert!(rss < 300.0, "peak RSS {rss} MiB");
    assert_eq!(field("records"), 3_367_760.0);

    let sb = run_task(&b, &dump, &direct);
    assert_eq!(sb.error, None);
    assert_eq!(sb.persists, 0);
    assert_eq!(assert_same_segments(&spilled, &direct), 3660);
}

/// Long, double and float dimensions roll up by value, are stored as
/// numeric columns (null where the input is null), and come out the same
/// through persists.
#[test]
fn typed_dimensions_roll_up_by_value_with_and_without_persists() {
    use kinesis_peon::segment::NumericValues;
    let rows = 30_000;
    let dump = flights_dump("flights3-30k", 3, Some(rows as u64));
    let spilled = fresh_dir("typed-a");
    let direct = fresh_dir("typed-b");
    let task_for = |dir: &std::path::Path, name: &str, max_rows_in_memory: i64| {
        let path = flights_task_tuned(
            dir,
            name,
            3,
            "typed",
            json!({"type": "KinesisTuningConfig", "maxRowsInMemory": max_rows_in_memory}),
        );
        let mut task: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        task["dataSchema"]["dimensionsSpec"] = json!({"dimensions": [
            "carrier",
            {"type": "long", "name": "flight"},
            {"type": "long", "name": "hour"},
            {"type": "double", "name": "distance"},
            {"type": "float", "name": "air_time"}
        ]});
        task["dataSchema"]["metricsSpec"] = json!([{"type": "count", "name": "count"}]);
        std::fs::write(&path, serde_json::to_vec(&task).unwrap()).unwrap();
        path
    };
    let a = run_task(&task_for(&spilled, "typed-a", 2_000), &dump, &spilled);
    let b = run_task(&task_for(&direct, "typed-b", 10_000_000), &dump, &direct);
    assert_eq!(a.error, None);
    assert_eq!(b.error, None);
    assert!(a.persists > 3);
    assert_same_segments(&spilled, &direct);

    // (hour, carrier, flight, hour column, distance, air_time) -> count
    type Key = (i64, String, i64, i64, u64, Option<u32>);
    let mut naive: std::collections::BTreeMap<Key, i64> = Default::default();
    for v in flights_rows(rows) {
        let t = kinesis_peon::spec::time::parse_iso(v["timestamp"].as_str().unwrap()).unwrap();
        let key = (
            t - t.rem_euclid(3_600_000),
            v["carrier"].as_str().unwrap().to_string(),
            v["flight"].as_str().unwrap().parse().unwrap(),
            v["hour"].as_i64().unwrap(),
            (v["distance"].as_i64().unwrap() as f64).to_bits(),
            v["air_time"].as_i64().map(|x| (x as f32).to_bits()),
        );
        *naive.entry(key).or_default() += 1;
    }

    let mut got: std::collections::BTreeMap<Key, i64> = Default::default();
    for (_, data) in published_segments(&spilled, "flights") {
        let names = data.dimension_names().unwrap();
        assert_eq!(names, ["carrier", "flight", "hour", "distance", "air_time"]);
        let num = |name: &str, row: usize| -> Option<u64> {
            let c = &data
                .numeric_dimensions
                .iter()
                .find(|d| d.column.name == name)
                .unwrap()
                .column;
            if c.nulls.contains(row as u32) {
                return None;
            }
            Some(match &c.values {
                NumericValues::Long(v) => v[row] as u64,
                NumericValues::Double(v) => v[row].to_bits(),
                NumericValues::Float(v) => v[row].to_bits() as u64,
                NumericValues::Complex(..) => panic!("a numeric dimension is not complex"),
            })
        };
        let NumericValues::Long(counts) = &data.metrics[0].values else {
            panic!("count is long")
        };
        for (row, count) in counts.iter().enumerate() {
            let carrier = &data.dimensions[0];
            let key = (
                data.times[row],
                carrier.dictionary[carrier.ids[row] as usize]
                    .clone()
                    .unwrap(),
                num("flight", row).unwrap() as i64,
                num("hour", row).unwrap() as i64,
                num("distance", row).unwrap(),
                num("air_time", row).map(|b| b as u32),
            );
            assert!(got.insert(key, *count).is_none(), "a group appears twice");
        }
    }
    assert_eq!(got, naive);
}

/// Multi-value string dimensions under SORTED_ARRAY, SORTED_SET and ARRAY:
/// rows roll up by their value lists, segments hold multi-value columns,
/// and persists merge into the same bytes.
#[test]
fn multi_value_dimensions_roll_up_by_list_with_and_without_persists() {
    use std::collections::BTreeMap;
    let dir = fresh_dir("multi-value");
    let vocab = ["b", "a", "c", "a", "\u{e9}t\u{e9}", ""];
    let mut lines = String::new();
    // (hour, sorted, set, raw) -> count; an empty list is null.
    type Key = (i64, Vec<String>, Vec<String>, Vec<String>);
    let mut naive: BTreeMap<Key, i64> = BTreeMap::new();
    let mut x = 7u64;
    for i in 0..20_000i64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = (x >> 60) as usize % 4;
        let tags: Vec<&str> = (0..len)
            .map(|k| vocab[((x >> (8 * k + 8)) % vocab.len() as u64) as usize])
            .collect();
        let t = 1_700_000_000_000 + i * 7_000;
        lines.push_str(
            &json!({"timestamp": t, "tags": tags, "tags_set": tags, "tags_raw": tags}).to_string(),
        );
        lines.push('\n');
        let owned: Vec<String> = tags.iter().map(|s| s.to_string()).collect();
        let mut sorted = owned.clone();
        sorted.sort();
        let mut set = sorted.clone();
        set.dedup();
        *naive
            .entry((t - t.rem_euclid(3_600_000), sorted, set, owned))
            .or_default() += 1;
    }
    let input = dir.join("tags.ndjson");
    std::fs::write(&input, lines).unwrap();
    let dump = dir.join("dump");
    make_dump(&MakeDumpOptions {
        input,
        format: None,
        shards: 2,
        out: dump.clone(),
        stream: "flights".into(),
        partition_key: None,
        compression: DumpCompression::None,
        limit: None,
        copies: 1,
        header: None,
    })
    .unwrap();
    let task_for = |base: &std::path::Path, name: &str, max_rows_in_memory: i64| {
        let path = flights_task_tuned(
            base,
            name,
            2,
            "tags",
            json!({"type": "KinesisTuningConfig", "maxRowsInMemory": max_rows_in_memory,
                   "maxRowsPerSegment": 900}),
        );
        let mut task: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        task["dataSchema"]["timestampSpec"] = json!({"column": "timestamp", "format": "millis"});
        task["dataSchema"]["dimensionsSpec"] = json!({"dimensions": [
            "tags",
            {"type": "string", "name": "tags_set", "multiValueHandling": "SORTED_SET"},
            {"type": "string", "name": "tags_raw", "multiValueHandling": "ARRAY"}
        ]});
        task["dataSchema"]["metricsSpec"] = json!([{"type": "count", "name": "count"}]);
        std::fs::write(&path, serde_json::to_vec(&task).unwrap()).unwrap();
        path
    };
    let spilled = fresh_dir("multi-value-a");
    let direct = fresh_dir("multi-value-b");
    let a = run_task(&task_for(&spilled, "mv-a", 150), &dump, &spilled);
    let b = run_task(&task_for(&direct, "mv-b", 10_000_000), &dump, &direct);
    assert_eq!(a.error, None);
    assert_eq!(b.error, None);
    assert!(
        a.persists > 10,
        "{} persists, error {:?}, rows {:?}",
        a.persists,
        a.error,
        a.stats
    );
    assert_same_segments(&spilled, &direct);

    let mut got: BTreeMap<Key, i64> = BTreeMap::new();
    let mut multi_columns = 0;
    for (_, data) in published_segments(&spilled, "flights") {
        let values = |name: &str, row: usize| -> Vec<String> {
            let c = data.dimensions.iter().find(|d| d.name == name).unwrap();
            c.row(row)
                .iter()
                .filter_map(|id| c.dictionary[*id as usize].clone())
                .collect()
        };
        multi_columns += data
            .dimensions
            .iter()
            .filter(|d| d.offsets.is_some())
            .count();
        let kinesis_peon::segment::NumericValues::Long(counts) = &data.metrics[0].values else {
            panic!("count is long")
        };
        for (row, count) in counts.iter().enumerate() {
            let key = (
                data.times[row],
                values("tags", row),
                values("tags_set", row),
                values("tags_raw", row),
            );
            *got.entry(key).or_default() += count;
        }
    }
    assert!(multi_columns > 0);
    assert_eq!(got, naive);
}

/// A year's segment of hourly rows: in memory, the sort key packs each
/// row's time as a count of hours (its offset in milliseconds, 35 bits,
/// would not fit beside the ranks and the position); through spills, the
/// merge orders rows its own way. Both give the same bytes.
#[test]
fn a_years_segment_of_hourly_rows_sorts_as_the_merge_does() {
    let dump = flights_dump("flights3-all", 3, None);
    let spilled = fresh_dir("spill-year-a");
    let direct = fresh_dir("spill-year-b");
    let tuned = |max_rows_in_memory: i64| {
        json!({"type": "KinesisTuningConfig", "maxRowsInMemory": max_rows_in_memory,
               "maxRowsPerSegment": 5_000_000})
    };
    let a = flights_task_tuned(&spilled, "year-a", 3, "year", tuned(60_000));
    let b = flights_task_tuned(&direct, "year-b", 3, "year", tuned(10_000_000));
    for task in [&a, &b] {
        edit_task(task, |t| {
            t["dataSchema"]["granularitySpec"]["segmentGranularity"] = "YEAR".into();
        });
    }
    run_spilled_and_direct((&a, &spilled), (&b, &direct), &dump, 5);
    // 2013, and the first hours of 2014 in UTC.
    assert_eq!(assert_same_segments(&spilled, &direct), 2);
    let published = published_segments(&direct, "flights");
    assert_eq!(groups_from_segments(&published), naive_groups(None));
}
