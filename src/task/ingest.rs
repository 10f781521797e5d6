//! The runner's poll loop, one sequence at a time: take batches from the
//! shards, parse and index their records, persist when memory or time says
//! so, and return when the sequence has nothing left to read, a handoff is
//! due (an open-ended sequence that grew past maxRowsPerSegment or
//! maxTotalRows, or lived past intermediateHandoffPeriod) or a stop was
//! asked for.

use super::*;
use crate::persist::Spill;
use crate::source::RecordBatch;
use crate::source::kinesis::ControlConnection;
use std::collections::BTreeMap;

/// The shards being read and the supplier reading them. It outlives a
/// sequence: after a handoff the next sequence reads on from the same
/// supplier, so no record is fetched twice.
pub(super) struct Reading {
    pub shards: Vec<ShardState>,
    pub supplier: ShardBuffers,
    /// Live reads ask Kinesis for new shards on the poll thread.
    pub list_conn: Option<ControlConnection>,
}

impl Reading {
    /// Where each shard stands: its last record read, EOS for a closed
    /// shard read to its end, its start while nothing was read. A child of
    /// resharding found while reading has no offset until it is read.
    pub fn offsets(&self, stream: &str) -> StreamOffsets {
        StreamOffsets {
            stream: stream.to_string(),
            offsets: self
                .shards
                .iter()
                .filter_map(|s| Some((s.assignment.shard_id.clone(), s.offset()?)))
                .collect(),
            exclusive: Vec::new(),
        }
    }
}

/// Why `ingest` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IngestEnd {
    /// Every shard of the sequence is read to its end.
    Finished,
    /// The open-ended sequence is to be published at the current offsets
    /// and reading goes on in a new one.
    Handoff,
    /// A stop was requested: persist, publish nothing.
    Stopped,
}

/// When an open-ended sequence is handed off (Druid's checkpoint
/// triggers; the runner plays the supervisor's part and ends the sequence
/// at the current offsets).
#[derive(Debug, Clone, Copy)]
pub(super) struct HandoffRules {
    pub max_rows_per_segment: usize,
    pub max_total_rows: usize,
    pub period: Option<Duration>,
}

/// Druid's checkpoint trigger uses this when maxTotalRows is unset
/// (DynamicPartitionsSpec.DEFAULT_MAX_TOTAL_ROWS).
const DEFAULT_MAX_TOTAL_ROWS: usize = 20_000_000;

impl HandoffRules {
    pub fn of(task: &Task) -> HandoffRules {
        let tuning = &task.tuning_config;
        HandoffRules {
            max_rows_per_segment: tuning.max_rows_per_segment.max(1) as usize,
            max_total_rows: tuning
                .max_total_rows
                .map_or(DEFAULT_MAX_TOTAL_ROWS, |n| n.max(1) as usize),
            period: task
                .resolved
                .intermediate_handoff_period
                .as_ref()
                .and_then(|p| p.fixed_millis())
                .map(|ms| Duration::from_millis(ms.max(1) as u64)),
        }
    }
}

/// What one sequence builds: the row path, the persist thread and the
/// counts that decide persists and handoff.
pub(super) struct SequenceBuild {
    pub pipeline: Pipeline,
    persister: Persister,
    pub persist_dir: PathBuf,
    /// Persists started for this sequence, restored ones included (each
    /// writes to `persist_dir/<n>`).
    pub persists: usize,
    /// Spills of an earlier, stopped run of this sequence.
    restored: Vec<Spill>,
    /// Rows persisted per interval, for maxRowsPerSegment.
    persisted_rows: BTreeMap<(i64, i64), usize>,
    known_discovered: usize,
    last_persist: Instant,
    started: Instant,
    /// Records read into this sequence by this process.
    pub records: u64,
    reserve_rows: usize,
    max_rows_in_memory: usize,
    max_bytes_in_memory: usize,
    persist_period: Option<Duration>,
}

impl SequenceBuild {
    pub fn new(
        task: &Task,
        metadata: serde_json::Value,
        persist_dir: PathBuf,
        restored: Option<restore::RestoredSpills>,
    ) -> SequenceBuild {
        let tuning = &task.tuning_config;
        let mut pipeline = Pipeline::new(task);
        // Per-row columns sized for a full index up front (a cap keeps
        // huge maxRowsInMemory settings from reserving absurd address space).
        let reserve_rows = (tuning.max_rows_in_memory.max(0) as usize).min(1 << 22);
        pipeline.index.reserve_rows(reserve_rows);
        let restored = restored.unwrap_or_default();
        // Discovered dimensions come back in the order first seen, so the
        // merge knows every column the restored spills hold.
        for name in &restored.discovered {
            pipeline.parser.fields.column_slot(name);
        }
        let mut known_discovered = 0;
        for (name, slot) in pipeline.parser.fields.discovered_since(0) {
            pipeline.index.add_dimension(name, *slot);
            known_discovered += 1;
        }
        let mut persisted_rows = BTreeMap::new();
        for spill in &restored.spills {
            *persisted_rows.entry(spill.interval).or_default() += spill.rows;
        }
        SequenceBuild {
            pipeline,
            persister: Persister::start(
                task.resolved.persist_index_spec.clone(),
                tuning.max_pending_persists as usize,
                metadata,
            ),
            persist_dir,
            persists: restored.persists,
            restored: restored.spills,
            persisted_rows,
            known_discovered,
            last_persist: Instant::now(),
            started: Instant::now(),
            records: 0,
            reserve_rows,
            max_rows_in_memory: tuning.max_rows_in_memory as usize,
            max_bytes_in_memory: max_bytes_in_memory(tuning.max_bytes_in_memory),
            persist_period: task
                .resolved
                .intermediate_persist_period
                .as_ref()
                .and_then(|p| {
                    p.fixed_millis()
                        .map(|ms| Duration::from_millis(ms.max(1) as u64))
                }),
        }
    }

    /// Hand what the index holds to the persist thread.
    fn persist(&mut self, why: &str) -> Result<()> {
        let index = &mut self.pipeline.index;
        log::info!(
            "intermediate persist {} ({why}): {} rows, about {} bytes in memory",
            self.persists,
            index.row_count(),
            index.bytes_in_memory()
        );
        for sink in &index.sinks {
            *self
                .persisted_rows
                .entry((sink.interval_start, sink.interval_end))
                .or_default() += sink.rows.len();
        }
        self.persister.submit(
            index.take_frozen(),
            self.persist_dir.join(self.persists.to_string()),
        )?;
        index.reserve_rows(self.reserve_rows);
        self.persists += 1;
        self.last_persist = Instant::now();
        Ok(())
    }

    fn memory_full(&self) -> bool {
        let index = &self.pipeline.index;
        index.row_count() >= self.max_rows_in_memory
            || index.bytes_in_memory() >= self.max_bytes_in_memory
    }

    /// intermediatePersistPeriod: persist what is held at least this often.
    fn persist_if_due(&mut self) -> Result<()> {
        if let Some(period) = self.persist_period
            && self.last_persist.elapsed() >= period
        {
            if self.pipeline.index.row_count() > 0 {
                self.persist("intermediatePersistPeriod")?;
            }
            self.last_persist = Instant::now();
        }
        Ok(())
    }

    /// Whether the open-ended sequence should be handed off now, and why.
    fn handoff_due(&self, rules: &HandoffRules) -> Option<String> {
        // Checked after every batch: counted in place, no map built (the
        // index holds one sink per interval).
        let sinks = &self.pipeline.index.sinks;
        let largest = sinks
            .iter()
            .map(|s| {
                let persisted = self.persisted_rows.get(&(s.interval_start, s.interval_end));
                persisted.copied().unwrap_or(0) + s.rows.len()
            })
            .chain(self.persisted_rows.values().copied())
            .max()
            .unwrap_or(0);
        let total = self.persisted_rows.values().sum::<usize>()
            + sinks.iter().map(|s| s.rows.len()).sum::<usize>();
        if largest >= rules.max_rows_per_segment {
            return Some(format!(
                "a segment holds {largest} rows, maxRowsPerSegment {}",
                rules.max_rows_per_segment
            ));
        }
        if total >= rules.max_total_rows {
            return Some(format!(
                "{total} rows held, maxTotalRows {}",
                rules.max_total_rows
            ));
        }
        match rules.period {
            Some(period) if self.records > 0 && self.started.elapsed() >= period => Some(format!(
                "intermediateHandoffPeriod {} ms passed",
                period.as_millis()
            )),
            _ => None,
        }
    }

    /// Persist what the index holds (a stop: nothing stays only in memory).
    pub fn persist_all(&mut self) -> Result<()> {
        if self.pipeline.index.row_count() > 0 {
            self.persist("stopping")?;
        }
        Ok(())
    }

    /// Wait for the persist thread: the index and every spill of the
    /// sequence, restored ones first.
    pub fn finish(self) -> Result<(IncrementalIndex, Vec<String>, PersistResult)> {
        let mut persisted = self.persister.finish()?;
        let mut spills = self.restored;
        spills.append(&mut persisted.spills);
        persisted.spills = spills;
        let discovered = self
            .pipeline
            .parser
            .fields
            .discovered_since(0)
            .iter()
            .map(|(name, _)| name.clone())
            .collect();
        Ok((self.pipeline.index, discovered, persisted))
    }
}

impl Runner<'_> {
    /// Read one sequence until it ends, a handoff is due (`handoff` set for
    /// an open-ended sequence) or a stop was requested.
    pub(super) fn ingest(
        &mut self,
        dump: Option<&Dump>,
        reading: &mut Reading,
        build: &mut SequenceBuild,
        handoff: Option<HandoffRules>,
    ) -> Result<IngestEnd> {
        let progress = Progress::new(self.opts.progress);
        let timing = self.opts.stage_timing;
        while let Some(batch) = reading.supplier.poll() {
            if stop_requested() {
                progress.finish();
                return Ok(IngestEnd::Stopped);
            }
            let batch = batch?;
            // Bench timing: parse per record, index as the rest of the batch.
            let batch_started = timing.then(Instant::now);
            let parse_before = self.stages.parse;
            let state = &mut reading.shards[batch.shard];
            if let Some(lag) = batch.millis_behind {
                self.lag_millis
                    .insert(state.assignment.shard_id.clone(), lag);
            }
            if !state.finished {
                self.index_batch(&batch, state, build)?;
                self.after_batch(dump, reading, &batch)?;
            }
            reading.supplier.recycle(batch.records);
            if let Some(t0) = batch_started {
                self.stages.index += t0
                    .elapsed()
                    .saturating_sub(self.stages.parse - parse_before);
            }
            build.persist_if_due()?;
            progress.tick(self.records, self.stats.processed_bytes);
            self.tick_metrics(&build.pipeline.index, &build.persister);
            if let Some(rules) = &handoff
                && let Some(why) = build.handoff_due(rules)
            {
                progress.finish();
                log::info!("handoff: {why}");
                return Ok(IngestEnd::Handoff);
            }
        }
        progress.finish();
        if stop_requested() {
            return Ok(IngestEnd::Stopped);
        }
        if let Some(s) = reading.shards.iter().find(|s| !s.finished) {
            bail!(
                "shard {}: reading stopped before its end",
                s.assignment.shard_id
            );
        }
        Ok(IngestEnd::Finished)
    }

    /// Parse and index the records of one batch that the shard's
    /// assignment admits, persisting when the index is full.
    fn index_batch(
        &mut self,
        batch: &RecordBatch,
        state: &mut ShardState,
        build: &mut SequenceBuild,
    ) -> Result<()> {
        let deaggregate = self.task.io_config.deaggregate;
        let comments = build.pipeline.parser.comments();
        let timing = self.opts.stage_timing;
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
        // The last record read in this batch; the shard's offset is moved
        // once, after the batch.
        let mut last_read: Option<&str> = None;
        // A batch's records are in order (the dump reader and the Kinesis
        // fetcher check it as they read them), so when its first and last
        // record are both to be processed, all are, and only its first
        // needs checking against the shard's offset. Comparing every
        // record's sequence number here, twice, was ~1% of a replay's
        // instructions, reading what another core wrote.
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
            build.records += 1;
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
                    continue;
                }
                // Bench timing samples one record in 128: two clock reads
                // per record cost about 2% of a replay, one in 16 still
                // ~0.5% (perf: __vdso_clock_gettime).
                let t0 =
                    (timing && self.records.is_multiple_of(PARSE_TIMING_SAMPLE)).then(Instant::now);
                let Pipeline {
                    parser,
                    index,
                    rows: stage,
                } = &mut build.pipeline;
                let parsed = parser.parse(data, &mut rows);
                if let Some(t0) = t0 {
                    self.stages.parse += t0.elapsed() * PARSE_TIMING_SAMPLE as u32;
                }
                if parser.fields.discovered_count() > build.known_discovered {
                    for (name, slot) in parser.fields.discovered_since(build.known_discovered) {
                        index.add_dimension(name, *slot);
                    }
                    build.known_discovered = parser.fields.discovered_count();
                }
                if let Err(e) = parsed {
                    if e.is_fatal() {
                        bail!("{}: {e}", at());
                    }
                    let msg = format!("{}: {e}", at());
                    self.errors
                        .record(&mut self.stats, ErrorKind::Unparseable, msg)
                        .map_err(anyhow::Error::msg)?;
                    continue;
                }
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
                                .record(&mut self.stats, ErrorKind::Unparseable, msg)
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
                            .record(&mut self.stats, ErrorKind::ProcessedWithError, msg)
                            .map_err(anyhow::Error::msg)?;
                    } else {
                        self.stats.processed += 1;
                    }
                }
            }
            // Druid persists between records, never inside one.
            if build.memory_full() {
                build.persist("memory full")?;
            }
            if admit == Admit::ProcessAndFinish {
                state.finished = true;
                break;
            }
        }
        if let Some(last) = last_read {
            state.last_read = Some(SequenceNumber::from_digits(last));
        }
        Ok(())
    }

    /// What the end of a batch says of its shard: read on, caught up
    /// (`--until-caught-up`), closed and drained (its children start), or
    /// a dump that ends too soon.
    fn after_batch(
        &mut self,
        dump: Option<&Dump>,
        reading: &mut Reading,
        batch: &RecordBatch,
    ) -> Result<()> {
        let stream = &self.task.resolved.stream;
        let state = &mut reading.shards[batch.shard];
        if !state.finished {
            match batch.end {
                BatchEnd::More
                    if self.opts.until_caught_up
                        && state.assignment.end == SequenceNumber::NoEnd
                        && batch.records.is_empty()
                        && batch.millis_behind == Some(0) =>
                {
                    // A closed shard is read on to its end (its children
                    // start only then): see `shard_is_closed`.
                    if !state.closed && dump.is_none() {
                        let conn = self.control_connection(&mut reading.list_conn)?;
                        state.closed = crate::source::kinesis::shard_is_closed(
                            conn,
                            stream,
                            &state.assignment.shard_id,
                        )?;
                    }
                    let state = &mut reading.shards[batch.shard];
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
                    // An open-ended read says when a shard has caught up
                    // (once per catching up).
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
        let state = &reading.shards[batch.shard];
        if state.finished {
            reading.supplier.close_shard(batch.shard);
        }
        if state.reached_end_of_shard {
            // Resharding: the children whose parents are all drained now.
            log::info!(
                "shard {}: closed and read to its end ({} records)",
                state.assignment.shard_id,
                state.records
            );
            self.start_ready_children(
                dump,
                &mut reading.list_conn,
                &mut reading.shards,
                &mut reading.supplier,
            )?;
        }
        Ok(())
    }
}

/// Bench timing: the parse stage is timed on one record in this many.
const PARSE_TIMING_SAMPLE: u64 = 128;
