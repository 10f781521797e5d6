//! Reading a segment directory column by column and block by block from
//! disk, for merging intermediate persists: a cursor holds one decoded block
//! per column (and a string column's dictionary), never a whole persist.
//! Reads the layouts the writer produces for single-value columns under any
//! index spec; checks framing as it goes, like the in-memory reader.

use super::VERSION_BIN;
use super::bytes::{ByteReader, MAX_BLOCK_BYTES, decode_block, unpack_msb};
use super::reader::{
    Descriptor, IndexDrd, PACKED_WIDTHS, descriptor_part, parse_meta_smoosh, read_index_drd,
    read_roaring, table_bits,
};
use anyhow::{Context, Result, bail};
use roaring::RoaringBitmap;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A segment directory opened for block reads.
pub struct DiskSegment {
    /// The smoosh chunk files, by number.
    chunks: Vec<Arc<File>>,
    path: PathBuf,
    /// Entry name → chunk number, start and end.
    entries: BTreeMap<String, (usize, u64, u64)>,
    pub index: IndexDrd,
}

/// A byte range of the smoosh file (one column), read on demand.
#[derive(Clone)]
struct Region {
    file: Arc<File>,
    start: u64,
    len: u64,
    what: String,
}

impl Region {
    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > self.len)
        {
            bail!(
                "{}: {len} bytes at offset {offset} run past its {} bytes",
                self.what,
                self.len
            );
        }
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, self.start + offset)
            .with_context(|| format!("{}: reading {len} bytes at {offset}", self.what))?;
        Ok(buf)
    }

    fn i32_at(&self, offset: u64) -> Result<usize> {
        let b = self.read(offset, 4)?;
        let v = i32::from_be_bytes(b.try_into().expect("4 bytes"));
        if v < 0 {
            bail!("{}: negative length {v} at offset {offset}", self.what);
        }
        Ok(v as usize)
    }

    /// The column descriptor and the offset just after it.
    fn descriptor(&self) -> Result<(Descriptor, serde_json::Value, u64)> {
        let len = self.i32_at(0)?;
        let json = self.read(4, len)?;
        let descriptor: Descriptor = serde_json::from_slice(&json)
            .with_context(|| format!("{}: bad descriptor", self.what))?;
        let part = descriptor_part(&descriptor, &self.what)?.clone();
        Ok((descriptor, part, 4 + len as u64))
    }
}

impl DiskSegment {
    pub fn open(dir: &Path) -> Result<DiskSegment> {
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .with_context(|| format!("reading {}", dir.join(name).display()))
        };
        if read("version.bin")? != VERSION_BIN {
            bail!("{}: not a version 9 segment", dir.display());
        }
        let (chunks, listed) = parse_meta_smoosh(&read("meta.smoosh")?)?;
        // Each chunk file must exist, so a count is never trusted blindly.
        let mut files = Vec::new();
        let mut sizes = Vec::new();
        for n in 0..chunks {
            let path = dir.join(format!("{n:05}.smoosh"));
            let file = File::open(&path)
                .with_context(|| format!("opening {} (chunk {n} of {chunks})", path.display()))?;
            sizes.push(file.metadata()?.len());
            files.push(Arc::new(file));
        }
        let mut entries = BTreeMap::new();
        for e in listed {
            if e.chunk >= chunks || e.start > e.end || e.end as u64 > sizes[e.chunk] {
                bail!(
                    "{}: meta.smoosh entry {} ({},{},{}) lies outside the smoosh chunks",
                    dir.display(),
                    e.name,
                    e.chunk,
                    e.start,
                    e.end
                );
            }
            let range = (e.chunk, e.start as u64, e.end as u64);
            if entries.insert(e.name.clone(), range).is_some() {
                bail!("{}: meta.smoosh lists {} twice", dir.display(), e.name);
            }
        }
        let mut segment = DiskSegment {
            chunks: files,
            path: dir.to_path_buf(),
            entries,
            index: IndexDrd {
                columns: Vec::new(),
                dimensions: Vec::new(),
                interval: (0, 0),
                bitmap_serde: String::new(),
            },
        };
        let drd = segment.region("index.drd")?;
        segment.index = read_index_drd(&drd.read(0, drd.len as usize)?)?;
        Ok(segment)
    }

    fn region(&self, name: &str) -> Result<Region> {
        let &(chunk, start, end) = self
            .entries
            .get(name)
            .with_context(|| format!("{}: no smoosh entry {name}", self.path.display()))?;
        Ok(Region {
            file: self.chunks[chunk].clone(),
            start,
            len: end - start,
            what: format!("{} column {name}", self.path.display()),
        })
    }

    /// A whole column's bytes (for complex columns, read at once).
    pub fn column_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let region = self.region(name)?;
        region.read(0, region.len as usize)
    }

    pub fn numeric(&self, name: &str) -> Result<NumericCursor> {
        NumericCursor::open(self.region(name)?)
    }

    pub fn strings(&self, name: &str) -> Result<StringCursor> {
        StringCursor::open(self.region(name)?)
    }
}

/// Values stored in blocks (or contiguously, read in windows of
/// `per_block` values), with the last decoded block kept.
struct Blocks {
    region: Region,
    compression: u8,
    n: usize,
    per_block: usize,
    layout: Layout,
    /// Decoded bytes of `count` values.
    block_bytes: fn(usize, usize) -> usize,
    param: usize,
    cached: Option<(usize, Vec<u8>)>,
}

enum Layout {
    Contiguous { start: u64 },
    Elements { values_start: u64, ends: Vec<u32> },
}

impl Blocks {
    /// `n` values of `width` bytes stored one after another at `start`,
    /// read in windows.
    fn contiguous(region: Region, start: u64, n: usize, width: usize) -> Blocks {
        Blocks {
            region,
            compression: 0xFE,
            n,
            per_block: WINDOW,
            layout: Layout::Contiguous { start },
            block_bytes: plain_bytes,
            param: width,
            cached: None,
        }
    }

    /// Blocks in a GenericIndexed at `at`; returns the offset after it.
    fn elements(region: &Region, at: u64, blocks: usize) -> Result<(Layout, u64)> {
        let head = region.read(at, 6)?;
        if head[0] != 1 || head[1] > 1 {
            bail!(
                "{}: block list at {at} is not a GenericIndexed v1",
                region.what
            );
        }
        let size = i32::from_be_bytes(head[2..6].try_into().expect("4")) as usize;
        let count = region.i32_at(at + 6)?;
        if count != blocks || 4 + 4 * count > size {
            bail!("{}: {count} blocks at {at}, expected {blocks}", region.what);
        }
        let ends_bytes = region.read(at + 10, 4 * count)?;
        let ends: Vec<u32> = ends_bytes
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes(c.try_into().expect("4")))
            .collect();
        let values_start = at + 10 + 4 * count as u64;
        if ends.windows(2).any(|w| w[0] > w[1])
            || ends
                .last()
                .is_some_and(|e| *e as usize != size - 4 - 4 * count)
        {
            bail!("{}: block offsets at {at} are inconsistent", region.what);
        }
        Ok((
            Layout::Elements { values_start, ends },
            at + 6 + size as u64,
        ))
    }

    fn count_in(&self, k: usize) -> usize {
        self.per_block.min(self.n - k * self.per_block)
    }

    /// Block `k`, decoded.
    fn block(&mut self, k: usize) -> Result<&[u8]> {
        if self.cached.as_ref().is_none_or(|(c, _)| *c != k) {
            let want = (self.block_bytes)(self.count_in(k), self.param);
            let bytes = match &self.layout {
                Layout::Contiguous { start } => {
                    let first = (self.block_bytes)(k * self.per_block, self.param);
                    self.region.read(start + first as u64, want)?
                }
                Layout::Elements { values_start, ends } => {
                    let from = if k == 0 { 0 } else { ends[k - 1] } as u64;
                    let to = ends[k] as u64;
                    let element = self
                        .region
                        .read(values_start + from, (to - from) as usize)?;
                    if element.len() < 4 || element[..4] != [0; 4] {
                        bail!("{}: block {k} has a bad null marker", self.region.what);
                    }
                    if want > MAX_BLOCK_BYTES {
                        bail!("{}: block {k} would hold {want} bytes", self.region.what);
                    }
                    let mut out = vec![0u8; want];
                    let r = ByteReader::new(&element[4..], &self.region.what);
                    decode_block(&r, self.compression, k, &element[4..], &mut out)?;
                    out
                }
            };
            self.cached = Some((k, bytes));
        }
        Ok(&self.cached.as_ref().expect("just filled").1)
    }
}

fn plain_bytes(count: usize, width: usize) -> usize {
    count * width
}

/// Bit-packed blocks carry 4 bytes of padding each; a contiguous stream
/// (compression none) is read in windows that start on a byte.
fn packed_bytes(count: usize, bits: usize) -> usize {
    (count * bits).div_ceil(8) + 4
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericKind {
    Long,
    Float,
    Double,
}

enum Decode {
    Plain,
    Delta(i64),
    Table(Vec<i64>),
}

/// A V2 numeric column (`__time`, a metric or a numeric dimension).
pub struct NumericCursor {
    pub kind: NumericKind,
    pub nulls: RoaringBitmap,
    blocks: Blocks,
    decode: Decode,
    bits: usize,
}

/// Values per window when reading a contiguous (compression none) stream.
const WINDOW: usize = 8192;

impl NumericCursor {
    fn open(region: Region) -> Result<NumericCursor> {
        let (descriptor, part, at) = region.descriptor()?;
        let kind = match (descriptor.value_type.as_str(), part["type"].as_str()) {
            ("LONG", Some("longV2")) => NumericKind::Long,
            ("FLOAT", Some("floatV2")) => NumericKind::Float,
            ("DOUBLE", Some("doubleV2")) => NumericKind::Double,
            (t, p) => bail!("{}: {t} column with part {p:?} is not merged", region.what),
        };
        let supplier_size = region.i32_at(at)? as u64;
        let supplier = at + 4;
        let after = supplier + supplier_size;
        let nulls = if after < region.len {
            let len = region.i32_at(after)?;
            if after + 4 + len as u64 != region.len {
                bail!("{}: bytes after the null bitmap", region.what);
            }
            read_roaring(&region.read(after + 4, len)?)
                .with_context(|| format!("{}: null bitmap", region.what))?
        } else {
            RoaringBitmap::new()
        };
        let head = region.read(supplier, 10)?;
        if head[0] != 2 {
            bail!("{}: numeric supplier version {}", region.what, head[0]);
        }
        let n = i32::from_be_bytes(head[1..5].try_into().expect("4")).max(0) as usize;
        let per_block = i32::from_be_bytes(head[5..9].try_into().expect("4")).max(0) as usize;
        let mut compression = head[9];
        let mut at = supplier + 10;
        let (decode, bits) = if (0x80..=0xFD).contains(&compression) {
            if kind != NumericKind::Long {
                bail!("{}: an encoded column must be LONG", region.what);
            }
            compression = compression.wrapping_add(126);
            let h = region.read(at, 2)?;
            if h[1] != 1 {
                bail!("{}: long encoding header version {}", region.what, h[1]);
            }
            at += 2;
            match h[0] {
                0 => {
                    let b = region.read(at, 12)?;
                    at += 12;
                    let base = i64::from_be_bytes(b[..8].try_into().expect("8"));
                    let bits = i32::from_be_bytes(b[8..].try_into().expect("4")).max(0) as usize;
                    (Decode::Delta(base), bits)
                }
                1 => {
                    let size = region.i32_at(at)?;
                    if !(1..=256).contains(&size) {
                        bail!("{}: table of {size} values", region.what);
                    }
                    let t = region.read(at + 4, 8 * size)?;
                    at += 4 + 8 * size as u64;
                    let table = t
                        .chunks_exact(8)
                        .map(|c| i64::from_be_bytes(c.try_into().expect("8")))
                        .collect();
                    (Decode::Table(table), table_bits(size))
                }
                e => bail!("{}: long encoding {e}", region.what),
            }
        } else {
            (Decode::Plain, 0)
        };
        if !matches!(decode, Decode::Plain) && !PACKED_WIDTHS.contains(&bits) {
            bail!("{}: {bits} bits per value", region.what);
        }
        let width = if kind == NumericKind::Float { 4 } else { 8 };
        let (block_bytes, param): (fn(usize, usize) -> usize, usize) = match decode {
            Decode::Plain => (plain_bytes, width),
            _ => (packed_bytes, bits),
        };
        let (layout, per_block, end) = if compression == 0xFE {
            let total = match decode {
                Decode::Plain => n * width,
                _ => packed_bytes(n, bits),
            };
            // Windows of 8192 values (a multiple of 8, so packed windows
            // start on a byte).
            (Layout::Contiguous { start: at }, WINDOW, at + total as u64)
        } else {
            if per_block == 0 {
                bail!("{}: zero values per block", region.what);
            }
            let (layout, end) = Blocks::elements(&region, at, n.div_ceil(per_block))?;
            (layout, per_block, end)
        };
        if end != after {
            bail!(
                "{}: the supplier's size does not match its blocks",
                region.what
            );
        }
        // Contiguous packed streams are windowed at byte offsets.
        let block_bytes = match (&layout, &decode) {
            (Layout::Contiguous { .. }, Decode::Delta(_) | Decode::Table(_)) => {
                contiguous_packed_bytes as fn(usize, usize) -> usize
            }
            _ => block_bytes,
        };
        Ok(NumericCursor {
            kind,
            nulls,
            blocks: Blocks {
                region,
                compression,
                n,
                per_block,
                layout,
                block_bytes,
                param,
                cached: None,
            },
            decode,
            bits,
        })
    }

    pub fn len(&self) -> usize {
        self.blocks.n
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.n == 0
    }

    /// Row `i`'s value as raw bits: i64, f64 bits or f32 bits.
    pub fn bits(&mut self, i: usize) -> Result<u64> {
        if i >= self.blocks.n {
            bail!("{}: row {i} of {}", self.blocks.region.what, self.blocks.n);
        }
        let per_block = self.blocks.per_block;
        let (k, j) = (i / per_block, i % per_block);
        let bits = self.bits;
        let kind = self.kind;
        let block = self.blocks.block(k)?;
        let raw = match &self.decode {
            Decode::Plain if kind == NumericKind::Float => {
                u32::from_le_bytes(block[4 * j..4 * j + 4].try_into().expect("4")) as u64
            }
            Decode::Plain => u64::from_le_bytes(block[8 * j..8 * j + 8].try_into().expect("8")),
            Decode::Delta(base) => base.wrapping_add(unpack_msb(block, bits, j) as i64) as u64,
            Decode::Table(table) => {
                let code = unpack_msb(block, bits, j) as usize;
                *table.get(code).with_context(|| {
                    format!("{}: row {i} points past the table", self.blocks.region.what)
                })? as u64
            }
        };
        Ok(raw)
    }
}

/// Bytes of `count` values of a contiguous packed stream: windows start at
/// multiples of 8 values, so on a byte; the 4 padding bytes are not needed.
fn contiguous_packed_bytes(count: usize, bits: usize) -> usize {
    (count * bits).div_ceil(8)
}

/// A string column: its dictionary and each row's ids (one, or a list for
/// a multi-value column).
pub struct StringCursor {
    pub dictionary: Vec<Option<String>>,
    ids: Blocks,
    big_endian: bool,
    width: usize,
    rows: usize,
    offsets: Option<RowOffsets>,
}

/// Where each row's ids start and end in a multi-value column.
enum RowOffsets {
    /// V3 compressed: rows + 1 little-endian id offsets.
    Starts(Blocks),
    /// VSizeColumnarMultiInts: per row, the big-endian byte offset just
    /// past its ids.
    EndBytes(Blocks),
}

/// Value `j` of a blocks stream of `width`-byte unsigned integers.
fn uint_at(blocks: &mut Blocks, j: usize, width: usize, big_endian: bool) -> Result<u32> {
    if j >= blocks.n {
        bail!("{}: value {j} of {}", blocks.region.what, blocks.n);
    }
    let per_block = blocks.per_block;
    let block = blocks.block(j / per_block)?;
    let at = (j % per_block) * width;
    let b = &block[at..at + width];
    Ok(if big_endian {
        b.iter().fold(0u32, |acc, x| (acc << 8) | *x as u32)
    } else {
        b.iter().rev().fold(0u32, |acc, x| (acc << 8) | *x as u32)
    })
}

impl StringCursor {
    fn open(region: Region) -> Result<StringCursor> {
        let (descriptor, part, mut at) = region.descriptor()?;
        if descriptor.value_type != "STRING" || part["type"] != "stringDictionary" {
            bail!("{}: not a string column", region.what);
        }
        let multi = descriptor.has_multiple_values;
        let version = region.read(at, 1)?[0];
        at += 1;
        match (version, multi) {
            (0, false) | (1, true) => {}
            (2, _) => {
                let flags = region.read(at, 4)?;
                if flags != [0, 0, 0, if multi { 2 } else { 0 }] {
                    bail!(
                        "{}: string column flags {flags:02x?} are not merged",
                        region.what
                    );
                }
                at += 4;
            }
            (v, _) => bail!("{}: string part version {v} is not merged", region.what),
        }
        let gi = region.read(at, 6)?;
        let size = i32::from_be_bytes(gi[2..6].try_into().expect("4")).max(0) as usize;
        let gi = region.read(at, 6 + size)?;
        at += 6 + size as u64;
        let mut r = ByteReader::new(&gi, &region.what);
        let (_, items) = r.generic_indexed()?;
        let dictionary = items
            .into_iter()
            .map(|i| i.map(|b| String::from_utf8(b.to_vec())).transpose())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{}: a dictionary value is not UTF-8", region.what))?;

        // Version 2 multi-value: 0x03, then the row offsets as
        // CompressedColumnarInts, then the ids as for single-value.
        let mut offsets = None;
        if version == 2 && multi {
            let h = region.read(at, 11)?;
            if h[0] != 3 || h[1] != 2 {
                bail!("{}: not a V3 multi-value id stream", region.what);
            }
            let n = i32::from_be_bytes(h[2..6].try_into().expect("4")).max(0) as usize;
            let per_block = i32::from_be_bytes(h[6..10].try_into().expect("4")).max(0) as usize;
            if per_block == 0 || n == 0 {
                bail!("{}: bad multi-value offsets header", region.what);
            }
            let (layout, end) = Blocks::elements(&region, at + 11, n.div_ceil(per_block))?;
            offsets = Some(RowOffsets::Starts(Blocks {
                region: region.clone(),
                compression: h[10],
                n,
                per_block,
                layout,
                block_bytes: plain_bytes,
                param: 4,
                cached: None,
            }));
            at = end;
        }
        let head = region.read(at, 2)?;
        let width = head[1] as usize;
        if !(1..=4).contains(&width) {
            bail!("{}: id width {width}", region.what);
        }
        let (ids, big_endian, rows) = match version {
            0 => {
                if head[0] != 0 {
                    bail!("{}: VSizeColumnarInts version {}", region.what, head[0]);
                }
                let size = region.i32_at(at + 2)?;
                let n = (size - (4 - width).min(size)) / width;
                let ids = Blocks::contiguous(region, at + 6, n, width);
                (ids, true, n)
            }
            1 => {
                if head[0] != 1 {
                    bail!(
                        "{}: VSizeColumnarMultiInts version {}",
                        region.what,
                        head[0]
                    );
                }
                let size = region.i32_at(at + 2)?;
                let rows = region.i32_at(at + 6)?;
                let id_bytes = size
                    .checked_sub(4 + 4 * rows + (4 - width))
                    .with_context(|| format!("{}: multi-value sizes disagree", region.what))?;
                let ends = Blocks::contiguous(region.clone(), at + 10, rows, 4);
                offsets = Some(RowOffsets::EndBytes(ends));
                let ids =
                    Blocks::contiguous(region, at + 10 + 4 * rows as u64, id_bytes / width, width);
                (ids, true, rows)
            }
            _ => {
                if head[0] != 2 {
                    bail!(
                        "{}: CompressedVSizeColumnarInts version {}",
                        region.what,
                        head[0]
                    );
                }
                let h = region.read(at + 2, 9)?;
                let n = i32::from_be_bytes(h[..4].try_into().expect("4")).max(0) as usize;
                let per_block = i32::from_be_bytes(h[4..8].try_into().expect("4")).max(0) as usize;
                if per_block == 0 {
                    bail!("{}: zero ids per block", region.what);
                }
                let (layout, _) = Blocks::elements(&region, at + 11, n.div_ceil(per_block))?;
                let ids = Blocks {
                    region,
                    compression: h[8],
                    n,
                    per_block,
                    layout,
                    block_bytes: plain_bytes,
                    param: width,
                    cached: None,
                };
                let rows = match &offsets {
                    Some(RowOffsets::Starts(o)) => o.n - 1,
                    _ => n,
                };
                (ids, false, rows)
            }
        };
        Ok(StringCursor {
            dictionary,
            ids,
            big_endian,
            width,
            rows,
            offsets,
        })
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Row `i`'s dictionary ids, appended to `out`.
    pub fn row_ids(&mut self, i: usize, out: &mut Vec<u32>) -> Result<()> {
        if i >= self.rows {
            bail!("{}: row {i} of {}", self.ids.region.what, self.rows);
        }
        let (start, end) = match &mut self.offsets {
            None => (i, i + 1),
            Some(RowOffsets::Starts(o)) => (
                uint_at(o, i, 4, false)? as usize,
                uint_at(o, i + 1, 4, false)? as usize,
            ),
            Some(RowOffsets::EndBytes(o)) => {
                let w = self.width;
                let start = if i == 0 {
                    0
                } else {
                    uint_at(o, i - 1, 4, true)? as usize / w
                };
                (start, uint_at(o, i, 4, true)? as usize / w)
            }
        };
        if start > end {
            bail!("{}: row {i} ends before it starts", self.ids.region.what);
        }
        for j in start..end {
            let id = uint_at(&mut self.ids, j, self.width, self.big_endian)?;
            if id as usize >= self.dictionary.len() {
                bail!(
                    "{}: row {i} has id {id} outside the dictionary",
                    self.ids.region.what
                );
            }
            out.push(id);
        }
        Ok(())
    }

    /// Row `i`'s single id (single-value columns).
    pub fn id(&mut self, i: usize) -> Result<u32> {
        let mut one = Vec::with_capacity(1);
        self.row_ids(i, &mut one)?;
        match one.as_slice() {
            [id] => Ok(*id),
            _ => bail!("{}: row {i} is not a single value", self.ids.region.what),
        }
    }
}
