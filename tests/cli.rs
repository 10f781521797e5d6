//! The command line as a user meets it: the README's run command on the
//! shipped dump, validate, dump-segment, bench.

mod common;

use common::*;
use std::process::Command;

fn peon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kinesis-peon"))
}

/// Run `cmd`, which must succeed (its stdout and stderr shown if not).
fn succeed(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The shipped task and dump (the README's run command).
fn shipped_task() -> std::path::PathBuf {
    repo().join("fixtures/flights-task.json")
}

fn shipped_dump() -> std::path::PathBuf {
    repo().join("fixtures/flights-dump")
}

/// Druid's buffer knobs are bounds, not allocations: the largest
/// recordBufferSize against maxRecordsPerPoll 1, the largest
/// maxPendingPersists, and a huge maxRecordsPerPoll replay the shipped
/// dump in ordinary memory (they once sized channels, pools and buffers up
/// front: 24 GB and killed, or an aborted 256 TB allocation).
#[test]
fn huge_buffer_bounds_allocate_nothing_up_front() {
    for (poll, run) in [(1i64, "small-polls"), (1_000_000_000_000, "huge-polls")] {
        let dir = fresh_dir(&format!("huge-bounds-{run}"));
        let task = dir.join("task.json");
        std::fs::copy(shipped_task(), &task).unwrap();
        edit_task(&task, |t| {
            let tuning = &mut t["tuningConfig"];
            tuning["recordBufferSize"] = i32::MAX.into();
            tuning["maxRecordsPerPoll"] = poll.into();
            tuning["maxPendingPersists"] = i32::MAX.into();
            tuning["maxRowsInMemory"] = 5_000.into();
        });
        huge_bounds_run(&dir, &task);
    }
}

fn huge_bounds_run(dir: &std::path::Path, task: &std::path::Path) {
    let out = succeed(
        peon()
            .current_dir(dir)
            .args(["run", "--task"])
            .arg(task)
            .arg("--dump")
            .arg(shipped_dump()),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rows in     20000 processed"), "{stdout}");
    let peak_mib: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("peak RSS"))
        .and_then(|v| v.trim().strip_suffix(" MiB"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS line in {stdout}"));
    assert!(peak_mib < 512.0, "peak RSS {peak_mib} MiB");
}

#[test]
fn readme_run_command_on_the_shipped_dump() {
    let dir = fresh_dir("readme");
    let out = succeed(
        peon()
            .current_dir(&dir)
            .args(["run", "--task"])
            .arg(shipped_task())
            .arg("--dump")
            .arg(shipped_dump()),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("status      SUCCESS"), "{stdout}");
    assert!(stdout.contains("rows in     20000 processed"), "{stdout}");
    let status: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("var/druid/task/index_kinesis_flights_replay/status.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(status["status"], "SUCCESS");
    let segments = published_segments(&dir.join("var"), "flights");
    assert_eq!(segments.len(), 24);
    let rows: i64 = groups_from_segments(&segments).values().map(|g| g.0).sum();
    assert_eq!(rows, 20_000);
    assert_eq!(groups_from_segments(&segments), naive_groups(Some(20_000)));
    // Druid's local deep storage default: each segment's files as they are.
    for path in load_spec_paths(&dir.join("var")) {
        assert!(path.ends_with("/index/"), "{path}");
        assert!(std::path::Path::new(&path).join("00000.smoosh").is_file());
    }
}

fn load_spec_paths(base: &std::path::Path) -> Vec<String> {
    let store = kinesis_peon::publish::MetadataStore::open(
        &kinesis_peon::task::layout_for(base).metadata_db(),
    )
    .unwrap();
    let segments = store.used_segments("flights").unwrap();
    assert!(!segments.is_empty());
    segments
        .iter()
        .map(|s| s.load_spec["path"].as_str().unwrap().to_string())
        .collect()
}

/// `-D druid.storage.zip=true` zips each segment into index.zip with the
/// same rows; a value that is not a boolean stops the task, naming it.
#[test]
fn the_zip_property_zips_pushed_segments_and_a_bad_value_is_named() {
    let dir = fresh_dir("zipped");
    succeed(
        peon()
            .args(["run", "-D", "druid.storage.zip=true", "--task"])
            .arg(shipped_task())
            .arg("--dump")
            .arg(shipped_dump())
            .arg("--base-dir")
            .arg(dir.join("var")),
    );
    for path in load_spec_paths(&dir.join("var")) {
        assert!(path.ends_with("/index.zip"), "{path}");
        assert!(std::path::Path::new(&path).is_file());
    }
    let segments = published_segments(&dir.join("var"), "flights");
    assert_eq!(groups_from_segments(&segments), naive_groups(Some(20_000)));

    let bad = peon()
        .args(["bench", "-D", "druid.storage.zip=yes", "--task"])
        .arg(shipped_task())
        .arg("--dump")
        .arg(shipped_dump())
        .arg("--base-dir")
        .arg(dir.join("bench"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(!bad.status.success(), "{text}");
    assert!(
        text.contains("druid.storage.zip: \"yes\" is not true or false"),
        "{text}"
    );
}

#[test]
fn validate_prints_errors_with_paths() {
    let dir = fresh_dir("validate");
    let ok = peon().arg("validate").arg(shipped_task()).output().unwrap();
    assert!(ok.status.success());
    let effective: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(effective["tuningConfig"]["maxRecordsPerPoll"], 100);
    assert_eq!(effective["ioConfig"]["recordsPerFetch"], 4000);

    let mut bad: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shipped_task()).unwrap()).unwrap();
    bad["tuningConfig"]["maxRowsInMemory"] = (-5).into();
    bad["tuningConfig"]["someKnob"] = 1.into();
    let path = dir.join("bad.json");
    std::fs::write(&path, bad.to_string()).unwrap();
    let out = peon().arg("validate").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tuningConfig.maxRowsInMemory: must be positive, got -5"),
        "{stderr}"
    );
}

#[test]
fn dump_segment_prints_rows_metadata_and_bitmaps() {
    let base = fresh_dir("dump-segment");
    let dump = flights_dump("flights2-small", 2, Some(5_000));
    let task = flights_task(&base, "dumpseg", 2, "dumpseg", &[]);
    assert_eq!(run_task(&task, &dump, &base).error, None);
    let store = kinesis_peon::publish::MetadataStore::open(
        &kinesis_peon::task::layout_for(&base).metadata_db(),
    )
    .unwrap();
    let seg = store.used_segments("flights").unwrap().remove(0);
    let segment = seg.load_spec["path"].as_str().unwrap().to_string();

    let rows = peon()
        .args(["dump-segment", &segment, "--rows"])
        .output()
        .unwrap();
    assert!(rows.status.success());
    let text = String::from_utf8(rows.stdout).unwrap();
    let parsed: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut count = 0i64;
    let mut dep_delay_sum = 0i64;
    for row in &parsed {
        assert!(row["__time"].as_str().unwrap().ends_with(":00:00.000Z"));
        count += row["count"].as_i64().unwrap();
        dep_delay_sum += row["dep_delay_sum"].as_i64().unwrap_or(0);
    }
    // The totals of the segment's day in the input itself.
    let (start, end) = seg.interval.split_once('/').unwrap();
    let (start, end) = (
        kinesis_peon::spec::time::parse_iso(start).unwrap(),
        kinesis_peon::spec::time::parse_iso(end).unwrap(),
    );
    let day: Vec<_> = naive_groups(Some(5_000))
        .into_iter()
        .filter(|(k, _)| (start..end).contains(&k.0))
        .collect();
    assert_eq!(parsed.len(), day.len());
    assert_eq!(count, day.iter().map(|(_, g)| g.0).sum::<i64>());
    assert_eq!(
        dep_delay_sum,
        day.iter().map(|(_, g)| g.1.unwrap_or(0)).sum::<i64>()
    );

    let meta = peon()
        .args(["dump-segment", &segment, "--metadata"])
        .output()
        .unwrap();
    let meta: serde_json::Value = serde_json::from_slice(&meta.stdout).unwrap();
    assert_eq!(
        meta["index.drd"]["dimensions"],
        serde_json::json!(["carrier", "origin", "dest"])
    );
    assert_eq!(meta["metadata.drd"]["queryGranularity"], "HOUR");
    assert_eq!(meta["metadata.drd"]["aggregators"][0]["type"], "longSum");

    let bitmaps = peon()
        .args(["dump-segment", &segment, "--bitmaps", "--columns", "origin"])
        .output()
        .unwrap();
    let bitmaps: serde_json::Value = serde_json::from_slice(&bitmaps.stdout).unwrap();
    let origins = bitmaps["bitmaps"]["origin"].as_object().unwrap();
    let keys: Vec<&str> = origins.keys().map(String::as_str).collect();
    assert_eq!(keys, ["EWR", "JFK", "LGA"]);
    for (origin, listed) in origins {
        let expected: Vec<u64> = (0..parsed.len() as u64)
            .filter(|&r| parsed[r as usize]["origin"] == origin.as_str())
            .collect();
        let listed: Vec<u64> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(listed, expected, "rows of origin {origin}");
    }
}

/// `bench` on the shipped task and dump, with `MIMALLOC_ALLOW_THP` set to
/// `allow_thp` (or unset); its stdout.
fn bench_shipped(allow_thp: Option<&str>) -> String {
    let mut cmd = peon();
    match allow_thp {
        Some(v) => cmd.env("MIMALLOC_ALLOW_THP", v),
        None => cmd.env_remove("MIMALLOC_ALLOW_THP"),
    };
    let out = succeed(
        cmd.args(["bench", "--task"])
            .arg(shipped_task())
            .arg("--dump")
            .arg(shipped_dump()),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bench_reports_rows_per_cpu_second() {
    let stdout = bench_shipped(None);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("rows per CPU-second"))
        .expect(&stdout);
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n > 0.0);
    assert!(stdout.contains("peak RSS"));
    // Huge pages are off unless the operator asks for them.
    assert!(stdout.contains("huge pages          off"), "{stdout}");
    let asked = bench_shipped(Some("1"));
    assert!(asked.contains("huge pages          allowed"), "{asked}");
}

/// `--passes 3`: the first pass is reported as a single run is, the two
/// after it apart; every pass's directory is gone afterwards, and no
/// pass count below one is taken.
#[test]
fn bench_passes_report_the_later_passes_apart_and_leave_nothing() {
    let base = fresh_dir("bench-passes");
    let out = succeed(
        peon()
            .args(["bench", "--passes", "3", "--task"])
            .arg(shipped_task())
            .arg("--dump")
            .arg(shipped_dump())
            .arg("--base-dir")
            .arg(&base),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (first, later) = stdout.split_once("--- later passes (2)").expect(&stdout);
    assert!(first.contains("rows per CPU-second "), "{stdout}");
    let median: f64 = later
        .lines()
        .find_map(|l| l.strip_prefix("rows per CPU-second "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect(&stdout);
    assert!(median > 0.0, "{stdout}");
    assert_eq!(std::fs::read_dir(&base).unwrap().count(), 0, "left behind");
    let zero = peon()
        .args(["bench", "--passes", "0", "--task"])
        .arg(shipped_task())
        .arg("--dump")
        .arg(shipped_dump())
        .output()
        .unwrap();
    assert!(!zero.status.success());
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--passes"));
}

#[test]
fn sample_shows_records_parsed_and_indexed_with_errors_beside_them() {
    let out = succeed(
        peon()
            .args(["sample", "--task"])
            .arg(shipped_task())
            .arg("--dump")
            .arg(shipped_dump())
            .args(["-n", "10"]),
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["numRowsRead"], 10);
    assert_eq!(doc["data"].as_array().unwrap().len(), 10);
    assert_eq!(doc["data"][0]["parsed"][0]["carrier"], "UA");
    let counted: i64 = doc["indexed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_i64().unwrap())
        .sum();
    assert_eq!(counted, 10);

    // A broken record is shown with its error; the sample goes on.
    let base = fresh_dir("sample-bad");
    let dump = base.join("dump");
    std::fs::create_dir_all(&dump).unwrap();
    std::fs::write(
        dump.join("shards.json"),
        r#"{"StreamName":"flights","Shards":[{"ShardId":"shardId-000000000000","SequenceNumberRange":{"StartingSequenceNumber":"1"}}]}"#,
    )
    .unwrap();
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    std::fs::write(
        dump.join("shardId-000000000000.jsonl"),
        format!(
            "{{\"SequenceNumber\":\"2\",\"Data\":\"{}\"}}\n{{\"SequenceNumber\":\"3\",\"Data\":\"{}\"}}\n",
            b64(r#"{"timestamp":"2013-01-01T10:15:00Z","carrier":"UA"}"#),
            b64(r#"{"timestamp":"2013-01-01T10:15:00Z","carrier""#)
        ),
    )
    .unwrap();
    let task = flights_task(&base, "sample", 1, "sample", &[]);
    let out = succeed(
        peon()
            .args(["sample", "--task"])
            .arg(&task)
            .arg("--dump")
            .arg(&dump),
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["numRowsRead"], 2);
    assert_eq!(doc["data"][1]["sequenceNumber"], "3");
    assert_eq!(doc["data"][1]["unparseable"], true);
    assert!(
        doc["data"][1]["error"]
            .as_str()
            .unwrap()
            .contains("Unable to parse")
    );
    assert_eq!(doc["indexed"].as_array().unwrap().len(), 1);
}
