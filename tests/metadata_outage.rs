//! The PostgreSQL metadata store going away under a running task (issue 28
//! must-show 4): a real PostgreSQL server, stopped after the task has
//! connected. Back within the retries, the task reconnects and publishes
//! once; down through all of them, it fails cleanly (nothing published, no
//! pushed segment left, no offsets moved) and the rerun publishes once.

mod common;

use common::postgres::Postgres;
use common::*;
use kinesis_peon::publish::MetadataStore;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ROWS: usize = 20_000;

/// A `run` in a child process, its log read as it comes.
struct Peon {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: String,
}

impl Peon {
    fn start(task: &Path, dump: &Path, base: &Path, pg: &Postgres, tries: u32) -> Peon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinesis-peon"));
        cmd.env("RUST_LOG", "info")
            .env(kinesis_peon::task::METADATA_TRIES_VAR, tries.to_string())
            .args(["run", "--task"])
            .arg(task)
            .arg("--dump")
            .arg(dump)
            .arg("--base-dir")
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in pg.properties() {
            cmd.arg("-D").arg(format!("{k}={v}"));
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Peon {
            child,
            lines,
            log: String::new(),
        }
    }

    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(300);
        while !self.log.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push_str(&line);
                    self.log.push('\n');
                }
                Err(e) => panic!("waiting for {needle:?}: {e}\n{}", self.log),
            }
        }
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Whether it succeeded, and its whole log.
    fn finish(mut self) -> (bool, String) {
        let status = self.child.wait().unwrap();
        for line in self.lines.iter() {
            self.log.push_str(&line);
            self.log.push('\n');
        }
        (status.success(), self.log)
    }
}

fn store(pg: &Postgres) -> MetadataStore {
    let props: BTreeMap<String, String> = pg.properties().into_iter().collect();
    MetadataStore::from_properties(&props, Path::new("/nonexistent/unused.sqlite")).unwrap()
}

fn offsets(pg: &Postgres) -> Option<BTreeMap<String, String>> {
    store(pg).committed_offsets("flights").unwrap().map(|o| {
        o.offsets
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect()
    })
}

/// Directories under deep storage holding a pushed segment.
fn pushed(base: &Path) -> Vec<PathBuf> {
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

/// Published exactly once: the rollup equals the naive one, every used
/// segment is on disk and nothing else is, the offsets are each shard's last.
fn published_once(pg: &Postgres, base: &Path, dump_last: &BTreeMap<String, String>) {
    let segments = segments_in(&store(pg), "flights");
    assert_eq!(groups_from_segments(&segments), naive_groups(Some(ROWS)));
    assert_eq!(pushed(base).len(), segments.len());
    assert_eq!(offsets(pg).as_ref(), Some(dump_last));
}

/// Each shard's last sequence number in the dump, as a clean run on the
/// embedded store commits them.
fn clean_offsets(task: &Path, dump: &Path, root: &Path) -> BTreeMap<String, String> {
    let base = root.join("clean");
    let s = run_task(task, dump, &base);
    assert_eq!(s.error, None);
    let store = MetadataStore::open(&kinesis_peon::task::layout_for(&base).metadata_db()).unwrap();
    store
        .committed_offsets("flights")
        .unwrap()
        .unwrap()
        .offsets
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
}

/// The task is frozen (SIGSTOP) right after it connected, the server
/// stopped, the task thawed: its first metadata call finds the connection
/// gone, it waits and tries again; the server comes back; it reconnects
/// and publishes once.
#[test]
fn postgres_back_within_the_retries_is_reconnected_and_published_once() {
    let dump = flights_dump("outage-flights4", 4, Some(ROWS as u64));
    let root = fresh_dir("outage-back");
    let task = flights_task(&root, "outage-back", 4, "outage-back", &[]);
    let last = clean_offsets(&task, &dump, &root);
    let pg = Postgres::start("back");
    let base = root.join("run");
    let mut peon = Peon::start(&task, &dump, &base, &pg, 10);
    peon.wait_for("metadata store: PostgreSQL at");
    peon.signal("-STOP");
    pg.stop();
    peon.signal("-CONT");
    peon.wait_for("the metadata store is unavailable (try 1 of 10");
    pg.resume();
    let (ok, log) = peon.finish();
    assert!(ok, "{log}");
    assert!(
        log.contains("reconnecting to the PostgreSQL metadata store"),
        "{log}"
    );
    published_once(&pg, &base, &last);
}

/// Down through every try: the task fails naming the outage, nothing is
/// published, its pushes are removed and no offsets move; with the server
/// back, the rerun publishes once.
#[test]
fn postgres_down_through_every_try_fails_cleanly_and_the_rerun_publishes_once() {
    let dump = flights_dump("outage-flights4", 4, Some(ROWS as u64));
    let root = fresh_dir("outage-down");
    let task = flights_task(&root, "outage-down", 4, "outage-down", &[]);
    let last = clean_offsets(&task, &dump, &root);
    let pg = Postgres::start("down");
    let base = root.join("run");
    let mut peon = Peon::start(&task, &dump, &base, &pg, 2);
    peon.wait_for("metadata store: PostgreSQL at");
    peon.signal("-STOP");
    pg.stop();
    peon.signal("-CONT");
    let (ok, log) = peon.finish();
    assert!(!ok, "{log}");
    assert!(
        log.contains("the metadata store stayed unavailable through 2 tries"),
        "{log}"
    );
    let status: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            kinesis_peon::task::layout_for(&base)
                .task_dir("index_kinesis_outage-down")
                .join("status.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(status["status"], "FAILED");
    assert!(pushed(&base).is_empty(), "{:?}", pushed(&base));

    pg.resume();
    assert!(store(&pg).used_segments("flights").unwrap().is_empty());
    assert_eq!(offsets(&pg), None);
    let mut rerun = Peon::start(&task, &dump, &base, &pg, 2);
    rerun.wait_for("published");
    let (ok, log) = rerun.finish();
    assert!(ok, "{log}");
    published_once(&pg, &base, &last);
}
