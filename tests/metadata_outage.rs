//! The PostgreSQL metadata store going away under a running task (issue 28
//! must-show 4): a real PostgreSQL server, stopped after the task has
//! connected. Back within the retries, the task reconnects and publishes
//! once; down through all of them, it fails cleanly (nothing published, no
//! pushed segment left, no offsets moved) and the rerun publishes once.

mod common;

use common::logged::LoggedRun;
use common::postgres::Postgres;
use common::*;
use kinesis_peon::publish::MetadataStore;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const ROWS: usize = 20_000;

/// `run` of the task on the dump with the metadata store in `pg`, at most
/// `tries` tries to publish.
fn start_peon(task: &Path, dump: &Path, base: &Path, pg: &Postgres, tries: u32) -> LoggedRun {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinesis-peon"));
    cmd.env(kinesis_peon::task::METADATA_TRIES_VAR, tries.to_string())
        .args(["run", "--task"])
        .arg(task)
        .arg("--dump")
        .arg(dump)
        .arg("--base-dir")
        .arg(base);
    for (k, v) in pg.properties() {
        cmd.arg("-D").arg(format!("{k}={v}"));
    }
    LoggedRun::start(cmd)
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

/// Published exactly once: the rollup equals the naive one, every used
/// segment is on disk and nothing else is, the offsets are each shard's last.
fn published_once(pg: &Postgres, base: &Path, dump_last: &BTreeMap<String, String>) {
    let segments = segments_in(&store(pg), "flights");
    assert_eq!(groups_from_segments(&segments), naive_groups(Some(ROWS)));
    assert_eq!(pushed_segment_dirs(base).len(), segments.len());
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
    let mut peon = start_peon(&task, &dump, &base, &pg, 10);
    peon.wait_for("metadata store: PostgreSQL at", 1);
    peon.signal("-STOP");
    pg.stop();
    peon.signal("-CONT");
    peon.wait_for("the metadata store is unavailable (try 1 of 10", 1);
    pg.resume();
    let (out, log) = peon.finish();
    let ok = out.status.success();
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
    let mut peon = start_peon(&task, &dump, &base, &pg, 2);
    peon.wait_for("metadata store: PostgreSQL at", 1);
    peon.signal("-STOP");
    pg.stop();
    peon.signal("-CONT");
    let (out, log) = peon.finish();
    let ok = out.status.success();
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
    assert!(
        pushed_segment_dirs(&base).is_empty(),
        "{:?}",
        pushed_segment_dirs(&base)
    );

    pg.resume();
    assert!(store(&pg).used_segments("flights").unwrap().is_empty());
    assert_eq!(offsets(&pg), None);
    let mut rerun = start_peon(&task, &dump, &base, &pg, 2);
    rerun.wait_for("published", 1);
    let (out, log) = rerun.finish();
    let ok = out.status.success();
    assert!(ok, "{log}");
    published_once(&pg, &base, &last);
}
