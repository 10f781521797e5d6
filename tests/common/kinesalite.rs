//! A kinesalite server (npm) on 127.0.0.1 for one test, filled by a real
//! producer (boto3, tests/servers/put_flights.py), and live runs against it.

use super::server::Server;
use super::*;
use std::process::Command;

/// kinesalite on a loopback port, killed on drop.
pub struct Kinesalite {
    server: Server,
    pub port: u16,
}

impl Kinesalite {
    pub fn start() -> Kinesalite {
        Kinesalite::start_with(0, None)
    }

    /// On `port` (0: any free one), in LevelDB under `dir` when given (the
    /// data then survives a restart).
    pub fn start_with(port: u16, dir: Option<&std::path::Path>) -> Kinesalite {
        let mut cmd = Command::new("node");
        cmd.arg(repo().join("tests/servers/kinesalite.js"))
            .arg(port.to_string())
            .args(dir)
            .env("NODE_PATH", node_modules());
        // Ready when it says so: the line comes after listen() succeeded.
        let server = Server::spawn(cmd, "kinesalite (npm, node)", |line| {
            line.strip_prefix("listening ")?.trim().parse().ok()
        });
        Kinesalite {
            port: server.port,
            server,
        }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }
}

/// Put the first `rows` flights rows into a new stream with boto3; the last
/// sequence number put into each shard.
pub fn put_flights(
    server: &Kinesalite,
    stream: &str,
    shards: usize,
    rows: usize,
) -> serde_json::Value {
    put_flights_with(server, stream, shards, rows, &[])
}

pub fn put_flights_with(
    server: &Kinesalite,
    stream: &str,
    shards: usize,
    rows: usize,
    extra: &[&str],
) -> serde_json::Value {
    let mut args = vec![
        shards.to_string(),
        rows.to_string(),
        flights_ndjson().to_string_lossy().into_owned(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    boto3_script("put_flights.py", server, stream, &args)
}

/// Run one of tests/servers' boto3 scripts against `stream` on the server;
/// its stdout is JSON.
pub fn boto3_script(
    script: &str,
    server: &Kinesalite,
    stream: &str,
    args: &[String],
) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(repo().join("tests/servers").join(script))
        .arg(server.url())
        .arg(stream)
        .args(args)
        .output()
        .expect("python3 runs (scripts/test installs boto3)");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn run_live(task: &std::path::Path, base: &std::path::Path) -> kinesis_peon::task::RunSummary {
    run_live_with(task, base, false)
}

pub fn run_live_with(
    task: &std::path::Path,
    base: &std::path::Path,
    until_caught_up: bool,
) -> kinesis_peon::task::RunSummary {
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
        until_caught_up,
        print_metrics: false,
    })
    .unwrap()
}

/// A live run that published `rows` rows once each (its rollup equals the
/// naive one): its shard reads by shard id.
pub fn published_once<'s>(
    s: &'s kinesis_peon::task::RunSummary,
    base: &Path,
    rows: usize,
) -> std::collections::BTreeMap<String, &'s kinesis_peon::task::ShardRead> {
    assert_eq!(s.error, None);
    assert_eq!(s.stats.processed, rows as u64, "{:?}", s.shards);
    assert_eq!(
        groups_from_segments(&published_segments(base, "flights")),
        naive_groups(Some(rows))
    );
    s.shards.iter().map(|r| (r.shard_id.clone(), r)).collect()
}
