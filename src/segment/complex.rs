//! Complex metric columns: `hyperUnique` (Druid's HyperLogLog collectors in
//! a GenericIndexed list) and `serializablePairLong{Long,Double,Float}`
//! (first/last aggregators: Druid 26+'s version-3 cell layout, read in
//! Druid's source: `AbstractSerializablePairLongObjectColumnHeader`,
//! `CellWriter`, `CellIndexWriter`, `BlockCompressedPayloadWriter`,
//! `IndexWriter`; no Druid-written golden column was available, see the
//! README's compatibility table).
//!
//! In memory a complex column is one byte string per row ("cell"):
//! a collector's Druid bytes, or a pair as `i64 LE time`, then `u8 1` and
//! the value little-endian when the value is present; an empty cell is a
//! null pair.

use super::bytes::{ByteReader, write_generic_indexed};
use crate::index::hll::Hll;
use crate::spec::NumType;
use anyhow::{Result, bail};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComplexKind {
    HyperUnique,
    /// A (time, value) pair of first/last aggregators.
    Pair(NumType),
}

impl ComplexKind {
    pub fn type_name(self) -> &'static str {
        match self {
            ComplexKind::HyperUnique => "hyperUnique",
            ComplexKind::Pair(NumType::Long) => "serializablePairLongLong",
            ComplexKind::Pair(NumType::Double) => "serializablePairLongDouble",
            ComplexKind::Pair(NumType::Float) => "serializablePairLongFloat",
        }
    }

    pub fn from_type_name(name: &str) -> Option<ComplexKind> {
        Some(match name {
            "hyperUnique" => ComplexKind::HyperUnique,
            "serializablePairLongLong" => ComplexKind::Pair(NumType::Long),
            "serializablePairLongDouble" => ComplexKind::Pair(NumType::Double),
            "serializablePairLongFloat" => ComplexKind::Pair(NumType::Float),
            _ => return None,
        })
    }

    fn value_width(self) -> usize {
        match self {
            ComplexKind::Pair(NumType::Float) => 4,
            _ => 8,
        }
    }
}

/// A pair cell: time, and the value's bits (f32 bits for floats) if any.
pub fn pair_cell(time: i64, value: Option<u64>, ty: NumType) -> Vec<u8> {
    let mut out = time.to_le_bytes().to_vec();
    if let Some(bits) = value {
        out.push(1);
        match ty {
            NumType::Float => out.extend_from_slice(&(bits as u32).to_le_bytes()),
            _ => out.extend_from_slice(&bits.to_le_bytes()),
        }
    }
    out
}

/// A pair cell's time and value bits; None for the null pair.
pub fn read_pair(cell: &[u8]) -> Option<(i64, Option<u64>)> {
    let time = i64::from_le_bytes(cell.get(..8)?.try_into().ok()?);
    let value = match cell.get(8..) {
        Some([1, rest @ ..]) if rest.len() == 8 => Some(u64::from_le_bytes(rest.try_into().ok()?)),
        Some([1, rest @ ..]) if rest.len() == 4 => {
            Some(u32::from_le_bytes(rest.try_into().ok()?) as u64)
        }
        _ => None,
    };
    Some((time, value))
}

/// A cell as dump-segment shows it: a collector's estimate, a pair as
/// `{"lhs": time, "rhs": value}` (Druid's SerializablePair JSON).
pub fn cell_json(kind: ComplexKind, cell: &[u8]) -> serde_json::Value {
    match kind {
        ComplexKind::HyperUnique => Hll::from_bytes(cell)
            .ok()
            .and_then(|h| serde_json::Number::from_f64(h.estimate()))
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        ComplexKind::Pair(ty) => match read_pair(cell) {
            None => serde_json::Value::Null,
            Some((t, v)) => {
                let rhs = match (v, ty) {
                    (None, _) => serde_json::Value::Null,
                    (Some(b), NumType::Long) => (b as i64).into(),
                    (Some(b), NumType::Double) => serde_json::Number::from_f64(f64::from_bits(b))
                        .map_or(serde_json::Value::Null, serde_json::Value::Number),
                    (Some(b), NumType::Float) => {
                        serde_json::Number::from_f64(f32::from_bits(b as u32) as f64)
                            .map_or(serde_json::Value::Null, serde_json::Value::Number)
                    }
                };
                serde_json::json!({"lhs": t, "rhs": rhs})
            }
        },
    }
}

const BLOCK_BYTES: usize = 65_536;
const PAIR_VERSION: u8 = 3;
const INTEGER_DELTAS: u8 = 0x80;
/// The null flag of a pair cell with a time (Druid 29+ writes and reads it).
const VALUE_PRESENT: u8 = 0;
const VALUE_NULL: u8 = 1;

/// The column payload after the descriptor.
pub fn write_complex(kind: ComplexKind, cells: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match kind {
        ComplexKind::HyperUnique => {
            // GenericIndexed's "sorted" flag, by the collectors' order
            // (register offset, non-zero registers, estimate) [U].
            let collectors = cells
                .iter()
                .map(|c| Hll::from_bytes(c).map_err(anyhow::Error::msg))
                .collect::<Result<Vec<_>>>()?;
            let key = |h: &Hll| h.order_key();
            let sorted = collectors
                .windows(2)
                .all(|w| key(&w[0]).partial_cmp(&key(&w[1])) == Some(std::cmp::Ordering::Less));
            let items: Vec<Option<&[u8]>> = cells.iter().map(|c| Some(c.as_slice())).collect();
            write_generic_indexed(&mut out, sorted as u8, &items);
        }
        ComplexKind::Pair(ty) => write_pairs(&mut out, cells, ty)?,
    }
    Ok(out)
}

/// Druid's version-3 first/last layout: header, then the cell index and
/// the payload, each block-compressed (LZ4, 64 KiB blocks), all numbers in
/// the byte order of the writing machine (little-endian on x86 and ARM).
fn write_pairs(out: &mut Vec<u8>, cells: &[Vec<u8>], ty: NumType) -> Result<()> {
    let pairs: Vec<Option<(i64, Option<u64>)>> = cells
        .iter()
        .map(|c| {
            if c.is_empty() {
                Ok(None)
            } else {
                read_pair(c)
                    .map(Some)
                    .ok_or_else(|| anyhow::anyhow!("a bad pair cell"))
            }
        })
        .collect::<Result<_>>()?;
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for (t, _) in pairs.iter().flatten() {
        min = min.min(*t);
        max = max.max(*t);
    }
    let mut max_delta = max.wrapping_sub(min);
    if (min < max && max_delta < 0) || min > max {
        max_delta = i64::MAX;
        min = 0;
    }
    let integer = max_delta <= i32::MAX as i64;
    out.extend_from_slice(&[PAIR_VERSION, if integer { INTEGER_DELTAS } else { 0 }, 0, 0]);
    out.extend_from_slice(&min.to_le_bytes());

    let mut index = Vec::with_capacity(8 * (pairs.len() + 1));
    let mut payload = Vec::new();
    for pair in &pairs {
        index.extend_from_slice(&(payload.len() as i64).to_le_bytes());
        let Some((t, v)) = pair else { continue };
        let delta = t.wrapping_sub(min);
        if integer {
            payload.extend_from_slice(&(delta as i32).to_le_bytes());
        } else {
            payload.extend_from_slice(&delta.to_le_bytes());
        }
        // Druid's delta-encoded serde puts a null flag between the time and
        // the value: 0 then the value, or 1 and nothing.
        match v {
            Some(bits) => {
                payload.push(VALUE_PRESENT);
                match ty {
                    NumType::Float => payload.extend_from_slice(&(*bits as u32).to_le_bytes()),
                    _ => payload.extend_from_slice(&bits.to_le_bytes()),
                }
            }
            None => payload.push(VALUE_NULL),
        }
    }
    index.extend_from_slice(&(payload.len() as i64).to_le_bytes());
    let index = block_compressed(&index);
    let payload = block_compressed(&payload);
    out.extend_from_slice(&(index.len() as i32).to_le_bytes());
    out.extend_from_slice(&index);
    out.extend_from_slice(&(payload.len() as i32).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// A BlockCompressedPayloadWriter stream: the block index (its byte size,
/// then each block's start and the total), the data size, the blocks.
fn block_compressed(raw: &[u8]) -> Vec<u8> {
    let blocks: Vec<Vec<u8>> = raw
        .chunks(BLOCK_BYTES)
        .map(lz4_flex::block::compress)
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(&((4 * (blocks.len() + 1)) as i32).to_le_bytes());
    let mut at = 0i32;
    for b in &blocks {
        out.extend_from_slice(&at.to_le_bytes());
        at += b.len() as i32;
    }
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(&at.to_le_bytes()); // the data size
    for b in &blocks {
        out.extend_from_slice(b);
    }
    out
}

/// Read a block-compressed stream back into its raw bytes.
fn read_block_compressed(r: &mut ByteReader, what: &str) -> Result<Vec<u8>> {
    let index_bytes = le_len(r)?;
    if index_bytes < 4 || index_bytes % 4 != 0 {
        return r.fail(format!("{what}: block index of {index_bytes} bytes"));
    }
    let index = r.take(index_bytes)?;
    let starts: Vec<i32> = index
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    let data_len = le_len(r)?;
    let data = r.take(data_len)?;
    if starts[0] != 0 || *starts.last().expect("one entry") as usize != data_len {
        return r.fail(format!("{what}: block index does not span the data"));
    }
    let mut raw = Vec::new();
    for w in starts.windows(2) {
        if w[1] < w[0] {
            return r.fail(format!("{what}: block index goes backwards"));
        }
        let block = &data[w[0] as usize..w[1] as usize];
        let decoded = lz4_flex::block::decompress(block, BLOCK_BYTES)
            .map_err(|e| anyhow::anyhow!("{what}: bad LZ4 block: {e}"))?;
        if decoded.len() != BLOCK_BYTES && w[1] as usize != data_len {
            bail!("{what}: a short block before the last");
        }
        raw.extend_from_slice(&decoded);
    }
    Ok(raw)
}

fn le_len(r: &mut ByteReader) -> Result<usize> {
    let v = i32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes"));
    if v < 0 {
        return r.fail(format!("negative length {v}"));
    }
    Ok(v as usize)
}

/// Read a complex column's payload into cells.
pub fn read_complex(what: &str, kind: ComplexKind, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut r = ByteReader::new(bytes, what);
    let cells = match kind {
        ComplexKind::HyperUnique => {
            let (_, items) = r.generic_indexed()?;
            items
                .into_iter()
                .map(|i| {
                    let c = i.unwrap_or(&[]);
                    Hll::from_bytes(c)
                        .map(|_| c.to_vec())
                        .map_err(|e| anyhow::anyhow!("{what}: {e}"))
                })
                .collect::<Result<Vec<_>>>()?
        }
        ComplexKind::Pair(ty) => {
            let header = r.take(4)?;
            if header[0] != PAIR_VERSION
                || header[1] & !INTEGER_DELTAS != 0
                || header[2..] != [0, 0]
            {
                return r.fail(format!("{what}: pair column header {header:?}"));
            }
            let integer = header[1] & INTEGER_DELTAS != 0;
            let min = i64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
            let index_len = le_len(&mut r)?;
            let index = {
                let mut sub = ByteReader::new(r.take(index_len)?, what);
                let raw = read_block_compressed(&mut sub, what)?;
                if sub.remaining() != 0 || raw.len() % 8 != 0 || raw.is_empty() {
                    bail!("{what}: bad cell index");
                }
                raw.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect::<Vec<_>>()
            };
            let payload_len = le_len(&mut r)?;
            let mut sub = ByteReader::new(r.take(payload_len)?, what);
            let payload = read_block_compressed(&mut sub, what)?;
            if sub.remaining() != 0 || *index.last().expect("one entry") as usize != payload.len() {
                bail!("{what}: the cell index does not span the payload");
            }
            let delta_width = if integer { 4 } else { 8 };
            let mut cells = Vec::with_capacity(index.len() - 1);
            for w in index.windows(2) {
                let (s, e) = (w[0], w[1]);
                if e < s {
                    bail!("{what}: cell index goes backwards");
                }
                let cell = &payload[s as usize..e as usize];
                if cell.is_empty() {
                    cells.push(Vec::new());
                    continue;
                }
                let width = kind.value_width();
                let flag = cell.get(delta_width).copied();
                let sized = match flag {
                    Some(VALUE_NULL) => cell.len() == delta_width + 1,
                    Some(VALUE_PRESENT) => cell.len() == delta_width + 1 + width,
                    _ => false,
                };
                if !sized {
                    bail!(
                        "{what}: a pair cell of {} bytes with null flag {flag:?}",
                        cell.len()
                    );
                }
                let delta = if integer {
                    i32::from_le_bytes(cell[..4].try_into().expect("4 bytes")) as i64
                } else {
                    i64::from_le_bytes(cell[..8].try_into().expect("8 bytes"))
                };
                let value = (flag == Some(VALUE_PRESENT)).then(|| {
                    let v = &cell[delta_width + 1..];
                    if width == 4 {
                        u32::from_le_bytes(v.try_into().expect("4 bytes")) as u64
                    } else {
                        u64::from_le_bytes(v.try_into().expect("8 bytes"))
                    }
                });
                cells.push(pair_cell(min.wrapping_add(delta), value, ty));
            }
            cells
        }
    };
    if r.remaining() != 0 {
        return r.fail(format!("{what}: {} bytes after the column", r.remaining()));
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_with_nulls_and_wide_deltas() {
        for ty in [NumType::Long, NumType::Double, NumType::Float] {
            let kind = ComplexKind::Pair(ty);
            let mut cells = vec![
                pair_cell(1_356_998_400_000, Some(830), ty),
                pair_cell(1_356_998_400_000, None, ty),
                Vec::new(),
                pair_cell(1_357_084_800_000, Some(u32::MAX as u64), ty),
            ];
            let bytes = write_complex(kind, &cells).unwrap();
            assert_eq!(bytes[0], 3);
            assert_eq!(bytes[1], 0x80, "deltas fit an int");
            assert_eq!(read_complex("t", kind, &bytes).unwrap(), cells);
            // 70,000 rows: both streams span two 64 KiB blocks.
            cells = (0..70_000i64)
                .map(|i| pair_cell(i * 1_000_000_000, Some(i as u64), ty))
                .collect();
            let bytes = write_complex(kind, &cells).unwrap();
            assert_eq!(bytes[1], 0, "deltas need longs");
            assert_eq!(read_complex("t", kind, &bytes).unwrap(), cells);
        }
    }

    /// The decompressed payload stream of a pair column.
    fn pair_payload(bytes: &[u8]) -> Vec<u8> {
        let mut r = ByteReader::new(&bytes[12..], "t");
        let index_len = i32::from_le_bytes(r.take(4).unwrap().try_into().unwrap()) as usize;
        r.take(index_len).unwrap();
        let payload_len = i32::from_le_bytes(r.take(4).unwrap().try_into().unwrap()) as usize;
        let mut sub = ByteReader::new(r.take(payload_len).unwrap(), "t");
        read_block_compressed(&mut sub, "t").unwrap()
    }

    #[test]
    fn pair_cells_carry_druids_null_flag() {
        // Druid's serde tests expect 13/5 bytes with int deltas and 17/9
        // with long ones (long values; floats are 4 bytes shorter).
        let ty = NumType::Long;
        let kind = ComplexKind::Pair(ty);
        let cells = [
            pair_cell(1_000, Some(0x0102), ty),
            pair_cell(1_005, None, ty),
        ];
        let payload = pair_payload(&write_complex(kind, &cells).unwrap());
        assert_eq!(
            payload,
            [
                &[0, 0, 0, 0, 0][..],
                &[2, 1, 0, 0, 0, 0, 0, 0],
                &[5, 0, 0, 0, 1]
            ]
            .concat()
        );
        let wide = [pair_cell(0, Some(7), ty), pair_cell(i64::MAX, None, ty)];
        let payload = pair_payload(&write_complex(kind, &wide).unwrap());
        assert_eq!(payload.len(), 17 + 9);
        assert_eq!((payload[8], payload[17 + 8]), (0, 1));
    }

    #[test]
    fn an_all_null_pair_column_has_empty_streams() {
        let kind = ComplexKind::Pair(NumType::Long);
        let bytes = write_complex(kind, &[Vec::new(), Vec::new()]).unwrap();
        // No pair has a time: Druid resets min to 0 and takes long deltas.
        assert_eq!(&bytes[..12], &[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            read_complex("t", kind, &bytes).unwrap(),
            vec![Vec::<u8>::new(); 2]
        );
    }

    #[test]
    fn collectors_round_trip_and_bad_bytes_fail() {
        let mut a = Hll::default();
        a.add_str("x");
        let mut b = a.clone();
        for i in 0..1000 {
            b.add_str(&i.to_string());
        }
        let cells = vec![Hll::default().to_bytes(), a.to_bytes(), b.to_bytes()];
        let bytes = write_complex(ComplexKind::HyperUnique, &cells).unwrap();
        assert_eq!(bytes[1], 1, "growing collectors are sorted");
        assert_eq!(
            read_complex("t", ComplexKind::HyperUnique, &bytes).unwrap(),
            cells
        );
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad.truncate(last);
        assert!(read_complex("t", ComplexKind::HyperUnique, &bad).is_err());
    }
}
