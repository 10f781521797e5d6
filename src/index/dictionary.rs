//! A dimension's value dictionary: each distinct string interned once, id 0
//! reserved for null. Lookups by `&str` allocate nothing.

use crate::input::Value;
use crate::java::java_double_string;
use hashbrown::HashTable;
use std::hash::BuildHasher;

pub struct Dictionary {
    values: Vec<Box<str>>,
    /// Values of up to seven bytes, by their bytes and length packed in a
    /// u64: found with one integer compare, no string hash or memcmp.
    short: HashTable<(u64, u32)>,
    /// Longer values.
    table: HashTable<u32>,
    hasher: foldhash::fast::FixedState,
    number_text: String,
    bytes: usize,
}

impl Default for Dictionary {
    fn default() -> Self {
        Self::new()
    }
}

impl Dictionary {
    pub fn new() -> Dictionary {
        Dictionary {
            // Slot 0 stands for null and is never looked up.
            values: vec!["".into()],
            short: HashTable::new(),
            table: HashTable::new(),
            hasher: foldhash::fast::FixedState::with_seed(0xd1c7),
            number_text: String::new(),
            bytes: 0,
        }
    }

    /// Distinct values including the null slot.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Estimated heap bytes: the strings, their boxes and table slots.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.values.len() <= 1
    }

    /// The value of an id (None for the null id 0).
    pub fn value(&self, id: u32) -> Option<&str> {
        if id == 0 {
            None
        } else {
            self.values.get(id as usize).map(|v| &**v)
        }
    }

    #[inline(always)]
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(key) = short_key(s) {
            let hash = short_hash(key);
            if let Some(&(_, id)) = self.short.find(hash, |&(k, _)| k == key) {
                return id;
            }
            let id = self.push(s);
            self.short
                .insert_unique(hash, (key, id), |&(k, _)| short_hash(k));
            return id;
        }
        let hash = self.hasher.hash_one(s);
        let values = &self.values;
        if let Some(&id) = self.table.find(hash, |&id| &*values[id as usize] == s) {
            return id;
        }
        let id = self.push(s);
        let (values, hasher) = (&self.values, &self.hasher);
        self.table
            .insert_unique(hash, id, |&id| hasher.hash_one(&*values[id as usize]));
        id
    }

    /// Add a new value; its id.
    fn push(&mut self, s: &str) -> u32 {
        let id = self.values.len() as u32;
        self.values.push(s.into());
        self.bytes += s.len() + 16 + 8;
        id
    }

    /// The id a string dimension gives an input value, as Druid turns
    /// numbers and booleans into strings. None when no string can stand for
    /// it (a nested object); multi-value lists are not indexed yet.
    pub fn id_of_value(&mut self, v: &Value) -> Option<u32> {
        match v {
            Value::Null => Some(0),
            Value::Str(s) => Some(self.intern(s)),
            Value::Long(n) => {
                let mut text = std::mem::take(&mut self.number_text);
                text.clear();
                use std::fmt::Write;
                let _ = write!(text, "{n}");
                let id = self.intern(&text);
                self.number_text = text;
                Some(id)
            }
            Value::Double(d) => Some(self.intern(&java_double_string(*d))),
            Value::Bool(b) => Some(self.intern(if *b { "true" } else { "false" })),
            Value::List(items) if items.is_empty() => Some(0),
            Value::List(items) if items.len() == 1 => self.id_of_value(&items[0]),
            Value::List(_) | Value::Nested => None,
        }
    }
}

/// A value of at most seven bytes as its bytes with its length in the top
/// byte (so "a" and "a\0" differ); None for longer values.
fn short_key(s: &str) -> Option<u64> {
    let bytes = s.as_bytes();
    if bytes.len() > 7 {
        return None;
    }
    let mut key = (bytes.len() as u64) << 56;
    for (i, &b) in bytes.iter().enumerate() {
        key |= u64::from(b) << (8 * i);
    }
    Some(key)
}

/// A multiplicative hash of a short key, its high bits folded down
/// (hashbrown reads the top 7 bits as well as the low ones).
fn short_hash(key: u64) -> u64 {
    let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_once() {
        let mut d = Dictionary::new();
        let a = d.intern("a");
        let b = d.intern("b");
        assert_eq!(d.intern("a"), a);
        assert_ne!(a, b);
        assert_eq!(d.value(a), Some("a"));
        assert_eq!(d.value(0), None);
        assert_eq!(d.len(), 3);
    }

    /// Short values (packed) and long ones (hashed) each keep one id,
    /// whatever their order; a value and the same bytes with a NUL added
    /// are different values.
    #[test]
    fn short_and_long_values_intern_once() {
        let mut d = Dictionary::new();
        let words = [
            "",
            "a",
            "a\0",
            "abcdefg",
            "abcdefgh",
            "JFK",
            "é",
            "a much longer value",
        ];
        let ids: Vec<u32> = words.iter().map(|w| d.intern(w)).collect();
        let mut distinct = ids.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), words.len());
        for (w, id) in words.iter().zip(&ids).rev() {
            assert_eq!(d.intern(w), *id);
            assert_eq!(d.value(*id), Some(*w));
        }
        assert_eq!(d.len(), words.len() + 1);
    }

    #[test]
    fn numbers_become_java_strings() {
        let mut d = Dictionary::new();
        let id = d.id_of_value(&Value::Long(2013)).unwrap();
        assert_eq!(d.value(id), Some("2013"));
    }
}
