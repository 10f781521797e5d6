//! Per-stage throughput on real rows (the shipped flights dump): parsing
//! JSON records into slots, and indexing parsed rows with rollup.
//! `cargo bench` prints time per 20,000 rows.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kinesis_peon::input::{RowBuffer, RowParser};
use kinesis_peon::source::Records;
use kinesis_peon::source::dump::{Dump, ShardReader};
use kinesis_peon::spec::load_task;
use kinesis_peon::task::{Pipeline, RowFate};
use std::path::Path;

fn records() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dump = Dump::open(&root.join("fixtures/flights-dump")).unwrap();
    let mut out = Vec::new();
    for shard in &dump.shards.shards {
        let mut reader = ShardReader::open(&dump.shard_file(&shard.shard_id).unwrap()).unwrap();
        let mut records = Records::default();
        while reader.next_record(&mut records).unwrap() {}
        out.extend(records.iter().map(|r| r.data.to_vec()));
    }
    out
}

fn pipeline(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let task = load_task(&std::fs::read(root.join("fixtures/flights-task.json")).unwrap())
        .unwrap()
        .task;
    let records = records();
    let bytes: usize = records.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("flights-20k");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(20);

    group.bench_function("parse", |b| {
        b.iter(|| {
            let mut parser = RowParser::new(&task);
            for name in [
                "timestamp",
                "carrier",
                "origin",
                "dest",
                "dep_delay",
                "distance",
            ] {
                parser.fields.slot(name);
            }
            let mut rows = RowBuffer::new();
            let mut n = 0;
            for r in &records {
                parser.parse(r, &mut rows).unwrap();
                n += rows.len();
            }
            n
        })
    });

    group.bench_function("parse+index", |b| {
        b.iter(|| {
            let Pipeline {
                mut parser,
                mut index,
                rows: mut stage,
            } = Pipeline::new(&task);
            let mut rows = RowBuffer::new();
            for rec in &records {
                parser.parse(rec, &mut rows).unwrap();
                for row in rows.rows_mut() {
                    if let RowFate::Index(t) = stage.prepare(row) {
                        index.add(t, row);
                    }
                }
            }
            index.row_count()
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
