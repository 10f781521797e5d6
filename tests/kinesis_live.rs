//! Reading real Kinesis-compatible servers: kinesalite (npm), started on
//! 127.0.0.1 by the test itself, filled by real producers (boto3). The
//! test setup (scripts/test) installs both; KINESIS_PEON_NODE_MODULES
//! names where kinesalite is installed.

mod common;

use common::kinesalite::*;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `record` the stream "flights" at `endpoint` from the trim horizon until
/// caught up into `out`: each shard's record count.
fn record_caught_up(
    endpoint: String,
    out: PathBuf,
    records_per_fetch: i32,
) -> anyhow::Result<Vec<(String, u64)>> {
    use kinesis_peon::source::record::{From, RecordOptions, Until, record};
    record(&RecordOptions {
        config: kinesis_peon::source::kinesis::KinesisConfig {
            endpoint,
            stream: "flights".into(),
            static_credentials: Some(("test".into(), "test".into())),
            assumed_role: None,
            records_per_fetch,
            fetch_delay: std::time::Duration::ZERO,
            retry_timeout: std::time::Duration::from_secs(20),
        },
        out,
        from: From::TrimHorizon,
        until: Until::CaughtUp,
    })
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
    let task = task_ending_at(&base, "live", 4, &[], &server.url(), &last);
    let s = run_live(&task, &base);
    assert_eq!(s.error, None);
    assert_eq!(s.stats.processed, rows as u64);
    assert_eq!(
        groups_from_segments(&published_segments(&base, "flights")),
        naive_groups(Some(rows))
    );
    // Each shard's MillisBehindLatest (kinesalite: always 0 on open shards).
    assert_eq!(s.lag_millis.len(), 4);
    assert!(
        s.lag_millis.values().all(|ms| *ms == 0),
        "{:?}",
        s.lag_millis
    );

    // `record` the stream, then replay the recording: the same bytes.
    let dump = scratch().join("live-4-recorded");
    let counts = record_caught_up(server.url(), dump.clone(), 10_000).unwrap();
    assert_eq!(counts.len(), 4);
    assert_eq!(counts.iter().map(|c| c.1).sum::<u64>(), rows as u64);
    let (replayed, s2) = replay_recording(&task, &dump, "live-4-replayed");
    assert_eq!(s2.error, None);
    let live = pushed_by_interval(&base, "flights");
    let days: std::collections::BTreeSet<i64> = naive_groups(Some(rows))
        .keys()
        .map(|k| k.0.div_euclid(86_400_000))
        .collect();
    assert_eq!(live.len(), days.len(), "one segment per day");
    assert_same_segments(&replayed, &base);
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

/// A relay in front of kinesalite that answers some GetRecords calls
/// itself: every 3rd with ProvisionedThroughputExceededException, every
/// 7th with ExpiredIteratorException (no server emulates either). The rest
/// pass through byte for byte.
struct FaultRelay {
    port: u16,
    throttled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    expired: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Send one request upstream and its reply back to the client; false when
/// either side has gone.
fn exchange(
    up: &mut std::net::TcpStream,
    up_reader: &mut BufReader<std::net::TcpStream>,
    client: &mut std::net::TcpStream,
    head: &str,
    body: &[u8],
) -> bool {
    use std::io::Write;
    if up.write_all(head.as_bytes()).is_err() || up.write_all(body).is_err() {
        return false;
    }
    let Some((rhead, rbody)) = read_message(up_reader) else {
        return false;
    };
    client.write_all(rhead.as_bytes()).is_ok() && client.write_all(&rbody).is_ok()
}

impl FaultRelay {
    fn start(upstream: u16) -> FaultRelay {
        use std::io::Write;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let throttled = std::sync::Arc::new(AtomicUsize::new(0));
        let expired = std::sync::Arc::new(AtomicUsize::new(0));
        let calls = std::sync::Arc::new(AtomicUsize::new(0));
        let (t, e) = (throttled.clone(), expired.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let (t, e, calls) = (t.clone(), e.clone(), calls.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().unwrap());
                    let mut client = client;
                    let upstream_conn =
                        std::net::TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                    let mut up_reader = BufReader::new(upstream_conn.try_clone().unwrap());
                    let mut upstream_conn = upstream_conn;
                    while let Some((head, body)) = read_message(&mut reader) {
                        let get_records = head.contains("Kinesis_20131202.GetRecords");
                        let n = if get_records {
                            calls.fetch_add(1, Ordering::SeqCst) + 1
                        } else {
                            0
                        };
                        let fault = match n {
                            n if n > 0 && n % 3 == 0 => {
                                Some(("ProvisionedThroughputExceededException", &t))
                            }
                            n if n > 0 && n % 7 == 0 => Some(("ExpiredIteratorException", &e)),
                            _ => None,
                        };
                        if let Some((kind, counter)) = fault {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let body = format!(
                                r#"{{"__type":"{kind}","message":"injected by the test relay"}}"#
                            );
                            let reply = format!(
                                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: relay\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if client.write_all(reply.as_bytes()).is_err() {
                                return;
                            }
                            continue;
                        }
                        if !exchange(
                            &mut upstream_conn,
                            &mut up_reader,
                            &mut client,
                            &head,
                            &body,
                        ) {
                            return;
                        }
                    }
                });
            }
        });
        FaultRelay {
            port,
            throttled,
            expired,
        }
    }
}

/// Throttling and expired iterators injected on a third and a seventh of
/// GetRecords calls: the task still publishes exact totals, and its log
/// shows the back-offs and the fresh iterators.
#[test]
fn throttling_and_expired_iterators_are_retried_to_exact_totals() {
    use std::sync::atomic::Ordering;
    let server = Kinesalite::start();
    let rows = 20_000;
    let last = put_flights(&server, "flights", 2, rows);
    let relay = FaultRelay::start(server.port);
    let base = fresh_dir("live-faults");
    let endpoint = format!("http://127.0.0.1:{}", relay.port);
    let task = task_ending_at(&base, "faults", 2, &[], &endpoint, &last);
    edit_task(&task, |t| {
        // Small fetches: many calls, so many faults.
        t["ioConfig"]["recordsPerFetch"] = 1000.into();
    });
    let out = Command::new(env!("CARGO_BIN_EXE_kinesis-peon"))
        .current_dir(&base)
        .env("RUST_LOG", "warn")
        .args(["run", "--task"])
        .arg(&task)
        .args([
            "-D",
            "druid.kinesis.accessKey=test",
            "-D",
            "druid.kinesis.secretKey=test",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(relay.throttled.load(Ordering::SeqCst) >= 3);
    assert!(relay.expired.load(Ordering::SeqCst) >= 1);
    assert!(
        stderr.contains("ProvisionedThroughputExceededException") && stderr.contains("backing off"),
        "{stderr}"
    );
    assert!(
        stderr.contains("iterator expired; asking for a new one after"),
        "{stderr}"
    );
    assert!(!stderr.contains("SECRET") && !stderr.contains("secretKey=test"));
    assert!(
        stdout.contains(&format!("rows in     {rows} processed")),
        "{stdout}"
    );
    assert_eq!(
        groups_from_segments(&published_segments(&base.join("var"), "flights")),
        naive_groups(Some(rows))
    );
}

/// A relay that forwards each request on a fresh upstream connection. At
/// the `at`-th GetRecords call it closes a gate and tells the test: that
/// call and every later GetRecords wait until the test opens the gate again
/// (other calls pass). The test changes the server meanwhile.
struct GateRelay {
    port: u16,
    reached: std::sync::mpsc::Receiver<()>,
    gate: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    /// Calls that met a dead upstream (their client connection is dropped).
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl GateRelay {
    fn start(upstream: u16, at: usize) -> GateRelay {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Condvar, Mutex, mpsc};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (reached_tx, reached) = mpsc::channel();
        // true while closed
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let calls = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (gate_in, refused_in) = (gate.clone(), refused.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let (gate, calls, refused, reached_tx) = (
                    gate_in.clone(),
                    calls.clone(),
                    refused_in.clone(),
                    reached_tx.clone(),
                );
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().unwrap());
                    while let Some((head, body)) = read_message(&mut reader) {
                        if head.contains("Kinesis_20131202.GetRecords") {
                            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                            let (closed, wake) = &*gate;
                            let mut closed = closed.lock().unwrap();
                            if n == at {
                                *closed = true;
                                reached_tx.send(()).unwrap();
                            }
                            while *closed {
                                closed = wake.wait(closed).unwrap();
                            }
                        }
                        // A refused upstream drops the client's connection.
                        let Ok(up) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                            refused.fetch_add(1, Ordering::SeqCst);
                            return;
                        };
                        let mut up_reader = BufReader::new(up.try_clone().unwrap());
                        let mut up = up;
                        if !exchange(&mut up, &mut up_reader, &mut client, &head, &body) {
                            return;
                        }
                    }
                });
            }
        });
        GateRelay {
            port,
            reached,
            gate,
            refused,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Open the gate for good.
    fn open(&self) {
        let (closed, wake) = &*self.gate;
        *closed.lock().unwrap() = false;
        wake.notify_all();
    }
}

/// Kill the Kinesis server in the middle of a read and start it again
/// (its streams on disk): the task backs off, reconnects and publishes
/// exact totals.
#[test]
fn a_server_restart_mid_read_loses_nothing() {
    let data = fresh_dir("kinesalite-leveldb");
    let server = Kinesalite::start_with(0, Some(&data));
    let port = server.port;
    let rows = 4_000;
    let last = put_flights(&server, "flights", 2, rows);
    let relay = GateRelay::start(port, 3);
    let base = fresh_dir("live-restart");
    let task = flights_task(&base, "restart", 2, "restart", &[]);
    edit_task(&task, |t| {
        t["ioConfig"]["endpoint"] = relay.url().into();
        t["ioConfig"]["endSequenceNumbers"]["partitionSequenceNumberMap"] = last.clone();
        t["ioConfig"]["recordsPerFetch"] = 500.into();
    });
    let (task2, base2) = (task.clone(), base.clone());
    let running = std::thread::spawn(move || run_live(&task2, &base2));
    relay.reached.recv().unwrap();
    drop(server);
    relay.open();
    // Restart only once a held call has met the dead server (a counter,
    // not a timer).
    while relay.refused.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    let _restarted = Kinesalite::start_with(port, Some(&data));
    let s = running.join().unwrap();
    assert_eq!(s.error, None);
    assert_eq!(s.stats.processed, rows as u64);
    assert_eq!(
        groups_from_segments(&published_segments(&base, "flights")),
        naive_groups(Some(rows))
    );
}

fn reshard(server: &Kinesalite, stream: &str, op: &[&str]) -> serde_json::Value {
    let args: Vec<String> = op.iter().map(|a| a.to_string()).collect();
    boto3_script("reshard.py", server, stream, &args)
}

/// A split and a merge while the task reads, and while `record` captures
/// the stream: 20,000 rows go into four shards, the task and the recorder
/// read part of them, then (their GetRecords held by relays) shard 0 is
/// split, 10,000 rows go in, shards 2 and 3 are merged and 10,000 more go
/// in. The task, reading until caught up, picks up each child only after
/// all its parents were read to their ends: every row is read once (the
/// rollup equals the naive one) and the parents' offsets are EOS. The
/// recorder picks up the children too, and its dump replays into the same
/// bytes.
#[test]
fn a_split_and_a_merge_during_ingestion_lose_nothing_and_keep_order() {
    let server = Kinesalite::start();
    put_flights(&server, "flights", 4, 20_000);
    // At the 5th GetRecords of 1,000 records, no shard (about 5,000 rows
    // each) can have been read to its end.
    let relay = GateRelay::start(server.port, 5);
    let base = fresh_dir("live-reshard");
    let task = flights_task(&base, "reshard", 4, "reshard", &[]);
    edit_task(&task, |t| {
        t["ioConfig"]["endpoint"] = relay.url().into();
        t["ioConfig"]["recordsPerFetch"] = 1000.into();
        t["tuningConfig"]["maxRecordsPerPoll"] = 1000.into();
    });
    let (task2, base2) = (task.clone(), base.clone());
    let running = std::thread::spawn(move || run_live_with(&task2, &base2, true));
    // The recorder, one shard after another, is held at its 3rd call.
    let record_relay = GateRelay::start(server.port, 3);
    let dump = scratch().join("live-reshard-recorded");
    let recording = {
        let (url, dump) = (record_relay.url(), dump.clone());
        std::thread::spawn(move || record_caught_up(url, dump, 1000))
    };
    relay.reached.recv().unwrap();
    record_relay.reached.recv().unwrap();

    let shard = |i: u32| format!("shardId-{i:012}");
    let split = reshard(&server, "flights", &["split", &shard(0)]);
    put_flights_with(&server, "flights", 0, 10_000, &["--skip", "20000"]);
    let merged = reshard(&server, "flights", &["merge", &shard(2), &shard(3)]);
    put_flights_with(&server, "flights", 0, 10_000, &["--skip", "30000"]);
    // kinesalite numbers new shards on: 4 and 5 from 0, 6 from 2 and 3.
    assert_eq!(split[&shard(4)][0], shard(0));
    assert_eq!(split[&shard(5)][0], shard(0));
    assert_eq!(
        merged[&shard(6)],
        serde_json::json!([shard(2), shard(3), false])
    );
    relay.open();
    record_relay.open();

    let s = running.join().unwrap();
    let rows = 40_000;
    let read = published_once(&s, &base, rows);
    // Children after parents: every record of a child came after the last
    // record of each of its parents.
    assert_eq!(read.len(), 7, "{:?}", s.shards);
    for (child, parents) in [(4, vec![0]), (5, vec![0]), (6, vec![2, 3])] {
        let c = read[&shard(child)];
        assert_eq!(
            c.parents,
            parents.iter().map(|p| shard(*p)).collect::<Vec<_>>()
        );
        assert!(c.records > 0, "{c:?}");
        for p in parents {
            let p = read[&shard(p)];
            assert_eq!(p.end, "EOS");
            assert!(
                c.first_record > p.last_record,
                "{} read before {} was drained: {c:?} {p:?}",
                c.shard_id,
                p.shard_id
            );
        }
    }
    assert_eq!(s.shards.iter().map(|r| r.records).sum::<u64>(), rows as u64);
    // The published offsets: EOS for the parents, numbers for the others.
    let store = kinesis_peon::publish::MetadataStore::open(
        &kinesis_peon::task::layout_for(&base).metadata_db(),
    )
    .unwrap();
    let committed = store.committed_offsets("flights").unwrap().unwrap().offsets;
    for i in 0..7 {
        let seq = committed[&shard(i)].to_string();
        assert_eq!(seq == "EOS", [0, 2, 3].contains(&i), "{i}: {seq}");
    }

    // The recording has every shard, children included, and replays into
    // the same rows.
    let counts = recording.join().unwrap().unwrap();
    assert_eq!(counts.len(), 7);
    assert_eq!(counts.iter().map(|c| c.1).sum::<u64>(), rows as u64);
    let (replayed, s2) = replay_recording(&task, &dump, "live-reshard-replayed");
    assert_eq!(s2.error, None);
    assert_eq!(s2.stats.processed, rows as u64);
    assert_same_segments(&replayed, &base);
}

/// A replay of a recording publishes the live run's segments, byte for
/// byte: the rows' order in a segment does not depend on the order the
/// shards were read in, and the flights sums are of whole numbers.
fn assert_same_segments(replayed: &Path, live: &Path) {
    assert_eq!(
        pushed_by_interval(replayed, "flights"),
        pushed_by_interval(live, "flights")
    );
    assert_eq!(
        groups_from_segments(&published_segments(replayed, "flights")),
        groups_from_segments(&published_segments(live, "flights"))
    );
}

/// A shard closed by a split more than a second after its last record:
/// kinesalite then answers the first read past that record with an empty
/// page at MillisBehindLatest 0 that still has a next iterator (sequence
/// times step by a second), and only the page after it ends the shard.
/// Neither the task reading until caught up nor the recorder may take that
/// page for the end: the parent is read to EOS, its children after it, and
/// every row is published once. (This is what made the split-and-merge
/// test above lose a child shard's rows when the suite ran slowly.)
#[test]
fn an_empty_page_from_a_closed_shard_does_not_end_it() {
    let server = Kinesalite::start();
    put_flights(&server, "flights", 2, 2_000);
    // Not synchronisation: the split must carry a server time more than a
    // second after shard 0's last record for kinesalite to answer the
    // empty page this test is about.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let shard = |i: u32| format!("shardId-{i:012}");
    let split = reshard(&server, "flights", &["split", &shard(0)]);
    assert_eq!(split[&shard(2)][0], shard(0));
    put_flights_with(&server, "flights", 0, 1_000, &["--skip", "2000"]);
    let rows = 3_000;

    let base = fresh_dir("live-closed-empty");
    let task = flights_task(&base, "closedempty", 2, "closedempty", &[]);
    edit_task(&task, |t| t["ioConfig"]["endpoint"] = server.url().into());
    let s = run_live_with(&task, &base, true);
    let read = published_once(&s, &base, rows);
    assert_eq!(read.len(), 4, "{:?}", s.shards);
    assert_eq!(read[&shard(0)].end, "EOS");
    for child in [2, 3] {
        assert_eq!(read[&shard(child)].parents, vec![shard(0)]);
    }

    let counts = record_caught_up(
        server.url(),
        scratch().join("live-closed-empty-recorded"),
        1000,
    )
    .unwrap();
    assert_eq!(counts.len(), 4, "{counts:?}");
    assert_eq!(counts.iter().map(|c| c.1).sum::<u64>(), rows as u64);
}

/// A start sequence number before a shard's earliest record (as after
/// trimming past retention): the task fails naming the shard, its start
/// and the earliest record; with resetOffsetAutomatically it reads from
/// the earliest record instead and publishes every row.
#[test]
fn a_start_before_the_earliest_record_fails_or_resets() {
    let server = Kinesalite::start();
    let rows = 2_000;
    let last = put_flights(&server, "flights", 2, rows);
    let base = fresh_dir("live-trimmed");
    let task = task_ending_at(&base, "trimmed", 2, &[("100", false)], &server.url(), &last);
    let failed = run_live(&task, &base);
    let error = failed.error.unwrap_or_default();
    assert!(
        error.contains("shard shardId-000000000000: starting sequence number 100 is no longer available (earliest is 4")
            && error.contains("resetOffsetAutomatically"),
        "{error}"
    );
    assert_eq!(failed.records, 0);

    edit_task(&task, |t| {
        t["tuningConfig"]["resetOffsetAutomatically"] = true.into();
    });
    let s = run_live(&task, &base);
    assert_eq!(s.error, None);
    assert_eq!(s.stats.processed, rows as u64);
    assert_eq!(
        groups_from_segments(&published_segments(&base, "flights")),
        naive_groups(Some(rows))
    );
}

/// Run a copy of `task` on a recorded dump in a fresh base dir of its own
/// (its own metadata store, so nothing counts as published already).
fn replay_recording(
    task: &Path,
    dump: &Path,
    name: &str,
) -> (PathBuf, kinesis_peon::task::RunSummary) {
    let base = fresh_dir(name);
    let copy = base.join(task.file_name().expect("task file"));
    std::fs::copy(task, &copy).unwrap();
    let summary = run_task(&copy, dump, &base);
    (base, summary)
}

/// A flights task in `base` (named and sequenced `name`) reading the
/// stream at `endpoint` up to the explicit end sequence numbers `last`.
fn task_ending_at(
    base: &Path,
    name: &str,
    shards: usize,
    start: &[(&str, bool)],
    endpoint: &str,
    last: &serde_json::Value,
) -> PathBuf {
    let task = flights_task(base, name, shards, name, start);
    edit_task(&task, |t| {
        t["ioConfig"]["endpoint"] = endpoint.into();
        t["ioConfig"]["endSequenceNumbers"]["partitionSequenceNumberMap"] = last.clone();
    });
    task
}

/// A relay that holds shard 1's GetShardIterator until the test opens its
/// gate, and counts the empty GetRecords pages it passes back.
struct ShardGate {
    port: u16,
    gate: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    empty_pages: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ShardGate {
    fn start(upstream: u16, held_shard: &'static str) -> ShardGate {
        use std::io::Write;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Condvar, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let gate = Arc::new((Mutex::new(true), Condvar::new()));
        let empty_pages = Arc::new(AtomicUsize::new(0));
        let (gate_in, empty_in) = (gate.clone(), empty_pages.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let (gate, empty) = (gate_in.clone(), empty_in.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().unwrap());
                    while let Some((head, body)) = read_message(&mut reader) {
                        if head.contains("Kinesis_20131202.GetShardIterator")
                            && String::from_utf8_lossy(&body).contains(held_shard)
                        {
                            let (closed, wake) = &*gate;
                            let mut closed = closed.lock().unwrap();
                            while *closed {
                                closed = wake.wait(closed).unwrap();
                            }
                        }
                        let Ok(mut up) = std::net::TcpStream::connect(("127.0.0.1", upstream))
                        else {
                            return;
                        };
                        let mut up_reader = BufReader::new(up.try_clone().unwrap());
                        if up.write_all(head.as_bytes()).is_err() || up.write_all(&body).is_err() {
                            return;
                        }
                        let Some((rhead, rbody)) = read_message(&mut up_reader) else {
                            return;
                        };
                        if head.contains("Kinesis_20131202.GetRecords")
                            && String::from_utf8_lossy(&rbody).contains("\"Records\":[]")
                        {
                            empty.fetch_add(1, Ordering::SeqCst);
                        }
                        if client.write_all(rhead.as_bytes()).is_err()
                            || client.write_all(&rbody).is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        ShardGate {
            port,
            gate,
            empty_pages,
        }
    }

    fn open(&self) {
        let (closed, wake) = &*self.gate;
        *closed.lock().unwrap() = false;
        wake.notify_all();
    }
}

/// Shard 1 cannot even start (its GetShardIterator held, as a shard in a
/// long back-off) while shard 0 holds 5,000 records, five times what the
/// buffers hold: every one of shard 0's records is read before shard 1's
/// first. (A poll taking shards in a fixed order waits on shard 1 with
/// shard 0's buffer full, and shard 0's reader never reaches its end:
/// the deadline below then fails the test.) Nothing is lost or reordered.
#[test]
fn a_live_read_never_waits_on_a_shard_that_has_nothing() {
    use std::sync::atomic::Ordering;
    let server = Kinesalite::start();
    put_flights_with(&server, "flights", 2, 5_000, &["--hash-key", "0"]);
    let shard1_key = (1u128 << 127).to_string();
    put_flights_with(
        &server,
        "flights",
        0,
        200,
        &["--skip", "5000", "--hash-key", &shard1_key],
    );
    let gate = ShardGate::start(server.port, "shardId-000000000001");
    let base = fresh_dir("live-idle-shard");
    let task = flights_task(&base, "idle", 2, "idle", &[]);
    edit_task(&task, |t| {
        t["ioConfig"]["endpoint"] = format!("http://127.0.0.1:{}", gate.port).into();
        t["ioConfig"]["recordsPerFetch"] = 250.into();
        t["tuningConfig"]["recordBufferSize"] = 1000.into();
        t["tuningConfig"]["maxRecordsPerPoll"] = 100.into();
    });
    let (task2, base2) = (task.clone(), base.clone());
    let running = std::thread::spawn(move || run_live_with(&task2, &base2, true));
    // Shard 0 read to its end shows as an empty page (a condition, polled
    // with a generous deadline: not a timing threshold).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while gate.empty_pages.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "shard 0 was never read to its end while shard 1 was held"
        );
        std::thread::yield_now();
    }
    gate.open();
    let s = running.join().unwrap();
    let read = published_once(&s, &base, 5_200);
    let (zero, one) = (read["shardId-000000000000"], read["shardId-000000000001"]);
    assert_eq!((zero.records, one.records), (5_000, 200));
    assert!(zero.last_record < one.first_record, "{zero:?} {one:?}");
}

/// A wrong endpoint (a closed port) fails the task within
/// fetchSequenceNumberTimeout, saying what kept failing where: in the
/// fetch loop (trim-horizon starts) and in the start-up lookup (a numbered
/// start); `record` gives up the same way.
#[test]
fn a_wrong_endpoint_fails_within_the_timeout_with_a_clear_message() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{closed}");
    let base = fresh_dir("live-wrong-endpoint");
    let task = flights_task(&base, "wrong", 2, "wrong", &[]);
    edit_task(&task, |t| {
        t["ioConfig"]["endpoint"] = endpoint.clone().into();
        t["tuningConfig"]["fetchSequenceNumberTimeout"] = 1000.into();
    });
    let s = run_live(&task, &base);
    let error = s.error.unwrap_or_default();
    for part in [
        "kept failing",
        "fetchSequenceNumberTimeout 1000 ms",
        &format!("at {endpoint}"),
    ] {
        assert!(error.contains(part), "{part}: {error}");
    }

    edit_task(&task, |t| {
        t["ioConfig"]["startSequenceNumbers"]["partitionSequenceNumberMap"]["shardId-000000000000"] =
            "100".into();
    });
    let error = run_live(&task, &base).error.unwrap_or_default();
    assert!(
        error.contains("GetShardIterator flights/shardId-000000000000: gave up after")
            && error.contains("fetchSequenceNumberTimeout 1000 ms"),
        "{error}"
    );

    let e = record_caught_up(endpoint, scratch().join("wrong-recorded"), 100)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ListShards flights: gave up after"), "{e}");
}

/// Credentials the server refuses (moto checking every request against
/// its IAM users): the task fails without retrying, saying the server
/// refused them and where credentials come from.
#[test]
fn refused_credentials_fail_the_task_with_a_clear_message() {
    let mut cmd = Command::new("python3");
    cmd.arg(repo().join("tests/servers/moto_server.py"))
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
    let moto = common::server::Server::spawn(cmd, "moto (pip moto[server])", |line| {
        line.strip_prefix("listening ")?.trim().parse().ok()
    });
    let base = fresh_dir("live-refused-credentials");
    let task = flights_task(&base, "refused", 2, "refused", &[]);
    edit_task(&task, |t| t["ioConfig"]["endpoint"] = moto.url().into());
    let s = run_live(&task, &base);
    let error = s.error.unwrap_or_default();
    for part in [
        "HTTP 403: InvalidClientTokenId: The security token included in the request is invalid",
        "refused the credentials",
        "druid.kinesis.accessKey",
    ] {
        assert!(error.contains(part), "{part}: {error}");
    }
    // Refused is final: no retries until fetchSequenceNumberTimeout.
    assert!(!error.contains("kept failing"), "{error}");
    assert!(published_segments(&base, "flights").is_empty());
}

/// SIGTERM while an open-ended run reads: the process persists what it
/// holds and exits 0 without publishing (no segment, no offsets, no status
/// file); a later run with the same base dir publishes every row once.
#[test]
fn sigterm_stops_without_publishing_and_a_later_run_completes() {
    let server = Kinesalite::start();
    let rows = 2_000;
    put_flights(&server, "flights", 2, rows);
    let base = fresh_dir("live-sigterm");
    let task = flights_task(&base, "sigterm", 2, "sigterm", &[]);
    edit_task(&task, |t| t["ioConfig"]["endpoint"] = server.url().into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_kinesis-peon"))
        .env("RUST_LOG", "info")
        .args(["run", "--task"])
        .arg(&task)
        .arg("--base-dir")
        .arg(&base)
        .args([
            "-D",
            "druid.kinesis.accessKey=test",
            "-D",
            "druid.kinesis.secretKey=test",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Both shards read up to the tip: their "caught up" lines.
    let mut log = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut caught_up = std::collections::BTreeSet::new();
    while caught_up.len() < 2 {
        let line = lines.next().expect("the run ended early").unwrap();
        if let Some(rest) = line.split("shard ").nth(1)
            && line.contains("caught up after")
        {
            caught_up.insert(rest.split(':').next().unwrap().to_string());
        }
        log.push_str(&line);
        log.push('\n');
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for line in lines {
        log.push_str(&line.unwrap());
        log.push('\n');
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{log}");
    assert!(
        stdout.contains("STOPPED (persisted, nothing published)"),
        "{stdout}"
    );
    assert!(log.contains("stopped on request"), "{log}");
    assert!(published_segments(&base, "flights").is_empty());
    assert!(
        !kinesis_peon::task::layout_for(&base)
            .task_dir("index_kinesis_sigterm")
            .join("status.json")
            .exists()
    );

    let s = run_live_with(&task, &base, true);
    published_once(&s, &base, rows);
}

/// Issue 30: a live read's Kinesis lag as Druid's metrics. With
/// `--print-metrics` each emission is printed as JSON lines (the final one
/// at least), holding the lag over the shards (total, max, average) and
/// per shard, from MillisBehindLatest.
#[test]
fn a_live_read_prints_its_metrics_with_the_kinesis_lag() {
    let server = Kinesalite::start();
    let rows = 2_000;
    let last = put_flights(&server, "flights", 2, rows);
    let base = fresh_dir("live-metrics");
    let task = task_ending_at(&base, "live_metrics", 2, &[], &server.url(), &last);
    let out = Command::new(env!("CARGO_BIN_EXE_kinesis-peon"))
        .current_dir(&base)
        .args(["run", "--print-metrics", "--task"])
        .arg(&task)
        .args([
            "-D",
            "druid.kinesis.accessKey=test",
            "-D",
            "druid.kinesis.secretKey=test",
            "-D",
            "druid.monitoring.emissionPeriod=PT0.05S",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with("{\"feed\":\"metrics\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let processed: i64 = events
        .iter()
        .filter(|e| e["metric"] == "ingest/events/processed")
        .map(|e| e["value"].as_i64().unwrap())
        .sum();
    assert_eq!(processed, rows as i64);
    let mut shards: Vec<&str> = events
        .iter()
        .filter(|e| e["metric"] == "ingest/kinesis/partitionLag/time")
        .map(|e| {
            assert_eq!(e["dataSource"], "flights");
            assert_eq!(e["stream"], "flights");
            assert!(e["value"].as_i64().is_some_and(|v| v >= 0), "{e}");
            e["partition"].as_str().unwrap()
        })
        .collect();
    shards.sort();
    shards.dedup();
    assert_eq!(shards, ["shardId-000000000000", "shardId-000000000001"]);
    for metric in [
        "ingest/kinesis/lag/time",
        "ingest/kinesis/maxLag/time",
        "ingest/kinesis/avgLag/time",
    ] {
        assert!(events.iter().any(|e| e["metric"] == metric), "{metric}");
        assert!(stdout.contains(&format!("\n{metric} ")), "{stdout}");
    }
}
