//! Shared helpers for the integration tests: where the shared data lives,
//! dumps built once per test binary, a task template, and a reader that
//! turns published segments back into rows.

#![allow(dead_code)]

pub mod kinesalite;
pub mod logged;
pub mod postgres;
pub mod server;

use kinesis_peon::publish::MetadataStore;
use kinesis_peon::segment::SegmentData;
use kinesis_peon::segment::reader::read_segment;
use kinesis_peon::source::make_dump::{DumpCompression, MakeDumpOptions, make_dump};
use kinesis_peon::task::{RunOptions, RunSummary, layout_for, run};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The checkout, looked up when the test runs: cargo sets the variable then,
/// and a binary reused from a shared build cache may have been compiled in
/// another clone.
pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

pub fn shared() -> PathBuf {
    std::env::var_os("KINESIS_PEON_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared"))
}

pub fn flights_ndjson() -> PathBuf {
    shared().join("data/flights.ndjson.gz")
}

/// Scratch directories are named after the test process that made them.
const SCRATCH_PREFIX: &str = "kinesis-peon-test-";

/// A scratch directory for the whole test binary. A static is never dropped,
/// so a `TempDir` here would outlive every run (hundreds of MB each); instead
/// each binary removes the scratch of test processes that have exited.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = std::env::temp_dir();
        remove_scratch_of_exited_processes(&tmp);
        let dir = tmp.join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    })
}

/// Where /proc tells which processes live (Linux); elsewhere nothing is swept.
fn remove_scratch_of_exited_processes(tmp: &Path) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(SCRATCH_PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !proc.join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub fn fresh_dir(name: &str) -> PathBuf {
    let d = scratch().join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// make-dump of the flights NDJSON (first `limit` rows) into `shards` shards.
pub fn flights_dump(name: &str, shards: usize, limit: Option<u64>) -> PathBuf {
    flights_dump_of("ndjson", name, shards, limit)
}

/// The flights columns, in the csv/tsv files' order.
pub const FLIGHT_COLUMNS: [&str; 20] = [
    "timestamp",
    "year",
    "month",
    "day",
    "dep_time",
    "sched_dep_time",
    "dep_delay",
    "arr_time",
    "sched_arr_time",
    "arr_delay",
    "carrier",
    "flight",
    "tailnum",
    "origin",
    "dest",
    "air_time",
    "distance",
    "hour",
    "minute",
    "time_hour",
];

/// make-dump of flights.{ndjson,csv,tsv}.gz.
pub fn flights_dump_of(flavour: &str, name: &str, shards: usize, limit: Option<u64>) -> PathBuf {
    // Tests run in parallel and share dumps: build each one once, under a lock.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let out = scratch().join(name);
    if !out.join("shards.json").exists() {
        make_dump(&MakeDumpOptions {
            input: shared().join(format!("data/flights.{flavour}.gz")),
            format: None,
            shards,
            out: out.clone(),
            stream: "flights".into(),
            partition_key: Some("flight".into()),
            compression: DumpCompression::None,
            limit,
            copies: 1,
            header: None,
        })
        .expect("make-dump");
    }
    out
}

/// The flights rollup task of the issue: hour rollup on carrier, origin,
/// dest with count, longSum/longMin/longMax(dep_delay), doubleSum(distance).
pub fn flights_task(
    dir: &Path,
    name: &str,
    shards: usize,
    base_sequence: &str,
    start: &[(&str, bool)],
) -> PathBuf {
    let mut start_map = serde_json::Map::new();
    let mut end_map = serde_json::Map::new();
    let mut exclusive = Vec::new();
    for i in 0..shards {
        let shard = format!("shardId-{i:012}");
        let (seq, excl) = start
            .get(i)
            .copied()
            .unwrap_or(("UNREAD_TRIM_HORIZON", false));
        start_map.insert(shard.clone(), seq.into());
        end_map.insert(shard.clone(), "NO_END_SEQUENCE_NUMBER".into());
        if excl {
            exclusive.push(shard);
        }
    }
    let task = serde_json::json!({
        "type": "index_kinesis",
        "id": format!("index_kinesis_{name}"),
        "dataSchema": {
            "dataSource": "flights",
            "timestampSpec": {"column": "timestamp", "format": "iso"},
            "dimensionsSpec": {"dimensions": ["carrier", "origin", "dest"]},
            "metricsSpec": [
                {"type": "count", "name": "count"},
                {"type": "longSum", "name": "dep_delay_sum", "fieldName": "dep_delay"},
                {"type": "longMin", "name": "dep_delay_min", "fieldName": "dep_delay"},
                {"type": "longMax", "name": "dep_delay_max", "fieldName": "dep_delay"},
                {"type": "doubleSum", "name": "distance_sum", "fieldName": "distance"}
            ],
            "granularitySpec": {"segmentGranularity": "DAY", "queryGranularity": "HOUR", "rollup": true}
        },
        "ioConfig": {
            "baseSequenceName": base_sequence,
            "startSequenceNumbers": {"type": "start", "stream": "flights", "partitionSequenceNumberMap": start_map, "exclusivePartitions": exclusive},
            "endSequenceNumbers": {"type": "end", "stream": "flights", "partitionSequenceNumberMap": end_map},
            "inputFormat": {"type": "json"}
        },
        "tuningConfig": {"type": "KinesisTuningConfig"}
    });
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&task).unwrap()).unwrap();
    path
}

/// Change a task file in place.
pub fn edit_task(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let mut task: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut task);
    std::fs::write(path, serde_json::to_vec_pretty(&task).unwrap()).unwrap();
    task
}

/// `flights_task` with its tuningConfig replaced.
pub fn flights_task_tuned(
    dir: &Path,
    name: &str,
    shards: usize,
    base_sequence: &str,
    tuning: serde_json::Value,
) -> PathBuf {
    let path = flights_task(dir, name, shards, base_sequence, &[]);
    edit_task(&path, |task| task["tuningConfig"] = tuning);
    path
}

pub fn run_task(task: &Path, dump: &Path, base: &Path) -> RunSummary {
    run_task_with(task, dump, base, &[])
}

/// `run_task` with runtime properties (key, value).
pub fn run_task_with(
    task: &Path,
    dump: &Path,
    base: &Path,
    properties: &[(&str, &str)],
) -> RunSummary {
    run(&RunOptions {
        task_file: task.to_path_buf(),
        dump: Some(dump.to_path_buf()),
        properties: properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        base_dir: base.to_path_buf(),
        progress: false,
        stage_timing: false,
        until_caught_up: false,
        print_metrics: false,
    })
    .expect("the task file is readable")
}

/// Every used segment of a data source, read back from deep storage.
pub fn published_segments(base: &Path, data_source: &str) -> Vec<(String, SegmentData)> {
    let layout = layout_for(base);
    let store = MetadataStore::open(&layout.metadata_db()).unwrap();
    segments_in(&store, data_source)
}

/// Every used segment a metadata store names, read back from deep storage.
pub fn segments_in(store: &MetadataStore, data_source: &str) -> Vec<(String, SegmentData)> {
    store
        .used_segments(data_source)
        .unwrap()
        .into_iter()
        .map(|seg| {
            let path = seg.load_spec["path"].as_str().unwrap().to_string();
            let (_, data) = read_segment(Path::new(&path)).unwrap();
            (seg.identifier, data)
        })
        .collect()
}

/// Rolled-up flights rows: (hour, carrier, origin, dest) → (count, sum, min, max, distance).
pub type Groups = std::collections::BTreeMap<
    (i64, String, String, String),
    (i64, Option<i64>, Option<i64>, Option<i64>, f64),
>;

pub fn groups_from_segments(segments: &[(String, SegmentData)]) -> Groups {
    let mut out = Groups::new();
    for (_, data) in segments {
        let dim = |name: &str, row: usize| -> String {
            let col = data
                .dimensions
                .iter()
                .find(|d| d.name == name)
                .expect("dimension");
            col.dictionary[col.ids[row] as usize]
                .clone()
                .unwrap_or_default()
        };
        let long = |name: &str, row: usize| -> Option<i64> {
            let m = data
                .metrics
                .iter()
                .find(|m| m.name == name)
                .expect("metric");
            if m.nulls.contains(row as u32) {
                return None;
            }
            match &m.values {
                kinesis_peon::segment::NumericValues::Long(v) => Some(v[row]),
                _ => panic!("{name} is not long"),
            }
        };
        let double = |name: &str, row: usize| -> f64 {
            let m = data
                .metrics
                .iter()
                .find(|m| m.name == name)
                .expect("metric");
            match &m.values {
                kinesis_peon::segment::NumericValues::Double(v) => v[row],
                _ => panic!("{name} is not double"),
            }
        };
        for row in 0..data.num_rows() {
            let key = (
                data.times[row],
                dim("carrier", row),
                dim("origin", row),
                dim("dest", row),
            );
            let value = (
                long("count", row).unwrap(),
                long("dep_delay_sum", row),
                long("dep_delay_min", row),
                long("dep_delay_max", row),
                double("distance_sum", row),
            );
            let merged = match out.remove(&key) {
                None => value,
                // The same group split across partitions: combine.
                Some(old) => (
                    old.0 + value.0,
                    add_opt(old.1, value.1, |a, b| a + b),
                    add_opt(old.2, value.2, i64::min),
                    add_opt(old.3, value.3, i64::max),
                    old.4 + value.4,
                ),
            };
            out.insert(key, merged);
        }
    }
    out
}

fn add_opt(a: Option<i64>, b: Option<i64>, f: impl Fn(i64, i64) -> i64) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The same rollup computed naively: serde_json::Value per row, a BTreeMap.
/// The first `limit` flights rows as parsed JSON.
pub fn flights_rows(limit: usize) -> Vec<serde_json::Value> {
    flights_lines("ndjson", limit)
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

pub fn naive_groups(limit: Option<usize>) -> Groups {
    use std::io::BufRead;
    let file = std::fs::File::open(flights_ndjson()).unwrap();
    let reader = std::io::BufReader::new(flights_gz(file));
    let mut out = Groups::new();
    for line in reader.lines().take(limit.unwrap_or(usize::MAX)) {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        let ts = chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap()).unwrap();
        let hour = ts.timestamp_millis() / 3_600_000 * 3_600_000;
        let key = (
            hour,
            v["carrier"].as_str().unwrap().to_string(),
            v["origin"].as_str().unwrap().to_string(),
            v["dest"].as_str().unwrap().to_string(),
        );
        let delay = v["dep_delay"].as_i64();
        let distance = v["distance"].as_f64().unwrap();
        let e = out.entry(key).or_insert((0, None, None, None, 0.0));
        e.0 += 1;
        e.1 = add_opt(e.1, delay, |a, b| a + b);
        e.2 = add_opt(e.2, delay, i64::min);
        e.3 = add_opt(e.3, delay, i64::max);
        e.4 += distance;
    }
    out
}

fn flights_gz(file: std::fs::File) -> impl std::io::Read {
    flate2::read::GzDecoder::new(file)
}

/// The first `limit` lines of flights.{ndjson,csv,tsv}.gz as they are (a
/// csv or tsv file's header line included).
pub fn flights_lines(flavour: &str, limit: usize) -> Vec<String> {
    use std::io::BufRead;
    let file = std::fs::File::open(shared().join(format!("data/flights.{flavour}.gz"))).unwrap();
    std::io::BufReader::new(flights_gz(file))
        .lines()
        .take(limit)
        .map(Result::unwrap)
        .collect()
}

/// A dump of one shard (`shardId-000000000000` of stream `flights`) holding
/// `records` as they are, sequence numbers counting up from `first_sequence`.
pub fn write_one_shard_dump(dir: &Path, records: &[impl AsRef<[u8]>], first_sequence: u64) {
    use base64::Engine;
    std::fs::create_dir_all(dir).unwrap();
    let shards = serde_json::json!({
        "StreamName": "flights",
        "Shards": [{"ShardId": "shardId-000000000000",
                    "SequenceNumberRange": {"StartingSequenceNumber": "1"}}]
    });
    std::fs::write(dir.join("shards.json"), shards.to_string()).unwrap();
    let mut body = String::new();
    for (i, data) in records.iter().enumerate() {
        body.push_str(
            &serde_json::json!({
                "SequenceNumber": (first_sequence + i as u64).to_string(),
                "ApproximateArrivalTimestamp": 1.0,
                "Data": base64::engine::general_purpose::STANDARD.encode(data.as_ref()),
                "PartitionKey": "k"
            })
            .to_string(),
        );
        body.push('\n');
    }
    std::fs::write(dir.join("shardId-000000000000.jsonl"), body).unwrap();
}

/// What deep storage holds for every published segment (the files of its
/// `index/` directory, or the one `index.zip`), keyed by interval and
/// partition (the version and the unique directory differ between runs).
pub fn pushed_by_interval(
    base: &Path,
    data_source: &str,
) -> std::collections::BTreeMap<(String, u32), std::collections::BTreeMap<String, Vec<u8>>> {
    let store = MetadataStore::open(&layout_for(base).metadata_db()).unwrap();
    store
        .used_segments(data_source)
        .unwrap()
        .into_iter()
        .map(|s| {
            let path = Path::new(s.load_spec["path"].as_str().unwrap());
            let files = if path.is_dir() {
                std::fs::read_dir(path)
                    .unwrap()
                    .map(|e| {
                        let e = e.unwrap();
                        let name = e.file_name().to_string_lossy().into_owned();
                        (name, std::fs::read(e.path()).unwrap())
                    })
                    .collect()
            } else {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                [(name, std::fs::read(path).unwrap())].into()
            };
            ((s.interval.clone(), s.shard_spec.partition_num), files)
        })
        .collect()
}

/// The fixture with its stream positions pointed at `dump`: inclusive
/// starts at each shard's first record; ends kept open, or (where the
/// fixture has explicit ends) set to each shard's last record.
pub fn adapt_fixture(fixture: &str, dump: &Path, dir: &Path) -> PathBuf {
    adapt_task_file(&shared().join("fixtures/tasks").join(fixture), dump, dir)
}

/// `adapt_fixture` for a task file anywhere (written into `dir` under the
/// same name).
pub fn adapt_task_file(source: &Path, dump: &Path, dir: &Path) -> PathBuf {
    let fixture = source.file_name().unwrap().to_str().unwrap();
    let mut task: Value = serde_json::from_slice(
        &std::fs::read(source).unwrap_or_else(|e| panic!("{}: {e}", source.display())),
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

/// A dump of KPL aggregates, 25 user records to a Kinesis record, packed
/// from `plain` by the aws-kinesis-agg library (scripts/kpl_aggregate.py);
/// `extra` passes further options (e.g. a record to corrupt).
pub fn kpl_dump(plain: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let packed = scratch().join(name);
    let _ = std::fs::remove_dir_all(&packed);
    let status = std::process::Command::new("python3")
        .arg(repo().join("scripts/kpl_aggregate.py"))
        .arg(plain)
        .arg(&packed)
        .args(["--per-record", "25"])
        .args(extra)
        .status()
        .expect("python3 runs (scripts/test installs aws-kinesis-agg)");
    assert!(status.success(), "kpl_aggregate.py failed");
    packed
}

/// Where scripts/test installs the npm test servers (kinesalite, azurite,
/// s3rver): KINESIS_PEON_NODE_MODULES, else the cache under HOME.
pub fn node_modules() -> PathBuf {
    std::env::var_os("KINESIS_PEON_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME"))
                .join(".cache/kinesis-peon/node/node_modules")
        })
}

/// One HTTP/1.1 message (head and Content-Length body) from a stream.
pub fn read_message(r: &mut impl std::io::BufRead) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// Directories under a base dir's local deep storage holding a pushed
/// segment.
pub fn pushed_segment_dirs(base: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![base.join("druid/segments")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "meta.smoosh") {
                out.push(dir.clone());
            }
        }
    }
    out
}
