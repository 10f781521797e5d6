//! The runner: read every shard of each sequence, parse and index the rows,
//! build and push the segments, publish them with the end offsets, then
//! write the status and report files.

mod memory;
mod monitor;
mod pipeline;
mod publish;
mod report;
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
use serde_json::json;
use stats::{ErrorKind, ParseErrors, RowStats};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Set by SIGTERM or Ctrl-C (`request_stop`): the poll loop stops reading,
/// persists what it holds and the task ends without publishing.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ask a running task to stop: it persists what it holds and exits
/// without publishing (nothing it read is acknowledged, so a later run
/// reads it again).
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
        // Persists of an earlier, interrupted run are not restored (Druid
        // would restore them); the task reads its offsets again instead.
        let persist_root = self.layout.task_dir(&self.task.id).join("persist");
        if persist_root.exists() {
            std::fs::remove_dir_all(&persist_root)
                .with_context(|| format!("removing {}", persist_root.display()))?;
        }
        for (n, span) in r.sequences.iter().enumerate() {
            let persist_dir = persist_root.join(n.to_string());
            let (index, persisted, end) = self.ingest(dump.as_ref(), span, &persist_dir)?;
            self.publish(
                &index,
                persisted,
                span,
                end,
                &mut store,
                &storage,
                &lock_version,
            )?;
            if persist_dir.exists() {
                std::fs::remove_dir_all(&persist_dir)
                    .with_context(|| format!("removing {}", persist_dir.display()))?;
            }
        }
        Ok(())
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
        list_conn: &mut Option<crate::source::kinesis::ControlConnection>,
    ) -> Result<(Vec<ShardState>, ShardBuffers)> {
        let tuning = &self.task.tuning_config;
        let mut shards: Vec<ShardState> = shard_assignments(span)
            .into_iter()
            .map(|assignment| ShardState::new(assignment, Vec::new()))
            .collect();
        if !tuning.skip_sequence_number_availability_check {
            for s in &mut shards {
                self.check_start_available(dump, list_conn, &mut s.assignment)?;
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
        Ok((shards, supplier))
    }

    fn ingest(
        &mut self,
        dump: Option<&Dump>,
        span: &SequenceSpan,
        persist_dir: &Path,
    ) -> Result<(IncrementalIndex, PersistResult, StreamOffsets)> {
        let task = self.task;
        let r = &task.resolved;
        let tuning = &task.tuning_config;
        // Live reads ask Kinesis for new shards on this thread.
        let mut list_conn: Option<crate::source::kinesis::ControlConnection> = None;
        let (mut shards, mut supplier) = self.start_reading(dump, span, &mut list_conn)?;

        let Pipeline {
            mut parser,
            mut index,
            rows: mut stage,
        } = Pipeline::new(task);
        // Per-row columns sized for a full index up front (a cap keeps
        // huge maxRowsInMemory settings from reserving absurd address space).
        let reserve_rows = (tuning.max_rows_in_memory.max(0) as usize).min(1 << 22);
        index.reserve_rows(reserve_rows);
        let mut known_discovered = 0;
        let progress = Progress::new(self.opts.progress);
        let timing = self.opts.stage_timing;
        let mut persister = Persister::start(
            r.persist_index_spec.clone(),
            tuning.max_pending_persists as usize,
            self.metadata_json(),
        );
        let max_rows_in_memory = tuning.max_rows_in_memory as usize;
        let deaggregate = task.io_config.deaggregate;
        let comments = parser.comments();
        let max_bytes_in_memory = max_bytes_in_memory(tuning.max_bytes_in_memory);
        let persist_period = r.intermediate_persist_period.as_ref().and_then(|p| {
            p.fixed_millis()
                .map(|ms| Duration::from_millis(ms.max(1) as u64))
        });
        let mut last_persist = Instant::now();
        let mut persists = 0usize;

        let mut stopped = false;
        while let Some(batch) = supplier.poll() {
            if stop_requested() {
                stopped = true;
                break;
            }
            let batch = batch?;
            // Bench timing: parse per record, index as the rest of the batch.
            let batch_started = timing.then(Instant::now);
            let parse_before = self.stages.parse;
            let state = &mut shards[batch.shard];
            if let Some(lag) = batch.millis_behind {
                self.lag_millis
                    .insert(state.assignment.shard_id.clone(), lag);
            }
            if state.finished {
                continue;
            }
            // KPL aggregates unpacked and comments stripped up front: the
            // rows borrow from them.
            let unpacked: Vec<Result<Option<Vec<Vec<u8>>>, String>> =
                if deaggregate || comments.is_some() {
                    batch
                        .records
                        .iter()
                        .map(|r| entities_of(r.data, deaggregate, comments))
                        .collect()
                } else {
                    Vec::new()
                };
            let mut rows = RowBuffer::new();
            // The last record read in this batch; the shard's offset is
            // moved once, after the batch.
            let mut last_read: Option<&str> = None;
            // A batch's records are in order (the dump reader and the
            // Kinesis fetcher check it as they read them), so when its
            // first and last record are both to be processed, all are, and
            // only its first needs checking against the shard's offset.
            // Comparing every record's sequence number here, twice, was ~1%
            // of a replay's instructions, reading what another core wrote.
            let whole_batch = batch.records.last().is_some_and(|last| {
                state.assignment.admit(batch.records.get(0).sequence) == Admit::Process
                    && state.assignment.admit(last.sequence) == Admit::Process
            });
            for (record_index, record) in batch.records.iter().enumerate() {
                let admit = if whole_batch {
                    Admit::Process
                } else {
                    state.assignment.admit(record.sequence)
                };
                match admit {
                    Admit::Skip => continue,
                    Admit::Finish => {
                        state.finished = true;
                        break;
                    }
                    Admit::Process | Admit::ProcessAndFinish => {}
                }
                // The first record read of the batch follows the shard's offset.
                let not_after = last_read.is_none()
                    && state
                        .last_read
                        .as_ref()
                        .is_some_and(|last| last.cmp_digits(record.sequence).is_ge());
                if not_after {
                    let offset = state
                        .last_read
                        .as_ref()
                        .map_or(String::new(), |l| l.to_string());
                    bail!(
                        "shard {}: record {} is not after the current offset {offset}",
                        state.assignment.shard_id,
                        record.sequence,
                    );
                }
                last_read = Some(record.sequence);
                self.records += 1;
                state.records += 1;
                state.first_record.get_or_insert(self.records);
                state.last_record = Some(self.records);
                self.stats.processed_bytes += record.data.len() as u64;
                let shard_id = &state.assignment.shard_id;
                let at = || format!("shard {shard_id}, sequence number {}", record.sequence);
                // The entities of this record: itself, or its user records.
                let (whole, users): (Option<&[u8]>, &[Vec<u8>]) = match unpacked.get(record_index) {
                    None | Some(Ok(None)) => (Some(record.data), &[]),
                    Some(Ok(Some(users))) => (None, users),
                    Some(Err(e)) => {
                        let msg = format!("{}: {e}", at());
                        self.errors
                            .record(&mut self.stats, ErrorKind::Unparseable, msg)
                            .map_err(anyhow::Error::msg)?;
                        (None, &[])
                    }
                };
                for data in whole.into_iter().chain(users.iter().map(Vec::as_slice)) {
                    if data.is_empty() {
                        self.stats.thrown_away += 1;
                    } else {
                        // Bench timing samples one record in 128: two clock
                        // reads per record cost about 2% of a replay, one in
                        // 16 still ~0.5% (perf: __vdso_clock_gettime).
                        let t0 = (timing && self.records.is_multiple_of(PARSE_TIMING_SAMPLE))
                            .then(Instant::now);
                        let parsed = parser.parse(data, &mut rows);
                        if let Some(t0) = t0 {
                            self.stages.parse += t0.elapsed() * PARSE_TIMING_SAMPLE as u32;
                        }
                        if parser.fields.discovered_count() > known_discovered {
                            for (name, slot) in parser.fields.discovered_since(known_discovered) {
                                index.add_dimension(name, *slot);
                            }
                            known_discovered = parser.fields.discovered_count();
                        }
                        match parsed {
                            Err(e) => {
                                let msg = format!("{}: {e}", at());
                                self.errors
                                    .record(&mut self.stats, ErrorKind::Unparseable, msg)
                                    .map_err(anyhow::Error::msg)?;
                            }
                            Ok(()) => {
                                for row in rows.rows_mut() {
                                    let time = match stage.prepare(row) {
                                        RowFate::Index(t) => t,
                                        RowFate::ThrownAway(_) => {
                                            self.stats.thrown_away += 1;
                                            continue;
                                        }
                                        RowFate::Unparseable(e) => {
                                            let msg = format!("{}: {e}", at());
                                            self.errors
                                                .record(
                                                    &mut self.stats,
                                                    ErrorKind::Unparseable,
                                                    msg,
                                                )
                                                .map_err(anyhow::Error::msg)?;
                                            continue;
                                        }
                                    };
                                    let newest = self.counts.max_event_time.unwrap_or(i64::MIN);
                                    self.counts.max_event_time = Some(newest.max(time));
                                    let outcome = index.add(time, row);
                                    if outcome.conversion_errors > 0 {
                                        let why = index.first_error.take().unwrap_or_default();
                                        let msg = format!("{}: {why}", at());
                                        self.errors
                                            .record(
                                                &mut self.stats,
                                                ErrorKind::ProcessedWithError,
                                                msg,
                                            )
                                            .map_err(anyhow::Error::msg)?;
                                    } else {
                                        self.stats.processed += 1;
                                    }
                                }
                            }
                        }
                    }
                }
                if index.row_count() >= max_rows_in_memory
                    || index.bytes_in_memory() >= max_bytes_in_memory
                {
                    log::info!(
                        "intermediate persist {persists}: {} rows, about {} bytes in memory",
                        index.row_count(),
                        index.bytes_in_memory()
                    );
                    persister
                        .submit(index.take_frozen(), persist_dir.join(persists.to_string()))?;
                    index.reserve_rows(reserve_rows);
                    persists += 1;
                    last_persist = Instant::now();
                }
                if admit == Admit::ProcessAndFinish {
                    state.finished = true;
                    break;
                }
            }
            if let Some(last) = last_read {
                state.last_read = Some(SequenceNumber::from_digits(last));
            }
            if !state.finished {
                match batch.end {
                    BatchEnd::More
                        if self.opts.until_caught_up
                            && state.assignment.end == SequenceNumber::NoEnd
                            && batch.records.is_empty()
                            && batch.millis_behind == Some(0) =>
                    {
                        // A closed shard is read on to its end (its
                        // children start only then): see `shard_is_closed`.
                        if !state.closed && dump.is_none() {
                            let conn = self.control_connection(&mut list_conn)?;
                            state.closed = crate::source::kinesis::shard_is_closed(
                                conn,
                                &r.stream,
                                &state.assignment.shard_id,
                            )?;
                        }
                        if state.closed {
                            log::info!(
                                "shard {}: an empty page, but the shard is closed: reading on to its end",
                                state.assignment.shard_id
                            );
                        } else {
                            log::info!(
                                "shard {}: caught up after {} records",
                                state.assignment.shard_id,
                                state.records
                            );
                            state.finished = true;
                        }
                    }
                    BatchEnd::More => {
                        // An open-ended read says when a shard has caught
                        // up (once per catching up).
                        if dump.is_none()
                            && batch.records.is_empty()
                            && batch.millis_behind == Some(0)
                            && state.caught_up_at != Some(state.records)
                        {
                            state.caught_up_at = Some(state.records);
                            log::info!(
                                "shard {}: caught up after {} records",
                                state.assignment.shard_id,
                                state.records
                            );
                        }
                    }
                    BatchEnd::EndOfShard => {
                        state.finished = true;
                        state.reached_end_of_shard = true;
                    }
                    BatchEnd::Exhausted if state.assignment.end == SequenceNumber::NoEnd => {
                        state.finished = true
                    }
                    BatchEnd::Exhausted => bail!(
                        "shard {}: the dump ends at {} before the task's end sequence number {}",
                        state.assignment.shard_id,
                        state
                            .last_read
                            .as_ref()
                            .map_or("the start".to_string(), |s| s.to_string()),
                        state.assignment.end
                    ),
                }
            }
            if state.finished {
                supplier.close_shard(batch.shard);
            }
            if state.reached_end_of_shard {
                // Resharding: the children whose parents are all drained now.
                log::info!(
                    "shard {}: closed and read to its end ({} records)",
                    state.assignment.shard_id,
                    state.records
                );
                self.start_ready_children(dump, &mut list_conn, &mut shards, &mut supplier)?;
            }
            supplier.recycle(batch.records);
            if let Some(t0) = batch_started {
                self.stages.index += t0
                    .elapsed()
                    .saturating_sub(self.stages.parse - parse_before);
            }
            if let Some(period) = persist_period
                && last_persist.elapsed() >= period
            {
                if index.row_count() > 0 {
                    log::info!(
                        "intermediate persist {persists} (intermediatePersistPeriod): {} rows",
                        index.row_count()
                    );
                    persister
                        .submit(index.take_frozen(), persist_dir.join(persists.to_string()))?;
                    index.reserve_rows(reserve_rows);
                    persists += 1;
                }
                last_persist = Instant::now();
            }
            progress.tick(self.records, self.stats.processed_bytes);
            self.tick_metrics(&index, &persister);
        }
        progress.finish();
        if stopped {
            // What the index holds goes to disk beside the earlier persists.
            if index.row_count() > 0 {
                persister.submit(index.take_frozen(), persist_dir.join(persists.to_string()))?;
            }
            persister.finish()?;
            return Err(Stopped.into());
        }
        let persisted = persister.finish()?;
        self.stages.persist += persisted.busy;
        self.persists += persisted.persists;
        if let Some(s) = shards.iter().find(|s| !s.finished) {
            bail!(
                "shard {}: reading stopped before its end",
                s.assignment.shard_id
            );
        }
        self.stages.read += Duration::from_nanos(supplier.read_nanos());

        let end_of = |s: &ShardState| {
            if s.reached_end_of_shard {
                Some(SequenceNumber::EndOfShard)
            } else if s.parents.is_empty() {
                Some(
                    s.last_read
                        .clone()
                        .unwrap_or_else(|| s.assignment.start.clone()),
                )
            } else {
                // A child found while reading has no start offset to keep
                // until it has been read.
                s.last_read.clone()
            }
        };
        self.shard_reads.extend(shards.iter().map(|s| ShardRead {
            shard_id: s.assignment.shard_id.clone(),
            parents: s.parents.clone(),
            records: s.records,
            first_record: s.first_record,
            last_record: s.last_record,
            end: end_of(s).map_or_else(|| "-".to_string(), |e| e.to_string()),
        }));
        let end = StreamOffsets {
            stream: r.stream.clone(),
            offsets: shards
                .iter()
                .filter_map(|s| Some((s.assignment.shard_id.clone(), end_of(s)?)))
                .collect(),
            exclusive: Vec::new(),
        };
        Ok((index, persisted, end))
    }
}

/// Bench timing: the parse stage is timed on one record in this many.
const PARSE_TIMING_SAMPLE: u64 = 128;

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
