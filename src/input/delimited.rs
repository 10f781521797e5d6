//! csv, tsv and other delimited rows: each line of an entity is a row; cells
//! map to the task's column list; an empty cell is null (SQL-compatible
//! null handling).

use super::{FieldTable, ParseError, RowBuffer, Value};
use std::borrow::Cow;

pub struct Layout {
    delimiter: String,
    list_delimiter: Option<String>,
    columns: Vec<String>,
    /// Slot of each column (None: no column of the task reads it), resolved
    /// on the first record, once the runner has registered its fields.
    slots: Option<Vec<Option<usize>>>,
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
    ) -> Layout {
        Layout {
            delimiter: delimiter.to_string(),
            list_delimiter: list_delimiter.filter(|d| !d.is_empty()).map(str::to_string),
            columns: columns.to_vec(),
            slots: None,
            skip_header_rows,
            csv,
        }
    }

    pub fn parse_entity<'a>(
        &mut self,
        data: &'a [u8],
        fields: &mut FieldTable,
        rows: &mut RowBuffer<'a>,
    ) -> Result<(), ParseError> {
        let text = std::str::from_utf8(data)
            .map_err(|e| ParseError(format!("record is not valid UTF-8: {e}")))?;
        let columns = &self.columns;
        let slots = self
            .slots
            .get_or_insert_with(|| columns.iter().map(|c| fields.column_slot(c)).collect());
        let width = fields.len();
        for (i, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if i < self.skip_header_rows || line.is_empty() {
                continue;
            }
            // Cells pair with the columns as far as both go: missing cells
            // are null, extra cells are dropped (Druid's zipMapPartial).
            let row = rows.next_row(width);
            let mut cells = 0;
            if self.csv && line.contains('"') {
                for cell in split_csv(line)? {
                    cells += 1;
                    if let Some(Some(slot)) = slots.get(cells - 1) {
                        row[*slot] = cell_value(self.list_delimiter.as_deref(), cell);
                    }
                }
            } else {
                let list_delimiter = self.list_delimiter.as_deref();
                let mut put = |cell: &'a str| {
                    cells += 1;
                    if let Some(Some(slot)) = slots.get(cells - 1) {
                        row[*slot] = cell_value(list_delimiter, Cow::Borrowed(cell));
                    }
                };
                // A one-character delimiter splits by memchr, not substring search.
                match single_char(&self.delimiter) {
                    Some(c) => line.split(c).for_each(&mut put),
                    None => line.split(self.delimiter.as_str()).for_each(&mut put),
                }
            }
        }
        if rows.is_empty() {
            return Err(ParseError("record holds no row".into()));
        }
        Ok(())
    }
}

fn cell_value<'a>(list_delimiter: Option<&str>, cell: Cow<'a, str>) -> Value<'a> {
    if cell.is_empty() {
        return Value::Null;
    }
    if let Some(d) = list_delimiter
        && cell.contains(d)
    {
        return Value::List(
            cell.split(d)
                .map(|s| Value::Str(Cow::Owned(s.to_string())))
                .collect(),
        );
    }
    Value::Str(cell)
}

fn single_char(s: &str) -> Option<char> {
    let mut chars = s.chars();
    let c = chars.next()?;
    chars.next().is_none().then_some(c)
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
        for c in &cols {
            fields.slot(c);
        }
        let mut layout = Layout::new("\t", None, &cols, 0, false);
        let mut rows = RowBuffer::new();
        layout
            .parse_entity(b"x\t\tz\nq\tr", &mut fields, &mut rows)
            .unwrap();
        assert_eq!(rows.len(), 2);
        let rows = rows.rows();
        assert_eq!(rows[0][0], Value::Str(Cow::Borrowed("x")));
        assert_eq!(rows[0][1], Value::Null);
        assert_eq!(rows[1][2], Value::Null);
        // An extra cell is dropped, as Druid's zipMapPartial drops it.
        let mut more = RowBuffer::new();
        layout
            .parse_entity(b"1\t2\t3\t4", &mut fields, &mut more)
            .unwrap();
        assert_eq!(more.rows()[0][2], Value::Str(Cow::Borrowed("3")));
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
