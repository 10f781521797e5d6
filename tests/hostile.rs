//! Hostile segments and zips: what `dump-segment` and the merge's reader
//! do with crafted files (zip-slip names, overlapping-entry zip bombs,
//! entries longer or shorter than their headers say, sizes no DEFLATE
//! stream reaches, smoosh offsets and chunk counts past the files). Each
//! must fail with an error naming what is wrong, never panic, and never
//! allocate from a size it was only told.

use kinesis_peon::segment::cursor::DiskSegment;
use kinesis_peon::segment::writer::{SegmentFileSet, SegmentZipper, build_segment};
use kinesis_peon::segment::*;
use kinesis_peon::spec::{Compression, LongEncoding, ResolvedIndexSpec};
use std::path::Path;
use std::process::Command;

/// A small valid segment whose 00000.smoosh is large enough to be deflated.
fn segment() -> SegmentFileSet {
    let n = 3000usize;
    let dictionary: Vec<Option<String>> = (0..50).map(|i| Some(format!("value-{i:03}"))).collect();
    let data = SegmentData {
        interval: (0, 86_400_000),
        times: (0..n as i64).map(|i| i * 1000).collect(),
        dimensions: vec![StringColumn::single(
            "d",
            dictionary,
            (0..n).map(|i| ((i * 7) % 50) as u32).collect(),
        )],
        numeric_dimensions: Vec::new(),
        metrics: vec![MetricColumn {
            name: "m".into(),
            values: NumericValues::Long((0..n as i64).map(|i| i * 7919 % 100_003).collect()),
            nulls: Default::default(),
        }],
        metadata: None,
    };
    let spec = ResolvedIndexSpec {
        dimension_compression: Compression::Lz4,
        metric_compression: Compression::Lz4,
        long_encoding: LongEncoding::Longs,
        run_compression: false,
    };
    build_segment(&data, &spec).unwrap()
}

fn zipped() -> Vec<u8> {
    SegmentZipper::default().zip(&segment()).unwrap().0
}

/// `dump-segment P` must fail, saying `expected`, without a panic.
fn dump_segment_refuses(path: &Path, expected: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_kinesis-peon"))
        .args(["dump-segment", path.to_str().unwrap(), "--rows"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{} was read: {stderr}",
        path.display()
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(expected),
        "expected {expected:?} in: {stderr}"
    );
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Offsets of the central directory records, and of the end record.
fn central_records(zip: &[u8]) -> (Vec<usize>, usize) {
    let end = zip.len() - 22;
    assert_eq!(u32_at(zip, end), 0x0605_4b50);
    let mut at = u32_at(zip, end + 16) as usize;
    let mut records = Vec::new();
    while u32_at(zip, at) == 0x0201_4b50 {
        records.push(at);
        at += 46 + u16_at(zip, at + 28) + u16_at(zip, at + 30) + u16_at(zip, at + 32);
    }
    (records, end)
}

fn central_name(zip: &[u8], at: usize) -> String {
    String::from_utf8(zip[at + 46..at + 46 + u16_at(zip, at + 28)].to_vec()).unwrap()
}

/// Set an entry's uncompressed size in its central and local headers.
fn set_size(zip: &mut [u8], name: &str, size: u32) {
    let (records, _) = central_records(zip);
    let at = *records
        .iter()
        .find(|&&at| central_name(zip, at) == name)
        .unwrap();
    zip[at + 24..at + 28].copy_from_slice(&size.to_le_bytes());
    let local = u32_at(zip, at + 42) as usize;
    zip[local + 22..local + 26].copy_from_slice(&size.to_le_bytes());
}

#[test]
fn zip_slip_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for evil in [
        "../../evil/meta.smoosh",
        "/abs/meta.smoosh",
        "a\\..\\meta.smoosh",
    ] {
        let path = dir.path().join("index.zip");
        let mut w = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for (name, bytes) in segment() {
            let name = if name == "meta.smoosh" {
                evil.to_string()
            } else {
                name
            };
            w.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            std::io::Write::write_all(&mut w, &bytes).unwrap();
        }
        w.finish().unwrap();
        dump_segment_refuses(&path, "names a path outside the segment");
    }
    assert!(!dir.path().join("evil").exists());
}

/// The overlapping-entry zip bomb: many central records pointing at one
/// entry's bytes, each of which a naive reader inflates again.
#[test]
fn overlapping_entries_are_refused() {
    let zip = zipped();
    let (records, end) = central_records(&zip);
    let smoosh = *records
        .iter()
        .find(|&&at| central_name(&zip, at) == "00000.smoosh")
        .unwrap();
    let record_len = 46 + u16_at(&zip, smoosh + 28);
    let central_at = records[0];
    let mut central = zip[central_at..end].to_vec();
    let copies = 200u16;
    for k in 0..copies {
        let mut copy = zip[smoosh..smoosh + record_len].to_vec();
        let name = format!("c{k:03}/00000.smoosh");
        copy[28..30].copy_from_slice(&(name.len() as u16).to_le_bytes());
        copy.truncate(46);
        copy.extend_from_slice(name.as_bytes());
        central.extend_from_slice(&copy);
    }
    let mut bomb = zip[..central_at].to_vec();
    bomb.extend_from_slice(&central);
    let mut eocd = zip[end..].to_vec();
    let entries = records.len() as u16 + copies;
    eocd[8..10].copy_from_slice(&entries.to_le_bytes());
    eocd[10..12].copy_from_slice(&entries.to_le_bytes());
    eocd[12..16].copy_from_slice(&(central.len() as u32).to_le_bytes());
    bomb.extend_from_slice(&eocd);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.zip");
    std::fs::write(&path, bomb).unwrap();
    dump_segment_refuses(&path, "overlap (a zip bomb?)");
}

#[test]
fn entries_unlike_their_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.zip");
    let zip = zipped();
    let (records, _) = central_records(&zip);
    let smoosh = *records
        .iter()
        .find(|&&at| central_name(&zip, at) == "00000.smoosh")
        .unwrap();
    assert_eq!(u16_at(&zip, smoosh + 10), 8, "00000.smoosh is deflated");
    let size = u32_at(&zip, smoosh + 24);

    // Longer than its header says.
    let mut longer = zip.clone();
    set_size(&mut longer, "00000.smoosh", size - 100);
    std::fs::write(&path, &longer).unwrap();
    // The zip crate stops there itself; our own check (one byte past the
    // header's size) is the second line of defence.
    dump_segment_refuses(
        &path,
        "inflating zip entry 00000.smoosh: File is larger than its declared uncompressed size",
    );

    // Shorter than its header says.
    let mut shorter = zip.clone();
    set_size(&mut shorter, "00000.smoosh", size + 100);
    std::fs::write(&path, &shorter).unwrap();
    dump_segment_refuses(&path, "00000.smoosh");

    // A size no DEFLATE stream of these bytes can reach: refused before
    // anything is allocated for it.
    let mut bomb = zip.clone();
    set_size(&mut bomb, "00000.smoosh", 0x7FFF_0000);
    std::fs::write(&path, &bomb).unwrap();
    dump_segment_refuses(&path, "(a zip bomb?)");

    // The untouched archive reads.
    std::fs::write(&path, &zip).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kinesis-peon"))
        .args(["dump-segment", path.to_str().unwrap(), "--rows"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3000);
}

fn write_dir(dir: &Path, files: &SegmentFileSet) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// meta.smoosh lines edited: offsets past the chunk, a chunk that is not
/// there, a chunk count far past the files. dump-segment's reader and the
/// merge's (DiskSegment) both refuse them.
#[test]
fn smoosh_offsets_and_chunks_past_the_files_are_refused() {
    let files = segment();
    let meta = String::from_utf8(
        files
            .iter()
            .find(|f| f.0 == "meta.smoosh")
            .unwrap()
            .1
            .clone(),
    )
    .unwrap();
    let chunk_len = files
        .iter()
        .find(|f| f.0 == "00000.smoosh")
        .unwrap()
        .1
        .len();
    let edit_m = |line: &str| -> String {
        meta.lines()
            .map(|l| {
                if l.starts_with("m,") {
                    line.to_string()
                } else {
                    l.to_string()
                }
            })
            .map(|l| l + "\n")
            .collect()
    };
    let cases = [
        (
            edit_m(&format!("m,0,0,{}", chunk_len + 100)),
            "outside its chunk",
            "lies outside the smoosh chunks",
        ),
        (
            edit_m(&format!("m,0,{},{}", usize::MAX - 1, usize::MAX)),
            "outside its chunk",
            "lies outside the smoosh chunks",
        ),
        (
            edit_m("m,1,0,10"),
            "names chunk 1 of 1",
            "lies outside the smoosh chunks",
        ),
        (
            meta.replacen(",1\n", ",4000000000\n", 1),
            "the segment has no 00001.smoosh",
            "00001.smoosh (chunk 1 of 4000000000)",
        ),
    ];
    let root = tempfile::tempdir().unwrap();
    for (i, (meta, dump_error, merge_error)) in cases.iter().enumerate() {
        let dir = root.path().join(i.to_string());
        let mut files = files.clone();
        for f in &mut files {
            if f.0 == "meta.smoosh" {
                f.1 = meta.clone().into_bytes();
            }
        }
        if i == 3 {
            // Entries that name chunk 1, which is absent.
            for f in &mut files {
                if f.0 == "meta.smoosh" {
                    f.1 = meta.replace("\nm,0,", "\nm,1,").into_bytes();
                }
            }
        }
        write_dir(&dir, &files);
        dump_segment_refuses(&dir, dump_error);
        let err = format!(
            "{:#}",
            DiskSegment::open(&dir).err().expect("merge read it")
        );
        assert!(err.contains(merge_error), "case {i}: {err}");
    }
    // The unedited segment reads both ways.
    let dir = root.path().join("ok");
    write_dir(&dir, &files);
    assert!(DiskSegment::open(&dir).is_ok());
    assert_eq!(
        kinesis_peon::segment::reader::read_segment(&dir)
            .unwrap()
            .1
            .num_rows(),
        3000
    );
}
