//! transformSpec.filter: Druid's dimension filters on input rows, compiled
//! at validation (regexes built, bounds parsed) and evaluated per row on
//! the row's own values. A row the filter rejects counts as thrownAway.
//! Values compare in their string form (numbers as Java prints them), a
//! multi-value row matches when any of its values does, as in Druid.

use super::expr::Expr;
use super::{FieldTable, Value};
use crate::java::{java_cmp, java_double_string};
use crate::spec::time::parse_iso;
use serde_json::Value as Json;
use std::borrow::Cow;
use std::cmp::Ordering;

#[derive(Debug, Clone)]
pub enum Filter {
    True,
    False,
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    /// `selector` / `in` / `null` / `equals`: any of the values (None is null).
    In {
        column: Column,
        values: Vec<Option<String>>,
    },
    Bound {
        column: Column,
        lower: Option<(String, bool)>,
        upper: Option<(String, bool)>,
        numeric: bool,
    },
    Regex {
        column: Column,
        regex: regex::Regex,
    },
    Interval {
        intervals: Vec<(i64, i64)>,
    },
    /// `expression`: the row passes when the expression is true.
    Expression(Expr),
}

/// The input field a filter reads, by slot; `__time` is the row time.
#[derive(Debug, Clone, Copy)]
pub enum Column {
    Time,
    Slot(usize),
}

/// Compile a filter; errors name the JSON path of the offending part.
pub fn compile(
    json: &Json,
    path: &str,
    fields: &mut FieldTable,
) -> Result<Filter, (String, String)> {
    let fail = |at: &str, msg: String| Err((at.to_string(), msg));
    let kind = json.get("type").and_then(Json::as_str).unwrap_or("");
    if json.get("extractionFn").is_some_and(|e| !e.is_null()) {
        return fail(
            &format!("{path}.extractionFn"),
            "extraction functions are not supported by this build yet".into(),
        );
    }
    let string = |key: &str| json.get(key).and_then(Json::as_str).map(str::to_string);
    let mut column = |key: &str| -> Result<Column, (String, String)> {
        match json.get(key).and_then(Json::as_str) {
            Some("__time") => Ok(Column::Time),
            Some(name) => Ok(Column::Slot(fields.slot(name))),
            None => Err((format!("{path}.{key}"), "is required".into())),
        }
    };
    let value_text = |v: &Json| -> Option<String> {
        match v {
            Json::Null => None,
            Json::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    };
    Ok(match kind {
        "true" => Filter::True,
        "false" => Filter::False,
        "and" | "or" => {
            let list = json.get("fields").and_then(Json::as_array).ok_or_else(|| {
                (
                    format!("{path}.fields"),
                    "must be a list of filters".to_string(),
                )
            })?;
            let parts = list
                .iter()
                .enumerate()
                .map(|(i, f)| compile(f, &format!("{path}.fields[{i}]"), fields))
                .collect::<Result<Vec<_>, _>>()?;
            if kind == "and" {
                Filter::And(parts)
            } else {
                Filter::Or(parts)
            }
        }
        "not" => {
            let inner = json
                .get("field")
                .ok_or_else(|| (format!("{path}.field"), "is required".to_string()))?;
            Filter::Not(Box::new(compile(inner, &format!("{path}.field"), fields)?))
        }
        "selector" => Filter::In {
            column: column("dimension")?,
            values: vec![json.get("value").and_then(value_text)],
        },
        "in" => Filter::In {
            column: column("dimension")?,
            values: json
                .get("values")
                .and_then(Json::as_array)
                .ok_or_else(|| (format!("{path}.values"), "must be a list".to_string()))?
                .iter()
                .map(value_text)
                .collect(),
        },
        "null" => Filter::In {
            column: column("column")?,
            values: vec![None],
        },
        "equals" => Filter::In {
            column: column("column")?,
            values: vec![json.get("matchValue").and_then(value_text)],
        },
        "bound" => {
            let ordering = match json.get("ordering") {
                None | Some(Json::Null) => "lexicographic".to_string(),
                Some(Json::String(s)) => s.clone(),
                Some(o) => o
                    .get("type")
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_string(),
            };
            let numeric = match ordering.as_str() {
                "lexicographic" => false,
                "numeric" => true,
                other => {
                    return fail(
                        &format!("{path}.ordering"),
                        format!(
                            "{other:?} ordering is not supported by this build yet (lexicographic, numeric)"
                        ),
                    );
                }
            };
            let strict = |key: &str| json.get(key).and_then(Json::as_bool).unwrap_or(false);
            let lower = json
                .get("lower")
                .and_then(value_text)
                .map(|v| (v, strict("lowerStrict")));
            let upper = json
                .get("upper")
                .and_then(value_text)
                .map(|v| (v, strict("upperStrict")));
            if numeric {
                for (key, b) in [("lower", &lower), ("upper", &upper)] {
                    if let Some((v, _)) = b
                        && v.trim().parse::<f64>().is_err()
                    {
                        return fail(&format!("{path}.{key}"), format!("{v:?} is not a number"));
                    }
                }
            }
            Filter::Bound {
                column: column("dimension")?,
                lower,
                upper,
                numeric,
            }
        }
        "regex" | "like" => {
            let pattern = string("pattern")
                .ok_or_else(|| (format!("{path}.pattern"), "is required".to_string()))?;
            let source = if kind == "regex" {
                pattern
            } else {
                like_to_regex(&pattern, string("escape").and_then(|e| e.chars().next()))
            };
            let regex = regex::Regex::new(&source).map_err(|e| {
                (
                    format!("{path}.pattern"),
                    format!("not a valid pattern: {e}"),
                )
            })?;
            Filter::Regex {
                column: column("dimension")?,
                regex,
            }
        }
        "expression" => {
            let source = string("expression")
                .ok_or_else(|| (format!("{path}.expression"), "is required".to_string()))?;
            Filter::Expression(
                Expr::compile(&source, fields).map_err(|e| (format!("{path}.expression"), e))?,
            )
        }
        "interval" => {
            if !matches!(column("dimension")?, Column::Time) {
                return fail(&format!("{path}.dimension"), "interval filters on columns other than __time are not supported by this build yet".into());
            }
            let list = json
                .get("intervals")
                .and_then(Json::as_array)
                .ok_or_else(|| (format!("{path}.intervals"), "must be a list".to_string()))?;
            let mut intervals = Vec::new();
            for (i, v) in list.iter().enumerate() {
                let parsed = v
                    .as_str()
                    .and_then(|s| s.split_once('/'))
                    .and_then(|(a, b)| Some((parse_iso(a)?, parse_iso(b)?)));
                match parsed {
                    Some(iv) => intervals.push(iv),
                    None => {
                        return fail(
                            &format!("{path}.intervals[{i}]"),
                            format!("{v} is not start/end in ISO-8601"),
                        );
                    }
                }
            }
            Filter::Interval { intervals }
        }
        "" => return fail(&format!("{path}.type"), "is required".into()),
        other => {
            return fail(
                &format!("{path}.type"),
                format!("{other:?} filters are not supported by this build yet"),
            );
        }
    })
}

/// SQL LIKE as an anchored regex: `%` any run, `_` one character.
pub(crate) fn like_to_regex(pattern: &str, escape: Option<char>) -> String {
    let mut out = String::from("(?s)^");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            c if Some(c) == escape => {
                if let Some(next) = chars.next() {
                    out.push_str(&regex::escape(&next.to_string()));
                }
            }
            '%' => out.push_str(".*"),
            '_' => out.push('.'),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    out
}

/// A value as Druid's row-based selectors show it to filters (strings
/// borrowed, so a filter on string columns allocates nothing per row).
fn text<'v>(v: &'v Value) -> Option<Cow<'v, str>> {
    match v {
        Value::Null => None,
        Value::Str(s) => Some(Cow::Borrowed(s.as_ref())),
        Value::Long(n) => Some(Cow::Owned(n.to_string())),
        Value::Double(d) => Some(Cow::Owned(java_double_string(*d))),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::List(_) | Value::Nested => None,
    }
}

impl Filter {
    /// Does the row (slot values, event time) pass? An error is an
    /// expression that cannot be evaluated on this row.
    pub fn test(&self, row: &[Value], time: i64) -> Result<bool, String> {
        Ok(match self {
            Filter::True => true,
            Filter::False => false,
            Filter::And(fs) => {
                for f in fs {
                    if !f.test(row, time)? {
                        return Ok(false);
                    }
                }
                true
            }
            Filter::Or(fs) => {
                for f in fs {
                    if f.test(row, time)? {
                        return Ok(true);
                    }
                }
                false
            }
            Filter::Not(f) => !f.test(row, time)?,
            Filter::Expression(expr) => expr.eval(row, time)?.as_bool(),
            Filter::In { column, values } => any_value(*column, row, time, |v| {
                values.iter().any(|x| x.as_deref() == v)
            }),
            Filter::Bound {
                column,
                lower,
                upper,
                numeric,
            } => any_value(*column, row, time, |v| {
                let Some(v) = v else { return false };
                let cmp = |bound: &str| -> Option<Ordering> {
                    if *numeric {
                        let (a, b) = (
                            v.trim().parse::<f64>().ok()?,
                            bound.trim().parse::<f64>().ok()?,
                        );
                        a.partial_cmp(&b)
                    } else {
                        Some(java_cmp(v, bound))
                    }
                };
                let above = lower.as_ref().is_none_or(|(b, strict)| {
                    cmp(b).is_some_and(|o| {
                        o == Ordering::Greater || (!strict && o == Ordering::Equal)
                    })
                });
                let below = upper.as_ref().is_none_or(|(b, strict)| {
                    cmp(b).is_some_and(|o| o == Ordering::Less || (!strict && o == Ordering::Equal))
                });
                above && below
            }),
            Filter::Regex { column, regex } => {
                any_value(*column, row, time, |v| v.is_some_and(|v| regex.is_match(v)))
            }
            Filter::Interval { intervals } => {
                intervals.iter().any(|(s, e)| (*s..*e).contains(&time))
            }
        })
    }

    #[cfg(test)]
    fn matches(&self, row: &[Value], time: i64) -> bool {
        self.test(row, time).unwrap()
    }
}

/// Apply `test` to each value of the column (a multi-value row: each item;
/// an empty or missing value: null once).
fn any_value(
    column: Column,
    row: &[Value],
    time: i64,
    test: impl Fn(Option<&str>) -> bool,
) -> bool {
    let value = match column {
        Column::Time => return test(Some(&time.to_string())),
        Column::Slot(s) => row.get(s).unwrap_or(&Value::Null),
    };
    match value {
        Value::List(items) if !items.is_empty() => items.iter().any(|i| test(text(i).as_deref())),
        other => test(text(other).as_deref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> FieldTable {
        FieldTable::new(false, false, &[])
    }

    fn s(v: &str) -> Value<'_> {
        Value::Str(Cow::Borrowed(v))
    }

    // Filters from Druid's documentation (docs/querying/filters.md):
    // selector, in, bound (numeric and lexicographic), regex, like,
    // and/or/not, interval on __time.
    #[test]
    fn documented_filters() {
        let mut f = table();
        let filter = compile(
            &json!({"type": "and", "fields": [
                {"type": "not", "field": {"type": "selector", "dimension": "airline", "value": "HA"}},
                {"type": "in", "dimension": "origin", "values": ["EWR", "JFK", "LGA"]},
                {"type": "bound", "dimension": "distance", "lower": "100", "ordering": {"type": "numeric"}}
            ]}),
            "filter",
            &mut f,
        )
        .unwrap();
        let (airline, origin, distance) = (f.slot("airline"), f.slot("origin"), f.slot("distance"));
        let row = |a: Value<'static>, o: Value<'static>, d: Value<'static>| {
            let mut r = vec![Value::Null; 3];
            r[airline] = a;
            r[origin] = o;
            r[distance] = d;
            r
        };
        assert!(filter.matches(&row(s("UA"), s("EWR"), Value::Long(1400)), 0));
        assert!(!filter.matches(&row(s("HA"), s("EWR"), Value::Long(1400)), 0));
        assert!(!filter.matches(&row(s("UA"), s("BOS"), Value::Long(1400)), 0));
        assert!(!filter.matches(&row(s("UA"), s("EWR"), Value::Long(99)), 0));
        assert!(
            filter.matches(&row(s("UA"), s("EWR"), s("100")), 0),
            "bounds are inclusive by default"
        );
        assert!(filter.matches(&row(Value::Null, s("JFK"), Value::Double(100.5)), 0));
        assert!(
            !filter.matches(&row(s("UA"), s("EWR"), Value::Null), 0),
            "null is outside a bound"
        );
    }

    #[test]
    fn strict_lexicographic_bounds_regex_like_and_nulls() {
        let mut f = table();
        let bound = compile(&json!({"type": "bound", "dimension": "d", "lower": "b", "lowerStrict": true, "upper": "d"}), "f", &mut f).unwrap();
        assert!(!bound.matches(&[s("b")], 0));
        assert!(bound.matches(&[s("c")], 0));
        assert!(bound.matches(&[s("d")], 0));
        assert!(!bound.matches(&[s("da")], 0));
        let regex = compile(
            &json!({"type": "regex", "dimension": "d", "pattern": "^J.K"}),
            "f",
            &mut f,
        )
        .unwrap();
        assert!(regex.matches(&[s("JFK")], 0));
        assert!(!regex.matches(&[s("EWR")], 0));
        let like = compile(
            &json!({"type": "like", "dimension": "d", "pattern": "N%_8"}),
            "f",
            &mut f,
        )
        .unwrap();
        assert!(like.matches(&[s("N14228")], 0));
        assert!(!like.matches(&[s("N8")], 0));
        let like_escape = compile(
            &json!({"type": "like", "dimension": "d", "pattern": "50!%", "escape": "!"}),
            "f",
            &mut f,
        )
        .unwrap();
        assert!(like_escape.matches(&[s("50%")], 0));
        assert!(!like_escape.matches(&[s("500")], 0));
        let null = compile(
            &json!({"type": "selector", "dimension": "d", "value": null}),
            "f",
            &mut f,
        )
        .unwrap();
        assert!(null.matches(&[Value::Null], 0));
        assert!(null.matches(&[], 0), "a missing column is null");
        assert!(
            !null.matches(&[s("")], 0),
            "SQL-compatible: empty is not null"
        );
        let multi = compile(
            &json!({"type": "selector", "dimension": "d", "value": "b"}),
            "f",
            &mut f,
        )
        .unwrap();
        assert!(multi.matches(&[Value::List(vec![s("a"), s("b")])], 0));
    }

    #[test]
    fn interval_filters_read_the_row_time() {
        let mut f = table();
        let filter = compile(
            &json!({"type": "interval", "dimension": "__time", "intervals": ["2013-01-01T00:00:00Z/2013-01-02T00:00:00Z"]}),
            "f",
            &mut f,
        )
        .unwrap();
        assert!(filter.matches(&[], parse_iso("2013-01-01T10:00:00Z").unwrap()));
        assert!(!filter.matches(&[], parse_iso("2013-01-02T00:00:00Z").unwrap()));
    }

    #[test]
    fn expression_filters_pass_rows_whose_expression_is_true() {
        // math-expr.md / ExpressionDimFilter: true is a number above zero
        // or the string "true"; null is false.
        let mut f = table();
        let filter = compile(
            &json!({"type": "expression", "expression": "concat(carrier, '-', origin) == 'UA-EWR' && distance > 100"}),
            "f",
            &mut f,
        )
        .unwrap();
        let carrier = f.slot("carrier");
        let origin = f.slot("origin");
        let distance = f.slot("distance");
        let mut row = vec![Value::Null; f.len()];
        row[carrier] = s("UA");
        row[origin] = s("EWR");
        row[distance] = Value::Long(1400);
        assert!(filter.matches(&row, 0));
        row[distance] = s("99");
        assert!(!filter.matches(&row, 0));
        row[distance] = Value::Null;
        assert!(!filter.matches(&row, 0), "null is not true");
        let failing = compile(
            &json!({"type": "expression", "expression": "distance / 0 > 1"}),
            "f",
            &mut f,
        )
        .unwrap();
        row[distance] = Value::Long(5);
        assert!(
            failing
                .test(&row, 0)
                .unwrap_err()
                .contains("division by zero")
        );
    }

    #[test]
    fn unsupported_parts_are_refused_by_path() {
        let mut f = table();
        let err = compile(
            &json!({"type": "and", "fields": [{"type": "expression", "expression": "x >"}]}),
            "dataSchema.transformSpec.filter",
            &mut f,
        )
        .unwrap_err();
        assert_eq!(
            err.0,
            "dataSchema.transformSpec.filter.fields[0].expression"
        );
        let err = compile(
            &json!({"type": "and", "fields": [{"type": "columnComparison", "dimensions": ["a", "b"]}]}),
            "dataSchema.transformSpec.filter",
            &mut f,
        )
        .unwrap_err();
        assert_eq!(err.0, "dataSchema.transformSpec.filter.fields[0].type");
        let err = compile(
            &json!({"type": "regex", "dimension": "d", "pattern": "("}),
            "f",
            &mut f,
        )
        .unwrap_err();
        assert_eq!(err.0, "f.pattern");
        let err = compile(
            &json!({"type": "bound", "dimension": "d", "ordering": "strlen"}),
            "f",
            &mut f,
        )
        .unwrap_err();
        assert_eq!(err.0, "f.ordering");
    }
}
