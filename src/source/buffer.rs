//! The bounded record buffer between fetch threads and the poll loop: one
//! bounded channel per shard, drained round-robin in batches (at most
//! maxRecordsPerPoll records each). A replay takes the shards in a fixed
//! order, waiting for each, so it ingests records in the same order every
//! time; a live read takes the next shard that has something, so an idle or
//! backing-off shard never holds up one with records. A fetch thread hands over several
//! batches at once (a delivery: one GetRecords call, or a stretch of a
//! dump), which keeps the hand-over cost (a wake-up each) off every batch.
//! Shards can be added while reading (the children of a closed shard).
//! Dropping it stops and joins the fetch threads.

use super::{BatchEnd, RecordBatch, Records, ShardAssignment};
use anyhow::Result;
use crossbeam_channel::{Receiver, Select, Sender, TryRecvError, TrySendError};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

/// Consecutive batches of one shard, handed over together.
pub type Delivery = Result<Vec<RecordBatch>>;

pub type BatchReceiver = Receiver<Delivery>;

/// Hands a new shard (its position and assignment) to a fetch thread and
/// returns the channel its batches come on.
pub type ShardStarter = Box<dyn FnMut(usize, ShardAssignment) -> Result<BatchReceiver> + Send>;

pub struct ShardBuffers {
    receivers: Vec<Option<BatchReceiver>>,
    /// Batches of a delivery not yet polled, per shard.
    taken: Vec<VecDeque<RecordBatch>>,
    next: usize,
    /// Replay: wait for each shard in turn (deterministic). Live: take
    /// whichever shard is ready.
    ordered: bool,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    starter: Option<ShardStarter>,
    /// Nanoseconds the fetch threads spent reading and decoding.
    read_nanos: Arc<AtomicU64>,
    pool: RecordsPool,
}

impl ShardBuffers {
    pub fn new(
        receivers: Vec<BatchReceiver>,
        threads: Vec<JoinHandle<()>>,
        stop: Arc<AtomicBool>,
        read_nanos: Arc<AtomicU64>,
        starter: ShardStarter,
        pool: RecordsPool,
        ordered: bool,
    ) -> ShardBuffers {
        ShardBuffers {
            taken: receivers.iter().map(|_| VecDeque::new()).collect(),
            receivers: receivers.into_iter().map(Some).collect(),
            next: 0,
            ordered,
            threads,
            stop,
            starter: Some(starter),
            read_nanos,
            pool,
        }
    }

    /// The next batch; None when every shard is done.
    pub fn poll(&mut self) -> Option<Result<RecordBatch>> {
        if self.ordered {
            self.poll_in_order()
        } else {
            self.poll_ready()
        }
    }

    /// The next batch in fixed round-robin shard order, waiting for each.
    fn poll_in_order(&mut self) -> Option<Result<RecordBatch>> {
        let n = self.receivers.len();
        for _ in 0..n {
            let i = self.next;
            self.next = (self.next + 1) % n;
            let Some(rx) = &self.receivers[i] else {
                continue;
            };
            if self.taken[i].is_empty() {
                match rx.recv() {
                    Ok(Ok(batches)) => self.taken[i].extend(batches),
                    Ok(Err(e)) => {
                        self.receivers[i] = None;
                        return Some(Err(e));
                    }
                    Err(_) => {
                        self.receivers[i] = None;
                        continue;
                    }
                }
            }
            let Some(batch) = self.taken[i].pop_front() else {
                continue;
            };
            if batch.end != BatchEnd::More {
                self.receivers[i] = None;
                self.taken[i].clear();
            }
            return Some(Ok(batch));
        }
        None
    }

    /// The next batch of the next shard, round-robin, that has one; waits
    /// only when none has. A shard with batches waiting is therefore taken
    /// at least once in every round of the others, and one shard's batches
    /// come in the order they were delivered.
    fn poll_ready(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            let n = self.receivers.len();
            for _ in 0..n {
                let i = self.next;
                self.next = (self.next + 1) % n;
                let Some(rx) = &self.receivers[i] else {
                    continue;
                };
                if self.taken[i].is_empty() {
                    match rx.try_recv() {
                        Ok(delivery) => {
                            if let Some(out) = self.take_delivery(i, delivery) {
                                return Some(out);
                            }
                        }
                        Err(TryRecvError::Empty) => {}
                        Err(TryRecvError::Disconnected) => self.receivers[i] = None,
                    }
                } else if let Some(out) = self.take_batch(i) {
                    return Some(out);
                }
            }
            // Nothing ready: wait for whichever shard delivers first.
            let open: Vec<usize> = (0..n).filter(|&i| self.receivers[i].is_some()).collect();
            if open.is_empty() {
                return None;
            }
            let mut ready = Select::new();
            for &i in &open {
                ready.recv(self.receivers[i].as_ref().expect("open"));
            }
            let op = ready.select();
            let i = open[op.index()];
            match op.recv(self.receivers[i].as_ref().expect("open")) {
                Ok(delivery) => {
                    self.next = (i + 1) % n;
                    if let Some(out) = self.take_delivery(i, delivery) {
                        return Some(out);
                    }
                }
                Err(_) => self.receivers[i] = None,
            }
        }
    }

    /// A delivery of shard `i` received: its first batch (or its failure).
    fn take_delivery(&mut self, i: usize, delivery: Delivery) -> Option<Result<RecordBatch>> {
        match delivery {
            Ok(batches) => {
                self.taken[i].extend(batches);
                self.take_batch(i)
            }
            Err(e) => {
                self.receivers[i] = None;
                Some(Err(e))
            }
        }
    }

    /// Shard `i`'s next batch already received; its end closes the shard.
    fn take_batch(&mut self, i: usize) -> Option<Result<RecordBatch>> {
        let batch = self.taken[i].pop_front()?;
        if batch.end != BatchEnd::More {
            self.receivers[i] = None;
            self.taken[i].clear();
        }
        Some(Ok(batch))
    }

    /// Start reading one more shard; its batches come with the returned position.
    pub fn add_shard(&mut self, assignment: ShardAssignment) -> Result<usize> {
        let index = self.receivers.len();
        let starter = self.starter.as_mut().expect("starter kept until drop");
        let rx = starter(index, assignment)?;
        self.receivers.push(Some(rx));
        self.taken.push(VecDeque::new());
        Ok(index)
    }

    /// Stop taking a shard's batches (it reached its end).
    pub fn close_shard(&mut self, shard: usize) {
        self.receivers[shard] = None;
        self.taken[shard].clear();
    }

    pub fn read_nanos(&self) -> u64 {
        self.read_nanos.load(Ordering::Relaxed)
    }

    /// Hand a polled batch's buffers back for the fetch threads to fill again.
    pub fn recycle(&self, records: Records) {
        self.pool.put(records);
    }
}

/// Emptied record buffers on their way back to the fetch threads, so a
/// replay refills buffers it already has instead of asking the allocator
/// for fresh ones on one thread and freeing them on another. Measured on
/// the 4-shard flights csv dump: kernel page zeroing fell from ~30% to ~4%
/// of perf-record samples; plain task-clock runs differed by less than this
/// VM's run-to-run noise.
#[derive(Clone)]
pub struct RecordsPool {
    tx: Sender<Records>,
    rx: Receiver<Records>,
}

/// Crossbeam's bounded channels allocate all their slots up front, and a
/// vector's capacity is taken at once: neither is sized past this from
/// recordBufferSize, which Druid treats as a bound, not an allocation
/// (2^31 records against maxRecordsPerPoll 1 took 24 GB before anything
/// was read). Beyond it a channel or pool still works, only holding less
/// ahead, or allocating as it fills.
pub const MAX_SLOTS: usize = 1 << 12;

impl RecordsPool {
    /// At most `batches` buffers are kept (and at most `MAX_SLOTS`); more
    /// are dropped.
    pub fn new(batches: usize) -> RecordsPool {
        let (tx, rx) = crossbeam_channel::bounded(batches.clamp(1, MAX_SLOTS));
        RecordsPool { tx, rx }
    }

    /// An empty buffer: a recycled one, else a new one sized for `records`
    /// (at most `MAX_SLOTS` of them and 256 bytes each up front: a larger
    /// maxRecordsPerPoll grows it as records come).
    pub fn take(&self, records: usize, data_bytes: usize) -> Records {
        match self.rx.try_recv() {
            Ok(mut r) => {
                r.clear();
                r
            }
            Err(_) => {
                Records::with_capacity(records.min(MAX_SLOTS), data_bytes.min(MAX_SLOTS * 256))
            }
        }
    }

    pub fn put(&self, records: Records) {
        let _ = self.tx.try_send(records);
    }
}

impl Drop for ShardBuffers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Closing the work queue wakes idle fetch threads; closing the
        // channels frees threads blocked on a full one.
        self.starter = None;
        self.receivers.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One shard on a fetch thread: its reading state, its channel, a
/// delivery read but not yet taken (its channel was full), and when it may
/// be read again (after an empty reply or in a back-off).
pub struct FetchJob<S> {
    pub state: S,
    tx: Sender<Delivery>,
    pending: Option<Delivery>,
    last: bool,
    resume_at: Option<Instant>,
}

impl<S> FetchJob<S> {
    pub fn new(state: S, tx: Sender<Delivery>) -> FetchJob<S> {
        FetchJob {
            state,
            tx,
            pending: None,
            last: false,
            resume_at: None,
        }
    }

    /// Tell the poll loop this shard cannot be read.
    pub fn fail(&self, e: anyhow::Error) {
        let _ = self.tx.send(Err(e));
    }
}

/// What one read of a shard gave.
pub struct Step {
    /// Something for the poll loop (None: nothing yet).
    pub delivery: Option<Delivery>,
    /// Do not read the shard again before this (a wait between calls, a
    /// back-off): the thread reads its other shards meanwhile.
    pub resume_at: Option<Instant>,
}

impl Step {
    pub fn now(delivery: Delivery) -> Step {
        Step {
            delivery: Some(delivery),
            resume_at: None,
        }
    }
}

/// The jobs of one fetch thread: its own shards, then whatever arrives on
/// the shared work queue. `step` reads one delivery of a shard. A shard
/// whose channel is full, or that must wait before its next read, is
/// passed over until it has room or its time comes, so a thread never
/// blocks on one shard while another of its shards could be read (shards
/// added while reading would otherwise deadlock the round-robin, and a
/// shard in a 10 s back-off would hold up the others). Returns when
/// stopped, or when the queue is closed and no job is left.
pub fn fetch_loop<S>(
    mut jobs: Vec<FetchJob<S>>,
    work: Receiver<FetchJob<S>>,
    stop: &AtomicBool,
    mut step: impl FnMut(&mut S) -> Step,
) {
    while !stop.load(Ordering::Relaxed) {
        jobs.extend(work.try_iter());
        if jobs.is_empty() {
            match work.recv() {
                Ok(job) => jobs.push(job),
                Err(_) => return,
            }
            continue;
        }
        let now = Instant::now();
        let mut progressed = false;
        let mut wake: Option<Instant> = None;
        jobs.retain_mut(|job| {
            if job.pending.is_none() {
                if let Some(at) = job.resume_at {
                    if at > now {
                        wake = Some(wake.map_or(at, |w| w.min(at)));
                        return true;
                    }
                    job.resume_at = None;
                }
                let Step {
                    delivery,
                    resume_at,
                } = step(&mut job.state);
                job.resume_at = resume_at;
                let Some(batch) = delivery else {
                    match resume_at {
                        Some(at) => wake = Some(wake.map_or(at, |w| w.min(at))),
                        None => progressed = true,
                    }
                    return true;
                };
                job.last = match &batch {
                    Ok(batches) => batches.last().is_none_or(|b| b.end != BatchEnd::More),
                    Err(_) => true,
                };
                job.pending = Some(batch);
            }
            let batch = job.pending.take().expect("set above");
            match job.tx.try_send(batch) {
                Ok(()) => {
                    progressed = true;
                    !job.last
                }
                Err(TrySendError::Full(batch)) => {
                    job.pending = Some(batch);
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        });
        if progressed || jobs.is_empty() {
            continue;
        }
        // Nothing to do now: wait until a full channel has room (or is
        // closed), new work comes, or a waiting shard's time comes.
        let mut ready = Select::new();
        for job in jobs.iter().filter(|j| j.pending.is_some()) {
            ready.send(&job.tx);
        }
        ready.recv(&work);
        match wake {
            Some(at) => {
                let _ = ready.ready_deadline(at);
            }
            None => {
                ready.ready();
            }
        }
    }
}
/// How many batches of `batch` records go in one delivery, and how many
/// deliveries each of `shards` channels holds, so that the buffers hold
/// about `buffer_records` records (recordBufferSize) in all.
pub fn delivery_shape(buffer_records: usize, batch: usize, shards: usize) -> (usize, usize) {
    let batch = batch.max(1);
    let per_shard = buffer_records / shards.max(1);
    // A shard's whole share per delivery, one delivery in its channel: the
    // fetch thread reads the next while the poll loop works through this
    // one. Every hand-over wakes a thread, and on two cores the wake-ups
    // cost more than reading ahead in smaller steps saves. Measured on the
    // 4-shard flights csv dump against a quarter share per delivery:
    // context switches 1,980 -> 638 a run, CPU 0.237 -> 0.231 s (medians
    // of 14 interleaved bench runs), 3 MiB more peak RSS. (With huge pages
    // on, their faults' noise had hidden the gain.)
    let batches = (per_shard / batch).max(1);
    let capacity = (per_shard / (batches * batch)).max(1);
    (batches, capacity)
}

/// A job queue for fetch threads.
pub fn work_queue<J>() -> (Sender<J>, Receiver<J>) {
    crossbeam_channel::unbounded()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SequenceNumber;
    use crossbeam_channel::bounded;

    #[test]
    fn a_delivery_is_a_shards_share_of_the_buffer() {
        // recordBufferSize 10,000 over 4 shards, maxRecordsPerPoll 100.
        assert_eq!(delivery_shape(10_000, 100, 4), (25, 1));
        // A share that is not a whole number of batches: rounded down.
        assert_eq!(delivery_shape(10_000, 300, 4), (8, 1));
        // A share smaller than a batch: still one batch, one delivery.
        assert_eq!(delivery_shape(1_000, 100, 200), (1, 1));
        assert_eq!(delivery_shape(0, 0, 0), (1, 1));
        // The channels never hold more than the buffer when it fits a batch per shard.
        for (buffer, batch, shards) in [(10_000, 100, 4), (5_000, 7, 3), (400, 100, 4)] {
            let (batches, capacity) = delivery_shape(buffer, batch, shards);
            assert!(
                batches * batch * capacity * shards <= buffer,
                "{buffer} {batch} {shards}"
            );
        }
    }

    fn assignment(id: &str) -> ShardAssignment {
        ShardAssignment {
            shard_id: id.into(),
            start: SequenceNumber::UnreadTrimHorizon,
            exclusive: false,
            end: SequenceNumber::NoEnd,
        }
    }

    /// A shard of `n` empty batches, then its end.
    struct Counted {
        index: usize,
        made: usize,
        n: usize,
        made_tx: Sender<(usize, usize)>,
    }

    fn step(s: &mut Counted) -> Step {
        s.made += 1;
        let _ = s.made_tx.send((s.index, s.made));
        Step::now(Ok(vec![RecordBatch {
            shard: s.index,
            records: Default::default(),
            end: if s.made == s.n {
                BatchEnd::EndOfShard
            } else {
                BatchEnd::More
            },
            millis_behind: None,
        }]))
    }

    /// One fetch thread, a shard read ahead until its channel is full, then
    /// a second shard added on the same thread: the round-robin poll gets
    /// every batch of both (a thread blocked on the first shard's full
    /// channel would never read the second).
    #[test]
    fn a_shard_added_beside_a_full_one_is_still_read() {
        let (made_tx, made) = crossbeam_channel::unbounded();
        let (work_tx, work_rx) = work_queue::<FetchJob<Counted>>();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = bounded(1);
        let first = FetchJob::new(
            Counted {
                index: 0,
                made: 0,
                n: 6,
                made_tx: made_tx.clone(),
            },
            tx,
        );
        let thread_stop = stop.clone();
        let thread =
            std::thread::spawn(move || fetch_loop(vec![first], work_rx, &thread_stop, step));
        // Batch 1 is in the channel and batch 2 read: the thread is ahead.
        while made.recv().unwrap() != (0, 2) {}
        let starter: ShardStarter = Box::new(move |index, _| {
            let (tx, rx) = bounded(1);
            let job = FetchJob::new(
                Counted {
                    index,
                    made: 0,
                    n: 6,
                    made_tx: made_tx.clone(),
                },
                tx,
            );
            work_tx.send(job).unwrap();
            Ok(rx)
        });
        let mut buffers = ShardBuffers::new(
            vec![rx],
            vec![thread],
            stop,
            Arc::new(AtomicU64::new(0)),
            starter,
            RecordsPool::new(1),
            true,
        );
        assert_eq!(buffers.add_shard(assignment("b")).unwrap(), 1);
        let mut seen = [0, 0];
        while let Some(batch) = buffers.poll() {
            seen[batch.unwrap().shard] += 1;
        }
        assert_eq!(seen, [6, 6]);
    }

    /// A batch of shard `shard` holding records with these sequence numbers.
    fn batch_of(shard: usize, seqs: &[u32], end: BatchEnd) -> RecordBatch {
        let mut records = Records::default();
        for s in seqs {
            records.push(&s.to_string(), 0, b"x");
        }
        RecordBatch {
            shard,
            records,
            end,
            millis_behind: Some(0),
        }
    }

    /// Buffers over these channels, with no fetch threads behind them.
    fn buffers_over(receivers: Vec<BatchReceiver>, ordered: bool) -> ShardBuffers {
        ShardBuffers::new(
            receivers,
            Vec::new(),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
            Box::new(|_, _| anyhow::bail!("no shards added here")),
            RecordsPool::new(1),
            ordered,
        )
    }

    /// What a poll gave: the shard and its records' sequence numbers.
    fn polled(buffers: &mut ShardBuffers) -> Option<(usize, Vec<String>)> {
        let b = buffers.poll()?.unwrap();
        Some((
            b.shard,
            b.records.iter().map(|r| r.sequence.to_string()).collect(),
        ))
    }

    /// Run `f` on another thread; a poll that blocked would never return,
    /// so the test fails at a generous deadline instead of hanging.
    fn within_deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || tx.send(f()).unwrap());
        rx.recv_timeout(std::time::Duration::from_secs(120))
            .expect("a live poll blocked on a shard with nothing to give")
    }

    /// Live: shard 1 has delivered nothing (its fetcher is idle or backing
    /// off, its channel open); every batch shard 0 has is still polled, in
    /// the order delivered, and shard 1's come once it delivers.
    #[test]
    fn a_live_poll_never_waits_on_an_idle_shard() {
        let (tx0, rx0) = bounded(8);
        let (tx1, rx1) = bounded(8);
        for d in 0..4u32 {
            let end = if d == 3 {
                BatchEnd::EndOfShard
            } else {
                BatchEnd::More
            };
            tx0.send(Ok(vec![
                batch_of(0, &[d * 4, d * 4 + 1], BatchEnd::More),
                batch_of(0, &[d * 4 + 2, d * 4 + 3], end),
            ]))
            .unwrap();
        }
        let mut buffers = buffers_over(vec![rx0, rx1], false);
        let (mut buffers, got) = within_deadline(move || {
            let got: Vec<_> = (0..8).map(|_| polled(&mut buffers).unwrap()).collect();
            (buffers, got)
        });
        assert!(got.iter().all(|(shard, _)| *shard == 0), "{got:?}");
        let seqs: Vec<String> = got.into_iter().flat_map(|(_, s)| s).collect();
        let expected: Vec<String> = (0..16).map(|n: u32| n.to_string()).collect();
        assert_eq!(seqs, expected, "nothing lost or reordered");
        tx1.send(Ok(vec![batch_of(1, &[7], BatchEnd::EndOfShard)]))
            .unwrap();
        assert_eq!(polled(&mut buffers), Some((1, vec!["7".to_string()])));
        assert!(buffers.poll().is_none());
        drop(tx0);
    }

    /// Live: shards with batches waiting are taken in turn, whatever the
    /// size of their deliveries (one of four batches against four of one).
    #[test]
    fn a_live_poll_takes_ready_shards_in_turn() {
        let (tx0, rx0) = bounded(8);
        let (tx1, rx1) = bounded(8);
        tx0.send(Ok((0..4)
            .map(|n| batch_of(0, &[n], BatchEnd::More))
            .collect()))
            .unwrap();
        for n in 0..4 {
            tx1.send(Ok(vec![batch_of(1, &[n], BatchEnd::More)]))
                .unwrap();
        }
        let mut buffers = buffers_over(vec![rx0, rx1], false);
        let order: Vec<(usize, Vec<String>)> =
            (0..8).map(|_| polled(&mut buffers).unwrap()).collect();
        let expected: Vec<(usize, Vec<String>)> = (0..4u32)
            .flat_map(|n| [(0, vec![n.to_string()]), (1, vec![n.to_string()])])
            .collect();
        assert_eq!(order, expected);
        drop((tx0, tx1));
    }

    /// A shard that must wait (a back-off of an hour) does not hold up
    /// another shard on the same fetch thread: all of its batches arrive.
    #[test]
    fn a_backing_off_shard_does_not_hold_up_its_thread() {
        enum Job {
            Waiting,
            Busy { made: u32 },
        }
        let (tx0, rx0) = bounded(1);
        let (tx1, rx1) = bounded(1);
        let jobs = vec![
            FetchJob::new(Job::Waiting, tx0),
            FetchJob::new(Job::Busy { made: 0 }, tx1),
        ];
        let (work_tx, work_rx) = work_queue::<FetchJob<Job>>();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::spawn(move || {
            fetch_loop(jobs, work_rx, &thread_stop, |job| match job {
                Job::Waiting => Step {
                    delivery: None,
                    resume_at: Some(Instant::now() + std::time::Duration::from_secs(3600)),
                },
                Job::Busy { made } => {
                    *made += 1;
                    Step::now(Ok(vec![batch_of(1, &[*made], BatchEnd::More)]))
                }
            })
        });
        let buffers = ShardBuffers::new(
            vec![rx0, rx1],
            vec![thread],
            stop,
            Arc::new(AtomicU64::new(0)),
            Box::new(move |_, _| {
                let _ = &work_tx;
                anyhow::bail!("no shards added here")
            }),
            RecordsPool::new(1),
            false,
        );
        let (buffers, got) = within_deadline(move || {
            let mut buffers = buffers;
            let got: Vec<_> = (0..20).map(|_| polled(&mut buffers).unwrap()).collect();
            (buffers, got)
        });
        let expected: Vec<(usize, Vec<String>)> =
            (1..=20u32).map(|n| (1, vec![n.to_string()])).collect();
        assert_eq!(got, expected);
        // Dropping stops the thread out of its hour-long wait.
        drop(buffers);
    }

    #[test]
    fn recycled_buffers_come_back_empty_and_the_pool_is_bounded() {
        let pool = RecordsPool::new(1);
        let mut r = pool.take(4, 64);
        r.push("1", 0, b"abc");
        let room = r.data_capacity();
        pool.put(r);
        pool.put(Records::default()); // over the bound: dropped
        let again = pool.take(4, 64);
        assert!(again.is_empty());
        assert_eq!(again.data_capacity(), room);
        assert_eq!(pool.take(4, 0).data_capacity(), 0, "a fresh one");
    }
}
