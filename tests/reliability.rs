//! Reliability (issue 28): segments are durable before the commit that
//! names them, segments past a smoosh chunk are split as Druid splits them,
//! a full disk fails the task cleanly and a rerun with room completes, and
//! a metadata store locked by another process fails the publish cleanly
//! after a bounded wait and publishes once when free again.

mod common;

use common::*;
use kinesis_peon::publish::MetadataStore;
use kinesis_peon::task::layout_for;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn peon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kinesis-peon"))
}

/// `run --task T --dump D --base-dir B` on a command.
trait RunArgs {
    fn run_args(&mut self, task: &Path, dump: &Path, base: &Path) -> &mut Self;
}

impl RunArgs for Command {
    fn run_args(&mut self, task: &Path, dump: &Path, base: &Path) -> &mut Self {
        self.args(["run", "--task"])
            .arg(task)
            .arg("--dump")
            .arg(dump)
            .arg("--base-dir")
            .arg(base)
    }
}

fn run_peon(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    (out.status.success(), text)
}

fn status_of(base: &Path, task_id: &str) -> String {
    let path = layout_for(base).task_dir(task_id).join("status.json");
    let status: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    status["status"].as_str().unwrap().to_string()
}

fn used_segments(base: &Path) -> Vec<kinesis_peon::publish::DataSegment> {
    MetadataStore::open(&layout_for(base).metadata_db())
        .unwrap()
        .used_segments("flights")
        .unwrap()
}

/// Every directory holding a segment's files under deep storage.
fn pushed_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .is_some_and(|n| n == "meta.smoosh" || n == "index.zip")
            {
                out.push(dir.clone());
            }
        }
    }
    out.sort();
    out
}

/// Under strace: every file and directory of every published segment is
/// fsynced, and all of them before the metadata store's last commit (the
/// publish) syncs.
#[test]
fn segments_are_fsynced_before_the_commit_that_names_them() {
    if Command::new("strace").arg("-V").output().is_err() {
        println!("skipped: strace is not installed");
        return;
    }
    let base = fresh_dir("fsync-order");
    let dump = flights_dump("rel-flights2", 2, Some(5_000));
    let task = flights_task(&base, "fsync", 2, "fsync", &[]);
    let trace = base.join("trace.txt");
    let (ok, text) = run_peon(
        Command::new("strace")
            .args(["-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o"])
            .arg(&trace)
            .arg(env!("CARGO_BIN_EXE_kinesis-peon"))
            .run_args(&task, &dump, &base),
    );
    assert!(ok, "{text}");
    let trace = std::fs::read_to_string(&trace).unwrap();
    // Lines look like `123 fsync(7</path/to/file>) = 0`.
    let synced: Vec<String> = trace
        .lines()
        .filter(|l| l.ends_with("= 0"))
        .filter_map(|l| Some(l.split_once('<')?.1.rsplit_once(">)")?.0.to_string()))
        .collect();
    let metadata = layout_for(&base).metadata_db();
    let metadata = metadata.canonicalize().unwrap();
    let last_commit = synced
        .iter()
        .rposition(|p| p.starts_with(metadata.to_str().unwrap()))
        .expect("the metadata store syncs its commits");
    let segments = used_segments(&base);
    assert!(segments.len() > 3);
    for seg in &segments {
        let dir = PathBuf::from(seg.load_spec["path"].as_str().unwrap());
        let dir = dir.canonicalize().unwrap();
        let mut must = vec![dir.clone(), dir.parent().unwrap().to_path_buf()];
        for e in std::fs::read_dir(&dir).unwrap() {
            must.push(e.unwrap().path());
        }
        for path in must {
            let at = synced
                .iter()
                .position(|p| Path::new(p) == path)
                .unwrap_or_else(|| panic!("{} never fsynced", path.display()));
            assert!(
                at < last_commit,
                "{} fsynced after the commit",
                path.display()
            );
        }
    }
}

/// With a small chunk limit the task's spills and final segments are
/// smooshed into several chunk files; the merge reads the spills, the
/// published rows are exact, and dump-segment reads the segments.
#[test]
fn multi_chunk_segments_publish_and_read_back() {
    let base = fresh_dir("multi-chunk");
    let dump = flights_dump("rel-flights2", 2, Some(5_000));
    let task = flights_task_tuned(
        &base,
        "chunks",
        2,
        "chunks",
        serde_json::json!({"type": "KinesisTuningConfig", "maxRowsInMemory": 700}),
    );
    let (ok, text) = run_peon(
        peon()
            .env(kinesis_peon::segment::writer::CHUNK_LIMIT_VAR, "16384")
            .run_args(&task, &dump, &base),
    );
    assert!(ok, "{text}");
    let segments = published_segments(&base, "flights");
    assert_eq!(groups_from_segments(&segments), naive_groups(Some(5_000)));
    let multi: Vec<PathBuf> = used_segments(&base)
        .iter()
        .map(|s| PathBuf::from(s.load_spec["path"].as_str().unwrap()))
        .filter(|p| p.join("00001.smoosh").exists())
        .collect();
    assert!(!multi.is_empty(), "no segment has a second chunk");
    let meta = std::fs::read_to_string(multi[0].join("meta.smoosh")).unwrap();
    assert!(meta.starts_with("v1,16384,"), "{meta}");
    let (ok, rows) = run_peon(peon().arg("dump-segment").arg(&multi[0]).arg("--rows"));
    assert!(ok, "{rows}");
    assert!(rows.lines().filter(|l| l.starts_with('{')).count() > 0);
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Mount(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The task's base directory (deep storage, metadata store, task files) on
/// a 4 MiB tmpfs: the task fails naming the full path, publishes nothing
/// and leaves no pushed segment behind; with room again the same task
/// completes with exact rows.
#[test]
fn a_full_disk_fails_cleanly_and_a_rerun_with_room_completes() {
    let outer = fresh_dir("full-disk");
    let base = outer.join("base");
    std::fs::create_dir_all(&base).unwrap();
    let mount = match Mount::tmpfs(&base, "4m") {
        Ok(m) => m,
        Err(why) => {
            println!("skipped: cannot mount a tmpfs (needs root): {why}");
            return;
        }
    };
    let rows = 60_000;
    let dump = flights_dump("rel-flights4-60k", 4, Some(rows as u64));
    // Unrolled rows with more columns: segments well past 4 MiB.
    let task = flights_task(&outer, "full", 4, "full", &[]);
    edit_task(&task, |t| {
        t["dataSchema"]["granularitySpec"]["rollup"] = false.into();
        t["dataSchema"]["dimensionsSpec"]["dimensions"] = serde_json::json!([
            "carrier",
            "origin",
            "dest",
            "tailnum",
            "flight",
            "dep_time",
            "arr_time",
            "time_hour"
        ]);
    });
    let run = || run_peon(peon().run_args(&task, &dump, &base));
    let (ok, text) = run();
    assert!(!ok, "the task fit in 4 MiB: {text}");
    assert!(text.contains("No space left on device"), "{text}");
    assert!(
        text.contains(base.to_str().unwrap()),
        "the error names no path under {}: {text}",
        base.display()
    );
    assert_eq!(status_of(&base, "index_kinesis_full"), "FAILED");
    assert!(used_segments(&base).is_empty(), "something was published");
    let store = MetadataStore::open(&layout_for(&base).metadata_db()).unwrap();
    assert!(store.committed_offsets("flights").unwrap().is_none());
    assert_eq!(
        pushed_dirs(&base.join("druid/segments")),
        Vec::<PathBuf>::new()
    );

    mount.resize("256m");
    let (ok, text) = run();
    assert!(ok, "{text}");
    assert_eq!(status_of(&base, "index_kinesis_full"), "SUCCESS");
    let segments = published_segments(&base, "flights");
    let total: usize = segments.iter().map(|(_, d)| d.num_rows()).sum();
    assert_eq!(total, rows);
    assert_eq!(groups_from_segments(&segments), naive_groups(Some(rows)));
    assert_eq!(
        pushed_dirs(&base.join("druid/segments")).len(),
        segments.len()
    );
}

/// Another process holds the SQLite store's write lock through the
/// publish: the task waits its bounded time, fails naming the store,
/// writes nothing to it and leaves no pushed segment; once the lock is
/// gone the same task publishes, and once only.
#[test]
fn a_locked_metadata_store_fails_the_publish_cleanly_and_the_rerun_publishes_once() {
    let base = fresh_dir("locked-store");
    let dump = flights_dump("rel-flights2", 2, Some(5_000));
    let task = flights_task(&base, "locked", 2, "locked", &[]);
    let db = layout_for(&base).metadata_db();
    drop(MetadataStore::open(&db).unwrap());

    let mut holder = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             sys.stdin.read()\n",
        )
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");

    let run = || {
        run_peon(
            peon()
                .env(kinesis_peon::publish::BUSY_TIMEOUT_VAR, "1500")
                .run_args(&task, &dump, &base),
        )
    };
    let (ok, text) = run();
    assert!(!ok, "published through a lock: {text}");
    assert!(
        text.contains(&format!(
            "the metadata store {} stayed locked by another process for 1500 ms",
            db.display()
        )),
        "{text}"
    );
    assert_eq!(status_of(&base, "index_kinesis_locked"), "FAILED");
    assert_eq!(
        pushed_dirs(&base.join("druid/segments")),
        Vec::<PathBuf>::new()
    );

    // Released: nothing was written under the lock, and the rerun publishes.
    holder.stdin.take().unwrap().write_all(b"").unwrap();
    assert!(holder.wait().unwrap().success());
    assert!(used_segments(&base).is_empty());
    let (ok, text) = run();
    assert!(ok, "{text}");
    let published = used_segments(&base);
    assert_eq!(
        groups_from_segments(&published_segments(&base, "flights")),
        naive_groups(Some(5_000))
    );
    // Once: a third run finds them published and adds nothing.
    let (ok, text) = run();
    assert!(ok, "{text}");
    assert_eq!(used_segments(&base).len(), published.len());
    assert_eq!(
        pushed_dirs(&base.join("druid/segments")).len(),
        published.len()
    );
}
