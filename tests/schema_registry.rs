//! `schema_registry` decoders (avro_stream's avroBytesDecoder and
//! protobuf's protoBytesDecoder): flights rows in Confluent's wire format,
//! encoded by tests/servers/encode_formats.py, read against a small HTTP
//! server started here that answers as Confluent Schema Registry's REST API
//! does (`GET /schemas/ids/{id}` → `{"schema": ...}`, with `"schemaType":
//! "PROTOBUF"` for .proto text; an unknown id → 404 with error_code 40403).
//! No live registry installs here: these are recorded reply shapes.

mod common;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const ROWS: usize = 2000;

fn encoded() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let out = scratch().join("registry-encoded");
        let status = std::process::Command::new("python3")
            .arg(repo().join("tests/servers/encode_formats.py"))
            .arg(flights_ndjson())
            .arg(ROWS.to_string())
            .arg(&out)
            .status()
            .expect("python3 runs (scripts/test installs fastavro and grpcio-tools)");
        assert!(status.success(), "encode_formats.py failed");
        out
    })
}

fn records(file: &str) -> Vec<Vec<u8>> {
    std::fs::read_to_string(encoded().join(file))
        .unwrap()
        .lines()
        .map(|l| base64::engine::general_purpose::STANDARD.decode(l).unwrap())
        .collect()
}

/// One request the registry saw: its path and headers (lower-case names).
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A registry answering from `registry.json` (schema id → reply), or with
/// `always` (a status) to every request; the requests it saw.
struct TestRegistry {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestRegistry {
    fn start(always: Option<u16>) -> TestRegistry {
        let replies: Value =
            serde_json::from_slice(&std::fs::read(encoded().join("registry.json")).unwrap())
                .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let mut lines = text.split("\r\n");
                let path = lines
                    .next()
                    .and_then(|l| l.split(' ').nth(1))
                    .unwrap_or("")
                    .to_string();
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                log.lock().unwrap().push(Seen {
                    path: path.clone(),
                    headers,
                });
                let id = path.strip_prefix("/schemas/ids/").unwrap_or("");
                let (status, body) = match (always, replies.get(id)) {
                    (Some(status), _) => (status, json!({"error_code": 50001, "message": "down"})),
                    (None, Some(reply)) => (200, reply.clone()),
                    (None, None) => (
                        404,
                        json!({"error_code": 40403, "message": format!("Schema {id} not found")}),
                    ),
                };
                let body = body.to_string();
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        TestRegistry { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many GETs each path had.
    fn counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut out = std::collections::BTreeMap::new();
        for s in self.seen() {
            *out.entry(s.path).or_insert(0) += 1;
        }
        out
    }
}

fn avro_format(decoder: Value) -> Value {
    json!({"type": "avro_stream", "avroBytesDecoder": decoder})
}

fn protobuf_format(decoder: Value) -> Value {
    json!({"type": "protobuf", "protoBytesDecoder": decoder})
}

/// Run the flights task over `records` with `format`; the summary and
/// the deep-storage base directory.
fn run_flights(
    name: &str,
    records: &[impl AsRef<[u8]>],
    format: Value,
    max_errors: u64,
) -> (kinesis_peon::task::RunSummary, PathBuf) {
    let base = fresh_dir(name);
    let dump = base.join("dump");
    write_one_shard_dump(&dump, records, 1);
    let task = flights_task(&base, name, 1, "registry", &[]);
    edit_task(&task, |t| {
        t["ioConfig"]["inputFormat"] = format;
        t["tuningConfig"]["maxParseExceptions"] = max_errors.into();
        t["tuningConfig"]["maxSavedParseExceptions"] = max_errors.into();
    });
    (run_task(&task, &dump, &base), base)
}

/// The strongest check: the same rows through the registry decoders and
/// through JSON give the same segment files; each schema id is fetched
/// once however many records carry it, with the task's Basic credentials
/// and headers.
#[test]
fn registry_records_publish_the_json_segments_fetching_each_schema_once() {
    let (s, json_base) = run_flights(
        "registry-json",
        &flights_lines("ndjson", ROWS),
        json!({"type": "json"}),
        0,
    );
    assert_eq!(s.error, None);
    let expected = pushed_by_interval(&json_base, "flights");
    assert!(!expected.is_empty());
    let registry = TestRegistry::start(None);
    let avro = records("avro-registry.b64");
    assert_eq!(avro.len(), ROWS);
    let decoder = json!({"type": "schema_registry", "urls": [registry.url],
        "config": {"basic.auth.credentials.source": "USER_INFO",
                   "basic.auth.user.info": "druid:s3cret"},
        "headers": {"X-Tenant": "flights"}});
    let (s, base) = run_flights("registry-avro", &avro, avro_format(decoder), 0);
    assert_eq!(s.error, None);
    assert_eq!((s.stats.processed, s.stats.unparseable), (ROWS as u64, 0));
    assert_eq!(pushed_by_interval(&base, "flights"), expected, "avro");
    assert_eq!(
        registry.counts(),
        [("/schemas/ids/1".into(), 1), ("/schemas/ids/2".into(), 1)].into()
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("druid:s3cret");
    for seen in registry.seen() {
        assert_eq!(
            seen.header("authorization"),
            Some(format!("Basic {basic}").as_str())
        );
        assert_eq!(seen.header("x-tenant"), Some("flights"));
    }
    // Protobuf: the .proto text compiled at run time; id 3's records carry
    // the message index [0] (one 0 byte), id 4's [1] (its second message).
    let registry = TestRegistry::start(None);
    let proto = records("protobuf-registry.b64");
    let decoder = json!({"type": "schema_registry", "url": registry.url});
    let (s, base) = run_flights("registry-protobuf", &proto, protobuf_format(decoder), 0);
    assert_eq!(s.error, None);
    assert_eq!((s.stats.processed, s.stats.unparseable), (ROWS as u64, 0));
    assert_eq!(pushed_by_interval(&base, "flights"), expected, "protobuf");
    assert_eq!(
        registry.counts(),
        [("/schemas/ids/3".into(), 1), ("/schemas/ids/4".into(), 1)].into()
    );
    assert!(
        registry
            .seen()
            .iter()
            .all(|s| s.header("authorization").is_none())
    );
}

/// A schema id the registry does not have makes that record unparseable
/// with the registry's reason, its shard and sequence number; the cache
/// holds at most `capacity` schemas.
#[test]
fn an_unknown_schema_id_is_unparseable_and_the_cache_is_bounded() {
    let registry = TestRegistry::start(None);
    let mut avro: Vec<Vec<u8>> = records("avro-registry.b64")[..10].to_vec();
    let mut unknown = avro[0].clone();
    unknown[1..5].copy_from_slice(&7i32.to_be_bytes());
    avro.insert(4, unknown);
    avro.insert(6, vec![0, 0, 1]);
    // capacity 1 and ids alternating 1, 2: every known record is a fetch.
    let decoder = json!({"type": "schema_registry", "url": registry.url, "capacity": 1});
    let (s, _) = run_flights("registry-unknown-avro", &avro, avro_format(decoder), 2);
    assert_eq!(s.error, None);
    assert_eq!((s.stats.processed, s.stats.unparseable), (10, 2));
    let at = |seq: u64| format!("shardId-000000000000, sequence number {seq}");
    let saved = |seq: u64| {
        s.saved_errors
            .iter()
            .find(|m| m.contains(&at(seq)))
            .unwrap_or_else(|| panic!("{seq}: {:?}", s.saved_errors))
            .clone()
    };
    let e = saved(5);
    assert!(
        e.contains("Failed to fetch Avro schema id[7] from registry")
            && e.contains("Schema 7 not found; error code: 40403"),
        "{e}"
    );
    let e = saved(7);
    assert!(e.contains("not enough bytes to decode (3)"), "{e}");
    let counts = registry.counts();
    assert_eq!(counts["/schemas/ids/7"], 1);
    assert_eq!(counts["/schemas/ids/1"] + counts["/schemas/ids/2"], 10);

    // Without a capacity, the same records fetch ids 1 and 2 once each.
    let registry = TestRegistry::start(None);
    let decoder = json!({"type": "schema_registry", "url": registry.url});
    let (s, _) = run_flights("registry-cached-avro", &avro, avro_format(decoder), 2);
    assert_eq!((s.stats.processed, s.stats.unparseable), (10, 2));
    assert_eq!(
        registry.counts(),
        [
            ("/schemas/ids/1".into(), 1),
            ("/schemas/ids/2".into(), 1),
            ("/schemas/ids/7".into(), 1)
        ]
        .into()
    );

    // Protobuf: an unknown id, and an Avro schema's id.
    let registry = TestRegistry::start(None);
    let mut proto: Vec<Vec<u8>> = records("protobuf-registry.b64")[..4].to_vec();
    let mut unknown = proto[0].clone();
    unknown[1..5].copy_from_slice(&7i32.to_be_bytes());
    let mut avro_id = proto[0].clone();
    avro_id[1..5].copy_from_slice(&1i32.to_be_bytes());
    proto.extend([unknown, avro_id]);
    let decoder = json!({"type": "schema_registry", "url": registry.url});
    let (s, _) = run_flights(
        "registry-unknown-protobuf",
        &proto,
        protobuf_format(decoder),
        2,
    );
    assert_eq!(s.error, None);
    assert_eq!((s.stats.processed, s.stats.unparseable), (4, 2));
    let e = s.saved_errors.iter().find(|m| m.contains(&at(5))).unwrap();
    assert!(
        e.contains("Failed to fetch Protobuf schema id[7] from registry")
            && e.contains("Schema 7 not found"),
        "{e}"
    );
    let e = s.saved_errors.iter().find(|m| m.contains(&at(6))).unwrap();
    assert!(e.contains("not a Protobuf one"), "{e}");
}

/// A registry that cannot be reached (nothing listening; or answering 503)
/// fails the task after a few attempts, naming the URL but not the
/// credentials in it, and the record's shard and sequence number; nothing
/// is published.
#[test]
fn a_registry_that_is_down_fails_the_task_naming_its_url() {
    let avro: Vec<Vec<u8>> = records("avro-registry.b64")[..5].to_vec();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let decoder = json!({"type": "schema_registry",
        "url": format!("http://druid:s3cret@127.0.0.1:{port}"),
        "config": {"basic.auth.credentials.source": "URL"}});
    let (s, base) = run_flights("registry-down", &avro, avro_format(decoder), 100);
    let error = s.error.expect("the task fails");
    assert!(
        error.contains("schema registry unreachable")
            && error.contains(&format!("http://127.0.0.1:{port}/"))
            && error.contains("shardId-000000000000, sequence number 1"),
        "{error}"
    );
    assert!(
        !error.contains("s3cret") && !error.contains("druid:"),
        "{error}"
    );
    assert_eq!(s.stats.unparseable, 0);
    assert!(published_segments(&base, "flights").is_empty());

    let registry = TestRegistry::start(Some(503));
    let proto: Vec<Vec<u8>> = records("protobuf-registry.b64")[..5].to_vec();
    let decoder = json!({"type": "schema_registry", "urls": [registry.url]});
    let (s, base) = run_flights("registry-503", &proto, protobuf_format(decoder), 100);
    let error = s.error.expect("the task fails");
    assert!(
        error.contains("schema registry unreachable")
            && error.contains(&registry.url)
            && error.contains("HTTP 503"),
        "{error}"
    );
    assert_eq!(registry.counts()["/schemas/ids/3"], 3, "three attempts");
    assert!(published_segments(&base, "flights").is_empty());

    // `sample` stops on it too, instead of showing it beside every record.
    let task = base.join("registry-503.json");
    let error = kinesis_peon::task::sample::sample(&task, &base.join("dump"), 3)
        .expect_err("sample fails")
        .to_string();
    assert!(error.contains("schema registry unreachable"), "{error}");

    // Credentials the registry refuses fail the task at once.
    let registry = TestRegistry::start(Some(401));
    let decoder = json!({"type": "schema_registry", "url": registry.url});
    let (s, _) = run_flights("registry-401", &avro, avro_format(decoder), 100);
    let error = s.error.expect("the task fails");
    assert!(
        error.contains("refused") && error.contains("HTTP 401"),
        "{error}"
    );
    assert_eq!(registry.counts()["/schemas/ids/1"], 1);
}
