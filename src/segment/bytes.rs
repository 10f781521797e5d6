//! Building blocks both ways: a bounds-checked reader that names where it
//! failed, GenericIndexed v1 lists, block compression.

use crate::java::java_cmp_nullable;
use crate::spec::Compression;
use anyhow::{Result, bail};
use std::cmp::Ordering;

pub fn compression_id(c: Compression) -> u8 {
    match c {
        Compression::Lzf => 0x00,
        Compression::Lz4 => 0x01,
        Compression::Uncompressed => 0xFF,
        Compression::None => 0xFE,
    }
}

/// The GI flags byte Druid writes for a list of strings (spec §3.6).
pub fn sorted_flag(items: &[Option<&str>]) -> u8 {
    for pair in items.windows(2) {
        if let Some(prev) = pair[0]
            && java_cmp_nullable(Some(prev), pair[1]) != Ordering::Less
        {
            return 0;
        }
    }
    1
}

/// Write a GenericIndexed v1 list.
pub fn write_generic_indexed(out: &mut Vec<u8>, flags: u8, items: &[Option<&[u8]>]) {
    let value_bytes: usize = items.iter().map(|i| 4 + i.map_or(0, <[u8]>::len)).sum();
    out.push(1);
    out.push(flags);
    out.extend_from_slice(&((4 + 4 * items.len() + value_bytes) as i32).to_be_bytes());
    out.extend_from_slice(&(items.len() as i32).to_be_bytes());
    let mut end = 0usize;
    for item in items {
        end += 4 + item.map_or(0, <[u8]>::len);
        out.extend_from_slice(&(end as i32).to_be_bytes());
    }
    for item in items {
        match item {
            Some(bytes) => {
                out.extend_from_slice(&0i32.to_be_bytes());
                out.extend_from_slice(bytes);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
}

pub fn write_string_list(out: &mut Vec<u8>, items: &[Option<&str>]) {
    let flags = sorted_flag(items);
    let bytes: Vec<Option<&[u8]>> = items.iter().map(|i| i.map(str::as_bytes)).collect();
    write_generic_indexed(out, flags, &bytes);
}

/// A length-prefixed UTF-8 string (`SerializerUtils`).
pub fn write_prefixed_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Cut `raw` into blocks of `block_bytes` and store each compressed as one
/// GI element (flags 0).
pub fn write_blocks(out: &mut Vec<u8>, raw: &[u8], block_bytes: usize, compression: Compression) {
    let blocks: Vec<Vec<u8>> = raw
        .chunks(block_bytes.max(1))
        .map(|chunk| compress_block(chunk, compression))
        .collect();
    let items: Vec<Option<&[u8]>> = blocks.iter().map(|b| Some(b.as_slice())).collect();
    write_generic_indexed(out, 0, &items);
}

/// One block's bytes as the compression strategy stores them.
pub fn compress_block(raw: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::Lz4 => lz4_block(raw),
        Compression::Lzf => lzf_encode(raw),
        Compression::Uncompressed | Compression::None => raw.to_vec(),
    }
}

/// LZ4's hash tables (16-bit positions for blocks under 64 KiB, 32-bit
/// above, as `lz4_flex::block::compress` picks) and a block's worth of
/// output, kept per thread: that function allocates and zeroes both for
/// every block (a csv replay ran 0.4% fewer instructions without it,
/// callgrind; the tables are still cleared per block).
struct Lz4Scratch {
    small: lz4_flex::block::CompressTable,
    large: lz4_flex::block::CompressTable,
    out: Vec<u8>,
}

thread_local! {
    static LZ4_SCRATCH: std::cell::RefCell<Lz4Scratch> = std::cell::RefCell::new(Lz4Scratch {
        small: lz4_flex::block::CompressTable::small(),
        large: lz4_flex::block::CompressTable::large(),
        out: Vec::new(),
    });
}

/// A raw LZ4 block, byte for byte what `lz4_flex::block::compress` gives.
fn lz4_block(raw: &[u8]) -> Vec<u8> {
    LZ4_SCRATCH.with_borrow_mut(|scratch| {
        let bound = lz4_flex::block::get_maximum_output_size(raw.len());
        if scratch.out.len() < bound {
            scratch.out.resize(bound, 0);
        }
        let table = if raw.len() < usize::from(u16::MAX) {
            &mut scratch.small
        } else {
            &mut scratch.large
        };
        let written = lz4_flex::block::compress_into_with_table(raw, &mut scratch.out, table)
            .expect("the output holds LZ4's bound for this input");
        scratch.out[..written].to_vec()
    })
}

/// The largest piece compress-lzf puts in one chunk (LZFChunk.MAX_CHUNK_LEN).
const LZF_MAX_CHUNK: usize = 0xFFFF;

/// LZF as Druid's LZF strategy writes it (compress-lzf's LZFEncoder): the
/// input in chunks of at most 65,535 bytes, each `ZV` + type 1 (compressed:
/// u16 BE stored length, u16 BE original length) or type 0 (stored: u16 BE
/// length) when compressing would not make it smaller.
pub fn lzf_encode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() / 2 + 16);
    for piece in raw.chunks(LZF_MAX_CHUNK) {
        out.extend_from_slice(b"ZV");
        match lzf_compress(piece) {
            Some(packed) => {
                out.push(1);
                out.extend_from_slice(&(packed.len() as u16).to_be_bytes());
                out.extend_from_slice(&(piece.len() as u16).to_be_bytes());
                out.extend_from_slice(&packed);
            }
            None => {
                out.push(0);
                out.extend_from_slice(&(piece.len() as u16).to_be_bytes());
                out.extend_from_slice(piece);
            }
        }
    }
    out
}

/// One LZF stream (liblzf's format, which compress-lzf reads: a control
/// byte below 32 starts a run of that many plus one literal bytes; above,
/// a back reference of 3 to 264 bytes at most 8 KiB back), or None when
/// it would not be smaller than `input`. Written here because the `lzf`
/// crate's compressor indexes past its output buffer on some
/// incompressible inputs (a panic the segment round-trip property test
/// found: a literal run filling the buffer exactly, then a match); its
/// decompressor still reads these streams.
fn lzf_compress(input: &[u8]) -> Option<Vec<u8>> {
    const HASH_BITS: u32 = 14;
    const MAX_DISTANCE: usize = 1 << 13;
    const MAX_MATCH: usize = (1 << 8) + (1 << 3);
    const MAX_LITERALS: usize = 1 << 5;
    let n = input.len();
    let hash = |i: usize| {
        let v = u32::from(input[i]) << 16 | u32::from(input[i + 1]) << 8 | u32::from(input[i + 2]);
        (v.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
    };
    fn literals(out: &mut Vec<u8>, run: &[u8]) {
        for chunk in run.chunks(MAX_LITERALS) {
            out.push((chunk.len() - 1) as u8);
            out.extend_from_slice(chunk);
        }
    }
    // Each slot: a position + 1 whose next three bytes hashed there (0: none).
    let mut seen = vec![0usize; 1 << HASH_BITS];
    let mut out = Vec::with_capacity(n);
    let (mut i, mut run_start) = (0, 0);
    while i + 3 <= n && out.len() < n {
        let h = hash(i);
        let earlier = std::mem::replace(&mut seen[h], i + 1);
        if let Some(at) = earlier.checked_sub(1)
            && i - at <= MAX_DISTANCE
            && input[at..at + 3] == input[i..i + 3]
        {
            let longest = (n - i).min(MAX_MATCH);
            let mut len = 3;
            while len < longest && input[at + len] == input[i + len] {
                len += 1;
            }
            literals(&mut out, &input[run_start..i]);
            // Length less two (1..=262), distance less one (< 8,192).
            let (code, back) = (len - 2, i - at - 1);
            if code < 7 {
                out.push((code << 5 | back >> 8) as u8);
            } else {
                out.push((7 << 5 | back >> 8) as u8);
                out.push((code - 7) as u8);
            }
            out.push(back as u8);
            i += len;
            run_start = i;
        } else {
            i += 1;
        }
    }
    literals(&mut out, &input[run_start..]);
    (out.len() < n).then_some(out)
}

/// Decode compress-lzf chunks into exactly `dest.len()` bytes.
pub fn lzf_decode(mut block: &[u8], dest: &mut [u8]) -> Result<(), String> {
    let mut at = 0;
    while !block.is_empty() {
        let header = block.get(..5).ok_or("truncated LZF chunk header")?;
        if &header[..2] != b"ZV" {
            return Err(format!(
                "LZF chunk at output byte {at} lacks the ZV signature"
            ));
        }
        let len = u16::from_be_bytes([header[3], header[4]]) as usize;
        let (piece, original, rest) = match header[2] {
            0 => {
                let piece = block.get(5..5 + len).ok_or("truncated stored LZF chunk")?;
                (piece, len, &block[5 + len..])
            }
            1 => {
                let original = u16::from_be_bytes([
                    *block.get(5).ok_or("truncated LZF chunk")?,
                    *block.get(6).ok_or("truncated LZF chunk")?,
                ]) as usize;
                let piece = block
                    .get(7..7 + len)
                    .ok_or("truncated compressed LZF chunk")?;
                (piece, original, &block[7 + len..])
            }
            t => return Err(format!("LZF chunk type {t} (0 or 1)")),
        };
        let target = dest
            .get_mut(at..at + original)
            .ok_or("LZF chunks hold more bytes than the block")?;
        if header[2] == 0 {
            target.copy_from_slice(piece);
        } else {
            let unpacked =
                lzf::decompress(piece, original).map_err(|e| format!("LZF chunk: {e}"))?;
            if unpacked.len() != original {
                return Err(format!(
                    "LZF chunk holds {} bytes, its header says {original}",
                    unpacked.len()
                ));
            }
            target.copy_from_slice(&unpacked);
        }
        at += original;
        block = rest;
    }
    if at != dest.len() {
        return Err(format!(
            "LZF chunks hold {at} bytes, expected {}",
            dest.len()
        ));
    }
    Ok(())
}

/// Largest a decompressed block may be (Druid's 64 KiB buffer).
pub const MAX_BLOCK_BYTES: usize = 65_536;

/// A bounds-checked cursor over one structure; errors name it and the offset.
pub struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'a str,
}

impl<'a> ByteReader<'a> {
    pub fn new(buf: &'a [u8], what: &'a str) -> ByteReader<'a> {
        ByteReader { buf, pos: 0, what }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn fail<T>(&self, msg: impl std::fmt::Display) -> Result<T> {
        bail!("{} at offset {}: {msg}", self.what, self.pos)
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return self.fail(format!("needs {n} bytes, only {} left", self.remaining()));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    /// A non-negative i32 used as a length or count.
    pub fn len32(&mut self) -> Result<usize> {
        let v = self.i32()?;
        if v < 0 {
            self.pos -= 4;
            return self.fail(format!("negative length {v}"));
        }
        Ok(v as usize)
    }

    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    /// Read a GenericIndexed v1 list; returns (flags, elements).
    pub fn generic_indexed(&mut self) -> Result<(u8, Vec<Option<&'a [u8]>>)> {
        let version = self.u8()?;
        if version != 1 {
            self.pos -= 1;
            return self.fail(format!(
                "GenericIndexed version {version} is not supported (1)"
            ));
        }
        let flags = self.u8()?;
        if flags > 1 {
            self.pos -= 1;
            return self.fail(format!("GenericIndexed flags {flags:#04x} (0 or 1)"));
        }
        let size = self.len32()?;
        let body = self.take(size)?;
        let mut r = ByteReader::new(body, self.what);
        let n = r.len32()?;
        if n.checked_mul(4).is_none_or(|b| b > r.remaining()) {
            return self.fail(format!(
                "GenericIndexed claims {n} elements in {size} bytes"
            ));
        }
        let ends: Vec<usize> = (0..n).map(|_| r.len32()).collect::<Result<_>>()?;
        let values = r.rest();
        let mut items = Vec::with_capacity(n);
        let mut start = 0usize;
        for (i, &end) in ends.iter().enumerate() {
            if end < start + 4 || end > values.len() {
                return self.fail(format!(
                    "GenericIndexed element {i} has bad end offset {end}"
                ));
            }
            let marker = i32::from_be_bytes(values[start..start + 4].try_into().expect("4 bytes"));
            let payload = &values[start + 4..end];
            items.push(match marker {
                0 => Some(payload),
                -1 if payload.is_empty() => None,
                _ => {
                    return self.fail(format!(
                        "GenericIndexed element {i} has bad marker {marker}"
                    ));
                }
            });
            start = end;
        }
        if start != values.len() {
            return self.fail("GenericIndexed has bytes after its last element");
        }
        Ok((flags, items))
    }
}

/// Decompress the blocks of a GI into one buffer of exactly `total` bytes,
/// each block but the last holding `block_bytes`.
pub fn read_blocks(
    r: &mut ByteReader,
    compression_id: u8,
    total: usize,
    block_bytes: usize,
) -> Result<Vec<u8>> {
    let (_, blocks) = r.generic_indexed()?;
    if block_bytes == 0 || block_bytes > MAX_BLOCK_BYTES {
        return r.fail(format!(
            "block size {block_bytes} is outside 1..=65536 bytes"
        ));
    }
    let expected_blocks = total.div_ceil(block_bytes);
    if blocks.len() != expected_blocks {
        return r.fail(format!(
            "{} blocks where {total} bytes in blocks of {block_bytes} need {expected_blocks}",
            blocks.len()
        ));
    }
    let mut out = vec![0u8; total];
    for (i, block) in blocks.iter().enumerate() {
        let start = i * block_bytes;
        let want = block_bytes.min(total - start);
        let Some(block) = block else {
            return r.fail(format!("block {i} is null"));
        };
        decode_block(r, compression_id, i, block, &mut out[start..start + want])?;
    }
    Ok(out)
}

/// Decompress block `i` into exactly `dest.len()` bytes.
pub fn decode_block(
    r: &ByteReader,
    compression_id: u8,
    i: usize,
    block: &[u8],
    dest: &mut [u8],
) -> Result<()> {
    let want = dest.len();
    if want > MAX_BLOCK_BYTES {
        return r.fail(format!(
            "block {i} would hold {want} bytes, more than 65536"
        ));
    }
    match compression_id {
        0xFF => {
            if block.len() != want {
                return r.fail(format!(
                    "raw block {i} has {} bytes, expected {want}",
                    block.len()
                ));
            }
            dest.copy_from_slice(block);
            Ok(())
        }
        0x01 => match lz4_flex::block::decompress_into(block, dest) {
            Ok(n) if n == want => Ok(()),
            Ok(n) => r.fail(format!("LZ4 block {i} holds {n} bytes, expected {want}")),
            Err(e) => r.fail(format!("LZ4 block {i} is corrupt: {e}")),
        },
        0x00 => lzf_decode(block, dest).or_else(|e| r.fail(format!("LZF block {i}: {e}"))),
        other => r.fail(format!("unknown compression id 0x{other:02x}")),
    }
}

/// Value `i` of a stream of `bits`-wide unsigned values packed most
/// significant bit first (Druid's VSizeLongSerde).
pub fn unpack_msb(bytes: &[u8], bits: usize, i: usize) -> u64 {
    let bit = i * bits;
    let (byte, shift) = (bit / 8, bit % 8);
    let mut window: u128 = 0;
    for k in 0..9 {
        window = (window << 8) | *bytes.get(byte + k).unwrap_or(&0) as u128;
    }
    let mask = if bits == 64 {
        u64::MAX as u128
    } else {
        (1u128 << bits) - 1
    };
    ((window >> (72 - shift - bits)) & mask) as u64
}

/// Roaring's portable serialization (RoaringFormatSpec, as the roaring
/// crate and Druid's Java library write it) of a strictly ascending list,
/// with the crate's choice of containers: an array up to 4,096 values,
/// else a bitmap; with `run_optimize`, a run container wherever it is
/// strictly smaller (the crate's `optimize`, Druid's runOptimize).
pub fn write_sorted_roaring(out: &mut Vec<u8>, values: &[u32], run_optimize: bool) {
    const ARRAY_LIMIT: usize = 4096;
    const BITMAP_BYTES: usize = 8192;
    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Array,
        Bitmap,
        Run,
    }
    // Containers: (high 16 bits, the values' range, runs, kind).
    let mut containers: Vec<(u16, std::ops::Range<usize>, usize, Kind)> = Vec::new();
    let mut start = 0;
    while start < values.len() {
        let key = values[start] >> 16;
        let mut end = start + 1;
        let mut runs = 1;
        while end < values.len() && values[end] >> 16 == key {
            if values[end] != values[end - 1] + 1 {
                runs += 1;
            }
            end += 1;
        }
        let card = end - start;
        let run_bytes = 2 + 4 * runs;
        let kind = if card <= ARRAY_LIMIT {
            if run_optimize && 2 * card > run_bytes {
                Kind::Run
            } else {
                Kind::Array
            }
        } else if run_optimize && BITMAP_BYTES > run_bytes {
            Kind::Run
        } else {
            Kind::Bitmap
        };
        containers.push((key as u16, start..end, runs, kind));
        start = end;
    }
    let n = containers.len();
    let has_runs = containers.iter().any(|c| c.3 == Kind::Run);
    let size = |c: &(u16, std::ops::Range<usize>, usize, Kind)| match c.3 {
        Kind::Array => 2 * c.1.len(),
        Kind::Bitmap => BITMAP_BYTES,
        Kind::Run => 2 + 4 * c.2,
    };
    // The exact size up front: growing the buffer as values went in was
    // most of the cost of a small bitmap (callgrind).
    out.reserve(16 + n.div_ceil(8) + 8 * n + containers.iter().map(size).sum::<usize>());
    if has_runs {
        out.extend_from_slice(&(12347u32 | ((n as u32 - 1) << 16)).to_le_bytes());
        let mut flags = vec![0u8; n.div_ceil(8)];
        for (i, c) in containers.iter().enumerate() {
            if c.3 == Kind::Run {
                flags[i / 8] |= 1 << (i % 8);
            }
        }
        out.extend_from_slice(&flags);
    } else {
        out.extend_from_slice(&12346u32.to_le_bytes());
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
    for (key, range, _, _) in &containers {
        out.extend_from_slice(&key.to_le_bytes());
        out.extend_from_slice(&((range.len() - 1) as u16).to_le_bytes());
    }
    if !has_runs || n >= 4 {
        let header = if has_runs {
            4 + n.div_ceil(8) + 8 * n
        } else {
            8 + 8 * n
        };
        let mut offset = header as u32;
        for c in &containers {
            out.extend_from_slice(&offset.to_le_bytes());
            offset += size(c) as u32;
        }
    }
    for (_, range, runs, kind) in containers {
        let low = values[range].iter().map(|&v| v as u16);
        match kind {
            Kind::Array => {
                for v in low {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Kind::Bitmap => {
                let mut words = [0u64; BITMAP_BYTES / 8];
                for v in low {
                    words[v as usize / 64] |= 1 << (v % 64);
                }
                for w in words {
                    out.extend_from_slice(&w.to_le_bytes());
                }
            }
            Kind::Run => {
                out.extend_from_slice(&(runs as u16).to_le_bytes());
                let mut low = low.peekable();
                while let Some(first) = low.next() {
                    let mut last = first;
                    while low.peek() == Some(&last.wrapping_add(1)) && last != u16::MAX {
                        last = low.next().expect("peeked");
                    }
                    out.extend_from_slice(&first.to_le_bytes());
                    out.extend_from_slice(&(last - first).to_le_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stream `lzf_compress` writes decodes (by the `lzf` crate, as
    /// liblzf and compress-lzf decode) to its input: runs, long matches,
    /// far references, incompressible stretches ending in a match, all
    /// lengths up to 1,200, and the input the crate's own compressor
    /// panics on.
    #[test]
    fn lzf_streams_decode_to_their_input() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut compressed = 0;
        for case in 0..3_000 {
            let len = case % 1_200;
            let alphabet = [2u64, 4, 16, 256][case % 4];
            let mut input: Vec<u8> = (0..len).map(|_| (next() % alphabet) as u8).collect();
            if case % 5 == 0 && len > 40 {
                // Incompressible bytes, then a repeat of their start.
                let cut = len - 8;
                for (i, b) in input[..cut].iter_mut().enumerate() {
                    *b = (i as u64).wrapping_mul(0x9E37_79B9).to_le_bytes()[3] ^ (next() as u8);
                }
                input.copy_within(0..8, cut);
            }
            match lzf_compress(&input) {
                Some(packed) => {
                    compressed += 1;
                    assert!(packed.len() < input.len(), "case {case}");
                    assert_eq!(
                        lzf::decompress(&packed, input.len()).unwrap(),
                        input,
                        "case {case}"
                    );
                }
                None => assert!(
                    len < 64 || alphabet > 4 || case % 5 == 0,
                    "case {case}: {len} bytes of {alphabet} values did not compress"
                ),
            }
        }
        assert!(compressed > 1_000, "{compressed} compressed");
        // 223 distinct bytes then a repeat of the first eight: the `lzf`
        // crate's compressor panics on exactly this (its literal runs fill
        // its output buffer, then the match writes one byte past it).
        let mut edge: Vec<u8> = (0..231).map(|i| (i * 167 % 256) as u8).collect();
        edge.copy_within(0..8, 223);
        if let Some(packed) = lzf_compress(&edge) {
            assert_eq!(lzf::decompress(&packed, edge.len()).unwrap(), edge);
        }
        assert!(
            lzf_encode(&edge).len() > edge.len(),
            "stored, not compressed"
        );
        // Far references and the longest matches.
        let mut far: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        far.copy_within(0..600, 8_000);
        far.extend(std::iter::repeat_n(7u8, 5_000));
        let packed = lzf_compress(&far).unwrap();
        assert_eq!(lzf::decompress(&packed, far.len()).unwrap(), far);
    }

    #[test]
    fn flags_follow_druid() {
        assert_eq!(sorted_flag(&[Some("a"), Some("b")]), 1);
        assert_eq!(sorted_flag(&[Some("b"), Some("a")]), 0);
        assert_eq!(sorted_flag(&[Some("a"), Some("a")]), 0);
        assert_eq!(sorted_flag(&[None, None]), 1);
        assert_eq!(sorted_flag(&[None, Some("a")]), 1);
    }

    #[test]
    fn generic_indexed_round_trip() {
        let mut out = Vec::new();
        write_string_list(&mut out, &[None, Some(""), Some("x")]);
        let mut r = ByteReader::new(&out, "test");
        let (flags, items) = r.generic_indexed().unwrap();
        assert_eq!(flags, 1);
        assert_eq!(items, vec![None, Some(&b""[..]), Some(&b"x"[..])]);
        for cut in 0..out.len() {
            assert!(ByteReader::new(&out[..cut], "t").generic_indexed().is_err());
        }
    }

    #[test]
    fn empty_list_matches_druid() {
        let mut out = Vec::new();
        write_string_list(&mut out, &[]);
        assert_eq!(out, [1, 1, 0, 0, 0, 4, 0, 0, 0, 0]);
    }
    /// The roaring serialization written from a sorted list is the roaring
    /// crate's, byte for byte, with and without run optimization: arrays,
    /// bitmaps and runs, the array/bitmap boundary at 4,096, ties between
    /// run and array sizes, one to five containers (the offsets appear at
    /// four with runs), values at the ends of a container.
    #[test]
    fn sorted_roaring_matches_the_roaring_crate() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut cases: Vec<Vec<u32>> = vec![
            vec![0],
            vec![65_535, 65_536],
            (0..4096).collect(),
            (0..4097).collect(),
            (0..4096).map(|i| i * 2).collect(),
            (0..4097).map(|i| i * 2).collect(),
            // Array of 3 (6 bytes) against one run (6 bytes): a tie.
            vec![7, 8, 9],
            vec![7, 8, 9, 10],
            (0..5u32).flat_map(|c| (c << 16)..(c << 16) + 3).collect(),
            // Five run containers: offsets written with runs.
            (0..5u32).flat_map(|c| (c << 16)..(c << 16) + 4).collect(),
            (0..5u32).flat_map(|c| [c << 16, (c << 16) + 2]).collect(),
            (0..70_000).collect(),
        ];
        for _ in 0..300 {
            let containers = 1 + next() % 5;
            let density = 1 + next() % 8;
            let mut v: Vec<u32> = Vec::new();
            for c in 0..containers {
                let base = (c as u32 + (next() % 3) as u32) << 16;
                let len = next() % 9000;
                let mut x = base + (next() % 100) as u32;
                for _ in 0..len {
                    if x >= base + 65_535 {
                        break;
                    }
                    v.push(x);
                    x += if next() % density == 0 {
                        1 + (next() % 50) as u32
                    } else {
                        1
                    };
                }
            }
            v.sort_unstable();
            v.dedup();
            if !v.is_empty() {
                cases.push(v);
            }
        }
        for values in &cases {
            for run_optimize in [false, true] {
                let mut expected =
                    roaring::RoaringBitmap::from_sorted_iter(values.iter().copied()).unwrap();
                if run_optimize {
                    expected.optimize();
                }
                let mut want = Vec::new();
                expected.serialize_into(&mut want).unwrap();
                let mut got = Vec::new();
                write_sorted_roaring(&mut got, values, run_optimize);
                assert_eq!(
                    got,
                    want,
                    "{} values, run optimize {run_optimize}",
                    values.len()
                );
            }
        }
    }
}
