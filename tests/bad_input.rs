//! The bad-input corpus (fixtures/bad-input): every record lands in the
//! counter Druid would use, every error is saved with its shard and
//! sequence number, the task fails exactly past maxParseExceptions, and
//! nothing panics.

mod common;

use base64::Engine;
use common::*;

struct Entry {
    name: String,
    expect: String,
    data: Vec<u8>,
}

fn corpus(file: &str) -> Vec<Entry> {
    let dir = common::repo().join("fixtures/bad-input");
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let data = if let Some(t) = v["text"].as_str() {
                t.as_bytes().to_vec()
            } else if let Some(b) = v["base64"].as_str() {
                base64::engine::general_purpose::STANDARD.decode(b).unwrap()
            } else {
                std::fs::read(dir.join(v["file"].as_str().unwrap())).unwrap()
            };
            Entry {
                name: v["name"].as_str().unwrap().to_string(),
                expect: v["expect"].as_str().unwrap().to_string(),
                data,
            }
        })
        .collect()
}

/// Sequence number of corpus entry `i` in the dump.
fn sequence(i: usize) -> u64 {
    100 + i as u64
}

#[test]
fn every_bad_json_record_lands_in_its_counter() {
    let entries = corpus("corpus.jsonl");
    assert!(entries.len() >= 30);
    check_corpus("bad-input-json", &entries, None);
}

/// Delimited rows: cells pair with columns as far as both go (Druid's
/// zipMapPartial), so wrong cell counts are not errors.
#[test]
fn every_bad_csv_record_lands_in_its_counter() {
    let entries = corpus("corpus-csv.jsonl");
    check_corpus(
        "bad-input-csv",
        &entries,
        Some(serde_json::json!({"type": "csv", "columns": FLIGHT_COLUMNS})),
    );
}

fn check_corpus(name: &str, entries: &[Entry], input_format: Option<serde_json::Value>) {
    let base = fresh_dir(name);
    let dump = base.join("dump");
    let records: Vec<&[u8]> = entries.iter().map(|e| e.data.as_slice()).collect();
    write_one_shard_dump(&dump, &records, sequence(0));

    let (mut processed, mut with_error, mut unparseable, mut thrown_away) = (0, 0, 0, 0);
    for e in entries {
        match e.expect.as_str() {
            "processedWithError" => with_error += 1,
            "unparseable" => unparseable += 1,
            "thrownAway" => thrown_away += 1,
            p => {
                processed += p
                    .strip_prefix("processed")
                    .and_then(|n| n.strip_prefix(':'))
                    .map_or(1, |n| n.parse::<u64>().unwrap())
            }
        }
    }
    let errors = with_error + unparseable;

    let task = flights_task(&base, name, 1, "bad", &[]);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&task).unwrap()).unwrap();
    if let Some(format) = input_format {
        v["ioConfig"]["inputFormat"] = format;
    }
    v["tuningConfig"]["maxParseExceptions"] = errors.into();
    v["tuningConfig"]["maxSavedParseExceptions"] = 1000.into();
    std::fs::write(&task, v.to_string()).unwrap();
    let s = run_task(&task, &dump, &base);
    assert_eq!(s.error, None);
    // One saved exception per bad record, naming its shard and sequence number.
    for (i, e) in entries.iter().enumerate() {
        let at = format!("shardId-000000000000, sequence number {}", sequence(i));
        let saved = s.saved_errors.iter().any(|m| m.contains(&at));
        let bad = e.expect == "unparseable" || e.expect == "processedWithError";
        assert_eq!(saved, bad, "{}: saved exception at {at}", e.name);
    }
    assert_eq!(
        (
            s.stats.processed,
            s.stats.processed_with_error,
            s.stats.unparseable,
            s.stats.thrown_away
        ),
        (processed, with_error, unparseable, thrown_away),
        "processed, processedWithError, unparseable, thrownAway"
    );
    assert_eq!(s.saved_errors.len() as u64, errors);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&s.report_file).unwrap()).unwrap();
    let text = report.to_string();
    let first_bad = entries
        .iter()
        .position(|e| e.expect == "unparseable" || e.expect == "processedWithError")
        .unwrap();
    assert!(text.contains(&format!("sequence number {}", sequence(first_bad))));

    // One error fewer allowed: the task fails, by name, publishing nothing.
    v["tuningConfig"]["maxParseExceptions"] = (errors - 1).into();
    v["dataSchema"]["dataSource"] = "bad2".into();
    std::fs::write(&task, v.to_string()).unwrap();
    let s = run_task(&task, &dump, &base);
    let error = s.error.expect("the task fails");
    assert!(
        error.contains(&format!("Max parse exceptions[{}] exceeded", errors - 1)),
        "{error}"
    );
    assert!(published_segments(&base, "bad2").is_empty());
}
