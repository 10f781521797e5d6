//! Druid's ingestion metrics for one task: the events Druid's
//! `TaskRealtimeMetricsMonitor` emits for a Kinesis task (deltas of the
//! task's counters per `druid.monitoring.emissionPeriod`), the Kinesis lag
//! metrics Druid's supervisor emits, and the emitter the cluster configures
//! (`druid.emitter`: noop, logging, http). See docs/metrics.md.
//!
//! The runner holds a [`TaskMetrics`], asks [`TaskMetrics::due`] once per
//! batch (one clock read) and hands it a [`Snapshot`] of its counters when
//! an emission is due, and once more at the end.

pub mod emitter;

use crate::spec::period::Period;
use crate::spec::time::format_iso;
use anyhow::{Result, anyhow};
use emitter::{Emitter, EmitterConfig};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Prefix of the dimensions the MiddleManager passes to a peon
/// (`-Ddruid.metrics.emitter.dimension.dataSource=...`).
pub const DIMENSION_PREFIX: &str = "druid.metrics.emitter.dimension.";

/// One metric event as Druid's `ServiceMetricEvent` holds it, before the
/// service dimensions are added.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Milliseconds since the epoch: when the event was made.
    pub timestamp: i64,
    pub metric: &'static str,
    pub value: Value,
    /// The user dimensions; serialized sorted by name, as Druid's TreeMap.
    pub dims: BTreeMap<String, Value>,
}

/// The dimensions every event of the process carries (Druid's
/// `ServiceEmitter`): `service`, `host`, `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDims {
    pub service: String,
    pub host: String,
    pub version: String,
}

impl Event {
    /// The event as Druid serializes it: feed, timestamp, service, host,
    /// version, metric, value, then the user dimensions by name.
    pub fn to_json(&self, service: &ServiceDims) -> Value {
        let mut map = Map::new();
        map.insert("feed".into(), "metrics".into());
        map.insert("timestamp".into(), format_iso(self.timestamp).into());
        map.insert("service".into(), service.service.clone().into());
        map.insert("host".into(), service.host.clone().into());
        map.insert("version".into(), service.version.clone().into());
        map.insert("metric".into(), self.metric.into());
        map.insert("value".into(), self.value.clone());
        for (k, v) in &self.dims {
            map.insert(k.clone(), v.clone());
        }
        Value::Object(map)
    }

    /// The value as a number (every value we emit is one).
    pub fn number(&self) -> f64 {
        self.value.as_f64().unwrap_or(0.0)
    }
}

/// The task's counters at one moment: what Druid's `RowIngestionMeters`
/// and `SegmentGenerationMetrics` hold, totals since the task started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub processed: u64,
    pub processed_with_error: u64,
    pub unparseable: u64,
    pub thrown_away: u64,
    pub processed_bytes: u64,
    /// Rows in the segments published so far (after rollup).
    pub rows_output: u64,
    /// Intermediate persists finished, and the time they took.
    pub persists: u64,
    pub persist_millis: u64,
    /// Time spent merging persists and memory into final segments.
    pub merge_millis: u64,
    /// Sequences whose segments were published (our handoff), and
    /// sequences whose publish failed.
    pub handoffs: u64,
    pub failed_handoffs: u64,
    /// Time chunks held in memory and not yet handed off (a gauge).
    pub sinks: u64,
    /// The newest row timestamp indexed so far.
    pub max_event_time: Option<i64>,
    /// Each shard's last MillisBehindLatest.
    pub lag_millis: BTreeMap<String, i64>,
    /// Reading is over (Druid stops emitting messageGap then).
    pub done: bool,
}

/// The dimensions of a task's metrics.
#[derive(Debug, Clone, Default)]
pub struct TaskDims {
    pub data_source: String,
    pub task_id: String,
    pub task_type: String,
    pub group_id: String,
    pub stream: String,
    /// The task context's `tags` (Druid's `tags` dimension), if any.
    pub tags: Option<Value>,
    /// `druid.metrics.emitter.dimension.<name>` properties.
    pub extra: BTreeMap<String, String>,
}

impl TaskDims {
    /// The dimensions of the task's own metrics: Druid sets them as
    /// one-element string arrays (`MonitorUtils.addDimensionsToBuilder`),
    /// and so they serialize (`"dataSource":["flights"]`).
    fn task_metric_dims(&self) -> BTreeMap<String, Value> {
        let mut dims = BTreeMap::new();
        for (k, v) in &self.extra {
            dims.insert(k.clone(), json!([v]));
        }
        for (k, v) in [
            ("dataSource", &self.data_source),
            ("taskId", &self.task_id),
            ("taskType", &self.task_type),
            ("groupId", &self.group_id),
        ] {
            dims.insert(k.to_string(), json!([v]));
        }
        if let Some(tags) = &self.tags {
            dims.insert("tags".into(), tags.clone());
        }
        dims
    }

    /// The dimensions of the lag metrics, as Druid's supervisor sets them:
    /// plain strings `dataSource` and `stream` (and `tags`).
    fn lag_dims(&self) -> BTreeMap<String, Value> {
        let mut dims = BTreeMap::new();
        for (k, v) in &self.extra {
            dims.insert(k.clone(), json!([v]));
        }
        dims.insert("dataSource".into(), self.data_source.clone().into());
        dims.insert("stream".into(), self.stream.clone().into());
        if let Some(tags) = &self.tags {
            dims.insert("tags".into(), tags.clone());
        }
        dims
    }
}

/// Turns snapshots into events: counters as the difference since the last
/// emission, gauges as they are (Druid's `TaskRealtimeMetricsMonitor`).
#[derive(Debug, Clone, Default)]
pub struct Monitor {
    dims: TaskDims,
    previous: Snapshot,
}

impl Monitor {
    pub fn new(dims: TaskDims) -> Monitor {
        Monitor {
            dims,
            previous: Snapshot::default(),
        }
    }

    /// The events of one emission at `now` (epoch milliseconds); the
    /// snapshot becomes the base of the next emission's deltas.
    pub fn events(&mut self, now: i64, current: &Snapshot) -> Vec<Event> {
        let prev = &self.previous;
        let task_dims = self.dims.task_metric_dims();
        let mut out = Vec::with_capacity(24);
        let mut push = |metric: &'static str, value: Value| {
            out.push(Event {
                timestamp: now,
                metric,
                value,
                dims: task_dims.clone(),
            });
        };
        let delta = |now: u64, before: u64| Value::from(now.saturating_sub(before));
        let c = current;
        push(
            "ingest/events/thrownAway",
            delta(c.thrown_away, prev.thrown_away),
        );
        push(
            "ingest/events/unparseable",
            delta(c.unparseable, prev.unparseable),
        );
        push(
            "ingest/events/processedWithError",
            delta(c.processed_with_error, prev.processed_with_error),
        );
        push(
            "ingest/events/processed",
            delta(c.processed, prev.processed),
        );
        // No deduplication in a Kinesis task (Druid counts it for the
        // dedup column of legacy realtime ingestion only).
        push("ingest/events/duplicate", 0.into());
        push(
            "ingest/input/bytes",
            delta(c.processed_bytes, prev.processed_bytes),
        );
        push("ingest/rows/output", delta(c.rows_output, prev.rows_output));
        push("ingest/persists/count", delta(c.persists, prev.persists));
        push(
            "ingest/persists/time",
            delta(c.persist_millis, prev.persist_millis),
        );
        push("ingest/persists/failed", 0.into());
        push(
            "ingest/handoff/failed",
            delta(c.failed_handoffs, prev.failed_handoffs),
        );
        push(
            "ingest/merge/time",
            delta(c.merge_millis, prev.merge_millis),
        );
        push("ingest/handoff/count", delta(c.handoffs, prev.handoffs));
        push("ingest/sink/count", c.sinks.into());
        if !c.done
            && let Some(max) = c.max_event_time
        {
            push("ingest/events/messageGap", (now - max).into());
        }
        out.extend(self.lag_events(now, current));
        self.previous = current.clone();
        out
    }

    /// Druid's supervisor lag metrics from each shard's MillisBehindLatest:
    /// total, max and average over the shards, and one per shard.
    fn lag_events(&self, now: i64, current: &Snapshot) -> Vec<Event> {
        let lags = &current.lag_millis;
        if lags.is_empty() {
            return Vec::new();
        }
        let dims = self.dims.lag_dims();
        let total: i64 = lags.values().sum();
        let max = lags.values().copied().max().unwrap_or(0);
        let avg = total / lags.len() as i64;
        let event = |metric, value: i64, dims: BTreeMap<String, Value>| Event {
            timestamp: now,
            metric,
            value: value.into(),
            dims,
        };
        let mut out = vec![
            event("ingest/kinesis/lag/time", total, dims.clone()),
            event("ingest/kinesis/maxLag/time", max, dims.clone()),
            event("ingest/kinesis/avgLag/time", avg, dims.clone()),
        ];
        for (shard, lag) in lags {
            let mut dims = dims.clone();
            dims.insert("partition".into(), shard.clone().into());
            out.push(event("ingest/kinesis/partitionLag/time", *lag, dims));
        }
        out
    }
}

/// What `druid.*` properties say about metrics.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub emitter: EmitterConfig,
    /// `druid.monitoring.emissionPeriod` (default PT1M).
    pub period: Duration,
    pub service: ServiceDims,
    /// `druid.metrics.emitter.dimension.<name>`.
    pub extra_dims: BTreeMap<String, String>,
}

impl MetricsConfig {
    /// Read and check the properties; errors name the property.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<MetricsConfig> {
        let emitter = EmitterConfig::from_properties(props)?;
        let period = match props.get("druid.monitoring.emissionPeriod") {
            None => Duration::from_secs(60),
            Some(text) => {
                let ms = Period::parse(text.trim())
                    .ok()
                    .and_then(|p| p.fixed_millis())
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| {
                        anyhow!(
                            "druid.monitoring.emissionPeriod: {text:?} is not a positive ISO-8601 period of fixed length (like PT1M)"
                        )
                    })?;
                Duration::from_millis(ms as u64)
            }
        };
        let host = match props.get("druid.host").filter(|h| !h.is_empty()) {
            Some(h) => h.clone(),
            // Druid: the local host's name.
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into()),
        };
        // Druid's DruidNode: host and port, unless the host names one.
        let port = props
            .get("druid.plaintextPort")
            .or_else(|| props.get("druid.port"))
            .filter(|p| !p.is_empty());
        let host = match port {
            Some(port) if !host.contains(':') => format!("{host}:{port}"),
            _ => host,
        };
        let service = ServiceDims {
            service: props
                .get("druid.service")
                .cloned()
                .unwrap_or_else(|| "druid/peon".into()),
            host,
            version: env!("CARGO_PKG_VERSION").into(),
        };
        let extra_dims = props
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(DIMENSION_PREFIX)?;
                (!name.is_empty()).then(|| (name.to_string(), v.clone()))
            })
            .collect();
        Ok(MetricsConfig {
            emitter,
            period,
            service,
            extra_dims,
        })
    }
}

/// The metrics of one running task: the monitor, the emitters and the
/// clock that says when the next emission is due.
pub struct TaskMetrics {
    monitor: Monitor,
    emitters: Vec<Emitter>,
    service: ServiceDims,
    period: Duration,
    next: Instant,
    closed: bool,
    /// The counts an earlier, stopped run of the task already emitted.
    baseline: Snapshot,
}

impl TaskMetrics {
    /// Start the configured emitter (and, with `print`, one that writes
    /// each emission to stdout as JSON lines).
    pub fn start(config: &MetricsConfig, mut dims: TaskDims, print: bool) -> Result<TaskMetrics> {
        dims.extra = config.extra_dims.clone();
        let mut emitters = vec![Emitter::start(&config.emitter)?];
        if print {
            emitters.push(Emitter::Print);
        }
        Ok(TaskMetrics {
            monitor: Monitor::new(dims),
            emitters,
            service: config.service.clone(),
            period: config.period,
            next: Instant::now() + config.period,
            closed: false,
            baseline: Snapshot::default(),
        })
    }

    /// A restored task starts from the counts its stopped run reached: they
    /// were emitted then, so this run's deltas and totals leave them out.
    pub fn restored_from(&mut self, snapshot: &Snapshot) {
        self.monitor.previous = snapshot.clone();
        self.baseline = snapshot.clone();
    }

    /// True when an emission is due (one clock read).
    pub fn due(&self) -> bool {
        !self.closed && Instant::now() >= self.next
    }

    /// Emit the differences since the last emission.
    pub fn emit(&mut self, snapshot: &Snapshot) {
        if self.closed {
            return;
        }
        let events = self.monitor.events(now_millis(), snapshot);
        for e in &mut self.emitters {
            e.emit(&events, &self.service);
        }
        self.next = Instant::now() + self.period;
    }

    /// The last emission (Druid's monitor runs once more when it is
    /// removed), then flush and close the emitters. Returns the totals over
    /// the whole run: the events one emission covering it would hold.
    pub fn finish(&mut self, snapshot: &Snapshot) -> Vec<Event> {
        if !self.closed {
            self.emit(snapshot);
            for e in &mut self.emitters {
                e.close();
            }
            self.closed = true;
        }
        let mut whole = Monitor::new(self.monitor.dims.clone());
        whole.previous = self.baseline.clone();
        whole.events(now_millis(), snapshot)
    }

    pub fn service(&self) -> &ServiceDims {
        &self.service
    }
}

impl Drop for TaskMetrics {
    fn drop(&mut self) {
        if !self.closed {
            for e in &mut self.emitters {
                e.close();
            }
        }
    }
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The totals as a table for `--print-metrics`: metric, value, and the
/// dimensions that tell events of one metric apart.
pub fn format_table(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        let extra = e
            .dims
            .get("partition")
            .and_then(Value::as_str)
            .map(|p| format!("  partition={p}"))
            .unwrap_or_default();
        out.push_str(&format!("{:<34} {}{extra}\n", e.metric, e.value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims() -> TaskDims {
        TaskDims {
            data_source: "ds".into(),
            task_id: "t1".into(),
            task_type: "index_kinesis".into(),
            group_id: "g".into(),
            stream: "s".into(),
            tags: None,
            extra: [("foo".to_string(), "bar".to_string())].into(),
        }
    }

    fn value(events: &[Event], metric: &str) -> Option<i64> {
        events
            .iter()
            .find(|e| e.metric == metric)
            .and_then(|e| e.value.as_i64())
    }

    #[test]
    fn counters_are_deltas_and_gauges_are_not() {
        let mut m = Monitor::new(dims());
        let mut s = Snapshot {
            processed: 10,
            unparseable: 2,
            sinks: 3,
            max_event_time: Some(1_000),
            ..Default::default()
        };
        let first = m.events(5_000, &s);
        assert_eq!(value(&first, "ingest/events/processed"), Some(10));
        assert_eq!(value(&first, "ingest/events/unparseable"), Some(2));
        assert_eq!(value(&first, "ingest/sink/count"), Some(3));
        assert_eq!(value(&first, "ingest/events/messageGap"), Some(4_000));
        s.processed = 15;
        s.done = true;
        let second = m.events(6_000, &s);
        assert_eq!(value(&second, "ingest/events/processed"), Some(5));
        assert_eq!(value(&second, "ingest/events/unparseable"), Some(0));
        assert_eq!(value(&second, "ingest/sink/count"), Some(3));
        // Druid stops the message gap once processing is done.
        assert_eq!(value(&second, "ingest/events/messageGap"), None);
    }

    #[test]
    fn events_serialize_as_druid_does() {
        let mut m = Monitor::new(dims());
        let events = m.events(0, &Snapshot::default());
        let service = ServiceDims {
            service: "druid/peon".into(),
            host: "h:8100".into(),
            version: "1".into(),
        };
        let json = serde_json::to_string(&events[0].to_json(&service)).unwrap();
        assert_eq!(
            json,
            r#"{"feed":"metrics","timestamp":"1970-01-01T00:00:00.000Z","service":"druid/peon","host":"h:8100","version":"1","metric":"ingest/events/thrownAway","value":0,"dataSource":["ds"],"foo":["bar"],"groupId":["g"],"taskId":["t1"],"taskType":["index_kinesis"]}"#
        );
    }

    #[test]
    fn lag_total_max_avg_and_per_shard() {
        let mut m = Monitor::new(dims());
        let s = Snapshot {
            lag_millis: [("a".to_string(), 100), ("b".to_string(), 300)].into(),
            ..Default::default()
        };
        let events = m.events(0, &s);
        assert_eq!(value(&events, "ingest/kinesis/lag/time"), Some(400));
        assert_eq!(value(&events, "ingest/kinesis/maxLag/time"), Some(300));
        assert_eq!(value(&events, "ingest/kinesis/avgLag/time"), Some(200));
        let per_shard: Vec<_> = events
            .iter()
            .filter(|e| e.metric == "ingest/kinesis/partitionLag/time")
            .map(|e| (e.dims["partition"].clone(), e.value.clone()))
            .collect();
        assert_eq!(
            per_shard,
            vec![(json!("a"), json!(100)), (json!("b"), json!(300))]
        );
        let lag = events
            .iter()
            .find(|e| e.metric == "ingest/kinesis/lag/time")
            .unwrap();
        assert_eq!(lag.dims["dataSource"], json!("ds"));
        assert_eq!(lag.dims["stream"], json!("s"));
    }

    #[test]
    fn properties_with_druid_defaults() {
        let c = MetricsConfig::from_properties(&BTreeMap::new()).unwrap();
        assert_eq!(c.period, Duration::from_secs(60));
        assert_eq!(c.service.service, "druid/peon");
        assert!(matches!(c.emitter, EmitterConfig::Noop));
        let props: BTreeMap<String, String> = [
            ("druid.monitoring.emissionPeriod", "PT0.25S"),
            ("druid.host", "peon1"),
            ("druid.plaintextPort", "8101"),
            ("druid.metrics.emitter.dimension.foo", "bar"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = MetricsConfig::from_properties(&props).unwrap();
        assert_eq!(c.period, Duration::from_millis(250));
        assert_eq!(c.service.host, "peon1:8101");
        assert_eq!(c.extra_dims["foo"], "bar");
        let bad: BTreeMap<String, String> =
            [("druid.monitoring.emissionPeriod".into(), "P1M".into())].into();
        let err = MetricsConfig::from_properties(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("druid.monitoring.emissionPeriod"), "{err}");
    }
}
