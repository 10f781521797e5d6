//! Druid's ingestion metrics through the emitter `druid.emitter` names
//! (issue 30): the http emitter against a receiver started here, the
//! logging emitter's lines, unknown emitters refused, `--print-metrics`.

mod common;

use common::*;
use kinesis_peon::source::make_dump::{DumpCompression, LineFormat, MakeDumpOptions, make_dump};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

fn peon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kinesis-peon"))
}

/// One POST the receiver took.
#[derive(Debug, Clone)]
struct Request {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A tiny HTTP/1.1 receiver on 127.0.0.1: keeps each request, then
/// answers 200 (so a request is stored before its sender hears back).
struct Receiver {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests: Arc<Mutex<Vec<Request>>> = Default::default();
        let kept = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || serve(conn, &kept));
            }
        });
        Receiver { port, requests }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/druid-metrics", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// Requests on one connection, one after another (keep-alive).
fn serve(conn: TcpStream, kept: &Mutex<Vec<Request>>) {
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = BTreeMap::new();
        headers.insert(":request".to_string(), line.trim().to_string());
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        kept.lock().unwrap().push(Request { headers, body });
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// A small dump with some of everything: rows kept, rows a filter throws
/// away, and records that do not parse.
fn mixed_dump() -> PathBuf {
    static DUMP: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DUMP.get_or_init(|| {
        let dir = fresh_dir("metrics-input");
        let input = dir.join("rows.ndjson");
        let mut text = String::new();
        for i in 0..300 {
            let carrier = ["AA", "UA", "DL"][i % 3];
            let hour = i % 24;
            text.push_str(&format!(
                "{{\"timestamp\":\"2019-01-0{}T{hour:02}:15:00Z\",\"carrier\":\"{carrier}\",\"origin\":\"O{}\",\"dest\":\"LAX\",\"dep_delay\":{i},\"distance\":2475}}\n",
                1 + i % 3,
                i % 7
            ));
            if i % 50 == 7 {
                text.push_str("{not json\n");
            }
        }
        std::fs::write(&input, text).unwrap();
        let out = dir.join("dump");
        make_dump(&MakeDumpOptions {
            input,
            format: Some(LineFormat::Json),
            shards: 2,
            out: out.clone(),
            stream: "flights".into(),
            partition_key: None,
            compression: DumpCompression::None,
            limit: None,
            copies: 1,
            header: None,
        })
        .expect("make-dump");
        out
    })
    .clone()
}

/// The flights task on `mixed_dump`: DL rows filtered out (thrown away),
/// small in-memory limits so that it persists on the way.
fn mixed_task(dir: &Path, name: &str) -> PathBuf {
    let path = flights_task(dir, name, 2, name, &[]);
    edit_task(&path, |t| {
        t["dataSchema"]["transformSpec"] = json!({
            "filter": {"type": "not", "field": {"type": "selector", "dimension": "carrier", "value": "DL"}}
        });
        t["tuningConfig"] = json!({"type": "KinesisTuningConfig", "maxRowsInMemory": 10});
        t["context"] = json!({"tags": {"team": "ingest"}});
    });
    path
}

fn run_peon(dir: &Path, task: &Path, dump: &Path, defines: &[String], extra: &[&str]) -> Output {
    let mut cmd = peon();
    cmd.current_dir(dir)
        .args(["run", "--task"])
        .arg(task)
        .arg("--dump")
        .arg(dump)
        .arg("--base-dir")
        .arg(dir.join("var"))
        .args(extra);
    for d in defines {
        cmd.arg("-D").arg(d);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// rowStats.buildSegments of the task's report.
fn row_stats(dir: &Path, task_id: &str) -> Value {
    let report = dir.join("var/druid/task").join(task_id).join("report.json");
    let report: Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    report["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"].clone()
}

/// A number the run's summary prints after `label`.
fn summary_number(stdout: &str, label: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} line in {stdout}"))
}

fn sum(events: &[Value], metric: &str) -> i64 {
    events
        .iter()
        .filter(|e| e["metric"] == metric)
        .map(|e| e["value"].as_i64().unwrap())
        .sum()
}

/// Every event of the task's own metrics carries Druid's dimensions.
fn check_task_events(events: &[Value], task_id: &str) {
    for metric in [
        "ingest/events/processed",
        "ingest/events/unparseable",
        "ingest/events/thrownAway",
        "ingest/events/processedWithError",
        "ingest/events/duplicate",
        "ingest/input/bytes",
        "ingest/rows/output",
        "ingest/persists/count",
        "ingest/persists/time",
        "ingest/persists/failed",
        "ingest/merge/time",
        "ingest/handoff/count",
        "ingest/handoff/failed",
        "ingest/sink/count",
    ] {
        assert!(
            events.iter().any(|e| e["metric"] == metric),
            "no {metric} among {events:?}"
        );
    }
    for e in events {
        assert_eq!(e["feed"], "metrics", "{e}");
        assert_eq!(e["service"], "druid/peon", "{e}");
        assert!(e["host"].as_str().is_some_and(|h| !h.is_empty()), "{e}");
        assert!(
            e["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{e}"
        );
        assert!(e["value"].is_number(), "{e}");
        let metric = e["metric"].as_str().unwrap();
        if metric.starts_with("ingest/kinesis/") {
            continue;
        }
        assert_eq!(e["dataSource"], json!(["flights"]), "{e}");
        assert_eq!(e["taskId"], json!([task_id]), "{e}");
        assert_eq!(e["taskType"], json!(["index_kinesis"]), "{e}");
        assert_eq!(e["groupId"], json!([task_id]), "{e}");
        assert_eq!(e["foo"], json!(["bar"]), "{e}");
        assert_eq!(e["tags"], json!({"team": "ingest"}), "{e}");
    }
}

/// The sums over all emissions equal the task's own counts.
fn check_sums(events: &[Value], dir: &Path, task_id: &str, stdout: &str) {
    let stats = row_stats(dir, task_id);
    for (metric, stat) in [
        ("ingest/events/processed", "processed"),
        ("ingest/events/unparseable", "unparseable"),
        ("ingest/events/thrownAway", "thrownAway"),
        ("ingest/events/processedWithError", "processedWithError"),
        ("ingest/input/bytes", "processedBytes"),
    ] {
        assert_eq!(
            sum(events, metric),
            stats[stat].as_i64().unwrap(),
            "{metric} against rowStats.{stat}"
        );
    }
    assert!(stats["unparseable"].as_i64().unwrap() > 0);
    assert!(stats["thrownAway"].as_i64().unwrap() > 0);
    assert_eq!(
        sum(events, "ingest/rows/output") as u64,
        summary_number(stdout, "rows out")
    );
    assert_eq!(
        sum(events, "ingest/persists/count") as u64,
        summary_number(stdout, "persists")
    );
    assert!(sum(events, "ingest/persists/count") > 0);
    // One sequence, published once: one handoff.
    assert_eq!(sum(events, "ingest/handoff/count"), 1);
    assert_eq!(sum(events, "ingest/handoff/failed"), 0);
}

#[test]
fn http_emitter_posts_druids_ingestion_metrics() {
    let receiver = Receiver::start();
    let dir = fresh_dir("metrics-http");
    let task = mixed_task(&dir, "metrics_http");
    let out = run_peon(
        &dir,
        &task,
        &mixed_dump(),
        &[
            "druid.emitter=http".into(),
            format!("druid.emitter.http.recipientBaseUrl={}", receiver.url()),
            "druid.emitter.http.flushMillis=20".into(),
            "druid.emitter.http.flushCount=5".into(),
            "druid.emitter.http.basicAuthentication=admin:s3cret-pw".into(),
            "druid.monitoring.emissionPeriod=PT0.05S".into(),
            "druid.metrics.emitter.dimension.foo=bar".into(),
        ],
        &[],
    );
    succeeded(&out);
    // The emitter flushes before the task exits: every batch is in.
    let requests = receiver.requests();
    assert!(requests.len() > 1, "flushCount 5 makes several batches");
    let mut events = Vec::new();
    for r in &requests {
        assert!(
            r.headers[":request"].starts_with("POST /druid-metrics "),
            "{r:?}"
        );
        assert_eq!(r.headers["content-type"], "application/json");
        // admin:s3cret-pw
        assert_eq!(r.headers["authorization"], "Basic YWRtaW46czNjcmV0LXB3");
        let batch: Value = serde_json::from_slice(&r.body).expect("a JSON array");
        let batch = batch.as_array().expect("a JSON array").clone();
        assert!(!batch.is_empty() && batch.len() <= 5, "{batch:?}");
        events.extend(batch);
    }
    let task_id = "index_kinesis_metrics_http";
    check_task_events(&events, task_id);
    check_sums(&events, &dir, task_id, &text(&out.stdout));
    // The secret is in no log, status or report.
    for file in walk(&dir.join("var/druid/task")) {
        let content = std::fs::read(&file).unwrap_or_default();
        assert!(!text(&content).contains("s3cret"), "{}", file.display());
    }
    assert!(!text(&out.stderr).contains("s3cret"));
    assert!(!text(&out.stdout).contains("s3cret"));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Each logged event: the JSON that follows the log line's prefix.
fn logged_events(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter_map(|l| l.find("{\"feed\":\"metrics\"").map(|at| &l[at..]))
        .map(|json| serde_json::from_str(json).expect("a logged event"))
        .collect()
}

#[test]
fn logging_emitter_logs_each_event_as_json() {
    let dir = fresh_dir("metrics-logging");
    let task = mixed_task(&dir, "metrics_logging");
    let out = run_peon(
        &dir,
        &task,
        &mixed_dump(),
        &[
            "druid.emitter=logging".into(),
            "druid.emitter.logging.logLevel=info".into(),
            "druid.metrics.emitter.dimension.foo=bar".into(),
        ],
        &[],
    );
    succeeded(&out);
    let stderr = text(&out.stderr);
    let events = logged_events(&stderr);
    assert!(!events.is_empty(), "{stderr}");
    let task_id = "index_kinesis_metrics_logging";
    check_task_events(&events, task_id);
    check_sums(&events, &dir, task_id, &text(&out.stdout));
}

#[test]
fn noop_is_the_default_and_unknown_emitters_are_refused() {
    let dir = fresh_dir("metrics-noop");
    let task = mixed_task(&dir, "metrics_noop");
    let out = run_peon(&dir, &task, &mixed_dump(), &[], &[]);
    succeeded(&out);
    assert!(logged_events(&text(&out.stderr)).is_empty());

    let out = run_peon(
        &dir,
        &task,
        &mixed_dump(),
        &["druid.emitter=kafka".into()],
        &[],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Unknown emitter type[druid.emitter]=[kafka]"),
        "{stderr}"
    );
    let out = run_peon(
        &dir,
        &task,
        &mixed_dump(),
        &["druid.emitter=http".into()],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("druid.emitter.http.recipientBaseUrl"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_receiver_that_is_down_does_not_fail_the_task() {
    // A port nothing listens on any more.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = fresh_dir("metrics-down");
    let task = mixed_task(&dir, "metrics_down");
    let out = run_peon(
        &dir,
        &task,
        &mixed_dump(),
        &[
            "druid.emitter=http".into(),
            format!("druid.emitter.http.recipientBaseUrl=http://127.0.0.1:{port}/"),
            "druid.emitter.http.flushTimeOut=5000".into(),
        ],
        &[],
    );
    succeeded(&out);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("metrics: failed to send"), "{stderr}");
    let status: Value = serde_json::from_slice(
        &std::fs::read(dir.join("var/druid/task/index_kinesis_metrics_down/status.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(status["status"], "SUCCESS");
}

#[test]
fn run_and_bench_print_the_metrics_summed_over_the_run() {
    let dir = fresh_dir("metrics-print");
    let task = mixed_task(&dir, "metrics_print");
    let out = run_peon(&dir, &task, &mixed_dump(), &[], &["--print-metrics"]);
    succeeded(&out);
    let stdout = text(&out.stdout);
    let stats = row_stats(&dir, "index_kinesis_metrics_print");
    let printed = |stdout: &str, metric: &str| -> i64 {
        let after = stdout.split("--- metrics").nth(1).expect("a metrics table");
        after
            .lines()
            .find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some(metric)).then(|| words.next().unwrap().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("no {metric} in {stdout}"))
    };
    assert_eq!(
        printed(&stdout, "ingest/events/processed"),
        stats["processed"].as_i64().unwrap()
    );
    assert_eq!(
        printed(&stdout, "ingest/events/unparseable"),
        stats["unparseable"].as_i64().unwrap()
    );
    assert_eq!(
        printed(&stdout, "ingest/rows/output") as u64,
        summary_number(&stdout, "rows out")
    );

    let out = peon()
        .current_dir(&dir)
        .args(["bench", "--print-metrics", "--task"])
        .arg(&task)
        .arg("--dump")
        .arg(mixed_dump())
        .arg("--base-dir")
        .arg(&dir)
        .output()
        .unwrap();
    succeeded(&out);
    let bench = text(&out.stdout);
    assert_eq!(
        printed(&bench, "ingest/events/processed"),
        stats["processed"].as_i64().unwrap()
    );
}
