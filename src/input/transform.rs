//! transformSpec.transforms: expression transforms, applied to each parsed
//! row after its timestamp is read and before the filter, as Druid's
//! Transformer does. Every transform reads the row as parsed (one
//! transform does not see another's output); a transform named `__time`
//! replaces the row time.

use super::expr::{Eval, Expr};
use super::{FieldTable, Value};
use serde_json::Value as Json;

pub struct Transforms {
    /// (slot written, expression)
    columns: Vec<(usize, Expr)>,
    time: Option<Expr>,
    /// Results of one row, written back once all are evaluated.
    scratch: Vec<Value<'static>>,
}

impl Transforms {
    /// Compile the transforms; errors name the JSON path at fault.
    pub fn compile(
        list: &[Json],
        path: &str,
        fields: &mut FieldTable,
    ) -> Result<Transforms, (String, String)> {
        let mut out = Transforms {
            columns: Vec::new(),
            time: None,
            scratch: Vec::new(),
        };
        let mut names = std::collections::HashSet::new();
        for (i, t) in list.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let kind = t.get("type").and_then(Json::as_str).unwrap_or("expression");
            if kind != "expression" {
                return Err((
                    format!("{at}.type"),
                    format!("{kind:?} transforms are not supported (expression)"),
                ));
            }
            let name = t
                .get("name")
                .and_then(Json::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| (format!("{at}.name"), "is required".to_string()))?;
            if !names.insert(name.to_string()) {
                return Err((
                    format!("{at}.name"),
                    format!("transform {name:?} is defined twice"),
                ));
            }
            let source = t
                .get("expression")
                .and_then(Json::as_str)
                .ok_or_else(|| (format!("{at}.expression"), "is required".to_string()))?;
            let expr =
                Expr::compile(source, fields).map_err(|e| (format!("{at}.expression"), e))?;
            if name == "__time" {
                out.time = Some(expr);
            } else {
                out.columns.push((fields.slot(name), expr));
            }
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty() && self.time.is_none()
    }

    /// Apply to one row: its slots get the transformed values and `time`
    /// the `__time` transform's. An error is the row's parse error.
    pub fn apply(&mut self, row: &mut Vec<Value<'_>>, time: &mut i64) -> Result<(), String> {
        self.scratch.clear();
        for (_, expr) in &self.columns {
            self.scratch.push(expr.eval(row, *time)?.into_value());
        }
        if let Some(expr) = &self.time {
            *time = match expr.eval(row, *time)? {
                Eval::Long(t) => t,
                Eval::Double(t) if t.is_finite() => t as i64,
                other => {
                    return Err(format!(
                        "the __time transform {:?} gave {other:?}, not a timestamp",
                        expr.source()
                    ));
                }
            };
        }
        for ((slot, _), value) in self.columns.iter().zip(self.scratch.drain(..)) {
            if *slot >= row.len() {
                row.resize(*slot + 1, Value::Null);
            }
            row[*slot] = value;
        }
        Ok(())
    }
}
