//! The recorded shard dump: `shards.json` (a ListShards response) plus one
//! `<ShardId>.jsonl[.gz|.zst]` per shard, one GetRecords-shaped record a line.

use super::{Records, normalize_decimal};
use crate::spec::sequence::{cmp_decimal, trim_leading_zeros};
use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ShardList {
    #[serde(default)]
    pub stream_name: String,
    pub shards: Vec<ShardInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ShardInfo {
    pub shard_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_shard_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjacent_parent_shard_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_key_range: Option<HashKeyRange>,
    pub sequence_number_range: SequenceNumberRange,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HashKeyRange {
    pub starting_hash_key: String,
    pub ending_hash_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SequenceNumberRange {
    pub starting_sequence_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending_sequence_number: Option<String>,
}

/// One line of a shard file, borrowed from the line where it can be.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DumpLine<'a> {
    #[serde(borrow)]
    sequence_number: Cow<'a, str>,
    #[serde(default)]
    approximate_arrival_timestamp: Option<f64>,
    #[serde(borrow)]
    data: Cow<'a, str>,
}

/// The record shape written by `make-dump` and `record`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DumpLineOut<'a> {
    pub sequence_number: &'a str,
    pub approximate_arrival_timestamp: f64,
    pub data: &'a str,
    pub partition_key: &'a str,
}

pub struct Dump {
    pub dir: PathBuf,
    pub shards: ShardList,
}

impl Dump {
    pub fn open(dir: &Path) -> Result<Dump> {
        let path = dir.join("shards.json");
        let bytes = std::fs::read(&path)
            .with_context(|| format!("reading the dump's shard list {}", path.display()))?;
        let shards: ShardList = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a ListShards response", path.display()))?;
        for shard in &shards.shards {
            plain_shard_id(&shard.shard_id).with_context(|| format!("{}", path.display()))?;
        }
        Ok(Dump {
            dir: dir.to_path_buf(),
            shards,
        })
    }

    pub fn shard(&self, shard_id: &str) -> Option<&ShardInfo> {
        self.shards.shards.iter().find(|s| s.shard_id == shard_id)
    }

    /// The file holding a shard's records (plain, .gz or .zst).
    /// Each shard's parents.
    pub fn links(&self) -> std::collections::BTreeMap<String, super::ShardLink> {
        links(&self.shards.shards)
    }

    pub fn shard_file(&self, shard_id: &str) -> Result<PathBuf> {
        plain_shard_id(shard_id)?;
        for ext in ["jsonl", "jsonl.zst", "jsonl.gz"] {
            let p = self.dir.join(format!("{shard_id}.{ext}"));
            if p.exists() {
                return Ok(p);
            }
        }
        bail!(
            "shard {shard_id}: no record file {} (nor .gz/.zst) in the dump",
            self.dir.join(format!("{shard_id}.jsonl")).display()
        )
    }
}

/// A shard id names a file in the dump, so it must be a plain file name:
/// Kinesis's own ids are letters, digits, `-`, `_` and `.`, and one such as
/// `../x` or `/etc/x` would read outside the dump.
fn plain_shard_id(shard_id: &str) -> Result<()> {
    let plain = !shard_id.is_empty()
        && shard_id != "."
        && shard_id != ".."
        && shard_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !plain {
        bail!(
            "shard id {shard_id:?} is not a plain file name (letters, digits, '-', '_', '.'); refusing to read outside the dump"
        );
    }
    Ok(())
}

/// Each shard's parents.
pub fn links(shards: &[ShardInfo]) -> std::collections::BTreeMap<String, super::ShardLink> {
    shards
        .iter()
        .map(|s| {
            (
                s.shard_id.clone(),
                super::ShardLink {
                    parent: s.parent_shard_id.clone(),
                    adjacent_parent: s.adjacent_parent_shard_id.clone(),
                },
            )
        })
        .collect()
}

/// Open a file, decompressing by its extension.
pub fn open_maybe_compressed(path: &Path) -> Result<Box<dyn Read + Send>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let name = path.to_string_lossy();
    Ok(if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 20,
            file,
        )))
    } else if name.ends_with(".zst") {
        Box::new(zstd::Decoder::new(file)?)
    } else {
        Box::new(file)
    })
}

/// How much of a mapped shard file is read before its pages are released
/// (a power of two, a multiple of the page size).
const RELEASE_BYTES: usize = 4 << 20;

/// Reads one shard file record by record, checking order as it goes.
pub struct ShardReader {
    path: PathBuf,
    lines: Lines,
    line_no: u64,
    /// The last record's sequence digits ("" before the first).
    last: String,
}

enum Lines {
    /// An uncompressed file, mapped: lines are decoded where they lie.
    /// Pages before `released` were handed back (read already).
    Mapped {
        map: memmap2::Mmap,
        pos: usize,
        released: usize,
    },
    /// A compressed (or empty) file, read line by line.
    Stream {
        reader: Box<dyn BufRead + Send>,
        line: Vec<u8>,
    },
}

impl ShardReader {
    pub fn open(path: &Path) -> Result<ShardReader> {
        let name = path.to_string_lossy();
        let compressed = name.ends_with(".gz") || name.ends_with(".zst");
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        let lines = if compressed || len == 0 {
            Lines::Stream {
                reader: Box::new(BufReader::with_capacity(
                    1 << 20,
                    open_maybe_compressed(path)?,
                )),
                line: Vec::with_capacity(4096),
            }
        } else {
            // SAFETY: the map is only read, and a dump is not written while
            // it is replayed (truncating it under a run would fault the
            // process: a documented limit, as for any reader of mapped
            // files). Measured on the 4-shard flights csv dump: read() and a
            // line buffer (the kernel's copy plus the line copy, ~8% of the
            // profile) against lines decoded in place: 525 ms against 478 ms
            // task-clock, the fastest of 14 interleaved runs each.
            let map = unsafe { memmap2::Mmap::map(&file) }
                .with_context(|| format!("mapping {}", path.display()))?;
            let _ = map.advise(memmap2::Advice::Sequential);
            // The first two windows; each release maps the one after.
            populate(&map, 0, 2 * RELEASE_BYTES);
            Lines::Mapped {
                map,
                pos: 0,
                released: 0,
            }
        };
        Ok(ShardReader {
            path: path.to_path_buf(),
            lines,
            line_no: 0,
            last: String::new(),
        })
    }

    /// Append the next record to `out`; false at the end of the file.
    pub fn next_record(&mut self, out: &mut Records) -> Result<bool> {
        loop {
            let raw: &[u8] = match &mut self.lines {
                Lines::Mapped { map, pos, released } => {
                    if *pos >= map.len() {
                        return Ok(false);
                    }
                    // Pages already read leave the process's resident set
                    // (they stay in the page cache), so RSS measures the
                    // task, not the size of the dump.
                    let upto = *pos & !(RELEASE_BYTES - 1);
                    if upto >= *released + RELEASE_BYTES {
                        // SAFETY: nothing borrows the map before `pos`
                        // (records own their decoded data, and the line
                        // being read starts at `pos`); the map is a
                        // read-only file mapping, so the pages read again
                        // would come back from the file unchanged.
                        let _ = unsafe {
                            map.unchecked_advise_range(
                                memmap2::UncheckedAdvice::DontNeed,
                                *released,
                                upto - *released,
                            )
                        };
                        *released = upto;
                        populate(map, upto + RELEASE_BYTES, RELEASE_BYTES);
                    }
                    let rest = &map[*pos..];
                    // The usual line read in one pass from where it starts:
                    // looking for its end first was a second scan of it.
                    if let Some((line, len)) = canonical_line_at(rest) {
                        let at = || format!("{}:{}", self.path.display(), self.line_no + 1);
                        if push_canonical(&line, &at, &mut self.last, out)? {
                            *pos += len;
                            self.line_no += 1;
                            return Ok(true);
                        }
                    }
                    let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
                    *pos += end;
                    &rest[..end]
                }
                Lines::Stream { reader, line } => {
                    line.clear();
                    let n = reader.read_until(b'\n', line).with_context(|| {
                        format!(
                            "{}: reading after line {}",
                            self.path.display(),
                            self.line_no
                        )
                    })?;
                    if n == 0 {
                        return Ok(false);
                    }
                    line
                }
            };
            self.line_no += 1;
            let text = trim_line(raw);
            if text.is_empty() {
                continue;
            }
            decode(text, &self.path, self.line_no, &mut self.last, out)?;
            return Ok(true);
        }
    }
}

/// Map the window of pages from `from` in one call: faulting them in on
/// first read (16 pages per fault) was most of this process's page faults.
fn populate(map: &memmap2::Mmap, from: usize, len: usize) {
    let len = len.min(map.len().saturating_sub(from));
    if len > 0 {
        let _ = map.advise_range(memmap2::Advice::PopulateRead, from, len);
    }
}

/// Add the record on one line to `out`, checking that it follows `last`
/// (the shard's previous sequence number, which it then becomes).
fn decode(
    text: &[u8],
    path: &Path,
    line_no: u64,
    last: &mut String,
    out: &mut Records,
) -> Result<()> {
    let at = || format!("{}:{}", path.display(), line_no);
    if let Some(line) = canonical_line(text)
        && push_canonical(&line, &at, last, out)?
    {
        return Ok(());
    }
    // Another shape, escapes (`\/` is valid JSON) or bad base64: the
    // general way unescapes, or says what is wrong.
    let general: DumpLine =
        serde_json::from_slice(text).map_err(|e| anyhow!("{}: not a dump record: {e}", at()))?;
    let arrival_millis = general
        .approximate_arrival_timestamp
        .map_or(0, |s| (s * 1000.0).round() as i64);
    let sequence = normalize_decimal(&general.sequence_number)
        .map_err(|e| anyhow!("{}: SequenceNumber: {e}", at()))?;
    check_order(sequence, last, &at)?;
    push_decoded(out, sequence, arrival_millis, general.data.as_bytes()).map_err(|e| {
        anyhow!(
            "{}: Data is not base64 (sequence number {sequence}): {e}",
            at()
        )
    })?;
    last.clear();
    last.push_str(sequence);
    Ok(())
}

/// Add a record whose Data is base64, decoded (SIMD) straight into the
/// batch's buffer: this is most of a fetch thread's work per record.
fn push_decoded(
    out: &mut Records,
    sequence: &str,
    arrival_millis: i64,
    base64: &[u8],
) -> Result<(), base64_simd::Error> {
    out.push_with(sequence, arrival_millis, |buf| {
        base64_simd::STANDARD.decode_append(base64, buf)
    })
}

fn check_order(sequence: &str, last: &str, at: &dyn Fn() -> String) -> Result<()> {
    if !last.is_empty() && cmp_decimal(sequence, last).is_le() {
        bail!(
            "{}: sequence number {sequence} does not follow {last}; a shard's records must be in order",
            at()
        );
    }
    Ok(())
}

/// Add a canonical line's record, checking its order; false (nothing
/// added) when its Data does not decode as it stands (escapes, bad base64):
/// the general way then unescapes, or says what is wrong.
fn push_canonical(
    line: &LineParts,
    at: &dyn Fn() -> String,
    last: &mut String,
    out: &mut Records,
) -> Result<bool> {
    let sequence = trim_leading_zeros(line.sequence_number);
    check_order(sequence, last, at)?;
    if push_decoded(out, sequence, line.arrival_millis, line.data).is_err() {
        return Ok(false);
    }
    last.clear();
    last.push_str(sequence);
    Ok(true)
}

/// `text` (one line, its end trimmed) as a canonical line.
fn canonical_line(text: &[u8]) -> Option<LineParts<'_>> {
    canonical_line_at(text)
        .filter(|(_, len)| *len == text.len())
        .map(|(line, _)| line)
}

/// The line shape `make-dump` and `record` write, read without a general
/// JSON parse: `{"SequenceNumber":"<digits>","ApproximateArrivalTimestamp":<number>,"Data":"<base64>","PartitionKey":"..."}`,
/// at the start of `rest` (which may hold more lines), with its length
/// including its end (`\n`, `\r\n`, or none at the end of `rest`).
/// Anything else (other key order, escapes, a truncated line) returns None
/// and goes through serde_json, which also gives the precise error.
fn canonical_line_at(rest: &[u8]) -> Option<(LineParts<'_>, usize)> {
    let whole = rest;
    let rest = rest.strip_prefix(br#"{"SequenceNumber":""#)?;
    // The digits and their closing quote in one pass.
    let q = leading_ascii_digits(rest);
    if q == 0 || rest.get(q) != Some(&b'"') {
        return None;
    }
    // SAFETY: `leading_ascii_digits` checked these are ASCII digits, so
    // valid UTF-8; checking again was ~1% of a csv replay (callgrind).
    let seq = unsafe { std::str::from_utf8_unchecked(&rest[..q]) };
    let rest = rest[q + 1..].strip_prefix(br#","ApproximateArrivalTimestamp":"#)?;
    // Today's shape (ten digits, a dot, one to three decimals) puts the
    // comma 12 to 14 bytes in: looked for there first (a loop to it was ~40
    // instructions a record, callgrind). A comma found there after an
    // earlier one leaves a number that does not parse: the general path.
    let comma = match rest.get(12..15) {
        Some([b',', ..]) => 12,
        Some([_, b',', _]) => 13,
        Some([_, _, b',']) => 14,
        _ => rest.iter().position(|&b| b == b',')?,
    };
    let arrival_millis = epoch_seconds_to_millis(&rest[..comma])?;
    let rest = rest[comma..].strip_prefix(br#","Data":""#)?;
    let q = memchr::memchr(b'"', rest)?;
    // A `\/` escape (JSON allows it) fails base64 decoding, and the line
    // is read again the general way.
    let data = &rest[..q];
    // The partition key up to its closing quote (an escaped quote in it
    // leaves a `\` before the quote found, and no `}` after it: None).
    let key = rest[q + 1..].strip_prefix(br#","PartitionKey":""#)?;
    // Keys are short: a plain loop, not a memchr call.
    let close = key.iter().position(|&b| b == b'"')?;
    let after = key[close + 1..].strip_prefix(b"}")?;
    let ending = match after {
        [] => 0,
        [b'\n', ..] => 1,
        [b'\r', b'\n', ..] => 2,
        _ => return None,
    };
    // Data is not checked as UTF-8 here: base64 decoding checks every byte.
    Some((
        LineParts {
            sequence_number: seq,
            arrival_millis,
            data,
        },
        whole.len() - after.len() + ending,
    ))
}

/// Epoch seconds with up to three decimals ("1700000000.006") as
/// milliseconds, without a float parse; any other form returns None (and
/// the line takes the general path).
fn epoch_seconds_to_millis(text: &[u8]) -> Option<i64> {
    // Today's shape, ten digits and one to three decimals, read without a
    // loop: the digit loop's data-dependent exit was one of the fetch
    // threads' hottest spots (perf).
    if let Some([head @ .., b'.']) = text.get(..11)
        && let Ok(eight) = <[u8; 8]>::try_from(&head[..8])
        && let Some(high) = eight_digits(u64::from_le_bytes(eight))
        && let [a, b] = [head[8].wrapping_sub(b'0'), head[9].wrapping_sub(b'0')]
        && a <= 9
        && b <= 9
    {
        let seconds = high as i64 * 100 + i64::from(a) * 10 + i64::from(b);
        let decimals = &text[11..];
        let mut millis = 0i64;
        let mut scale = 100;
        for &c in decimals.iter().take(3) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            millis += i64::from(d) * scale;
            scale /= 10;
        }
        if decimals.len() > 3 {
            return None;
        }
        return Some(seconds * 1000 + millis);
    }
    epoch_seconds_to_millis_general(text)
}

/// Nonzero bits in the bytes of `x` that are not ASCII digits (see
/// `leading_ascii_digits` for why the lowest such byte is always marked).
fn not_digits(x: u64) -> u64 {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    const SIXES: u64 = 0x0606_0606_0606_0606;
    ((x & HIGH) ^ THREES) | ((x.wrapping_add(SIXES) & HIGH) ^ THREES)
}

/// Eight ASCII digits (the first in the lowest byte) as their value; None
/// if any byte is not a digit.
fn eight_digits(chunk: u64) -> Option<u64> {
    if not_digits(chunk) != 0 {
        return None;
    }
    // Pairs, then fours, then all eight, each step one multiply.
    let v = chunk & 0x0F0F_0F0F_0F0F_0F0F;
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((v.wrapping_mul(10_000) + (v >> 32)) & 0xFFFF_FFFF)
}

fn epoch_seconds_to_millis_general(text: &[u8]) -> Option<i64> {
    // At most 17 characters, so the digits fit an i64 unchecked.
    if text.len() > 17 || matches!(text.first(), None | Some(b'.')) {
        return None;
    }
    let mut millis = 0i64;
    // Digits after the dot, once one is seen.
    let mut fraction: Option<u32> = None;
    for &b in text {
        let digit = b.wrapping_sub(b'0');
        if digit <= 9 {
            millis = millis * 10 + i64::from(digit);
            if let Some(f) = &mut fraction {
                *f += 1;
            }
        } else if b == b'.' && fraction.is_none() {
            fraction = Some(0);
        } else {
            return None;
        }
    }
    let fraction = fraction.unwrap_or(0);
    if fraction > 3 {
        return None;
    }
    millis.checked_mul(10i64.pow(3 - fraction))
}

/// How many bytes at the start are ASCII digits, eight at a time: a byte
/// is a digit when its high nibble is 3 and adding 6 keeps it there. (A
/// carry out of a byte above 0xF9 can only disturb the bytes after it,
/// and that byte is not a digit, so the first non-digit is still found.)
fn leading_ascii_digits(bytes: &[u8]) -> usize {
    let mut words = bytes.chunks_exact(8);
    let mut count = 0;
    for w in words.by_ref() {
        let not_digits = not_digits(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        if not_digits != 0 {
            return count + not_digits.trailing_zeros() as usize / 8;
        }
        count += 8;
    }
    count
        + words
            .remainder()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
}

/// The fields of a dump line that a record needs, borrowed.
struct LineParts<'a> {
    /// ASCII digits.
    sequence_number: &'a str,
    arrival_millis: i64,
    data: &'a [u8],
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && (line[end - 1] == b'\n' || line[end - 1] == b'\r') {
        end -= 1;
    }
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canonical_line_is_read_where_it_starts_with_its_length() {
        let one = br#"{"SequenceNumber":"7","ApproximateArrivalTimestamp":1.5,"Data":"eA==","PartitionKey":"k"}"#;
        let mut text = one.to_vec();
        text.extend_from_slice(b"\r\n");
        text.extend_from_slice(one);
        text.extend_from_slice(b"\n");
        text.extend_from_slice(one);
        let (line, len) = canonical_line_at(&text).expect("first line");
        assert_eq!((line.sequence_number, line.data), ("7", &b"eA=="[..]));
        assert_eq!(len, one.len() + 2, "CRLF counted");
        let (_, len2) = canonical_line_at(&text[len..]).expect("second line");
        assert_eq!(len2, one.len() + 1);
        let (_, len3) = canonical_line_at(&text[len + len2..]).expect("last line");
        assert_eq!(len3, one.len(), "no line end at the end");
        // Not canonical: an escaped quote in the key, text after the brace,
        // a truncated line.
        let escaped = br#"{"SequenceNumber":"7","ApproximateArrivalTimestamp":1.5,"Data":"eA==","PartitionKey":"a\"b"}"#;
        assert!(canonical_line_at(escaped).is_none());
        let mut trailing = one.to_vec();
        trailing.extend_from_slice(b" \n");
        assert!(canonical_line_at(&trailing).is_none());
        assert!(canonical_line_at(&one[..one.len() - 1]).is_none());
    }

    /// Every arrival-time shape gives the time the general parse gives:
    /// the comma looked for where today's shape puts it, or anywhere.
    #[test]
    fn arrival_times_of_every_length_agree_with_the_general_parse() {
        for arrival in [
            "1700000000.006",
            "1700000000.06",
            "1700000000.6",
            "1700000000",
            "1.5",
            "17000000001.25",
            "170000000.125",
        ] {
            let line = format!(
                r#"{{"SequenceNumber":"12","ApproximateArrivalTimestamp":{arrival},"Data":"eyJhIjoxfQ==","PartitionKey":"k"}}"#
            );
            let slow: DumpLine = serde_json::from_str(&line).unwrap();
            let want = (slow.approximate_arrival_timestamp.unwrap() * 1000.0).round() as i64;
            let mut out = Records::default();
            decode(
                line.as_bytes(),
                Path::new("x"),
                1,
                &mut String::new(),
                &mut out,
            )
            .unwrap();
            assert_eq!(out.get(0).arrival_millis, want, "{arrival}");
            let fast = canonical_line(line.as_bytes()).expect("a canonical line");
            assert_eq!(fast.arrival_millis, want, "{arrival}");
        }
    }

    #[test]
    fn canonical_and_general_lines_agree() {
        let canonical = br#"{"SequenceNumber":"0012","ApproximateArrivalTimestamp":1700000000.5,"Data":"eyJhIjoxfQ==","PartitionKey":"k"}"#;
        let fast = canonical_line(canonical).expect("canonical");
        let slow: DumpLine = serde_json::from_slice(canonical).unwrap();
        assert_eq!(fast.sequence_number, slow.sequence_number);
        assert_eq!(fast.data, slow.data.as_bytes());
        assert_eq!(
            fast.arrival_millis,
            (slow.approximate_arrival_timestamp.unwrap() * 1000.0) as i64
        );
        let reordered = br#"{"Data":"eyJhIjoxfQ==","SequenceNumber":"12"}"#;
        // An escaped slash in canonical order takes the general path.
        let escaped = br#"{"SequenceNumber":"0009","ApproximateArrivalTimestamp":1.5,"Data":"P\/8=","PartitionKey":"k"}"#;
        let mut one = Records::default();
        let mut last = String::new();
        decode(escaped, Path::new("x"), 1, &mut last, &mut one).unwrap();
        assert_eq!(
            (one.get(0).sequence, one.get(0).data),
            ("9", &[0x3f, 0xff][..])
        );
        assert_eq!(last, "9", "the record read becomes the last one");
        assert!(canonical_line(reordered).is_none());
        assert!(canonical_line(&canonical[..canonical.len() - 3]).is_none());
        let mut out = Records::default();
        let mut last = String::new();
        decode(reordered, Path::new("x"), 1, &mut last, &mut out).unwrap();
        assert_eq!(out.get(0).data, br#"{"a":1}"#);
        // Out of order: 12 again after 12; the last one stays 12.
        let err = decode(canonical, Path::new("x.jsonl"), 2, &mut last, &mut out).unwrap_err();
        assert!(err.to_string().contains("does not follow 12"), "{err}");
        assert_eq!(last, "12");
        let err = decode(
            &canonical[..60],
            Path::new("x.jsonl"),
            7,
            &mut String::new(),
            &mut out,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("x.jsonl:7: not a dump record"),
            "{err}"
        );
        assert_eq!(out.len(), 1, "failed lines add nothing");
    }

    /// A shards.json naming a shard file outside the dump is refused when
    /// the dump is opened, before any file is read; so is such an id asked
    /// of an open dump.
    #[test]
    fn shard_ids_naming_files_outside_the_dump_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("secret.jsonl");
        std::fs::write(&outside, "").unwrap();
        let dump = dir.path().join("dump");
        std::fs::create_dir(&dump).unwrap();
        for bad in ["../secret", "/etc/passwd", "..", "a/b", "nul\0", ""] {
            let shards = serde_json::json!({"StreamName": "s", "Shards": [{
                "ShardId": bad,
                "SequenceNumberRange": {"StartingSequenceNumber": "1"}
            }]});
            std::fs::write(dump.join("shards.json"), shards.to_string()).unwrap();
            let err = format!("{:#}", Dump::open(&dump).err().expect(bad));
            assert!(err.contains("is not a plain file name"), "{bad}: {err}");
            assert!(err.contains("shards.json"), "{bad}: {err}");
        }
        let good = serde_json::json!({"StreamName": "s", "Shards": [{
            "ShardId": "shardId-000000000000",
            "SequenceNumberRange": {"StartingSequenceNumber": "1"}
        }]});
        std::fs::write(dump.join("shards.json"), good.to_string()).unwrap();
        let opened = Dump::open(&dump).unwrap();
        let err = format!("{:#}", opened.shard_file("../secret").unwrap_err());
        assert!(err.contains("is not a plain file name"), "{err}");
    }

    #[test]
    fn a_mapped_file_of_mixed_lines_reads_record_by_record() {
        let line = |seq: u32, key: &str| {
            format!(
                r#"{{"SequenceNumber":"{seq}","ApproximateArrivalTimestamp":1700000000.5,"Data":"eyJhIjoxfQ==","PartitionKey":"{key}"}}"#
            )
        };
        // LF, CRLF, a blank line, a key with an escaped quote and brace,
        // and a last line without a newline.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shardId-000000000000.jsonl");
        let body = format!(
            "{}\n{}\r\n\n{}\n{}",
            line(1, "k"),
            line(2, "k"),
            line(3, r#"a\"}"#),
            line(4, "k")
        );
        std::fs::write(&path, &body).unwrap();
        let mut reader = ShardReader::open(&path).unwrap();
        let mut out = Records::default();
        while reader.next_record(&mut out).unwrap() {}
        let seqs: Vec<&str> = (0..out.len()).map(|i| out.get(i).sequence).collect();
        assert_eq!(seqs, ["1", "2", "3", "4"]);
        assert!((0..out.len()).all(|i| out.get(i).data == br#"{"a":1}"#));
        // Junk after a record's brace: an error naming the file and line.
        std::fs::write(&path, format!("{}\n{}x\n", line(1, "k"), line(2, "k"))).unwrap();
        let mut reader = ShardReader::open(&path).unwrap();
        let mut out = Records::default();
        assert!(reader.next_record(&mut out).unwrap());
        let err = reader.next_record(&mut out).unwrap_err().to_string();
        assert!(
            err.contains("shardId-000000000000.jsonl:2: not a dump record"),
            "{err}"
        );
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn digits_are_counted_eight_at_a_time_and_in_the_tail() {
        let digits = b"49590000000000000000000000000000000000000000000000000001";
        assert_eq!(leading_ascii_digits(digits), digits.len());
        assert_eq!(leading_ascii_digits(b""), 0);
        // Every position, with each neighbour of '0'..'9', a high byte, and
        // bytes whose +6 carries into the next byte.
        for at in 0..digits.len() {
            for bad in [b'/', b':', b'0' + 0x80, b' ', 0x36 + 0x10, b'"', 0xFA, 0xFF] {
                let mut line = digits.to_vec();
                line[at] = bad;
                assert_eq!(leading_ascii_digits(&line), at, "{at} {bad}");
            }
        }
    }

    #[test]
    fn arrival_times_read_without_a_float_parse() {
        assert_eq!(
            epoch_seconds_to_millis(b"1700000000.006"),
            Some(1_700_000_000_006)
        );
        assert_eq!(
            epoch_seconds_to_millis(b"1700000000.5"),
            Some(1_700_000_000_500)
        );
        assert_eq!(
            epoch_seconds_to_millis(b"1700000000"),
            Some(1_700_000_000_000)
        );
        // Other forms go the general way.
        assert_eq!(epoch_seconds_to_millis(b"1.7e9"), None);
        assert_eq!(epoch_seconds_to_millis(b"1700000000.0001"), None);
        assert_eq!(epoch_seconds_to_millis(b"-1"), None);
        assert_eq!(epoch_seconds_to_millis(b""), None);
        assert_eq!(epoch_seconds_to_millis(b"."), None);
        assert_eq!(epoch_seconds_to_millis(b"1.2.3"), None);
        assert_eq!(epoch_seconds_to_millis(b"17."), Some(17_000));
        assert_eq!(epoch_seconds_to_millis(b"99999999999999999"), None);
        // The ten-digit shape agrees with the digit loop, a bad byte
        // anywhere included.
        for text in [
            "1700000000.006",
            "1700000000.0",
            "1700000000.01",
            "1700000000.",
            "0000000000.999",
            "9999999999.9",
            "1234567890.123",
            "1700000000.0001",
        ] {
            let want = epoch_seconds_to_millis_general(text.as_bytes());
            assert_eq!(epoch_seconds_to_millis(text.as_bytes()), want, "{text}");
            for at in 0..text.len() {
                for bad in [b'/', b':', b'a', b'.', b' ', 0xFF] {
                    let mut t = text.as_bytes().to_vec();
                    t[at] = bad;
                    assert_eq!(
                        epoch_seconds_to_millis(&t),
                        epoch_seconds_to_millis_general(&t),
                        "{:?}",
                        String::from_utf8_lossy(&t)
                    );
                }
            }
        }
        for n in [
            0u64, 1, 9, 10, 12_345_678, 87_654_321, 99_999_999, 10_000_000,
        ] {
            let text = format!("{n:08}");
            let chunk = u64::from_le_bytes(text.as_bytes().try_into().unwrap());
            assert_eq!(eight_digits(chunk), Some(n));
        }
    }
}
