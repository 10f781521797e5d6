//! `sample`: the first records of a dump as Druid's data-loader sampler
//! shows them: each record's input, the rows parsed from it (or the parse
//! error beside it), then the rows as the index holds them after rollup.

use super::{Pipeline, RowFate, shard_assignments};
use crate::input::{RowBuffer, Value};
use crate::persist::{dimension_orders, sink_to_segment};
use crate::source::dump::Dump;
use crate::source::replay::{ReplayOptions, ReplaySupplier};
use crate::spec::{LoadedTask, load_task};
use anyhow::{Context, Result, anyhow};
use serde_json::{Map, json};
use std::path::Path;

/// Input text shown per record, at most.
const INPUT_CHARS: usize = 1000;

fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Str(s) => s.as_ref().into(),
        Value::Long(n) => (*n).into(),
        Value::Double(d) => serde_json::Number::from_f64(*d)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| d.to_string().into()),
        Value::Bool(b) => (*b).into(),
        Value::List(items) => items.iter().map(value_json).collect(),
        Value::Nested => "(nested)".into(),
    }
}

/// Sample the first `limit` records of the task's first sequence.
pub fn sample(task_file: &Path, dump_dir: &Path, limit: usize) -> Result<serde_json::Value> {
    let bytes = std::fs::read(task_file)
        .with_context(|| format!("reading task {}", task_file.display()))?;
    let LoadedTask { task, .. } =
        load_task(&bytes).map_err(|e| anyhow!("{}: invalid task:\n{e}", task_file.display()))?;
    super::check_supported(&task)
        .map_err(|e| anyhow!("{}: invalid task:\n{e}", task_file.display()))?;
    let r = &task.resolved;
    let span = r.sequences.first().context("the task has no sequence")?;
    let dump = Dump::open(dump_dir)?;
    let assignments = shard_assignments(span);
    let mut supplier = ReplaySupplier::start(
        &dump,
        &assignments,
        &ReplayOptions {
            batch_records: limit.clamp(1, 10_000),
            buffer_records: limit.clamp(1, 10_000),
            fetch_threads: 1,
        },
    )?;
    let Pipeline {
        mut parser,
        mut index,
        rows: mut stage,
    } = Pipeline::new(&task);
    let mut known = 0;
    let mut data_out = Vec::new();
    let (mut read, mut indexed_inputs) = (0usize, 0usize);
    'poll: while let Some(batch) = supplier.poll() {
        let batch = batch?;
        let shard = &assignments[batch.shard].shard_id;
        // With deaggregate on, each user record of a KPL aggregate is its
        // own entry (all under the Kinesis record's sequence number).
        let mut items: Vec<(String, Result<Vec<u8>, String>)> = Vec::new();
        for record in batch.records.iter() {
            let seq = record.sequence.to_string();
            match super::entities_of(record.data, task.io_config.deaggregate, parser.comments()) {
                Ok(Some(users)) => items.extend(users.into_iter().map(|u| (seq.clone(), Ok(u)))),
                Err(e) => items.push((seq, Err(e))),
                Ok(None) => items.push((seq, Ok(record.data.to_vec()))),
            }
        }
        for (sequence, data) in &items {
            if read >= limit {
                break 'poll;
            }
            read += 1;
            let mut entry = Map::new();
            entry.insert("shard".into(), shard.as_str().into());
            entry.insert("sequenceNumber".into(), sequence.as_str().into());
            let data = match data {
                Ok(d) => d,
                Err(e) => {
                    entry.insert("unparseable".into(), true.into());
                    entry.insert("error".into(), e.as_str().into());
                    data_out.push(serde_json::Value::Object(entry));
                    continue;
                }
            };
            let text = String::from_utf8_lossy(data);
            entry.insert(
                "input".into(),
                text.chars().take(INPUT_CHARS).collect::<String>().into(),
            );
            let mut rows = RowBuffer::new();
            match parser.parse(data, &mut rows) {
                // A schema registry out of reach: no record would parse.
                Err(e) if e.is_fatal() => return Err(anyhow!("{e}")),
                Err(e) => {
                    entry.insert("unparseable".into(), true.into());
                    entry.insert("error".into(), e.to_string().into());
                }
                Ok(()) => {
                    for (name, slot) in parser.fields.discovered_since(known) {
                        index.add_dimension(name, *slot);
                    }
                    known = parser.fields.discovered_count();
                    let mut parsed = Vec::new();
                    let mut errors = Vec::new();
                    for row in rows.rows_mut() {
                        let mut obj = Map::new();
                        for (slot, v) in row.iter().enumerate() {
                            if *v != Value::Null {
                                obj.insert(parser.fields.name(slot).to_string(), value_json(v));
                            }
                        }
                        parsed.push(serde_json::Value::Object(obj));
                        match stage.prepare(row) {
                            RowFate::Index(t) => {
                                let out = index.add(t, row);
                                indexed_inputs += 1;
                                if out.conversion_errors > 0 {
                                    errors.push(index.first_error.take().unwrap_or_default());
                                }
                            }
                            RowFate::ThrownAway(why) => errors.push(format!("thrown away: {why}")),
                            RowFate::Unparseable(e) => errors.push(e),
                        }
                    }
                    entry.insert("parsed".into(), parsed.into());
                    if !errors.is_empty() {
                        entry.insert("error".into(), errors.join("; ").into());
                    }
                }
            }
            data_out.push(serde_json::Value::Object(entry));
        }
    }
    drop(supplier);

    // The sample's rows as the index holds them: rolled up, sorted.
    let mut indexed = Vec::new();
    let mut sinks: Vec<_> = index.sinks.iter().filter(|s| !s.rows.is_empty()).collect();
    sinks.sort_by_key(|s| s.interval_start);
    let orders = dimension_orders(&index);
    for sink in sinks {
        let seg = sink_to_segment(&index, &orders, sink, serde_json::Value::Null);
        for row in 0..seg.num_rows() {
            indexed.push(serde_json::Value::Object(seg.row_json(row, |_| true)));
        }
    }
    Ok(json!({
        "numRowsRead": read,
        "numRowsIndexed": indexed_inputs,
        "data": data_out,
        "indexed": indexed,
    }))
}
