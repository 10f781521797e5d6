//! Druid's HyperLogLog collector (`HyperLogLogCollector`, version 1), the
//! state of `hyperUnique` and `cardinality` columns, rebuilt from Druid's
//! source: 2048 four-bit registers relative to a shared offset, one
//! overflow register kept aside, values hashed with Guava's murmur3_128.
//! Registers are held dense here; `to_bytes` writes Druid's serialized form
//! (sparse below 128 non-zero registers, as Druid decides).

use super::murmur3_128;

const NUM_BUCKETS: usize = 2048;
const NUM_BYTES_FOR_BUCKETS: usize = NUM_BUCKETS / 2;
const HEADER_BYTES: usize = 7;
const RANGE: u8 = 15;
const DENSE_THRESHOLD: usize = 128;
const VERSION: u8 = 1;

#[derive(Clone, PartialEq, Eq)]
pub struct Hll {
    register_offset: u8,
    num_non_zero: u16,
    max_overflow_value: u8,
    max_overflow_register: u16,
    /// Two registers per byte: the even bucket in the upper nibble.
    registers: Box<[u8; NUM_BYTES_FOR_BUCKETS]>,
}

impl std::fmt::Debug for Hll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hll(~{:.1})", self.estimate())
    }
}

impl Default for Hll {
    fn default() -> Self {
        Hll {
            register_offset: 0,
            num_non_zero: 0,
            max_overflow_value: 0,
            max_overflow_register: 0,
            registers: Box::new([0; NUM_BYTES_FOR_BUCKETS]),
        }
    }
}

impl Hll {
    /// Add a value as `hyperUnique` does: its UTF-8 bytes hashed.
    pub fn add_str(&mut self, value: &str) {
        self.add_hash(&murmur3_128(value.as_bytes()));
    }

    /// Add a 16-byte hash: the bucket from its last two bytes, the
    /// register value from the position of the first set bit, scanning
    /// bytes from the start and bits from the least significant.
    pub fn add_hash(&mut self, hash: &[u8; 16]) {
        let bucket = u16::from_be_bytes([hash[14], hash[15]]) & 0x7ff;
        let mut position: u8 = 0;
        for &b in &hash[..8] {
            if b == 0 {
                position += 8;
            } else {
                position += b.trailing_zeros() as u8 + 1;
                break;
            }
        }
        self.add(bucket, position);
    }

    fn add(&mut self, bucket: u16, position_of_1: u8) {
        let offset = self.register_offset;
        if position_of_1 <= offset {
            return;
        }
        if position_of_1 > offset.saturating_add(RANGE) {
            let current = self.max_overflow_value;
            if position_of_1 > current {
                if current <= offset.saturating_add(RANGE) && current > 0 {
                    // The old overflow now fits the registers.
                    self.add(self.max_overflow_register, current);
                }
                self.max_overflow_value = position_of_1;
                self.max_overflow_register = bucket;
            }
            return;
        }
        self.num_non_zero = self.add_nibble(bucket, position_of_1 - offset);
        if self.num_non_zero as usize == NUM_BUCKETS {
            self.register_offset += 1;
            self.num_non_zero = self.decrement_buckets();
        }
    }

    fn add_nibble(&mut self, bucket: u16, value: u8) -> u16 {
        let mut non_zero = self.num_non_zero;
        let at = (bucket >> 1) as usize;
        let upper = bucket & 1 == 0;
        let shifted = if upper { value << 4 } else { value };
        let orig = self.registers[at];
        let masked = if upper { orig & 0xf0 } else { orig & 0x0f };
        if masked == 0 {
            non_zero += 1;
        }
        if masked < shifted {
            self.registers[at] = if upper {
                (orig & 0x0f) | shifted
            } else {
                (orig & 0xf0) | shifted
            };
        }
        non_zero
    }

    fn decrement_buckets(&mut self) -> u16 {
        let mut count = 0;
        for b in self.registers.iter_mut() {
            *b = b.wrapping_sub(0x11);
            count += (*b & 0xf0 != 0) as u16 + (*b & 0x0f != 0) as u16;
        }
        count
    }

    /// Merge another collector in (Druid's `fold`).
    pub fn fold(&mut self, other: &Hll) {
        let other = if self.register_offset < other.register_offset {
            // Fold into the one with the higher offset.
            std::mem::replace(self, other.clone())
        } else {
            other.clone()
        };
        let diff = (self.register_offset - other.register_offset) as i32;
        let mut non_zero = self.num_non_zero;
        for (mine, &theirs) in self.registers.iter_mut().zip(other.registers.iter()) {
            if theirs == 0 {
                continue;
            }
            let (upper, lower) = ((*mine & 0xf0) as i32, (*mine & 0x0f) as i32);
            let new_upper = upper.max((theirs & 0xf0) as i32 - (diff << 4));
            let new_lower = lower.max((theirs & 0x0f) as i32 - diff);
            *mine = ((new_upper | new_lower) & 0xff) as u8;
            non_zero += (upper == 0 && new_upper > 0) as u16 + (lower == 0 && new_lower > 0) as u16;
        }
        if non_zero as usize == NUM_BUCKETS {
            non_zero = self.decrement_buckets();
            self.register_offset += 1;
        }
        self.num_non_zero = non_zero;
        self.add(other.max_overflow_register, other.max_overflow_value);
    }

    /// Druid's serialized bytes. The sparse form is sized by the number of
    /// non-zero registers but lists non-zero bytes, so it may end in zero
    /// entries, exactly as Druid writes it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + NUM_BYTES_FOR_BUCKETS);
        out.push(VERSION);
        out.push(self.register_offset);
        out.extend_from_slice(&self.num_non_zero.to_be_bytes());
        out.push(self.max_overflow_value);
        out.extend_from_slice(&self.max_overflow_register.to_be_bytes());
        if (self.num_non_zero as usize) < DENSE_THRESHOLD {
            let size = HEADER_BYTES + 3 * self.num_non_zero as usize;
            for (i, &b) in self.registers.iter().enumerate().filter(|(_, b)| **b != 0) {
                out.extend_from_slice(&((i + HEADER_BYTES) as u16).to_be_bytes());
                out.push(b);
            }
            out.resize(size, 0);
        } else {
            out.extend_from_slice(&self.registers[..]);
        }
        out
    }

    /// Read Druid's serialized bytes (dense or sparse).
    pub fn from_bytes(bytes: &[u8]) -> Result<Hll, String> {
        if bytes.len() < HEADER_BYTES {
            return Err(format!("a {}-byte HyperLogLog collector", bytes.len()));
        }
        let mut h = Hll {
            register_offset: bytes[1],
            num_non_zero: u16::from_be_bytes([bytes[2], bytes[3]]),
            max_overflow_value: bytes[4],
            max_overflow_register: u16::from_be_bytes([bytes[5], bytes[6]]),
            ..Hll::default()
        };
        if h.max_overflow_register as usize >= NUM_BUCKETS {
            return Err("HyperLogLog overflow register out of range".into());
        }
        let payload = &bytes[HEADER_BYTES..];
        if payload.len() == NUM_BYTES_FOR_BUCKETS {
            h.registers.copy_from_slice(payload);
        } else if payload.len().is_multiple_of(3) {
            for e in payload.chunks_exact(3) {
                let at = u16::from_be_bytes([e[0], e[1]]) as usize;
                if e[2] == 0 {
                    continue;
                }
                let i = at
                    .checked_sub(HEADER_BYTES)
                    .filter(|i| *i < NUM_BYTES_FOR_BUCKETS)
                    .ok_or("HyperLogLog sparse position out of range")?;
                h.registers[i] = e[2];
            }
        } else {
            return Err(format!("a HyperLogLog payload of {} bytes", payload.len()));
        }
        Ok(h)
    }

    /// How collectors order for GenericIndexed's sorted flag [U: Druid's
    /// comparator was not read line by line].
    pub fn order_key(&self) -> (u8, u16, f64) {
        (self.register_offset, self.num_non_zero, self.estimate())
    }

    /// Druid's estimate (the register harmonic mean with its small- and
    /// large-range corrections).
    pub fn estimate(&self) -> f64 {
        let alpha = 0.7213 / (1.0 + 1.079 / NUM_BUCKETS as f64);
        let min = self.register_offset as i32;
        let overflow_byte = (self.max_overflow_register >> 1) as usize;
        let overflow_upper = self.max_overflow_register & 1 == 0;
        let (mut e, mut zeros) = (0.0f64, 0u32);
        for (i, &b) in self.registers.iter().enumerate() {
            let mut upper = (b >> 4) as i32;
            let mut lower = (b & 0x0f) as i32;
            zeros += (upper == 0) as u32 + (lower == 0) as u32;
            upper += min;
            lower += min;
            if self.max_overflow_value != 0 && i == overflow_byte {
                if overflow_upper {
                    upper = upper.max(self.max_overflow_value as i32);
                } else {
                    lower = lower.max(self.max_overflow_value as i32);
                }
            }
            e += 2f64.powi(-upper) + 2f64.powi(-lower);
        }
        let n = NUM_BUCKETS as f64;
        let e = alpha * n * n / e;
        if e <= 2.5 * n && zeros != 0 {
            return n * (n / zeros as f64).ln();
        }
        let two64 = 2f64.powi(64);
        if e > two64 / 30.0 {
            let ratio = e / two64;
            return if ratio >= 1.0 {
                f64::MAX
            } else {
                -two64 * (1.0 - ratio).ln()
            };
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_track_distinct_counts() {
        for n in [0usize, 1, 10, 100, 1_000, 10_000, 100_000] {
            let mut h = Hll::default();
            for i in 0..n {
                h.add_str(&i.to_string());
                h.add_str(&(i / 2).to_string()); // repeats change nothing
            }
            let e = h.estimate();
            let err = (e - n as f64).abs() / (n.max(1) as f64);
            assert!(err < 0.05, "n={n} estimate {e}");
        }
    }

    #[test]
    fn fold_equals_adding_everything_to_one() {
        let (mut a, mut b, mut all) = (Hll::default(), Hll::default(), Hll::default());
        for i in 0..50_000 {
            let v = format!("v{i}");
            if i % 3 == 0 {
                a.add_str(&v)
            } else {
                b.add_str(&v)
            }
            all.add_str(&v);
        }
        let mut folded = a.clone();
        folded.fold(&b);
        assert_eq!(folded.estimate(), all.estimate());
        let mut other_way = b.clone();
        other_way.fold(&a);
        assert_eq!(other_way.estimate(), all.estimate());
    }

    #[test]
    fn bytes_round_trip_sparse_and_dense() {
        let mut h = Hll::default();
        assert_eq!(
            h.to_bytes(),
            vec![1, 0, 0, 0, 0, 0, 0],
            "an empty collector is its header"
        );
        for i in 0..20 {
            h.add_str(&i.to_string());
        }
        let sparse = h.to_bytes();
        assert_eq!(sparse.len(), HEADER_BYTES + 3 * h.num_non_zero as usize);
        assert_eq!(Hll::from_bytes(&sparse).unwrap().estimate(), h.estimate());
        for i in 0..5_000 {
            h.add_str(&i.to_string());
        }
        let dense = h.to_bytes();
        assert_eq!(dense.len(), HEADER_BYTES + NUM_BYTES_FOR_BUCKETS);
        assert_eq!(Hll::from_bytes(&dense).unwrap(), h);
        assert!(Hll::from_bytes(&[1, 0, 0]).is_err());
        assert!(Hll::from_bytes(&[1, 0, 0, 0, 0, 0, 0, 9]).is_err());
    }
}
