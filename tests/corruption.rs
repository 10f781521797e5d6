//! Corruption suite: a real flights segment, truncated at every byte of
//! every file and with every byte flipped, under two index specs. Every
//! truncation is an error; no damaged byte panics the reader; a flip is
//! either an error or, where the format has no redundancy (compressed
//! literals and raw values carry no checksum in Druid's format), a change in
//! the values read; never silently ignored.

mod common;

use common::*;
use kinesis_peon::segment::SegmentData;
use kinesis_peon::segment::reader::{SegmentFiles, read_segment, read_segment_files};
use kinesis_peon::segment::writer::build_segment;
use kinesis_peon::spec::{Compression, LongEncoding, ResolvedIndexSpec};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

fn flights_segment() -> SegmentData {
    let base = fresh_dir("corruption");
    let dump = flights_dump("flights2-small", 2, Some(5_000));
    let task = flights_task(&base, "corrupt", 2, "corrupt", &[]);
    assert_eq!(run_task(&task, &dump, &base).error, None);
    let store = kinesis_peon::publish::MetadataStore::open(
        &kinesis_peon::task::layout_for(&base).metadata_db(),
    )
    .unwrap();
    let seg = store.used_segments("flights").unwrap().remove(0);
    let (_, data) = read_segment(std::path::Path::new(
        seg.load_spec["path"].as_str().unwrap(),
    ))
    .unwrap();
    assert!(data.num_rows() > 100);
    data
}

/// Which smoosh entry a byte of 00000.smoosh belongs to, for messages.
fn entry_at(files: &BTreeMap<String, Vec<u8>>, file: &str, offset: usize) -> String {
    if file != "00000.smoosh" {
        return file.to_string();
    }
    let meta = String::from_utf8_lossy(&files["meta.smoosh"]).into_owned();
    for line in meta.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (start, end): (usize, usize) = (f[2].parse().unwrap(), f[3].parse().unwrap());
        if (start..end).contains(&offset) {
            return format!("{} +{}", f[0], offset - start);
        }
    }
    "outside every entry".into()
}

enum Outcome {
    Error,
    Changed,
    Unchanged,
}

fn read(files: &BTreeMap<String, Vec<u8>>, original: &SegmentData, at: &str) -> Outcome {
    let files = SegmentFiles::from_files(files.clone());
    match catch_unwind(AssertUnwindSafe(|| read_segment_files(&files))) {
        Err(_) => panic!("reader panicked on {at}"),
        Ok(Err(_)) => Outcome::Error,
        Ok(Ok((_, data))) if data == *original => Outcome::Unchanged,
        Ok(Ok(_)) => Outcome::Changed,
    }
}

#[test]
fn every_truncation_errors_and_no_flip_panics_or_goes_unnoticed() {
    let data = flights_segment();
    let specs = [
        ResolvedIndexSpec::default(),
        ResolvedIndexSpec {
            dimension_compression: Compression::Uncompressed,
            metric_compression: Compression::None,
            long_encoding: LongEncoding::Auto,
            run_compression: false,
        },
    ];
    for spec in specs {
        let files: BTreeMap<String, Vec<u8>> =
            build_segment(&data, &spec).unwrap().into_iter().collect();
        assert!(matches!(
            read(&files, &data, "the intact segment"),
            Outcome::Unchanged
        ));
        let (mut errors, mut changed) = (0, 0);
        let mut unnoticed = Vec::new();
        for (name, bytes) in &files {
            for cut in 0..bytes.len() {
                let mut damaged = files.clone();
                damaged.get_mut(name).unwrap().truncate(cut);
                let at = format!("{name} cut at {cut} ({spec:?})");
                assert!(
                    matches!(read(&damaged, &data, &at), Outcome::Error),
                    "no error for {at}"
                );
            }
            for offset in 0..bytes.len() {
                let mut damaged = files.clone();
                damaged.get_mut(name).unwrap()[offset] ^= 0xFF;
                let at = format!(
                    "{name} byte {offset} flipped ({}; {spec:?})",
                    entry_at(&files, name, offset)
                );
                match read(&damaged, &data, &at) {
                    Outcome::Error => errors += 1,
                    Outcome::Changed => changed += 1,
                    Outcome::Unchanged => unnoticed.push(at),
                }
            }
        }
        println!(
            "{spec:?}: {errors} flips are errors, {changed} change values only, {} decode to the same values",
            unnoticed.len()
        );
        assert!(errors > changed, "{errors} errors, {changed} value changes");
        if spec.dimension_compression == Compression::Uncompressed {
            assert!(unnoticed.is_empty(), "flips with no effect: {unnoticed:#?}");
        } else {
            // LZ4 can say the same bytes two ways: a match offset moved to
            // an equal run of bytes decodes to the same block. Those are the
            // only flips allowed to change nothing: a few, all in the
            // compressed column data of the smoosh.
            assert!(unnoticed.len() * 100 < errors + changed, "{unnoticed:#?}");
            assert!(unnoticed.iter().all(|at| at.starts_with("00000.smoosh")));
        }
    }
}
