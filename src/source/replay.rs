//! The record supplier for a recorded dump: one fetch thread per shard (at
//! most `fetchThreads`), each feeding its own bounded channel. The poll loop
//! takes batches from the shards in a fixed round-robin order, so a replay
//! ingests records in the same order every time (byte-identical segments
//! even where floating-point sums depend on order).

use super::buffer::ShardBuffers;
use super::dump::{Dump, ShardReader};
use super::{BatchEnd, Record, RecordBatch, SequenceNumber, ShardAssignment};
use anyhow::{Result, bail};
use crossbeam_channel::{Sender, bounded};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// A fetch thread's job: (shard position, assignment, file, closed?, channel).
type FetchJob = (
    usize,
    ShardAssignment,
    std::path::PathBuf,
    bool,
    Sender<Result<RecordBatch>>,
);

pub struct ReplayOptions {
    /// Records per batch (Druid's maxRecordsPerPoll).
    pub batch_records: usize,
    /// Total records the buffers may hold (recordBufferSize).
    pub buffer_records: usize,
    pub fetch_threads: usize,
}

pub struct ReplaySupplier;

impl ReplaySupplier {
    pub fn start(
        dump: &Dump,
        assignments: &[ShardAssignment],
        opts: &ReplayOptions,
    ) -> Result<ShardBuffers> {
        let mut files = Vec::new();
        for a in assignments {
            let Some(info) = dump.shard(&a.shard_id) else {
                bail!(
                    "shard {} of the task is not in the dump's {}",
                    a.shard_id,
                    dump.dir.join("shards.json").display()
                );
            };
            let eos = info.sequence_number_range.ending_sequence_number.is_some();
            files.push((dump.shard_file(&a.shard_id)?, eos));
        }
        let batch = opts.batch_records.max(1);
        let per_shard_batches = (opts.buffer_records / batch / assignments.len().max(1)).max(1);
        let stop = Arc::new(AtomicBool::new(false));
        let read_nanos = Arc::new(AtomicU64::new(0));
        let mut receivers = Vec::new();
        let mut senders: Vec<Vec<FetchJob>> =
            vec![Vec::new(); opts.fetch_threads.clamp(1, assignments.len().max(1))];
        for (i, (a, (path, eos))) in assignments.iter().zip(files).enumerate() {
            let (tx, rx) = bounded(per_shard_batches);
            receivers.push(rx);
            let n = senders.len();
            senders[i % n].push((i, a.clone(), path, eos, tx));
        }
        let mut threads = Vec::new();
        for (t, jobs) in senders.into_iter().enumerate() {
            let stop = stop.clone();
            let read_nanos = read_nanos.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("fetch-{t}"))
                    .spawn(move || {
                        // A thread with several shards interleaves them batch by batch,
                        // so no shard waits for another to finish.
                        let mut open: Vec<_> = jobs
                            .into_iter()
                            .map(|(idx, a, path, eos, tx)| {
                                (idx, a, ShardReader::open(&path), eos, tx)
                            })
                            .collect();
                        while !open.is_empty() && !stop.load(Ordering::Relaxed) {
                            open.retain_mut(|(idx, a, reader, eos, tx)| {
                                let started = Instant::now();
                                let step = match reader {
                                    Ok(r) => read_batch(*idx, a, r, *eos, batch),
                                    Err(e) => Err(anyhow::anyhow!("{e:#}")),
                                };
                                read_nanos.fetch_add(
                                    started.elapsed().as_nanos() as u64,
                                    Ordering::Relaxed,
                                );
                                let done = !matches!(&step, Ok(b) if b.end == BatchEnd::More);
                                tx.send(step).is_ok() && !done
                            });
                        }
                    })
                    .expect("spawn fetch thread"),
            );
        }
        Ok(ShardBuffers::new(receivers, threads, stop, read_nanos))
    }
}

/// Read up to `batch` records of one shard, seeking past those before the start
/// and stopping after the first record at or beyond the end.
fn read_batch(
    shard: usize,
    a: &ShardAssignment,
    reader: &mut ShardReader,
    closed: bool,
    batch: usize,
) -> Result<RecordBatch> {
    let mut records: Vec<Record> = Vec::with_capacity(batch);
    while records.len() < batch {
        let Some(record) = reader.next_record()? else {
            let end = if closed {
                BatchEnd::EndOfShard
            } else {
                BatchEnd::Exhausted
            };
            return Ok(RecordBatch {
                shard,
                records,
                end,
                millis_behind: None,
            });
        };
        if record.sequence < a.start {
            continue;
        }
        let past_end = record.sequence >= a.end && a.end != SequenceNumber::NoEnd;
        records.push(record);
        if past_end {
            return Ok(RecordBatch {
                shard,
                records,
                end: BatchEnd::Exhausted,
                millis_behind: None,
            });
        }
    }
    Ok(RecordBatch {
        shard,
        records,
        end: BatchEnd::More,
        millis_behind: None,
    })
}
