//! Reading segments back (for merge and `dump-segment`): a directory or an
//! index.zip. Strict: every length, version and block is checked, errors
//! name the column and offset, and nothing is allocated from an untrusted
//! size before it is checked against the bytes at hand.

use super::bytes::{ByteReader, decode_block, read_blocks, unpack_msb};
use super::complex::{ComplexKind, read_complex};
use super::unzip::{is_segment_file, read_zip};
use super::*;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;

/// The files of a segment, in memory.
pub struct SegmentFiles {
    files: BTreeMap<String, Vec<u8>>,
}

/// Largest file taken from an index.zip (Druid refuses files over 2 GiB).
pub(super) const MAX_FILE_BYTES: u64 = i32::MAX as u64;

impl SegmentFiles {
    /// Open a segment directory or an index.zip.
    pub fn open(path: &Path) -> Result<SegmentFiles> {
        let mut files = BTreeMap::new();
        if path.is_dir() {
            for entry in
                std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?
            {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.file_type()?.is_file() && is_segment_file(&name) {
                    let bytes = std::fs::read(entry.path())
                        .with_context(|| format!("reading {}", entry.path().display()))?;
                    files.insert(name, bytes);
                }
            }
        } else {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            files = read_zip(file).with_context(|| format!("{}", path.display()))?;
        }
        Ok(SegmentFiles { files })
    }

    /// A segment's files already in memory (name → bytes).
    pub fn from_files(files: BTreeMap<String, Vec<u8>>) -> SegmentFiles {
        SegmentFiles { files }
    }

    /// Every file by name.
    pub fn files(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.files
    }

    fn file(&self, name: &str) -> Result<&[u8]> {
        self.files
            .get(name)
            .map(Vec::as_slice)
            .with_context(|| format!("the segment has no {name}"))
    }

    /// The smoosh entries by name.
    pub fn entries(&self) -> Result<BTreeMap<String, &[u8]>> {
        let version = self.file("version.bin")?;
        if version != VERSION_BIN {
            bail!("version.bin holds {version:02x?}, expected segment version 9");
        }
        let (chunks, listed) = parse_meta_smoosh(self.file("meta.smoosh")?)?;
        let mut entries = BTreeMap::new();
        for SmooshEntry {
            name,
            chunk,
            start,
            end,
        } in listed
        {
            let f = [name.as_str()];
            if chunk >= chunks {
                bail!("meta.smoosh: {} names chunk {chunk} of {chunks}", f[0]);
            }
            let data = self.file(&format!("{chunk:05}.smoosh"))?;
            if start > end || end > data.len() {
                bail!(
                    "meta.smoosh: {} spans {start}..{end} outside its chunk of {} bytes",
                    f[0],
                    data.len()
                );
            }
            if entries
                .insert(f[0].to_string(), &data[start..end])
                .is_some()
            {
                bail!("meta.smoosh: {} is listed twice", f[0]);
            }
        }
        Ok(entries)
    }
}

/// One line of meta.smoosh: an entry's chunk file and byte range.
pub struct SmooshEntry {
    pub name: String,
    pub chunk: usize,
    pub start: usize,
    pub end: usize,
}

/// meta.smoosh: the chunk count and every entry, strictly parsed.
pub fn parse_meta_smoosh(bytes: &[u8]) -> Result<(usize, Vec<SmooshEntry>)> {
    let meta = std::str::from_utf8(bytes).context("meta.smoosh is not UTF-8")?;
    // Druid ends every line, the last included, with a newline.
    if !meta.ends_with('\n') {
        bail!("meta.smoosh is cut short (no final newline)");
    }
    let mut lines = meta.lines();
    let header = lines.next().unwrap_or("");
    let parts: Vec<&str> = header.split(',').collect();
    if parts.len() != 3 || parts[0] != "v1" {
        bail!("meta.smoosh: bad header {header:?}");
    }
    let chunks: usize = parts[2].parse().context("meta.smoosh: bad chunk count")?;
    let mut entries = Vec::new();
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 4 {
            bail!(
                "meta.smoosh line {}: {line:?} is not name,chunk,start,end",
                i + 2
            );
        }
        let number = |s: &str| -> Result<usize> {
            s.parse()
                .with_context(|| format!("meta.smoosh line {}", i + 2))
        };
        entries.push(SmooshEntry {
            name: f[0].to_string(),
            chunk: number(f[1])?,
            start: number(f[2])?,
            end: number(f[3])?,
        });
    }
    Ok((chunks, entries))
}

/// A segment's smoosh entries with its index.drd and metadata.drd decoded.
pub struct SegmentParts<'a> {
    pub entries: BTreeMap<String, &'a [u8]>,
    pub index: IndexDrd,
    pub metadata: Option<serde_json::Value>,
}

impl SegmentFiles {
    pub fn parts(&self) -> Result<SegmentParts<'_>> {
        if let Some(factory) = self.files.get("factory.json") {
            let json: serde_json::Value =
                serde_json::from_slice(factory).context("factory.json is not JSON")?;
            if json["type"] != "mMapSegmentFactory" {
                bail!(
                    "factory.json names segment factory {}, expected mMapSegmentFactory",
                    json["type"]
                );
            }
        }
        let entries = self.entries()?;
        let index = read_index_drd(
            entries
                .get("index.drd")
                .context("the segment has no index.drd")?,
        )?;
        let metadata = match entries.get("metadata.drd") {
            Some(b) => Some(serde_json::from_slice(b).context("metadata.drd is not JSON")?),
            None => None,
        };
        Ok(SegmentParts {
            entries,
            index,
            metadata,
        })
    }
}

/// index.drd decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDrd {
    pub columns: Vec<String>,
    pub dimensions: Vec<String>,
    pub interval: (i64, i64),
    pub bitmap_serde: String,
}

pub fn read_index_drd(bytes: &[u8]) -> Result<IndexDrd> {
    let mut r = ByteReader::new(bytes, "index.drd");
    let names = |r: &mut ByteReader, what: &str| -> Result<Vec<String>> {
        let (_, items) = r.generic_indexed()?;
        items
            .into_iter()
            .map(|i| match i {
                Some(b) => String::from_utf8(b.to_vec())
                    .with_context(|| format!("index.drd: a {what} name is not UTF-8")),
                None => bail!("index.drd: a {what} name is null"),
            })
            .collect()
    };
    let columns = names(&mut r, "column")?;
    let dimensions = names(&mut r, "dimension")?;
    let start = r.i64()?;
    let end = r.i64()?;
    let len = r.len32()?;
    let serde =
        String::from_utf8(r.take(len)?.to_vec()).context("index.drd: bitmap serde is not UTF-8")?;
    check_bitmap_serde(
        &serde_json::from_str(&serde).context("index.drd: the bitmap serde factory is not JSON")?,
        "index.drd",
    )?;
    if start >= end {
        bail!("index.drd: empty interval {start}..{end}");
    }
    if r.remaining() > 0 {
        // Null-column trailers: one entry per column (null where stored).
        let (_, all_columns) = r.generic_indexed()?;
        let (_, all_dimensions) = r.generic_indexed()?;
        if all_columns.iter().any(Option::is_some) || all_dimensions.iter().any(Option::is_some) {
            bail!("index.drd: null-only columns are not read by this build");
        }
        if all_columns.len() != columns.len() || all_dimensions.len() != dimensions.len() {
            bail!("index.drd: the null-column lists do not match the column lists");
        }
        if r.remaining() > 0 {
            return r.fail("bytes after the null-column lists");
        }
    }
    if let Some(d) = dimensions.iter().find(|d| !columns.contains(d)) {
        bail!("index.drd: dimension {d} is not among the columns");
    }
    Ok(IndexDrd {
        columns,
        dimensions,
        interval: (start, end),
        bitmap_serde: serde,
    })
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub(crate) value_type: String,
    // Druid always writes it; a missing key is a damaged descriptor.
    pub(crate) has_multiple_values: bool,
    pub(crate) parts: Vec<serde_json::Value>,
}

/// A decoded column.
pub enum Column {
    Numeric(NumericValues, RoaringBitmap),
    String(StringColumn),
}

/// Only roaring bitmaps are read (Druid's other serde, concise, is legacy).
fn check_bitmap_serde(factory: &serde_json::Value, what: &str) -> Result<()> {
    if factory["type"] != "roaring" {
        bail!("{what}: bitmap serde {factory} is not supported (roaring only)");
    }
    Ok(())
}

/// A column descriptor's single part, its byte order and bitmap serde checked.
pub(crate) fn descriptor_part<'d>(
    descriptor: &'d Descriptor,
    what: &str,
) -> Result<&'d serde_json::Value> {
    let [part] = descriptor.parts.as_slice() else {
        bail!(
            "{what}: descriptor has {} parts, expected one",
            descriptor.parts.len()
        );
    };
    // Every part Druid writes names its byte order but the complex part
    // (its serde owns its bytes); V2 numeric and string parts also name
    // their bitmap serde.
    let part_type = part.get("type").and_then(|t| t.as_str()).unwrap_or("");
    match part.get("byteOrder") {
        Some(order) if order == "LITTLE_ENDIAN" => {}
        Some(order) => bail!("{what}: byte order {order} is not supported"),
        None if part_type == "complex" => {}
        None => bail!("{what}: the descriptor's part has no byteOrder"),
    }
    match part.get("bitmapSerdeFactory") {
        Some(factory) => check_bitmap_serde(factory, what)?,
        None if part_type.ends_with("V2") || part_type == "stringDictionary" => {
            bail!("{what}: the descriptor's {part_type} part has no bitmapSerdeFactory")
        }
        None => {}
    }
    Ok(part)
}

pub fn read_column(name: &str, bytes: &[u8]) -> Result<Column> {
    let what = format!("column {name}");
    let mut r = ByteReader::new(bytes, &what);
    let len = r.len32()?;
    let descriptor: Descriptor =
        serde_json::from_slice(r.take(len)?).with_context(|| format!("{what}: bad descriptor"))?;
    let part = descriptor_part(&descriptor, &what)?;
    let part_type = part.get("type").and_then(|t| t.as_str()).unwrap_or("");
    match (descriptor.value_type.as_str(), part_type) {
        (
            "LONG" | "FLOAT" | "DOUBLE",
            t @ ("longV2" | "floatV2" | "doubleV2" | "long" | "float" | "double"),
        ) => {
            let v2 = t.ends_with("V2");
            let (supplier, nulls) = if v2 {
                let size = r.len32()?;
                let supplier = r.take(size)?;
                let nulls = if r.remaining() > 0 {
                    let b = r.len32()?;
                    let bytes = r.take(b)?;
                    read_roaring(bytes)
                        .map_err(|e| anyhow::anyhow!("{what}: bad null bitmap: {e}"))?
                } else {
                    RoaringBitmap::new()
                };
                (supplier, nulls)
            } else {
                (r.rest(), RoaringBitmap::new())
            };
            if r.remaining() > 0 {
                return r.fail("bytes after the column's last part");
            }
            let values = read_numeric(&what, &descriptor.value_type, supplier)?;
            Ok(Column::Numeric(values, nulls))
        }
        ("COMPLEX", "complex") => {
            let type_name = part.get("typeName").and_then(|t| t.as_str()).unwrap_or("");
            let Some(kind) = ComplexKind::from_type_name(type_name) else {
                bail!("{what}: complex type {type_name:?} is not supported by this reader");
            };
            let cells = read_complex(&what, kind, r.rest())?;
            Ok(Column::Numeric(
                NumericValues::Complex(kind, cells),
                RoaringBitmap::new(),
            ))
        }
        ("STRING", "stringDictionary") => Ok(Column::String(
            read_string(name, &what, descriptor.has_multiple_values, &mut r)?.0,
        )),
        (vt, pt) => bail!("{what}: {vt} column with part {pt:?} is not supported by this reader"),
    }
}

fn read_numeric(what: &str, value_type: &str, supplier: &[u8]) -> Result<NumericValues> {
    let mut r = ByteReader::new(supplier, what);
    let version = r.u8()?;
    if version != 2 {
        return r.fail(format!(
            "numeric supplier version {version} is not supported (2)"
        ));
    }
    let n = r.len32()?;
    let per_block = r.len32()?;
    let compression = r.u8()?;
    if (0x80..=0xFD).contains(&compression) {
        if value_type != "LONG" {
            return r.fail("an encoded (longEncoding auto) column must be LONG");
        }
        return read_encoded_longs(&mut r, n, per_block, compression.wrapping_add(126));
    }
    let width = if value_type == "FLOAT" { 4 } else { 8 };
    let total = n
        .checked_mul(width)
        .filter(|t| *t <= i32::MAX as usize)
        .with_context(|| format!("{what}: {n} values are too many"))?;
    let raw = if compression == 0xFE {
        if per_block != 0 {
            return r.fail(format!(
                "{per_block} values per block with compression none (0)"
            ));
        }
        let raw = r.take(total)?.to_vec();
        if r.remaining() > 0 {
            return r.fail("bytes after the values");
        }
        raw
    } else {
        let raw = read_blocks(&mut r, compression, total, per_block.saturating_mul(width))?;
        if r.remaining() > 0 {
            return r.fail("bytes after the blocks");
        }
        raw
    };
    Ok(match value_type {
        "LONG" => NumericValues::Long(
            raw.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8")))
                .collect(),
        ),
        "DOUBLE" => NumericValues::Double(
            raw.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8")))
                .collect(),
        ),
        _ => NumericValues::Float(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                .collect(),
        ),
    })
}

/// Widths Druid's bit-packed long encodings use.
pub(crate) const PACKED_WIDTHS: [usize; 13] = [1, 2, 4, 8, 12, 16, 20, 24, 32, 40, 48, 56, 64];

/// Bits per code of a value table of `size` entries (1..=256).
pub(crate) fn table_bits(size: usize) -> usize {
    PACKED_WIDTHS
        .iter()
        .copied()
        .find(|w| size <= 1 << w)
        .unwrap_or(8)
}

/// `longEncoding: auto`: a table of up to 256 values or a delta from a base,
/// bit-packed MSB first with 4 zero bytes after each block (spec §5.3).
fn read_encoded_longs(
    r: &mut ByteReader,
    n: usize,
    per_block: usize,
    compression: u8,
) -> Result<NumericValues> {
    let encoding = r.u8()?;
    let header_version = r.u8()?;
    if header_version != 1 {
        return r.fail(format!(
            "long encoding header version {header_version} is not supported (1)"
        ));
    }
    enum Decode {
        Delta(i64),
        Table(Vec<i64>),
    }
    let (decode, bits) = match encoding {
        0x00 => {
            let base = r.i64()?;
            let bits = r.len32()?;
            (Decode::Delta(base), bits)
        }
        0x01 => {
            let size = r.len32()?;
            if !(1..=256).contains(&size) {
                return r.fail(format!("table of {size} values (1..=256 allowed)"));
            }
            let table: Vec<i64> = (0..size).map(|_| r.i64()).collect::<Result<_>>()?;
            (Decode::Table(table), table_bits(size))
        }
        other => {
            return r.fail(format!(
                "long encoding id {other} is not delta (0) or table (1)"
            ));
        }
    };
    if !PACKED_WIDTHS.contains(&bits) {
        return r.fail(format!("{bits} bits per value is not a supported width"));
    }
    let packed_len = |count: usize| (bits * count).div_ceil(8) + 4;
    let mut packed: Vec<Vec<u8>> = Vec::new();
    if compression == 0xFE {
        if per_block != 0 {
            return r.fail(format!(
                "{per_block} values per block with compression none (0)"
            ));
        }
        packed.push(r.take(packed_len(n))?.to_vec());
    } else {
        // Checked before any allocation: per_block comes from the file.
        if per_block == 0 || packed_len(per_block) > super::bytes::MAX_BLOCK_BYTES {
            return r.fail(format!(
                "{per_block} values of {bits} bits do not fit a 64 KiB block"
            ));
        }
        let (_, blocks) = r.generic_indexed()?;
        if blocks.len() != n.div_ceil(per_block) {
            return r.fail(format!(
                "{} blocks for {n} values of {per_block} per block",
                blocks.len()
            ));
        }
        for (i, block) in blocks.iter().enumerate() {
            let count = per_block.min(n - i * per_block);
            let Some(block) = block else {
                return r.fail(format!("block {i} is null"));
            };
            let mut out = vec![0u8; packed_len(count)];
            decode_block(r, compression, i, block, &mut out)?;
            packed.push(out);
        }
    }
    if r.remaining() > 0 {
        return r.fail("bytes after the blocks");
    }
    if packed.iter().any(|p| p[p.len() - 4..] != [0; 4]) {
        return r.fail("a packed block's 4 padding bytes are not zero");
    }
    let block_size = if compression == 0xFE {
        n.max(1)
    } else {
        per_block
    };
    let mut table_used = match &decode {
        Decode::Table(table) => vec![false; table.len()],
        Decode::Delta(_) => Vec::new(),
    };
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let v = unpack_msb(&packed[i / block_size], bits, i % block_size);
        values.push(match &decode {
            Decode::Delta(base) => base.wrapping_add(v as i64),
            Decode::Table(table) => match table.get(v as usize) {
                Some(x) => {
                    table_used[v as usize] = true;
                    *x
                }
                None => {
                    return r.fail(format!(
                        "row {i} points at table entry {v} of {}",
                        table.len()
                    ));
                }
            },
        });
    }
    // Druid's table holds exactly the column's distinct values.
    if let Decode::Table(table) = &decode {
        let mut sorted = table.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != table.len() || table_used.contains(&false) {
            return r.fail("the value table has repeated or unused entries");
        }
    }
    Ok(NumericValues::Long(values))
}

/// A portable roaring bitmap (spec 3.5), with the container offsets the
/// roaring crate skips checked against the container sizes, and no bytes
/// after the last container.
pub(crate) fn read_roaring(bytes: &[u8]) -> Result<RoaringBitmap> {
    const NO_RUN: u32 = 12346;
    const RUN: u16 = 12347;
    let mut r = ByteReader::new(bytes, "roaring bitmap");
    let cookie = u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes"));
    let (count, run_flags) = if cookie == NO_RUN {
        (
            u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes")) as usize,
            None,
        )
    } else if cookie as u16 == RUN {
        let count = (cookie >> 16) as usize + 1;
        (count, Some(r.take(count.div_ceil(8))?))
    } else {
        bail!("roaring bitmap: bad cookie {cookie:#x}");
    };
    if count > 65536 {
        bail!("roaring bitmap: {count} containers");
    }
    let header = r.take(count * 4)?;
    let has_offsets = run_flags.is_none() || count >= 4;
    let offsets = if has_offsets {
        Some(r.take(count * 4)?)
    } else {
        None
    };
    let mut at = r.pos();
    for i in 0..count {
        let cardinality = u16::from_le_bytes([header[4 * i + 2], header[4 * i + 3]]) as usize + 1;
        if let Some(o) = offsets {
            let stated = u32::from_le_bytes(o[4 * i..4 * i + 4].try_into().expect("4 bytes"));
            if stated as usize != at {
                bail!("roaring bitmap: container {i} is at {at}, its offset says {stated}");
            }
        }
        let is_run = run_flags.is_some_and(|f| f[i / 8] & (1 << (i % 8)) != 0);
        let size = if is_run {
            let runs = bytes
                .get(at..at + 2)
                .context("roaring bitmap: truncated run container")?;
            2 + 4 * u16::from_le_bytes([runs[0], runs[1]]) as usize
        } else if cardinality <= 4096 {
            2 * cardinality
        } else {
            8192
        };
        at += size;
    }
    if at != bytes.len() {
        bail!(
            "roaring bitmap: {} bytes, its containers end at {at}",
            bytes.len()
        );
    }
    RoaringBitmap::deserialize_from(bytes).map_err(|e| anyhow::anyhow!("roaring bitmap: {e}"))
}

/// Feature flags of a string part (spec 6.1).
const MULTI_VALUE: i32 = 1;
const MULTI_VALUE_V3: i32 = 2;
const NO_BITMAP_INDEX: i32 = 4;

fn read_string(
    name: &str,
    what: &str,
    multi_in_descriptor: bool,
    r: &mut ByteReader,
) -> Result<(StringColumn, Vec<RoaringBitmap>)> {
    let version = r.u8()?;
    let flags = match version {
        0 => 0,
        1 => MULTI_VALUE,
        2 | 3 => r.i32()?,
        v => return r.fail(format!("string part version {v} is not supported")),
    };
    if flags & !(MULTI_VALUE | MULTI_VALUE_V3 | NO_BITMAP_INDEX) != 0 {
        return r.fail(format!("string column flags {flags:#x} are not supported"));
    }
    let multi = flags & (MULTI_VALUE | MULTI_VALUE_V3) != 0;
    if multi != multi_in_descriptor {
        return r.fail(format!(
            "the descriptor says hasMultipleValues {multi_in_descriptor}, the part flags {flags:#x}"
        ));
    }
    let (dict_flags, items) = r.generic_indexed()?;
    if dict_flags != 1 && !items.is_empty() {
        return r.fail("dictionary is not marked sorted");
    }
    let dictionary: Vec<Option<String>> = items
        .into_iter()
        .map(|i| i.map(|b| String::from_utf8(b.to_vec())).transpose())
        .collect::<Result<_, _>>()
        .with_context(|| format!("{what}: a dictionary value is not UTF-8"))?;
    let names: Vec<Option<&str>> = dictionary.iter().map(|v| v.as_deref()).collect();
    if super::bytes::sorted_flag(&names) != 1 || names.iter().skip(1).any(Option::is_none) {
        return r.fail("dictionary values are not strictly increasing");
    }
    let (ids, offsets) = match (version, multi) {
        (0 | 3, false) => (read_vsize_ints(r)?, None),
        (1 | 3, true) if flags & MULTI_VALUE != 0 => {
            let (ids, offsets) = read_vsize_multi_ints(r)?;
            (ids, Some(offsets))
        }
        (2, true) if flags & MULTI_VALUE_V3 != 0 => {
            let v = r.u8()?;
            if v != 3 {
                return r.fail(format!("V3CompressedVSizeColumnarMultiInts version {v}"));
            }
            let offsets = read_compressed_ints(r)?;
            let ids = read_compressed_vsize_ints(what, r)?;
            if offsets.first().is_some_and(|o| *o != 0)
                || offsets.windows(2).any(|w| w[0] > w[1])
                || offsets.last().map(|l| *l as usize) != Some(ids.len())
            {
                return r.fail("multi-value row offsets do not cover the ids");
            }
            (ids, Some(offsets))
        }
        (2, false) => (read_compressed_vsize_ints(what, r)?, None),
        _ => return r.fail(format!("part version {version} with flags {flags:#x}")),
    };
    if let Some(bad) = ids.iter().find(|id| **id as usize >= dictionary.len()) {
        bail!(
            "{what}: id {bad} outside a dictionary of {}",
            dictionary.len()
        );
    }
    let column = StringColumn {
        name: name.to_string(),
        dictionary,
        ids,
        offsets,
    };
    let mut stored = Vec::new();
    if flags & NO_BITMAP_INDEX == 0 {
        let (_, bitmaps) = r.generic_indexed()?;
        if bitmaps.len() != column.dictionary.len() {
            return r.fail(format!(
                "{} bitmaps for {} dictionary entries",
                bitmaps.len(),
                column.dictionary.len()
            ));
        }
        for (i, b) in bitmaps.iter().enumerate() {
            let bytes = b.unwrap_or(&[]);
            stored.push(
                read_roaring(bytes)
                    .map_err(|e| anyhow::anyhow!("{what}: bitmap {i} is corrupt: {e}"))?,
            );
        }
        // The bitmaps repeat what the ids say: a disagreement is corruption.
        let expected = super::writer::value_bitmaps(&column)
            .with_context(|| format!("{what}: rows do not match the dictionary"))?;
        if let Some(i) = (0..stored.len()).find(|&i| stored[i] != expected[i]) {
            bail!("{what}: the bitmap of dictionary entry {i} does not match the rows' ids");
        }
    }
    if r.remaining() > 0 {
        return r.fail("bytes after the column's bitmaps");
    }
    Ok((column, stored))
}

fn read_width(r: &mut ByteReader) -> Result<usize> {
    let width = r.u8()? as usize;
    if !(1..=4).contains(&width) {
        return r.fail(format!("id width {width}"));
    }
    Ok(width)
}

fn be_id(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32)
}

/// VSizeColumnarInts: big-endian ids and 4 - width bytes of padding.
fn read_vsize_ints(r: &mut ByteReader) -> Result<Vec<u32>> {
    let v = r.u8()?;
    if v != 0 {
        return r.fail(format!("VSizeColumnarInts version {v}"));
    }
    let width = read_width(r)?;
    let size = r.len32()?;
    let body = r.take(size)?;
    if size < 4 - width || !(size - (4 - width)).is_multiple_of(width) {
        return r.fail(format!(
            "id block of {size} bytes does not fit {width}-byte ids"
        ));
    }
    if body[size - (4 - width)..].iter().any(|b| *b != 0) {
        return r.fail("the id block's padding is not zero");
    }
    Ok(body[..size - (4 - width)]
        .chunks_exact(width)
        .map(be_id)
        .collect())
}

/// VSizeColumnarMultiInts: row count, row end offsets in bytes, then the ids.
fn read_vsize_multi_ints(r: &mut ByteReader) -> Result<(Vec<u32>, Vec<u32>)> {
    let v = r.u8()?;
    if v != 1 {
        return r.fail(format!("VSizeColumnarMultiInts version {v}"));
    }
    let width = read_width(r)?;
    let size = r.len32()?;
    let body = r.take(size)?;
    let mut b = ByteReader::new(body, "multi-value ids");
    let rows = b.len32()?;
    let ends_bytes = rows
        .checked_mul(4)
        .filter(|n| *n <= b.remaining())
        .context("multi-value row count larger than the column")?;
    let ends = b.take(ends_bytes)?;
    let values = b.rest();
    let padding = 4 - width;
    if values.len() < padding || !(values.len() - padding).is_multiple_of(width) {
        bail!(
            "multi-value ids of {} bytes do not fit {width}-byte ids",
            values.len()
        );
    }
    if values[values.len() - padding..].iter().any(|b| *b != 0) {
        bail!("multi-value ids: the padding is not zero");
    }
    let values = &values[..values.len() - padding];
    let mut offsets = Vec::with_capacity(rows + 1);
    offsets.push(0u32);
    for e in ends.chunks_exact(4) {
        let end = i32::from_be_bytes(e.try_into().expect("4 bytes"));
        let last = *offsets.last().expect("starts with 0");
        if end < 0
            || !(end as usize).is_multiple_of(width)
            || ((end as usize / width) as u32) < last
        {
            bail!("multi-value row end {end} is not a valid offset");
        }
        offsets.push((end as usize / width) as u32);
    }
    if offsets.last().map(|l| *l as usize * width) != Some(values.len()) {
        bail!(
            "multi-value row ends do not cover the {} id bytes",
            values.len()
        );
    }
    Ok((values.chunks_exact(width).map(be_id).collect(), offsets))
}

/// CompressedColumnarInts: blocks of little-endian i32 (multi-value offsets).
fn read_compressed_ints(r: &mut ByteReader) -> Result<Vec<u32>> {
    let v = r.u8()?;
    if v != 2 {
        return r.fail(format!("CompressedColumnarInts version {v}"));
    }
    let n = r.len32()?;
    let per_block = r.len32()?;
    let compression = r.u8()?;
    let total = n.checked_mul(4).context("too many offsets")?;
    let raw = read_blocks(r, compression, total, per_block.saturating_mul(4))?;
    Ok(raw
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect())
}

/// CompressedVSizeColumnarInts: blocks of little-endian ids of 1-4 bytes.
fn read_compressed_vsize_ints(what: &str, r: &mut ByteReader) -> Result<Vec<u32>> {
    let v = r.u8()?;
    if v != 2 {
        return r.fail(format!("CompressedVSizeColumnarInts version {v}"));
    }
    let width = read_width(r)?;
    let n = r.len32()?;
    let per_block = r.len32()?;
    let compression = r.u8()?;
    let total = n
        .checked_mul(width)
        .with_context(|| format!("{what}: too many ids"))?;
    let raw = read_blocks(r, compression, total, per_block.saturating_mul(width))?;
    Ok(raw
        .chunks_exact(width)
        .map(|c| {
            let mut b = [0u8; 4];
            b[..width].copy_from_slice(c);
            u32::from_le_bytes(b)
        })
        .collect())
}

/// The stored value bitmaps of a string column, as (value, rows).
pub fn read_bitmaps(name: &str, bytes: &[u8]) -> Result<Vec<(Option<String>, RoaringBitmap)>> {
    let what = format!("column {name}");
    let mut r = ByteReader::new(bytes, &what);
    let len = r.len32()?;
    let descriptor: Descriptor =
        serde_json::from_slice(r.take(len)?).with_context(|| format!("{what}: bad descriptor"))?;
    let part = descriptor_part(&descriptor, &what)?;
    if descriptor.value_type != "STRING" || part["type"] != "stringDictionary" {
        bail!("column {name} is not a string column");
    }
    let (column, bitmaps) = read_string(name, &what, descriptor.has_multiple_values, &mut r)?;
    Ok(column.dictionary.into_iter().zip(bitmaps).collect())
}

/// Read a whole segment into memory.
pub fn read_segment(path: &Path) -> Result<(IndexDrd, SegmentData)> {
    read_segment_files(&SegmentFiles::open(path)?)
}

/// Decode a segment's files (every column, checked).
pub fn read_segment_files(files: &SegmentFiles) -> Result<(IndexDrd, SegmentData)> {
    let SegmentParts {
        entries,
        index: drd,
        metadata,
    } = files.parts()?;
    let time_bytes = entries
        .get("__time")
        .context("the segment has no __time column")?;
    let Column::Numeric(NumericValues::Long(times), _) = read_column("__time", time_bytes)? else {
        bail!("__time is not a long column");
    };
    let (start, end) = drd.interval;
    if let Some(i) = (0..times.len())
        .find(|&i| !(start..end).contains(&times[i]) || (i > 0 && times[i - 1] > times[i]))
    {
        bail!(
            "__time row {i}: {} is out of order or outside the interval {start}..{end}",
            times[i]
        );
    }
    let mut data = SegmentData {
        interval: drd.interval,
        numeric_dimensions: Vec::new(),
        times,
        dimensions: Vec::new(),
        metrics: Vec::new(),
        metadata,
    };
    let n = data.times.len();
    for name in &drd.columns {
        let bytes = entries
            .get(name.as_str())
            .with_context(|| format!("column {name} has no smoosh entry"))?;
        let column = read_column(name, bytes)?;
        let rows = match &column {
            Column::Numeric(v, _) => v.len(),
            Column::String(s) => s.num_rows(),
        };
        if rows != n {
            bail!("column {name} has {rows} rows, __time has {n}");
        }
        let position = drd.dimensions.iter().position(|d| d == name);
        match (column, position) {
            (Column::String(s), Some(_)) => data.dimensions.push(s),
            (Column::Numeric(values, nulls), None) => data.metrics.push(MetricColumn {
                name: name.clone(),
                values,
                nulls,
            }),
            (Column::Numeric(values, nulls), Some(position)) => {
                data.numeric_dimensions.push(NumericDimension {
                    position,
                    column: MetricColumn {
                        name: name.clone(),
                        values,
                        nulls,
                    },
                })
            }
            (Column::String(_), None) => {
                bail!("column {name} is a string column but not listed as a dimension")
            }
        }
    }
    // Dimensions in index.drd's dimension order.
    data.dimensions
        .sort_by_key(|d| drd.dimensions.iter().position(|n| *n == d.name));
    data.numeric_dimensions.sort_by_key(|d| d.position);
    if data
        .dimension_names()
        .is_none_or(|names| names != drd.dimensions)
    {
        bail!("index.drd lists dimensions without columns");
    }
    Ok((drd, data))
}
