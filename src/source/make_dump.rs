//! `make-dump`: turn a newline-delimited file into a shard dump the way
//! Kinesis would shard it (MD5 of the partition key against evenly split
//! hash-key ranges, 56-digit sequence numbers increasing per shard).

use super::dump::{
    DumpLineOut, HashKeyRange, SequenceNumberRange, ShardInfo, ShardList, open_maybe_compressed,
};
use anyhow::{Context, Result, bail};
use base64::Engine;
use md5::{Digest, Md5};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    Json,
    Csv,
    Tsv,
}

impl LineFormat {
    /// Guess from the file name (`.ndjson`, `.json`, `.jsonl`, `.csv`, `.tsv`, optionally `.gz`).
    fn from_path(path: &Path) -> Option<LineFormat> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        let name = name.strip_suffix(".zst").unwrap_or(name);
        if name.ends_with(".csv") {
            Some(LineFormat::Csv)
        } else if name.ends_with(".tsv") {
            Some(LineFormat::Tsv)
        } else if name.ends_with(".json") || name.ends_with(".ndjson") || name.ends_with(".jsonl") {
            Some(LineFormat::Json)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpCompression {
    None,
    Gzip,
    Zstd,
}

pub struct MakeDumpOptions {
    pub input: PathBuf,
    pub format: Option<LineFormat>,
    pub shards: usize,
    pub out: PathBuf,
    pub stream: String,
    pub partition_key: Option<String>,
    pub compression: DumpCompression,
    /// Stop after this many rows (all when None).
    pub limit: Option<u64>,
    /// Write the input this many times; copy k has its `timestamp` field
    /// shifted by k x 366 days (json only), so copies never share a rollup
    /// group: the 10x flights input of shared/data/README.md.
    pub copies: u32,
    /// csv/tsv: whether the first line is a header (names the columns, is
    /// no record). None: decided from the line itself, and said so.
    pub header: Option<bool>,
}

/// How far apart the copies of `--copies` are.
const COPY_SHIFT_MS: i64 = 366 * 86_400_000;

pub struct MakeDumpSummary {
    pub records: u64,
    pub per_shard: Vec<u64>,
    /// Input lines read (over all copies), blank ones included.
    pub lines_read: u64,
    pub blank_lines: u64,
    pub headers_skipped: u64,
    /// csv/tsv: what was decided about the first line, and why.
    pub header_decision: Option<String>,
}

/// Whether a csv/tsv first line looks like a header: every cell non-empty,
/// no cell a number, no cell twice. Data rows nearly always hold a number
/// (a time, a count, a measure) where a header holds only names.
fn looks_like_header(cells: &[&[u8]]) -> bool {
    let mut seen = std::collections::HashSet::new();
    cells.iter().all(|c| {
        let text = String::from_utf8_lossy(c);
        let t = text.trim().trim_matches('"');
        !t.is_empty()
            && t.parse::<f64>().is_err()
            && !t.starts_with(|ch: char| ch.is_ascii_digit())
            && seen.insert(t.to_string())
    })
}

/// Evenly split the 128-bit hash key space as CreateStream does.
fn hash_ranges(shards: usize) -> Vec<(u128, u128)> {
    let n = shards as u128;
    if n <= 1 {
        return vec![(0, u128::MAX)];
    }
    let step = if u128::MAX % n == n - 1 {
        u128::MAX / n + 1
    } else {
        u128::MAX / n
    };
    (0..n)
        .map(|i| {
            let start = i * step;
            let end = if i == n - 1 {
                u128::MAX
            } else {
                (i + 1) * step - 1
            };
            (start, end)
        })
        .collect()
}

/// The hash key Kinesis derives from a partition key.
fn hash_key(partition_key: &str) -> u128 {
    let digest = Md5::digest(partition_key.as_bytes());
    u128::from_be_bytes(digest.into())
}

pub fn shard_id(ordinal: usize) -> String {
    format!("shardId-{ordinal:012}")
}

/// A 56-digit sequence number: a fixed prefix, the shard's ordinal, a counter.
pub fn sequence_number(shard: usize, counter: u64) -> String {
    format!("4959{shard:03}{counter:049}")
}

const ARRIVAL_EPOCH_MS: i64 = 1_700_000_000_000;

pub fn make_dump(opts: &MakeDumpOptions) -> Result<MakeDumpSummary> {
    if opts.shards == 0 || opts.shards > 999 {
        bail!("--shards must be between 1 and 999, got {}", opts.shards);
    }
    let format = match opts.format.or_else(|| LineFormat::from_path(&opts.input)) {
        Some(f) => f,
        None => bail!(
            "{}: cannot tell json, csv or tsv from the name; pass --format",
            opts.input.display()
        ),
    };
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let ranges = hash_ranges(opts.shards);
    let ext = match opts.compression {
        DumpCompression::None => "jsonl",
        DumpCompression::Gzip => "jsonl.gz",
        DumpCompression::Zstd => "jsonl.zst",
    };
    let mut writers: Vec<Box<dyn Write>> = Vec::new();
    for i in 0..opts.shards {
        let path = opts.out.join(format!("{}.{ext}", shard_id(i)));
        let file = BufWriter::with_capacity(
            1 << 20,
            File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        writers.push(match opts.compression {
            DumpCompression::None => Box::new(file),
            DumpCompression::Gzip => Box::new(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::new(6),
            )),
            DumpCompression::Zstd => Box::new(zstd::Encoder::new(file, 3)?.auto_finish()),
        });
    }

    if format == LineFormat::Json && opts.header.is_some() {
        bail!("--header and --no-header are for csv and tsv input; this input is json");
    }
    if opts.copies > 1 && format != LineFormat::Json {
        bail!("--copies shifts the json field \"timestamp\"; it needs json input");
    }
    let mut copy = 0u32;
    let mut input_line = 0u64;
    let mut reader = BufReader::with_capacity(1 << 20, open_maybe_compressed(&opts.input)?);
    let mut line = Vec::new();
    let mut counters = vec![0u64; opts.shards];
    let mut key_column: Option<usize> = None;
    let mut first_line = true;
    let mut row = 0u64;
    let (mut lines_read, mut blank_lines, mut headers_skipped) = (0u64, 0u64, 0u64);
    let mut header_decision = None;
    let mut b64 = String::new();
    let mut out_line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            copy += 1;
            if copy >= opts.copies.max(1) {
                break;
            }
            reader = BufReader::with_capacity(1 << 20, open_maybe_compressed(&opts.input)?);
            input_line = 0;
            continue;
        }
        input_line += 1;
        lines_read += 1;
        if copy > 0 {
            shift_timestamp(&mut line, copy as i64 * COPY_SHIFT_MS)
                .with_context(|| format!("{} line {input_line}", opts.input.display()))?;
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        if line.is_empty() {
            blank_lines += 1;
            continue;
        }
        let delimiter = match format {
            LineFormat::Csv => Some(b','),
            LineFormat::Tsv => Some(b'\t'),
            LineFormat::Json => None,
        };
        if first_line {
            first_line = false;
            if let Some(d) = delimiter {
                let cells: Vec<&[u8]> = line.split(|b| *b == d).collect();
                let (is_header, why) = match opts.header {
                    Some(h) => (h, if h { "--header" } else { "--no-header" }),
                    None if looks_like_header(&cells) => (
                        true,
                        "detected: every cell a distinct name; pass --no-header if it is a record",
                    ),
                    None => (
                        false,
                        "detected: not every cell a distinct name; pass --header if it is one",
                    ),
                };
                header_decision = Some(format!(
                    "first line {} ({why})",
                    if is_header {
                        "skipped as a header"
                    } else {
                        "kept as a record"
                    }
                ));
                if !is_header {
                    if opts.partition_key.is_some() {
                        bail!(
                            "--partition-key names a header column, and {} has no header ({why})",
                            opts.input.display()
                        );
                    }
                } else if let Some(field) = &opts.partition_key {
                    key_column = Some(
                        line.split(|b| *b == d)
                            .position(|c| c == field.as_bytes())
                            .with_context(|| {
                                format!("--partition-key {field:?} is not a column of the header")
                            })?,
                    );
                }
                if is_header {
                    headers_skipped += 1;
                    continue;
                }
            }
        }
        if opts.limit.is_some_and(|l| row >= l) {
            break;
        }
        let key = partition_key(&line, delimiter, key_column, opts.partition_key.as_deref())
            .unwrap_or_else(|| row.to_string());
        let h = hash_key(&key);
        let shard = ranges
            .iter()
            .position(|(s, e)| (*s..=*e).contains(&h))
            .unwrap_or(0);
        counters[shard] += 1;
        let seq = sequence_number(shard, counters[shard]);
        b64.clear();
        base64::engine::general_purpose::STANDARD.encode_string(&line, &mut b64);
        let arrival = (ARRIVAL_EPOCH_MS + row as i64) as f64 / 1000.0;
        out_line.clear();
        serde_json::to_writer(
            &mut out_line,
            &DumpLineOut {
                sequence_number: &seq,
                approximate_arrival_timestamp: arrival,
                data: &b64,
                partition_key: &key,
            },
        )?;
        out_line.push(b'\n');
        writers[shard].write_all(&out_line)?;
        row += 1;
    }
    for w in writers.iter_mut() {
        w.flush()?;
    }
    drop(writers);

    let list = ShardList {
        stream_name: opts.stream.clone(),
        shards: ranges
            .iter()
            .enumerate()
            .map(|(i, (s, e))| ShardInfo {
                shard_id: shard_id(i),
                parent_shard_id: None,
                adjacent_parent_shard_id: None,
                hash_key_range: Some(HashKeyRange {
                    starting_hash_key: s.to_string(),
                    ending_hash_key: e.to_string(),
                }),
                sequence_number_range: SequenceNumberRange {
                    starting_sequence_number: sequence_number(i, 0),
                    ending_sequence_number: None,
                },
            })
            .collect(),
    };
    let shards_path = opts.out.join("shards.json");
    std::fs::write(&shards_path, serde_json::to_vec_pretty(&list)?)
        .with_context(|| format!("writing {}", shards_path.display()))?;
    Ok(MakeDumpSummary {
        records: row,
        per_shard: counters,
        lines_read,
        blank_lines,
        headers_skipped,
        header_decision,
    })
}

/// Move the `"timestamp":"<ISO>"` field of a json line by `shift` ms.
fn shift_timestamp(line: &mut Vec<u8>, shift: i64) -> Result<()> {
    const KEY: &[u8] = b"\"timestamp\":\"";
    let start = memchr::memmem::find(line, KEY)
        .context("--copies: no \"timestamp\":\"...\" field")?
        + KEY.len();
    let len = memchr::memchr(b'"', &line[start..]).context("--copies: unterminated timestamp")?;
    let text = std::str::from_utf8(&line[start..start + len])?;
    let millis = crate::spec::time::parse_iso(text)
        .with_context(|| format!("--copies: {text:?} is not an ISO timestamp"))?;
    let shifted = crate::spec::time::format_iso(millis + shift);
    line.splice(start..start + len, shifted.into_bytes());
    Ok(())
}

fn partition_key(
    line: &[u8],
    delimiter: Option<u8>,
    key_column: Option<usize>,
    field: Option<&str>,
) -> Option<String> {
    match delimiter {
        Some(d) => {
            let cell = line.split(|b| *b == d).nth(key_column?)?;
            Some(String::from_utf8_lossy(cell).into_owned())
        }
        None => {
            let value: serde_json::Value = serde_json::from_slice(line).ok()?;
            match value.get(field?)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ranges_match_kinesis() {
        let two = hash_ranges(2);
        assert_eq!(two[1].0, 1u128 << 127);
        assert_eq!(two[0].1, (1u128 << 127) - 1);
        assert_eq!(two[1].1, u128::MAX);
        assert_eq!(hash_ranges(1), vec![(0, u128::MAX)]);
        let three = hash_ranges(3);
        assert_eq!(three[0].0, 0);
        assert_eq!(three[2].1, u128::MAX);
        assert_eq!(three[1].0, three[0].1 + 1);
    }

    #[test]
    fn sequence_numbers_are_56_digits_and_increase() {
        let a = sequence_number(3, 1);
        let b = sequence_number(3, 2);
        assert_eq!(a.len(), 56);
        assert!(crate::spec::sequence::cmp_decimal(&a, &b).is_lt());
    }

    fn dump_of(text: &str, ext: &str, header: Option<bool>) -> Result<(MakeDumpSummary, u64)> {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join(format!("in.{ext}"));
        std::fs::write(&input, text).unwrap();
        let out = dir.path().join("dump");
        let summary = make_dump(&MakeDumpOptions {
            input,
            format: None,
            shards: 1,
            out: out.clone(),
            stream: "s".into(),
            partition_key: None,
            compression: DumpCompression::None,
            limit: None,
            copies: 1,
            header,
        })?;
        let written = std::fs::read_to_string(out.join("shardId-000000000000.jsonl"))
            .unwrap()
            .lines()
            .count() as u64;
        Ok((summary, written))
    }

    /// A headerless csv keeps its first row (detected, or by --no-header);
    /// a header is skipped (detected, or by --header); the summary counts
    /// lines, records and headers, and says what it decided.
    #[test]
    fn csv_headers_are_explicit_or_detected_and_said() {
        let headerless = "2024-01-01T00:00:00Z,AA,5\n2024-01-01T01:00:00Z,UA,7\n\n";
        let (s, written) = dump_of(headerless, "csv", None).unwrap();
        assert_eq!(
            (s.lines_read, s.blank_lines, s.headers_skipped, s.records),
            (3, 1, 0, 2)
        );
        assert_eq!(written, 2);
        assert!(
            s.header_decision
                .unwrap()
                .starts_with("first line kept as a record (detected")
        );
        let (s, _) = dump_of(headerless, "csv", Some(true)).unwrap();
        assert_eq!((s.headers_skipped, s.records), (1, 1));

        let with_header = "timestamp\tcarrier\tdelay\n2024-01-01T00:00:00Z\tAA\t5\n";
        let (s, written) = dump_of(with_header, "tsv", None).unwrap();
        assert_eq!(
            (s.lines_read, s.headers_skipped, s.records, written),
            (2, 1, 1, 1)
        );
        assert!(
            s.header_decision
                .unwrap()
                .starts_with("first line skipped as a header (detected")
        );
        let (s, _) = dump_of(with_header, "tsv", Some(false)).unwrap();
        assert_eq!((s.headers_skipped, s.records), (0, 2));
        assert_eq!(
            s.header_decision.as_deref(),
            Some("first line kept as a record (--no-header)")
        );

        let e = dump_of("{}\n", "json", Some(true))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("--header and --no-header are for csv and tsv"),
            "{e}"
        );
    }

    #[test]
    fn md5_hash_key_is_big_endian() {
        // md5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(hash_key(""), 0xd41d8cd98f00b204e9800998ecf8427e);
    }
}
