//! Every subcommand over every fixture task (the shared fixtures, this
//! repository's, and two the runner refuses): none panics, and `validate`,
//! `sample`, `run` and `bench` accept and refuse the same tasks, for the
//! same reason. The other subcommands' arguments are checked alongside.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Outcome {
    code: i32,
    out: String,
}

/// Run the binary; a panic (exit 101, or its message) fails the test.
fn peon(args: &[&str]) -> Outcome {
    let o = Command::new(env!("CARGO_BIN_EXE_kinesis-peon"))
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let code = o.status.code().unwrap_or(-1);
    assert!(code != 101 && !out.contains("panicked"), "{args:?}: {out}");
    Outcome { code, out }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The task files: each fixture pointed at a dump of its input format,
/// and two variants the runner refuses (an aggregator this build does not
/// compute; a negative maxRowsInMemory).
fn tasks(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut sources: Vec<PathBuf> = std::fs::read_dir(shared().join("fixtures/tasks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    sources.push(repo().join("fixtures/flights-task.json"));
    sources.extend(
        std::fs::read_dir(repo().join("fixtures/bench"))
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    sources.sort();
    let mut out = Vec::new();
    for source in sources {
        let name = source.file_name().unwrap().to_str().unwrap().to_string();
        let flavour = ["csv", "tsv"]
            .into_iter()
            .find(|f| name.contains(f))
            .unwrap_or("ndjson");
        let dump = flights_dump_of(flavour, &format!("subcommands-{flavour}"), 2, Some(500));
        let task = adapt_task_file(&source, &dump, dir);
        out.push((task, dump));
    }
    let (first, dump) = out[0].clone();
    for (name, edit) in [
        ("unsupported-aggregator.json", "aggregator"),
        ("negative-rows-in-memory.json", "tuning"),
    ] {
        let path = dir.join(name);
        std::fs::copy(&first, &path).unwrap();
        edit_task(&path, |t| match edit {
            "aggregator" => {
                t["dataSchema"]["metricsSpec"] = serde_json::json!([{"type": "stringFirst", "name": "f", "fieldName": "carrier"}])
            }
            _ => t["tuningConfig"]["maxRowsInMemory"] = (-5).into(),
        });
        out.push((path, dump.clone()));
    }
    out
}

#[test]
fn every_subcommand_accepts_and_refuses_every_fixture_task_alike() {
    let dir = fresh_dir("subcommands");
    let (mut accepted, mut refused) = (0, 0);
    for (task, dump) in tasks(&dir) {
        let t = s(&task);
        let validate = peon(&["validate", t]);
        assert!(
            validate.code == 0 || validate.code == 1,
            "{t}: {}",
            validate.out
        );
        // validate's first reason, as run and sample must give it too.
        let reason = (validate.code == 1).then(|| {
            validate
                .out
                .lines()
                .find(|l| l.starts_with("  "))
                .map_or(String::new(), |l| l.trim().to_string())
        });
        let base = fresh_dir(&format!(
            "subcommands-{}",
            task.file_stem().unwrap().to_str().unwrap()
        ));
        let run = peon(&[
            "run",
            "--task",
            t,
            "--dump",
            s(&dump),
            "--base-dir",
            s(&base),
        ]);
        let sample = peon(&["sample", "--task", t, "--dump", s(&dump), "-n", "3"]);
        let bench = peon(&[
            "bench",
            "--task",
            t,
            "--dump",
            s(&dump),
            "--base-dir",
            s(&base),
        ]);
        match reason {
            None => {
                accepted += 1;
                assert_eq!(validate.code, 0, "{t}: {}", validate.out);
                for (what, o) in [("run", &run), ("sample", &sample), ("bench", &bench)] {
                    assert!(
                        !o.out.contains("invalid task") && !o.out.contains("not supported"),
                        "{t}: validate accepts, {what} refuses: {}",
                        o.out
                    );
                }
                assert_eq!(sample.code, 0, "{t}: {}", sample.out);
            }
            Some(reason) => {
                refused += 1;
                assert_eq!(validate.code, 1, "{t}");
                for (what, o) in [("run", &run), ("sample", &sample), ("bench", &bench)] {
                    assert!(o.code != 0, "{t}: {what} accepts what validate refuses");
                    assert!(
                        o.out.contains(&reason),
                        "{t}: {what} refuses otherwise than validate ({reason}): {}",
                        o.out
                    );
                }
            }
        }
        // Each segment the run published reads back.
        if let Some(seg) = walk(&base.join("druid/segments"))
            .into_iter()
            .find(|p| p.ends_with("index.zip") || p.ends_with("index.drd"))
        {
            let seg = if seg.ends_with("index.drd") {
                seg.parent().unwrap().to_path_buf()
            } else {
                seg
            };
            assert_eq!(peon(&["dump-segment", s(&seg)]).code, 0, "{t}");
            assert_eq!(peon(&["dump-segment", "--metadata", s(&seg)]).code, 0);
        }
    }
    assert!(accepted >= 9 && refused == 2, "{accepted} {refused}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Durations that are no duration are refused by name, not a panic;
/// make-dump says what it did with a csv's first line.
#[test]
fn record_and_make_dump_arguments_are_checked() {
    for bad in ["inf", "NaN", "-5", "1e400"] {
        let arg = format!("--for={bad}");
        let o = peon(&[
            "record",
            "--stream",
            "s",
            "--endpoint",
            "http://127.0.0.1:9",
            "--out",
            s(&fresh_dir("record-bad-for")),
            &arg,
        ]);
        assert_eq!(o.code, 2, "{bad}: {}", o.out);
        assert!(
            o.out.contains(&format!("{bad}: a duration is")),
            "{}",
            o.out
        );
    }
    let dir = fresh_dir("make-dump-headerless");
    let input = dir.join("rows.csv");
    std::fs::write(
        &input,
        "2024-01-01T00:00:00Z,AA,1\n2024-01-01T00:00:01Z,UA,2\n",
    )
    .unwrap();
    let o = peon(&[
        "make-dump",
        "--input",
        s(&input),
        "--shards",
        "1",
        "--out",
        s(&dir.join("dump")),
    ]);
    assert_eq!(o.code, 0, "{}", o.out);
    assert!(
        o.out.contains("first line kept as a record (detected"),
        "{}",
        o.out
    );
    assert!(
        o.out
            .contains("read 2 lines: 2 records written, 0 headers skipped, 0 blank"),
        "{}",
        o.out
    );
}
