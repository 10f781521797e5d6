//! Druid's expression language, as transformSpec transforms and `expression`
//! filters use it: parsed and checked once (function names, arities, literal
//! arguments such as patterns and periods), then evaluated per row against
//! the row's slots. Numbers never allocate; strings borrow from the row or
//! the expression where they can.
//!
//! Semantics follow current Druid (read in its source: `Expr.g4`,
//! `ExpressionTypeConversion`, `BinaryLogicalOperatorExpr`,
//! `BinaryMathOperatorExpr`, `Function`, the `query/expression` macros) with
//! SQL-compatible null handling and strict booleans, Druid's defaults since
//! 28.0: an operator with a null operand is null, comparisons give 1 or 0 as
//! longs, a string and a number combine as doubles (a string that is not a
//! number is null there).

mod parse;

use super::joda::JodaPattern;
use super::{FieldTable, Value};
use crate::java::{java_cmp, java_double_string, parse_java_double};
use crate::spec::granularity::Granularity;
use crate::spec::time::{civil_from_days, days_from_civil, parse_iso, write_iso};
use std::borrow::Cow;
use std::cmp::Ordering;

/// An evaluated value.
#[derive(Debug, Clone, PartialEq)]
pub enum Eval<'a> {
    Null,
    Long(i64),
    Double(f64),
    Str(Cow<'a, str>),
}

/// A number read from a value (strings parse as Java's Long, then Double).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Long(i64),
    Double(f64),
}

impl Num {
    fn as_long(self) -> i64 {
        match self {
            Num::Long(v) => v,
            // Java's (long) cast: saturating, NaN is 0; so is Rust's `as`.
            Num::Double(v) => v as i64,
        }
    }
    fn as_double(self) -> f64 {
        match self {
            Num::Long(v) => v as f64,
            Num::Double(v) => v,
        }
    }
}

fn parse_number(s: &str) -> Option<Num> {
    if let Ok(v) = s.parse::<i64>() {
        return Some(Num::Long(v));
    }
    parse_java_double(s).map(Num::Double)
}

impl<'a> Eval<'a> {
    pub fn is_null(&self) -> bool {
        matches!(self, Eval::Null)
    }

    fn number(&self) -> Option<Num> {
        match self {
            Eval::Null => None,
            Eval::Long(v) => Some(Num::Long(*v)),
            Eval::Double(v) => Some(Num::Double(*v)),
            Eval::Str(s) => parse_number(s),
        }
    }

    fn as_long(&self) -> Option<i64> {
        self.number().map(Num::as_long)
    }

    /// Druid's asBoolean: numbers above zero, the string "true" (any case).
    pub fn as_bool(&self) -> bool {
        match self {
            Eval::Null => false,
            Eval::Long(v) => *v > 0,
            Eval::Double(v) => *v > 0.0,
            Eval::Str(s) => s.eq_ignore_ascii_case("true"),
        }
    }

    /// The string form (numbers as Java prints them).
    pub fn as_str(&self) -> Option<Cow<'_, str>> {
        match self {
            Eval::Null => None,
            Eval::Long(v) => Some(Cow::Owned(v.to_string())),
            Eval::Double(v) => Some(Cow::Owned(java_double_string(*v))),
            Eval::Str(s) => Some(Cow::Borrowed(s)),
        }
    }

    /// The value as a row slot holds it.
    pub fn into_value(self) -> Value<'static> {
        match self {
            Eval::Null => Value::Null,
            Eval::Long(v) => Value::Long(v),
            Eval::Double(v) => Value::Double(v),
            Eval::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
        }
    }

    fn boolean(b: bool) -> Eval<'a> {
        Eval::Long(b as i64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CastType {
    Long,
    Double,
    String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Epoch,
    Microsecond,
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Dow,
    Doy,
    Week,
    Month,
    Quarter,
    Year,
    IsoYear,
    Decade,
    Century,
    Millennium,
}

#[derive(Debug, Clone)]
enum Func {
    Concat,
    Like(regex::Regex),
    Substring,
    Strlen,
    Lower,
    Upper,
    Replace,
    Nvl,
    If,
    CaseSearched,
    CaseSimple,
    Cast(CastType),
    TimestampFloor(Granularity),
    TimestampParse(Option<JodaPattern>),
    TimestampFormat(Option<JodaPattern>),
    TimestampExtract(Unit),
}

#[derive(Debug, Clone)]
enum Node {
    Const(Eval<'static>),
    Field(usize),
    Time,
    Neg(Box<Node>),
    Not(Box<Node>),
    Binary(BinOp, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    /// Only the arguments evaluated per row (literal ones are compiled in).
    Call(Func, Vec<Node>),
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub struct Expr {
    root: Node,
    source: String,
}

impl Expr {
    /// Parse and check an expression, registering the fields it reads.
    pub fn compile(source: &str, fields: &mut FieldTable) -> Result<Expr, String> {
        let root = parse::parse(source, fields)?;
        Ok(Expr {
            root,
            source: source.to_string(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluate on a row's slots at row time `time`. An error is a reason
    /// the row cannot be transformed (Druid fails such a row too).
    pub fn eval<'a>(&'a self, row: &'a [Value<'a>], time: i64) -> Result<Eval<'a>, String> {
        eval(&self.root, row, time).map_err(|e| format!("expression {:?}: {e}", self.source))
    }
}

// ---------------------------------------------------------------- eval

fn field<'a>(v: &'a Value<'a>) -> Result<Eval<'a>, String> {
    Ok(match v {
        Value::Null | Value::Nested => Eval::Null,
        Value::Str(s) => Eval::Str(Cow::Borrowed(s)),
        Value::Long(v) => Eval::Long(*v),
        Value::Double(v) => Eval::Double(*v),
        Value::Bool(b) => Eval::Long(*b as i64),
        Value::List(items) => match items.as_slice() {
            [] => Eval::Null,
            [one] => field(one)?,
            _ => return Err("multi-value inputs are not supported in expressions yet".into()),
        },
    })
}

fn eval<'a>(node: &'a Node, row: &'a [Value<'a>], time: i64) -> Result<Eval<'a>, String> {
    Ok(match node {
        Node::Const(v) => match v {
            Eval::Str(s) => Eval::Str(Cow::Borrowed(s)),
            other => other.clone(),
        },
        Node::Field(slot) => match row.get(*slot) {
            Some(v) => field(v)?,
            None => Eval::Null,
        },
        Node::Time => Eval::Long(time),
        Node::Neg(inner) => match eval(inner, row, time)? {
            Eval::Null => Eval::Null,
            Eval::Long(v) => Eval::Long(v.wrapping_neg()),
            Eval::Double(v) => Eval::Double(-v),
            Eval::Str(_) => return Err("unary '-' is not supported on strings".into()),
        },
        Node::Not(inner) => match eval(inner, row, time)? {
            Eval::Null => Eval::Null,
            v => Eval::boolean(!v.as_bool()),
        },
        Node::And(l, r) => {
            let left = eval(l, row, time)?;
            if !left.is_null() && !left.as_bool() {
                return Ok(Eval::boolean(false));
            }
            let right = eval(r, row, time)?;
            if left.is_null() {
                // null && true = null && null = null; null && false = false.
                if right.is_null() || right.as_bool() {
                    Eval::Null
                } else {
                    Eval::boolean(false)
                }
            } else if right.is_null() {
                Eval::Null
            } else {
                Eval::boolean(right.as_bool())
            }
        }
        Node::Or(l, r) => {
            let left = eval(l, row, time)?;
            if !left.is_null() && left.as_bool() {
                return Ok(Eval::boolean(true));
            }
            let right = eval(r, row, time)?;
            if left.is_null() {
                if right.is_null() || !right.as_bool() {
                    Eval::Null
                } else {
                    Eval::boolean(true)
                }
            } else if right.is_null() {
                Eval::Null
            } else {
                Eval::boolean(right.as_bool())
            }
        }
        Node::Binary(op, l, r) => binary_op(*op, eval(l, row, time)?, eval(r, row, time)?)?,
        Node::Call(func, args) => call(func, args, row, time)?,
    })
}

fn binary_op<'a>(op: BinOp, l: Eval<'a>, r: Eval<'a>) -> Result<Eval<'a>, String> {
    use BinOp::*;
    if l.is_null() || r.is_null() {
        return Ok(Eval::Null);
    }
    if let (Eval::Str(a), Eval::Str(b)) = (&l, &r) {
        let cmp = || java_cmp(a, b);
        return Ok(match op {
            Add => Eval::Str(Cow::Owned(format!("{a}{b}"))),
            Lt => Eval::boolean(cmp() == Ordering::Less),
            Le => Eval::boolean(cmp() != Ordering::Greater),
            Gt => Eval::boolean(cmp() == Ordering::Greater),
            Ge => Eval::boolean(cmp() != Ordering::Less),
            Eq => Eval::boolean(a == b),
            Ne => Eval::boolean(a != b),
            _ => return Err(format!("operator {op:?} is not supported on strings")),
        });
    }
    // Both present, not both strings: numbers (a string that is not one is null).
    let (Some(a), Some(b)) = (l.number(), r.number()) else {
        return Ok(Eval::Null);
    };
    if let (Eval::Long(a), Eval::Long(b)) = (&l, &r) {
        let (a, b) = (*a, *b);
        return Ok(match op {
            Add => Eval::Long(a.wrapping_add(b)),
            Sub => Eval::Long(a.wrapping_sub(b)),
            Mul => Eval::Long(a.wrapping_mul(b)),
            Div | Mod if b == 0 => return Err("division by zero".into()),
            Div => Eval::Long(a.wrapping_div(b)),
            Mod => Eval::Long(a.wrapping_rem(b)),
            Pow => {
                let exp = u32::try_from(b).map_err(|_| format!("exponent {b} out of range"))?;
                Eval::Long(a.wrapping_pow(exp))
            }
            Lt => Eval::boolean(a < b),
            Le => Eval::boolean(a <= b),
            Gt => Eval::boolean(a > b),
            Ge => Eval::boolean(a >= b),
            Eq => Eval::boolean(a == b),
            Ne => Eval::boolean(a != b),
        });
    }
    let (a, b) = (a.as_double(), b.as_double());
    // Double.compare order for <, <=, >, >= (NaN above everything).
    let cmp = a.total_cmp(&b);
    let cmp = if a == b { Ordering::Equal } else { cmp };
    Ok(match op {
        Add => Eval::Double(a + b),
        Sub => Eval::Double(a - b),
        Mul => Eval::Double(a * b),
        Div => Eval::Double(a / b),
        Mod => Eval::Double(a % b),
        Pow => Eval::Double(a.powf(b)),
        Lt => Eval::boolean(cmp == Ordering::Less),
        Le => Eval::boolean(cmp != Ordering::Greater),
        Gt => Eval::boolean(cmp == Ordering::Greater),
        Ge => Eval::boolean(cmp != Ordering::Less),
        Eq => Eval::boolean(a == b),
        Ne => Eval::boolean(a != b),
    })
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Java's substring by UTF-16 index, on char boundaries.
fn utf16_slice(s: &str, from: usize, to: Option<usize>) -> String {
    let mut out = String::new();
    let mut at = 0;
    for c in s.chars() {
        if to.is_some_and(|t| at >= t) {
            break;
        }
        if at >= from {
            out.push(c);
        }
        at += c.len_utf16();
    }
    out
}

fn call<'a>(
    func: &'a Func,
    args: &'a [Node],
    row: &'a [Value<'a>],
    time: i64,
) -> Result<Eval<'a>, String> {
    let arg = |i: usize| eval(&args[i], row, time);
    let text = |v: Eval<'a>| -> Option<Cow<'a, str>> {
        match v {
            Eval::Str(s) => Some(s),
            other => other.as_str().map(|s| Cow::Owned(s.into_owned())),
        }
    };
    Ok(match func {
        Func::Concat => {
            let mut out = String::new();
            for i in 0..args.len() {
                match text(arg(i)?) {
                    Some(s) => out.push_str(&s),
                    None => return Ok(Eval::Null),
                }
            }
            if args.is_empty() {
                Eval::Null
            } else {
                Eval::Str(Cow::Owned(out))
            }
        }
        Func::Like(regex) => match text(arg(0)?) {
            Some(s) => Eval::boolean(regex.is_match(&s)),
            None => Eval::boolean(false),
        },
        Func::Substring => {
            let Some(s) = text(arg(0)?) else {
                return Ok(Eval::Null);
            };
            let index = arg(1)?.as_long().unwrap_or(0);
            let length = arg(2)?.as_long().unwrap_or(0);
            if index < 0 {
                return Err(format!("substring: index {index} is negative"));
            }
            let index = index as usize;
            if index >= utf16_len(&s) {
                // Druid: past the end is the default string, null here.
                Eval::Null
            } else if length >= 0 {
                Eval::Str(Cow::Owned(utf16_slice(
                    &s,
                    index,
                    Some(index.saturating_add(length as usize)),
                )))
            } else {
                Eval::Str(Cow::Owned(utf16_slice(&s, index, None)))
            }
        }
        Func::Strlen => match text(arg(0)?) {
            Some(s) => Eval::Long(utf16_len(&s) as i64),
            None => Eval::Null,
        },
        Func::Lower => match text(arg(0)?) {
            Some(s) => Eval::Str(Cow::Owned(s.to_lowercase())),
            None => Eval::Null,
        },
        Func::Upper => match text(arg(0)?) {
            Some(s) => Eval::Str(Cow::Owned(s.to_uppercase())),
            None => Eval::Null,
        },
        Func::Replace => {
            let Some(s) = text(arg(0)?) else {
                return Ok(Eval::Null);
            };
            let from = text(arg(1)?).unwrap_or_default();
            let to = text(arg(2)?).unwrap_or_default();
            if from.is_empty() {
                Eval::Str(s)
            } else {
                Eval::Str(Cow::Owned(s.replace(&*from, &to)))
            }
        }
        Func::Nvl => match arg(0)? {
            Eval::Null => arg(1)?,
            v => v,
        },
        Func::If => {
            if arg(0)?.as_bool() {
                arg(1)?
            } else {
                arg(2)?
            }
        }
        Func::CaseSearched => {
            let mut i = 0;
            while i < args.len() {
                if i == args.len() - 1 {
                    return arg(i);
                }
                if arg(i)?.as_bool() {
                    return arg(i + 1);
                }
                i += 2;
            }
            Eval::Null
        }
        Func::CaseSimple => {
            let subject = arg(0)?;
            let mut i = 1;
            while i < args.len() {
                if i == args.len() - 1 {
                    return arg(i);
                }
                if binary_op(BinOp::Eq, subject.clone(), arg(i)?)?.as_bool() {
                    return arg(i + 1);
                }
                i += 2;
            }
            Eval::Null
        }
        Func::Cast(ty) => {
            let v = arg(0)?;
            match ty {
                CastType::Long => v.number().map_or(Eval::Null, |n| Eval::Long(n.as_long())),
                CastType::Double => v
                    .number()
                    .map_or(Eval::Null, |n| Eval::Double(n.as_double())),
                CastType::String => text(v).map_or(Eval::Null, Eval::Str),
            }
        }
        Func::TimestampFloor(gran) => match arg(0)?.as_long() {
            Some(t) => Eval::Long(gran.bucket_start(t)),
            None => Eval::Null,
        },
        Func::TimestampParse(pattern) => {
            let Some(s) = text(arg(0)?) else {
                return Ok(Eval::Null);
            };
            let parsed = match pattern {
                Some(p) => p.parse(&s),
                None => parse_sql_or_iso(&s),
            };
            parsed.map_or(Eval::Null, Eval::Long)
        }
        Func::TimestampFormat(pattern) => match arg(0)?.as_long() {
            Some(t) => {
                let mut out = String::new();
                match pattern {
                    Some(p) => p.format(t, &mut out),
                    None => write_iso(&mut out, t),
                }
                Eval::Str(Cow::Owned(out))
            }
            None => Eval::Null,
        },
        Func::TimestampExtract(unit) => {
            let t = match arg(0)? {
                Eval::Null => return Ok(Eval::Null),
                Eval::Long(t) => t,
                // Joda reads a string instant as ISO-8601.
                Eval::Str(s) => parse_iso(&s)
                    .ok_or_else(|| format!("timestamp_extract: {s:?} is not an ISO instant"))?,
                Eval::Double(_) => {
                    return Err("timestamp_extract: a double is not an instant".into());
                }
            };
            extract(*unit, t)
        }
    })
}

/// timestamp_parse without a pattern: an ISO date, then optionally `T` or a
/// space and a time, then optionally an offset.
fn parse_sql_or_iso(s: &str) -> Option<i64> {
    if s.len() > 10 && s.as_bytes()[10] == b' ' {
        let mut iso = s.to_string();
        iso.replace_range(10..11, "T");
        return parse_iso(&iso);
    }
    parse_iso(s)
}

const MS_PER_DAY: i64 = 86_400_000;

/// Fields of a UTC instant, as Joda's ISO chronology numbers them.
fn extract(unit: Unit, t: i64) -> Eval<'static> {
    let days = t.div_euclid(MS_PER_DAY);
    let ms_of_day = t.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    // ISO weekday: 1970-01-01 was a Thursday (4).
    let dow = (days + 3).rem_euclid(7) + 1;
    let doy = days - days_from_civil(year, 1, 1) + 1;
    // ISO week: the week holding this week's Thursday.
    let thursday = days - dow + 4;
    let (week_year, _, _) = civil_from_days(thursday);
    let week = (thursday - days_from_civil(week_year, 1, 1)) / 7 + 1;
    Eval::Long(match unit {
        Unit::Epoch => t / 1000,
        Unit::Microsecond => t / 1000 / 1000,
        Unit::Millisecond => ms_of_day % 1000,
        Unit::Second => ms_of_day / 1000 % 60,
        Unit::Minute => ms_of_day / 60_000 % 60,
        Unit::Hour => ms_of_day / 3_600_000,
        Unit::Day => day as i64,
        Unit::Dow => dow,
        Unit::Doy => doy,
        Unit::Week => week,
        Unit::Month => month as i64,
        Unit::Quarter => (month as i64 - 1) / 3 + 1,
        Unit::Year => year,
        Unit::IsoYear => week_year,
        Unit::Decade => year / 10,
        Unit::Century => return Eval::Double((year as f64 / 100.0).ceil()),
        Unit::Millennium => return Eval::Double((year as f64 / 1000.0).ceil()),
    })
}

#[cfg(test)]
mod tests {
    //! Expected values from Druid's own tests and documentation, cited per
    //! case: `EvalTest`, `ParserTest`, `FunctionTest` (core/src/test/.../math/expr),
    //! `TimestampExtractExprMacroTest`, `TimestampFloorExprMacroTest`,
    //! `TimestampParseExprMacroTest`, `TimestampFormatExprMacroTest`,
    //! `LikeExprMacroTest` (processing/src/test/.../query/expression) and
    //! docs/querying/math-expr.md. Druid's test bindings are x = "foo",
    //! y = 2, z = 3.1 and t = 2000-02-03T04:05:06.789Z.
    use super::*;
    use crate::spec::time::parse_iso;

    fn run(src: &str) -> Eval<'static> {
        let mut fields = FieldTable::new(false, false, &[]);
        let expr = Expr::compile(src, &mut fields).unwrap_or_else(|e| panic!("{src}: {e}"));
        let mut row = vec![Value::Null; fields.len()];
        for (name, v) in [
            ("x", Value::Str("foo".into())),
            ("y", Value::Long(2)),
            ("z", Value::Double(3.1)),
            ("s", Value::Str("75".into())),
            ("t", Value::Long(t0())),
            ("iso", Value::Str("2000-02-03T04:05:06.789Z".into())),
        ] {
            if let Some(slot) = (0..fields.len()).find(|&i| fields.name(i) == name) {
                row[slot] = v;
            }
        }
        match expr.eval(&row, t0()) {
            Ok(Eval::Str(s)) => Eval::Str(Cow::Owned(s.into_owned())),
            Ok(Eval::Null) => Eval::Null,
            Ok(Eval::Long(v)) => Eval::Long(v),
            Ok(Eval::Double(v)) => Eval::Double(v),
            Err(e) => panic!("{src}: {e}"),
        }
    }

    fn t0() -> i64 {
        parse_iso("2000-02-03T04:05:06.789Z").unwrap()
    }

    fn s(v: &str) -> Eval<'static> {
        Eval::Str(Cow::Owned(v.to_string()))
    }

    fn compile_error(src: &str) -> String {
        let mut fields = FieldTable::new(false, false, &[]);
        Expr::compile(src, &mut fields).unwrap_err()
    }

    #[test]
    fn arithmetic_and_precedence() {
        // EvalTest.testLongEval / testDoubleEval.
        assert_eq!(run("1 + 1"), Eval::Long(2));
        assert_eq!(run("1 - 1"), Eval::Long(0));
        assert_eq!(run("2 * 3"), Eval::Long(6));
        assert_eq!(run("7 / 2"), Eval::Long(3));
        assert_eq!(run("7 % 4"), Eval::Long(3));
        assert_eq!(run("2 ^ 10"), Eval::Long(1024));
        assert_eq!(run("1.0 + 1"), Eval::Double(2.0));
        assert_eq!(run("7.0 / 2"), Eval::Double(3.5));
        assert_eq!(run("2.0 ^ 3"), Eval::Double(8.0));
        assert_eq!(run("1 + 2 * 3"), Eval::Long(7));
        assert_eq!(run("(1 + 2) * 3"), Eval::Long(9));
        // Expr.g4: ^ is right-associative; unary minus binds tighter than ^.
        assert_eq!(run("2 ^ 3 ^ 2"), Eval::Long(512));
        assert_eq!(run("-3 ^ 2"), Eval::Long(9));
        assert_eq!(run("10 - 4 - 3"), Eval::Long(3));
        assert_eq!(run("y * z"), Eval::Double(2.0 * 3.1));
        // String plus string concatenates (BinPlusExpr.evalString).
        assert_eq!(run("x + 'bar'"), s("foobar"));
        // A numeric string with a number combines as doubles.
        assert_eq!(run("s + 1"), Eval::Double(76.0));
        assert_eq!(run("x + 1"), Eval::Null);
    }

    #[test]
    fn division_by_zero_is_a_row_error() {
        let mut fields = FieldTable::new(false, false, &[]);
        let e = Expr::compile("y / 0", &mut fields).unwrap();
        let row = vec![Value::Long(2)];
        assert!(e.eval(&row, 0).unwrap_err().contains("division by zero"));
        assert_eq!(run("y / 0.0"), Eval::Double(f64::INFINITY));
    }

    #[test]
    fn comparisons_and_logic_with_strict_booleans() {
        // EvalTest: comparisons give 1/0 (useStrictBooleans, Druid 28+).
        assert_eq!(run("1 < 2"), Eval::Long(1));
        assert_eq!(run("2.0 <= 1"), Eval::Long(0));
        assert_eq!(run("y == 2"), Eval::Long(1));
        assert_eq!(run("z != 3.1"), Eval::Long(0));
        assert_eq!(run("x == 'foo'"), Eval::Long(1));
        assert_eq!(run("'a' < 'b'"), Eval::Long(1));
        assert_eq!(run("s > 60"), Eval::Long(1), "numeric string vs long");
        assert_eq!(run("!0"), Eval::Long(1));
        assert_eq!(run("!-1"), Eval::Long(1), "-1 is not true (asBoolean: > 0)");
        assert_eq!(run("1 && 0"), Eval::Long(0));
        assert_eq!(run("1 || 0"), Eval::Long(1));
        assert_eq!(run("1 || 0 && 0"), Eval::Long(1), "&& binds tighter");
        // SQL three-valued logic (EvalTest.testBooleanReturn, sql mode).
        assert_eq!(run("null && 1"), Eval::Null);
        assert_eq!(run("null && 0"), Eval::Long(0));
        assert_eq!(run("null || 1"), Eval::Long(1));
        assert_eq!(run("null || 0"), Eval::Null);
        assert_eq!(run("null + 1"), Eval::Null);
        assert_eq!(run("nonexistent > 1"), Eval::Null);
        assert_eq!(run("'true' && 1"), Eval::Long(1));
    }

    #[test]
    fn string_functions() {
        // FunctionTest.testConcat / testStrlen / testSubstring / testReplace
        // / testLower / testUpper.
        assert_eq!(run("concat(x, 'foo')"), s("foofoo"));
        assert_eq!(run("concat(x, y)"), s("foo2"));
        assert_eq!(run("concat(z, '-', y)"), s("3.1-2"));
        assert_eq!(run("concat(x, nonexistent)"), Eval::Null);
        assert_eq!(run("strlen(x)"), Eval::Long(3));
        assert_eq!(run("strlen(nonexistent)"), Eval::Null);
        assert_eq!(run("strlen('\u{1F600}')"), Eval::Long(2), "UTF-16 units");
        assert_eq!(run("substring(x, 0, 2)"), s("fo"));
        assert_eq!(run("substring(x, 1, 2)"), s("oo"));
        assert_eq!(run("substring(x, 1, -1)"), s("oo"));
        assert_eq!(run("substring(x, 0, 10)"), s("foo"));
        assert_eq!(run("substring(x, 3, 1)"), Eval::Null);
        assert_eq!(run("substring(nonexistent, 0, 1)"), Eval::Null);
        assert_eq!(run("replace(x, 'oo', 'ab')"), s("fab"));
        assert_eq!(run("replace(x, x, 'ab')"), s("ab"));
        assert_eq!(run("replace(x, 'oo', y)"), s("f2"));
        assert_eq!(run("lower('FOO')"), s("foo"));
        assert_eq!(run("upper(x)"), s("FOO"));
        assert_eq!(
            run("UPPER(x)"),
            s("FOO"),
            "function names are case-insensitive"
        );
        // LikeExprMacroTest / math-expr.md: like(expr, pattern[, escape]).
        assert_eq!(run("like(x, 'f%')"), Eval::Long(1));
        assert_eq!(run("like(x, '_o_')"), Eval::Long(1));
        assert_eq!(run("like(x, 'o%')"), Eval::Long(0));
        assert_eq!(run("like('a%b', 'a!%b', '!')"), Eval::Long(1));
        assert_eq!(run("like(nonexistent, '%')"), Eval::Long(0));
        // Escapes in string literals (Java's).
        assert_eq!(run("'it\\'s'"), s("it's"));
        assert_eq!(run("'\\u0041'"), s("A"));
        // A quoted identifier reads a field.
        assert_eq!(run("\"x\""), s("foo"));
    }

    #[test]
    fn conditionals_and_casts() {
        // FunctionTest.testIf / testNvl / testCaseSimple / testCaseSearched.
        assert_eq!(run("if(y, 'foo', 'bar')"), s("foo"));
        assert_eq!(run("if(y == 3, 'foo', 'bar')"), s("bar"));
        assert_eq!(run("nvl(nonexistent, 'foo')"), s("foo"));
        assert_eq!(run("nvl(x, 'bar')"), s("foo"));
        assert_eq!(
            run("case_searched(x == 'baz', 'is baz', x == 'foo', 'is foo', 'is other')"),
            s("is foo")
        );
        assert_eq!(
            run("case_searched(x == 'baz', 'is baz', x == 'bar', 'is bar', 'is other')"),
            s("is other")
        );
        assert_eq!(run("case_searched(x == 'baz', 'is baz')"), Eval::Null);
        assert_eq!(
            run("case_simple(x, 'baz', 'is baz', 'foo', 'is foo', 'is other')"),
            s("is foo")
        );
        assert_eq!(
            run("case_simple(y, 2, 'is 2', 3, 'is 3', 'is other')"),
            s("is 2")
        );
        assert_eq!(
            run("case_simple(z, 2.0, 'is 2.0', 3.0, 'is 3.0', 'is other')"),
            s("is other")
        );
        // ExprEval.castTo: strings parse as long then double; doubles truncate.
        assert_eq!(run("cast('5', 'LONG')"), Eval::Long(5));
        assert_eq!(run("cast('5.9', 'long')"), Eval::Long(5));
        assert_eq!(run("cast(z, 'LONG')"), Eval::Long(3));
        assert_eq!(run("cast(y, 'DOUBLE')"), Eval::Double(2.0));
        assert_eq!(run("cast(y, 'STRING')"), s("2"));
        assert_eq!(run("cast(1e10, 'STRING')"), s("1.0E10"));
        assert_eq!(run("cast(x, 'LONG')"), Eval::Null);
    }

    #[test]
    fn timestamp_functions() {
        // TimestampExtractExprMacroTest (t = 2000-02-03T04:05:06.789Z).
        let ex = |unit: &str| run(&format!("timestamp_extract(t, '{unit}')"));
        assert_eq!(ex("EPOCH"), Eval::Long(949550706));
        assert_eq!(ex("MILLISECOND"), Eval::Long(789));
        assert_eq!(ex("SECOND"), Eval::Long(6));
        assert_eq!(ex("MINUTE"), Eval::Long(5));
        assert_eq!(ex("HOUR"), Eval::Long(4));
        assert_eq!(ex("DAY"), Eval::Long(3));
        assert_eq!(ex("DOW"), Eval::Long(4), "a Thursday");
        assert_eq!(ex("DOY"), Eval::Long(34));
        assert_eq!(ex("WEEK"), Eval::Long(5));
        assert_eq!(ex("MONTH"), Eval::Long(2));
        assert_eq!(ex("QUARTER"), Eval::Long(1));
        assert_eq!(ex("YEAR"), Eval::Long(2000));
        assert_eq!(ex("ISOYEAR"), Eval::Long(2000));
        assert_eq!(ex("DECADE"), Eval::Long(200));
        assert_eq!(ex("CENTURY"), Eval::Double(20.0));
        assert_eq!(ex("MILLENNIUM"), Eval::Double(2.0));
        assert_eq!(
            run("timestamp_extract(iso, 'YEAR')"),
            Eval::Long(2000),
            "strings are read as ISO instants"
        );
        // ISO week-year at a year boundary: 2021-01-01 is in 2020-W53.
        assert_eq!(
            run("timestamp_extract(timestamp_parse('2021-01-01'), 'ISOYEAR')"),
            Eval::Long(2020)
        );
        assert_eq!(
            run("timestamp_extract(timestamp_parse('2021-01-01'), 'WEEK')"),
            Eval::Long(53)
        );
        // TimestampFloorExprMacroTest / math-expr.md.
        assert_eq!(
            run("timestamp_floor(t, 'P1D')"),
            Eval::Long(parse_iso("2000-02-03").unwrap())
        );
        assert_eq!(
            run("timestamp_floor(t, 'PT1H')"),
            Eval::Long(parse_iso("2000-02-03T04:00:00Z").unwrap())
        );
        assert_eq!(
            run("timestamp_floor(t, 'P1M')"),
            Eval::Long(parse_iso("2000-02-01").unwrap())
        );
        assert_eq!(run("timestamp_floor(nonexistent, 'P1D')"), Eval::Null);
        // TimestampParseExprMacroTest: ISO with T or a space, patterns,
        // unparseable text is null.
        assert_eq!(
            run("timestamp_parse('2000-02-03T04:05:06.789Z')"),
            Eval::Long(t0())
        );
        assert_eq!(
            run("timestamp_parse('2000-02-03 04:05:06.789')"),
            Eval::Long(t0())
        );
        assert_eq!(
            run("timestamp_parse('03/Feb/2000:04:05:06 +0000', 'dd/MMM/yyyy:HH:mm:ss Z')"),
            Eval::Long(t0() - 789)
        );
        assert_eq!(run("timestamp_parse('not a time')"), Eval::Null);
        // TimestampFormatExprMacroTest.
        assert_eq!(run("timestamp_format(t)"), s("2000-02-03T04:05:06.789Z"));
        assert_eq!(run("timestamp_format(t, 'yyyy-MM-dd')"), s("2000-02-03"));
        assert_eq!(
            run("timestamp_format(t, 'EEE dd MMM yyyy hh:mm:ss.SSS a Z')"),
            s("Thu 03 Feb 2000 04:05:06.789 AM +0000")
        );
        assert_eq!(run("timestamp_format(__time, 'yyyy')"), s("2000"));
    }

    #[test]
    fn mistakes_are_caught_when_compiling() {
        assert!(compile_error("concat(x,").contains("ends too early"));
        assert!(compile_error("nosuch(x)").contains("unknown function nosuch"));
        assert!(compile_error("substring(x, 1)").contains("substring takes 3"));
        assert!(compile_error("like(x, y)").contains("string literal"));
        assert!(compile_error("timestamp_floor(t, 'PT1X')").contains("timestamp_floor"));
        assert!(compile_error("timestamp_extract(t, 'FORTNIGHT')").contains("unknown unit"));
        assert!(compile_error("cast(x, 'BLOB')").contains("BLOB"));
        assert!(compile_error("1 +").contains("ends too early"));
        assert!(compile_error("(1 + 2").contains("ends too early"));
        assert!(compile_error("1 2").contains("unexpected number 2"));
        assert!(compile_error("'open").contains("unterminated"));
        assert!(compile_error("x # y").contains("unexpected character"));
        assert!(
            compile_error("timestamp_floor(t, 'P1D', null, 'America/New_York')")
                .contains("UTC only")
        );
    }
}
