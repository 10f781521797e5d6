//! csv, tsv and other delimited rows: each line of an entity is a row; cells
//! map to the task's column list; an empty cell is null (SQL-compatible
//! null handling).

use super::{CHUNK, chunk_at};
use super::{FieldTable, ParseError, RowBuffer, Value};
use std::borrow::Cow;
use wide::u8x16;

pub struct Layout {
    delimiter: String,
    list_delimiter: Option<String>,
    columns: Vec<String>,
    /// Slot of each column (None: no column of the task reads it), resolved
    /// on the first record, once the runner has registered its fields.
    slots: Option<ColumnSlots>,
    skip_header_rows: usize,
    csv: bool,
    /// findColumnsFromHeader: Druid reads each record as a file of its
    /// own, so each record's first line (after skipHeaderRows) names the
    /// columns. The last header seen, kept with its slots.
    from_header: bool,
    header: String,
    /// The delimiters as single bytes, where they are one.
    delimiter_byte: Option<u8>,
    list_byte: Option<u8>,
}

/// The slot each column fills, and the last column read: a line's scan
/// stops after it (worked out once, not per record).
struct ColumnSlots {
    slots: Vec<Option<usize>>,
    last_read: Option<usize>,
}

impl ColumnSlots {
    fn new(slots: Vec<Option<usize>>) -> ColumnSlots {
        let last_read = slots.iter().rposition(Option::is_some);
        ColumnSlots { slots, last_read }
    }
}

/// Druid's default list delimiter for csv and delimited input (Ctrl-A).
const DEFAULT_LIST_DELIMITER: &str = "\u{1}";

impl Layout {
    pub fn new(
        delimiter: &str,
        list_delimiter: Option<&str>,
        columns: &[String],
        skip_header_rows: usize,
        csv: bool,
        from_header: bool,
    ) -> Layout {
        // Druid's csv and delimited readers split on Ctrl-A when no
        // listDelimiter is given (Parsers.DEFAULT_LIST_DELIMITER).
        let list_delimiter = Some(list_delimiter.unwrap_or(DEFAULT_LIST_DELIMITER))
            .filter(|d| !d.is_empty())
            .map(str::to_string);
        Layout {
            delimiter_byte: single_byte(delimiter),
            list_byte: list_delimiter.as_deref().and_then(single_byte),
            delimiter: delimiter.to_string(),
            list_delimiter,
            columns: columns.to_vec(),
            slots: None,
            skip_header_rows,
            csv,
            from_header,
            header: String::new(),
        }
    }

    pub fn parse_entity<'a>(
        &mut self,
        data: &'a [u8],
        fields: &mut FieldTable,
        rows: &mut RowBuffer<'a>,
    ) -> Result<(), ParseError> {
        let (mut text, line_feeds) = super::utf8_noting_line_feeds(data)?;
        let mut skip_header_rows = self.skip_header_rows;
        if self.from_header {
            for _ in 0..skip_header_rows {
                text = text.split_once('\n').map_or("", |(_, rest)| rest);
            }
            let (header, body) = text.split_once('\n').unwrap_or((text, ""));
            let header = header.strip_suffix('\r').unwrap_or(header);
            if header.is_empty() {
                return Err(ParseError::new(
                    "record has no header line (findColumnsFromHeader)".into(),
                ));
            }
            if header != self.header {
                let names: Vec<Cow<'_, str>> = if self.csv {
                    split_csv(header)?
                } else {
                    header
                        .split(self.delimiter.as_str())
                        .map(Cow::Borrowed)
                        .collect()
                };
                // An empty name becomes column_<n> (Druid's findOrCreateColumnNames).
                let slots = names
                    .iter()
                    .enumerate()
                    .map(|(i, c)| match c.as_ref() {
                        "" => fields.column_slot(&format!("column_{}", i + 1)),
                        c => fields.column_slot(c),
                    })
                    .collect();
                self.slots = Some(ColumnSlots::new(slots));
                self.header = header.to_string();
            }
            text = body;
            skip_header_rows = 0;
        }
        let columns = &self.columns;
        let ColumnSlots { slots, last_read } = self.slots.get_or_insert_with(|| {
            ColumnSlots::new(columns.iter().map(|c| fields.column_slot(c)).collect())
        });
        let (slots, last_read_cell) = (&slots[..], *last_read);
        let width = fields.len();
        let list_delimiter = self.list_delimiter.as_deref();
        // A one-byte delimiter: one pass over each line finds its cells.
        if let Some(delim) = self.delimiter_byte {
            let csv = self.csv;
            let (delim_bytes, quote) = (u8x16::splat(delim), u8x16::splat(b'"'));
            let list_byte = self.list_byte;
            // With no one-byte list delimiter, a byte no line holds.
            let list_bytes = u8x16::splat(list_byte.unwrap_or(b'\n'));
            let bytes = text.as_bytes();
            let mut pos = 0;
            let mut line_no = 0usize;
            while pos < bytes.len() {
                let line_start = pos;
                // A record without a line feed is one line (most are).
                let line_end = if line_feeds {
                    memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i)
                } else {
                    bytes.len()
                };
                pos = line_end + 1;
                line_no += 1;
                if line_no <= skip_header_rows {
                    continue;
                }
                let line = &text[line_start..line_end];
                let line = line.strip_suffix('\r').unwrap_or(line);
                if line.is_empty() {
                    continue;
                }
                // Whether the line holds the list delimiter, not asked of
                // every cell (a search per short cell was ~5% of a csv
                // replay's instructions, callgrind). A one-byte delimiter is
                // looked for in the chunks below, as far as they read: a
                // cell read after one was seen is searched for it itself,
                // so a cell without it stays a plain string either way.
                let mut line_lists = match list_byte {
                    Some(_) => None,
                    None => list_delimiter.filter(|d| line.contains(d)),
                };
                let row = rows.next_row(width);
                // Cells up to the last one the task reads, found 16 bytes
                // at a time: a byte-by-byte loop was ~10 instructions a
                // byte, most of a csv replay's parsing (callgrind).
                let line_bytes = line.as_bytes();
                let (mut cell, mut cell_start, mut quoted) = (0, 0, false);
                let mut scanned = line.len();
                let mut base = 0;
                'chunks: while base < line_bytes.len() {
                    let (chunk, valid) = chunk_at(line_bytes, base);
                    // Quotes (csv) and list delimiters are rare: one test
                    // for both, told apart only when one is there.
                    let rare = if csv {
                        chunk.simd_eq(quote) | chunk.simd_eq(list_bytes)
                    } else {
                        chunk.simd_eq(list_bytes)
                    };
                    if rare.to_bitmask() & valid != 0 {
                        if csv && chunk.simd_eq(quote).to_bitmask() & valid != 0 {
                            quoted = true;
                            break;
                        }
                        line_lists = list_delimiter;
                    }
                    let mut delimiters = chunk.simd_eq(delim_bytes).to_bitmask() & valid;
                    while delimiters != 0 {
                        let i = base + delimiters.trailing_zeros() as usize;
                        delimiters &= delimiters - 1;
                        if let Some(Some(slot)) = slots.get(cell) {
                            set_cell(&mut row[*slot], line_lists, &line[cell_start..i]);
                        }
                        cell += 1;
                        cell_start = i + 1;
                        if last_read_cell.is_none_or(|last| cell > last) {
                            scanned = i;
                            break 'chunks;
                        }
                    }
                    base += CHUNK;
                }
                // A quote anywhere in the line (even in a cell no column
                // reads) takes the full csv path, which also rejects an
                // unterminated quote as Druid's csv reader does.
                // The chunks up to `base` were looked at for quotes.
                quoted |= csv && !quoted && has_quote_from(line_bytes, base + CHUNK);
                if quoted {
                    row.fill(Value::Null);
                    for (i, cell) in split_csv(line)?.into_iter().enumerate() {
                        if let Some(Some(slot)) = slots.get(i) {
                            row[*slot].set(cell_value(list_delimiter, cell));
                        }
                    }
                } else if scanned == line.len()
                    && let Some(Some(slot)) = slots.get(cell)
                {
                    // The line's last cell.
                    set_cell(&mut row[*slot], line_lists, &line[cell_start..]);
                }
            }
        } else {
            for (i, line) in text.split('\n').enumerate() {
                let line = line.strip_suffix('\r').unwrap_or(line);
                if i < skip_header_rows || line.is_empty() {
                    continue;
                }
                // Cells pair with the columns as far as both go: missing
                // cells are null, extra cells are dropped (zipMapPartial).
                let row = rows.next_row(width);
                for (i, cell) in line.split(self.delimiter.as_str()).enumerate() {
                    if let Some(Some(slot)) = slots.get(i) {
                        row[*slot].set(cell_value(list_delimiter, Cow::Borrowed(cell)));
                    }
                }
            }
        }
        if rows.is_empty() {
            return Err(ParseError::new("record holds no row".into()));
        }
        Ok(())
    }
}

/// Whether `line` holds a quote at or after `from`, 16 bytes at a time; the
/// last chunk ends at the line's end, overlapping bytes already seen, so no
/// byte is copied (a memchr call on the ~25 bytes after a flights row's last
/// read cell was ~57 instructions a row, callgrind).
#[inline(always)]
fn has_quote_from(line: &[u8], mut from: usize) -> bool {
    let quote = u8x16::splat(b'"');
    if line.len() < CHUNK {
        return line[from.min(line.len())..].contains(&b'"');
    }
    while from < line.len() {
        let at = from.min(line.len() - CHUNK);
        let (chunk, _) = chunk_at(line, at);
        if chunk.simd_eq(quote).to_bitmask() != 0 {
            return true;
        }
        from = at + CHUNK;
    }
    false
}

/// A cell as a value: empty is null; with a list delimiter in it, a list.
/// Inlined: a call per cell was ~2% of a csv replay's instructions.
#[inline(always)]
fn cell_value<'a>(list_delimiter: Option<&str>, cell: Cow<'a, str>) -> Value<'a> {
    if cell.is_empty() {
        return Value::Null;
    }
    match list_delimiter {
        None => Value::Str(cell),
        Some(d) => list_cell(d, cell),
    }
}

/// `cell_value` stored in `slot`, each shape built at the store itself.
#[inline(always)]
fn set_cell<'a>(slot: &mut Value<'a>, list_delimiter: Option<&str>, cell: &'a str) {
    match list_delimiter {
        _ if cell.is_empty() => slot.set(Value::Null),
        None => slot.set(Value::Str(Cow::Borrowed(cell))),
        Some(d) => slot.set(list_cell(d, Cow::Borrowed(cell))),
    }
}

/// A cell of a line holding the list delimiter somewhere.
fn list_cell<'a>(d: &str, cell: Cow<'a, str>) -> Value<'a> {
    if cell.contains(d) {
        return Value::List(
            cell.split(d)
                .map(|s| Value::Str(Cow::Owned(s.to_string())))
                .collect(),
        );
    }
    Value::Str(cell)
}

fn single_byte(s: &str) -> Option<u8> {
    match s.as_bytes() {
        [b] if b.is_ascii() && *b != b'\n' && *b != b'"' => Some(*b),
        _ => None,
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
        return Err(ParseError::new("unterminated quote in csv row".into()));
    }
    cells.push(Cow::Owned(cell));
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list value of owned strings, as a split cell gives.
    fn owned_list(items: &[&str]) -> Value<'static> {
        Value::List(
            items
                .iter()
                .map(|i| Value::Str(Cow::Owned(i.to_string())))
                .collect(),
        )
    }

    /// Each parsed row's values at slots `a` and `b`.
    fn pairs<'a>(rows: &RowBuffer<'a>, a: usize, b: usize) -> Vec<(Value<'a>, Value<'a>)> {
        rows.rows()
            .iter()
            .map(|r| (r[a].clone(), r[b].clone()))
            .collect()
    }

    #[test]
    fn tsv_cells_map_to_columns() {
        let mut fields = FieldTable::new(false, false, &[]);
        let cols = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        for c in &cols {
            fields.slot(c);
        }
        let mut layout = Layout::new("\t", None, &cols, 0, false, false);
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

    /// The one-pass scanner gives the rows a line-by-line reading gives.
    #[test]
    fn one_pass_scanner_matches_line_by_line_reading() {
        let cols: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let records: [&[u8]; 9] = [
            b"1,2,3",
            b"1,2,3\n",
            b"1,2,3\r\n4,5,6\r\n",
            b"\n\n1,,3\n\n",
            b"1,\"x,y\",3\n4,5\n6,7,8,9",
            b"h1,h2,h3\n1,2,3",
            b",,\n,",
            b"a\"b,c\nd,e",
            b"1,2,\"3\"\"\"",
        ];
        for skip in [0, 1] {
            for record in records {
                let mut fields = FieldTable::new(false, false, &[]);
                for c in &cols {
                    fields.slot(c);
                }
                let mut layout = Layout::new(",", None, &cols, skip, true, false);
                let mut rows = RowBuffer::new();
                let got = layout
                    .parse_entity(record, &mut fields, &mut rows)
                    .map(|_| rows.rows().to_vec());
                // Reference: lines, then cells, as the csv reader reads them.
                let text = std::str::from_utf8(record).unwrap();
                let mut want = Vec::new();
                for (i, line) in text.split('\n').enumerate() {
                    let line = line.strip_suffix('\r').unwrap_or(line);
                    if i < skip || line.is_empty() {
                        continue;
                    }
                    let mut row = vec![Value::Null; 3];
                    for (j, cell) in split_csv(line).unwrap().into_iter().enumerate().take(3) {
                        row[j] = cell_value(None, cell);
                    }
                    want.push(row);
                }
                match got {
                    Ok(got) => assert_eq!(got, want, "{:?} skip {skip}", text),
                    Err(_) => assert!(want.is_empty(), "{:?} skip {skip}", text),
                }
            }
        }
    }

    /// Long lines, read 16 bytes at a time: every cell length from 0 to 20
    /// puts delimiters at every position of a chunk, and only some columns
    /// are read (the scan stops after the last); each gives the cells a
    /// full split gives, with a quote in any chunk sending the line down
    /// the quoted path.
    #[test]
    fn chunked_scan_matches_a_full_split() {
        let cols: Vec<String> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (delimiter, csv) in [(",", true), ("\t", false)] {
            let mut fields = FieldTable::new(false, false, &[]);
            let read = [fields.slot("b"), fields.slot("e")];
            let mut layout = Layout::new(delimiter, None, &cols, 0, csv, false);
            for len in 0..=20usize {
                for quote_at in [None, Some(0), Some(3), Some(5)] {
                    // Cells of len, len+1, ...: the delimiters drift across chunks.
                    let cells: Vec<String> = (0..7)
                        .map(|i| {
                            let mut c: String = (0..len + i)
                                .map(|j| (b'a' + (j % 26) as u8) as char)
                                .collect();
                            if quote_at == Some(i) {
                                c = format!("\"{c}{delimiter}\"");
                            }
                            c
                        })
                        .collect();
                    let line = cells.join(delimiter);
                    let mut rows = RowBuffer::new();
                    layout
                        .parse_entity(line.as_bytes(), &mut fields, &mut rows)
                        .unwrap();
                    let want: Vec<Cow<'_, str>> = if csv {
                        split_csv(&line).unwrap()
                    } else {
                        line.split(delimiter).map(Cow::Borrowed).collect()
                    };
                    let row = &rows.rows()[0];
                    assert_eq!(row[read[0]], cell_value(None, want[1].clone()), "{line:?}");
                    assert_eq!(row[read[1]], cell_value(None, want[4].clone()), "{line:?}");
                }
            }
        }
    }

    proptest::proptest! {
        /// Any record, over the bytes the scanner treats specially: the
        /// one-pass scan (cells found 16 bytes at a time, stopping after the
        /// last column read) gives the rows a line-by-line reading with a
        /// full split gives, or fails where it fails.
        #[test]
        fn one_pass_scan_matches_a_full_split_on_any_record(
            picks in proptest::collection::vec(0usize..12, 0..90),
            csv in proptest::bool::ANY,
            lists in 0usize..3,
            skip in 0usize..2,
            read_mask in 1u32..64,
        ) {
            const ALPHABET: &[u8] = b"ab,\"\n\r\t\x01|xy;";
            let record: Vec<u8> = picks.iter().map(|&i| ALPHABET[i]).collect();
            let delimiter = if csv { "," } else { "\t" };
            let list = [None, Some("|"), Some("||")][lists];
            let cols: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
            let mut fields = FieldTable::new(false, false, &[]);
            // Read some columns only, so the scan stops early on some lines.
            let read: Vec<(usize, usize)> = (0..6)
                .filter(|i| read_mask & (1 << i) != 0)
                .map(|i| (i, fields.slot(&cols[i])))
                .collect();
            let mut layout = Layout::new(delimiter, list, &cols, skip, csv, false);
            let mut rows = RowBuffer::new();
            let got = layout
                .parse_entity(&record, &mut fields, &mut rows)
                .map(|_| rows.rows().to_vec());
            let text = std::str::from_utf8(&record).unwrap();
            let list_delimiter = list.or(Some(DEFAULT_LIST_DELIMITER));
            let mut want: Result<Vec<Vec<Value>>, ()> = Ok(Vec::new());
            for (i, line) in text.split('\n').enumerate() {
                let line = line.strip_suffix('\r').unwrap_or(line);
                if i < skip || line.is_empty() {
                    continue;
                }
                let cells: Vec<Cow<'_, str>> = if csv {
                    match split_csv(line) {
                        Ok(cells) => cells,
                        Err(_) => {
                            want = Err(());
                            break;
                        }
                    }
                } else {
                    line.split(delimiter).map(Cow::Borrowed).collect()
                };
                let mut row = vec![Value::Null; fields.len()];
                for &(col, slot) in &read {
                    if let Some(cell) = cells.get(col) {
                        row[slot] = cell_value(list_delimiter, cell.clone());
                    }
                }
                if let Ok(rows) = &mut want {
                    rows.push(row);
                }
            }
            match (got, want) {
                (Ok(got), Ok(want)) => proptest::prop_assert_eq!(got, want, "{:?}", text),
                (Err(_), Err(())) => {}
                (Err(_), Ok(want)) => proptest::prop_assert!(want.is_empty(), "{:?}", text),
                (Ok(got), Err(())) => proptest::prop_assert!(false, "{:?} gave {:?}", text, got),
            }
        }
    }

    /// The list delimiter, looked for once per line: a line with it splits
    /// the cells holding it (and only those), a line without it gives plain
    /// strings, and one in an unread cell changes nothing read.
    #[test]
    fn list_delimiter_is_found_per_line() {
        let cols: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let mut fields = FieldTable::new(false, false, &[]);
        let (a, b) = (fields.slot("a"), fields.slot("b"));
        let mut layout = Layout::new(",", Some("|"), &cols, 0, true, false);
        let mut rows = RowBuffer::new();
        layout
            .parse_entity(b"x|y,z\nx,z\nx,y,q|r\n1,u|v|w", &mut fields, &mut rows)
            .unwrap();
        let s = |v: &'static str| Value::Str(Cow::Borrowed(v));
        assert_eq!(
            pairs(&rows, a, b),
            vec![
                (owned_list(&["x", "y"]), s("z")),
                (s("x"), s("z")),
                (s("x"), s("y")),
                (s("1"), owned_list(&["u", "v", "w"])),
            ]
        );
    }

    /// Without a listDelimiter, Ctrl-A splits cells as in Druid's csv and
    /// delimited readers (Parsers.DEFAULT_LIST_DELIMITER), also in a cell
    /// that starts in one 16-byte chunk and ends in the next, and in a
    /// line read the quoted way; an empty listDelimiter splits nothing.
    #[test]
    fn ctrl_a_is_the_default_list_delimiter() {
        let cols: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let s = |v: &'static str| Value::Str(Cow::Borrowed(v));
        for (csv, delimiter) in [(true, ","), (false, "\t")] {
            let mut fields = FieldTable::new(false, false, &[]);
            let (a, b) = (fields.slot("a"), fields.slot("b"));
            let mut layout = Layout::new(delimiter, None, &cols, 0, csv, false);
            let mut rows = RowBuffer::new();
            let text =
                format!("x\u{1}y{delimiter}z\nplain{delimiter}0123456789abc\u{1}d\nq{delimiter}r");
            layout
                .parse_entity(text.as_bytes(), &mut fields, &mut rows)
                .unwrap();
            assert_eq!(
                pairs(&rows, a, b),
                vec![
                    (owned_list(&["x", "y"]), s("z")),
                    (s("plain"), owned_list(&["0123456789abc", "d"])),
                    (s("q"), s("r")),
                ],
                "csv {csv}"
            );
        }
        let mut fields = FieldTable::new(false, false, &[]);
        let a = fields.slot("a");
        let mut rows = RowBuffer::new();
        Layout::new(",", None, &cols, 0, true, false)
            .parse_entity(b"\"m\x01n\",o", &mut fields, &mut rows)
            .unwrap();
        assert_eq!(rows.rows()[0][a], owned_list(&["m", "n"]), "quoted line");
        let mut rows = RowBuffer::new();
        Layout::new(",", Some(""), &cols, 0, true, false)
            .parse_entity(b"m\x01n,o", &mut fields, &mut rows)
            .unwrap();
        assert_eq!(rows.rows()[0][a], s("m\u{1}n"), "empty listDelimiter");
    }

    /// Cells after the last column read are not split, but a quote there
    /// still counts: an unterminated one makes the record unparseable.
    #[test]
    fn cells_past_the_last_read_column() {
        let cols: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let mut fields = FieldTable::new(false, false, &[]);
        let a = fields.slot("a");
        let mut layout = Layout::new(",", None, &cols, 0, true, false);
        let mut rows = RowBuffer::new();
        let s = |v: &'static str| Value::Str(Cow::Borrowed(v));
        layout
            .parse_entity(b"1,2,3\r\n4\n\"5,5\",x,\"y\"", &mut fields, &mut rows)
            .unwrap();
        let got: Vec<_> = rows.rows().iter().map(|r| r[a].clone()).collect();
        assert_eq!(
            got,
            vec![s("1"), s("4"), Value::Str(Cow::Owned("5,5".into()))]
        );
        assert!(
            layout
                .parse_entity(b"1,2,\"3", &mut fields, &mut rows)
                .is_err()
        );
        // tsv: quotes are plain characters.
        let mut tsv = Layout::new("\t", None, &cols, 0, false, false);
        rows.clear();
        tsv.parse_entity(b"\"1\t\"2", &mut fields, &mut rows)
            .unwrap();
        assert_eq!(rows.rows()[0][a], s("\"1"));
    }

    /// findColumnsFromHeader: each record names its own columns, after
    /// skipHeaderRows lines; a header may change from record to record.
    #[test]
    fn each_record_names_its_columns() {
        let mut fields = FieldTable::new(false, false, &[]);
        let (a, b) = (fields.slot("a"), fields.slot("b"));
        let mut layout = Layout::new(",", None, &[], 1, true, true);
        let mut rows = RowBuffer::new();
        layout
            .parse_entity(b"junk\nb,x,a\n1,2,3\n4,5,6", &mut fields, &mut rows)
            .unwrap();
        let got: Vec<_> = rows
            .rows()
            .iter()
            .map(|r| (r[a].clone(), r[b].clone()))
            .collect();
        let s = |v: &'static str| Value::Str(Cow::Borrowed(v));
        assert_eq!(got, vec![(s("3"), s("1")), (s("6"), s("4"))]);
        rows.clear();
        layout
            .parse_entity(b"junk\n\"a\",b\n7,8", &mut fields, &mut rows)
            .unwrap();
        assert_eq!(rows.rows()[0][a], s("7"));
        assert_eq!(rows.rows()[0][b], s("8"));
        rows.clear();
        let err = layout
            .parse_entity(b"junk", &mut fields, &mut rows)
            .unwrap_err();
        assert!(err.0.contains("no header line"), "{}", err.0);
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
