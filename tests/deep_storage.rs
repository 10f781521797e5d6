//! Deep storage on S3, Azure and Google Cloud Storage (issue 24), against
//! real servers the test starts on 127.0.0.1: moto (S3, and S3 again as
//! the GCS XML API object_store writes through), Azurite (Azure blob) and
//! s3rver (S3 with its objects on disk, for the restart). scripts/test
//! installs them; KINESIS_PEON_NODE_MODULES names where the npm ones are.

mod common;

use common::server::Server;
use common::*;
use kinesis_peon::publish::{DataSegment, MetadataStore};
use kinesis_peon::segment::writer::{SegmentFileSet, SegmentZipper};
use kinesis_peon::storage::cloud::CloudDeepStorage;
use kinesis_peon::storage::config::{GoogleSettings, Multipart, StorageSettings};
use kinesis_peon::storage::layout::{self, SegmentPlace};
use kinesis_peon::task::layout_for;
use object_store::ObjectStoreExt;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- servers

/// moto with the bucket `deep`.
fn moto() -> Server {
    let mut cmd = Command::new("python3");
    cmd.arg(repo().join("tests/servers/moto_server.py"));
    let server = Server::spawn(cmd, "moto (pip moto[server])", |line| {
        line.strip_prefix("listening ")?.trim().parse().ok()
    });
    let (status, body) = http(server.port, "PUT", "/deep", &[]);
    assert_eq!(status, 200, "creating bucket deep: {body}");
    server
}

fn azurite() -> Server {
    let mut cmd = Command::new(node_modules().join(".bin/azurite-blob"));
    cmd.args([
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        "0",
        "--inMemoryPersistence",
        "--disableTelemetry",
    ]);
    let server = Server::spawn(cmd, "azurite (npm)", |line| {
        line.split_once("listens on http://127.0.0.1:")?
            .1
            .trim()
            .parse()
            .ok()
    });
    let made = Command::new("python3")
        .arg(repo().join("tests/servers/azure_container.py"))
        .arg(server.port.to_string())
        .arg("deep")
        .status()
        .unwrap();
    assert!(made.success(), "creating container deep");
    server
}

/// s3rver on `port` keeping its objects under `dir` (they survive a
/// restart), with the bucket `deep`. Ready once it accepts a connection.
fn s3rver(port: u16, dir: &Path) -> Server {
    let child = Command::new(node_modules().join(".bin/s3rver"))
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-d"])
        .arg(dir)
        .args(["--configure-bucket", "deep", "--silent"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s3rver (npm) runs (scripts/test installs it)");
    Server::await_port(child, port, "s3rver")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One unsigned HTTP/1.1 request (moto takes unsigned requests as S3).
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    conn.write_all(req.as_bytes()).unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, reply)
}

// ------------------------------------------------------------- properties

const S3_ACCESS: &str = "AKIAPEONTESTKEY00001";
const S3_SECRET: &str = "peon/Test+Secret=Value0001";
/// Azurite's well-known development account and key.
const AZURE_ACCOUNT: &str = "devstoreaccount1";
const AZURE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn owned(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn s3_props(endpoint: &str, base_key: &str) -> BTreeMap<String, String> {
    owned(&[
        ("druid.storage.type", "s3"),
        ("druid.storage.bucket", "deep"),
        ("druid.storage.baseKey", base_key),
        ("druid.s3.endpoint.url", endpoint),
        ("druid.s3.endpoint.signingRegion", "us-east-1"),
        ("druid.s3.enablePathStyleAccess", "true"),
        ("druid.s3.accessKey", S3_ACCESS),
        ("druid.s3.secretKey", S3_SECRET),
    ])
}

fn azure_props(server: &Server, prefix: &str) -> BTreeMap<String, String> {
    owned(&[
        ("druid.storage.type", "azure"),
        ("druid.azure.account", AZURE_ACCOUNT),
        ("druid.azure.container", "deep"),
        ("druid.azure.prefix", prefix),
        ("druid.azure.key", AZURE_KEY),
        (
            "druid.azure.endpoint.url",
            &format!("{}/{AZURE_ACCOUNT}", server.url()),
        ),
    ])
}

fn storage(props: &BTreeMap<String, String>) -> CloudDeepStorage {
    match StorageSettings::from_properties(props).unwrap() {
        StorageSettings::S3(s) => CloudDeepStorage::s3(&s).unwrap(),
        StorageSettings::Azure(s) => CloudDeepStorage::azure(&s).unwrap(),
        StorageSettings::Google(s) => CloudDeepStorage::google(&s).unwrap(),
        StorageSettings::Local(_) => panic!("not a cloud store"),
    }
}

/// A static OAuth token, as a GCS client may be given one.
const GCS_TOKEN: &str = "ya29.peon-test-token-0001";

/// object_store's GCS client pointed at `server` through the environment
/// (GOOGLE_BASE_URL, its emulator hook), with a static bearer token. moto
/// takes a request whose Authorization is not SigV4 as S3; an empty token
/// (object_store's `disable_oauth`) sends a bare "Bearer " that moto cannot
/// parse.
fn google_env(server: &Server) -> [(&'static str, String); 3] {
    [
        ("GOOGLE_BASE_URL", server.url()),
        ("GOOGLE_BEARER_TOKEN", GCS_TOKEN.to_string()),
        ("GOOGLE_ALLOW_HTTP", "true".to_string()),
    ]
}

// -------------------------------------------------------------- reference

struct Pushed {
    zip: Vec<u8>,
    segment: DataSegment,
}

/// The 4-shard flights dump run into local deep storage with
/// druid.storage.zip=true: each segment's index.zip and DataSegment by
/// (interval, partition).
fn local_zip_run() -> &'static BTreeMap<(String, u32), Pushed> {
    static RUN: OnceLock<BTreeMap<(String, u32), Pushed>> = OnceLock::new();
    RUN.get_or_init(|| {
        let dump = flights_dump("flights4", 4, None);
        let base = fresh_dir("objstore-local-zip");
        let task = flights_task(&base, "local", 4, "objstore", &[]);
        let s = run_task_with(&task, &dump, &base, &[("druid.storage.zip", "true")]);
        assert_eq!(s.error, None);
        let mut zips = pushed_by_interval(&base, "flights");
        used_segments(&base)
            .into_iter()
            .map(|segment| {
                let key = (segment.interval.clone(), segment.shard_spec.partition_num);
                let mut files = zips.remove(&key).unwrap();
                let zip = files.remove("index.zip").expect("zipped");
                (key, Pushed { zip, segment })
            })
            .collect()
    })
}

fn used_segments(base: &Path) -> Vec<DataSegment> {
    MetadataStore::open(&layout_for(base).metadata_db())
        .unwrap()
        .used_segments("flights")
        .unwrap()
}

fn millis(iso: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(iso)
        .unwrap()
        .timestamp_millis()
}

/// Every published segment of a run into a cloud store: its loadSpec is
/// the one Druid's pusher writes for its place and unique directory (`spec`
/// builds it; `key` reads the object key back out of it), the object holds
/// exactly the local zip run's index.zip, the DataSegment equals the local
/// one but for version and loadSpec, and the store holds nothing else.
fn check_cloud_run(
    base: &Path,
    reader: &CloudDeepStorage,
    spec: impl Fn(&SegmentPlace, &str) -> serde_json::Value,
    key: impl Fn(&serde_json::Value) -> String,
) {
    let reference = local_zip_run();
    let published = used_segments(base);
    assert_eq!(published.len(), reference.len());
    assert_eq!(published.len(), 366, "one segment per UTC day");
    let mut keys = BTreeSet::new();
    for seg in &published {
        let k = key(&seg.load_spec);
        let mut dirs = k.rsplit('/');
        assert_eq!(dirs.next(), Some("index.zip"), "{k}");
        let uuid = dirs.next().unwrap();
        assert_eq!(
            uuid::Uuid::parse_str(uuid).unwrap().get_version_num(),
            4,
            "{k}"
        );
        let (start, end) = seg.interval.split_once('/').unwrap();
        let place = SegmentPlace {
            data_source: &seg.data_source,
            interval: (millis(start), millis(end)),
            version: &seg.version,
            partition: seg.shard_spec.partition_num,
        };
        assert_eq!(seg.load_spec, spec(&place, uuid));
        let local = &reference[&(seg.interval.clone(), seg.shard_spec.partition_num)];
        let bytes = reader
            .block_on(async {
                reader
                    .store()
                    .get(&object_store::path::Path::parse(&k).unwrap())
                    .await
                    .unwrap()
                    .bytes()
                    .await
            })
            .unwrap();
        assert!(bytes.as_ref() == local.zip.as_slice(), "{k}: zip differs");
        let mut want = local.segment.clone();
        want.version = seg.version.clone();
        want.load_spec = seg.load_spec.clone();
        want.identifier = seg.identifier.clone();
        assert_eq!(seg, &want);
        keys.insert(k);
    }
    let listed: BTreeSet<String> = reader.block_on(async {
        use futures_util::StreamExt;
        let mut out = BTreeSet::new();
        let mut list = reader.store().list(None);
        while let Some(meta) = list.next().await {
            out.insert(meta.unwrap().location.to_string());
        }
        out
    });
    assert_eq!(listed, keys, "the store holds the published segments only");
}

fn run_in_process(name: &str, props: &BTreeMap<String, String>) -> PathBuf {
    let dump = flights_dump("flights4", 4, None);
    let base = fresh_dir(name);
    let task = flights_task(&base, name, 4, "objstore", &[]);
    let pairs: Vec<(&str, &str)> = props
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let s = run_task_with(&task, &dump, &base, &pairs);
    assert_eq!(s.error, None);
    assert_eq!(s.segments.len(), 366);
    base
}

fn s3_key_of(spec: &serde_json::Value) -> String {
    assert_eq!(spec["type"], "s3_zip");
    spec["key"].as_str().unwrap().to_string()
}

// ------------------------------------------------------------------ tests

/// Must-show 1 for S3: the flights replay pushed to moto under Druid's
/// keys, byte-identical to a local zipped run.
#[test]
fn flights_replay_to_s3_matches_a_local_zip_run() {
    let server = moto();
    let props = s3_props(&server.url(), "druid/segments");
    let base = run_in_process("objstore-s3", &props);
    check_cloud_run(
        &base,
        &storage(&props),
        |place, uuid| {
            layout::s3_load_spec(
                "deep",
                &layout::s3_key("druid/segments", place, uuid),
                false,
            )
        },
        s3_key_of,
    );
}

/// Must-show 1 for Azure: the same replay to Azurite, Druid's Azure
/// layout (basic times, version without colons) and loadSpec.
#[test]
fn flights_replay_to_azure_matches_a_local_zip_run() {
    let server = azurite();
    let props = azure_props(&server, "druid/segments/");
    let base = run_in_process("objstore-azure", &props);
    check_cloud_run(
        &base,
        &storage(&props),
        |place, uuid| {
            layout::azure_load_spec(
                "deep",
                &layout::azure_blob_path("druid/segments", place, uuid),
            )
        },
        |spec| {
            assert_eq!(spec["type"], "azure");
            spec["blobPath"].as_str().unwrap().to_string()
        },
    );
}

/// Must-show 1 for Google: the binary, configured as Druid's google
/// extension is (druid.google.*, credentials from the environment), pushes
/// through object_store's GCS XML client to moto, which speaks that S3
/// dialect; read back through moto's S3 API under the exact object names.
#[test]
fn flights_replay_to_google_through_an_xml_api_server_matches_a_local_zip_run() {
    let server = moto();
    let dump = flights_dump("flights4", 4, None);
    let base = fresh_dir("objstore-google");
    let task = flights_task(&base, "google", 4, "objstore", &[]);
    let props = owned(&[
        ("druid.storage.type", "google"),
        ("druid.google.bucket", "deep"),
        ("druid.google.prefix", "druid/segments"),
    ]);
    let out = peon(&base, &task, &dump, &props)
        .envs(google_env(&server))
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_secret(&[GCS_TOKEN], &out, &base, "index_kinesis_google");
    check_cloud_run(
        &base,
        &storage(&s3_props(&server.url(), "")),
        |place, uuid| {
            layout::google_load_spec("deep", &layout::google_path("druid/segments", place, uuid))
        },
        |spec| {
            assert_eq!(spec["type"], "google");
            spec["path"].as_str().unwrap().to_string()
        },
    );
}

/// 12 MiB that deflate cannot shrink (xorshift), and a version file.
fn big_segment() -> SegmentFileSet {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut bytes = Vec::with_capacity(12 << 20);
    while bytes.len() < 12 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    vec![
        ("version.bin".to_string(), vec![0, 0, 0, 9]),
        ("00000.smoosh".to_string(), bytes),
    ]
}

const PLACE: SegmentPlace = SegmentPlace {
    data_source: "flights",
    interval: (1_356_998_400_000, 1_357_084_800_000),
    version: "2024-01-02T03:04:05.678Z",
    partition: 0,
};

/// Push the big segment with 5 MiB threshold and parts and a small one:
/// the big one goes up in 3 parts, the small one in one PUT, both read
/// back equal to their zips. The ETags of what went up (S3: "-3" for 3
/// parts); None where the store shows no part count.
fn push_big_and_small(store: CloudDeepStorage) -> Vec<String> {
    let five = 5 << 20;
    let store = store.with_multipart(Multipart {
        enabled: true,
        threshold: five,
        part_size: five,
    });
    let big = big_segment();
    let small = vec![("version.bin".to_string(), vec![0, 0, 0, 9])];
    let mut tags = Vec::new();
    for (files, parts) in [(&big, 3), (&small, 1)] {
        let (zip, _) = SegmentZipper::default().zip(files).unwrap();
        let up = store.push(files, &PLACE).unwrap();
        assert_eq!(up.parts, parts);
        assert_eq!(up.tries, 1);
        let (bytes, tag) = store.block_on(async {
            let got = store.store().get(&up.location.path).await.unwrap();
            let tag = got.meta.e_tag.clone().unwrap_or_default();
            (got.bytes().await.unwrap(), tag)
        });
        assert!(
            bytes.as_ref() == zip.as_slice(),
            "{} differs",
            up.location.url
        );
        tags.push(tag);
    }
    tags
}

#[test]
fn a_segment_above_the_multipart_threshold_goes_up_in_parts_to_s3() {
    let server = moto();
    let tags = push_big_and_small(storage(&s3_props(&server.url(), "big")));
    assert!(tags[0].ends_with("-3\""), "{tags:?}");
    assert!(!tags[1].contains('-'), "{tags:?}");
}

#[test]
fn a_segment_above_the_multipart_threshold_goes_up_in_blocks_to_azure() {
    let server = azurite();
    push_big_and_small(storage(&azure_props(&server, "big")));
}

#[test]
fn a_segment_above_the_multipart_threshold_goes_up_in_parts_to_google() {
    let server = moto();
    let gcs = object_store::gcp::GoogleCloudStorageBuilder::new()
        .with_base_url(&server.url())
        .with_bearer_token(GCS_TOKEN)
        .with_client_options(object_store::ClientOptions::new().with_allow_http(true));
    let settings = GoogleSettings {
        bucket: "deep".into(),
        prefix: "druid".into(),
        multipart: Multipart::default(),
    };
    let store = CloudDeepStorage::google_with(gcs, &settings).unwrap();
    let tags = push_big_and_small(store);
    assert!(tags[0].ends_with("-3\""), "{tags:?}");
}

// ---------------------------------------------------------------- outages

/// What the relay does to the task's writes.
#[derive(Clone, Copy)]
enum Writes {
    /// The n-th PUT closes a gate and tells the test; it and every later
    /// PUT wait until the test opens the gate (the test stops the server
    /// meanwhile).
    GateAt(usize),
    /// From the n-th upload (PUT, or POST of a multipart upload) on, each
    /// is answered 403 AccessDenied, as S3 answers a principal without
    /// s3:PutObject; reads and deletes pass.
    RefuseFrom(usize),
}

/// A relay in front of an S3 server that forwards each request on a fresh
/// upstream connection, doing to writes what `Writes` says.
struct PutGate {
    port: u16,
    reached: std::sync::mpsc::Receiver<()>,
    gate: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    /// Requests that met a dead upstream (their client connection is dropped).
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl PutGate {
    fn start(upstream: u16, writes: Writes) -> PutGate {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Condvar, Mutex, mpsc};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (reached_tx, reached) = mpsc::channel();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let puts = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (gate_in, refused_in) = (gate.clone(), refused.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let (gate, puts, refused, reached_tx) = (
                    gate_in.clone(),
                    puts.clone(),
                    refused_in.clone(),
                    reached_tx.clone(),
                );
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().unwrap());
                    while let Some((head, body)) = read_message(&mut reader) {
                        // Uploads: PUT, and POST but for DeleteObjects (POST ?delete).
                        let write = head.starts_with("PUT ")
                            || (head.starts_with("POST ")
                                && !head.lines().next().unwrap_or("").contains("?delete"));
                        let n = if write {
                            puts.fetch_add(1, Ordering::SeqCst) + 1
                        } else {
                            0
                        };
                        if matches!(writes, Writes::RefuseFrom(from) if write && n >= from) {
                            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>relay</RequestId></Error>";
                            let reply = format!(
                                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            refused.fetch_add(1, Ordering::SeqCst);
                            if client.write_all(reply.as_bytes()).is_err() {
                                return;
                            }
                            continue;
                        }
                        if let (true, Writes::GateAt(at)) = (write, writes) {
                            let (closed, wake) = &*gate;
                            let mut closed = closed.lock().unwrap();
                            if n == at {
                                *closed = true;
                                let _ = reached_tx.send(());
                            }
                            while *closed {
                                closed = wake.wait(closed).unwrap();
                            }
                        }
                        let Ok(mut up) = std::net::TcpStream::connect(("127.0.0.1", upstream))
                        else {
                            refused.fetch_add(1, Ordering::SeqCst);
                            return;
                        };
                        let mut up_reader = BufReader::new(up.try_clone().unwrap());
                        if up.write_all(head.as_bytes()).is_err() || up.write_all(&body).is_err() {
                            return;
                        }
                        let Some((rhead, rbody)) = read_message(&mut up_reader) else {
                            return;
                        };
                        if client.write_all(rhead.as_bytes()).is_err()
                            || client.write_all(&rbody).is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        PutGate {
            port,
            reached,
            gate,
            refused,
        }
    }

    fn open(&self) {
        let (closed, wake) = &*self.gate;
        *closed.lock().unwrap() = false;
        wake.notify_all();
    }
}

/// Wait for `done` with a deadline (polling, no fixed sleeps).
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

fn peon(base: &Path, task: &Path, dump: &Path, props: &BTreeMap<String, String>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinesis-peon"));
    cmd.args(["run", "--task"])
        .arg(task)
        .arg("--dump")
        .arg(dump)
        .arg("--base-dir")
        .arg(base);
    for (k, v) in props {
        cmd.arg("-D").arg(format!("{k}={v}"));
    }
    cmd
}

/// Must-show 3: the S3 server (s3rver, objects on disk) is stopped while
/// the task pushes (at its 20th PUT) and started again once the uploads
/// have met it dead: the task logs its retries, completes, and publishes
/// every segment exactly once, each object equal to the local zip run's.
#[test]
fn an_s3_server_stopped_during_pushes_and_started_again_publishes_exactly_once() {
    use std::sync::atomic::Ordering;
    let data = fresh_dir("objstore-s3rver-data");
    let port = free_port();
    let server = s3rver(port, &data);
    let gate = PutGate::start(port, Writes::GateAt(20));
    let base = fresh_dir("objstore-outage");
    let dump = flights_dump("flights4", 4, None);
    let task = flights_task(&base, "outage", 4, "objstore", &[]);
    let mut props = s3_props(&format!("http://127.0.0.1:{}", gate.port), "outage");
    props.insert("druid.s3.accessKey".into(), "S3RVER".into());
    props.insert("druid.s3.secretKey".into(), "S3RVER".into());
    let child = peon(&base, &task, &dump, &props)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let running = std::thread::spawn(move || child.wait_with_output().unwrap());
    gate.reached
        .recv_timeout(Duration::from_secs(300))
        .expect("the task reached its 20th PUT");
    drop(server);
    gate.open();
    // Restart once the held upload and object_store's own retries of it
    // (3) have met the dead server: the next try is the task's own.
    wait_for("four refused requests", || {
        gate.refused.load(Ordering::SeqCst) >= 4
    });
    let _restarted = s3rver(port, &data);
    let out = running.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("pushing s3://deep/outage/flights/") && stderr.contains("retrying in"),
        "{stderr}"
    );
    let mut direct = s3_props(&format!("http://127.0.0.1:{port}"), "");
    direct.insert("druid.s3.accessKey".into(), "S3RVER".into());
    direct.insert("druid.s3.secretKey".into(), "S3RVER".into());
    check_cloud_run(
        &base,
        &storage(&direct),
        |place, uuid| layout::s3_load_spec("deep", &layout::s3_key("outage", place, uuid), false),
        s3_key_of,
    );
    let store = MetadataStore::open(&layout_for(&base).metadata_db()).unwrap();
    assert!(store.committed_offsets("flights").unwrap().is_some());
}

fn task_files(base: &Path, task_id: &str) -> Vec<(PathBuf, String)> {
    let dir = layout_for(base).task_dir(task_id);
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
                out.push((p, text));
            }
        }
    }
    out
}

/// None of `secrets` in the output or any file of the task directory.
fn assert_no_secret(secrets: &[&str], out: &std::process::Output, base: &Path, task_id: &str) {
    let files = task_files(base, task_id);
    assert!(
        files.iter().any(|(p, _)| p.ends_with("status.json"))
            && files.iter().any(|(p, _)| p.ends_with("report.json")),
        "{files:?}"
    );
    let mut texts = vec![
        (
            PathBuf::from("stdout"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ),
        (
            PathBuf::from("stderr"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
    ];
    texts.extend(files);
    for (what, text) in &texts {
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{} shows a credential",
                what.display()
            );
        }
    }
}

/// Must-show 3 and 4: an S3 server that refuses every write (moto behind
/// a relay answering each upload with 403 AccessDenied, as
/// S3 answers a principal without s3:PutObject; moto's own IAM checks
/// cannot stand in, as it miscomputes SigV4 for keys with ':', which every
/// Druid key has): the task fails at once naming the object and the
/// refusal, publishes nothing, moves no offsets, leaves no object; its
/// credentials (given in a properties file) appear in no log, status or
/// report.
#[test]
fn an_s3_server_refusing_every_write_fails_the_task_and_publishes_nothing() {
    let server = moto();
    let relay = PutGate::start(server.port, Writes::RefuseFrom(1));
    let (access, secret) = (S3_ACCESS, S3_SECRET);
    let base = fresh_dir("objstore-refused");
    let dump = flights_dump("flights4", 4, None);
    let task = flights_task(&base, "refused", 4, "objstore", &[]);
    let props = s3_props(&format!("http://127.0.0.1:{}", relay.port), "druid");
    // Through a properties file, as a MiddleManager passes them.
    let file = base.join("runtime.properties");
    let text: String = props.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(&file, text).unwrap();
    let out = peon(&base, &task, &dump, &BTreeMap::new())
        .arg("--properties")
        .arg(&file)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let status: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout_for(&base)
                .task_dir("index_kinesis_refused")
                .join("status.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(status["status"], "FAILED");
    // The status keeps the head of the error (Druid truncates errorMsg);
    // the log has all of it.
    let msg = status["errorMsg"].as_str().unwrap();
    assert!(
        msg.starts_with("pushing segment to s3://deep/druid/flights/"),
        "{msg}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = stderr
        .find("task index_kinesis_refused failed")
        .unwrap_or_else(|| panic!("{stderr}"));
    let failed = &stderr[at..];
    assert!(
        failed.contains("failed (try 1 of 10)")
            && failed.contains("403 Forbidden")
            && failed.contains("AccessDenied"),
        "{failed}"
    );
    assert!(!stderr.contains("retrying in"), "a refusal is not retried");
    assert!(used_segments(&base).is_empty());
    let store = MetadataStore::open(&layout_for(&base).metadata_db()).unwrap();
    assert!(store.committed_offsets("flights").unwrap().is_none());
    assert!(relay.refused.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    // The bucket is empty.
    let reader = storage(&s3_props(&server.url(), ""));
    let listed = reader.block_on(async {
        use futures_util::StreamExt;
        reader.store().list(None).collect::<Vec<_>>().await
    });
    assert!(listed.is_empty(), "{listed:?}");
    assert_no_secret(&[access, secret], &out, &base, "index_kinesis_refused");
}

/// Must-show 4: S3 credentials from the environment (the SDK chain) and
/// from properties, logging at trace: neither shows up anywhere.
#[test]
fn credentials_never_reach_logs_status_or_report() {
    let server = moto();
    let dump = flights_dump("flights2-small-objstore", 2, Some(3_000));
    for (name, from_env) in [("creds-env", true), ("creds-props", false)] {
        let base = fresh_dir(&format!("objstore-{name}"));
        let task = flights_task(&base, name, 2, "objstore", &[]);
        let mut props = s3_props(&server.url(), name);
        let mut cmd = if from_env {
            props.remove("druid.s3.accessKey");
            props.remove("druid.s3.secretKey");
            let mut cmd = peon(&base, &task, &dump, &props);
            cmd.env("AWS_ACCESS_KEY_ID", S3_ACCESS)
                .env("AWS_SECRET_ACCESS_KEY", S3_SECRET);
            cmd
        } else {
            peon(&base, &task, &dump, &props)
        };
        let out = cmd.env("RUST_LOG", "trace").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let published = used_segments(&base);
        assert!(!published.is_empty());
        assert!(
            published
                .iter()
                .all(|s| s3_key_of(&s.load_spec).starts_with(&format!("{name}/flights/")))
        );
        // The properties' own runtime echo, if any, must not carry them either.
        assert_no_secret(
            &[S3_ACCESS, S3_SECRET],
            &out,
            &base,
            &format!("index_kinesis_{name}"),
        );
    }
}

/// Writes refused from the 30th on: the task fails, publishes nothing,
/// and deletes the 29 segments it had pushed (no orphans in the bucket).
#[test]
fn a_push_failing_mid_sequence_removes_what_the_task_pushed() {
    let server = moto();
    let relay = PutGate::start(server.port, Writes::RefuseFrom(30));
    let props = s3_props(&format!("http://127.0.0.1:{}", relay.port), "mid");
    let dump = flights_dump("flights4", 4, None);
    let base = fresh_dir("objstore-mid");
    let task = flights_task(&base, "mid", 4, "objstore", &[]);
    let pairs: Vec<(&str, &str)> = props
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let s = run_task_with(&task, &dump, &base, &pairs);
    let e = s.error.unwrap();
    assert!(
        e.contains("pushing segment to s3://deep/mid/flights/") && e.contains("AccessDenied"),
        "{e}"
    );
    assert!(used_segments(&base).is_empty());
    let store = MetadataStore::open(&layout_for(&base).metadata_db()).unwrap();
    assert!(store.committed_offsets("flights").unwrap().is_none());
    assert_eq!(relay.refused.load(std::sync::atomic::Ordering::SeqCst), 1);
    let reader = storage(&s3_props(&server.url(), ""));
    let listed = reader.block_on(async {
        use futures_util::StreamExt;
        reader.store().list(None).collect::<Vec<_>>().await
    });
    assert!(listed.is_empty(), "{} objects left", listed.len());
}

/// Deep storage Druid has but kinesis-peon does not push to: refused
/// before a record is read, naming the property.
#[test]
fn other_storage_types_are_refused_at_start() {
    let dump = flights_dump("flights4", 4, None);
    let base = fresh_dir("objstore-hdfs");
    let task = flights_task(&base, "hdfs", 4, "objstore", &[]);
    let s = run_task_with(&task, &dump, &base, &[("druid.storage.type", "hdfs")]);
    let e = s.error.unwrap();
    assert!(
        e.contains("druid.storage.type") && e.contains("\"hdfs\""),
        "{e}"
    );
    assert_eq!(s.records, 0);
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&s.status_file).unwrap()).unwrap();
    assert_eq!(status["status"], "FAILED");
}
