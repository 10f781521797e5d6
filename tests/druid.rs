//! Real Apache Druid beside the peon (scripts/druid, jars from Maven
//! Central): Druid's own code reads, loads and queries what kinesis-peon
//! writes. The cluster starts once for this binary (`scripts/druid up` is
//! harmless when it is up already) and is shared by the tests, each with
//! data sources of its own; `./scripts/test` stops it at the end.

mod common;

use common::*;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The newest Druid whose core Maven Central serves here: it reads the
/// columns the cluster's release (scripts/druid's pin) cannot, first/last.
const NEWEST_READER: &str = "33.0.0";

struct Cluster {
    env: BTreeMap<String, String>,
}

impl Cluster {
    fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("scripts/druid env has no {key}"))
    }
}

fn druid_script() -> Command {
    Command::new(repo().join("scripts/druid"))
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let status = druid_script()
            .arg("up")
            .status()
            .expect("scripts/druid runs");
        assert!(status.success(), "scripts/druid up failed");
        let out = druid_script().arg("env").output().unwrap();
        let env = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Cluster { env }
    })
}

/// A name no earlier run against a reused cluster has taken.
fn unique(name: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!("{name}_{}_{secs}", std::process::id())
}

fn json_lines(bytes: &[u8]) -> Vec<Map<String, Value>> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Druid's `tools dump-segment` of a segment directory, by a given release.
fn druid_dump_segment(dir: &Path, version: &str) -> Vec<Map<String, Value>> {
    let out = druid_script()
        .env("DRUID_VERSION", version)
        .args(["tool", "dump-segment", "--time-iso8601", "--directory"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Druid {version} dump-segment of {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    json_lines(&out.stdout)
}

fn our_dump_segment(dir: &Path) -> Vec<Map<String, Value>> {
    let out = Command::new(env!("CARGO_BIN_EXE_kinesis-peon"))
        .arg("dump-segment")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_lines(&out.stdout)
}

/// Every segment directory under a base directory's deep storage.
fn segment_dirs(base: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                if p.join("version.bin").exists() {
                    out.push(p);
                } else {
                    walk(&p, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&base.join("druid/segments"), &mut out);
    out.sort();
    out
}

fn has_pair_columns(rows: &[Map<String, Value>]) -> bool {
    rows.iter()
        .any(|r| r.values().any(|v| v.get("lhs").is_some()))
}

/// Druid's rows and ours, column by column, for every segment of a run.
fn compare_with_druid(case: &str, base: &Path, versions: &[&str]) -> usize {
    let dirs = segment_dirs(base);
    assert!(!dirs.is_empty(), "{case}: no segments");
    for dir in &dirs {
        let ours = our_dump_segment(dir);
        assert!(!ours.is_empty(), "{case}: an empty segment");
        for &version in versions {
            // Numeric first/last columns arrived in Druid 29: older
            // releases are not asked to read them.
            if has_pair_columns(&ours) && version < "29" {
                continue;
            }
            let theirs = druid_dump_segment(dir, version);
            assert_eq!(
                theirs.len(),
                ours.len(),
                "{case}: rows of {}",
                dir.display()
            );
            for (i, (t, o)) in theirs.iter().zip(&ours).enumerate() {
                assert_eq!(
                    t,
                    o,
                    "{case}: Druid {version} reads row {i} of {} differently",
                    dir.display()
                );
            }
        }
    }
    dirs.len()
}

/// A fixture task on its dump with one segment per year, so that Druid's
/// dump-segment (a JVM start each) reads all of its rows in one segment.
fn yearly(task: &Path) -> PathBuf {
    edit_task(task, |t| {
        t["dataSchema"]["granularitySpec"]["segmentGranularity"] = json!("YEAR");
    });
    task.to_path_buf()
}

/// Rows of every kind of column the peon writes: multi-value, empty and
/// null lists, numeric dimensions of each type with nulls, a dimension
/// that is never present, metrics over absent and sometimes-null fields.
fn every_kind_dump() -> PathBuf {
    let dir = scratch().join("druid-every-kind-dump");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let carriers = ["AA", "B6", "UA", "DL"];
    let lines: Vec<String> = (0..400u64)
        .map(|i| {
            // A small LCG: deterministic values without a random crate.
            let r = |k: u64| (i.wrapping_mul(6364136223846793005).wrapping_add(k * 1442695040888963407)) >> 33;
            let mut row = json!({
                "timestamp": format!("2013-01-{:02}T{:02}:{:02}:00Z", 1 + i % 3, (i * 7) % 24, i % 60),
                "carrier": carriers[(r(1) % 4) as usize],
                "user": format!("u{}", r(2) % 40),
            });
            let o = row.as_object_mut().unwrap();
            match i % 5 {
                0 => drop(o.insert("tags".into(), json!(["x", "y"]))),
                1 => drop(o.insert("tags".into(), json!(["y"]))),
                2 => drop(o.insert("tags".into(), json!([]))),
                3 => drop(o.insert("tags".into(), Value::Null)),
                _ => {}
            }
            if i % 4 != 0 {
                o.insert("v".into(), json!((r(3) % 550) as i64 - 50));
            }
            if i % 3 != 0 {
                o.insert("d".into(), json!((r(4) % 100_000) as f64 / 97.0));
            }
            if i % 6 != 0 {
                o.insert("num_dim".into(), json!(r(5) % 10));
            }
            if i % 7 != 0 {
                o.insert("dbl_dim".into(), json!((r(6) % 10_000) as f64 / 1000.0));
            }
            if i % 5 != 0 {
                o.insert("flt_dim".into(), json!((r(7) % 1000) as f64 / 100.0));
            }
            row.to_string()
        })
        .collect();
    write_one_shard_dump(&dir, &lines, 1);
    dir
}

fn every_kind_task(dir: &Path, dump: &Path, index_spec: Value) -> PathBuf {
    let shards: Value =
        serde_json::from_slice(&std::fs::read(dump.join("shards.json")).unwrap()).unwrap();
    let stream = shards["StreamName"].clone();
    let shard = shards["Shards"][0]["ShardId"].as_str().unwrap().to_string();
    let task = json!({
        "type": "index_kinesis",
        "id": "index_kinesis_every_kind",
        "dataSchema": {
            "dataSource": "every_kind",
            "timestampSpec": {"column": "timestamp", "format": "iso"},
            "dimensionsSpec": {"dimensions": [
                "carrier", "tags",
                {"type": "long", "name": "num_dim"},
                {"type": "double", "name": "dbl_dim"},
                {"type": "float", "name": "flt_dim"},
                "ghost"
            ]},
            "metricsSpec": [
                {"type": "count", "name": "count"},
                {"type": "longSum", "name": "v_sum", "fieldName": "v"},
                {"type": "longMin", "name": "v_min", "fieldName": "v"},
                {"type": "longMax", "name": "v_max", "fieldName": "v"},
                {"type": "doubleSum", "name": "d_sum", "fieldName": "d"},
                {"type": "doubleMin", "name": "d_min", "fieldName": "d"},
                {"type": "doubleMax", "name": "d_max", "fieldName": "d"},
                {"type": "floatSum", "name": "f_sum", "fieldName": "d"},
                {"type": "floatMax", "name": "f_max", "fieldName": "d"},
                {"type": "longSum", "name": "absent_sum", "fieldName": "absent"},
                {"type": "hyperUnique", "name": "users", "fieldName": "user"},
                {"type": "longFirst", "name": "v_first", "fieldName": "v"},
                {"type": "longLast", "name": "v_last", "fieldName": "v"},
                {"type": "doubleFirst", "name": "d_first", "fieldName": "d"},
                {"type": "doubleLast", "name": "d_last", "fieldName": "d"},
                {"type": "floatFirst", "name": "f_first", "fieldName": "d"},
                {"type": "floatLast", "name": "f_last", "fieldName": "d"},
                {"type": "filtered", "name": "aa_v_sum",
                 "filter": {"type": "selector", "dimension": "carrier", "value": "AA"},
                 "aggregator": {"type": "longSum", "name": "aa_v_sum_inner", "fieldName": "v"}}
            ],
            "granularitySpec": {"type": "uniform", "segmentGranularity": "YEAR",
                                "queryGranularity": "HOUR", "rollup": true}
        },
        "ioConfig": {
            "type": "kinesis",
            "stream": stream,
            "startSequenceNumbers": {"type": "start", "stream": stream,
                "partitionSequenceNumberMap": {shard.clone(): "UNREAD_TRIM_HORIZON"}},
            "endSequenceNumbers": {"type": "end", "stream": stream,
                "partitionSequenceNumberMap": {shard: "NO_END_SEQUENCE_NUMBER"}},
            "inputFormat": {"type": "json"},
            "endpoint": "kinesis.us-east-1.amazonaws.com"
        },
        "tuningConfig": {"type": "kinesis", "indexSpec": index_spec}
    });
    let path = dir.join("every-kind-task.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&task).unwrap()).unwrap();
    path
}

/// Must-show 1: Druid's dump-segment (the IndexIO loader a Historical
/// uses) reads every segment of the fixture tasks, the flights bench tasks
/// and a task with every column kind under each indexSpec we write, row for
/// row and column for column as our dump-segment does.
#[test]
fn druid_dump_segment_reads_what_we_write() {
    let c = cluster();
    let pinned = c.get("DRUID_VERSION").to_string();
    let readers = [pinned.as_str(), NEWEST_READER];
    let mut checked = 0;

    let ndjson = flights_dump_of("ndjson", "druid-ndjson-20k", 2, Some(20_000));
    let csv = flights_dump_of("csv", "druid-csv-20k", 2, Some(20_000));
    let tsv = flights_dump_of("tsv", "druid-tsv-20k", 2, Some(20_000));
    let kpl = kpl_dump(&ndjson, "druid-kpl-20k", &[]);
    let fixtures = [
        ("01-json-rollup-metrics.json", &ndjson),
        ("02-csv-flights.json", &csv),
        ("03-tsv-typed-dimensions.json", &tsv),
        ("04-json-flatten-transform.json", &ndjson),
        ("05-deaggregate-explicit-end.json", &kpl),
    ];
    for (fixture, dump) in fixtures {
        let base = fresh_dir(&format!("druid-{fixture}"));
        let task = yearly(&adapt_fixture(fixture, dump, &base));
        let s = run_task(&task, dump, &base);
        assert_eq!(s.error, None, "{fixture}");
        checked += compare_with_druid(fixture, &base, &readers);
    }

    let flavours = [("json", "ndjson"), ("csv", "csv"), ("tsv", "tsv")];
    for (kind, flavour) in flavours {
        let dump = flights_dump_of(flavour, &format!("druid-{flavour}-4x20k"), 4, Some(20_000));
        let fixture = format!("flights4-{kind}-task.json");
        let base = fresh_dir(&format!("druid-{fixture}"));
        let source = repo().join("fixtures/bench").join(&fixture);
        let task = yearly(&adapt_task_file(&source, &dump, &base));
        let s = run_task(&task, &dump, &base);
        assert_eq!(s.error, None, "{fixture}");
        checked += compare_with_druid(&fixture, &base, &readers);
    }

    let dump = every_kind_dump();
    let index_specs = [
        json!({}),
        json!({"dimensionCompression": "lzf", "metricCompression": "lzf", "longEncoding": "auto"}),
        json!({"dimensionCompression": "uncompressed", "metricCompression": "none",
               "bitmap": {"type": "roaring", "compressRunOnSerialization": false}}),
        json!({"dimensionCompression": "lz4", "metricCompression": "uncompressed",
               "longEncoding": "auto", "bitmap": {"type": "roaring", "compressRunOnSerialization": true}}),
    ];
    for spec in index_specs {
        let case = format!("every kind, indexSpec {spec}");
        let base = fresh_dir("druid-every-kind");
        let task = every_kind_task(&base, &dump, spec);
        let s = run_task(&task, &dump, &base);
        assert_eq!(s.error, None, "{case}");
        checked += compare_with_druid(&case, &base, &readers);
    }
    eprintln!("Druid {pinned} and {NEWEST_READER} read {checked} segments as we do");
}

// ------------------------------------------------------------- the cluster

fn http_json(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-m", "120", "-X", method, "-w", "\n%{http_code}"])
        .args(["-H", "Content-Type: application/json"]);
    if let Some(b) = body {
        cmd.args(["--data-binary", &b.to_string()]);
    }
    let out = cmd.arg(url).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let code = code.trim().parse().unwrap_or(0);
    (
        code,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_string())),
    )
}

fn sql(c: &Cluster, query: &str) -> Vec<Value> {
    let url = format!("{}/druid/v2/sql", c.get("DRUID_BROKER_URL"));
    let (code, v) = http_json("POST", &url, Some(&json!({"query": query})));
    assert_eq!(code, 200, "{query}: {v}");
    v.as_array().cloned().unwrap_or_default()
}

/// Poll until `f` gives Some, or fail after `limit` naming `what`.
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Wait until the Historical serves `n` segments of `ds` and the Broker's
/// SQL sees them all.
fn wait_until_served(c: &Cluster, ds: &str, n: usize) {
    wait_for(
        &format!("{n} segments of {ds} served"),
        Duration::from_secs(900),
        || {
            let url = format!(
                "{}/druid/coordinator/v1/datasources/{ds}/loadstatus?forceMetadataRefresh=true&interval=2000-01-01T00:00:00Z%2F2100-01-01T00:00:00Z",
                c.get("DRUID_COORDINATOR_URL")
            );
            let (code, v) = http_json("GET", &url, None);
            (code == 200 && v[ds].as_f64() == Some(100.0)).then_some(())
        },
    );
    wait_for(
        &format!("{ds} in the Broker's SQL"),
        Duration::from_secs(300),
        || {
            let url = format!("{}/druid/v2/sql", c.get("DRUID_BROKER_URL"));
            let q = format!(
                "SELECT COUNT(*) AS n FROM sys.segments WHERE datasource = '{ds}' AND is_available = 1"
            );
            let (code, v) = http_json("POST", &url, Some(&json!({"query": q})));
            (code == 200 && v[0]["n"].as_u64() == Some(n as u64)).then_some(())
        },
    );
    wait_for(
        &format!("{ds} as a SQL table"),
        Duration::from_secs(300),
        || {
            let url = format!("{}/druid/v2/sql", c.get("DRUID_BROKER_URL"));
            let q = format!("SELECT COUNT(*) FROM \"{ds}\"");
            let (code, _) = http_json("POST", &url, Some(&json!({"query": q})));
            (code == 200).then_some(())
        },
    );
}

/// The flights task of the cluster tests: the bench task's hourly rollup on
/// carrier/origin/dest with its metrics, plus a hyperUnique of tail numbers.
fn flights_cluster_task(dir: &Path, dump: &Path, ds: &str) -> PathBuf {
    let source = repo().join("fixtures/bench/flights4-json-task.json");
    let task = adapt_task_file(&source, dump, dir);
    edit_task(&task, |t| {
        t["id"] = json!(format!("index_kinesis_{ds}"));
        t["dataSchema"]["dataSource"] = json!(ds);
        t["dataSchema"]["metricsSpec"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "hyperUnique", "name": "tailnum_hll", "fieldName": "tailnum"}));
    });
    task
}

/// `kinesis-peon run` of a task on a dump, publishing into the cluster
/// (its metadata store and deep storage) through its properties file.
fn backfill(c: &Cluster, task: &Path, dump: &Path, base: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kinesis-peon"))
        .arg("run")
        .arg("--task")
        .arg(task)
        .arg("--dump")
        .arg(dump)
        .arg("--base-dir")
        .arg(base)
        .arg("--properties")
        .arg(c.get("DRUID_PEON_PROPERTIES"))
        .output()
        .unwrap()
}

/// Naive totals over the flights NDJSON: rows, dep_delay sum/min/max,
/// distance sum, and per carrier (rows, dep_delay sum).
struct Naive {
    rows: i64,
    rollup_rows: usize,
    dep_delay_sum: i64,
    dep_delay_min: i64,
    dep_delay_max: i64,
    distance_sum: f64,
    by_carrier: BTreeMap<String, (i64, i64)>,
    by_day: BTreeMap<String, i64>,
    by_hour: BTreeMap<String, i64>,
}

fn naive_flights() -> Naive {
    let mut n = Naive {
        rows: 0,
        rollup_rows: 0,
        dep_delay_sum: 0,
        dep_delay_min: i64::MAX,
        dep_delay_max: i64::MIN,
        distance_sum: 0.0,
        by_carrier: BTreeMap::new(),
        by_day: BTreeMap::new(),
        by_hour: BTreeMap::new(),
    };
    let mut keys = std::collections::HashSet::new();
    for row in flights_rows(usize::MAX) {
        let ts = row["timestamp"].as_str().unwrap();
        let carrier = row["carrier"].as_str().unwrap_or("").to_string();
        n.rows += 1;
        keys.insert((
            ts[..13].to_string(),
            carrier.clone(),
            row["origin"].to_string(),
            row["dest"].to_string(),
        ));
        let e = n.by_carrier.entry(carrier).or_default();
        e.0 += 1;
        *n.by_day
            .entry(format!("{}T00:00:00.000Z", &ts[..10]))
            .or_default() += 1;
        *n.by_hour
            .entry(format!("{}:00:00.000Z", &ts[..13]))
            .or_default() += 1;
        if let Some(d) = row["dep_delay"].as_i64() {
            n.dep_delay_sum += d;
            n.dep_delay_min = n.dep_delay_min.min(d);
            n.dep_delay_max = n.dep_delay_max.max(d);
            e.1 += d;
        }
        n.distance_sum += row["distance"].as_f64().unwrap_or(0.0);
    }
    n.rollup_rows = keys.len();
    n
}

/// Must-show 2: `run` backfills the 4-shard flights dump into the cluster's
/// PostgreSQL metadata store and local deep storage; the Coordinator marks
/// the segments used, the Historical loads all of them, and the Broker's
/// SQL equals a naive computation over the NDJSON.
#[test]
fn backfill_into_druid_is_served_exactly() {
    let c = cluster();
    let ds = unique("kp_flights");
    let dump = flights_dump_of("ndjson", "flights-4", 4, None);
    let dir = fresh_dir("druid-backfill");
    let task = flights_cluster_task(&dir, &dump, &ds);
    let out = backfill(c, &task, &dump, &dir.join("var"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until_served(c, &ds, 366);

    let naive = naive_flights();
    let q = |s: &str| sql(c, &s.replace("DS", &format!("\"{ds}\"")));
    let totals = &q(
        r#"SELECT COUNT(*) AS n, SUM("count") AS c, SUM(dep_delay_sum) AS s,
        MIN(dep_delay_min) AS mn, MAX(dep_delay_max) AS mx, SUM(distance_sum) AS d FROM DS"#,
    )[0];
    assert_eq!(totals["n"].as_u64(), Some(naive.rollup_rows as u64));
    assert_eq!(totals["c"].as_i64(), Some(naive.rows));
    assert_eq!(totals["s"].as_i64(), Some(naive.dep_delay_sum));
    assert_eq!(totals["mn"].as_i64(), Some(naive.dep_delay_min));
    assert_eq!(totals["mx"].as_i64(), Some(naive.dep_delay_max));
    assert_eq!(totals["d"].as_f64(), Some(naive.distance_sum));
    let by_carrier: BTreeMap<String, (i64, i64)> =
        q(r#"SELECT carrier, SUM("count") AS c, SUM(dep_delay_sum) AS s FROM DS GROUP BY carrier"#)
            .iter()
            .map(|r| {
                let k = r["carrier"].as_str().unwrap_or("").to_string();
                (k, (r["c"].as_i64().unwrap(), r["s"].as_i64().unwrap()))
            })
            .collect();
    assert_eq!(by_carrier, naive.by_carrier);
    // Rows per time bucket, as (bucket start, SUM of count).
    let buckets =
        |period: &str| -> BTreeMap<String, i64> {
            q(&format!(
            r#"SELECT TIME_FLOOR(__time, '{period}') AS t, SUM("count") AS c FROM DS GROUP BY 1"#
        ))
        .iter()
        .map(|r| (r["t"].as_str().unwrap().to_string(), r["c"].as_i64().unwrap()))
        .collect()
        };
    assert_eq!(buckets("P1D"), naive.by_day);
    let by_hour = buckets("PT1H");
    assert_eq!(by_hour, naive.by_hour);
}

/// The same task again adds nothing; a clashing start fails with Druid's
/// message and publishes nothing; a follow-on task continues the offsets.
#[test]
fn backfill_is_exactly_once_against_druids_metadata_store() {
    let c = cluster();
    let ds = unique("kp_follow");
    let dump = flights_dump_of("ndjson", "druid-follow-2x20k", 2, Some(20_000));
    let dir = fresh_dir("druid-follow");
    let shards: Value =
        serde_json::from_slice(&std::fs::read(dump.join("shards.json")).unwrap()).unwrap();
    let (mut first, mut middle, mut last, mut no_end) =
        (Map::new(), Map::new(), Map::new(), Map::new());
    for shard in shards["Shards"].as_array().unwrap() {
        let id = shard["ShardId"].as_str().unwrap();
        let text = std::fs::read_to_string(dump.join(format!("{id}.jsonl"))).unwrap();
        let seqs: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["SequenceNumber"].clone())
            .collect();
        first.insert(id.into(), seqs[0].clone());
        middle.insert(id.into(), seqs[seqs.len() / 2].clone());
        last.insert(id.into(), seqs[seqs.len() - 1].clone());
        no_end.insert(id.into(), json!("NO_END_SEQUENCE_NUMBER"));
    }
    let ranged =
        |name: &str, start: &Map<String, Value>, exclusive: bool, end: &Map<String, Value>| {
            let task = flights_cluster_task(&dir, &dump, &ds);
            let path = dir.join(format!("{name}.json"));
            std::fs::rename(&task, &path).unwrap();
            edit_task(&path, |t| {
                t["id"] = json!(format!("index_kinesis_{ds}_{name}"));
                t["ioConfig"]["baseSequenceName"] = json!(format!("{ds}_{name}"));
                let ex: Vec<&String> = if exclusive {
                    start.keys().collect()
                } else {
                    vec![]
                };
                t["ioConfig"]["startSequenceNumbers"] = json!({"type": "start", "stream": "flights",
                "partitionSequenceNumberMap": start, "exclusivePartitions": ex});
                t["ioConfig"]["endSequenceNumbers"] = json!({"type": "end", "stream": "flights",
                "partitionSequenceNumberMap": end});
            });
            path
        };
    let run = |task: &Path| backfill(c, task, &dump, &dir.join("var"));
    let psql = |query: &str| -> String {
        let uri = c.get("DRUID_METADATA_URI");
        let out = Command::new("psql")
            .args([uri, "-qAtc", query])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let used = || {
        psql(&format!(
            "SELECT COUNT(*) FROM druid_segments WHERE datasource = '{ds}' AND used"
        ))
    };

    let head = ranged("head", &first, false, &middle);
    let out = run(&head);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after_head = used();
    assert_ne!(after_head, "0");
    // The same task again: its segments exist, nothing is added.
    assert!(run(&head).status.success());
    assert_eq!(used(), after_head);
    // Another task from the same start: the stored offsets moved past it.
    let clash = ranged("clash", &first, false, &last);
    let out = run(&clash);
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Inconsistent metadata state"), "{text}");
    assert_eq!(used(), after_head);
    // The follow-on task starts exclusively where the head ended.
    let tail = ranged("tail", &middle, true, &no_end);
    let out = run(&tail);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let payload = psql(&format!(
        "SELECT convert_from(commit_metadata_payload, 'UTF8') FROM druid_datasource WHERE datasource = '{ds}'"
    ));
    let stored: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(
        stored["partitions"]["partitionSequenceNumberMap"],
        Value::Object(last.clone())
    );
    let n: usize = used().parse().unwrap();
    wait_until_served(c, &ds, n);
    let total = &sql(c, &format!("SELECT SUM(\"count\") AS c FROM \"{ds}\""))[0];
    assert_eq!(total["c"].as_i64(), Some(20_000));
}

/// Must-show 3: the same flights rows ingested by Druid itself (a native
/// batch task reading the NDJSON, same schema and rollup) answer at least
/// twenty SQL queries exactly as the peon's backfill does, and Druid's
/// segmentMetadata reports the same columns and types for both.
#[test]
fn druid_native_batch_and_the_peon_agree() {
    let c = cluster();
    let ours = unique("kp_ours");
    let theirs = unique("kp_druid");
    let dump = flights_dump_of("ndjson", "flights-4", 4, None);
    let dir = fresh_dir("druid-agree");
    let task = flights_cluster_task(&dir, &dump, &ours);
    let spec: Value = serde_json::from_slice(&std::fs::read(&task).unwrap()).unwrap();

    // Druid's own ingestion of the same file with the same dataSchema.
    let mut schema = spec["dataSchema"].clone();
    schema["dataSource"] = json!(theirs);
    let data = flights_ndjson();
    let batch = json!({
        "type": "index_parallel",
        "spec": {
            "dataSchema": schema,
            "ioConfig": {
                "type": "index_parallel",
                "inputSource": {"type": "local",
                    "baseDir": data.parent().unwrap().canonicalize().unwrap(),
                    "filter": data.file_name().unwrap().to_str().unwrap()},
                "inputFormat": {"type": "json"}
            },
            "tuningConfig": {"type": "index_parallel", "maxNumConcurrentSubTasks": 1,
                             "maxRowsInMemory": 1000000,
                             "partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": 5000000}}
        }
    });
    let url = format!("{}/druid/indexer/v1/task", c.get("DRUID_OVERLORD_URL"));
    let (code, v) = http_json("POST", &url, Some(&batch));
    assert_eq!(code, 200, "{v}");
    let task_id = v["task"].as_str().unwrap().to_string();

    // Meanwhile, ours.
    let out = backfill(c, &task, &dump, &dir.join("var"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let status_url = format!(
        "{}/druid/indexer/v1/task/{task_id}/status",
        c.get("DRUID_OVERLORD_URL")
    );
    let status = wait_for("Druid's batch task", Duration::from_secs(1500), || {
        let (_, v) = http_json("GET", &status_url, None);
        let s = v["status"]["status"]
            .as_str()
            .unwrap_or("RUNNING")
            .to_string();
        (s != "RUNNING" && s != "WAITING" && s != "PENDING").then_some(s)
    });
    assert_eq!(
        status, "SUCCESS",
        "Druid's batch task {task_id} ended {status}"
    );
    wait_until_served(c, &ours, 366);
    wait_until_served(c, &theirs, 366);

    let queries = [
        r#"SELECT COUNT(*) AS n FROM DS"#,
        r#"SELECT SUM("count") AS c, SUM(dep_delay_sum) AS s, SUM(distance_sum) AS d FROM DS"#,
        r#"SELECT MIN(dep_delay_min) AS mn, MAX(dep_delay_max) AS mx FROM DS"#,
        r#"SELECT MIN(__time) AS a, MAX(__time) AS b FROM DS"#,
        r#"SELECT carrier, SUM("count") AS c, SUM(dep_delay_sum) AS s FROM DS GROUP BY carrier ORDER BY carrier"#,
        r#"SELECT origin, SUM("count") AS c, MAX(dep_delay_max) AS m FROM DS GROUP BY origin ORDER BY origin"#,
        r#"SELECT dest, SUM("count") AS c, MIN(dep_delay_min) AS m FROM DS GROUP BY dest ORDER BY dest"#,
        r#"SELECT carrier, origin, COUNT(*) AS n, SUM(distance_sum) AS d FROM DS GROUP BY 1, 2 ORDER BY 1, 2"#,
        r#"SELECT TIME_FLOOR(__time, 'P1D') AS t, SUM("count") AS c FROM DS GROUP BY 1 ORDER BY 1"#,
        r#"SELECT TIME_FLOOR(__time, 'P1M') AS t, SUM(dep_delay_sum) AS s, COUNT(*) AS n FROM DS GROUP BY 1 ORDER BY 1"#,
        r#"SELECT TIME_FLOOR(__time, 'PT1H') AS t, SUM("count") AS c FROM DS
           WHERE __time >= TIMESTAMP '2013-01-05' AND __time < TIMESTAMP '2013-01-06' GROUP BY 1 ORDER BY 1"#,
        r#"SELECT EXTRACT(HOUR FROM __time) AS h, SUM("count") AS c FROM DS GROUP BY 1 ORDER BY 1"#,
        r#"SELECT SUM("count") AS c, SUM(dep_delay_sum) AS s FROM DS WHERE carrier = 'AA'"#,
        r#"SELECT carrier, SUM("count") AS c FROM DS WHERE origin IN ('JFK', 'LGA') GROUP BY 1 ORDER BY 1"#,
        r#"SELECT COUNT(*) AS n, SUM("count") AS c FROM DS WHERE dep_delay_max > 60"#,
        r#"SELECT dest, SUM("count") AS c FROM DS WHERE dest LIKE 'S%' GROUP BY 1 ORDER BY 1"#,
        r#"SELECT COUNT(*) AS n FROM DS WHERE carrier <> 'UA' AND dest = 'MIA'"#,
        r#"SELECT dest, SUM("count") AS c FROM DS GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5"#,
        r#"SELECT origin, CAST(SUM(dep_delay_sum) AS DOUBLE) / SUM("count") AS avg_delay FROM DS GROUP BY 1 ORDER BY 1"#,
        r#"SELECT APPROX_COUNT_DISTINCT(tailnum_hll) AS tails FROM DS"#,
        r#"SELECT carrier, APPROX_COUNT_DISTINCT(tailnum_hll) AS tails FROM DS GROUP BY 1 ORDER BY 1"#,
        r#"SELECT COUNT(DISTINCT carrier) AS carriers, COUNT(DISTINCT dest) AS dests FROM DS"#,
        r#"SELECT carrier, dest, SUM("count") AS c FROM DS WHERE __time < TIMESTAMP '2013-02-01'
           AND dep_delay_min < 0 GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 20"#,
    ];
    for query in queries {
        let a = sql(c, &query.replace("DS", &format!("\"{ours}\"")));
        let b = sql(c, &query.replace("DS", &format!("\"{theirs}\"")));
        assert!(!a.is_empty(), "{query}: no rows");
        assert_eq!(a, b, "{query}");
    }

    let metadata = |ds: &str| -> BTreeMap<String, (Value, Value)> {
        let url = format!("{}/druid/v2", c.get("DRUID_BROKER_URL"));
        let query = json!({"queryType": "segmentMetadata", "dataSource": ds,
            "merge": true, "analysisTypes": [], "intervals": ["2000/2100"]});
        let (code, v) = http_json("POST", &url, Some(&query));
        assert_eq!(code, 200, "{v}");
        v[0]["columns"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, c)| (k.clone(), (c["type"].clone(), c["typeSignature"].clone())))
            .collect()
    };
    let (a, b) = (metadata(&ours), metadata(&theirs));
    assert_eq!(a.len(), 10, "{a:?}");
    assert_eq!(a, b);
}
