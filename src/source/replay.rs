//! The record supplier for a recorded dump: one fetch thread per shard (at
//! most `fetchThreads`), each feeding its own bounded channel. The poll loop
//! takes batches from the shards in a fixed round-robin order, so a replay
//! ingests records in the same order every time (byte-identical segments
//! even where floating-point sums depend on order).

use super::buffer::{
    FetchJob, MAX_SLOTS, RecordsPool, ShardBuffers, Step, delivery_shape, fetch_loop, work_queue,
};
use super::dump::{Dump, ShardReader};
use super::{BatchEnd, RecordBatch, SequenceNumber, ShardAssignment};
use anyhow::{Result, bail};
use crossbeam_channel::bounded;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// One shard of the dump on its fetch thread.
struct ShardFile {
    index: usize,
    assignment: ShardAssignment,
    reader: ShardReader,
    closed: bool,
}

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
        // Every shard of the dump, so children can be started later.
        let mut files = BTreeMap::new();
        for info in &dump.shards.shards {
            let closed = info.sequence_number_range.ending_sequence_number.is_some();
            files.insert(
                info.shard_id.clone(),
                (dump.shard_file(&info.shard_id), closed),
            );
        }
        let dir = dump.dir.clone();
        let batch = opts.batch_records.max(1);
        let (per_delivery, capacity) =
            delivery_shape(opts.buffer_records, batch, assignments.len());
        // As many buffers as the channels hold, and a delivery in hand per shard.
        let pool = RecordsPool::new(
            (capacity + 1)
                .saturating_mul(per_delivery)
                .saturating_mul(assignments.len().max(1)),
        );
        let new_job = move |index: usize, assignment: ShardAssignment| {
            let Some((file, closed)) = files.get(&assignment.shard_id) else {
                bail!(
                    "shard {} of the task is not in the dump's {}",
                    assignment.shard_id,
                    dir.join("shards.json").display()
                );
            };
            let path = match file {
                Ok(p) => p.clone(),
                Err(e) => bail!("{e:#}"),
            };
            let (tx, rx) = bounded(capacity);
            let job = FetchJob::new(
                ShardFile {
                    index,
                    assignment,
                    reader: ShardReader::open(&path)?,
                    closed: *closed,
                },
                tx,
            );
            Ok((job, rx))
        };
        let stop = Arc::new(AtomicBool::new(false));
        let read_nanos = Arc::new(AtomicU64::new(0));
        let mut receivers = Vec::new();
        let mut thread_jobs: Vec<Vec<FetchJob<ShardFile>>> =
            (0..opts.fetch_threads.clamp(1, assignments.len().max(1)))
                .map(|_| Vec::new())
                .collect();
        for (i, a) in assignments.iter().enumerate() {
            let (job, rx) = new_job(i, a.clone())?;
            receivers.push(rx);
            let n = thread_jobs.len();
            thread_jobs[i % n].push(job);
        }
        let (work_tx, work_rx) = work_queue::<FetchJob<ShardFile>>();
        let mut threads = Vec::new();
        for (t, jobs) in thread_jobs.into_iter().enumerate() {
            let stop = stop.clone();
            let read_nanos = read_nanos.clone();
            let work = work_rx.clone();
            let pool = pool.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("fetch-{t}"))
                    .spawn(move || {
                        fetch_loop(jobs, work, &stop, |shard| {
                            let started = Instant::now();
                            let mut batches = Vec::with_capacity(per_delivery.min(MAX_SLOTS));
                            let step = loop {
                                match read_batch(
                                    &pool,
                                    shard.index,
                                    &shard.assignment,
                                    &mut shard.reader,
                                    shard.closed,
                                    batch,
                                ) {
                                    Ok(b) => {
                                        let more = b.end == BatchEnd::More;
                                        batches.push(b);
                                        if !more || batches.len() == per_delivery {
                                            break Ok(batches);
                                        }
                                    }
                                    Err(e) => break Err(e),
                                }
                            };
                            read_nanos
                                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                            Step::now(step)
                        })
                    })
                    .expect("spawn fetch thread"),
            );
        }
        let starter = Box::new(move |index, assignment| {
            let (job, rx) = new_job(index, assignment)?;
            work_tx
                .send(job)
                .map_err(|_| anyhow::anyhow!("the fetch threads have stopped"))?;
            Ok(rx)
        });
        Ok(ShardBuffers::new(
            receivers, threads, stop, read_nanos, starter, pool, true,
        ))
    }
}

/// Read up to `batch` records of one shard, seeking past those before the start
/// and stopping after the first record at or beyond the end.
fn read_batch(
    pool: &RecordsPool,
    shard: usize,
    a: &ShardAssignment,
    reader: &mut ShardReader,
    closed: bool,
    batch: usize,
) -> Result<RecordBatch> {
    // Room for a batch of typical records (a larger one just grows).
    let mut records = pool.take(batch, batch.saturating_mul(256));
    let batch_of = |records, end| RecordBatch {
        shard,
        records,
        end,
        millis_behind: None,
    };
    // The reader checks that records come in order, so once one is past
    // the start every later one is too: with no end to look for, the rest
    // of the batch needs no comparison (~50 instructions a record).
    let open_ended = a.end == SequenceNumber::NoEnd;
    let mut past_start = false;
    while records.len() < batch {
        if !reader.next_record(&mut records)? {
            // A closed shard's end comes as a batch of its own, as
            // GetRecords gives it (and Druid's EOS record).
            let end = match (closed, records.is_empty()) {
                (true, true) => BatchEnd::EndOfShard,
                (true, false) => BatchEnd::More,
                (false, _) => BatchEnd::Exhausted,
            };
            return Ok(batch_of(records, end));
        }
        if past_start && open_ended {
            continue;
        }
        let sequence = records.last().expect("just read").sequence;
        if a.start.cmp_digits(sequence).is_gt() {
            records.pop();
            continue;
        }
        past_start = true;
        if !open_ended && a.end.cmp_digits(sequence).is_le() {
            return Ok(batch_of(records, BatchEnd::Exhausted));
        }
    }
    Ok(batch_of(records, BatchEnd::More))
}
