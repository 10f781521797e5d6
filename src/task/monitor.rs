//! The runner's side of the task's metrics (`crate::metrics`): the
//! dimensions of its task, the snapshot of its counters, and the counts
//! only the runner sees (handoffs, merge time, the newest row).

use super::*;
use crate::metrics::{Event, MetricsConfig, Snapshot, TaskDims, TaskMetrics};

/// Counts the metrics need beyond the row stats and stage times.
#[derive(Debug, Default)]
pub(super) struct Counts {
    /// Sequences published (a handoff each), and publishes that failed.
    pub handoffs: u64,
    pub failed_handoffs: u64,
    /// Time spent merging into final segments (also in `stages.persist`).
    pub merge: Duration,
    /// The newest row timestamp indexed.
    pub max_event_time: Option<i64>,
}

/// Read the metrics properties and start the emitter: before anything is
/// read, so that a bad `druid.emitter` refuses the task at start.
pub(super) fn start_metrics(task: &Task, opts: &RunOptions) -> Result<TaskMetrics> {
    let config = MetricsConfig::from_properties(&opts.properties)?;
    let dims = TaskDims {
        data_source: task.data_source.clone(),
        task_id: task.id.clone(),
        task_type: task.task_type.clone(),
        // Druid's AbstractTask: the group id defaults to the task id.
        group_id: task.group_id.clone().unwrap_or_else(|| task.id.clone()),
        stream: task.resolved.stream.clone(),
        tags: task.context.get("tags").filter(|t| t.is_object()).cloned(),
        extra: Default::default(),
    };
    TaskMetrics::start(&config, dims, opts.print_metrics && opts.dump.is_none())
}

impl Runner<'_> {
    /// The counters now; `reading` while a sequence is being read (its
    /// index and its persist thread's progress).
    pub(super) fn metrics_snapshot(
        &self,
        reading: Option<(&IncrementalIndex, &Persister)>,
    ) -> Snapshot {
        let (sinks, (running_persists, running_busy)) = match reading {
            Some((index, persister)) => (
                index.sinks.iter().filter(|s| !s.rows.is_empty()).count() as u64,
                persister.done(),
            ),
            None => (0, (0, Duration::ZERO)),
        };
        let persist = self.stages.persist.saturating_sub(self.counts.merge) + running_busy;
        Snapshot {
            processed: self.stats.processed,
            processed_with_error: self.stats.processed_with_error,
            unparseable: self.stats.unparseable,
            thrown_away: self.stats.thrown_away,
            processed_bytes: self.stats.processed_bytes,
            rows_output: self.rows_out,
            persists: self.persists as u64 + running_persists,
            persist_millis: persist.as_millis() as u64,
            merge_millis: self.counts.merge.as_millis() as u64,
            handoffs: self.counts.handoffs,
            failed_handoffs: self.counts.failed_handoffs,
            sinks,
            max_event_time: self.counts.max_event_time,
            lag_millis: self.lag_millis.clone(),
            done: reading.is_none(),
        }
    }

    /// The periodic emission, when due (a clock read otherwise).
    pub(super) fn tick_metrics(&mut self, index: &IncrementalIndex, persister: &Persister) {
        if self.metrics.due() {
            let snapshot = self.metrics_snapshot(Some((index, persister)));
            self.metrics.emit(&snapshot);
        }
    }

    /// The last emission; the totals over the run.
    pub(super) fn finish_metrics(&mut self) -> Vec<Event> {
        let snapshot = self.metrics_snapshot(None);
        self.metrics.finish(&snapshot)
    }
}
