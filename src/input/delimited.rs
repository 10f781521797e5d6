//! csv, tsv and other delimited rows: each line of an entity is a row; cells
//! map to the task's column list; an empty cell is null (SQL-compatible
//! null handling).

use super::{FieldTable, ParseError, RowBuffer, Value};
use std::borrow::Cow;

pub struct Layout {
    delimiter: String,
    list_delimiter: Option<String>,
    /// Slot of each column, in column order.
    slots: Vec<usize>,
    skip_header_rows: usize,
    csv: bool,
}

impl Layout {
    pub fn new(
        delimiter: &str,
        list_delimiter: Option<&str>,
        columns: &[String],
        skip_header_rows: usize,
        csv: bool,
        fields: &mut FieldTable,
    ) -> Layout {
        Layout {
            delimiter: delimiter.to_string(),
            list_delimiter: list_delimiter.filter(|d| !d.is_empty()).map(str::to_string),
            slots: columns.iter().map(|c| fields.slot(c)).collect(),
            skip_header_rows,
            csv,
        }
    }

    pub fn parse_entity<'a>(
        &self,
        data: &'a [u8],
        width: usize,
        rows: &mut RowBuffer<'a>,
    ) -> Result<(), ParseError> {
        let text = std::str::from_utf8(data)
            .map_err(|e| ParseError(format!("record is not valid UTF-8: {e}")))?;
        for (i, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if i < self.skip_header_rows || line.is_empty() {
                continue;
            }
            let cells = if self.csv {
                split_csv(line)?
            } else {
                line.split(self.delimiter.as_str())
                    .map(Cow::Borrowed)
                    .collect()
            };
            if cells.len() > self.slots.len() {
                return Err(ParseError(format!(
                    "row has {} cells but the task lists {} columns",
                    cells.len(),
                    self.slots.len()
                )));
            }
            let row = rows.next_row(width);
            for (cell, &slot) in cells.into_iter().zip(&self.slots) {
                row[slot] = self.cell_value(cell);
            }
        }
        if rows.is_empty() {
            return Err(ParseError("record holds no row".into()));
        }
        Ok(())
    }

    fn cell_value<'a>(&self, cell: Cow<'a, str>) -> Value<'a> {
        if cell.is_empty() {
            return Value::Null;
        }
        if let Some(d) = &self.list_delimiter
            && cell.contains(d.as_str())
        {
            return Value::List(
                cell.split(d.as_str())
                    .map(|s| Value::Str(Cow::Owned(s.to_string())))
                    .collect(),
            );
        }
        Value::Str(cell)
    }
}

/// Split one csv line (RFC 4180 quoting; `""` inside quotes is a quote).
fn split_csv(line: &str) -> Result<Vec<Cow<'_, str>>, ParseError> {
    if !line.contains('"') {
        return Ok(line.split(',').map(Cow::Borrowed).collect());
    }
    let mut cells = Vec::new();
    let mut chars = line.char_indices().peekable();
    let mut cell = String::new();
    let mut quoted = false;
    while let Some((_, c)) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek().map(|(_, c)| *c) == Some('"') => {
                cell.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, '"') if cell.is_empty() => quoted = true,
            (false, ',') => cells.push(Cow::Owned(std::mem::take(&mut cell))),
            (_, c) => cell.push(c),
        }
    }
    if quoted {
        return Err(ParseError("unterminated quote in csv row".into()));
    }
    cells.push(Cow::Owned(cell));
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_cells_map_to_columns() {
        let mut fields = FieldTable::new(false, false, &[]);
        let cols = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let layout = Layout::new("\t", None, &cols, 0, false, &mut fields);
        let mut rows = RowBuffer::new();
        layout
            .parse_entity(b"x\t\tz\nq\tr", fields.len(), &mut rows)
            .unwrap();
        assert_eq!(rows.len(), 2);
        let rows = rows.rows();
        assert_eq!(rows[0][0], Value::Str(Cow::Borrowed("x")));
        assert_eq!(rows[0][1], Value::Null);
        assert_eq!(rows[1][2], Value::Null);
        let mut more = RowBuffer::new();
        assert!(
            layout
                .parse_entity(b"1\t2\t3\t4", fields.len(), &mut more)
                .is_err()
        );
    }

    #[test]
    fn csv_quotes() {
        assert_eq!(
            split_csv("a,\"b,c\",\"d\"\"e\",\"\"").unwrap(),
            vec!["a", "b,c", "d\"e", ""]
        );
        assert!(split_csv(r#"a,"b"#).is_err());
    }
}
