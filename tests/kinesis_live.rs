//! Reading real Kinesis-compatible servers: kinesalite (npm), started on
//! 127.0.0.1 by the test itself, filled by real producers (boto3). The
//! test setup (scripts/test) installs both; KINESIS_PEON_NODE_MODULES
//! names where kinesalite is installed.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A kinesalite process on a free loopback port, killed on drop.
struct Kinesalite {
    child: Child,
    port: u16,
}

fn node_modules() -> PathBuf {
    std::env::var_os("KINESIS_PEON_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME"))
                .join(".cache/kinesis-peon/node/node_modules")
        })
}

impl Kinesalite {
    fn start() -> Kinesalite {
        let mut child = Command::new("node")
            .arg(repo().join("tests/servers/kinesalite.js"))
            .arg("0")
            .env("NODE_PATH", node_modules())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs (scripts/test installs kinesalite)");
        // Ready when it says so: the line comes after listen() succeeded.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("kinesalite did not start: {line:?}"));
        Kinesalite { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Kinesalite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Put the first `rows` flights rows into a new stream with boto3; the last
/// sequence number put into each shard.
fn put_flights(server: &Kinesalite, stream: &str, shards: usize, rows: usize) -> serde_json::Value {
    put_flights_with(server, stream, shards, rows, &[])
}

fn put_flights_with(
    server: &Kinesalite,
    stream: &str,
    shards: usize,
    rows: usize,
    extra: &[&str],
) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(repo().join("tests/servers/put_flights.py"))
        .arg(server.url())
        .arg(stream)
        .arg(shards.to_string())
        .arg(rows.to_string())
        .arg(flights_ndjson())
        .args(extra)
        .output()
        .expect("python3 runs (scripts/test installs boto3)");
    assert!(
        out.status.success(),
        "put_flights.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn run_live(task: &std::path::Path, base: &std::path::Path) -> kinesis_peon::task::RunSummary {
    kinesis_peon::task::run(&kinesis_peon::task::RunOptions {
        task_file: task.to_path_buf(),
        dump: None,
        properties: [
            ("druid.kinesis.accessKey".to_string(), "test".to_string()),
            ("druid.kinesis.secretKey".to_string(), "test".to_string()),
        ]
        .into(),
        base_dir: base.to_path_buf(),
        progress: false,
        stage_timing: false,
    })
    .unwrap()
}

/// 50,000 flights rows in a 4-shard stream (partition key flight), read
/// live with explicit inclusive end sequence numbers: the published rollup
/// equals the naive one.
#[test]
fn live_stream_with_explicit_ends_matches_a_naive_computation() {
    let server = Kinesalite::start();
    let rows = 50_000;
    let last = put_flights(&server, "flights", 4, rows);
    let base = fresh_dir("live-4");
    let task = flights_task(&base, "live", 4, "live", &[]);
    edit_task(&task, |t| {
        t["ioConfig"]["endpoint"] = server.url().into();
        t["ioConfig"]["endSequenceNumbers"]["partitionSequenceNumberMap"] = last.clone();
    });
    let s = run_live(&task, &base);
    assert_eq!(s.error, None);
    assert_eq!(s.stats.processed, rows as u64);
    assert_eq!(
        groups_from_segments(&published_segments(&base, "flights")),
        naive_groups(Some(rows))
    );

    // `record` the stream, then replay the recording: the same bytes.
    use kinesis_peon::source::record::{From, RecordOptions, Until, record};
    let dump = scratch().join("live-4-recorded");
    let counts = record(&RecordOptions {
        config: kinesis_peon::source::kinesis::KinesisConfig {
            endpoint: server.url(),
            stream: "flights".into(),
            static_credentials: Some(("test".into(), "test".into())),
            assumed_role: None,
            records_per_fetch: 10_000,
            fetch_delay: std::time::Duration::ZERO,
        },
        out: dump.clone(),
        from: From::TrimHorizon,
        until: Until::CaughtUp,
    })
    .unwrap();
    assert_eq!(counts.len(), 4);
    assert_eq!(counts.iter().map(|c| c.1).sum::<u64>(), rows as u64);
    let replayed = fresh_dir("live-4-replayed");
    let task2 = replayed.join("live.json");
    std::fs::copy(&task, &task2).unwrap();
    let s2 = run_task(&task2, &dump, &replayed);
    assert_eq!(s2.error, None);
    let live_zips = zips_by_interval(&base, "flights");
    let days: std::collections::BTreeSet<i64> = naive_groups(Some(rows))
        .keys()
        .map(|k| k.0.div_euclid(86_400_000))
        .collect();
    assert_eq!(live_zips.len(), days.len(), "one segment per day");
    assert_eq!(zips_by_interval(&replayed, "flights"), live_zips);
}

/// The same rows as KPL aggregates of 20 (aws-kinesis-agg) read with
/// `deaggregate: true`: the same rollup, less the 20 rows of the one
/// aggregate whose MD5 was damaged; that record is one unparseable event
/// naming its shard and sequence number.
#[test]
fn live_kpl_aggregates_deaggregate_and_a_bad_digest_is_one_parse_error() {
    let server = Kinesalite::start();
    let rows = 10_000;
    let mut last = put_flights_with(
        &server,
        "kpl",
        2,
        rows,
        &["--kpl", "20", "--corrupt-md5", "7"],
    );
    let corrupted = last.as_object_mut().unwrap().remove("corrupted").unwrap();
    let base = fresh_dir("live-kpl");
    let task = flights_task(&base, "live-kpl", 2, "live-kpl", &[]);
    edit_task(&task, |t| {
        t["ioConfig"]["endpoint"] = server.url().into();
        t["ioConfig"]["stream"] = "kpl".into();
        t["ioConfig"]["startSequenceNumbers"]["stream"] = "kpl".into();
        t["ioConfig"]["endSequenceNumbers"]["stream"] = "kpl".into();
        t["ioConfig"]["deaggregate"] = true.into();
        t["tuningConfig"]["maxSavedParseExceptions"] = 10.into();
        t["ioConfig"]["endSequenceNumbers"]["partitionSequenceNumberMap"] = last.clone();
    });
    let s = run_live(&task, &base);
    assert_eq!(s.error, None);
    assert_eq!(s.stats.unparseable, 1);
    assert_eq!(s.stats.processed, rows as u64 - 20);
    let expected = format!(
        "shard {}, sequence number {}: KPL aggregated record: MD5 digest does not match",
        corrupted[0].as_str().unwrap(),
        corrupted[1].as_str().unwrap()
    );
    assert!(
        s.saved_errors.iter().any(|e| e == &expected),
        "{:?}",
        s.saved_errors
    );
    // Rows 140..160 (the 8th aggregate) are the ones lost.
    let naive: i64 = flights_rows(rows)
        .iter()
        .enumerate()
        .filter(|(i, _)| !(140..160).contains(i))
        .filter_map(|(_, r)| r["dep_delay"].as_i64())
        .sum();
    let groups = groups_from_segments(&published_segments(&base, "flights"));
    assert_eq!(groups.values().filter_map(|g| g.1).sum::<i64>(), naive);
    assert_eq!(groups.values().map(|g| g.0).sum::<i64>(), rows as i64 - 20);
}
