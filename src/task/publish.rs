//! The runner's publish of a sequence: merge each interval's persists and
//! in-memory rows into segments, push them to deep storage, and commit them
//! with the end offsets in one metadata transaction.

use super::*;

/// How many times a publish that lost its metadata store connection is
/// tried (Druid's SQL metadata connector: RetryUtils' 10), waiting 1 s
/// doubling to 60 s between tries. Tests lower it.
const METADATA_TRIES: u32 = 10;
pub const METADATA_TRIES_VAR: &str = "KINESIS_PEON_METADATA_MAX_TRIES";

impl Runner<'_> {
    /// `publish`, tried again on a new connection when the metadata store
    /// went away (PostgreSQL restarted or unreachable). Each try starts
    /// over: its pushes are removed when it fails, the same segment ids are
    /// allocated again (they are keyed by sequence name), and a commit that
    /// went through before its reply was lost is found already published.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn publish_retrying(
        &mut self,
        index: &IncrementalIndex,
        persisted: &PersistResult,
        span: &SequenceSpan,
        end: &StreamOffsets,
        store: &mut MetadataStore,
        storage: &DeepStorage,
        lock_version: &str,
    ) -> Result<()> {
        let tries = std::env::var(METADATA_TRIES_VAR)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(METADATA_TRIES)
            .max(1);
        let mut wait = Duration::from_secs(1);
        let mut attempt = 1;
        loop {
            let result = self.publish(
                index,
                persisted,
                span,
                end.clone(),
                store,
                storage,
                lock_version,
            );
            match result {
                Err(e) if store.connection_lost() && attempt < tries => {
                    log::warn!(
                        "publishing sequence {}: the metadata store is unavailable (try {attempt} of {tries}; again in {} s): {e:#}",
                        span.name,
                        wait.as_secs()
                    );
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(60));
                    attempt += 1;
                }
                Err(e) if store.connection_lost() => {
                    return Err(e.context(format!(
                        "the metadata store stayed unavailable through {tries} tries; nothing of sequence {} was published",
                        span.name
                    )));
                }
                other => return other,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn publish(
        &mut self,
        index: &IncrementalIndex,
        persisted: &PersistResult,
        span: &SequenceSpan,
        end: StreamOffsets,
        store: &mut MetadataStore,
        storage: &DeepStorage,
        lock_version: &str,
    ) -> Result<()> {
        let task = self.task;
        let r = &task.resolved;
        let ds = &task.data_source;
        // Every segment of the sequence lists the same metrics.
        let metrics = r
            .aggregators
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let metadata = self.metadata_json();
        let dimension_names: Vec<String> =
            index.dimensions.iter().map(|d| d.name.clone()).collect();
        let dimension_types: Vec<Option<crate::spec::NumType>> = index
            .dimensions
            .iter()
            .map(|d| d.numeric.as_ref().map(|n| n.ty))
            .collect();
        let max_rows = task.tuning_config.max_rows_per_segment as usize;
        let plan = MergePlan {
            dimensions: &dimension_names,
            dimension_types: &dimension_types,
            aggregators: &r.aggregators,
            rollup: task.data_schema.granularity_spec.rollup,
            max_rows_per_segment: max_rows,
            metadata: &metadata,
        };

        // Per interval: its persisted spills (oldest first), then the rows
        // still in memory.
        type IntervalInputs<'s> = (
            Vec<&'s crate::persist::Spill>,
            Option<&'s crate::index::Sink>,
        );
        let mut intervals: std::collections::BTreeMap<(i64, i64), IntervalInputs> =
            Default::default();
        for spill in &persisted.spills {
            intervals.entry(spill.interval).or_default().0.push(spill);
        }
        for sink in index.sinks.iter().filter(|s| !s.rows.is_empty()) {
            intervals
                .entry((sink.interval_start, sink.interval_end))
                .or_default()
                .1 = Some(sink);
        }

        let mut pushed: Vec<PublishedSegment> = Vec::new();
        let mut allocator = store.allocator(ds)?;
        let orders = dimension_orders(index);
        let result = (|| -> Result<()> {
            for (&interval, (spills, sink)) in &intervals {
                let t0 = Instant::now();
                let in_memory =
                    sink.map(|sink| sink_to_segment(index, &orders, sink, metadata.clone()));
                let mut built: Vec<(SegmentFileSet, Vec<String>, usize)> = Vec::new();
                let mut build = |data: SegmentData| -> Result<()> {
                    let files = build_segment(&data, &r.index_spec)?;
                    let dims = data.dimensions.iter().map(|d| d.name.clone()).collect();
                    built.push((files, dims, data.num_rows()));
                    Ok(())
                };
                match in_memory {
                    // Nothing persisted and small enough: written as it is.
                    Some(data) if spills.is_empty() && data.num_rows() <= max_rows => build(data),
                    in_memory => {
                        let mut inputs: Vec<Box<dyn MergeInput + '_>> = Vec::new();
                        for spill in spills {
                            inputs.push(Box::new(
                                SpillInput::open(&spill.dir, &plan).with_context(|| {
                                    format!("reading intermediate persist {}", spill.dir.display())
                                })?,
                            ));
                        }
                        if let Some(data) = &in_memory {
                            inputs.push(Box::new(MemoryInput::new(data, &plan)?));
                        }
                        merge(interval, &mut inputs, &plan, &mut build)
                    }
                }
                .with_context(|| {
                    format!(
                        "writing the segments of {}",
                        format_interval(interval.0, interval.1)
                    )
                })?;
                let took = t0.elapsed();
                self.stages.persist += took;
                self.counts.merge += took;

                let identities =
                    allocator.allocate(ds, &span.name, interval, built.len(), lock_version)?;
                for ((files, dims, rows), identity) in built.into_iter().zip(identities) {
                    let t0 = Instant::now();
                    let target = storage.push(
                        &files,
                        &SegmentPlace {
                            data_source: ds,
                            interval,
                            version: &identity.version,
                            partition: identity.partition_num,
                        },
                    )?;
                    self.stages.push += t0.elapsed();
                    let segment = DataSegment {
                        data_source: ds.clone(),
                        interval: format_interval(interval.0, interval.1),
                        version: identity.version.clone(),
                        load_spec: target.load_spec,
                        dimensions: dims.join(","),
                        metrics: metrics.clone(),
                        shard_spec: ShardSpec {
                            kind: "numbered".into(),
                            partition_num: identity.partition_num,
                            partitions: identity.partitions,
                        },
                        binary_version: 9,
                        size: target.size,
                        identifier: identity.id(),
                    };
                    pushed.push(PublishedSegment {
                        segment,
                        location: target.location,
                        rows,
                    });
                }
            }
            Ok(())
        })();
        let result = result
            .and_then(|()| {
                let locations: Vec<&crate::storage::Location> =
                    pushed.iter().map(|p| &p.location).collect();
                storage.sync(&locations)
            })
            .and_then(|()| allocator.commit());
        let cleanup = |pushed: &[PublishedSegment]| {
            for p in pushed {
                if let Err(e) = storage.delete(&p.location) {
                    log::warn!(
                        "could not remove the unpublished push {}: {e:#}",
                        p.location
                    );
                }
            }
        };
        if let Err(e) = result {
            cleanup(&pushed);
            self.counts.failed_handoffs += 1;
            return Err(e);
        }

        let t0 = Instant::now();
        let start = StreamOffsets {
            stream: r.stream.clone(),
            offsets: span.start.clone(),
            exclusive: span.exclusive.clone(),
        };
        let segments: Vec<DataSegment> = pushed.iter().map(|p| p.segment.clone()).collect();
        let offsets = task.io_config.use_transaction.then_some((&start, &end));
        let outcome = store.publish(ds, &segments, offsets);
        self.stages.publish += t0.elapsed();
        match outcome {
            Ok(PublishOutcome::Published) => {
                log::info!(
                    "published {} segments of sequence {} with end offsets {}",
                    pushed.len(),
                    span.name,
                    end.end_metadata_json()["partitions"]["partitionSequenceNumberMap"]
                );
                self.rows_out += pushed.iter().map(|p| p.rows as u64).sum::<u64>();
                self.counts.handoffs += 1;
                self.segments.extend(pushed);
                Ok(())
            }
            Ok(PublishOutcome::AlreadyPublished) => {
                log::info!(
                    "segments of sequence {} were already published; removing this run's pushed copies",
                    span.name
                );
                cleanup(&pushed);
                self.already_published = true;
                Ok(())
            }
            Err(e) => {
                cleanup(&pushed);
                self.counts.failed_handoffs += 1;
                Err(e.context(format!(
                    "Failed to publish segments for sequence {}",
                    span.name
                )))
            }
        }
    }
}
