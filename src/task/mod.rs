//! The runner: read every shard of each sequence, parse and index the rows,
//! build and push the segments, publish them with the end offsets, then
//! write the status and report files.

mod ingest;
mod memory;
mod monitor;
mod pipeline;
mod publish;
pub use publish::METADATA_TRIES_VAR;
mod report;
mod restore;
pub mod sample;
mod shards;
mod stats;

pub(crate) use pipeline::entities_of;
pub use pipeline::{Pipeline, RowFate, RowStage};
pub(crate) use shards::shard_assignments;

use crate::index::{IncrementalIndex, MetricInput};
use crate::input::expr::Expr;
use crate::input::filter::Filter;
use crate::input::timestamp::TimestampParser;
use crate::input::transform::Transforms;
use crate::input::{RowBuffer, RowParser, Value};
use crate::persist::merge::{MemoryInput, MergeInput, MergePlan, SpillInput, merge};
use crate::persist::{PersistResult, Persister, dimension_orders, sink_to_segment};
use crate::publish::{DataSegment, MetadataStore, PublishOutcome, ShardSpec, StreamOffsets};
use crate::segment::SegmentData;
use crate::segment::writer::{SegmentFileSet, build_segment};
use crate::source::buffer::ShardBuffers;
use crate::source::dump::Dump;
use crate::source::kinesis::{KinesisConfig, KinesisOptions, KinesisSupplier};
use crate::source::kpl;
use crate::source::replay::{ReplayOptions, ReplaySupplier};
use crate::source::{Admit, BatchEnd, SequenceNumber, ShardAssignment};
use crate::spec::time::{format_interval, format_iso};
use crate::spec::{
    AggregatorKind, DimensionType, LoadedTask, NumType, SequenceSpan, Task, load_task,
};
use crate::storage::layout::SegmentPlace;
use crate::storage::{DeepStorage, Location};
use anyhow::{Context, Result, anyhow, bail};
use ingest::{HandoffRules, IngestEnd, SequenceBuild};
use serde_json::json;
use stats::{ErrorKind, ParseErrors, RowStats};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Set by SIGTERM or Ctrl-C (`request_stop`): the poll loop stops reading,
/// persists what it holds and the task ends without publishing.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ask a running task to stop: it persists what it holds, saves where it
/// stands (`restore.rs`) and exits without publishing; the next run of the
/// task restores that and reads on.
pub fn request_stop() {
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
}

fn stop_requested() -> bool {
    STOP.load(std::sync::atomic::Ordering::SeqCst)
}

/// The error that ends a task stopped on request; `run` reports it as a
/// stop, not a failure.
#[derive(Debug, thiserror::Error)]
#[error("stopped on request before publishing")]
struct Stopped;

/// Where a local run keeps its files, laid out like Druid's quickstart `var/`.
pub struct Layout {
    pub base: PathBuf,
}

impl Layout {
    pub fn deep_storage(&self) -> PathBuf {
        self.base.join("druid/segments")
    }
    pub fn metadata_db(&self) -> PathBuf {
        self.base.join("druid/metadata.sqlite")
    }
    pub fn task_dir(&self, task_id: &str) -> PathBuf {
        self.base.join("druid/task").join(task_id)
    }
}

pub struct RunOptions {
    pub task_file: PathBuf,
    /// A recorded dump to replay; None reads the live stream the task names.
    pub dump: Option<PathBuf>,
    /// Runtime properties (`druid.kinesis.accessKey`, ...).
    pub properties: std::collections::BTreeMap<String, String>,
    pub base_dir: PathBuf,
    pub progress: bool,
    /// Time parse and index per row (bench only: it costs a little).
    pub stage_timing: bool,
    /// Live reads: a shard without an end sequence number is done once a
    /// GetRecords call finds nothing new and MillisBehindLatest is 0.
    pub until_caught_up: bool,
    /// A live read prints each metrics emission to stdout (`--print-metrics`).
    pub print_metrics: bool,
}

/// How one shard was read, for the run summary.
#[derive(Debug, Clone)]
pub struct ShardRead {
    pub shard_id: String,
    /// For a child of resharding picked up while reading: its parents.
    pub parents: Vec<String>,
    pub records: u64,
    /// Where its first and last records came among all the records the
    /// task read (1-based).
    pub first_record: Option<u64>,
    pub last_record: Option<u64>,
    /// The last sequence number read, or EOS for a closed shard read to its end.
    pub end: String,
}

/// Time spent per pipeline stage.
#[derive(Debug, Default, Clone, Copy)]
pub struct StageTimes {
    pub read: Duration,
    pub parse: Duration,
    pub index: Duration,
    pub persist: Duration,
    pub push: Duration,
    pub publish: Duration,
}

#[derive(Debug, Clone)]
pub struct PublishedSegment {
    pub segment: DataSegment,
    pub location: Location,
    pub rows: usize,
}

pub struct RunSummary {
    pub task_id: String,
    pub records: u64,
    /// Of `records`, those an earlier, stopped run read and persisted
    /// (restored, not read again).
    pub restored_records: u64,
    /// Open-ended live reads: sequences published before the last one
    /// (maxRowsPerSegment, maxTotalRows, intermediateHandoffPeriod).
    pub handoffs: usize,
    pub stats: RowStats,
    pub rows_out: u64,
    pub segments: Vec<PublishedSegment>,
    pub already_published: bool,
    /// Intermediate persists written (over all sequences).
    pub persists: usize,
    /// Live reads: each shard's last MillisBehindLatest.
    pub lag_millis: std::collections::BTreeMap<String, i64>,
    /// Every shard read, in the order reading started.
    pub shards: Vec<ShardRead>,
    pub wall: Duration,
    pub stages: StageTimes,
    pub status_file: PathBuf,
    pub report_file: PathBuf,
    pub saved_errors: Vec<String>,
    pub error: Option<String>,
    /// Stopped on request (SIGTERM, Ctrl-C): what was read is persisted,
    /// nothing published, no status file written (the task did not end).
    pub stopped: bool,
    /// Druid's ingestion metrics summed over the run (docs/metrics.md).
    pub metrics: Vec<crate::metrics::Event>,
}

/// Run a task against a dump; always writes the status and report files.
/// Errors before the task file is understood are returned as Err.
pub fn run(opts: &RunOptions) -> Result<RunSummary> {
    let bytes = std::fs::read(&opts.task_file)
        .with_context(|| format!("reading task {}", opts.task_file.display()))?;
    let LoadedTask { task, warnings } = load_task(&bytes)
        .map_err(|e| anyhow!("{}: invalid task:\n{e}", opts.task_file.display()))?;
    for w in warnings {
        log::warn!("{w}");
    }
    let layout = Layout {
        base: opts.base_dir.clone(),
    };
    let task_dir = layout.task_dir(&task.id);
    let metrics = monitor::start_metrics(&task, opts)?;
    let mut runner = Runner {
        task: &task,
        opts,
        layout: &layout,
        stats: RowStats::default(),
        errors: ParseErrors::new(
            task.resolved.max_parse_exceptions,
            task.resolved.max_saved_parse_exceptions,
            task.tuning_config.log_parse_exceptions,
        ),
        stages: StageTimes::default(),
        records: 0,
        restored_records: 0,
        handoffs: 0,
        rows_out: 0,
        segments: Vec::new(),
        already_published: false,
        persists: 0,
        lag_millis: Default::default(),
        shard_reads: Vec::new(),
        started: Instant::now(),
        metrics,
        counts: Default::default(),
    };
    let result = runner.run_all();
    let metrics = runner.finish_metrics();
    let stopped = result
        .as_ref()
        .is_err_and(|e| e.downcast_ref::<Stopped>().is_some());
    let error = result.err().filter(|_| !stopped).map(|e| format!("{e:#}"));
    if let Some(e) = &error {
        log::error!("task {} failed: {e}", task.id);
    }
    let saved: Vec<String> = runner.errors.saved.iter().cloned().collect();
    let status_file = task_dir.join("status.json");
    let report_file = task_dir.join("report.json");
    if stopped {
        log::warn!(
            "task {}: stopped on request; {} records read and persisted under {}, nothing published (a later run reads them again)",
            task.id,
            runner.records,
            task_dir.join("persist").display()
        );
    }
    if !stopped {
        report::write_files(
            &status_file,
            &report_file,
            &report::status_json(&task.id, error.as_deref()),
            &report::report_json(
                &task.id,
                &runner.stats,
                runner.errors.keeps_reports().then(|| saved.clone()),
                error.as_deref(),
            ),
        )?;
    }
    Ok(RunSummary {
        task_id: task.id.clone(),
        records: runner.records,
        restored_records: runner.restored_records,
        handoffs: runner.handoffs,
        stats: runner.stats,
        rows_out: runner.rows_out,
        segments: runner.segments,
        already_published: runner.already_published,
        persists: runner.persists,
        lag_millis: runner.lag_millis,
        shards: runner.shard_reads,
        wall: runner.started.elapsed(),
        stages: runner.stages,
        status_file,
        report_file,
        saved_errors: saved,
        error,
        stopped,
        metrics,
    })
}

struct Runner<'a> {
    task: &'a Task,
    opts: &'a RunOptions,
    layout: &'a Layout,
    stats: RowStats,
    errors: ParseErrors,
    stages: StageTimes,
    records: u64,
    /// Of `records`, those a stopped run read and persisted.
    restored_records: u64,
    handoffs: usize,
    rows_out: u64,
    segments: Vec<PublishedSegment>,
    already_published: bool,
    persists: usize,
    lag_millis: std::collections::BTreeMap<String, i64>,
    shard_reads: Vec<ShardRead>,
    started: Instant,
    metrics: crate::metrics::TaskMetrics,
    counts: monitor::Counts,
}

/// Per-shard reading state of one sequence.
struct ShardState {
    assignment: ShardAssignment,
    /// Set for a child of resharding started after these parents were drained.
    parents: Vec<String>,
    last_read: Option<SequenceNumber>,
    reached_end_of_shard: bool,
    /// ListShards showed it closed (so an empty page does not end it).
    closed: bool,
    finished: bool,
    records: u64,
    first_record: Option<u64>,
    last_record: Option<u64>,
    /// Live reads: the record count when the shard was last seen caught up.
    caught_up_at: Option<u64>,
}

impl ShardState {
    fn new(assignment: ShardAssignment, parents: Vec<String>) -> ShardState {
        ShardState {
            assignment,
            parents,
            last_read: None,
            reached_end_of_shard: false,
            closed: false,
            finished: false,
            records: 0,
            first_record: None,
            last_record: None,
            caught_up_at: None,
        }
    }

    /// Where the shard stands: EOS once read to its end, else its last
    /// record read, else its start. A child of resharding found while
    /// reading has no offset until it is read.
    fn offset(&self) -> Option<SequenceNumber> {
        if self.reached_end_of_shard {
            Some(SequenceNumber::EndOfShard)
        } else if self.parents.is_empty() {
            Some(
                self.last_read
                    .clone()
                    .unwrap_or_else(|| self.assignment.start.clone()),
            )
        } else {
            self.last_read.clone()
        }
    }

    fn summary(&self) -> ShardRead {
        ShardRead {
            shard_id: self.assignment.shard_id.clone(),
            parents: self.parents.clone(),
            records: self.records,
            first_record: self.first_record,
            last_record: self.last_record,
            end: self
                .offset()
                .map_or_else(|| "-".to_string(), |e| e.to_string()),
        }
    }
}

/// The sequence after a handoff: from the offsets just published to the
/// task's end, named as Druid names the next sequence. A shard that has
/// read a record starts after it; one that has not keeps its start.
fn next_sequence(
    task: &Task,
    span: &SequenceSpan,
    published: &StreamOffsets,
    reading: &ingest::Reading,
) -> SequenceSpan {
    let base = task.base_sequence_name();
    let id = span
        .name
        .strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('_'))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let exclusive = reading
        .shards
        .iter()
        .filter(|s| {
            s.last_read.is_some()
                || s.reached_end_of_shard
                || span.exclusive.contains(&s.assignment.shard_id)
        })
        .map(|s| s.assignment.shard_id.clone())
        .collect();
    SequenceSpan {
        name: format!("{base}_{}", id + 1),
        start: published.offsets.clone(),
        exclusive,
        end: span.end.clone(),
    }
}

impl Runner<'_> {
    fn run_all(&mut self) -> Result<()> {
        check_supported(self.task)?;
        let storage =
            DeepStorage::from_properties(&self.opts.properties, &self.layout.deep_storage())?;
        let r = &self.task.resolved;
        let dump = match &self.opts.dump {
            Some(path) => {
                let dump = Dump::open(path)?;
                if !dump.shards.stream_name.is_empty() && dump.shards.stream_name != r.stream {
                    log::warn!(
                        "the dump records stream {:?}; the task reads {:?}",
                        dump.shards.stream_name,
                        r.stream
                    );
                }
                Some(dump)
            }
            None => None,
        };
        let mut store =
            MetadataStore::from_properties(&self.opts.properties, &self.layout.metadata_db())?;
        // The task lock's version: segments of chunks without used segments get it.
        let lock_version = format_iso(chrono::Utc::now().timestamp_millis());
        let persist_root = self.layout.task_dir(&self.task.id).join("persist");
        let mut saved = restore::take(&persist_root, &self.task.id)?;
        if let Some(s) = &saved {
            self.restore_counts(s);
        }
        let first = saved.as_ref().map_or(0, |s| s.span_index);
        for n in first..r.sequences.len() {
            let saved = saved.take();
            let mut span = match &saved {
                Some(s) => s.span()?,
                None => r.sequences[n].clone(),
            };
            // Only the last sequence can be open-ended; read live, it is
            // handed off as Druid's checkpoints would, the runner playing
            // the supervisor's part. A replay keeps one sequence (its
            // segments are cut by maxRowsPerSegment when merged), so the
            // same dump gives the same segments whatever the timing.
            let handoff = (dump.is_none()
                && n + 1 == r.sequences.len()
                && shard_assignments(&span)
                    .iter()
                    .any(|a| a.end == SequenceNumber::NoEnd))
            .then(|| HandoffRules::of(self.task));
            let resumed = saved.as_ref().map(|s| s.shard_states()).transpose()?;
            let mut reading = self.start_reading(dump.as_ref(), &span, resumed)?;
            let mut persist_dir = match &saved {
                Some(s) => persist_root.join(&s.persist_dir),
                None => persist_root.join(n.to_string()),
            };
            let mut spills = saved.map(|s| s.spills(&persist_root));
            let mut handoffs = 0;
            loop {
                let mut build = SequenceBuild::new(
                    self.task,
                    self.metadata_json(),
                    persist_dir.clone(),
                    spills.take(),
                );
                let ended = self.ingest(dump.as_ref(), &mut reading, &mut build, handoff)?;
                if ended == IngestEnd::Stopped {
                    build.persist_all()?;
                    let persists = build.persists;
                    let (_, discovered, persisted) = build.finish()?;
                    let state = restore::StopState {
                        span_index: n,
                        persist_dir: &persist_dir,
                        span: &span,
                        reading: &reading,
                        discovered,
                        persisted: &persisted,
                        persists,
                    };
                    let saved = restore::SavedRun::of(
                        &self.task.id,
                        &persist_root,
                        &state,
                        self.records,
                        self.stats,
                        self.errors.saved.iter().cloned().collect(),
                    )?;
                    restore::save(&persist_root, &saved, &persisted.spills)?;
                    return Err(Stopped.into());
                }
                let (index, _, persisted) = build.finish()?;
                self.stages.persist += persisted.busy;
                self.persists += persisted.persists;
                let end = reading.offsets(&r.stream);
                self.publish_retrying(
                    &index,
                    &persisted,
                    &span,
                    &end,
                    &mut store,
                    &storage,
                    &lock_version,
                )?;
                restore::forget(&persist_root)?;
                if persist_dir.exists() {
                    std::fs::remove_dir_all(&persist_dir)
                        .with_context(|| format!("removing {}", persist_dir.display()))?;
                }
                if ended == IngestEnd::Finished {
                    break;
                }
                handoffs += 1;
                self.handoffs += 1;
                span = next_sequence(self.task, &span, &end, &reading);
                persist_dir = persist_root.join(format!("{n}.{handoffs}"));
                log::info!(
                    "handed off; reading on in sequence {} from {}",
                    span.name,
                    end.describe()
                );
            }
            self.stages.read += Duration::from_nanos(reading.supplier.read_nanos());
            self.shard_reads
                .extend(reading.shards.iter().map(ShardState::summary));
        }
        Ok(())
    }

    /// A restored run starts from the counts of the run that stopped.
    fn restore_counts(&mut self, saved: &restore::SavedRun) {
        log::info!(
            "restoring the stopped run: {} records already read and persisted ({} spills); reading on from the saved offsets",
            saved.records,
            saved.spills.len()
        );
        self.records = saved.records;
        self.restored_records = saved.records;
        self.stats = saved.row_stats;
        self.errors.saved = saved.saved_parse_exceptions.iter().cloned().collect();
        let emitted = self.metrics_snapshot(None);
        self.metrics.restored_from(&emitted);
    }

    /// How to reach the task's stream.
    fn kinesis_config(&self) -> KinesisConfig {
        let io = &self.task.io_config;
        let prop = |k: &str| self.opts.properties.get(k).cloned();
        KinesisConfig {
            endpoint: io.endpoint.clone(),
            stream: self.task.resolved.stream.clone(),
            static_credentials: prop("druid.kinesis.accessKey")
                .zip(prop("druid.kinesis.secretKey")),
            assumed_role: io
                .aws_assumed_role_arn
                .clone()
                .filter(|r| !r.is_empty())
                .map(|r| (r, io.aws_external_id.clone())),
            records_per_fetch: io.records_per_fetch.clamp(1, 10_000) as i32,
            fetch_delay: Duration::from_millis(io.fetch_delay_millis.max(0) as u64),
            retry_timeout: Duration::from_millis(
                self.task.tuning_config.fetch_sequence_number_timeout.max(1) as u64,
            ),
        }
    }

    /// metadata.drd of every segment of the task.
    fn metadata_json(&self) -> serde_json::Value {
        let task = self.task;
        let r = &task.resolved;
        json!({
            "container": {},
            "aggregators": r.aggregators.iter().map(|a| a.combining_json()).collect::<Vec<_>>(),
            "timestampSpec": {"column": r.timestamp.column, "format": r.timestamp.format, "missingValue": r.timestamp.missing_value},
            "queryGranularity": task.query_granularity().to_json(),
            "rollup": task.data_schema.granularity_spec.rollup,
        })
    }

    /// The one start-up path of replay and live reads: each shard's
    /// assignment (its start checked against the earliest record unless
    /// skipSequenceNumberAvailabilityCheck), then the supplier that reads
    /// them, from the dump when there is one, else from Kinesis.
    fn start_reading(
        &self,
        dump: Option<&Dump>,
        span: &SequenceSpan,
        resumed: Option<Vec<ShardState>>,
    ) -> Result<ingest::Reading> {
        let tuning = &self.task.tuning_config;
        let mut list_conn = None;
        let mut shards: Vec<ShardState> = match resumed {
            Some(shards) => shards,
            None => shard_assignments(span)
                .into_iter()
                .map(|assignment| ShardState::new(assignment, Vec::new()))
                .collect(),
        };
        if !tuning.skip_sequence_number_availability_check {
            for s in shards.iter_mut().filter(|s| !s.finished) {
                self.check_start_available(dump, &mut list_conn, &mut s.assignment)?;
            }
        }
        let assignments: Vec<ShardAssignment> =
            shards.iter().map(|s| s.assignment.clone()).collect();
        let fetch_threads = tuning
            .fetch_threads
            .map(|n| n as usize)
            .unwrap_or(assignments.len())
            .max(1);
        let supplier = match dump {
            Some(dump) => ReplaySupplier::start(
                dump,
                &assignments,
                &ReplayOptions {
                    batch_records: tuning.max_records_per_poll as usize,
                    buffer_records: tuning.record_buffer_size as usize,
                    fetch_threads,
                },
            )?,
            None => KinesisSupplier::start(
                &self.kinesis_config(),
                &assignments,
                &KinesisOptions {
                    batch_records: tuning.max_records_per_poll as usize,
                    buffer_records: tuning.record_buffer_size as usize,
                    fetch_threads,
                },
            )?,
        };
        let mut supplier = supplier;
        // A restored shard that was done stays done.
        for (position, s) in shards.iter().enumerate() {
            if s.finished {
                supplier.close_shard(position);
            }
        }
        Ok(ingest::Reading {
            shards,
            supplier,
            list_conn,
        })
    }
}

/// Refuse, up front and by name, what this build cannot compute yet: past
/// `load_task`, the one check `run`, `validate` and `sample` share, so
/// that none accepts a task another refuses.
pub fn check_supported(task: &Task) -> Result<()> {
    let r = &task.resolved;
    for (i, a) in r.aggregators.iter().enumerate() {
        if let AggregatorKind::Unsupported(t) = &a.kind {
            bail!(
                "dataSchema.metricsSpec[{i}]: aggregator type {t:?} is not supported by this build yet"
            );
        }
    }
    Ok(())
}

/// maxBytesInMemory as Druid reads it: -1 unlimited, 0 the default. Druid's
/// default is a sixth of the JVM heap; with no heap, a sixth of the memory
/// the process may use (its cgroup's limit, else the machine's) stands in.
fn max_bytes_in_memory(configured: i64) -> usize {
    match configured {
        -1 => usize::MAX,
        n if n > 0 => n as usize,
        _ => {
            let limit = memory::MemorySources::of_this_process().limit();
            let bytes = (limit.unwrap_or(4 << 30) / 6) as usize;
            log::info!(
                "maxBytesInMemory 0: {bytes} bytes, a sixth of {limit:?} bytes the process may use"
            );
            bytes
        }
    }
}

/// A progress bar on a terminal, a log line every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    last_log: std::cell::Cell<Instant>,
}

impl Progress {
    fn new(terminal: bool) -> Progress {
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar
        });
        Progress {
            bar,
            started: Instant::now(),
            last_log: std::cell::Cell::new(Instant::now()),
        }
    }

    fn tick(&self, records: u64, bytes: u64) {
        let now = Instant::now();
        if now.duration_since(self.last_log.get())
            < Duration::from_millis(if self.bar.is_some() { 100 } else { 5000 })
        {
            return;
        }
        self.last_log.set(now);
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let msg = format!(
            "{records} records, {:.1} MB/s, {:.0} records/s",
            bytes as f64 / 1e6 / secs,
            records as f64 / secs
        );
        match &self.bar {
            Some(bar) => bar.set_message(msg),
            None => log::info!("read {msg}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Resolve `path` against the base directory layout (for tests and tools).
pub fn layout_for(base: &Path) -> Layout {
    Layout {
        base: base.to_path_buf(),
    }
}
