//! The incremental in-memory index: rows rolled up by (truncated time,
//! dimension values) into one sink per segment interval. When it grows past
//! maxRowsInMemory / maxBytesInMemory the task freezes it (`take_frozen`)
//! for the persist thread and carries on with an empty one; partitions are
//! cut at merge time (persist::merge), so they do not depend on when
//! persists happened.
//!
//! Dimension values are interned once per dimension; a row's key is a slice
//! of dictionary ids in a shared arena, so adding a row allocates nothing
//! unless it is new. Aggregators are stored column by column.

mod dictionary;
mod metrics;

pub use metrics::{Longs, MetricColumn, MetricInput, MetricValues, RowBits};
use metrics::{NUMERIC_METRIC_BYTES, fold_number, push_number};

use crate::input::Value;
use crate::input::expr::Expr;
use crate::input::filter::Filter;
use crate::java::hll::Hll;
use crate::java::{
    JavaNumber, druid_exact_long, druid_text_number, java_cmp_nullable, java_double_string,
    murmur3_128_chars, parse_java_double, parse_java_float,
};
use crate::spec::granularity::{Bucketer, Granularity, LastBucket};
use crate::spec::{AggOp, Aggregator, AggregatorKind, MultiValueHandling, NumType};
use dictionary::Dictionary;
use hashbrown::{HashMap, HashTable};

/// A dimension being indexed: a string dictionary, or for a long, float or
/// double dimension its distinct values (id 0 is null either way).
pub struct DimensionColumn {
    pub name: String,
    pub slot: usize,
    pub dictionary: Dictionary,
    pub numeric: Option<NumericDictionary>,
    pub multi_value_handling: MultiValueHandling,
    /// Rows of two or more values: each distinct id list once. A key id
    /// with `MULTI_VALUE_BIT` set names an entry here.
    pub lists: ListDictionary,
}

/// Marks a string dimension's key id as a multi-value list.
pub const MULTI_VALUE_BIT: u32 = 1 << 31;

/// The distinct value-id lists of a multi-value string dimension.
#[derive(Default)]
pub struct ListDictionary {
    pub lists: Vec<Box<[u32]>>,
    ids: HashMap<Box<[u32]>, u32>,
    /// Estimated heap bytes, kept as lists are added.
    bytes: usize,
}

impl ListDictionary {
    fn intern(&mut self, list: &[u32]) -> u32 {
        if let Some(&id) = self.ids.get(list) {
            return id;
        }
        let id = self.lists.len() as u32;
        self.lists.push(list.into());
        self.ids.insert(list.into(), id);
        // Two boxed copies (list and table key) and a table slot.
        self.bytes += 2 * (16 + 4 * list.len()) + 16;
        id
    }

    /// The value ids of a key id (one id for a single value).
    pub fn values<'a>(&'a self, key_id: &'a u32) -> &'a [u32] {
        if key_id & MULTI_VALUE_BIT != 0 {
            &self.lists[(key_id & !MULTI_VALUE_BIT) as usize]
        } else {
            std::slice::from_ref(key_id)
        }
    }
}

/// The distinct values of a numeric dimension, as bits (i64, f64 or f32
/// bits), interned so a row key stays a list of u32 ids.
pub struct NumericDictionary {
    pub ty: NumType,
    /// values[0] stands for null.
    pub values: Vec<u64>,
    ids: HashMap<u64, u32>,
}

impl NumericDictionary {
    fn new(ty: NumType) -> NumericDictionary {
        NumericDictionary {
            ty,
            values: vec![0],
            ids: HashMap::new(),
        }
    }

    fn intern(&mut self, bits: u64) -> u32 {
        let next = self.values.len() as u32;
        let id = *self.ids.entry(bits).or_insert(next);
        if id == next {
            self.values.push(bits);
        }
        id
    }

    /// The id of an input value, as Druid converts objects for a numeric
    /// dimension (DimensionHandlerUtils.convertObjectToLong/Float/Double):
    /// numbers cast (12.9 → 12 for a long), booleans 1/0 for a long only,
    /// text untrimmed: a long only from a whole decimal ("12.0", "1e3"),
    /// a float or double as Guava's tryParse; null is null; anything else
    /// (a list of any length too) is an error and null.
    fn id_of_value(&mut self, v: &Value) -> Result<u32, String> {
        let number = match (v, self.ty) {
            (Value::Null, _) => return Ok(0),
            (Value::Long(n), _) => Num::Long(*n),
            (Value::Double(d), _) => Num::Double(*d),
            (Value::Bool(b), NumType::Long) => Num::Long(i64::from(*b)),
            (Value::Str(s), NumType::Long) => match druid_exact_long(s) {
                Some(n) => Num::Long(n),
                None => return Err(format!("{s:?} is not a whole number for a long dimension")),
            },
            (Value::Str(s), NumType::Double) => match parse_java_double(s) {
                Some(d) => Num::Double(d),
                None => return Err(format!("{s:?} is not a number")),
            },
            // Rounded straight to a float, as Float.parseFloat does.
            (Value::Str(s), NumType::Float) => match parse_java_float(s) {
                Some(f) => return Ok(self.intern(u64::from(f.to_bits()))),
                None => return Err(format!("{s:?} is not a number")),
            },
            (other, _) => return Err(format!("{other:?} is not a number")),
        };
        let bits = match (self.ty, number) {
            (NumType::Long, Num::Long(n)) => n as u64,
            (NumType::Long, Num::Double(d)) => d as i64 as u64,
            (NumType::Double, Num::Long(n)) => (n as f64).to_bits(),
            (NumType::Double, Num::Double(d)) => d.to_bits(),
            (NumType::Float, Num::Long(n)) => (n as f32).to_bits() as u64,
            (NumType::Float, Num::Double(d)) => (d as f32).to_bits() as u64,
        };
        Ok(self.intern(bits))
    }
}

#[derive(Clone, Copy)]
enum Num {
    Long(i64),
    Double(f64),
}

/// The rows of one segment interval held in memory.
pub struct Sink {
    pub interval_start: i64,
    pub interval_end: i64,
    pub rows: Vec<u32>,
    table: HashTable<u32>,
}

/// Estimated bytes per held row besides its key ids and metrics: time,
/// key offset and length, the sink's row list and its hash-table slot.
const ROW_OVERHEAD_BYTES: usize = 8 + 4 + 2 + 4 + 8;

/// At most this many rows are reserved up front for a new interval, so a
/// stream of late rows opening many small intervals reserves little.
const MAX_SINK_RESERVE: usize = 1 << 14;

/// What adding one input row did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AddOutcome {
    /// Column values that could not be converted (Druid's processedWithError).
    pub conversion_errors: u32,
}

pub struct IncrementalIndex {
    pub dimensions: Vec<DimensionColumn>,
    pub metrics: Vec<MetricColumn>,
    pub times: Vec<i64>,
    /// Row r's key is `arena[key_bounds[r]..key_bounds[r + 1]]` (keys are
    /// appended in row order, so one bound per row and a first 0 suffice).
    key_bounds: Vec<u32>,
    arena: Vec<u32>,
    pub sinks: Vec<Sink>,
    open_sink: HashMap<i64, usize>,
    last_bucket: Option<(i64, usize)>,
    segment_granularity: Granularity,
    query_granularity: Granularity,
    segment_buckets: LastBucket,
    query_buckets: LastBucket,
    rollup: bool,
    /// Estimated bytes of keys and aggregator state (dictionaries apart).
    row_bytes: usize,
    scratch: Vec<u32>,
    list_scratch: Vec<u32>,
    /// Numeric metric inputs parsed once per row, however many
    /// aggregators read them (dep_delay feeds sum, min and max).
    numbers: NumberCache,
    row_generation: u64,
    pub first_error: Option<String>,
}

/// Per input slot: the row generation it was parsed for, and the number
/// its text holds (None: not a number; the aggregator then reports it).
#[derive(Default)]
struct NumberCache {
    slots: Vec<(u64, Option<Value<'static>>)>,
}

impl NumberCache {
    // Inlined: four aggregators ask per row, and the call itself was a
    // third of this function's instructions (callgrind).
    #[inline(always)]
    fn of(&mut self, slot: usize, generation: u64, text: &str) -> Option<&Value<'static>> {
        if slot >= self.slots.len() {
            self.slots.resize(slot + 1, (0, None));
        }
        let entry = &mut self.slots[slot];
        if entry.0 != generation {
            // As `long` and `number` read text (Druid's Rows.objectToNumber):
            // plain digits straight away, anything else by the full rules.
            let parsed = match short_long(text) {
                Some(n) => Some(Value::Long(n)),
                None => match druid_text_number(text) {
                    Some(JavaNumber::Long(n)) => Some(Value::Long(n)),
                    Some(JavaNumber::Double(d)) => Some(Value::Double(d)),
                    None => None,
                },
            };
            // Only numbers are kept here, and they own nothing: overwritten
            // without a call to the drop glue (two a row, ~0.5% of a csv
            // replay's instructions, callgrind).
            std::mem::forget(std::mem::replace(&mut entry.1, parsed));
            entry.0 = generation;
        }
        entry.1.as_ref()
    }
}

/// An optionally signed integer of 1 to 18 ASCII digits (no overflow
/// possible), read without std's general parser; None for anything else,
/// which std's parser then settles.
fn short_long(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let (negative, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut n = 0i64;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + i64::from(d);
    }
    Some(if negative { -n } else { n })
}

impl IncrementalIndex {
    pub fn new(
        segment_granularity: Granularity,
        query_granularity: Granularity,
        rollup: bool,
    ) -> IncrementalIndex {
        IncrementalIndex {
            dimensions: Vec::new(),
            metrics: Vec::new(),
            times: Vec::new(),
            key_bounds: vec![0],
            arena: Vec::new(),
            sinks: Vec::new(),
            open_sink: HashMap::new(),
            last_bucket: None,
            segment_buckets: LastBucket::new(Bucketer::new(&segment_granularity)),
            query_buckets: LastBucket::new(Bucketer::new(&query_granularity)),
            segment_granularity,
            query_granularity,
            rollup,
            row_bytes: 0,
            scratch: Vec::new(),
            list_scratch: Vec::new(),
            numbers: NumberCache::default(),
            row_generation: 0,
            first_error: None,
        }
    }

    pub fn add_dimension(&mut self, name: &str, slot: usize) {
        self.add_typed_dimension(name, slot, None);
    }

    /// A dimension of type `numeric` (None: string).
    pub fn add_typed_dimension(&mut self, name: &str, slot: usize, numeric: Option<NumType>) {
        self.dimensions.push(DimensionColumn {
            name: name.to_string(),
            slot,
            dictionary: Dictionary::new(),
            numeric: numeric.map(NumericDictionary::new),
            multi_value_handling: MultiValueHandling::SortedArray,
            lists: ListDictionary::default(),
        });
    }

    /// How the last added dimension orders the values of a list.
    pub fn set_multi_value_handling(&mut self, handling: MultiValueHandling) {
        if let Some(d) = self.dimensions.last_mut() {
            d.multi_value_handling = handling;
        }
    }

    #[cfg(test)]
    fn add_metric(&mut self, aggregator: &Aggregator, slot: Option<usize>) {
        let input = slot.map_or(MetricInput::None, |s| MetricInput::Slots(vec![s]));
        self.add_metric_with(aggregator, input, None);
    }

    pub fn add_metric_with(
        &mut self,
        aggregator: &Aggregator,
        input: MetricInput,
        filter: Option<Filter>,
    ) {
        let values = match &aggregator.kind {
            AggregatorKind::FirstLast { last, ty } => MetricValues::FirstLast {
                last: *last,
                ty: *ty,
                times: Vec::new(),
                values: Vec::new(),
                state: Vec::new(),
            },
            AggregatorKind::HyperUnique { cardinality } => MetricValues::Sketch {
                cardinality: *cardinality,
                sketches: Vec::new(),
            },
            AggregatorKind::Count => MetricValues::Count(Longs::default()),
            AggregatorKind::Numeric {
                op,
                ty: NumType::Long,
            } => MetricValues::Long {
                op: *op,
                values: Longs::default(),
                set: RowBits::default(),
            },
            AggregatorKind::Numeric {
                op,
                ty: NumType::Double,
            } => MetricValues::Double {
                op: *op,
                values: Vec::new(),
                set: RowBits::default(),
            },
            AggregatorKind::Numeric {
                op,
                ty: NumType::Float,
            } => MetricValues::Float {
                op: *op,
                values: Vec::new(),
                set: RowBits::default(),
            },
            AggregatorKind::Unsupported(t) => panic!("aggregator {t} reached the index"),
        };
        self.metrics.push(MetricColumn {
            aggregator: aggregator.clone(),
            input,
            filter,
            values,
        });
    }

    /// Rows held (after rollup).
    pub fn row_count(&self) -> usize {
        self.times.len()
    }

    /// Estimated heap bytes held: keys, aggregator state and dictionaries
    /// (Druid's maxBytesInMemory estimate, a rough one by design).
    pub fn bytes_in_memory(&self) -> usize {
        self.row_bytes
            + self
                .dimensions
                .iter()
                .map(|d| {
                    d.dictionary.bytes()
                        + d.lists.bytes
                        + d.numeric.as_ref().map_or(0, |n| 24 * n.values.len())
                })
                .sum::<usize>()
    }

    /// Hand over everything held and continue with an empty index of the
    /// same dimensions and metrics (an intermediate persist).
    pub fn take_frozen(&mut self) -> IncrementalIndex {
        let mut fresh = IncrementalIndex::new(
            self.segment_granularity.clone(),
            self.query_granularity.clone(),
            self.rollup,
        );
        for d in &self.dimensions {
            fresh.add_typed_dimension(&d.name, d.slot, d.numeric.as_ref().map(|n| n.ty));
            fresh.set_multi_value_handling(d.multi_value_handling);
        }
        for m in &self.metrics {
            fresh.add_metric_with(&m.aggregator, m.input.clone(), m.filter.clone());
        }
        std::mem::replace(self, fresh)
    }

    /// Room for `rows` rows in the per-row columns. Reserved address space
    /// costs nothing until written, while growing by doubling copies every
    /// column and faults in twice the pages it keeps (measured: about 7% of
    /// a flights replay's CPU went to zeroing pages, most of it from here).
    pub fn reserve_rows(&mut self, rows: usize) {
        let more = rows.saturating_sub(self.times.len());
        self.times.reserve(more);
        self.key_bounds.reserve(more);
        self.arena.reserve(more * self.dimensions.len());
        for m in &mut self.metrics {
            match &mut m.values {
                MetricValues::FirstLast {
                    times,
                    values,
                    state,
                    ..
                } => {
                    times.reserve(more);
                    values.reserve(more);
                    state.reserve(more);
                }
                // Collectors are large: left to grow with the rows.
                MetricValues::Sketch { .. } => {}
                MetricValues::Count(v) => v.reserve(more),
                MetricValues::Long { values, set, .. } => {
                    values.reserve(more);
                    set.reserve(more);
                }
                MetricValues::Double { values, set, .. } => {
                    values.reserve(more);
                    set.reserve(more);
                }
                MetricValues::Float { values, set, .. } => {
                    values.reserve(more);
                    set.reserve(more);
                }
            }
        }
    }

    /// Add one parsed row at event time `time`.
    pub fn add(&mut self, time: i64, values: &[Value]) -> AddOutcome {
        let mut outcome = AddOutcome::default();
        let t = self.query_buckets.start(time);

        // The key: dictionary ids in dimension order, trailing nulls trimmed
        // so rows seen before a dimension was discovered still match.
        let mut key = std::mem::take(&mut self.scratch);
        key.clear();
        for dim in &mut self.dimensions {
            let id = match values.get(dim.slot) {
                None | Some(Value::Null) => 0,
                Some(v) if dim.numeric.is_some() => {
                    let numeric = dim.numeric.as_mut().expect("checked");
                    match numeric.id_of_value(v) {
                        Ok(id) => id,
                        Err(e) => {
                            outcome.conversion_errors += 1;
                            note(&mut self.first_error, || {
                                format!("dimension {}: {e}", dim.name)
                            });
                            0
                        }
                    }
                }
                Some(Value::List(items)) if items.len() > 1 => {
                    match list_key(dim, items, &mut self.list_scratch) {
                        Ok(id) => id,
                        Err(e) => {
                            outcome.conversion_errors += 1;
                            note(&mut self.first_error, || {
                                format!("dimension {}: {e}", dim.name)
                            });
                            0
                        }
                    }
                }
                // The common case without the general conversion's call
                // (`id_of_value` with its string arm inlined instead
                // measured 0.45% more instructions, callgrind).
                Some(Value::Str(text)) => dim.dictionary.intern(text),
                Some(v) => match dim.dictionary.id_of_value(v) {
                    Some(id) => id,
                    None => {
                        outcome.conversion_errors += 1;
                        note(&mut self.first_error, || {
                            format!("dimension {}: cannot hold {v:?}", dim.name)
                        });
                        0
                    }
                },
            };
            key.push(id);
        }
        while key.last() == Some(&0) {
            key.pop();
        }

        let sink = self.sink_for(time);
        let hash = row_hash(t, &key);
        let existing = if self.rollup {
            let (times, bounds, arena) = (&self.times, &self.key_bounds, &self.arena);
            self.sinks[sink]
                .table
                .find(hash, |&r| {
                    let r = r as usize;
                    times[r] == t && arena[bounds[r] as usize..bounds[r + 1] as usize] == key[..]
                })
                .copied()
        } else {
            None
        };
        // A new row's metric columns are pushed in the loop below, each
        // with its first value where it has one.
        let (row, new_row) = match existing {
            Some(r) => (r as usize, false),
            None => {
                let r = self.times.len();
                self.times.push(t);
                self.arena.extend_from_slice(&key);
                self.key_bounds.push(self.arena.len() as u32);
                self.row_bytes += ROW_OVERHEAD_BYTES + 4 * key.len();
                let s = &mut self.sinks[sink];
                s.rows.push(r as u32);
                if self.rollup {
                    let (times, bounds, arena) = (&self.times, &self.key_bounds, &self.arena);
                    s.table.insert_unique(hash, r as u32, |&o| {
                        let o = o as usize;
                        row_hash(times[o], &arena[bounds[o] as usize..bounds[o + 1] as usize])
                    });
                }
                (r, true)
            }
        };
        self.scratch = key;

        self.row_generation += 1;
        let numbers = &mut self.numbers;
        for m in &mut self.metrics {
            let MetricColumn {
                aggregator,
                input,
                filter,
                values: state,
            } = m;
            // The common shapes straight to their column: a count, or a
            // sum/min/max of one column holding a number. The
            // general way below dispatches per input value (~3% of a csv
            // replay's instructions went to that). A new row's value is
            // pushed as it is, not pushed empty and then folded (~1%).
            if filter.is_none() {
                if let MetricValues::Count(v) = state {
                    if new_row {
                        v.push(1);
                        self.row_bytes += NUMERIC_METRIC_BYTES;
                    } else {
                        v.set(row, v.get(row) + 1);
                    }
                    continue;
                }
                // A number as text is parsed once per row (several
                // aggregators may read it); a JSON number is one already
                // (any other value is turned down below and takes the
                // general way).
                if let MetricInput::Slots(slots) = &*input
                    && let [slot] = slots[..]
                    && let Some(number) = match values.get(slot) {
                        Some(Value::Str(text)) => numbers.of(slot, self.row_generation, text),
                        other => other,
                    }
                {
                    if new_row {
                        if push_number(state, number) {
                            self.row_bytes += NUMERIC_METRIC_BYTES;
                            continue;
                        }
                    } else if fold_number(state, row, number) {
                        continue;
                    }
                }
            }
            if new_row {
                self.row_bytes += state.push_empty();
            }
            let result = match filter.as_ref().map(|f| f.test(values, time)) {
                Some(Ok(false)) => Ok(()),
                Some(Err(e)) => Err(e),
                _ => match input {
                    MetricInput::None => state.aggregate(row, &Value::Null, time),
                    MetricInput::Slots(slots) if state.reads_numbers() => {
                        slots.iter().try_for_each(|&s| {
                            let input = values.get(s).unwrap_or(&Value::Null);
                            match input {
                                Value::Str(text) => {
                                    let n = numbers.of(s, self.row_generation, text);
                                    state.aggregate(row, n.unwrap_or(input), time)
                                }
                                _ => state.aggregate(row, input, time),
                            }
                        })
                    }
                    MetricInput::Slots(slots) => slots.iter().try_for_each(|s| {
                        state.aggregate(row, values.get(*s).unwrap_or(&Value::Null), time)
                    }),
                    MetricInput::Expr(e) => e
                        .eval(values, time)
                        .and_then(|v| state.aggregate(row, &v.into_value(), time)),
                },
            };
            if let Err(e) = result {
                outcome.conversion_errors += 1;
                note(&mut self.first_error, || {
                    format!("metric {}: {e}", aggregator.name)
                });
            }
        }
        outcome
    }

    fn sink_for(&mut self, time: i64) -> usize {
        let bucket = self.segment_buckets.start(time);
        if let Some((b, s)) = self.last_bucket
            && b == bucket
        {
            return s;
        }
        let s = match self.open_sink.get(&bucket) {
            Some(&s) => s,
            None => {
                let s = self.sinks.len();
                // Sized for half again the rows an interval has held so
                // far on average: growing each of a replay's 366 day tables
                // from empty (nine rehashes each) was ~2% of its CPU (perf).
                // The average counts intervals still filling (shards read
                // side by side are at different times), so the average
                // itself was too few (267 of those tables still grew), and
                // twice it doubled most tables (4,096 buckets for ~950 rows,
                // ~180 more page faults a run).
                let expected = (3 * self.times.len() / (2 * s.max(1))).min(MAX_SINK_RESERVE);
                self.sinks.push(Sink {
                    interval_start: bucket,
                    interval_end: self.segment_granularity.bucket_end(bucket),
                    rows: Vec::with_capacity(expected),
                    table: if self.rollup {
                        HashTable::with_capacity(expected)
                    } else {
                        HashTable::new()
                    },
                });
                self.open_sink.insert(bucket, s);
                s
            }
        };
        self.last_bucket = Some((bucket, s));
        s
    }

    /// The dictionary ids of a row's key (trailing nulls omitted).
    pub fn key(&self, row: usize) -> &[u32] {
        &self.arena[self.key_bounds[row] as usize..self.key_bounds[row + 1] as usize]
    }
}

/// The key id of a list of two or more values, ordered as the dimension's
/// multiValueHandling says: SORTED_ARRAY sorts (Java string order, null
/// first), SORTED_SET also drops repeats, ARRAY keeps the input order. A
/// list that ends up with one value is that value.
fn list_key(dim: &mut DimensionColumn, items: &[Value], ids: &mut Vec<u32>) -> Result<u32, String> {
    ids.clear();
    for item in items {
        match dim.dictionary.id_of_value(item) {
            Some(id) if !matches!(item, Value::List(_)) => ids.push(id),
            _ => return Err(format!("a list item {item:?} cannot be a string value")),
        }
    }
    if dim.multi_value_handling != MultiValueHandling::Array {
        let d = &dim.dictionary;
        ids.sort_by(|a, b| java_cmp_nullable(d.value(*a), d.value(*b)));
        if dim.multi_value_handling == MultiValueHandling::SortedSet {
            ids.dedup();
        }
    }
    Ok(match ids.as_slice() {
        [one] => *one,
        list => dim.lists.intern(list) | MULTI_VALUE_BIT,
    })
}

/// A row's hash: its time bucket and key ids folded in one by one as
/// integers (foldhash's folded multiply). Hashing the ids as one byte slice
/// read them back in overlapping 8-byte words just after they were stored
/// 4 bytes at a time, a store-forwarding stall (perf: ~6% of `add`).
#[inline(always)]
fn row_hash(t: i64, key: &[u32]) -> u64 {
    const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;
    #[inline(always)]
    fn fold(a: u64) -> u64 {
        let product = u128::from(a) * u128::from(MULTIPLIER);
        product as u64 ^ (product >> 64) as u64
    }
    let mut h = fold(t as u64 ^ 0x5eed);
    for &id in key {
        h = fold(h ^ u64::from(id));
    }
    h
}

fn note(slot: &mut Option<String>, message: impl FnOnce() -> String) {
    if slot.is_none() {
        *slot = Some(message());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::AggregatorSpec;
    use std::borrow::Cow;

    fn agg(kind: AggregatorKind, name: &str) -> Aggregator {
        Aggregator {
            name: name.into(),
            kind,
            field_name: Some(name.into()),
            fields: vec![name.into()],
            expression: None,
            filter: None,
            spec: serde_json::from_value::<AggregatorSpec>(
                serde_json::json!({"type": "longSum", "name": name}),
            )
            .unwrap(),
        }
    }

    /// Whenever the short reader answers, std's parser gives the same.
    #[test]
    fn short_integers_read_as_std_reads_them() {
        let mut cases: Vec<String> = [
            "0", "-0", "+0", "7", "-6", "+762", "", "-", "+", "--1", "1-", "12a", "a12", " 1",
            "1.0", "1e3", "٣",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for digits in 1..=20 {
            cases.push("9".repeat(digits));
            cases.push(format!("-{}", "9".repeat(digits)));
            cases.push(format!("1{}", "0".repeat(digits - 1)));
        }
        cases.push(i64::MIN.to_string());
        cases.push(i64::MAX.to_string());
        for c in &cases {
            if let Some(n) = short_long(c) {
                assert_eq!(Ok(n), c.parse::<i64>(), "{c:?}");
            } else {
                assert!(
                    c.trim_start_matches(['-', '+']).len() > 18 || c.parse::<i64>().is_err(),
                    "{c:?} left to std though short"
                );
            }
        }
        assert_eq!(short_long("-6"), Some(-6));
        assert_eq!(short_long(&"9".repeat(19)), None);
    }

    fn index() -> IncrementalIndex {
        let mut idx = IncrementalIndex::new(
            Granularity::named("DAY").unwrap(),
            Granularity::named("HOUR").unwrap(),
            true,
        );
        idx.add_dimension("d", 0);
        idx.add_metric(&agg(AggregatorKind::Count, "count"), None);
        idx.add_metric(
            &agg(
                AggregatorKind::Numeric {
                    op: AggOp::Sum,
                    ty: NumType::Long,
                },
                "v",
            ),
            Some(1),
        );
        idx.add_metric(
            &agg(
                AggregatorKind::Numeric {
                    op: AggOp::Min,
                    ty: NumType::Double,
                },
                "m",
            ),
            Some(1),
        );
        idx
    }

    fn s(v: &str) -> Value<'_> {
        Value::Str(Cow::Borrowed(v))
    }

    #[test]
    fn rolls_up_equal_keys_within_the_hour() {
        let mut idx = index();
        idx.add(1000, &[s("a"), Value::Long(5)]);
        idx.add(2000, &[s("a"), Value::Long(7)]);
        idx.add(3000, &[s("b"), Value::Null]);
        idx.add(3_600_000, &[s("a"), Value::Long(1)]);
        assert_eq!(idx.row_count(), 3);
        let MetricValues::Count(c) = &idx.metrics[0].values else {
            panic!()
        };
        assert_eq!(c.gather(&[0, 1, 2]), [2, 1, 1]);
        let MetricValues::Long { values, set, .. } = &idx.metrics[1].values else {
            panic!()
        };
        assert_eq!(values.gather(&[0, 1, 2]), [12, 0, 1]);
        assert_eq!(
            (0..3).map(|r| set.get(r)).collect::<Vec<_>>(),
            [true, false, true]
        );
        // A row pushed without a value: readers must look at the bits.
        assert!(!set.all_set());
        let MetricValues::Double { values, .. } = &idx.metrics[2].values else {
            panic!()
        };
        assert_eq!(values[0], 5.0);
        assert_eq!(idx.sinks.len(), 1);
    }

    #[test]
    fn long_columns_widen_when_a_value_outgrows_i32() {
        let mut longs = Longs::default();
        longs.push(5);
        longs.push(-7);
        assert!(matches!(longs, Longs::Narrow(_)));
        longs.set(0, i64::from(i32::MAX) + 1);
        assert!(matches!(longs, Longs::Wide(_)));
        longs.push(i64::MIN);
        assert_eq!(
            longs.gather(&[2, 1, 0]),
            [i64::MIN, -7, i64::from(i32::MAX) + 1]
        );
        let mut pushed = Longs::default();
        pushed.push(i64::from(i32::MIN) - 1);
        assert_eq!(pushed.gather(&[0]), [i64::from(i32::MIN) - 1]);

        // A sum rolled up past i32 keeps every row's value.
        let mut idx = index();
        idx.add(1000, &[s("a"), Value::Long(3)]);
        idx.add(1000, &[s("b"), Value::Long(2_000_000_000)]);
        idx.add(2000, &[s("b"), Value::Long(2_000_000_000)]);
        let MetricValues::Long { values, .. } = &idx.metrics[1].values else {
            panic!()
        };
        assert_eq!(values.gather(&[0, 1]), [3, 4_000_000_000]);
    }

    #[test]
    fn rows_are_all_set_until_one_is_pushed_without_a_value() {
        let mut idx = index();
        idx.add(1000, &[s("a"), Value::Long(5)]);
        idx.add(2000, &[s("b"), Value::Long(7)]);
        let MetricValues::Long { set, .. } = &idx.metrics[1].values else {
            panic!()
        };
        assert!(set.all_set());
        idx.add(3000, &[s("c"), Value::Null]);
        let MetricValues::Long { set, .. } = &idx.metrics[1].values else {
            panic!()
        };
        assert!(!set.all_set());
    }

    #[test]
    fn freezing_hands_over_rows_and_keeps_the_schema() {
        let mut idx = index();
        idx.add(0, &[s("a"), Value::Long(1)]);
        idx.add(0, &[s("b"), Value::Long(1)]);
        let before = idx.bytes_in_memory();
        assert!(before > 0);
        let frozen = idx.take_frozen();
        assert_eq!(frozen.row_count(), 2);
        assert_eq!(frozen.bytes_in_memory(), before);
        assert_eq!(idx.row_count(), 0);
        assert_eq!(idx.bytes_in_memory(), 0);
        idx.add(0, &[s("a"), Value::Long(1)]);
        assert_eq!(idx.dimensions[0].name, "d");
        assert_eq!(idx.metrics.len(), 3);
        assert_eq!(idx.row_count(), 1);
    }

    #[test]
    fn bad_numbers_are_conversion_errors() {
        let mut idx = index();
        let out = idx.add(0, &[s("a"), s("twelve")]);
        assert_eq!(out.conversion_errors, 2);
        assert!(idx.first_error.as_deref().unwrap().contains("twelve"));
    }

    #[test]
    fn numeric_dimensions_convert_as_druid_does() {
        let mut idx = IncrementalIndex::new(
            Granularity::named("DAY").unwrap(),
            Granularity::named("HOUR").unwrap(),
            true,
        );
        idx.add_typed_dimension("n", 0, Some(NumType::Long));
        idx.add_metric(&agg(AggregatorKind::Count, "count"), None);
        assert_eq!(idx.add(0, &[s("12")]).conversion_errors, 0);
        assert_eq!(idx.add(0, &[Value::Double(12.9)]).conversion_errors, 0);
        assert_eq!(idx.add(0, &[s("12.0")]).conversion_errors, 0);
        assert_eq!(idx.add(0, &[s("1.2e1")]).conversion_errors, 0);
        // "12", 12.9, "12.0" and "1.2e1" are all 12: one row.
        assert_eq!(idx.row_count(), 1);
        assert_eq!(idx.add(0, &[s("12.2")]).conversion_errors, 1);
        idx.first_error = None;
        assert_eq!(idx.row_count(), 2, "12.2 became null");
        // getExactLongFromDecimalString neither trims nor drops commas,
        // and "" is no number: each an error, and null.
        for bad in ["", " 12.0 ", "1,2"] {
            assert_eq!(idx.add(0, &[s(bad)]).conversion_errors, 1, "{bad:?}");
        }
        assert_eq!(idx.row_count(), 2, "all null");
        // A boolean is 1/0 (Evals.asLong); a list of one is refused.
        assert_eq!(idx.add(0, &[Value::Bool(true)]).conversion_errors, 0);
        assert_eq!(idx.row_count(), 3);
        assert_eq!(
            idx.add(0, &[Value::List(vec![s("12")])]).conversion_errors,
            1
        );
        idx.first_error = None;
        let out = idx.add(0, &[s("twelve")]);
        assert_eq!(out.conversion_errors, 1);
        assert!(idx.first_error.take().unwrap().contains("twelve"));
        assert_eq!(idx.row_count(), 3, "an unparseable value is null");
    }

    #[test]
    fn float_and_double_dimensions_read_text_as_guava() {
        let mut idx = IncrementalIndex::new(
            Granularity::named("DAY").unwrap(),
            Granularity::named("HOUR").unwrap(),
            true,
        );
        idx.add_typed_dimension("f", 0, Some(NumType::Float));
        idx.add_typed_dimension("d", 1, Some(NumType::Double));
        idx.add_metric(&agg(AggregatorKind::Count, "count"), None);
        for ok in ["1.5", "+1.5", "1.5f", "15e-1"] {
            assert_eq!(idx.add(0, &[s(ok), s(ok)]).conversion_errors, 0, "{ok:?}");
        }
        assert_eq!(idx.row_count(), 1, "all 1.5");
        assert_eq!(idx.add(0, &[s("NaN"), s("-Infinity")]).conversion_errors, 0);
        assert_eq!(idx.row_count(), 2);
        // Doubles.tryParse and Floats.tryParse neither trim nor drop commas.
        for bad in [" 1.5", "1,5", "inf", "nan", ""] {
            assert_eq!(
                idx.add(0, &[s(bad), s(bad)]).conversion_errors,
                2,
                "{bad:?}"
            );
        }
        assert_eq!(idx.row_count(), 3, "the bad ones are one all-null row");
    }

    #[test]
    fn metric_text_reads_as_rows_object_to_number() {
        let mut idx = IncrementalIndex::new(
            Granularity::named("DAY").unwrap(),
            Granularity::named("HOUR").unwrap(),
            true,
        );
        let sum = |ty| AggregatorKind::Numeric { op: AggOp::Sum, ty };
        idx.add_metric(&agg(sum(NumType::Long), "l"), Some(0));
        idx.add_metric(&agg(sum(NumType::Double), "d"), Some(0));
        // Thousands separators, spaces and a plus go; 1.9 is 1 in a long sum.
        for text in ["1,000", " +20 ", "1.9", "\t3e2\n"] {
            assert_eq!(idx.add(0, &[s(text)]).conversion_errors, 0, "{text:?}");
        }
        match (&idx.metrics[0].values, &idx.metrics[1].values) {
            (MetricValues::Long { values, .. }, MetricValues::Double { values: d, .. }) => {
                assert_eq!(values.get(0), 1_000 + 20 + 1 + 300);
                assert_eq!(d[0], 1_000.0 + 20.0 + 1.9 + 300.0);
            }
            _ => panic!("sum columns expected"),
        }
        for bad in ["inf", "1 000", "0x10", ""] {
            assert_eq!(idx.add(0, &[s(bad)]).conversion_errors, 2, "{bad:?}");
        }
    }

    #[test]
    fn null_trailing_dimensions_share_keys() {
        let mut idx = index();
        idx.add(0, &[Value::Null, Value::Long(1)]);
        idx.add(0, &[]);
        assert_eq!(idx.row_count(), 1);
    }
}
