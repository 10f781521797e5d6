//! The live record supplier: Kinesis read with aws-sdk-kinesis. One fetch
//! thread per shard (at most `fetchThreads`; a thread with several shards
//! takes them in turn), each owning its shard iterator and feeding its own
//! bounded channel, drained by the poll loop in the order shards have
//! something (never waiting on an idle one). Throttling and transient
//! failures back off and retry (the SDK's own retries are off, so these are
//! ours): a shard waits out its back-off without holding up the other
//! shards of its thread, and transient failures that last longer than
//! fetchSequenceNumberTimeout stop the task. An expired iterator is
//! replaced by one after the last sequence number read.

use super::buffer::{FetchJob, MAX_SLOTS, RecordsPool, ShardBuffers, Step, fetch_loop, work_queue};
use super::dump::ShardInfo;
use super::kinesis_api::{IteratorStart, KinesisApi, KinesisError, Retrying};
use super::{BatchEnd, RecordBatch, Records, SequenceNumber, ShardAssignment, normalize_decimal};
use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::{Credentials, Region};
use crossbeam_channel::bounded;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where and how to reach Kinesis.
#[derive(Clone)]
pub struct KinesisConfig {
    /// `ioConfig.endpoint`: a host name (`kinesis.eu-west-1.amazonaws.com`)
    /// or a full URL (`http://127.0.0.1:4567`).
    pub endpoint: String,
    pub stream: String,
    /// `druid.kinesis.accessKey` / `secretKey`, when given.
    pub static_credentials: Option<(String, String)>,
    /// `awsAssumedRoleArn` and `awsExternalId`: assume this role via STS.
    pub assumed_role: Option<(String, Option<String>)>,
    pub records_per_fetch: i32,
    pub fetch_delay: Duration,
    /// `fetchSequenceNumberTimeout`: how long a call may keep failing
    /// (transiently, or throttled for control calls) before the task fails.
    pub retry_timeout: Duration,
}

/// Never prints the credentials.
impl std::fmt::Debug for KinesisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KinesisConfig")
            .field("endpoint", &self.endpoint)
            .field("stream", &self.stream)
            .field(
                "static_credentials",
                &self.static_credentials.as_ref().map(|_| "(redacted)"),
            )
            .field("assumed_role", &self.assumed_role.as_ref().map(|r| &r.0))
            .field("records_per_fetch", &self.records_per_fetch)
            .field("fetch_delay", &self.fetch_delay)
            .field("retry_timeout", &self.retry_timeout)
            .finish()
    }
}

impl KinesisConfig {
    /// The endpoint URL and region: a host names its region
    /// (`kinesis.<region>.amazonaws.com`); for a URL the region comes from
    /// AWS_REGION, else us-east-1.
    fn endpoint_and_region(&self) -> (String, String) {
        let e = self.endpoint.trim();
        if e.starts_with("http://") || e.starts_with("https://") {
            let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
            return (e.to_string(), region);
        }
        let region = e
            .split('.')
            .collect::<Vec<_>>()
            .windows(2)
            .find(|w| w[0] == "kinesis")
            .map(|w| w[1].to_string())
            .unwrap_or_else(|| "us-east-1".into());
        (format!("https://{e}"), region)
    }
}

/// A runtime and a client for one thread (a client's connection pool
/// belongs to the runtime that made it).
pub struct KinesisConnection {
    pub runtime: tokio::runtime::Runtime,
    pub client: Client,
}

pub fn connect(config: &KinesisConfig) -> Result<KinesisConnection> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the Kinesis client runtime")?;
    let (url, region) = config.endpoint_and_region();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(Region::new(region))
        .endpoint_url(url)
        // Our own back-off handles throttling and transient failures.
        .retry_config(aws_config::retry::RetryConfig::disabled());
    if let Some((access, secret)) = &config.static_credentials {
        loader = loader.credentials_provider(Credentials::new(
            access.clone(),
            secret.clone(),
            None,
            None,
            "druid.kinesis properties",
        ));
    }
    let mut sdk_config = runtime.block_on(loader.load());
    if let Some((role, external_id)) = &config.assumed_role {
        // The base credentials (properties or the default chain) call STS.
        let mut provider = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name("druid-kinesis")
            .configure(&sdk_config);
        if let Some(id) = external_id {
            provider = provider.external_id(id);
        }
        let provider = runtime.block_on(provider.build());
        sdk_config = sdk_config
            .into_builder()
            .credentials_provider(aws_sdk_kinesis::config::SharedCredentialsProvider::new(
                provider,
            ))
            .build();
    }
    let client = Client::new(&sdk_config);
    Ok(KinesisConnection { runtime, client })
}

/// The connection for calls outside the fetch loop (ListShards, the
/// earliest-record lookup, `record`): throttled and transient failures are
/// retried within fetchSequenceNumberTimeout.
pub type ControlConnection = Retrying<KinesisConnection>;

pub fn connect_control(config: &KinesisConfig) -> Result<ControlConnection> {
    Ok(Retrying::new(connect(config)?, config.retry_timeout))
}

pub struct KinesisOptions {
    pub batch_records: usize,
    pub buffer_records: usize,
    pub fetch_threads: usize,
}

/// One shard's reading state on its fetch thread.
struct ShardFetch {
    index: usize,
    assignment: ShardAssignment,
    iterator: Option<String>,
    last: Option<SequenceNumber>,
    backoff: Duration,
    /// Since when calls have been failing transiently, without a success.
    failing_since: Option<Instant>,
    /// When to read the shard next (set by a back-off or an empty reply).
    resume_at: Option<Instant>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(10);
const IDLE_WAIT: Duration = Duration::from_millis(200);

pub struct KinesisSupplier;

impl KinesisSupplier {
    pub fn start(
        config: &KinesisConfig,
        assignments: &[ShardAssignment],
        opts: &KinesisOptions,
    ) -> Result<ShardBuffers> {
        let batch = opts.batch_records.max(1);
        // A delivery is one GetRecords call's records, cut into batches.
        let per_call = config.records_per_fetch.max(1) as usize;
        let capacity =
            (opts.buffer_records / per_call / assignments.len().max(1)).clamp(1, MAX_SLOTS);
        let pool = RecordsPool::new(
            (capacity + 1)
                .saturating_mul(per_call.div_ceil(batch))
                .saturating_mul(assignments.len().max(1)),
        );
        let new_job = move |index: usize, assignment: ShardAssignment| {
            let (tx, rx) = bounded(capacity);
            let job = FetchJob::new(
                ShardFetch {
                    index,
                    assignment,
                    iterator: None,
                    last: None,
                    backoff: Duration::ZERO,
                    failing_since: None,
                    resume_at: None,
                },
                tx,
            );
            (job, rx)
        };
        let stop = Arc::new(AtomicBool::new(false));
        let read_nanos = Arc::new(AtomicU64::new(0));
        let mut receivers = Vec::new();
        let mut groups: Vec<Vec<FetchJob<ShardFetch>>> =
            (0..opts.fetch_threads.clamp(1, assignments.len().max(1)))
                .map(|_| Vec::new())
                .collect();
        for (i, a) in assignments.iter().enumerate() {
            let (job, rx) = new_job(i, a.clone());
            receivers.push(rx);
            let n = groups.len();
            groups[i % n].push(job);
        }
        let (work_tx, work_rx) = work_queue::<FetchJob<ShardFetch>>();
        let mut threads = Vec::new();
        for (t, shards) in groups.into_iter().enumerate() {
            let stop = stop.clone();
            let read_nanos = read_nanos.clone();
            let config = config.clone();
            let work = work_rx.clone();
            let pool = pool.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("kinesis-fetch-{t}"))
                    .spawn(move || {
                        let conn = match connect(&config) {
                            Ok(c) => c,
                            Err(e) => {
                                // Every shard this thread would read fails
                                // with the reason, later ones included.
                                for s in shards.into_iter().chain(work.iter()) {
                                    s.fail(anyhow!("{e:#}"));
                                }
                                return;
                            }
                        };
                        fetch_loop(shards, work, &stop, |s| {
                            let started = Instant::now();
                            let step = fetch(&conn, &config, &pool, s, batch);
                            read_nanos
                                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                            Step {
                                delivery: step.transpose(),
                                resume_at: s.resume_at.take(),
                            }
                        })
                    })
                    .expect("spawn fetch thread"),
            );
        }
        let starter = Box::new(move |index, assignment| {
            let (job, rx) = new_job(index, assignment);
            work_tx
                .send(job)
                .map_err(|_| anyhow!("the fetch threads have stopped"))?;
            Ok(rx)
        });
        Ok(ShardBuffers::new(
            receivers, threads, stop, read_nanos, starter, pool, false,
        ))
    }
}

/// Exponential back-off with jitter, starting at the fetch delay (at least
/// 100 ms), doubling up to 10 s.
fn next_backoff(previous: Duration, fetch_delay: Duration) -> Duration {
    let base = fetch_delay.max(Duration::from_millis(100));
    let backoff = if previous.is_zero() {
        base
    } else {
        (previous * 2).min(MAX_BACKOFF)
    };
    backoff.max(base)
}

/// Up to half the back-off again, from the clock's low bits: enough to
/// spread shards apart.
fn jitter(backoff: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    Duration::from_millis(nanos % (backoff.as_millis() as u64 / 2 + 1))
}

/// A retryable failure of one shard's call: back off (the shard is read
/// again after the wait, its thread reads other shards meanwhile), or,
/// when transient failures have lasted past fetchSequenceNumberTimeout,
/// stop the task. Throttling is Kinesis's flow control and never ends the
/// task here (Druid's fetcher, too, retries it for as long as it lasts).
fn back_off(
    s: &mut ShardFetch,
    config: &KinesisConfig,
    call: &str,
    e: &KinesisError,
) -> Result<Option<Vec<RecordBatch>>> {
    if let KinesisError::Transient(_) = e {
        let since = *s.failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= config.retry_timeout {
            bail!(
                "shard {}: {call} kept failing for {} ms (fetchSequenceNumberTimeout {} ms) at {}: {e}",
                s.assignment.shard_id,
                since.elapsed().as_millis(),
                config.retry_timeout.as_millis(),
                config.endpoint
            );
        }
    }
    s.backoff = next_backoff(s.backoff, config.fetch_delay);
    let wait = s.backoff + jitter(s.backoff);
    log::warn!(
        "shard {}: {call}: {e}; backing off {} ms",
        s.assignment.shard_id,
        wait.as_millis()
    );
    s.resume_at = Some(Instant::now() + wait);
    Ok(None)
}

/// One step of a shard: the records of one GetRecords call (up to
/// recordsPerFetch) in batches of `batch`, None to try again, or a failure
/// that stops the task.
fn fetch(
    api: &impl KinesisApi,
    config: &KinesisConfig,
    pool: &RecordsPool,
    s: &mut ShardFetch,
    batch: usize,
) -> Result<Option<Vec<RecordBatch>>> {
    let shard_id = s.assignment.shard_id.clone();
    if s.iterator.is_none() {
        let start = match (&s.last, &s.assignment.start) {
            (Some(last), _) => IteratorStart::After(last.to_string()),
            (None, SequenceNumber::Number(n)) if s.assignment.exclusive => {
                IteratorStart::After(n.to_string())
            }
            (None, SequenceNumber::Number(n)) => IteratorStart::At(n.to_string()),
            (None, SequenceNumber::UnreadLatest) => IteratorStart::Latest,
            (None, _) => IteratorStart::TrimHorizon,
        };
        match api.shard_iterator(&config.stream, &shard_id, &start) {
            Ok(iterator) => s.iterator = iterator,
            Err(e) if e.is_retryable() => return back_off(s, config, "GetShardIterator", &e),
            Err(e) => bail!("shard {shard_id}: GetShardIterator failed: {e}"),
        }
        if s.iterator.is_none() {
            // A closed shard read to its end has no iterator.
            return Ok(Some(vec![end_batch(s, BatchEnd::EndOfShard)]));
        }
    }
    let iterator = s.iterator.clone().expect("set above");
    let out = match api.records(&iterator, config.records_per_fetch) {
        Ok(out) => out,
        Err(KinesisError::ExpiredIterator(_)) => {
            log::warn!(
                "shard {shard_id}: iterator expired; asking for a new one after {}",
                s.last
                    .as_ref()
                    .map_or("the start".to_string(), |l| l.to_string())
            );
            s.iterator = None;
            return Ok(None);
        }
        Err(e) if e.is_retryable() => return back_off(s, config, "GetRecords", &e),
        Err(e) => bail!("shard {shard_id}: GetRecords failed: {e}"),
    };
    s.backoff = Duration::ZERO;
    s.failing_since = None;
    // The reply's records, cut into batches of at most `batch` as they are read.
    let batch = batch.max(1);
    let mut chunks: Vec<Records> = Vec::new();
    let mut end = BatchEnd::More;
    for r in out.records {
        let sequence = normalize_decimal(&r.sequence_number)
            .map_err(|e| anyhow!("shard {shard_id}: sequence number: {e}"))?;
        check_follows(&shard_id, s.last.as_ref(), sequence)?;
        s.last = Some(SequenceNumber::from_digits(sequence));
        if s.assignment.start.cmp_digits(sequence).is_gt() {
            continue;
        }
        if chunks.last().is_none_or(|c| c.len() >= batch) {
            chunks.push(pool.take(batch, 0));
        }
        let arrival_millis = r.arrival.map(|t| t.to_millis().unwrap_or(0)).unwrap_or(0);
        let chunk = chunks.last_mut().expect("just ensured");
        chunk.push(sequence, arrival_millis, &r.data);
        if s.assignment.end != SequenceNumber::NoEnd
            && s.assignment.end.cmp_digits(sequence).is_le()
        {
            end = BatchEnd::Exhausted;
            break;
        }
    }
    s.iterator = out.next_iterator;
    if end == BatchEnd::More && s.iterator.is_none() {
        end = BatchEnd::EndOfShard;
    }
    if chunks.is_empty() && end == BatchEnd::More {
        // Caught up: wait before asking again, as Kinesis asks of readers.
        s.resume_at = Some(Instant::now() + config.fetch_delay.max(IDLE_WAIT));
    } else if !config.fetch_delay.is_zero() {
        s.resume_at = Some(Instant::now() + config.fetch_delay);
    }
    // The last batch carries the end (an empty one when there are no records).
    if chunks.is_empty() {
        chunks.push(Records::default());
    }
    let count = chunks.len();
    Ok(Some(
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, records)| RecordBatch {
                shard: s.index,
                records,
                end: if i + 1 == count { end } else { BatchEnd::More },
                millis_behind: out.millis_behind,
            })
            .collect(),
    ))
}

/// A shard's records come in increasing order; the poll loop counts on it
/// within a batch (it checks only a batch's first record against the
/// shard's offset), so a reply out of order stops the task here.
fn check_follows(shard_id: &str, last: Option<&SequenceNumber>, sequence: &str) -> Result<()> {
    if let Some(last @ SequenceNumber::Number(_)) = last
        && last.cmp_digits(sequence).is_ge()
    {
        bail!("shard {shard_id}: record {sequence} does not follow {last}, read before it");
    }
    Ok(())
}

fn end_batch(s: &ShardFetch, end: BatchEnd) -> RecordBatch {
    RecordBatch {
        shard: s.index,
        records: Records::default(),
        end,
        millis_behind: None,
    }
}

/// The sequence number of a shard's earliest record (TRIM_HORIZON), as
/// Druid looks it up: following iterators past empty pages (at most 20);
/// None when the shard holds no record.
pub fn earliest_sequence_number(
    api: &impl KinesisApi,
    stream: &str,
    shard: &str,
) -> Result<Option<SequenceNumber>> {
    let mut iterator = api
        .shard_iterator(stream, shard, &IteratorStart::TrimHorizon)
        .map_err(|e| anyhow!("shard {shard}: GetShardIterator(TRIM_HORIZON): {e}"))?;
    for _ in 0..20 {
        let Some(it) = iterator else {
            return Ok(None);
        };
        let page = api
            .records(&it, 1)
            .map_err(|e| anyhow!("shard {shard}: GetRecords(TRIM_HORIZON): {e}"))?;
        if let Some(r) = page.records.first() {
            return SequenceNumber::parse(&r.sequence_number)
                .map(Some)
                .map_err(|e| anyhow!("shard {shard}: {e}"));
        }
        if page.millis_behind == Some(0) {
            // Caught up at the trim horizon: the shard is empty.
            return Ok(None);
        }
        iterator = page.next_iterator;
    }
    Ok(None)
}

/// Whether ListShards now gives `shard` an ending sequence number (a split
/// or merge closed it). An empty page at MillisBehindLatest 0 does not show
/// that a closed shard was read to its end: Kinesis may answer empty before
/// the last page, and kinesalite does whenever the shard closed more than a
/// second after its last record (its next iterator is a second past that
/// record, short of the shard's end). Only the page without a next
/// iterator ends a closed shard.
pub fn shard_is_closed(api: &impl KinesisApi, stream: &str, shard: &str) -> Result<bool> {
    Ok(list_shards(api, stream)?
        .iter()
        .any(|s| s.shard_id == shard && s.sequence_number_range.ending_sequence_number.is_some()))
}

/// Every shard of the stream as ListShards gives it (in the shape of a
/// dump's shards.json), following pages.
pub fn list_shards(api: &impl KinesisApi, stream: &str) -> Result<Vec<ShardInfo>> {
    api.list_shards(stream)
        .map_err(|e| anyhow!("ListShards {stream}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::super::dump::SequenceNumberRange;
    use super::super::kinesis_api::{KinesisRecord, RecordsPage};
    use super::*;
    use aws_sdk_kinesis::primitives::DateTime;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    /// A reply whose records go backwards or repeat one stops the task,
    /// naming the shard and both sequence numbers; the first record read
    /// (nothing before it, or only a starting position) is taken.
    #[test]
    fn records_must_follow_the_one_before() {
        let last =
            SequenceNumber::from_digits("49590000000000000000000000000000000000000000000000000120");
        assert!(
            check_follows(
                "shardId-000000000000",
                Some(&last),
                "49590000000000000000000000000000000000000000000000000121"
            )
            .is_ok()
        );
        for sequence in [
            "49590000000000000000000000000000000000000000000000000120",
            "49590000000000000000000000000000000000000000000000000119",
            "9",
        ] {
            let err = check_follows("shardId-000000000000", Some(&last), sequence)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("shardId-000000000000") && err.contains(sequence),
                "{err}"
            );
            assert!(
                err.contains(
                    "does not follow 49590000000000000000000000000000000000000000000000000120"
                ),
                "{err}"
            );
        }
        assert!(check_follows("shardId-000000000000", None, "1").is_ok());
        assert!(
            check_follows(
                "shardId-000000000000",
                Some(&SequenceNumber::UnreadTrimHorizon),
                "1"
            )
            .is_ok()
        );
    }

    fn config(endpoint: &str) -> KinesisConfig {
        KinesisConfig {
            endpoint: endpoint.into(),
            stream: "s".into(),
            static_credentials: Some(("AKIAEXAMPLE".into(), "wJalrXUtnFEMI/SECRET".into())),
            assumed_role: None,
            records_per_fetch: 4000,
            fetch_delay: Duration::ZERO,
            retry_timeout: Duration::from_secs(20),
        }
    }

    #[test]
    fn endpoints_as_druid_takes_them() {
        assert_eq!(
            config("kinesis.eu-west-1.amazonaws.com").endpoint_and_region(),
            (
                "https://kinesis.eu-west-1.amazonaws.com".to_string(),
                "eu-west-1".to_string()
            )
        );
        let (url, _) = config("http://127.0.0.1:4567").endpoint_and_region();
        assert_eq!(url, "http://127.0.0.1:4567");
    }

    #[test]
    fn credentials_never_print() {
        let shown = format!("{:?}", config("x"));
        assert!(
            !shown.contains("SECRET") && !shown.contains("AKIA"),
            "{shown}"
        );
    }

    /// A scripted Kinesis: GetShardIterator answers "it-N" (or what
    /// `iterators` holds), GetRecords the next of `pages`; every start asked
    /// for is kept.
    #[derive(Default)]
    struct FakeKinesis {
        starts: RefCell<Vec<IteratorStart>>,
        iterators: RefCell<VecDeque<Result<Option<String>, KinesisError>>>,
        pages: RefCell<VecDeque<Result<RecordsPage, KinesisError>>>,
        shards: Vec<ShardInfo>,
    }

    impl KinesisApi for FakeKinesis {
        fn shard_iterator(
            &self,
            _stream: &str,
            _shard: &str,
            start: &IteratorStart,
        ) -> Result<Option<String>, KinesisError> {
            self.starts.borrow_mut().push(start.clone());
            let n = self.starts.borrow().len();
            self.iterators
                .borrow_mut()
                .pop_front()
                .unwrap_or_else(|| Ok(Some(format!("it-{n}"))))
        }

        fn records(&self, _iterator: &str, _limit: i32) -> Result<RecordsPage, KinesisError> {
            self.pages
                .borrow_mut()
                .pop_front()
                .expect("a page scripted for every GetRecords")
        }

        fn list_shards(&self, _stream: &str) -> Result<Vec<ShardInfo>, KinesisError> {
            Ok(self.shards.clone())
        }
    }

    fn page(
        sequences: &[&str],
        next: Option<&str>,
        behind: i64,
    ) -> Result<RecordsPage, KinesisError> {
        Ok(RecordsPage {
            records: sequences
                .iter()
                .map(|s| KinesisRecord {
                    sequence_number: s.to_string(),
                    arrival: Some(DateTime::from_millis(1_000)),
                    data: format!("data {s}").into_bytes(),
                    partition_key: Some("k".into()),
                })
                .collect(),
            next_iterator: next.map(String::from),
            millis_behind: Some(behind),
        })
    }

    fn shard(start: SequenceNumber, exclusive: bool, end: SequenceNumber) -> ShardFetch {
        ShardFetch {
            index: 0,
            assignment: ShardAssignment {
                shard_id: "shardId-000000000000".into(),
                start,
                exclusive,
                end,
            },
            iterator: None,
            last: None,
            backoff: Duration::ZERO,
            failing_since: None,
            resume_at: None,
        }
    }

    /// A delivered batch: its sequence numbers and its end.
    type Delivered = (Vec<String>, BatchEnd);

    /// What one fetch step delivered, batch by batch.
    fn step(api: &FakeKinesis, s: &mut ShardFetch, batch: usize) -> Result<Option<Vec<Delivered>>> {
        let pool = RecordsPool::new(8);
        Ok(
            fetch(api, &config("http://127.0.0.1:1"), &pool, s, batch)?.map(|batches| {
                batches
                    .into_iter()
                    .map(|b| {
                        let seqs = b.records.iter().map(|r| r.sequence.to_string()).collect();
                        (seqs, b.end)
                    })
                    .collect()
            }),
        )
    }

    fn seqs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// A shard read from TRIM_HORIZON to the page without a next iterator
    /// ends with EndOfShard; records come in batches of the poll size.
    #[test]
    fn a_closed_shard_read_to_its_end_yields_end_of_shard() {
        let api = FakeKinesis::default();
        api.pages.borrow_mut().extend([
            page(&["1", "2", "3"], Some("it-next"), 5),
            page(&["4"], None, 0),
        ]);
        let mut s = shard(
            SequenceNumber::UnreadTrimHorizon,
            false,
            SequenceNumber::NoEnd,
        );
        let first = step(&api, &mut s, 2).unwrap().unwrap();
        assert_eq!(
            first,
            vec![
                (seqs(&["1", "2"]), BatchEnd::More),
                (seqs(&["3"]), BatchEnd::More)
            ]
        );
        let second = step(&api, &mut s, 2).unwrap().unwrap();
        assert_eq!(second, vec![(seqs(&["4"]), BatchEnd::EndOfShard)]);
        assert_eq!(*api.starts.borrow(), vec![IteratorStart::TrimHorizon]);
        // Asked again, a shard with no iterator left is at its end at once.
        api.iterators.borrow_mut().push_back(Ok(None));
        let third = step(&api, &mut s, 2).unwrap().unwrap();
        assert_eq!(third, vec![(Vec::new(), BatchEnd::EndOfShard)]);
        assert_eq!(api.starts.borrow()[1], IteratorStart::After("4".into()));
    }

    /// Starts follow Druid: an exclusive start reads after it, an inclusive
    /// one at it; an end sequence number is inclusive and ends the shard's
    /// reading (Exhausted) without reading past it.
    #[test]
    fn starts_and_ends_follow_druid() {
        let api = FakeKinesis::default();
        api.pages
            .borrow_mut()
            .push_back(page(&["5", "6", "7", "8"], Some("it-next"), 0));
        let mut s = shard(
            SequenceNumber::from_digits("5"),
            true,
            SequenceNumber::from_digits("7"),
        );
        let got = step(&api, &mut s, 10).unwrap().unwrap();
        assert_eq!(got, vec![(seqs(&["5", "6", "7"]), BatchEnd::Exhausted)]);
        assert_eq!(*api.starts.borrow(), vec![IteratorStart::After("5".into())]);

        let api = FakeKinesis::default();
        api.pages
            .borrow_mut()
            .push_back(page(&["3", "4"], Some("n"), 0));
        let mut s = shard(
            SequenceNumber::from_digits("4"),
            false,
            SequenceNumber::NoEnd,
        );
        let got = step(&api, &mut s, 10).unwrap().unwrap();
        assert_eq!(
            got,
            vec![(seqs(&["4"]), BatchEnd::More)],
            "before the start is skipped"
        );
        assert_eq!(*api.starts.borrow(), vec![IteratorStart::At("4".into())]);
    }

    /// An expired iterator is replaced by one after the last record read;
    /// nothing is delivered for that step and nothing fails.
    #[test]
    fn an_expired_iterator_is_replaced_after_the_last_record() {
        let api = FakeKinesis::default();
        api.pages.borrow_mut().extend([
            page(&["10", "11"], Some("it-next"), 100),
            Err(KinesisError::ExpiredIterator("too old".into())),
            page(&["12"], Some("it-next"), 0),
        ]);
        let mut s = shard(
            SequenceNumber::UnreadTrimHorizon,
            false,
            SequenceNumber::NoEnd,
        );
        step(&api, &mut s, 10).unwrap().unwrap();
        assert!(step(&api, &mut s, 10).unwrap().is_none());
        assert_eq!(s.iterator, None);
        let got = step(&api, &mut s, 10).unwrap().unwrap();
        assert_eq!(got, vec![(seqs(&["12"]), BatchEnd::More)]);
        assert_eq!(
            *api.starts.borrow(),
            vec![
                IteratorStart::TrimHorizon,
                IteratorStart::After("11".into())
            ]
        );
    }

    /// Throttling and transient failures back off (from 100 ms, doubling)
    /// and retry; a success resets the back-off; a failure retrying cannot
    /// help stops the task naming the shard.
    #[test]
    fn throttling_backs_off_and_a_fatal_error_stops() {
        let api = FakeKinesis::default();
        api.iterators
            .borrow_mut()
            .push_back(Err(KinesisError::Transient("connection refused".into())));
        api.pages.borrow_mut().extend([
            Err(KinesisError::Throttled(
                "ProvisionedThroughputExceeded".into(),
            )),
            page(&["1"], Some("it-next"), 0),
            Err(KinesisError::Fatal("AccessDeniedException".into())),
        ]);
        let mut s = shard(
            SequenceNumber::UnreadTrimHorizon,
            false,
            SequenceNumber::NoEnd,
        );
        assert!(step(&api, &mut s, 10).unwrap().is_none());
        assert_eq!(s.backoff, Duration::from_millis(100));
        // The wait is the fetch loop's to keep (the thread does not sleep).
        assert!(s.resume_at.take().is_some());
        assert!(step(&api, &mut s, 10).unwrap().is_none());
        assert_eq!(s.backoff, Duration::from_millis(200));
        assert!(s.resume_at.take().is_some());
        step(&api, &mut s, 10).unwrap().unwrap();
        assert_eq!(s.backoff, Duration::ZERO);
        let err = step(&api, &mut s, 10).unwrap_err().to_string();
        assert!(
            err.contains("shardId-000000000000") && err.contains("AccessDeniedException"),
            "{err}"
        );
    }

    /// Transient failures that outlast fetchSequenceNumberTimeout (0 here)
    /// stop the task naming the shard, the call, the endpoint and the
    /// error; throttling goes on backing off (Kinesis's flow control).
    #[test]
    fn transient_failures_past_the_timeout_stop_the_task() {
        let mut cfg = config("http://127.0.0.1:1");
        cfg.retry_timeout = Duration::ZERO;
        let api = FakeKinesis::default();
        api.iterators.borrow_mut().extend([
            Err(KinesisError::Throttled("LimitExceededException".into())),
            Err(KinesisError::Transient("connection refused".into())),
        ]);
        let pool = RecordsPool::new(8);
        let mut s = shard(
            SequenceNumber::UnreadTrimHorizon,
            false,
            SequenceNumber::NoEnd,
        );
        assert!(fetch(&api, &cfg, &pool, &mut s, 10).unwrap().is_none());
        let err = fetch(&api, &cfg, &pool, &mut s, 10)
            .unwrap_err()
            .to_string();
        for part in [
            "shard shardId-000000000000: GetShardIterator kept failing",
            "fetchSequenceNumberTimeout 0 ms",
            "at http://127.0.0.1:1",
            "connection refused",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
    }

    /// An empty page (caught up) asks the fetch loop to wait before the
    /// next read instead of sleeping on the thread.
    #[test]
    fn an_empty_page_waits_in_the_fetch_loop() {
        let api = FakeKinesis::default();
        api.pages.borrow_mut().push_back(page(&[], Some("n"), 0));
        let mut s = shard(
            SequenceNumber::UnreadTrimHorizon,
            false,
            SequenceNumber::NoEnd,
        );
        let got = step(&api, &mut s, 10).unwrap().unwrap();
        assert_eq!(got, vec![(Vec::new(), BatchEnd::More)]);
        assert!(s.resume_at.is_some_and(|at| at > Instant::now()));
    }

    #[test]
    fn only_throttling_and_transient_failures_are_retried() {
        assert!(KinesisError::Throttled(String::new()).is_retryable());
        assert!(KinesisError::Transient(String::new()).is_retryable());
        assert!(!KinesisError::ExpiredIterator(String::new()).is_retryable());
        assert!(!KinesisError::Fatal(String::new()).is_retryable());
    }

    /// The earliest record is found past empty pages; a shard caught up
    /// at its trim horizon is empty. ListShards shows a closed shard.
    #[test]
    fn lookups_find_the_earliest_record_and_closed_shards() {
        let api = FakeKinesis::default();
        api.pages
            .borrow_mut()
            .extend([page(&[], Some("a"), 500), page(&["0042"], Some("b"), 0)]);
        let earliest = earliest_sequence_number(&api, "s", "shardId-000000000000").unwrap();
        assert_eq!(earliest, Some(SequenceNumber::from_digits("42")));
        api.pages.borrow_mut().push_back(page(&[], Some("a"), 0));
        assert_eq!(earliest_sequence_number(&api, "s", "x").unwrap(), None);

        let closed = |id: &str, end: Option<&str>| ShardInfo {
            shard_id: id.into(),
            parent_shard_id: None,
            adjacent_parent_shard_id: None,
            hash_key_range: None,
            sequence_number_range: SequenceNumberRange {
                starting_sequence_number: "1".into(),
                ending_sequence_number: end.map(String::from),
            },
        };
        let api = FakeKinesis {
            shards: vec![closed("a", Some("9")), closed("b", None)],
            ..FakeKinesis::default()
        };
        assert!(shard_is_closed(&api, "s", "a").unwrap());
        assert!(!shard_is_closed(&api, "s", "b").unwrap());
    }
}
