//! Writing a segment directory (version.bin, factory.json, meta.smoosh,
//! 00000.smoosh) and its index.zip, as Druid's IndexMergerV9 lays them out.

use super::bytes::{
    compress_block, compression_id, write_blocks, write_generic_indexed, write_prefixed_string,
    write_sorted_roaring, write_string_list,
};
use super::*;
use crate::spec::{Compression, LongEncoding, ResolvedIndexSpec};
use anyhow::{Context, Result, bail};
use std::path::Path;

/// One column file (or other smoosh entry) in the making.
struct Entry {
    name: String,
    bytes: Vec<u8>,
}

/// Values per block for 8-byte numbers, 4-byte floats, and n-byte ids.
fn values_per_block(width: usize) -> usize {
    match width {
        8 => 8192,
        4 => 16384,
        2 => 32768,
        1 => 65536,
        _ => 16384,
    }
}

/// Bytes per dictionary id, from the dictionary's size as Druid computes it.
fn id_width(cardinality: usize) -> usize {
    match cardinality {
        0..=0xFF => 1,
        0x100..=0xFFFF => 2,
        0x1_0000..=0xFF_FFFF => 3,
        _ => 4,
    }
}

pub fn numeric_column(
    descriptor: &str,
    values: &NumericValues,
    nulls: &RoaringBitmap,
    compression: Compression,
) -> Result<Vec<u8>> {
    numeric_column_encoded(descriptor, values, nulls, compression, LongEncoding::Longs)
}

/// A numeric column; with `longEncoding: auto`, long columns are table or
/// delta encoded where Druid would choose so.
pub fn numeric_column_encoded(
    descriptor: &str,
    values: &NumericValues,
    nulls: &RoaringBitmap,
    compression: Compression,
    long_encoding: LongEncoding,
) -> Result<Vec<u8>> {
    if let (LongEncoding::Auto, NumericValues::Long(longs)) = (long_encoding, values)
        && let Some(supplier) = encoded_long_supplier(longs, compression)?
    {
        return finish_numeric(descriptor, &supplier, nulls);
    }
    let (raw, width): (Vec<u8>, usize) = match values {
        NumericValues::Long(v) => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), 8),
        NumericValues::Double(v) => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), 8),
        NumericValues::Float(v) => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), 4),
        NumericValues::Complex(..) => bail!("a complex column is not numeric"),
    };
    let mut supplier = Vec::with_capacity(raw.len() / 2 + 64);
    supplier.push(2);
    supplier.extend_from_slice(&(values.len() as i32).to_be_bytes());
    match compression {
        Compression::None => {
            supplier.extend_from_slice(&0i32.to_be_bytes());
            supplier.push(compression_id(compression));
            supplier.extend_from_slice(&raw);
        }
        Compression::Lz4 | Compression::Lzf | Compression::Uncompressed => {
            let per_block = values_per_block(width);
            supplier.extend_from_slice(&(per_block as i32).to_be_bytes());
            supplier.push(compression_id(compression));
            write_blocks(&mut supplier, &raw, per_block * width, compression);
        }
    }
    finish_numeric(descriptor, &supplier, nulls)
}

/// Descriptor, sized supplier, and the null bitmap when a row is null.
fn finish_numeric(descriptor: &str, supplier: &[u8], nulls: &RoaringBitmap) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(supplier.len() + descriptor.len() + 16);
    write_prefixed_string(&mut out, descriptor);
    out.extend_from_slice(&(supplier.len() as i32).to_be_bytes());
    out.extend_from_slice(supplier);
    if !nulls.is_empty() {
        let mut bitmap = Vec::new();
        nulls.serialize_into(&mut bitmap)?;
        out.extend_from_slice(&(bitmap.len() as i32).to_be_bytes());
        out.extend_from_slice(&bitmap);
    }
    Ok(out)
}

/// Widths Druid's bit-packed long encodings use.
const PACKED_WIDTHS: [u32; 13] = [1, 2, 4, 8, 12, 16, 20, 24, 32, 40, 48, 56, 64];

/// Pack `bits`-wide values most significant bit first, then 4 zero bytes.
fn pack_msb(values: impl Iterator<Item = u64>, bits: u32, out: &mut Vec<u8>) {
    let mut acc: u128 = 0;
    let mut held = 0u32;
    for v in values {
        acc = (acc << bits) | v as u128;
        held += bits;
        while held >= 8 {
            out.push((acc >> (held - 8)) as u8);
            held -= 8;
        }
        acc &= (1u128 << held) - 1;
    }
    if held > 0 {
        out.push((acc << (8 - held)) as u8);
    }
    out.extend_from_slice(&[0; 4]);
}

/// Druid's `auto` choice: a table for at most 256 distinct values (in
/// first-seen order), else a delta from the minimum when the range fits;
/// None means plain longs.
fn encoded_long_supplier(values: &[i64], compression: Compression) -> Result<Option<Vec<u8>>> {
    let mut table: Vec<i64> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for &v in values {
        if index.len() > 256 {
            break;
        }
        index.entry(v).or_insert_with(|| {
            table.push(v);
            table.len() as u64 - 1
        });
    }
    let mut header = Vec::new();
    let (bits, codes): (u32, Box<dyn Fn(i64) -> u64>) = if table.len() <= 256 {
        let bits = PACKED_WIDTHS
            .iter()
            .copied()
            .find(|w| table.len() <= 1 << w)
            .unwrap_or(8);
        header.extend_from_slice(&[0x01, 0x01]);
        header.extend_from_slice(&(table.len() as i32).to_be_bytes());
        for v in &table {
            header.extend_from_slice(&v.to_be_bytes());
        }
        (bits, Box::new(move |v| index[&v]))
    } else {
        let (min, max) = (
            *values.iter().min().expect("rows"),
            *values.iter().max().expect("rows"),
        );
        let Some(range) = max.checked_sub(min).filter(|r| *r != i64::MAX) else {
            return Ok(None);
        };
        let Some(bits) = PACKED_WIDTHS
            .iter()
            .copied()
            .find(|w| (range as u128) < 1u128 << w)
        else {
            return Ok(None);
        };
        header.extend_from_slice(&[0x00, 0x01]);
        header.extend_from_slice(&min.to_be_bytes());
        header.extend_from_slice(&(bits as i32).to_be_bytes());
        (bits, Box::new(move |v| v.wrapping_sub(min) as u64))
    };
    // Largest power of two whose packed block (plus 4 bytes) fits 64 KiB.
    let mut per_block = 1usize << 16;
    while (bits as usize * per_block).div_ceil(8) + 4 > super::bytes::MAX_BLOCK_BYTES {
        per_block /= 2;
    }
    let flagged = compression_id(compression).wrapping_sub(126);
    let mut supplier = Vec::new();
    supplier.push(2);
    supplier.extend_from_slice(&(values.len() as i32).to_be_bytes());
    match compression {
        Compression::None => {
            supplier.extend_from_slice(&0i32.to_be_bytes());
            supplier.push(flagged);
            supplier.extend_from_slice(&header);
            pack_msb(values.iter().map(|v| codes(*v)), bits, &mut supplier);
        }
        Compression::Lz4 | Compression::Lzf | Compression::Uncompressed => {
            supplier.extend_from_slice(&(per_block as i32).to_be_bytes());
            supplier.push(flagged);
            supplier.extend_from_slice(&header);
            let blocks: Vec<Vec<u8>> = values
                .chunks(per_block)
                .map(|chunk| {
                    let mut packed = Vec::new();
                    pack_msb(chunk.iter().map(|v| codes(*v)), bits, &mut packed);
                    compress_block(&packed, compression)
                })
                .collect();
            let items: Vec<Option<&[u8]>> = blocks.iter().map(|b| Some(b.as_slice())).collect();
            write_generic_indexed(&mut supplier, 0, &items);
        }
    }
    Ok(Some(supplier))
}

/// A string column with Druid's default bitmaps (run compression on).
pub fn string_column(col: &StringColumn, compression: Compression) -> Result<Vec<u8>> {
    string_column_with(col, compression, true)
}

pub fn string_column_with(
    col: &StringColumn,
    compression: Compression,
    run_compression: bool,
) -> Result<Vec<u8>> {
    let cardinality = col.dictionary.len();
    let width = id_width(cardinality);
    let multi = col.offsets.as_deref();
    let mut out = Vec::new();
    write_prefixed_string(
        &mut out,
        if multi.is_some() {
            MULTI_STRING_DESCRIPTOR
        } else {
            STRING_DESCRIPTOR
        },
    );
    let dictionary: Vec<Option<&str>> = col.dictionary.iter().map(|v| v.as_deref()).collect();
    match compression {
        Compression::Lz4 | Compression::Lzf => {
            // Part version 2; flag 2 (MULTI_VALUE_V3) for multi-value.
            out.push(2);
            out.extend_from_slice(&(if multi.is_some() { 2i32 } else { 0 }).to_be_bytes());
            write_string_list(&mut out, &dictionary);
            if let Some(offsets) = multi {
                // V3CompressedVSizeColumnarMultiInts: the offsets as
                // CompressedColumnarInts, then the ids as below.
                out.push(3);
                let mut raw = Vec::with_capacity(offsets.len() * 4);
                for o in offsets {
                    raw.extend_from_slice(&o.to_le_bytes());
                }
                let per_block = values_per_block(4);
                out.push(2);
                out.extend_from_slice(&(offsets.len() as i32).to_be_bytes());
                out.extend_from_slice(&(per_block as i32).to_be_bytes());
                out.push(compression_id(compression));
                write_blocks(&mut out, &raw, per_block * 4, compression);
            }
            let raw = ids_le(&col.ids, width);
            let per_block = values_per_block(width);
            out.push(2);
            out.push(width as u8);
            out.extend_from_slice(&(col.ids.len() as i32).to_be_bytes());
            out.extend_from_slice(&(per_block as i32).to_be_bytes());
            out.push(compression_id(compression));
            write_blocks(&mut out, &raw, per_block * width, compression);
        }
        Compression::Uncompressed => {
            let padding = 4 - width;
            match multi {
                None => {
                    out.push(0);
                    write_string_list(&mut out, &dictionary);
                    out.push(0);
                    out.push(width as u8);
                    out.extend_from_slice(
                        &((col.ids.len() * width + padding) as i32).to_be_bytes(),
                    );
                }
                Some(offsets) => {
                    // VSizeColumnarMultiInts: row count, each row's end as
                    // a byte offset into the id bytes, then the ids.
                    out.push(1);
                    write_string_list(&mut out, &dictionary);
                    let rows = offsets.len() - 1;
                    out.push(1);
                    out.push(width as u8);
                    let size = 4 + 4 * rows + col.ids.len() * width + padding;
                    out.extend_from_slice(&(size as i32).to_be_bytes());
                    out.extend_from_slice(&(rows as i32).to_be_bytes());
                    for end in &offsets[1..] {
                        out.extend_from_slice(&((*end as usize * width) as i32).to_be_bytes());
                    }
                }
            }
            for id in &col.ids {
                out.extend_from_slice(&id.to_be_bytes()[4 - width..]);
            }
            out.extend(std::iter::repeat_n(0u8, padding));
        }
        Compression::None => {
            bail!("dimension compression {compression:?} is not written by this build")
        }
    }
    let (bitmaps, ends) = serialized_value_bitmaps(col, run_compression)?;
    let items: Vec<Option<&[u8]>> = ends
        .iter()
        .scan(0, |start, &end| {
            let item = &bitmaps[*start..end];
            *start = end;
            Some(Some(item))
        })
        .collect();
    write_generic_indexed(&mut out, 0, &items);
    Ok(out)
}

/// Ids as `width`-byte little-endian integers. One arm per width: a copy
/// of a variable-length slice per id was a memcpy call each (~1M a
/// 366-segment replay, callgrind).
fn ids_le(ids: &[u32], width: usize) -> Vec<u8> {
    let mut raw = Vec::with_capacity(ids.len() * width);
    match width {
        1 => raw.extend(ids.iter().map(|&id| id as u8)),
        2 => ids
            .iter()
            .for_each(|&id| raw.extend_from_slice(&(id as u16).to_le_bytes())),
        3 => ids
            .iter()
            .for_each(|&id| raw.extend_from_slice(&id.to_le_bytes()[..3])),
        _ => ids
            .iter()
            .for_each(|&id| raw.extend_from_slice(&id.to_le_bytes())),
    }
    raw
}

/// One bitmap per dictionary entry: the rows holding it. A row without
/// values belongs to the null entry, which must then exist (Druid adds null
/// to the dictionary for an empty list).
pub fn value_bitmaps(col: &StringColumn) -> Result<Vec<RoaringBitmap>> {
    if col.offsets.is_none() {
        return single_value_bitmaps(col);
    }
    let mut bitmaps = vec![RoaringBitmap::new(); col.dictionary.len()];
    for row in 0..col.num_rows() {
        let ids = col.row(row);
        if ids.is_empty() {
            match (col.dictionary.first(), bitmaps.first_mut()) {
                (Some(None), Some(b)) => {
                    b.insert(row as u32);
                }
                _ => bail!(
                    "column {}: row {row} has no values but the dictionary has no null",
                    col.name
                ),
            }
        }
        for &id in ids {
            match bitmaps.get_mut(id as usize) {
                // Rows arrive in order, so appending is enough.
                Some(b) => {
                    if b.try_push(row as u32).is_err() {
                        b.insert(row as u32);
                    }
                }
                None => bail!("column {}: id {id} outside its dictionary", col.name),
            }
        }
    }
    Ok(bitmaps)
}

/// A single-value column's rows grouped by id (a counting sort): id i's
/// rows, ascending, are `rows[starts[i]..starts[i + 1]]`.
fn rows_by_id(col: &StringColumn) -> Result<(Vec<u32>, Vec<u32>)> {
    let values = col.dictionary.len();
    let mut starts = vec![0u32; values + 1];
    for &id in &col.ids {
        match starts.get_mut(id as usize + 1) {
            Some(count) => *count += 1,
            None => bail!("column {}: id {id} outside its dictionary", col.name),
        }
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut rows = vec![0u32; col.ids.len()];
    let mut next = starts.clone();
    for (row, &id) in col.ids.iter().enumerate() {
        let at = &mut next[id as usize];
        rows[*at as usize] = row as u32;
        *at += 1;
    }
    Ok((starts, rows))
}

/// `value_bitmaps` of a single-value column, from `rows_by_id`.
fn single_value_bitmaps(col: &StringColumn) -> Result<Vec<RoaringBitmap>> {
    let (starts, rows) = rows_by_id(col)?;
    Ok(starts
        .windows(2)
        .map(|w| {
            RoaringBitmap::from_sorted_iter(rows[w[0] as usize..w[1] as usize].iter().copied())
                .expect("a counting sort keeps each id's rows ascending")
        })
        .collect())
}

/// The serialized value bitmaps of a column (run containers where smaller,
/// with `run_compression`, as Druid's runOptimize), one after another in
/// one buffer, with where each ends. A single-value column's are written
/// straight from its rows grouped by id: building them as RoaringBitmaps
/// first cost ~60 instructions a row (callgrind).
fn serialized_value_bitmaps(
    col: &StringColumn,
    run_compression: bool,
) -> Result<(Vec<u8>, Vec<usize>)> {
    let check = |i: usize, empty: bool| {
        if empty {
            bail!("column {}: dictionary entry {i} has no rows", col.name);
        }
        Ok(())
    };
    let mut bytes = Vec::with_capacity(2 * col.ids.len() + 16 * col.dictionary.len());
    let mut ends = Vec::with_capacity(col.dictionary.len());
    if col.offsets.is_none() {
        let (starts, rows) = rows_by_id(col)?;
        for (i, w) in starts.windows(2).enumerate() {
            let rows = &rows[w[0] as usize..w[1] as usize];
            check(i, rows.is_empty())?;
            write_sorted_roaring(&mut bytes, rows, run_compression);
            ends.push(bytes.len());
        }
        return Ok((bytes, ends));
    }
    for (i, b) in value_bitmaps(col)?.iter_mut().enumerate() {
        check(i, b.is_empty())?;
        if run_compression {
            b.optimize();
        }
        b.serialize_into(&mut bytes)?;
        ends.push(bytes.len());
    }
    Ok((bytes, ends))
}

pub fn index_drd(data: &SegmentData) -> Result<Vec<u8>> {
    let metrics = data.sorted_metrics();
    let dims: Vec<Option<&str>> = data
        .dimension_names()
        .context("numeric dimension positions do not fit the dimension list")?
        .into_iter()
        .map(Some)
        .collect();
    let mut columns: Vec<Option<&str>> = metrics.iter().map(|m| Some(m.name.as_str())).collect();
    columns.extend(dims.iter().copied());
    let mut out = Vec::new();
    write_string_list(&mut out, &columns);
    write_string_list(&mut out, &dims);
    out.extend_from_slice(&data.interval.0.to_be_bytes());
    out.extend_from_slice(&data.interval.1.to_be_bytes());
    write_prefixed_string(&mut out, BITMAP_SERDE);
    // No null-only columns are stored, so both trailers are all null.
    write_string_list(&mut out, &vec![None; columns.len()]);
    write_string_list(&mut out, &vec![None; dims.len()]);
    Ok(out)
}

/// Check the invariants a loadable segment needs before writing anything.
fn check(data: &SegmentData) -> Result<()> {
    let n = data.num_rows();
    if n == 0 {
        bail!("a segment needs at least one row");
    }
    if n > i32::MAX as usize {
        bail!("{n} rows do not fit one segment");
    }
    let (start, end) = data.interval;
    if let Some(t) = data.times.iter().find(|t| **t < start || **t >= end) {
        bail!("row time {t} lies outside the segment interval {start}..{end}");
    }
    for d in &data.dimensions {
        if d.num_rows() != n {
            bail!(
                "dimension {} has {} rows, expected {n}",
                d.name,
                d.num_rows()
            );
        }
        if let Some(o) = &d.offsets
            && (o.first() != Some(&0)
                || o.windows(2).any(|w| w[0] > w[1])
                || o.last().map(|l| *l as usize) != Some(d.ids.len()))
        {
            bail!("dimension {}: row offsets do not cover its ids", d.name);
        }
        let names: Vec<Option<&str>> = d.dictionary.iter().map(|v| v.as_deref()).collect();
        if super::bytes::sorted_flag(&names) != 1 {
            bail!(
                "dimension {}: dictionary is not strictly increasing",
                d.name
            );
        }
    }
    for m in data
        .metrics
        .iter()
        .chain(data.numeric_dimensions.iter().map(|d| &d.column))
    {
        if m.values.len() != n {
            bail!(
                "column {} has {} rows, expected {n}",
                m.name,
                m.values.len()
            );
        }
    }
    let mut names: Vec<&str> = data
        .dimension_names()
        .context("numeric dimension positions do not fit the dimension list")?;
    names.extend(data.metrics.iter().map(|m| m.name.as_str()));
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!("two columns are named {:?}", w[0]);
    }
    Ok(())
}

/// A segment's files (name, bytes), sorted by name.
pub type SegmentFileSet = Vec<(String, Vec<u8>)>;

/// Write a segment directory; returns its files' names and sizes.
pub fn write_segment_dir(
    dir: &Path,
    data: &SegmentData,
    spec: &ResolvedIndexSpec,
) -> Result<Vec<(String, u64)>> {
    let files = build_segment(data, spec)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, bytes) in &files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        file_written();
        written.push((name.clone(), bytes.len() as u64));
    }
    Ok(written)
}

/// The crash harness's hook: with `ABORT_AFTER_FILES_VAR` set to N, the
/// process aborts (no clean-up, as under kill -9) right after the Nth
/// segment file it writes (spills and pushes alike).
pub const ABORT_AFTER_FILES_VAR: &str = "KINESIS_PEON_ABORT_AFTER_FILES";

/// Count a segment file written; abort at the hook's count.
pub fn file_written() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LIMIT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    static WRITTEN: AtomicU64 = AtomicU64::new(0);
    let limit = LIMIT.get_or_init(|| {
        std::env::var(ABORT_AFTER_FILES_VAR)
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(limit) = limit
        && WRITTEN.fetch_add(1, Ordering::SeqCst) + 1 >= *limit
    {
        eprintln!("{ABORT_AFTER_FILES_VAR}={limit}: aborting after that many files");
        std::process::abort();
    }
}

/// Build a segment's files in memory: version.bin, factory.json,
/// meta.smoosh and its smoosh chunks (one below 2 GiB).
pub fn build_segment(data: &SegmentData, spec: &ResolvedIndexSpec) -> Result<SegmentFileSet> {
    build_segment_chunked(data, spec, smoosh_chunk_limit())
}

/// The environment variable that lowers the smoosh chunk limit, so tests
/// can write multi-chunk segments without 2 GiB of rows.
pub const CHUNK_LIMIT_VAR: &str = "KINESIS_PEON_SMOOSH_CHUNK_BYTES";

/// Druid's limit (Integer.MAX_VALUE), unless `CHUNK_LIMIT_VAR` sets a
/// smaller positive one.
fn smoosh_chunk_limit() -> i64 {
    static LIMIT: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var(CHUNK_LIMIT_VAR)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|&v| v > 0 && v < MAX_CHUNK_SIZE)
            .unwrap_or(MAX_CHUNK_SIZE)
    })
}

/// `build_segment` with chunks of at most `max_chunk` bytes.
pub fn build_segment_chunked(
    data: &SegmentData,
    spec: &ResolvedIndexSpec,
    max_chunk: i64,
) -> Result<SegmentFileSet> {
    check(data)?;
    let mut entries = Vec::new();
    entries.push(Entry {
        name: "__time".into(),
        bytes: numeric_column_encoded(
            LONG_DESCRIPTOR,
            &NumericValues::Long(data.times.clone()),
            &RoaringBitmap::new(),
            spec.metric_compression,
            spec.long_encoding,
        )?,
    });
    // Numeric dimensions are stored as metrics are (spec 5.8).
    let numeric_dimensions = data
        .numeric_dimensions
        .iter()
        .map(|n| (&n.column, "dimension"));
    let metrics = data.sorted_metrics().into_iter().map(|m| (m, "metric"));
    for (m, what) in metrics.chain(numeric_dimensions) {
        let descriptor = match &m.values {
            NumericValues::Long(_) => LONG_DESCRIPTOR,
            NumericValues::Double(_) => DOUBLE_DESCRIPTOR,
            NumericValues::Float(_) => FLOAT_DESCRIPTOR,
            NumericValues::Complex(kind, cells) => {
                // Descriptor, then the complex serde's bytes (spec 9).
                let mut bytes = Vec::new();
                let descriptor = format!(
                    r#"{{"valueType":"COMPLEX","hasMultipleValues":false,"parts":[{{"type":"complex","typeName":"{}"}}]}}"#,
                    kind.type_name()
                );
                write_prefixed_string(&mut bytes, &descriptor);
                bytes.extend_from_slice(
                    &super::complex::write_complex(*kind, cells)
                        .with_context(|| format!("{what} {}", m.name))?,
                );
                entries.push(Entry {
                    name: m.name.clone(),
                    bytes,
                });
                continue;
            }
        };
        entries.push(Entry {
            name: m.name.clone(),
            bytes: numeric_column_encoded(
                descriptor,
                &m.values,
                &m.nulls,
                spec.metric_compression,
                spec.long_encoding,
            )
            .with_context(|| format!("{what} {}", m.name))?,
        });
    }
    for d in &data.dimensions {
        entries.push(Entry {
            name: d.name.clone(),
            bytes: string_column_with(d, spec.dimension_compression, spec.run_compression)
                .with_context(|| format!("dimension {}", d.name))?,
        });
    }
    entries.push(Entry {
        name: "index.drd".into(),
        bytes: index_drd(data)?,
    });
    if let Some(meta) = &data.metadata {
        entries.push(Entry {
            name: "metadata.drd".into(),
            bytes: serde_json::to_vec(meta)?,
        });
    }

    let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    names.sort_by(|a, b| crate::java::java_cmp(a, b));
    if names.windows(2).any(|w| w[0] == w[1]) {
        bail!("two columns share a name");
    }
    // Task validation and discovery keep such names out; a segment read
    // elsewhere might still hold one.
    for name in &names {
        if let Some(why) = crate::spec::unlistable_smoosh_name(name) {
            bail!("column name {name:?} cannot be stored: {why}");
        }
    }

    let (chunks, offsets) = smoosh(&entries, max_chunk)?;
    let mut meta = format!("v1,{max_chunk},{}\n", chunks.len());
    for name in &names {
        let (n, s, e) = offsets[name];
        meta.push_str(&format!("{name},{n},{s},{e}\n"));
    }
    let mut files: SegmentFileSet = chunks
        .into_iter()
        .enumerate()
        .map(|(n, chunk)| (format!("{n:05}.smoosh"), chunk))
        .collect();
    files.push(("factory.json".into(), FACTORY_JSON.as_bytes().to_vec()));
    files.push(("meta.smoosh".into(), meta.into_bytes()));
    files.push(("version.bin".into(), VERSION_BIN.to_vec()));
    Ok(files)
}

/// Where each smoosh entry lies: chunk number, start and end.
type SmooshOffsets<'a> = hashbrown::HashMap<&'a str, (usize, i64, i64)>;

/// Lay entries into chunks as Druid's FileSmoosher does: in the order
/// written, a new chunk when the current one has fewer bytes left than the
/// entry needs, an entry never split across chunks, and one larger than a
/// whole chunk refused.
fn smoosh(entries: &[Entry], max_chunk: i64) -> Result<(Vec<Vec<u8>>, SmooshOffsets<'_>)> {
    let max = usize::try_from(max_chunk)
        .ok()
        .filter(|&m| m > 0)
        .with_context(|| format!("smoosh chunk limit {max_chunk} is not positive"))?;
    let mut left: usize = entries.iter().map(|e| e.bytes.len()).sum();
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut offsets = hashbrown::HashMap::new();
    for e in entries {
        let size = e.bytes.len();
        if size > max {
            bail!(
                "column {} of {size} bytes exceeds the smoosh chunk limit of {max} bytes; lower maxRowsPerSegment",
                e.name
            );
        }
        match chunks.last() {
            Some(chunk) if max - chunk.len() >= size => {}
            _ => chunks.push(Vec::with_capacity(left.min(max))),
        }
        left -= size;
        let n = chunks.len() - 1;
        let chunk = &mut chunks[n];
        let start = chunk.len() as i64;
        chunk.extend_from_slice(&e.bytes);
        offsets.insert(e.name.as_str(), (n, start, chunk.len() as i64));
    }
    Ok((chunks, offsets))
}

/// Zips segments into index.zip bytes, one DEFLATE encoder for all of
/// them. The zip crate starts a fresh encoder for every entry, and zeroing
/// its ~300 KB of tables was 7% of a 366-segment replay's instructions
/// (callgrind); a reset encoder only clears its hash heads. The archive is
/// the plain zip layout Java's ZipFile and ZipInputStream read: sizes and
/// CRC in every local header (no data descriptors), no zip64 (a smoosh
/// chunk is under 2 GiB), a fixed timestamp so the same segment always zips
/// to the same bytes.
pub struct SegmentZipper {
    deflate: flate2::Compress,
}

impl Default for SegmentZipper {
    fn default() -> Self {
        SegmentZipper {
            // Level 1: the columns are LZ4 already. Raw DEFLATE (no zlib
            // header), as zip entries hold it.
            deflate: flate2::Compress::new(flate2::Compression::new(1), false),
        }
    }
}

/// 1980-01-01 00:00:00, the earliest MS-DOS date.
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = (1 << 5) | 1;
/// Version 2.0 (DEFLATE); "made by" Unix so the permissions below count.
const ZIP_VERSION: u16 = 20;
const MADE_BY_UNIX: u16 = (3 << 8) | ZIP_VERSION;
/// A regular file, rw-r--r--.
const UNIX_FILE_ATTRIBUTES: u32 = 0o100644 << 16;

impl SegmentZipper {
    /// Zip a segment's files, sorted by name: entries under
    /// `STORE_BELOW_BYTES` stored, the rest deflated. Returns the archive
    /// and the uncompressed size (Druid's DataSegment `size`).
    pub fn zip(&mut self, files: &SegmentFileSet) -> Result<(Vec<u8>, u64)> {
        let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let total: usize = files.iter().map(|(_, b)| b.len()).sum();
        let mut out = Vec::with_capacity(total + 128 * files.len() + 64);
        let mut central = Vec::with_capacity(80 * files.len());
        for (name, bytes) in sorted {
            let offset = zip_u32(out.len(), "index.zip")?;
            let size = zip_u32(bytes.len(), name)?;
            let crc = crc32fast::hash(bytes);
            let deflated = bytes.len() >= STORE_BELOW_BYTES;
            let method: u16 = if deflated { 8 } else { 0 };
            // The local header, its sizes patched once the data is written.
            let header_at = out.len();
            let fields = |buf: &mut Vec<u8>, compressed: u32| {
                put16(buf, ZIP_VERSION);
                put16(buf, 0); // flags: sizes known, names ASCII
                put16(buf, method);
                put16(buf, DOS_TIME);
                put16(buf, DOS_DATE);
                put32(buf, crc);
                put32(buf, compressed);
                put32(buf, size);
                put16(buf, name.len() as u16);
                put16(buf, 0); // extra field length
            };
            put32(&mut out, 0x0403_4b50);
            fields(&mut out, 0);
            out.extend_from_slice(name.as_bytes());
            let data_at = out.len();
            if deflated {
                self.deflate_into(bytes, &mut out)
                    .with_context(|| format!("deflating {name}"))?;
            } else {
                out.extend_from_slice(bytes);
            }
            let compressed = zip_u32(out.len() - data_at, name)?;
            out[header_at + 18..header_at + 22].copy_from_slice(&compressed.to_le_bytes());

            put32(&mut central, 0x0201_4b50);
            put16(&mut central, MADE_BY_UNIX);
            fields(&mut central, compressed);
            put16(&mut central, 0); // comment length
            put16(&mut central, 0); // disk number
            put16(&mut central, 0); // internal attributes
            put32(&mut central, UNIX_FILE_ATTRIBUTES);
            put32(&mut central, offset);
            central.extend_from_slice(name.as_bytes());
        }
        let central_at = zip_u32(out.len(), "index.zip")?;
        out.extend_from_slice(&central);
        let entries = files.len() as u16;
        put32(&mut out, 0x0605_4b50);
        put16(&mut out, 0); // this disk
        put16(&mut out, 0); // the central directory's disk
        put16(&mut out, entries);
        put16(&mut out, entries);
        put32(&mut out, central.len() as u32);
        put32(&mut out, central_at);
        put16(&mut out, 0); // comment length
        Ok((out, total as u64))
    }

    fn deflate_into(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.deflate.reset();
        // Incompressible input grows by a few bytes per 64 KB block.
        out.reserve(input.len() + input.len() / 64 + 64);
        loop {
            let read = self.deflate.total_in() as usize;
            let status =
                self.deflate
                    .compress_vec(&input[read..], out, flate2::FlushCompress::Finish)?;
            match status {
                flate2::Status::StreamEnd => return Ok(()),
                _ => out.reserve(out.capacity().max(4096)),
            }
        }
    }
}

fn zip_u32(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| anyhow::anyhow!("{what}: {n} bytes are too many for a zip entry"))
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Entries smaller than this are stored, not deflated.
const STORE_BELOW_BYTES: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_pack_little_endian_at_each_width() {
        let ids = [
            0u32,
            1,
            0x7F,
            0xFF,
            0x1234,
            0xFFFF,
            0x12_3456,
            0xFF_FFFF,
            0x1234_5678,
        ];
        for width in 1..=4 {
            let fits: Vec<u32> = ids
                .iter()
                .copied()
                .filter(|&id| width == 4 || id < 1 << (8 * width))
                .collect();
            let expected: Vec<u8> = fits
                .iter()
                .flat_map(|id| id.to_le_bytes()[..width].to_vec())
                .collect();
            assert_eq!(ids_le(&fits, width), expected, "width {width}");
        }
        assert_eq!(ids_le(&[0x0102_0304], 3), [4, 3, 2]);
    }

    /// Small entries are stored and large ones deflated, and every local
    /// header carries its sizes (no data descriptor, general-purpose bit 3
    /// clear), which a streaming reader such as Java's ZipInputStream needs
    /// to read a stored entry.
    #[test]
    fn local_headers_carry_sizes_and_small_entries_are_stored() {
        let big: Vec<u8> = (0..20_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        let files: SegmentFileSet = vec![
            ("version.bin".into(), vec![0, 0, 0, 9]),
            ("00000.smoosh".into(), big.clone()),
        ];
        let (zip, size) = SegmentZipper::default().zip(&files).unwrap();
        assert_eq!(size, 4 + big.len() as u64);
        let mut methods = Vec::new();
        let mut at = 0;
        while zip[at..].starts_with(&[0x50, 0x4b, 0x03, 0x04]) {
            let u16_at = |o: usize| u16::from_le_bytes([zip[at + o], zip[at + o + 1]]);
            let u32_at = |o: usize| u32::from_le_bytes(zip[at + o..at + o + 4].try_into().unwrap());
            assert_eq!(u16_at(6) & 0x08, 0, "no data descriptor");
            let (compressed, uncompressed) = (u32_at(18) as usize, u32_at(22) as usize);
            assert!(uncompressed > 0 && compressed > 0);
            let name_len = u16_at(26) as usize;
            let extra_len = u16_at(28) as usize;
            let name = String::from_utf8(zip[at + 30..at + 30 + name_len].to_vec()).unwrap();
            methods.push((name, u16_at(8), uncompressed));
            at += 30 + name_len + extra_len + compressed;
        }
        assert_eq!(
            methods,
            vec![
                ("00000.smoosh".to_string(), 8, big.len()),
                ("version.bin".to_string(), 0, 4)
            ]
        );
        // And the archive reads back.
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut archive.by_name("00000.smoosh").unwrap(), &mut back)
            .unwrap();
        assert_eq!(back, big);
    }
}
