//! The aggregators' columns: one `MetricValues` per aggregator, a value per
//! index row, and how each folds an input value in (numbers, first/last,
//! collectors) with its estimated bytes.

use super::*;

/// One aggregator's values, one per index row.
pub enum MetricValues {
    /// First/last: per row the chosen event time and value (as bits; f32
    /// bits for floats) and its state: 0 nothing yet, 1 a null value, 2 a value.
    FirstLast {
        last: bool,
        ty: NumType,
        times: Vec<i64>,
        values: Vec<u64>,
        state: Vec<u8>,
    },
    /// hyperUnique / cardinality collectors.
    Sketch {
        cardinality: bool,
        sketches: Vec<Hll>,
    },
    Count(Longs),
    Long {
        op: AggOp,
        values: Longs,
        set: RowBits,
    },
    Double {
        op: AggOp,
        values: Vec<f64>,
        set: RowBits,
    },
    Float {
        op: AggOp,
        values: Vec<f32>,
        set: RowBits,
    },
}

/// A column of longs, one per row, held as i32 while every value fits and
/// widened to i64 for good the first time one does not. Counts and the
/// sums and extremes of small integers fit: half the fresh pages a row
/// costs in such a column (the index's metric columns were most of a csv
/// replay's page faults, `perf record -e page-faults`).
#[derive(Debug)]
pub enum Longs {
    Narrow(Vec<i32>),
    Wide(Vec<i64>),
}

impl Default for Longs {
    fn default() -> Longs {
        Longs::Narrow(Vec::new())
    }
}

impl Longs {
    #[inline(always)]
    pub fn push(&mut self, value: i64) {
        match (&mut *self, i32::try_from(value)) {
            (Longs::Narrow(narrow), Ok(v)) => narrow.push(v),
            (Longs::Wide(wide), _) => wide.push(value),
            (Longs::Narrow(_), Err(_)) => self.widen().push(value),
        }
    }

    #[inline(always)]
    pub fn get(&self, row: usize) -> i64 {
        match self {
            Longs::Narrow(narrow) => i64::from(narrow[row]),
            Longs::Wide(wide) => wide[row],
        }
    }

    #[inline(always)]
    pub fn set(&mut self, row: usize, value: i64) {
        match (&mut *self, i32::try_from(value)) {
            (Longs::Narrow(narrow), Ok(v)) => narrow[row] = v,
            (Longs::Wide(wide), _) => wide[row] = value,
            (Longs::Narrow(_), Err(_)) => self.widen()[row] = value,
        }
    }

    pub(super) fn reserve(&mut self, more: usize) {
        match self {
            Longs::Narrow(narrow) => narrow.reserve(more),
            Longs::Wide(wide) => wide.reserve(more),
        }
    }

    /// The values of `rows`, in that order.
    pub fn gather(&self, rows: &[u32]) -> Vec<i64> {
        match self {
            Longs::Narrow(narrow) => rows
                .iter()
                .map(|&r| i64::from(narrow[r as usize]))
                .collect(),
            Longs::Wide(wide) => rows.iter().map(|&r| wide[r as usize]).collect(),
        }
    }

    /// Every value as i64 from now on (with room for as many rows as were
    /// reserved).
    #[cold]
    fn widen(&mut self) -> &mut Vec<i64> {
        if let Longs::Narrow(narrow) = self {
            let mut wide = Vec::with_capacity(narrow.capacity());
            wide.extend(narrow.iter().map(|&v| i64::from(v)));
            *self = Longs::Wide(wide);
        }
        match self {
            Longs::Wide(wide) => wide,
            Longs::Narrow(_) => unreachable!("widened above"),
        }
    }
}

/// One bit per row: whether a numeric aggregator has taken a value (a row
/// without one is null). A byte per row made each such column grow its
/// own run of fresh pages; a page touched for the first time costs a
/// fault and its zeroing, most of a replay's system time.
#[derive(Debug, Default)]
pub struct RowBits {
    words: Vec<u64>,
    len: usize,
    /// Whether a row was ever pushed unset (it may have been set since).
    any_pushed_unset: bool,
}

impl RowBits {
    fn push_unset(&mut self) {
        if self.len.is_multiple_of(64) {
            self.words.push(0);
        }
        self.len += 1;
        self.any_pushed_unset = true;
    }

    /// True when every row is set for sure (none was ever pushed unset), so
    /// a reader need not look at each row's bit.
    #[inline]
    pub fn all_set(&self) -> bool {
        !self.any_pushed_unset
    }

    fn push_set(&mut self) {
        if self.len.is_multiple_of(64) {
            self.words.push(0);
        }
        self.words[self.len / 64] |= 1 << (self.len % 64);
        self.len += 1;
    }

    pub(super) fn reserve(&mut self, more: usize) {
        self.words.reserve(more.div_ceil(64));
    }

    #[inline]
    pub fn get(&self, row: usize) -> bool {
        self.words[row / 64] >> (row % 64) & 1 != 0
    }

    #[inline]
    fn set(&mut self, row: usize) {
        self.words[row / 64] |= 1 << (row % 64);
    }
}

pub struct MetricColumn {
    pub aggregator: Aggregator,
    pub input: MetricInput,
    /// A filtered aggregator's filter.
    pub filter: Option<Filter>,
    pub values: MetricValues,
}

/// Where an aggregator reads its input.
#[derive(Clone)]
pub enum MetricInput {
    None,
    /// Field slots (several for cardinality).
    Slots(Vec<usize>),
    Expr(Expr),
}

/// A number from an input value for a numeric aggregator; Ok(None) for null.
/// Text is read as Druid's `Rows.objectToNumber` reads it (`java::druid_text_number`).
fn number(v: &Value) -> Result<Option<f64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Long(n) => Ok(Some(*n as f64)),
        Value::Double(d) => Ok(Some(*d)),
        Value::Str(s) => match druid_text_number(s) {
            Some(JavaNumber::Long(n)) => Ok(Some(n as f64)),
            Some(JavaNumber::Double(d)) => Ok(Some(d)),
            None => Err(format!("{s:?} is not a number")),
        },
        other => Err(format!("{other:?} is not a number")),
    }
}

/// As `number`, for a long: a double is cast toward zero (Java's `longValue`).
fn long(v: &Value) -> Result<Option<i64>, String> {
    match v {
        Value::Long(n) => Ok(Some(*n)),
        Value::Str(s) => match druid_text_number(s) {
            Some(JavaNumber::Long(n)) => Ok(Some(n)),
            Some(JavaNumber::Double(d)) => Ok(Some(d as i64)),
            None => Err(format!("{s:?} is not a number")),
        },
        _ => number(v).map(|d| d.map(|d| d as i64)),
    }
}

/// A value's string form for a collector (Java's String.valueOf).
fn sketch_text<'a>(v: &'a Value<'a>) -> Result<Option<std::borrow::Cow<'a, str>>, String> {
    use std::borrow::Cow;
    Ok(match v {
        Value::Null => None,
        Value::Str(s) => Some(Cow::Borrowed(s)),
        Value::Long(n) => Some(Cow::Owned(n.to_string())),
        Value::Double(d) => Some(Cow::Owned(java_double_string(*d))),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::List(_) | Value::Nested => return Err(format!("{v:?} cannot be counted")),
    })
}

impl MetricValues {
    /// Whether this aggregator reads its input as a number (so text parsed
    /// to a number once can stand for it).
    pub(super) fn reads_numbers(&self) -> bool {
        !matches!(self, MetricValues::Sketch { .. } | MetricValues::Count(_))
    }

    /// Add a row's empty state; returns its estimated bytes.
    pub(super) fn push_empty(&mut self) -> usize {
        match self {
            MetricValues::FirstLast {
                times,
                values,
                state,
                ..
            } => {
                times.push(0);
                values.push(0);
                state.push(0);
                return 17;
            }
            MetricValues::Sketch { sketches, .. } => {
                sketches.push(Hll::default());
                return 1_056;
            }
            _ => {}
        }
        match self {
            MetricValues::Count(v) => v.push(0),
            MetricValues::Long { values, set, .. } => {
                values.push(0);
                set.push_unset();
            }
            MetricValues::Double { values, set, .. } => {
                values.push(0.0);
                set.push_unset();
            }
            MetricValues::Float { values, set, .. } => {
                values.push(0.0);
                set.push_unset();
            }
            MetricValues::FirstLast { .. } | MetricValues::Sketch { .. } => {}
        }
        NUMERIC_METRIC_BYTES
    }

    /// Fold one input into a row's value. Null inputs leave it untouched
    /// (an all-null row stays null, as with SQL-compatible null handling).
    pub(super) fn aggregate(&mut self, row: usize, input: &Value, time: i64) -> Result<(), String> {
        match self {
            MetricValues::FirstLast {
                last,
                ty,
                times,
                values,
                state,
            } => {
                let value = match ty {
                    NumType::Long => long(input)?.map(|v| v as u64),
                    NumType::Double => number(input)?.map(f64::to_bits),
                    NumType::Float => number(input)?.map(|v| (v as f32).to_bits() as u64),
                };
                // Last takes a later or equal time, first only an earlier one.
                let take = state[row] == 0
                    || (*last && time >= times[row])
                    || (!*last && time < times[row]);
                if take {
                    times[row] = time;
                    values[row] = value.unwrap_or(0);
                    state[row] = if value.is_some() { 2 } else { 1 };
                }
                Ok(())
            }
            MetricValues::Sketch {
                cardinality,
                sketches,
            } => {
                let items = match input {
                    Value::List(items) => items.as_slice(),
                    one => std::slice::from_ref(one),
                };
                for item in items {
                    if let Some(text) = sketch_text(item)? {
                        if *cardinality {
                            sketches[row].add_hash(&murmur3_128_chars(&text));
                        } else {
                            sketches[row].add_str(&text);
                        }
                    }
                }
                Ok(())
            }
            MetricValues::Count(v) => {
                v.set(row, v.get(row) + 1);
                Ok(())
            }
            // Parsed as the aggregator reads its input, then folded as the
            // row path folds an already-parsed number.
            MetricValues::Long { .. } => {
                if let Some(x) = long(input)? {
                    fold_number(self, row, &Value::Long(x));
                }
                Ok(())
            }
            MetricValues::Double { .. } | MetricValues::Float { .. } => {
                if let Some(x) = number(input)? {
                    fold_number(self, row, &Value::Double(x));
                }
                Ok(())
            }
        }
    }
}

/// A parsed number as a long column and a double column take it (a double
/// cast toward zero, as Java's `(long)`); None for anything else.
#[inline(always)]
fn long_and_double(number: &Value) -> Option<(i64, f64)> {
    match *number {
        Value::Long(n) => Some((n, n as f64)),
        Value::Double(d) => Some((d as i64, d)),
        _ => None,
    }
}

/// Estimated bytes of a count, sum, min or max value with its null bit.
pub(super) const NUMERIC_METRIC_BYTES: usize = 9;

/// A new row's first value in a numeric sum/min/max column: what folding
/// a number into an empty state gives; false for any other aggregator.
#[inline(always)]
pub(super) fn push_number(state: &mut MetricValues, number: &Value) -> bool {
    let Some((as_long, as_double)) = long_and_double(number) else {
        return false;
    };
    match state {
        MetricValues::Long { values, set, .. } => {
            values.push(as_long);
            set.push_set();
        }
        MetricValues::Double { values, set, .. } => {
            values.push(as_double);
            set.push_set();
        }
        MetricValues::Float { values, set, .. } => {
            values.push(as_double as f32);
            set.push_set();
        }
        _ => return false,
    }
    true
}

/// Fold a parsed number into a numeric sum/min/max column (the row
/// path's shortcut and `aggregate` both end here); false for any other
/// aggregator.
#[inline(always)]
pub(super) fn fold_number(state: &mut MetricValues, row: usize, number: &Value) -> bool {
    let Some((as_long, as_double)) = long_and_double(number) else {
        return false;
    };
    match state {
        MetricValues::Long { op, values, set } => {
            let mut acc = values.get(row);
            fold(&mut acc, set, row, as_long, *op, i64::wrapping_add);
            values.set(row, acc);
        }
        MetricValues::Double { op, values, set } => {
            fold(&mut values[row], set, row, as_double, *op, |a, b| a + b)
        }
        MetricValues::Float { op, values, set } => {
            fold(&mut values[row], set, row, as_double as f32, *op, |a, b| {
                a + b
            })
        }
        _ => return false,
    }
    true
}

fn fold<T: PartialOrd + Copy>(
    acc: &mut T,
    set: &mut RowBits,
    row: usize,
    x: T,
    op: AggOp,
    add: impl Fn(T, T) -> T,
) {
    if !set.get(row) {
        *acc = x;
        set.set(row);
        return;
    }
    *acc = match op {
        AggOp::Sum => add(*acc, x),
        AggOp::Min if x < *acc => x,
        AggOp::Max if x > *acc => x,
        _ => *acc,
    };
}
