//! The live record supplier: Kinesis read with aws-sdk-kinesis. One fetch
//! thread per shard (at most `fetchThreads`; a thread with several shards
//! takes them in turn), each owning its shard iterator and feeding its own
//! bounded channel, drained round-robin by the poll loop as the replay
//! supplier's are. Throttling and transient failures back off and retry
//! (the SDK's own retries are off, so these are ours); an expired iterator
//! is replaced by one after the last sequence number read.

use super::buffer::{FetchJob, MAX_SLOTS, RecordsPool, ShardBuffers, fetch_loop, work_queue};
use super::dump::{HashKeyRange, SequenceNumberRange, ShardInfo};
use super::{BatchEnd, RecordBatch, Records, SequenceNumber, ShardAssignment, normalize_decimal};
use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::{Credentials, Region};
use aws_sdk_kinesis::types::ShardIteratorType;
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
                            step.transpose()
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
            receivers, threads, stop, read_nanos, starter, pool,
        ))
    }
}

/// Exponential back-off with jitter, starting at the fetch delay (at least
/// 100 ms), capped at 10 s.
fn back_off(s: &mut ShardFetch, config: &KinesisConfig, why: &str) {
    let base = config.fetch_delay.max(Duration::from_millis(100));
    s.backoff = if s.backoff.is_zero() {
        base
    } else {
        (s.backoff * 2).min(MAX_BACKOFF)
    };
    // Jitter from the clock's low bits: enough to spread shards apart.
    let jitter = Instant::now().elapsed().subsec_nanos() as u64
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0));
    let wait = s.backoff + Duration::from_millis(jitter % (s.backoff.as_millis() as u64 / 2 + 1));
    log::warn!(
        "shard {}: {why}; backing off {} ms",
        s.assignment.shard_id,
        wait.as_millis()
    );
    std::thread::sleep(wait);
}

/// One step of a shard: the records of one GetRecords call (up to
/// recordsPerFetch) in batches of `batch`, None to try again, or a failure
/// that stops the task.
fn fetch(
    conn: &KinesisConnection,
    config: &KinesisConfig,
    pool: &RecordsPool,
    s: &mut ShardFetch,
    batch: usize,
) -> Result<Option<Vec<RecordBatch>>> {
    let shard_id = s.assignment.shard_id.clone();
    if s.iterator.is_none() {
        let mut req = conn
            .client
            .get_shard_iterator()
            .stream_name(&config.stream)
            .shard_id(&shard_id);
        req = match (&s.last, &s.assignment.start) {
            (Some(last), _) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(last.to_string()),
            (None, SequenceNumber::Number(n)) => req
                .shard_iterator_type(if s.assignment.exclusive {
                    ShardIteratorType::AfterSequenceNumber
                } else {
                    ShardIteratorType::AtSequenceNumber
                })
                .starting_sequence_number(n.to_string()),
            (None, SequenceNumber::UnreadLatest) => {
                req.shard_iterator_type(ShardIteratorType::Latest)
            }
            (None, _) => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        match conn.runtime.block_on(req.send()) {
            Ok(out) => s.iterator = out.shard_iterator,
            Err(e) => {
                let err = aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string();
                if retryable(&err) {
                    back_off(s, config, &format!("GetShardIterator: {err}"));
                    return Ok(None);
                }
                bail!("shard {shard_id}: GetShardIterator failed: {err}");
            }
        }
        if s.iterator.is_none() {
            // A closed shard read to its end has no iterator.
            return Ok(Some(vec![end_batch(s, BatchEnd::EndOfShard)]));
        }
    }
    let iterator = s.iterator.clone().expect("set above");
    let out = match conn.runtime.block_on(
        conn.client
            .get_records()
            .shard_iterator(iterator)
            .limit(config.records_per_fetch)
            .send(),
    ) {
        Ok(out) => out,
        Err(e) => {
            let err = aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string();
            if err.contains("ExpiredIteratorException") {
                log::warn!(
                    "shard {shard_id}: iterator expired; asking for a new one after {}",
                    s.last
                        .as_ref()
                        .map_or("the start".to_string(), |l| l.to_string())
                );
                s.iterator = None;
                return Ok(None);
            }
            if retryable(&err) {
                back_off(s, config, &format!("GetRecords: {err}"));
                return Ok(None);
            }
            bail!("shard {shard_id}: GetRecords failed: {err}");
        }
    };
    s.backoff = Duration::ZERO;
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
        let arrival_millis = r
            .approximate_arrival_timestamp
            .map(|t| t.to_millis().unwrap_or(0))
            .unwrap_or(0);
        let chunk = chunks.last_mut().expect("just ensured");
        chunk.push(sequence, arrival_millis, r.data.as_ref());
        if s.assignment.end != SequenceNumber::NoEnd
            && s.assignment.end.cmp_digits(sequence).is_le()
        {
            end = BatchEnd::Exhausted;
            break;
        }
    }
    s.iterator = out.next_shard_iterator;
    if end == BatchEnd::More && s.iterator.is_none() {
        end = BatchEnd::EndOfShard;
    }
    if chunks.is_empty() && end == BatchEnd::More {
        // Caught up: wait before asking again, as Kinesis asks of readers.
        std::thread::sleep(config.fetch_delay.max(IDLE_WAIT));
    } else if !config.fetch_delay.is_zero() {
        std::thread::sleep(config.fetch_delay);
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
                millis_behind: out.millis_behind_latest,
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

/// Throttling, server-side and network failures are worth retrying;
/// a bad request is not.
fn retryable(err: &str) -> bool {
    [
        "ProvisionedThroughputExceeded",
        "LimitExceeded",
        "Throttl",
        "InternalFailure",
        "ServiceUnavailable",
        "dispatch failure",
        "timeout",
        "io error",
        "connection",
        "Connection",
        "response error",
        "KMSThrottling",
    ]
    .iter()
    .any(|k| err.contains(k))
}

/// The sequence number of a shard's earliest record (TRIM_HORIZON), as
/// Druid looks it up: following iterators past empty pages (at most 20);
/// None when the shard holds no record.
pub fn earliest_sequence_number(
    conn: &KinesisConnection,
    stream: &str,
    shard: &str,
) -> Result<Option<SequenceNumber>> {
    let mut iterator = conn
        .runtime
        .block_on(
            conn.client
                .get_shard_iterator()
                .stream_name(stream)
                .shard_id(shard)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send(),
        )
        .map_err(|e| {
            anyhow!(
                "shard {shard}: GetShardIterator(TRIM_HORIZON): {}",
                aws_sdk_kinesis::error::DisplayErrorContext(&e)
            )
        })?
        .shard_iterator;
    for _ in 0..20 {
        let Some(it) = iterator else {
            return Ok(None);
        };
        let page = conn
            .runtime
            .block_on(conn.client.get_records().shard_iterator(it).limit(1).send())
            .map_err(|e| {
                anyhow!(
                    "shard {shard}: GetRecords(TRIM_HORIZON): {}",
                    aws_sdk_kinesis::error::DisplayErrorContext(&e)
                )
            })?;
        if let Some(r) = page.records.first() {
            return SequenceNumber::parse(&r.sequence_number)
                .map(Some)
                .map_err(|e| anyhow!("shard {shard}: {e}"));
        }
        if page.millis_behind_latest == Some(0) {
            // Caught up at the trim horizon: the shard is empty.
            return Ok(None);
        }
        iterator = page.next_shard_iterator;
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
pub fn shard_is_closed(conn: &KinesisConnection, stream: &str, shard: &str) -> Result<bool> {
    Ok(list_shards(conn, stream)?
        .iter()
        .any(|s| s.shard_id == shard && s.sequence_number_range.ending_sequence_number.is_some()))
}

/// Every shard of the stream as ListShards gives it (in the shape of a
/// dump's shards.json), following pages.
pub fn list_shards(conn: &KinesisConnection, stream: &str) -> Result<Vec<ShardInfo>> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = conn.client.list_shards();
        req = match &token {
            Some(t) => req.next_token(t),
            None => req.stream_name(stream),
        };
        let page = conn.runtime.block_on(req.send()).map_err(|e| {
            anyhow!(
                "ListShards {stream}: {}",
                aws_sdk_kinesis::error::DisplayErrorContext(&e)
            )
        })?;
        shards.extend(page.shards.unwrap_or_default().into_iter().map(|s| {
            ShardInfo {
                shard_id: s.shard_id,
                parent_shard_id: s.parent_shard_id,
                adjacent_parent_shard_id: s.adjacent_parent_shard_id,
                hash_key_range: s.hash_key_range.map(|h| HashKeyRange {
                    starting_hash_key: h.starting_hash_key,
                    ending_hash_key: h.ending_hash_key,
                }),
                sequence_number_range: SequenceNumberRange {
                    starting_sequence_number: s
                        .sequence_number_range
                        .as_ref()
                        .map(|r| r.starting_sequence_number.clone())
                        .unwrap_or_default(),
                    ending_sequence_number: s
                        .sequence_number_range
                        .and_then(|r| r.ending_sequence_number),
                },
            }
        }));
        token = page.next_token;
        if token.is_none() {
            return Ok(shards);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
