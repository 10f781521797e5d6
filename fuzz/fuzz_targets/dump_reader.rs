//! The readers of untrusted files, on arbitrary bytes: a segment's files
//! (an index.zip, or a directory's files given in memory) through
//! dump-segment's reader, and a shard dump (shards.json and a shard file)
//! through the replay's reader. Every input must give a value or an error,
//! never a panic, an abort or a huge allocation. The first byte picks the
//! reader; the rest is its bytes.
#![no_main]

use kinesis_peon::segment::reader::{SegmentFiles, read_segment, read_segment_files};
use kinesis_peon::source::Records;
use kinesis_peon::source::dump::{Dump, ShardReader};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// One scratch directory per fuzzing process, in memory where there is one.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = root.join(format!("kp-fuzz-dump-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// Split at the first `sep`: (before, after).
fn split(bytes: &[u8], sep: &[u8]) -> (Vec<u8>, Vec<u8>) {
    match bytes.windows(sep.len()).position(|w| w == sep) {
        Some(i) => (bytes[..i].to_vec(), bytes[i + sep.len()..].to_vec()),
        None => (bytes.to_vec(), Vec::new()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 3 {
        // An index.zip on disk.
        0 => {
            let path = scratch().join("index.zip");
            std::fs::write(&path, bytes).unwrap();
            let _ = read_segment(&path);
        }
        // A segment's files: meta.smoosh, then 00000.smoosh, then index.drd
        // bytes placed as a chunk, separated by "\0\0\0".
        1 => {
            let (meta, rest) = split(bytes, b"\0\0\0");
            let (chunk0, chunk1) = split(&rest, b"\0\0\0");
            let files: BTreeMap<String, Vec<u8>> = [
                ("version.bin".to_string(), vec![0, 0, 0, 9]),
                ("meta.smoosh".to_string(), meta),
                ("00000.smoosh".to_string(), chunk0),
                ("00001.smoosh".to_string(), chunk1),
            ]
            .into();
            let _ = read_segment_files(&SegmentFiles::from_files(files));
        }
        // A dump: shards.json, then the shard file, separated by "\0\0\0".
        _ => {
            let dir = scratch().join("dump");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let (shards, records) = split(bytes, b"\0\0\0");
            std::fs::write(dir.join("shards.json"), shards).unwrap();
            let Ok(dump) = Dump::open(&dir) else {
                return;
            };
            for shard in &dump.shards.shards {
                // Every listed shard reads the same bytes.
                let path = dir.join(format!("{}.jsonl", shard.shard_id));
                if std::fs::write(&path, &records).is_err() {
                    continue;
                }
                let Ok(file) = dump.shard_file(&shard.shard_id) else {
                    continue;
                };
                let Ok(mut reader) = ShardReader::open(&file) else {
                    continue;
                };
                let mut out = Records::default();
                while let Ok(true) = reader.next_record(&mut out) {
                    if out.len() > 10_000 {
                        break;
                    }
                }
            }
        }
    }
});
