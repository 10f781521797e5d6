//! The task files of ../shared/fixtures/tasks, as a MiddleManager would
//! hand them over, run on dumps made from ../shared/data. Only the stream
//! positions are rewritten (the fixtures' sequence numbers are synthetic);
//! every schema, format and tuning setting is the fixture's own. Published
//! totals are checked against a naive reading of the same rows.

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const ROWS: usize = 20_000;

/// Every published row, as dump-segment --rows shows it.
fn published_rows(base: &Path, data_source: &str) -> Vec<Map<String, Value>> {
    published_segments(base, data_source)
        .iter()
        .flat_map(|(_, seg)| (0..seg.num_rows()).map(move |r| seg.row_json(r, |_| true)))
        .collect()
}

fn sum_long(rows: &[Map<String, Value>], column: &str) -> i64 {
    rows.iter().filter_map(|r| r[column].as_i64()).sum()
}

fn run_fixture(fixture: &str, flavour: &str) -> (PathBuf, kinesis_peon::task::RunSummary) {
    let dump = flights_dump_of(
        flavour,
        &format!("fixture-{flavour}-20k"),
        2,
        Some(ROWS as u64),
    );
    let base = fresh_dir(fixture);
    let task = adapt_fixture(fixture, &dump, &base);
    let summary = run_task(&task, &dump, &base);
    assert_eq!(summary.error, None, "{fixture}");
    (base, summary)
}

fn hour(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap()
        .timestamp_millis()
        / 3_600_000
        * 3_600_000
}

/// 01: the seeds' schemaless metrics spec on flights rows: every column but
/// the excluded ones becomes a dimension; `value` is absent, so its
/// double aggregators are null; no two rows share all their columns.
#[test]
fn fixture_01_schemaless_json_rollup() {
    let (base, s) = run_fixture("01-json-rollup-metrics.json", "ndjson");
    assert_eq!(s.stats.processed, ROWS as u64);
    let rows = published_rows(&base, "metrics-kinesis");
    let naive: std::collections::BTreeSet<String> = flights_rows(ROWS)
        .iter()
        .map(|r| {
            let mut m = r.as_object().unwrap().clone();
            m.retain(|_, v| !v.is_null());
            serde_json::to_string(&m).unwrap()
        })
        .collect();
    assert_eq!(rows.len(), naive.len());
    assert_eq!(sum_long(&rows, "count"), ROWS as i64);
    assert!(
        rows.iter()
            .all(|r| r["value_sum"].is_null() && r["value_max"].is_null())
    );
    // Discovered in first-seen order, timestamp excluded.
    let first = &rows[0];
    assert!(first.contains_key("carrier") && first.contains_key("time_hour"));
    assert!(!first.contains_key("timestamp"));
}

/// 04: flattenSpec (root/path/jq), three expression transforms, an
/// and/not/in/bound filter over flattened names, message-time bounds.
#[test]
fn fixture_04_flatten_transform_filter() {
    let (base, s) = run_fixture("04-json-flatten-transform.json", "ndjson");
    type Key = (i64, String, String, String, String, String, String);
    let mut naive: BTreeMap<Key, (i64, i64, i64, f64, Option<i64>)> = BTreeMap::new();
    let mut kept = 0;
    for r in flights_rows(ROWS) {
        let (carrier, origin, dest) = (
            r["carrier"].as_str().unwrap(),
            r["origin"].as_str().unwrap(),
            r["dest"].as_str().unwrap(),
        );
        let distance = r["distance"].as_i64().unwrap();
        if carrier == "HA" || !["EWR", "JFK", "LGA"].contains(&origin) || distance < 100 {
            continue;
        }
        kept += 1;
        let arr = r["arr_delay"].as_i64();
        let class = match arr {
            Some(a) if a > 60 => "severe",
            Some(a) if a > 15 => "late",
            _ => "on_time",
        };
        let haul = if distance >= 1500 { "long" } else { "short" };
        let key = (
            hour(r["timestamp"].as_str().unwrap()),
            carrier.to_string(),
            origin.to_string(),
            dest.to_string(),
            format!("{origin}-{dest}"),
            class.to_string(),
            haul.to_string(),
        );
        let e = naive.entry(key).or_insert((0, 0, 0, 0.0, None));
        e.0 += 1;
        e.1 += r["dep_delay"].as_i64().unwrap_or(0);
        e.2 += arr.unwrap_or(0);
        e.3 += distance as f64;
        e.4 = match (e.4, arr) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    assert_eq!(s.stats.processed, kept);
    assert_eq!(s.stats.thrown_away, ROWS as u64 - kept);
    let mut published: BTreeMap<Key, (i64, i64, i64, f64, Option<i64>)> = BTreeMap::new();
    for r in published_rows(&base, "flights_routes") {
        let text = |c: &str| r[c].as_str().unwrap().to_string();
        let key = (
            kinesis_peon::spec::time::parse_iso(r["__time"].as_str().unwrap()).unwrap(),
            text("airline"),
            text("origin_airport"),
            text("dest_airport"),
            text("route"),
            text("delay_class"),
            text("haul"),
        );
        let value = (
            r["count"].as_i64().unwrap(),
            r["dep_delay_sum"].as_i64().unwrap_or(0),
            r["arr_delay_sum"].as_i64().unwrap_or(0),
            r["miles"].as_f64().unwrap(),
            r["max_arr_delay"].as_i64(),
        );
        assert!(published.insert(key, value).is_none(), "one row per group");
    }
    assert_eq!(published, naive);
    let classes: std::collections::BTreeSet<_> = published.keys().map(|k| k.5.clone()).collect();
    assert_eq!(
        classes.into_iter().collect::<Vec<_>>(),
        ["late", "on_time", "severe"]
    );
}

fn csv_number(v: &Value) -> Option<i64> {
    v.as_i64()
}

/// 02: CSV with an explicit column list; sums, a max and a hyperUnique of
/// flight numbers: the published collectors fold into the collector of all
/// flight numbers, whose estimate is within 5% of the exact distinct count
/// (HLL with 2,048 registers has a 2.3% standard error).
#[test]
fn fixture_02_csv_with_hyper_unique() {
    use kinesis_peon::java::hll::Hll;
    use kinesis_peon::segment::NumericValues;
    let (base, s) = run_fixture("02-csv-flights.json", "csv");
    assert_eq!(s.stats.processed, ROWS as u64);
    let naive = flights_rows(ROWS);
    let rows = published_rows(&base, "flights_csv");
    assert_eq!(sum_long(&rows, "count"), ROWS as i64);
    let sum = |c: &str| naive.iter().filter_map(|r| csv_number(&r[c])).sum::<i64>();
    assert_eq!(sum_long(&rows, "dep_delay_sum"), sum("dep_delay"));
    assert_eq!(sum_long(&rows, "arr_delay_sum"), sum("arr_delay"));
    assert_eq!(
        rows.iter()
            .filter_map(|r| r["arr_delay_max"].as_i64())
            .max(),
        naive.iter().filter_map(|r| r["arr_delay"].as_i64()).max()
    );
    let distance: f64 = rows
        .iter()
        .map(|r| r["distance_sum"].as_f64().unwrap())
        .sum();
    let naive_distance: f64 = naive.iter().map(|r| r["distance"].as_f64().unwrap()).sum();
    assert!((distance - naive_distance).abs() < 1e-6);

    let mut all = Hll::default();
    for (_, seg) in published_segments(&base, "flights_csv") {
        let m = seg
            .metrics
            .iter()
            .find(|m| m.name == "flights_unique")
            .unwrap();
        let NumericValues::Complex(_, cells) = &m.values else {
            panic!("flights_unique is not complex");
        };
        for c in cells {
            all.fold(&Hll::from_bytes(c).unwrap());
        }
    }
    // A collector is a deterministic function of the values added, and
    // folding is a union: the published ones fold into exactly the
    // collector of every flight number read naively.
    let mut direct = Hll::default();
    for r in &naive {
        direct.add_str(r["flight"].as_str().unwrap());
    }
    assert_eq!(all.to_bytes(), direct.to_bytes());
    let distinct: std::collections::HashSet<&str> = naive
        .iter()
        .map(|r| r["flight"].as_str().unwrap())
        .collect();
    let err = (all.estimate() - distinct.len() as f64).abs() / distinct.len() as f64;
    assert!(
        err < 0.05,
        "estimate {} for {} flights",
        all.estimate(),
        distinct.len()
    );
}

/// 03: TSV with long/double/float dimensions, two checkpointed sequences
/// in the fixture (rewritten to one here), low thresholds, and a longLast
/// of dep_time: per group the value at the latest event time.
#[test]
fn fixture_03_tsv_typed_dimensions_and_long_last() {
    let (base, s) = run_fixture("03-tsv-typed-dimensions.json", "tsv");
    assert_eq!(s.stats.processed, ROWS as u64);
    type Key = (i64, String, String, String, i64, i64, String, String);
    let key_of = |time: i64, r: &Map<String, Value>| -> Key {
        let num = |c: &str| r.get(c).map(|v| v.to_string()).unwrap_or("null".into());
        (
            time,
            r["carrier"].as_str().unwrap().to_string(),
            r["origin"].as_str().unwrap().to_string(),
            r["dest"].as_str().unwrap().to_string(),
            r["flight"]
                .as_str()
                .map_or_else(|| r["flight"].as_i64().unwrap(), |f| f.parse().unwrap()),
            r["hour"].as_i64().unwrap(),
            num("distance").replace(".0", ""),
            num("air_time").replace(".0", ""),
        )
    };
    // Naive: per group, count and the candidates for last (latest time).
    let mut naive: BTreeMap<Key, (i64, i64, Vec<Option<i64>>)> = BTreeMap::new();
    for r in flights_rows(ROWS) {
        let t = kinesis_peon::spec::time::parse_iso(r["timestamp"].as_str().unwrap()).unwrap();
        let mut obj = r.as_object().unwrap().clone();
        obj.retain(|_, v| !v.is_null());
        let e = naive
            .entry(key_of(t / 3_600_000 * 3_600_000, &obj))
            .or_insert((0, i64::MIN, vec![]));
        e.0 += 1;
        let value = r["dep_time"].as_i64();
        if t > e.1 {
            e.1 = t;
            e.2 = vec![value];
        } else if t == e.1 {
            e.2.push(value);
        }
    }
    let rows = published_rows(&base, "flights_tsv");
    assert_eq!(rows.len(), naive.len());
    for r in &rows {
        let t = kinesis_peon::spec::time::parse_iso(r["__time"].as_str().unwrap()).unwrap();
        let key = key_of(t, r);
        let (count, last_time, candidates) = naive.get(&key).unwrap_or_else(|| panic!("{key:?}"));
        assert_eq!(r["count"].as_i64().unwrap(), *count);
        let pair = &r["last_dep_time"];
        assert_eq!(pair["lhs"].as_i64().unwrap(), *last_time);
        assert!(
            candidates.contains(&pair["rhs"].as_i64()),
            "{key:?}: {pair}"
        );
    }
}

/// Intermediate persists do not change complex columns: fixtures 02 and 03
/// with 1,500-row persists publish the same segment files as without.
#[test]
fn complex_metrics_survive_persists_byte_for_byte() {
    for (fixture, flavour, ds) in [
        ("02-csv-flights.json", "csv", "flights_csv"),
        ("03-tsv-typed-dimensions.json", "tsv", "flights_tsv"),
    ] {
        let dump = flights_dump_of(
            flavour,
            &format!("fixture-{flavour}-20k"),
            2,
            Some(ROWS as u64),
        );
        let whole = fresh_dir(&format!("whole-{flavour}"));
        let task = adapt_fixture(fixture, &dump, &whole);
        assert_eq!(run_task(&task, &dump, &whole).error, None);
        let spilled = fresh_dir(&format!("spilled-{flavour}"));
        let task = adapt_fixture(fixture, &dump, &spilled);
        edit_task(&task, |t| {
            t["tuningConfig"]["maxRowsInMemory"] = 1_500.into()
        });
        let s = run_task(&task, &dump, &spilled);
        assert_eq!(s.error, None);
        assert!(s.persists >= 10, "{fixture}: {} persists", s.persists);
        assert_eq!(
            pushed_by_interval(&whole, ds),
            pushed_by_interval(&spilled, ds),
            "{fixture}"
        );
    }
}

/// cardinality over two fields, a filtered longSum, a count filtered by an
/// expression, an expression-fed doubleSum and longFirst, against naive sums.
#[test]
fn cardinality_filtered_and_expression_aggregators() {
    use kinesis_peon::java::hll::Hll;
    use kinesis_peon::java::murmur3_128_chars;
    use kinesis_peon::segment::NumericValues;
    let rows_n = 5_000usize;
    let dump = flights_dump("flights2-5k-aggs", 2, Some(rows_n as u64));
    let base = fresh_dir("aggs");
    let task = flights_task(&base, "aggs", 2, "aggs", &[]);
    edit_task(&task, |t| {
        t["dataSchema"]["dimensionsSpec"]["dimensions"] = json!(["origin"]);
        t["dataSchema"]["granularitySpec"]["queryGranularity"] = "DAY".into();
        t["dataSchema"]["metricsSpec"] = json!([
            {"type": "count", "name": "count"},
            {"type": "cardinality", "name": "routes", "fields": ["carrier", {"type": "default", "dimension": "dest"}], "byRow": false},
            {"type": "filtered", "filter": {"type": "selector", "dimension": "carrier", "value": "UA"},
             "aggregator": {"type": "longSum", "name": "ua_delay", "fieldName": "dep_delay"}},
            {"type": "filtered", "name": "late", "filter": {"type": "expression", "expression": "arr_delay > 15"},
             "aggregator": {"type": "count", "name": "ignored"}},
            {"type": "doubleSum", "name": "km", "expression": "distance * 1.609344"},
            {"type": "longFirst", "name": "first_dep", "fieldName": "dep_time"}
        ]);
    });
    let s = run_task(&task, &dump, &base);
    assert_eq!(s.error, None);
    let naive = flights_rows(rows_n);
    let segments = published_segments(&base, "flights");
    let rows = published_rows(&base, "flights");
    assert_eq!(sum_long(&rows, "count"), rows_n as i64);
    let ua: i64 = naive
        .iter()
        .filter(|r| r["carrier"] == "UA")
        .filter_map(|r| r["dep_delay"].as_i64())
        .sum();
    assert_eq!(sum_long(&rows, "ua_delay"), ua);
    let late = naive
        .iter()
        .filter(|r| r["arr_delay"].as_i64().is_some_and(|a| a > 15))
        .count();
    assert_eq!(sum_long(&rows, "late"), late as i64);
    let km: f64 = rows.iter().map(|r| r["km"].as_f64().unwrap()).sum();
    let naive_km: f64 = naive
        .iter()
        .map(|r| r["distance"].as_f64().unwrap() * 1.609344)
        .sum();
    assert!((km - naive_km).abs() < 1e-3, "{km} {naive_km}");
    // cardinality (byRow false) hashes each field's value as UTF-16.
    let mut direct = Hll::default();
    for r in &naive {
        for f in ["carrier", "dest"] {
            direct.add_hash(&murmur3_128_chars(r[f].as_str().unwrap()));
        }
    }
    let mut all = Hll::default();
    for (_, seg) in &segments {
        let m = seg.metrics.iter().find(|m| m.name == "routes").unwrap();
        let NumericValues::Complex(_, cells) = &m.values else {
            panic!()
        };
        cells
            .iter()
            .for_each(|c| all.fold(&Hll::from_bytes(c).unwrap()));
    }
    assert_eq!(all.to_bytes(), direct.to_bytes());
    // longFirst: the earliest departure time's value per (day, origin).
    for r in &rows {
        let day = &r["__time"].as_str().unwrap()[..10];
        let origin = r["origin"].as_str().unwrap();
        let group: Vec<&Value> = naive
            .iter()
            .filter(|n| &n["timestamp"].as_str().unwrap()[..10] == day && n["origin"] == origin)
            .collect();
        let earliest = group
            .iter()
            .map(|n| n["timestamp"].as_str().unwrap())
            .min()
            .unwrap();
        let candidates: Vec<Option<i64>> = group
            .iter()
            .filter(|n| n["timestamp"] == earliest)
            .map(|n| n["dep_time"].as_i64())
            .collect();
        assert!(
            candidates.contains(&r["first_dep"]["rhs"].as_i64()),
            "{r:?}"
        );
    }
    // The metadata keeps Druid's combining forms.
    let meta = segments[0].1.metadata.clone().unwrap();
    let aggs = meta["aggregators"].as_array().unwrap();
    assert_eq!(
        aggs[1],
        json!({"type": "hyperUnique", "name": "routes", "fieldName": "routes", "isInputHyperUnique": false, "round": false})
    );
    assert_eq!(aggs[2]["type"], "longSum");
    assert_eq!(aggs[2]["name"], "ua_delay");
    assert_eq!(
        aggs[5],
        json!({"type": "longFirst", "name": "first_dep", "fieldName": "first_dep", "timeColumn": "__time"})
    );
}

/// 05: a KPL-aggregated stream (`deaggregate: true`) with explicit
/// inclusive end sequence numbers. The aggregates are made by the KPL
/// format's own library (PyPI aws-kinesis-agg, installed by scripts/test),
/// 25 user records each; one has its MD5 digest damaged and counts as one
/// unparseable record naming its shard and sequence number, its 25 rows
/// lost, every other row indexed.
#[test]
fn fixture_05_kpl_deaggregation_with_explicit_ends() {
    use base64::Engine;
    let plain = flights_dump_of("ndjson", "fixture-ndjson-20k", 2, Some(ROWS as u64));
    let packed = kpl_dump(
        &plain,
        "fixture-kpl-20k",
        &["--corrupt-md5", "shardId-000000000001:3"],
    );

    let base = fresh_dir("fixture-05");
    let task = adapt_fixture("05-deaggregate-explicit-end.json", &packed, &base);
    let s = run_task(&task, &packed, &base);
    assert_eq!(s.error, None);
    assert_eq!(s.stats.unparseable, 1);
    assert_eq!(s.stats.processed, ROWS as u64 - 25);
    let report = std::fs::read_to_string(
        kinesis_peon::task::layout_for(&base)
            .task_dir("index_kinesis_flights_kpl_replay_20130101")
            .join("report.json"),
    )
    .unwrap();
    let bad_seq = {
        let text = std::fs::read_to_string(packed.join("shardId-000000000001.jsonl")).unwrap();
        let line: Value = serde_json::from_str(text.lines().nth(3).unwrap()).unwrap();
        line["SequenceNumber"].as_str().unwrap().to_string()
    };
    assert!(
        report.contains(&format!(
            "shard shardId-000000000001, sequence number {bad_seq}: KPL aggregated record: MD5 digest does not match"
        )),
        "{report}"
    );

    // The sampler shows user records one by one, each under its Kinesis
    // record's sequence number.
    let sample = kinesis_peon::task::sample::sample(&task, &packed, 30).unwrap();
    let entries = sample["data"].as_array().unwrap();
    assert_eq!(entries.len(), 30);
    assert_eq!(entries[0]["sequenceNumber"], entries[24]["sequenceNumber"]);
    assert_ne!(entries[24]["sequenceNumber"], entries[25]["sequenceNumber"]);
    assert!(entries[0]["input"].as_str().unwrap().starts_with('{'));
    assert!(entries[0]["parsed"].is_array());

    // Naive: the plain dump's rows, less the 25 packed into the bad record.
    let (mut count, mut dep, mut arr) = (0i64, 0i64, 0i64);
    for shard in ["shardId-000000000000", "shardId-000000000001"] {
        let text = std::fs::read_to_string(plain.join(format!("{shard}.jsonl"))).unwrap();
        for (i, line) in text.lines().enumerate() {
            if shard.ends_with('1') && (75..100).contains(&i) {
                continue;
            }
            let rec: Value = serde_json::from_str(line).unwrap();
            let data = base64::engine::general_purpose::STANDARD
                .decode(rec["Data"].as_str().unwrap())
                .unwrap();
            let row: Value = serde_json::from_slice(&data).unwrap();
            count += 1;
            dep += row["dep_delay"].as_i64().unwrap_or(0);
            arr += row["arr_delay"].as_i64().unwrap_or(0);
        }
    }
    let rows = published_rows(&base, "flights_kpl");
    assert_eq!(sum_long(&rows, "count"), count);
    assert_eq!(sum_long(&rows, "dep_delay_sum"), dep);
    assert_eq!(sum_long(&rows, "arr_delay_sum"), arr);
}

/// Pieces spliced into records: bytes that are not UTF-8, quotes, escapes,
/// delimiters, line ends, numbers Java and Rust read differently, broken
/// structure and timestamps out of range.
const SPLICES: &[&[u8]] = &[
    b"",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xe2\x80\xa8",
    b"\"",
    b"\\",
    b"\n",
    b"\r\n",
    b",",
    b"\t",
    b"\x01",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e400",
    b"-0",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"{",
    b"}",
    b"[",
    b"]",
    b"null",
    b"true",
    b"\"\\ud800\"",
    b"\\u0000",
    b"[[[[[[[[",
    b"{\"a\":{\"a\":",
    b"2013-13-45T99:99:99Z",
    b"-292278994-08-17T07:12:55.807Z",
    b"99999999999999999999",
    b"1.7976931348623157e309",
    b" ",
];

/// JSON values put in place of a field's.
fn odd_json_value(pick: usize, depth: usize) -> Value {
    match pick % 16 {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(i64::MIN),
        3 => json!(u64::MAX),
        4 => json!(1e308),
        5 => json!(""),
        6 => json!("NaN"),
        7 => json!("Infinity"),
        8 => json!("9223372036854775808"),
        9 => json!([1, "a", null]),
        10 => json!({"a": {"b": [1]}}),
        11 => json!("2013-01-01"),
        12 => json!("a\u{1}b"),
        13 => json!("é".repeat(40)),
        14 => json!(-0.0),
        _ => (0..depth).fold(json!(1), |v, _| json!([v])),
    }
}

/// One mutated record made from the flights lines.
#[derive(Debug, Clone)]
enum Mutation {
    Keep,
    SetByte(prop::sample::Index, u8),
    Delete(prop::sample::Index, u8),
    Splice(prop::sample::Index, prop::sample::Index),
    Truncate(prop::sample::Index),
    /// A field's (json) or cell's (csv, tsv) value replaced.
    Field(prop::sample::Index, usize, usize),
    /// Several lines in one record.
    Join(Vec<prop::sample::Index>),
    /// The line repeated (up to ~1 MB records).
    Repeat(u16),
    Garbage(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<prop::sample::Index>;
    prop_oneof![
        2 => Just(Mutation::Keep),
        1 => (at(), any::<u8>()).prop_map(|(a, b)| Mutation::SetByte(a, b)),
        1 => (at(), 1..30u8).prop_map(|(a, n)| Mutation::Delete(a, n)),
        2 => (at(), at()).prop_map(|(a, p)| Mutation::Splice(a, p)),
        1 => at().prop_map(Mutation::Truncate),
        3 => (at(), 0..16usize, 1..3000usize).prop_map(|(a, v, d)| Mutation::Field(a, v, d)),
        1 => prop::collection::vec(at(), 1..5).prop_map(Mutation::Join),
        1 => (1..4000u16).prop_map(Mutation::Repeat),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Mutation::Garbage),
    ]
}

fn mutate(line: &str, lines: &[String], flavour: &str, m: &Mutation) -> Vec<u8> {
    let mut b = line.as_bytes().to_vec();
    match m {
        Mutation::Keep => {}
        Mutation::SetByte(at, byte) => {
            let i = at.index(b.len());
            b[i] = *byte;
        }
        Mutation::Delete(at, n) => {
            let i = at.index(b.len());
            b.drain(i..(i + usize::from(*n)).min(b.len()));
        }
        Mutation::Splice(at, piece) => {
            let i = at.index(b.len() + 1);
            b.splice(i..i, piece.get(SPLICES).iter().copied());
        }
        Mutation::Truncate(at) => b.truncate(at.index(b.len() + 1)),
        Mutation::Field(at, pick, depth) if flavour == "ndjson" => {
            let mut row: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
            let key = at.get(&row.keys().cloned().collect::<Vec<_>>()).clone();
            row.insert(key, odd_json_value(*pick, *depth));
            b = serde_json::to_vec(&row).unwrap();
        }
        Mutation::Field(at, pick, _) => {
            let delimiter = if flavour == "csv" { "," } else { "\t" };
            let mut cells: Vec<String> = line.split(delimiter).map(str::to_string).collect();
            let i = at.index(cells.len());
            let piece = SPLICES[pick % SPLICES.len()];
            cells[i] = String::from_utf8_lossy(piece).into_owned();
            b = cells.join(delimiter).into_bytes();
        }
        Mutation::Join(others) => {
            for o in others {
                b.push(b'\n');
                b.extend_from_slice(o.get(lines).as_bytes());
            }
        }
        Mutation::Repeat(n) => b = [line, "\n"].concat().repeat(usize::from(*n)).into_bytes(),
        Mutation::Garbage(g) => b = g.clone(),
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    /// Fixtures 01 to 04 over mutated flights records (bytes changed, cut
    /// and spliced, fields given odd values, lines joined and repeated,
    /// random bytes): no panic, the task succeeds with maxParseExceptions
    /// unbounded, every record lands in a counter, every error is saved
    /// naming the shard and a sequence number of the dump, and persisting
    /// every 23 rows (spills merged at the end) pushes the same bytes.
    #[test]
    fn mutated_records_never_panic_and_all_are_counted(
        picks in prop::collection::vec((any::<prop::sample::Index>(), mutation()), 150),
    ) {
        for (fixture, flavour, data_source) in [
            ("01-json-rollup-metrics.json", "ndjson", "metrics-kinesis"),
            ("02-csv-flights.json", "csv", "flights_csv"),
            ("03-tsv-typed-dimensions.json", "tsv", "flights_tsv"),
            ("04-json-flatten-transform.json", "ndjson", "flights_routes"),
        ] {
            let lines = flights_lines(flavour, 500);
            let body = if flavour == "ndjson" { &lines[..] } else { &lines[1..] };
            let records: Vec<Vec<u8>> = picks
                .iter()
                .map(|(row, m)| mutate(row.get::<String>(body), body, flavour, m))
                .collect();
            let mut pushed = Vec::new();
            for max_rows_in_memory in [None, Some(23)] {
                let base = fresh_dir(&format!("mutated-{}-{max_rows_in_memory:?}", &fixture[..2]));
                let dump = base.join("dump");
                const FIRST: u64 = 1_000;
                write_one_shard_dump(&dump, &records, FIRST);
                let task = adapt_fixture(fixture, &dump, &base);
                edit_task(&task, |t| {
                    t["tuningConfig"]["maxParseExceptions"] = i32::MAX.into();
                    t["tuningConfig"]["maxSavedParseExceptions"] = 100_000.into();
                    if let Some(rows) = max_rows_in_memory {
                        t["tuningConfig"]["maxRowsInMemory"] = rows.into();
                    }
                });
                let s = run_task(&task, &dump, &base);
                prop_assert_eq!(s.error, None, "{}", fixture);
                let st = s.stats;
                let n = records.len() as u64;
                prop_assert!(st.unparseable <= n, "{}: {:?}", fixture, st);
                prop_assert!(
                    st.processed + st.processed_with_error + st.thrown_away + st.unparseable >= n,
                    "{}: every record counted: {:?}", fixture, st
                );
                prop_assert_eq!(
                    s.saved_errors.len() as u64,
                    st.processed_with_error + st.unparseable,
                    "{}", fixture
                );
                for e in &s.saved_errors {
                    let seq: u64 = e
                        .split("shardId-000000000000, sequence number ")
                        .nth(1)
                        .and_then(|rest| rest.split(':').next())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| panic!("{fixture}: no shard and sequence number in {e}"));
                    prop_assert!((FIRST..FIRST + n).contains(&seq), "{}: {}", fixture, e);
                }
                if let Some(rows) = max_rows_in_memory {
                    let indexed = st.processed + st.processed_with_error;
                    prop_assert!(indexed <= rows || s.persists > 0, "{}: no persist", fixture);
                }
                pushed.push((
                    (st.processed, st.processed_with_error, st.thrown_away, st.unparseable),
                    pushed_by_interval(&base, data_source),
                ));
            }
            prop_assert_eq!(&pushed[0].0, &pushed[1].0, "{}: counters", fixture);
            prop_assert!(pushed[0].1 == pushed[1].1, "{}: spilled and merged, other bytes", fixture);
        }
    }
}
