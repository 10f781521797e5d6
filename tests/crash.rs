//! The crash harness (issue 28, must-show 1, local deep storage and the
//! embedded store): `run` on the 4-shard flights dump is killed at many
//! points, by an injected abort after the Nth segment file written
//! (spills and pushes) and by SIGKILL once a persist or a push is seen on
//! disk, then run again with the same task. Every time: the crashed run
//! published all or nothing (segments and offsets together), the rerun's
//! rows equal the naive computation, no interval holds a partition twice,
//! the committed offsets equal a clean run's, and the orphans a crash
//! leaves in deep storage (pushed, never named) are counted: Druid's kill
//! task removes such unused files in a cluster, as it does Druid's own.
//! The same points again with a PostgreSQL metadata store (a server of the
//! test's own, a database per point).

mod common;

use common::kinesalite::{Kinesalite, put_flights};
use common::postgres::Postgres;
use common::*;
use kinesis_peon::publish::MetadataStore;
use kinesis_peon::segment::writer::ABORT_AFTER_FILES_VAR;
use kinesis_peon::task::layout_for;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROWS: usize = 20_000;

/// Where a run keeps its files and its metadata store: the embedded one
/// under the base dir, or the one the runtime properties name.
struct Target {
    base: PathBuf,
    properties: Vec<(String, String)>,
}

impl Target {
    fn embedded(base: PathBuf) -> Target {
        Target {
            base,
            properties: Vec::new(),
        }
    }
}

/// `run` of the task, on the dump when there is one, else on the live
/// stream the task names.
fn peon_run(task: &Path, dump: Option<&Path>, t: &Target) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinesis-peon"));
    cmd.args(["run", "--task"]).arg(task);
    match dump {
        Some(dump) => {
            cmd.arg("--dump").arg(dump);
        }
        None => {
            cmd.args(["-D", "druid.kinesis.accessKey=test"])
                .args(["-D", "druid.kinesis.secretKey=test"]);
        }
    }
    cmd.arg("--base-dir")
        .arg(&t.base)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in &t.properties {
        cmd.arg("-D").arg(format!("{k}={v}"));
    }
    cmd
}

fn store(t: &Target) -> MetadataStore {
    let props = t.properties.iter().cloned().collect();
    MetadataStore::from_properties(&props, &layout_for(&t.base).metadata_db()).unwrap()
}

fn offsets(t: &Target) -> Option<Vec<(String, String)>> {
    store(t).committed_offsets("flights").unwrap().map(|o| {
        o.offsets
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect()
    })
}

/// Wait for `child` to exit, killing it (SIGKILL) when `condition` holds first.
fn kill_when(mut child: Child, condition: impl Fn(u32) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if condition(child.id()) {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        assert!(
            Instant::now() < deadline,
            "the task neither ended nor reached the point"
        );
        std::thread::yield_now();
    }
}

/// After a crash: all or nothing was published, and the rerun completes
/// exactly. Returns the orphans the crash left.
fn check_crash_and_rerun(
    point: &str,
    task: &Path,
    dump: Option<&Path>,
    t: &Target,
    clean: &Clean,
) -> usize {
    let published = store(t).used_segments("flights").unwrap().len();
    let committed = offsets(t);
    assert!(
        (published == 0 && committed.is_none())
            || (published == clean.segments && committed.as_ref() == Some(&clean.offsets)),
        "{point}: the crash left {published} segments and offsets {committed:?}"
    );
    let status = peon_run(task, dump, t).status().unwrap();
    assert!(status.success(), "{point}: the rerun failed");
    let segments = store(t).used_segments("flights").unwrap();
    let mut places: Vec<(String, u32)> = segments
        .iter()
        .map(|s| (s.interval.clone(), s.shard_spec.partition_num))
        .collect();
    places.sort();
    let before = places.len();
    places.dedup();
    assert_eq!(
        places.len(),
        before,
        "{point}: an interval holds a partition twice"
    );
    assert_eq!(segments.len(), clean.segments, "{point}");
    assert_eq!(
        groups_from_segments(&segments_in(&store(t), "flights")),
        clean.groups,
        "{point}"
    );
    assert_eq!(offsets(t).as_ref(), Some(&clean.offsets), "{point}");
    let named: std::collections::BTreeSet<PathBuf> = segments
        .iter()
        .map(|s| PathBuf::from(s.load_spec["path"].as_str().unwrap().trim_end_matches('/')))
        .collect();
    let on_disk = pushed_segment_dirs(&t.base);
    for n in &named {
        assert!(
            on_disk.contains(n),
            "{point}: {} is named but missing",
            n.display()
        );
    }
    on_disk.len() - named.len()
}

/// A point to SIGKILL at: its name and the condition on the base dir and
/// the process.
type KillPoint = (&'static str, Box<dyn Fn(&Path, u32) -> bool>);

/// CPU time the process has used, in clock ticks (/proc/PID/stat's utime
/// and stime).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which ends at the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    field(11) + field(12)
}

struct Clean {
    segments: usize,
    offsets: Vec<(String, String)>,
    groups: Groups,
}

/// Crash the run at the injected `points` and the SIGKILL ones, each on a
/// target of its own, and check every rerun; the report, one line a point.
fn crash_everywhere(
    name: &str,
    dump: Option<&Path>,
    target: impl Fn(&str) -> Target,
    points: &[usize],
) -> Vec<String> {
    let task = scratch().join(name).join("crash.json");
    // The clean run: what every rerun must end with.
    let clean_target = target("clean");
    assert!(
        peon_run(&task, dump, &clean_target)
            .status()
            .unwrap()
            .success()
    );
    let clean = Clean {
        segments: store(&clean_target).used_segments("flights").unwrap().len(),
        offsets: offsets(&clean_target).unwrap(),
        groups: naive_groups(Some(ROWS)),
    };
    assert_eq!(
        groups_from_segments(&segments_in(&store(&clean_target), "flights")),
        clean.groups
    );

    let mut report = vec![format!("{} segments a clean run", clean.segments)];
    // Injected: abort after the Nth file, spread over spills and pushes.
    for &n in points {
        let point = format!("abort after {n} files");
        let t = target(&format!("abort-{n}"));
        let status = peon_run(&task, dump, &t)
            .env(ABORT_AFTER_FILES_VAR, n.to_string())
            .status()
            .unwrap();
        if status.success() {
            // Past the files a run writes: it completed.
            report.push(format!("{point}: the run wrote fewer files and completed"));
            assert_eq!(offsets(&t).as_ref(), Some(&clean.offsets));
            continue;
        }
        let orphans = check_crash_and_rerun(&point, &task, dump, &t, &clean);
        report.push(format!("{point}: {orphans} orphans"));
    }
    // SIGKILL from outside when a point is seen on disk.
    let task_dir = |base: &Path| layout_for(base).task_dir("index_kinesis_crash");
    let kills: [KillPoint; 4] = [
        (
            // While fetching and parsing: 30 ms of CPU, before any persist.
            "kill while reading",
            Box::new(|_: &Path, pid: u32| cpu_ticks(pid) >= 3),
        ),
        (
            "kill at the first spill",
            Box::new(move |b: &Path, _| task_dir(b).join("persist").exists()),
        ),
        (
            "kill at the first push",
            Box::new(|b: &Path, _| !pushed_segment_dirs(b).is_empty()),
        ),
        (
            "kill at the 10th push",
            Box::new(|b: &Path, _| pushed_segment_dirs(b).len() >= 10),
        ),
    ];
    for (i, (point, condition)) in kills.iter().enumerate() {
        let t = target(&format!("kill-{i}"));
        let child = peon_run(&task, dump, &t).spawn().unwrap();
        if !kill_when(child, |pid| condition(&t.base, pid)) {
            report.push(format!("{point}: the run ended first"));
            continue;
        }
        let orphans = check_crash_and_rerun(point, &task, dump, &t, &clean);
        report.push(format!("{point}: {orphans} orphans"));
    }
    println!("{}", report.join("\n"));
    report
}

fn crashed(report: &[String]) -> usize {
    report.iter().filter(|r| r.ends_with("orphans")).count()
}

/// The harness's task (persists every 3,000 rows) in a fresh directory
/// `name` under the scratch dir.
fn crash_task(name: &str) -> PathBuf {
    let root = fresh_dir(name);
    flights_task_tuned(
        &root,
        "crash",
        4,
        "crash",
        serde_json::json!({"type": "KinesisTuningConfig", "maxRowsInMemory": 3000}),
    )
}

#[test]
fn killed_anywhere_the_rerun_publishes_exactly_once() {
    let dump = flights_dump("crash-flights4", 4, Some(ROWS as u64));
    crash_task("crash-embedded");
    let root = scratch().join("crash-embedded");
    let report = crash_everywhere(
        "crash-embedded",
        Some(&dump),
        |name| Target::embedded(root.join(name)),
        &[
            1, 2, 5, 10, 20, 40, 70, 100, 130, 150, 170, 185, 200, 215, 230, 245, 249, 252, 254,
            256, 400,
        ],
    );
    assert!(
        crashed(&report) >= 10,
        "only {} points crashed the run:\n{}",
        crashed(&report),
        report.join("\n")
    );
}

/// The same with a PostgreSQL metadata store, as in a cluster: a database
/// for each point.
#[test]
fn killed_anywhere_with_postgresql_the_rerun_publishes_exactly_once() {
    let dump = flights_dump("crash-flights4", 4, Some(ROWS as u64));
    let pg = Postgres::start("crash");
    crash_task("crash-postgres");
    let root = scratch().join("crash-postgres");
    let report = crash_everywhere(
        "crash-postgres",
        Some(&dump),
        |name| Target {
            base: root.join(name),
            properties: pg.database_properties(&name.replace('-', "_")),
        },
        &[1, 10, 70, 150, 230, 252, 254],
    );
    assert!(
        crashed(&report) >= 6,
        "only {} points crashed the run:\n{}",
        crashed(&report),
        report.join("\n")
    );
}

/// The same on a live stream: the 20,000 rows put into a 4-shard
/// kinesalite stream, the task reading them to explicit end sequence
/// numbers. A crashed live run leaves no restore file, so the rerun reads
/// the stream again from its start offsets.
#[test]
fn killed_anywhere_on_a_live_stream_the_rerun_publishes_exactly_once() {
    let server = Kinesalite::start();
    let last = put_flights(&server, "flights", 4, ROWS);
    let task = crash_task("crash-live");
    edit_task(&task, |t| {
        t["ioConfig"]["endpoint"] = server.url().into();
        t["ioConfig"]["endSequenceNumbers"]["partitionSequenceNumberMap"] = last.clone();
    });
    let root = scratch().join("crash-live");
    let report = crash_everywhere(
        "crash-live",
        None,
        |name| Target::embedded(root.join(name)),
        &[1, 10, 70, 150, 230, 252, 254],
    );
    assert!(
        crashed(&report) >= 6,
        "only {} points crashed the run:\n{}",
        crashed(&report),
        report.join("\n")
    );
}
