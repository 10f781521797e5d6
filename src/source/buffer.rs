//! The bounded record buffer between fetch threads and the poll loop: one
//! bounded channel per shard, drained in a fixed round-robin order (so a
//! replay ingests records in the same order every time). Dropping it stops
//! and joins the fetch threads.

use super::{BatchEnd, RecordBatch};
use anyhow::Result;
use crossbeam_channel::Receiver;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

pub struct ShardBuffers {
    receivers: Vec<Option<Receiver<Result<RecordBatch>>>>,
    next: usize,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    /// Nanoseconds the fetch threads spent reading and decoding.
    read_nanos: Arc<AtomicU64>,
}

impl ShardBuffers {
    pub fn new(
        receivers: Vec<Receiver<Result<RecordBatch>>>,
        threads: Vec<JoinHandle<()>>,
        stop: Arc<AtomicBool>,
        read_nanos: Arc<AtomicU64>,
    ) -> ShardBuffers {
        ShardBuffers {
            receivers: receivers.into_iter().map(Some).collect(),
            next: 0,
            threads,
            stop,
            read_nanos,
        }
    }

    /// The next batch in round-robin shard order; None when every shard is done.
    pub fn poll(&mut self) -> Option<Result<RecordBatch>> {
        let n = self.receivers.len();
        for _ in 0..n {
            let i = self.next;
            self.next = (self.next + 1) % n;
            let Some(rx) = &self.receivers[i] else {
                continue;
            };
            match rx.recv() {
                Ok(Ok(batch)) => {
                    if batch.end != BatchEnd::More {
                        self.receivers[i] = None;
                    }
                    return Some(Ok(batch));
                }
                Ok(Err(e)) => {
                    self.receivers[i] = None;
                    return Some(Err(e));
                }
                Err(_) => self.receivers[i] = None,
            }
        }
        None
    }

    /// Stop taking a shard's batches (it reached its end).
    pub fn close_shard(&mut self, shard: usize) {
        self.receivers[shard] = None;
    }

    pub fn read_nanos(&self) -> u64 {
        self.read_nanos.load(Ordering::Relaxed)
    }
}

impl Drop for ShardBuffers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.receivers.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
