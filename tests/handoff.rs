//! Open-ended live runs against kinesalite hand off as Druid's task does
//! (maxRowsPerSegment, intermediateHandoffPeriod), and a run stopped by
//! SIGTERM at any point persists what it holds, exits 0 without
//! publishing, and is restored by the next run: no row is read twice or
//! lost.

mod common;

use common::kinesalite::*;
use common::logged::LoggedRun;
use common::*;
use kinesis_peon::publish::MetadataStore;
use kinesis_peon::task::layout_for;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `kinesis-peon run` on the live stream the task names.
fn start_live(task: &Path, base: &Path) -> LoggedRun {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinesis-peon"));
    cmd.args(["run", "--task"])
        .arg(task)
        .arg("--base-dir")
        .arg(base)
        .args(["-D", "druid.kinesis.accessKey=test"])
        .args(["-D", "druid.kinesis.secretKey=test"]);
    LoggedRun::start(cmd)
}

/// SIGTERM, then the exit: it must be a clean stop. Returns the records
/// this process read itself (not restored) and its log.
fn terminate(run: LoggedRun) -> (u64, String) {
    run.signal("-TERM");
    let (out, log) = run.finish();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{log}");
    assert!(
        stdout.contains("STOPPED (persisted, nothing published)"),
        "{stdout}\n{log}"
    );
    let number_after = |label: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .map_or(0, |n| n.parse().unwrap())
    };
    (number_after("records") - number_after("restored"), log)
}

fn live_task(base: &Path, name: &str, server: &Kinesalite, tuning: serde_json::Value) -> PathBuf {
    let mut tuning = tuning;
    tuning["type"] = "KinesisTuningConfig".into();
    let task = flights_task_tuned(base, name, 2, name, tuning);
    edit_task(&task, |t| {
        t["ioConfig"]["endpoint"] = server.url().into();
        // Small pages, so that a run takes several rounds.
        t["ioConfig"]["recordsPerFetch"] = 100.into();
    });
    task
}

fn stored_offsets(base: &Path) -> std::collections::BTreeMap<String, String> {
    let store = MetadataStore::open(&layout_for(base).metadata_db()).unwrap();
    let stored = store
        .committed_offsets("flights")
        .unwrap()
        .expect("offsets stored");
    stored
        .offsets
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

fn last_put(last: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    last.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// maxRowsPerSegment reached in an open-ended live run: the sequence is
/// published at the current offsets (each publish moves the stored
/// offsets, which the next one's start must match) and reading goes on in
/// the next sequence; every row is published once.
#[test]
fn an_open_ended_live_run_hands_off_every_max_rows_per_segment() {
    let server = Kinesalite::start();
    let rows = 3_000;
    let last = put_flights(&server, "flights", 2, rows);
    let base = fresh_dir("handoff-rows");
    let task = live_task(
        &base,
        "handoff-rows",
        &server,
        json!({"maxRowsPerSegment": 250}),
    );
    let s = run_live_with(&task, &base, true);
    published_once(&s, &base, rows);
    assert!(s.handoffs >= 3, "{} handoffs", s.handoffs);
    assert_eq!(stored_offsets(&base), last_put(&last));
    // Every handoff published at least one segment beside the last one's.
    assert!(
        s.segments.len() > s.handoffs,
        "{} segments",
        s.segments.len()
    );
}

/// SIGTERM at three points of one task's life (after its first
/// intermediate persist, after a handoff, once caught up), each run
/// restored by the next: every stop exits 0 without publishing, each
/// restart reads on after the persisted rows (the records each process
/// read add up to the stream's), and the last run publishes exact totals.
#[test]
fn sigterm_at_several_points_restores_and_the_totals_are_exact() {
    let server = Kinesalite::start();
    let rows = 3_000;
    let last = put_flights(&server, "flights", 2, rows);
    let base = fresh_dir("handoff-sigterm");
    let task = live_task(
        &base,
        "handoff-sigterm",
        &server,
        json!({"maxRowsInMemory": 150, "maxRowsPerSegment": 400}),
    );
    let task_dir = layout_for(&base).task_dir("index_kinesis_handoff-sigterm");
    let mut read_by_each = Vec::new();

    let mut run = start_live(&task, &base);
    run.wait_for("intermediate persist 0 ", 1);
    let (read, _) = terminate(run);
    read_by_each.push(read);
    assert!(task_dir.join("persist/restore.json").exists());
    assert!(!task_dir.join("status.json").exists());

    let mut run = start_live(&task, &base);
    run.wait_for("restoring the stopped run", 1);
    run.wait_for("handed off", 1);
    let (read, log) = terminate(run);
    assert!(log.contains("stopped on request"), "{log}");
    read_by_each.push(read);

    let mut run = start_live(&task, &base);
    run.wait_for("caught up after", 2);
    let (read, _) = terminate(run);
    read_by_each.push(read);

    let s = run_live_with(&task, &base, true);
    read_by_each.push(s.records - s.restored_records);
    assert_eq!(s.restored_records, read_by_each[..3].iter().sum::<u64>());
    published_once(&s, &base, rows);
    assert_eq!(
        read_by_each.iter().sum::<u64>(),
        rows as u64,
        "records read by each run: {read_by_each:?}"
    );
    assert_eq!(stored_offsets(&base), last_put(&last));
    // Published: the restore file is spent, the persists are gone.
    assert!(!task_dir.join("persist/restore.json").exists());
}

/// intermediateHandoffPeriod: an idle open-ended task publishes what it
/// holds once the period has passed, and again for rows that come later.
#[test]
fn intermediate_handoff_period_publishes_rows_as_they_come() {
    let server = Kinesalite::start();
    let base = fresh_dir("handoff-period");
    put_flights(&server, "flights", 2, 500);
    let task = live_task(
        &base,
        "handoff-period",
        &server,
        json!({"intermediateHandoffPeriod": "PT0.5S"}),
    );
    let mut run = start_live(&task, &base);
    run.wait_for("intermediateHandoffPeriod 500 ms passed", 1);
    run.wait_for("handed off", 1);
    let published: usize = published_segments(&base, "flights")
        .iter()
        .map(|(_, d)| d.num_rows())
        .sum();
    assert!(published > 0, "nothing published at the first handoff");
    let last = put_flights_with(&server, "flights", 0, 500, &["--skip", "500"]);
    run.wait_for("handed off", 2);
    let (_, log) = terminate(run);
    assert!(!log.contains("ERROR"), "{log}");

    let s = run_live_with(&task, &base, true);
    published_once(&s, &base, 1_000);
    let stored = stored_offsets(&base);
    for (shard, seq) in last_put(&last) {
        assert_eq!(stored[&shard], seq, "{shard}");
    }
}
