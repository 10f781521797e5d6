//! Rows from a decoded record tree (Avro, Protobuf): the record is turned
//! into a JSON-shaped value once, then its fields are taken as the JSON
//! flattenSpec takes them, with the format's own rule for which top-level
//! fields schemaless discovery may turn into dimensions.

use super::flatten::{self, FlattenSpec};
use super::{FieldTable, RowBuffer, Value};

/// One row from `record` (a JSON object): the flattenSpec's fields by their
/// paths, then (with useFieldDiscovery) the other top-level fields by their
/// own names: those the task reads always, new ones only where
/// `discoverable` says so. With `drop_list_nulls`, a value that is a list
/// loses its nulls (Druid's Avro flattener; a path still indexes the list
/// as written).
pub(crate) fn fill_row(
    record: &serde_json::Value,
    spec: &FlattenSpec,
    discoverable: impl Fn(&str, &serde_json::Value) -> bool,
    drop_list_nulls: bool,
    fields: &mut FieldTable,
    rows: &mut RowBuffer<'_>,
) {
    let value = |v: &serde_json::Value| match flatten::to_value(v) {
        Value::List(items) if drop_list_nulls => {
            Value::List(items.into_iter().filter(|i| *i != Value::Null).collect())
        }
        other => other,
    };
    let mut values: Vec<(usize, Value<'static>)> = Vec::new();
    for f in &spec.fields {
        if let Some(slot) = fields.column_slot(&f.name)
            && let Some(v) = flatten::follow(record, &f.steps)
        {
            values.push((slot, value(v)));
        }
    }
    if spec.use_field_discovery
        && let Some(map) = record.as_object()
    {
        for (key, v) in map {
            if spec.fields.iter().any(|f| f.name == *key) {
                continue;
            }
            let may_discover = !fields.fields.contains_key(key.as_str()) && discoverable(key, v);
            if let Some(slot) = fields.record_field_slot(key, may_discover) {
                values.push((slot, value(v)));
            }
        }
    }
    let width = fields.len();
    let row = rows.next_row(width);
    for (slot, v) in values {
        if slot >= row.len() {
            row.resize(slot + 1, Value::Null);
        }
        row[slot].set(v);
    }
}

/// A decoded float or double as JSON holds it: NaN and infinities are null.
pub(crate) fn json_double(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// The same rule for a value read straight into a row (the direct paths).
pub(crate) fn finite_double(x: f64) -> Value<'static> {
    if x.is_finite() {
        Value::Double(x)
    } else {
        Value::Null
    }
}

/// The flattenSpec of a format that names none: every field by its own name.
pub(crate) fn default_flatten() -> FlattenSpec {
    FlattenSpec {
        use_field_discovery: true,
        fields: Vec::new(),
    }
}

/// A `file:` URL or a plain path, as Druid's decoders take them.
pub(crate) fn local_path(url: &str) -> Result<std::path::PathBuf, String> {
    if let Some(rest) = url.strip_prefix("file://") {
        return Ok(rest.into());
    }
    if let Some(rest) = url.strip_prefix("file:") {
        return Ok(rest.into());
    }
    if url.contains("://") {
        return Err(format!(
            "{url:?}: only file: URLs and local paths are read (no other URL scheme)"
        ));
    }
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_and_paths_are_local_other_schemes_are_refused() {
        assert_eq!(
            local_path("file:///tmp/x.desc").unwrap(),
            std::path::PathBuf::from("/tmp/x.desc")
        );
        assert_eq!(
            local_path("file:/tmp/x.desc").unwrap(),
            std::path::PathBuf::from("/tmp/x.desc")
        );
        assert_eq!(
            local_path("/tmp/x.desc").unwrap(),
            std::path::PathBuf::from("/tmp/x.desc")
        );
        assert!(
            local_path("http://host/x.desc")
                .unwrap_err()
                .contains("http")
        );
    }

    /// Known slots take any top-level value; a new field becomes a
    /// dimension only where the format's rule allows; flattenSpec fields
    /// reach into nested values.
    #[test]
    fn discovery_follows_the_format_rule() {
        let record = serde_json::json!({"a": 1, "b": "x", "nested": {"c": 2}, "skip": 3});
        let spec = FlattenSpec::compile(
            &serde_json::json!({"fields": [{"type": "path", "name": "c", "expr": "$.nested.c"}]}),
            "flattenSpec",
        )
        .unwrap();
        let mut fields = FieldTable::new(true, false, &[]);
        let known = fields.slot("nested");
        let mut rows = RowBuffer::new();
        fill_row(
            &record,
            &spec,
            |k, _| k != "skip",
            false,
            &mut fields,
            &mut rows,
        );
        let discovered: Vec<&str> = fields
            .discovered_since(0)
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(discovered, ["c", "a", "b"]);
        let row = &rows.rows()[0];
        assert_eq!(row[known], Value::Nested);
        let c = fields.column_slot("c").unwrap();
        assert_eq!(row[c], Value::Long(2));
        assert!(fields.fields.get("skip").is_none());
    }
}
