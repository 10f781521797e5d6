//! flattenSpec for JSON: `root` fields, `path` fields (JSONPath) and `jq`
//! fields, compiled at validation into key/index steps. The subset covers
//! what Druid users write: `$.a.b`, `$['x y']`, `$.a[0]`, `.a.b`, `.a[0]`,
//! `.["x y"]`; wildcards, filters and functions are refused by name.

use super::Value;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlattenField {
    pub name: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlattenSpec {
    /// Also take every top-level scalar or list of scalars by its own name.
    pub use_field_discovery: bool,
    pub fields: Vec<FlattenField>,
}

impl FlattenSpec {
    /// Every top-level field by its own name and nothing else (what a
    /// format's direct path can read).
    pub fn is_discovery_only(&self) -> bool {
        self.use_field_discovery && self.fields.is_empty()
    }
}

impl FlattenSpec {
    /// Compile the flattenSpec JSON; errors carry the JSON path of the field.
    pub fn compile(spec: &serde_json::Value, path: &str) -> Result<FlattenSpec, (String, String)> {
        let use_field_discovery = spec
            .get("useFieldDiscovery")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        let mut fields = Vec::new();
        let empty = Vec::new();
        let list = match spec.get("fields") {
            None | Some(serde_json::Value::Null) => &empty,
            Some(serde_json::Value::Array(a)) => a,
            Some(_) => return Err((format!("{path}.fields"), "must be a list".into())),
        };
        for (i, f) in list.iter().enumerate() {
            let at = format!("{path}.fields[{i}]");
            let name = f
                .get("name")
                .and_then(|v| v.as_str())
                .ok_or_else(|| (format!("{at}.name"), "is required".to_string()))?
                .to_string();
            let kind = f.get("type").and_then(|v| v.as_str()).unwrap_or("path");
            let expr = f.get("expr").and_then(|v| v.as_str());
            let steps = match (kind, expr) {
                ("root", e) => vec![Step::Key(e.unwrap_or(&name).to_string())],
                ("path", Some(e)) => json_path(e).map_err(|m| (format!("{at}.expr"), m))?,
                ("jq", Some(e)) => jq(e).map_err(|m| (format!("{at}.expr"), m))?,
                ("path" | "jq", None) => return Err((format!("{at}.expr"), "is required".into())),
                (other, _) => {
                    return Err((
                        format!("{at}.type"),
                        format!("{other:?} is not one of root, path, jq"),
                    ));
                }
            };
            fields.push(FlattenField { name, steps });
        }
        Ok(FlattenSpec {
            use_field_discovery,
            fields,
        })
    }
}

/// `$.a.b`, `$['a b']`, `$["a"]`, `$.a[0]`.
fn json_path(expr: &str) -> Result<Vec<Step>, String> {
    let rest = expr
        .strip_prefix('$')
        .ok_or_else(|| format!("JSONPath {expr:?} must start with $"))?;
    steps(expr, rest, false)
}

/// `.a.b`, `.a[0]`, `.["a b"]`.
fn jq(expr: &str) -> Result<Vec<Step>, String> {
    if !expr.starts_with('.') {
        return Err(format!("jq expression {expr:?} must start with ."));
    }
    if expr == "." {
        return Ok(Vec::new());
    }
    steps(expr, expr, true)
}

fn steps(expr: &str, mut rest: &str, jq: bool) -> Result<Vec<Step>, String> {
    let unsupported = || {
        format!(
            "{expr:?}: only keys and list indexes are supported (no wildcards, filters or functions)"
        )
    };
    let mut out = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            if r.starts_with('[') && jq {
                rest = r;
                continue;
            }
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if key.is_empty() || key == "*" || key.contains(['(', ')', '?', '@', '|', ' ']) {
                return Err(unsupported());
            }
            out.push(Step::Key(key.to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(unsupported)?;
            let inner = r[..end].trim();
            let quoted = |q: char| {
                inner
                    .strip_prefix(q)
                    .and_then(|s| s.strip_suffix(q))
                    .map(str::to_string)
            };
            if let Some(key) = quoted('\'').or_else(|| quoted('"')) {
                out.push(Step::Key(key));
            } else if let Ok(i) = inner.parse::<usize>() {
                out.push(Step::Index(i));
            } else {
                return Err(unsupported());
            }
            rest = &r[end + 1..];
        } else {
            return Err(unsupported());
        }
    }
    Ok(out)
}

/// Follow the steps from the record's root; None when any step is missing.
pub fn follow<'v>(root: &'v serde_json::Value, steps: &[Step]) -> Option<&'v serde_json::Value> {
    let mut at = root;
    for step in steps {
        at = match step {
            Step::Key(k) => at.get(k.as_str())?,
            Step::Index(i) => at.get(*i)?,
        };
    }
    Some(at)
}

/// A JSON value as a row value: scalars as they are, a list of scalars as a
/// multi-value, anything deeper as unstorable.
pub fn to_value(v: &serde_json::Value) -> Value<'static> {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Long(i),
            None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Str(Cow::Owned(s.clone())),
        serde_json::Value::Array(items) => {
            if items.iter().any(|i| i.is_array() || i.is_object()) {
                Value::Nested
            } else {
                Value::List(items.iter().map(to_value).collect())
            }
        }
        serde_json::Value::Object(_) => Value::Nested,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Expressions in the style of Druid's flattenSpec documentation
    // (docs/ingestion/data-formats.md#flattenspec).
    #[test]
    fn paths_and_jq_follow_keys_and_indexes() {
        let record = json!({"foo": {"bar": [10, {"baz": "x"}], "a b": 3}, "t": 1});
        let spec = FlattenSpec::compile(
            &json!({"useFieldDiscovery": true, "fields": [
                {"type": "root", "name": "t2", "expr": "t"},
                {"type": "path", "name": "first", "expr": "$.foo.bar[0]"},
                {"type": "path", "name": "deep", "expr": "$['foo']['bar'][1].baz"},
                {"type": "jq", "name": "spaced", "expr": ".foo[\"a b\"]"},
                {"type": "jq", "name": "missing", "expr": ".foo.nope"}
            ]}),
            "flattenSpec",
        )
        .unwrap();
        let got: Vec<Option<&serde_json::Value>> = spec
            .fields
            .iter()
            .map(|f| follow(&record, &f.steps))
            .collect();
        assert_eq!(
            got,
            vec![
                Some(&json!(1)),
                Some(&json!(10)),
                Some(&json!("x")),
                Some(&json!(3)),
                None
            ]
        );
    }

    #[test]
    fn unsupported_expressions_are_refused_with_their_path() {
        for (kind, expr) in [
            ("path", "$.foo[*]"),
            ("path", "$..bar"),
            ("path", "foo.bar"),
            ("jq", ".foo | length"),
            ("jq", "foo"),
        ] {
            let err = FlattenSpec::compile(
                &json!({"fields": [{"type": kind, "name": "x", "expr": expr}]}),
                "ioConfig.inputFormat.flattenSpec",
            )
            .unwrap_err();
            assert_eq!(
                err.0, "ioConfig.inputFormat.flattenSpec.fields[0].expr",
                "{expr}"
            );
        }
    }

    #[test]
    fn nested_values_are_not_scalars() {
        assert_eq!(
            to_value(&json!([1, "a"])).clone(),
            Value::List(vec![Value::Long(1), Value::Str(Cow::Borrowed("a"))])
        );
        assert_eq!(to_value(&json!({"a": 1})), Value::Nested);
        assert_eq!(to_value(&json!([[1]])), Value::Nested);
    }
}
